#pragma once
// The pre-flight of `dsrt launch`: before mpirun starts, every node of the topology that is not
// this machine must answer the launch agent mpirun will use (`AGENT HOST true`), all nodes at
// once, each within a deadline. mpirun itself gives no bound on an unreachable node (ssh's TCP
// connect timeout, a password prompt, an agent that hangs), and once it waits for a daemon it
// prints nothing that names the node; this check turns that into one error naming each node,
// the agent and the cause, with mpirun never started.
#include <string>
#include <vector>

#include "runtime/topology.h"

namespace dsrt {

// Throws (naming `where`) unless `host` is a plain host name or address, optionally with
// "user@": letters, digits and . _ - : % [ ], not starting with '-'. The host becomes a word of
// the agent's command line (never a shell string) and a hostfile line.
void validate_host(const std::string& host, const std::string& where);

// True if mpirun starts this host's ranks itself, without the agent: localhost, 127.0.0.0/8,
// ::1, this machine's host name (or its short form), or an address of one of its interfaces.
// Names are compared as written (no DNS lookup, which could block past the deadline), so
// another alias of this machine counts as remote.
bool is_local_host(const std::string& host);

// The agent's words before HOST, as mpirun would run it: the resolved mpi.rsh_agent, else a
// `--mca plm_rsh_agent X` in mpi.options or OMPI_MCA_plm_rsh_agent (first ':'-alternative),
// else `ssh -o BatchMode=yes -o ConnectTimeout=N` (no password prompt; N just below the
// deadline so ssh's own message names the cause). `plm_rsh_args` (options or environment) follow.
std::vector<std::string> preflight_agent(const Topology& t, const std::string& resolved_rsh_agent, double timeout_s);

// The word mpirun passes to its agent for `host`: Open MPI 4.1 drops the domain of a host name
// ("node01.cluster" -> "node01", "user@a.b" -> "user@a") unless orte_keep_fqdn_hostnames is
// set (mpi.options or OMPI_MCA_orte_keep_fqdn_hostnames); addresses are kept.
std::string agent_host_word(const Topology& t, const std::string& host);

struct HostCheck {
  int node = 0;     // index in the topology
  std::string host;  // as passed to the agent
  bool ok = false;
  std::string cause;  // "exit code 255: <first output line>", "no answer within 6 s", ...
  double seconds = 0;
};

// Runs `agent... HOST true` for every host at once: stdin from /dev/null, stdout + stderr
// captured, each in its own process group, which is killed (SIGKILL) at the deadline or when it
// lingers after the agent exited. Returns one HostCheck per host, in order.
std::vector<HostCheck> check_hosts(const std::vector<std::string>& agent,
                                   const std::vector<std::pair<int, std::string>>& hosts, double timeout_s);

// The whole pre-flight for a launch: the remote nodes of t through preflight_agent().
// Throws one Error naming every failed node (its topology line), the agent and the cause.
// Returns a line for the log ("" if there is nothing to check).
std::string preflight(const Topology& t, const std::string& resolved_rsh_agent, double timeout_s);

}  // namespace dsrt
