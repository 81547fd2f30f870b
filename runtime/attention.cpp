#include "runtime/attention.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "runtime/weights.h"

namespace dsrt {
namespace {

double yarn_mscale(double factor, double m) { return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

// The dimension index at which a frequency completes `rotations` turns over `max_pos`.
double correction_dim(double rotations, int64_t dim, double base, int64_t max_pos) {
  return dim * std::log(max_pos / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
}

template <typename T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// fn(h, pool) for every head. A head's slice of wkv_b is too small to split well (decode: 128 x 512),
// so with at least as many heads as threads the heads are spread over the pool, each product
// single-threaded; otherwise the pool goes to each product.
template <class Fn>
void per_head(const Ctx& ctx, int64_t H, const Fn& fn) {
  if (!ctx.pool || ctx.pool->size() <= 1 || H < ctx.pool->size()) {
    for (int64_t h = 0; h < H; ++h) fn(h, ctx.pool);
    return;
  }
  ctx.pool->parallel_for(H, 1, [&fn](int64_t b, int64_t e, int) {
    for (int64_t h = b; h < e; ++h) fn(h, nullptr);
  });
}

// o_lat[T·H, C] from qc[T·H, C + R]: each run of consecutive tokens of one sequence is one
// latent_attention problem (rows t·H + h, last = the token's position), cut into units of up to
// 64 rows (a kernel tile) and at least two units when that is all the work, so batch-1 decode
// still uses both threads. Units are dealt round-robin: a causal prefill's later rows cost more,
// and contiguous shares would give the last thread most of the work.
void latent_attention(const Ctx& ctx, LatentKVCache& cache, int64_t layer, int64_t T, int64_t H, int64_t C,
                      const TokenPos* tokens, float scale, AttentionScratch& s) {
  const int64_t DK = cache.dim(), bs = cache.block_size();
  const int nthreads = ctx.pool ? ctx.pool->size() : 1;
  const int64_t U = std::clamp<int64_t>((T * H + nthreads - 1) / nthreads, 1, 64);
  grow(s.last, T * H);
  s.units.clear();
  s.blocks.clear();
  for (int64_t t0 = 0; t0 < T;) {
    int64_t t1 = t0 + 1, max_pos = tokens[t0].pos;
    while (t1 < T && tokens[t1].seq == tokens[t0].seq) max_pos = std::max(max_pos, tokens[t1++].pos);
    const int64_t first_block = static_cast<int64_t>(s.blocks.size()), n_blocks = max_pos / bs + 1;
    for (int64_t b = 0; b < n_blocks; ++b) s.blocks.push_back(cache.row(tokens[t0].seq, layer, b * bs));
    for (int64_t t = t0; t < t1; ++t) std::fill_n(s.last.data() + t * H, H, tokens[t].pos);
    for (int64_t r = t0 * H; r < t1 * H; r += U)
      s.units.push_back({r, std::min(t1 * H, r + U), first_block, n_blocks});
    t0 = t1;
  }
  if (s.scores.size() < static_cast<size_t>(nthreads)) s.scores.resize(nthreads);
  const size_t need = kernels::latent_attention_scratch_floats(U, bs, DK);
  auto work = [&](int64_t thread) {
    std::vector<float>& sc = s.scores[thread];
    grow(sc, need);
    for (size_t i = thread; i < s.units.size(); i += nthreads) {
      const AttentionScratch::Unit& u = s.units[i];
      kernels::latent_attention(s.qc.data() + u.r0 * DK, DK, u.r1 - u.r0, s.last.data() + u.r0,
                                s.blocks.data() + u.first_block, u.n_blocks, bs, DK, DK, C, scale,
                                s.o_lat.data() + u.r0 * C, C, sc.data());
    }
  };
  if (nthreads > 1 && s.units.size() > 1)
    ctx.pool->parallel_for(nthreads, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t th = b; th < e; ++th) work(th);
    });
  else
    work(0);
}

}  // namespace

Rope::Rope(const ModelConfig& c) {
  const int64_t dim = c.qk_rope_head_dim, half = dim / 2;
  inv_freq_.resize(half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq_[i] = static_cast<float>(1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / dim));
  if (!c.yarn) return;
  const YarnScaling& y = *c.yarn;
  double low = std::floor(correction_dim(y.beta_fast, dim, c.rope_theta, y.original_max_position_embeddings));
  double high = std::ceil(correction_dim(y.beta_slow, dim, c.rope_theta, y.original_max_position_embeddings));
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    // ramp 0 below `low` (extrapolate: keep the frequency), 1 above `high` (interpolate: / factor)
    float ramp = std::clamp(static_cast<float>((i - low) / (high - low)), 0.0f, 1.0f);
    float keep = 1.0f - ramp;
    inv_freq_[i] = inv_freq_[i] / static_cast<float>(y.factor) * (1.0f - keep) + inv_freq_[i] * keep;
  }
  mscale_ = static_cast<float>(yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim));
}

void Rope::cos_sin(int64_t pos, float* out) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    float angle = static_cast<float>(pos) * inv_freq_[i];  // f32 product, as the reference
    out[2 * i] = std::cos(angle) * mscale_;
    out[2 * i + 1] = std::sin(angle) * mscale_;
  }
}

void mla_forward(const Ctx& ctx, const ModelConfig& c, const AttentionWeights& w, int64_t layer, const float* x,
                 int64_t T, const TokenPos* tokens, const float* cos_sin, LatentKVCache& cache, float* out,
                 AttentionScratch& s) {
  const int64_t D = c.hidden_size, C = c.kv_lora_rank, R = c.qk_rope_head_dim, NOPE = c.qk_nope_head_dim,
                V = c.v_head_dim, QK = c.qk_head_dim();
  const int64_t H = w.wkv_b.rows / (NOPE + V);  // this rank's heads
  const float scale = static_cast<float>(c.softmax_scale());

  // q: [T, H, QK] (nope part then rope part per head)
  grow(s.q, T * H * QK);
  if (c.q_lora_rank > 0) {
    grow(s.qa, T * c.q_lora_rank);  // [T, q_lora_rank]
    linear(ctx, x, D, T, w.wq_a, s.qa.data(), c.q_lora_rank);
    kernels::rms_norm(s.qa.data(), c.q_lora_rank, w.q_norm.data(), static_cast<float>(c.rms_norm_eps), T,
                      c.q_lora_rank, s.qa.data(), c.q_lora_rank);
    linear(ctx, s.qa.data(), c.q_lora_rank, T, w.wq_b, s.q.data(), H * QK);
  } else {
    linear(ctx, x, D, T, w.wq, s.q.data(), H * QK);
  }
  // kv: [T, C + R] -> cache rows: kv_norm(latent) and rope(k_pe)
  // qc: [T, H, C + R] query rows of the latent attention, [q_abs | q_pe] (q_pe copied here)
  const int64_t DK = C + R;
  grow(s.kv, T * DK);
  grow(s.qc, T * H * DK);
  linear(ctx, x, D, T, w.wkv_a, s.kv.data(), DK);
  for (int64_t t = 0; t < T; ++t) {
    float* row = cache.row(tokens[t].seq, layer, tokens[t].pos);  // [C + R]
    const float* kv = s.kv.data() + t * DK;
    kernels::rms_norm(kv, C, w.kv_norm.data(), static_cast<float>(c.rms_norm_eps), 1, C, row, C);
    std::copy(kv + C, kv + DK, row + C);
    kernels::rope_interleaved(row + C, cos_sin + t * R, R / 2);
    for (int64_t h = 0; h < H; ++h) {
      float* qpe = s.q.data() + (t * H + h) * QK + NOPE;  // [R]
      kernels::rope_interleaved(qpe, cos_sin + t * R, R / 2);
      std::copy(qpe, qpe + R, s.qc.data() + (t * H + h) * DK + C);
    }
  }
  // q_abs: [T, H, C] (in qc) = q_nope[T, H, NOPE] · wkv_b[h, :NOPE, :]  (absorb the key half of wkv_b)
  per_head(ctx, H, [&](int64_t h, kernels::ThreadPool* pool) {
    kernels::gemm_nn(s.q.data() + h * QK, H * QK, T, w.wkv_b.row_slice(h * (NOPE + V), NOPE), s.qc.data() + h * DK,
                     H * DK, pool);
  });

  // o_lat: [T, H, C] = softmax(scale · qc · cacheᵀ) · latent, causal per sequence
  grow(s.o_lat, T * H * C);
  latent_attention(ctx, cache, layer, T, H, C, tokens, scale, s);

  // o: [T, H, V] = o_lat · wkv_b[h, NOPE:, :]ᵀ  (the value half), then wo
  grow(s.o, T * H * V);
  per_head(ctx, H, [&](int64_t h, kernels::ThreadPool* pool) {
    kernels::gemm_nt(s.o_lat.data() + h * C, H * C, T, w.wkv_b.row_slice(h * (NOPE + V) + NOPE, V), s.o.data() + h * V,
                     H * V, pool);
  });
  linear(ctx, s.o.data(), H * V, T, w.wo, out, D);  // partial sum over this rank's heads
}

}  // namespace dsrt
