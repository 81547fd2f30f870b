// Cluster topologies: the shipped YAML files, every validation error (with its numbers and
// line), --tp/--ep overrides, explicit expert maps with redundant copies, shard_for_rank.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/expert_group.h"
#include "runtime/topology.h"
#include "unit/test_util.h"

namespace fs = std::filesystem;

namespace dsrt {
namespace {

std::string configs_dir() { return test::data_dir() + "/../../cluster-configs"; }
std::string config_path(const std::string& name) { return configs_dir() + "/" + name; }
// 1-based line of the first occurrence of `text` in a file.
int line_of(const std::string& file, const std::string& text) {
  std::ifstream f(file);
  std::string line;
  for (int n = 1; std::getline(f, line); ++n)
    if (line.find(text) != std::string::npos) return n;
  ADD_FAILURE() << text << " not in " << file;
  return 0;
}
ModelConfig r1() { return load_model_config(config_path("deepseek-r1/config.json")); }
ModelConfig tiny() { return load_model_config(test::data_dir() + "/golden/tiny-v3/config.json"); }

// The message of the dsrt::Error fn throws ("" if it does not throw).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& yaml) {
  return error_of([&] { parse_topology(yaml, "t.yaml"); });
}

// A valid 4-node, 2-ranks-per-node topology; tests replace lines of it.
const char* kBase =
    "name: base\n"                                      // 1
    "nodes:\n"                                          // 2
    "  - {host: a, slots: 8, memory_gb: 64}\n"          // 3
    "  - {host: b, slots: 8, memory_gb: 64}\n"          // 4
    "  - {host: c, slots: 8, memory_gb: 64}\n"          // 5
    "  - {host: d, slots: 8, memory_gb: 64}\n"          // 6
    "ranks_per_node: 2\n"                               // 7
    "tensor_parallel: 4\n"                              // 8
    "attention_data_parallel: 2\n"                      // 9
    "expert_parallel: 8\n"                              // 10
    "threads_per_rank: 4\n";                            // 11

std::string with(const std::string& from, const std::string& to) {
  std::string s = kBase;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

TEST(Topology, ParsesEveryShippedYaml) {
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(configs_dir())) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    Topology t = load_topology(entry.path().string());
    EXPECT_EQ(t.world(), t.tensor_parallel * t.attention_data_parallel);
    EXPECT_EQ(t.world() % t.expert_parallel, 0);
    EXPECT_FALSE(t.name.empty());
    ++n;
  }
  EXPECT_GE(n, 8);
}

TEST(Topology, ShippedLayouts) {
  struct Want {
    const char* file;
    int nodes, rpn, tp, dp, ep, threads;
  };
  for (const Want& w : {Want{"single-rank.yaml", 1, 1, 1, 1, 1, 2}, Want{"local-2.yaml", 1, 2, 2, 1, 2, 1},
                        Want{"local-4.yaml", 1, 4, 2, 2, 4, 1}, Want{"local-4-explicit.yaml", 1, 4, 2, 2, 4, 1},
                        Want{"netns-2node.yaml", 2, 1, 2, 1, 2, 1}, Want{"r1-8nodes.yaml", 8, 2, 8, 2, 16, 32},
                        Want{"r1-16nodes.yaml", 16, 2, 8, 4, 32, 32}, Want{"r1-32nodes.yaml", 32, 2, 16, 4, 64, 32}}) {
    SCOPED_TRACE(w.file);
    Topology t = load_topology(config_path(w.file));
    EXPECT_EQ(static_cast<int>(t.nodes.size()), w.nodes);
    EXPECT_EQ(t.ranks_per_node, w.rpn);
    EXPECT_EQ(t.tensor_parallel, w.tp);
    EXPECT_EQ(t.attention_data_parallel, w.dp);
    EXPECT_EQ(t.expert_parallel, w.ep);
    EXPECT_EQ(t.threads_per_rank, w.threads);
  }
  const ModelConfig c = r1();
  for (const char* f : {"r1-8nodes.yaml", "r1-16nodes.yaml", "r1-32nodes.yaml", "single-rank.yaml", "local-2.yaml",
                        "local-4.yaml", "netns-2node.yaml"})
    EXPECT_NO_THROW(validate_for_model(load_topology(config_path(f)), c)) << f;
  EXPECT_NO_THROW(validate_for_model(load_topology(config_path("local-4-explicit.yaml")), tiny()));

  Topology r8 = load_topology(config_path("r1-8nodes.yaml"));
  EXPECT_EQ(r8.nodes[7].host, "node08");
  EXPECT_EQ(r8.nodes[0].slots, 64);
  EXPECT_EQ(r8.nodes[0].memory_gb, 256);
  EXPECT_EQ(r8.mpi.bind_to, "core");
  EXPECT_EQ(r8.mpi.options, (std::vector<std::string>{"--mca", "pml", "ucx", "--report-bindings"}));
  ASSERT_EQ(r8.mpi.env.size(), 1u);
  EXPECT_EQ(r8.mpi.env[0].first, "UCX_TLS");
  EXPECT_EQ(r8.mpi.env[0].second, "rc,sm,self");

  Topology ns = load_topology(config_path("netns-2node.yaml"));
  EXPECT_EQ(ns.nodes[0].host, "10.77.0.1");
  EXPECT_EQ(ns.nodes[1].host, "10.77.0.2");
  EXPECT_EQ(resolve_rsh_agent(ns), (fs::weakly_canonical(configs_dir()) / "netns/rsh-agent.sh").string());
}

TEST(Topology, RshAgentMapsAddressesToNamespaces) {
  const std::string agent = config_path("netns/rsh-agent.sh");
  auto run = [&](const std::string& args) {
    std::string cmd = "DSRT_NETNS_EXEC=echo " + agent + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    return std::make_pair(WEXITSTATUS(status), out);
  };
  EXPECT_EQ(run("10.77.0.1 orted -mca ess env").second, "dsrt-n0 sh -c orted -mca ess env\n");
  EXPECT_EQ(run("-x 10.77.0.2 'PATH=/usr/bin ; orted'").second, "dsrt-n1 sh -c PATH=/usr/bin ; orted\n");
  EXPECT_EQ(run("n1 true").second, "dsrt-n1 sh -c true\n");
  auto bad = run("10.1.2.3 true");
  EXPECT_EQ(bad.first, 255);
  EXPECT_NE(bad.second.find("unknown emulated host '10.1.2.3'"), std::string::npos) << bad.second;
}

TEST(Topology, Defaults) {
  Topology t = parse_topology("nodes:\n  - {host: h, slots: 16, memory_gb: 32}\nranks_per_node: 4\n", "d.yaml");
  EXPECT_EQ(t.name, "d");
  EXPECT_EQ(t.tensor_parallel, 1);
  EXPECT_EQ(t.attention_data_parallel, 4);
  EXPECT_EQ(t.expert_parallel, 4);
  EXPECT_EQ(t.threads_per_rank, 4);
  EXPECT_EQ(t.placement, Topology::Placement::Contiguous);
  EXPECT_EQ(t.mpi.bind_to, "core");

  Topology d = default_topology(4);
  EXPECT_EQ(d.world(), 4);
  EXPECT_EQ(d.tensor_parallel, 1);
  EXPECT_EQ(d.attention_data_parallel, 4);
  EXPECT_EQ(d.expert_parallel, 4);
  Topology d2 = default_topology(4, 2, 2);
  EXPECT_EQ(d2.attention_data_parallel, 2);
  EXPECT_EQ(d2.expert_parallel, 2);
  EXPECT_EQ(error_of([] { default_topology(4, 3); }), "--tp 3 does not divide the world size 4");
  EXPECT_EQ(error_of([] { default_topology(6, 2, 4); }), "--ep 4 does not divide the world size 6");
}

TEST(Topology, SyntaxAndKeyErrors) {
  EXPECT_EQ(parse_error(with("ranks_per_node: 2\n", "ranks_per_node: [2\n")).substr(0, 8), "t.yaml:8");
  EXPECT_EQ(parse_error(with("tensor_parallel: 4", "tensor_paralel: 4")),
            "t.yaml:8: unknown key 'tensor_paralel' in the topology; expected one of: name, nodes, ranks_per_node, "
            "tensor_parallel, attention_data_parallel, expert_parallel, experts, threads_per_rank, pin_threads, mpi");
  EXPECT_EQ(parse_error(with("{host: b, slots: 8,", "{host: b, slot: 8,")),
            "t.yaml:4: unknown key 'slot' in nodes[1]; expected one of: host, slots, memory_gb");
  EXPECT_EQ(parse_error(std::string(kBase) + "experts:\n  placement: contiguous\n  redundnat: {}\n"),
            "t.yaml:14: unknown key 'redundnat' in experts; expected one of: placement, map, redundant");
  EXPECT_EQ(parse_error(std::string(kBase) + "mpi:\n  env: {A: b}\n  option: [x]\n"),
            "t.yaml:14: unknown key 'option' in mpi; expected one of: options, rsh_agent, env, bind_to");
  EXPECT_EQ(parse_error(std::string(kBase) + "tensor_parallel: 2\n"),
            "t.yaml:12: key 'tensor_parallel' appears twice in the topology");
}

TEST(Topology, TypeErrors) {
  EXPECT_EQ(parse_error(with("tensor_parallel: 4", "tensor_parallel: four")),
            "t.yaml:8: tensor_parallel must be an integer, got 'four'");
  EXPECT_EQ(parse_error(with("tensor_parallel: 4", "tensor_parallel: 4.5")),
            "t.yaml:8: tensor_parallel must be an integer, got '4.5'");
  EXPECT_EQ(parse_error(with("tensor_parallel: 4", "tensor_parallel: \"4\"")),
            "t.yaml:8: tensor_parallel must be an integer, got the quoted string \"4\"");
  EXPECT_EQ(parse_error(with("tensor_parallel: 4", "tensor_parallel: [4]")),
            "t.yaml:8: tensor_parallel must be an integer, got a list");
  EXPECT_EQ(parse_error(with("expert_parallel: 8", "expert_parallel: 0")),
            "t.yaml:10: expert_parallel must be at least 1, got 0");
  EXPECT_EQ(parse_error(with("memory_gb: 64}\n  - {host: c", "memory_gb: lots}\n  - {host: c")),
            "t.yaml:4: nodes[1].memory_gb must be a number, got 'lots'");
  EXPECT_EQ(parse_error(with("{host: c, slots: 8, memory_gb: 64}", "{host: c, memory_gb: 64}")),
            "t.yaml:5: nodes[2] has no 'slots'");
  EXPECT_EQ(parse_error("name: x\nnodes: {host: a}\n"), "t.yaml:2: nodes must be a list, got a mapping");
  EXPECT_EQ(parse_error("- 1\n- 2\n"),
            "t.yaml: a topology is a mapping with keys name, nodes, ranks_per_node, ...; got a list");
  EXPECT_EQ(parse_error(std::string(kBase) + "mpi:\n  options: --mca btl self\n"),
            "t.yaml:13: mpi.options must be a list, got a scalar");
  EXPECT_EQ(parse_error(std::string(kBase) + "mpi:\n  bind_to: socket\n"),
            "t.yaml:13: mpi.bind_to must be core or none, got 'socket'");
  EXPECT_EQ(parse_error(std::string(kBase) + "experts:\n  placement: random\n"),
            "t.yaml:13: experts.placement must be contiguous or explicit, got 'random'");
}

TEST(Topology, LayoutErrors) {
  EXPECT_EQ(parse_error(with("attention_data_parallel: 2", "attention_data_parallel: 3")),
            "t.yaml:9: tensor_parallel 4 x attention_data_parallel 3 = 12 != world 8 (4 nodes x 2 ranks_per_node)");
  EXPECT_EQ(parse_error(with("{host: b, slots: 8,", "{host: b, slots: 1,")),
            "t.yaml:4: ranks_per_node 2 exceeds the 1 slots of node 1 (b)");
  EXPECT_EQ(parse_error(with("threads_per_rank: 4", "threads_per_rank: 5")),
            "t.yaml:11: threads_per_rank 5 x ranks_per_node 2 = 10 exceeds the 8 slots of node 0 (a)");
  EXPECT_EQ(parse_error(with("expert_parallel: 8", "expert_parallel: 3")),
            "t.yaml:10: expert_parallel 3 does not divide world 8 (4 nodes x 2 ranks_per_node)");
  EXPECT_EQ(parse_error(with("{host: c,", "{host: a,")),
            "t.yaml:5: node 2 repeats host 'a' of node 0; list each host once");
  // Without attention_data_parallel it is world / tp, which must be whole.
  std::string no_dp = with("attention_data_parallel: 2\n", "");
  no_dp.replace(no_dp.find("tensor_parallel: 4"), 18, "tensor_parallel: 3");
  EXPECT_EQ(parse_error(no_dp), "t.yaml:8: tensor_parallel 3 does not divide world 8 (4 nodes x 2 ranks_per_node)");
}

TEST(Topology, ModelErrors) {
  const ModelConfig c = r1();
  const std::string base12 =
      "nodes:\n"                                   // 1
      "  - {host: a, slots: 8, memory_gb: 64}\n"   // 2
      "  - {host: b, slots: 8, memory_gb: 64}\n"   // 3
      "ranks_per_node: 6\n"                        // 4
      "threads_per_rank: 1\n";                     // 5
  Topology tp6 = parse_topology(base12 + "tensor_parallel: 6\nexpert_parallel: 4\n", "t.yaml");
  EXPECT_EQ(error_of([&] { validate_for_model(tp6, c); }),
            "t.yaml:6: num_attention_heads 128 is not divisible by tensor_parallel 6");
  Topology ep6 = parse_topology(base12 + "tensor_parallel: 4\nexpert_parallel: 6\n", "t.yaml");
  EXPECT_EQ(error_of([&] { validate_for_model(ep6, c); }),
            "t.yaml:7: n_routed_experts 256 is not divisible by expert_parallel 6");
  // vocab 129280 = 2^7 x 1010: tp 256 would split heads unevenly first; check vocab with a
  // model whose heads divide.
  ModelConfig odd = c;
  odd.vocab_size = 129281;
  Topology tp4 = parse_topology(base12 + "tensor_parallel: 4\nexpert_parallel: 4\n", "t.yaml");
  EXPECT_EQ(error_of([&] { validate_for_model(tp4, odd); }),
            "t.yaml:6: vocab_size 129281 is not divisible by tensor_parallel 4");
  // Overridden values name the override.
  Topology o = load_topology(config_path("r1-8nodes.yaml"));
  apply_overrides(o, 0, 16);
  EXPECT_NO_THROW(validate_for_model(o, c));
}

TEST(Topology, Overrides) {
  Topology t = load_topology(config_path("local-4.yaml"));
  apply_overrides(t, 4, 0);
  EXPECT_EQ(t.tensor_parallel, 4);
  EXPECT_EQ(t.attention_data_parallel, 1);
  EXPECT_EQ(t.expert_parallel, 4);
  apply_overrides(t, 1, 2);
  EXPECT_EQ(t.tensor_parallel, 1);
  EXPECT_EQ(t.attention_data_parallel, 4);
  EXPECT_EQ(t.expert_parallel, 2);
  EXPECT_EQ(t.ep_group(3), 1);
  EXPECT_EQ(t.ep_rank(3), 1);

  Topology u = load_topology(config_path("local-4.yaml"));
  const std::string src = u.source;
  EXPECT_EQ(error_of([&] { apply_overrides(u, 3, 0); }),
            "--tp 3 does not divide world 4 (1 nodes x 4 ranks_per_node of " + src + ")");
  EXPECT_EQ(error_of([&] { apply_overrides(u, 0, 3); }),
            "--ep 3 (overrides " + src + ":" + std::to_string(line_of(src, "expert_parallel:")) + "): expert_parallel 3 does not divide world 4 (1 nodes x 4 ranks_per_node)");

  // R1 on 8 nodes with tp 16: the whole world is one tp group.
  Topology r = load_topology(config_path("r1-8nodes.yaml"));
  apply_overrides(r, 16, 0);
  EXPECT_EQ(r.attention_data_parallel, 1);
  EXPECT_NO_THROW(validate_for_model(r, r1()));
  apply_overrides(r, 0, 8);  // two ep groups of 8 ranks: 32 experts per rank
  EXPECT_EQ(shard_for_rank(r, r1(), 9).owns_expert[32], true);
  EXPECT_EQ(shard_for_rank(r, r1(), 9).owns_expert[64], false);
}

TEST(Topology, ExplicitMapAndRedundancy) {
  const ModelConfig c = tiny();  // 16 routed experts
  Topology t = load_topology(config_path("local-4-explicit.yaml"));
  EXPECT_EQ(t.placement, Topology::Placement::Explicit);
  EXPECT_EQ(t.expert_map.at(0), (std::vector<int64_t>{0, 1, 2, 12}));
  EXPECT_EQ(t.redundant.at(5), (std::vector<int>{2, 3}));
  validate_for_model(t, c);
  const auto by_rank = experts_by_rank(t, c.n_routed_experts);
  EXPECT_EQ(by_rank[0], (std::vector<int64_t>{0, 1, 2, 12}));
  EXPECT_EQ(by_rank[1], (std::vector<int64_t>{3, 4, 5, 13}));
  EXPECT_EQ(by_rank[2], (std::vector<int64_t>{5, 6, 7, 8, 14}));
  EXPECT_EQ(by_rank[3], (std::vector<int64_t>{0, 5, 9, 10, 11, 15}));
  const auto owners = expert_owners(t, c.n_routed_experts, 0);
  EXPECT_EQ(owners[0], (std::vector<int>{0, 3}));
  EXPECT_EQ(owners[5], (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(owners[15], (std::vector<int>{3}));
  const ShardSpec s3 = shard_for_rank(t, c, 3);
  EXPECT_EQ(s3.tp_rank, 1);
  EXPECT_EQ(s3.tp_size, 2);
  std::vector<int64_t> owned;
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    if (s3.owns(e)) owned.push_back(e);
  EXPECT_EQ(owned, by_rank[3]);

  const std::string head =
      "nodes:\n"                                   // 1
      "  - {host: a, slots: 4, memory_gb: 8}\n"    // 2
      "ranks_per_node: 4\n"                        // 3
      "tensor_parallel: 1\n"                       // 4
      "expert_parallel: 2\n"                       // 5
      "threads_per_rank: 1\n"                      // 6
      "experts:\n"                                 // 7
      "  placement: explicit\n"                    // 8
      "  map:\n";                                  // 9
  const std::string good = head +
                           "    0: [0-7]\n"        // 10
                           "    1: [8-15]\n"       // 11
                           "    2: [0, 2, 4, 6, 8, 10, 12, 14]\n"  // 12
                           "    3: [1, 3, 5, 7, 9, 11, 13, 15]\n";  // 13
  Topology g = parse_topology(good, "m.yaml");
  validate_for_model(g, c);
  EXPECT_EQ(expert_owners(g, 16, 1)[4], (std::vector<int>{0}));  // ep rank 0 of group 1 = rank 2
  EXPECT_EQ(expert_owners(g, 16, 1)[5], (std::vector<int>{1}));  // rank 3
  EXPECT_EQ(expert_owners(g, 16, 0)[4], (std::vector<int>{0}));
  EXPECT_EQ(expert_owners(g, 16, 0)[9], (std::vector<int>{1}));

  auto err = [&](const std::string& yaml) { return error_of([&] { parse_topology(yaml, "m.yaml"); }); };
  auto model_err = [&](const std::string& yaml) {
    return error_of([&] { validate_for_model(parse_topology(yaml, "m.yaml"), c); });
  };
  EXPECT_EQ(err(head + "    0: [0-7]\n    1: [7-15]\n"),
            "m.yaml:11: expert 7 is on ranks 0 and 1 of expert-parallel group 0 (ranks 0-1); each expert belongs to one "
            "rank per group; list extra copies under experts.redundant");
  EXPECT_EQ(err(head + "    0: [0-15]\n    4: [0]\n"), "m.yaml:11: experts.map names rank 4 but the world has 4 ranks (0-3)");
  EXPECT_EQ(err(head + "    0: [1, 1]\n"), "m.yaml:10: rank 0 lists expert 1 twice");
  EXPECT_EQ(err(head + "    0: [5-3]\n"), "m.yaml:10: experts.map rank 0: '5-3' is neither an integer nor a range a-b with a <= b");
  EXPECT_EQ(err(head + "    0: [0-15]\n    0: [1]\n"), "m.yaml:11: experts.map lists rank 0 twice");
  EXPECT_EQ(err(head.substr(0, head.find("  map:")) ),
            "m.yaml:7: experts.placement is explicit but experts.map lists no rank");
  EXPECT_EQ(err(good + "  redundant:\n    3: [4]\n"),
            "m.yaml:15: redundant copy of expert 3 on rank 4, but the world has 4 ranks (0-3)");
  EXPECT_EQ(model_err(head + "    0: [0-7]\n    1: [8-14]\n    2: [0-15]\n    3: []\n"),
            "m.yaml:9: 1 of the 16 routed experts are on no rank of expert-parallel group 0 (ranks 0-1): experts 15; "
            "the map must place every expert once per group");
  EXPECT_EQ(model_err(head + "    0: [0-7]\n    1: [8-16]\n    2: [0-15]\n"),
            "m.yaml:11: rank 1 lists expert 16 but the model has 16 routed experts (0-15)");
  EXPECT_EQ(model_err(good + "  redundant:\n    3: [0, 2]\n"),
            "m.yaml:15: rank 0 already owns expert 3 (explicit placement); a redundant copy must go to another rank");
  EXPECT_EQ(model_err(good + "  redundant:\n    16: [1]\n"),
            "m.yaml:15: experts.redundant names expert 16 but the model has 16 routed experts (0-15)");
  EXPECT_EQ(err("nodes:\n  - {host: a, slots: 4, memory_gb: 8}\nranks_per_node: 2\nexperts:\n  map: {0: [1]}\n"),
            "m.yaml:5: experts.map is given but experts.placement is contiguous; set placement: explicit");

  // Redundant copies on a contiguous placement.
  Topology rc = parse_topology(
      "nodes:\n  - {host: a, slots: 4, memory_gb: 8}\nranks_per_node: 4\nexperts:\n  redundant: {0: [1, 2]}\n", "r.yaml");
  validate_for_model(rc, c);
  EXPECT_EQ(experts_by_rank(rc, 16)[1], (std::vector<int64_t>{0, 4, 5, 6, 7}));
  EXPECT_EQ(expert_owners(rc, 16, 0)[0], (std::vector<int>{0, 1, 2}));
  Topology bad = parse_topology(
      "nodes:\n  - {host: a, slots: 4, memory_gb: 8}\nranks_per_node: 4\nexperts:\n  redundant: {4: [1]}\n", "r.yaml");
  EXPECT_EQ(error_of([&] { validate_for_model(bad, c); }),
            "r.yaml:5: rank 1 already owns expert 4 (contiguous placement); a redundant copy must go to another rank");

  // Explicit placement with a different --ep regroups the ranks; the map no longer covers a group.
  Topology regroup = load_topology(config_path("local-4-explicit.yaml"));
  apply_overrides(regroup, 0, 2);
  EXPECT_NE(error_of([&] { validate_for_model(regroup, c); })
                .find("of the 16 routed experts are on no rank of expert-parallel group 0 (ranks 0-1)"),
            std::string::npos);
}

// expert_owners feeds the expert group's placement; it agrees with shard_for_rank and, for a
// contiguous layout, with ExpertPlacement::contiguous.
TEST(Topology, ExpertOwnersMakeTheExpertGroupPlacement) {
  const ModelConfig c = tiny();
  for (const char* f : {"local-4.yaml", "local-4-explicit.yaml"}) {
    SCOPED_TRACE(f);
    const Topology t = load_topology(config_path(f));
    for (int r = 0; r < t.world(); ++r) {
      ExpertPlacement p{t.expert_parallel, expert_owners(t, c.n_routed_experts, t.ep_group(r))};
      EXPECT_EQ(p.owned_by(t.ep_rank(r)), shard_for_rank(t, c, r).owns_expert) << r;
    }
  }
  const Topology t = load_topology(config_path("r1-16nodes.yaml"));
  EXPECT_EQ(expert_owners(t, 256, 0), ExpertPlacement::contiguous(256, 32).owners);
}

TEST(Topology, ShardForRank) {
  const ModelConfig c = r1();
  Topology t = load_topology(config_path("r1-8nodes.yaml"));
  for (int r : {0, 5, 13}) {
    const ShardSpec s = shard_for_rank(t, c, r);
    EXPECT_EQ(s.tp_rank, r % 8);
    EXPECT_EQ(s.tp_size, 8);
    ASSERT_EQ(s.owns_expert.size(), 256u);
    for (int e = 0; e < 256; ++e) EXPECT_EQ(s.owns(e), e / 16 == r) << r << " " << e;
  }
  EXPECT_EQ(t.node_of(13), 6);
  EXPECT_EQ(t.dp_rank(13), 1);
  Topology t32 = load_topology(config_path("r1-32nodes.yaml"));
  const ShardSpec s = shard_for_rank(t32, c, 63);
  EXPECT_EQ(s.tp_rank, 15);
  EXPECT_EQ(s.tp_size, 16);
  EXPECT_TRUE(s.owns(252) && s.owns(255) && !s.owns(251));
  EXPECT_EQ(error_of([&] { shard_for_rank(t32, c, 64); }),
            "rank 64 is outside the world of 64 ranks of " + t32.source);
  // A dense model has no expert table.
  ModelConfig dense = c;
  dense.n_routed_experts = 0;
  EXPECT_TRUE(shard_for_rank(t, dense, 3).owns_expert.empty());
}

TEST(Topology, WorldSizeAndRankFormatting) {
  Topology t = load_topology(config_path("local-2.yaml"));
  EXPECT_NO_THROW(require_world_size(t, 2));
  EXPECT_EQ(error_of([&] { require_world_size(t, 3); }),
            t.source + ": the topology has 2 ranks (1 nodes x 2 ranks_per_node) but the MPI job has 3; start it with "
                       "mpirun -np 2 (or dsrt launch)");
  EXPECT_EQ(format_ranks({0, 1, 2, 3}), "0-3");
  EXPECT_EQ(format_ranks({0, 2, 4}), "0,2,4");
  EXPECT_EQ(format_ranks({0, 1, 2, 8, 9, 11}), "0-2,8-9,11");
  EXPECT_EQ(format_ranks({}), "");
}

}  // namespace
}  // namespace dsrt
