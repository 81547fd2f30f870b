// dsrt bench (runtime/bench.h): the measurement on the tiny checkpoint, its JSON, option
// validation, the active-weight formula on DeepSeek-V2-Lite's config, and the SVG plots.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "kernels/threadpool.h"
#include "runtime/bench.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

namespace fs = std::filesystem;

std::string tiny() { return test::data_dir() + "/golden/tiny-v3"; }
std::string v2_lite_config() { return test::data_dir() + "/../../cluster-configs/deepseek-v2-lite/config.json"; }

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("dsrt-bench-test-" + std::to_string(getpid()) + "-" + name);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// Minimal XML well-formedness: every element is closed in order; quotes in attributes balanced.
// Returns "" or what is wrong.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  size_t i = 0;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    std::string tag = s.substr(i + 1, end - i - 1);
    if (count(tag, "\"") % 2) return "unbalanced quotes in <" + tag + ">";
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
      open.pop_back();
    } else if (tag.empty() || tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
    i = end + 1;
  }
  return open.empty() ? "" : "<" + open.back() + "> never closed";
}

BenchOptions small_options() {
  BenchOptions o;
  o.batches = {1, 4};
  o.prompt_len = 8;
  o.decode_steps = 3;
  o.repeat = 2;
  o.fill_step_tokens = 12;  // the batch prefill splits a prompt across steps
  o.concurrency = {1, 3};
  o.serve_tokens = 4;
  o.serve_rounds = 2;
  return o;
}

TEST(Bench, MeasuresTheTinyModelAndReportsEveryField) {
  kernels::ThreadPool pool(2);
  Model m(load_weights(tiny(), {}), Ctx{&pool});
  const BenchOptions o = small_options();
  LocalEngine e(m, bench_cache_tokens(o));
  BenchInfo info;
  info.threads = pool.size();
  info.isa = "test-isa";
  info.model_path = tiny();
  const BenchResult r = run_bench(e.coordinator(), o, info);
  auto world = comm::make_single_rank();
  const std::vector<RankLoad> loads = gather_load(*world, snapshot_load(m, *world));
  const nlohmann::json j = bench_json(r, loads, 10.0);

  EXPECT_GT(j.at("prefill_tokens_per_s").get<double>(), 0);
  EXPECT_EQ(j.at("prefill").at("runs_s").size(), 2u);
  EXPECT_EQ(j.at("ranks").get<int>(), 1);
  EXPECT_EQ(j.at("threads").get<int>(), 2);
  EXPECT_EQ(j.at("isa").get<std::string>(), "test-isa");
  EXPECT_EQ(j.at("model").at("hidden_size").get<int64_t>(), m.config().hidden_size);
  EXPECT_EQ(j.at("model").at("moe_layers").get<int64_t>(), 2);
  EXPECT_GT(j.at("weights_bytes").get<int64_t>(), 0);
  EXPECT_GT(j.at("active_weight_bytes_per_token").at("total").get<int64_t>(), 0);

  const int64_t k = m.config().num_experts_per_tok;
  ASSERT_EQ(j.at("decode").size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& d = j.at("decode")[i];
    const int64_t B = o.batches[i];
    EXPECT_EQ(d.at("batch").get<int64_t>(), B);
    EXPECT_GT(d.at("tokens_per_s").get<double>(), 0);
    EXPECT_GE(d.at("tokens_per_s").get<double>(), d.at("tokens_per_s_median").get<double>());
    EXPECT_GT(d.at("tpot_ms_p50").get<double>(), 0);
    EXPECT_GE(d.at("tpot_ms_p95").get<double>(), d.at("tpot_ms_p50").get<double>());
    EXPECT_GT(d.at("roofline_tokens_per_s").get<double>(), 0);
    // Timed steps start after the prompt and the warm-up step.
    EXPECT_EQ(d.at("context")[0].get<int64_t>(), o.prompt_len + 1);
    EXPECT_EQ(d.at("context")[1].get<int64_t>(), o.prompt_len + o.repeat * o.decode_steps);
    // Every timed token went to k experts in each MoE layer, all on this rank.
    EXPECT_EQ(d.at("rank0_expert_tokens").get<int64_t>(), B * o.decode_steps * o.repeat * k * 2);
    // One part per dump point, plus the tail; the parts add up to about the step time.
    const auto& parts = d.at("ms_per_step_by_part");
    ASSERT_EQ(parts.size(), 1u + 3u + 2u + 1u);
    EXPECT_EQ(parts[1].at("part").get<std::string>(), "layer 0 (dense)");
    EXPECT_EQ(parts[2].at("part").get<std::string>(), "layer 1 (moe)");
    double sum = 0;
    for (const auto& p : parts) sum += p.at("ms").get<double>();
    EXPECT_GT(sum, 0);
    EXPECT_EQ(r.decode[i].step_ms.size(), static_cast<size_t>(o.repeat * o.decode_steps));
  }
  // One rank: no exchange, and the load covers the experts.
  EXPECT_EQ(j.at("all_to_all").at("per_batch")[0].at("bytes_sent_per_moe_layer_step").get<double>(), 0);
  EXPECT_FALSE(j.at("all_to_all").at("time_measured").get<bool>());
  ASSERT_EQ(j.at("expert_load").size(), 1u);
  EXPECT_GT(j.at("expert_load")[0].at("expert_tokens").get<int64_t>(), 0);
  EXPECT_EQ(j.at("expert_load")[0].at("experts").get<int64_t>(), m.config().n_routed_experts);
  EXPECT_GT(j.at("roofline").at("batch1_tokens_per_s").get<double>(), 0);
  EXPECT_EQ(j.at("decode")[0].at("exchange").at("share_of_step").get<double>(), 0);
  EXPECT_TRUE(j.at("decode")[0].at("exchange").at("per_layer_per_step").empty());
  EXPECT_TRUE(j.at("prefill").at("exchange").is_object());

  // The serving sweep: every request produced tokens, TTFT and TPOT were measured.
  ASSERT_EQ(j.at("serve").size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& sv = j.at("serve")[i];
    const int64_t C = o.concurrency[i];
    EXPECT_EQ(sv.at("concurrency").get<int64_t>(), C);
    EXPECT_EQ(sv.at("requests").get<int64_t>(), C * o.serve_rounds);
    EXPECT_GE(sv.at("output_tokens").get<int64_t>(), C * o.serve_rounds);
    EXPECT_LE(sv.at("output_tokens").get<int64_t>(), C * o.serve_rounds * o.serve_tokens);
    EXPECT_GT(sv.at("output_tokens_per_s").get<double>(), 0);
    EXPECT_GT(sv.at("ttft_ms_p50").get<double>(), 0);
    EXPECT_GE(sv.at("ttft_ms_p95").get<double>(), sv.at("ttft_ms_p50").get<double>());
    EXPECT_GE(sv.at("tpot_ms_p95").get<double>(), sv.at("tpot_ms_p50").get<double>());
  }

  // The sequences are gone: the whole cache is free again.
  EXPECT_EQ(e.coordinator().executor().cache().free_blocks(), e.coordinator().executor().cache().total_blocks());

  // The JSON file reads back.
  const fs::path p = temp_path("run.json");
  write_text_file(p.string(), j.dump(2));
  EXPECT_EQ(read_bench_json(p.string()).at("decode").size(), 2u);
  fs::remove(p);
}

TEST(Bench, GreedyInputAndChunkedPrefill) {
  kernels::ThreadPool pool(1);
  Model m(load_weights(tiny(), {}), Ctx{&pool});
  BenchOptions o = small_options();
  o.batches = {3};
  o.repeat = 1;
  o.prefill_chunk = 3;
  o.greedy_feedback = true;
  LocalEngine e(m, bench_cache_tokens(o));
  const BenchResult r = run_bench(e.coordinator(), o, {});
  EXPECT_EQ(r.prefill.steps, 3);
  EXPECT_GT(r.prefill.tokens_per_s_best, 0);
  ASSERT_EQ(r.decode.size(), 1u);
  EXPECT_GT(r.decode[0].tokens_per_s_best, 0);
}

TEST(Bench, ParsesBatchLists) {
  EXPECT_EQ(parse_batch_list("1,8,32,128"), (std::vector<int64_t>{1, 8, 32, 128}));
  EXPECT_EQ(parse_batch_list("5"), (std::vector<int64_t>{5}));
  auto message = [](const std::string& s) {
    try {
      parse_batch_list(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("1,0,4").find("'0' (item 2)"), std::string::npos) << message("1,0,4");
  EXPECT_NE(message("abc").find("'abc'"), std::string::npos);
  EXPECT_NE(message("8x").find("'8x'"), std::string::npos);
  EXPECT_NE(message("-3").find("'-3'"), std::string::npos);
  EXPECT_NE(message("1,,2").find("'' (item 2)"), std::string::npos);
  EXPECT_NE(message("").find("not a positive integer"), std::string::npos);
  EXPECT_NE(message("8,8").find("8 appears twice"), std::string::npos);
  EXPECT_NE(message("70000").find("70000"), std::string::npos);
}

TEST(Bench, ValidatesOptionsAgainstTheModel) {
  const ModelConfig c = load_model_config(tiny());  // max_position_embeddings 1280
  auto message = [&](const BenchOptions& o) {
    try {
      validate(o, c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  BenchOptions o;
  EXPECT_EQ(message(o), "no error");
  o.prompt_len = 0;
  EXPECT_NE(message(o).find("--prompt-len 0"), std::string::npos);
  o = {};
  o.decode_steps = -2;
  EXPECT_NE(message(o).find("--decode-steps -2"), std::string::npos);
  o = {};
  o.repeat = 0;
  EXPECT_NE(message(o).find("--repeat 0"), std::string::npos);
  o = {};
  o.batches = {};
  EXPECT_NE(message(o).find("--batch"), std::string::npos);
  o = {};
  o.prompt_len = 1200;
  o.decode_steps = 40;  // 1200 + 1 + 3 x 40 = 1321 > 1280
  EXPECT_NE(message(o).find("1321"), std::string::npos);
  EXPECT_NE(message(o).find("1280"), std::string::npos);
  // The cache holds the largest batch, each sequence rounded up to blocks.
  o = {};
  o.batches = {2, 5};
  o.prompt_len = 100;
  o.decode_steps = 10;
  o.repeat = 3;  // 131 positions -> 3 blocks of 64
  o.concurrency = {};
  EXPECT_EQ(bench_cache_tokens(o, 64), 5 * 3 * 64);
  // ... or the serving sweep's requests, prompt + serve_tokens each, if that is more.
  o.concurrency = {1, 16};
  o.serve_tokens = 16;  // 116 positions -> 2 blocks
  EXPECT_EQ(bench_cache_tokens(o, 64), 16 * 2 * 64);
}

TEST(Bench, ActiveWeightBytesOfDeepSeekV2Lite) {
  const ModelConfig c = load_model_config(v2_lite_config());
  EXPECT_EQ(c.architecture, "DeepseekV2ForCausalLM");
  EXPECT_EQ(c.num_hidden_layers, 27);
  const ActiveBytes a = active_weight_bytes(c);
  // BF16, by hand: attention q 16x192x2048, kv_a 576x2048, kv_b 16x256x512, o 2048x2048.
  const int64_t attn = (16 * 192 * 2048 + 576 * 2048 + 16 * 256 * 512 + 2048 * 2048) * 2;
  const int64_t dense = 3 * 2048 * 10944 * 2, expert = 3 * 2048 * 1408 * 2, shared = 3 * 2048 * 2816 * 2;
  const int64_t router = 64 * 2048 * 2, head = int64_t{102400} * 2048 * 2;
  EXPECT_EQ(a.moe_layers, 26);
  EXPECT_EQ(a.attention, 27 * attn);
  EXPECT_EQ(a.dense_mlp, dense);
  EXPECT_EQ(a.one_expert, expert);
  EXPECT_EQ(a.routed_experts, 26 * 6 * expert);
  EXPECT_EQ(a.shared_experts, 26 * shared);
  EXPECT_EQ(a.router, 26 * router);
  EXPECT_EQ(a.embedding_head, head + 2048 * 2);
  // 2.4 B active and 15.7 B total parameters, as DeepSeek states.
  EXPECT_NEAR(static_cast<double>(a.per_token()) / 2, 2.4e9, 0.1e9);  // 2.45 B with lm_head
  EXPECT_NEAR(static_cast<double>(a.model_total) / 2, 15.7e9, 0.1e9);
  // A step of many tokens reads at most every expert once.
  EXPECT_DOUBLE_EQ(a.per_step(1, 64, 6), static_cast<double>(a.per_token()));
  EXPECT_NEAR(a.per_step(100000, 64, 6), static_cast<double>(a.per_token() - a.routed_experts + 26 * 64 * expert), 1);
}

nlohmann::json fake_run(int ranks, double scale) {
  nlohmann::json j;
  j["ranks"] = ranks;
  j["threads"] = 2;
  j["prefill_tokens_per_s"] = 100 * scale;
  j["decode"] = nlohmann::json::array();
  for (int b : {1, 8, 32})
    j["decode"].push_back({{"batch", b}, {"tokens_per_s", scale * b * 3.5}, {"roofline_tokens_per_s", b * 10.0}});
  j["roofline"] = {{"read_bandwidth_gb_per_s", 12.5}};
  return j;
}

TEST(Bench, WritesWellFormedSvgPlots) {
  // Decode against batch: the run and its roofline.
  const std::string a = render_svg(decode_plot({fake_run(1, 1.0)}));
  EXPECT_EQ(a.rfind("<svg", 0), 0u);
  EXPECT_EQ(a.substr(a.size() - 7), "</svg>\n");
  EXPECT_EQ(count(a, "<polyline"), 2u);
  EXPECT_EQ(count(a, "stroke-dasharray"), 2u);  // the roofline and its legend line
  EXPECT_EQ(xml_problem(a), "");
  EXPECT_NE(a.find("roofline (12.5 GB/s)"), std::string::npos);
  EXPECT_NE(a.find(">32</text>"), std::string::npos);  // x ticks at the batch sizes
  EXPECT_EQ(a.find(">128</text>"), std::string::npos);

  // Against ranks, through files as dsrt bench --plot-ranks reads them: 3 batch sizes + prefill.
  const fs::path f1 = temp_path("r1.json"), f2 = temp_path("r2.json"), out = temp_path("ranks.svg");
  write_text_file(f1.string(), fake_run(1, 1.0).dump());
  write_text_file(f2.string(), fake_run(2, 1.8).dump());
  const std::string b = render_svg(ranks_plot({read_bench_json(f1.string()), read_bench_json(f2.string())}));
  write_text_file(out.string(), b);
  const std::string back = read_file(out);
  EXPECT_EQ(back.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(back, "<polyline"), 4u);
  EXPECT_EQ(xml_problem(back), "");
  EXPECT_NE(back.find("decode, batch 32"), std::string::npos);

  // Text is escaped.
  Plot p;
  p.title = "a < b & \"c\"";
  p.series.push_back({"s<1>", {{1, 2}, {2, 3}}, false});
  const std::string c = render_svg(p);
  EXPECT_EQ(xml_problem(c), "");
  EXPECT_NE(c.find("a &lt; b &amp; &quot;c&quot;"), std::string::npos);

  // Errors name the problem.
  EXPECT_THROW(ranks_plot({fake_run(2, 1.0), fake_run(2, 1.1)}), Error);
  EXPECT_THROW(render_svg(Plot{}), Error);
  Plot bad;
  bad.log2_x = true;
  bad.series.push_back({"s", {{0, 1}}, false});
  EXPECT_THROW(render_svg(bad), Error);
  write_text_file(f1.string(), "{\"ranks\": 1}");
  try {
    read_bench_json(f1.string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prefill_tokens_per_s"), std::string::npos) << e.what();
  }
  fs::remove(f1);
  fs::remove(f2);
  fs::remove(out);
}

// Two ranks (experts over both): the exchange's bytes and time per MoE layer, its share of the
// step, both ranks' expert load; micro-batches follow --overlap.
TEST(Bench, TwoRanksUnderMpirunReportTheExchange) {
  for (const std::string overlap : {"on", "off"}) {
    const fs::path json = temp_path("mpi-" + overlap + ".json");
    test::RunResult r = test::run(test::mpirun_dsrt(2) + " bench --model " + tiny() +
                                      " --batch 2,4 --prompt-len 4 --decode-steps 2 --repeat 1 --concurrency 2 "
                                      "--serve-tokens 3 --threads 1 --log-level warn --overlap " +
                                      overlap + " --json " + json.string(),
                                  180);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json j = read_bench_json(json.string());
    EXPECT_EQ(j.at("ranks").get<int>(), 2);
    EXPECT_EQ(j.at("ep").get<int>(), 2);
    EXPECT_EQ(j.at("overlap").get<std::string>(), overlap);
    EXPECT_TRUE(j.at("all_to_all").at("time_measured").get<bool>());
    ASSERT_EQ(j.at("decode").size(), 2u);
    for (const auto& d : j.at("decode")) {
      const auto& ex = d.at("exchange");
      EXPECT_EQ(ex.at("micro_batches").get<int>(), overlap == "on" ? 2 : 1);
      ASSERT_EQ(ex.at("per_layer_per_step").size(), 2u);  // the tiny model's two MoE layers
      for (const auto& l : ex.at("per_layer_per_step")) {
        EXPECT_GT(l.at("bytes_sent").get<double>(), 0);
        EXPECT_GT(l.at("bytes_received").get<double>(), 0);
        EXPECT_GT(l.at("dispatch_ms").get<double>() + l.at("combine_ms").get<double>(), 0);
      }
      EXPECT_GT(ex.at("share_of_step").get<double>(), 0);
      EXPECT_LT(ex.at("share_of_step").get<double>(), 1);
    }
    EXPECT_GT(j.at("all_to_all").at("per_batch")[0].at("ms_per_moe_layer_step").get<double>(), 0);
    ASSERT_EQ(j.at("expert_load").size(), 2u);
    for (const auto& l : j.at("expert_load")) EXPECT_GT(l.at("expert_tokens").get<int64_t>(), 0);
    ASSERT_EQ(j.at("serve").size(), 1u);
    EXPECT_GT(j.at("serve")[0].at("ttft_ms_p50").get<double>(), 0);
    fs::remove(json);
  }
}

TEST(Bench, CommandLine) {
  const fs::path json = temp_path("cli.json"), svg = temp_path("cli.svg"), json2 = temp_path("cli2.json"),
                 rsvg = temp_path("cli-ranks.svg");
  test::RunResult r = test::run_dsrt("bench --model " + tiny() +
                                     " --batch 1,2 --prompt-len 4 --decode-steps 2 --repeat 1 --concurrency 1 "
                                     "--serve-tokens 2 --threads 1 --json " +
                                     json.string() + " --svg " + svg.string() + " --log-level warn");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("decode   batch    2"), std::string::npos) << r.output;
  nlohmann::json j = read_bench_json(json.string());
  EXPECT_EQ(j.at("threads").get<int>(), 1);
  EXPECT_EQ(read_file(svg).rfind("<svg", 0), 0u);

  // Bad values fail before the model loads, naming the value.
  r = test::run_dsrt("bench --model " + tiny() + " --batch 1,0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--batch: '0' (item 2)"), std::string::npos) << r.output;
  r = test::run_dsrt("bench --model " + tiny() + " --concurrency 2,x");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--concurrency: 'x' (item 2)"), std::string::npos) << r.output;
  r = test::run_dsrt("bench --batch 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--model is required"), std::string::npos) << r.output;

  // Plot two runs against their rank counts.
  j["ranks"] = 2;
  write_text_file(json2.string(), j.dump());
  r = test::run_dsrt("bench --plot-ranks " + json.string() + "," + json2.string() + " --svg " + rsvg.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(read_file(rsvg), "<polyline"), 3u);  // batch 1, batch 2, prefill
  r = test::run_dsrt("bench --plot-ranks " + json.string() + " --svg " + rsvg.string() + " --model " + tiny());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const auto& p : {json, svg, json2, rsvg}) fs::remove(p);
}

}  // namespace
}  // namespace dsrt
