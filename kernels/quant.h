#pragma once
// Load-time re-quantization (dsrt --weight-dtype): a weight view in any stored dtype is decoded
// to f32 rows and written again as BF16 / F16 / F32 (rounding), F8_E4M3 with 128 x 128 block
// scales (the released checkpoints' format, value = fp8 x scale, scale = block max |x| / 448),
// or I8 / I4 with one f32 scale per group of G elements of a row (weight_view.h):
//   I8  symmetric, scale = group max |x| / 127, q = round(x / scale) in [-127, 127] (like Q8_0).
//   I4  symmetric in [-8, 7] (like Q4_0): the element of largest magnitude maps to -8, then the
//       best of a few nearby scales by squared error, each refitted by least squares.
// A group with a non-finite element gets a NaN scale, so the NaN shows in every product.
// The result is a parent of its own (row0 = col0 = 0): a shard is quantized on its own grid.
#include <cstdint>

#include "kernels/weight_view.h"

namespace dsrt::kernels {

class ThreadPool;

constexpr int64_t kDefaultGroup = 32;

// Storage of a [rows, cols] tensor in dtype `to`: elements, then the f32 scale grid.
struct QuantLayout {
  int64_t ld = 0;  // elements between rows (I4: rounded up to even)
  int64_t data_bytes = 0;
  int64_t scale_rows = 0, scale_ld = 0;  // 0 x 0 without scales
  int64_t block_rows = 128, block_cols = 128;
  int64_t bytes() const { return data_bytes + scale_rows * scale_ld * 4; }
};
// Throws std::invalid_argument for a bad group size (I8 / I4: 16, 32 or 64).
QuantLayout quant_layout(DType to, int64_t rows, int64_t cols, int64_t group = kDefaultGroup);

// One row of n values: q (I8: n bytes, I4: (n + 1) / 2 bytes) and ceil(n / G) scales.
void quantize_row_i8(const float* x, int64_t n, int64_t G, int8_t* q, float* scales);
void quantize_row_i4(const float* x, int64_t n, int64_t G, uint8_t* q, float* scales);

// src in dtype `to`, written to data (layout.data_bytes) and scales (layout scale grid, may be
// null without one); returns the view of it. pool may be null.
WeightView quantize_view(const WeightView& src, DType to, int64_t group, void* data,
                         float* scales, ThreadPool* pool);

}  // namespace dsrt::kernels
