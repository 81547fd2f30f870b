// Kernel tests: conversions exhaustively, GEMMs of every supported ISA and dtype against a
// double-precision reference written here, ops against their formulas, and the ThreadPool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/gemm.h"
#include "unit/isa_util.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "kernels/weight_view.h"

namespace dsrt::kernels {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

float u2f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Reference decoders, independent of the library.
double ref_fp8(uint8_t v) {
  if ((v & 0x7F) == 0x7F) return kNaN;
  const int e = (v >> 3) & 15, m = v & 7;
  const double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return (v & 0x80) ? -mag : mag;
}
double ref_f16(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 0x3FF;
  double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  if (e == 31) mag = m ? kNaN : std::numeric_limits<double>::infinity();
  return (h & 0x8000) ? -mag : mag;
}
double ref_bf16(uint16_t h) { return u2f(static_cast<uint32_t>(h) << 16); }

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

using test::isas;
using test::IsaGuard;
using test::random_vec;

constexpr DType kDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};

// A stored weight with padded rows (ld > cols) and, for fp8, a parent scale grid.
struct Parent {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0, br = 128, bc = 128, scale_ld = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;

  double at(int64_t r, int64_t c) const {
    const uint8_t* p = bytes.data() + (r * ld + c) * dtype_size(dtype);
    uint16_t h = 0;
    if (dtype_size(dtype) == 2) std::memcpy(&h, p, 2);
    switch (dtype) {
      case DType::F32: { float f; std::memcpy(&f, p, 4); return f; }
      case DType::BF16: return ref_bf16(h);
      case DType::F16: return ref_f16(h);
      case DType::F8_E4M3: return ref_fp8(*p) * scales[(r / br) * scale_ld + c / bc];
      case DType::I8:
      case DType::I4: break;  // quant_test.cpp
    }
    return kNaN;
  }
  WeightView view() const {
    WeightView v;
    v.dtype = dtype;
    v.data = bytes.data();
    v.rows = rows, v.cols = cols, v.ld = ld;
    if (dtype == DType::F8_E4M3) {
      v.scale = scales.data(), v.scale_ld = scale_ld, v.block_rows = br, v.block_cols = bc;
    }
    return v;
  }
};

// Random finite values in [-1, 1] (fp8: any non-NaN code, times scales around 1e-3).
Parent make_parent(DType dt, int64_t rows, int64_t cols, uint32_t seed, int64_t br = 128,
                   int64_t bc = 128) {
  Parent p;
  p.dtype = dt, p.rows = rows, p.cols = cols, p.ld = cols + 3, p.br = br, p.bc = bc;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  p.bytes.resize(rows * p.ld * dtype_size(dt));
  for (int64_t i = 0; i < rows * p.ld; ++i) {
    const float f = u(rng);
    uint8_t* d = p.bytes.data() + i * dtype_size(dt);
    uint16_t h = dt == DType::BF16 ? f32_to_bf16(f) : f32_to_f16(f);
    switch (dt) {
      case DType::F32: std::memcpy(d, &f, 4); break;
      case DType::BF16:
      case DType::F16: std::memcpy(d, &h, 2); break;
      case DType::F8_E4M3: *d = static_cast<uint8_t>(rng()); if ((*d & 0x7F) == 0x7F) *d ^= 1; break;
      case DType::I8:
      case DType::I4: break;  // quant_test.cpp
    }
  }
  if (dt == DType::F8_E4M3) {
    p.scale_ld = (cols + bc - 1) / bc + 1;  // wider than needed on purpose
    p.scales.resize(((rows + br - 1) / br) * p.scale_ld);
    for (float& s : p.scales) s = (1.5f + u(rng)) * 1e-3f;
  }
  return p;
}

// Runs gemm_nt (nn = false) or gemm_nn on view v of p and checks every output and the padding.
void check_gemm(bool nn, const Parent& p, const WeightView& v, int64_t M, ThreadPool* pool) {
  const test::GemmRun r = test::run_gemm(nn, v, M, pool);
  const int64_t K = r.K, N = r.N, ldx = r.ldx, ldy = r.ldy;
  const std::vector<float>& x = r.x;
  const std::vector<float>& y = r.y;
  std::vector<double> wd(N * K);  // wd[n * K + k]: the weight in y = x · wdᵀ orientation
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      wd[n * K + k] = nn ? p.at(v.row0 + k, v.col0 + n) : p.at(v.row0 + n, v.col0 + k);
  int bad = 0;
  for (int64_t m = 0; m < M && bad < 5; ++m) {
    for (int64_t n = 0; n < N && bad < 5; ++n) {
      double ref = 0, l2 = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double t = x[m * ldx + k] * wd[n * K + k];
        ref += t, l2 += t * t;
      }
      double tol = 1e-4 * (std::fabs(ref) + std::sqrt(l2)) + 1e-30;
      // x rounded to bf16 (gemm_bf16_test.cpp checks that path on its own): 2^-8 per product.
      if (!nn && gemm_nt_rounds_x_to_bf16(v, M)) tol += std::ldexp(1.0, -8) * std::sqrt(l2 * K);
      const double got = y[m * ldy + n];
      if (!(std::fabs(got - ref) <= tol)) {
        ADD_FAILURE() << "y[" << m << ", " << n << "] = " << got << ", want " << ref;
        ++bad;
      }
    }
    for (int64_t n = N; n < ldy; ++n) ASSERT_EQ(y[m * ldy + n], 777.0f) << "padding written";
  }
}

const char* trace(Isa isa, DType dt, int64_t M) {
  static thread_local char buf[96];
  std::snprintf(buf, sizeof buf, "isa %s dtype %s M %ld", isa_name(isa), dtype_name(dt),
                static_cast<long>(M));
  return buf;
}

TEST(Dtype, Fp8AllCodes) {
  for (int c = 0; c < 256; ++c) {
    const double want = ref_fp8(static_cast<uint8_t>(c));
    const float got = fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    EXPECT_TRUE(same(got, want)) << "code " << c << ": " << got << " want " << want;
    if (!std::isnan(want)) {
      EXPECT_EQ(f32_to_fp8_e4m3(got), c) << "round trip of code " << c;
    }
  }
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xB8), -1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xFF)));
}

TEST(Dtype, Fp8RoundingAndSaturation) {
  for (int c = 0; c < 0x7E; ++c) {  // midpoints of neighbours tie to the even code
    const float lo = fp8_e4m3_to_f32(c), hi = fp8_e4m3_to_f32(c + 1), mid = (lo + hi) / 2;
    const int even = (c % 2 == 0) ? c : c + 1;
    EXPECT_EQ(f32_to_fp8_e4m3(mid), even) << "midpoint after code " << c;
    EXPECT_EQ(f32_to_fp8_e4m3(-mid), even | 0x80);
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 1000.0f)), c + 1);
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 0.0f)), c);
  }
  for (float f : {448.0f, 449.0f, 464.0f, 1e6f, std::numeric_limits<float>::infinity()}) {
    EXPECT_EQ(f32_to_fp8_e4m3(f), 0x7E) << f;
    EXPECT_EQ(f32_to_fp8_e4m3(-f), 0xFE) << -f;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal
  EXPECT_EQ(f32_to_fp8_e4m3(1e-30f), 0x00);
  EXPECT_EQ(f32_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nanf("")) & 0x7F, 0x7F);
}

TEST(Dtype, Bf16) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    ASSERT_TRUE(same(f, ref_bf16(static_cast<uint16_t>(h))));
    ASSERT_EQ(f32_to_bf16(f), h) << "round trip of " << h;
  }
  EXPECT_EQ(f32_to_bf16(u2f(0x3F808000)), 0x3F80);  // tie, stays even
  EXPECT_EQ(f32_to_bf16(u2f(0x3F818000)), 0x3F82);  // tie, up to even
  EXPECT_EQ(f32_to_bf16(u2f(0x3F808001)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(u2f(0x3F807FFF)), 0x3F80);
  EXPECT_EQ(f32_to_bf16(u2f(0xBF818000)), 0xBF82);
  EXPECT_EQ(f32_to_bf16(u2f(0x00018000)), 0x0002);  // subnormal tie
  EXPECT_EQ(f32_to_bf16(u2f(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to infinity
  const uint16_t n = f32_to_bf16(u2f(0x7F800001));  // NaN whose payload is truncated away
  EXPECT_EQ(n & 0x7F80, 0x7F80);
  EXPECT_NE(n & 0x7F, 0);
}

TEST(Dtype, F16) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    ASSERT_TRUE(same(f, ref_f16(static_cast<uint16_t>(h)))) << h;
    ASSERT_EQ(f32_to_f16(f), h) << "round trip of " << h;
  }
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400);  // tie at the normal boundary
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -24)), 0x8001);
}

TEST(Dtype, SizesNamesAndSlices) {
  EXPECT_EQ(dtype_size(DType::F8_E4M3), 1u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_STREQ(dtype_name(DType::F8_E4M3), "F8_E4M3");
  const Parent p = make_parent(DType::BF16, 10, 20, 1);
  const WeightView v = p.view().row_slice(2, 5).col_slice(3, 4);
  EXPECT_EQ(v.rows, 5);
  EXPECT_EQ(v.cols, 4);
  EXPECT_EQ(v.row0, 2);
  EXPECT_EQ(v.col0, 3);
  EXPECT_EQ(v.data, p.bytes.data() + (2 * p.ld + 3) * 2);
  EXPECT_EQ(v.bytes(), 5 * 4 * 2);
  EXPECT_THROW(p.view().row_slice(8, 3), std::out_of_range);
  EXPECT_THROW(p.view().col_slice(-1, 2), std::out_of_range);
}

TEST(Isa, SelectionApi) {
  IsaGuard guard;
  EXPECT_TRUE(isa_supported(Isa::Scalar));
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_STREQ(isa_name(Isa::AVX512), "avx512");
  for (Isa i : {Isa::AVX2, Isa::AVX512}) {
    if (isa_supported(i)) {
      set_isa(i);
      EXPECT_EQ(active_isa(), i);
    } else {
      EXPECT_THROW(set_isa(i), std::invalid_argument);
    }
  }
}

TEST(Gemm, EveryIsaDtypeAndM) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (DType dt : kDtypes) {
      const Parent p = make_parent(dt, 193, 200, 11);
      for (int64_t M : {1, 2, 3, 7, 16, 33, 70, 130}) {  // 130: sgemm (AVX2: from 16 on, I8/I4 aside)
        SCOPED_TRACE(trace(isa, dt, M));
        check_gemm(false, p, p.view(), M, nullptr);
        check_gemm(true, p, p.view(), M, nullptr);
      }
    }
  }
}

TEST(Gemm, Fp8SlicedViewsAndEdgeBlocks) {
  IsaGuard guard;
  const Parent p = make_parent(DType::F8_E4M3, 300, 420, 5);
  const Parent sq = make_parent(DType::F8_E4M3, 192, 192, 6);  // 2 x 2 grid, edge blocks 64
  const Parent odd = make_parent(DType::F8_E4M3, 150, 170, 7, 32, 48);
  ASSERT_EQ(sq.scales.size(), 2u * sq.scale_ld);
  const WeightView full = p.view();
  const std::vector<std::pair<const Parent*, WeightView>> views = {
      {&p, full.row_slice(70, 150)},
      {&p, full.col_slice(50, 290)},
      {&p, full.row_slice(130, 100).col_slice(129, 200)},
      {&p, full.row_slice(1, 299).col_slice(7, 401)},
      {&sq, sq.view()},
      {&sq, sq.view().col_slice(100, 92)},
      {&odd, odd.view().row_slice(5, 140).col_slice(20, 131)},
  };
  for (Isa isa : isas()) {
    set_isa(isa);
    for (size_t i = 0; i < views.size(); ++i) {
      for (int64_t M : {1, 3, 7, 33, 130}) {
        SCOPED_TRACE(std::string(trace(isa, DType::F8_E4M3, M)) + " view " + std::to_string(i));
        check_gemm(false, *views[i].first, views[i].second, M, nullptr);
        check_gemm(true, *views[i].first, views[i].second, M, nullptr);
      }
    }
  }
}

TEST(Gemm, ThreadPoolSplitsWork) {
  IsaGuard guard;
  ThreadPool pool(3);
  for (Isa isa : isas()) {
    set_isa(isa);
    for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3}) {
      // Big enough for several tasks per call on both the streaming and the BLAS paths.
      const Parent tall = make_parent(dt, 600, 500, 21);
      const Parent wide = make_parent(dt, 150, 2000, 22);
      for (int64_t M : {1, 5, 20, 130}) {
        if (M == 130 && isa != best_isa()) continue;  // sgemm: only dequantization differs
        SCOPED_TRACE(trace(isa, dt, M));
        check_gemm(false, tall, tall.view(), M, &pool);
        check_gemm(true, wide, wide.view(), M, &pool);
      }
    }
  }
}

TEST(Gemm, DequantizeRowsIsExact) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (DType dt : kDtypes) {
      SCOPED_TRACE(trace(isa, dt, 0));
      Parent p = make_parent(dt, 150, 300, 31);
      if (dt == DType::F8_E4M3)  // every code, NaN included, in every column position
        for (size_t i = 0; i < p.bytes.size(); ++i) p.bytes[i] = static_cast<uint8_t>(i * 7);
      const WeightView v = p.view().col_slice(9, 270);
      std::vector<float> out(20 * v.cols);
      dequantize_rows(v, 125, 20, out.data());
      for (int64_t r = 0; r < 20; ++r)
        for (int64_t c = 0; c < v.cols; ++c)
          ASSERT_TRUE(same(out[r * v.cols + c], static_cast<float>(p.at(125 + r, 9 + c))))
              << "row " << r << " col " << c;
    }
  }
}

TEST(Gemm, Fp8NanCodesPropagate) {
  IsaGuard guard;
  Parent p = make_parent(DType::F8_E4M3, 40, 300, 41);
  p.bytes[5 * p.ld + 100] = 0x7F;
  p.bytes[12 * p.ld + 201] = 0xFF;
  const std::vector<float> x(300, 0.5f);
  for (Isa isa : isas()) {
    set_isa(isa);
    for (bool nn : {false, true}) {
      std::vector<float> y(300);
      if (nn) gemm_nn(x.data(), 300, 1, p.view(), y.data(), 300, nullptr);
      else gemm_nt(x.data(), 300, 1, p.view(), y.data(), 40, nullptr);
      for (int64_t i = 0; i < (nn ? 300 : 40); ++i) {
        const bool want = nn ? (i == 100 || i == 201) : (i == 5 || i == 12);
        EXPECT_EQ(std::isnan(y[i]), want) << isa_name(isa) << (nn ? " nn " : " nt ") << i;
      }
    }
  }
}

TEST(Gemm, EdgeCasesAndBadViews) {
  const Parent p = make_parent(DType::BF16, 4, 6, 1);
  std::vector<float> x(12, 1.0f), y(8, 5.0f);
  gemm_nt(x.data(), 0, 2, p.view().col_slice(0, 0), y.data(), 4, nullptr);  // K = 0: zeros
  EXPECT_EQ(y, std::vector<float>(8, 0.0f));
  WeightView bad = p.view();
  bad.ld = 3;
  EXPECT_THROW(gemm_nt(x.data(), 6, 1, bad, y.data(), 4, nullptr), std::invalid_argument);
  WeightView noscale = p.view();
  noscale.dtype = DType::F8_E4M3;
  EXPECT_THROW(gemm_nn(x.data(), 4, 1, noscale, y.data(), 6, nullptr), std::invalid_argument);
}

TEST(Ops, DotAndAxpyEveryIsa) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int64_t n : {0, 1, 7, 15, 16, 17, 63, 64, 65, 100, 1000}) {
      const auto a = random_vec(n, 1), b = random_vec(n, 2);
      double ref = 0, l1 = 0;
      for (int64_t i = 0; i < n; ++i) ref += double(a[i]) * b[i], l1 += std::fabs(a[i] * b[i]);
      EXPECT_NEAR(dot(a.data(), b.data(), n), ref, 1e-6 * l1 + 1e-12) << isa_name(isa) << n;
      auto y = b;
      axpy(-0.75f, a.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], b[i] - 0.75 * a[i], 1e-6);
    }
  }
}

TEST(Ops, RmsNorm) {
  const int64_t rows = 3, dim = 1000, ldx = dim + 4, ldy = dim + 2;
  const auto x = random_vec(rows * ldx, 3), g = random_vec(dim, 4);
  std::vector<float> y(rows * ldy, 9.0f);
  rms_norm(x.data(), ldx, g.data(), 1e-6f, rows, dim, y.data(), ldy);
  auto inplace = x;
  rms_norm(inplace.data(), ldx, g.data(), 1e-6f, rows, dim, inplace.data(), ldx);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * ldx + i]) * x[r * ldx + i];
    const double inv = 1 / std::sqrt(ss / dim + 1e-6);
    for (int64_t i = 0; i < dim; ++i) {
      const double want = x[r * ldx + i] * inv * g[i];
      ASSERT_NEAR(y[r * ldy + i], want, 1e-5 * std::fabs(want) + 1e-7);
      ASSERT_NEAR(inplace[r * ldx + i], want, 1e-5 * std::fabs(want) + 1e-7);
    }
    EXPECT_EQ(y[r * ldy + dim], 9.0f);
  }
}

TEST(Ops, AddRmsNorm) {
  const int64_t rows = 3, dim = 999, ldh = dim + 5, ldd = dim + 3, ldy = dim + 2;
  const auto h0 = random_vec(rows * ldh, 5), d = random_vec(rows * ldd, 6), g = random_vec(dim, 7);
  auto h = h0;
  std::vector<float> y(rows * ldy, 9.0f);
  add_rms_norm(h.data(), ldh, d.data(), ldd, g.data(), 1e-6f, rows, dim, y.data(), ldy);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) {
      const float sum = h0[r * ldh + i] + d[r * ldd + i];
      ASSERT_EQ(h[r * ldh + i], sum);
      ss += double(sum) * sum;
    }
    const double inv = 1 / std::sqrt(ss / dim + 1e-6);
    for (int64_t i = 0; i < dim; ++i) {
      const double want = double(h[r * ldh + i]) * inv * g[i];
      ASSERT_NEAR(y[r * ldy + i], want, 1e-5 * std::fabs(want) + 1e-7);
    }
    EXPECT_EQ(y[r * ldy + dim], 9.0f);
    for (int64_t i = dim; i < ldh; ++i) EXPECT_EQ(h[r * ldh + i], h0[r * ldh + i]);  // padding untouched
  }
}

TEST(Ops, Softmax) {
  std::vector<float> x = {1000.0f, 999.0f, 998.0f, -1000.0f, 0.0f};
  softmax(x.data(), 5);
  const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(x[0], 1 / z, 1e-6);
  EXPECT_NEAR(x[1], std::exp(-1.0) / z, 1e-6);
  EXPECT_NEAR(x[2], std::exp(-2.0) / z, 1e-6);
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_EQ(x[4], 0.0f);
  std::vector<float> r = random_vec(300, 5);
  const auto orig = r;
  softmax(r.data(), 300);
  double zz = 0;
  for (float v : orig) zz += std::exp(double(v));
  for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(r[i], std::exp(double(orig[i])) / zz, 1e-7);
  float one = -5.0f;
  softmax(&one, 1);
  EXPECT_EQ(one, 1.0f);
}

TEST(Ops, SiluMulAndRope) {
  std::vector<float> g = {-100.0f, -1.0f, 0.0f, 0.5f, 3.0f, 100.0f}, u = {2, 3, 4, 5, 6, 7};
  std::vector<float> out(6);
  silu_mul(g.data(), u.data(), 6, out.data());
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-double(g[i]))) * u[i], 1e-5);
  silu_mul(g.data(), u.data(), 6, g.data());  // aliasing the gate
  EXPECT_EQ(g, out);
  auto x = random_vec(64, 6);
  const auto x0 = x;
  std::vector<float> cs(64);
  for (int i = 0; i < 32; ++i) cs[2 * i] = std::cos(0.1 * i), cs[2 * i + 1] = std::sin(0.1 * i);
  rope_interleaved(x.data(), cs.data(), 32);
  for (int i = 0; i < 32; ++i) {
    const double c = std::cos(0.1 * i), s = std::sin(0.1 * i);
    EXPECT_NEAR(x[2 * i], x0[2 * i] * c - x0[2 * i + 1] * s, 1e-6);
    EXPECT_NEAR(x[2 * i + 1], x0[2 * i] * s + x0[2 * i + 1] * c, 1e-6);
  }
}

TEST(Ops, TopK) {
  const float t[] = {1, 3, 3, 2, 3};
  int32_t idx[5];
  top_k(t, 5, 3, idx);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 3), (std::vector<int32_t>{1, 2, 4}));
  top_k(t, 5, 5, idx);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 5), (std::vector<int32_t>{1, 2, 4, 3, 0}));
  const float neg[] = {-5, -1, -3, -1};
  top_k(neg, 4, 2, idx);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 2), (std::vector<int32_t>{1, 3}));
  std::mt19937 rng(7);
  std::vector<float> v(256);
  for (float& f : v) f = static_cast<float>(rng() % 40);  // many ties
  std::vector<int32_t> order(256), got(8);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return v[a] > v[b]; });
  top_k(v.data(), 256, 8, got.data());
  EXPECT_EQ(got, std::vector<int32_t>(order.begin(), order.begin() + 8));
}

TEST(ThreadPool, SumEqualsSerialAndCoversOnce) {
  ThreadPool pool(4);
  ASSERT_EQ(pool.size(), 4);
  const int64_t n = 1'000'003;
  std::vector<uint8_t> hits(n, 0);
  std::vector<int64_t> partial(4, 0);
  for (int rep = 0; rep < 200; ++rep) {  // many back-to-back generations
    std::fill(partial.begin(), partial.end(), 0);
    pool.parallel_for(n, 1000, [&](int64_t b, int64_t e, int t) {
      for (int64_t i = b; i < e; ++i) partial[t] += i, hits[i] += rep == 0;
    });
    ASSERT_EQ(std::accumulate(partial.begin(), partial.end(), int64_t{0}), n * (n - 1) / 2);
  }
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), n);
}

TEST(ThreadPool, InlineWhenSmall) {
  ThreadPool pool(3), one(1);
  for (ThreadPool* p : {&pool, &one}) {
    int calls = 0;
    const auto caller = std::this_thread::get_id();
    p->parallel_for(p == &pool ? 50 : 5000, 50, [&](int64_t b, int64_t e, int t) {
      ++calls;
      EXPECT_EQ(std::this_thread::get_id(), caller);
      EXPECT_EQ(b, 0);
      EXPECT_EQ(t, 0);
    });
    EXPECT_EQ(calls, 1);
  }
}

TEST(ThreadPool, ExceptionsPropagate) {
  ThreadPool pool(3);
  for (int thrower : {0, 2}) {
    EXPECT_THROW(pool.parallel_for(300, 1,
                                   [&](int64_t, int64_t, int t) {
                                     if (t == thrower) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
  }
  EXPECT_THROW(pool.parallel_for(300, 1, [&](int64_t, int64_t, int) {
                 pool.parallel_for(300, 1, [](int64_t, int64_t, int) {});
               }),
               std::logic_error);
  std::atomic<int64_t> sum{0};  // still usable afterwards
  pool.parallel_for(300, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
  EXPECT_EQ(sum.load(), 300);
}

TEST(ThreadPool, PinnedPoolRuns) {
  std::thread([] {  // pinning binds the calling thread: keep it off the test's main thread
    ThreadPool pool(2, true, 0);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, 10, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  }).join();
}

}  // namespace
}  // namespace dsrt::kernels
