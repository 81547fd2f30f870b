// Every topology produces the single-process logits: `mpirun -np N dsrt logits` with tensor
// parallelism TP and expert parallelism EP, through the prefill and the decode path, against the
// reference's golden logits; and the all-to-all expert exchange against the all-reduce baseline.
#include <chrono>

#include <gtest/gtest.h>

#include "runtime/safetensors.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

struct Topo {
  int np, tp, ep;
  std::string moe = "alltoall";
};

std::string name(const Topo& t) {
  return "np" + std::to_string(t.np) + "_tp" + std::to_string(t.tp) + "_ep" + std::to_string(t.ep) + "_" + t.moe;
}

std::vector<float> run_logits(const test::GoldenCase& c, const Topo& t, int64_t* S) {
  return test::mpirun_golden_logits(
      c, t.np, "--tp " + std::to_string(t.tp) + " --ep " + std::to_string(t.ep) + " --moe-comm " + t.moe,
      "dist_" + name(t), S);
}


class Distributed : public ::testing::TestWithParam<test::GoldenCase> {};

TEST_P(Distributed, EveryTopologyReproducesTheGoldenLogits) {
  const test::GoldenCase& c = GetParam();
  SafetensorsFile golden(c.golden);
  const TensorInfo& ref = golden.tensors().at(c.prefix + "logits");  // [2, S, V]: sequence 0 first
  const std::vector<Topo> topos = {{4, 1, 4}, {4, 2, 4}, {4, 4, 4}, {4, 2, 2}, {4, 1, 1},
                                   {2, 2, 1}, {8, 2, 8}, {8, 4, 8}};
  for (const Topo& t : topos) {
    int64_t S = 0;
    std::vector<float> got = run_logits(c, t, &S);
    if (got.empty()) continue;
    const int64_t V = ref.shape[2];
    ASSERT_EQ(static_cast<int64_t>(got.size()), S * V) << name(t);
    test::Diff d = test::diff(got.data(), reinterpret_cast<const float*>(ref.data), S * V);
    EXPECT_LE(d.max_abs, 2e-2) << name(t);
    EXPECT_LE(d.mean_abs, 2e-3) << name(t);
  }
}

TEST_P(Distributed, AllToAllAgreesWithAllReduceBaseline) {
  const test::GoldenCase& c = GetParam();
  int64_t S = 0;
  for (Topo t : {Topo{4, 1, 4}, Topo{4, 2, 2}}) {
    std::vector<float> a2a = run_logits(c, t, &S);
    t.moe = "allreduce";
    std::vector<float> ar = run_logits(c, t, &S);
    ASSERT_EQ(a2a.size(), ar.size());
    ASSERT_FALSE(a2a.empty());
    EXPECT_LE(test::diff(a2a.data(), ar.data(), static_cast<int64_t>(a2a.size())).max_abs, 1e-4) << name(t);
  }
}

// Through `dsrt launch` with the shipped topologies: a 4-rank one, and one with an explicit
// expert map and redundant copies of hot experts (its map is written for 16 experts).
TEST(DistributedLaunch, ShippedTopologiesReproduceTheGoldenLogits) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.name.rfind("tiny_v3", 0) != 0) continue;
    SafetensorsFile golden(c.golden);
    const TensorInfo& tok = golden.tensors().at(c.prefix + "tokens");
    const TensorInfo& ref = golden.tensors().at(c.prefix + "logits");
    const int64_t S = tok.shape[1], V = ref.shape[2];
    std::string ids;
    for (int64_t i = 0; i < S; ++i) ids += (i ? "," : "") + std::to_string(reinterpret_cast<const int32_t*>(tok.data)[i]);
    for (std::string topo : {"local-4.yaml", "local-4-explicit.yaml"}) {
      const std::string out = ::testing::TempDir() + "/launch_" + c.name + ".safetensors";
      test::RunResult r = test::run("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + std::string(DSRT_BINARY) +
                                        " launch --topology " + test::data_dir() + "/../../cluster-configs/" + topo +
                                        " -- logits --model " + c.model_dir + " --ids " + ids + " --decode-from 40 --log-level warn --out " + out,
                                    180);
      ASSERT_EQ(r.exit_code, 0) << topo << "\n" << r.output;
      SafetensorsFile f(out);
      const TensorInfo& l = f.tensors().at("logits");
      ASSERT_EQ(l.nbytes, S * V * 4);
      test::Diff d = test::diff(reinterpret_cast<const float*>(l.data), reinterpret_cast<const float*>(ref.data), S * V);
      EXPECT_LE(d.max_abs, 2e-2) << c.name << " " << topo;
      EXPECT_LE(d.mean_abs, 2e-3) << c.name << " " << topo;
    }
  }
}

// A topology for 4 ranks started on 3: every rank exits non-zero within 10 s, rank 0 says why.
TEST(DistributedFaults, MismatchedRankCountEndsTheJobQuickly) {
  const auto t0 = std::chrono::steady_clock::now();
  test::RunResult r = test::run(test::mpirun_dsrt(3) + " logits --model " + test::data_dir() + "/golden/tiny-v3 --topology " +
                                    test::data_dir() + "/../../cluster-configs/local-4.yaml --ids 1,2 --out " +
                                    ::testing::TempDir() + "/mismatch.safetensors",
                                60);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(secs, 10.0);
  EXPECT_NE(r.output.find("dsrt: error: rank 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("4 ranks"), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, Distributed, ::testing::ValuesIn(test::golden_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace dsrt
