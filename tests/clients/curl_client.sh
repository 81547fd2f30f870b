#!/usr/bin/env bash
# Drives `dsrt serve` with curl: every route, streaming, and the error statuses.
# Usage: curl_client.sh PORT
set -euo pipefail
BASE="http://127.0.0.1:$1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*"; [ -f "$TMP/body" ] && head -c 2000 "$TMP/body" && echo; exit 1; }
# call EXPECTED_STATUS curl-args...: the body lands in $TMP/body
call() {
  local want=$1; shift
  local got
  got=$(curl -sS --max-time 120 -o "$TMP/body" -w '%{http_code}' "$@") || fail "curl $*"
  [ "$got" = "$want" ] || fail "$* -> HTTP $got, expected $want"
}
has() { grep -qF -- "$1" "$TMP/body" || fail "'$1' not in the response"; }
post() { local want=$1 path=$2 body=$3; call "$want" -H 'Content-Type: application/json' -d "$body" "$BASE$path"; }

call 200 "$BASE/health"; has '"status":"ok"'
call 200 "$BASE/health/ready"; has '"ready"'
call 200 "$BASE/v1/models"; has '"object":"list"'

post 200 /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"seed":1}'
has '"object":"chat.completion"'; has '"usage"'; has '"finish_reason":"'
post 200 /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}'
has '"object":"chat.completion.chunk"'; has '"delta"'
[ "$(grep -c '^data: ' "$TMP/body")" -ge 3 ] || fail "fewer than 3 events"
[ "$(grep '^data: ' "$TMP/body" | tail -n 1)" = "data: [DONE]" ] || fail "the stream does not end with [DONE]"
post 200 /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"n":2,"stop":["\n\n"]}'
has '"object":"text_completion"'; has '"index":1'
post 200 /v1/completions '{"prompt":[0, 100, 200],"max_tokens":4,"logprobs":1}'
has '"token_logprobs"'

post 400 /v1/chat/completions '{"messages":'; has '"invalid_request_error"'
post 400 /v1/chat/completions '{"messages":[{"role":"wizard","content":"Hi"}]}'; has '"param":"messages[0].role"'
post 400 /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"top_p":0}'; has '"param":"top_p"'
post 400 /v1/completions '{"prompt":"Hi","n":17}'; has '"param":"n"'
call 404 "$BASE/v1/nothing-here"; has '"error"'
head -c 9000000 /dev/zero | tr '\0' 'x' > "$TMP/big"
call 413 -H 'Content-Type: application/json' --data-binary "@$TMP/big" "$BASE/v1/chat/completions"

call 200 "$BASE/metrics"
has 'dsrt_requests_total{route="/v1/chat/completions",status="200"} 2'
has 'dsrt_time_to_first_token_seconds_bucket'; has 'dsrt_kv_cache_blocks_total'
echo "curl client: all checks passed"
