#!/usr/bin/env bash
# Starts `dsrt serve` on loopback (port chosen by the server) with a tiny random model that has
# DeepSeek's vocabulary and tokenizer, runs one client against it, and stops the server.
# Usage: run.sh DSRT_BINARY RANKS CLIENT      CLIENT: node (openai package) | curl
# Exit 77 (CTest SKIP_RETURN_CODE) with a message when a tool the client needs is missing.
set -uo pipefail
DSRT=$1 RANKS=$2 CLIENT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../data"

skip() { echo "SKIP: $*"; exit 77; }
case "$CLIENT" in
  node)
    command -v node >/dev/null || skip "node not found (apt-get install nodejs npm; then npm ci in tests/clients)"
    [ -f "$HERE/node_modules/openai/package.json" ] || skip "tests/clients/node_modules is missing: run 'npm ci' in tests/clients"
    ;;
  curl) command -v curl >/dev/null || skip "curl not found" ;;
  *) echo "unknown client '$CLIENT'"; exit 2 ;;
esac
if [ "$RANKS" -gt 1 ]; then command -v mpirun >/dev/null || skip "mpirun not found"; fi

WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cp "$DATA/tokenizer/tokenizer.json" "$DATA/tokenizer/tokenizer_config.json" "$WORK/"
cp "$HERE/tiny-config.json" "$WORK/config.json"
if [ "$CLIENT" = node ]; then node "$HERE/make_r1_config.mjs" "$WORK/tokenizer_config.json" || exit 1; fi

ARGS=(serve --model "$WORK" --load-format dummy --port 0 --threads 1 --log-level warn)
if [ "$RANKS" -gt 1 ]; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun -np "$RANKS" --oversubscribe --allow-run-as-root --bind-to none "$DSRT" "${ARGS[@]}" >"$WORK/serve.log" 2>&1 &
else
  "$DSRT" "${ARGS[@]}" >"$WORK/serve.log" 2>&1 &
fi
PID=$!

PORT=""
for _ in $(seq 1200); do  # up to 120 s
  PORT=$(grep -o 'ready on http://127\.0\.0\.1:[0-9]*' "$WORK/serve.log" | grep -o '[0-9]*$' | head -n 1)
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "FAIL: dsrt serve did not get ready"; cat "$WORK/serve.log"; exit 1
fi
echo "dsrt serve ($RANKS rank(s)) on port $PORT"

if [ "$CLIENT" = node ]; then
  timeout -k 5 240 node "$HERE/openai_client.mjs" "$PORT"
else
  timeout -k 5 240 bash "$HERE/curl_client.sh" "$PORT"
fi
STATUS=$?

kill -TERM "$PID" 2>/dev/null
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
  echo "FAIL: dsrt serve did not stop within 30 s of SIGTERM"; STATUS=1
else
  wait "$PID"
  CODE=$?
  PID=""
  # One rank stops cleanly with 0; mpirun exits non-zero after forwarding a signal.
  if [ "$RANKS" -eq 1 ] && [ "$CODE" -ne 0 ]; then echo "FAIL: dsrt serve exited with $CODE"; STATUS=1; fi
fi
if [ "$STATUS" -ne 0 ]; then echo "--- server log"; cat "$WORK/serve.log"; fi
exit "$STATUS"
