#pragma once
// Communicator over MPI. Each instance owns its MPI_Comm (a duplicate of MPI_COMM_WORLD or the
// result of a split), freed in the destructor: destroy communicators before the MpiSession.
//
// Every collective runs as its non-blocking form completed by the watchdog's polling wait
// (comm/watchdog.h), so no rank blocks longer than watchdog_seconds(). Errors are returned, not
// fatal (MPI_ERRORS_RETURN), and thrown as MpiError naming the MPI call, `what`, rank and host.
// Counts above INT_MAX are sent in chunks; steady-state calls do not allocate.
#include <mpi.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/watchdog.h"

namespace dsrt::comm {

class MpiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MpiCommunicator final : public Communicator {
 public:
  // A duplicate of MPI_COMM_WORLD named "world". Collective over the world; MPI must be
  // initialised (see MpiSession).
  static std::unique_ptr<MpiCommunicator> world();
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string host() const override { return host_; }
  // color must be >= 0. The child is named "<name>/<color>" until set_name.
  std::unique_ptr<Communicator> split(int color, int key) override;

  void all_reduce_sum(float* data, int64_t n, const char* what) override;
  void all_gather(const float* send, int64_t n, float* recv, const char* what) override;
  void reduce_scatter_sum(const float* send, float* recv, int64_t n, const char* what) override;
  void all_to_all_counts(const int64_t* send, int64_t* recv, const char* what) override;
  void all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets, void* recv,
                    const int64_t* recv_bytes, const int64_t* recv_offsets, const char* what) override;
  void broadcast(void* data, int64_t bytes, int root, const char* what) override;
  void barrier(const char* what) override;
  int start_all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets, void* recv,
                         const int64_t* recv_bytes, const int64_t* recv_offsets, const char* what) override;
  void wait_all_to_all_v(int ticket) override;
  void progress() override;

  // The name in watchdog and error messages ("tp group").
  const std::string& name() const { return name_; }
  void set_name(const std::string& name);
  MPI_Comm native() const { return comm_; }
  int world_rank_of(int r) const { return world_ranks_[r]; }
  // Largest element count (all_to_all_v, broadcast: bytes) one MPI call carries; larger
  // transfers go in chunks. INT_MAX by default; tests lower it to exercise the chunked paths.
  void set_max_count(int64_t n);

 private:
  class Scope;
  MpiCommunicator(MPI_Comm owned, std::string name, uint64_t id);
  void check(int rc, const char* call, const char* what) const;
  void wait(int n, MPI_Request* requests, const char* call, const char* what);
  void all_gather_chunked(const float* send, int64_t n, float* recv, const char* what);
  void reduce_scatter_chunked(const float* send, float* recv, int64_t n, const char* what);
  // Posts the exchange into `requests` (MPI_Ialltoallv with the int arrays, or point-to-point
  // messages when a count or offset exceeds max_count_); returns the MPI call's name.
  const char* post_all_to_all_v(const char* send, const int64_t* send_bytes, const int64_t* send_offsets, char* recv,
                                const int64_t* recv_bytes, const int64_t* recv_offsets, const char* what,
                                std::vector<int>& ints, std::vector<MPI_Request>& requests);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::string name_, host_;
  uint64_t id_ = 0;  // equal on every member: matches progress across ranks in the watchdog
  int slot_ = -1;
  int64_t max_count_ = INT_MAX;
  Op op_ = Op::none;  // current operation and its sequence number, for error messages
  uint64_t seq_ = 0;
  std::vector<int> world_ranks_;
  std::vector<int> ints_;                // [4 * size] counts and displacements of all_to_all_v
  std::vector<MPI_Request> requests_;    // reused by the chunked paths
  // Started exchanges: each keeps its own ints (MPI reads them until completion) and requests.
  struct Pending {
    bool used = false;
    uint64_t seq = 0;  // the watchdog's sequence number taken at start
    const char* call = "";
    char what[64] = {};
    std::vector<int> ints;
    std::vector<MPI_Request> requests;
  };
  Pending pending_[kMaxPending];
};

}  // namespace dsrt::comm
