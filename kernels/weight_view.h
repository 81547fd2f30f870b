#pragma once
// Weight views and dtypes: the only description of a stored weight that kernels see.
//
// GEMM convention (the one convention of dsrt, stated here once):
//   a weight W is [out, in] row-major, as Hugging Face stores it, and a linear layer computes
//   y[M, out] = x[M, in] · Wᵀ  ("nt").  Absorbed MLA also reads W along its rows,
//   y[M, out] = x[M, rows] · W ("nn"), for which W is viewed as [K = rows, N = cols].
// Activations are f32 row-major with an explicit leading dimension; weights stay in their
// stored dtype and are converted inside the kernels.
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsrt::kernels {

// I8 / I4: integers with one f32 scale per group of a row (kernels/quant.h makes them).
enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, I8, I4 };

int64_t dtype_bits(DType t);      // bits per element (I4: 4)
size_t dtype_size(DType t);       // bytes per element; throws for I4 (half a byte: use dtype_bits)
const char* dtype_name(DType t);  // "F32", "BF16", "F16", "F8_E4M3" (safetensors spelling), "I8", "I4"
// Bytes n consecutive elements occupy (I4: rounded up to whole bytes).
inline int64_t dtype_bytes(DType t, int64_t n) { return (n * dtype_bits(t) + 7) / 8; }
inline bool is_grouped(DType t) { return t == DType::I8 || t == DType::I4; }

// A read-only window on a [rows, cols] weight in its stored dtype. Row r starts at
// data + r * ld elements. Scaled dtypes carry the scales of the *parent* tensor:
//   value(r, c) = q(r, c) * scale[((row0 + r) / block_rows) * scale_ld + (col0 + c) / block_cols]
// so a slice of rows or columns (tensor-parallel shards, per-head slices of wkv_b) needs no copy.
//   F8_E4M3  block scales of block_rows x block_cols (128 x 128 in the released checkpoints).
//   I8, I4   group scales: block_rows = 1, block_cols = G consecutive elements of a row,
//            G in {16, 32, 64}; symmetric (no zero point). I8 stores int8 in [-127, 127]; I4
//            stores q + 8 (q in [-8, 7]) in 4 bits, two per byte, element 2i in the low nibble
//            of byte i (so I4 needs an even ld and an even col0). A row's last group may be
//            partial (cols % G != 0). Public column slices must start on a group boundary.
struct WeightView {
  DType dtype = DType::F32;
  const void* data = nullptr;  // first element of this view
  int64_t rows = 0, cols = 0;
  int64_t ld = 0;  // elements between consecutive rows (>= cols)

  const float* scale = nullptr;  // scaled dtypes only: the parent's scale grid
  int64_t scale_ld = 0;
  int64_t row0 = 0, col0 = 0;  // offset of this view inside the parent (for scale lookup)
  int64_t block_rows = 128, block_cols = 128;

  // Rows [first, first + count) / columns [first, first + count) of this view. For I8 / I4 a
  // column slice must start on a group boundary of the parent (std::invalid_argument if not).
  WeightView row_slice(int64_t first, int64_t count) const;
  WeightView col_slice(int64_t first, int64_t count) const;
  // Bytes this view's elements occupy (scales excluded).
  int64_t bytes() const { return rows * dtype_bytes(dtype, cols); }
  // Empty if the scale grid is consistent with the dtype and the view, else what is wrong.
  std::string scale_error() const;
};

}  // namespace dsrt::kernels
