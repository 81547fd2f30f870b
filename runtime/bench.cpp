#include "runtime/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/int_list.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "runtime/weights.h"

namespace dsrt {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Linear interpolation between the closest ranks (p in [0, 100]).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// Times the parts of each forward pass on rank 0 from the model's dump points (the callback only
// reads the clock). Owns the model's dump hook while it lives.
class PhaseTimer {
 public:
  PhaseTimer(Model& m, const ModelConfig& c) : model_(m), config_(c) {
    marks_.reserve(c.num_hidden_layers + 8);
    model_.set_dump([this](const std::string& name, const float*, int64_t, int64_t) {
      if (active_) marks_.emplace_back(name, Clock::now());
    });
  }
  ~PhaseTimer() { model_.set_dump({}); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  void start() {
    marks_.clear();
    active_ = true;
    t0_ = Clock::now();
  }
  // Adds this step's parts (start() .. now) to the sums.
  void stop() {
    const Clock::time_point end = Clock::now();
    active_ = false;
    if (names_.empty()) {
      for (const auto& [name, t] : marks_) names_.push_back(part_name(name));
      names_.push_back("logits to rank 0 + sampling");
      sums_.assign(names_.size(), 0.0);
    }
    if (marks_.size() + 1 != names_.size()) return;  // a step without dump points (nothing to run)
    Clock::time_point prev = t0_;
    for (size_t i = 0; i < marks_.size(); ++i) {
      sums_[i] += seconds_between(prev, marks_[i].second) * 1e3;
      prev = marks_[i].second;
    }
    sums_.back() += seconds_between(prev, end) * 1e3;
  }
  // The sums divided by `units`, then cleared.
  LayerTimes take(double units) {
    LayerTimes t;
    t.names = names_;
    for (double s : sums_) t.ms.push_back(units > 0 ? s / units : 0.0);
    names_.clear();
    sums_.clear();
    return t;
  }

 private:
  std::string part_name(const std::string& dump) const {
    if (dump == "embed") return "plan + embedding";
    if (dump == "final_norm") return "final norm";
    if (dump == "logits") return "lm_head";
    if (dump.rfind("layers.", 0) == 0) {
      const int64_t l = std::atoll(dump.c_str() + 7);
      return fmt::format("layer {} ({})", l, config_.is_moe_layer(l) ? "moe" : "dense");
    }
    return dump;
  }
  Model& model_;
  const ModelConfig& config_;
  bool active_ = false;
  Clock::time_point t0_;
  std::vector<std::pair<std::string, Clock::time_point>> marks_;
  std::vector<std::string> names_;
  std::vector<double> sums_;
};

void add_chunk(proto::StepPlan& plan, uint64_t seq, int group, int64_t start, const int32_t* tokens, int64_t n) {
  proto::Chunk* c = plan.add_chunks();
  c->set_seq(seq);
  c->set_dp_group(group);
  c->set_start_pos(start);
  c->mutable_tokens()->Add(tokens, tokens + n);
  c->set_all_logits(false);
}

void release(Coordinator& co, const std::vector<uint64_t>& keys, std::vector<float>& logits) {
  proto::StepPlan plan;
  for (uint64_t k : keys) plan.add_release(k);
  co.step(plan, logits);
}

// Rank 0's exchange between two ExpertStats snapshots.
ExchangeDelta exchange_delta(const ExpertStats& before, const ExpertStats& after, int micro_batches) {
  ExchangeDelta d;
  d.micro_batches = micro_batches;
  for (size_t l = 0; l < after.layers.size(); ++l) {
    const ExpertStats::Layer& a = after.layers[l];
    const ExpertStats::Layer b = l < before.layers.size() ? before.layers[l] : ExpertStats::Layer{};
    if (a.calls == b.calls) continue;
    d.layers.push_back({static_cast<int64_t>(l), a.bytes_sent - b.bytes_sent, a.bytes_received - b.bytes_received,
                        a.dispatch_s - b.dispatch_s, a.combine_s - b.combine_s});
  }
  return d;
}

// Per MoE layer, per step (units = timed steps): bytes and milliseconds.
nlohmann::json exchange_json(const ExchangeDelta& d, double units, double step_ms) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : d.layers)
    layers.push_back({{"layer", l.layer},
                      {"bytes_sent", l.bytes_sent / units},
                      {"bytes_received", l.bytes_received / units},
                      {"dispatch_ms", l.dispatch_s * 1e3 / units},
                      {"combine_ms", l.combine_s * 1e3 / units}});
  const double ms = d.seconds() * 1e3 / units;
  return {{"micro_batches", d.micro_batches},
          {"ms_per_step", ms},
          {"share_of_step", step_ms > 0 ? ms / step_ms : 0.0},
          {"per_layer_per_step", layers}};
}

int64_t count_moe_layers(const ModelConfig& c) {
  int64_t n = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n += c.is_moe_layer(l);
  return n;
}

std::string weight_dtype(const ModelConfig& c) { return c.fp8 ? "F8_E4M3 (+ BF16)" : "BF16"; }

nlohmann::json parts_json(const LayerTimes& t) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t i = 0; i < t.names.size(); ++i) a.push_back({{"part", t.names[i]}, {"ms", t.ms[i]}});
  return a;
}

// One concurrency level against the Scheduler that `dsrt serve` runs (its default options), on
// this thread, as the HTTP server's handlers do from theirs: a client thread keeps C requests
// in flight, submitting the next when one finishes; the callbacks (scheduler thread) only read
// the clock. Excludes HTTP and tokenisation: the model and scheduling time users wait for.
ServeResult serve_level(Coordinator& co, const BenchOptions& o, int64_t C, std::mt19937_64& rng) {
  const int64_t V = co.config().vocab_size, total = o.serve_rounds * C;
  SchedulerOptions so;
  so.max_running = std::max(so.max_running, C);
  so.max_queued = std::max(so.max_queued, total);
  Scheduler sched(co, so);
  struct Req {
    Clock::time_point submit, first, last;
    int64_t tokens = 0;
  };
  std::vector<Req> reqs(total);
  std::vector<GenerationRequest> gen(total);
  std::uniform_int_distribution<int32_t> any_id(0, static_cast<int32_t>(V - 1));
  for (int64_t i = 0; i < total; ++i) {
    gen[i].prompt.resize(o.prompt_len);
    for (auto& id : gen[i].prompt) id = any_id(rng);
    gen[i].max_tokens = o.serve_tokens;
    // Sampled at temperature 1: on dummy weights greedy decoding may hit the eos id at once.
    gen[i].sampling.temperature = 1.0f;
    gen[i].sampling.seed = o.seed + static_cast<uint64_t>(i);
  }
  std::mutex mu;
  std::condition_variable cv;
  int64_t finished = 0;
  std::string error;
  const Clock::time_point t0 = Clock::now();
  std::thread client([&] {
    auto submit = [&](int64_t i) {
      reqs[i].submit = Clock::now();
      sched.submit(std::move(gen[i]), [&, i](const TokenEvent& ev) {
        const Clock::time_point now = Clock::now();
        Req& r = reqs[i];
        if (ev.token >= 0) {
          if (r.tokens++ == 0) r.first = now;
          r.last = now;
        }
        if (ev.finish == FinishReason::None) return;
        std::lock_guard lk(mu);
        if (ev.finish == FinishReason::Error && error.empty()) error = ev.error;
        ++finished;
        cv.notify_all();
      });
    };
    try {
      int64_t next = 0;
      for (; next < std::min(C, total); ++next) submit(next);
      std::unique_lock lk(mu);
      for (;;) {
        cv.wait(lk, [&] { return (next < total && finished + C > next) || finished == total || !error.empty(); });
        if (!error.empty() || finished == total) break;
        while (next < total && finished + C > next) {
          lk.unlock();
          submit(next++);
          lk.lock();
        }
      }
      lk.unlock();
      // The scheduler releases a finished request's cache in its next step: wait for that step,
      // so no sequence outlives the level.
      for (;;) {
        lk.lock();
        const bool failed = !error.empty();
        lk.unlock();
        if (failed) break;
        const SchedulerStats st = sched.stats();
        if (st.running == 0 && st.queued == 0) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } catch (const std::exception& e) {
      std::lock_guard lk(mu);
      if (error.empty()) error = e.what();
    }
    sched.stop();
  });
  try {
    sched.run();
  } catch (...) {
    sched.stop();
    client.join();
    throw;
  }
  client.join();
  if (!error.empty()) throw Error(fmt::format("serving sweep at concurrency {}: {}", C, error));
  ServeResult r;
  r.concurrency = C;
  r.requests = total;
  r.seconds = seconds_between(t0, Clock::now());
  std::vector<double> ttft, tpot;
  for (const Req& q : reqs) {
    r.output_tokens += q.tokens;
    if (q.tokens > 0) ttft.push_back(seconds_between(q.submit, q.first) * 1e3);
    if (q.tokens > 1) tpot.push_back(seconds_between(q.first, q.last) * 1e3 / static_cast<double>(q.tokens - 1));
  }
  r.output_tokens_per_s = static_cast<double>(r.output_tokens) / r.seconds;
  r.ttft_ms_p50 = percentile(ttft, 50);
  r.ttft_ms_p95 = percentile(ttft, 95);
  r.tpot_ms_p50 = percentile(tpot, 50);
  r.tpot_ms_p95 = percentile(tpot, 95);
  return r;
}

}  // namespace

std::vector<int64_t> parse_batch_list(const std::string& s, const std::string& option, bool allow_empty) {
  if (s.empty() && allow_empty) return {};
  std::vector<int64_t> seen;
  return parse_int_list(s, option, 1, INT64_MAX, "a positive integer", [&](int64_t v, size_t item) {
    if (v > 65536) throw Error(fmt::format("{}: {} (item {}) exceeds the limit of 65536", option, v, item));
    if (std::find(seen.begin(), seen.end(), v) != seen.end()) throw Error(fmt::format("{}: {} appears twice", option, v));
    seen.push_back(v);
  });
}

void validate(const BenchOptions& o, const ModelConfig& c) {
  if (o.batches.empty()) throw Error("--batch: no batch sizes given");
  for (int64_t b : o.batches)
    if (b < 1 || b > 65536) throw Error(fmt::format("--batch: {} is outside [1, 65536]", b));
  if (o.prompt_len < 1) throw Error(fmt::format("--prompt-len {} must be at least 1", o.prompt_len));
  if (o.decode_steps < 1) throw Error(fmt::format("--decode-steps {} must be at least 1", o.decode_steps));
  if (o.repeat < 1) throw Error(fmt::format("--repeat {} must be at least 1", o.repeat));
  if (o.prefill_chunk < 0) throw Error(fmt::format("--prefill-chunk {} must be >= 0", o.prefill_chunk));
  if (o.fill_step_tokens < 1) throw Error(fmt::format("fill_step_tokens {} must be at least 1", o.fill_step_tokens));
  for (int64_t n : o.concurrency)
    if (n < 1 || n > 4096) throw Error(fmt::format("--concurrency: {} is outside [1, 4096]", n));
  if (o.serve_tokens < 1) throw Error(fmt::format("--serve-tokens {} must be at least 1", o.serve_tokens));
  if (o.serve_rounds < 1) throw Error(fmt::format("--serve-rounds {} must be at least 1", o.serve_rounds));
  if (!o.concurrency.empty() && c.max_position_embeddings > 0 &&
      o.prompt_len + o.serve_tokens > c.max_position_embeddings)
    throw Error(fmt::format("--prompt-len {} + --serve-tokens {} exceed the model's max_position_embeddings {}",
                            o.prompt_len, o.serve_tokens, c.max_position_embeddings));
  const int64_t longest = o.prompt_len + 1 + static_cast<int64_t>(o.repeat) * o.decode_steps;
  if (c.max_position_embeddings > 0 && longest > c.max_position_embeddings)
    throw Error(fmt::format("--prompt-len {} + 1 warm-up step + --repeat {} x --decode-steps {} = {} positions exceed "
                            "the model's max_position_embeddings {}",
                            o.prompt_len, o.repeat, o.decode_steps, longest, c.max_position_embeddings));
}

int64_t bench_cache_tokens(const BenchOptions& o, int64_t block_size) {
  const int64_t per_seq = o.prompt_len + 1 + static_cast<int64_t>(o.repeat) * o.decode_steps;
  const int64_t blocks = (per_seq + block_size - 1) / block_size;
  const int64_t most = o.batches.empty() ? 1 : *std::max_element(o.batches.begin(), o.batches.end());
  int64_t tokens = std::max<int64_t>(most, 1) * blocks * block_size;
  if (!o.concurrency.empty()) {  // the scheduler reserves prompt + max_tokens per running request
    const int64_t c = *std::max_element(o.concurrency.begin(), o.concurrency.end());
    tokens = std::max(tokens, c * ((o.prompt_len + o.serve_tokens + block_size - 1) / block_size) * block_size);
  }
  return tokens;
}

BenchResult run_bench(Coordinator& co, const BenchOptions& o, const BenchInfo& info) {
  const ModelConfig& c = co.config();
  validate(o, c);
  const int64_t V = c.vocab_size, P = o.prompt_len, S = o.decode_steps;
  const int dp = std::max(1, co.dp_size());
  BenchResult r;
  r.options = o;
  r.info = info;
  r.config = c;
  r.moe_layers = count_moe_layers(c);
  Model& model = co.executor().model();
  PhaseTimer timer(model, c);
  std::mt19937_64 rng(o.seed ^ 0x62656e6368ull);
  std::uniform_int_distribution<int32_t> any_id(0, static_cast<int32_t>(V - 1));
  auto random_ids = [&](int64_t n) {
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = any_id(rng);
    return ids;
  };
  std::vector<float> logits;
  volatile int32_t sink = 0;  // keeps the prefill's argmax
  const Clock::time_point t_begin = Clock::now();

  // Prefill: one sequence, the whole prompt (or chunks of it). Run -1 warms up, untimed.
  {
    const int64_t chunk = o.prefill_chunk > 0 ? std::min(o.prefill_chunk, P) : P;
    r.prefill.tokens = P;
    r.prefill.steps = (P + chunk - 1) / chunk;
    ExpertStats before;
    for (int run = -1; run < o.repeat; ++run) {
      if (run == 0) before = model.experts().stats();
      const std::vector<int32_t> prompt = random_ids(P);
      const uint64_t seq = co.new_sequence();
      const Clock::time_point t0 = Clock::now();
      for (int64_t s = 0; s < P; s += chunk) {
        const int64_t n = std::min(chunk, P - s);
        if (run >= 0) timer.start();
        proto::StepPlan plan;
        add_chunk(plan, seq, 0, s, prompt.data() + s, n);
        co.step(plan, logits);
        if (s + n == P) sink = argmax(logits.data(), V);
        if (run >= 0) timer.stop();
      }
      const double sec = seconds_between(t0, Clock::now());
      release(co, {seq}, logits);
      if (run >= 0) r.prefill.seconds.push_back(sec);
      spdlog::debug("prefill {} tokens: {:.3f} s{}", P, sec, run < 0 ? " (warm-up)" : "");
    }
    std::vector<double> tps;
    for (double s : r.prefill.seconds) tps.push_back(static_cast<double>(P) / s);
    r.prefill.tokens_per_s_best = *std::max_element(tps.begin(), tps.end());
    r.prefill.tokens_per_s_median = percentile(tps, 50);
    r.prefill.layers = timer.take(o.repeat);
    r.prefill.exchange = exchange_delta(before, model.experts().stats(), model.last_micro_batches());
    spdlog::info("prefill {} tokens: {:.1f} tok/s best, {:.1f} median", P, r.prefill.tokens_per_s_best,
                 r.prefill.tokens_per_s_median);
  }

  // Decode at each batch size.
  for (int64_t B : o.batches) {
    DecodeResult d;
    d.batch = B;
    d.steps = S;
    std::vector<uint64_t> keys(B);
    std::vector<int> group(B);
    std::vector<int64_t> pos(B, 0);
    std::vector<int32_t> next(B);
    std::vector<std::vector<int32_t>> prompts(B);
    for (int64_t i = 0; i < B; ++i) {
      keys[i] = co.new_sequence();
      group[i] = static_cast<int>(i % dp);  // spread over the attention-data-parallel groups
      prompts[i] = random_ids(P);
    }
    // Untimed prefill of all B prompts, fill_step_tokens per step.
    for (int64_t i = 0; i < B;) {
      proto::StepPlan plan;
      std::vector<int64_t> ends;  // sequences whose prompt ends in this step, in plan order
      int64_t used = 0;
      while (i < B && used < o.fill_step_tokens) {
        const int64_t n = std::min(P - pos[i], o.fill_step_tokens - used);
        add_chunk(plan, keys[i], group[i], pos[i], prompts[i].data() + pos[i], n);
        pos[i] += n;
        used += n;
        ends.push_back(pos[i] == P ? i : -1);
        if (pos[i] == P) ++i;
      }
      co.step(plan, logits);
      for (size_t row = 0; row < ends.size(); ++row)
        if (ends[row] >= 0) next[ends[row]] = o.greedy_feedback ? argmax(logits.data() + row * V, V) : any_id(rng);
    }
    // One step advancing every sequence by one token; the argmax of every row is part of it.
    auto step = [&](bool timed) {
      const Clock::time_point t0 = Clock::now();
      if (timed) timer.start();
      proto::StepPlan plan;
      for (int64_t i = 0; i < B; ++i) add_chunk(plan, keys[i], group[i], pos[i], &next[i], 1);
      co.step(plan, logits);
      for (int64_t i = 0; i < B; ++i) {
        const int32_t tok = argmax(logits.data() + i * V, V);
        next[i] = o.greedy_feedback ? tok : any_id(rng);
        ++pos[i];
      }
      if (timed) timer.stop();
      return seconds_between(t0, Clock::now());
    };
    step(false);  // warm-up at this batch size
    const ExpertStats before = model.experts().stats();
    d.context_first = pos[0];
    for (int run = 0; run < o.repeat; ++run) {
      const Clock::time_point t0 = Clock::now();
      for (int64_t s = 0; s < S; ++s) d.step_ms.push_back(step(true) * 1e3);
      d.seconds.push_back(seconds_between(t0, Clock::now()));
    }
    d.context_last = pos[0] - 1;
    const ExpertStats& after = model.experts().stats();
    d.exchange = exchange_delta(before, after, model.last_micro_batches());
    d.a2a_bytes_sent = after.bytes_sent - before.bytes_sent;
    d.a2a_bytes_received = after.bytes_received - before.bytes_received;
    d.expert_tokens.resize(after.tokens_per_expert.size());
    for (size_t e = 0; e < after.tokens_per_expert.size(); ++e)
      d.expert_tokens[e] =
          after.tokens_per_expert[e] - (e < before.tokens_per_expert.size() ? before.tokens_per_expert[e] : 0);
    release(co, keys, logits);

    std::vector<double> tps;
    for (double s : d.seconds) tps.push_back(static_cast<double>(B * S) / s);
    d.tokens_per_s_best = *std::max_element(tps.begin(), tps.end());
    d.tokens_per_s_median = percentile(tps, 50);
    d.tpot_ms_p50 = percentile(d.step_ms, 50);
    d.tpot_ms_p95 = percentile(d.step_ms, 95);
    d.layers = timer.take(static_cast<double>(o.repeat) * S);
    spdlog::info("decode batch {}: {:.1f} tok/s best, {:.1f} median; TPOT p50 {:.1f} ms, p95 {:.1f} ms", B,
                 d.tokens_per_s_best, d.tokens_per_s_median, d.tpot_ms_p50, d.tpot_ms_p95);
    r.decode.push_back(std::move(d));
  }

  for (int64_t C : o.concurrency) {
    ServeResult sr = serve_level(co, o, C, rng);
    spdlog::info("serve concurrency {}: {} requests, {:.1f} output tok/s; TTFT p50 {:.1f} ms p95 {:.1f} ms; TPOT p50 "
                 "{:.1f} ms p95 {:.1f} ms",
                 C, sr.requests, sr.output_tokens_per_s, sr.ttft_ms_p50, sr.ttft_ms_p95, sr.tpot_ms_p50,
                 sr.tpot_ms_p95);
    r.serve.push_back(sr);
  }
  (void)sink;
  r.seconds = seconds_between(t_begin, Clock::now());
  return r;
}

double ActiveBytes::per_step(int64_t batch, int64_t n_experts, int64_t k) const {
  const double base = static_cast<double>(per_token() - routed_experts);
  if (n_experts <= 0 || moe_layers == 0) return base;
  const double p_unused = std::pow(1.0 - static_cast<double>(k) / static_cast<double>(n_experts),
                                   static_cast<double>(batch));
  const double distinct = static_cast<double>(n_experts) * (1.0 - p_unused);
  return base + static_cast<double>(moe_layers) * distinct * static_cast<double>(one_expert);
}

ActiveBytes active_weight_bytes(const ModelConfig& c) {
  ActiveBytes a;
  a.moe_layers = count_moe_layers(c);
  int64_t all_experts = 0;
  ModelWeights w;  // only the tensor list is walked: nothing is allocated
  w.config = c;
  for_each_tensor(w, [&](const TensorSlot& s) {
    int64_t elems = 1;
    for (int64_t d : s.shape) elems *= d;
    int64_t bytes = 0;
    if (s.vec) {
      bytes = elems * 4;
    } else if (c.fp8 && s.fp8_allowed) {
      const int64_t br = (s.shape[0] + c.fp8_block_rows - 1) / c.fp8_block_rows;
      const int64_t bc = (s.shape[1] + c.fp8_block_cols - 1) / c.fp8_block_cols;
      bytes = elems + br * bc * 4;
    } else {
      bytes = elems * 2;
    }
    a.model_total += bytes;
    switch (s.kind) {
      case WeightKind::Attention: a.attention += bytes; break;
      case WeightKind::DenseMlp: a.dense_mlp += bytes; break;
      case WeightKind::Router: a.router += bytes; break;
      case WeightKind::SharedExperts: a.shared_experts += bytes; break;
      case WeightKind::Experts: all_experts += bytes; break;
      case WeightKind::Norms: a.norms += bytes; break;
      case WeightKind::EmbeddingHead:
        if (s.name == "model.embed_tokens.weight") {
          a.embedding_head += bytes / std::max<int64_t>(s.shape[0], 1);  // one row per token
          if (c.tie_word_embeddings) a.embedding_head += bytes;        // the head reads all of it
        } else {
          a.embedding_head += bytes;
        }
        break;
    }
  });
  if (a.moe_layers > 0 && c.n_routed_experts > 0) {
    a.one_expert = all_experts / (a.moe_layers * c.n_routed_experts);
    a.routed_experts = a.moe_layers * c.num_experts_per_tok * a.one_expert;
  }
  return a;
}

nlohmann::json bench_json(const BenchResult& r, const std::vector<RankLoad>& loads, double read_gbs) {
  using nlohmann::json;
  const ModelConfig& c = r.config;
  const ActiveBytes ab = active_weight_bytes(c);
  json j;
  j["dsrt_bench"] = 1;
  j["model"] = {{"path", r.info.model_path},
                {"load_format", r.info.load_format},
                {"architecture", c.architecture},
                {"hidden_size", c.hidden_size},
                {"num_hidden_layers", c.num_hidden_layers},
                {"dense_layers", c.num_hidden_layers - r.moe_layers},
                {"moe_layers", r.moe_layers},
                {"n_routed_experts", c.n_routed_experts},
                {"num_experts_per_tok", c.num_experts_per_tok},
                {"n_shared_experts", c.n_shared_experts},
                {"moe_intermediate_size", c.moe_intermediate_size},
                {"intermediate_size", c.intermediate_size},
                {"num_attention_heads", c.num_attention_heads},
                {"q_lora_rank", c.q_lora_rank},
                {"kv_lora_rank", c.kv_lora_rank},
                {"vocab_size", c.vocab_size},
                {"weight_dtype", weight_dtype(c)}};
  j["ranks"] = r.info.ranks;
  j["threads"] = r.info.threads;
  j["tp"] = r.info.tp;
  j["dp"] = r.info.dp;
  j["ep"] = r.info.ep;
  j["moe_comm"] = r.info.moe_comm;
  j["overlap"] = r.info.overlap;
  j["topology"] = r.info.topology;
  j["isa"] = r.info.isa;
  int64_t resident = 0;
  json per_rank = json::array();
  for (const RankLoad& l : loads) {
    resident += l.resident_weight_bytes;
    per_rank.push_back(l.resident_weight_bytes);
  }
  j["weights_bytes"] = loads.empty() ? ab.model_total : resident;
  j["weights_bytes_per_rank"] = per_rank;
  j["model_weights_bytes"] = ab.model_total;
  j["active_weight_bytes_per_token"] = {{"attention", ab.attention},
                                        {"dense_mlp", ab.dense_mlp},
                                        {"router", ab.router},
                                        {"shared_experts", ab.shared_experts},
                                        {"routed_experts_top_k", ab.routed_experts},
                                        {"embedding_row_and_head", ab.embedding_head},
                                        {"norms", ab.norms},
                                        {"one_expert", ab.one_expert},
                                        {"total", ab.per_token()}};
  const BenchOptions& o = r.options;
  j["options"] = {{"batches", o.batches},
                  {"prompt_len", o.prompt_len},
                  {"decode_steps", o.decode_steps},
                  {"repeat", o.repeat},
                  {"prefill_chunk", o.prefill_chunk},
                  {"decode_input", o.greedy_feedback ? "greedy" : "random"},
                  {"concurrency", o.concurrency},
                  {"serve_tokens", o.serve_tokens},
                  {"serve_rounds", o.serve_rounds},
                  {"seed", o.seed}};

  j["prefill_tokens_per_s"] = r.prefill.tokens_per_s_best;
  j["prefill"] = {{"tokens", r.prefill.tokens},
                  {"steps", r.prefill.steps},
                  {"tokens_per_s_best", r.prefill.tokens_per_s_best},
                  {"tokens_per_s_median", r.prefill.tokens_per_s_median},
                  {"runs_s", r.prefill.seconds},
                  {"ms_per_prompt_by_part", parts_json(r.prefill.layers)}};
  {
    double sum = 0;
    for (double x : r.prefill.seconds) sum += x;
    const double runs = std::max<double>(1, static_cast<double>(r.prefill.seconds.size()));
    j["prefill"]["exchange"] = exchange_json(r.prefill.exchange, runs, sum * 1e3 / runs);
  }

  const double layer_steps_unit = std::max<int64_t>(r.moe_layers, 1);
  json decode = json::array(), a2a_batches = json::array();
  for (const DecodeResult& d : r.decode) {
    const double steps = static_cast<double>(d.steps) * r.options.repeat;
    const double layer_steps = layer_steps_unit * steps;
    double run_sum = 0;
    for (double x : d.seconds) run_sum += x;
    const nlohmann::json ex = exchange_json(d.exchange, steps, run_sum * 1e3 / steps);
    int64_t routed = 0, busiest = 0, used = 0;
    for (int64_t t : d.expert_tokens) {
      routed += t;
      busiest = std::max(busiest, t);
      used += t > 0;
    }
    json e = {{"batch", d.batch},
              {"tokens_per_s", d.tokens_per_s_best},
              {"tokens_per_s_median", d.tokens_per_s_median},
              {"tpot_ms_p50", d.tpot_ms_p50},
              {"tpot_ms_p95", d.tpot_ms_p95},
              {"steps_per_run", d.steps},
              {"runs_s", d.seconds},
              {"context", {d.context_first, d.context_last}},
              {"ms_per_step_by_part", parts_json(d.layers)},
              {"exchange", ex},
              {"rank0_experts_used", used},
              {"rank0_expert_tokens", routed},
              {"rank0_busiest_expert_over_mean",
               used && routed ? static_cast<double>(busiest) * static_cast<double>(d.expert_tokens.size()) / routed
                              : 0.0}};
    if (read_gbs > 0) {
      const double bytes = ab.per_step(d.batch, c.n_routed_experts, c.num_experts_per_tok);
      const double roof = static_cast<double>(d.batch) * read_gbs * 1e9 / bytes;
      e["roofline_tokens_per_s"] = roof;
      e["fraction_of_roofline"] = d.tokens_per_s_best / roof;
    }
    decode.push_back(e);
    a2a_batches.push_back({{"batch", d.batch},
                           {"bytes_sent_per_moe_layer_step", d.a2a_bytes_sent / layer_steps},
                           {"bytes_received_per_moe_layer_step", d.a2a_bytes_received / layer_steps},
                           {"ms_per_moe_layer_step", d.exchange.seconds() * 1e3 / layer_steps},
                           {"share_of_step", ex.at("share_of_step")},
                           {"micro_batches", d.exchange.micro_batches}});
  }
  j["decode"] = decode;

  int64_t sent = 0, received = 0, all_tokens = 0;
  for (const RankLoad& l : loads) {
    sent += l.bytes_sent;
    received += l.bytes_received;
    all_tokens += l.total_tokens();
  }
  j["all_to_all"] = {
      {"scheme", r.info.moe_comm},
      {"moe_layers", r.moe_layers},
      {"bytes_measured_on", "rank 0 (ExpertStats deltas over the timed decode steps)"},
      {"per_batch", a2a_batches},
      {"total_bytes_sent_all_ranks", sent},
      {"total_bytes_received_all_ranks", received},
      {"time_measured", r.info.ep > 1},
      {"time_note",
       r.info.ep == 1 ? "one expert-parallel rank: no expert exchange"
                      : "rank 0's thread blocked in the exchange (counts + dispatch wait + combine wait, waiting for "
                        "the slowest peer included); with overlap, the part the expert compute did not hide. "
                        "share_of_step = that time / step time"}};
  json serve = json::array();
  for (const ServeResult& sr : r.serve)
    serve.push_back({{"concurrency", sr.concurrency},
                     {"requests", sr.requests},
                     {"output_tokens", sr.output_tokens},
                     {"seconds", sr.seconds},
                     {"output_tokens_per_s", sr.output_tokens_per_s},
                     {"ttft_ms_p50", sr.ttft_ms_p50},
                     {"ttft_ms_p95", sr.ttft_ms_p95},
                     {"tpot_ms_p50", sr.tpot_ms_p50},
                     {"tpot_ms_p95", sr.tpot_ms_p95}});
  j["serve"] = serve;
  j["serve_note"] = "in-process Scheduler (dsrt serve's, default options), closed loop of `concurrency` clients; "
                    "TTFT = submit to first token, TPOT = (last - first token) / (tokens - 1); no HTTP or tokenizer";

  json load = json::array();
  for (const RankLoad& l : loads) {
    const int64_t t = l.total_tokens();
    auto most = std::max_element(l.tokens.begin(), l.tokens.end());
    json e = {{"rank", l.rank},
              {"host", l.host},
              {"experts", l.experts.size()},
              {"expert_tokens", t},
              {"share", all_tokens ? static_cast<double>(t) / all_tokens : 0.0},
              {"bytes_sent", l.bytes_sent},
              {"bytes_received", l.bytes_received},
              {"resident_weight_bytes", l.resident_weight_bytes},
              {"tokens_per_expert", l.tokens}};
    if (most != l.tokens.end()) {
      e["busiest_expert"] = l.experts[most - l.tokens.begin()];
      e["busiest_expert_tokens"] = *most;
      e["busiest_over_mean"] = t ? static_cast<double>(*most) * static_cast<double>(l.tokens.size()) / t : 0.0;
    }
    load.push_back(e);
  }
  j["expert_load"] = load;
  j["expert_load_note"] = "cumulative over the whole bench run on each rank, untimed prefills included";

  if (read_gbs > 0) {
    json per = json::array();
    for (const DecodeResult& d : r.decode) {
      const double bytes = ab.per_step(d.batch, c.n_routed_experts, c.num_experts_per_tok);
      per.push_back({{"batch", d.batch},
                     {"bytes_per_step", bytes},
                     {"tokens_per_s", static_cast<double>(d.batch) * read_gbs * 1e9 / bytes}});
    }
    j["roofline"] = {{"read_bandwidth_gb_per_s", read_gbs},
                     {"bytes_per_token", ab.per_token()},
                     {"batch1_tokens_per_s", read_gbs * 1e9 / static_cast<double>(ab.per_token())},
                     {"per_batch", per},
                     {"formula",
                      "tokens/s <= batch x bandwidth / bytes_per_step(batch); bytes_per_step = attention + dense_mlp + "
                      "router + shared_experts + embedding_row_and_head + norms + moe_layers x one_expert x E x "
                      "(1 - (1 - k/E)^batch)"}};
  }
  j["seconds"] = r.seconds;
  return j;
}

nlohmann::json read_bench_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open bench JSON");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  auto fail = [&](const std::string& what) -> void { throw Error(path + ": " + what); };
  if (!j.is_object()) fail("expected a JSON object (the output of dsrt bench --json)");
  if (!j.contains("ranks") || !j["ranks"].is_number_integer() || j["ranks"].get<int64_t>() < 1)
    fail("field 'ranks' must be a positive integer");
  if (!j.contains("prefill_tokens_per_s") || !j["prefill_tokens_per_s"].is_number())
    fail("field 'prefill_tokens_per_s' must be a number");
  if (!j.contains("decode") || !j["decode"].is_array()) fail("field 'decode' must be a list");
  for (size_t i = 0; i < j["decode"].size(); ++i) {
    const auto& d = j["decode"][i];
    if (!d.is_object() || !d.contains("batch") || !d["batch"].is_number_integer() || !d.contains("tokens_per_s") ||
        !d["tokens_per_s"].is_number())
      fail(fmt::format("decode[{}] needs an integer 'batch' and a number 'tokens_per_s'", i));
  }
  return j;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot open for writing");
  out << text;
  out.close();
  if (!out) throw Error(path + ": write failed");
}

}  // namespace dsrt
