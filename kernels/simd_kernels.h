#pragma once
// Internal to kernels/: ISA-generic SIMD kernels, included only by gemm_avx2.cpp and
// gemm_avx512.cpp after they define a vector traits type V:
//   reg, W (lanes), zero, set1, loadu, storeu, add, mul, fmadd, reduce,
//   load_w<D, Exact>(p): W weights of dtype D as f32 (F8_E4M3 as value * 2^-8, see
//     kFp8Unscale; with Exact = false the two NaN codes may decode as numbers),
//   load_q<D>(p): W integers of I8 / I4 (unscaled) as f32,
//   fp8_nan_free(p): no NaN code among the kNanSpan fp8 bytes at p,
//   nt_rows(mb): weight rows per register block when mb rows of x share each weight vector,
//   kNnVecs: vectors of columns per gemm_nn register block.
// Everything lives in an anonymous namespace so each ISA gets its own private copy.
#include <cstring>

#include "kernels/kernel_table.h"

namespace dsrt::kernels::detail {
namespace {

template <DType D>
constexpr int64_t kElemSize = D == DType::F32 ? 4 : D == DType::BF16 || D == DType::F16 ? 2 : 1;
template <DType D>
constexpr bool kGrouped = D == DType::I8 || D == DType::I4;
// Bytes before element n of a row (I4: two per byte; n is even wherever a vector starts).
template <DType D>
constexpr int64_t byte_off(int64_t n) {
  return D == DType::I4 ? n / 2 : n * kElemSize<D>;
}
// Bytes holding n elements (I4: the last byte may be half used).
template <DType D>
constexpr int64_t byte_len(int64_t n) {
  return D == DType::I4 ? (n + 1) / 2 : n * kElemSize<D>;
}
// load_w decodes e4m3 as a (denormal-free) f16 worth value * 2^-8; the block scale undoes it.
constexpr float kFp8Unscale = 256.0f;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <bool B>
struct ExactTag {
  static constexpr bool value = B;
};

inline const char* row_ptr(const WeightView& w, int64_t r, int64_t es) {
  return static_cast<const char*>(w.data) + r * w.ld * es;
}

// End (exclusive, in view columns) of the scale block holding view column k.
inline int64_t col_block_end(const WeightView& w, int64_t k) {
  return ((w.col0 + k) / w.block_cols + 1) * w.block_cols - w.col0;
}

// Rows [n, n + R) of w times x rows [0, MB): each weight vector is decoded once and used MB
// times; the accumulators stay in registers across the whole row. For fp8, x arrives already
// multiplied by the block scales (see nt_typed), so the weight is used as decoded.
template <class V, DType D, int R, int MB>
void nt_group(const float* x, int64_t ldx, const WeightView& w, int64_t n, float* y,
              int64_t ldy) {
  using reg = typename V::reg;
  constexpr int W = V::W;
  constexpr int64_t es = kElemSize<D>;
  const int64_t K = w.cols;
  const char* rp[R];
  const float* xs[MB];
  reg acc[R][MB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    rp[r] = row_ptr(w, n + r, es);
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) acc[r][m] = V::zero();
  }
#pragma GCC unroll 16
  for (int m = 0; m < MB; ++m) xs[m] = x + m * ldx;
  auto step = [&](auto exact, const float* const* xp, int64_t xk, const char* const* wp,
                  int64_t wk) {
    reg xv[MB];
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) xv[m] = V::loadu(xp[m] + xk);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const reg wv = V::template load_w<D, decltype(exact)::value>(wp[r] + wk * es);
#pragma GCC unroll 16
      for (int m = 0; m < MB; ++m) acc[r][m] = V::fmadd(wv, xv[m], acc[r][m]);
    }
  };
  int64_t k = 0;
  if constexpr (D == DType::F8_E4M3) {
    // NaN codes do not occur in real checkpoints: check a span of every row at once and skip
    // the per-vector NaN fix-up when it is clean.
    constexpr int64_t span = V::kNanSpan;
    for (; k + span <= K; k += span) {
      bool clean = true;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) clean &= V::fp8_nan_free(rp[r] + k);
      if (clean) {
        for (int64_t i = k; i < k + span; i += W) step(ExactTag<false>{}, xs, i, rp, i);
      } else {
        for (int64_t i = k; i < k + span; i += W) step(ExactTag<true>{}, xs, i, rp, i);
      }
    }
  }
  // Rows of 2048 bf16 are one 4 KB page, where the hardware prefetchers stop: fetch the next R
  // rows (the next group of nt_rows) a whole group ahead, into L2, one line per 64 bytes.
  const char* pre = row_ptr(w, n + R, es);
  const int64_t ld_bytes = w.ld * es;
  for (; k + W <= K; k += W) {
    if (((k * es) & 63) == 0)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) __builtin_prefetch(pre + r * ld_bytes + k * es, 0, 2);
    step(ExactTag<true>{}, xs, k, rp, k);
  }
  if (k < K) {  // tail: zero-padded copies, so nothing is read past a row
    const int64_t c = K - k;
    alignas(64) float xt[MB][W] = {};
    alignas(64) char wt[R][W * es] = {};
    const float* xp[MB];
    const char* wp[R];
    for (int m = 0; m < MB; ++m) std::memcpy(xt[m], xs[m] + k, c * 4), xp[m] = xt[m];
    for (int r = 0; r < R; ++r) std::memcpy(wt[r], rp[r] + k * es, c * es), wp[r] = wt[r];
    step(ExactTag<true>{}, xp, 0, wp, 0);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = V::reduce(acc[r][m]);
}

template <DType D>
inline const char* q_row(const WeightView& w, int64_t r) {
  return static_cast<const char*>(w.data) + byte_off<D>(r * w.ld);
}

// I8 / I4 form of nt_group: each weight vector lies inside one group (G and col0 are multiples
// of 16), so it is decoded and multiplied by its row's group scale before the FMAs.
template <class V, DType D, int R, int MB>
void nt_group_q(const float* x, int64_t ldx, const WeightView& w, int64_t n, float* y,
                int64_t ldy) {
  using reg = typename V::reg;
  constexpr int W = V::W;
  const int64_t K = w.cols, G = w.block_cols;
  const char* rp[R];
  const float* sp[R];
  const float* xs[MB];
  reg acc[R][MB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    rp[r] = q_row<D>(w, n + r);
    sp[r] = fp8_scale_row(w, n + r);
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) acc[r][m] = V::zero();
  }
#pragma GCC unroll 16
  for (int m = 0; m < MB; ++m) xs[m] = x + m * ldx;
  auto step = [&](const float* const* xp, int64_t xk, const char* const* wp, int64_t wk,
                  const reg* sc) {
    reg xv[MB];
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) xv[m] = V::loadu(xp[m] + xk);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const reg wv = V::mul(V::template load_q<D>(wp[r] + byte_off<D>(wk)), sc[r]);
#pragma GCC unroll 16
      for (int m = 0; m < MB; ++m) acc[r][m] = V::fmadd(wv, xv[m], acc[r][m]);
    }
  };
  for (int64_t k = 0; k < K;) {
    const int64_t g = (w.col0 + k) / G, kend = min64(K, (g + 1) * G - w.col0);
    reg sc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) sc[r] = V::set1(sp[r][g]);
    for (; k + W <= kend; k += W) step(xs, k, rp, k, sc);
    if (k < kend) {  // only at the end of a row: zero-padded copies, nothing read past a row
      const int64_t c = kend - k;
      alignas(64) float xt[MB][W] = {};
      alignas(64) char wt[R][W] = {};
      const float* xp[MB];
      const char* wp[R];
      for (int m = 0; m < MB; ++m) std::memcpy(xt[m], xs[m] + k, c * 4), xp[m] = xt[m];
      for (int r = 0; r < R; ++r)
        std::memcpy(wt[r], rp[r] + byte_off<D>(k), byte_len<D>(c)), wp[r] = wt[r];
      step(xp, 0, wp, 0, sc);
      k = kend;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = V::reduce(acc[r][m]);
}

template <class V, DType D, int R, int MB>
void nt_group_any(const float* x, int64_t ldx, const WeightView& w, int64_t n, float* y,
                  int64_t ldy) {
  if constexpr (kGrouped<D>) nt_group_q<V, D, R, MB>(x, ldx, w, n, y, ldy);
  else nt_group<V, D, R, MB>(x, ldx, w, n, y, ldy);
}

template <class V, DType D, int MB>
void nt_rows(const float* x, int64_t ldx, const WeightView& w, int64_t n0, int64_t n1, float* y,
             int64_t ldy) {
  constexpr int R = V::nt_rows(MB);
  int64_t n = n0;
  for (; n + R <= n1; n += R) nt_group_any<V, D, R, MB>(x, ldx, w, n, y, ldy);
  for (; n < n1; ++n) nt_group_any<V, D, 1, MB>(x, ldx, w, n, y, ldy);
}

// Blocks of weight rows small enough to stay in L2 while successive 4-row chunks of x pass.
template <class V, DType D>
void nt_blocks(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0,
               int64_t n1, float* y, int64_t ldy) {
  const int64_t block = M <= kNtDirectMaxM ? n1 - n0 : nt_tile_rows(w.cols);
  for (int64_t nb = n0; nb < n1; nb += block) {
    const int64_t ne = min64(n1, nb + block);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) nt_rows<V, D, 4>(x + m * ldx, ldx, w, nb, ne, y + m * ldy, ldy);
    const float* xm = x + m * ldx;
    float* ym = y + m * ldy;
    switch (M - m) {
      case 3: nt_rows<V, D, 3>(xm, ldx, w, nb, ne, ym, ldy); break;
      case 2: nt_rows<V, D, 2>(xm, ldx, w, nb, ne, ym, ldy); break;
      case 1: nt_rows<V, D, 1>(xm, ldx, w, nb, ne, ym, ldy); break;
      default: break;
    }
  }
}

// xs[m, k] = x[m, k] * scale(row block rb, column block of k) * 2^8 for m < M, k < K.
template <class V>
void scale_x(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t rb, float* xs) {
  const float* srow = w.scale + rb * w.scale_ld;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k0 = 0; k0 < w.cols;) {
      const int64_t k1 = min64(w.cols, col_block_end(w, k0));
      const float s = srow[(w.col0 + k0) / w.block_cols] * kFp8Unscale;
      const typename V::reg sv = V::set1(s);
      int64_t k = k0;
      for (; k + V::W <= k1; k += V::W)
        V::storeu(xs + m * w.cols + k, V::mul(V::loadu(x + m * ldx + k), sv));
      for (; k < k1; ++k) xs[m * w.cols + k] = x[m * ldx + k] * s;
      k0 = k1;
    }
  }
}

// ---- I8 / I4 weights times int8 activations (kNtQuantMaxM, kernel_table.h) ----
// A chunk is the CE elements of one weight vector (4 W bytes): I8 4 W elements, one x vector;
// I4 8 W, two x vectors (even and odd elements, see V::deinterleave) summed into the same int32
// lanes. G and CE are powers of two >= 16, so a chunk holds NG = CE / G whole groups or lies
// inside one; lane l sums products of one group, number idx[l] among the chunk's groups
// (elements 4l.. of the chunk for I8, 8l.. for I4).
template <DType D>
constexpr int kXVecs = D == DType::I4 ? 2 : 1;
template <class V, DType D>
constexpr int kChunk = kXVecs<D> * 4 * V::W;

// x rows as int8 (q rows ld_q bytes apart, padded with zeros) and one scale per group.
struct QxRows {
  const int8_t* q;
  const float* s;
  int64_t ld_q, ld_s;
};

// Row x[0, K) as int8 per group of G (kNtQuantMaxM documents the rounding), zero-padded to Kp
// bytes (a multiple of the chunk and of G), and Kp / G scales. I4 stores each chunk as its even,
// then its odd elements, the order in which V::prep_w unpacks nibbles.
template <class V, DType D>
void quantize_x_row(const float* x, int64_t K, int64_t G, int64_t Kp, int8_t* q, float* s) {
  using reg = typename V::reg;
  constexpr int W = V::W;
  int64_t g = 0;
  for (int64_t k0 = 0; k0 < K; k0 += G, ++g) {
    const float* src = x + k0;
    alignas(64) float t[64] = {};  // only a row's last group can be partial
    if (K - k0 < G) src = static_cast<const float*>(std::memcpy(t, src, (K - k0) * 4));
    reg mx = V::zero(), nonfinite = V::zero();  // v * 0 is NaN for NaN and infinities only
    for (int64_t j = 0; j < G; j += W) {
      const reg v = V::loadu(src + j);
      mx = V::max(mx, V::abs(v)), nonfinite = V::fmadd(v, V::zero(), nonfinite);
    }
    const float amax = V::reduce_max(mx);
    const bool bad = V::reduce(nonfinite) != 0.0f;
    if (bad || amax == 0.0f) {
      s[g] = bad ? __builtin_nanf("") : 0.0f;
      std::memset(q + k0, 0, G);
      continue;
    }
    s[g] = amax / 127.0f;
    const reg inv = V::set1(127.0f / amax);
    for (int64_t j = 0; j < G; j += W) V::store_q(q + k0 + j, V::mul(V::loadu(src + j), inv));
  }
  const int64_t kg = g * G;  // bytes written so far (whole groups)
  std::memset(q + kg, 0, Kp - kg);
  for (; g < Kp / G; ++g) s[g] = 0.0f;
  if constexpr (D == DType::I4) {
    constexpr int E = 4 * W;
    for (int64_t c = 0; c < Kp; c += 2 * E) {
      typename V::ireg a = V::loadi(q + c), b = V::loadi(q + c + E);
      V::deinterleave(a, b);
      V::storei(q + c, a), V::storei(q + c + E, b);
    }
  }
}

// Rows [n, n + R) of w times the MB rows of xr: accumulators in f32 per row pair, one integer
// dot product per chunk and row pair, scaled by (weight scale x activation scale) per lane.
// G is a template argument so that chunk -> group is a shift, not a division.
template <class V, DType D, int G, int R, int MB>
void nt_group_qx(const QxRows& xr, const WeightView& w, int64_t n, float* y, int64_t ldy,
                 typename V::ireg idx) {
  using reg = typename V::reg;
  using ireg = typename V::ireg;
  constexpr int E = 4 * V::W, CE = kChunk<V, D>, XV = kXVecs<D>, NG = G < CE ? CE / G : 1;
  const int64_t K = w.cols, ldb = byte_off<D>(w.ld), lds = w.scale_ld;
  const char* w0 = q_row<D>(w, n);
  const float* s0 = fp8_scale_row(w, n) + w.col0 / G;
  reg acc[R][MB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) acc[r][m] = V::zero();
  // Chunk c: weights of row r at wp + r * wld, their scales at sp + r * sld.
  auto step = [&](int64_t c, const char* wp, int64_t wld, const float* sp, int64_t sld) {
    ireg xv[MB][XV], nc[MB];
    reg sx[MB];
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) {
#pragma GCC unroll 2
      for (int v = 0; v < XV; ++v) xv[m][v] = V::loadi(xr.q + m * xr.ld_q + c + v * E);
      nc[m] = V::template ncorr<D>(xv[m]);
      sx[m] = V::template expand<NG>(xr.s + m * xr.ld_s + c / G, idx);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      ireg wv[XV];
      V::template prep_w<D>(wp + r * wld, wv);
      const reg sw = V::template expand<NG>(sp + r * sld, idx);
#pragma GCC unroll 16
      for (int m = 0; m < MB; ++m) {
        const reg d = V::cvt(V::template idot<D>(nc[m], wv, xv[m]));
        acc[r][m] = V::fmadd(d, V::mul(sw, sx[m]), acc[r][m]);
      }
    }
  };
  // Rows are often one 4 KB page (I8, K = 4096), where the hardware prefetchers stop: fetch
  // the next R rows (which nt_rows_qx reads next) a whole block ahead, into L2 only (in L1, R
  // rows 4 KB apart plus as many prefetched ones overflow a set's 8 ways). The next rows'
  // scales (R * lds floats, contiguous) are fetched R * NG floats per chunk.
  const char* pre = w0 + R * ldb;
  const char* pre_s = reinterpret_cast<const char*>(s0 + R * lds);
  constexpr int kScaleBytes = R * NG * 4;
  int64_t c = 0;
  for (; c + CE <= K; c += CE) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) __builtin_prefetch(pre + r * ldb + byte_off<D>(c), 0, 2);
#pragma GCC unroll 4
    for (int b = 0; b < kScaleBytes; b += 64) __builtin_prefetch(pre_s + c / CE * kScaleBytes + b, 0, 2);
    step(c, w0 + byte_off<D>(c), ldb, s0 + c / G, lds);
  }
  if (c < K) {  // end of the rows: zero-padded copies (x is zero there), nothing read past them
    alignas(64) char wt[R][E] = {};  // a chunk's weights are E bytes (I8 and I4)
    alignas(32) float st[R][8] = {};
    const int64_t groups = (K - c + G - 1) / G;
    for (int r = 0; r < R; ++r) {
      std::memcpy(wt[r], w0 + r * ldb + byte_off<D>(c), byte_len<D>(K - c));
      std::memcpy(st[r], s0 + r * lds + c / G, groups * 4);
    }
    step(c, wt[0], E, st[0], 8);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = V::reduce(acc[r][m]);
}

template <class V, DType D, int G, int MB>
void nt_rows_qx(const QxRows& xr, const WeightView& w, int64_t n0, int64_t n1, float* y,
                int64_t ldy, typename V::ireg idx) {
  constexpr int R = V::nt_rows_q(MB, D == DType::I4);
  int64_t n = n0;
  for (; n + R <= n1; n += R) nt_group_qx<V, D, G, R, MB>(xr, w, n, y, ldy, idx);
  for (; n < n1; ++n) nt_group_qx<V, D, G, 1, MB>(xr, w, n, y, ldy, idx);
}

// As nt_blocks: beyond kNtDirectMaxM rows of x, blocks of weight rows that stay in L2 while
// successive 4-row chunks of x pass (the integers are used as stored, nothing is decoded).
template <class V, DType D, int G>
void nt_blocks_qx(const QxRows& xr, int64_t M, const WeightView& w, int64_t n0, int64_t n1,
                  float* y, int64_t ldy, typename V::ireg idx) {
  const int64_t row_bytes = byte_len<D>(w.cols) + 1;
  const int64_t block = M <= kNtDirectMaxM ? n1 - n0 : ((int64_t{1} << 17) / row_bytes + 8) / 8 * 8;
  for (int64_t nb = n0; nb < n1; nb += block) {
    const int64_t ne = min64(n1, nb + block);
    int64_t m = 0;
    auto at = [&](int64_t m0) {
      return QxRows{xr.q + m0 * xr.ld_q, xr.s + m0 * xr.ld_s, xr.ld_q, xr.ld_s};
    };
    for (; m + 4 <= M; m += 4) nt_rows_qx<V, D, G, 4>(at(m), w, nb, ne, y + m * ldy, ldy, idx);
    float* ym = y + m * ldy;
    switch (M - m) {
      case 3: nt_rows_qx<V, D, G, 3>(at(m), w, nb, ne, ym, ldy, idx); break;
      case 2: nt_rows_qx<V, D, G, 2>(at(m), w, nb, ne, ym, ldy, idx); break;
      case 1: nt_rows_qx<V, D, G, 1>(at(m), w, nb, ne, ym, ldy, idx); break;
      default: break;
    }
  }
}

// I8 / I4 gemm_nt with x quantized once per call into scratch (nt_qx_floats).
template <class V, DType D>
void nt_qx(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0, int64_t n1,
           float* y, int64_t ldy, float* scratch) {
  constexpr int W = V::W, CE = kChunk<V, D>;
  const int64_t K = w.cols, G = w.block_cols;
  const int64_t step = G > CE ? G : CE, Kp = (K + step - 1) / step * step;
  int8_t* q = reinterpret_cast<int8_t*>(scratch);
  float* s = scratch + M * Kp / 4;  // Kp is a multiple of 32
  for (int64_t m = 0; m < M; ++m)
    quantize_x_row<V, D>(x + m * ldx, K, G, Kp, q + m * Kp, s + m * (Kp / G));
  const QxRows xr{q, s, Kp, Kp / G};
  alignas(64) int32_t lane_group[W];
  for (int l = 0; l < W; ++l) lane_group[l] = static_cast<int32_t>((D == DType::I8 ? 4 * l : 8 * l) / G);
  const typename V::ireg idx = V::loadi(lane_group);
  switch (G) {
    case 16: return nt_blocks_qx<V, D, 16>(xr, M, w, n0, n1, y, ldy, idx);
    case 32: return nt_blocks_qx<V, D, 32>(xr, M, w, n0, n1, y, ldy, idx);
    default: return nt_blocks_qx<V, D, 64>(xr, M, w, n0, n1, y, ldy, idx);
  }
}

template <class V, DType D>
void dequant_typed(const WeightView& w, int64_t r, float* out);

template <class V, DType D>
void nt_typed(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0,
              int64_t n1, float* y, int64_t ldy, float* xs) {
  if constexpr (kGrouped<D>) {
    if (M <= kNtQuantMaxM && w.col0 % w.block_cols == 0)
      return nt_qx<V, D>(x, ldx, M, w, n0, n1, y, ldy, xs);
  }
  if (D != DType::F32 && M > kNtDirectMaxM) {
    // Decoding per chunk of x rows would repeat the conversion; decode each tile once.
    const int64_t T = nt_tile_rows(w.cols);
    WeightView tile;  // F32, [T, K], ld K
    tile.data = xs;
    tile.rows = T, tile.cols = w.cols, tile.ld = w.cols;
    for (int64_t nb = n0; nb < n1; nb += T) {
      const int64_t ne = min64(n1, nb + T);
      for (int64_t r = nb; r < ne; ++r) dequant_typed<V, D>(w, r, xs + (r - nb) * w.cols);
      nt_blocks<V, DType::F32>(x, ldx, M, tile, 0, ne - nb, y + nb, ldy);
    }
  } else if constexpr (D == DType::F8_E4M3) {
    // All rows of a row block share one scale per column block: fold the scales into a copy
    // of x once per row block instead of multiplying every decoded weight vector.
    for (int64_t nb = n0; nb < n1;) {
      const int64_t rb = (w.row0 + nb) / w.block_rows;
      const int64_t ne = min64(n1, (rb + 1) * w.block_rows - w.row0);
      scale_x<V>(x, ldx, M, w, rb, xs);
      nt_blocks<V, D>(xs, w.cols, M, w, nb, ne, y, ldy);
      nb = ne;
    }
  } else {
    nt_blocks<V, D>(x, ldx, M, w, n0, n1, y, ldy);
  }
}

// Columns [j, j + nc) (nc <= kNnVecs * W) of y = x · w for x rows [0, MB), streaming w by rows:
// load(k, wv) decodes row k's tile into the NV vectors wv and returns the factor for x[m, k].
template <class V, int MB, class Load>
void nn_tile_rows(const float* x, int64_t ldx, int64_t rows, int64_t j, int64_t nc, float* y,
                  int64_t ldy, Load&& load) {
  using reg = typename V::reg;
  constexpr int W = V::W, NV = V::kNnVecs, T = NV * W;
  reg acc[MB][NV];
#pragma GCC unroll 16
  for (int m = 0; m < MB; ++m)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[m][v] = V::zero();
  for (int64_t k = 0; k < rows; ++k) {
    reg wv[NV];
    const float s = load(k, wv);
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) {
      const reg xb = V::set1(x[m * ldx + k] * s);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[m][v] = V::fmadd(xb, wv[v], acc[m][v]);
    }
  }
  // Fully unrolled so that acc never needs an address and stays in registers.
#pragma GCC unroll 16
  for (int m = 0; m < MB; ++m) {
    alignas(64) float out[T];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) V::storeu(out + v * W, acc[m][v]);
    std::memcpy(y + m * ldy + j, out, nc * 4);
  }
}

// Float weights (F32, BF16, F16, F8_E4M3). fp8: the scale is per lane when the tile straddles a
// column block (PerLane), otherwise one scalar per row block, folded into the broadcast x value.
template <class V, DType D, int MB, bool PerLane>
void nn_tile(const float* x, int64_t ldx, const WeightView& w, int64_t j, int64_t nc, float* y,
             int64_t ldy) {
  using reg = typename V::reg;
  constexpr int W = V::W, NV = V::kNnVecs, T = NV * W;
  constexpr int64_t es = kElemSize<D>;
  const bool full = nc == T;
  reg sv[NV];
  float s = 1.0f;
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) sv[v] = V::set1(1.0f);
  alignas(64) char wt[T * es] = {};  // zero-padded row for a partial tile
  int64_t block_end = 0;             // fp8: first row of the next row block of scales
  nn_tile_rows<V, MB>(x, ldx, w.rows, j, nc, y, ldy, [&](int64_t k, reg* wv) {
    if constexpr (D == DType::F8_E4M3) {
      if (k == block_end) {
        const float* srow = fp8_scale_row(w, k);
        block_end = ((w.row0 + k) / w.block_rows + 1) * w.block_rows - w.row0;
        if constexpr (!PerLane) {
          s = srow[(w.col0 + j) / w.block_cols] * kFp8Unscale;
        } else {
          alignas(64) float t[T];
          for (int i = 0; i < T; ++i)
            t[i] = i < nc ? srow[(w.col0 + j + i) / w.block_cols] * kFp8Unscale : 0.0f;
#pragma GCC unroll 16
          for (int v = 0; v < NV; ++v) sv[v] = V::loadu(t + v * W);
        }
      }
    }
    const char* p = row_ptr(w, k, es) + j * es;
    if (!full) p = static_cast<const char*>(std::memcpy(wt, p, nc * es));
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      wv[v] = V::template load_w<D>(p + v * W * es);
      if constexpr (PerLane) wv[v] = V::mul(wv[v], sv[v]);
    }
    return s;
  });
}

// I8 / I4 weights: every row has its own group scales, one per weight vector.
template <class V, DType D, int MB>
void nn_tile_q(const float* x, int64_t ldx, const WeightView& w, int64_t j, int64_t nc, float* y,
               int64_t ldy) {
  using reg = typename V::reg;
  constexpr int W = V::W, NV = V::kNnVecs, T = NV * W;
  const bool full = nc == T;
  int64_t gi[NV];  // group of each vector; vectors past nc reuse the last (their weights are 0)
  for (int v = 0; v < NV; ++v) gi[v] = (w.col0 + j + min64(v * W, nc - 1)) / w.block_cols;
  alignas(64) char wt[T] = {};  // zero-padded row for a partial tile
  nn_tile_rows<V, MB>(x, ldx, w.rows, j, nc, y, ldy, [&](int64_t k, reg* wv) {
    const char* p = q_row<D>(w, k) + byte_off<D>(j);
    if (!full) p = static_cast<const char*>(std::memcpy(wt, p, byte_len<D>(nc)));
    const float* srow = fp8_scale_row(w, k);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      wv[v] = V::mul(V::template load_q<D>(p + byte_off<D>(v * W)), V::set1(srow[gi[v]]));
    return 1.0f;
  });
}

template <class V, DType D, int MB, bool PerLane>
void nn_tile_any(const float* x, int64_t ldx, const WeightView& w, int64_t j, int64_t nc,
                 float* y, int64_t ldy) {
  if constexpr (kGrouped<D>) nn_tile_q<V, D, MB>(x, ldx, w, j, nc, y, ldy);
  else nn_tile<V, D, MB, PerLane>(x, ldx, w, j, nc, y, ldy);
}

template <class V, DType D, bool PerLane>
void nn_rows(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j, int64_t nc,
             float* y, int64_t ldy) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    nn_tile_any<V, D, 4, PerLane>(x + m * ldx, ldx, w, j, nc, y + m * ldy, ldy);
  const float* xm = x + m * ldx;
  float* ym = y + m * ldy;
  switch (M - m) {
    case 3: nn_tile_any<V, D, 3, PerLane>(xm, ldx, w, j, nc, ym, ldy); break;
    case 2: nn_tile_any<V, D, 2, PerLane>(xm, ldx, w, j, nc, ym, ldy); break;
    case 1: nn_tile_any<V, D, 1, PerLane>(xm, ldx, w, j, nc, ym, ldy); break;
    default: break;
  }
}

template <class V, DType D>
void dequant_typed(const WeightView& w, int64_t r, float* out);

template <class V, DType D>
void nn_typed(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j0,
              int64_t j1, float* y, int64_t ldy, float* scratch) {
  constexpr int64_t T = V::kNnVecs * V::W;
  // Several chunks of x rows would each decode the weight again: decode a strip once instead.
  const bool strip = D != DType::F32 && M > kNtDirectMaxM && w.rows * T <= kNnStripFloats;
  for (int64_t j = j0; j < j1; j += T) {
    const int64_t nc = min64(T, j1 - j);
    if (strip) {
      WeightView src = w;  // columns [j, j + nc)
      src.data = static_cast<const char*>(w.data) + byte_off<D>(j);
      src.cols = nc, src.col0 = w.col0 + j;
      for (int64_t k = 0; k < w.rows; ++k) dequant_typed<V, D>(src, k, scratch + k * T);
      WeightView f;  // F32 [K, nc], ld T
      f.data = scratch, f.rows = w.rows, f.cols = nc, f.ld = T;
      nn_rows<V, DType::F32, false>(x, ldx, M, f, 0, nc, y + j, ldy);
    } else if (D == DType::F8_E4M3 &&
               (w.col0 + j) / w.block_cols != (w.col0 + j + nc - 1) / w.block_cols) {
      nn_rows<V, D, true>(x, ldx, M, w, j, nc, y, ldy);
    } else {
      nn_rows<V, D, false>(x, ldx, M, w, j, nc, y, ldy);
    }
  }
}

// I8 / I4 row r: one group scale per run of columns.
template <class V, DType D>
void dequant_q(const WeightView& w, int64_t r, float* out) {
  constexpr int W = V::W;
  const char* p = q_row<D>(w, r);
  const float* srow = fp8_scale_row(w, r);
  for (int64_t k0 = 0; k0 < w.cols;) {
    const int64_t g = (w.col0 + k0) / w.block_cols;
    const int64_t k1 = min64(w.cols, (g + 1) * w.block_cols - w.col0);
    const typename V::reg sc = V::set1(srow[g]);
    int64_t k = k0;
    for (; k + W <= k1; k += W)
      V::storeu(out + k, V::mul(V::template load_q<D>(p + byte_off<D>(k)), sc));
    if (k < k1) {  // end of the row
      alignas(64) char wt[W] = {};
      alignas(64) float t[W];
      std::memcpy(wt, p + byte_off<D>(k), byte_len<D>(k1 - k));
      V::storeu(t, V::mul(V::template load_q<D>(wt), sc));
      std::memcpy(out + k, t, (k1 - k) * 4);
    }
    k0 = k1;
  }
}

template <class V, DType D>
void dequant_plain(const WeightView& w, int64_t r, float* out);

template <class V, DType D>
void dequant_typed(const WeightView& w, int64_t r, float* out) {
  if constexpr (kGrouped<D>) dequant_q<V, D>(w, r, out);
  else dequant_plain<V, D>(w, r, out);
}

template <class V, DType D>
void dequant_plain(const WeightView& w, int64_t r, float* out) {
  using reg = typename V::reg;
  constexpr int W = V::W;
  constexpr int64_t es = kElemSize<D>;
  const char* p = row_ptr(w, r, es);
  const float* srow = nullptr;
  if constexpr (D == DType::F8_E4M3) srow = fp8_scale_row(w, r);
  for (int64_t k0 = 0; k0 < w.cols;) {
    int64_t k1 = w.cols;
    reg sc = V::set1(1.0f);
    if constexpr (D == DType::F8_E4M3) {
      k1 = min64(w.cols, col_block_end(w, k0));
      sc = V::set1(srow[(w.col0 + k0) / w.block_cols] * kFp8Unscale);
    }
    int64_t k = k0;
    if constexpr (D == DType::F8_E4M3) {  // as in nt_group: skip the NaN fix-up when clean
      for (; k + V::kNanSpan <= k1; k += V::kNanSpan) {
        if (V::fp8_nan_free(p + k)) {
          for (int64_t i = k; i < k + V::kNanSpan; i += W)
            V::storeu(out + i, V::mul(V::template load_w<D, false>(p + i), sc));
        } else {
          for (int64_t i = k; i < k + V::kNanSpan; i += W)
            V::storeu(out + i, V::mul(V::template load_w<D, true>(p + i), sc));
        }
      }
    }
    for (; k + W <= k1; k += W) {
      reg v = V::template load_w<D>(p + k * es);
      if constexpr (D == DType::F8_E4M3) v = V::mul(v, sc);
      V::storeu(out + k, v);
    }
    if (k < k1) {
      alignas(64) char wt[W * es] = {};
      alignas(64) float t[W];
      std::memcpy(wt, p + k * es, (k1 - k) * es);
      reg v = V::template load_w<D>(wt);
      if constexpr (D == DType::F8_E4M3) v = V::mul(v, sc);
      V::storeu(t, v);
      std::memcpy(out + k, t, (k1 - k) * 4);
    }
    k0 = k1;
  }
}

template <class V>
void nt_any(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0, int64_t n1,
            float* y, int64_t ldy, float* xs) {
  switch (w.dtype) {
    case DType::F32: return nt_typed<V, DType::F32>(x, ldx, M, w, n0, n1, y, ldy, xs);
    case DType::BF16: return nt_typed<V, DType::BF16>(x, ldx, M, w, n0, n1, y, ldy, xs);
    case DType::F16: return nt_typed<V, DType::F16>(x, ldx, M, w, n0, n1, y, ldy, xs);
    case DType::F8_E4M3: return nt_typed<V, DType::F8_E4M3>(x, ldx, M, w, n0, n1, y, ldy, xs);
    case DType::I8: return nt_typed<V, DType::I8>(x, ldx, M, w, n0, n1, y, ldy, xs);
    case DType::I4: return nt_typed<V, DType::I4>(x, ldx, M, w, n0, n1, y, ldy, xs);
  }
}

template <class V>
void nn_any(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j0, int64_t j1,
            float* y, int64_t ldy, float* scratch) {
  switch (w.dtype) {
    case DType::F32: return nn_typed<V, DType::F32>(x, ldx, M, w, j0, j1, y, ldy, scratch);
    case DType::BF16: return nn_typed<V, DType::BF16>(x, ldx, M, w, j0, j1, y, ldy, scratch);
    case DType::F16: return nn_typed<V, DType::F16>(x, ldx, M, w, j0, j1, y, ldy, scratch);
    case DType::F8_E4M3:
      return nn_typed<V, DType::F8_E4M3>(x, ldx, M, w, j0, j1, y, ldy, scratch);
    case DType::I8: return nn_typed<V, DType::I8>(x, ldx, M, w, j0, j1, y, ldy, scratch);
    case DType::I4: return nn_typed<V, DType::I4>(x, ldx, M, w, j0, j1, y, ldy, scratch);
  }
}

template <class V>
void dequant_any(const WeightView& w, int64_t r, float* out) {
  switch (w.dtype) {
    case DType::F32: return dequant_typed<V, DType::F32>(w, r, out);
    case DType::BF16: return dequant_typed<V, DType::BF16>(w, r, out);
    case DType::F16: return dequant_typed<V, DType::F16>(w, r, out);
    case DType::F8_E4M3: return dequant_typed<V, DType::F8_E4M3>(w, r, out);
    case DType::I8: return dequant_typed<V, DType::I8>(w, r, out);
    case DType::I4: return dequant_typed<V, DType::I4>(w, r, out);
  }
}

template <class V>
float dot_simd(const float* a, const float* b, int64_t n) {
  constexpr int W = V::W;
  typename V::reg s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = V::fmadd(V::loadu(a + i), V::loadu(b + i), s0);
    s1 = V::fmadd(V::loadu(a + i + W), V::loadu(b + i + W), s1);
    s2 = V::fmadd(V::loadu(a + i + 2 * W), V::loadu(b + i + 2 * W), s2);
    s3 = V::fmadd(V::loadu(a + i + 3 * W), V::loadu(b + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) s0 = V::fmadd(V::loadu(a + i), V::loadu(b + i), s0);
  float s = V::reduce(V::add(V::add(s0, s1), V::add(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class V>
void axpy_simd(float a, const float* x, float* y, int64_t n) {
  constexpr int W = V::W;
  const typename V::reg av = V::set1(a);
  int64_t i = 0;
  for (; i + W <= n; i += W) V::storeu(y + i, V::fmadd(av, V::loadu(x + i), V::loadu(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// The table's entries end with vzeroupper whatever path they took: the rest of the program is
// SSE code, and SSE instructions after an AVX kernel that left the upper halves dirty run many
// times slower (measured on Zen 3: silu_mul of 1408 floats right after an I8 GEMV took 178 us
// instead of 8 us, about a third of the int8 decode step).
template <class V>
void nt_entry(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t n0, int64_t n1,
              float* y, int64_t ldy, float* xs) {
  nt_any<V>(x, ldx, M, w, n0, n1, y, ldy, xs);
  _mm256_zeroupper();
}
template <class V>
void nn_entry(const float* x, int64_t ldx, int64_t M, const WeightView& w, int64_t j0, int64_t j1,
              float* y, int64_t ldy, float* scratch) {
  nn_any<V>(x, ldx, M, w, j0, j1, y, ldy, scratch);
  _mm256_zeroupper();
}
template <class V>
void dequant_entry(const WeightView& w, int64_t r, float* out) {
  dequant_any<V>(w, r, out);
  _mm256_zeroupper();
}
template <class V>
float dot_entry(const float* a, const float* b, int64_t n) {
  const float s = dot_simd<V>(a, b, n);
  _mm256_zeroupper();
  return s;
}
template <class V>
void axpy_entry(float a, const float* x, float* y, int64_t n) {
  axpy_simd<V>(a, x, y, n);
  _mm256_zeroupper();
}

template <class V>
constexpr KernelTable make_table() {
  return {&nt_entry<V>, &nn_entry<V>, &dequant_entry<V>, &dot_entry<V>, &axpy_entry<V>};
}

}  // namespace
}  // namespace dsrt::kernels::detail
