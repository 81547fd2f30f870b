#pragma once
// Internal to kernels/: the per-ISA entry points behind gemm.h and ops.h. One table per
// instruction set (gemm_scalar.cpp, gemm_avx2.cpp, gemm_avx512.cpp and its VNNI build
// gemm_avx512_vnni.cpp); gemm.cpp picks one at run time. ISA translation units include only
// this header, <cstring> and <immintrin.h>, keep their code in anonymous namespaces and call no
// inline function with external linkage (such as WeightView::bytes), so the linker can never
// pick an AVX copy of a function shared with the rest of the program.
#include <cstdint>

#include "kernels/weight_view.h"

namespace dsrt::kernels::detail {

struct KernelTable {
  // y[m * ldy + n] = sum_k x[m * ldx + k] * w(n, k) for rows n in [n0, n1) of w, m < M.
  // scratch: nt_scratch_floats(w.cols) floats the kernel may overwrite.
  void (*nt)(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0, int64_t n1,
             float* y, int64_t ldy, float* scratch);
  // y[m * ldy + j] = sum_k x[m * ldx + k] * w(k, j) for columns j in [j0, j1) of w, m < M.
  // scratch: kNnStripFloats floats the kernel may overwrite.
  void (*nn)(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j0, int64_t j1,
             float* y, int64_t ldy, float* scratch);
  // out[c] = w(r, c) for c < w.cols, block or group scale applied.
  void (*dequant_row)(const WeightView& w, int64_t r, float* out);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);
};

extern const KernelTable kScalarKernels;
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;
extern const KernelTable kAvx512VnniKernels;  // the AVX-512 code with vpdpbusd (CPU with VNNI)

// The table of the active ISA (gemm.cpp).
const KernelTable& active_kernels();

// fp8 e4m3fn code -> f32, NaN for 0x7F/0xFF (dtype.cpp).
extern const float (&kFp8ToF32)[256];

// Up to this many rows of x, gemm_nt kernels decode each weight vector in registers; beyond,
// they decode a tile of weight rows to f32 once and run all rows of x over it from cache.
constexpr int64_t kNtDirectMaxM = 4;
// Rows of such a tile: a multiple of 8 holding about 256 KB of f32.
static inline int64_t nt_tile_rows(int64_t K) {
  const int64_t r = K > 0 ? 65536 / K : 64;
  return (r < 8 ? 8 : r > 64 ? 64 : r) / 8 * 8;
}
// Up to this many rows of x, the SIMD gemm_nt kernels for I8 / I4 weights (whose view starts
// on a group) round each row of x to int8 with one f32 scale per group of the weight's G
// elements, q = nearest-even(x * (127 / max|x|)), scale max|x| / 127, and sum exact integer
// dot products per group, one f32 multiply-add per group with both scales. A group of x with a
// NaN or an infinity gets a NaN scale. Beyond it (and in the scalar kernels) x stays f32.
constexpr int64_t kNtQuantMaxM = 32;
// That int8 copy of x: kNtQuantMaxM rows of K bytes padded below K + 128, plus a scale per 16.
static inline int64_t nt_qx_floats(int64_t K) { return kNtQuantMaxM * (K + 128) * 5 / 16; }
static inline int64_t nt_scratch_floats(int64_t K) {
  const int64_t tile = (kNtDirectMaxM + nt_tile_rows(K)) * K, qx = nt_qx_floats(K);
  return tile > qx ? tile : qx;
}
// gemm_nn kernels decode a [K, tile width] strip to f32 for many rows of x when it fits here.
constexpr int64_t kNnStripFloats = 65536;

// Scale row of w for view row r (F8_E4M3, I8, I4); index it with (w.col0 + c) / w.block_cols.
static inline const float* fp8_scale_row(const WeightView& w, int64_t r) {
  return w.scale + ((w.row0 + r) / w.block_rows) * w.scale_ld;
}

}  // namespace dsrt::kernels::detail
