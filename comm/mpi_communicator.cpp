#include "comm/mpi_communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>

#include <unistd.h>

namespace dsrt::comm {
namespace {

constexpr int kTagAllToAll = 1;  // the only point-to-point traffic on our communicators

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 step: ids of split children
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  return buf;
}

void require_nonnegative(int64_t n, const char* what) {
  if (n < 0) throw std::invalid_argument(std::string("dsrt comm: negative count ") + std::to_string(n) + " in '" +
                                         (what ? what : "") + "'");
}

}  // namespace

// Marks the communicator as inside one collective for the watchdog and error messages.
class MpiCommunicator::Scope {
 public:
  Scope(MpiCommunicator& c, Op op, const char* what) : c_(c) {
    c.op_ = op;
    c.seq_ = Watchdog::instance().enter(c.slot_, op, what);
  }
  ~Scope() {
    Watchdog::instance().leave();
    c_.op_ = Op::none;
  }

 private:
  MpiCommunicator& c_;
};

std::unique_ptr<MpiCommunicator> MpiCommunicator::world() {
  Watchdog& wd = Watchdog::instance();
  const int slot = wd.world_slot();
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm dup = MPI_COMM_NULL;
  uint64_t seq = wd.enter(slot, Op::dup, "world communicator");
  MPI_Request req;
  int rc = MPI_Comm_idup(MPI_COMM_WORLD, &dup, &req);
  if (rc == MPI_SUCCESS) rc = wd.wait(1, &req);
  wd.leave();
  if (rc != MPI_SUCCESS)
    throw MpiError("MPI_Comm_idup of MPI_COMM_WORLD failed on rank " + std::to_string(wd.world_rank()) + " (host " +
                   wd.host() + "): " + mpi_error_string(rc));
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(dup, "world", mix(0x776f726c64, seq)));
}

MpiCommunicator::MpiCommunicator(MPI_Comm owned, std::string name, uint64_t id)
    : comm_(owned), name_(std::move(name)), id_(id) {
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  Watchdog& wd = Watchdog::instance();
  host_ = wd.host();
  MPI_Group group, world_group;
  MPI_Comm_group(comm_, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> local(size_);
  std::iota(local.begin(), local.end(), 0);
  world_ranks_.resize(size_);
  MPI_Group_translate_ranks(group, size_, local.data(), world_group, world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  ints_.resize(4 * size_);
  requests_.reserve(2 * size_);
  for (Pending& p : pending_) {
    p.ints.reserve(4 * size_);
    p.requests.reserve(2 * size_);
  }
  slot_ = wd.add_comm(id_, name_, world_ranks_);
}

MpiCommunicator::~MpiCommunicator() {
  Watchdog::instance().remove_comm(slot_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::set_name(const std::string& name) {
  name_ = name;
  Watchdog::instance().rename_comm(slot_, name);
}

void MpiCommunicator::set_max_count(int64_t n) {
  if (n < 1 || n > INT_MAX) throw std::invalid_argument("dsrt comm: max count must be in [1, INT_MAX]");
  max_count_ = n;
}

void MpiCommunicator::check(int rc, const char* call, const char* what) const {
  if (rc == MPI_SUCCESS) return;
  char head[512];
  std::snprintf(head, sizeof(head), "%s failed in %s '%s' (#%llu on %s): rank %d of %d (world rank %d, host %s): ",
                call, op_name(op_), what ? what : "", (unsigned long long)seq_, name_.c_str(), rank_, size_,
                world_ranks_[rank_], host_.c_str());
  throw MpiError(head + mpi_error_string(rc));
}

void MpiCommunicator::wait(int n, MPI_Request* requests, const char* call, const char* what) {
  check(Watchdog::instance().wait(n, requests), call, what);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  if (color < 0) throw std::invalid_argument("dsrt comm: split color must be >= 0, got " + std::to_string(color));
  char what[48];
  std::snprintf(what, sizeof(what), "split color %d", color);
  MPI_Comm out = MPI_COMM_NULL;
  {
    Scope scope(*this, Op::split, what);
    // MPI_Comm_split has no non-blocking form: a watched barrier first, so a rank that never
    // arrives is named instead of hanging inside the split.
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier", what);
    wait(1, &req, "MPI_Ibarrier", what);
    check(MPI_Comm_split(comm_, color, key, &out), "MPI_Comm_split", what);
  }
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(out, name_ + "/" + std::to_string(color), mix(mix(id_, seq_), color)));
}

void MpiCommunicator::all_reduce_sum(float* data, int64_t n, const char* what) {
  require_nonnegative(n, what);
  Scope scope(*this, Op::all_reduce, what);
  int64_t off = 0;
  do {  // at least one call, so a zero-length collective still synchronises like MPI's
    const int c = static_cast<int>(std::min(n - off, max_count_));
    MPI_Request req;
    check(MPI_Iallreduce(MPI_IN_PLACE, data + off, c, MPI_FLOAT, MPI_SUM, comm_, &req), "MPI_Iallreduce", what);
    wait(1, &req, "MPI_Iallreduce", what);
    off += c;
  } while (off < n);
}

void MpiCommunicator::all_gather(const float* send, int64_t n, float* recv, const char* what) {
  require_nonnegative(n, what);
  Scope scope(*this, Op::all_gather, what);
  if (n > max_count_) return all_gather_chunked(send, n, recv, what);
  const void* s = send == recv + rank_ * n ? MPI_IN_PLACE : send;
  MPI_Request req;
  check(MPI_Iallgather(s, static_cast<int>(n), MPI_FLOAT, recv, static_cast<int>(n), MPI_FLOAT, comm_, &req),
        "MPI_Iallgather", what);
  wait(1, &req, "MPI_Iallgather", what);
}

// Chunk [off, off + c) of every rank's block: a type of c floats whose extent is the whole block
// (n floats) places rank r's chunk at recv + r * n + off with 64-bit extents.
void MpiCommunicator::all_gather_chunked(const float* send, int64_t n, float* recv, const char* what) {
  const bool in_place = send == recv + rank_ * n;
  for (int64_t off = 0; off < n; off += max_count_) {
    const int c = static_cast<int>(std::min(n - off, max_count_));
    MPI_Datatype chunk, strided;
    check(MPI_Type_contiguous(c, MPI_FLOAT, &chunk), "MPI_Type_contiguous", what);
    check(MPI_Type_create_resized(chunk, 0, static_cast<MPI_Aint>(n) * sizeof(float), &strided),
          "MPI_Type_create_resized", what);
    MPI_Type_free(&chunk);
    check(MPI_Type_commit(&strided), "MPI_Type_commit", what);
    MPI_Request req;
    const int rc = MPI_Iallgather(in_place ? MPI_IN_PLACE : send + off, c, MPI_FLOAT, recv + off, 1, strided, comm_, &req);
    MPI_Type_free(&strided);  // MPI keeps it alive until the operation completes
    check(rc, "MPI_Iallgather", what);
    wait(1, &req, "MPI_Iallgather", what);
  }
}

void MpiCommunicator::reduce_scatter_sum(const float* send, float* recv, int64_t n, const char* what) {
  require_nonnegative(n, what);
  Scope scope(*this, Op::reduce_scatter, what);
  if (n > max_count_) return reduce_scatter_chunked(send, recv, n, what);
  const void* s = send == recv ? MPI_IN_PLACE : send;
  MPI_Request req;
  check(MPI_Ireduce_scatter_block(s, recv, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_, &req),
        "MPI_Ireduce_scatter_block", what);
  wait(1, &req, "MPI_Ireduce_scatter_block", what);
}

// Large blocks: per chunk, one reduction to each rank (all in flight together).
void MpiCommunicator::reduce_scatter_chunked(const float* send, float* recv, int64_t n, const char* what) {
  const bool in_place = send == recv;
  for (int64_t off = 0; off < n; off += max_count_) {
    const int c = static_cast<int>(std::min(n - off, max_count_));
    requests_.assign(size_, MPI_REQUEST_NULL);
    for (int r = 0; r < size_; ++r) {
      const float* block = send + r * n + off;
      int rc;
      if (r != rank_)
        rc = MPI_Ireduce(block, nullptr, c, MPI_FLOAT, MPI_SUM, r, comm_, &requests_[r]);
      else if (in_place)  // the result stays in our own block; moved to the front below
        rc = MPI_Ireduce(MPI_IN_PLACE, const_cast<float*>(block), c, MPI_FLOAT, MPI_SUM, r, comm_, &requests_[r]);
      else
        rc = MPI_Ireduce(block, recv + off, c, MPI_FLOAT, MPI_SUM, r, comm_, &requests_[r]);
      check(rc, "MPI_Ireduce", what);
    }
    wait(size_, requests_.data(), "MPI_Ireduce", what);
  }
  if (in_place && rank_ != 0) std::memmove(recv, send + rank_ * n, n * sizeof(float));
}

void MpiCommunicator::all_to_all_counts(const int64_t* send, int64_t* recv, const char* what) {
  Scope scope(*this, Op::all_to_all_counts, what);
  const void* s = send == recv ? MPI_IN_PLACE : send;
  MPI_Request req;
  check(MPI_Ialltoall(s, 1, MPI_INT64_T, recv, 1, MPI_INT64_T, comm_, &req), "MPI_Ialltoall", what);
  wait(1, &req, "MPI_Ialltoall", what);
}

void MpiCommunicator::all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets,
                                   void* recv, const int64_t* recv_bytes, const int64_t* recv_offsets,
                                   const char* what) {
  Scope scope(*this, Op::all_to_all_v, what);
  const char* call = post_all_to_all_v(static_cast<const char*>(send), send_bytes, send_offsets,
                                       static_cast<char*>(recv), recv_bytes, recv_offsets, what, ints_, requests_);
  wait(static_cast<int>(requests_.size()), requests_.data(), call, what);
}

const char* MpiCommunicator::post_all_to_all_v(const char* send, const int64_t* send_bytes,
                                               const int64_t* send_offsets, char* recv, const int64_t* recv_bytes,
                                               const int64_t* recv_offsets, const char* what, std::vector<int>& ints,
                                               std::vector<MPI_Request>& requests) {
  bool fits = true;  // MPI_Alltoallv takes int counts and displacements
  for (int r = 0; r < size_; ++r) {
    for (int64_t v : {send_bytes[r], send_offsets[r], recv_bytes[r], recv_offsets[r]}) {
      require_nonnegative(v, what);
      fits &= v <= max_count_;
    }
  }
  requests.clear();
  if (fits) {
    ints.resize(4 * size_);  // [scounts | sdispls | rcounts | rdispls]
    int* sc = ints.data();
    int *sd = sc + size_, *rc = sd + size_, *rd = rc + size_;
    for (int r = 0; r < size_; ++r) {
      sc[r] = static_cast<int>(send_bytes[r]);
      sd[r] = static_cast<int>(send_offsets[r]);
      rc[r] = static_cast<int>(recv_bytes[r]);
      rd[r] = static_cast<int>(recv_offsets[r]);
    }
    requests.push_back(MPI_REQUEST_NULL);
    check(MPI_Ialltoallv(send, sc, sd, MPI_BYTE, recv, rc, rd, MPI_BYTE, comm_, &requests.back()), "MPI_Ialltoallv",
          what);
    return "MPI_Ialltoallv";
  }
  // Counts or offsets beyond max_count_: point-to-point messages of at most max_count_ bytes, all
  // in flight together. Messages between two ranks arrive in order, so chunks (and the messages
  // of several started exchanges, posted in the same order on every rank) match up.
  if (send_bytes[rank_] != recv_bytes[rank_])
    throw std::invalid_argument("dsrt comm: all_to_all_v '" + std::string(what ? what : "") + "' sends " +
                                std::to_string(send_bytes[rank_]) + " bytes to itself but receives " +
                                std::to_string(recv_bytes[rank_]));
  auto post = [&](bool is_send, int peer, int64_t bytes, int64_t offset) {
    int64_t off = 0;
    do {
      const int c = static_cast<int>(std::min(bytes - off, max_count_));
      requests.push_back(MPI_REQUEST_NULL);
      if (is_send)
        check(MPI_Isend(send + offset + off, c, MPI_BYTE, peer, kTagAllToAll, comm_, &requests.back()), "MPI_Isend",
              what);
      else
        check(MPI_Irecv(recv + offset + off, c, MPI_BYTE, peer, kTagAllToAll, comm_, &requests.back()), "MPI_Irecv",
              what);
      off += c;
    } while (off < bytes);
  };
  for (int r = 0; r < size_; ++r)
    if (r != rank_ && recv_bytes[r] > 0) post(false, r, recv_bytes[r], recv_offsets[r]);
  for (int r = 0; r < size_; ++r)
    if (r != rank_ && send_bytes[r] > 0) post(true, r, send_bytes[r], send_offsets[r]);
  if (send_bytes[rank_] > 0) std::memmove(recv + recv_offsets[rank_], send + send_offsets[rank_], send_bytes[rank_]);
  return "MPI_Isend/MPI_Irecv";
}

// Start takes the watchdog's sequence number (the rank has arrived at this exchange, so peers
// waiting for it are not told it is missing) and leaves; the wait re-enters with that number.
int MpiCommunicator::start_all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_offsets,
                                        void* recv, const int64_t* recv_bytes, const int64_t* recv_offsets,
                                        const char* what) {
  int ticket = 0;
  while (ticket < kMaxPending && pending_[ticket].used) ++ticket;
  if (ticket == kMaxPending)
    throw std::logic_error("dsrt comm: more than " + std::to_string(kMaxPending) + " all_to_all_v in flight on " +
                           name_ + " ('" + (what ? what : "") + "')");
  Pending& p = pending_[ticket];
  Scope scope(*this, Op::all_to_all_v, what);
  p.call = post_all_to_all_v(static_cast<const char*>(send), send_bytes, send_offsets, static_cast<char*>(recv),
                             recv_bytes, recv_offsets, what, p.ints, p.requests);
  p.used = true;
  p.seq = seq_;
  std::snprintf(p.what, sizeof(p.what), "%s", what ? what : "");
  return ticket;
}

void MpiCommunicator::wait_all_to_all_v(int ticket) {
  if (ticket < 0 || ticket >= kMaxPending || !pending_[ticket].used)
    throw std::logic_error("dsrt comm: wait on an all_to_all_v that was not started (ticket " +
                           std::to_string(ticket) + ")");
  Pending& p = pending_[ticket];
  p.used = false;  // also when the wait throws: the requests are dead with the job then
  op_ = Op::all_to_all_v;
  seq_ = p.seq;
  Watchdog& wd = Watchdog::instance();
  wd.resume(slot_, p.seq, Op::all_to_all_v, p.what);
  struct Leave {
    MpiCommunicator& c;
    ~Leave() {
      Watchdog::instance().leave();
      c.op_ = Op::none;
    }
  } leave{*this};
  wait(static_cast<int>(p.requests.size()), p.requests.data(), p.call, p.what);
}

void MpiCommunicator::progress() {
  for (Pending& p : pending_) {
    if (!p.used || p.requests.empty()) continue;
    int done = 0;  // completed requests become MPI_REQUEST_NULL; errors surface in the wait
    MPI_Testall(static_cast<int>(p.requests.size()), p.requests.data(), &done, MPI_STATUSES_IGNORE);
  }
}

void MpiCommunicator::broadcast(void* data, int64_t bytes, int root, const char* what) {
  require_nonnegative(bytes, what);
  Scope scope(*this, Op::broadcast, what);
  int64_t off = 0;
  do {
    const int c = static_cast<int>(std::min(bytes - off, max_count_));
    MPI_Request req;
    check(MPI_Ibcast(static_cast<char*>(data) + off, c, MPI_BYTE, root, comm_, &req), "MPI_Ibcast", what);
    wait(1, &req, "MPI_Ibcast", what);
    off += c;
  } while (off < bytes);
}

void MpiCommunicator::barrier(const char* what) {
  Scope scope(*this, Op::barrier, what);
  MPI_Request req;
  check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier", what);
  wait(1, &req, "MPI_Ibarrier", what);
}

}  // namespace dsrt::comm
