#include "launcher/model_options.h"

#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernels/gemm.h"
#include "runtime/error.h"
#include "runtime/int_list.h"
#include "runtime/load_stats.h"
#include "runtime/plan.h"
#include "runtime/topology.h"

namespace dsrt::launcher {

void ModelOptions::add(CLI::App* app) {
  app->add_option("--model", model, "checkpoint directory (config.json + *.safetensors), or a config.json with --load-format dummy")
      ->required();
  app->add_option("--load-format", load_format, "auto | safetensors | dummy (random weights of the config's shapes)")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}));
  app->add_option("--seed", seed, "seed of the dummy weights and of sampling");
  app->add_option("--threads", threads, "compute threads (default: all cores)")->check(CLI::Range(1, 4096));
  app->add_flag("--bf16-activations", bf16_activations,
                "BF16 weights, >= 2 rows: round activations to bf16 for AVX512_BF16 dot products (faster prefill and batched decode, "
                "relative error up to 2^-8 per product)");
  app->add_flag("--pin", pin, "pin each compute thread to one core; local rank r takes cores [r x threads, ...)");
  app->add_option("--num-layers", num_layers, "with --load-format dummy: keep only the first N layers")
      ->check(CLI::PositiveNumber);
  app->add_option("--dense-layers", dense_layers,
                  "with --load-format dummy: the first K layers are dense (first_k_dense_replace)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--topology", topology, "cluster topology YAML (cluster-configs/README.md)")->check(CLI::ExistingFile);
  app->add_option("--tp", tp, "ranks per tensor-parallel group (attention heads, dense MLP, vocabulary)")
      ->check(CLI::PositiveNumber);
  app->add_option("--ep", ep, "ranks per expert-parallel group (default: all ranks)")->check(CLI::PositiveNumber);
  app->add_option("--moe-comm", moe_comm, "alltoall (dispatch/combine) | allreduce (the reference's baseline)")
      ->check(CLI::IsMember({"alltoall", "allreduce"}));
  app->add_option("--overlap", overlap,
                  "two micro-batches so one's expert all-to-all overlaps the other's compute: on | off | auto "
                  "(auto: steps with >= 64 tokens per rank, i.e. prefill)")
      ->check(CLI::IsMember({"on", "off", "auto"}));
  app->add_option("--weight-dtype", weight_dtype,
                  "stored | bf16 | fp8 | int8 | int4: re-quantize projections and lm_head at load (each rank its "
                  "shard; embedding, router and norms stay as stored)")
      ->check(CLI::IsMember({"stored", "bf16", "fp8", "int8", "int4"}));
  app->add_option("--log-level", log_level, "trace | debug | info | warn | error | off");
}

std::vector<int32_t> parse_ids(const std::string& s) {
  const std::vector<int64_t> v = parse_int_list(s, "--ids", 0, INT32_MAX, "a non-negative integer");
  return std::vector<int32_t>(v.begin(), v.end());
}

namespace {

int default_threads(int ranks_here) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, ranks_here));
}

int local_ranks() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  return v ? std::max(1, std::atoi(v)) : 1;
}

int local_rank() {
  const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  return v ? std::max(0, std::atoi(v)) : 0;
}

}  // namespace

Runtime::Runtime(const ModelOptions& o, int64_t cache_tokens) {
  std::unique_ptr<comm::Communicator> world;
  if (comm::MpiSession::launched_by_mpi()) {
    mpi = std::make_unique<comm::MpiSession>();
    world = mpi->world();
  } else {
    world = comm::make_single_rank();
  }
  if (world->size() == 1) {
    init(o, cache_tokens, std::move(world));
    return;
  }
  try {
    init(o, cache_tokens, std::move(world));
  } catch (const std::exception& e) {
    comm::abort_job(e.what());
  }
}

void Runtime::init(const ModelOptions& o, int64_t cache_tokens, std::unique_ptr<comm::Communicator> world) {
  const int W = world->size(), rank = world->rank();
  if (W > 1) spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [%^%l%$] [rank {}] %v", rank));
  const bool dummy = o.load_format == "dummy";
  if ((o.num_layers > 0 || o.dense_layers >= 0) && !dummy)
    throw Error("--num-layers and --dense-layers apply only with --load-format dummy");
  ModelConfig c = load_model_config(o.model);
  if (dummy) apply_layer_overrides(c, o.num_layers, o.dense_layers);

  // The layout: the topology file (with --tp/--ep overrides), or one derived from the world.
  Topology topo;
  if (!o.topology.empty()) {
    topo = load_topology(o.topology);
    apply_overrides(topo, o.tp, o.ep);
    require_world_size(topo, W);
  } else {
    topo = default_topology(W, o.tp, o.ep);
  }
  validate_for_model(topo, c);
  if (!o.topology.empty()) {
    PlanOptions po;
    po.max_seq_len = std::max<int64_t>(cache_tokens, 1);
    po.weight_format = parse_weight_format(o.weight_dtype);
    require_fits(make_plan(c, topo, po));
  }
  try {
    groups = comm::make_parallel_groups(std::move(world), topo.tensor_parallel, topo.expert_parallel);
  } catch (const std::invalid_argument& e) {
    throw Error(fmt::format("parallel layout: {} ({} ranks)", e.what(), W));
  }
  const int threads = o.threads > 0 ? o.threads
                      : !o.topology.empty() ? topo.threads_per_rank
                                            : default_threads(local_ranks());
  // Ranks on one node pin to disjoint cores; OpenBLAS runs single-threaded inside our threads
  // (kernels/gemm.cpp), so threads x local ranks is the whole process count on the cores.
  kernels::set_bf16_activations(o.bf16_activations);
  const bool pin = o.pin || (!o.topology.empty() && topo.pin_threads);
  pool = std::make_unique<kernels::ThreadPool>(threads, pin, first_pinned_cpu(local_rank(), threads));
  spdlog::info("rank {}/{} on {}: tp rank {}/{}, attention dp group {}/{}, ep rank {}/{}; kernels {}, {} threads{}", rank,
               W, groups.world->host(), groups.tp_rank, groups.tp_size, groups.dp_rank, groups.dp_size,
               groups.ep_rank, groups.ep_size, kernels::isa_name(kernels::active_isa()), pool->size(),
               pin ? fmt::format(" pinned to CPUs {}-{}", first_pinned_cpu(local_rank(), threads),
                                 first_pinned_cpu(local_rank(), threads) + threads - 1)
                   : "");

  ExpertPlacement placement;
  LoadOptions lo;
  lo.threads = pool->size();
  lo.shard = shard_for_rank(topo, c, rank);
  lo.weight_format = parse_weight_format(o.weight_dtype);
  if (c.n_routed_experts > 0) {
    placement.ep_size = topo.expert_parallel;
    placement.owners = expert_owners(topo, c.n_routed_experts, topo.ep_group(rank));
  }
  ModelWeights w = dummy ? dummy_weights(c, o.seed, lo) : load_weights(o.model, lo);
  model.emplace(std::move(w), Ctx{pool.get(), groups.tp.get(), groups.ep.get()}, std::move(placement),
                parse_moe_scheme(o.moe_comm));
  model->set_overlap(parse_overlap(o.overlap));
  executor.emplace(*model, *groups.world, DataParallel{groups.dp_rank, groups.dp_size, groups.tp_size}, cache_tokens);
  if (is_coordinator()) coordinator.emplace(*executor, *groups.world);
  spdlog::info("rank {} resident: weights {} bytes, process RSS {} bytes", rank, model->weights().resident_bytes,
               process_memory_bytes("VmRSS"));
}

Runtime::~Runtime() {
  coordinator.reset();  // stops the workers while the communicators still exist
  if (groups.world)
    spdlog::info("rank {} peak RSS {} bytes (VmHWM)", groups.world->rank(), process_memory_bytes("VmHWM"));
}

void Runtime::run_worker() { dsrt::run_worker(*executor, *groups.world); }

int Runtime::run(const std::function<int()>& coordinator_body) {
  int rc = 0;
  if (groups.world->size() == 1) {
    rc = coordinator_body();
  } else {
    try {
      if (is_coordinator()) {
        rc = coordinator_body();
        coordinator.reset();  // the workers leave their loop
      } else {
        run_worker();
      }
    } catch (const std::exception& e) {
      comm::abort_job(e.what());
    }
  }
  // Every rank's expert load and traffic, on rank 0.
  std::vector<RankLoad> loads = gather_load(*groups.world, snapshot_load(*model, *groups.world));
  if (!loads.empty() && model->config().n_routed_experts > 0) spdlog::info("expert load per rank:\n{}", format_load(loads));
  return rc;
}

void set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") throw Error(fmt::format("--log-level: unknown level '{}'", level));
  spdlog::set_level(lvl);
}

void apply_layer_overrides(ModelConfig& c, int64_t num_layers, int64_t dense_layers) {
  if (num_layers > 0) {
    if (num_layers > c.num_hidden_layers)
      throw Error(fmt::format("--num-layers {} exceeds the config's num_hidden_layers {}", num_layers,
                              c.num_hidden_layers));
    c.num_hidden_layers = num_layers;
  }
  if (dense_layers >= 0) c.first_k_dense_replace = dense_layers;
}

int64_t process_memory_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + key.size()) * 1024;  // reported in kB
  return 0;
}

void check_ids(const std::vector<int32_t>& ids, int64_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab_size)
      throw Error(fmt::format("--ids: id {} (item {}) is outside the vocabulary (vocab_size {})", ids[i], i + 1, vocab_size));
}

}  // namespace dsrt::launcher
