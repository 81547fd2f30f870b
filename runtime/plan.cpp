#include "runtime/plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "runtime/error.h"

namespace dsrt {

int64_t count_weight_bytes(const ModelConfig& c, const ShardSpec& shard, int64_t by_kind[kNumWeightKinds],
                           WeightFormat format) {
  ModelWeights w;  // nothing is loaded: for_each_tensor only names the slots
  w.config = c;
  w.shard = shard;
  int64_t total = 0;
  for (int k = 0; k < kNumWeightKinds; ++k) by_kind[k] = 0;
  for_each_tensor(w, [&](const TensorSlot& s) {
    if (!s.owned) return;
    int64_t bytes = 0;
    if (s.vec) {
      bytes = s.shape[0] * 4;  // 1-D vectors are held as f32
    } else {
      const int64_t rows = s.shape[0], cols = s.shape[1];
      const Range rr = shard_range(s.split, rows, cols, shard, true);
      const Range cr = shard_range(s.split, rows, cols, shard, false);
      const int64_t elems = (rr.end - rr.begin) * (cr.end - cr.begin);
      const bool fp8 = c.fp8 && s.fp8_allowed;
      if (fp8) {
        const int64_t srows = (rows + c.fp8_block_rows - 1) / c.fp8_block_rows;
        const int64_t scols = (cols + c.fp8_block_cols - 1) / c.fp8_block_cols;
        bytes = elems + srows * scols * 4;
      } else {
        bytes = elems * 2;
      }
      bytes = held_bytes(format, s, fp8 ? kernels::DType::F8_E4M3 : kernels::DType::BF16, rr.end - rr.begin,
                         cr.end - cr.begin, bytes);
    }
    by_kind[static_cast<int>(s.kind)] += bytes;
    total += bytes;
  });
  return total;
}

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(double bytes) { return fmt::format("{:.2f} GiB", bytes / kGiB); }
std::string human(double bytes) {
  if (bytes >= kGiB) return fmt::format("{:.2f} GiB", bytes / kGiB);
  if (bytes >= 1024.0 * 1024.0) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0));
  if (bytes >= 1024.0) return fmt::format("{:.2f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

auto rank_key(const RankPlan& r) {
  return std::make_tuple(r.routed_experts, std::vector<int64_t>(r.weights, r.weights + kNumWeightKinds),
                         r.kv_bytes_per_token, r.sequences, r.kv_bytes, r.step_tokens, r.activation_bytes,
                         r.moe_tokens, r.comm_buffer_bytes, r.a2a_bytes_per_decode_step, r.total_bytes);
}

// The per-rank intermediate of the widest MLP (dense, shared or routed expert) a rank runs: the
// rows of the widest gate_proj it holds, from the split table.
int64_t widest_mlp(const ModelConfig& c, const ShardSpec& shard) {
  ModelWeights w;
  w.config = c;
  w.shard = shard;
  w.shard.owns_expert.clear();  // any expert will do: they are all the same size
  int64_t I = 0;
  const std::string gate = "gate_proj.weight";
  for_each_tensor(w, [&](const TensorSlot& s) {
    if (s.shape.size() != 2 || s.name.size() < gate.size() ||
        s.name.compare(s.name.size() - gate.size(), gate.size(), gate) != 0)
      return;
    const Range r = shard_range(s.split, s.shape[0], s.shape[1], shard, true);
    I = std::max(I, r.end - r.begin);
  });
  return I;
}

}  // namespace

Plan make_plan(const ModelConfig& c, const Topology& t, const PlanOptions& opt) {
  if (opt.max_seq_len < 1) throw Error(fmt::format("--max-seq-len {} must be at least 1", opt.max_seq_len));
  if (opt.batch < 1) throw Error(fmt::format("--batch {} must be at least 1", opt.batch));
  if (opt.step_tokens < 0) throw Error(fmt::format("--step-tokens {} must not be negative", opt.step_tokens));
  if (!(opt.headroom >= 0 && opt.headroom < 1))
    throw Error(fmt::format("--headroom {} must be in [0, 1)", opt.headroom));
  validate_for_model(t, c);

  Plan p;
  p.config = c;
  p.topology = t;
  p.options = opt;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_moe_layer(l)) ++p.moe_layers;

  const int W = t.world(), tp = t.tensor_parallel, dp = t.attention_data_parallel, ep = t.expert_parallel;
  const int64_t D = c.hidden_size, E = c.n_routed_experts, k = c.num_experts_per_tok;
  const int64_t kv_per_token = c.num_hidden_layers * c.kv_cache_dim() * 4;
  const int64_t step = opt.step_tokens > 0 ? opt.step_tokens : opt.max_seq_len;
  const int64_t I = widest_mlp(c, shard_for_rank(t, c, 0));
  const int64_t per_token_floats = 6 * D + c.num_attention_heads / tp * (c.qk_head_dim() + 2 * c.kv_lora_rank + c.v_head_dim) +
                                   c.q_lora_rank + c.kv_cache_dim() + c.qk_rope_head_dim + E + 2 * I;
  const bool moe = E > 0 && p.moe_layers > 0;
  const double prob = moe ? 1.0 - std::pow(1.0 - 1.0 / ep, static_cast<double>(k)) : 0.0;
  const double remote = (ep - 1) * prob;
  const double a2a_token_layer = 2.0 * remote * static_cast<double>(D) * 4.0;

  const auto experts = experts_by_rank(t, E);
  p.ranks.resize(W);
  for (int r = 0; r < W; ++r) {
    RankPlan& rp = p.ranks[r];
    rp.rank = r;
    rp.node = t.node_of(r);
    rp.tp_rank = t.tp_rank(r);
    rp.dp_rank = t.dp_rank(r);
    rp.ep_group = t.ep_group(r);
    rp.ep_rank = t.ep_rank(r);
    rp.routed_experts = static_cast<int64_t>(experts[r].size());
    const ShardSpec shard = shard_for_rank(t, c, r);
    rp.weight_bytes = count_weight_bytes(c, shard, rp.weights, opt.weight_format);

    rp.kv_bytes_per_token = kv_per_token;
    rp.sequences = opt.batch / dp + (rp.dp_rank < opt.batch % dp ? 1 : 0);
    rp.kv_bytes = rp.sequences * opt.max_seq_len * kv_per_token;

    rp.step_tokens = std::max(step, rp.sequences);
    const int64_t logit_rows = std::max<int64_t>(1, rp.sequences);
    const int64_t logits = 4 * logit_rows * (tp > 1 ? c.vocab_size / tp + 2 * c.vocab_size : c.vocab_size);
    rp.activation_bytes =
        4 * (rp.step_tokens * per_token_floats + static_cast<int64_t>(t.threads_per_rank) * opt.max_seq_len) + logits;

    rp.moe_tokens = ceil_div(rp.step_tokens, tp);
    if (moe && ep > 1)
      rp.comm_buffer_bytes = 2 * rp.moe_tokens * std::min<int64_t>(k, ep - 1) * D * 4 + 2 * rp.moe_tokens * k * 8;

    rp.a2a_remote_ranks = remote;
    rp.a2a_bytes_per_token_layer = a2a_token_layer;
    rp.a2a_bytes_per_token = a2a_token_layer * static_cast<double>(p.moe_layers);
    rp.a2a_bytes_per_decode_step = static_cast<double>(rp.sequences) / tp * rp.a2a_bytes_per_token;
    rp.total_bytes = rp.weight_bytes + rp.kv_bytes + rp.activation_bytes + rp.comm_buffer_bytes;
  }

  p.fits = true;
  for (size_t n = 0; n < t.nodes.size(); ++n) {
    NodePlan np;
    np.index = static_cast<int>(n);
    np.host = t.nodes[n].host;
    np.memory_bytes = static_cast<int64_t>(std::llround(t.nodes[n].memory_gb * kGiB));
    np.usable_bytes = static_cast<int64_t>(std::floor(static_cast<double>(np.memory_bytes) * (1.0 - opt.headroom)));
    for (int i = 0; i < t.ranks_per_node; ++i) {
      const int r = static_cast<int>(n) * t.ranks_per_node + i;
      np.ranks.push_back(r);
      np.need_bytes += p.ranks[r].total_bytes;
    }
    np.fits = np.need_bytes <= np.usable_bytes;
    p.fits = p.fits && np.fits;
    p.nodes.push_back(std::move(np));
  }
  return p;
}

void require_fits(const Plan& p) {
  for (const NodePlan& n : p.nodes) {
    if (n.fits) continue;
    throw Error(fmt::format(
        "{}: node {} ({}, ranks {}) needs {} ({} bytes) but has memory_gb {} ({} usable after {:.0f}% headroom) "
        "for {} at max_seq_len {}, batch {}",
        p.topology.where(fmt::format("nodes.{}", n.index)), n.index, n.host, format_ranks(n.ranks), gib(n.need_bytes),
        n.need_bytes, p.topology.nodes[n.index].memory_gb, gib(n.usable_bytes), p.options.headroom * 100,
        p.config.architecture, p.options.max_seq_len, p.options.batch));
  }
}

std::vector<std::vector<int>> identical_rank_groups(const Plan& p) {
  std::vector<std::vector<int>> groups;
  std::map<decltype(rank_key(p.ranks[0])), size_t> index;
  for (const RankPlan& r : p.ranks) {
    auto [it, fresh] = index.emplace(rank_key(r), groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(r.rank);
  }
  return groups;
}

namespace {

std::vector<std::string> formulas(const Plan& p) {
  const ModelConfig& c = p.config;
  const Topology& t = p.topology;
  return {
      fmt::format("weights: FP8 tensors (config fp8 and a projection) shard elements x 1 B + the whole tensor's F32 "
                  "128x128 block scales; other 2-D tensors shard elements x 2 B (BF16); 1-D vectors n x 4 B (f32); bytes summed "
                  "over for_each_tensor with the rank's ShardSpec; --weight-dtype {}{}",
                  weight_format_name(p.options.weight_format),
                  p.options.weight_format == WeightFormat::Stored
                      ? ""
                      : ": projections and lm_head as BF16 2 B, FP8 1 B + the shard's F32 128x128 block scales, int8 "
                        "1 B or int4 0.5 B + one F32 scale per 32 elements of a row"),
      fmt::format("kv cache per token = num_hidden_layers {} x (kv_lora_rank {} + qk_rope_head_dim {}) x 4 B, not "
                  "split by tp; sequences per dp group = batch {} split over {} attention_data_parallel groups",
                  c.num_hidden_layers, c.kv_lora_rank, c.qk_rope_head_dim, p.options.batch, t.attention_data_parallel),
      "activations = 4 B x [T x (6 hidden + heads/tp x (qk_head_dim + 2 kv_lora_rank + v_head_dim) + q_lora_rank + "
      "kv_lora_rank + 2 qk_rope_head_dim + n_routed_experts + 2 widest_mlp_intermediate_per_rank) + threads_per_rank x "
      "max_seq_len] + logits 4 B x rows x (vocab/tp + 2 vocab) (tp > 1; rows x vocab for tp = 1); T = max(step "
      "tokens, sequences), rows = max(1, sequences)",
      "comm buffers = 2 (send, receive) x ceil(T/tp) x min(k, ep - 1) x hidden x 4 B + routing 2 x ceil(T/tp) x k x 8 B",
      "all-to-all: p = 1 - (1 - 1/ep)^k; expected distinct ranks per token = ep x p, remote = (ep - 1) x p; bytes per "
      "token per MoE layer = 2 (there and back) x remote x hidden x 4 B; per prefill token x MoE layers; per decode "
      "step x sequences / tp",
      fmt::format("node need = sum of its ranks' totals; fits if need <= memory_gb x 2^30 x (1 - headroom {:.2f})",
                  p.options.headroom),
  };
}

}  // namespace

std::string format_plan(const Plan& p) {
  const ModelConfig& c = p.config;
  const Topology& t = p.topology;
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(fmt::format("dsrt plan: {} ({} layers, {} MoE, {} routed experts, top-{}, {}) on {} ({})", c.architecture,
                   c.num_hidden_layers, p.moe_layers, c.n_routed_experts, c.num_experts_per_tok,
                   p.options.weight_format != WeightFormat::Stored
                       ? fmt::format("{} weights (--weight-dtype)", weight_format_name(p.options.weight_format))
                   : c.fp8 ? "fp8 weights"
                           : "bf16 weights",
                   t.name, t.source));
  line(fmt::format("  world {} = {} nodes x {} ranks_per_node; tensor_parallel {} x attention_data_parallel {}; "
                   "expert_parallel {} ({} group{}); threads_per_rank {}",
                   t.world(), t.nodes.size(), t.ranks_per_node, t.tensor_parallel, t.attention_data_parallel,
                   t.expert_parallel, t.world() / t.expert_parallel, t.world() / t.expert_parallel == 1 ? "" : "s",
                   t.threads_per_rank));
  line(fmt::format("  max_seq_len {}, batch {}, step tokens {}, headroom {:.0f}%", p.options.max_seq_len,
                   p.options.batch, p.options.step_tokens > 0 ? p.options.step_tokens : p.options.max_seq_len,
                   p.options.headroom * 100));
  const auto groups = identical_rank_groups(p);
  std::vector<std::string> summary;
  for (const auto& g : groups) {
    const RankPlan& r = p.ranks[g.front()];
    const std::string ranks = format_ranks(g);
    line("");
    line(fmt::format("ranks {}: {} routed experts, {} sequence{} of the batch", ranks, r.routed_experts, r.sequences,
                     r.sequences == 1 ? "" : "s"));
    line(fmt::format("  weights        {:>12}  {:>15} B", gib(r.weight_bytes), r.weight_bytes));
    for (int k = 0; k < kNumWeightKinds; ++k)
      line(fmt::format("    {:<14} {:>10}  {:>15} B", weight_kind_name(static_cast<WeightKind>(k)), gib(r.weights[k]),
                       r.weights[k]));
    line(fmt::format("  kv cache       {:>12}  {:>15} B  ({} B/token x {} tokens x {} sequence{})", gib(r.kv_bytes),
                     r.kv_bytes, r.kv_bytes_per_token, p.options.max_seq_len, r.sequences,
                     r.sequences == 1 ? "" : "s"));
    line(fmt::format("  activations    {:>12}  {:>15} B  ({} tokens per step)", gib(r.activation_bytes),
                     r.activation_bytes, r.step_tokens));
    line(fmt::format("  comm buffers   {:>12}  {:>15} B  ({} tokens owned for MoE)", gib(r.comm_buffer_bytes),
                     r.comm_buffer_bytes, r.moe_tokens));
    line(fmt::format("  total          {:>12}  {:>15} B", gib(r.total_bytes), r.total_bytes));
    line(fmt::format("  all-to-all     {:.3f} remote ranks per token and MoE layer; {} per token per layer, {} per "
                     "prefill token ({} MoE layers), {} per decode step",
                     r.a2a_remote_ranks, human(r.a2a_bytes_per_token_layer), human(r.a2a_bytes_per_token),
                     p.moe_layers, human(r.a2a_bytes_per_decode_step)));
    summary.push_back(fmt::format("ranks {}: weights {} + kv cache {} + activations {} + comm buffers {} = {} per rank",
                                  ranks, gib(r.weight_bytes), gib(r.kv_bytes), gib(r.activation_bytes),
                                  gib(r.comm_buffer_bytes), gib(r.total_bytes)));
  }
  line("");
  line(fmt::format("nodes (memory_gb is GiB; usable = memory x {:.2f}):", 1 - p.options.headroom));
  // Consecutive nodes with the same memory and need share a line.
  for (size_t i = 0; i < p.nodes.size();) {
    size_t j = i;
    while (j + 1 < p.nodes.size() && p.nodes[j + 1].need_bytes == p.nodes[i].need_bytes &&
           p.nodes[j + 1].memory_bytes == p.nodes[i].memory_bytes)
      ++j;
    const NodePlan& n = p.nodes[i];
    const std::string who =
        i == j ? fmt::format("node {} ({}, ranks {})", i, n.host, format_ranks(n.ranks))
               : fmt::format("nodes {}-{} ({}..{}, {} ranks each)", i, j, n.host, p.nodes[j].host, n.ranks.size());
    line(fmt::format("  {}: needs {} of {} ({} usable){}: {}", who, gib(n.need_bytes), gib(n.memory_bytes),
                     gib(n.usable_bytes), i == j ? "" : " each", n.fits ? "fits" : "DOES NOT FIT"));
    i = j + 1;
  }
  line("");
  line("summary:");
  for (const auto& s : summary) line("  " + s);
  const NodePlan* worst = &p.nodes.front();
  for (const NodePlan& n : p.nodes)
    if (n.need_bytes - n.usable_bytes > worst->need_bytes - worst->usable_bytes) worst = &n;
  line(fmt::format("  verdict: {} (tightest node {} ({}): needs {} of {} usable)", p.fits ? "fits" : "DOES NOT FIT",
                   worst->index, worst->host, gib(worst->need_bytes), gib(worst->usable_bytes)));
  line("");
  line("formulas:");
  for (const auto& f : formulas(p)) line("  " + f);
  return out;
}

nlohmann::ordered_json plan_json(const Plan& p) {
  using J = nlohmann::ordered_json;
  const ModelConfig& c = p.config;
  const Topology& t = p.topology;
  J j;
  j["model"] = {{"architecture", c.architecture},
                {"num_hidden_layers", c.num_hidden_layers},
                {"moe_layers", p.moe_layers},
                {"n_routed_experts", c.n_routed_experts},
                {"num_experts_per_tok", c.num_experts_per_tok},
                {"hidden_size", c.hidden_size},
                {"fp8", c.fp8}};
  j["topology"] = {{"name", t.name},
                   {"source", t.source},
                   {"nodes", t.nodes.size()},
                   {"ranks_per_node", t.ranks_per_node},
                   {"world", t.world()},
                   {"tensor_parallel", t.tensor_parallel},
                   {"attention_data_parallel", t.attention_data_parallel},
                   {"expert_parallel", t.expert_parallel},
                   {"threads_per_rank", t.threads_per_rank}};
  j["options"] = {{"max_seq_len", p.options.max_seq_len},
                  {"batch", p.options.batch},
                  {"step_tokens", p.options.step_tokens > 0 ? p.options.step_tokens : p.options.max_seq_len},
                  {"headroom", p.options.headroom},
                  {"weight_dtype", weight_format_name(p.options.weight_format)}};
  J groups = J::array();
  for (const auto& g : identical_rank_groups(p)) {
    const RankPlan& r = p.ranks[g.front()];
    J w;
    for (int k = 0; k < kNumWeightKinds; ++k) w[weight_kind_name(static_cast<WeightKind>(k))] = r.weights[k];
    w["total"] = r.weight_bytes;
    groups.push_back({{"ranks", g},
                      {"ranks_text", format_ranks(g)},
                      {"routed_experts", r.routed_experts},
                      {"weights", w},
                      {"kv_cache",
                       {{"bytes_per_token", r.kv_bytes_per_token},
                        {"sequences", r.sequences},
                        {"max_seq_len", p.options.max_seq_len},
                        {"bytes", r.kv_bytes}}},
                      {"activations", {{"step_tokens", r.step_tokens}, {"bytes", r.activation_bytes}}},
                      {"comm_buffers", {{"moe_tokens", r.moe_tokens}, {"bytes", r.comm_buffer_bytes}}},
                      {"all_to_all",
                       {{"expected_remote_ranks_per_token_layer", r.a2a_remote_ranks},
                        {"bytes_per_token_layer", r.a2a_bytes_per_token_layer},
                        {"bytes_per_prefill_token", r.a2a_bytes_per_token},
                        {"bytes_per_decode_step", r.a2a_bytes_per_decode_step}}},
                      {"total_bytes", r.total_bytes}});
  }
  j["rank_groups"] = groups;
  J nodes = J::array();
  for (const NodePlan& n : p.nodes)
    nodes.push_back({{"index", n.index},
                     {"host", n.host},
                     {"ranks", n.ranks},
                     {"memory_bytes", n.memory_bytes},
                     {"usable_bytes", n.usable_bytes},
                     {"need_bytes", n.need_bytes},
                     {"fits", n.fits}});
  j["nodes"] = nodes;
  j["fits"] = p.fits;
  j["formulas"] = formulas(p);
  return j;
}

}  // namespace dsrt
