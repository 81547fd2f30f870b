// Kernel benchmarks. Decode is bound by reading weights, so the small-M GEMMs report weight
// bytes per second next to a plain streaming-read baseline (BM_ReadBandwidth) over the same
// thread counts; prefill reports GFLOP/s of the OpenBLAS path.
//   bench_kernels --benchmark_filter='ReadBandwidth|Gemm/.*/1/'   (GEMV only)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "kernels/attention.h"
#include "kernels/dtype.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/threadpool.h"
#include "kernels/weight_view.h"

using namespace dsrt::kernels;

namespace {

constexpr int64_t kWeightBytes = int64_t{64} << 20;  // far beyond the last-level cache
constexpr int64_t kK = 4096;
constexpr int64_t kReadBytes = int64_t{1} << 30;

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
float unit(uint64_t& s) { return static_cast<float>(splitmix(s) >> 40) / (1 << 24) * 2 - 1; }

struct Weight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightView view;
};

ThreadPool* pool(int threads);

// One [64 MB / (K * size), K] weight per dtype, built on first use.
const WeightView& weight(DType dt) {
  static std::map<DType, Weight> cache;
  auto it = cache.find(dt);
  if (it != cache.end()) return it->second.view;
  Weight& w = cache[dt];
  if (is_grouped(dt)) {  // I8 / I4: 64 MB of integers (+ one f32 scale per 32) quantized from f32
    const int64_t N = kWeightBytes * 8 / (kK * dtype_bits(dt));
    std::vector<float> f(N * kK);
    uint64_t s = 42;
    for (float& v : f) v = unit(s);
    const QuantLayout l = quant_layout(dt, N, kK);
    w.bytes.resize(l.data_bytes);
    w.scales.resize(l.scale_rows * l.scale_ld);
    w.view = quantize_view(WeightView{DType::F32, f.data(), N, kK, kK}, dt, kDefaultGroup, w.bytes.data(),
                           w.scales.data(), pool(2));
    return w.view;
  }
  const int64_t es = static_cast<int64_t>(dtype_size(dt)), N = kWeightBytes / (kK * es);
  w.bytes.resize(kWeightBytes);
  uint64_t s = 42;
  for (int64_t i = 0; i < N * kK; ++i) {
    const float f = unit(s);
    uint8_t* d = w.bytes.data() + i * es;
    if (dt == DType::F32) std::memcpy(d, &f, 4);
    if (dt == DType::BF16 || dt == DType::F16) {
      const uint16_t h = dt == DType::BF16 ? f32_to_bf16(f) : f32_to_f16(f);
      std::memcpy(d, &h, 2);
    }
    if (dt == DType::F8_E4M3) *d = f32_to_fp8_e4m3(f * 400);
  }
  w.view = WeightView{dt, w.bytes.data(), N, kK, kK};
  if (dt == DType::F8_E4M3) {
    w.scales.assign(((N + 127) / 128) * (kK / 128), 1e-3f);
    w.view.scale = w.scales.data();
    w.view.scale_ld = kK / 128;
  }
  return w.view;
}

ThreadPool* pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  if (threads <= 1) return nullptr;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return p.get();
}

// Args: threads. Sums a 1 GB buffer: the read bandwidth the GEMVs should approach.
void BM_ReadBandwidth(benchmark::State& st) {
  static std::vector<uint64_t> buf(kReadBytes / 8, 1);
  const int64_t n = static_cast<int64_t>(buf.size());
  ThreadPool* p = pool(static_cast<int>(st.range(0)));
  std::vector<uint64_t> part(8);
  auto body = [&](int64_t b, int64_t e, int t) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = b; i + 4 <= e; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
    part[t] = s0 + s1 + s2 + s3;
  };
  for (auto _ : st) {
    if (p) p->parallel_for(n, 1 << 16, body);
    else body(0, n, 0);
    benchmark::DoNotOptimize(part.data());
  }
  st.SetBytesProcessed(st.iterations() * kReadBytes);
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// The sum over buf[b, e) (the streaming read both bandwidth figures use).
uint64_t sum_range(const std::vector<uint64_t>& buf, int64_t b, int64_t e) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t i = b; i + 4 <= e; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
  return s0 + s1 + s2 + s3;
}

// Best of 5 streaming reads of 1 GB at this thread count, measured once per count: the peak the
// GEMMs' frac_peak_bw counter divides by (bandwidth drifts between processes, so the ratio is
// only meaningful within one run).
double peak_read_bytes_per_s(int threads) {
  static std::map<int, double> peak;
  if (auto it = peak.find(threads); it != peak.end()) return it->second;
  static std::vector<uint64_t> buf(kReadBytes / 8, 1);
  const int64_t n = static_cast<int64_t>(buf.size());
  std::vector<uint64_t> part(8);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    if (ThreadPool* p = pool(threads)) {
      p->parallel_for(n, 1 << 16, [&](int64_t b, int64_t e, int t) { part[t] = sum_range(buf, b, e); });
    } else {
      part[0] = sum_range(buf, 0, n);
    }
    benchmark::DoNotOptimize(part.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, kReadBytes / s);
  }
  return peak[threads] = best;
}

// Args: dtype, M, threads, isa. y[M, N] = x[M, K] · Wᵀ over a 64 MB weight.
void BM_Gemm(benchmark::State& st) {
  const auto dt = static_cast<DType>(st.range(0));
  const int64_t M = st.range(1);
  const auto isa = static_cast<Isa>(st.range(3));
  if (!isa_supported(isa)) return st.SkipWithError("ISA not supported by this CPU");
  const Isa saved = active_isa();
  set_isa(isa);
  const WeightView& w = weight(dt);
  std::vector<float> x(M * w.cols), y(M * w.rows);
  uint64_t s = 7;
  for (float& v : x) v = unit(s);
  ThreadPool* p = pool(static_cast<int>(st.range(2)));
  for (auto _ : st) {
    gemm_nt(x.data(), w.cols, M, w, y.data(), w.rows, p);
    benchmark::DoNotOptimize(y.data());
  }
  set_isa(saved);
  const int64_t scale_bytes = is_grouped(dt) ? w.rows * ((w.cols + 31) / 32) * 4 : 0;  // I8 / I4 group scales
  st.SetBytesProcessed(st.iterations() * (w.bytes() + scale_bytes));
  st.counters["frac_peak_bw"] = benchmark::Counter(
      static_cast<double>(w.bytes()) * st.iterations() / peak_read_bytes_per_s(static_cast<int>(st.range(2))),
      benchmark::Counter::kIsRate);
  st.counters["GFLOPS"] = benchmark::Counter(2.0 * M * w.rows * w.cols * st.iterations() / 1e9,
                                             benchmark::Counter::kIsRate);
  st.SetLabel(std::string(dtype_name(dt)) + " " + isa_name(isa) + " " +
              std::to_string(w.rows) + "x" + std::to_string(w.cols));
}

void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "M", "threads", "isa"});
  for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3, DType::I8, DType::I4})
    for (int64_t M : {1, 8, 32})
      for (int64_t threads : {1, 2})
        for (Isa isa : {Isa::AVX512, Isa::AVX2})
          b->Args({static_cast<int64_t>(dt), M, threads, static_cast<int64_t>(isa)});
  for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3, DType::I8, DType::I4})  // prefill: the sgemm path
    b->Args({static_cast<int64_t>(dt), 128, 2, static_cast<int64_t>(best_isa())});
}
BENCHMARK(BM_Gemm)->Apply(gemm_args)->UseRealTime()->MinTime(0.3)->Unit(benchmark::kMillisecond);

// ---- Compute peaks (kept apart from the dtype argument lists above) ----

// Args: threads. f32 sgemm of OpenBLAS on 1024^3, split over our pool by columns as gemm.cpp
// does (OpenBLAS itself single-threaded): the f32 compute peak the prefill path can reach.
void BM_SgemmPeak(benchmark::State& st) {
  constexpr int64_t n = 1024;
  openblas_set_num_threads(1);
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  ThreadPool* p = pool(static_cast<int>(st.range(0)));
  auto body = [&](int64_t c0, int64_t c1, int) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, static_cast<int>(c1 - c0), n, 1.0f, a.data(), n,
                b.data() + c0 * n, n, 0.0f, c.data() + c0, n);
  };
  for (auto _ : st) {
    if (p) p->parallel_for(n, 64, body);
    else body(0, n, 0);
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOPS"] = benchmark::Counter(2.0 * n * n * n * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SgemmPeak)->Arg(1)->Arg(2)->UseRealTime()->MinTime(0.5)->Unit(benchmark::kMillisecond);

// Args: M, threads. The prefill GEMM on a BF16 [7168, 2048] weight (28 MB, beyond the caches):
// the AVX512_BF16 path when the CPU has it (label says which), else the sgemm path.
void BM_PrefillBf16(benchmark::State& st) {
  const int64_t M = st.range(0), N = 7168, K = 2048;
  static std::vector<uint16_t> wb;
  if (wb.empty()) {
    wb.resize(N * K);
    uint64_t s = 3;
    for (auto& h : wb) h = f32_to_bf16(unit(s));
  }
  const WeightView w{DType::BF16, wb.data(), N, K, K};
  std::vector<float> x(M * K), y(M * N);
  uint64_t s = 9;
  for (float& v : x) v = unit(s);
  ThreadPool* p = pool(static_cast<int>(st.range(1)));
  set_bf16_activations(st.range(2) != 0);  // the path is opt-in (--bf16-activations)
  for (auto _ : st) {
    gemm_nt(x.data(), K, M, w, y.data(), N, p);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOPS"] = benchmark::Counter(2.0 * M * N * K * st.iterations() / 1e9, benchmark::Counter::kIsRate);
  st.SetLabel(gemm_nt_rounds_x_to_bf16(w, M) ? "avx512_bf16" : "f32 path");
  set_bf16_activations(false);
}
// bf16:0 is the default f32 path on the same weights, for the ratio.
BENCHMARK(BM_PrefillBf16)
    ->ArgNames({"M", "threads", "bf16"})
    ->ArgsProduct({{2, 3, 4, 8, 16, 32, 128, 512}, {1, 2}, {0, 1}})
    ->UseRealTime()
    ->MinTime(0.3)
    ->Unit(benchmark::kMillisecond);

// Args: context, tokens, naive. Absorbed-MLA attention at DeepSeek's latent width (Dk 576 =
// 512 + 64, Dv 512), 16 heads, 64-row cache blocks, 1 thread: `tokens` new tokens (the last of
// a `context`-long sequence, causal) against the cache. naive:1 is the per-(token, head) loop
// the runtime used before (dot over every position, softmax, axpy), for the ratio. GFLOPS
// counts 2 * (Dk + Dv) per (row, visible position); SgemmPeak above is the ceiling.
void BM_LatentAttention(benchmark::State& st) {
  constexpr int64_t H = 16, Dk = 576, Dv = 512, bs = 64;
  const int64_t ctx = st.range(0), T = st.range(1), n_blocks = (ctx + bs - 1) / bs, Nq = T * H;
  std::vector<float> cache(n_blocks * bs * Dk), q(Nq * Dk), o(Nq * Dv);
  uint64_t s = 5;
  for (float& v : cache) v = unit(s);
  for (float& v : q) v = unit(s) * 0.05f;
  std::vector<const float*> blocks(n_blocks);
  for (int64_t b = 0; b < n_blocks; ++b) blocks[b] = cache.data() + b * bs * Dk;
  std::vector<int64_t> last(Nq);
  for (int64_t i = 0; i < Nq; ++i) last[i] = ctx - T + i / H;
  std::vector<float> scratch(latent_attention_scratch_floats(Nq, bs, Dk)), sc(ctx);
  double visible = 0;
  for (int64_t i = 0; i < Nq; ++i) visible += static_cast<double>(last[i] + 1);
  for (auto _ : st) {
    if (st.range(2) == 0) {
      latent_attention(q.data(), Dk, Nq, last.data(), blocks.data(), n_blocks, bs, Dk, Dk, Dv, 0.07f,
                       o.data(), Dv, scratch.data());
    } else {
      for (int64_t i = 0; i < Nq; ++i) {
        for (int64_t p = 0; p <= last[i]; ++p) sc[p] = dot(q.data() + i * Dk, blocks[p / bs] + p % bs * Dk, Dk) * 0.07f;
        softmax(sc.data(), last[i] + 1);
        float* oi = o.data() + i * Dv;
        std::fill(oi, oi + Dv, 0.0f);
        for (int64_t p = 0; p <= last[i]; ++p) axpy(sc[p], blocks[p / bs] + p % bs * Dk, oi, Dv);
      }
    }
    benchmark::DoNotOptimize(o.data());
  }
  st.counters["GFLOPS"] =
      benchmark::Counter(2.0 * (Dk + Dv) * visible * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LatentAttention)
    ->ArgNames({"context", "tokens", "naive"})
    ->ArgsProduct({{1024, 4096}, {1, 256}, {0, 1}})
    ->UseRealTime()
    ->MinTime(0.3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
