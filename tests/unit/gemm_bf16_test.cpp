// The AVX512_BF16 GEMM path of gemm_nt (kernels/gemm_bf16_avx512.cpp) against a double
// reference: exact-in-bf16 activations must match to f32 rounding (the kernel's indexing), and
// arbitrary activations within the documented bf16 rounding bound of 2^-8 per product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"
#include "kernels/weight_view.h"

namespace dsrt::kernels {
namespace {

struct Case {
  int64_t M, N, K;
};

// y = x · Wᵀ for a padded BF16 [N, K] weight; checks every output and the padding of y.
void check(const Case& c, bool exact_x, ThreadPool* pool) {
  const int64_t ldw = c.K + 3, ldx = c.K + 5, ldy = c.N + 2;
  std::mt19937 rng(static_cast<uint32_t>(c.M * 131 + c.N * 7 + c.K));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> w(c.N * ldw);
  for (auto& h : w) h = f32_to_bf16(u(rng));
  std::vector<float> x(c.M * ldx);
  for (float& v : x) v = exact_x ? bf16_to_f32(f32_to_bf16(u(rng))) : u(rng);
  WeightView v{DType::BF16, w.data(), c.N, c.K, ldw};
  ASSERT_TRUE(gemm_nt_rounds_x_to_bf16(v, c.M));
  std::vector<float> y(c.M * ldy, 777.0f);
  gemm_nt(x.data(), ldx, c.M, v, y.data(), ldy, pool);
  int bad = 0;
  for (int64_t m = 0; m < c.M && bad < 5; ++m) {
    for (int64_t n = 0; n < c.N && bad < 5; ++n) {
      double ref = 0, abs_sum = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double t = static_cast<double>(x[m * ldx + k]) * bf16_to_f32(w[n * ldw + k]);
        ref += t, abs_sum += std::fabs(t);
      }
      // f32 accumulation (1e-5 relative to the sum of |products|), plus bf16 rounding of x.
      const double tol = (exact_x ? 1e-5 : 1e-5 + std::ldexp(1.0, -8)) * abs_sum + 1e-30;
      const double got = y[m * ldy + n];
      if (!(std::fabs(got - ref) <= tol)) {
        ADD_FAILURE() << "M " << c.M << " N " << c.N << " K " << c.K << ": y[" << m << ", " << n
                      << "] = " << got << ", want " << ref << " (tol " << tol << ")";
        ++bad;
      }
    }
    for (int64_t n = c.N; n < ldy; ++n) ASSERT_EQ(y[m * ldy + n], 777.0f) << "padding written";
  }
}

// The path is opt-in (set_bf16_activations); each test turns it on for its duration.
struct Bf16On {
  Bf16On() { set_bf16_activations(true); }
  ~Bf16On() { set_bf16_activations(false); }
};

bool have_bf16_path() {
  WeightView probe{DType::BF16, nullptr, 1, 1, 1};
  return isa_supported(Isa::AVX512) && active_isa() == Isa::AVX512 &&
         gemm_nt_rounds_x_to_bf16(probe, 1 << 20);
}

// Shapes cover the 4 x 4 register blocks and their M / N tails, K tails (masked loads), and K
// beyond one 2048-element chunk (partial sums added across chunks).
// M of 2 and 3 are the small per-expert batches of batched decode.
const Case kCases[] = {{8, 16, 64},  {9, 5, 33},    {13, 37, 200},     {130, 21, 2048},
                       {7 + 8, 3, 1}, {64, 9, 4100}, {128, 17, 3072 + 7}, {2, 19, 2048 + 5},
                       {3, 4, 96}};

TEST(GemmBf16, ExactActivationsMatchReference) {
  Bf16On on;
  if (!have_bf16_path()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  for (const Case& c : kCases) check(c, true, nullptr);
}

TEST(GemmBf16, RoundedActivationsWithinBf16Bound) {
  Bf16On on;
  if (!have_bf16_path()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  ThreadPool pool(2);
  for (const Case& c : kCases) {
    check(c, false, nullptr);
    check(c, false, &pool);
  }
}

TEST(GemmBf16, OnlyFromTwoRowsBf16AndAvx512) {
  std::vector<uint16_t> w(4, 0);
  WeightView bf{DType::BF16, w.data(), 2, 2, 2}, f32{DType::F32, w.data(), 1, 2, 2};
  EXPECT_FALSE(gemm_nt_rounds_x_to_bf16(bf, 1 << 20));  // off by default
  Bf16On on;
  EXPECT_FALSE(gemm_nt_rounds_x_to_bf16(bf, 1));  // batch-1 decode keeps f32 activations
  EXPECT_EQ(gemm_nt_rounds_x_to_bf16(bf, 2), have_bf16_path());  // from 2 rows on
  EXPECT_FALSE(gemm_nt_rounds_x_to_bf16(f32, 1 << 20));
  if (isa_supported(Isa::AVX2)) {
    const Isa saved = active_isa();
    set_isa(Isa::AVX2);  // the fallback: no bf16 rounding
    EXPECT_FALSE(gemm_nt_rounds_x_to_bf16(bf, 1 << 20));
    set_isa(saved);
  }
}

}  // namespace
}  // namespace dsrt::kernels
