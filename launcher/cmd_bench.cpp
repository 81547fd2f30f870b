// dsrt bench: prefill and decode throughput, time per output token, expert-exchange bytes and
// expert load (runtime/bench.h, bench/README.md); or, with --plot-ranks, a plot of several runs'
// JSON against their rank counts.
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernels/gemm.h"
#include "launcher/command.h"
#include "launcher/model_options.h"
#include "runtime/bench.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/load_stats.h"

namespace dsrt::launcher {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

void print_summary(const BenchResult& r) {
  std::cout << fmt::format("prefill  {:>5} tokens  {:9.1f} tok/s best  {:9.1f} median  ({} runs)\n", r.prefill.tokens,
                           r.prefill.tokens_per_s_best, r.prefill.tokens_per_s_median, r.prefill.seconds.size());
  for (const DecodeResult& d : r.decode)
    std::cout << fmt::format(
        "decode   batch {:>4}  {:9.1f} tok/s best  {:9.1f} median  TPOT p50 {:8.2f} ms  p95 {:8.2f} ms\n", d.batch,
        d.tokens_per_s_best, d.tokens_per_s_median, d.tpot_ms_p50, d.tpot_ms_p95);
  for (const DecodeResult& d : r.decode) {
    if (d.exchange.layers.empty()) continue;
    double run_s = 0;
    for (double x : d.seconds) run_s += x;
    std::cout << fmt::format("exchange batch {:>4}  {:8.2f} ms/step blocked = {:5.1f}% of the step  ({} micro-batch{})\n",
                             d.batch, d.exchange.seconds() * 1e3 / static_cast<double>(d.step_ms.size()),
                             100.0 * d.exchange.seconds() / run_s, d.exchange.micro_batches,
                             d.exchange.micro_batches > 1 ? "es" : "");
  }
  for (const ServeResult& s : r.serve)
    std::cout << fmt::format(
        "serve    conc  {:>4}  {:9.1f} tok/s       TTFT p50 {:8.2f} ms  p95 {:8.2f} ms  TPOT p50 {:8.2f} ms  p95 "
        "{:8.2f} ms\n",
        s.concurrency, s.output_tokens_per_s, s.ttft_ms_p50, s.ttft_ms_p95, s.tpot_ms_p50, s.tpot_ms_p95);
  std::cout.flush();
}

std::function<int()> bench_command(CLI::App& parent) {
  struct Opts {
    ModelOptions model;
    std::string batches = "1,8,32,128", concurrency = "1,4,16";
    BenchOptions bench;
    std::string json, svg, plot_ranks, decode_input = "random";
    double read_gbs = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("bench", "measure prefill and decode throughput (bench/README.md)");
  o->model.add(app);
  app->get_option("--model")->required(false);  // not with --plot-ranks; checked below
  app->add_option("--batch", o->batches, "decode batch sizes, comma-separated");
  app->add_option("--prompt-len", o->bench.prompt_len, "prompt tokens (random ids) of every sequence");
  app->add_option("--decode-steps", o->bench.decode_steps, "timed decode steps per run");
  app->add_option("--repeat", o->bench.repeat, "runs of each measurement (best and median are reported)");
  app->add_option("--prefill-chunk", o->bench.prefill_chunk, "timed prefill: tokens per step (0: one step)");
  app->add_option("--concurrency", o->concurrency,
                  "serving sweep: concurrent requests through the scheduler, comma-separated ('' : no sweep)");
  app->add_option("--serve-tokens", o->bench.serve_tokens, "serving sweep: max_tokens of each request");
  app->add_option("--serve-rounds", o->bench.serve_rounds, "serving sweep: requests per client at each level");
  app->add_option("--decode-input", o->decode_input,
                  "random: seeded random ids (routing like varied traffic) | greedy: each step's argmax")
      ->check(CLI::IsMember({"random", "greedy"}));
  app->add_option("--read-bandwidth", o->read_gbs,
                  "GB/s of streaming reads (bench_kernels ReadBandwidth): adds the roofline to JSON and plot")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--json", o->json, "write the results as JSON");
  app->add_option("--svg", o->svg, "write decode tokens/s against batch size (with --plot-ranks: against ranks)");
  app->add_option("--plot-ranks", o->plot_ranks,
                  "comma-separated JSON files of runs with different rank counts: plot them into --svg, run nothing");
  return [o] {
    set_log_level(o->model.log_level);
    if (!o->plot_ranks.empty()) {
      if (!o->model.model.empty()) throw Error("--plot-ranks reads JSON files only; it takes no --model");
      if (o->svg.empty()) throw Error("--plot-ranks needs --svg FILE for the plot");
      std::vector<nlohmann::json> runs;
      for (const std::string& f : split_list(o->plot_ranks)) runs.push_back(read_bench_json(f));
      if (runs.empty()) throw Error("--plot-ranks: no files given");
      write_text_file(o->svg, render_svg(ranks_plot(runs)));
      spdlog::info("wrote {} ({} runs)", o->svg, runs.size());
      return 0;
    }
    if (o->model.model.empty()) throw Error("--model is required (or --plot-ranks to plot earlier runs)");
    o->bench.batches = parse_batch_list(o->batches);
    o->bench.concurrency = parse_batch_list(o->concurrency, "--concurrency", true);
    o->bench.greedy_feedback = o->decode_input == "greedy";
    o->bench.seed = o->model.seed;
    {  // check the options against the model before loading its weights
      ModelConfig c = load_model_config(o->model.model);
      if (o->model.load_format == "dummy") apply_layer_overrides(c, o->model.num_layers, o->model.dense_layers);
      validate(o->bench, c);
    }
    Runtime rt(o->model, bench_cache_tokens(o->bench));
    BenchInfo info;
    info.ranks = rt.groups.world->size();
    info.threads = rt.pool->size();
    info.tp = rt.groups.tp_size;
    info.dp = rt.groups.dp_size;
    info.ep = rt.groups.ep_size;
    info.isa = kernels::isa_name(kernels::active_isa());
    info.model_path = o->model.model;
    info.load_format = o->model.load_format;
    info.moe_comm = o->model.moe_comm;
    info.overlap = o->model.overlap;
    info.topology = o->model.topology;
    BenchResult result;
    const int rc = rt.run([&] {
      result = run_bench(*rt.coordinator, o->bench, info);
      return 0;
    });
    // Every rank is here now (the workers left their loop): gather the expert load once more,
    // for the JSON.
    std::vector<RankLoad> loads = gather_load(*rt.groups.world, snapshot_load(*rt.model, *rt.groups.world));
    if (!rt.is_coordinator() || rc != 0) return rc;
    print_summary(result);
    const nlohmann::json j = bench_json(result, loads, o->read_gbs);
    if (!o->json.empty()) {
      write_text_file(o->json, j.dump(2) + "\n");
      spdlog::info("wrote {}", o->json);
    }
    if (!o->svg.empty()) {
      std::vector<nlohmann::json> runs;
      runs.push_back(j);
      write_text_file(o->svg, render_svg(decode_plot(runs)));
      spdlog::info("wrote {}", o->svg);
    }
    return 0;
  };
}

DSRT_COMMAND(bench_command);

}  // namespace
}  // namespace dsrt::launcher
