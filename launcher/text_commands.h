#pragma once
// Shared by `dsrt complete` and `dsrt generate --prompt`: one text completion printed as it comes.
#include <functional>
#include <string>

#include "launcher/model_options.h"
#include "runtime/engine.h"

namespace dsrt::launcher {

// Encodes `prompt` (as a user message rendered by the chat template when `chat`), generates with
// the options `make_options(r1)` returns (r1: the reply starts inside <think>), and streams the
// text to stdout, reasoning apart from the answer. Returns the exit code.
int run_completion(const ModelOptions& model, const std::string& prompt, bool chat, const std::string& system,
                   const std::function<GenerateOptions(bool r1)>& make_options);

}  // namespace dsrt::launcher
