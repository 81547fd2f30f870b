// GEMM drivers: ISA dispatch, work splitting over the pool, and the OpenBLAS path for large M.
#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/blas.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernel_table.h"
#include "kernels/threadpool.h"

namespace dsrt::kernels {

namespace {

// The selected ISA: the only mutable global of the kernels layer (-1: not chosen yet).
std::atomic<int> g_isa{-1};

const detail::KernelTable& table_for(Isa isa) {
  switch (isa) {
    case Isa::AVX512: {  // the same kernels; the int8 GEMVs use vpdpbusd where the CPU has it
      static const bool vnni = (__builtin_cpu_init(), __builtin_cpu_supports("avx512vnni"));
      return vnni ? detail::kAvx512VnniKernels : detail::kAvx512Kernels;
    }
    case Isa::AVX2: return detail::kAvx2Kernels;
    case Isa::Scalar: break;
  }
  return detail::kScalarKernels;
}

// From this many rows of x on, gemm_nt / gemm_nn dequantize weight tiles and call sgemm, whose
// cache blocking suits long prefills. Below it the streaming kernels (which decode a weight tile
// once for all rows of x beyond kNtDirectMaxM) measured 1.3-2x faster than OpenBLAS 0.3.21
// sgemm on Zen 4 for M <= 64 and about even at M = 128.
constexpr int64_t kBlasMinM = 128;
// With only AVX2 (measured on Zen 3, BM_Gemm, 2 threads) sgemm on decoded tiles wins earlier for
// the dtypes the streaming kernels must decode to f32: at M = 16 BF16 15-17 ms against 19-30,
// at M = 32 BF16 21.5 against 40.4, FP8 47.6 against 66.9, F32 10.8 against 14.5; at M = 8 the
// streaming kernels still win. I8 / I4 keep their integer kernels (I8 even at M = 32, I4 2x
// faster there).
constexpr int64_t kBlasMinMAvx2 = 16;

int64_t blas_min_m(const WeightView& w) {
  return active_isa() == Isa::AVX2 && !is_grouped(w.dtype) ? kBlasMinMAvx2 : kBlasMinM;
}
// Below about this many multiply-adds per task, waking other threads costs more than it saves.
constexpr int64_t kMinMacsPerTask = int64_t{1} << 17;
// Weight rows / columns per work unit of the streaming kernels.
constexpr int64_t kNtUnit = 16, kNnUnit = 64;
// With --bf16-activations, from this many rows of x on, BF16 weights go to the vdpbf16ps GEMM
// when the CPU has it (and the AVX-512 kernels are active): it rounds x to bf16 (gemm_bf16.h)
// and does twice the multiply-adds per instruction of the f32 paths, with no weight decoding.
// Measured on a [7168, 2048] weight, 1 thread (BM_PrefillBf16): 1.06x the f32 path at M = 2,
// 1.24x at 3, 1.4x at 4, 2.2x at 8, so the few tokens per expert of batched decode use it too.
// M = 1 (batch-1 decode) stays f32: it is bound by weight bandwidth either way.
constexpr int64_t kBf16MinM = 2;
// Floats of f32 weight tile per thread on the BLAS path (1 MB: L2-sized).
constexpr int64_t kTileFloats = int64_t{1} << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t grain_for(int64_t macs_per_unit) {
  return std::max<int64_t>(1, ceil_div(kMinMacsPerTask, std::max<int64_t>(1, macs_per_unit)));
}

// fn(begin, end) over [0, units), on the pool when it has threads and the work is worth it.
template <class Fn>
void run(ThreadPool* pool, int64_t units, int64_t grain, const Fn& fn) {
  if (pool && pool->size() > 1 && units > grain) {
    // Capture one reference so std::function keeps the callable inline (no allocation).
    pool->parallel_for(units, grain, [&fn](int64_t b, int64_t e, int) { fn(b, e); });
  } else {
    fn(0, units);
  }
}

// Per-thread f32 scratch for dequantized tiles; grows once, then is reused.
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}


void check_args(const char* fn, const WeightView& w, int64_t M, int64_t ldx, int64_t xw,
                int64_t ldy, int64_t yw) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string(fn) + ": " + what);
  };
  if (w.rows < 0 || w.cols < 0 || w.ld < w.cols)
    fail("bad view [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] ld " +
         std::to_string(w.ld));
  if (!w.data && w.rows > 0 && w.cols > 0) fail("view without data");
  if (const std::string e = w.scale_error(); !e.empty()) fail(e);  // F8_E4M3, I8, I4 scales
  if (M < 0 || (M > 1 && ldx < xw) || (M > 1 && ldy < yw))
    fail("M " + std::to_string(M) + ", ldx " + std::to_string(ldx) + ", ldy " +
         std::to_string(ldy) + " for a [" + std::to_string(xw) + "] -> [" + std::to_string(yw) +
         "] product");
}

void zero_rows(float* y, int64_t ldy, int64_t M, int64_t N) {
  for (int64_t m = 0; m < M; ++m) std::fill(y + m * ldy, y + m * ldy + N, 0.0f);
}

// Large M, y = x · Wᵀ: per unit of `rows` weight rows, dequantize to f32 and run sgemm.
void blas_nt(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool, const detail::KernelTable& kt) {
  detail::init_blas();
  const int64_t N = w.rows, K = w.cols;
  const int64_t rows = std::clamp<int64_t>(kTileFloats / K / 16 * 16, 16, 1024);
  run(pool, ceil_div(N, rows), grain_for(rows * K * M), [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t n = u * rows, cnt = std::min(rows, N - n);
      const float* wt;
      int64_t ldw;
      if (w.dtype == DType::F32) {
        wt = static_cast<const float*>(w.data) + n * w.ld;
        ldw = w.ld;
      } else {
        float* tile = scratch(rows * K);
        for (int64_t r = 0; r < cnt; ++r) kt.dequant_row(w, n + r, tile + r * K);
        wt = tile;
        ldw = K;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cnt, K, 1.0f, x, ldx, wt, ldw, 0.0f,
                  y + n, ldy);
    }
  });
}

// Large M, y = x · W: per unit of columns, dequantize K-tiles of W and accumulate with sgemm.
void blas_nn(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool, const detail::KernelTable& kt) {
  detail::init_blas();
  const int64_t K = w.rows, N = w.cols;
  run(pool, ceil_div(N, kNnUnit), grain_for(kNnUnit * K * M), [&](int64_t b, int64_t e) {
    const int64_t c0 = b * kNnUnit, nc = std::min(N, e * kNnUnit) - c0;
    if (w.dtype == DType::F32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nc, K, 1.0f, x, ldx,
                  static_cast<const float*>(w.data) + c0, w.ld, 0.0f, y + c0, ldy);
      return;
    }
    const WeightView v = w.col_slice(c0, nc);
    const int64_t kt_rows = std::clamp<int64_t>(kTileFloats / nc, 1, K);
    float* tile = scratch(kt_rows * nc);
    for (int64_t k0 = 0; k0 < K; k0 += kt_rows) {
      const int64_t cnt = std::min(kt_rows, K - k0);
      for (int64_t r = 0; r < cnt; ++r) kt.dequant_row(v, k0 + r, tile + r * nc);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nc, cnt, 1.0f, x + k0, ldx, tile,
                  nc, k0 == 0 ? 0.0f : 1.0f, y + c0, ldy);
    }
  });
}

std::atomic<bool> g_bf16_activations{false};

bool use_bf16_path(const WeightView& w, int64_t M) {
  static const bool cpu = detail::bf16_dot_supported();
  return g_bf16_activations.load(std::memory_order_relaxed) && cpu && w.dtype == DType::BF16 && M >= kBf16MinM && active_isa() == Isa::AVX512;
}

// y = x · Wᵀ with BF16 W: x rounded to bf16 once (rows split over the pool), then the weight
// rows split over the pool in units of 16.
void bf16_nt(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool) {
  const int64_t N = w.rows, K = w.cols, Kp = detail::bf16_padded(K);
  thread_local std::vector<uint16_t> xb_buf;  // grows once, then reused
  if (static_cast<int64_t>(xb_buf.size()) < M * Kp) xb_buf.resize(M * Kp);
  uint16_t* xb = xb_buf.data();
  run(pool, M, grain_for(K * 16), [&](int64_t b, int64_t e) {
    detail::bf16_convert_rows(x + b * ldx, ldx, e - b, K, xb + b * Kp, Kp);
  });
  const auto* wd = static_cast<const uint16_t*>(w.data);
  constexpr int64_t unit = 16;
  run(pool, ceil_div(N, unit), grain_for(unit * K * M / 2), [&](int64_t b, int64_t e) {
    detail::bf16_gemm_nt(xb, Kp, M, wd, w.ld, K, b * unit, std::min(N, e * unit), y, ldy);
  });
}

}  // namespace

bool gemm_nt_rounds_x_to_bf16(const WeightView& w, int64_t M) { return use_bf16_path(w, M); }
void set_bf16_activations(bool on) { g_bf16_activations.store(on, std::memory_order_relaxed); }
bool bf16_activations() { return g_bf16_activations.load(std::memory_order_relaxed); }

namespace detail {
const KernelTable& active_kernels() { return table_for(active_isa()); }

void init_blas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });  // our pool is the parallelism
}
}  // namespace detail

bool isa_supported(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::AVX2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::AVX512:
      return isa_supported(Isa::AVX2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq");
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::AVX512, Isa::AVX2})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

Isa active_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {  // first use: racing threads all store the same value
    v = static_cast<int>(best_isa());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void set_isa(Isa isa) {
  if (isa != Isa::Scalar && isa != Isa::AVX2 && isa != Isa::AVX512)
    throw std::invalid_argument("set_isa: unknown ISA " + std::to_string(static_cast<int>(isa)));
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("set_isa: this CPU does not support ") + isa_name(isa));
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
  }
  return "?";
}

void gemm_nt(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool) {
  check_args("gemm_nt", w, M, ldx, w.cols, ldy, w.rows);
  const int64_t N = w.rows, K = w.cols;
  if (M == 0 || N == 0) return;
  if (K == 0) return zero_rows(y, ldy, M, N);
  const detail::KernelTable& kt = detail::active_kernels();
  if (use_bf16_path(w, M)) return bf16_nt(x, ldx, M, w, y, ldy, pool);
  if (M >= blas_min_m(w)) return blas_nt(x, ldx, M, w, y, ldy, pool, kt);
  run(pool, ceil_div(N, kNtUnit), grain_for(kNtUnit * K * M), [&](int64_t b, int64_t e) {
    kt.nt(x, ldx, M, w, b * kNtUnit, std::min(N, e * kNtUnit), y, ldy,
          scratch(detail::nt_scratch_floats(K)));
  });
}

void gemm_nn(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool) {
  check_args("gemm_nn", w, M, ldx, w.rows, ldy, w.cols);
  const int64_t K = w.rows, N = w.cols;
  if (M == 0 || N == 0) return;
  if (K == 0) return zero_rows(y, ldy, M, N);
  const detail::KernelTable& kt = detail::active_kernels();
  if (M >= kBlasMinM) return blas_nn(x, ldx, M, w, y, ldy, pool, kt);
  run(pool, ceil_div(N, kNnUnit), grain_for(kNnUnit * K * M), [&](int64_t b, int64_t e) {
    kt.nn(x, ldx, M, w, b * kNnUnit, std::min(N, e * kNnUnit), y, ldy,
          scratch(detail::kNnStripFloats));
  });
}

void dequantize_rows(const WeightView& w, int64_t first, int64_t count, float* out) {
  check_args("dequantize_rows", w, 0, 0, 0, 0, 0);
  if (first < 0 || count < 0 || first + count > w.rows)
    throw std::out_of_range("dequantize_rows: rows [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") of " + std::to_string(w.rows));
  const detail::KernelTable& kt = detail::active_kernels();
  for (int64_t r = 0; r < count; ++r) kt.dequant_row(w, first + r, out + r * w.cols);
}

}  // namespace dsrt::kernels
