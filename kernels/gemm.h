#pragma once
// Matrix products of f32 activations with weights in their stored dtype (see weight_view.h for
// the convention). Small M reads the weight once in its stored format with SIMD kernels chosen
// at run time (memory-bound decode); large M dequantizes tiles and calls OpenBLAS sgemm.
#include <cstdint>

#include "kernels/weight_view.h"

namespace dsrt::kernels {

class ThreadPool;

// y[M, N] = x[M, K] · Wᵀ with W = [N, K]. x rows are ldx apart, y rows ldy apart (ldy >= N).
// Overwrites y. pool may be null (single-threaded).
void gemm_nt(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool);

// Whether gemm_nt(M rows, w) takes the AVX512_BF16 path, which rounds x to bf16 (relative
// error up to 2^-8 per element; kernels/gemm_bf16.h): BF16 weights, M >= 8, AVX-512 active and
// a CPU with AVX512_BF16, and only when enabled. Tests use it to pick their tolerance.
bool gemm_nt_rounds_x_to_bf16(const WeightView& w, int64_t M);
// Off by default: rounding activations to bf16 doubles the multiply-adds per instruction of
// prefill but moves the tiny golden checkpoints' logits by more than their 2e-2 tolerance
// (`--bf16-activations` turns it on for a run; bench/README.md has both speeds).
void set_bf16_activations(bool on);
bool bf16_activations();

// y[M, N] = x[M, K] · W with W = [K, N] (K = w.rows, N = w.cols). Overwrites y.
void gemm_nn(const float* x, int64_t ldx, int64_t M, const WeightView& w, float* y, int64_t ldy,
             ThreadPool* pool);

// out[count, w.cols] = rows [first, first + count) of w as f32.
void dequantize_rows(const WeightView& w, int64_t first, int64_t count, float* out);

// Instruction sets the kernels are built for; the best one the CPU supports is used unless a
// test or a user forces another (set_isa throws std::invalid_argument if the CPU lacks it).
enum class Isa : uint8_t { Scalar, AVX2, AVX512 };
Isa best_isa();
Isa active_isa();
void set_isa(Isa isa);
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

}  // namespace dsrt::kernels
