// I8 / I4 group-scaled weights: quantizers, GEMMs of every ISA and kernel table against a
// double-precision reference that decodes the bytes independently (and, where the SIMD kernels
// round x to int8, models that rounding), row and column slices, partial last groups, and
// load-time conversion between formats (kernels/quant.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/gemm.h"
#include "unit/isa_util.h"
#include "kernels/kernel_table.h"  // kNtQuantMaxM and the per-ISA tables
#include "kernels/quant.h"
#include "kernels/threadpool.h"
#include "kernels/weight_view.h"

namespace dsrt::kernels {
namespace {

using test::isas;
using test::IsaGuard;
using test::random_vec;

// A quantized [rows, cols] parent and an independent decoder of its bytes.
struct QParent {
  DType dtype;
  int64_t rows, cols, G;
  QuantLayout l;
  std::vector<uint8_t> bytes;
  std::vector<float> scales, source;  // source: the f32 values it was made from

  int q(int64_t r, int64_t c) const {
    if (dtype == DType::I8) return static_cast<int8_t>(bytes[r * l.ld + c]);
    const uint8_t b = bytes[(r * l.ld + c) / 2];
    return ((c % 2) ? b >> 4 : b & 15) - 8;
  }
  double scale(int64_t r, int64_t c) const { return scales[r * l.scale_ld + c / G]; }
  double at(int64_t r, int64_t c) const { return q(r, c) * scale(r, c); }
  WeightView view() const {
    WeightView v;
    v.dtype = dtype, v.data = bytes.data(), v.rows = rows, v.cols = cols, v.ld = l.ld;
    v.scale = scales.data(), v.scale_ld = l.scale_ld, v.block_rows = 1, v.block_cols = G;
    return v;
  }
};

QParent make_q(DType dt, int64_t rows, int64_t cols, uint32_t seed, int64_t G = 32) {
  QParent p{dt, rows, cols, G, quant_layout(dt, rows, cols, G), {}, {}, random_vec(rows * cols, seed)};
  p.bytes.resize(p.l.data_bytes);
  p.scales.resize(p.l.scale_rows * p.l.scale_ld);
  WeightView src{DType::F32, p.source.data(), rows, cols, cols};
  quantize_view(src, dt, G, p.bytes.data(), p.scales.data(), nullptr);
  return p;
}

// The activation rounding of the SIMD I8 / I4 gemm_nt (kernel_table.h, kNtQuantMaxM), written
// out independently: per group of G elements of x, q = nearest-even(x * (127 / max|x|)) and
// scale max|x| / 127 (0 for a zero group, NaN if the group is not finite).
void round_x(const float* x, int64_t K, int64_t G, std::vector<int>& q, std::vector<float>& s) {
  q.assign(K, 0);
  s.assign((K + G - 1) / G, 0.0f);
  for (int64_t g = 0; g * G < K; ++g) {
    float amax = 0;
    bool finite = true;
    for (int64_t k = g * G; k < std::min(K, g * G + G); ++k)
      finite &= std::isfinite(x[k]), amax = std::max(amax, std::fabs(x[k]));
    if (!finite) s[g] = NAN;
    if (!finite || amax == 0) continue;
    s[g] = amax / 127.0f;
    const float inv = 127.0f / amax;
    for (int64_t k = g * G; k < std::min(K, g * G + G); ++k) q[k] = static_cast<int>(std::nearbyint(x[k] * inv));
  }
}

// Whether gemm_nt with the active ISA rounds x for this view and M.
bool rounds_x(const WeightView& v, int64_t M) {
  return active_isa() != Isa::Scalar && M <= detail::kNtQuantMaxM && v.col0 % v.block_cols == 0;
}

// Checks y[M, ldy] (outputs [n0, n1) of each row; the rest must still hold 777) of x · vᵀ
// (nn = false) or x · v (nn = true), v a view of p, against double sums. With rounded x (qx):
// within float rounding of the model of the kernel's integer sums, and within the bound the
// rounding of x allows (|x - q s| <= s / 2) of the exact product.
void check_y(bool nn, bool qx, const QParent& p, const WeightView& v, const std::vector<float>& x, int64_t ldx,
             int64_t M, const std::vector<float>& y, int64_t ldy, int64_t n0, int64_t n1) {
  const int64_t K = nn ? v.rows : v.cols, G = p.G;
  std::vector<int> q;
  std::vector<float> sx;
  int bad = 0;
  for (int64_t m = 0; m < M && bad < 5; ++m) {
    if (qx) round_x(x.data() + m * ldx, K, G, q, sx);
    for (int64_t n = n0; n < n1 && bad < 5; ++n) {
      double ref = 0, l2 = 0, model = 0, model_abs = 0, x_err = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = nn ? v.row0 + k : v.row0 + n, c = nn ? v.col0 + n : v.col0 + k;
        const double w = p.at(r, c), xw = x[m * ldx + k] * w;
        ref += xw, l2 += xw * xw;
        if (!qx) continue;
        const double t = p.scale(r, c) * sx[k / G] * (static_cast<double>(p.q(r, c)) * q[k]);
        model += t, model_abs += std::fabs(t);
        x_err += std::fabs(w) * (sx[k / G] * 0.5 + 1e-6 * std::fabs(x[m * ldx + k]));
      }
      const double got = y[m * ldy + n];
      const double tol = 1e-4 * (std::fabs(ref) + std::sqrt(l2)) + 1e-30;
      if (qx ? !(std::fabs(got - model) <= 1e-5 * model_abs + 1e-30 && std::fabs(got - ref) <= x_err + tol)
             : !(std::fabs(got - ref) <= tol)) {
        ADD_FAILURE() << "y[" << m << ", " << n << "] = " << got << ", want " << ref
                      << (qx ? " (rounded x: " + std::to_string(model) + ")" : std::string());
        ++bad;
      }
    }
    for (int64_t n = 0; n < ldy; ++n) {
      if (n < n0 || n >= n1) ASSERT_EQ(y[m * ldy + n], 777.0f) << "y[" << m << ", " << n << "] written";
    }
  }
}

// gemm_nt (nn = false) or gemm_nn on view v (at offset r0, c0 of p) against double sums.
void check_gemm(bool nn, const QParent& p, const WeightView& v, int64_t M, ThreadPool* pool) {
  const test::GemmRun r = test::run_gemm(nn, v, M, pool);
  check_y(nn, !nn && rounds_x(v, M), p, v, r.x, r.ldx, M, r.y, r.ldy, 0, r.N);
}

std::string trace(Isa isa, DType dt, int64_t M, int64_t G) {
  return std::string("isa ") + isa_name(isa) + " dtype " + dtype_name(dt) + " M " + std::to_string(M) + " G " +
         std::to_string(G);
}

TEST(Quant, RowQuantizersBoundTheError) {
  const std::vector<float> x = random_vec(1000, 1, -3.0f, 3.0f);  // 31 groups of 32 + a partial 8
  std::vector<int8_t> q8(1000);
  std::vector<uint8_t> q4(500);
  std::vector<float> s8(32), s4(32);
  quantize_row_i8(x.data(), 1000, 32, q8.data(), s8.data());
  quantize_row_i4(x.data(), 1000, 32, q4.data(), s4.data());
  double e8 = 0, e4 = 0, xx = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    const float d8 = q8[i] * s8[i / 32];
    const float d4 = ((((i % 2) ? q4[i / 2] >> 4 : q4[i / 2] & 15)) - 8) * s4[i / 32];
    EXPECT_LE(std::fabs(d8 - x[i]), s8[i / 32] * 0.5001f) << i;
    EXPECT_LE(std::abs(q8[i]), 127);
    e8 += (d8 - x[i]) * (d8 - x[i]), e4 += (d4 - x[i]) * (d4 - x[i]), xx += x[i] * x[i];
  }
  // Uniform data: rms error / rms value about 1/(127 sqrt 3) = 0.45% for int8, ~8% for int4.
  EXPECT_LT(std::sqrt(e8 / xx), 0.006);
  EXPECT_LT(std::sqrt(e4 / xx), 0.09);
  for (int g = 0; g < 32; ++g) {  // the group maximum is representable exactly
    float amax = 0;
    for (int64_t i = g * 32; i < std::min<int64_t>(1000, g * 32 + 32); ++i) amax = std::max(amax, std::fabs(x[i]));
    EXPECT_FLOAT_EQ(s8[g] * 127, amax);
  }
  // Zero and non-finite groups.
  std::vector<float> z(64, 0.0f);
  z[40] = NAN;
  quantize_row_i8(z.data(), 64, 32, q8.data(), s8.data());
  EXPECT_EQ(s8[0], 0.0f);
  EXPECT_TRUE(std::isnan(s8[1]));
  quantize_row_i4(z.data(), 64, 32, q4.data(), s4.data());
  EXPECT_EQ(s4[0], 0.0f);
  EXPECT_TRUE(std::isnan(s4[1]));
}

TEST(Quant, LayoutAndBadGroups) {
  const QuantLayout a = quant_layout(DType::I4, 3, 33, 32);
  EXPECT_EQ(a.ld, 34);
  EXPECT_EQ(a.data_bytes, 3 * 17);
  EXPECT_EQ(a.scale_ld, 2);
  EXPECT_EQ(a.bytes(), 51 + 3 * 2 * 4);
  const QuantLayout b = quant_layout(DType::F8_E4M3, 130, 300);
  EXPECT_EQ(b.scale_rows, 2);
  EXPECT_EQ(b.scale_ld, 3);
  EXPECT_THROW(quant_layout(DType::I8, 4, 4, 48), std::invalid_argument);
  const QParent p = make_q(DType::I8, 4, 64, 3);
  std::vector<float> x(64, 1.0f), y(4);
  WeightView bad = p.view();
  bad.block_cols = 24;
  EXPECT_THROW(gemm_nt(x.data(), 64, 1, bad, y.data(), 4, nullptr), std::invalid_argument);
  bad = p.view();
  bad.scale = nullptr;
  EXPECT_THROW(gemm_nt(x.data(), 64, 1, bad, y.data(), 4, nullptr), std::invalid_argument);
}

TEST(Quant, ColumnSlicesMustStartOnAGroup) {
  const QParent p = make_q(DType::I4, 10, 200, 4);
  EXPECT_NO_THROW(p.view().col_slice(64, 70));
  EXPECT_EQ(p.view().col_slice(64, 70).data, p.bytes.data() + 32);
  EXPECT_EQ(p.view().row_slice(3, 2).data, p.bytes.data() + 3 * 100);
  try {
    p.view().col_slice(48, 10);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("column 48"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("group size 32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p.view().col_slice(32, 100).col_slice(8, 10), std::invalid_argument);
  EXPECT_NO_THROW(p.view().col_slice(32, 100).col_slice(32, 10));
}

TEST(Quant, GemmEveryIsaDtypeGroupAndM) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (DType dt : {DType::I8, DType::I4}) {
      for (int64_t G : {16, 32, 64}) {
        const QParent p = make_q(dt, 193, 201, 11, G);  // partial last group, odd I4 rows
        // <= 32: int8 x on SIMD ISAs; 33: f32 tile path; 130: dequantize + sgemm.
        for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 33, 130}) {
          SCOPED_TRACE(trace(isa, dt, M, G));
          check_gemm(false, p, p.view(), M, nullptr);
          check_gemm(true, p, p.view(), M, nullptr);
        }
      }
    }
  }
}

// Every kernel table this CPU can run, called directly on sub-ranges of rows [n0, n1) as the
// thread pool splits them: the AVX-512 build without VNNI (vpmaddubsw) is checked here although
// gemm.cpp picks the VNNI build on this CPU.
TEST(Quant, EveryKernelTableOnRowRanges) {
  struct Table {
    const char* name;
    const detail::KernelTable* kt;
    bool ok, qx;
  };
  __builtin_cpu_init();
  const bool avx512 = isa_supported(Isa::AVX512);
  const Table tables[] = {
      {"scalar", &detail::kScalarKernels, true, false},
      {"avx2", &detail::kAvx2Kernels, isa_supported(Isa::AVX2), true},
      {"avx512", &detail::kAvx512Kernels, avx512, true},
      {"avx512_vnni", &detail::kAvx512VnniKernels, avx512 && __builtin_cpu_supports("avx512vnni"), true},
  };
  for (DType dt : {DType::I8, DType::I4}) {
    for (int64_t G : {16, 32, 64}) {
      for (int64_t K : {1, 15, 64, 203, 520}) {  // I4: odd K, so rows end in half a byte
        const QParent p = make_q(dt, 37, K, static_cast<uint32_t>(K + G), G);
        const WeightView v = p.view();
        for (const Table& t : tables) {
          if (!t.ok) continue;
          for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 16, 31, 32}) {
            SCOPED_TRACE(std::string(t.name) + " " + dtype_name(dt) + " G " + std::to_string(G) + " K " +
                         std::to_string(K) + " M " + std::to_string(M));
            const int64_t ldx = K + 3, ldy = v.rows + 2, n0 = 3, n1 = v.rows - 9;
            const std::vector<float> x = random_vec(M * ldx, static_cast<uint32_t>(M + 100 * K), -4.0f, 3.0f);
            std::vector<float> y(M * ldy, 777.0f), scratch(detail::nt_scratch_floats(K), NAN);
            t.kt->nt(x.data(), ldx, M, v, n0, n1, y.data(), ldy, scratch.data());
            check_y(false, t.qx, p, v, x, ldx, M, y, ldy, n0, n1);
          }
        }
      }
    }
  }
}

// Rounded x: zero groups give exact zeros, a NaN or an infinity in x gives NaN in its row only;
// a view whose first column is inside a group keeps x in f32.
TEST(Quant, RoundedXEdgeCases) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (DType dt : {DType::I8, DType::I4}) {
      SCOPED_TRACE(trace(isa, dt, 3, 32));
      const QParent p = make_q(dt, 20, 96, 31);
      std::vector<float> x(3 * 96, 0.0f), y(3 * 20, 777.0f);
      for (int64_t k = 0; k < 96; ++k) x[96 + k] = 0.01f * static_cast<float>(k % 7);
      x[96 + 40] = NAN;
      x[2 * 96 + 5] = INFINITY;
      gemm_nt(x.data(), 96, 3, p.view(), y.data(), 20, nullptr);
      for (int64_t n = 0; n < 20; ++n) {
        EXPECT_EQ(y[n], 0.0f) << n;
        EXPECT_TRUE(std::isnan(y[20 + n])) << n;
        EXPECT_FALSE(std::isfinite(y[40 + n])) << n;
      }
      // Columns [16, 96) of the parent: a valid view (col0 % 16 == 0), but not on a group.
      WeightView off = p.view();
      off.data = p.bytes.data() + (dt == DType::I8 ? 16 : 8), off.cols = 80, off.col0 = 16;
      ASSERT_FALSE(rounds_x(off, 1));
      check_gemm(false, p, off, 1, nullptr);
      check_gemm(false, p, off, 5, nullptr);
    }
  }
}

TEST(Quant, SlicedViews) {
  IsaGuard guard;
  for (DType dt : {DType::I8, DType::I4}) {
    const QParent p = make_q(dt, 150, 333, 5);
    const WeightView full = p.view();
    const std::vector<WeightView> views = {
        full.row_slice(7, 100),          full.col_slice(64, 269),
        full.col_slice(32, 101),         full.row_slice(13, 77).col_slice(96, 150),
        full.col_slice(320, 13),         full.row_slice(1, 149).col_slice(0, 17),
    };
    for (Isa isa : isas()) {
      set_isa(isa);
      for (size_t i = 0; i < views.size(); ++i) {
        for (int64_t M : {1, 3, 7, 32, 130}) {
          SCOPED_TRACE(trace(isa, dt, M, 32) + " view " + std::to_string(i));
          check_gemm(false, p, views[i], M, nullptr);
          check_gemm(true, p, views[i], M, nullptr);
        }
      }
    }
  }
}

TEST(Quant, ThreadPoolAndDequantizeRows) {
  IsaGuard guard;
  ThreadPool pool(3);
  for (DType dt : {DType::I8, DType::I4}) {
    const QParent tall = make_q(dt, 600, 500, 21), wide = make_q(dt, 150, 2000, 22);
    for (Isa isa : isas()) {
      set_isa(isa);
      for (int64_t M : {1, 5, 20}) {
        SCOPED_TRACE(trace(isa, dt, M, 32));
        check_gemm(false, tall, tall.view(), M, &pool);
        check_gemm(true, wide, wide.view(), M, &pool);
      }
      const WeightView v = tall.view().col_slice(32, 435);
      std::vector<float> out(20 * v.cols);
      dequantize_rows(v, 125, 20, out.data());
      for (int64_t r = 0; r < 20; ++r)
        for (int64_t c = 0; c < v.cols; ++c)
          ASSERT_EQ(out[r * v.cols + c], static_cast<float>(tall.at(125 + r, 32 + c)))
              << isa_name(isa) << " row " << r << " col " << c;
    }
  }
}

// Conversion from every stored format, checked against the source values.
TEST(Quant, QuantizeViewFromStoredFormats) {
  const int64_t R = 150, C = 300;
  const std::vector<float> f = random_vec(R * C, 9, -2.0f, 2.0f);
  std::vector<uint16_t> bf(R * C);
  for (int64_t i = 0; i < R * C; ++i) bf[i] = f32_to_bf16(f[i]);
  // An FP8 source with 128 x 128 block scales.
  std::vector<uint8_t> f8(R * C);
  std::vector<float> f8s(2 * 3, 2.0f / 448);
  for (int64_t i = 0; i < R * C; ++i) f8[i] = f32_to_fp8_e4m3(f[i] / f8s[0]);
  WeightView vf{DType::F32, f.data(), R, C, C}, vb{DType::BF16, bf.data(), R, C, C}, v8{DType::F8_E4M3, f8.data(), R, C, C};
  v8.scale = f8s.data(), v8.scale_ld = 3;
  ThreadPool pool(2);
  for (const WeightView& src : {vf, vb, v8.row_slice(10, 140).col_slice(128, 172)}) {
    std::vector<float> ref(src.rows * src.cols);
    dequantize_rows(src, 0, src.rows, ref.data());
    for (DType to : {DType::BF16, DType::F8_E4M3, DType::I8, DType::I4}) {
      SCOPED_TRACE(std::string(dtype_name(src.dtype)) + " -> " + dtype_name(to));
      const QuantLayout l = quant_layout(to, src.rows, src.cols);
      std::vector<uint8_t> data(l.data_bytes);
      std::vector<float> sc(l.scale_rows * l.scale_ld);
      const WeightView q = quantize_view(src, to, 32, data.data(), sc.data(), &pool);
      std::vector<float> got(src.rows * src.cols);
      dequantize_rows(q, 0, q.rows, got.data());
      double err = 0, xx = 0, worst = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        err += (got[i] - ref[i]) * double(got[i] - ref[i]), xx += ref[i] * double(ref[i]);
        worst = std::max(worst, std::fabs(got[i] - ref[i]) / (std::fabs(ref[i]) + 1e-3));
      }
      const double rel = std::sqrt(err / xx);
      const double bound = to == DType::BF16 ? 0.003 : to == DType::F8_E4M3 ? 0.04 : to == DType::I8 ? 0.006 : 0.1;
      EXPECT_LT(rel, bound);
      if (to == DType::BF16) {
        EXPECT_LT(worst, 1.0 / 256);
        if (src.dtype == DType::BF16) {
          EXPECT_EQ(err, 0.0);  // exact
        }
      }
    }
  }
}

}  // namespace
}  // namespace dsrt::kernels
