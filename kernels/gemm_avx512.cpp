// AVX-512 (F/BW/VL/DQ) kernels: 16 lanes, masked byte compares for the fp8 NaN codes. Built
// twice: as is, and with AVX512_VNNI (vpdpbusd for the int8 path) by gemm_avx512_vnni.cpp.
// Compiled with AVX-512 flags; see kernel_table.h for what this file may include and call.
// GCC 12's _mm512_undefined_ps() self-initializes, which -Wuninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/simd_kernels.h"

namespace dsrt::kernels::detail {
namespace {

struct V512 {
  using reg = __m512;
  static constexpr int W = 16;
  static constexpr int kNnVecs = 4;
  // One x row: 8 independent accumulators hide the FMA latency; more x rows share 4 rows.
  static constexpr int nt_rows(int mb) { return mb == 1 ? 8 : 4; }

  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float reduce(reg v) { return _mm512_reduce_add_ps(v); }

  static constexpr int kNanSpan = 64;
  static bool fp8_nan_free(const void* p) {
    const __m512i b = _mm512_loadu_si512(p), m7f = _mm512_set1_epi8(0x7F);
    return _mm512_cmpeq_epi8_mask(_mm512_and_si512(b, m7f), m7f) == 0;
  }

  template <DType D, bool Exact = true>
  static reg load_w(const void* p) {
    if constexpr (D == DType::F32) {
      return _mm512_loadu_ps(p);
    } else if constexpr (D == DType::BF16) {
      const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(p));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else if constexpr (D == DType::F16) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    } else {
      // e4m3 S.EEEE.MMM -> f16 S.0EEEE.MMM0000000: same bits one exponent field wider, i.e.
      // value * 2^-8 with e4m3 subnormals landing on f16 subnormals, which vcvtph2ps widens
      // exactly. Codes 0x7F/0xFF become an f16 NaN.
      const __m128i b = _mm_loadu_si128(static_cast<const __m128i*>(p));
      __m256i h = _mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7);  // sign lands in bits 15, 14
      h = _mm256_and_si256(h, _mm256_set1_epi16(static_cast<short>(0xBFFF)));
      if constexpr (Exact) {
        const __m128i m7f = _mm_set1_epi8(0x7F);
        const __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_and_si128(b, m7f), m7f);
        h = _mm256_mask_mov_epi16(h, nan, _mm256_set1_epi16(0x7E00));
      }
      return _mm512_cvtph_ps(h);
    }
  }

  // 16 int8 or 16 packed nibbles (8 bytes, element 2i low in byte i, stored q + 8) as f32.
  template <DType D>
  static reg load_q(const void* p) {
    __m128i q;
    if constexpr (D == DType::I8) {
      q = _mm_loadu_si128(static_cast<const __m128i*>(p));
    } else {
      const __m128i b = _mm_loadl_epi64(static_cast<const __m128i*>(p)), m = _mm_set1_epi8(15);
      const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
      q = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), _mm_set1_epi8(8));
    }
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
  }

  // ---- int8-activation path (simd_kernels.h, nt_qx): 16 int32 lanes per vector ----
  using ireg = __m512i;
  // Weight rows per int8-path register block: one x row and 4 KB I8 rows, 4 (8 rows 4 KB
  // apart fill an L1 set); 2 KB I4 rows, 8 (measured about 20% faster than 4 on Zen 4).
  static constexpr int nt_rows_q(int mb, bool i4) { return mb == 1 && i4 ? 8 : 4; }
  static ireg loadi(const void* p) { return _mm512_loadu_si512(p); }
  static void storei(void* p, ireg v) { _mm512_storeu_si512(p, v); }
  static reg abs(reg v) { return _mm512_abs_ps(v); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static float reduce_max(reg v) { return _mm512_reduce_max_ps(v); }
  static reg cvt(ireg v) { return _mm512_cvtepi32_ps(v); }
  // W floats rounded to nearest-even int8 (|v| <= 127 here) at p.
  static void store_q(void* p, reg v) {
    _mm_storeu_si128(static_cast<__m128i*>(p), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  // I4 activation layout: 128 elements (a, b) become their even elements (a) and odd ones (b),
  // the order of the low and high nibbles of 64 weight bytes (prep_w).
  static void deinterleave(ireg& a, ireg& b) {
    const ireg even_odd = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    const ireg sa = _mm512_shuffle_epi8(a, even_odd), sb = _mm512_shuffle_epi8(b, even_odd);
    a = _mm512_permutex2var_epi64(sa, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), sb);
    b = _mm512_permutex2var_epi64(sa, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), sb);
  }
  // 64 weight bytes. I8: one vector, as stored or + 128 (unsigned) for vpdpbusd. I4: 128
  // nibbles as q + 8 (0..15), low nibbles (even elements) in w[0], high (odd) in w[1].
  template <DType D>
  static void prep_w(const void* p, ireg* w) {
    const ireg b = _mm512_loadu_si512(p);
    if constexpr (D == DType::I4) {
      const ireg m = _mm512_set1_epi8(15);
      w[0] = _mm512_and_si512(b, m), w[1] = _mm512_and_si512(_mm512_srli_epi16(b, 4), m);
    } else {
#ifdef __AVX512VNNI__
      w[0] = _mm512_xor_si512(b, _mm512_set1_epi8(static_cast<char>(0x80)));
#else
      w[0] = b;
#endif
    }
  }
  // Per lane, minus the bias of prep_w times the sum of the lane's activations, so that
  // idot(ncorr(x), w, x) is the exact signed sum of the lane's products (4 for I8, 8 for I4).
  template <DType D>
  static ireg ncorr(const ireg* x) {
#ifdef __AVX512VNNI__
    const ireg bias = _mm512_set1_epi8(static_cast<char>(D == DType::I8 ? 0x80 : 8));
    ireg t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, x[0]);
    if constexpr (D == DType::I4) t = _mm512_dpbusd_epi32(t, bias, x[1]);
    return _mm512_sub_epi32(_mm512_setzero_si512(), t);
#else
    if constexpr (D == DType::I8) {
      return _mm512_setzero_si512();  // sign trick: no bias
    } else {
      const ireg e = _mm512_set1_epi8(8);
      const ireg s16 = _mm512_add_epi16(_mm512_maddubs_epi16(e, x[0]), _mm512_maddubs_epi16(e, x[1]));
      return _mm512_madd_epi16(s16, _mm512_set1_epi16(-1));
    }
#endif
  }
  template <DType D>
  static ireg idot(ireg nc, const ireg* w, const ireg* x) {
#ifdef __AVX512VNNI__
    const ireg t = _mm512_dpbusd_epi32(nc, w[0], x[0]);
    if constexpr (D == DType::I4) return _mm512_dpbusd_epi32(t, w[1], x[1]);
    else return t;
#else
    const ireg ones = _mm512_set1_epi16(1);
    if constexpr (D == DType::I8) {  // |w| * (x with w's sign): maddubs' pair sums stay < 2^15
      const ireg xs = _mm512_mask_sub_epi8(x[0], _mm512_movepi8_mask(w[0]), _mm512_setzero_si512(), x[0]);
      return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w[0]), xs), ones);
    } else {  // 4 products of nibbles (<= 15) and |x| <= 127 stay < 2^15 too
      const ireg s16 = _mm512_add_epi16(_mm512_maddubs_epi16(w[0], x[0]), _mm512_maddubs_epi16(w[1], x[1]));
      return _mm512_add_epi32(nc, _mm512_madd_epi16(s16, ones));
    }
#endif
  }
  // Lane l gets s[idx[l]] (NG scales at s, one per group of a chunk).
  template <int NG>
  static reg expand(const float* s, ireg idx) {
    if constexpr (NG == 1) {
      return _mm512_set1_ps(*s);
    } else if constexpr (NG == 2) {
      const __m128 v = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)));
      return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
    } else if constexpr (NG == 4) {
      return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s)));
    } else {
      return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(s)));
    }
  }
};

}  // namespace

// gemm_avx512_vnni.cpp compiles this file again with AVX512_VNNI.
#ifdef __AVX512VNNI__
const KernelTable kAvx512VnniKernels = make_table<V512>();
#else
const KernelTable kAvx512Kernels = make_table<V512>();
#endif

}  // namespace dsrt::kernels::detail
