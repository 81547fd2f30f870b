#pragma once
// Internal to kernels/: the callers of OpenBLAS (gemm.cpp, attention.cpp) run it on one thread,
// since the caller's ThreadPool is the parallelism.
namespace dsrt::kernels::detail {

// Sets OpenBLAS to one thread, once per process; call before any cblas_* call.
void init_blas();

}  // namespace dsrt::kernels::detail
