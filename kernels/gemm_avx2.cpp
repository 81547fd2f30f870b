// AVX2 + FMA + F16C kernels: 8 lanes, 16 registers (so fewer rows per register block).
// Compiled with AVX2 flags; see kernel_table.h for what this file may include and call.
#include <immintrin.h>

#include "kernels/simd_kernels.h"

namespace dsrt::kernels::detail {
namespace {

struct V256 {
  using reg = __m256;
  static constexpr int W = 8;
  static constexpr int kNnVecs = 2;
  static constexpr int nt_rows(int mb) { return mb <= 2 ? 4 : 2; }

  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float reduce(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  static constexpr int kNanSpan = 32;
  static bool fp8_nan_free(const void* p) {
    const __m256i b = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    const __m256i m7f = _mm256_set1_epi8(0x7F);
    return _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(b, m7f), m7f)) == 0;
  }

  template <DType D, bool Exact = true>
  static reg load_w(const void* p) {
    if constexpr (D == DType::F32) {
      return _mm256_loadu_ps(static_cast<const float*>(p));
    } else if constexpr (D == DType::BF16) {
      const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(p));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else if constexpr (D == DType::F16) {
      return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    } else {
      // Same e4m3 -> f16 (value * 2^-8) bit move as the AVX-512 kernel; see there.
      const __m128i b = _mm_loadl_epi64(static_cast<const __m128i*>(p));
      __m128i h = _mm_slli_epi16(_mm_cvtepi8_epi16(b), 7);
      h = _mm_and_si128(h, _mm_set1_epi16(static_cast<short>(0xBFFF)));
      if constexpr (Exact) {
        const __m128i mag = _mm_set1_epi16(0x3F80);  // all exponent and mantissa bits: NaN
        const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(h, mag), mag);
        h = _mm_or_si128(h, _mm_and_si128(nan, _mm_set1_epi16(0x7C00)));
      }
      return _mm256_cvtph_ps(h);
    }
  }

  // 8 int8 or 8 packed nibbles (4 bytes, element 2i low in byte i, stored q + 8) as f32.
  template <DType D>
  static reg load_q(const void* p) {
    __m128i q;
    if constexpr (D == DType::I8) {
      q = _mm_loadl_epi64(static_cast<const __m128i*>(p));
    } else {
      int32_t v;
      std::memcpy(&v, p, 4);
      const __m128i b = _mm_cvtsi32_si128(v), m = _mm_set1_epi8(15);
      const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
      q = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), _mm_set1_epi8(8));
    }
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  }

  // ---- int8-activation path (simd_kernels.h, nt_qx): 8 int32 lanes per vector ----
  // No AVX-VNNI assumed: vpmaddubsw (u8 x s8 pairs to s16) + vpmaddwd (pairs to s32).
  using ireg = __m256i;
  static constexpr int nt_rows_q(int mb, bool) { return mb == 1 ? 4 : 2; }  // 16 registers
  static ireg loadi(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static void storei(void* p, ireg v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static reg abs(reg v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static float reduce_max(reg v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  static reg cvt(ireg v) { return _mm256_cvtepi32_ps(v); }
  // W floats rounded to nearest-even int8 (|v| <= 127 here) at p.
  static void store_q(void* p, reg v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(static_cast<__m128i*>(p), _mm_packs_epi16(h, h));
  }
  // I4 activation layout: 64 elements (a, b) become their even elements (a) and odd ones (b),
  // the order of the low and high nibbles of 32 weight bytes (prep_w).
  static void deinterleave(ireg& a, ireg& b) {
    const ireg even_odd = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    constexpr int order = _MM_SHUFFLE(3, 1, 2, 0);  // [e0 o0 e1 o1] -> [e0 e1 o0 o1]
    const ireg sa = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(a, even_odd), order);
    const ireg sb = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(b, even_odd), order);
    a = _mm256_permute2x128_si256(sa, sb, 0x20), b = _mm256_permute2x128_si256(sa, sb, 0x31);
  }
  // 32 weight bytes. I8: one vector as stored. I4: 64 nibbles as q + 8 (0..15), low nibbles
  // (even elements) in w[0], high (odd) in w[1].
  template <DType D>
  static void prep_w(const void* p, ireg* w) {
    const ireg b = loadi(p);
    if constexpr (D == DType::I4) {
      const ireg m = _mm256_set1_epi8(15);
      w[0] = _mm256_and_si256(b, m), w[1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    } else {
      w[0] = b;
    }
  }
  // Per lane, minus 8 times the sum of the lane's 8 activations (the I4 bias); I8 needs none.
  template <DType D>
  static ireg ncorr(const ireg* x) {
    if constexpr (D == DType::I8) {
      return _mm256_setzero_si256();
    } else {
      const ireg e = _mm256_set1_epi8(8);
      const ireg s16 = _mm256_add_epi16(_mm256_maddubs_epi16(e, x[0]), _mm256_maddubs_epi16(e, x[1]));
      return _mm256_madd_epi16(s16, _mm256_set1_epi16(-1));
    }
  }
  // Exact sum of each lane's products. I8: |w| * (x with w's sign), so vpmaddubsw's pair sums
  // stay below 2^15 (|w|, |x| <= 127); I4: 4 products of nibbles (<= 15) and x stay below too.
  template <DType D>
  static ireg idot(ireg nc, const ireg* w, const ireg* x) {
    const ireg ones = _mm256_set1_epi16(1);
    if constexpr (D == DType::I8) {
      return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w[0]), _mm256_sign_epi8(x[0], w[0])), ones);
    } else {
      const ireg s16 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], x[0]), _mm256_maddubs_epi16(w[1], x[1]));
      return _mm256_add_epi32(nc, _mm256_madd_epi16(s16, ones));
    }
  }
  // Lane l gets s[idx[l]] (NG scales at s, one per group of a chunk).
  template <int NG>
  static reg expand(const float* s, ireg idx) {
    if constexpr (NG == 1) {
      return _mm256_set1_ps(*s);
    } else if constexpr (NG == 2) {
      const __m128 v = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)));
      return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), idx);
    } else {
      static_assert(NG == 4, "a chunk holds at most 64 elements, 4 groups of 16");
      return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(s)), idx);
    }
  }
};

}  // namespace

const KernelTable kAvx2Kernels = make_table<V256>();

}  // namespace dsrt::kernels::detail
