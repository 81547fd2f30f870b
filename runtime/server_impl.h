#pragma once
// The server's state (internal): shared by server.cpp (routes, health, metrics, limits) and
// server_generate.cpp (the generation routes).
#include "runtime/server.h"

#ifdef DSRT_HAVE_HTTP
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <httplib.h>

#include "runtime/server_metrics.h"
#include "runtime/server_request.h"

namespace dsrt {

// httplib::Server listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed in the
// library): a burst of connections overflows it, and with SYN cookies some are reset. listen()
// again on the bound socket raises it.
class HttpServer : public httplib::Server {
 public:
  bool widen_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }
};

struct Server::Impl {
  Impl(ServerConfig config, GenerationBackend& backend, const Tokenizer& tokenizer, ChatRenderer chat);

  void setup_routes();
  void reply_error(httplib::Response& res, const server::ApiError& e) const;
  // Reads the body within cfg.max_body_bytes; false (with the error response set) otherwise.
  bool read_body(const httplib::ContentReader& reader, httplib::Response& res, std::string& body) const;
  void handle_generate(server::Endpoint endpoint, const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& reader);
  void handle_ready(httplib::Response& res);
  struct Job;  // one generation request (server_generate.cpp)
  // Content provider step: drains the job's events into the response; false ends it.
  bool pump(Job& job, httplib::DataSink& sink);
  // The prompts of a request as token ids (chat: the rendered template), validated against the
  // vocabulary and the context.
  std::vector<std::vector<int32_t>> prompt_ids(const server::ParsedRequest& r, std::vector<std::string>& texts) const;

  ServerConfig cfg;
  GenerationBackend& backend;
  const Tokenizer& tok;
  ChatRenderer chat;
  ReasoningSyntax syntax;
  server::Metrics metrics;
  server::RateLimiter limiter;
  HttpServer http;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<int> open_streams{0};
  std::mutex life_mu;
  bool started = false, stopped = false;
  int port = -1;
};

}  // namespace dsrt
#endif
