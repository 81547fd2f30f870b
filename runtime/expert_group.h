#pragma once
// The expert-parallel group: routed experts spread over the ranks of an expert-parallel
// communicator, and the exchange that brings each token to the experts it was routed to.
//
//   AllToAll  (default) each rank routes its own tokens; a counts exchange and one
//             MPI_Alltoallv send every token's hidden state once to each rank owning one of its
//             experts; that rank runs its experts grouped per expert (each expert's weights read
//             once for all its tokens) and returns one weighted sum per (token, rank) by a second
//             all-to-all; the source adds them up in rank order.
//             With two micro-batches (forward's `micro_batches`), the exchanges of one overlap
//             the expert compute of the other: dispatch B travels while A's experts run, combine
//             A while B's run, combine B while `local` work (the shared experts) runs.
//   AllReduce the reference's scheme as a baseline: every rank sees every token of the group
//             (all-gather), runs its own experts on all of them, and the partial sums are reduced
//             back onto the token owners (reduce-scatter).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/layers.h"
#include "runtime/moe.h"

namespace dsrt {

struct MoeWeights;

// Which ranks of the expert-parallel group hold each routed expert.
struct ExpertPlacement {
  int ep_size = 1;
  std::vector<std::vector<int>> owners;  // [n_routed_experts] -> ep ranks (more than one: redundant copies)

  // Rank i holds experts [i * E / ep, (i + 1) * E / ep). Throws dsrt::Error if E % ep != 0.
  static ExpertPlacement contiguous(int64_t n_experts, int ep_size);
  // The ep rank that serves expert e for token t (copies share the load).
  int serving_rank(int64_t e, int64_t t) const {
    const auto& o = owners[e];
    return o.size() == 1 ? o[0] : o[static_cast<size_t>(t) % o.size()];
  }
  // owns[e] for ShardSpec::owns_expert.
  std::vector<bool> owned_by(int ep_rank) const;
};

enum class MoeScheme { AllToAll, AllReduce };
MoeScheme parse_moe_scheme(const std::string& s);  // "alltoall" | "allreduce"

// Traffic, time and load since start, for benchmarks and metrics.
struct ExpertStats {
  int64_t bytes_sent = 0, bytes_received = 0;  // expert exchange payload of this rank
  std::vector<int64_t> tokens_per_expert;      // [n_routed_experts], this rank's experts only
  // Per layer index (dense layers stay zero): what this rank sent and received, and the time its
  // thread was blocked in the exchange: dispatch = counts exchange + waiting for the tokens
  // (waiting for the slowest peer included), combine = waiting for the results. With overlap
  // this is the part the compute did not hide.
  struct Layer {
    int64_t bytes_sent = 0, bytes_received = 0, calls = 0;
    double dispatch_s = 0, combine_s = 0;
  };
  std::vector<Layer> layers;
  double exchange_seconds() const {
    double s = 0;
    for (const Layer& l : layers) s += l.dispatch_s + l.combine_s;
    return s;
  }
};

class ExpertGroup {
 public:
  ExpertGroup(MoeScheme scheme, ExpertPlacement placement);
  // out[T, hidden] = Σ_i weight_i · expert_i(x[t]) for this rank's T tokens (T may be 0: the
  // rank still takes part in the exchange). Every rank of ctx.ep must call it in the same layer
  // with the same micro_batches (1 or 2; 2 only changes the all-to-all scheme). `local`, if set,
  // runs once on this rank: while the last combine travels, or at the end.
  void forward(const Ctx& ctx, const MoeWeights& w, int64_t layer, const float* x, int64_t T, int64_t D,
               const Routes& routes, float* out, int micro_batches = 1, const std::function<void()>& local = {});
  // The all-to-all exchange alone (benchmarks, tests), `experts` standing in for this rank's
  // experts: it gets n received records [n, D + 2k] (hidden state, k expert ids as int32 with -1
  // for experts served elsewhere, k weights) and writes their sums [n, D]. Same collectives,
  // order and stats as forward with the AllToAll scheme; ep must have placement().ep_size ranks.
  using RecordFn = std::function<void(const float* records, int64_t n, float* result)>;
  void exchange(comm::Communicator& ep, int64_t layer, const float* x, int64_t T, int64_t D, const Routes& routes,
                float* out, int micro_batches, const RecordFn& experts);
  const ExpertStats& stats() const { return stats_; }
  const ExpertPlacement& placement() const { return placement_; }
  MoeScheme scheme() const { return scheme_; }

 private:
  // out[N, D] = Σ over the pairs (ids[n, i], weights[n, i]) with ids >= 0 of weight · expert(x[n]).
  void run_local(const Ctx& ctx, const MoeWeights& w, const float* x, int64_t ldx, int64_t N, int64_t D, int64_t k,
                 const int32_t* ids, int64_t ld_ids, const float* weights, int64_t ld_w, float* out);
  // One micro-batch's exchange: tokens [t0, t0 + T) of the layer. Its buffers and the count
  // arrays MPI reads stay untouched while its all-to-all is in flight.
  struct MicroBatch {
    int64_t t0 = 0, T = 0, n_send = 0, n_recv = 0;
    int ticket = -1;
    std::vector<float> send, recv, result, back;  // records out, records in, sums out, sums back
    std::vector<int32_t> src_token;               // [n_send] token of each record sent
    std::vector<int64_t> send_n, recv_n, send_off, recv_off;  // [P] records per peer, offsets
    std::vector<int64_t> bytes;                   // [8P] dispatch then combine: sb, so, rb, ro
  };
  // Experts(records, n, result) computes one micro-batch's received records.
  template <class Experts>
  void all_to_all(comm::Communicator& ep, int64_t layer, const float* x, int64_t T, int64_t D, const Routes& r,
                  float* out, int micro_batches, const Experts& experts, const std::function<void()>& local);
  void pack(MicroBatch& m, int P, const float* x, int64_t D, const Routes& r);
  void start_dispatch(comm::Communicator& ep, MicroBatch& m, int64_t rec, const char* what);
  void start_combine(comm::Communicator& ep, MicroBatch& m, int64_t D, const char* what);
  void all_reduce(const Ctx& ctx, const MoeWeights& w, int64_t layer, const float* x, int64_t T, int64_t D,
                  const Routes& r, float* out);

  MoeScheme scheme_;
  ExpertPlacement placement_;
  ExpertStats stats_;
  // Reused buffers.
  std::vector<float> send_, recv_, back_, result_, xs_, ys_, mlp_;
  std::vector<int32_t> ids_, order_, offsets_, fill_;
  std::vector<uint8_t> written_;  // [T] combine: out row t holds a sum
  std::vector<int64_t> send_n_, recv_n_, counts2_;
  MicroBatch mb_[2];
  comm::Communicator* progress_ = nullptr;  // set while exchanges are in flight during run_local
};

}  // namespace dsrt
