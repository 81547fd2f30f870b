// ThreadPool: persistent workers released by a generation counter. Workers spin briefly after
// each job (decode issues many small back-to-back loops), then sleep on a condition variable.
#include "kernels/threadpool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DSRT_PAUSE() _mm_pause()
#else
#define DSRT_PAUSE() std::this_thread::yield()
#endif

namespace dsrt::kernels {

namespace {

// How long a waiting thread polls before blocking: long enough to bridge the gap between the
// parallel loops of one decode step, short enough not to burn a core between requests. Polling
// yields between rounds: on a dedicated core that returns at once, and when the thread shares
// its CPU with the one it waits for (an oversubscribed machine) it hands that CPU over instead
// of holding it for the whole spin (measured: 400 us -> 3 us per round trip).
constexpr auto kSpin = std::chrono::microseconds(200);

void pin_to(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort: ignore failure
}

// Polls pred() for up to kSpin; returns whether it became true.
template <class Pred>
bool spin_until(const Pred& pred) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      DSRT_PAUSE();
    }
    if (std::chrono::steady_clock::now() - start >= kSpin) return pred();
    sched_yield();
  }
}

}  // namespace

struct ThreadPool::Impl {
  int n = 1;
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable wake, done;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};  // workers that have not finished the current generation
  std::atomic<bool> busy{false};
  // Threads blocked on `wake` / `done`: the releaser skips the lock and the futex call when none
  // sleeps (seq_cst on both sides: a sleeper counted late re-checks the predicate under mu).
  std::atomic<int> sleepers{0}, caller_sleeping{0};
  bool stop = false;  // read by workers after a generation change (published by `generation`)

  // The current job; written by the caller before a generation bump, read-only until done.
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t items = 0;
  int chunks = 0;
  std::vector<std::exception_ptr> errors;  // one slot per thread

  void run_chunk(int t) {
    if (t >= chunks) return;
    try {
      (*fn)(items * t / chunks, items * (t + 1) / chunks, t);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  }

  void worker(int t) {
    uint64_t seen = 0;
    for (;;) {
      auto changed = [&] { return generation.load(std::memory_order_acquire) != seen; };
      if (!spin_until(changed)) {
        std::unique_lock<std::mutex> lk(mu);
        sleepers.fetch_add(1);
        wake.wait(lk, changed);
        sleepers.fetch_sub(1);
      }
      seen = generation.load(std::memory_order_acquire);
      if (stop) return;
      run_chunk(t);
      // Every worker reports every generation, so the caller never rewrites the job while a
      // late worker is still reading it.
      if (pending.fetch_sub(1) == 1 && caller_sleeping.load() > 0) {
        std::lock_guard<std::mutex> lk(mu);
        done.notify_one();
      }
    }
  }

  void release_workers() {
    pending.store(n - 1, std::memory_order_relaxed);
    generation.fetch_add(1);
    if (sleepers.load() > 0) {
      { std::lock_guard<std::mutex> lk(mu); }  // a sleeper between its check and its wait
      wake.notify_all();
    }
  }

  void wait_workers() {
    auto finished = [&] { return pending.load(std::memory_order_acquire) == 0; };
    if (spin_until(finished)) return;
    std::unique_lock<std::mutex> lk(mu);
    caller_sleeping.fetch_add(1);
    done.wait(lk, finished);
    caller_sleeping.fetch_sub(1);
  }
};

ThreadPool::ThreadPool(int n_threads, bool pin, int first_cpu) : impl_(new Impl) {
  if (n_threads < 1) {
    delete impl_;
    throw std::invalid_argument("ThreadPool: n_threads must be >= 1, got " +
                                std::to_string(n_threads));
  }
  impl_->n = n_threads;
  impl_->errors.resize(n_threads);
  if (pin) pin_to(first_cpu);  // the calling thread is thread 0
  impl_->workers.reserve(n_threads - 1);
  for (int t = 1; t < n_threads; ++t) {
    impl_->workers.emplace_back([this, t, pin, first_cpu] {
      if (pin) pin_to(first_cpu + t);
      impl_->worker(t);
    });
  }
}

ThreadPool::~ThreadPool() {
  impl_->stop = true;
  impl_->release_workers();
  for (auto& th : impl_->workers) th.join();
  delete impl_;
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int chunks = static_cast<int>(std::min<int64_t>(impl_->n, n / grain));
  if (chunks <= 1) return fn(0, n, 0);  // covers n <= grain and size() == 1
  if (impl_->busy.exchange(true, std::memory_order_acquire))
    throw std::logic_error("ThreadPool::parallel_for is not re-entrant");
  Impl& s = *impl_;
  s.fn = &fn;
  s.items = n;
  s.chunks = chunks;
  for (auto& e : s.errors) e = nullptr;
  s.release_workers();
  s.run_chunk(0);
  s.wait_workers();
  s.busy.store(false, std::memory_order_release);
  for (auto& e : s.errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace dsrt::kernels
