// bench_collectives: collective throughput in the style of nccl-tests / OSU.
//
//   mpirun -n 4 --bind-to none bench_collectives [--min-bytes 1K] [--max-bytes 64M] [--factor 4]
//                                                [--iters N] [--warmup N] [--json FILE]
//
// For each size S (bytes each rank sends in total, split evenly over the ranks) and each case:
// warm-up, then `iters` timed iterations; the received bytes are checked after the timed loop.
// Each rank's time per iteration is reduced to min/avg/max over ranks; algbw = S / avg,
// busbw = algbw × (P - 1) / P (the share that crosses between ranks). Rank 0 prints the table.
//
// Then the expert exchange (--hidden D, --max-tokens T, --no-expert to skip it): for T tokens per
// rank (1, 4, 16, ... up to --max-tokens) with synthetic routes (k = 2 of 2 experts per rank,
// spread over all ranks), dsrt's dispatch + combine (runtime/expert_group.h ExpertGroup::exchange:
// packing, counts exchange, MPI_Ialltoallv there and back, unpacking; the stand-in experts scale
// each token by its weights) in one and two micro-batches, against two raw MPI_Alltoallv of
// exactly the same per-peer byte counts. Bytes = what a rank sends in both directions (self
// included, as MPI counts it); % raw = raw time / dsrt time. The combined result is checked:
// every token must come back as (sum of its weights) x its hidden state.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/mpi_communicator.h"
#include "comm/session.h"
#include "runtime/expert_group.h"

namespace {

using dsrt::comm::MpiCommunicator;

// Buffers and counts of one size, shared by the cases.
struct Ctx {
  MpiCommunicator* comm = nullptr;
  int rank = 0, size = 1;
  int64_t bytes = 0;  // per rank, in total
  std::vector<int64_t> send_bytes, send_off, recv_bytes, recv_off;
  std::vector<int> isend_bytes, isend_off, irecv_bytes, irecv_off;  // the raw MPI call's ints
  std::vector<uint8_t> send, recv;
};

uint8_t pattern(int src, int dst, int64_t i) { return static_cast<uint8_t>(src * 29 + dst * 13 + i * 7 + (i >> 9)); }

void prepare(Ctx& c, int64_t bytes) {
  const int P = c.size;
  c.bytes = bytes;
  for (auto* v : {&c.send_bytes, &c.send_off, &c.recv_bytes, &c.recv_off}) v->assign(P, 0);
  for (auto* v : {&c.isend_bytes, &c.isend_off, &c.irecv_bytes, &c.irecv_off}) v->assign(P, 0);
  int64_t off = 0;
  for (int r = 0; r < P; ++r) {  // the remainder goes to the first peers
    c.send_bytes[r] = bytes / P + (r < bytes % P);
    c.send_off[r] = off;
    off += c.send_bytes[r];
  }
  c.comm->all_to_all_counts(c.send_bytes.data(), c.recv_bytes.data(), "bench counts");
  off = 0;
  for (int r = 0; r < P; ++r) c.recv_off[r] = off, off += c.recv_bytes[r];
  for (int r = 0; r < P; ++r) {
    c.isend_bytes[r] = static_cast<int>(c.send_bytes[r]);
    c.isend_off[r] = static_cast<int>(c.send_off[r]);
    c.irecv_bytes[r] = static_cast<int>(c.recv_bytes[r]);
    c.irecv_off[r] = static_cast<int>(c.recv_off[r]);
  }
  c.send.assign(bytes, 0);
  for (int r = 0; r < P; ++r)
    for (int64_t i = 0; i < c.send_bytes[r]; ++i) c.send[c.send_off[r] + i] = pattern(c.rank, r, i);
  c.recv.assign(off, 0);
}

int64_t check_exchange(const Ctx& c) {  // wrong bytes received by this rank
  int64_t wrong = 0;
  for (int s = 0; s < c.size; ++s)
    for (int64_t i = 0; i < c.recv_bytes[s]; ++i) wrong += c.recv[c.recv_off[s] + i] != pattern(s, c.rank, i);
  return wrong;
}

struct Case {
  std::string name;
  std::function<void(Ctx&)> run;          // one iteration
  std::function<int64_t(const Ctx&)> check;  // wrong bytes after the timed loop
};

std::vector<Case> cases() {
  std::vector<Case> list;
  list.push_back({"dsrt all_to_all_v",
                  [](Ctx& c) {
                    c.comm->all_to_all_v(c.send.data(), c.send_bytes.data(), c.send_off.data(), c.recv.data(),
                                         c.recv_bytes.data(), c.recv_off.data(), "bench all_to_all_v");
                  },
                  check_exchange});
  list.push_back({"raw MPI_Alltoallv",
                  [](Ctx& c) {
                    if (MPI_Alltoallv(c.send.data(), c.isend_bytes.data(), c.isend_off.data(), MPI_BYTE, c.recv.data(),
                                      c.irecv_bytes.data(), c.irecv_off.data(), MPI_BYTE, c.comm->native()) != MPI_SUCCESS)
                      dsrt::comm::abort_job("bench: MPI_Alltoallv failed");
                  },
                  check_exchange});
  return list;  // the expert exchange has its own sweep (expert_sweep)
}

// ---- Expert dispatch / combine ----------------------------------------------------------------

std::string human(int64_t b);  // below

struct Expert {
  int64_t T = 0, D = 0, k = 2;
  dsrt::Routes routes;
  std::vector<float> x, out;  // [T, D]
  // The raw baseline: per-peer bytes of dispatch and combine, as int arrays for MPI.
  std::vector<int> d_sc, d_sd, d_rc, d_rd, c_sc, c_sd, c_rc, c_rd;
  std::vector<char> d_send, d_recv, c_send, c_recv;
  int64_t bytes_sent = 0;  // per iteration, both directions
};

void prepare_expert(Expert& e, MpiCommunicator& comm, const dsrt::ExpertPlacement& pl, int64_t T, int64_t D) {
  const int P = comm.size(), me = comm.rank();
  const int64_t E = static_cast<int64_t>(pl.owners.size()), k = e.k, rec = D + 2 * k;
  e.T = T;
  e.D = D;
  e.routes.k = k;
  e.routes.experts.resize(T * k);
  e.routes.weights.resize(T * k);
  e.x.resize(T * D);
  e.out.assign(T * D, 0.0f);
  for (int64_t t = 0; t < T; ++t) {  // two distinct experts, spread over all ranks
    const int64_t a = (t * 7 + me * 3) % E, b = (a + 1 + (t * 5) % (E - 1)) % E;
    e.routes.experts[t * k] = static_cast<int32_t>(a);
    e.routes.experts[t * k + 1] = static_cast<int32_t>(b);
    e.routes.weights[t * k] = 0.25f + 0.01f * static_cast<float>(t % 7);
    e.routes.weights[t * k + 1] = 0.5f;
    for (int64_t d = 0; d < D; ++d) e.x[t * D + d] = static_cast<float>((me + 1) * 0.001 * ((t * 31 + d) % 97));
  }
  // Records per destination, exactly as the exchange packs them.
  std::vector<int64_t> n_send(P, 0), n_recv(P, 0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<bool> to(P, false);
    for (int64_t i = 0; i < k; ++i) to[pl.serving_rank(e.routes.experts[t * k + i], t)] = true;
    for (int p = 0; p < P; ++p) n_send[p] += to[p];
  }
  comm.all_to_all_counts(n_send.data(), n_recv.data(), "bench expert counts");
  for (auto* v : {&e.d_sc, &e.d_sd, &e.d_rc, &e.d_rd, &e.c_sc, &e.c_sd, &e.c_rc, &e.c_rd}) v->assign(P, 0);
  int64_t so = 0, ro = 0;
  e.bytes_sent = 0;
  for (int p = 0; p < P; ++p) {
    e.d_sc[p] = static_cast<int>(n_send[p] * rec * 4);
    e.d_rc[p] = static_cast<int>(n_recv[p] * rec * 4);
    e.c_sc[p] = static_cast<int>(n_recv[p] * D * 4);
    e.c_rc[p] = static_cast<int>(n_send[p] * D * 4);
    e.d_sd[p] = static_cast<int>(so * rec * 4);
    e.d_rd[p] = static_cast<int>(ro * rec * 4);
    e.c_sd[p] = static_cast<int>(ro * D * 4);
    e.c_rd[p] = static_cast<int>(so * D * 4);
    so += n_send[p];
    ro += n_recv[p];
    e.bytes_sent += e.d_sc[p] + e.c_sc[p];
  }
  e.d_send.assign(std::max<int64_t>(so * rec * 4, 1), 1);
  e.d_recv.assign(std::max<int64_t>(ro * rec * 4, 1), 0);
  e.c_send.assign(std::max<int64_t>(ro * D * 4, 1), 2);
  e.c_recv.assign(std::max<int64_t>(so * D * 4, 1), 0);
}

// Tokens whose combined sum is not (w_1 + ... + w_k) x x[t] (relative 1e-5).
int64_t check_expert(const Expert& e) {
  int64_t wrong = 0;
  for (int64_t t = 0; t < e.T; ++t) {
    const float w = e.routes.weights[t * e.k] + e.routes.weights[t * e.k + 1];
    bool ok = true;
    for (int64_t d = 0; d < e.D && ok; ++d) {
      const float want = w * e.x[t * e.D + d], got = e.out[t * e.D + d];
      ok = std::abs(got - want) <= 1e-5f * (1.0f + std::abs(want));
    }
    wrong += !ok;
  }
  return wrong;
}

int expert_sweep(MpiCommunicator& comm, int64_t D, int64_t max_tokens, int iters_opt, nlohmann::json& results) {
  const int P = comm.size();
  const dsrt::ExpertPlacement pl = dsrt::ExpertPlacement::contiguous(2 * P, P);
  dsrt::ExpertGroup group(dsrt::MoeScheme::AllToAll, pl);
  const int64_t k = 2, rec = D + 2 * k;
  // The stand-in experts: each record's hidden state times the sum of its weights here.
  double expert_s = 0;  // time inside the stand-in experts, which are not dispatch or combine
  const dsrt::ExpertGroup::RecordFn experts = [&](const float* r, int64_t n, float* result) {
    const double t0 = MPI_Wtime();
    for (int64_t j = 0; j < n; ++j) {
      const float* in = r + j * rec;
      const auto* ids = reinterpret_cast<const int32_t*>(in + D);
      float w = 0;
      for (int64_t i = 0; i < k; ++i) w += ids[i] >= 0 ? in[D + k + i] : 0.0f;
      for (int64_t d = 0; d < D; ++d) result[j * D + d] = w * in[d];
    }
    expert_s += MPI_Wtime() - t0;
  };
  if (comm.rank() == 0) {
    std::printf("# expert exchange: hidden %lld, k %lld, %d experts over %d ranks\n", static_cast<long long>(D),
                static_cast<long long>(k), 2 * P, P);
    std::printf("# %8s %12s  %-30s %6s %10s %10s %10s %11s %7s %9s %7s  %s\n", "tokens", "bytes/rank", "case", "iters",
                "min_us", "avg_us", "max_us", "algbw_GB/s", "% raw", "expert_us", "% raw", "check");
    std::printf("# expert_us: time in the stand-in experts per call (avg over ranks); the second %% raw excludes it\n");
  }
  int failures = 0;
  Expert e;
  for (int64_t T = 1; T <= max_tokens; T *= 4) {
    prepare_expert(e, comm, pl, T, D);
    const int iters = iters_opt > 0 ? iters_opt
                                    : static_cast<int>(std::clamp<int64_t>((64 << 20) / std::max<int64_t>(e.bytes_sent, 1), 5, 200));
    struct Run {
      const char* name;
      std::function<void()> once;
      std::function<int64_t()> check;
    };
    const std::vector<Run> runs = {
        {"raw MPI_Alltoallv x2",
         [&] {
           if (MPI_Alltoallv(e.d_send.data(), e.d_sc.data(), e.d_sd.data(), MPI_BYTE, e.d_recv.data(), e.d_rc.data(),
                             e.d_rd.data(), MPI_BYTE, comm.native()) != MPI_SUCCESS ||
               MPI_Alltoallv(e.c_send.data(), e.c_sc.data(), e.c_sd.data(), MPI_BYTE, e.c_recv.data(), e.c_rc.data(),
                             e.c_rd.data(), MPI_BYTE, comm.native()) != MPI_SUCCESS)
             dsrt::comm::abort_job("bench: MPI_Alltoallv failed");
         },
         [] { return int64_t{0}; }},
        {"dsrt dispatch+combine",
         [&] { group.exchange(comm, 0, e.x.data(), T, D, e.routes, e.out.data(), 1, experts); },
         [&] { return check_expert(e); }},
        {"dsrt dispatch+combine (2 mb)",
         [&] { group.exchange(comm, 0, e.x.data(), T, D, e.routes, e.out.data(), 2, experts); },
         [&] { return check_expert(e); }},
    };
    double raw_avg = 0;
    for (const Run& run : runs) {
      std::fill(e.out.begin(), e.out.end(), 0.0f);
      for (int i = 0; i < std::max(2, iters / 10); ++i) run.once();
      std::fill(e.out.begin(), e.out.end(), 0.0f);
      comm.barrier("bench start");
      expert_s = 0;
      const double t0 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) run.once();
      const double us = (MPI_Wtime() - t0) / iters * 1e6;
      double wrong = static_cast<double>(run.check()), tmin = us, tmax = us, tsum = us, esum = expert_s / iters * 1e6;
      double bytes = static_cast<double>(e.bytes_sent), bsum = bytes;
      MPI_Comm raw = comm.native();
      MPI_Allreduce(MPI_IN_PLACE, &tmin, 1, MPI_DOUBLE, MPI_MIN, raw);
      MPI_Allreduce(MPI_IN_PLACE, &tmax, 1, MPI_DOUBLE, MPI_MAX, raw);
      MPI_Allreduce(MPI_IN_PLACE, &tsum, 1, MPI_DOUBLE, MPI_SUM, raw);
      MPI_Allreduce(MPI_IN_PLACE, &bsum, 1, MPI_DOUBLE, MPI_SUM, raw);
      MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_DOUBLE, MPI_SUM, raw);
      MPI_Allreduce(MPI_IN_PLACE, &esum, 1, MPI_DOUBLE, MPI_SUM, raw);
      const double avg = tsum / P, avg_bytes = bsum / P, expert_us = esum / P;
      if (raw_avg == 0) raw_avg = avg;
      // With two micro-batches the experts overlap the transfers, so their time is not all extra.
      const double pct_excl = 100.0 * raw_avg / std::max(avg - expert_us, 1e-9);
      const double algbw = avg_bytes / (avg * 1e-6) / 1e9, pct = 100.0 * raw_avg / avg;
      failures += wrong > 0;
      if (comm.rank() == 0) {
        char check[32];
        std::snprintf(check, sizeof(check), wrong > 0 ? "FAIL %.0f tokens" : "ok", wrong);
        std::printf("  %8lld %12s  %-30s %6d %10.1f %10.1f %10.1f %11.3f %6.1f%% %9.1f %6.1f%%  %s\n",
                    static_cast<long long>(T), human(static_cast<int64_t>(avg_bytes)).c_str(), run.name, iters, tmin,
                    avg, tmax, algbw, pct, expert_us, pct_excl, check);
        std::fflush(stdout);
        results.push_back({{"case", run.name}, {"tokens_per_rank", T}, {"hidden", D}, {"bytes_per_rank", avg_bytes},
                           {"ranks", P}, {"iters", iters}, {"min_us", tmin}, {"avg_us", avg}, {"max_us", tmax},
                           {"algbw_GBps", algbw}, {"percent_of_raw", pct}, {"expert_us", expert_us},
                           {"percent_of_raw_excluding_experts", pct_excl}, {"wrong_tokens", wrong}});
      }
    }
  }
  return failures;
}

int64_t parse_size(const char* s) {  // 1024, 4K, 16M, 1G
  char* end = nullptr;
  double v = std::strtod(s, &end);
  const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(*end)));
  if (u == 'K') v *= 1024;
  if (u == 'M') v *= 1024 * 1024;
  if (u == 'G') v *= 1024.0 * 1024 * 1024;
  return static_cast<int64_t>(v);
}

std::string human(int64_t b) {
  char buf[32];
  if (b >= (1 << 20) && b % (1 << 20) == 0)
    std::snprintf(buf, sizeof(buf), "%lld MB", static_cast<long long>(b >> 20));
  else if (b >= 1024 && b % 1024 == 0)
    std::snprintf(buf, sizeof(buf), "%lld KB", static_cast<long long>(b >> 10));
  else
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(b));
  return buf;
}

struct Options {
  int64_t min_bytes = 1024, max_bytes = 64 << 20, factor = 4;
  int iters = 0, warmup = -1;  // 0 / -1: chosen per size
  std::string json;
  int64_t hidden = 7168, max_tokens = 1024;  // the expert exchange sweep (DeepSeek-V3's hidden size)
  bool expert = true, collectives = true;
};

Options parse(int argc, char** argv, int rank) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-expert" || a == "--expert-only") {
      (a == "--no-expert" ? o.expert : o.collectives) = false;
      continue;
    }
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) {
      if (rank == 0) std::fprintf(stderr, "bench_collectives: %s needs a value\n", a.c_str());
      std::exit(2);
    }
    if (a == "--min-bytes") o.min_bytes = parse_size(v);
    else if (a == "--max-bytes") o.max_bytes = parse_size(v);
    else if (a == "--factor") o.factor = std::max<int64_t>(2, std::atoll(v));
    else if (a == "--iters") o.iters = std::atoi(v);
    else if (a == "--warmup") o.warmup = std::atoi(v);
    else if (a == "--json") o.json = v;
    else if (a == "--hidden") o.hidden = std::max<int64_t>(1, std::atoll(v));
    else if (a == "--max-tokens") o.max_tokens = std::max<int64_t>(1, std::atoll(v));
    else {
      if (rank == 0) std::fprintf(stderr, "bench_collectives: unknown option %s\n", a.c_str());
      std::exit(2);
    }
    ++i;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  dsrt::comm::MpiSession session;
  const Options opt = parse(argc, argv, session.world_rank());
  nlohmann::json results = nlohmann::json::array();
  int failures = 0;
  {
    auto world = MpiCommunicator::world();
    Ctx c;
    c.comm = world.get();
    c.rank = world->rank();
    c.size = world->size();
    const auto list = cases();
    if (c.rank == 0) {
      std::printf("# bench_collectives: %d ranks, host %s\n", c.size, world->host().c_str());
      std::printf("# %10s  %-22s %6s %10s %10s %10s %11s %11s  %s\n", "size", "case", "iters", "min_us", "avg_us",
                  "max_us", "algbw_GB/s", "busbw_GB/s", "check");
    }
    for (int64_t bytes = opt.min_bytes; opt.collectives && bytes <= opt.max_bytes; bytes *= opt.factor) {
      prepare(c, bytes);
      // Small sizes need many iterations for a stable time, large ones few (~32 MB moved).
      const int iters = opt.iters > 0 ? opt.iters : static_cast<int>(std::clamp<int64_t>((32 << 20) / bytes, 5, 200));
      const int warmup = opt.warmup >= 0 ? opt.warmup : std::max(2, iters / 10);
      for (const Case& k : list) {
        std::fill(c.recv.begin(), c.recv.end(), uint8_t{0});
        for (int i = 0; i < warmup; ++i) k.run(c);
        std::fill(c.recv.begin(), c.recv.end(), uint8_t{0});
        world->barrier("bench start");
        const double t0 = MPI_Wtime();
        for (int i = 0; i < iters; ++i) k.run(c);
        const double us = (MPI_Wtime() - t0) / iters * 1e6;
        double wrong = static_cast<double>(k.check(c)), tmin = us, tmax = us, tsum = us;
        MPI_Comm raw = world->native();
        MPI_Allreduce(MPI_IN_PLACE, &tmin, 1, MPI_DOUBLE, MPI_MIN, raw);
        MPI_Allreduce(MPI_IN_PLACE, &tmax, 1, MPI_DOUBLE, MPI_MAX, raw);
        MPI_Allreduce(MPI_IN_PLACE, &tsum, 1, MPI_DOUBLE, MPI_SUM, raw);
        MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_DOUBLE, MPI_SUM, raw);
        const double avg = tsum / c.size;
        const double algbw = bytes / (avg * 1e-6) / 1e9;
        const double busbw = algbw * (c.size - 1) / c.size;
        failures += wrong > 0;
        if (c.rank == 0) {
          char check[32];
          std::snprintf(check, sizeof(check), wrong > 0 ? "FAIL %.0f B" : "ok", wrong);
          std::printf("  %10s  %-22s %6d %10.1f %10.1f %10.1f %11.3f %11.3f  %s\n", human(bytes).c_str(),
                      k.name.c_str(), iters, tmin, avg, tmax, algbw, busbw, check);
          std::fflush(stdout);
          results.push_back({{"case", k.name}, {"bytes", bytes}, {"ranks", c.size}, {"iters", iters},
                             {"min_us", tmin}, {"avg_us", avg}, {"max_us", tmax}, {"algbw_GBps", algbw},
                             {"busbw_GBps", busbw}, {"wrong_bytes", wrong}});
        }
      }
    }
    if (opt.expert) failures += expert_sweep(*world, opt.hidden, opt.max_tokens, opt.iters, results);
  }
  if (session.world_rank() == 0 && !opt.json.empty()) {
    std::ofstream(opt.json) << nlohmann::json{{"bench", "collectives"}, {"results", results}}.dump(2) << "\n";
    std::printf("# wrote %s\n", opt.json.c_str());
  }
  return failures ? 1 : 0;
}
