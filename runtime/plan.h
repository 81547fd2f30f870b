#pragma once
// Memory and communication plan of a model on a topology (dsrt plan): what every rank holds
// and sends, what every node needs, and whether it fits. Weight bytes come from
// for_each_tensor with each rank's ShardSpec, so the plan counts exactly what the loaders hold.
//
// Formulas (f32 = 4 B; D hidden, H heads, tp/ep the group sizes, E routed experts, k experts per
// token, C kv_lora_rank, R qk_rope_head_dim, V vocab; cluster-configs/README.md explains them):
//   weights      per tensor held: FP8 (config.fp8 && slot.fp8_allowed): shard elements x 1 B +
//                the tensor's F32 128x128 block scales (the loaders keep the whole scale
//                tensor); other 2-D tensors: shard elements x 2 B (BF16); 1-D: n x 4 B (f32);
//                with --weight-dtype, converted tensors (converts_at_load) count held_bytes():
//                BF16 2 B, FP8 1 B + the shard's 128x128 scales, int8 1 B, int4 0.5 B (+ 4 B
//                per group of 32 of a row)
//   kv cache     per token: num_hidden_layers x (C + R) x 4 B, not split by tp; a rank holds
//                its dp group's sequences: batch split over attention_data_parallel groups
//   activations  4 B x [T x (6D + H/tp x (qk_head_dim + 2C + v_head_dim) + q_lora_rank + C + 2R
//                + E + 2 I) + threads x max_seq_len] + logits, with T = max(step tokens,
//                sequences), I = the most gate_proj rows a rank holds, logits = 4 B x rows x
//                (V/tp + 2V) (tp > 1) or rows x V (tp = 1), rows = max(1, sequences)
//   comm buffers send + receive for one MoE all-to-all: 2 x ceil(T/tp) x min(k, ep-1) x D x 4 B
//                + routing ids/weights 2 x ceil(T/tp) x k x 8 B (0 when ep = 1)
//   all-to-all   p = 1 - (1 - 1/ep)^k (a given rank of the ep group holds one of a token's k
//                uniformly random experts); expected distinct ranks ep x p, remote (ep - 1) x p;
//                bytes per token per MoE layer = 2 (there and back) x (ep - 1) x p x D x 4
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config.h"
#include "runtime/topology.h"
#include "runtime/weights.h"

namespace dsrt {

struct PlanOptions {
  int64_t max_seq_len = 4096;
  int64_t batch = 1;         // sequences in flight over the whole cluster
  int64_t step_tokens = 0;   // tokens one step processes per dp group (0: max_seq_len)
  double headroom = 0.10;    // fraction of each node's memory left for the OS, MPI and buffers
  WeightFormat weight_format = WeightFormat::Stored;  // --weight-dtype: what converted tensors hold
};

// Bytes of the weights a shard holds, per WeightKind; returns the total.
int64_t count_weight_bytes(const ModelConfig& c, const ShardSpec& shard, int64_t by_kind[kNumWeightKinds],
                           WeightFormat format = WeightFormat::Stored);

struct RankPlan {
  int rank = 0, node = 0, tp_rank = 0, dp_rank = 0, ep_group = 0, ep_rank = 0;
  int64_t routed_experts = 0;  // routed experts held, redundant copies included
  int64_t weights[kNumWeightKinds] = {};
  int64_t weight_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t sequences = 0;  // the batch share of this rank's dp group
  int64_t kv_bytes = 0;   // sequences x max_seq_len x kv_bytes_per_token
  int64_t step_tokens = 0;
  int64_t activation_bytes = 0;
  int64_t moe_tokens = 0;  // ceil(step_tokens / tp): the rank's slice between attention and MoE
  int64_t comm_buffer_bytes = 0;
  double a2a_remote_ranks = 0;          // expected distinct remote ranks per token and MoE layer
  double a2a_bytes_per_token_layer = 0;  // there and back
  double a2a_bytes_per_token = 0;        // all MoE layers: per prefill token
  double a2a_bytes_per_decode_step = 0;  // this rank, average over its tp group
  int64_t total_bytes = 0;
};

struct NodePlan {
  int index = 0;
  std::string host;
  std::vector<int> ranks;
  int64_t memory_bytes = 0, usable_bytes = 0, need_bytes = 0;
  bool fits = false;
};

struct Plan {
  ModelConfig config;
  Topology topology;
  PlanOptions options;
  int64_t moe_layers = 0;
  std::vector<RankPlan> ranks;  // [world]
  std::vector<NodePlan> nodes;
  bool fits = false;
};

// Checks the topology against the model (validate_for_model) and plans every rank and node.
Plan make_plan(const ModelConfig& c, const Topology& t, const PlanOptions& opt = {});
// Throws dsrt::Error naming the first node that does not fit, its memory and the need.
void require_fits(const Plan& p);

// Ranks with identical numbers, in order of their first rank.
std::vector<std::vector<int>> identical_rank_groups(const Plan& p);
std::string format_plan(const Plan& p);
nlohmann::ordered_json plan_json(const Plan& p);

}  // namespace dsrt
