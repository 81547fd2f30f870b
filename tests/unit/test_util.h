#pragma once
// Helpers shared by the tests: fixture paths, running the dsrt binary, comparing arrays.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace dsrt::test {

std::string data_dir();  // tests/data
struct RunResult {
  int exit_code;       // -1 if killed by a signal or timed out
  std::string output;  // stdout + stderr
};
// Runs a shell command under `timeout`, capturing both streams.
RunResult run(const std::string& command, int timeout_s = 120);
// Runs `dsrt <args>` under `timeout`, capturing both streams.
RunResult run_dsrt(const std::string& args, int timeout_s = 120);
// "mpirun -np N ... <dsrt binary>": oversubscribed, as root if need be, no binding.
std::string mpirun_dsrt(int np);

// Every folder of tests/data/golden with a golden.safetensors, in BF16 and, if it has fp8/, FP8.
struct GoldenCase {
  std::string name;       // e.g. "tiny_v3_fp8"
  std::string model_dir;  // checkpoint
  std::string golden;     // golden.safetensors
  std::string prefix;     // key prefix in golden.safetensors: "" or "fp8."
};
std::vector<GoldenCase> golden_cases();
void PrintTo(const GoldenCase& c, std::ostream* os);

// `mpirun -np np dsrt logits <args>` on the golden tokens of sequence 0: a prefill of the
// positions before the golden decode rows, then one-token decode steps. Returns the logits
// [tokens, vocab] (tokens also through `tokens`), or nothing after a gtest failure naming the
// exit code. `tag` names the output file in the test temp dir.
std::vector<float> mpirun_golden_logits(const GoldenCase& c, int np, const std::string& args, const std::string& tag,
                                        int64_t* tokens = nullptr);

struct Diff {
  double max_abs = 0, mean_abs = 0;
};
Diff diff(const float* a, const float* b, int64_t n);

}  // namespace dsrt::test
