#include "runtime/launch_preflight.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "runtime/error.h"

extern char** environ;

namespace dsrt {
namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// "user@[::1]" -> "::1", lower-cased.
std::string bare_host(const std::string& host) {
  const size_t at = host.find('@');
  std::string h = at == std::string::npos ? host : host.substr(at + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return lower(h);
}

// Does one of this machine's interfaces have the address `addr` (family AF_INET or AF_INET6)?
bool interface_has(int family, const void* addr) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (const ifaddrs* i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != family) continue;
    if (family == AF_INET)
      found = std::memcmp(&reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, addr, sizeof(in_addr)) == 0;
    else
      found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, addr, sizeof(in6_addr)) == 0;
  }
  freeifaddrs(list);
  return found;
}

// `--mca NAME V` (last one wins) in the mpirun words, else $OMPI_MCA_NAME, else "".
std::string mca_value(const std::vector<std::string>& words, const std::string& name) {
  std::string v;
  for (size_t i = 0; i + 2 < words.size(); ++i)
    if ((words[i] == "--mca" || words[i] == "-mca") && words[i + 1] == name) v = words[i + 2];
  if (v.empty())
    if (const char* e = std::getenv(("OMPI_MCA_" + name).c_str())) v = e;
  return v;
}

// One running `AGENT HOST true`.
struct Probe {
  pid_t pid = -1;  // also its process group
  int fd = -1;     // read end of its stdout + stderr
  std::string out;
  std::string spawn_error;
  bool exited = false;
  int status = 0;
  Clock::time_point exit_time;
};

void spawn(Probe& p, const std::vector<std::string>& agent, const std::string& host) {
  // CLOEXEC: a probe started later must not hold an earlier probe's pipe open.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    p.spawn_error = fmt::format("cannot create a pipe: {}", std::strerror(errno));
    return;
  }
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  std::vector<std::string> words = agent;
  words.push_back(host);
  words.push_back("true");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);  // never a password prompt on our stdin
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills the agent and all it started
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc = posix_spawnp(&p.pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (rc != 0) {
    p.pid = -1;
    close(fds[0]);
    p.spawn_error = fmt::format("cannot run {}: {}", agent.front(), std::strerror(rc));
    return;
  }
  p.fd = fds[0];
}

// Reads what is available; closes the pipe at end of file.
void drain(Probe& p) {
  char buf[4096];
  while (p.fd >= 0) {
    const ssize_t n = read(p.fd, buf, sizeof buf);
    if (n > 0) {
      if (p.out.size() < 16384) p.out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    close(p.fd);  // end of file or a read error
    p.fd = -1;
  }
}

std::string first_line(const std::string& out) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    line = line.substr(b, line.find_last_not_of(" \t\r") + 1 - b);
    return line.size() > 300 ? line.substr(0, 300) + "..." : line;
  }
  return "";
}

}  // namespace

void validate_host(const std::string& host, const std::string& where) {
  static const std::string alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  auto only = [](const std::string& s, const std::string& allowed) {
    return !s.empty() && s.front() != '-' && s.find_first_not_of(allowed) == std::string::npos;
  };
  const size_t at = host.find('@');
  const bool ok = host.size() <= 255 && only(host.substr(at == std::string::npos ? 0 : at + 1), alnum + "._-:%[]") &&
                  (at == std::string::npos || only(host.substr(0, at), alnum + "._-"));
  if (!ok)
    throw Error(fmt::format("{}: host '{}' is not a host name or address (letters, digits and . _ - : % [ ], "
                            "optionally user@, not starting with '-'); it becomes a word of mpirun's launch agent command",
                            where, host));
}

bool is_local_host(const std::string& host) {
  const std::string h = bare_host(host);
  if (h == "localhost" || h == "localhost.localdomain") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127 || interface_has(AF_INET, &a4);
  in6_addr a6{};
  if (inet_pton(AF_INET6, h.substr(0, h.find('%')).c_str(), &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6) || interface_has(AF_INET6, &a6);
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || !name[0]) return false;
  const std::string self = lower(name);
  auto short_name = [](const std::string& s) { return s.substr(0, s.find('.')); };
  return h == self || h == short_name(self) || short_name(h) == self;
}

std::vector<std::string> preflight_agent(const Topology& t, const std::string& resolved_rsh_agent, double timeout_s) {
  std::vector<std::string> agent;
  if (!resolved_rsh_agent.empty()) {
    agent = {resolved_rsh_agent};
  } else if (const std::string v = mca_value(t.mpi.options, "plm_rsh_agent"); !v.empty()) {
    agent = split_words(v.substr(0, v.find(':')));  // "ssh : rsh": mpirun takes the first it finds
  }
  if (agent.empty()) agent = {"ssh"};
  if (agent.size() == 1 && (agent[0] == "ssh" || agent[0].ends_with("/ssh"))) {
    const int connect = std::max(1, static_cast<int>(std::ceil(timeout_s)) - 1);
    agent.insert(agent.end(), {"-o", "BatchMode=yes", "-o", fmt::format("ConnectTimeout={}", connect)});
  }
  for (auto& w : split_words(mca_value(t.mpi.options, "plm_rsh_args"))) agent.push_back(w);
  return agent;
}

std::string agent_host_word(const Topology& t, const std::string& host) {
  const std::string keep = lower(mca_value(t.mpi.options, "orte_keep_fqdn_hostnames"));
  if (keep == "1" || keep == "t" || keep == "true" || keep == "enabled" || keep == "yes" || keep == "y") return host;
  const size_t at = host.find('@');
  const size_t start = at == std::string::npos ? 0 : at + 1;
  const std::string h = bare_host(host);
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1 || inet_pton(AF_INET6, h.substr(0, h.find('%')).c_str(), &a6) == 1)
    return host;
  const size_t dot = host.find('.', start);
  return dot == std::string::npos ? host : host.substr(0, dot);
}

std::vector<HostCheck> check_hosts(const std::vector<std::string>& agent,
                                   const std::vector<std::pair<int, std::string>>& hosts, double timeout_s) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  // After the agent exited, how long a process it left behind may keep the output pipe open.
  const auto linger = std::chrono::milliseconds(300);
  std::vector<Probe> probes(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) spawn(probes[i], agent, hosts[i].second);

  for (;;) {
    const auto now = Clock::now();
    std::vector<pollfd> fds;
    std::vector<Probe*> owner;
    bool pending = false;
    for (Probe& p : probes) {
      if (p.pid > 0 && (!p.exited || p.fd >= 0)) pending = true;
      if (p.fd >= 0) {
        fds.push_back({p.fd, POLLIN, 0});
        owner.push_back(&p);
      }
    }
    if (!pending || now >= deadline) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    if (poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(left, 1, 50))) > 0)
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) drain(*owner[i]);
    for (Probe& p : probes) {
      if (p.pid > 0 && !p.exited && waitpid(p.pid, &p.status, WNOHANG) == p.pid) {
        p.exited = true;
        p.exit_time = Clock::now();
      }
      if (p.exited && p.fd >= 0 && Clock::now() - p.exit_time > linger) {
        kill(-p.pid, SIGKILL);  // the group still exists while a member holds the pipe
        drain(p);
        if (p.fd >= 0) close(p.fd);
        p.fd = -1;
      }
    }
  }

  std::vector<HostCheck> out;
  for (size_t i = 0; i < probes.size(); ++i) {
    Probe& p = probes[i];
    HostCheck c{hosts[i].first, hosts[i].second, false, "", 0};
    bool timed_out = false;
    if (p.pid > 0 && !p.exited) {
      kill(-p.pid, SIGKILL);
      while (waitpid(p.pid, &p.status, 0) < 0 && errno == EINTR) {
      }
      timed_out = true;
      p.exit_time = Clock::now();
    }
    if (p.fd >= 0) {
      if (!timed_out) kill(-p.pid, SIGKILL);  // it exited, something it started holds the pipe
      drain(p);
      if (p.fd >= 0) close(p.fd);
    }
    if (p.pid < 0) p.exit_time = start;
    c.seconds = std::chrono::duration<double>(p.exit_time - start).count();
    const std::string line = first_line(p.out);
    if (!p.spawn_error.empty()) {
      c.cause = p.spawn_error;
    } else if (timed_out) {
      c.cause = fmt::format("no answer within {:g} s{}", timeout_s, line.empty() ? "" : " (it printed: " + line + ")");
    } else if (WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0) {
      c.ok = true;
    } else if (WIFEXITED(p.status)) {
      c.cause = fmt::format("exit code {}{}", WEXITSTATUS(p.status), line.empty() ? ", no output" : ": " + line);
    } else {
      c.cause = fmt::format("killed by signal {} ({}){}", WTERMSIG(p.status), strsignal(WTERMSIG(p.status)),
                            line.empty() ? "" : ": " + line);
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string preflight(const Topology& t, const std::string& resolved_rsh_agent, double timeout_s) {
  std::vector<std::pair<int, std::string>> remote;
  for (size_t i = 0; i < t.nodes.size(); ++i) {
    validate_host(t.nodes[i].host, t.where("nodes." + std::to_string(i)));
    if (!is_local_host(t.nodes[i].host)) remote.emplace_back(static_cast<int>(i), agent_host_word(t, t.nodes[i].host));
  }
  if (remote.empty()) return "";
  const std::vector<std::string> agent = preflight_agent(t, resolved_rsh_agent, timeout_s);
  const std::string shown = join(agent) + " HOST true";
  const std::vector<HostCheck> checks = check_hosts(agent, remote, timeout_s);
  std::string failed;
  int n_failed = 0;
  double slowest = 0;
  for (const HostCheck& c : checks) {
    slowest = std::max(slowest, c.seconds);
    if (c.ok) continue;
    ++n_failed;
    const std::string& host = t.nodes[c.node].host;
    failed += fmt::format("{}node {} ({}{}, {}): {}", failed.empty() ? "" : "; ", c.node, host,
                          c.host == host ? "" : " as " + c.host, t.where("nodes." + std::to_string(c.node)), c.cause);
  }
  const char* s = remote.size() == 1 ? "" : "s";
  if (n_failed > 0)
    throw Error(fmt::format("dsrt launch: {} of {} remote node{} did not answer the launch agent mpirun would use "
                            "(`{}`, {:g} s each), so mpirun was not started: {}. Check those nodes and mpi.rsh_agent, "
                            "or skip this check with --no-preflight",
                            n_failed, remote.size(), s, shown, timeout_s, failed));
  return fmt::format("{} remote node{} answered `{}` within {:.2f} s", remote.size(), s, shown, slowest);
}

}  // namespace dsrt
