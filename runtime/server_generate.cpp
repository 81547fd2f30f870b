// POST /v1/chat/completions and /v1/completions: validate, submit one scheduler request per
// choice, and answer through a chunked content provider that drains the choices' token events on
// the HTTP thread. The provider also watches the connection: a client that goes away has its
// requests cancelled (as has every request still running when the response ends in any way).
#include "runtime/server_impl.h"

#ifdef DSRT_HAVE_HTTP
#include <condition_variable>
#include <deque>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/server_choice.h"

namespace dsrt {

using json = nlohmann::ordered_json;
using server::ApiError;
using server::Choice;
using server::ChoiceDelta;
using server::Endpoint;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string sse(const json& j) { return "data: " + server::dump(j) + "\n\n"; }

json stream_choice(Endpoint endpoint, bool logprobs, Choice& c, const ChoiceDelta& d, bool first, const char* finish) {
  json ch = {{"index", c.index()}};
  if (endpoint == Endpoint::Chat) ch["delta"] = finish ? json::object() : c.chat_delta_json(d, first);
  else ch["text"] = (first ? c.prefix_text : std::string()) + d.text;
  ch["logprobs"] = logprobs && !d.logprobs.empty() ? c.logprobs_json(d.logprobs) : json(nullptr);
  ch["finish_reason"] = finish ? json(finish) : json(nullptr);
  return ch;
}

}  // namespace

// One HTTP generation request: its choices and the events the scheduler thread hands over.
struct Server::Impl::Job {
  struct Event {
    size_t choice;
    TokenEvent ev;
    Clock::time_point at;
  };
  // Shared with the scheduler thread.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;

  // HTTP thread only.
  server::ParsedRequest req;
  server::ChoiceSetup setup;
  std::vector<std::unique_ptr<Choice>> choices;
  std::vector<GenerationBackend::RequestId> ids;
  std::vector<Clock::time_point> last_at;
  std::vector<bool> got_token;
  int64_t prompt_tokens = 0;
  int remaining = 0;
  bool started = false, complete = false;
  std::string error;
  std::string id;
  int64_t created = 0;
  Clock::time_point t0, last_check;

  json base(bool chunk, const std::string& model) const {
    const bool chat = req.endpoint == Endpoint::Chat;
    return {{"id", id},
            {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
            {"created", created},
            {"model", model}};
  }
  json usage() const {
    int64_t completion = 0, reasoning = 0;
    for (const auto& c : choices) {
      completion += c->tokens();
      reasoning += c->reasoning_tokens();
    }
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion},
            {"total_tokens", prompt_tokens + completion},
            {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
  }
};


std::vector<std::vector<int32_t>> Server::Impl::prompt_ids(const server::ParsedRequest& r, std::vector<std::string>& texts) const {
  std::vector<std::vector<int32_t>> out;
  const std::string param = r.endpoint == Endpoint::Chat ? "messages" : "prompt";
  if (r.endpoint == Endpoint::Chat) {
    if (!chat.render) throw ApiError(400, "this model has no chat template: use /v1/completions", "messages", "no_chat_template");
    std::string text;
    try {
      text = chat.render(r.messages, true, r.template_extra);
    } catch (const std::exception& e) {
      throw ApiError(400, fmt::format("the messages cannot be rendered with the chat template: {}", e.what()), "messages");
    }
    out.push_back(tok.encode(text));
    texts.push_back(std::move(text));
  } else {
    for (const server::PromptInput& p : r.prompts) {
      if (p.is_ids) {
        out.push_back(p.ids);
        texts.push_back(r.echo ? tok.decode(p.ids) : std::string());
        continue;
      }
      std::vector<int32_t> ids = tok.encode(p.text);
      if (cfg.add_bos && cfg.bos_id >= 0 && (ids.empty() || ids[0] != cfg.bos_id)) ids.insert(ids.begin(), cfg.bos_id);
      if (ids.empty()) throw ApiError(400, "'prompt' is empty", "prompt", "invalid_value");
      out.push_back(std::move(ids));
      texts.push_back(p.text);
    }
  }
  for (const std::vector<int32_t>& ids : out) {
    for (int32_t id : ids)
      if (id < 0 || id >= cfg.model_vocab)
        throw ApiError(400, fmt::format("token id {} is outside the model's vocabulary ({} ids)", id, cfg.model_vocab), param,
                       "invalid_value");
    if (static_cast<int64_t>(ids.size()) >= cfg.max_context)
      throw ApiError(400, fmt::format("the prompt has {} tokens; the context is {} tokens (prompt + max_tokens)", ids.size(),
                                      cfg.max_context),
                     param, "context_length_exceeded");
  }
  return out;
}

void Server::Impl::handle_generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
  const Clock::time_point t0 = Clock::now();
  std::string body;
  if (!read_body(reader, res, body)) return;
  auto job = std::make_shared<Impl::Job>();
  job->t0 = job->last_check = t0;
  job->created = static_cast<int64_t>(std::time(nullptr));
  job->id = server::random_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  try {
    if (stopping) throw ApiError(503, "shutting down", "", "shutting_down", "server_error");
    job->req = server::parse_request(endpoint, body);
    const server::ParsedRequest& r = job->req;
    if (!r.model.empty() && r.model != cfg.model_name)
      throw ApiError(404, fmt::format("the model '{}' does not exist; this server serves '{}'", r.model, cfg.model_name),
                     "model", "model_not_found");
    std::vector<std::string> texts;
    const std::vector<std::vector<int32_t>> prompts = prompt_ids(r, texts);

    SamplingParams sp;
    sp.temperature = static_cast<float>(r.temperature.value_or(chat.opens_thinking ? 0.6 : 1.0));
    sp.top_p = static_cast<float>(r.top_p.value_or(chat.opens_thinking ? 0.95 : 1.0));
    sp.top_k = r.top_k;
    try {
      validate(sp);
    } catch (const Error& e) {
      throw ApiError(400, e.what());
    }
    uint64_t seed = r.seed ? static_cast<uint64_t>(*r.seed) : std::random_device{}() * 0x100000001ull + std::random_device{}();

    server::ChoiceSetup& setup = job->setup;
    setup.endpoint = endpoint;
    setup.tokenizer = &tok;
    setup.syntax = syntax;
    setup.starts_in_reasoning = endpoint == Endpoint::Chat && chat.opens_thinking;
    setup.stop = r.stop;
    setup.stop_ids = cfg.stop_ids;
    setup.logprobs = r.logprobs;
    setup.top_logprobs = r.top_logprobs;

    for (size_t p = 0; p < prompts.size(); ++p) {
      const int64_t len = static_cast<int64_t>(prompts[p].size());
      job->prompt_tokens += len;
      int64_t max_tokens = std::min(cfg.default_max_tokens, cfg.max_context - len);
      if (r.max_tokens) {
        if (len + *r.max_tokens > cfg.max_context)
          throw ApiError(400, fmt::format("the prompt has {} tokens and max_tokens is {}: more than the context of {} tokens",
                                          len, *r.max_tokens, cfg.max_context),
                         "max_tokens", "context_length_exceeded");
        max_tokens = *r.max_tokens;
      }
      for (int i = 0; i < r.n; ++i) {
        const size_t index = job->choices.size();
        job->choices.push_back(std::make_unique<Choice>(static_cast<int>(index), setup));
        job->choices.back()->prefix_text = r.echo ? texts[p] : std::string();
        GenerationRequest g;
        g.prompt = prompts[p];
        g.max_tokens = max_tokens;
        g.sampling = sp;
        g.sampling.seed = seed + static_cast<uint64_t>(i);
        g.stop_ids = cfg.stop_ids;
        g.logprobs = r.logprobs;
        g.top_logprobs = r.top_logprobs;
        auto on_event = [job, index](const TokenEvent& ev) {
          std::lock_guard<std::mutex> lock(job->mu);
          job->events.push_back({index, ev, Clock::now()});
          job->cv.notify_one();
        };
        job->ids.push_back(backend.submit(std::move(g), std::move(on_event)));
      }
    }
  } catch (...) {
    for (GenerationBackend::RequestId id : job->ids) backend.cancel(id);
    try {
      throw;
    } catch (const ApiError& e) {
      return reply_error(res, e);
    } catch (const OverloadedError& e) {
      return reply_error(res, ApiError(503, std::string("overloaded: ") + e.what(), "", "overloaded", "server_error"));
    } catch (const Error& e) {
      return reply_error(res, ApiError(400, e.what()));
    }
  }
  job->remaining = static_cast<int>(job->choices.size());
  job->last_at.assign(job->choices.size(), t0);
  job->got_token.assign(job->choices.size(), false);

  auto provider = [this, job](size_t, httplib::DataSink& sink) { return pump(*job, sink); };
  auto releaser = [this, job](bool) {
    if (!job->complete) metrics.count_cancel(stopping ? "shutdown" : "disconnect");
    for (GenerationBackend::RequestId id : job->ids) backend.cancel(id);  // finished ones are ignored
  };
  if (job->req.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
  }
  res.set_chunked_content_provider(job->req.stream ? "text/event-stream" : "application/json", provider, releaser);
}

bool Server::Impl::pump(Job& job, httplib::DataSink& sink) {
  std::deque<Job::Event> batch;
  {
    std::unique_lock<std::mutex> lock(job.mu);
    if (job.events.empty()) job.cv.wait_for(lock, std::chrono::milliseconds(50));
    batch.swap(job.events);
  }
  const Clock::time_point now = Clock::now();
  if (batch.empty() || now - job.last_check >= std::chrono::milliseconds(100)) {
    job.last_check = now;
    if (!sink.is_writable()) return false;  // the client went away: the releaser cancels
  }
  const bool stream = job.req.stream, chat = job.req.endpoint == Endpoint::Chat;
  std::string out;
  auto emit = [&](json choice) {
    json c = job.base(true, cfg.model_name);
    c["choices"] = json::array({std::move(choice)});
    if (job.req.include_usage) c["usage"] = nullptr;
    out += sse(c);
  };
  if (!job.started) {
    job.started = true;
    if (stream)
      for (auto& c : job.choices)
        if (chat || !c->prefix_text.empty()) emit(stream_choice(job.req.endpoint, false, *c, {}, true, nullptr));
  }

  std::vector<ChoiceDelta> deltas(job.choices.size());
  std::vector<char> touched(job.choices.size(), 0), ended(job.choices.size(), 0);
  for (Job::Event& e : batch) {
    Choice& c = *job.choices[e.choice];
    if (c.finished()) continue;  // e.g. tokens after a stop sequence, before the cancel took effect
    if (e.ev.token >= 0) {
      if (!job.got_token[e.choice]) metrics.observe_ttft(seconds(e.at - job.t0));
      else metrics.observe_tpot(seconds(e.at - job.last_at[e.choice]));
      job.got_token[e.choice] = true;
      job.last_at[e.choice] = e.at;
    }
    ChoiceDelta d = c.on_token(e.ev);
    if (c.stopped()) {
      backend.cancel(job.ids[e.choice]);
      metrics.count_cancel("stop_sequence");
      d.append(c.finish(FinishReason::Stop));
    } else if (e.ev.finish != FinishReason::None) {
      if (e.ev.finish == FinishReason::Error && job.error.empty())
        job.error = e.ev.error.empty() ? std::string("generation failed") : e.ev.error;
      d.append(c.finish(e.ev.finish));
    }
    if (c.finished()) {
      ended[e.choice] = 1;
      --job.remaining;
    }
    deltas[e.choice].append(std::move(d));
    touched[e.choice] = 1;
  }
  if (stream) {
    for (size_t i = 0; i < job.choices.size(); ++i) {
      if (!touched[i]) continue;
      Choice& c = *job.choices[i];
      if (!deltas[i].empty()) emit(stream_choice(job.req.endpoint, job.setup.logprobs, c, deltas[i], false, nullptr));
      if (ended[i]) emit(stream_choice(job.req.endpoint, false, c, {}, false, c.finish_reason().c_str()));
    }
  }
  if (job.remaining == 0) {
    json usage = job.usage();
    if (!job.error.empty()) {
      json err = server::error_body(job.error, "server_error", "", "generation_failed");
      out += stream ? sse(err) : server::dump(err);
    } else if (!stream) {
      json r = job.base(false, cfg.model_name);
      r["choices"] = json::array();
      for (auto& c : job.choices) r["choices"].push_back(c->final_json());
      r["usage"] = usage;
      out += server::dump(r);
    }
    if (stream) {
      if (job.req.include_usage) {
        json u = job.base(true, cfg.model_name);
        u["choices"] = json::array();
        u["usage"] = usage;
        out += sse(u);
      }
      out += "data: [DONE]\n\n";
    }
    metrics.add_usage(job.prompt_tokens, usage["completion_tokens"].get<int64_t>(),
                      usage["completion_tokens_details"]["reasoning_tokens"].get<int64_t>());
    const double took = seconds(Clock::now() - job.t0);
    metrics.observe_latency(took);
    job.complete = true;
    spdlog::info("server: {} {}: {} choice(s), {} prompt + {} completion tokens, {:.3f} s{}", job.id,
                 job.choices[0]->finish_reason(), job.choices.size(), job.prompt_tokens,
                 usage["completion_tokens"].get<int64_t>(), took, job.error.empty() ? "" : ", error: " + job.error);
  }
  if (!out.empty() && !sink.write(out.data(), out.size())) return false;
  if (job.complete) sink.done();
  return true;
}

}  // namespace dsrt
#endif  // DSRT_HAVE_HTTP
