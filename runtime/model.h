#pragma once
// The DeepSeek-V2/V3 transformer: embedding, layers of MLA + (dense MLP | MoE), final norm,
// lm_head. One step runs any mix of sequences: prefill chunks of many positions and
// single-token decodes, each against its own part of the latent cache.
//
// Across ranks (ctx.tp, ctx.ep): every rank of a tensor-parallel group holds the whole residual
// stream [T, hidden] of its sequences and runs attention on its heads; the partial outputs of
// wo are reduce-scattered so each rank owns a slice of the tokens; the FFN runs on the slice
// (routed experts through the expert group's all-to-all, shared experts locally, dense MLPs
// tensor-parallel); an all-gather rebuilds the residual stream before the next attention.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/attention.h"
#include "runtime/expert_group.h"
#include "runtime/kv_cache.h"
#include "runtime/layers.h"
#include "runtime/moe.h"
#include "runtime/weights.h"

namespace dsrt {

// Receives named intermediates ("embed", "layers.3.attn_out", "layers.3" = residual stream
// after block 3, "final_norm", "logits") as [rows, cols] f32 for diffing against the reference.
// Micro-batch overlap of the expert exchange with compute (runtime/expert_group.h): Off; On for
// every MoE layer of every step (with ep > 1 and the all-to-all scheme); Auto: only in steps
// with at least kOverlapMinTokensPerRank tokens per rank (prefill). Each micro-batch reads its
// experts' weights again, so in decode steps, where reading weights is the cost, splitting is
// slower than the exchange it hides (measured on the emulated 2-node cluster, bench/README.md).
constexpr int64_t kOverlapMinTokensPerRank = 64;
enum class Overlap { Off, On, Auto };
Overlap parse_overlap(const std::string& s);  // "off" | "on" | "auto"; throws dsrt::Error

using DumpFn = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

class Model {
 public:
  // placement: which expert-parallel rank holds each routed expert (default: contiguous ranges
  // over ctx.ep); it must match the experts in `weights`.
  Model(ModelWeights weights, Ctx ctx, ExpertPlacement placement = {}, MoeScheme scheme = MoeScheme::AllToAll);
  const ModelConfig& config() const { return w_.config; }
  const ModelWeights& weights() const { return w_; }
  const ExpertGroup& experts() const { return experts_; }

  struct Chunk {
    LatentKVCache::SeqId seq;
    int64_t start_pos;      // position of tokens[0]; the cache holds positions < start_pos
    const int32_t* tokens;  // [n]
    int64_t n;
    bool all_logits;        // logits for every token, else only for the last
  };
  // Runs one step. logits becomes [rows, vocab]: per chunk in order, all its tokens or its last.
  // The cache must already hold room for every chunk's positions. Throws dsrt::Error on a token
  // id outside the vocabulary. Every rank of the job calls it each step, with its group's
  // chunks (possibly none: the rank still takes part in the collectives).
  // tokens_per_rank: the step's tokens over all data-parallel groups divided by the world size,
  // equal on every rank (the Auto overlap decision must be the same on all ranks of the expert
  // group); -1: these chunks are the whole step (one data-parallel group).
  void forward(const std::vector<Chunk>& chunks, LatentKVCache& cache, std::vector<float>& logits,
               int64_t tokens_per_rank = -1);

  void set_dump(DumpFn fn) { dump_ = std::move(fn); }
  void set_overlap(Overlap o) { overlap_ = o; }
  Overlap overlap() const { return overlap_; }
  // Micro-batches of the last step's MoE layers (1 or 2).
  int last_micro_batches() const { return micro_batches_; }

 private:
  void dump(const std::string& name, const float* data, int64_t rows, int64_t cols) const {
    if (dump_) dump_(name, data, rows, cols);
  }
  ModelWeights w_;
  Ctx ctx_;
  Rope rope_;
  ExpertGroup experts_;
  // moe_forward with the routed experts in two micro-batches and the shared experts computed
  // while the last combine travels.
  void moe_overlapped(const MoeWeights& w, int64_t layer, const float* x, int64_t T, float* out);
  DumpFn dump_;
  Overlap overlap_ = Overlap::Auto;
  int micro_batches_ = 1;
  // Step scratch: grows to the largest step and is reused.
  std::vector<float> h_, xn_, y_, slice_, xs_, ys_, xfull_, cos_sin_, rows_, local_logits_, gathered_;
  std::vector<int32_t> ids_;
  std::vector<TokenPos> pos_;
  AttentionScratch attn_scratch_;
  MoeScratch moe_scratch_;
  std::vector<float> mlp_scratch_;
};

}  // namespace dsrt
