// --weight-dtype end to end: the cost of each format against the stored weights on every golden
// checkpoint (top-1 agreement and |Δlogit| of prefill + decode logits), sharded conversion
// (each rank converts only its slice) and dummy weights. Prints the table that
// bench/README.md (--weight-dtype) records:
//   dsrt_tests --gtest_filter='WeightDtype*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "comm/communicator.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/plan.h"
#include "runtime/safetensors.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

struct Quality {
  double top1 = 0, mean_abs = 0, max_abs = 0;
};

struct Bound {
  WeightFormat f;
  double min_top1, max_mean;
};

class WeightDtype : public ::testing::TestWithParam<test::GoldenCase> {
 protected:
  // logits(f) with the portable kernels, which keep x in f32 where the SIMD I8 / I4 kernels
  // round it to int8 (kernel_table.h, kNtQuantMaxM): the weights' own cost.
  std::vector<float> logits_f32_x(WeightFormat f) {
    const kernels::Isa saved = kernels::active_isa();
    kernels::set_isa(kernels::Isa::Scalar);
    std::vector<float> l = logits(f);
    kernels::set_isa(saved);
    return l;
  }
  // Logits [2 sequences x S, vocab]: positions < P prefilled, the rest decoded one at a time.
  std::vector<float> logits(WeightFormat f, const std::string& dir = "") {
    LoadOptions lo;
    lo.weight_format = f;
    lo.threads = 2;
    Model model(load_weights(dir.empty() ? GetParam().model_dir : dir, lo), Ctx{&pool_, comm_.get()});
    std::vector<float> out;
    for (int s = 0; s < 2; ++s) {
      std::vector<int32_t> ids(tokens() + s * S(), tokens() + (s + 1) * S());
      std::vector<float> l = compute_logits(LocalEngine(model, S()).coordinator(), ids, S() - 8);
      out.insert(out.end(), l.begin(), l.end());
    }
    V_ = model.config().vocab_size;
    return out;
  }
  int64_t S() const { return golden().tensors().at(GetParam().prefix + "tokens").shape[1]; }
  const int32_t* tokens() const {
    return reinterpret_cast<const int32_t*>(golden().tensors().at(GetParam().prefix + "tokens").data);
  }
  const SafetensorsFile& golden() const {
    if (!golden_) golden_ = std::make_unique<SafetensorsFile>(GetParam().golden);
    return *golden_;
  }
  Quality compare(const std::vector<float>& a, const std::vector<float>& ref) const {
    Quality q;
    const int64_t rows = static_cast<int64_t>(ref.size()) / V_;
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = a.data() + r * V_;
      const float* y = ref.data() + r * V_;
      q.top1 += std::max_element(x, x + V_) - x == std::max_element(y, y + V_) - y;
      for (int64_t v = 0; v < V_; ++v) {
        const double d = std::fabs(double(x[v]) - y[v]);
        q.mean_abs += d;
        q.max_abs = std::isnan(d) ? d : std::max(q.max_abs, d);
      }
    }
    q.top1 /= rows;
    q.mean_abs /= rows * V_;
    return q;
  }

  kernels::ThreadPool pool_{2};
  std::unique_ptr<comm::Communicator> comm_ = comm::make_single_rank();
  mutable std::unique_ptr<SafetensorsFile> golden_;
  int64_t V_ = 0;
};

TEST_P(WeightDtype, CostAgainstStoredWeights) {
  const bool fp8_ckpt = GetParam().prefix == "fp8.";
  const std::vector<float> ref = logits(WeightFormat::Stored);
  double mean_ref = 0;
  for (float v : ref) mean_ref += std::fabs(v);
  mean_ref /= static_cast<double>(ref.size());
  std::printf("| %-18s | stored (mean |logit| %.4f) | 1 | 0 | 0 |\n", GetParam().name.c_str(), mean_ref);
  // For scale: the fixture's own FP8 checkpoint (the same weights, quantized outside dsrt).
  if (!fp8_ckpt && std::filesystem::exists(GetParam().model_dir + "/fp8/config.json")) {
    const Quality q = compare(logits(WeightFormat::Stored, GetParam().model_dir + "/fp8"), ref);
    std::printf("| %-18s | fp8/ checkpoint | %.4f | %.5f | %.4f |\n", GetParam().name.c_str(), q.top1, q.mean_abs,
                q.max_abs);
  }
  // Bounds from the tiny random checkpoints, whose logits have small margins (mean |logit| ~3):
  // int8 costs less than the fixture's own FP8 checkpoint; int4 about 2.5x FP8.
  const Bound bounds[] = {
      {WeightFormat::BF16, 0.9, 0.15}, {WeightFormat::FP8, 0.85, 0.4},
      {WeightFormat::Int8, 0.88, 0.15}, {WeightFormat::Int4, 0.55, 1.0},
  };
  for (const Bound& b : bounds) {
    const std::vector<float> l = logits(b.f);
    const Quality q = compare(l, ref);
    std::printf("| %-18s | %-6s | %.4f | %.5f | %.4f |\n", GetParam().name.c_str(),
                weight_format_name(b.f), q.top1, q.mean_abs, q.max_abs);
    SCOPED_TRACE(weight_format_name(b.f));
    EXPECT_GE(q.top1, b.min_top1);
    EXPECT_LE(q.mean_abs, b.max_mean);
    if ((b.f == WeightFormat::Int8 || b.f == WeightFormat::Int4) && kernels::active_isa() != kernels::Isa::Scalar) {
      // The same weights with x in f32, and the rounding of x alone (SIMD against portable).
      const std::vector<float> f32x = logits_f32_x(b.f);
      const Quality w = compare(f32x, ref), x = compare(l, f32x);
      std::printf("| %-18s | %s, x f32 | %.4f | %.5f | %.4f |\n", GetParam().name.c_str(), weight_format_name(b.f),
                  w.top1, w.mean_abs, w.max_abs);
      std::printf("| %-18s | %s: x int8 vs x f32 | %.4f | %.5f | %.4f |\n", GetParam().name.c_str(),
                  weight_format_name(b.f), x.top1, x.mean_abs, x.max_abs);
      // Rounding x to int8 per group costs far less than the weights' own rounding.
      EXPECT_LE(x.mean_abs, 0.5 * w.mean_abs + 0.01);
      EXPECT_LE(q.mean_abs, 1.3 * w.mean_abs + 0.01);
      EXPECT_GE(x.top1, b.f == WeightFormat::Int8 ? 0.9 : 0.8);
    }
    // Tensors already in the format are kept as stored: bf16 of a BF16 checkpoint changes nothing.
    // (fp8 of an FP8 checkpoint still converts its BF16 lm_head.)
    if (b.f == WeightFormat::BF16 && !fp8_ckpt) {
      EXPECT_EQ(q.max_abs, 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, WeightDtype, ::testing::ValuesIn(test::golden_cases()),
                         [](const auto& info) { return info.param.name; });

// Each tensor-parallel rank quantizes its own slice; where the slice starts on a group boundary
// (every split of tiny-v3 with tp 2) it holds exactly the rows / columns of the full conversion.
TEST(WeightDtypeShards, RankSliceEqualsFullConversion) {
  const std::string dir = test::data_dir() + "/golden/tiny-v3";
  for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4, WeightFormat::FP8}) {
    LoadOptions full_opt, rank_opt;
    full_opt.weight_format = rank_opt.weight_format = f;
    rank_opt.shard.tp_rank = 1, rank_opt.shard.tp_size = 2;
    const ModelWeights full = load_weights(dir, full_opt), part = load_weights(dir, rank_opt);
    const AttentionWeights &fa = full.layers[0].attn, &pa = part.layers[0].attn;
    EXPECT_EQ(pa.wo.dtype, f == WeightFormat::FP8 ? kernels::DType::F8_E4M3
                           : f == WeightFormat::Int8 ? kernels::DType::I8
                                                     : kernels::DType::I4);
    EXPECT_LT(part.resident_bytes, full.resident_bytes);
    // wo is row-split: columns [C/2, C); wq_b column-split: rows [R/2, R).
    std::vector<float> a(fa.wo.cols), b(pa.wo.cols);
    for (int64_t r : {0L, 5L, fa.wo.rows - 1}) {
      kernels::dequantize_rows(fa.wo, r, 1, a.data());
      kernels::dequantize_rows(pa.wo, r, 1, b.data());
      if (f == WeightFormat::FP8) continue;  // 128 x 128 blocks: the shard has its own block maxima
      for (int64_t c = 0; c < pa.wo.cols; ++c) ASSERT_EQ(b[c], a[fa.wo.cols / 2 + c]) << "wo row " << r << " col " << c;
    }
    std::vector<float> qa(fa.wq_b.cols), qb(pa.wq_b.cols);
    kernels::dequantize_rows(fa.wq_b, fa.wq_b.rows / 2 + 3, 1, qa.data());
    kernels::dequantize_rows(pa.wq_b, 3, 1, qb.data());
    if (f != WeightFormat::FP8) {
      EXPECT_EQ(qa, qb);
    }
  }
}

TEST(WeightDtypeShards, DummyWeightsConvert) {
  ModelConfig c = load_model_config(test::data_dir() + "/golden/tiny-v3");
  LoadOptions lo;
  lo.threads = 2;
  const ModelWeights stored = dummy_weights(c, 7, lo);
  lo.weight_format = WeightFormat::Int4;
  const ModelWeights q = dummy_weights(c, 7, lo);
  EXPECT_EQ(q.layers[1].moe.experts[3].w2.dtype, kernels::DType::I4);
  EXPECT_EQ(q.layers[1].moe.gate.dtype, stored.layers[1].moe.gate.dtype);  // router kept
  EXPECT_EQ(q.embed.dtype, stored.embed.dtype);                              // embedding kept
  int64_t by_kind[kNumWeightKinds];
  EXPECT_EQ(count_weight_bytes(c, lo.shard, by_kind, WeightFormat::Int4), q.resident_bytes);  // dsrt plan agrees
  std::vector<float> a(c.hidden_size), b(c.hidden_size);
  kernels::dequantize_rows(stored.layers[0].mlp.w1, 4, 1, a.data());
  kernels::dequantize_rows(q.layers[0].mlp.w1, 4, 1, b.data());
  double err = 0, xx = 0;
  for (int64_t i = 0; i < c.hidden_size; ++i) err += (a[i] - b[i]) * (a[i] - b[i]), xx += a[i] * a[i];
  EXPECT_LT(std::sqrt(err / xx), 0.12);
  EXPECT_LT(q.resident_bytes, stored.resident_bytes / 2);
}

}  // namespace
}  // namespace dsrt
