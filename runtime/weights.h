#pragma once
// Model weights: one tensor list (for_each_tensor) that loading, dummy generation, shape
// validation and memory accounting all walk, and the split table of the reference
// implementation that says how each tensor is sharded across ranks.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/weight_view.h"
#include "runtime/config.h"

namespace dsrt {

using kernels::WeightView;

// How a tensor is divided across ranks (the reference's split table):
//   Replicated  every rank holds it whole (wq_a, wkv_a, norms, gate, shared_experts: these
//               run on each rank's own token slice between attention and the next layer)
//   Column      rows of [out, in] split over the tensor-parallel group (wq_b/q_proj, wkv_b, w1, w3)
//   Row         columns of [out, in] split over the tensor-parallel group (wo, w2)
//   Vocab       rows of [vocab, hidden] split over the tensor-parallel group (embedding, lm_head)
//   Expert      held whole by the rank that owns the routed expert, absent elsewhere
enum class Split { Replicated, Column, Row, Vocab, Expert };
const char* split_name(Split s);

// Which part of the model this process holds.
struct ShardSpec {
  int tp_rank = 0, tp_size = 1;
  std::vector<bool> owns_expert;  // [n_routed_experts]; empty = owns all
  bool owns(int64_t expert) const { return owns_expert.empty() || owns_expert[expert]; }
};

// Kinds for memory accounting (dsrt plan, load logs).
enum class WeightKind { Attention, DenseMlp, Router, Experts, SharedExperts, EmbeddingHead, Norms };
constexpr int kNumWeightKinds = 7;
const char* weight_kind_name(WeightKind k);

struct MlpWeights {  // SwiGLU: w2(silu(w1 x) * w3 x)
  WeightView w1;     // [inter, hidden]  gate_proj
  WeightView w3;     // [inter, hidden]  up_proj
  WeightView w2;     // [hidden, inter]  down_proj
};

struct AttentionWeights {
  WeightView wq;                // [heads * qk_head_dim, hidden]  q_proj (q_lora_rank == 0)
  WeightView wq_a;              // [q_lora_rank, hidden]          q_a_proj
  std::vector<float> q_norm;    // [q_lora_rank]                  q_a_layernorm
  WeightView wq_b;              // [heads * qk_head_dim, q_lora_rank]
  WeightView wkv_a;             // [kv_lora_rank + rope_dim, hidden]  kv_a_proj_with_mqa
  std::vector<float> kv_norm;   // [kv_lora_rank]                 kv_a_layernorm
  WeightView wkv_b;             // [heads * (nope_dim + v_dim), kv_lora_rank]
  WeightView wo;                // [hidden, heads * v_dim]        o_proj
};

struct MoeWeights {
  WeightView gate;                  // [n_routed_experts, hidden]
  std::vector<float> bias;          // [n_routed_experts] e_score_correction_bias (noaux_tc), else empty
  std::vector<MlpWeights> experts;  // [n_routed_experts]; views of unowned experts stay empty
  MlpWeights shared_experts;        // inter = n_shared_experts * moe_intermediate_size (if any)
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden] input_layernorm
  std::vector<float> ffn_norm;   // [hidden] post_attention_layernorm
  AttentionWeights attn;
  MlpWeights mlp;                // dense layers
  MoeWeights moe;                // MoE layers
};

// Where a visited tensor goes: a 2-D weight kept in its stored dtype, or a 1-D vector
// converted to f32 (tiny: norms and biases).
struct TensorSlot {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // full, unsharded shape
  Split split;
  WeightKind kind;
  WeightView* view = nullptr;
  std::vector<float>* vec = nullptr;
  bool fp8_allowed = false;    // a projection the FP8 checkpoints store in F8_E4M3
  bool owned = true;           // false: a routed expert another rank holds (visited, not loaded)
};

class WeightStorage;  // owns mappings and buffers the views point into
namespace kernels {
class ThreadPool;
}

struct ModelWeights {
  ModelConfig config;
  ShardSpec shard;
  WeightView embed;          // [vocab / tp, hidden] rows of this rank's vocabulary slice
  std::vector<float> norm;   // [hidden]
  WeightView head;           // [vocab / tp, hidden]
  std::vector<LayerWeights> layers;
  std::shared_ptr<WeightStorage> storage;
  int64_t resident_bytes = 0;    // bytes of weights and scales this process holds
  int64_t checkpoint_bytes = 0;  // bytes the held tensors (full shapes) occupy in the checkpoint
  int64_t bytes_by_kind[kNumWeightKinds] = {};  // resident bytes per WeightKind

  ModelWeights() = default;
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;
  ModelWeights(ModelWeights&&) = default;
  ModelWeights& operator=(ModelWeights&&) = default;
};

// Visits every tensor of the model in a fixed order. Slots bind to fields of w.
void for_each_tensor(ModelWeights& w, const std::function<void(const TensorSlot&)>& fn);

// The rows/columns [begin, end) of a full dimension this shard holds for a split.
struct Range {
  int64_t begin, end;
};
Range shard_range(Split split, int64_t rows, int64_t cols, const ShardSpec& shard, bool along_rows);

// --weight-dtype: the format 2-D weights are held in after loading. Stored keeps the
// checkpoint's dtypes; the others re-quantize every converted tensor (converts_at_load) from
// whatever it is stored in (BF16, F16, F32, FP8 block-scaled: decoded to f32 first), shard by
// shard. FP8 means E4M3 with 128 x 128 block scales as in the released checkpoints; Int8 / Int4
// have one f32 scale per group of kernels::kDefaultGroup elements of a row (kernels/quant.h).
enum class WeightFormat { Stored, BF16, FP8, Int8, Int4 };
WeightFormat parse_weight_format(const std::string& s);  // "stored", "bf16", ...; throws Error
const char* weight_format_name(WeightFormat f);
// Converted: every projection (attention, dense MLP, routed and shared experts) and lm_head.
// Kept as stored: the embedding (a row lookup, no GEMM), the router gate (tiny, and expert
// selection is discrete, so its rounding would flip choices) and the 1-D norms / biases (f32).
bool converts_at_load(const TensorSlot& s);
// converts_at_load(s) and a tensor stored as `stored` is not already in format f.
bool needs_conversion(WeightFormat f, const TensorSlot& s, kernels::DType stored);
// Bytes a [rows, cols] shard occupies in format f (scales included); stored_bytes if Stored or
// if the tensor is not converted.
int64_t held_bytes(WeightFormat f, const TensorSlot& s, kernels::DType stored, int64_t rows, int64_t cols,
                   int64_t stored_bytes);
// v (a shard) in format f, in buffers of storage, if s is converted and not already in that
// format; otherwise v itself. *bytes: the result's element + scale bytes (unchanged if v).
WeightView convert_weight(const TensorSlot& s, const WeightView& v, WeightFormat f, WeightStorage& storage,
                          kernels::ThreadPool* pool, int64_t* bytes);

struct LoadOptions {
  ShardSpec shard;
  int threads = 1;  // for dummy generation and load-time conversion
  WeightFormat weight_format = WeightFormat::Stored;
};
// Loads a Hugging Face checkpoint directory (config.json + safetensors), validating every
// tensor's presence, shape, dtype and FP8 scales. Weights are memory-mapped, not copied.
ModelWeights load_weights(const std::string& dir, const LoadOptions& opt);
// Deterministic random weights of the config's shapes and dtypes (FP8 where the config is
// quantized). Values depend on (seed, tensor name, element index) only, so every sharding
// of the same model sees the same numbers.
ModelWeights dummy_weights(const ModelConfig& config, uint64_t seed, const LoadOptions& opt);

}  // namespace dsrt
