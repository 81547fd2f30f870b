#pragma once
// The communicator layer types hold. Collectives only: no model knowledge.
// A single-rank implementation lets every layer and test run without MPI; MpiCommunicator
// (comm/mpi_communicator.h) provides the same interface across ranks.
//
// Every blocking call takes `what`, naming the caller (e.g. "layer 3 wo"): errors and the
// watchdog report it together with the operation, rank and host.
#include <cstdint>
#include <memory>
#include <string>

namespace dsrt::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string host() const = 0;

  // Ranks with the same color form a new communicator, ordered by (key, rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // In-place element-wise sum of data[0..n) over all ranks.
  virtual void all_reduce_sum(float* data, int64_t n, const char* what) = 0;
  // recv[r * n .. (r + 1) * n) = rank r's send[0..n).
  virtual void all_gather(const float* send, int64_t n, float* recv, const char* what) = 0;
  // send holds size() blocks of n; rank r receives in recv[0..n) the sum over ranks of block r.
  virtual void reduce_scatter_sum(const float* send, float* recv, int64_t n, const char* what) = 0;
  // recv[r] = rank r's send[rank()], one int64 per peer (the counts exchange before all_to_all_v).
  virtual void all_to_all_counts(const int64_t* send, int64_t* recv, const char* what) = 0;
  // Variable all-to-all of bytes: send_bytes[r] bytes from send + send_offsets[r] go to rank r,
  // which receives them at recv + recv_offsets[rank()] (recv_bytes[r] bytes from rank r).
  virtual void all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets, void* recv,
                            const int64_t* recv_bytes, const int64_t* recv_offsets, const char* what) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root, const char* what) = 0;
  virtual void barrier(const char* what) = 0;

  // The same all_to_all_v started now and completed by wait_all_to_all_v(ticket), so a caller
  // can compute while the bytes travel (micro-batch overlap). Until the wait, the buffers and
  // the four count/offset arrays must stay valid and untouched (MPI reads the counts late).
  // Every rank starts its exchanges in the same order; they may be waited in any order, and
  // other collectives may run in between. At most kMaxPending exchanges are in flight. The wait
  // runs under the same watchdog deadline as a blocking call. This default runs the blocking
  // form at start (single rank: a copy).
  static constexpr int kMaxPending = 4;
  virtual int start_all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets, void* recv,
                                 const int64_t* recv_bytes, const int64_t* recv_offsets, const char* what) {
    all_to_all_v(send, send_bytes, send_offsets, recv, recv_bytes, recv_offsets, what);
    return 0;
  }
  virtual void wait_all_to_all_v(int ticket) {}
  // Lets started exchanges advance: MPI moves rendezvous-sized messages only inside MPI calls,
  // so a long computation calls this between pieces of work. Never blocks.
  virtual void progress() {}
};

// The communicator of a process that is the whole job.
std::unique_ptr<Communicator> make_single_rank();

}  // namespace dsrt::comm
