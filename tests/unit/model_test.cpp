// Checks that hold for any configuration, run on dummy weights of shapes the golden
// checkpoints do not have: the decode path equals the prefill path, a sequence's logits do not
// depend on what else is in the batch, routing follows each topk_method, and dummy weights are
// a pure function of (seed, name, index) whatever the shard.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

using nlohmann::json;

json base_config() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 300, "hidden_size": 136,
    "intermediate_size": 200, "moe_intermediate_size": 40, "num_hidden_layers": 3,
    "first_k_dense_replace": 1, "num_attention_heads": 6, "q_lora_rank": 72, "kv_lora_rank": 40,
    "qk_nope_head_dim": 24, "qk_rope_head_dim": 8, "v_head_dim": 20, "n_routed_experts": 12,
    "n_shared_experts": 1, "num_experts_per_tok": 3, "n_group": 3, "topk_group": 2,
    "routed_scaling_factor": 1.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "norm_topk_prob": true, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
    "rope_scaling": {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 16,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 512, "bos_token_id": 0, "eos_token_id": 1})");
}

struct Shape {
  std::string name;
  json patch;
};
void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

class AnyShape : public ::testing::TestWithParam<Shape> {
 protected:
  ModelConfig config() const {
    json j = base_config();
    for (const auto& [k, v] : GetParam().patch.items()) j[k] = v;  // not merge_patch: null must stay null
    return parse_model_config(j.dump(), GetParam().name);
  }
  kernels::ThreadPool pool_{2};
  std::unique_ptr<comm::Communicator> comm_ = comm::make_single_rank();
};

TEST_P(AnyShape, DecodeEqualsPrefillAndBatchingDoesNotLeak) {
  Model m(dummy_weights(config(), 11, {}), Ctx{&pool_, comm_.get()});
  const int64_t V = m.config().vocab_size, n = 40;
  std::vector<int32_t> a(n), b(n / 2);
  for (int64_t i = 0; i < n; ++i) a[i] = static_cast<int32_t>((i * 37 + 5) % V);
  for (int64_t i = 0; i < n / 2; ++i) b[i] = static_cast<int32_t>((i * 11 + 3) % V);
  LocalEngine engine(m, n);
  std::vector<float> prefill = compute_logits(engine.coordinator(), a, n),
                     decode = compute_logits(engine.coordinator(), a, 10);
  test::Diff d = test::diff(prefill.data(), decode.data(), n * V);
  EXPECT_LE(d.max_abs, 1e-3);
  double spread = 0;  // the logits must carry signal for the comparison to mean anything
  for (int64_t i = 0; i < V; ++i) spread = std::max(spread, std::fabs(double(prefill[i]) - prefill[0]));
  EXPECT_GT(spread, 1e-2);

  // Sequence a prefilled in one step together with b: a's rows equal its solo rows.
  LatentKVCache cache = make_cache(m.config(), 2 * n, 8);
  auto sa = cache.create(), sb = cache.create();
  ASSERT_TRUE(cache.reserve(sa, n) && cache.reserve(sb, n / 2));
  std::vector<float> both;
  m.forward({{sb, 0, b.data(), n / 2, false}, {sa, 0, a.data(), n, true}}, cache, both);
  ASSERT_EQ(static_cast<int64_t>(both.size()), (1 + n) * V);
  EXPECT_LE(test::diff(both.data() + V, prefill.data(), n * V).max_abs, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AnyShape,
    ::testing::Values(
        Shape{"v3_like", json::object()},
        Shape{"fp8_partial_blocks", {{"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}}}, {"hidden_size", 200}}},
        Shape{"v2_group_limited_greedy", {{"architectures", {"DeepseekV2ForCausalLM"}}, {"q_lora_rank", nullptr}, {"topk_method", "group_limited_greedy"}, {"scoring_func", "softmax"}, {"norm_topk_prob", false}, {"n_shared_experts", 2}}},
        Shape{"greedy_no_groups_no_yarn", {{"topk_method", "greedy"}, {"n_group", 1}, {"topk_group", 1}, {"rope_scaling", nullptr}, {"scoring_func", "softmax"}}},
        Shape{"moe_every_other_layer", {{"moe_layer_freq", 2}, {"first_k_dense_replace", 0}, {"n_shared_experts", 0}, {"num_attention_heads", 3}}}),
    [](const auto& info) { return info.param.name; });

// Routing on hand-made gate logits whose answer is known.
TEST(Routing, GroupLimitedSelectionAndWeights) {
  json j = base_config();  // 12 experts in 3 groups of 4, top-2 groups, top-3 experts, sigmoid
  ModelConfig c = parse_model_config(j.dump(), "test");
  // Group 0 holds the single best expert (0) but weak others; group 1 has two strong experts,
  // group 2 three medium ones. noaux_tc scores a group by its top-2 sum: groups 1 and 2 win.
  std::vector<float> logits = {5, -5, -5, -5, /**/ 3, 3, -5, -5, /**/ 2, 2, 2, -5};
  std::vector<float> bias, scratch;
  Routes r;
  route(c, bias, logits.data(), 1, r, scratch);
  ASSERT_EQ(r.k, 3);
  std::vector<int32_t> experts(r.experts.begin(), r.experts.end());
  EXPECT_EQ(experts[0], 4);
  EXPECT_EQ(experts[1], 5);
  EXPECT_EQ(experts[2], 8);  // ties keep the lower index
  const float s3 = 1 / (1 + std::exp(-3.f)), s2 = 1 / (1 + std::exp(-2.f));
  EXPECT_NEAR(r.weights[0], s3 / (2 * s3 + s2) * 1.5f, 1e-6);
  EXPECT_NEAR(r.weights[2], s2 / (2 * s3 + s2) * 1.5f, 1e-6);

  // The correction bias changes the choice but not the weights.
  bias = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.9f, 0};
  route(c, bias, logits.data(), 1, r, scratch);
  EXPECT_EQ(r.experts[0], 10);
  EXPECT_NEAR(r.weights[0], s2 / (2 * s3 + s2) * 1.5f, 1e-6);

  // group_limited_greedy scores a group by its max: group 0 (max 5) and group 1 (max 3) win.
  j["topk_method"] = "group_limited_greedy";
  j["scoring_func"] = "softmax";
  j["norm_topk_prob"] = false;
  c = parse_model_config(j.dump(), "test");
  route(c, {}, logits.data(), 1, r, scratch);
  EXPECT_EQ(r.experts[0], 0);
  EXPECT_EQ(r.experts[1], 4);
  EXPECT_EQ(r.experts[2], 5);
  double z = 0;
  for (float v : logits) z += std::exp(double(v));
  EXPECT_NEAR(r.weights[0], std::exp(5.0) / z * 1.5, 1e-6);  // softmax over all experts, not renormalised

  // greedy ignores groups.
  j["topk_method"] = "greedy";
  c = parse_model_config(j.dump(), "test");
  route(c, {}, logits.data(), 1, r, scratch);
  EXPECT_EQ(r.experts[1], 4);
  EXPECT_EQ(r.experts[2], 5);
}

TEST(DummyWeights, SameNumbersInEveryShard) {
  ModelConfig c = parse_model_config(base_config().dump(), "test");
  ModelWeights full = dummy_weights(c, 5, {});
  LoadOptions half;
  half.shard.tp_rank = 1;
  half.shard.tp_size = 2;
  ModelWeights shard = dummy_weights(c, 5, half);
  // wq_b is column-split (rows), wo row-split (columns).
  const auto& f = full.layers[1].attn;
  const auto& s = shard.layers[1].attn;
  ASSERT_EQ(s.wq_b.rows * 2, f.wq_b.rows);
  ASSERT_EQ(s.wo.cols * 2, f.wo.cols);
  std::vector<float> a(f.wq_b.cols), b(f.wq_b.cols);
  kernels::dequantize_rows(f.wq_b, f.wq_b.rows / 2 + 3, 1, a.data());
  kernels::dequantize_rows(s.wq_b, 3, 1, b.data());
  EXPECT_EQ(a, b);
  std::vector<float> wo_full(f.wo.cols), wo_half(s.wo.cols);
  kernels::dequantize_rows(f.wo, 7, 1, wo_full.data());
  kernels::dequantize_rows(s.wo, 7, 1, wo_half.data());
  EXPECT_TRUE(std::equal(wo_half.begin(), wo_half.end(), wo_full.begin() + f.wo.cols / 2));
  ModelWeights other = dummy_weights(c, 6, {});
  std::vector<float> o(f.wq_b.cols);
  kernels::dequantize_rows(other.layers[1].attn.wq_b, f.wq_b.rows / 2 + 3, 1, o.data());
  EXPECT_NE(a, o);
}

TEST(Config, ValidationNamesTheField) {
  auto fails_with = [](json patch, const std::string& fragment) {
    json j = base_config();
    j.merge_patch(patch);
    try {
      parse_model_config(j.dump(), "cfg.json");
      ADD_FAILURE() << "accepted " << patch.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  fails_with({{"hidden_size", "big"}}, "'hidden_size' must be an integer");
  fails_with({{"topk_method", "magic"}}, "topk_method 'magic'");
  fails_with({{"scoring_func", "relu"}}, "scoring_func 'relu'");
  fails_with({{"num_experts_per_tok", 13}}, "num_experts_per_tok 13 exceeds n_routed_experts 12");
  fails_with({{"topk_group", 4}}, "topk_group 4 exceeds n_group 3");
  fails_with({{"topk_group", 1}, {"num_experts_per_tok", 5}}, "num_experts_per_tok 5 exceeds the 4 experts");
  fails_with({{"qk_rope_head_dim", 7}}, "qk_rope_head_dim 7 must be even");
  fails_with({{"rope_scaling", {{"type", "linear"}}}}, "rope_scaling type 'linear'");
  fails_with({{"quantization_config", {{"quant_method", "gptq"}}}}, "quant_method 'gptq'");
  fails_with({{"eos_token_id", 300}}, "eos_token_id 300 is outside vocab_size 300");
}

TEST(Config, YarnSoftmaxScale) {
  ModelConfig c = parse_model_config(base_config().dump(), "test");
  const double m = 0.1 * 1.0 * std::log(8.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(32.0), 1e-12);
}

TEST(KVCache, BlocksAreReusedAndBounded) {
  LatentKVCache cache(2, 4, 8, 3);
  auto a = cache.create();
  EXPECT_TRUE(cache.reserve(a, 17));  // 3 blocks
  EXPECT_EQ(cache.free_blocks(), 0);
  auto b = cache.create();
  EXPECT_FALSE(cache.reserve(b, 1));
  EXPECT_EQ(cache.capacity(b), 0);
  cache.row(a, 1, 16)[3] = 42.0f;
  cache.release(a);
  EXPECT_EQ(cache.free_blocks(), 3);
  EXPECT_TRUE(cache.reserve(b, 24));
  EXPECT_EQ(cache.capacity(b), 24);
}

TEST(Sampler, GreedyTopKTopP) {
  std::vector<float> logits = {1.0f, 3.0f, 2.9f, -1.0f};
  Sampler s(1);
  EXPECT_EQ(s.sample(logits.data(), 4, {0.0f, 1.0f, 0, 0}), 1);
  // top_k 1 at any temperature is greedy
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits.data(), 4, {2.0f, 1.0f, 1, 0}), 1);
  // top_p small enough keeps only the best token
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits.data(), 4, {1.0f, 0.3f, 0, 0}), 1);
  // top_k 2: only tokens 1 and 2 appear, both do, at about e^0.1 : 1
  int count[4] = {};
  for (int i = 0; i < 4000; ++i) ++count[s.sample(logits.data(), 4, {1.0f, 1.0f, 2, 0})];
  EXPECT_EQ(count[0] + count[3], 0);
  EXPECT_NEAR(count[1] / 4000.0, std::exp(0.1) / (1 + std::exp(0.1)), 0.03);
}

// A vocabulary large enough that top_p keeps more than the first sorted prefix (64): the kept set
// and the frequencies follow the softmax of the kept candidates, and plain sampling follows the
// softmax of all.
TEST(Sampler, LargeVocabularyFrequencies) {
  const int64_t V = 5000;
  std::vector<float> logits(V, -30.0f);
  // 200 tokens share the mass equally, scattered over the vocabulary; one token has twice it.
  for (int64_t i = 0; i < 200; ++i) logits[(i * 7919) % V] = 0.0f;
  const int64_t big = (200 * 7919) % V;
  logits[big] = std::log(2.0f);
  auto frequencies = [&](SamplingParams p, int draws) {
    Sampler s(7);
    std::vector<int> count(V);
    for (int i = 0; i < draws; ++i) ++count[s.sample(logits.data(), V, p)];
    return count;
  };
  // top_p 0.45 of total mass 202 (90.9): the big token (2) + 89 of the tied ones.
  std::vector<int> c = frequencies({1.0f, 0.45f, 0, 0}, 20000);
  int kept = 0;
  for (int64_t i = 0; i < V; ++i) kept += c[i] > 0;
  EXPECT_GT(kept, 80);
  EXPECT_LE(kept, 90);
  EXPECT_NEAR(c[big] / 20000.0, 2.0 / 91.0, 0.006);
  // No limit: every one of the 201 tokens appears; the rest (e^-30) practically never.
  c = frequencies({1.0f, 1.0f, 0, 0}, 20000);
  int seen = 0, low = 0;
  for (int64_t i = 0; i < V; ++i) (logits[i] > -1.0f ? seen : low) += c[i] > 0;
  EXPECT_EQ(seen, 201);
  EXPECT_EQ(low, 0);
  EXPECT_NEAR(c[big] / 20000.0, 2.0 / 202.0, 0.005);
}

}  // namespace
}  // namespace dsrt
