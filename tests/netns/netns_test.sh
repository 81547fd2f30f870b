#!/bin/bash
# CTest driver for the emulated 2-node cluster (bench/netns-cluster.sh,
# cluster-configs/netns-2node.yaml). Exit 0 pass, 1 fail, 77 skip (namespaces unavailable here;
# the reason is printed).
#
#   netns_test.sh golden    --dsrt DSRT --tool DSRT_NETNS_GOLDEN --source SRC_DIR
#       `netns-cluster.sh run 2 --rate 1gbit -- dsrt launch --topology netns-2node.yaml --
#        logits --model tests/data/golden/tiny-v3 --ids <tokens[0]> --decode-from P --out F`,
#       then F against the golden logits (max |d| <= 2e-2, mean <= 2e-3), each rank on its own
#       node, traffic over both links.
#   netns_test.sh link_down --dsrt DSRT --source SRC_DIR
#       a long `dsrt generate` (dummy weights of a small config without an end-of-sentence id)
#       with DSRT_WATCHDOG_SECONDS=10 forwarded to the ranks; once it runs, `link-down 1`; the
#       watchdog must name rank 1 within the deadline + 5 s and the whole job (mpirun) must end
#       non-zero within LINK_DOWN_LIMIT s (the deadline + the rsh agent's 15 s liveness timeout +
#       slack); nothing may be left behind.
#   netns_test.sh unreachable --dsrt DSRT --source SRC_DIR
#       `dsrt launch ... -- logits ...` on the 2-node cluster with a node that cannot be reached,
#       under the real rsh agent: (a) a topology naming 10.77.0.1 and 10.77.0.3 (no namespace
#       plays 10.77.0.3), (b) netns-2node.yaml after `link-down 1` (10.77.0.2 exists but nothing
#       answers). Each must exit != 0 within 10 s with one error naming that node and the cause,
#       without starting mpirun (dsrt launch's pre-flight); nothing may be left behind.
# Everything runs under `timeout`; the cluster is torn down by netns-cluster.sh's own trap, and
# this script's trap stops the run (and so the cluster) if it is interrupted.
set -u

mode=${1:-}
shift || true
dsrt="" tool="" src=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dsrt) dsrt=$2; shift 2 ;;
    --tool) tool=$2; shift 2 ;;
    --source) src=$2; shift 2 ;;
    *) echo "netns_test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$dsrt" ] && [ -n "$src" ] || { echo "usage: netns_test.sh golden|link_down|unreachable --dsrt DSRT [--tool TOOL] --source SRC" >&2; exit 2; }

cluster=$src/bench/netns-cluster.sh
topology=$src/cluster-configs/netns-2node.yaml
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

tmp=$(mktemp -d /tmp/dsrt-netns-test.XXXXXX)
log=$tmp/output.txt
run_pid=""
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

cleanup() {
  # An interrupted test: stop the run; netns-cluster.sh's trap then removes the cluster.
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM "$run_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$run_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

show_log() { echo "--- output ---"; cat "$log"; echo "--------------"; }
# What is still running (for a failure while the job runs).
diagnose() {
  [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null || return 0
  echo "--- still running: processes under the run, sockets to 10.77.0.0/24 ---"
  ps -o pid,ppid,stat,etime,args --forest -g "$(ps -o sid= -p "$run_pid" | tr -d ' ')" 2>/dev/null | cut -c1-200
  ss -tnp 2>/dev/null | grep -F '10.77.0.' || true
  echo "--------------"
}
fail() {
  diagnose
  show_log
  echo "FAIL netns_2node_$mode: $*"
  exit 1
}
skip_if_unavailable() {  # $1 = exit code of netns-cluster.sh
  if [ "$1" -eq 77 ] && grep -q "cannot emulate nodes here" "$log"; then
    echo "SKIP netns_2node_$mode: $(grep -m1 "cannot emulate nodes here" "$log")"
    exit 77
  fi
}
# Nothing of the cluster may outlive the run.
check_clean() {
  local st
  st=$("$cluster" status 2>&1)
  [ $? -eq 3 ] || fail "left behind after the run:
$st"
  echo "$st"
}

[ -x "$dsrt" ] || fail "no dsrt executable at $dsrt"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP netns_2node_$mode: mpirun (Open MPI) is not on PATH"; exit 77; }

case "$mode" in
golden)
  [ -x "$tool" ] || fail "no dsrt_netns_golden at $tool"
  model=$src/tests/data/golden/tiny-v3
  golden=$model/golden.safetensors
  ids=$("$tool" ids "$golden" 0) || fail "cannot read tokens[0] of $golden"
  from=$("$tool" decode-from "$golden") || fail "cannot read decode_logits of $golden"
  out=$tmp/logits.safetensors
  t0=$(now_ms)
  timeout -k 10 150 "$cluster" run 2 --rate 1gbit -- \
    "$dsrt" launch --topology "$topology" -- logits --model "$model" --ids "$ids" --decode-from "$from" \
    --out "$out" >"$log" 2>&1 &
  run_pid=$!
  wait "$run_pid"
  rc=$?
  run_pid=""
  ms=$(($(now_ms) - t0))
  skip_if_unavailable "$rc"
  echo "run exited with code $rc after $(secs "$ms") s"
  [ "$rc" -eq 0 ] || fail "the run exited with code $rc"
  grep -q '"rate_applied":true' "$log" || fail "no rate limit was applied (see the JSON line)"
  # Both links carried the job's traffic (tp all-reduces + MoE all-to-all: hundreds of KB).
  traffic=$(grep -m1 '^{"traffic"' "$log") || fail "no traffic report from netns-cluster.sh"
  for n in 0 1; do
    tx=$(echo "$traffic" | sed -n "s/.*\"node\":\"dsrt-n$n\",\"tx_bytes\":\([0-9]*\).*/\1/p")
    [ -n "$tx" ] && [ "$tx" -gt 100000 ] || fail "dsrt-n$n sent only ${tx:-?} bytes over its link: the ranks did not talk over the emulated network"
  done
  echo "$traffic"
  "$tool" compare "$out" "$golden" 0 || fail "logits differ from the golden logits"
  check_clean
  echo "--- output (last 40 lines) ---"; tail -n 40 "$log"
  echo "PASS netns_2node_golden ($(secs "$ms") s)"
  ;;

link_down)
  deadline=10
  limit=${LINK_DOWN_LIMIT:-35}
  # A small config with no eos_token_id, so generation runs until stopped (~3 ms per token).
  cat >"$tmp/config.json" <<'EOF'
{
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 512, "hidden_size": 192, "intermediate_size": 384, "moe_intermediate_size": 64,
  "num_hidden_layers": 3, "first_k_dense_replace": 1, "num_attention_heads": 8, "num_key_value_heads": 8,
  "q_lora_rank": 96, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
  "n_routed_experts": 16, "n_shared_experts": 1, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
  "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
  "rope_theta": 10000.0, "max_position_embeddings": 65536, "hidden_act": "silu", "rms_norm_eps": 1e-06,
  "bos_token_id": 0, "tie_word_embeddings": false, "attention_bias": false, "moe_layer_freq": 1,
  "torch_dtype": "bfloat16", "num_nextn_predict_layers": 0
}
EOF
  # The deadline reaches every rank the way -x would pass it (Open MPI's mca_base_env_list), not
  # through the inherited environment (which only the emulation's local rsh agent would carry).
  unset DSRT_WATCHDOG_SECONDS
  export OMPI_MCA_mca_base_env_list="DSRT_WATCHDOG_SECONDS=$deadline"
  export DSRT_NETNS_ALIVE_TIMEOUT=15
  timeout -k 10 170 "$cluster" run 2 --rate 1gbit -- \
    "$dsrt" launch --topology "$topology" -- generate --model "$tmp/config.json" --load-format dummy \
    --ids 1,2,3 --max-tokens 50000 --log-level info >"$log" 2>&1 &
  run_pid=$!
  # Running: rank 1 has loaded its weights (its "resident" line), or failing that its process has
  # existed in dsrt-n1 for 10 s. Then let it generate for 2 s.
  seen=0
  for _ in $(seq 600); do
    kill -0 "$run_pid" 2>/dev/null || break
    grep -q "rank 1 resident" "$log" && break
    pids=$(ip netns pids dsrt-n1 2>/dev/null) || pids=""
    for p in $pids; do [ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = dsrt ] && seen=$((seen + 1)) && break; done
    [ "$seen" -ge 100 ] && break
    sleep 0.1
  done
  if ! kill -0 "$run_pid" 2>/dev/null; then
    wait "$run_pid"
    rc=$?
    run_pid=""
    skip_if_unavailable "$rc"
    fail "the job ended (code $rc) before the link went down"
  fi
  sleep 2
  kill -0 "$run_pid" 2>/dev/null || fail "the job ended before the link went down"
  "$cluster" link-down 1 || fail "link-down 1 failed"
  t0=$(now_ms)
  regex="dsrt: error: watchdog: (rank 1 \(host [^)]*\) sent no heartbeat|.*ranks that did not arrive: 1 \(host )"
  msg_ms=""
  while kill -0 "$run_pid" 2>/dev/null; do
    if [ -z "$msg_ms" ] && grep -Eq -- "$regex" "$log"; then msg_ms=$(($(now_ms) - t0)); fi
    [ $(($(now_ms) - t0)) -le $(((limit + 30) * 1000)) ] || break
    sleep 0.2
  done
  if kill -0 "$run_pid" 2>/dev/null; then
    fail "the job still runs $((limit + 30)) s after link-down (limit $limit s)"
  fi
  wait "$run_pid"
  rc=$?
  run_pid=""
  ms=$(($(now_ms) - t0))
  if [ -z "$msg_ms" ] && grep -Eq -- "$regex" "$log"; then msg_ms=$ms; fi
  echo "job exit code $rc $(secs "$ms") s after link-down (limit $limit s); watchdog line naming rank 1 after $([ -n "$msg_ms" ] && echo "$(secs "$msg_ms") s" || echo never) (limit $((deadline + 5)) s)"
  [ "$rc" -ne 0 ] || fail "the job exited 0"
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "the job was ended by the test's timeout (code $rc), not by itself"
  [ -n "$msg_ms" ] || fail "no watchdog line naming rank 1 (regex: $regex)"
  [ "$msg_ms" -le $(((deadline + 5) * 1000)) ] || fail "the watchdog named rank 1 only after $(secs "$msg_ms") s (deadline $deadline s)"
  [ "$ms" -le $((limit * 1000)) ] || fail "the job took $(secs "$ms") s to end after link-down, more than $limit s"
  grep -q "limit $deadline.0 s" "$log" || echo "note: the watchdog line does not show 'limit $deadline.0 s'"
  check_clean
  echo "--- output (without the info lines) ---"; grep -v '\] \[info\] ' "$log" | tail -n 60
  echo "PASS netns_2node_link_down (watchdog after $(secs "$msg_ms") s, job ended after $(secs "$ms") s)"
  ;;

unreachable)
  limit_ms=10000
  model=$src/tests/data/golden/tiny-v3
  # netns-2node.yaml with its second node moved to 10.77.0.3, which `run 2` does not create.
  sed -e 's/host: 10\.77\.0\.2,/host: 10.77.0.3,/' -e "s|rsh_agent: .*|rsh_agent: $src/cluster-configs/netns/rsh-agent.sh|" \
    "$topology" >"$tmp/unreachable.yaml"
  grep -q 'host: 10.77.0.3,' "$tmp/unreachable.yaml" || fail "could not write $tmp/unreachable.yaml from $topology"
  # Inside the cluster each launch is timed on its own (the cluster's setup is not part of it) and
  # bounded by timeout (a hang ends as code 124): "code ms" in NAME.result, its output in NAME.log.
  cat >"$tmp/inner.sh" <<'INNER'
#!/bin/bash
tmp=$1 dsrt=$2 cluster=$3 topology=$4 model=$5
timed() {
  local name=$1 t0 rc
  shift
  t0=$(date +%s%N)
  timeout -k 2 30 "$@" >"$tmp/$name.log" 2>&1
  rc=$?
  echo "$rc $((($(date +%s%N) - t0) / 1000000))" >"$tmp/$name.result"
}
timed missing "$dsrt" launch --topology "$tmp/unreachable.yaml" -- logits --model "$model" --ids 1,2,3 --out "$tmp/a.safetensors"
"$cluster" link-down 1 || exit 1
timed silent "$dsrt" launch --topology "$topology" -- logits --model "$model" --ids 1,2,3 --out "$tmp/b.safetensors"
INNER
  timeout -k 10 100 "$cluster" run 2 -- bash "$tmp/inner.sh" "$tmp" "$dsrt" "$cluster" "$topology" "$model" >"$log" 2>&1 &
  run_pid=$!
  wait "$run_pid"
  rc=$?
  run_pid=""
  skip_if_unavailable "$rc"
  [ "$rc" -eq 0 ] || fail "the run exited with code $rc"
  # check_case NAME NODE HOST-REGEX CAUSE-REGEX
  check_case() {
    local name=$1 node=$2 host=$3 cause=$4 result code ms line
    result=$(cat "$tmp/$name.result" 2>/dev/null) || fail "$name: no result (the launch did not run)"
    code=${result% *} ms=${result#* }
    echo "--- $name: dsrt launch exited with code $code after $(secs "$ms") s ---"
    cat "$tmp/$name.log"
    [ "$code" -ne 0 ] || fail "$name: dsrt launch exited 0"
    [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || fail "$name: dsrt launch was ended by timeout (code $code)"
    [ "$ms" -le "$limit_ms" ] || fail "$name: dsrt launch took $(secs "$ms") s, more than $((limit_ms / 1000)) s"
    line=$(grep -m1 '^dsrt: error: ' "$tmp/$name.log") || fail "$name: no 'dsrt: error:' line"
    echo "$line" | grep -q "1 of 2 remote nodes did not answer" || fail "$name: the error does not say 1 of 2 remote nodes failed"
    echo "$line" | grep -Eq "node $node \\($host, [^)]*\\): $cause" || fail "$name: the error does not name node $node ($host) with /$cause/"
    echo "$line" | grep -q "rsh-agent.sh HOST true" || fail "$name: the error does not show the agent command"
    ! grep -q 'node 0 (10.77.0.1' "$tmp/$name.log" || fail "$name: the reachable node 10.77.0.1 was reported"
    ! grep -q 'ORTE\|orted' "$tmp/$name.log" || fail "$name: mpirun was started"
  }
  check_case missing 1 '10\.77\.0\.3' 'exit code 255: rsh-agent\.sh: network namespace dsrt-n2 \(for 10\.77\.0\.3\) does not exist'
  check_case silent 1 '10\.77\.0\.2' 'no answer within 6 s'
  check_clean
  echo "PASS netns_2node_unreachable"
  ;;

*)
  echo "netns_test.sh: unknown test '$mode' (golden | link_down | unreachable)" >&2
  exit 2
  ;;
esac
exit 0
