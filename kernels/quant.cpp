// Load-time re-quantization of weights (see quant.h). Portable code, written so the compiler
// can vectorize the per-group loops (no libm call per element): it runs once per weight.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"

namespace dsrt::kernels {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Nearest integer, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits, so
// the FPU rounds (default mode) as std::nearbyint would, without a libm call per element.
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// max |x| of a group, or NaN if an element is not finite.
float group_amax(const float* x, int64_t n) {
  float a = 0.0f, z = 0.0f;  // z: sum of x * 0, NaN iff some x is NaN or infinite
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i])), z += x[i] * 0.0f;
  return z == 0.0f ? a : std::nanf("");
}

// I4 group: q[i] in [-8, 7], returns the scale.
float quantize_group_i4(const float* x, int64_t n, int8_t* q) {
  float m = 0.0f;  // signed value of largest magnitude
  for (int64_t i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  const bool finite = std::isfinite(group_amax(x, n));
  if (!finite || m == 0.0f) {
    std::fill(q, q + n, 0);
    return finite ? 0.0f : std::nanf("");
  }
  float t[64];
  float best_fit = -1.0f, best_d = 0.0f;
  for (float c : {-8.0f, -7.5f, -7.0f, -8.5f}) {  // c = -8 is Q4_0; the others trade the extreme
    const float inv = c / m;                     // for a finer step on the rest
    for (int64_t i = 0; i < n; ++i) t[i] = std::clamp(round_even(x[i] * inv), -8.0f, 7.0f);
    float xq = 0, qq = 0;
    for (int64_t i = 0; i < n; ++i) xq += x[i] * t[i], qq += t[i] * t[i];
    // With the least-squares scale d = xq / qq the squared error is sum x^2 - xq^2 / qq:
    // the best candidate has the largest xq^2 / qq.
    const float fit = xq * xq / qq;
    if (fit > best_fit) {
      best_fit = fit, best_d = xq / qq;
      for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(t[i]);
    }
  }
  return best_d;
}

void check_group(DType to, int64_t group) {
  if (is_grouped(to) && group != 16 && group != 32 && group != 64)
    throw std::invalid_argument(std::string("quantize: ") + dtype_name(to) + " group size " + std::to_string(group) +
                                " is not 16, 32 or 64");
}

}  // namespace

QuantLayout quant_layout(DType to, int64_t rows, int64_t cols, int64_t group) {
  check_group(to, group);
  QuantLayout l;
  l.ld = to == DType::I4 ? cols + cols % 2 : cols;
  l.data_bytes = rows * dtype_bytes(to, l.ld);
  if (to == DType::F8_E4M3) {
    l.scale_rows = ceil_div(rows, 128), l.scale_ld = ceil_div(cols, 128);
  } else if (is_grouped(to)) {
    l.block_rows = 1, l.block_cols = group;
    l.scale_rows = rows, l.scale_ld = ceil_div(cols, group);
  }
  return l;
}

void quantize_row_i8(const float* x, int64_t n, int64_t G, int8_t* q, float* scales) {
  for (int64_t g = 0; g * G < n; ++g) {
    const int64_t c0 = g * G, len = std::min(G, n - c0);
    const float amax = group_amax(x + c0, len);
    const bool zero = !(amax > 0.0f);  // also NaN: its scale carries it
    scales[g] = zero ? amax : amax / 127.0f;
    const float inv = zero ? 0.0f : 127.0f / amax;
    for (int64_t i = 0; i < len; ++i)
      q[c0 + i] = static_cast<int8_t>(std::clamp(round_even(x[c0 + i] * inv), -127.0f, 127.0f));
  }
}

void quantize_row_i4(const float* x, int64_t n, int64_t G, uint8_t* q, float* scales) {
  int8_t t[64] = {};
  for (int64_t g = 0; g * G < n; ++g) {
    const int64_t c0 = g * G, len = std::min(G, n - c0);
    scales[g] = quantize_group_i4(x + c0, len, t);
    if (len % 2) t[len] = 0;  // an odd row's last high nibble: 8, i.e. zero
    for (int64_t i = 0; i < len; i += 2)  // G is even: groups start on a byte
      q[(c0 + i) / 2] = static_cast<uint8_t>((t[i] + 8) | ((t[i + 1] + 8) << 4));
  }
}

WeightView quantize_view(const WeightView& src, DType to, int64_t group, void* data, float* scales,
                         ThreadPool* pool) {
  const int64_t R = src.rows, C = src.cols;
  const QuantLayout l = quant_layout(to, R, C, group);
  if (l.scale_rows > 0 && !scales) throw std::invalid_argument("quantize_view: scales needed");
  WeightView v;
  v.dtype = to, v.data = data, v.rows = R, v.cols = C, v.ld = l.ld;
  v.scale = l.scale_rows > 0 ? scales : nullptr, v.scale_ld = l.scale_ld;
  v.block_rows = l.block_rows, v.block_cols = l.block_cols;
  if (R == 0 || C == 0) return v;
  // FP8 needs a whole row block for its block maxima; the others go row by row.
  const int64_t rb = to == DType::F8_E4M3 ? 128 : 16;
  auto body = [&](int64_t b, int64_t e, int) {
    std::vector<float> tile(rb * C);  // [rb, C] f32
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t r0 = blk * rb, n = std::min(rb, R - r0);
      dequantize_rows(src, r0, n, tile.data());
      for (int64_t r = 0; r < n && to != DType::F8_E4M3; ++r) {
        const float* x = tile.data() + r * C;
        char* out = static_cast<char*>(data) + dtype_bytes(to, (r0 + r) * l.ld);
        float* s = scales + (r0 + r) * l.scale_ld;
        switch (to) {
          case DType::F32: std::memcpy(out, x, C * 4); break;
          case DType::BF16:
            for (int64_t c = 0; c < C; ++c) {
              const uint16_t h = f32_to_bf16(x[c]);
              std::memcpy(out + 2 * c, &h, 2);
            }
            break;
          case DType::F16:
            for (int64_t c = 0; c < C; ++c) {
              const uint16_t h = f32_to_f16(x[c]);
              std::memcpy(out + 2 * c, &h, 2);
            }
            break;
          case DType::I8: quantize_row_i8(x, C, group, reinterpret_cast<int8_t*>(out), s); break;
          case DType::I4: quantize_row_i4(x, C, group, reinterpret_cast<uint8_t*>(out), s); break;
          case DType::F8_E4M3: break;
        }
      }
      if (to != DType::F8_E4M3) continue;
      for (int64_t cb = 0; cb < l.scale_ld; ++cb) {
        const int64_t c0 = cb * 128, nc = std::min<int64_t>(128, C - c0);
        float amax = 0.0f;
        for (int64_t r = 0; r < n; ++r) amax = std::max(amax, group_amax(tile.data() + r * C + c0, nc));
        const float s = amax > 0.0f ? amax / 448.0f : 1.0f;  // NaN elements stay NaN codes
        scales[blk * l.scale_ld + cb] = s;
        for (int64_t r = 0; r < n; ++r) {
          uint8_t* out = static_cast<uint8_t*>(data) + (r0 + r) * l.ld + c0;
          for (int64_t c = 0; c < nc; ++c) out[c] = f32_to_fp8_e4m3(tile[r * C + c0 + c] / s);
        }
      }
    }
  };
  const int64_t blocks = ceil_div(R, rb);
  if (pool && pool->size() > 1) pool->parallel_for(blocks, 1, body);
  else body(0, blocks, 0);
  return v;
}

}  // namespace dsrt::kernels
