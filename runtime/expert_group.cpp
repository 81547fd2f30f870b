#include "runtime/expert_group.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/weights.h"

namespace dsrt {

ExpertPlacement ExpertPlacement::contiguous(int64_t n_experts, int ep_size) {
  if (ep_size <= 0 || n_experts % ep_size)
    throw Error(fmt::format("n_routed_experts {} is not divisible by expert_parallel {}", n_experts, ep_size));
  ExpertPlacement p;
  p.ep_size = ep_size;
  p.owners.resize(n_experts);
  const int64_t per = n_experts / ep_size;
  for (int64_t e = 0; e < n_experts; ++e) p.owners[e] = {static_cast<int>(e / per)};
  return p;
}

std::vector<bool> ExpertPlacement::owned_by(int ep_rank) const {
  std::vector<bool> owns(owners.size(), false);
  for (size_t e = 0; e < owners.size(); ++e)
    owns[e] = std::find(owners[e].begin(), owners[e].end(), ep_rank) != owners[e].end();
  return owns;
}

MoeScheme parse_moe_scheme(const std::string& s) {
  if (s == "alltoall") return MoeScheme::AllToAll;
  if (s == "allreduce") return MoeScheme::AllReduce;
  throw Error(fmt::format("unknown MoE exchange '{}' (alltoall, allreduce)", s));
}

ExpertGroup::ExpertGroup(MoeScheme scheme, ExpertPlacement placement)
    : scheme_(scheme), placement_(std::move(placement)) {
  stats_.tokens_per_expert.assign(placement_.owners.size(), 0);
}

void ExpertGroup::forward(const Ctx& ctx, const MoeWeights& w, int64_t layer, const float* x, int64_t T, int64_t D,
                          const Routes& r, float* out, int micro_batches, const std::function<void()>& local) {
  const int P = ctx.ep ? ctx.ep->size() : 1;
  if (P != placement_.ep_size)
    throw std::logic_error(fmt::format("expert group of {} ranks, placement for {}", P, placement_.ep_size));
  if (micro_batches != 1 && micro_batches != 2)
    throw std::logic_error(fmt::format("expert group: {} micro-batches (1 or 2)", micro_batches));
  if (P == 1) {
    run_local(ctx, w, x, D, T, D, r.k, r.experts.data(), r.k, r.weights.data(), r.k, out);
  } else if (scheme_ == MoeScheme::AllToAll) {
    const int64_t k = r.k, rec = D + 2 * k;
    auto experts = [&](const float* records, int64_t n, float* result) {
      run_local(ctx, w, records, rec, n, D, k, reinterpret_cast<const int32_t*>(records + D), rec, records + D + k,
                rec, result);
    };
    all_to_all(*ctx.ep, layer, x, T, D, r, out, micro_batches, experts, local);
    return;
  } else {
    if (static_cast<int64_t>(stats_.layers.size()) <= layer) stats_.layers.resize(layer + 1);
    all_reduce(ctx, w, layer, x, T, D, r, out);
  }
  if (local) local();
}

void ExpertGroup::run_local(const Ctx& ctx, const MoeWeights& w, const float* x, int64_t ldx, int64_t N, int64_t D,
                            int64_t k, const int32_t* ids, int64_t ld_ids, const float* weights, int64_t ld_w,
                            float* out) {
  const int64_t E = static_cast<int64_t>(w.experts.size());
  // Group the (row, slot) pairs by expert, in row order: order_[offsets_[e] .. offsets_[e + 1]).
  offsets_.assign(E + 1, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < k; ++i)
      if (ids[n * ld_ids + i] >= 0) ++offsets_[ids[n * ld_ids + i] + 1];
  for (int64_t e = 0; e < E; ++e) offsets_[e + 1] += offsets_[e];
  order_.resize(offsets_[E]);
  fill_.assign(offsets_.begin(), offsets_.end() - 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < k; ++i)
      if (int32_t e = ids[n * ld_ids + i]; e >= 0) order_[fill_[e]++] = static_cast<int32_t>(n * k + i);

  std::fill(out, out + N * D, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = offsets_[e + 1] - offsets_[e];
    if (n == 0) continue;
    if (progress_) progress_->progress();  // the other micro-batch's exchange moves meanwhile
    if (!w.experts[e].w1.data)
      throw std::logic_error(fmt::format("token routed to expert {} which this rank does not hold", e));
    stats_.tokens_per_expert[e] += n;
    xs_.resize(n * D);  // [n, D] the expert's tokens
    ys_.resize(n * D);  // [n, D] its outputs
    const int32_t* items = order_.data() + offsets_[e];
    for (int64_t j = 0; j < n; ++j) std::memcpy(xs_.data() + j * D, x + (items[j] / k) * ldx, D * sizeof(float));
    mlp_forward(ctx, w.experts[e], xs_.data(), D, n, ys_.data(), mlp_);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t row = items[j] / k, slot = items[j] % k;
      kernels::axpy(weights[row * ld_w + slot], ys_.data() + j * D, out + row * D, D);
    }
  }
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

// A record sent to a rank: the token's hidden state, then k expert ids (-1: not on that rank)
// and k weights, all as 4-byte words. Records per destination are in token order.
void ExpertGroup::pack(MicroBatch& m, int P, const float* x, int64_t D, const Routes& r) {
  const int64_t k = r.k, rec = D + 2 * k, T = m.T;
  m.send_n.assign(P, 0);
  ids_.assign(T * P, 0);  // [T, P] 1 if token t0 + t goes to rank p
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < k; ++i) {
      const int64_t tok = m.t0 + t;
      const int p = placement_.serving_rank(r.experts[tok * k + i], tok);
      if (!ids_[t * P + p]) {
        ids_[t * P + p] = 1;
        ++m.send_n[p];
      }
    }
  m.send_off.assign(P, 0);
  for (int p = 1; p < P; ++p) m.send_off[p] = m.send_off[p - 1] + m.send_n[p - 1];
  m.n_send = m.send_off[P - 1] + m.send_n[P - 1];
  m.send.resize(std::max<int64_t>(m.n_send * rec, 1));
  m.src_token.resize(m.n_send);
  send_n_.assign(m.send_off.begin(), m.send_off.end());  // next free record per destination
  for (int64_t t = 0; t < T; ++t) {
    const int64_t tok = m.t0 + t;
    for (int p = 0; p < P; ++p) {
      if (!ids_[t * P + p]) continue;
      const int64_t j = send_n_[p]++;
      m.src_token[j] = static_cast<int32_t>(tok);
      float* dst = m.send.data() + j * rec;
      std::memcpy(dst, x + tok * D, D * sizeof(float));
      auto* eids = reinterpret_cast<int32_t*>(dst + D);
      float* wts = dst + D + k;
      for (int64_t i = 0; i < k; ++i) {
        const int32_t e = r.experts[tok * k + i];
        const bool here = placement_.serving_rank(e, tok) == p;
        eids[i] = here ? e : -1;
        wts[i] = here ? r.weights[tok * k + i] : 0.0f;
      }
    }
  }
}

// Needs m.recv_n (the counts exchange).
void ExpertGroup::start_dispatch(comm::Communicator& ep, MicroBatch& m, int64_t rec, const char* what) {
  const int P = ep.size();
  m.recv_off.assign(P, 0);
  for (int p = 1; p < P; ++p) m.recv_off[p] = m.recv_off[p - 1] + m.recv_n[p - 1];
  m.n_recv = m.recv_off[P - 1] + m.recv_n[P - 1];
  m.recv.resize(std::max<int64_t>(m.n_recv * rec, 1));
  m.bytes.resize(8 * P);
  int64_t *sb = m.bytes.data(), *so = sb + P, *rb = so + P, *ro = rb + P;
  for (int p = 0; p < P; ++p) {
    sb[p] = m.send_n[p] * rec * 4;
    so[p] = m.send_off[p] * rec * 4;
    rb[p] = m.recv_n[p] * rec * 4;
    ro[p] = m.recv_off[p] * rec * 4;
  }
  m.ticket = ep.start_all_to_all_v(m.send.data(), sb, so, m.recv.data(), rb, ro, what);
}

// The weighted sums travel back the way the tokens came.
void ExpertGroup::start_combine(comm::Communicator& ep, MicroBatch& m, int64_t D, const char* what) {
  const int P = ep.size();
  m.back.resize(std::max<int64_t>(m.n_send * D, 1));
  int64_t *sb = m.bytes.data() + 4 * P, *so = sb + P, *rb = so + P, *ro = rb + P;
  for (int p = 0; p < P; ++p) {
    sb[p] = m.recv_n[p] * D * 4;
    so[p] = m.recv_off[p] * D * 4;
    rb[p] = m.send_n[p] * D * 4;  // what comes back to this rank
    ro[p] = m.send_off[p] * D * 4;
  }
  m.ticket = ep.start_all_to_all_v(m.result.data(), sb, so, m.back.data(), rb, ro, what);
}

// One micro-batch: counts, dispatch, experts, combine, each waited in turn. Two: both counts in
// one exchange, then dispatch A, dispatch B | experts A, combine A | experts B, combine B |
// local work; the waits are the exposed communication that ExpertStats times.
void ExpertGroup::exchange(comm::Communicator& ep, int64_t layer, const float* x, int64_t T, int64_t D,
                           const Routes& r, float* out, int micro_batches, const RecordFn& experts) {
  if (ep.size() != placement_.ep_size)
    throw std::logic_error(fmt::format("expert group of {} ranks, placement for {}", ep.size(), placement_.ep_size));
  if (micro_batches != 1 && micro_batches != 2)
    throw std::logic_error(fmt::format("expert group: {} micro-batches (1 or 2)", micro_batches));
  all_to_all(ep, layer, x, T, D, r, out, micro_batches, experts, {});
}

template <class Experts>
void ExpertGroup::all_to_all(comm::Communicator& ep, int64_t layer, const float* x, int64_t T, int64_t D,
                             const Routes& r, float* out, int micro_batches, const Experts& experts,
                             const std::function<void()>& local) {
  const int P = ep.size(), M = micro_batches;
  const int64_t k = r.k, rec = D + 2 * k;  // floats per record
  char what_d[64], what_c[64];
  std::snprintf(what_d, sizeof(what_d), "layer %lld experts dispatch", static_cast<long long>(layer));
  std::snprintf(what_c, sizeof(what_c), "layer %lld experts combine", static_cast<long long>(layer));
  if (static_cast<int64_t>(stats_.layers.size()) <= layer) stats_.layers.resize(layer + 1);
  ExpertStats::Layer& st = stats_.layers[layer];
  ++st.calls;

  const int64_t half = M == 2 ? (T + 1) / 2 : T;
  mb_[0].t0 = 0;
  mb_[0].T = half;
  mb_[1].t0 = half;
  mb_[1].T = T - half;
  for (int i = 0; i < M; ++i) pack(mb_[i], P, x, D, r);

  Clock::time_point t0 = Clock::now();
  if (M == 1) {
    mb_[0].recv_n.assign(P, 0);
    ep.all_to_all_counts(mb_[0].send_n.data(), mb_[0].recv_n.data(), what_d);
  } else {  // [P, 2] both micro-batches' counts per peer in one exchange
    counts2_.resize(4 * P);
    int64_t *cs = counts2_.data(), *cr = cs + 2 * P;
    for (int p = 0; p < P; ++p) cs[2 * p] = mb_[0].send_n[p], cs[2 * p + 1] = mb_[1].send_n[p];
    send_n_.resize(4 * P);
    for (int p = 0; p < P; ++p) {
      send_n_[p] = 16;                // bytes to each peer
      send_n_[P + p] = 16 * p;        // offsets
    }
    ep.all_to_all_v(cs, send_n_.data(), send_n_.data() + P, cr, send_n_.data(), send_n_.data() + P, what_d);
    for (int i = 0; i < 2; ++i) {
      mb_[i].recv_n.resize(P);
      for (int p = 0; p < P; ++p) mb_[i].recv_n[p] = cr[2 * p + i];
    }
  }
  for (int i = 0; i < M; ++i) start_dispatch(ep, mb_[i], rec, what_d);
  st.dispatch_s += since(t0);

  for (int i = 0; i < M; ++i) {
    MicroBatch& m = mb_[i];
    t0 = Clock::now();
    ep.wait_all_to_all_v(m.ticket);
    st.dispatch_s += since(t0);
    // This rank's experts on the records it received; the exchanges in flight progress between experts.
    m.result.resize(std::max<int64_t>(m.n_recv * D, 1));
    progress_ = M > 1 ? &ep : nullptr;
    experts(m.recv.data(), m.n_recv, m.result.data());
    progress_ = nullptr;
    t0 = Clock::now();
    start_combine(ep, m, D, what_c);
    st.combine_s += since(t0);
  }
  if (M > 1 && local) local();

  // A token's first returned sum is copied, the others added: no zeroing pass over out.
  written_.assign(T, 0);  // [T] 1 once out row t holds a sum
  for (int i = 0; i < M; ++i) {
    MicroBatch& m = mb_[i];
    t0 = Clock::now();
    ep.wait_all_to_all_v(m.ticket);
    st.combine_s += since(t0);
    for (int64_t j = 0; j < m.n_send; ++j) {
      const int32_t t = m.src_token[j];
      if (written_[t]) {
        kernels::axpy(1.0f, m.back.data() + j * D, out + t * D, D);
      } else {
        std::memcpy(out + t * D, m.back.data() + j * D, D * sizeof(float));
        written_[t] = 1;
      }
    }
    for (int p = 0; p < P; ++p) {
      const int64_t sent = (m.send_n[p] * rec + m.recv_n[p] * D) * 4, got = (m.recv_n[p] * rec + m.send_n[p] * D) * 4;
      stats_.bytes_sent += sent;
      stats_.bytes_received += got;
      st.bytes_sent += sent;
      st.bytes_received += got;
    }
  }
  for (int64_t t = 0; t < T; ++t)
    if (!written_[t]) std::fill(out + t * D, out + (t + 1) * D, 0.0f);  // routed to no rank
  if (M == 1 && local) local();
}

void ExpertGroup::all_reduce(const Ctx& ctx, const MoeWeights& w, int64_t layer, const float* x, int64_t T,
                             int64_t D, const Routes& r, float* out) {
  comm::Communicator& ep = *ctx.ep;
  const int P = ep.size(), me = ep.rank();
  const int64_t k = r.k, rec = D + 2 * k;
  const std::string what = fmt::format("layer {} experts (all-reduce baseline)", layer);
  ExpertStats::Layer& st = stats_.layers[layer];
  ++st.calls;
  Clock::time_point t0 = Clock::now();
  // Every rank's token count, then pad to the largest.
  send_n_.assign(P, T);
  recv_n_.assign(P, 0);
  ep.all_to_all_counts(send_n_.data(), recv_n_.data(), what.c_str());
  st.dispatch_s += since(t0);
  const int64_t Tm = *std::max_element(recv_n_.begin(), recv_n_.end());
  send_.assign(std::max<int64_t>(Tm * rec, 1), 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    float* dst = send_.data() + t * rec;
    std::memcpy(dst, x + t * D, D * sizeof(float));
    auto* eids = reinterpret_cast<int32_t*>(dst + D);
    for (int64_t i = 0; i < k; ++i) {
      eids[i] = r.experts[t * k + i];
      dst[D + k + i] = r.weights[t * k + i];
    }
  }
  for (int64_t t = T; t < Tm; ++t) {
    auto* eids = reinterpret_cast<int32_t*>(send_.data() + t * rec + D);
    std::fill(eids, eids + k, -1);  // padding rows route nowhere
  }
  recv_.resize(std::max<int64_t>(P * Tm * rec, 1));
  t0 = Clock::now();
  ep.all_gather(send_.data(), Tm * rec, recv_.data(), what.c_str());
  st.dispatch_s += since(t0);
  // Keep only the (token, expert) pairs this rank serves.
  for (int p = 0; p < P; ++p)
    for (int64_t t = 0; t < Tm; ++t) {
      auto* eids = reinterpret_cast<int32_t*>(recv_.data() + (p * Tm + t) * rec + D);
      for (int64_t i = 0; i < k; ++i)
        if (eids[i] >= 0 && placement_.serving_rank(eids[i], t) != me) eids[i] = -1;
    }
  result_.resize(std::max<int64_t>(P * Tm * D, 1));
  run_local(ctx, w, recv_.data(), rec, P * Tm, D, k, reinterpret_cast<const int32_t*>(recv_.data() + D), rec,
            recv_.data() + D + k, rec, result_.data());
  back_.resize(std::max<int64_t>(Tm * D, 1));
  t0 = Clock::now();
  ep.reduce_scatter_sum(result_.data(), back_.data(), Tm * D, what.c_str());
  st.combine_s += since(t0);
  std::copy(back_.begin(), back_.begin() + T * D, out);
  stats_.bytes_sent += (P - 1) * Tm * (rec + D) * 4;
  stats_.bytes_received += (P - 1) * Tm * (rec + D) * 4;
  st.bytes_sent += (P - 1) * Tm * (rec + D) * 4;
  st.bytes_received += (P - 1) * Tm * (rec + D) * 4;
}

}  // namespace dsrt
