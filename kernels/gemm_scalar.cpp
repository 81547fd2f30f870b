// Portable kernels: the fallback for CPUs without AVX2 and the baseline the SIMD tables are
// tested against. Weights are decoded a short chunk at a time into a stack buffer.
#include <algorithm>

#include "kernels/dtype.h"
#include "kernels/kernel_table.h"

namespace dsrt::kernels::detail {
namespace {

constexpr int64_t kChunk = 256;  // columns decoded at a time

// out[i] = w(r, c0 + i) for i < n, with the fp8 block scale or the int group scale applied.
void decode(const WeightView& w, int64_t r, int64_t c0, int64_t n, float* out) {
  const int64_t off = r * w.ld + c0;  // in elements (I4: even ld, so row r starts on a byte)
  switch (w.dtype) {
    case DType::F32: {
      const float* p = static_cast<const float*>(w.data) + off;
      std::copy(p, p + n, out);
      return;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      return;
    }
    case DType::F8_E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + off;
      const float* srow = fp8_scale_row(w, r);
      for (int64_t i = 0; i < n;) {  // one scale per run of columns inside a block
        const int64_t c = w.col0 + c0 + i;
        const int64_t end = std::min(n, i + (c / w.block_cols + 1) * w.block_cols - c);
        const float s = srow[c / w.block_cols];
        for (; i < end; ++i) out[i] = kFp8ToF32[p[i]] * s;
      }
      return;
    }
    case DType::I8: {
      const int8_t* p = static_cast<const int8_t*>(w.data) + off;
      const float* srow = fp8_scale_row(w, r);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]) * srow[(w.col0 + c0 + i) / w.block_cols];
      return;
    }
    case DType::I4: {
      const uint8_t* p = static_cast<const uint8_t*>(w.data);
      const float* srow = fp8_scale_row(w, r);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t e = off + i;  // element 2j in the low nibble of byte j
        const int q = ((p[e / 2] >> (4 * (e & 1))) & 15) - 8;
        out[i] = static_cast<float>(q) * srow[(w.col0 + c0 + i) / w.block_cols];
      }
      return;
    }
  }
}

float dot_scalar(const float* a, const float* b, int64_t n) {
  float s[8] = {};  // independent partial sums: shorter dependency chains, vectorizable
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

void axpy_scalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void nt_scalar(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0,
               int64_t n1, float* y, int64_t ldy, float*) {
  float buf[kChunk];
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; ++m) y[m * ldy + n] = 0.0f;
    for (int64_t k = 0; k < w.cols; k += kChunk) {
      const int64_t c = std::min(kChunk, w.cols - k);
      decode(w, n, k, c, buf);
      for (int64_t m = 0; m < M; ++m) y[m * ldy + n] += dot_scalar(x + m * ldx + k, buf, c);
    }
  }
}

void nn_scalar(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j0,
               int64_t j1, float* y, int64_t ldy, float*) {
  float buf[kChunk];
  for (int64_t j = j0; j < j1; j += kChunk) {
    const int64_t c = std::min(kChunk, j1 - j);
    for (int64_t m = 0; m < M; ++m) std::fill(y + m * ldy + j, y + m * ldy + j + c, 0.0f);
    for (int64_t k = 0; k < w.rows; ++k) {
      decode(w, k, j, c, buf);
      for (int64_t m = 0; m < M; ++m) axpy_scalar(x[m * ldx + k], buf, y + m * ldy + j, c);
    }
  }
}

void dequant_scalar(const WeightView& w, int64_t r, float* out) { decode(w, r, 0, w.cols, out); }

}  // namespace

const KernelTable kScalarKernels = {&nt_scalar, &nn_scalar, &dequant_scalar, &dot_scalar,
                                    &axpy_scalar};

}  // namespace dsrt::kernels::detail
