// The OpenAI-compatible server and the text commands.
//   Server.*      in-process, over a scripted backend: every bad-input case (status and error
//                 body, nothing reaches the backend), health/ready/metrics, chat and completions
//                 (streaming or not), reasoning split, tool calls, stop sequences, n > 1,
//                 logprobs, cancel on disconnect / overload / shutdown, rate limit, size limits.
//   ServeProcess.* `dsrt serve` subprocesses on loopback: a dummy model with DeepSeek's vocabulary
//                 (isolation of 64 concurrent streams, KV cache freed on disconnect), the golden
//                 tiny model (vocabulary smaller than the tokenizer's), and 2 ranks under mpirun.
//   TextCommands.* dsrt tokenize / detokenize / complete / chat.
#include "runtime/server.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "runtime/server_model.h"
#include "unit/test_util.h"

#ifdef DSRT_HAVE_HTTP
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <httplib.h>
#endif

namespace dsrt {
namespace {

namespace fs = std::filesystem;

// A model directory in the test temp dir: config.json (+ weights) and the DeepSeek tokenizer.
std::string model_dir(const std::string& name, const nlohmann::json& config, const std::string& weights = "") {
  const fs::path d = fs::path(::testing::TempDir()) / ("serve_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(test::data_dir()) / "tokenizer" / f, d / f);
  std::ofstream(d / "config.json") << config.dump(1);
  if (!weights.empty()) fs::copy_file(weights, d / "model.safetensors");
  return d.string();
}

nlohmann::json golden_config() {
  std::ifstream in(test::data_dir() + "/golden/tiny-v3/config.json");
  return nlohmann::json::parse(in);
}

// Tiny dimensions with DeepSeek-V3's vocabulary (129280, beyond the tokenizer's 128815).
nlohmann::json dummy_config() {
  nlohmann::json c = golden_config();
  c.update({{"vocab_size", 129280}, {"hidden_size", 64}, {"intermediate_size", 128}, {"moe_intermediate_size", 32},
            {"num_hidden_layers", 2}, {"first_k_dense_replace", 1}, {"num_attention_heads", 4}, {"num_key_value_heads", 4},
            {"q_lora_rank", 32}, {"kv_lora_rank", 32}, {"qk_nope_head_dim", 16}, {"qk_rope_head_dim", 16},
            {"v_head_dim", 16}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2}, {"n_group", 4}, {"topk_group", 2},
            {"max_position_embeddings", 4096}});
  return c;
}

// The V3 template with the R1 generation prompt (opens <think>), in a model directory.
void make_r1(const std::string& dir) {
  const std::string path = dir + "/tokenizer_config.json";
  std::ifstream in(path);
  nlohmann::json c = nlohmann::json::parse(in);
  std::string t = c["chat_template"];
  const std::string from = "{{'<｜Assistant｜>'}}{% endif %}";
  ASSERT_EQ(t.substr(t.size() - from.size()), from);
  c["chat_template"] = t.substr(0, t.size() - from.size()) + "{{'<｜Assistant｜><think>\\n'}}{% endif %}";
  std::ofstream(path) << c.dump(1);
}

std::string dsrt(const std::string& args) { return std::string(DSRT_BINARY) + " " + args; }

TEST(TextCommands, TokenizeDetokenizeWithoutWeights) {
  const std::string dir = model_dir("text", dummy_config());  // no weights in it
  const Tokenizer tok = Tokenizer::from_file(dir + "/tokenizer.json");
  test::RunResult r = test::run("printf 'Hello, world!' | " + dsrt("tokenize --model " + dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ids = nlohmann::json::parse(r.output).get<std::vector<int32_t>>();
  EXPECT_EQ(ids, tok.encode("Hello, world!"));
  r = test::run("echo '" + nlohmann::json(ids).dump() + "' | " + dsrt("detokenize --model " + dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "Hello, world!");
  r = test::run("echo '0, 19923 14' | " + dsrt("detokenize --skip-special-tokens --model " + dir + "/config.json"));
  EXPECT_EQ(r.output, "Hello,");
  // --chat: messages rendered with the generation prompt.
  r = test::run("echo '[{\"role\": \"user\", \"content\": \"Hi\"}]' | " + dsrt("tokenize --chat --model " + dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output).get<std::vector<int32_t>>(), tok.encode("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>"));
  // Errors: one line naming the problem.
  r = test::run("echo 'nope' | " + dsrt("tokenize --chat --model " + dir));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("dsrt: error: stdin: not valid JSON"), std::string::npos) << r.output;
  r = test::run("echo '[5, 999999]' | " + dsrt("detokenize --model " + dir));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = test::run("echo hi | " + dsrt("tokenize --model /nonexistent/dir"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/dir"), std::string::npos) << r.output;
}

TEST(TextCommands, CompleteAndChat) {
  const std::string dir = model_dir("text_r1", dummy_config());
  make_r1(dir);
  test::RunResult r = test::run_dsrt("complete --model " + dir + " --load-format dummy --prompt 'Once upon a time' --max-tokens 8 --log-level warn");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(r.output.empty());
  // R1 chat: the reply starts inside <think>, shown under [reasoning].
  r = test::run_dsrt("complete --chat --model " + dir + " --load-format dummy --prompt 'Hi' --max-tokens 8 --log-level warn");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("[reasoning]\n", 0), 0u) << r.output;
  r = test::run("printf 'Hello\n/reset\nHi again\n/exit\n' | " +
                dsrt("chat --model " + dir + " --load-format dummy --max-tokens 6 --log-level warn"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(conversation reset)"), std::string::npos) << r.output;
  // A model whose vocabulary is smaller than the tokenizer's: a clear error.
  const std::string tiny = model_dir("text_tiny", golden_config(), test::data_dir() + "/golden/tiny-v3/model.safetensors");
  r = test::run_dsrt("complete --chat --model " + tiny + " --prompt 'Hi' --log-level warn");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("outside the model's vocabulary of 512 ids"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dsrt

#ifndef DSRT_HAVE_HTTP
TEST(Server, NotBuilt) { GTEST_SKIP() << "dsrt was built without cpp-httplib (pkg-config cpp-httplib): no server"; }
#else
namespace dsrt {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- clients

struct Reply {
  int status = -1;
  std::string body;
  httplib::Headers headers;
  json j() const { return json::parse(body, nullptr, false); }
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

Reply request(int port, const std::string& method, const std::string& path, const std::string& body = {},
              const httplib::Headers& h = {}) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(120, 0);
  httplib::Result r = method == "GET" ? cli.Get(path.c_str(), h) : cli.Post(path.c_str(), h, body, "application/json");
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  return out;
}
Reply get(int port, const std::string& path) { return request(port, "GET", path); }
Reply post(int port, const std::string& path, const json& body) { return request(port, "POST", path, body.dump()); }

// The chunks of an SSE body; `done` when it ends with data: [DONE].
struct Sse {
  std::vector<json> chunks;
  bool done = false;
  bool well_formed = true;
};
Sse parse_sse(const std::string& body) {
  Sse s;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find("\n\n", at);
    if (end == std::string::npos) {
      s.well_formed = false;
      break;
    }
    std::string ev = body.substr(at, end - at);
    at = end + 2;
    if (ev.rfind("data: ", 0) != 0) {
      s.well_formed = false;
      continue;
    }
    std::string data = ev.substr(6);
    if (s.done) s.well_formed = false;  // nothing after [DONE]
    if (data == "[DONE]") s.done = true;
    else s.chunks.push_back(json::parse(data, nullptr, false));
  }
  return s;
}

// Streamed chat deltas of one choice, joined.
struct Joined {
  std::string content, reasoning, finish;
  json tool_calls = json::array();
  bool role_first = false;
};
Joined join_chat(const Sse& s, int index = 0) {
  Joined j;
  bool first = true;
  for (const json& c : s.chunks)
    for (const json& ch : c.value("choices", json::array())) {
      if (ch["index"] != index) continue;
      const json& d = ch["delta"];
      if (first) j.role_first = d.value("role", "") == "assistant";
      first = false;
      if (d.contains("content") && d["content"].is_string()) j.content += d["content"].get<std::string>();
      if (d.contains("reasoning_content") && d["reasoning_content"].is_string()) j.reasoning += d["reasoning_content"].get<std::string>();
      if (d.contains("tool_calls"))
        for (const json& t : d["tool_calls"]) j.tool_calls.push_back(t);
      if (ch["finish_reason"].is_string()) j.finish = ch["finish_reason"];
    }
  return j;
}

int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t at = 0;
  while (at < s.size()) {
    ssize_t n = send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

// Reads until `until` appears (or 10 s pass); returns what was read.
std::string recv_until(int fd, const std::string& until) {
  std::string got;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.find(until) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

std::string raw_post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Value of a metric line (labels included in `name`), or -1.
double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return f();
}

// ---------------------------------------------------------------- scripted backend

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::from_file(test::data_dir() + "/tokenizer/tokenizer.json");
  return t;
}
constexpr int32_t kEos = 1;

// Generates the tokens of script(seed) then eos, one step every `interval` for all requests at
// once, like a scheduler thread; honours max_tokens and cancel.
class FakeBackend : public GenerationBackend {
 public:
  explicit FakeBackend(std::function<std::string(uint64_t)> script) : script_(std::move(script)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeBackend() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  RequestId submit(GenerationRequest r, OnEvent on_event) override {
    std::vector<int32_t> toks = tokenizer().encode(script_(r.sampling.seed));
    toks.push_back(kEos);
    std::lock_guard<std::mutex> l(mu_);
    if (overload_after >= 0 && submitted >= overload_after) throw OverloadedError("fake: queue full");
    ++submitted;
    requests.push_back(r);
    const RequestId id = next_++;
    active_[id] = {std::move(toks), 0, r, std::move(on_event)};
    return id;
  }
  void cancel(RequestId id) override {
    std::lock_guard<std::mutex> l(mu_);
    cancelled.insert(id);
    to_cancel_.push_back(id);
  }
  SchedulerStats stats() const override {
    std::lock_guard<std::mutex> l(mu_);
    SchedulerStats s;
    s.running = static_cast<int64_t>(active_.size());
    for (const auto& [id, a] : active_) s.cache_blocks_used += 1 + (static_cast<int64_t>(a.req.prompt.size()) + a.req.max_tokens) / 64;
    s.cache_blocks_total = 1000;
    return s;
  }
  size_t active() const {
    std::lock_guard<std::mutex> l(mu_);
    return active_.size();
  }

  std::atomic<bool> stalled{false};
  std::atomic<int> interval_ms{1};
  int overload_after = -1;
  // Under mu_:
  int submitted = 0;
  std::vector<GenerationRequest> requests;
  std::set<RequestId> cancelled;
  mutable std::mutex mu_;

 private:
  struct Active {
    std::vector<int32_t> toks;
    size_t pos;
    GenerationRequest req;
    OnEvent on_event;
  };
  void loop() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms.load()));
      std::vector<std::pair<OnEvent, TokenEvent>> out;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) break;
        for (RequestId id : to_cancel_) {
          auto it = active_.find(id);
          if (it == active_.end()) continue;
          TokenEvent ev;
          ev.finish = FinishReason::Cancelled;
          out.emplace_back(it->second.on_event, ev);
          active_.erase(it);
        }
        to_cancel_.clear();
        if (stalled) continue;
        for (auto it = active_.begin(); it != active_.end();) {
          Active& a = it->second;
          TokenEvent ev;
          ev.token = a.toks[a.pos++];
          ev.logprob = -0.5f;
          for (int k = 0; k < a.req.top_logprobs; ++k) ev.top.emplace_back(ev.token + k, -0.5f - k);
          if (ev.token == kEos) ev.finish = FinishReason::Stop;
          else if (static_cast<int64_t>(a.pos) >= a.req.max_tokens) ev.finish = FinishReason::Length;
          out.emplace_back(a.on_event, ev);
          it = ev.finish != FinishReason::None ? active_.erase(it) : std::next(it);
        }
      }
      for (auto& [f, ev] : out) f(ev);
    }
  }
  std::function<std::string(uint64_t)> script_;
  std::map<RequestId, Active> active_;
  std::vector<RequestId> to_cancel_;
  RequestId next_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

const std::string kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>";
const std::string kCall = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>";

// R1-like output: reasoning closed by </think>, then the answer naming the seed.
std::string r1_script(uint64_t seed) {
  return "Let me think about seed " + std::to_string(seed) + ".</think>\n\nThe answer for seed " + std::to_string(seed) +
         " is 42. STOP here. More text after.";
}

ChatRenderer v3_renderer() {
  static const TextAssets a = [] {
    const fs::path d = fs::path(::testing::TempDir()) / "server_v3_assets";
    fs::create_directories(d);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fs::path(test::data_dir()) / "tokenizer" / f, d / f, fs::copy_options::overwrite_existing);
    fs::copy_file(fs::path(test::data_dir()) / "golden/tiny-v3/config.json", d / "config.json", fs::copy_options::overwrite_existing);
    return load_text_assets(d.string());
  }();
  return a.chat;
}

// The V3 template with the R1 generation prompt "<｜Assistant｜><think>\n".
ChatRenderer r1_renderer() {
  ChatRenderer v3 = v3_renderer();
  ChatRenderer r1;
  r1.render = [v3](const nlohmann::ordered_json& m, bool gen, const nlohmann::ordered_json& extra) {
    return v3.render(m, gen, extra) + (gen ? "<think>\n" : "");
  };
  r1.opens_thinking = true;
  return r1;
}

ServerConfig test_config() {
  ServerConfig c;
  c.port = 0;
  c.model_name = "test-model";
  c.http_threads = 32;
  c.max_context = 512;
  c.model_vocab = 129280;
  c.stop_ids = {kEos};
  c.bos_id = 0;
  c.add_bos = true;
  c.max_body_bytes = 64 * 1024;
  c.max_header_bytes = 4096;
  c.ready_timeout_s = 1.0;
  return c;
}

struct Harness {
  explicit Harness(ServerConfig cfg = test_config(), ChatRenderer chat = r1_renderer(),
                   std::function<std::string(uint64_t)> script = r1_script)
      : backend(std::move(script)), server(cfg, backend, tokenizer(), std::move(chat)) {
    port = server.start();
  }
  FakeBackend backend;
  Server server;
  int port = 0;
};

json chat_body(json extra = json::object()) {
  json b = {{"model", "test-model"}, {"messages", {{{"role", "user"}, {"content", "What is 6 x 7?"}}}}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

// ---------------------------------------------------------------- in-process tests

TEST(Server, HealthModelsAndUnknownRoutes) {
  Harness h;
  Reply r = get(h.port, "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.j()["status"], "ok");
  r = get(h.port, "/v1/models");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.j()["data"][0]["id"], "test-model");
  EXPECT_EQ(r.j()["data"][0]["object"], "model");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/nope"}, {"POST", "/v1/nope"}, {"GET", "/v1/chat/completions"}}) {
    r = request(h.port, method, path, "{}");
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_TRUE(r.j()["error"]["message"].is_string()) << r.body;
  }
}

TEST(Server, Ready) {
  Harness h;
  Reply r = get(h.port, "/health/ready");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["status"], "ready");
  {
    std::lock_guard<std::mutex> l(h.backend.mu_);
    ASSERT_EQ(h.backend.requests.size(), 1u);
    EXPECT_EQ(h.backend.requests[0].max_tokens, 1);  // bounded: one token
  }
  h.backend.stalled = true;  // no step comes: 503 within the timeout
  const auto t0 = std::chrono::steady_clock::now();
  r = get(h.port, "/health/ready");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(eventually([&] { return h.backend.active() == 0; })) << "the timed-out probe was not cancelled";
  h.backend.stalled = false;
  h.backend.overload_after = 0;
  r = get(h.port, "/health/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.header("Retry-After").empty());
}

struct BadCase {
  std::string path, body, param;
  int status = 400;
};

TEST(Server, BadInputIsRejectedWithOpenAIErrors) {
  Harness h;
  const std::string chat = "/v1/chat/completions", comp = "/v1/completions";
  auto with = [](json extra) { return chat_body(std::move(extra)).dump(); };
  const std::string long_prompt = [] {
    std::string s;
    for (int i = 0; i < 600; ++i) s += " word";
    return s;
  }();
  const std::vector<BadCase> cases = {
      {chat, "{", ""},
      {chat, "[1, 2]", ""},
      {chat, "", ""},
      {chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}", ""},
      {chat, std::string(100, '[') + std::string(100, ']'), ""},
      {chat, R"({"model": "test-model"})", "messages"},
      {chat, R"({"messages": []})", "messages"},
      {chat, R"({"messages": "hi"})", "messages"},
      {chat, R"({"messages": ["hi"]})", "messages[0]"},
      {chat, R"({"messages": [{"content": "hi"}]})", "messages[0].role"},
      {chat, R"({"messages": [{"role": "wizard", "content": "hi"}]})", "messages[0].role"},
      {chat, R"({"messages": [{"role": 5, "content": "hi"}]})", "messages[0].role"},
      {chat, R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {chat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {chat, R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       "messages[0].content[0].type"},
      {chat, with({{"temperature", -0.1}}), "temperature"},
      {chat, with({{"temperature", 2.5}}), "temperature"},
      {chat, with({{"temperature", "hot"}}), "temperature"},
      {chat, with({{"top_p", 0}}), "top_p"},
      {chat, with({{"top_p", 1.5}}), "top_p"},
      {chat, with({{"n", 0}}), "n"},
      {chat, with({{"n", 17}}), "n"},
      {chat, with({{"n", 1.5}}), "n"},
      {chat, with({{"max_tokens", 0}}), "max_tokens"},
      {chat, with({{"max_tokens", -5}}), "max_tokens"},
      {chat, with({{"max_tokens", "10"}}), "max_tokens"},
      {chat, with({{"max_completion_tokens", 0}}), "max_completion_tokens"},
      {chat, with({{"max_tokens", 1000}}), "max_tokens"},  // prompt + max_tokens > context 512
      {chat, with({{"top_k", -1}}), "top_k"},
      {chat, with({{"logprobs", 3}}), "logprobs"},
      {chat, with({{"logprobs", true}, {"top_logprobs", 21}}), "top_logprobs"},
      {chat, with({{"top_logprobs", 2}}), "top_logprobs"},
      {chat, with({{"stream", "yes"}}), "stream"},
      {chat, with({{"stream_options", {{"include_usage", true}}}}), "stream_options"},
      {chat, with({{"stop", 5}}), "stop"},
      {chat, with({{"stop", json::array({""})}}), "stop"},
      {chat, with({{"seed", "x"}}), "seed"},
      {chat, with({{"presence_penalty", 3}}), "presence_penalty"},
      {chat, with({{"messages", {{{"role", "user"}, {"content", long_prompt}}}}}), "messages"},
      {chat, with({{"model", "gpt-4"}}), "model", 404},
      {comp, R"({"max_tokens": 5})", "prompt"},
      {comp, R"({"prompt": 5})", "prompt"},
      {comp, R"({"prompt": []})", "prompt"},
      {comp, R"({"prompt": [-1, 2]})", "prompt"},
      {comp, R"({"prompt": [[]]})", "prompt[0]"},
      {comp, R"({"prompt": [200000]})", "prompt"},  // outside the model vocabulary
      {comp, R"({"prompt": "hi", "logprobs": 21})", "logprobs"},
      {comp, R"({"prompt": "hi", "echo": "x"})", "echo"},
      {comp, R"({"prompt": "hi", "suffix": "x"})", "suffix"},
      {comp, json({{"prompt", long_prompt}}).dump(), "prompt"},
  };
  for (const BadCase& c : cases) {
    Reply r = request(h.port, "POST", c.path, c.body);
    SCOPED_TRACE(c.path + " " + c.body.substr(0, 200));
    EXPECT_EQ(r.status, c.status) << r.body;
    json e = r.j();
    ASSERT_TRUE(e.is_object() && e.contains("error")) << r.body;
    EXPECT_TRUE(e["error"]["message"].is_string() && !e["error"]["message"].get<std::string>().empty());
    EXPECT_EQ(e["error"]["type"], "invalid_request_error");
    EXPECT_TRUE(e["error"].contains("code"));
    if (c.param.empty()) EXPECT_TRUE(e["error"]["param"].is_null()) << r.body;
    else EXPECT_EQ(e["error"]["param"], c.param) << r.body;
  }
  std::lock_guard<std::mutex> l(h.backend.mu_);
  EXPECT_EQ(h.backend.submitted, 0) << "bad input reached the scheduler";
  // The server is still fine.
  EXPECT_EQ(get(h.port, "/health").status, 200);
}

TEST(Server, SizeLimits) {
  Harness h;
  // Body over max_body_bytes with a Content-Length: 413.
  std::string big = chat_body({{"pad", std::string(100 * 1024, 'x')}}).dump();
  Reply r = request(h.port, "POST", "/v1/chat/completions", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.j()["error"]["message"].is_string()) << r.body;
  // The same, chunked (no Content-Length): 413 as well.
  int fd = connect_loopback(h.port);
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 20; ++i) send_all(fd, "2000\r\n" + std::string(0x2000, ' ') + "\r\n");
  send_all(fd, "0\r\n\r\n");
  std::string got = recv_until(fd, "\r\n\r\n");
  close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got.substr(0, 200);
  // Headers over max_header_bytes: 431.
  httplib::Headers hs;
  for (int i = 0; i < 40; ++i) hs.emplace("X-Pad-" + std::to_string(i), std::string(200, 'y'));
  r = request(h.port, "POST", "/v1/chat/completions", chat_body().dump(), hs);
  EXPECT_EQ(r.status, 431);
  std::lock_guard<std::mutex> l(h.backend.mu_);
  EXPECT_EQ(h.backend.submitted, 0);
}

TEST(Server, ChatWithReasoning) {
  Harness h;
  Reply r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 7}}));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.j();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "test-model");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  const json& c = j["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["reasoning_content"], "Let me think about seed 7.");
  EXPECT_EQ(c["message"]["content"], "The answer for seed 7 is 42. STOP here. More text after.");
  EXPECT_EQ(c["finish_reason"], "stop");
  const json& u = j["usage"];
  const int64_t script_tokens = static_cast<int64_t>(tokenizer().encode(r1_script(7)).size()) + 1;  // + eos
  EXPECT_EQ(u["completion_tokens"], script_tokens);
  EXPECT_GT(u["prompt_tokens"].get<int64_t>(), 5);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int64_t>() + u["completion_tokens"].get<int64_t>());
  const int64_t reasoning = u["completion_tokens_details"]["reasoning_tokens"];
  EXPECT_GT(reasoning, 3);
  EXPECT_LT(reasoning, script_tokens - 5);
  // R1 defaults (the template opens thinking), unless given.
  r = post(h.port, "/v1/chat/completions", chat_body({{"temperature", 0.2}, {"max_tokens", 3}}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.j()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.j()["usage"]["completion_tokens"], 3);
  std::lock_guard<std::mutex> l(h.backend.mu_);
  ASSERT_EQ(h.backend.requests.size(), 2u);
  EXPECT_FLOAT_EQ(h.backend.requests[0].sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(h.backend.requests[0].sampling.top_p, 0.95f);
  EXPECT_EQ(h.backend.requests[0].sampling.seed, 7u);
  EXPECT_FLOAT_EQ(h.backend.requests[1].sampling.temperature, 0.2f);
  EXPECT_EQ(h.backend.requests[1].max_tokens, 3);
}

TEST(Server, ChatStreaming) {
  Harness h;
  Reply r = post(h.port, "/v1/chat/completions",
                 chat_body({{"seed", 3}, {"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.header("Content-Type").find("text/event-stream"), std::string::npos);
  Sse s = parse_sse(r.body);
  ASSERT_TRUE(s.well_formed && s.done) << r.body;
  ASSERT_GE(s.chunks.size(), 4u);
  for (size_t i = 0; i + 1 < s.chunks.size(); ++i) {
    EXPECT_EQ(s.chunks[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(s.chunks[i]["usage"].is_null());
    EXPECT_EQ(s.chunks[i]["id"], s.chunks[0]["id"]);
  }
  Joined j = join_chat(s);
  EXPECT_TRUE(j.role_first);
  EXPECT_EQ(j.reasoning, "Let me think about seed 3.");
  EXPECT_EQ(j.content, "The answer for seed 3 is 42. STOP here. More text after.");
  EXPECT_EQ(j.finish, "stop");
  const json& last = s.chunks.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], static_cast<int64_t>(tokenizer().encode(r1_script(3)).size()) + 1);
  // A reasoning delta carries content null, as the DeepSeek API does.
  bool saw = false;
  for (const json& c : s.chunks)
    if (!c["choices"].empty() && c["choices"][0]["delta"].contains("reasoning_content")) {
      EXPECT_TRUE(c["choices"][0]["delta"]["content"].is_null());
      saw = true;
    }
  EXPECT_TRUE(saw);
}

TEST(Server, StopSequences) {
  Harness h;
  Reply r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 5}, {"stop", json::array({"STOP", "never"})}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const json c = r.j()["choices"][0];
  EXPECT_EQ(c["message"]["content"], "The answer for seed 5 is 42. ");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_LT(r.j()["usage"]["completion_tokens"].get<int64_t>(),
            static_cast<int64_t>(tokenizer().encode(r1_script(5)).size()));
  {
    std::lock_guard<std::mutex> l(h.backend.mu_);
    EXPECT_EQ(h.backend.cancelled.count(1), 1u) << "the request was not cancelled at the stop sequence";
  }
  r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 5}, {"stop", "is 4"}, {"stream", true}}));
  Joined j = join_chat(parse_sse(r.body));
  EXPECT_EQ(j.content, "The answer for seed 5 ");
  EXPECT_EQ(j.finish, "stop");
  // Inside the reasoning, too (matched on the whole detokenized stream).
  r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 5}, {"stop", "about"}}));
  EXPECT_EQ(r.j()["choices"][0]["message"]["reasoning_content"], "Let me think ");
  EXPECT_EQ(r.j()["choices"][0]["message"]["content"], "");
  EXPECT_TRUE(eventually([&] { return h.backend.active() == 0; }));
}

TEST(Server, SeveralChoices) {
  Harness h;
  Reply r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 100}, {"n", 3}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const json ch = r.j()["choices"];
  ASSERT_EQ(ch.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ch[i]["index"], i);
    EXPECT_EQ(ch[i]["message"]["reasoning_content"], "Let me think about seed " + std::to_string(100 + i) + ".");
  }
  const int64_t per = static_cast<int64_t>(tokenizer().encode(r1_script(100)).size()) + 1;
  EXPECT_EQ(r.j()["usage"]["completion_tokens"], 3 * per);
  r = post(h.port, "/v1/chat/completions", chat_body({{"seed", 10}, {"n", 2}, {"stream", true}}));
  Sse s = parse_sse(r.body);
  ASSERT_TRUE(s.done);
  for (int i = 0; i < 2; ++i) {
    Joined j = join_chat(s, i);
    EXPECT_TRUE(j.role_first);
    EXPECT_EQ(j.reasoning, "Let me think about seed " + std::to_string(10 + i) + ".");
    EXPECT_EQ(j.finish, "stop");
  }
}

TEST(Server, Completions) {
  Harness h(test_config(), v3_renderer(), [](uint64_t) { return std::string(" world, and more"); });
  Reply r = post(h.port, "/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}, {"logprobs", 2}, {"echo", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.j();
  EXPECT_EQ(j["object"], "text_completion");
  const json& c = j["choices"][0];
  EXPECT_EQ(c["text"], "Hello world,");
  EXPECT_EQ(c["finish_reason"], "length");
  ASSERT_EQ(c["logprobs"]["tokens"].size(), 2u);
  EXPECT_EQ(c["logprobs"]["tokens"][0], " world");
  EXPECT_FLOAT_EQ(c["logprobs"]["token_logprobs"][0].get<float>(), -0.5f);
  EXPECT_EQ(c["logprobs"]["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(c["logprobs"]["text_offset"][0], 5);  // after the echoed prompt
  {
    std::lock_guard<std::mutex> l(h.backend.mu_);
    EXPECT_EQ(h.backend.requests[0].prompt.front(), 0) << "bos first";
    EXPECT_EQ(h.backend.requests[0].top_logprobs, 2);
    EXPECT_FLOAT_EQ(h.backend.requests[0].sampling.temperature, 1.0f);  // not R1: OpenAI's default
  }
  r = post(h.port, "/v1/completions", {{"prompt", {0, 19923}}, {"stream", true}, {"stop", ", and"}});
  Sse s = parse_sse(r.body);
  ASSERT_TRUE(s.done) << r.body;
  std::string text, finish;
  for (const json& ch : s.chunks) {
    EXPECT_EQ(ch["object"], "text_completion");
    text += ch["choices"][0]["text"].get<std::string>();
    if (ch["choices"][0]["finish_reason"].is_string()) finish = ch["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, " world");
  EXPECT_EQ(finish, "stop");
  // Chat logprobs.
  r = post(h.port, "/v1/chat/completions", chat_body({{"logprobs", true}, {"top_logprobs", 1}, {"max_tokens", 1}}));
  const json lp = r.j()["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 1u) << r.body;
  EXPECT_EQ(lp[0]["token"], " world");
  EXPECT_EQ(lp[0]["top_logprobs"].size(), 1u);
  EXPECT_TRUE(lp[0]["bytes"].is_array());
}

TEST(Server, ToolCalls) {
  Harness h(test_config(), v3_renderer(), [](uint64_t) { return "Checking." + kCallsBegin + kCall + kCallsEnd; });
  json tool = {{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", json::object()}}}};
  json body = chat_body({{"tools", json::array({tool})}});
  Reply r = post(h.port, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json c = r.j()["choices"][0];
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  EXPECT_EQ(c["message"]["content"], "Checking.");
  ASSERT_EQ(c["message"]["tool_calls"].size(), 1u);
  const json& t = c["message"]["tool_calls"][0];
  EXPECT_EQ(t["type"], "function");
  EXPECT_EQ(t["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(t["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(t["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_FALSE(c["message"].contains("reasoning_content"));  // V3: no reasoning
  body["stream"] = true;
  Joined j = join_chat(parse_sse(post(h.port, "/v1/chat/completions", body).body));
  ASSERT_EQ(j.tool_calls.size(), 1u);
  EXPECT_EQ(j.tool_calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(j.tool_calls[0]["index"], 0);
  EXPECT_EQ(j.finish, "tool_calls");
}

// A client that goes away has its request cancelled, streaming or not.
TEST(Server, DisconnectCancels) {
  Harness h(test_config(), r1_renderer(), [](uint64_t) {
    std::string s;
    for (int i = 0; i < 200; ++i) s += " token";
    return s;
  });
  h.backend.interval_ms = 20;
  for (bool stream : {true, false}) {
    const size_t before = [&] {
      std::lock_guard<std::mutex> l(h.backend.mu_);
      return h.backend.cancelled.size();
    }();
    int fd = connect_loopback(h.port);
    ASSERT_GE(fd, 0);
    send_all(fd, raw_post("/v1/chat/completions", chat_body({{"stream", stream}}).dump()));
    if (stream) {
      EXPECT_NE(recv_until(fd, "data: ").find("data: "), std::string::npos);
    }
    EXPECT_TRUE(eventually([&] { return h.backend.active() == 1; }));
    close(fd);
    EXPECT_TRUE(eventually([&] { return h.backend.active() == 0; }, 5s)) << "stream " << stream;
    std::lock_guard<std::mutex> l(h.backend.mu_);
    EXPECT_EQ(h.backend.cancelled.size(), before + 1);
  }
  Reply m = get(h.port, "/metrics");
  EXPECT_EQ(metric(m.body, "dsrt_requests_cancelled_total{reason=\"disconnect\"}"), 2);
}

TEST(Server, OverloadAndShutdown) {
  Harness h;
  h.backend.overload_after = 1;  // the second of n = 3 is refused: all are cancelled
  Reply r = post(h.port, "/v1/chat/completions", chat_body({{"n", 3}}));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(r.j()["error"]["type"], "server_error");
  EXPECT_TRUE(eventually([&] { return h.backend.active() == 0; }));
  // Stopping the server ends open streams and cancels their requests.
  h.backend.overload_after = -1;
  h.backend.interval_ms = 50;
  std::thread client([&] { post(h.port, "/v1/chat/completions", chat_body({{"stream", true}})); });
  EXPECT_TRUE(eventually([&] { return h.backend.active() == 1; }));
  h.server.stop();
  client.join();
  EXPECT_TRUE(eventually([&] { return h.backend.active() == 0; }));
}

TEST(Server, RateLimit) {
  ServerConfig cfg = test_config();
  cfg.requests_per_minute = 2;
  Harness h(cfg);
  EXPECT_EQ(post(h.port, "/v1/chat/completions", chat_body({{"max_tokens", 1}})).status, 200);
  EXPECT_EQ(post(h.port, "/v1/chat/completions", chat_body({{"max_tokens", 1}})).status, 200);
  Reply r = post(h.port, "/v1/chat/completions", chat_body({{"max_tokens", 1}}));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.j()["error"]["type"], "rate_limit_error");
  EXPECT_GE(std::stoi(r.header("Retry-After")), 1);
  EXPECT_EQ(get(h.port, "/health").status, 200);  // only generation is limited
}

TEST(Server, Metrics) {
  Harness h;
  post(h.port, "/v1/chat/completions", chat_body({{"seed", 1}}));
  request(h.port, "POST", "/v1/chat/completions", R"({"messages": []})");
  Reply m = get(h.port, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("Content-Type").find("text/plain"), std::string::npos);
  const std::string& t = m.body;
  EXPECT_EQ(metric(t, "dsrt_requests_total{route=\"/v1/chat/completions\",status=\"200\"}"), 1);
  EXPECT_EQ(metric(t, "dsrt_requests_total{route=\"/v1/chat/completions\",status=\"400\"}"), 1);
  EXPECT_EQ(metric(t, "dsrt_completion_tokens_total"), static_cast<double>(tokenizer().encode(r1_script(1)).size() + 1));
  EXPECT_GT(metric(t, "dsrt_prompt_tokens_total"), 0);
  EXPECT_GT(metric(t, "dsrt_reasoning_tokens_total"), 0);
  EXPECT_EQ(metric(t, "dsrt_time_to_first_token_seconds_count"), 1);
  EXPECT_EQ(metric(t, "dsrt_time_per_output_token_seconds_count"), metric(t, "dsrt_completion_tokens_total") - 1);
  EXPECT_EQ(metric(t, "dsrt_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 1);
  for (const char* g : {"dsrt_requests_running", "dsrt_requests_queued", "dsrt_kv_cache_blocks_used", "dsrt_batch_size"})
    EXPECT_EQ(metric(t, g), 0) << g;
  EXPECT_EQ(metric(t, "dsrt_kv_cache_blocks_total"), 1000);
}

// ---------------------------------------------------------------- dsrt serve subprocesses

// `dsrt serve ... --port 0` in its own process group; the port comes from its "ready on" line.
class ServeProcess {
 public:
  ServeProcess(const std::string& command, const std::string& log) : log_(log) {
    const std::string sh = "exec " + command;
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl("/bin/sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid_, pid_);
  }
  ~ServeProcess() { stop(); }
  // The port, or -1 if it exited or did not get ready in time.
  int wait_ready(int timeout_s = 120) {
    const std::string ready = "ready on http://127.0.0.1:";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = output();
      if (size_t at = text.find(ready); at != std::string::npos && text.find(' ', at + ready.size()) != std::string::npos)
        return std::atoi(text.c_str() + at + ready.size());
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  // SIGTERM, then SIGKILL after `timeout_s`; the exit code (-1 if killed).
  int stop(int timeout_s = 30) {
    if (pid_ <= 0) return exit_code_;
    kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }
  std::string output() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::string serve_args(const std::string& dir) {
  return std::string(DSRT_BINARY) + " serve --model " + dir + " --port 0 --log-level warn";
}

TEST(ServeProcess, DummyModelIsolationAndCancel) {
  const std::string dir = model_dir("dummy", dummy_config());
  ServeProcess p(serve_args(dir) + " --load-format dummy --cache-tokens 16384 --max-running 64 --threads 2",
                 dir + "/serve.log");
  const int port = p.wait_ready();
  ASSERT_GT(port, 0) << p.output();
  Reply r = get(port, "/health/ready");
  EXPECT_EQ(r.status, 200) << r.body;

  // 64 concurrent streams with distinct seeds, each equal to the same request alone. The
  // logits of a batch differ from a lone sequence's in the last bits (GEMM vs GEMV order); the
  // random model's distributions are nearly flat, where that can flip a sample at temperature
  // 1, so the samples are drawn at 0.1 (still a different output for every seed).
  constexpr int kN = 64;
  auto body = [](int i, bool stream) {
    json b = {{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}}, {"max_tokens", 24},
              {"temperature", 0.1}, {"seed", 1000 + i}};
    if (stream) b.update({{"stream", true}, {"stream_options", {{"include_usage", true}}}});
    return b;
  };
  std::vector<Joined> streamed(kN);
  std::vector<int64_t> streamed_tokens(kN, -1);
  std::vector<int> status(kN, -1);
  std::vector<std::thread> clients;
  for (int i = 0; i < kN; ++i)
    clients.emplace_back([&, i] {
      Reply x = post(port, "/v1/chat/completions", body(i, true));
      status[i] = x.status;
      Sse s = parse_sse(x.body);
      if (!s.done || s.chunks.empty()) return;
      streamed[i] = join_chat(s);
      streamed_tokens[i] = s.chunks.back()["usage"]["completion_tokens"];
    });
  for (auto& t : clients) t.join();
  std::set<std::string> distinct;
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(status[i], 200) << i;
    ASSERT_GE(streamed_tokens[i], 1) << "stream " << i << " did not complete";
    Reply solo = post(port, "/v1/chat/completions", body(i, false));
    ASSERT_EQ(solo.status, 200) << solo.body;
    const json m = solo.j()["choices"][0];
    EXPECT_EQ(streamed[i].content, m["message"]["content"]) << "request " << i;
    EXPECT_EQ(streamed[i].finish, m["finish_reason"]) << "request " << i;
    EXPECT_EQ(streamed_tokens[i], solo.j()["usage"]["completion_tokens"]) << "request " << i;
    distinct.insert(streamed[i].content);
  }
  EXPECT_GT(distinct.size(), kN / 2u) << "seeds do not change the samples";

  // A client that disconnects mid-stream frees its cache.
  int fd = connect_loopback(port);
  ASSERT_GE(fd, 0);
  json long_body = body(0, true);
  long_body["max_tokens"] = 3000;
  send_all(fd, raw_post("/v1/chat/completions", long_body.dump()));
  ASSERT_NE(recv_until(fd, "data: ").find("data: "), std::string::npos);
  EXPECT_GT(metric(get(port, "/metrics").body, "dsrt_kv_cache_blocks_used"), 0);
  close(fd);
  std::string m;
  EXPECT_TRUE(eventually([&] {
    m = get(port, "/metrics").body;
    return metric(m, "dsrt_kv_cache_blocks_used") == 0 && metric(m, "dsrt_requests_running") == 0;
  })) << m;
  EXPECT_EQ(metric(m, "dsrt_requests_cancelled_total{reason=\"disconnect\"}"), 1);
  EXPECT_LT(metric(m, "dsrt_scheduler_generated_tokens_total"), 2 * kN * 24 + 3000);
  EXPECT_EQ(p.stop(), 0) << p.output();
}

// The golden tiny model: 512 ids, fewer than the tokenizer's. Chat prompts use ids it does not
// have (a clean 400); id prompts work and the output decodes.
TEST(ServeProcess, ModelVocabularySmallerThanTokenizer) {
  const std::string dir = model_dir("tiny", golden_config(), test::data_dir() + "/golden/tiny-v3/model.safetensors");
  ServeProcess p(serve_args(dir), dir + "/serve.log");
  const int port = p.wait_ready();
  ASSERT_GT(port, 0) << p.output();
  Reply r = post(port, "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.j()["error"]["message"].get<std::string>().find("outside the model's vocabulary"), std::string::npos);
  r = post(port, "/v1/completions", {{"prompt", {0, 5, 100, 300}}, {"max_tokens", 16}, {"seed", 1}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.j()["choices"][0]["text"].is_string());
  EXPECT_EQ(r.j()["usage"]["completion_tokens"].get<int>() > 0, true);
  EXPECT_EQ(get(port, "/health/ready").status, 200);
  EXPECT_EQ(p.stop(), 0) << p.output();
}

// Named for CI's MPI pattern ('Distributed'): run without LeakSanitizer, as Open MPI needs.
TEST(ServeProcess, DistributedTwoRanks) {
  if (test::run("command -v mpirun", 10).exit_code != 0) GTEST_SKIP() << "mpirun not found";
  const std::string dir = model_dir("dummy2", dummy_config());
  const std::string cmd = "env " + test::mpirun_dsrt(2) + " serve --model " + dir +
                          " --port 0 --log-level info --load-format dummy --threads 1";
  ServeProcess p(cmd, dir + "/serve.log");
  const int port = p.wait_ready(180);
  ASSERT_GT(port, 0) << p.output();
  EXPECT_EQ(get(port, "/health/ready").status, 200);
  json b = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 8}, {"seed", 4}, {"n", 2}};
  Reply r = post(port, "/v1/chat/completions", b);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["choices"].size(), 2u);
  b["stream"] = true;
  Sse s = parse_sse(post(port, "/v1/chat/completions", b).body);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(join_chat(s, 1).content, r.j()["choices"][1]["message"]["content"]);
  // mpirun exits non-zero after forwarding SIGTERM; rank 0 must have stopped cleanly.
  EXPECT_GE(p.stop(60), 0) << "killed: " << p.output();
  EXPECT_NE(p.output().find("server: stopped"), std::string::npos) << p.output();
}

}  // namespace
}  // namespace dsrt
#endif  // DSRT_HAVE_HTTP
