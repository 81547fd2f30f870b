// Text in, text out on the command line:
//   dsrt tokenize   --model DIR [--chat]   stdin text (or, with --chat, a JSON list of messages
//                                          rendered with the generation prompt) -> JSON ids
//   dsrt detokenize --model DIR            stdin JSON ids (or "1,2 3") -> text
//   dsrt complete   --model DIR --prompt TEXT [--chat]   one completion, streamed to stdout
//   dsrt chat       --model DIR            interactive: one user turn per stdin line
// tokenize/detokenize read only the tokenizer files (no weights). complete/chat show reasoning
// apart from the answer (dimmed on a terminal, under "[reasoning]" / "[answer]" otherwise).
#include <unistd.h>

#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "launcher/command.h"
#include "launcher/model_options.h"
#include "launcher/text_commands.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/reasoning.h"
#include "runtime/server_model.h"

namespace dsrt::launcher {
namespace {

using ojson = nlohmann::ordered_json;

std::string read_stdin() { return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()); }

ojson parse_messages(const std::string& text) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const std::exception& e) {
    throw Error(fmt::format("stdin: not valid JSON: {}", e.what()));
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array() || j.empty()) throw Error("stdin: expected a non-empty JSON list of messages (or {\"messages\": [...]})");
  for (size_t i = 0; i < j.size(); ++i)
    if (!j[i].is_object() || !j[i].contains("role") || !j[i]["role"].is_string())
      throw Error(fmt::format("stdin: message {} is not an object with a string 'role'", i));
  return j;
}

std::string render(const TextAssets& a, const ojson& messages) {
  if (!a.chat.render) throw Error(fmt::format("{}: the checkpoint has no chat_template", a.dir + "/tokenizer_config.json"));
  return a.chat.render(messages, true, ojson::object());
}

// Streams generated ids to stdout, reasoning apart from the answer.
class ReplyPrinter {
 public:
  ReplyPrinter(const TextAssets& a, bool chat, bool starts_in_reasoning)
      : a_(a), decoder_(a.tokenizer, true), tty_(isatty(STDOUT_FILENO)) {
    if (chat) parser_.emplace(ReasoningSyntax::from_tokenizer(a.tokenizer), starts_in_reasoning);
  }
  void token(int32_t id) {
    if (id < 0 || id >= a_.tokenizer.vocab_size()) return;
    if (std::find(a_.stop_ids.begin(), a_.stop_ids.end(), id) != a_.stop_ids.end()) return;
    show(decoder_.push(id));
  }
  // Flushes; returns the answer (chat: without the reasoning).
  std::string finish() {
    show(decoder_.flush());
    if (parser_) print(parser_->finish());
    if (in_reasoning_ && tty_) std::cout << "\x1b[0m";
    std::cout << std::endl;
    return answer_;
  }

 private:
  void show(const std::string& text) {
    if (!parser_) {
      std::cout << text << std::flush;
      answer_ += text;
      return;
    }
    print(parser_->push(text));
  }
  void print(const ReasoningDelta& d) {
    if (!d.reasoning.empty()) {
      if (!in_reasoning_) std::cout << (tty_ ? "\x1b[2m" : "[reasoning]\n");
      in_reasoning_ = true;
      std::cout << d.reasoning;
    }
    std::string content = d.content;
    for (const ToolCall& c : d.tool_calls) content += fmt::format("\n[tool call] {}({})\n", c.name, c.arguments);
    if (!content.empty()) {
      if (in_reasoning_) std::cout << (tty_ ? "\x1b[0m\n\n" : "\n[answer]\n");
      in_reasoning_ = false;
      std::cout << content;
      answer_ += d.content;
    }
    std::cout << std::flush;
  }

  const TextAssets& a_;
  StreamDecoder decoder_;
  std::optional<ReasoningParser> parser_;
  bool tty_, in_reasoning_ = false;
  std::string answer_;
};

// The tokenizer may know ids the model does not (a test model with a small vocabulary).
void check_prompt(const std::vector<int32_t>& ids, int64_t vocab) {
  for (int32_t id : ids)
    if (id >= vocab)
      throw Error(fmt::format("the prompt has token id {}, outside the model's vocabulary of {} ids", id, vocab));
}

struct SamplingOpts {
  int64_t max_tokens = 256;
  std::optional<float> temperature, top_p;
  int64_t top_k = 0;
  void add(CLI::App* app) {
    app->add_option("--max-tokens", max_tokens, "tokens to generate at most")->check(CLI::PositiveNumber);
    app->add_option("--temperature", temperature, "0 = greedy (default; R1 chat: 0.6)")->check(CLI::Range(0.0, 2.0));
    app->add_option("--top-p", top_p, "nucleus mass (default 1; R1 chat: 0.95)");
    app->add_option("--top-k", top_k, "0 = no limit")->check(CLI::NonNegativeNumber);
  }
  GenerateOptions make(bool r1_chat, uint64_t seed) const {
    GenerateOptions g;
    g.max_tokens = max_tokens;
    g.sampling.temperature = temperature.value_or(r1_chat ? 0.6f : 0.0f);
    g.sampling.top_p = top_p.value_or(r1_chat ? 0.95f : 1.0f);
    g.sampling.top_k = top_k;
    g.sampling.seed = seed;
    validate(g.sampling);
    return g;
  }
};

std::function<int()> tokenize_command(CLI::App& parent) {
  struct Opts {
    std::string model, log_level = "warn";
    bool chat = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("tokenize", "stdin text to token ids (a JSON array); reads no weights");
  app->add_option("--model", o->model, "model directory (tokenizer.json, tokenizer_config.json)")->required();
  app->add_flag("--chat", o->chat, "stdin is a JSON list of messages, rendered with the chat template + generation prompt");
  app->add_option("--log-level", o->log_level);
  return [o] {
    set_log_level(o->log_level);
    TextAssets a = load_text_assets(o->model);
    const std::string in = read_stdin();
    const std::vector<int32_t> ids = a.tokenizer.encode(o->chat ? render(a, parse_messages(in)) : in);
    std::cout << fmt::format("[{}]", fmt::join(ids, ",")) << std::endl;
    return 0;
  };
}

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_array()) {
    for (const auto& x : j) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        throw Error(fmt::format("stdin: {} is not a token id", x.dump()));
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    return ids;
  }
  std::string items = text;
  for (char& c : items)
    if (c == ',' || c == '\n' || c == '\t' || c == '\r') c = ' ';
  std::istringstream ss(items);
  std::string item;
  while (ss >> item) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw Error(fmt::format("stdin: '{}' is not a token id", item));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

std::function<int()> detokenize_command(CLI::App& parent) {
  struct Opts {
    std::string model, log_level = "warn";
    bool skip_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("detokenize", "stdin token ids (JSON array, or separated by commas/spaces) to text");
  app->add_option("--model", o->model, "model directory (tokenizer.json, tokenizer_config.json)")->required();
  app->add_flag("--skip-special-tokens", o->skip_special, "leave out special tokens (bos, eos)");
  app->add_option("--log-level", o->log_level);
  return [o] {
    set_log_level(o->log_level);
    TextAssets a = load_text_assets(o->model);
    std::cout << a.tokenizer.decode(parse_id_list(read_stdin()), o->skip_special) << std::flush;
    return 0;
  };
}

}  // namespace

int run_completion(const ModelOptions& model, const std::string& prompt, bool chat, const std::string& system,
                   const std::function<GenerateOptions(bool r1)>& make_options) {
  set_log_level(model.log_level);
  TextAssets a = load_text_assets(model.model);
  std::vector<int32_t> ids;
  if (chat) {
    ojson messages = ojson::array();
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    ids = a.tokenizer.encode(render(a, messages));
  } else {
    ids = a.tokenizer.encode(prompt);
    if (a.tokenizer_config.add_bos_token && a.bos_id && (ids.empty() || ids[0] != *a.bos_id)) ids.insert(ids.begin(), *a.bos_id);
  }
  if (ids.empty()) throw Error("--prompt: the prompt has no tokens");
  const bool r1 = chat && a.chat.opens_thinking;
  GenerateOptions gen = make_options(r1);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n + gen.max_tokens > a.max_position_embeddings)
    throw Error(fmt::format("the prompt has {} tokens + --max-tokens {}: more than the context of {}", n, gen.max_tokens,
                            a.max_position_embeddings));
  Runtime rt(model, n + gen.max_tokens);
  return rt.run([&] {
    check_prompt(ids, rt.model->config().vocab_size);
    ReplyPrinter out(a, chat, r1);
    generate(*rt.coordinator, ids, gen, [&](int32_t id) { out.token(id); });
    out.finish();
    return 0;
  });
}

namespace {

std::function<int()> complete_command(CLI::App& parent) {
  struct Opts {
    ModelOptions model;
    SamplingOpts sampling;
    std::string prompt, system;
    bool chat = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand("complete", "generate text after a prompt and print it as it comes");
  o->model.add(app);
  o->sampling.add(app);
  app->add_option("--prompt", o->prompt, "the prompt text")->required();
  app->add_flag("--chat", o->chat, "the prompt is a user message, rendered with the chat template");
  app->add_option("--system", o->system, "with --chat: a system message first");
  return [o] {
    return run_completion(o->model, o->prompt, o->chat, o->system,
                          [o](bool r1) { return o->sampling.make(r1, o->model.seed); });
  };
}

std::function<int()> chat_command(CLI::App& parent) {
  struct Opts {
    ModelOptions model;
    SamplingOpts sampling;
    std::string system;
    int64_t max_context = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand(
      "chat", "interactive chat: each stdin line is a user turn (/reset forgets the conversation, /exit ends)");
  o->model.add(app);
  o->sampling.add(app);
  app->add_option("--system", o->system, "a system message first");
  app->add_option("--max-context", o->max_context, "conversation tokens kept in the cache (default: min(context, 8192))")
      ->check(CLI::PositiveNumber);
  return [o] {
    set_log_level(o->model.log_level);
    TextAssets a = load_text_assets(o->model.model);
    if (!a.chat.render) throw Error(fmt::format("{}/tokenizer_config.json: the checkpoint has no chat_template", a.dir));
    const int64_t context = o->max_context > 0 ? std::min(o->max_context, a.max_position_embeddings)
                                                : std::min<int64_t>(a.max_position_embeddings, 8192);
    Runtime rt(o->model, context);
    return rt.run([&] {
      const bool tty = isatty(STDIN_FILENO);
      ojson messages = ojson::array();
      auto reset = [&] {
        messages = ojson::array();
        if (!o->system.empty()) messages.push_back({{"role", "system"}, {"content", o->system}});
      };
      reset();
      std::string line;
      for (uint64_t turn = 0;; ++turn) {
        if (tty) std::cerr << "> " << std::flush;
        if (!std::getline(std::cin, line)) break;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
          reset();
          std::cerr << "(conversation reset)" << std::endl;
          continue;
        }
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        messages.push_back({{"role", "user"}, {"content", line}});
        std::vector<int32_t> ids = a.tokenizer.encode(render(a, messages));
        GenerateOptions gen = o->sampling.make(a.chat.opens_thinking, o->model.seed + turn);
        if (static_cast<int64_t>(ids.size()) + gen.max_tokens > context) {
          messages.erase(messages.size() - 1);
          std::cerr << fmt::format("(the conversation has {} tokens + --max-tokens {}: more than {}; /reset to start over)",
                                   ids.size(), gen.max_tokens, context)
                    << std::endl;
          continue;
        }
        check_prompt(ids, rt.model->config().vocab_size);
        ReplyPrinter out(a, true, a.chat.opens_thinking);
        generate(*rt.coordinator, ids, gen, [&](int32_t id) { out.token(id); });
        messages.push_back({{"role", "assistant"}, {"content", out.finish()}});
      }
      return 0;
    });
  };
}

DSRT_COMMAND(tokenize_command);
DSRT_COMMAND(detokenize_command);
DSRT_COMMAND(complete_command);
DSRT_COMMAND(chat_command);

}  // namespace
}  // namespace dsrt::launcher
