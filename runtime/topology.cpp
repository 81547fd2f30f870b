#include "runtime/topology.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
// yaml-cpp 0.7's Node::Mark/Node::as trip GCC 12's -Wdangling-pointer (a false positive in
// the library's header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#include <yaml-cpp/yaml.h>
#pragma GCC diagnostic pop

#include "runtime/error.h"

namespace dsrt {

std::string format_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string Topology::where(const std::string& key) const {
  auto line = lines.find(key);
  std::string file = line == lines.end() ? source : fmt::format("{}:{}", source, line->second);
  auto o = overridden_by.find(key);
  if (o != overridden_by.end()) return fmt::format("{} (overrides {})", o->second, file);
  return file;
}

namespace {

std::string group_ranks(int first, int n) { return n == 1 ? fmt::format("{}", first) : fmt::format("{}-{}", first, first + n - 1); }

// ---------------------------------------------------------------------------------------------
// YAML reading with file:line in every message.

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  std::string at(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.is_null()) return source_;
    return fmt::format("{}:{}", source_, m.line + 1);
  }
  static int line(const YAML::Node& n) { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg) const {
    throw Error(fmt::format("{}: {}", at(n), msg));
  }

  static const char* type_name(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Null: return "nothing (null)";
      case YAML::NodeType::Scalar: return "a scalar";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Map: return "a mapping";
      default: return "an undefined value";
    }
  }

  void require_map(const YAML::Node& n, const std::string& what) const {
    if (!n.IsMap()) fail(n, fmt::format("{} must be a mapping (key: value lines), got {}", what, type_name(n)));
  }
  void require_seq(const YAML::Node& n, const std::string& what) const {
    if (!n.IsSequence()) fail(n, fmt::format("{} must be a list, got {}", what, type_name(n)));
  }

  // Every key of the mapping must be one of `allowed` and appear once.
  void check_keys(const YAML::Node& map, const std::string& what, const std::vector<std::string>& allowed) const {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;  // a copy: the iterator hands out a temporary pair
      if (!key.IsScalar()) fail(key, fmt::format("{} has a key that is {}, not a name", what, type_name(key)));
      const std::string k = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(key, fmt::format("unknown key '{}' in {}; expected one of: {}", k, what, list));
      }
      if (!seen.insert(k).second) fail(key, fmt::format("key '{}' appears twice in {}", k, what));
    }
  }

  std::string get_string(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, fmt::format("{} must be a string, got {}", what, type_name(n)));
    return n.Scalar();
  }

  int64_t get_int(const YAML::Node& n, const std::string& what, int64_t min_value) const {
    if (!n.IsScalar()) fail(n, fmt::format("{} must be an integer, got {}", what, type_name(n)));
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") fail(n, fmt::format("{} must be an integer, got the quoted string \"{}\"", what, s));
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size())
      fail(n, fmt::format("{} must be an integer, got '{}'", what, s));
    if (v < min_value) fail(n, fmt::format("{} must be at least {}, got {}", what, min_value, v));
    return v;
  }

  int get_small_int(const YAML::Node& n, const std::string& what, int64_t min_value) const {
    int64_t v = get_int(n, what, min_value);
    if (v > 1000000) fail(n, fmt::format("{} {} is unreasonably large (at most 1000000)", what, v));
    return static_cast<int>(v);
  }

  double get_number(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, fmt::format("{} must be a number, got {}", what, type_name(n)));
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") fail(n, fmt::format("{} must be a number, got the quoted string \"{}\"", what, s));
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !(v == v))
      fail(n, fmt::format("{} must be a number, got '{}'", what, s));
    if (!(v > 0)) fail(n, fmt::format("{} must be positive, got {}", what, s));
    return v;
  }

  // A list of integers; an item may also be a range "a-b" (inclusive).
  std::vector<int64_t> get_int_list(const YAML::Node& n, const std::string& what) const {
    require_seq(n, what);
    std::vector<int64_t> out;
    for (const YAML::Node& item : n) {
      if (item.IsScalar() && item.Scalar().find('-') != std::string::npos && item.Scalar()[0] != '-') {
        const std::string& s = item.Scalar();
        const size_t dash = s.find('-');
        int64_t a = 0, b = 0;
        auto r1 = std::from_chars(s.data(), s.data() + dash, a);
        auto r2 = std::from_chars(s.data() + dash + 1, s.data() + s.size(), b);
        if (r1.ec != std::errc() || r1.ptr != s.data() + dash || r2.ec != std::errc() ||
            r2.ptr != s.data() + s.size() || b < a)
          fail(item, fmt::format("{}: '{}' is neither an integer nor a range a-b with a <= b", what, s));
        for (int64_t v = a; v <= b; ++v) out.push_back(v);
      } else {
        out.push_back(get_int(item, what + " item", 0));
      }
    }
    return out;
  }

 private:
  std::string source_;
};

const std::vector<std::string> kTopKeys = {"name",           "nodes",  "ranks_per_node", "tensor_parallel",
                                           "attention_data_parallel", "expert_parallel", "experts",
                                           "threads_per_rank", "pin_threads", "mpi"};

}  // namespace

// ---------------------------------------------------------------------------------------------

void validate_topology(const Topology& t) {
  const std::string& src = t.source;
  if (t.nodes.empty()) throw Error(fmt::format("{}: nodes: at least one node is needed", t.where("nodes")));
  const int W = t.world();
  std::map<std::string, size_t> hosts;
  for (size_t i = 0; i < t.nodes.size(); ++i) {
    const TopologyNode& n = t.nodes[i];
    const std::string at = t.where(fmt::format("nodes.{}", i));
    if (n.host.empty()) throw Error(fmt::format("{}: node {} has an empty host", at, i));
    if (auto [it, fresh] = hosts.emplace(n.host, i); !fresh)
      throw Error(fmt::format("{}: node {} repeats host '{}' of node {}; list each host once", at, i, n.host, it->second));
    if (n.slots < 1) throw Error(fmt::format("{}: node {} ({}) has slots {}; at least 1 is needed", at, i, n.host, n.slots));
    if (!(n.memory_gb > 0))
      throw Error(fmt::format("{}: node {} ({}) has memory_gb {}; it must be positive", at, i, n.host, n.memory_gb));
    if (t.ranks_per_node > n.slots)
      throw Error(fmt::format("{}: ranks_per_node {} exceeds the {} slots of node {} ({})", at, t.ranks_per_node,
                              n.slots, i, n.host));
    if (static_cast<int64_t>(t.threads_per_rank) * t.ranks_per_node > n.slots)
      throw Error(fmt::format("{}: threads_per_rank {} x ranks_per_node {} = {} exceeds the {} slots of node {} ({})",
                              t.lines.count("threads_per_rank") || t.overridden_by.count("threads_per_rank")
                                  ? t.where("threads_per_rank")
                                  : at, t.threads_per_rank, t.ranks_per_node,
                              static_cast<int64_t>(t.threads_per_rank) * t.ranks_per_node, n.slots, i, n.host));
  }
  if (t.ranks_per_node < 1)
    throw Error(fmt::format("{}: ranks_per_node must be at least 1, got {}", t.where("ranks_per_node"), t.ranks_per_node));
  if (t.threads_per_rank < 1)
    throw Error(fmt::format("{}: threads_per_rank must be at least 1, got {}", t.where("threads_per_rank"),
                            t.threads_per_rank));
  if (t.tensor_parallel < 1 || t.attention_data_parallel < 1 || t.expert_parallel < 1)
    throw Error(fmt::format("{}: tensor_parallel {}, attention_data_parallel {} and expert_parallel {} must be at least 1",
                            src, t.tensor_parallel, t.attention_data_parallel, t.expert_parallel));
  if (static_cast<int64_t>(t.tensor_parallel) * t.attention_data_parallel != W)
    throw Error(fmt::format(
        "{}: tensor_parallel {} x attention_data_parallel {} = {} != world {} ({} nodes x {} ranks_per_node)",
        t.where(t.lines.count("attention_data_parallel") ? "attention_data_parallel" : "tensor_parallel"),
        t.tensor_parallel, t.attention_data_parallel,
        static_cast<int64_t>(t.tensor_parallel) * t.attention_data_parallel, W, t.nodes.size(), t.ranks_per_node));
  if (W % t.expert_parallel)
    throw Error(fmt::format("{}: expert_parallel {} does not divide world {} ({} nodes x {} ranks_per_node)",
                            t.where("expert_parallel"), t.expert_parallel, W, t.nodes.size(), t.ranks_per_node));
  if (t.mpi.bind_to != "core" && t.mpi.bind_to != "none")
    throw Error(fmt::format("{}: mpi.bind_to must be core or none, got '{}'", t.where("mpi.bind_to"), t.mpi.bind_to));

  // Experts: everything that does not need n_routed_experts.
  if (t.placement == Topology::Placement::Contiguous && !t.expert_map.empty())
    throw Error(fmt::format("{}: experts.map is given but experts.placement is contiguous; set placement: explicit",
                            t.where("experts.map")));
  if (t.placement == Topology::Placement::Explicit) {
    if (t.expert_map.empty())
      throw Error(fmt::format("{}: experts.placement is explicit but experts.map lists no rank", t.where("experts")));
    const int ep = t.expert_parallel;
    std::map<std::pair<int, int64_t>, int> where_expert;  // (ep group, expert) -> rank
    for (const auto& [rank, experts] : t.expert_map) {
      const std::string at = t.where(fmt::format("experts.map.{}", rank));
      if (rank < 0 || rank >= W)
        throw Error(fmt::format("{}: experts.map names rank {} but the world has {} ranks (0-{})", at, rank, W, W - 1));
      std::set<int64_t> own;
      for (int64_t e : experts) {
        if (e < 0) throw Error(fmt::format("{}: rank {} lists expert {}; expert ids start at 0", at, rank, e));
        if (!own.insert(e).second) throw Error(fmt::format("{}: rank {} lists expert {} twice", at, rank, e));
        auto [it, fresh] = where_expert.emplace(std::make_pair(rank / ep, e), rank);
        if (!fresh)
          throw Error(fmt::format(
              "{}: expert {} is on ranks {} and {} of expert-parallel group {} (ranks {}); each expert belongs to "
              "one rank per group; list extra copies under experts.redundant",
              at, e, it->second, rank, rank / ep, group_ranks(rank / ep * ep, ep)));
      }
    }
  }
  for (const auto& [expert, ranks] : t.redundant) {
    const std::string at = t.where(fmt::format("experts.redundant.{}", expert));
    if (expert < 0) throw Error(fmt::format("{}: experts.redundant names expert {}; expert ids start at 0", at, expert));
    std::set<int> seen;
    for (int r : ranks) {
      if (r < 0 || r >= W)
        throw Error(fmt::format("{}: redundant copy of expert {} on rank {}, but the world has {} ranks (0-{})", at,
                                expert, r, W, W - 1));
      if (!seen.insert(r).second)
        throw Error(fmt::format("{}: redundant copy of expert {} lists rank {} twice", at, expert, r));
    }
  }
}

Topology parse_topology(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(fmt::format("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  Reader rd(source);
  Topology t;
  t.source = source;
  if (!root.IsMap())
    throw Error(fmt::format("{}: a topology is a mapping with keys name, nodes, ranks_per_node, ...; got {}", source,
                            Reader::type_name(root)));
  rd.check_keys(root, "the topology", kTopKeys);
  for (auto it = root.begin(); it != root.end(); ++it) t.lines[it->first.Scalar()] = Reader::line(it->first);

  if (root["name"]) t.name = rd.get_string(root["name"], "name");
  else t.name = std::filesystem::path(source).stem().string();

  const YAML::Node nodes = root["nodes"];
  if (!nodes) throw Error(fmt::format("{}: missing key 'nodes' (a list of {{host, slots, memory_gb}})", source));
  rd.require_seq(nodes, "nodes");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const YAML::Node n = nodes[i];
    const std::string what = fmt::format("nodes[{}]", i);
    rd.require_map(n, what);
    rd.check_keys(n, what, {"host", "slots", "memory_gb"});
    t.lines[fmt::format("nodes.{}", i)] = Reader::line(n);
    for (const char* k : {"host", "slots", "memory_gb"})
      if (!n[k]) rd.fail(n, fmt::format("{} has no '{}'", what, k));
    TopologyNode node;
    node.host = rd.get_string(n["host"], what + ".host");
    node.slots = rd.get_small_int(n["slots"], what + ".slots", 1);
    node.memory_gb = rd.get_number(n["memory_gb"], what + ".memory_gb");
    t.nodes.push_back(node);
  }
  if (t.nodes.empty()) rd.fail(nodes, "nodes: at least one node is needed");

  if (root["ranks_per_node"]) t.ranks_per_node = rd.get_small_int(root["ranks_per_node"], "ranks_per_node", 1);
  const int W = t.world();
  if (root["tensor_parallel"]) t.tensor_parallel = rd.get_small_int(root["tensor_parallel"], "tensor_parallel", 1);
  if (root["attention_data_parallel"]) {
    t.attention_data_parallel = rd.get_small_int(root["attention_data_parallel"], "attention_data_parallel", 1);
  } else {
    if (W % t.tensor_parallel)
      throw Error(fmt::format("{}: tensor_parallel {} does not divide world {} ({} nodes x {} ranks_per_node)",
                              t.where("tensor_parallel"), t.tensor_parallel, W, t.nodes.size(), t.ranks_per_node));
    t.attention_data_parallel = W / t.tensor_parallel;
  }
  t.expert_parallel = root["expert_parallel"] ? rd.get_small_int(root["expert_parallel"], "expert_parallel", 1) : W;
  if (root["threads_per_rank"]) {
    t.threads_per_rank = rd.get_small_int(root["threads_per_rank"], "threads_per_rank", 1);
  } else {
    int min_slots = t.nodes[0].slots;
    for (const auto& n : t.nodes) min_slots = std::min(min_slots, n.slots);
    t.threads_per_rank = std::max(1, min_slots / t.ranks_per_node);
  }

  if (const YAML::Node pn = root["pin_threads"]) {
    const std::string v = rd.get_string(pn, "pin_threads");
    if (v != "true" && v != "false") rd.fail(pn, fmt::format("pin_threads must be true or false, got '{}'", v));
    t.pin_threads = v == "true";
  }

  if (const YAML::Node ex = root["experts"]) {
    rd.require_map(ex, "experts");
    rd.check_keys(ex, "experts", {"placement", "map", "redundant"});
    if (ex["placement"]) {
      const std::string p = rd.get_string(ex["placement"], "experts.placement");
      if (p == "contiguous") t.placement = Topology::Placement::Contiguous;
      else if (p == "explicit") t.placement = Topology::Placement::Explicit;
      else rd.fail(ex["placement"], fmt::format("experts.placement must be contiguous or explicit, got '{}'", p));
    }
    for (auto it = ex.begin(); it != ex.end(); ++it) t.lines["experts." + it->first.Scalar()] = Reader::line(it->first);
    if (const YAML::Node m = ex["map"]) {
      rd.require_map(m, "experts.map (rank: [expert ids])");
      for (auto it = m.begin(); it != m.end(); ++it) {
        const int rank = static_cast<int>(rd.get_int(it->first, "experts.map key (a rank)", 0));
        if (t.expert_map.count(rank)) rd.fail(it->first, fmt::format("experts.map lists rank {} twice", rank));
        t.lines[fmt::format("experts.map.{}", rank)] = Reader::line(it->first);
        t.expert_map[rank] = rd.get_int_list(it->second, fmt::format("experts.map rank {}", rank));
      }
    }
    if (const YAML::Node r = ex["redundant"]) {
      rd.require_map(r, "experts.redundant (expert: [ranks])");
      for (auto it = r.begin(); it != r.end(); ++it) {
        const int64_t expert = rd.get_int(it->first, "experts.redundant key (an expert id)", 0);
        if (t.redundant.count(expert))
          rd.fail(it->first, fmt::format("experts.redundant lists expert {} twice", expert));
        t.lines[fmt::format("experts.redundant.{}", expert)] = Reader::line(it->first);
        std::vector<int> ranks;
        for (int64_t v : rd.get_int_list(it->second, fmt::format("experts.redundant expert {}", expert)))
          ranks.push_back(static_cast<int>(std::min<int64_t>(v, INT32_MAX)));
        t.redundant[expert] = ranks;
      }
    }
  }

  if (const YAML::Node mpi = root["mpi"]) {
    rd.require_map(mpi, "mpi");
    rd.check_keys(mpi, "mpi", {"options", "rsh_agent", "env", "bind_to"});
    for (auto it = mpi.begin(); it != mpi.end(); ++it) t.lines["mpi." + it->first.Scalar()] = Reader::line(it->first);
    if (const YAML::Node o = mpi["options"]) {
      rd.require_seq(o, "mpi.options");
      for (const YAML::Node& item : o) {
        std::istringstream words(rd.get_string(item, "mpi.options item"));
        std::string w;
        while (words >> w) t.mpi.options.push_back(w);
      }
    }
    if (mpi["rsh_agent"]) t.mpi.rsh_agent = rd.get_string(mpi["rsh_agent"], "mpi.rsh_agent");
    if (const YAML::Node env = mpi["env"]) {
      rd.require_map(env, "mpi.env (NAME: value)");
      for (auto it = env.begin(); it != env.end(); ++it) {
        const std::string k = rd.get_string(it->first, "mpi.env name");
        if (k.empty() || k.find_first_of("= \t") != std::string::npos)
          rd.fail(it->first, fmt::format("mpi.env name '{}' is not a valid variable name", k));
        t.mpi.env.emplace_back(k, rd.get_string(it->second, "mpi.env value of " + k));
      }
    }
    if (mpi["bind_to"]) {
      t.mpi.bind_to = rd.get_string(mpi["bind_to"], "mpi.bind_to");
      if (t.mpi.bind_to != "core" && t.mpi.bind_to != "none")
        rd.fail(mpi["bind_to"], fmt::format("mpi.bind_to must be core or none, got '{}'", t.mpi.bind_to));
    }
  }

  validate_topology(t);
  return t;
}

Topology load_topology(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("{}: cannot read the topology file", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_topology(ss.str(), path);
}

void apply_overrides(Topology& t, int tp, int ep) {
  const int W = t.world();
  if (tp > 0) {
    if (W % tp)
      throw Error(fmt::format("--tp {} does not divide world {} ({} nodes x {} ranks_per_node of {})", tp, W,
                              t.nodes.size(), t.ranks_per_node, t.source));
    t.tensor_parallel = tp;
    t.attention_data_parallel = W / tp;
    t.overridden_by["tensor_parallel"] = fmt::format("--tp {}", tp);
    t.overridden_by["attention_data_parallel"] = fmt::format("--tp {}", tp);
  }
  if (ep > 0) {
    t.expert_parallel = ep;
    t.overridden_by["expert_parallel"] = fmt::format("--ep {}", ep);
  }
  validate_topology(t);
}

void validate_for_model(const Topology& t, const ModelConfig& c) {
  const int tp = t.tensor_parallel, ep = t.expert_parallel;
  auto need_tp = [&](int64_t v, const char* what) {
    if (tp > 1 && v % tp)
      throw Error(fmt::format("{}: {} {} is not divisible by tensor_parallel {}", t.where("tensor_parallel"), what, v, tp));
  };
  need_tp(c.num_attention_heads, "num_attention_heads");
  need_tp(c.vocab_size, "vocab_size");
  bool dense = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) dense = dense || !c.is_moe_layer(l);
  if (dense) need_tp(c.intermediate_size, "intermediate_size");
  // Whatever else the split table divides by tp (for_each_tensor is the one list).
  if (tp > 1) {
    ModelWeights w;
    w.config = c;
    for_each_tensor(w, [&](const TensorSlot& s) {
      if (s.shape.size() != 2) return;
      const bool rows = s.split == Split::Column || s.split == Split::Vocab, cols = s.split == Split::Row;
      if (!rows && !cols) return;
      const int64_t n = rows ? s.shape[0] : s.shape[1];
      if (n % tp)
        throw Error(fmt::format("{}: tensor {} splits its {} {} by tensor_parallel {}, which does not divide it",
                                t.where("tensor_parallel"), s.name, rows ? "rows" : "columns", n, tp));
    });
  }

  const int64_t E = c.n_routed_experts;
  if (E == 0) {
    if (t.placement == Topology::Placement::Explicit || !t.redundant.empty())
      throw Error(fmt::format("{}: experts are placed but the model has no routed experts (n_routed_experts 0)",
                              t.where("experts")));
    return;
  }
  if (t.placement == Topology::Placement::Contiguous && E % ep)
    throw Error(fmt::format("{}: n_routed_experts {} is not divisible by expert_parallel {}", t.where("expert_parallel"),
                            E, ep));
  if (t.placement == Topology::Placement::Explicit) {
    for (const auto& [rank, experts] : t.expert_map)
      for (int64_t e : experts)
        if (e >= E)
          throw Error(fmt::format("{}: rank {} lists expert {} but the model has {} routed experts (0-{})",
                                  t.where(fmt::format("experts.map.{}", rank)), rank, e, E, E - 1));
    const int groups = t.world() / ep;
    for (int g = 0; g < groups; ++g) {
      std::vector<int> count(E, 0);
      for (int r = g * ep; r < (g + 1) * ep; ++r) {
        auto it = t.expert_map.find(r);
        if (it != t.expert_map.end())
          for (int64_t e : it->second) ++count[e];
      }
      std::vector<int64_t> missing;
      for (int64_t e = 0; e < E; ++e)
        if (count[e] == 0) missing.push_back(e);
      if (!missing.empty()) {
        std::string list;
        for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? "," : "") + std::to_string(missing[i]);
        if (missing.size() > 8) list += ",...";
        throw Error(fmt::format("{}: {} of the {} routed experts are on no rank of expert-parallel group {} (ranks {}): "
                                "experts {}; the map must place every expert once per group",
                                t.where("experts.map"), missing.size(), E, g, group_ranks(g * ep, ep), list));
      }
    }
  }
  // Redundant copies: valid experts, on ranks that do not already hold them.
  std::vector<std::vector<int64_t>> primary(t.world());
  {
    Topology no_copies = t;
    no_copies.redundant.clear();
    primary = experts_by_rank(no_copies, E);
  }
  for (const auto& [expert, ranks] : t.redundant) {
    const std::string at = t.where(fmt::format("experts.redundant.{}", expert));
    if (expert >= E)
      throw Error(fmt::format("{}: experts.redundant names expert {} but the model has {} routed experts (0-{})", at,
                              expert, E, E - 1));
    for (int r : ranks)
      if (std::binary_search(primary[r].begin(), primary[r].end(), expert))
        throw Error(fmt::format("{}: rank {} already owns expert {} ({} placement); a redundant copy must go to another rank",
                                at, r, expert, t.placement == Topology::Placement::Contiguous ? "contiguous" : "explicit"));
  }
}

void require_world_size(const Topology& t, int mpi_world_size) {
  if (mpi_world_size != t.world())
    throw Error(fmt::format("{}: the topology has {} ranks ({} nodes x {} ranks_per_node) but the MPI job has {}; "
                            "start it with mpirun -np {} (or dsrt launch)",
                            t.source, t.world(), t.nodes.size(), t.ranks_per_node, mpi_world_size, t.world()));
}

namespace {
std::vector<int64_t> primary_experts(const Topology& t, int64_t E, int rank) {
  std::vector<int64_t> out;
  if (t.placement == Topology::Placement::Explicit) {
    auto it = t.expert_map.find(rank);
    if (it != t.expert_map.end())
      for (int64_t e : it->second)
        if (e < E) out.push_back(e);
  } else {
    const int64_t ep = t.expert_parallel, i = t.ep_rank(rank);
    for (int64_t e = i * E / ep; e < (i + 1) * E / ep; ++e) out.push_back(e);
  }
  return out;
}
}  // namespace

std::vector<std::vector<int64_t>> experts_by_rank(const Topology& t, int64_t E) {
  std::vector<std::vector<int64_t>> out(t.world());
  if (E <= 0) return out;
  for (int r = 0; r < t.world(); ++r) out[r] = primary_experts(t, E, r);
  for (const auto& [expert, ranks] : t.redundant)
    if (expert < E)
      for (int r : ranks)
        if (r >= 0 && r < t.world()) out[r].push_back(expert);
  for (auto& v : out) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  return out;
}

std::vector<std::vector<int>> expert_owners(const Topology& t, int64_t E, int ep_group) {
  std::vector<std::vector<int>> owners(std::max<int64_t>(E, 0));
  const auto by_rank = experts_by_rank(t, E);
  const int ep = t.expert_parallel;
  for (int r = ep_group * ep; r < (ep_group + 1) * ep && r < t.world(); ++r)
    for (int64_t e : by_rank[r]) owners[e].push_back(r - ep_group * ep);
  return owners;
}

ShardSpec shard_for_rank(const Topology& t, const ModelConfig& c, int rank) {
  if (rank < 0 || rank >= t.world())
    throw Error(fmt::format("rank {} is outside the world of {} ranks of {}", rank, t.world(), t.source));
  ShardSpec s;
  s.tp_rank = t.tp_rank(rank);
  s.tp_size = t.tensor_parallel;
  const int64_t E = c.n_routed_experts;
  if (E > 0) {
    s.owns_expert.assign(E, false);
    std::vector<int64_t> mine = primary_experts(t, E, rank);
    for (const auto& [expert, ranks] : t.redundant)
      if (expert < E && std::find(ranks.begin(), ranks.end(), rank) != ranks.end()) mine.push_back(expert);
    for (int64_t e : mine) s.owns_expert[e] = true;
  }
  return s;
}

Topology default_topology(int world_size, int tp, int ep) {
  if (world_size < 1) throw Error(fmt::format("world size {} must be at least 1", world_size));
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const double mem = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  Topology t;
  t.name = fmt::format("default-{}", world_size);
  t.source = "(default topology)";
  t.nodes.push_back(TopologyNode{"localhost", std::max(world_size, cores), mem > 0 ? mem / (1 << 30) : 1.0});
  t.ranks_per_node = world_size;
  t.threads_per_rank = std::max(1, cores / world_size);
  t.mpi.bind_to = "none";
  if (tp <= 0) tp = 1;
  if (ep <= 0) ep = world_size;
  if (world_size % tp)
    throw Error(fmt::format("--tp {} does not divide the world size {}", tp, world_size));
  t.tensor_parallel = tp;
  t.attention_data_parallel = world_size / tp;
  t.expert_parallel = ep;
  if (world_size % ep)
    throw Error(fmt::format("--ep {} does not divide the world size {}", ep, world_size));
  validate_topology(t);
  return t;
}

std::string resolve_rsh_agent(const Topology& t) {
  if (t.mpi.rsh_agent.empty()) return "";
  namespace fs = std::filesystem;
  const fs::path agent(t.mpi.rsh_agent);
  if (agent.is_absolute()) {
    if (!fs::exists(agent))
      throw Error(fmt::format("{}: mpi.rsh_agent {} does not exist", t.where("mpi.rsh_agent"), t.mpi.rsh_agent));
    return agent.string();
  }
  std::error_code ec;
  fs::path dir = fs::weakly_canonical(fs::absolute(fs::path(t.source), ec), ec).parent_path();
  std::vector<std::string> tried;
  while (true) {
    const fs::path candidate = dir / agent;
    tried.push_back(candidate.string());
    if (fs::exists(candidate)) return candidate.lexically_normal().string();
    if (dir == dir.root_path() || dir.empty()) break;
    dir = dir.parent_path();
  }
  throw Error(fmt::format("{}: mpi.rsh_agent {} is not in the topology file's directory nor any parent (tried {})",
                          t.where("mpi.rsh_agent"), t.mpi.rsh_agent, tried.front()));
}

}  // namespace dsrt
