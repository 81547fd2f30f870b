#include "unit/test_util.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "runtime/safetensors.h"

namespace dsrt::test {

std::string data_dir() { return DSRT_TEST_DATA; }

RunResult run_dsrt(const std::string& args, int timeout_s) { return run(std::string(DSRT_BINARY) + " " + args, timeout_s); }

std::string mpirun_dsrt(int np) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np " +
         std::to_string(np) + " --oversubscribe --bind-to none " + DSRT_BINARY;
}

RunResult run(const std::string& command, int timeout_s) {
  std::string quoted;  // the command inside sh -c '...'
  for (char ch : command) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " sh -c '" + quoted + "' 2>&1";
  RunResult r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = pclose(p);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    if (r.exit_code >= 124) r.exit_code = -1;  // timeout(1) or a signal inside the shell
  }
  return r;
}

std::vector<GoldenCase> golden_cases() {
  namespace fs = std::filesystem;
  std::vector<GoldenCase> cases;
  const fs::path root = fs::path(data_dir()) / "golden";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "golden.safetensors")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& d : dirs) {
    std::string base = d.filename().string();
    std::replace(base.begin(), base.end(), '-', '_');
    cases.push_back({base + "_bf16", d.string(), (d / "golden.safetensors").string(), ""});
    if (fs::exists(d / "fp8" / "config.json"))
      cases.push_back({base + "_fp8", (d / "fp8").string(), (d / "golden.safetensors").string(), "fp8."});
  }
  return cases;
}

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

std::vector<float> mpirun_golden_logits(const GoldenCase& c, int np, const std::string& args, const std::string& tag,
                                        int64_t* tokens) {
  SafetensorsFile golden(c.golden);
  const TensorInfo& tok = golden.tensors().at(c.prefix + "tokens");          // [2, S] ids
  const TensorInfo& dec = golden.tensors().at(c.prefix + "decode_logits");  // [2, S - P, V]
  const int64_t S = tok.shape[1], P = S - dec.shape[1];
  if (tokens) *tokens = S;
  std::string ids;
  for (int64_t i = 0; i < S; ++i) ids += (i ? "," : "") + std::to_string(reinterpret_cast<const int32_t*>(tok.data)[i]);
  const std::string out = ::testing::TempDir() + "/" + tag + "_" + c.name + ".safetensors";
  const RunResult r = run(mpirun_dsrt(np) + " logits --model " + c.model_dir + " --ids " + ids + " --decode-from " +
                              std::to_string(P) + " " + args + " --threads 1 --log-level warn --out " + out,
                          180);
  EXPECT_EQ(r.exit_code, 0) << tag << "\n" << r.output;
  if (r.exit_code != 0) return {};
  SafetensorsFile f(out);
  const TensorInfo& l = f.tensors().at("logits");
  const float* p = reinterpret_cast<const float*>(l.data);
  return std::vector<float>(p, p + l.nbytes / 4);
}

Diff diff(const float* a, const float* b, int64_t n) {
  Diff d;
  for (int64_t i = 0; i < n; ++i) {
    double e = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(e <= d.max_abs)) d.max_abs = e;  // NaN propagates as a failure
    d.mean_abs += e;
  }
  if (n) d.mean_abs /= n;
  return d;
}

}  // namespace dsrt::test

namespace {
// Tests log warnings and errors only (DSRT_TEST_LOG=info for more).
const bool quiet_logs = [] {
  const char* level = std::getenv("DSRT_TEST_LOG");
  spdlog::set_level(spdlog::level::from_str(level ? level : "warn"));
  return true;
}();
}  // namespace
