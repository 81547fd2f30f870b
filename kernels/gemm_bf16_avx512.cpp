// BF16 GEMM with AVX512_BF16: vdpbf16ps multiplies 32 bf16 pairs and adds them to 16 f32 lanes,
// twice the multiply-adds per instruction of an f32 FMA, on weights read as stored. Dot-product
// form (both operands contiguous along K, no weight repacking): a register block of 4 x rows by
// 4 weight rows keeps 16 accumulators; K is cut into chunks so a block's weight rows stay in L1
// while every x row passes over them from L2.
// Compiled with AVX-512 BF16 flags; gemm.cpp calls it only after bf16_dot_supported().
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_bf16.h"

namespace dsrt::kernels::detail {
namespace {

// K elements per chunk: 4 weight rows of 2048 bf16 are 16 KB, half of Zen 4's L1D.
constexpr int64_t kKChunk = 2048;

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// y[m, n] (+)= sum over k in [k0, k1) for MB rows of xb and NB rows of w.
template <int MB, int NB>
void block(const uint16_t* xb, int64_t ldxb, const uint16_t* w, int64_t ldw, int64_t k0,
           int64_t k1, bool accumulate, float* y, int64_t ldy) {
  __m512 acc[MB][NB];
#pragma GCC unroll 8
  for (int m = 0; m < MB; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
  auto step = [&](int64_t k, __mmask32 mask) {
    __m512bh wv[NB];
#pragma GCC unroll 8
    for (int n = 0; n < NB; ++n) wv[n] = as_bh(_mm512_maskz_loadu_epi16(mask, w + n * ldw + k));
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m) {
      // x rows are zero-padded to kBf16KStep, so they need no mask.
      const __m512bh xv = as_bh(_mm512_loadu_si512(xb + m * ldxb + k));
#pragma GCC unroll 8
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_dpbf16_ps(acc[m][n], xv, wv[n]);
    }
  };
  int64_t k = k0;
  for (; k + kBf16KStep <= k1; k += kBf16KStep) step(k, ~__mmask32{0});
  if (k < k1) step(k, (__mmask32{1} << (k1 - k)) - 1);  // never reads past a weight row
#pragma GCC unroll 8
  for (int m = 0; m < MB; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NB; ++n) {
      const float s = _mm512_reduce_add_ps(acc[m][n]);
      y[m * ldy + n] = accumulate ? y[m * ldy + n] + s : s;
    }
}

template <int NB>
void rows_of_x(const uint16_t* xb, int64_t ldxb, int64_t M, const uint16_t* w, int64_t ldw,
               int64_t k0, int64_t k1, bool acc, float* y, int64_t ldy) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) block<4, NB>(xb + m * ldxb, ldxb, w, ldw, k0, k1, acc, y + m * ldy, ldy);
  const uint16_t* xm = xb + m * ldxb;
  float* ym = y + m * ldy;
  switch (M - m) {
    case 3: block<3, NB>(xm, ldxb, w, ldw, k0, k1, acc, ym, ldy); break;
    case 2: block<2, NB>(xm, ldxb, w, ldw, k0, k1, acc, ym, ldy); break;
    case 1: block<1, NB>(xm, ldxb, w, ldw, k0, k1, acc, ym, ldy); break;
    default: break;
  }
}

}  // namespace

bool bf16_dot_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

void bf16_convert_rows(const float* x, int64_t ldx, int64_t M, int64_t K, uint16_t* xb,
                       int64_t ldxb) {
  const int64_t Kp = bf16_padded(K);
  for (int64_t m = 0; m < M; ++m) {
    const float* src = x + m * ldx;
    uint16_t* dst = xb + m * ldxb;
    for (int64_t k = 0; k < Kp; k += 32) {
      const int64_t left = K - k;
      const __mmask16 lo = left >= 16 ? 0xFFFF : left > 0 ? (1u << left) - 1 : 0;
      const __mmask16 hi = left >= 32 ? 0xFFFF : left > 16 ? (1u << (left - 16)) - 1 : 0;
      const __m512 a = _mm512_maskz_loadu_ps(lo, src + k), b = _mm512_maskz_loadu_ps(hi, src + k + 16);
      // cvtne2ps_pbh(hi, lo): lanes 0..15 from lo, 16..31 from hi, round to nearest even.
      const __m512bh v = _mm512_cvtne2ps_pbh(b, a);
      std::memcpy(dst + k, &v, 64);
    }
  }
  _mm256_zeroupper();  // callers are SSE code (simd_kernels.h, before make_table)
}

void bf16_gemm_nt(const uint16_t* xb, int64_t ldxb, int64_t M, const uint16_t* w, int64_t ldw,
                  int64_t K, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  for (int64_t k0 = 0; k0 < K; k0 += kKChunk) {
    const int64_t k1 = K - k0 < kKChunk + kKChunk / 2 ? K : k0 + kKChunk;  // no tiny last chunk
    const bool acc = k0 > 0;
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) rows_of_x<4>(xb, ldxb, M, w + n * ldw, ldw, k0, k1, acc, y + n, ldy);
    for (; n < n1; ++n) rows_of_x<1>(xb, ldxb, M, w + n * ldw, ldw, k0, k1, acc, y + n, ldy);
    if (k1 == K) break;
  }
  _mm256_zeroupper();
}

}  // namespace dsrt::kernels::detail
