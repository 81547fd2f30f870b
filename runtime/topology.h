#pragma once
// The cluster description: which nodes, how many ranks on each, and how the ranks divide the
// model (cluster-configs/README.md documents the YAML schema).
//
// Parallel layout (fixed):
//   world W = nodes × ranks_per_node; node n hosts ranks [n·ranks_per_node, (n+1)·ranks_per_node)
//   W = tensor_parallel × attention_data_parallel
//   tensor-parallel group = tp consecutive ranks:   tp_rank = r % tp, dp_rank = r / tp
//   expert-parallel group = ep consecutive ranks:   ep_rank = r % ep, ep_group = r / ep (W % ep == 0)
//   routed experts are spread over each ep group: contiguous (ep rank i owns experts
//   [i·E/ep, (i+1)·E/ep)) or an explicit map global rank -> experts; experts.redundant adds
//   extra copies of hot experts on further ranks.
//   Attention heads, dense-MLP and shared-expert intermediates and the vocabulary are split by
//   tp; each rank owns a slice of its tp group's tokens between attention and MoE.
//
// Every error is a dsrt::Error naming "file:line" and the numbers involved.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/config.h"
#include "runtime/weights.h"

namespace dsrt {

struct TopologyNode {
  std::string host;
  int slots = 0;          // cores dsrt may use there (also the hostfile's process slots)
  double memory_gb = 0;   // GiB (2^30 bytes) of memory
};

struct Topology {
  // How routed experts are spread over an ep group (named apart from runtime/expert_group.h's
  // ExpertPlacement, which expert_owners() feeds).
  enum class Placement { Contiguous, Explicit };

  std::string name;
  std::string source;  // file path (or the name given to parse_topology) for messages
  std::vector<TopologyNode> nodes;
  int ranks_per_node = 1;
  int tensor_parallel = 1;
  int attention_data_parallel = 1;
  int expert_parallel = 1;
  int threads_per_rank = 1;
  // Bind each rank's threads to cores: local rank i of a node takes CPUs
  // [i * threads_per_rank, (i + 1) * threads_per_rank) (first_pinned_cpu()).
  bool pin_threads = false;
  Placement placement = Placement::Contiguous;
  std::map<int, std::vector<int64_t>> expert_map;  // explicit: global rank -> experts it owns
  std::map<int64_t, std::vector<int>> redundant;   // expert -> ranks holding an extra copy
  struct Mpi {
    std::vector<std::string> options;  // extra mpirun words (each YAML item split on whitespace)
    std::string rsh_agent;             // as written; resolve_rsh_agent() finds the file
    std::vector<std::pair<std::string, std::string>> env;  // passed to every rank with -x K=V
    std::string bind_to = "core";      // core | none
  } mpi;

  // Where each field came from, for messages: "tensor_parallel" -> 1-based line; keys such as
  // "nodes.2", "experts.map.5", "experts.redundant.17". An override replaces the entry of
  // overridden_by ("tensor_parallel" -> "--tp 4").
  std::map<std::string, int> lines;
  std::map<std::string, std::string> overridden_by;

  int world() const { return static_cast<int>(nodes.size()) * ranks_per_node; }
  int tp_rank(int r) const { return r % tensor_parallel; }
  int dp_rank(int r) const { return r / tensor_parallel; }
  int ep_rank(int r) const { return r % expert_parallel; }
  int ep_group(int r) const { return r / expert_parallel; }
  int node_of(int r) const { return r / ranks_per_node; }
  // "file:line" of a field (or "file" when it was defaulted, or "--tp 4 (file:line)" when an
  // override set it).
  std::string where(const std::string& key) const;
};

// Parses and validates everything the YAML alone determines (unknown keys at every level,
// types, tp × dp == world, ranks_per_node <= slots, threads_per_rank × ranks_per_node <= slots,
// W % ep, explicit maps: ranks in range, no expert twice in one ep group).
Topology parse_topology(const std::string& yaml_text, const std::string& source_name);
Topology load_topology(const std::string& path);

// Re-runs the model-independent checks (after a field was changed in code).
void validate_topology(const Topology& t);

// --tp / --ep: tp > 0 sets tensor_parallel (attention_data_parallel becomes world / tp),
// ep > 0 sets expert_parallel; then re-validates. 0 keeps the file's value.
void apply_overrides(Topology& t, int tp, int ep);

// The checks that need the model: num_attention_heads, vocab_size and intermediate_size (with
// dense layers) divisible by tp, and every dimension for_each_tensor splits by tp; n_routed_experts
// divisible by ep (contiguous placement); explicit maps and redundant copies name experts
// < n_routed_experts and cover every expert exactly once per ep group.
void validate_for_model(const Topology& t, const ModelConfig& c);

// Throws unless the MPI world has the topology's number of ranks.
void require_world_size(const Topology& t, int mpi_world_size);

// Experts each global rank holds (its own plus redundant copies), sorted: [world][...].
// Empty lists for a model without routed experts.
std::vector<std::vector<int64_t>> experts_by_rank(const Topology& t, int64_t n_routed_experts);
// For one ep group: the ep ranks (0..ep-1 within the group, ascending) holding each expert,
// [n_routed_experts][...] -- ExpertPlacement::owners of runtime/expert_group.h. Global rank =
// ep_group x expert_parallel + ep rank.
std::vector<std::vector<int>> expert_owners(const Topology& t, int64_t n_routed_experts, int ep_group);

// The part of the model `rank` holds: its tp slice and the routed experts it owns.
ShardSpec shard_for_rank(const Topology& t, const ModelConfig& c, int rank);

// A run without a topology file: one node (localhost, slots = max(world, cores), memory =
// physical memory), tp (<= 0: 1), dp = world / tp, ep (<= 0: world), contiguous experts,
// threads_per_rank = max(1, cores / world).
Topology default_topology(int world_size, int tp = 0, int ep = 0);

// mpi.rsh_agent made absolute: a relative path is looked up in the topology file's directory
// and then in each of its parent directories (the first that has it wins). Empty if not set.
// Throws naming the line if it is found nowhere.
std::string resolve_rsh_agent(const Topology& t);

// The first CPU of local rank `local_rank` when each rank on a node pins `threads` threads to
// consecutive CPUs: local_rank * threads (ranks on one node never overlap).
inline int first_pinned_cpu(int local_rank, int threads) { return local_rank * threads; }

// "0-7", "0,2,4", "0-3,8-11"
std::string format_ranks(const std::vector<int>& ranks);

}  // namespace dsrt
