// dsrt launch's pre-flight (runtime/launch_preflight.h): which hosts count as this machine, host
// validation, the agent mpirun would use, and the CLI with a test agent that answers for one
// node, fails for another and hangs for a third: the launch ends != 0 within 10 s naming both
// bad nodes, mpirun (a fake here) is never started, and the hung agent's processes are killed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/launch_preflight.h"
#include "runtime/topology.h"
#include "unit/test_util.h"

namespace fs = std::filesystem;

namespace dsrt {
namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const fs::path& p, const std::string& text, bool executable = false) {
  std::ofstream(p) << text;
  if (executable) fs::permissions(p, fs::perms::owner_all, fs::perm_options::add);
}

// A directory with agent.sh (logs each call; "fail" exits 7 with a message, "hang" starts a
// sleep, records its pid and never answers, anything else answers; mpirun passes host names
// without their domain, so fail.invalid reaches the agent as "fail"),
// mpirun.sh (a fake mpirun that records its arguments) and topology files naming them.
class LaunchPreflight : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("dsrt-preflight-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    write_file(dir_ / "agent.sh",
               "#!/bin/sh\n"
               "echo \"$*\" >> " + d + "/agent.log\n"
               "case \"$1\" in\n"
               "  fail) echo \"agent: no route to $1\" >&2; exit 7 ;;\n"
               "  hang) sleep 60 & echo $! > " + d + "/sleep.pid; wait ;;\n"
               "esac\n",
               true);
    write_file(dir_ / "mpirun.sh", "#!/bin/sh\necho \"$@\" > " + d + "/mpirun.args\n", true);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A topology of `hosts` (1 slot, 1 rank each) whose rsh agent is agent.sh.
  std::string topology(const std::vector<std::string>& hosts) {
    std::string y = "nodes:\n";
    for (const auto& h : hosts) y += "  - {host: " + h + ", slots: 1, memory_gb: 1}\n";
    y += "mpi:\n  bind_to: none\n  rsh_agent: agent.sh\n";
    const fs::path p = dir_ / "topology.yaml";
    write_file(p, y);
    return p.string();
  }
  std::string launch(const std::string& topo, const std::string& flags) {
    return "launch --topology " + topo + " --mpirun " + (dir_ / "mpirun.sh").string() + " --workdir " +
           (dir_ / "work").string() + " " + flags + " -- generate --ids 1";
  }

  fs::path dir_;
};

TEST_F(LaunchPreflight, UnreachableNodesEndTheLaunchWithin10Seconds) {
  const std::string topo = topology({"localhost", "ok.invalid", "fail.invalid", "hang.invalid"});
  const auto t0 = std::chrono::steady_clock::now();
  const test::RunResult r = test::run_dsrt(launch(topo, ""), 30);  // the default --preflight-timeout
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(seconds, 10.0) << r.output;
  EXPECT_NE(r.output.find("dsrt: error: dsrt launch: 2 of 3 remote nodes did not answer the launch agent"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("`" + (dir_ / "agent.sh").string() + " HOST true`"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("node 2 (fail.invalid as fail, " + topo + ":4): exit code 7: agent: no route to fail"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("node 3 (hang.invalid as hang, " + topo + ":5): no answer within 6 s"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("node 1 (ok.invalid"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one error line:\n" << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "mpirun.args")) << "mpirun was started";

  // Every remote node was asked, in parallel (the whole run took one timeout, not two), this
  // machine was not; the hung agent's whole process group was killed.
  const std::string log = read_file(dir_ / "agent.log");
  for (const char* h : {"ok true", "fail true", "hang true"})
    EXPECT_NE(log.find(h), std::string::npos) << log;
  EXPECT_EQ(log.find("localhost"), std::string::npos) << log;
  const std::string sleep_pid = read_file(dir_ / "sleep.pid");
  ASSERT_FALSE(sleep_pid.empty());
  bool gone = false;
  for (int i = 0; i < 20 && !gone; ++i) {
    gone = kill(std::stoi(sleep_pid), 0) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "the hung agent's sleep (pid " << sleep_pid << ") survived";
}

TEST_F(LaunchPreflight, AnsweringNodesStartMpirun) {
  const std::string topo = topology({"localhost", "ok.invalid", "also-ok.invalid"});
  const test::RunResult r = test::run_dsrt(launch(topo, ""));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pre-flight: 2 remote nodes answered"), std::string::npos) << r.output;
  EXPECT_NE(read_file(dir_ / "mpirun.args").find("-np 3 --hostfile"), std::string::npos);
  const std::string log = read_file(dir_ / "agent.log");
  EXPECT_EQ(log, log.find("ok true\n") == 0 ? "ok true\nalso-ok true\n" : "also-ok true\nok true\n");
}

TEST_F(LaunchPreflight, PrintAndNoPreflightSkipIt) {
  const std::string topo = topology({"ok.invalid", "fail.invalid", "hang.invalid"});
  const test::RunResult p = test::run_dsrt(launch(topo, "--print"));
  EXPECT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("--mca plm_rsh_agent " + (dir_ / "agent.sh").string()), std::string::npos) << p.output;
  const test::RunResult n = test::run_dsrt(launch(topo, "--no-preflight"));
  EXPECT_EQ(n.exit_code, 0) << n.output;
  EXPECT_TRUE(fs::exists(dir_ / "mpirun.args"));
  EXPECT_FALSE(fs::exists(dir_ / "agent.log")) << read_file(dir_ / "agent.log");

  // A shorter deadline.
  const auto t0 = std::chrono::steady_clock::now();
  const test::RunResult s = test::run_dsrt(launch(topo, "--preflight-timeout 1.5"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(s.exit_code, 1) << s.output;
  EXPECT_NE(s.output.find("hang.invalid as hang, " + topo + ":4): no answer within 1.5 s"), std::string::npos) << s.output;
  const test::RunResult z = test::run_dsrt(launch(topo, "--preflight-timeout 0"));
  EXPECT_NE(z.exit_code, 0);
  EXPECT_NE(z.output.find("--preflight-timeout"), std::string::npos) << z.output;
}

TEST_F(LaunchPreflight, RefusesHostsThatAreNotNames) {
  for (const std::string host : {"'a b'", "'-oProxyCommand=x'", "'x;reboot'", "'$(id)'"}) {
    const std::string topo = topology({"localhost", host});
    const test::RunResult r = test::run_dsrt(launch(topo, "--print"));
    EXPECT_EQ(r.exit_code, 1) << host << ": " << r.output;
    EXPECT_NE(r.output.find(topo + ":3: host '"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("is not a host name or address"), std::string::npos) << r.output;
  }
}

TEST(LaunchPreflightHosts, LocalOrRemote) {
  char name[256] = {};
  ASSERT_EQ(gethostname(name, sizeof name - 1), 0);
  for (const std::string& h : std::vector<std::string>{"localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "user@localhost",
                              std::string(name)})
    EXPECT_TRUE(is_local_host(h)) << h;
  for (const std::string h : {"192.0.2.1", "ok.invalid", "node01.invalid", "2001:db8::1"})
    EXPECT_FALSE(is_local_host(h)) << h;
}

TEST(LaunchPreflightHosts, Validation) {
  for (const std::string h : {"node01", "node-01.cluster.local", "10.0.0.1", "user@node01", "fe80::1%eth0", "[::1]",
                              "n_1"})
    EXPECT_NO_THROW(validate_host(h, "t.yaml:3")) << h;
  for (const std::string h : {"", "-oProxyCommand=x", "a b", "a;b", "$(id)", "a\nb", "@node", "-u@node", "x@-y"})
    EXPECT_THROW(validate_host(h, "t.yaml:3"), Error) << h;
  try {
    validate_host("a b", "t.yaml:3");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("t.yaml:3: host 'a b' is not a host name or address", 0), 0u) << e.what();
  }
}

TEST(LaunchPreflightHosts, AgentAsMpirunWouldRunIt) {
  const std::string nodes = "nodes:\n  - {host: a.invalid, slots: 1, memory_gb: 1}\n";
  const Topology plain = parse_topology(nodes, "plain.yaml");
  EXPECT_EQ(preflight_agent(plain, "", 6),
            (std::vector<std::string>{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"}));
  EXPECT_EQ(preflight_agent(plain, "/x/agent.sh", 6), (std::vector<std::string>{"/x/agent.sh"}));
  const Topology opts = parse_topology(
      nodes + "mpi:\n  options: [\"--mca plm_rsh_agent /usr/bin/ssh\", \"--mca plm_rsh_args -p2222\"]\n", "o.yaml");
  EXPECT_EQ(preflight_agent(opts, "", 2.5), (std::vector<std::string>{"/usr/bin/ssh", "-o", "BatchMode=yes", "-o",
                                                                       "ConnectTimeout=2", "-p2222"}));
  EXPECT_EQ(agent_host_word(plain, "node01.cluster.local"), "node01");
  EXPECT_EQ(agent_host_word(plain, "user@node01.cluster"), "user@node01");
  for (const std::string h : {"node01", "10.77.0.3", "fe80::1", "[fe80::1]"}) EXPECT_EQ(agent_host_word(plain, h), h);
  const Topology fqdn = parse_topology(nodes + "mpi:\n  options: [\"--mca orte_keep_fqdn_hostnames 1\"]\n", "f.yaml");
  EXPECT_EQ(agent_host_word(fqdn, "node01.cluster.local"), "node01.cluster.local");
  const auto missing = check_hosts({"/nonexistent/agent"}, {{0, "a.invalid"}}, 2);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_FALSE(missing[0].ok);
  EXPECT_EQ(missing[0].cause, "cannot run /nonexistent/agent: No such file or directory");
}

}  // namespace
}  // namespace dsrt
