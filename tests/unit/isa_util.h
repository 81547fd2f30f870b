#pragma once
// Kernel tests run every path on every instruction set this CPU has; the inputs they share.
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/gemm.h"

namespace dsrt::test {

// Every ISA this CPU runs, scalar first.
inline std::vector<kernels::Isa> isas() {
  std::vector<kernels::Isa> v;
  for (kernels::Isa i : {kernels::Isa::Scalar, kernels::Isa::AVX2, kernels::Isa::AVX512})
    if (kernels::isa_supported(i)) v.push_back(i);
  return v;
}

// Restores the active ISA when a test that forces one ends.
struct IsaGuard {
  kernels::Isa saved = kernels::active_isa();
  ~IsaGuard() { kernels::set_isa(saved); }
};

// n uniform values in [lo, hi), the same for the same seed.
inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// gemm_nt (nn = false) or gemm_nn on view v with M seeded random rows of x (ld K + 5); y has
// ld N + 3 and starts as 777 everywhere, so the checks can see stray writes into the padding.
struct GemmRun {
  int64_t K, N, ldx, ldy;
  std::vector<float> x, y;
};
inline GemmRun run_gemm(bool nn, const kernels::WeightView& v, int64_t M, kernels::ThreadPool* pool) {
  GemmRun r;
  r.K = nn ? v.rows : v.cols, r.N = nn ? v.cols : v.rows;
  r.ldx = r.K + 5, r.ldy = r.N + 3;
  r.x = random_vec(M * r.ldx, static_cast<uint32_t>(M * 7 + r.K));
  r.y.assign(M * r.ldy, 777.0f);
  if (nn) kernels::gemm_nn(r.x.data(), r.ldx, M, v, r.y.data(), r.ldy, pool);
  else kernels::gemm_nt(r.x.data(), r.ldx, M, v, r.y.data(), r.ldy, pool);
  return r;
}

}  // namespace dsrt::test
