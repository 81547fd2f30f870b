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

  // ---- int8-activation path (simd_kernels.h, nt_qx): 64 bytes = 16 int32 lanes ----
  using ireg = __m512i;
  static constexpr int nt_rows_q(int mb) { return mb == 1 ? 8 : 4; }
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
  // I4 activation layout: each 64 bytes as even elements, then odd ones (see prep_w).
  static ireg deinterleave(ireg v) {
    const ireg even_odd = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7),
                                    _mm512_shuffle_epi8(v, even_odd));
  }
  // 64 weights. I4: 32 bytes of nibbles as q + 8 (0..15), low nibbles (even elements) in bytes
  // 0-31 and high ones in 32-63: no interleaving, x is stored in that order instead.
  // I8: as stored, or + 128 (unsigned) for vpdpbusd.
  template <DType D>
  static ireg prep_w(const void* p) {
    if constexpr (D == DType::I4) {
      const ireg b = _mm512_broadcast_i64x4(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
      const ireg shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004,
                                          0x0004000400040004, 0x0004000400040004, 0, 0, 0, 0);
      return _mm512_and_si512(_mm512_srlv_epi16(b, shift), _mm512_set1_epi8(15));
    } else {
#ifdef __AVX512VNNI__
      return _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set1_epi8(static_cast<char>(0x80)));
#else
      return _mm512_loadu_si512(p);
#endif
    }
  }
  // Per lane, minus the bias of prep_w times the sum of the lane's 4 activations, so that
  // idot(ncorr(x), prep_w(w), x) is the exact signed sum of the lane's 4 products.
  template <DType D>
  static ireg ncorr(ireg x) {
#ifdef __AVX512VNNI__
    const ireg bias = _mm512_set1_epi8(static_cast<char>(D == DType::I8 ? 0x80 : 8));
    return _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, x));
#else
    if constexpr (D == DType::I8) return _mm512_setzero_si512();  // sign trick: no bias
    else return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(8), x), _mm512_set1_epi16(-1));
#endif
  }
  template <DType D>
  static ireg idot(ireg nc, ireg w, ireg x) {
#ifdef __AVX512VNNI__
    return _mm512_dpbusd_epi32(nc, w, x);
#else
    const ireg ones = _mm512_set1_epi16(1);
    if constexpr (D == DType::I8) {  // |w| * (x with w's sign): maddubs' pair sums stay < 2^15
      const ireg xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
      return _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), xs), ones);
    } else {
      return _mm512_add_epi32(nc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), ones));
    }
#endif
  }
  // Lane l gets s[idx[l]] (NG scales at s, one per group of the 64 elements).
  template <int NG>
  static reg expand(const float* s, ireg idx) {
    if constexpr (NG == 1) {
      return _mm512_set1_ps(*s);
    } else if constexpr (NG == 2) {
      const __m128 v = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)));
      return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
    } else {
      return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s)));
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
