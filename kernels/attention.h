#pragma once
// Causal attention over a paged latent cache (absorbed MLA), tiled with an online softmax.
// Pure functions on pointers and sizes.
#include <cstddef>
#include <cstdint>

namespace dsrt::kernels {

// o[i, :Dv] = sum over p <= last[i] of softmax_p(scale * q[i, :Dk] · key(p)) * value(p).
//
// Position p is row (p % block_rows) of blocks[p / block_rows], rows ld_kv floats apart; key(p)
// is that row's first Dk floats and value(p) its first Dv (absorbed MLA: cache row = [latent C |
// k_pe R], query row = [q_abs C | q_pe R], Dk = C + R, Dv = C). Rows past max(last) are never
// read, so the final block may be partly written.
//   q: [Nq, Dk] rows ldq apart;  last: [Nq], each in [0, n_blocks * block_rows);
//   o: [Nq, Dv] rows ldo apart (the padding past Dv is not touched; o must not overlap q or the
//   cache);  scratch: latent_attention_scratch_floats(Nq, block_rows, Dk) floats, any contents.
//
// Tiles of up to 64 consecutive query rows read each cached row once per tile, so the heads of a
// decode token share one pass over the cache. A tile costs as much as its largest last: keep rows
// with similar last adjacent (decode heads and prefill token-major order already are); any order
// is correct. Single-threaded (OpenBLAS sgemm on 1 thread): callers split rows or sequences over
// their pool, one scratch per thread.
// Throws std::invalid_argument for bad sizes, leading dimensions, last values or null pointers.
void latent_attention(const float* q, int64_t ldq, int64_t Nq, const int64_t* last,
                      const float* const* blocks, int64_t n_blocks, int64_t block_rows,
                      int64_t ld_kv, int64_t Dk, int64_t Dv, float scale, float* o, int64_t ldo,
                      float* scratch);

// Floats of scratch latent_attention needs for these sizes (0 when Nq == 0).
size_t latent_attention_scratch_floats(int64_t Nq, int64_t block_rows, int64_t Dk);

}  // namespace dsrt::kernels
