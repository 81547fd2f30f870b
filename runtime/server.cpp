#include "runtime/server.h"

#ifdef DSRT_HAVE_HTTP
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/server_impl.h"

namespace dsrt {

using json = nlohmann::ordered_json;
using server::ApiError;

namespace {

const char* kJson = "application/json";

// Metrics label of a path: the routes, or "other" (bounded label values).
std::string route_label(const std::string& path) {
  for (const char* r : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/health/ready", "/metrics"})
    if (path == r) return r;
  return "other";
}

const char* error_type(int status) {
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

}  // namespace

Server::Impl::Impl(ServerConfig config, GenerationBackend& b, const Tokenizer& t, ChatRenderer c)
    : cfg(std::move(config)),
      backend(b),
      tok(t),
      chat(std::move(c)),
      syntax(ReasoningSyntax::from_tokenizer(t)),
      limiter(cfg.requests_per_minute) {
  const int threads = std::max(2, cfg.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(cfg.max_body_bytes);
  http.set_read_timeout(cfg.read_timeout_s, 0);
  http.set_write_timeout(cfg.write_timeout_s, 0);
  http.set_keep_alive_timeout(3);
  http.set_keep_alive_max_count(1000);
  setup_routes();
}

void Server::Impl::reply_error(httplib::Response& res, const ApiError& e) const {
  res.status = e.status;
  res.set_content(server::dump(server::error_body(e.what(), e.type, e.param, e.code)), kJson);
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", std::to_string(std::max(1, cfg.retry_after_s)));
}

bool Server::Impl::read_body(const httplib::ContentReader& reader, httplib::Response& res, std::string& body) const {
  bool too_large = false;
  const bool ok = reader([&](const char* data, size_t n) {
    if (body.size() + n > cfg.max_body_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (ok) return true;
  if (too_large || res.status == 413) {
    reply_error(res, ApiError(413, fmt::format("the request body is larger than {} bytes", cfg.max_body_bytes), "",
                              "request_too_large"));
  } else {
    reply_error(res, ApiError(400, "the request body could not be read", "", "invalid_body"));
  }
  res.set_header("Connection", "close");
  return false;
}

void Server::Impl::setup_routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    size_t bytes = 0;
    for (const auto& [k, v] : req.headers) bytes += k.size() + v.size() + 4;
    if (bytes > cfg.max_header_bytes || req.headers.size() > 256) {
      reply_error(res, ApiError(431, fmt::format("the request headers are larger than {} bytes", cfg.max_header_bytes), "",
                                "headers_too_large"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "POST" && (req.path == "/v1/chat/completions" || req.path == "/v1/completions")) {
      if (int wait = limiter.acquire(req.remote_addr); wait > 0) {
        reply_error(res, ApiError(429, fmt::format("more than {} requests per minute from {}", cfg.requests_per_minute,
                                                   req.remote_addr),
                                  "", "rate_limit_exceeded", "rate_limit_error"));
        res.set_header("Retry-After", std::to_string(wait));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    switch (res.status) {
      case 404: msg = fmt::format("no route {} {}", req.method, req.path); break;
      case 413: msg = fmt::format("the request body is larger than {} bytes", cfg.max_body_bytes); break;
      case 414: msg = "the request URI is too long"; break;
      case 431: msg = "the request headers are too large"; break;
      default: msg = fmt::format("HTTP status {}", res.status); break;
    }
    res.set_content(server::dump(server::error_body(msg, error_type(res.status), "", res.status == 404 ? "not_found" : "")), kJson);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("server: {} {}: {}", req.method, req.path, what);
    reply_error(res, ApiError(500, "internal error: " + what, "", "internal_error", "server_error"));
  });
  // Counted as the response starts (its status is final then), so a client that reads
  // /metrics right after a response sees it.
  http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    metrics.count_request(route_label(req.path), res.status);
  });
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("server: {}:{} {} {} -> {}", req.remote_addr, req.remote_port, req.method, req.path, res.status);
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (stopping) return reply_error(res, ApiError(503, "shutting down", "", "shutting_down", "server_error"));
    res.set_content(R"({"status":"ok"})", kJson);
  });
  http.Get("/health/ready", [this](const httplib::Request&, httplib::Response& res) { handle_ready(res); });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(backend.stats()), "text/plain; version=0.0.4; charset=utf-8");
  });
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  http.Get("/v1/models", [this, created](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", cfg.model_name}, {"object", "model"}, {"created", created}, {"owned_by", "dsrt"},
              {"max_model_len", cfg.max_context}};
    res.set_content(server::dump(json{{"object", "list"}, {"data", json::array({m})}}), kJson);
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
              handle_generate(server::Endpoint::Chat, req, res, reader);
            });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    handle_generate(server::Endpoint::Completion, req, res, reader);
  });
}

// One bounded one-token request through the scheduler: every rank runs a step for it.
void Server::Impl::handle_ready(httplib::Response& res) {
  if (stopping) return reply_error(res, ApiError(503, "shutting down", "", "shutting_down", "server_error"));
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    FinishReason reason = FinishReason::None;
    std::string error;
  };
  auto w = std::make_shared<Wait>();
  GenerationRequest g;
  g.prompt = {cfg.bos_id >= 0 && cfg.bos_id < cfg.model_vocab ? cfg.bos_id : 0};
  g.max_tokens = 1;
  const auto t0 = std::chrono::steady_clock::now();
  GenerationBackend::RequestId id = 0;
  try {
    id = backend.submit(std::move(g), [w](const TokenEvent& ev) {
      if (ev.finish == FinishReason::None) return;
      std::lock_guard<std::mutex> lock(w->mu);
      w->done = true;
      w->reason = ev.finish;
      w->error = ev.error;
      w->cv.notify_all();
    });
  } catch (const OverloadedError& e) {
    return reply_error(res, ApiError(503, std::string("not ready: ") + e.what(), "", "overloaded", "server_error"));
  } catch (const std::exception& e) {
    return reply_error(res, ApiError(503, std::string("not ready: ") + e.what(), "", "not_ready", "server_error"));
  }
  bool done;
  {
    std::unique_lock<std::mutex> lock(w->mu);
    done = w->cv.wait_for(lock, std::chrono::duration<double>(cfg.ready_timeout_s), [&] { return w->done; });
  }
  backend.cancel(id);  // ignored once finished
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!done)
    return reply_error(res, ApiError(503, fmt::format("not ready: no step within {} s", cfg.ready_timeout_s), "", "not_ready",
                                     "server_error"));
  if (w->reason != FinishReason::Stop && w->reason != FinishReason::Length)
    return reply_error(res, ApiError(503, fmt::format("not ready: the request finished with {} {}",
                                                      w->reason == FinishReason::Cancelled ? "cancel" : "error", w->error),
                                     "", "not_ready", "server_error"));
  res.set_content(server::dump(json{{"status", "ready"}, {"seconds", s}}), kJson);
}

Server::Server(ServerConfig config, GenerationBackend& backend, const Tokenizer& tokenizer, ChatRenderer chat)
    : impl_(std::make_unique<Impl>(std::move(config), backend, tokenizer, std::move(chat))) {}

Server::~Server() { stop(); }

int Server::start() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.life_mu);
  if (s.started) throw Error("server: already started");
  if (s.cfg.port == 0) {
    s.port = s.http.bind_to_any_port(s.cfg.host);
  } else {
    s.port = s.http.bind_to_port(s.cfg.host, s.cfg.port) ? s.cfg.port : -1;
  }
  if (s.port <= 0)
    throw Error(fmt::format("server: cannot listen on {}:{} (address in use or not local?)", s.cfg.host, s.cfg.port));
  if (!s.http.widen_backlog(1024)) spdlog::warn("server: could not raise the listen backlog");
  s.started = true;
  s.thread = std::thread([&s] { s.http.listen_after_bind(); });
  // stop() only works once the accept loop runs.
  for (int i = 0; i < 5000 && !s.http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  spdlog::info("server: listening on http://{}:{} (model '{}', {} HTTP threads)", s.cfg.host, s.port, s.cfg.model_name,
               s.cfg.http_threads);
  return s.port;
}

void Server::stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.life_mu);
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  for (int i = 0; i < 5000 && !s.http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.http.stop();
  if (s.thread.joinable()) s.thread.join();
  spdlog::info("server: stopped");
}

int Server::port() const { return impl_->port; }

}  // namespace dsrt
#endif  // DSRT_HAVE_HTTP
