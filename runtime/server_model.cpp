#include "runtime/server_model.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/chat_template.h"
#include "runtime/config.h"
#include "runtime/error.h"

namespace dsrt {

TextAssets load_text_assets(const std::string& model) {
  namespace fs = std::filesystem;
  if (!fs::exists(model)) throw Error(fmt::format("{}: no such model directory", model));
  const fs::path dir = fs::is_directory(model) ? fs::path(model) : fs::path(model).parent_path();
  const std::string tok_json = (dir / "tokenizer.json").string(), tok_cfg = (dir / "tokenizer_config.json").string();
  if (!fs::exists(tok_json)) throw Error(fmt::format("{}: no tokenizer.json in the model directory", tok_json));
  if (!fs::exists(tok_cfg)) throw Error(fmt::format("{}: no tokenizer_config.json in the model directory", tok_cfg));
  TextAssets a{dir.string(), Tokenizer::from_file(tok_json), load_tokenizer_config(tok_cfg), {}, {}, {}, 0, 0};
  const ModelConfig c = load_model_config(model);
  a.max_position_embeddings = c.max_position_embeddings;
  a.model_vocab = c.vocab_size;

  auto id_of = [&](const std::optional<std::string>& token) -> std::optional<int32_t> {
    if (!token) return std::nullopt;
    return a.tokenizer.token_to_id(*token);
  };
  a.bos_id = id_of(a.tokenizer_config.bos_token);
  if (!a.bos_id && c.bos_token_id >= 0) a.bos_id = static_cast<int32_t>(c.bos_token_id);
  if (auto eos = id_of(a.tokenizer_config.eos_token)) a.stop_ids.push_back(*eos);
  if (c.eos_token_id >= 0 && std::find(a.stop_ids.begin(), a.stop_ids.end(), c.eos_token_id) == a.stop_ids.end())
    a.stop_ids.push_back(static_cast<int32_t>(c.eos_token_id));

  if (a.tokenizer_config.chat_template) {
    auto t = std::make_shared<ChatTemplate>(ChatTemplate::from_tokenizer_config(tok_cfg));
    a.chat.render = [t](const nlohmann::ordered_json& messages, bool add_generation_prompt,
                        const nlohmann::ordered_json& extra) { return t->render(messages, add_generation_prompt, extra); };
    a.chat.opens_thinking = t->opens_thinking();
  } else {
    spdlog::warn("{}: no chat_template: chat requests are refused", tok_cfg);
  }
  return a;
}

std::string decode_output(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, const std::vector<int32_t>& stop_ids) {
  std::vector<int32_t> keep;
  for (int32_t id : ids)
    if (id >= 0 && id < tokenizer.vocab_size() && std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end())
      keep.push_back(id);
  return tokenizer.decode(keep, /*skip_special_tokens=*/true);
}

}  // namespace dsrt
