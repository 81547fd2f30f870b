#pragma once
// Internal to kernels/: the BF16 x BF16 -> F32 GEMM of gemm_bf16_avx512.cpp (AVX512_BF16
// vdpbf16ps), used by gemm.cpp for BF16 weights when M is large enough. Activations are rounded
// to bf16 once per call (round to nearest even); the products and sums are f32. Accuracy cost:
// each activation carries a relative error of up to 2^-8 (8-bit significand), so y's error grows like
// 2^-8 * sqrt(K) * rms(x) * rms(w) -- about 1e-3 relative on K = 2048 rows (tests/unit/gemm_bf16_test.cpp).
// Plain functions only (see kernel_table.h for the rules of ISA translation units).
#include <cstdint>

namespace dsrt::kernels::detail {

// Columns of a converted activation row are padded with zeros to a multiple of this.
constexpr int64_t kBf16KStep = 32;
static inline int64_t bf16_padded(int64_t K) { return (K + kBf16KStep - 1) / kBf16KStep * kBf16KStep; }

// The CPU has AVX-512 F/BW/VL and AVX512_BF16.
bool bf16_dot_supported();

// xb[m * ldxb + k] = bf16(x[m * ldx + k]) for k < K, zeros up to bf16_padded(K).
void bf16_convert_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint16_t* xb,
                       int64_t ldxb);

// y[m * ldy + n] = sum_k xb[m, k] * w[n * ldw + k] for n in [n0, n1), m < M; w is bf16 [N, K]
// row-major, xb from bf16_convert_rows. Overwrites y.
void bf16_gemm_nt(const uint16_t* xb, int64_t ldxb, int64_t M, const uint16_t* w, int64_t ldw,
                  int64_t K, int64_t n0, int64_t n1, float* y, int64_t ldy);

}  // namespace dsrt::kernels::detail
