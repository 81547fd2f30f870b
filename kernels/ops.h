#pragma once
// Element-wise and row-wise operations on f32 activations. Pure functions on pointers and sizes.
#include <cstdint>

namespace dsrt::kernels {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * gamma, for rows r < n_rows of width dim.
// x and y rows are ldx / ldy apart; y may alias x.
void rms_norm(const float* x, int64_t ldx, const float* gamma, float eps, int64_t n_rows,
              int64_t dim, float* y, int64_t ldy);

// The residual step before a norm in one pass over h: h[r, :] += d[r, :], then y[r, :] =
// rms_norm(h[r, :]) while the row is in cache. Rows ldh / ldd / ldy apart; y must not alias h or d.
void add_rms_norm(float* h, int64_t ldh, const float* d, int64_t ldd, const float* gamma, float eps,
                  int64_t n_rows, int64_t dim, float* y, int64_t ldy);

// out[i] = silu(gate[i]) * up[i] for i < n; out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// In-place numerically stable softmax over x[0..n).
void softmax(float* x, int64_t n);

// In-place rotary embedding of interleaved pairs: (x[2i], x[2i+1]) rotated by angle i, given
// cos_sin[2i] = cos, cos_sin[2i + 1] = sin, for i < n_pairs.
void rope_interleaved(float* x, const float* cos_sin, int64_t n_pairs);

float dot(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);

// Indices of the k largest values of x[0..n), largest first; ties keep the lower index first.
// Requires 0 < k <= n.
void top_k(const float* x, int64_t n, int64_t k, int32_t* indices);

}  // namespace dsrt::kernels
