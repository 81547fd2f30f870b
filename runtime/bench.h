#pragma once
// Throughput measurement behind `dsrt bench` (bench/README.md): prefill tokens/s of one prompt,
// decode tokens/s and time per output token at several batch sizes, the expert exchange's bytes,
// the expert load per rank, and the weight bytes a token reads (for the memory-bandwidth
// roofline). The measurement runs on rank 0 through the coordinator, so it needs no MPI and a
// test can drive it with a LocalEngine. Results become JSON, and JSON files become SVG plots.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config.h"
#include "runtime/coordinator.h"
#include "runtime/load_stats.h"

namespace dsrt {

struct BenchOptions {
  std::vector<int64_t> batches = {1, 8, 32, 128};  // decode batch sizes, run in this order
  int64_t prompt_len = 128;        // prompt of the prefill measurement and of every decode sequence
  int64_t decode_steps = 32;       // timed steps per decode run
  int repeat = 3;                  // runs of each measurement; best and median are reported
  int64_t prefill_chunk = 0;       // timed prefill: tokens per step (0: the whole prompt in one step)
  int64_t fill_step_tokens = 2048; // untimed prefill of the decode batches: tokens per step
  bool greedy_feedback = false;    // decode input: argmax of the step's logits (else seeded random ids)
  uint64_t seed = 0;               // prompts and random decode input
  // Serving sweep through the Scheduler (what `dsrt serve` runs): at each concurrency C, C
  // clients keep one request each in flight (closed loop) until serve_rounds x C requests have
  // finished. Empty: no sweep.
  std::vector<int64_t> concurrency = {1, 4, 16};
  int64_t serve_tokens = 16;       // max_tokens of each serving request (prompt: prompt_len)
  int64_t serve_rounds = 2;        // requests per client at each concurrency
};

// "1,8,32,128" -> {1, 8, 32, 128}. Throws dsrt::Error naming the option and item on anything
// but distinct positive integers (at most 65536). "" -> {} when allow_empty.
std::vector<int64_t> parse_batch_list(const std::string& s, const std::string& option = "--batch",
                                      bool allow_empty = false);
// Throws dsrt::Error naming the option and value when a value is out of range or the longest
// sequence (prompt + warm-up step + repeat x decode steps) exceeds max_position_embeddings.
void validate(const BenchOptions& o, const ModelConfig& c);
// Latent-cache positions one rank must reserve: every sequence of the largest batch held by one
// data-parallel group, each rounded up to whole blocks (an upper bound; memory is reserved only).
int64_t bench_cache_tokens(const BenchOptions& o, int64_t block_size = 64);

// What the caller knows about the process (recorded in the JSON).
struct BenchInfo {
  int ranks = 1, threads = 1;
  int tp = 1, dp = 1, ep = 1;
  std::string isa;          // kernels::isa_name of the active kernels
  std::string model_path, load_format, moe_comm = "alltoall", topology, overlap = "auto";
};

// Rank 0's expert exchange over some steps, per MoE layer (ExpertStats deltas): bytes and the
// time its thread was blocked in the exchange (runtime/expert_group.h).
struct ExchangeDelta {
  struct Layer {
    int64_t layer = 0, bytes_sent = 0, bytes_received = 0;
    double dispatch_s = 0, combine_s = 0;
  };
  std::vector<Layer> layers;  // MoE layers that exchanged
  int micro_batches = 1;      // of the last measured step
  double seconds() const {
    double s = 0;
    for (const Layer& l : layers) s += l.dispatch_s + l.combine_s;
    return s;
  }
};

// Mean milliseconds per step spent in each part of the forward pass, on rank 0, from the
// model's dump points: "embed", "layers.<i>" (attention + FFN of block i, including any waiting
// for other ranks), "final_norm", "lm_head".
struct LayerTimes {
  std::vector<std::string> names;
  std::vector<double> ms;
};

struct PrefillResult {
  int64_t tokens = 0, steps = 0;  // prompt length, steps per run
  std::vector<double> seconds;    // each run
  double tokens_per_s_best = 0, tokens_per_s_median = 0;
  LayerTimes layers;
  ExchangeDelta exchange;         // over the timed runs
};

// One concurrency level of the serving sweep. TTFT: submit -> first token; TPOT: (last token -
// first token) / (tokens - 1) of each request with at least 2 tokens.
struct ServeResult {
  int64_t concurrency = 0, requests = 0, output_tokens = 0;
  double seconds = 0, output_tokens_per_s = 0;
  double ttft_ms_p50 = 0, ttft_ms_p95 = 0, tpot_ms_p50 = 0, tpot_ms_p95 = 0;
};

struct DecodeResult {
  int64_t batch = 0, steps = 0;   // steps per run
  std::vector<double> seconds;    // each run (its timed steps)
  std::vector<double> step_ms;    // every timed step of every run
  double tokens_per_s_best = 0, tokens_per_s_median = 0;
  double tpot_ms_p50 = 0, tpot_ms_p95 = 0;  // time per output token = step time
  int64_t context_first = 0, context_last = 0;  // positions decoded during the timed steps
  int64_t a2a_bytes_sent = 0, a2a_bytes_received = 0;  // rank 0's expert exchange, timed steps
  std::vector<int64_t> expert_tokens;  // rank 0's experts: tokens routed to each, timed steps
  LayerTimes layers;
  ExchangeDelta exchange;              // over the timed steps
};

struct BenchResult {
  BenchOptions options;
  BenchInfo info;
  ModelConfig config;
  int64_t moe_layers = 0;
  PrefillResult prefill;
  std::vector<DecodeResult> decode;
  std::vector<ServeResult> serve;
  double seconds = 0;  // whole measurement, untimed parts included
};

// Runs the measurement on rank 0 (the other ranks serve the plans). The executor's cache must
// hold bench_cache_tokens(o) positions. Every sequence it starts is released before it returns.
BenchResult run_bench(Coordinator& co, const BenchOptions& o, const BenchInfo& info);

// Weight bytes one token reads, from the config's tensor list (runtime/weights.h) with BF16
// storage of every tensor the FP8 checkpoints keep unquantised, and 1 byte + block scales for
// the quantised ones when the config is FP8:
//   attention      every layer's q (or q_a + q_b), kv_a, kv_b, o projections
//   dense_mlp      gate + up + down of the first_k_dense_replace layers
//   router         each MoE layer's gate
//   shared_experts each MoE layer's shared experts
//   routed_experts each MoE layer's num_experts_per_tok experts (one expert: gate + up + down)
//   embedding_head one embedding row + the whole lm_head
//   norms          RMSNorm weights (f32)
struct ActiveBytes {
  int64_t attention = 0, dense_mlp = 0, router = 0, shared_experts = 0, routed_experts = 0, embedding_head = 0,
          norms = 0;
  int64_t one_expert = 0;   // gate + up + down of one routed expert in one layer
  int64_t moe_layers = 0;
  int64_t model_total = 0;  // every weight of the model
  int64_t per_token() const {
    return attention + dense_mlp + router + shared_experts + routed_experts + embedding_head + norms;
  }
  // Expected bytes read by one decode step of `batch` tokens when routing is uniform: the
  // per-token part without routed experts, plus E x (1 - (1 - k/E)^batch) distinct experts per
  // MoE layer (an expert's weights are read once for all its tokens).
  double per_step(int64_t batch, int64_t n_experts, int64_t k) const;
};
ActiveBytes active_weight_bytes(const ModelConfig& c);

// The JSON of a run (bench/README.md lists the fields). loads: every rank's snapshot
// (gather_load) after the run; read_gbs > 0 adds the bandwidth roofline.
nlohmann::json bench_json(const BenchResult& r, const std::vector<RankLoad>& loads, double read_gbs = 0);
// A bench JSON file: throws dsrt::Error naming the file and the missing or malformed field.
nlohmann::json read_bench_json(const std::string& path);
// Writes text to a file; throws dsrt::Error naming the file.
void write_text_file(const std::string& path, const std::string& text);

// Line plots as standalone SVG (runtime/bench_svg.cpp).
struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in x order
  bool dashed = false;
};
struct Plot {
  std::string title, x_label, y_label;
  bool log2_x = false;  // x axis in powers of two (batch sizes)
  std::vector<PlotSeries> series;
};
// One <polyline> per series with at least one point, markers, axes with ticks at the data's x
// values, a legend. Throws dsrt::Error if no series has a point or a value is not finite (or
// x <= 0 on a log axis).
std::string render_svg(const Plot& p);
// Decode tokens/s against batch size: one series per run, plus its roofline (dashed) if the
// JSON has one.
Plot decode_plot(const std::vector<nlohmann::json>& runs);
// Tokens/s against the number of ranks: one series per decode batch size present in the runs,
// and one for prefill. Throws dsrt::Error if two runs have the same rank count.
Plot ranks_plot(const std::vector<nlohmann::json>& runs);

}  // namespace dsrt
