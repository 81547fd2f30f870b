#pragma once
// The watchdog bounds every wait of MpiCommunicator and names the ranks that did not arrive.
//
// Each rank records which collective it is in (communicator, sequence number, operation, `what`)
// and, per communicator, the last sequence number it entered. A thread per rank sends that state
// to world rank 0 about once per second over its own duplicate of MPI_COMM_WORLD. When a rank
// waits longer than watchdog_seconds() in one collective it reports to rank 0, which compares
// the members' progress on that communicator, prints ONE line naming the missing ranks and calls
// MPI_Abort. If rank 0 stays silent, the rank prints its own line and aborts. Rank 0 also aborts
// when a rank sends no heartbeat for longer than the deadline (dead or stopped process).
//
// Collectives are expected to be issued by one thread at a time per process.
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dsrt::comm {

// Seconds a rank may wait in one collective. Default 300, or env DSRT_WATCHDOG_SECONDS (read at
// first use; a bad value throws std::invalid_argument); set_watchdog_seconds overrides both.
// Give every rank the same value: rank 0 also uses it as the limit for missing heartbeats.
double watchdog_seconds();
void set_watchdog_seconds(double seconds);

enum class Op : int32_t { none, dup, split, all_reduce, all_gather, reduce_scatter, all_to_all_counts,
                          all_to_all_v, broadcast, barrier };
const char* op_name(Op op);

class Watchdog {
 public:
  static constexpr int kMaxComms = 64;
  static constexpr double kHeartbeatSeconds = 1.0;
  // Rank 0 waits this long after a report for fresh heartbeats before judging who is missing.
  static constexpr double kSettleSeconds = 1.2;
  // A reporting rank aborts by itself if rank 0 has not ended the job after this long.
  static constexpr double kGraceSeconds = 4.0;
  // wait(): busy-poll kSpinMicros, then poll with sched_yield until kYieldMicros (a transfer
  // in flight keeps moving: Open MPI progresses it only inside MPI_Test, and a yield hands the
  // core only to a runnable peer), then sleep between polls up to kMaxSleepMicros (an idle rank,
  // e.g. a server between requests, leaves its core).
  static constexpr int64_t kSpinMicros = 50;
  static constexpr int64_t kYieldMicros = 20000;
  static constexpr int64_t kMaxSleepMicros = 1000;

  static Watchdog& instance();

  // start: after MPI_Init_thread(MPI_THREAD_MULTIPLE); stop: before MPI_Finalize (collective:
  // rank 0 waits for every rank's goodbye so no heartbeat is left in flight).
  void start();
  void stop();
  bool running() const { return thread_.joinable(); }

  // Communicators tracked in heartbeats. `id` must be equal on every member; members are world
  // ranks. Slot 0 stands for MPI_COMM_WORLD itself (used while duplicating it).
  int add_comm(uint64_t id, const std::string& name, std::vector<int> world_members);
  void rename_comm(int slot, const std::string& name);
  void remove_comm(int slot);
  int world_slot();

  // Enters collective #seq (returned; 1, 2, ... per communicator) of the slot's communicator.
  uint64_t enter(int slot, Op op, const char* what);
  // Re-enters collective #seq taken by an earlier enter (the wait of a started all_to_all_v);
  // the deadline counts from now.
  void resume(int slot, uint64_t seq, Op op, const char* what);
  void leave();
  // Completes the requests with MPI_Testall and a spin-then-sleep backoff. Returns the MPI error
  // code; past the deadline (counted from enter) the job is ended and this does not return.
  int wait(int n, MPI_Request* requests);

  // Ending the job: the first caller gets true; every MPI-calling loop of this process then
  // parks, because Open MPI garbles MPI_Abort's report when another thread is inside MPI.
  bool begin_abort() { return !aborting_.exchange(true); }
  [[noreturn]] static void park();

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  const std::string& host() const { return host_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Slot {
    bool used = false;
    uint64_t id = 0;
    uint64_t seq = 0;  // last entered
    std::string name;
    std::vector<int> members;
  };
  struct Current {
    bool in_op = false;
    int slot = -1;
    uint64_t seq = 0;
    Op op = Op::none;
    char what[64] = {};
    Clock::time_point since{};  // entry (in_op) or end of the last op
  };
  struct RankState;

  Watchdog();
  void ensure_identity();
  void fill_beat(void* beat);  // wire::Beat; caller holds mutex_
  [[noreturn]] void deadline_exceeded();
  void thread_main();
  void root_loop();
  void peer_loop();
  void root_handle(const char* data, int bytes, int source, Clock::time_point now);
  std::string describe_report(const char* report);
  std::string describe_rank(int r, Clock::time_point now) const;
  [[noreturn]] void die(const std::string& line);

  std::mutex mutex_;
  std::condition_variable cv_;
  Slot slots_[kMaxComms];
  Current cur_;
  int world_rank_ = -1, world_size_ = 0;
  std::string host_;
  MPI_Comm hb_ = MPI_COMM_NULL;
  std::thread thread_;
  bool stop_ = false;
  std::vector<char> local_report_;  // set by a rank's own main thread past its deadline
  std::vector<RankState> ranks_;    // rank 0 only
  std::atomic<bool> aborting_{false};
};

}  // namespace dsrt::comm
