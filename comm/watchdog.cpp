#include "comm/watchdog.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "comm/watchdog_detail.h"

namespace dsrt::comm {

using namespace detail;

namespace {
constexpr uint64_t kWorldId = 0x574f524c44ull;  // "WORLD"
std::atomic<double> g_deadline{0};
}  // namespace

double watchdog_seconds() {
  double d = g_deadline.load(std::memory_order_relaxed);
  if (d > 0) return d;
  d = 300;
  if (const char* e = std::getenv("DSRT_WATCHDOG_SECONDS"); e && *e) {
    char* end = nullptr;
    d = std::strtod(e, &end);
    if (*end != '\0' || !(d > 0) || !std::isfinite(d))
      throw std::invalid_argument(std::string("DSRT_WATCHDOG_SECONDS='") + e + "' is not a positive number of seconds");
  }
  g_deadline.store(d, std::memory_order_relaxed);
  return d;
}

void set_watchdog_seconds(double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds))
    throw std::invalid_argument("watchdog deadline must be a positive number of seconds, got " + std::to_string(seconds));
  g_deadline.store(seconds, std::memory_order_relaxed);
}

const char* op_name(Op op) {
  static const char* const names[] = {"none",           "dup",          "split",     "all_reduce", "all_gather",
                                      "reduce_scatter", "all_to_all_counts", "all_to_all_v", "broadcast", "barrier"};
  auto i = static_cast<size_t>(op);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "?";
}

Watchdog::Watchdog() = default;

Watchdog& Watchdog::instance() {
  static Watchdog* w = new Watchdog;  // never destroyed: no teardown race with exit()
  return *w;
}

void Watchdog::ensure_identity() {
  if (world_rank_ >= 0) return;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  host_ = buf;
}

int Watchdog::world_slot() {
  ensure_identity();
  std::lock_guard lk(mutex_);
  Slot& s = slots_[0];
  if (!s.used) {
    s = Slot{true, kWorldId, 0, "MPI_COMM_WORLD", {}};
    for (int r = 0; r < world_size_; ++r) s.members.push_back(r);
  }
  return 0;
}

int Watchdog::add_comm(uint64_t id, const std::string& name, std::vector<int> world_members) {
  ensure_identity();
  std::lock_guard lk(mutex_);
  for (int i = 1; i < kMaxComms; ++i) {
    if (slots_[i].used) continue;
    slots_[i] = Slot{true, id, 0, name, std::move(world_members)};
    return i;
  }
  throw std::runtime_error("dsrt comm: more than " + std::to_string(kMaxComms - 1) + " live MPI communicators");
}

void Watchdog::rename_comm(int slot, const std::string& name) {
  std::lock_guard lk(mutex_);
  slots_[slot].name = name;
}

void Watchdog::remove_comm(int slot) {
  std::lock_guard lk(mutex_);
  slots_[slot] = Slot{};
}

uint64_t Watchdog::enter(int slot, Op op, const char* what) {
  std::lock_guard lk(mutex_);
  Slot& s = slots_[slot];
  cur_.in_op = true;
  cur_.slot = slot;
  cur_.seq = ++s.seq;
  cur_.op = op;
  copy_str(cur_.what, sizeof(cur_.what), what);
  cur_.since = Clock::now();
  return cur_.seq;
}

void Watchdog::resume(int slot, uint64_t seq, Op op, const char* what) {
  std::lock_guard lk(mutex_);
  cur_.in_op = true;
  cur_.slot = slot;
  cur_.seq = seq;
  cur_.op = op;
  copy_str(cur_.what, sizeof(cur_.what), what);
  cur_.since = Clock::now();
}

void Watchdog::leave() {
  std::lock_guard lk(mutex_);
  cur_.in_op = false;
  cur_.since = Clock::now();
}

int Watchdog::wait(int n, MPI_Request* requests) {
  // Only this thread writes cur_, so reading it unlocked is safe.
  const auto deadline = cur_.since + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(watchdog_seconds()));
  const auto t0 = Clock::now();
  static thread_local bool fine_sleep = prctl(PR_SET_TIMERSLACK, 1UL) == 0;  // µs sleeps, not 50 µs
  (void)fine_sleep;
  for (;;) {
    int done = 0;  // MPI_Test reports a single request's own error code, MPI_Testall only ERR_IN_STATUS
    const int rc = n == 1 ? MPI_Test(requests, &done, MPI_STATUS_IGNORE)
                          : MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return rc;
    if (done) return MPI_SUCCESS;
    if (aborting_.load(std::memory_order_relaxed)) park();
    const auto now = Clock::now();
    const auto waited_us = std::chrono::duration_cast<std::chrono::microseconds>(now - t0).count();
    if (waited_us < kSpinMicros) continue;  // short collectives finish within the spin
    if (now >= deadline) deadline_exceeded();
    if (waited_us < kYieldMicros) {  // large exchanges: sleeping between polls stalled them
      sched_yield();
      continue;
    }
    // Back off so ranks idling in a collective leave the cores to the others, but only by an
    // eighth of the time waited: Open MPI progresses a transfer only inside MPI_Test, so a long
    // sleep would stretch a collective that is still moving data.
    std::this_thread::sleep_for(std::chrono::microseconds(std::clamp<int64_t>(waited_us / 8, 5, kMaxSleepMicros)));
  }
}

void Watchdog::fill_beat(void* out) {
  auto& b = *static_cast<wire::Beat*>(out);
  const auto now = Clock::now();
  b.rank = world_rank_;
  b.in_op = cur_.in_op;
  b.op = static_cast<int32_t>(cur_.op);
  b.seq = cur_.seq;
  b.op_seconds = seconds_since(cur_.since, now);
  const Slot* s = cur_.slot >= 0 && slots_[cur_.slot].used ? &slots_[cur_.slot] : nullptr;
  b.comm_id = s ? s->id : 0;
  copy_str(b.comm, sizeof(b.comm), s ? s->name.c_str() : "(freed communicator)");
  copy_str(b.what, sizeof(b.what), cur_.what);
  copy_str(b.host, sizeof(b.host), host_.c_str());
  b.n_progress = 0;
  for (const Slot& sl : slots_)
    if (sl.used) b.progress[b.n_progress++] = {sl.id, sl.seq};
}

void Watchdog::deadline_exceeded() {
  std::string self;
  {
    std::lock_guard lk(mutex_);
    const Slot& s = slots_[cur_.slot];
    const double waited = seconds_since(cur_.since, Clock::now());
    local_report_.assign(sizeof(wire::Report) + s.members.size() * sizeof(int32_t), 0);
    auto* rep = reinterpret_cast<wire::Report*>(local_report_.data());
    fill_beat(&rep->beat);
    rep->waited = waited;
    rep->n_members = static_cast<int32_t>(s.members.size());
    std::memcpy(rep + 1, s.members.data(), s.members.size() * sizeof(int32_t));
    self = fmt("watchdog: rank %d (host %s) waited %.1f s in %s '%s' (#%llu on %s)", world_rank_, host_.c_str(), waited,
               op_name(cur_.op), cur_.what, (unsigned long long)cur_.seq, s.name.c_str());
  }
  cv_.notify_all();
  if (!running()) die(self + "; the watchdog thread is not running, so the ranks that did not arrive are unknown");
  const auto t0 = Clock::now();
  const double patience = kSettleSeconds + kGraceSeconds;
  while (seconds_since(t0, Clock::now()) < patience) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  die(self + fmt("; world rank 0 did not end the job within %.1f s (it may be dead or stopped itself), so the ranks "
                 "that did not arrive are unknown", patience));
}

void Watchdog::park() {
  std::this_thread::sleep_for(std::chrono::seconds(60));  // MPI_Abort ends this process first
  _exit(1);
}

void Watchdog::die(const std::string& line) {
  if (!begin_abort()) park();  // another thread of this rank is already ending the job
  std::fprintf(stderr, "dsrt: error: %s\n", line.c_str());
  std::fflush(stderr);
  // Let mpirun forward the line before MPI_Abort tears the job down.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  MPI_Abort(MPI_COMM_WORLD, 1);
  _exit(1);
}

void Watchdog::start() {
  ensure_identity();
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE)
    throw std::runtime_error("dsrt comm: the MPI library provides thread level " + std::to_string(level) +
                             ", the watchdog needs MPI_THREAD_MULTIPLE (" + std::to_string(MPI_THREAD_MULTIPLE) + ")");
  watchdog_seconds();  // a bad DSRT_WATCHDOG_SECONDS fails here, on every rank
  if (running()) return;
  if (int rc = MPI_Comm_dup(MPI_COMM_WORLD, &hb_); rc != MPI_SUCCESS)
    throw std::runtime_error("dsrt comm: MPI_Comm_dup for the watchdog failed");
  MPI_Comm_set_errhandler(hb_, MPI_ERRORS_RETURN);
  {
    std::lock_guard lk(mutex_);
    stop_ = false;
    if (cur_.op == Op::none) cur_.since = Clock::now();
  }
  thread_ = std::thread(&Watchdog::thread_main, this);
}

void Watchdog::stop() {
  if (!running()) return;
  {
    std::lock_guard lk(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  MPI_Comm_free(&hb_);
}

}  // namespace dsrt::comm
