// dsrt launch: start a dsrt subcommand on every rank of a topology through mpirun.
//
//   dsrt launch --topology FILE.yaml [--print] [--tp N] [--ep N] [--workdir DIR] [--no-preflight]
//               [--preflight-timeout S] -- <subcommand> <args...>
//
// First a pre-flight (runtime/launch_preflight.h): every node that is not this machine must answer
// the launch agent mpirun will use (`AGENT HOST true`, all at once, S seconds each), else one
// error names each failed node and mpirun is never started. Then it
// writes DIR/hostfile ("host slots=N" per node; no rankfile is needed: ppr mapping with
// --rank-by slot puts ranks [n*R, (n+1)*R) on node n in hostfile order) and runs
//
//   mpirun -np W --hostfile DIR/hostfile --map-by ppr:R:node[:PE=T] --rank-by slot --bind-to core|none
//          <mpi.options> [--mca plm_rsh_agent AGENT] [-x K=V ...]
//          <this dsrt> <subcommand> --topology <FILE> [--tp N] [--ep N] <args...>
//
// through execvp, so mpirun's exit code and signals reach the caller. --print prints that line
// (shell-quoted) instead, without the pre-flight.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "launcher/command.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/launch_preflight.h"
#include "runtime/plan.h"
#include "runtime/topology.h"

namespace dsrt::launcher {
namespace {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  if (s.empty()) return "''";
  const bool safe = s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-") ==
                    std::string::npos;
  if (safe) return s;
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') out += "'\\''";
    else out += ch;
  }
  return out + "'";
}

std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error(fmt::format("cannot read /proc/self/exe to find the dsrt executable: {}", ec.message()));
  return p.string();
}

// Value of `--name V` or `--name=V` in args[1..], or "".
std::string find_option(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == name && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind(name + "=", 0) == 0) return args[i].substr(name.size() + 1);
  }
  return "";
}

bool has_option(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 1; i < args.size(); ++i)
    if (args[i] == name || args[i].rfind(name + "=", 0) == 0) return true;
  return false;
}

int64_t int_option(const std::vector<std::string>& args, const std::string& name, int64_t fallback) {
  const std::string v = find_option(args, name);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    int64_t x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (...) {
  }
  throw Error(fmt::format("{} '{}' is not an integer", name, v));
}

// Before starting W processes: the model (if the arguments name one) must suit the topology
// and fit its nodes.
// Returns a one-line summary ("" if no model was named).
std::string check_model(const Topology& topo, const std::vector<std::string>& args) {
  const std::string model = find_option(args, "--model");
  if (model.empty()) return "";
  ModelConfig c;
  try {
    c = load_model_config(model);
  } catch (const Error& e) {
    throw Error(fmt::format("{} (dsrt launch reads the model's config.json to check the topology before starting; "
                            "--no-check skips that)",
                            e.what()));
  }
  // The same truncation the dummy loader applies.
  if (const int64_t n = int_option(args, "--num-layers", 0); n > 0 && n < c.num_hidden_layers) c.num_hidden_layers = n;
  if (const int64_t k = int_option(args, "--dense-layers", -1); k >= 0) c.first_k_dense_replace = k;
  PlanOptions po;
  po.max_seq_len = int_option(args, "--max-seq-len", po.max_seq_len);
  po.batch = int_option(args, "--batch", po.batch);
  const Plan plan = make_plan(c, topo, po);
  require_fits(plan);
  int64_t need = 0;
  for (const NodePlan& n : plan.nodes) need = std::max(need, n.need_bytes);
  return fmt::format("{} fits {} ({} ranks on {} nodes; largest node need {:.2f} GiB)", model, topo.name, topo.world(),
                     topo.nodes.size(), need / (1024.0 * 1024.0 * 1024.0));
}

std::function<int()> launch_command(CLI::App& parent) {
  struct Opts {
    std::string topology, workdir, mpirun = "mpirun";
    int tp = 0, ep = 0;
    bool print = false, no_check = false, no_preflight = false;
    double preflight_timeout = 6;
    std::vector<std::string> args;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = parent.add_subcommand(
      "launch", "run a dsrt subcommand on every rank of a topology with mpirun: dsrt launch --topology F.yaml -- "
                "<subcommand> <args>");
  app->add_option("--topology", o->topology, "cluster topology YAML (cluster-configs/README.md)")->required();
  app->add_flag("--print", o->print,
                "print the mpirun command line (shell-quoted) instead of running it; nothing is started, so no "
                "pre-flight either");
  app->add_option("--tp", o->tp, "override tensor_parallel; passed on to the subcommand")->check(CLI::PositiveNumber);
  app->add_option("--ep", o->ep, "override expert_parallel; passed on to the subcommand")->check(CLI::PositiveNumber);
  app->add_option("--workdir", o->workdir, "directory for the hostfile (default: a new /tmp/dsrt-launch-XXXXXX)");
  app->add_option("--mpirun", o->mpirun, "the mpirun to run")->capture_default_str();
  app->add_flag("--no-check", o->no_check,
                "do not read the --model config to check divisibility and memory (plan) before starting");
  app->add_flag("--no-preflight", o->no_preflight,
                "start mpirun without first checking that every remote node answers the launch agent");
  app->add_option("--preflight-timeout", o->preflight_timeout,
                  "seconds each remote node gets to answer `AGENT HOST true` before mpirun starts (all nodes at once; "
                  "the default keeps an unreachable node's error well within 10 s)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 600.0));
  app->add_option("command", o->args, "after --: the dsrt subcommand and its arguments")->required();
  return [o] {
    const std::vector<std::string>& args = o->args;
    if (args.front().empty() || args.front()[0] == '-')
      throw Error(fmt::format("dsrt launch: after -- comes a dsrt subcommand (e.g. generate), not '{}'", args.front()));
    if (args.front() == "launch") throw Error("dsrt launch: the subcommand to launch cannot be launch itself");
    for (const char* own : {"--topology", "--tp", "--ep"})
      if (has_option(args, own))
        throw Error(fmt::format("dsrt launch: give {} to dsrt launch (before --); it passes it on to {}", own,
                                args.front()));

    Topology topo = load_topology(o->topology);
    if (o->tp > 0 || o->ep > 0) apply_overrides(topo, o->tp, o->ep);
    const std::string checked = o->no_check ? "" : check_model(topo, args);
    const std::string agent = resolve_rsh_agent(topo);
    for (size_t i = 0; i < topo.nodes.size(); ++i) validate_host(topo.nodes[i].host, topo.where(fmt::format("nodes.{}", i)));
    if (!o->print && !o->no_preflight) {
      // Inside a Slurm or PBS allocation mpirun starts its daemons through the resource manager,
      // not an rsh agent (unless the topology names one): nothing to check the same way.
      const bool managed = agent.empty() && (std::getenv("SLURM_JOB_ID") || std::getenv("PBS_JOBID"));
      if (managed) {
        spdlog::info("dsrt launch: no pre-flight inside a Slurm/PBS allocation (mpirun starts its daemons through it)");
      } else if (const std::string ok = preflight(topo, agent, o->preflight_timeout); !ok.empty()) {
        spdlog::info("dsrt launch: pre-flight: {}", ok);
      }
    }

    // The hostfile.
    fs::path dir;
    if (!o->workdir.empty()) {
      dir = fs::absolute(o->workdir);
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) throw Error(fmt::format("--workdir {}: cannot create it: {}", o->workdir, ec.message()));
    } else {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ = (fs::path(tmp && *tmp ? tmp : "/tmp") / "dsrt-launch-XXXXXX").string();
      if (!mkdtemp(templ.data())) throw Error(fmt::format("cannot create {}: {}", templ, std::strerror(errno)));
      dir = templ;
    }
    const fs::path hostfile = dir / "hostfile";
    {
      std::ofstream f(hostfile);
      for (const TopologyNode& n : topo.nodes) f << n.host << " slots=" << n.slots << "\n";
      if (!f) throw Error(fmt::format("cannot write {}", hostfile.string()));
    }

    std::vector<std::string> cmd = {o->mpirun, "-np", std::to_string(topo.world()), "--hostfile", hostfile.string()};
    const bool bind_cores = topo.mpi.bind_to == "core";
    cmd.push_back("--map-by");
    cmd.push_back(bind_cores ? fmt::format("ppr:{}:node:PE={}", topo.ranks_per_node, topo.threads_per_rank)
                             : fmt::format("ppr:{}:node", topo.ranks_per_node));
    cmd.insert(cmd.end(), {"--rank-by", "slot", "--bind-to", bind_cores ? "core" : "none"});
    cmd.insert(cmd.end(), topo.mpi.options.begin(), topo.mpi.options.end());
    if (!agent.empty()) cmd.insert(cmd.end(), {"--mca", "plm_rsh_agent", agent});
    for (const auto& [k, v] : topo.mpi.env) cmd.insert(cmd.end(), {"-x", k + "=" + v});
    cmd.push_back(self_exe());
    cmd.push_back(args.front());
    cmd.push_back("--topology");
    cmd.push_back(fs::weakly_canonical(fs::absolute(o->topology)).string());
    if (o->tp > 0) cmd.insert(cmd.end(), {"--tp", std::to_string(o->tp)});
    if (o->ep > 0) cmd.insert(cmd.end(), {"--ep", std::to_string(o->ep)});
    cmd.insert(cmd.end(), args.begin() + 1, args.end());

    std::string line;
    for (const auto& w : cmd) line += (line.empty() ? "" : " ") + shell_quote(w);
    if (o->print) {
      std::cout << line << std::endl;
      return 0;
    }
    if (!checked.empty()) spdlog::info("dsrt launch: {}", checked);
    spdlog::info("dsrt launch: {}", line);
    std::cout.flush();
    spdlog::default_logger()->flush();
    std::vector<char*> argv;
    for (auto& w : cmd) argv.push_back(w.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    throw Error(fmt::format("cannot run {}: {} (is Open MPI installed and on PATH? --mpirun names another)", o->mpirun,
                            std::strerror(errno)));
  };
}

DSRT_COMMAND(launch_command);

}  // namespace
}  // namespace dsrt::launcher
