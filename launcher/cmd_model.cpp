// dsrt logits / dsrt generate: run a model on token ids.
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "launcher/command.h"
#include "launcher/model_options.h"
#include "launcher/text_commands.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/safetensors.h"

namespace dsrt::launcher {
namespace {

std::function<int()> logits_command(CLI::App& parent) {
  struct Opts {
    ModelOptions model;
    std::string ids, out;
    int64_t decode_from = -1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("logits", "write the logits after each id to a safetensors file");
  o->model.add(app);
  app->add_option("--ids", o->ids, "comma-separated token ids")->required();
  app->add_option("--decode-from", o->decode_from,
                  "rows >= P come from one-token decode steps after a prefill of ids[0..P)");
  app->add_option("--out", o->out, "output .safetensors (tensor 'logits', F32 [ids, vocab])")->required();
  return [o] {
    set_log_level(o->model.log_level);
    std::vector<int32_t> ids = parse_ids(o->ids);
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t p = o->decode_from < 0 ? n : o->decode_from;
    if (p > n) throw Error(fmt::format("--decode-from {} is beyond the {} ids", p, n));
    Runtime rt(o->model, n);
    return rt.run([&] {
      const int64_t V = rt.model->config().vocab_size;
      check_ids(ids, V);
      std::vector<float> result = compute_logits(*rt.coordinator, ids, p);
      write_safetensors(o->out, {{"logits", "F32", {n, V}, result.data()}});
      spdlog::info("wrote logits [{}, {}] to {} ({} prefill rows, {} decode rows)", n, V, o->out, p, n - p);
      return 0;
    });
  };
}

std::function<int()> generate_command(CLI::App& parent) {
  struct Opts {
    ModelOptions model;
    std::string ids, prompt;
    GenerateOptions gen;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("generate", "generate after a prompt of ids (prints ids) or of text (prints text)");
  o->model.add(app);
  CLI::Option* ids = app->add_option("--ids", o->ids, "comma-separated prompt token ids");
  CLI::Option* prompt = app->add_option("--prompt", o->prompt, "prompt text (needs the tokenizer files; as `dsrt complete`)");
  ids->excludes(prompt);
  app->add_option("--max-tokens", o->gen.max_tokens, "ids to generate at most")->check(CLI::NonNegativeNumber);
  app->add_option("--temperature", o->gen.sampling.temperature, "0 = greedy");
  app->add_option("--top-p", o->gen.sampling.top_p);
  app->add_option("--top-k", o->gen.sampling.top_k, "0 = no limit");
  return [o, ids, prompt] {
    if (!*ids && !*prompt) throw Error("generate: give --ids or --prompt");
    if (*prompt) {
      o->gen.sampling.seed = o->model.seed;
      validate(o->gen.sampling);
      return run_completion(o->model, o->prompt, false, "", [o](bool) { return o->gen; });
    }
    set_log_level(o->model.log_level);
    std::vector<int32_t> ids = parse_ids(o->ids);
    o->gen.sampling.seed = o->model.seed;
    validate(o->gen.sampling);
    Runtime rt(o->model, static_cast<int64_t>(ids.size()) + o->gen.max_tokens);
    return rt.run([&] {
      check_ids(ids, rt.model->config().vocab_size);
      std::vector<int32_t> tokens = generate(*rt.coordinator, ids, o->gen);
      std::cout << fmt::format("{}", fmt::join(tokens, ",")) << std::endl;
      return 0;
    });
  };
}

DSRT_COMMAND(logits_command);
DSRT_COMMAND(generate_command);

}  // namespace
}  // namespace dsrt::launcher
