#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "runtime/error.h"

namespace dsrt {

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    throw Error(fmt::format("temperature {} must be a finite number >= 0", p.temperature));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw Error(fmt::format("top_p {} must be in (0, 1]", p.top_p));
  if (p.top_k < 0) throw Error(fmt::format("top_k {} must be >= 0 (0 = no limit)", p.top_k));
}

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t Sampler::sample(const float* logits, int64_t V, const SamplingParams& p) {
  if (p.temperature == 0.0f) return argmax(logits, V);
  const float inv_t = 1.0f / p.temperature;
  const float mx = logits[argmax(logits, V)] * inv_t;
  const bool limit_k = p.top_k > 0 && p.top_k < V;
  if (!limit_k && p.top_p >= 1.0f) {
    // Plain temperature sampling: no candidate list, two passes over the logits.
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(logits[i] * inv_t - mx);
    double u = std::uniform_real_distribution<double>(0.0, sum)(rng_);
    for (int64_t i = 0; i < V; ++i)
      if ((u -= std::exp(logits[i] * inv_t - mx)) < 0) return static_cast<int32_t>(i);
    return argmax(logits, V);  // rounding left u >= 0: the last candidate with mass
  }
  cand_.resize(V);
  for (int64_t i = 0; i < V; ++i) cand_[i] = {logits[i] * inv_t, static_cast<int32_t>(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  // The kept candidates are a prefix of the logits in descending order; sort only as long a
  // prefix as needed (a full sort of a 129k vocabulary costs ~10 ms per token).
  const int64_t n_max = limit_k ? p.top_k : V;
  double total = 0;  // softmax mass over the first n_max candidates
  if (limit_k) {
    std::partial_sort(cand_.begin(), cand_.begin() + n_max, cand_.end(), by_logit);
    for (int64_t i = 0; i < n_max; ++i) total += std::exp(cand_[i].first - mx);
  } else {
    for (int64_t i = 0; i < V; ++i) total += std::exp(cand_[i].first - mx);
  }
  int64_t n = n_max;
  if (p.top_p < 1.0f) {  // the smallest prefix whose mass reaches top_p
    int64_t sorted = limit_k ? n_max : 0;
    double acc = 0;
    for (int64_t i = 0;; ++i) {
      if (i == n_max) break;
      if (i == sorted) {  // grow the sorted prefix geometrically
        const int64_t next = std::min(n_max, std::max<int64_t>(64, sorted * 4));
        std::partial_sort(cand_.begin() + sorted, cand_.begin() + next, cand_.end(), by_logit);
        sorted = next;
      }
      acc += std::exp(cand_[i].first - mx);
      if (acc >= p.top_p * total) {
        n = i + 1;
        break;
      }
    }
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (cand_[i].first = std::exp(cand_[i].first - mx));
  double u = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  for (int64_t i = 0; i < n; ++i) {
    u -= cand_[i].first;
    if (u < 0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace dsrt
