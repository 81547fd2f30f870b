#include "runtime/weights.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <sys/mman.h>
#include <unistd.h>

#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "kernels/threadpool.h"
#include "runtime/error.h"
#include "runtime/weight_storage.h"

namespace dsrt {

const char* split_name(Split s) {
  switch (s) {
    case Split::Replicated: return "replicated";
    case Split::Column: return "column";
    case Split::Row: return "row";
    case Split::Vocab: return "vocab";
    case Split::Expert: return "expert";
  }
  return "?";
}

const char* weight_kind_name(WeightKind k) {
  static const char* names[] = {"attention", "dense_mlp", "router", "experts", "shared_experts", "embedding_head",
                                "norms"};
  return names[static_cast<int>(k)];
}

void for_each_tensor(ModelWeights& w, const std::function<void(const TensorSlot&)>& fn) {
  const ModelConfig& c = w.config;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, C = c.kv_lora_rank, R = c.qk_rope_head_dim;
  auto view = [&](std::string name, std::vector<int64_t> shape, Split split, WeightKind kind, WeightView* v,
                  bool fp8, bool owned = true) {
    fn(TensorSlot{std::move(name), std::move(shape), split, kind, v, nullptr, fp8, owned});
  };
  auto vec = [&](std::string name, int64_t n, WeightKind kind, std::vector<float>* v) {
    fn(TensorSlot{std::move(name), {n}, Split::Replicated, kind, nullptr, v, false, true});
  };
  auto mlp = [&](const std::string& p, int64_t inter, WeightKind kind, MlpWeights& m, Split in_split,
                 Split out_split, bool owned) {
    view(p + "gate_proj.weight", {inter, D}, in_split, kind, &m.w1, true, owned);
    view(p + "up_proj.weight", {inter, D}, in_split, kind, &m.w3, true, owned);
    view(p + "down_proj.weight", {D, inter}, out_split, kind, &m.w2, true, owned);
  };

  view("model.embed_tokens.weight", {c.vocab_size, D}, Split::Vocab, WeightKind::EmbeddingHead, &w.embed, false);
  w.layers.resize(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    vec(p + "input_layernorm.weight", D, WeightKind::Norms, &L.attn_norm);
    const std::string a = p + "self_attn.";
    if (c.q_lora_rank > 0) {
      view(a + "q_a_proj.weight", {c.q_lora_rank, D}, Split::Replicated, WeightKind::Attention, &L.attn.wq_a, true);
      vec(a + "q_a_layernorm.weight", c.q_lora_rank, WeightKind::Norms, &L.attn.q_norm);
      view(a + "q_b_proj.weight", {H * c.qk_head_dim(), c.q_lora_rank}, Split::Column, WeightKind::Attention,
           &L.attn.wq_b, true);
    } else {
      view(a + "q_proj.weight", {H * c.qk_head_dim(), D}, Split::Column, WeightKind::Attention, &L.attn.wq, true);
    }
    view(a + "kv_a_proj_with_mqa.weight", {C + R, D}, Split::Replicated, WeightKind::Attention, &L.attn.wkv_a, true);
    vec(a + "kv_a_layernorm.weight", C, WeightKind::Norms, &L.attn.kv_norm);
    view(a + "kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), C}, Split::Column, WeightKind::Attention,
         &L.attn.wkv_b, true);
    view(a + "o_proj.weight", {D, H * c.v_head_dim}, Split::Row, WeightKind::Attention, &L.attn.wo, true);
    vec(p + "post_attention_layernorm.weight", D, WeightKind::Norms, &L.ffn_norm);
    if (c.is_moe_layer(l)) {
      MoeWeights& m = L.moe;
      view(p + "mlp.gate.weight", {c.n_routed_experts, D}, Split::Replicated, WeightKind::Router, &m.gate, false);
      if (c.topk_method == TopkMethod::NoauxTc)
        vec(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts, WeightKind::Router, &m.bias);
      m.experts.resize(c.n_routed_experts);
      for (int64_t e = 0; e < c.n_routed_experts; ++e)
        mlp(fmt::format("{}mlp.experts.{}.", p, e), c.moe_intermediate_size, WeightKind::Experts, m.experts[e],
            Split::Expert, Split::Expert, w.shard.owns(e));
      if (c.n_shared_experts > 0)
        // Replicated, unlike the reference: they run locally on each rank's token slice.
        mlp(p + "mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size, WeightKind::SharedExperts,
            m.shared_experts, Split::Replicated, Split::Replicated, true);
    } else {
      mlp(p + "mlp.", c.intermediate_size, WeightKind::DenseMlp, L.mlp, Split::Column, Split::Row, true);
    }
  }
  vec("model.norm.weight", D, WeightKind::Norms, &w.norm);
  if (!c.tie_word_embeddings)
    view("lm_head.weight", {c.vocab_size, D}, Split::Vocab, WeightKind::EmbeddingHead, &w.head, false);
}

WeightFormat parse_weight_format(const std::string& s) {
  for (WeightFormat f : {WeightFormat::Stored, WeightFormat::BF16, WeightFormat::FP8, WeightFormat::Int8,
                         WeightFormat::Int4})
    if (s == weight_format_name(f)) return f;
  throw Error(fmt::format("--weight-dtype: unknown format '{}' (stored, bf16, fp8, int8 or int4)", s));
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Stored: return "stored";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::FP8: return "fp8";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
  }
  return "?";
}

bool converts_at_load(const TensorSlot& s) {
  return s.view && (s.fp8_allowed || s.name == "lm_head.weight");
}

namespace {

kernels::DType target_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::BF16: return kernels::DType::BF16;
    case WeightFormat::FP8: return kernels::DType::F8_E4M3;
    case WeightFormat::Int8: return kernels::DType::I8;
    case WeightFormat::Int4: return kernels::DType::I4;
    case WeightFormat::Stored: break;
  }
  return kernels::DType::F32;
}

}  // namespace

bool needs_conversion(WeightFormat f, const TensorSlot& s, kernels::DType stored) {
  return f != WeightFormat::Stored && converts_at_load(s) && stored != target_dtype(f);
}

int64_t held_bytes(WeightFormat f, const TensorSlot& s, kernels::DType stored, int64_t rows, int64_t cols,
                   int64_t stored_bytes) {
  if (!needs_conversion(f, s, stored)) return stored_bytes;
  return kernels::quant_layout(target_dtype(f), rows, cols).bytes();
}

WeightView convert_weight(const TensorSlot& s, const WeightView& v, WeightFormat f, WeightStorage& storage,
                          kernels::ThreadPool* pool, int64_t* bytes) {
  if (!needs_conversion(f, s, v.dtype)) return v;
  const kernels::DType to = target_dtype(f);
  const kernels::QuantLayout l = kernels::quant_layout(to, v.rows, v.cols);
  void* data = storage.allocate(std::max<int64_t>(l.data_bytes, 1));
  float* scales = l.scale_rows > 0 ? storage.allocate_floats(l.scale_rows * l.scale_ld) : nullptr;
  *bytes = l.bytes();
  return kernels::quantize_view(v, to, kernels::kDefaultGroup, data, scales, pool);
}

Range shard_range(Split split, int64_t rows, int64_t cols, const ShardSpec& s, bool along_rows) {
  int64_t n = along_rows ? rows : cols;
  bool split_here = (along_rows && (split == Split::Column || split == Split::Vocab)) ||
                    (!along_rows && split == Split::Row);
  if (!split_here || s.tp_size == 1) return {0, n};
  int64_t per = n / s.tp_size;
  return {s.tp_rank * per, (s.tp_rank + 1) * per};
}

namespace {

// Reads one byte per page so the mapping is resident and load time is measured here.
int64_t prefault(const WeightView& v) {
  const int64_t esz = static_cast<int64_t>(kernels::dtype_size(v.dtype));
  const bool contiguous = v.ld == v.cols;
  const int64_t run = contiguous ? v.rows * v.cols * esz : v.cols * esz;
  volatile uint8_t sink = 0;
  for (int64_t r = 0; r < (contiguous ? 1 : v.rows); ++r) {
    const uint8_t* p = static_cast<const uint8_t*>(v.data) + r * v.ld * esz;
    for (int64_t off = 0; off < run; off += 4096) sink = sink + p[off];
    if (run > 0) sink = sink + p[run - 1];
  }
  return v.rows * v.cols * esz;
}

// Drops the file pages wholly inside [p, p + n) from this process (a converted tensor's source
// is not read again), so resident memory counts the converted copy only.
void release_pages(const void* p, int64_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(n)) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

void to_f32(const TensorInfo& t, std::vector<float>& out) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  out.resize(n);
  kernels::WeightView v{t.dtype, t.data, 1, n, n};
  kernels::dequantize_rows(v, 0, 1, out.data());
}

// Layer index of "model.layers.N.<...>", or -1.
int64_t layer_of(const std::string& name) {
  static const std::string pre = "model.layers.";
  if (name.rfind(pre, 0) != 0) return -1;
  size_t end = name.find('.', pre.size());
  try {
    return std::stoll(name.substr(pre.size(), end - pre.size()));
  } catch (...) {
    return -1;
  }
}

void check_divisible(const ModelConfig& c, const ShardSpec& s) {
  if (s.tp_size <= 1) return;
  auto need = [&](int64_t v, const char* what) {
    if (v % s.tp_size)
      throw Error(fmt::format("{} {} is not divisible by tensor_parallel {}", what, v, s.tp_size));
  };
  need(c.num_attention_heads, "num_attention_heads");
  need(c.vocab_size, "vocab_size");
  need(c.intermediate_size, "intermediate_size");
}

}  // namespace

ModelWeights load_weights(const std::string& dir, const LoadOptions& opt) {
  ModelWeights w;
  w.config = load_model_config(dir);
  w.shard = opt.shard;
  check_divisible(w.config, w.shard);
  auto storage = std::make_shared<WeightStorage>();
  storage->checkpoint = std::make_unique<Checkpoint>(dir);
  const Checkpoint& ckpt = *storage->checkpoint;
  const ModelConfig& c = w.config;
  spdlog::info("model: {}", c.summary());
  std::unique_ptr<kernels::ThreadPool> pool;  // for --weight-dtype conversions
  if (opt.weight_format != WeightFormat::Stored) {
    pool = std::make_unique<kernels::ThreadPool>(std::max(1, opt.threads));
    spdlog::info("--weight-dtype {}: converting projections and lm_head at load", weight_format_name(opt.weight_format));
  }

  std::set<std::string> known;
  int64_t n_slots = 0, total_bytes = 0;
  for_each_tensor(w, [&](const TensorSlot& s) {
    if (!s.owned) return;
    ++n_slots;
    if (const TensorInfo* t = ckpt.find(s.name)) total_bytes += t->nbytes;
  });

  const auto t0 = std::chrono::steady_clock::now();
  auto last_log = t0;
  int64_t done_tensors = 0, done_bytes = 0;
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  for_each_tensor(w, [&](const TensorSlot& s) {
    known.insert(s.name);
    if (s.view) known.insert(s.name + "_scale_inv");
    if (!s.owned) return;
    const TensorInfo* t = ckpt.find(s.name);
    if (!t) throw Error(fmt::format("{}: tensor '{}' is missing (config.json expects shape {})", dir, s.name, shape_str(s.shape)));
    if (t->shape != s.shape)
      throw Error(fmt::format("{}: tensor '{}' has shape {} but config.json implies {}", t->file, s.name,
                              shape_str(t->shape), shape_str(s.shape)));
    const bool is_float = t->dtype_str == "BF16" || t->dtype_str == "F16" || t->dtype_str == "F32";
    const bool is_fp8 = t->dtype_str == "F8_E4M3";
    if (s.vec) {
      if (!is_float)
        throw Error(fmt::format("{}: tensor '{}' has dtype {}; expected BF16, F16 or F32", t->file, s.name, t->dtype_str));
      to_f32(*t, *s.vec);
      w.resident_bytes += static_cast<int64_t>(s.vec->size() * sizeof(float));
      w.checkpoint_bytes += t->nbytes;
      w.bytes_by_kind[static_cast<int>(s.kind)] += static_cast<int64_t>(s.vec->size() * sizeof(float));
      ++done_tensors;
      done_bytes += t->nbytes;
      return;
    }
    if (!is_float && !is_fp8)
      throw Error(fmt::format("{}: tensor '{}' has dtype {}; expected BF16, F16, F32 or F8_E4M3", t->file, s.name,
                              t->dtype_str));
    if (is_fp8 && !(s.fp8_allowed && c.fp8))
      throw Error(fmt::format("{}: tensor '{}' is F8_E4M3 but {}", t->file, s.name,
                              c.fp8 ? "only projection weights may be FP8" : "config.json has no fp8 quantization_config"));
    const int64_t rows = s.shape[0], cols = s.shape[1];
    WeightView full{t->dtype, t->data, rows, cols, cols};
    int64_t scale_bytes = 0;
    if (is_fp8) {
      const std::string sname = s.name + "_scale_inv";
      const TensorInfo* st = ckpt.find(sname);
      if (!st) throw Error(fmt::format("{}: FP8 tensor '{}' has no '{}'", t->file, s.name, sname));
      const std::vector<int64_t> sshape = {(rows + c.fp8_block_rows - 1) / c.fp8_block_rows,
                                           (cols + c.fp8_block_cols - 1) / c.fp8_block_cols};
      if (st->shape != sshape || st->dtype_str != "F32")
        throw Error(fmt::format("{}: '{}' is {} {} but a {} weight with {}x{} blocks needs F32 {}", st->file, sname,
                                st->dtype_str, shape_str(st->shape), shape_str(s.shape), c.fp8_block_rows,
                                c.fp8_block_cols, shape_str(sshape)));
      float* sc = storage->allocate_floats(sshape[0] * sshape[1]);
      std::memcpy(sc, st->data, st->nbytes);  // copied: the file gives no alignment guarantee
      full.scale = sc;
      full.scale_ld = sshape[1];
      full.block_rows = c.fp8_block_rows;
      full.block_cols = c.fp8_block_cols;
      scale_bytes = st->nbytes;
    }
    const Range rr = shard_range(s.split, rows, cols, w.shard, true);
    const Range cr = shard_range(s.split, rows, cols, w.shard, false);
    WeightView v = full.row_slice(rr.begin, rr.end - rr.begin).col_slice(cr.begin, cr.end - cr.begin);
    const size_t esz = kernels::dtype_size(v.dtype);
    if (reinterpret_cast<uintptr_t>(v.data) % esz) {  // misaligned in the file: copy the shard
      uint8_t* buf = storage->allocate(v.rows * v.cols * static_cast<int64_t>(esz));
      for (int64_t r = 0; r < v.rows; ++r)
        std::memcpy(buf + r * v.cols * esz, static_cast<const uint8_t*>(v.data) + r * v.ld * esz, v.cols * esz);
      v.data = buf;
      v.ld = v.cols;
    }
    int64_t held = 0;
    const WeightView converted = convert_weight(s, v, opt.weight_format, *storage, pool.get(), &held);
    if (converted.data != v.data) {
      v = converted;
      release_pages(t->data, t->nbytes);
    } else {
      held = prefault(v) + scale_bytes;
    }
    *s.view = v;
    w.resident_bytes += held;
    w.checkpoint_bytes += t->nbytes + scale_bytes;
    w.bytes_by_kind[static_cast<int>(s.kind)] += held;
    ++done_tensors;
    done_bytes += t->nbytes;
    auto now = std::chrono::steady_clock::now();
    if (now - last_log > std::chrono::seconds(1)) {
      last_log = now;
      spdlog::info("loading: {}/{} tensors, {:.2f}/{:.2f} GB, {:.0f} MB/s", done_tensors, n_slots, done_bytes / 1e9,
                   total_bytes / 1e9, done_bytes / 1e6 / seconds());
    }
  });
  if (c.tie_word_embeddings) w.head = w.embed;

  // Every tensor of the checkpoint must be one the model knows; multi-token-prediction layers
  // (index >= num_hidden_layers) are recognised and skipped.
  std::set<int64_t> mtp_layers;
  int64_t mtp_tensors = 0;
  for (const std::string& name : ckpt.names()) {
    if (known.count(name)) continue;
    int64_t layer = layer_of(name);
    if (layer >= c.num_hidden_layers) {
      mtp_layers.insert(layer);
      ++mtp_tensors;
      continue;
    }
    throw Error(fmt::format("{}: tensor '{}' ({}) is not part of {} as config.json describes it", dir, name,
                            ckpt.get(name).file, c.architecture));
  }
  if (mtp_tensors)
    spdlog::info("skipping {} tensors of multi-token-prediction layer(s) {} (num_nextn_predict_layers {})",
                 mtp_tensors, fmt::join(mtp_layers, ","), c.num_nextn_predict_layers);

  const double secs = seconds();
  spdlog::info("loaded {} tensors in {:.2f} s ({:.0f} MB/s): resident weight bytes {} ({:.3f} GB) = {:.3f} x the "
               "checkpoint bytes of the tensors held ({})",
               done_tensors, secs, done_bytes / 1e6 / std::max(secs, 1e-9), w.resident_bytes, w.resident_bytes / 1e9,
               static_cast<double>(w.resident_bytes) / std::max<int64_t>(w.checkpoint_bytes, 1), w.checkpoint_bytes);
  for (int k = 0; k < kNumWeightKinds; ++k)
    if (w.bytes_by_kind[k])
      spdlog::info("  {:<15} {:>14} bytes", weight_kind_name(static_cast<WeightKind>(k)), w.bytes_by_kind[k]);
  w.storage = std::move(storage);
  return w;
}

}  // namespace dsrt
