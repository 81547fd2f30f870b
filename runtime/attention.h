#pragma once
// Multi-head latent attention (MLA) in the absorbed form of the reference: queries are
// projected into the latent space through wkv_b's key half, attention runs over the latent
// cache (kv_lora_rank normalised values + qk_rope_head_dim rotated shared key per token), and
// the result leaves the latent space through wkv_b's value half, then wo.
#include <cstdint>
#include <vector>

#include "runtime/config.h"
#include "runtime/kv_cache.h"
#include "runtime/layers.h"

namespace dsrt {

struct AttentionWeights;

// Decoupled rotary embedding with YaRN: per-pair inverse frequencies (ramped between
// interpolation and extrapolation) and the cos/sin magnitude correction.
class Rope {
 public:
  explicit Rope(const ModelConfig& c);
  // out[2i] = cos, out[2i + 1] = sin of pos * inv_freq[i], for i < qk_rope_head_dim / 2.
  void cos_sin(int64_t pos, float* out) const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  std::vector<float> inv_freq_;
  float mscale_ = 1.0f;
};

// Where each token of a step lives in the cache.
struct TokenPos {
  LatentKVCache::SeqId seq;
  int64_t pos;
};

struct AttentionScratch {
  std::vector<float> qa, q, kv, qc, o_lat, o;
  // latent_attention work: query row ranges [r0, r1) over blocks[first_block, + n_blocks)
  struct Unit {
    int64_t r0, r1, first_block, n_blocks;
  };
  std::vector<Unit> units;
  std::vector<const float*> blocks;
  std::vector<int64_t> last;               // [T · H] position each query row sees up to
  std::vector<std::vector<float>> scores;  // kernel scratch, one per thread
};

// out[T, hidden] = attention of the normalised input x[T, hidden] over this rank's heads: a
// partial sum the caller reduces over the tensor-parallel group. Writes the step's tokens into
// the cache before attending, so a token sees every earlier position of its sequence and itself.
void mla_forward(const Ctx& ctx, const ModelConfig& c, const AttentionWeights& w, int64_t layer, const float* x,
                 int64_t T, const TokenPos* tokens, const float* cos_sin, LatentKVCache& cache, float* out,
                 AttentionScratch& s);

}  // namespace dsrt
