#include "runtime/model.h"

#include <algorithm>

#include <fmt/format.h>

#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "runtime/error.h"

namespace dsrt {
namespace {

ExpertPlacement default_placement(const ModelConfig& c, const Ctx& ctx, ExpertPlacement p) {
  if (!p.owners.empty() || c.n_routed_experts == 0) return p;
  return ExpertPlacement::contiguous(c.n_routed_experts, ctx.ep ? ctx.ep->size() : 1);
}

}  // namespace

Overlap parse_overlap(const std::string& s) {
  if (s == "off") return Overlap::Off;
  if (s == "on") return Overlap::On;
  if (s == "auto") return Overlap::Auto;
  throw Error(fmt::format("unknown --overlap '{}' (on, off, auto)", s));
}

Model::Model(ModelWeights weights, Ctx ctx, ExpertPlacement placement, MoeScheme scheme)
    : w_(std::move(weights)),
      ctx_(ctx),
      rope_(w_.config),
      experts_(scheme, default_placement(w_.config, ctx, std::move(placement))) {}

void Model::moe_overlapped(const MoeWeights& w, int64_t layer, const float* x, int64_t T, float* out) {
  const ModelConfig& c = w_.config;
  const int64_t D = c.hidden_size, E = c.n_routed_experts;
  MoeScratch& s = moe_scratch_;
  s.logits.resize(T * E);  // [T, E] gate logits
  linear(ctx_, x, D, T, w.gate, s.logits.data(), E);
  route(c, w.bias, s.logits.data(), T, s.routes, s.route_scratch);
  const bool shared = c.n_shared_experts > 0 && T > 0;
  struct Job {
    const MoeWeights* w;
    const float* x;
    int64_t T, D;
  } job{&w, x, T, D};
  experts_.forward(ctx_, w, layer, x, T, D, s.routes, out, 2, [this, &job] {  // two pointers: no allocation
    if (w_.config.n_shared_experts == 0 || job.T == 0) return;
    moe_scratch_.shared.resize(job.T * job.D);  // [T, D]
    mlp_forward(ctx_, job.w->shared_experts, job.x, job.D, job.T, moe_scratch_.shared.data(), moe_scratch_.mlp);
  });
  if (shared)  // after the routed sum, as moe_forward adds them
    for (int64_t i = 0; i < T * D; ++i) out[i] += s.shared[i];
}

void Model::forward(const std::vector<Chunk>& chunks, LatentKVCache& cache, std::vector<float>& logits,
                    int64_t tokens_per_rank) {
  const ModelConfig& c = w_.config;
  const int64_t D = c.hidden_size, R = c.qk_rope_head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  comm::Communicator* tp = ctx_.tp_size() > 1 ? ctx_.tp : nullptr;

  // Flatten the step: ids [T], positions [T], rows wanted for logits.
  ids_.clear();
  pos_.clear();
  std::vector<int64_t> out_rows;
  for (const Chunk& ch : chunks) {
    if (ch.n <= 0) throw std::logic_error("Model::forward: empty chunk");
    if (ch.start_pos + ch.n > cache.capacity(ch.seq))
      throw std::logic_error(fmt::format("Model::forward: sequence {} holds {} positions, step needs {}", ch.seq,
                                         cache.capacity(ch.seq), ch.start_pos + ch.n));
    for (int64_t i = 0; i < ch.n; ++i) {
      const int32_t id = ch.tokens[i];
      if (id < 0 || id >= c.vocab_size)
        throw Error(fmt::format("token id {} at position {} is outside the vocabulary (vocab_size {})", id,
                                ch.start_pos + i, c.vocab_size));
      if (ch.all_logits || i == ch.n - 1) out_rows.push_back(static_cast<int64_t>(ids_.size()));
      ids_.push_back(id);
      pos_.push_back(TokenPos{ch.seq, ch.start_pos + i});
    }
  }
  const int64_t T = static_cast<int64_t>(ids_.size());
  // Token slices: this rank owns rows [s0, s0 + S) of the step padded to Tp = P * S rows.
  const int64_t P = ctx_.tp_size(), S = (T + P - 1) / P, Tp = S * P, s0 = ctx_.tp_rank() * S;
  const int64_t S_real = std::clamp<int64_t>(T - s0, 0, S);  // rows of the slice that are tokens
  const bool can_split = ctx_.ep && ctx_.ep->size() > 1 && experts_.scheme() == MoeScheme::AllToAll;
  micro_batches_ = can_split && (overlap_ == Overlap::On ||
                                 (overlap_ == Overlap::Auto && (tokens_per_rank >= 0 ? tokens_per_rank : S) >= kOverlapMinTokensPerRank))
                       ? 2
                       : 1;
  h_.assign(Tp * D, 0.0f);  // [Tp, D] residual stream (rows >= T are padding)
  xn_.resize(T * D);        // [T, D] normalised input of attention
  y_.assign(Tp * D, 0.0f);  // [Tp, D] attention output (partial sums over this rank's heads)
  slice_.resize(S * D);     // [S, D] this rank's rows of the residual stream
  xs_.resize(S * D);        // [S, D] normalised FFN input of the slice
  ys_.resize(Tp * D);       // [Tp, D] FFN output (first S rows for the slice paths)
  cos_sin_.resize(T * R);   // [T, R] interleaved cos/sin per token
  for (int64_t t = 0; t < T; ++t) rope_.cos_sin(pos_[t].pos, cos_sin_.data() + t * R);

  // Embedding: this rank holds vocabulary rows [v0, v0 + embed.rows); others contribute zeros.
  const int64_t v0 = w_.embed.row0, vn = w_.embed.rows;
  for (int64_t t = 0; t < T; ++t)
    if (ids_[t] >= v0 && ids_[t] < v0 + vn) kernels::dequantize_rows(w_.embed, ids_[t] - v0, 1, h_.data() + t * D);
  if (tp) tp->all_reduce_sum(h_.data(), Tp * D, "embedding");
  dump("embed", h_.data(), T, D);

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& L = w_.layers[l];
    const std::string what = fmt::format("layer {}", l);
    kernels::rms_norm(h_.data(), D, L.attn_norm.data(), eps, T, D, xn_.data(), D);
    mla_forward(ctx_, c, L.attn, l, xn_.data(), T, pos_.data(), cos_sin_.data(), cache, y_.data(), attn_scratch_);
    // Sum the heads' partial outputs onto this rank's token slice.
    if (tp) tp->reduce_scatter_sum(y_.data(), slice_.data(), S * D, what.c_str());
    else std::copy(y_.begin(), y_.begin() + S * D, slice_.begin());
    kernels::add_rms_norm(slice_.data(), D, h_.data() + s0 * D, D, L.ffn_norm.data(), eps, S, D, xs_.data(), D);
    if (c.is_moe_layer(l)) {
      if (micro_batches_ == 2) moe_overlapped(L.moe, l, xs_.data(), S_real, ys_.data());
      else moe_forward(ctx_, c, L.moe, l, xs_.data(), S_real, ys_.data(), moe_scratch_, experts_);
    } else if (tp) {  // tensor-parallel dense MLP on all rows, partial sums back onto the slices
      xfull_.resize(Tp * D);
      tp->all_gather(xs_.data(), S * D, xfull_.data(), what.c_str());
      mlp_forward(ctx_, L.mlp, xfull_.data(), D, Tp, ys_.data(), mlp_scratch_);
      tp->reduce_scatter_sum(ys_.data(), xs_.data(), S * D, what.c_str());
      std::copy(xs_.begin(), xs_.end(), ys_.begin());
    } else {
      mlp_forward(ctx_, L.mlp, xs_.data(), D, S, ys_.data(), mlp_scratch_);
    }
    for (int64_t i = 0; i < S_real * D; ++i) slice_[i] += ys_[i];
    if (tp) tp->all_gather(slice_.data(), S * D, h_.data(), what.c_str());
    else std::copy(slice_.begin(), slice_.end(), h_.begin());
    dump(fmt::format("layers.{}", l), h_.data(), T, D);
  }

  // Final norm and lm_head on the rows that want logits.
  const int64_t n_out = static_cast<int64_t>(out_rows.size());
  rows_.resize(n_out * D);  // [n_out, D]
  for (int64_t i = 0; i < n_out; ++i)
    kernels::rms_norm(h_.data() + out_rows[i] * D, D, w_.norm.data(), eps, 1, D, rows_.data() + i * D, D);
  dump("final_norm", rows_.data(), n_out, D);
  const int64_t V = c.vocab_size, Vl = w_.head.rows;
  logits.resize(n_out * V);
  if (!tp) {
    linear(ctx_, rows_.data(), D, n_out, w_.head, logits.data(), V);
  } else {
    // Each rank computes its vocabulary slice; gather and interleave into [n_out, V].
    local_logits_.resize(n_out * Vl);
    gathered_.resize(P * n_out * Vl);
    linear(ctx_, rows_.data(), D, n_out, w_.head, local_logits_.data(), Vl);
    tp->all_gather(local_logits_.data(), n_out * Vl, gathered_.data(), "lm_head");
    for (int64_t r = 0; r < P; ++r)
      for (int64_t i = 0; i < n_out; ++i)
        std::copy_n(gathered_.data() + (r * n_out + i) * Vl, Vl, logits.data() + i * V + r * Vl);
  }
  dump("logits", logits.data(), n_out, V);
}

}  // namespace dsrt
