// Element-wise and row-wise operations. dot/axpy go through the ISA table; the rest are plain
// loops the compiler vectorizes (they are a small share of a decode step).
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernel_table.h"

namespace dsrt::kernels {

float dot(const float* a, const float* b, int64_t n) {
  return detail::active_kernels().dot(a, b, n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  detail::active_kernels().axpy(a, x, y, n);
}

void rms_norm(const float* x, int64_t ldx, const float* gamma, float eps, int64_t n_rows,
              int64_t dim, float* y, int64_t ldy) {
  const auto& kt = detail::active_kernels();
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const float ss = kt.dot(xr, xr, dim);
    const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ss) / dim + eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv * gamma[i];
  }
}

void add_rms_norm(float* h, int64_t ldh, const float* d, int64_t ldd, const float* gamma, float eps,
                  int64_t n_rows, int64_t dim, float* y, int64_t ldy) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* hr = h + r * ldh;
    const float* dr = d + r * ldd;
    float* yr = y + r * ldy;
    for (int64_t i = 0; i < dim; ++i) hr[i] += dr[i];
    rms_norm(hr, ldh, gamma, eps, 1, dim, yr, ldy);  // the row (28 KB at hidden 7168) is in cache
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  // All -inf (a fully masked row): a uniform distribution rather than NaNs.
  if (mx == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / static_cast<float>(n);
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope_interleaved(float* x, const float* cos_sin, int64_t n_pairs) {
  for (int64_t i = 0; i < n_pairs; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

void top_k(const float* x, int64_t n, int64_t k, int32_t* indices) {
  k = std::min(k, n);
  if (k <= 0) return;
  // Insertion into a sorted list of k: O(n) for typical data, no allocation. NaN ranks below
  // every number; among equals the lower index stays first.
  auto key = [&](int64_t i) {
    return std::isnan(x[i]) ? -std::numeric_limits<float>::infinity() : x[i];
  };
  auto before = [&](int64_t i, int64_t j) {  // i ranks before j
    const float a = key(i), b = key(j);
    return a > b || (a == b && i < j);
  };
  int64_t len = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (len == k && !before(i, indices[k - 1])) continue;
    int64_t p = len < k ? len++ : k - 1;
    while (p > 0 && before(i, indices[p - 1])) {
      indices[p] = indices[p - 1];
      --p;
    }
    indices[p] = static_cast<int32_t>(i);
  }
}

}  // namespace dsrt::kernels
