// --load-format dummy: deterministic random weights for benchmarks and for configurations
// nobody has weights for. Each element is a pure function of (seed, tensor name, index), so
// any shard of any topology generates exactly its own part of the same model.
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernels/threadpool.h"
#include "runtime/error.h"
#include "runtime/weight_storage.h"
#include "runtime/weights.h"

namespace dsrt {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash_name(uint64_t seed, const std::string& s) {
  uint64_t h = splitmix64(seed);
  for (unsigned char ch : s) h = splitmix64(h ^ ch);
  return h;
}

// Elements [i0, i0 + n) of a tensor's random stream, 8 FP8 codes per hash: each byte keeps
// its sign and mantissa bits and gets exponent 5..8, so |value| is in [0.25, 3.75], never NaN.
void fp8_stream(uint64_t key, int64_t i0, int64_t n, uint8_t* out) {
  for (int64_t i = i0; i < i0 + n;) {
    const uint64_t h = splitmix64(key + static_cast<uint64_t>(i) / 8);
    const uint64_t codes = (h & 0x8787878787878787ull) | ((((h >> 3) & 0x0303030303030303ull) + 0x0505050505050505ull) << 3);
    const int64_t lane = i % 8, take = std::min<int64_t>(8 - lane, i0 + n - i);
    std::memcpy(out + (i - i0), reinterpret_cast<const uint8_t*>(&codes) + lane, take);
    i += take;
  }
}

// Uniform in [-1, 1) from 16 random bits.
inline float unit(uint64_t bits16) { return static_cast<float>(static_cast<int64_t>(bits16 & 0xFFFF) - 32768) / 32768.f; }

// Runs fn(r) for every row r in [r0, r1), spread over the pool.
template <typename Fn>
void fill(kernels::ThreadPool* pool, int64_t r0, int64_t r1, const Fn& fn) {
  auto body = [&](int64_t a, int64_t b, int) {
    for (int64_t r = r0 + a; r < r0 + b; ++r) fn(r);
  };
  if (pool) pool->parallel_for(r1 - r0, 16, body);
  else body(0, r1 - r0, 0);
}

}  // namespace

ModelWeights dummy_weights(const ModelConfig& config, uint64_t seed, const LoadOptions& opt) {
  ModelWeights w;
  w.config = config;
  w.shard = opt.shard;
  auto storage = std::make_shared<WeightStorage>();
  kernels::ThreadPool pool(std::max(1, opt.threads));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n_tensors = 0;
  spdlog::info("model: {}", config.summary());
  spdlog::info("generating dummy weights (seed {}, --weight-dtype {})", seed, weight_format_name(opt.weight_format));

  for_each_tensor(w, [&](const TensorSlot& s) {
    if (!s.owned) return;
    const uint64_t key = hash_name(seed, s.name);
    ++n_tensors;
    if (s.vec) {
      s.vec->assign(s.shape[0], 1.0f);  // norms start at one, as in a fresh model
      if (s.name.find("e_score_correction_bias") != std::string::npos)
        for (int64_t i = 0; i < s.shape[0]; ++i) (*s.vec)[i] = 0.01f * unit(splitmix64(key + i));
      w.resident_bytes += s.shape[0] * 4;
      w.checkpoint_bytes += s.shape[0] * 2;
      w.bytes_by_kind[static_cast<int>(s.kind)] += s.shape[0] * 4;
      return;
    }
    const int64_t rows = s.shape[0], cols = s.shape[1];
    const Range rr = shard_range(s.split, rows, cols, w.shard, true);
    const Range cr = shard_range(s.split, rows, cols, w.shard, false);
    const int64_t nr = rr.end - rr.begin, nc = cr.end - cr.begin;
    const float stddev = 1.0f / std::sqrt(static_cast<float>(cols));
    WeightView v;
    v.rows = nr;
    v.cols = nc;
    v.ld = nc;
    v.row0 = rr.begin;
    v.col0 = cr.begin;
    const bool fp8 = config.fp8 && s.fp8_allowed;
    // --weight-dtype: generate the stored format into temporaries, then keep the converted copy.
    const bool convert = needs_conversion(opt.weight_format, s, fp8 ? kernels::DType::F8_E4M3 : kernels::DType::BF16);
    std::vector<std::vector<uint8_t>> temps;
    auto buffer = [&](int64_t bytes) {
      if (!convert) return storage->allocate(bytes);
      return temps.emplace_back(bytes).data();
    };
    int64_t scale_bytes = 0;
    if (fp8) {
      v.dtype = kernels::DType::F8_E4M3;
      uint8_t* data = buffer(nr * nc);
      fill(&pool, rr.begin, rr.end, [&](int64_t r) {
        fp8_stream(key, r * cols + cr.begin, nc, data + (r - rr.begin) * nc);
      });
      v.data = data;
      v.block_rows = config.fp8_block_rows;
      v.block_cols = config.fp8_block_cols;
      v.scale_ld = (cols + v.block_cols - 1) / v.block_cols;
      const int64_t srows = (rows + v.block_rows - 1) / v.block_rows;
      float* sc = reinterpret_cast<float*>(buffer(srows * v.scale_ld * 4));
      // |value| of a code averages about 1.6: this scale makes the weights' spread about 1/sqrt(in).
      for (int64_t i = 0; i < srows * v.scale_ld; ++i)
        sc[i] = stddev / 1.6f * (1.0f + 0.25f * unit(splitmix64((key ^ 0x5CA1Eull) + i)));
      v.scale = sc;
      scale_bytes = srows * v.scale_ld * 4;
    } else {
      v.dtype = kernels::DType::BF16;
      auto* data = reinterpret_cast<uint16_t*>(buffer(nr * nc * 2));
      const float amp = stddev * std::sqrt(3.0f);
      fill(&pool, rr.begin, rr.end, [&](int64_t r) {
        uint16_t* out = data + (r - rr.begin) * nc;
        for (int64_t c = cr.begin; c < cr.end; ++c) {
          const int64_t i = r * cols + c;  // 4 elements per hash
          const float f = amp * unit(splitmix64(key + static_cast<uint64_t>(i) / 4) >> (16 * (i % 4)));
          uint32_t u;
          std::memcpy(&u, &f, 4);
          out[c - cr.begin] = static_cast<uint16_t>(u >> 16);  // truncation: any bf16 value will do
        }
      });
      v.data = data;
    }
    w.checkpoint_bytes += rows * cols * static_cast<int64_t>(kernels::dtype_size(v.dtype)) + scale_bytes;
    int64_t held = v.bytes() + scale_bytes;
    *s.view = convert_weight(s, v, opt.weight_format, *storage, &pool, &held);
    w.resident_bytes += held;
    w.bytes_by_kind[static_cast<int>(s.kind)] += held;
  });
  if (config.tie_word_embeddings) w.head = w.embed;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("generated {} dummy tensors in {:.2f} s: resident weight bytes {} ({:.3f} GB)", n_tensors, secs,
               w.resident_bytes, w.resident_bytes / 1e9);
  for (int k = 0; k < kNumWeightKinds; ++k)
    if (w.bytes_by_kind[k])
      spdlog::info("  {:<15} {:>14} bytes", weight_kind_name(static_cast<WeightKind>(k)), w.bytes_by_kind[k]);
  w.storage = std::move(storage);
  return w;
}

}  // namespace dsrt
