#pragma once
// Kernel tests run every path on every instruction set this CPU has.
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

}  // namespace dsrt::test
