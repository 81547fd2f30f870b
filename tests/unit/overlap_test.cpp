// Micro-batch overlap of the expert exchange (--overlap, runtime/model.h): under mpirun -np 2 and
// 4, with it on and off, `dsrt logits` reproduces the reference's golden logits through the
// prefill and the decode path, and on agrees with off up to float reordering.
#include <gtest/gtest.h>

#include "runtime/safetensors.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

struct Topo {
  int np, tp, ep;
};

std::string name(const Topo& t, const std::string& overlap) {
  return "np" + std::to_string(t.np) + "_tp" + std::to_string(t.tp) + "_ep" + std::to_string(t.ep) + "_overlap_" +
         overlap;
}

std::vector<float> run_logits(const test::GoldenCase& c, const Topo& t, const std::string& overlap) {
  return test::mpirun_golden_logits(
      c, t.np, "--tp " + std::to_string(t.tp) + " --ep " + std::to_string(t.ep) + " --overlap " + overlap,
      "overlap_" + name(t, overlap));
}


class Overlap : public ::testing::TestWithParam<test::GoldenCase> {};

TEST_P(Overlap, OnAndOffReproduceTheGoldenLogitsAndAgree) {
  const test::GoldenCase& c = GetParam();
  SafetensorsFile golden(c.golden);
  const TensorInfo& ref = golden.tensors().at(c.prefix + "logits");  // [2, S, V]: sequence 0 first
  const int64_t V = ref.shape[2];
  // np 4 tp 2: two data-parallel groups, so the on/off decision comes from the whole step.
  for (const Topo& t : {Topo{2, 1, 2}, Topo{4, 1, 4}, Topo{4, 2, 4}}) {
    const std::vector<float> on = run_logits(c, t, "on"), off = run_logits(c, t, "off");
    ASSERT_FALSE(on.empty()) << name(t, "on");
    ASSERT_EQ(on.size(), off.size()) << name(t, "on");
    const int64_t n = static_cast<int64_t>(on.size());
    ASSERT_EQ(n % V, 0);
    for (const auto* got : {&on, &off}) {
      const test::Diff d = test::diff(got->data(), reinterpret_cast<const float*>(ref.data), n);
      EXPECT_LE(d.max_abs, 2e-2) << name(t, got == &on ? "on" : "off");
      EXPECT_LE(d.mean_abs, 2e-3) << name(t, got == &on ? "on" : "off");
    }
    EXPECT_LE(test::diff(on.data(), off.data(), n).max_abs, 1e-4) << name(t, "on vs off");
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, Overlap, ::testing::ValuesIn(test::golden_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace dsrt
