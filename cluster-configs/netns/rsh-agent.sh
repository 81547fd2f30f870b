#!/bin/sh
# mpirun's remote-shell agent for emulated nodes (cluster-configs/netns-2node.yaml):
# called like ssh as `rsh-agent.sh [options] HOST command...`, it runs the command in the
# network namespace that plays HOST:
#   10.77.0.1 | dsrt-n0 | n0  ->  dsrt-n0
#   10.77.0.2 | dsrt-n1 | n1  ->  dsrt-n1
#   10.77.0.K                 ->  dsrt-n(K-1)
# The command words are joined with spaces and run by sh -c, as ssh would on a real node.
# DSRT_NETNS_EXEC replaces "ip netns exec" (e.g. "sudo -E ip netns exec" when not root).
# The namespaces come from bench/netns-cluster.sh (`up N` or `run N -- ...`).
#
# Like ssh, the agent stays in the foreground until the command ends and exits with its code.
# Like ssh's connect, it first needs an answer from HOST over the emulated network (a TCP
# connection to HOST port 9; a refusal proves the node answers): a node whose link is down
# (`netns-cluster.sh link-down`) is not reached, and after DSRT_NETNS_CONNECT_TIMEOUT seconds
# (default 10; 0 skips the check) the agent prints
#   rsh-agent.sh: cannot reach HOST (dsrt-nK): no answer over the emulated network within N s
# and exits 255, as ssh does with ConnectTimeout. A HOST whose namespace does not exist fails at
# once (exit 255, naming the namespace).
# And like ssh with ServerAliveInterval, it notices a dead network path. The agent itself runs
# in the root namespace, outside the emulated network, so without this a node cut off by
# `netns-cluster.sh link-down` would look alive to mpirun until TCP gives up (~15 min of
# retransmissions): Open MPI 4 has no daemon heartbeat, and once a job abort is under way (e.g.
# dsrt's watchdog called MPI_Abort) mpirun waits for every daemon's reply. So, when HOST is
# reached through the emulated network (the route to it goes over the bridge dsrt-br0):
#   * Open MPI's daemon is kept attached to the agent: the word --daemonize (which mpirun adds
#     with plm_rsh_no_tree_spawn) is dropped from the command, so the daemon's life is the
#     agent's, as it is an ssh session's;
#   * about once per second the agent opens a TCP connection to HOST port 9 over the emulated
#     network (a refusal proves the node answers); when no answer came for
#     DSRT_NETNS_ALIVE_TIMEOUT seconds (default 15; 0 disables all of this) after at least one
#     did, it prints
#       rsh-agent.sh: lost the connection to HOST (dsrt-nK): no answer for N s ...
#     closes this machine's TCP connections to the node (`ss -K dst ADDR`, what TCP's timeout
#     would do much later), kills the command's processes and exits 255, as ssh does ("Timeout,
#     server not responding"). mpirun then sees the daemon fail (before an abort) or loses its
#     connection to it (during one) and ends the job.
#
# With the default "ip netns exec" the command also gets its own UTS namespace with the
# hostname dsrt-nK (ranks report "host dsrt-n1", not the machine's name); DSRT_NETNS_HOSTNAME=0
# keeps the machine's name.
set -eu

# ssh-style options before the host (mpirun may pass some) are ignored.
while [ $# -gt 0 ]; do
  case "$1" in
    -l|-p|-o|-i|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ]; then
  echo "rsh-agent.sh: usage: rsh-agent.sh HOST command..." >&2
  exit 255
fi
host=$1
shift

case "$host" in
  10.77.0.*)
    k=${host#10.77.0.}
    case "$k" in
      ''|*[!0-9]*) echo "rsh-agent.sh: $host is not an emulated node address" >&2; exit 255 ;;
    esac
    if [ "$k" -lt 1 ] || [ "$k" -gt 253 ]; then
      echo "rsh-agent.sh: $host is not an emulated node address (10.77.0.1-10.77.0.253)" >&2
      exit 255
    fi
    ns=dsrt-n$((k - 1)) ;;
  dsrt-n[0-9]*) ns=$host ;;
  n[0-9]*) ns=dsrt-$host ;;
  *)
    echo "rsh-agent.sh: unknown emulated host '$host' (expected 10.77.0.K, dsrt-nN or nN)" >&2
    exit 255 ;;
esac
idx=${ns#dsrt-n}
case "$idx" in ''|*[!0-9]*) echo "rsh-agent.sh: unknown emulated host '$host'" >&2; exit 255 ;; esac
addr=10.77.0.$((idx + 1))

if [ -z "${DSRT_NETNS_EXEC:-}" ] && [ ! -e "/var/run/netns/$ns" ] && [ ! -e "/run/netns/$ns" ]; then
  echo "rsh-agent.sh: network namespace $ns (for $host) does not exist; create the emulated nodes first (bench/netns-cluster.sh up N)" >&2
  exit 255
fi

timeout_s=${DSRT_NETNS_ALIVE_TIMEOUT:-15}
case "$timeout_s" in ''|*[!0-9]*) echo "rsh-agent.sh: DSRT_NETNS_ALIVE_TIMEOUT='$timeout_s' is not a whole number of seconds" >&2; exit 255 ;; esac
connect_s=${DSRT_NETNS_CONNECT_TIMEOUT:-10}
case "$connect_s" in ''|*[!0-9]*) echo "rsh-agent.sh: DSRT_NETNS_CONNECT_TIMEOUT='$connect_s' is not a whole number of seconds" >&2; exit 255 ;; esac

# The command, in the node's network namespace (and, by default, its own UTS namespace).
run_in_node() {
  if [ -z "${DSRT_NETNS_EXEC:-}" ] && [ "${DSRT_NETNS_HOSTNAME:-1}" != 0 ] && command -v unshare >/dev/null 2>&1; then
    # shellcheck disable=SC2016
    exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" 2>/dev/null; exec sh -c "$2"' sh "$ns" "$*"
  fi
  # shellcheck disable=SC2086
  exec ${DSRT_NETNS_EXEC:-ip netns exec} "$ns" sh -c "$*"
}

# Does HOST answer over the emulated network within 1 s? (A refused connection is an answer.)
answers() {
  out=$(timeout 1 bash -c "exec 3<>/dev/tcp/$addr/9" 2>&1) || case "$out" in *refused*) true ;; *) false ;; esac
}

# The connect and liveness checks need bash (/dev/tcp), timeout, and HOST behind the emulated
# bridge (never probe an address that would leave the machine).
emulated=0
if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1 &&
   ip -o route get "$addr" 2>/dev/null | grep -q " dev dsrt-br0 "; then
  emulated=1
fi
if [ "$emulated" -eq 1 ] && [ "$connect_s" -gt 0 ]; then
  start=$(date +%s)
  until answers; do
    if [ $(($(date +%s) - start)) -ge "$connect_s" ]; then
      echo "rsh-agent.sh: cannot reach $host ($ns): no answer over the emulated network within $connect_s s (DSRT_NETNS_CONNECT_TIMEOUT); is its link down?" >&2
      exit 255
    fi
    sleep 0.2 2>/dev/null || sleep 1
  done
fi
if [ "$timeout_s" -eq 0 ] || [ "$emulated" -eq 0 ]; then
  run_in_node "$@"
fi

# Keep Open MPI's daemon attached (see above).
for word do
  shift
  [ "$word" = --daemonize ] && continue
  set -- "$@" "$word"
done

# Every descendant of pid $1, one per line.
descendants() {
  if command -v ps >/dev/null 2>&1; then
    ps -e -o pid= -o ppid=
  else
    for f in /proc/[0-9]*/stat; do
      read -r line <"$f" 2>/dev/null || continue
      p=${f#/proc/}
      line=${line##*) }
      # shellcheck disable=SC2086
      set -- $line
      echo "${p%/stat} $2"
    done
  fi | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = split(kids[root], q, " "); for (i = 1; i <= n; i++) { m = split(kids[q[i]], more, " "); for (j = 1; j <= m; j++) q[++n] = more[j] }
          for (i = 1; i <= n; i++) print q[i] }'
}

kill_tree() {
  for p in $1 $(descendants "$1"); do kill -KILL "$p" 2>/dev/null || true; done
}

# mpirun ending the agent (TERM/INT/HUP) ends the command, as a closed ssh session would; the
# liveness check reports a lost node with USR1. (Set before the children start; subshells reset them.)
child="" monitor="" lost=0 agent=$$
trap 'kill_tree "$child"; kill -KILL "$monitor" 2>/dev/null; exit 255' TERM INT HUP
trap 'lost=1' USR1

run_in_node "$@" &
child=$!

# The liveness check. On a dead link: the message, the machine's sockets to the node closed,
# the agent told (USR1), then the command's processes killed.
(
  last_ok=""
  while kill -0 "$child" 2>/dev/null; do
    now=$(date +%s)
    if answers; then
      last_ok=$now
    elif [ -n "$last_ok" ] && [ $((now - last_ok)) -ge "$timeout_s" ]; then
      echo "rsh-agent.sh: lost the connection to $host ($ns): no answer for $((now - last_ok)) s (DSRT_NETNS_ALIVE_TIMEOUT=$timeout_s); closing this machine's connections to $addr and killing the command there" >&2
      # Let the machine's own sockets to the node fail as a TCP timeout would (after ~15 min of
      # retransmissions): mpirun's connection to the daemon there, which it would otherwise wait
      # on forever once a job abort is under way.
      if command -v ss >/dev/null 2>&1; then
        ss -K dst "$addr" >/dev/null 2>&1
        if ss -tn dst "$addr" 2>/dev/null | grep -q ESTAB; then
          echo "rsh-agent.sh: 'ss -K dst $addr' left connections open (kernel without CONFIG_INET_DIAG_DESTROY?): mpirun may wait for TCP's own timeout" >&2
        fi
      fi
      kill -USR1 "$agent" 2>/dev/null
      kill_tree "$child"
      exit 0
    fi
    sleep 1 >/dev/null 2>&1
  done
  exit 0
) </dev/null >/dev/null &
monitor=$!

rc=0
while :; do
  rc=0
  wait "$child" 2>/dev/null || rc=$?  # (2>/dev/null: no "Killed" from dash)
  # A wait interrupted by USR1 returns (> 128) while the child still exists: wait again.
  [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null || break
done
if [ "$lost" -eq 1 ]; then
  wait "$monitor" 2>/dev/null || true
  exit 255
fi
kill -KILL "$monitor" 2>/dev/null || true
wait "$monitor" 2>/dev/null || true
exit "$rc"
