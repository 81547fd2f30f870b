#pragma once
// Options every model-running subcommand shares, and the process state they build: MPI session
// (when launched by mpirun), parallel groups, thread pool, sharded model, executor and, on
// rank 0, the coordinator.
#include <cstdint>
#include <memory>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "comm/groups.h"
#include "comm/session.h"
#include "kernels/threadpool.h"
#include "runtime/coordinator.h"
#include "runtime/model.h"

namespace dsrt::launcher {

struct ModelOptions {
  std::string model;
  std::string load_format = "auto";
  uint64_t seed = 0;
  int threads = 0;
  bool pin = false;
  bool bf16_activations = false;  // --bf16-activations: prefill GEMMs of BF16 weights in bf16  // --pin: bind threads to cores (also the topology's pin_threads)
  int64_t num_layers = 0;
  int64_t dense_layers = -1;
  std::string topology;  // YAML file (cluster-configs/README.md); empty: whatever mpirun started
  int tp = 0, ep = 0;    // 0: the topology's value (without one: tp 1, experts over all ranks)
  std::string moe_comm = "alltoall";
  std::string weight_dtype = "stored";  // --weight-dtype (runtime/weights.h WeightFormat)
  std::string overlap = "auto";  // micro-batch overlap of the expert exchange (runtime/model.h)
  std::string log_level = "info";

  void add(CLI::App* app);
};

struct Runtime {
  // cache_tokens: latent-cache positions each rank reserves for its sequences.
  Runtime(const ModelOptions& o, int64_t cache_tokens);
  ~Runtime();
  bool is_coordinator() const { return groups.world->rank() == 0; }
  // Ranks other than 0 serve the coordinator's plans until it stops them.
  void run_worker();
  // Runs a command's body on rank 0 (workers serve plans meanwhile). An error on any rank of a
  // multi-rank job ends the whole job at once (comm::abort_job) so no peer waits in a collective.
  int run(const std::function<int()>& coordinator_body);

  void init(const ModelOptions& o, int64_t cache_tokens, std::unique_ptr<comm::Communicator> world);
  std::unique_ptr<comm::MpiSession> mpi;
  comm::ParallelGroups groups;
  std::unique_ptr<kernels::ThreadPool> pool;
  std::optional<Model> model;
  std::optional<Executor> executor;
  std::optional<Coordinator> coordinator;
};

void set_log_level(const std::string& level);
// --num-layers / --dense-layers (dummy weights only): keep the first N layers, the first K dense.
void apply_layer_overrides(ModelConfig& c, int64_t num_layers, int64_t dense_layers);
// A field of /proc/self/status ("VmRSS", "VmHWM") in bytes, 0 if unavailable.
int64_t process_memory_bytes(const char* field);
// "5,17,42" -> ids; throws dsrt::Error naming the bad item.
std::vector<int32_t> parse_ids(const std::string& s);
// Throws dsrt::Error naming the first id >= vocab_size.
void check_ids(const std::vector<int32_t>& ids, int64_t vocab_size);

}  // namespace dsrt::launcher
