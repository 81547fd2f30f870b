// dsrt plan: memory and communication plan of a model on a cluster topology.
#include <iostream>

#include "launcher/command.h"
#include "launcher/model_options.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/plan.h"
#include "runtime/topology.h"

namespace dsrt::launcher {
namespace {

std::function<int()> plan_command(CLI::App& parent) {
  struct Opts {
    std::string model, topology;
    int tp = 0, ep = 0;
    int64_t num_layers = 0, dense_layers = -1;
    PlanOptions plan;
    bool json = false;
    std::string weight_dtype = "stored";
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand(
      "plan", "per-rank and per-node memory (weights, latent KV cache, activations, communication buffers) and "
              "all-to-all traffic of a model on a topology, with a fits / DOES NOT FIT verdict (exit 1 if it does not fit)");
  app->add_option("--model", o->model, "checkpoint directory or its config.json (only the config is read)")->required();
  app->add_option("--topology", o->topology, "cluster topology YAML (cluster-configs/README.md)")->required();
  app->add_option("--tp", o->tp, "override tensor_parallel (attention_data_parallel becomes world / tp)")
      ->check(CLI::PositiveNumber);
  app->add_option("--ep", o->ep, "override expert_parallel")->check(CLI::PositiveNumber);
  app->add_option("--max-seq-len", o->plan.max_seq_len, "positions each sequence may reach")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--batch", o->plan.batch, "sequences in flight over the cluster (split over the dp groups)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--step-tokens", o->plan.step_tokens,
                  "tokens one step processes per dp group (prefill chunk; default: max-seq-len)")
      ->check(CLI::PositiveNumber);
  app->add_option("--headroom", o->plan.headroom, "fraction of each node's memory kept free")
      ->check(CLI::Range(0.0, 0.99))->capture_default_str();
  app->add_option("--num-layers", o->num_layers, "plan only the first N layers (as --load-format dummy runs)")
      ->check(CLI::PositiveNumber);
  app->add_option("--dense-layers", o->dense_layers, "the first K layers are dense (first_k_dense_replace)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--weight-dtype", o->weight_dtype, "count weights as dsrt --weight-dtype would hold them")
      ->check(CLI::IsMember({"stored", "bf16", "fp8", "int8", "int4"}))->capture_default_str();
  app->add_flag("--json", o->json, "print the plan as JSON");
  return [o] {
    ModelConfig config = load_model_config(o->model);
    apply_layer_overrides(config, o->num_layers, o->dense_layers);
    Topology topo = load_topology(o->topology);
    if (o->tp > 0 || o->ep > 0) apply_overrides(topo, o->tp, o->ep);
    o->plan.weight_format = parse_weight_format(o->weight_dtype);
    const Plan plan = make_plan(config, topo, o->plan);
    if (o->json) std::cout << plan_json(plan).dump(2) << std::endl;
    else std::cout << format_plan(plan) << std::flush;
    require_fits(plan);  // does not fit: the reason on stderr, exit code 1
    return 0;
  };
}

DSRT_COMMAND(plan_command);

}  // namespace
}  // namespace dsrt::launcher
