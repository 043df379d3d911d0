#!/usr/bin/env bash
# windows_smoke.sh [luajit] [lua54]: runs spec/windows/smoke.lua under Wine
# with build/windows/<lua>/<lua>.exe and its baseten/core.dll (make windows
# builds them), against two local test servers (spec/support/server.py on
# 127.0.0.1): one answering as the mock model and wanting a key, one loaded
# before each run with the scripted responses the suite expects (a 429,
# its retry, a slow response), and an MCP stdio server (the specs' fault
# server on lua54.exe). Prints each run's "N passed, N failed" line
# and fails if either run failed.
#
# Wine's prefix lives in build/windows/wine (scripts/wine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/windows
LUAS=("$@")
[ ${#LUAS[@]} -eq 0 ] && LUAS=(luajit lua54)
. scripts/wine.sh

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  wine_unlink
}
trap cleanup EXIT

start_server() { # start_server NAME [args...]: sets PORT
  local name=$1
  shift
  python3 spec/support/server.py --port 0 --port-file "$tmp/$name.port" --parent-pid $$ "$@" \
    >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 500); do
    [ -s "$tmp/$name.port" ] && break
    sleep 0.02
  done
  PORT=$(cat "$tmp/$name.port" 2>/dev/null) || { cat "$tmp/$name.log" >&2; exit 1; }
}

control() { # control PORT PATH [JSON]: POSTs to the server's control API
  python3 - "$@" <<'EOF'
import sys, urllib.request
port, path = sys.argv[1], sys.argv[2]
data = (sys.argv[3] if len(sys.argv) > 3 else "").encode()
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), data=data, method="POST")
urllib.request.urlopen(req, timeout=30).read()
EOF
}

start_server mock --api-key smoke-key
MOCK_PORT=$PORT
start_server scripted
SCRIPTED_PORT=$PORT

# what smoke.lua expects of the scripted server, in order
COMPLETION='{"id": "chatcmpl-smoke", "object": "chat.completion", "created": 1, "model": "test/smoke",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "after the retry"},
               "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}'
SCRIPT='{"responses": [
  {"status": 429, "headers": {"Retry-After": "2"},
   "json": {"error": {"message": "slow down", "type": "rate_limit_error"}}},
  {"json": '$COMPLETION'},
  {"delay": 4, "json": '$COMPLETION'}]}'

# nginx with TLS in front of the mock (spec/windows/tls_front.lua, on the
# Lua 5.4 build): SMOKE_TLS_URL names localhost, the certificate's name;
# SMOKE_TLS_IP_URL the same server as 127.0.0.1, a host name mismatch
[ -f .rocks/5.4/lib/lua/5.4/baseten/core.so ] || LUA_VERSIONS=5.4 bash scripts/build.sh
(source scripts/env.sh 5.4 && exec lua5.4 spec/windows/tls_front.lua "$MOCK_PORT" "$tmp/tls" $$) \
  >"$tmp/tls.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 500); do [ -s "$tmp/tls" ] && break; sleep 0.02; done
[ -s "$tmp/tls" ] || { cat "$tmp/tls.log" >&2; echo "windows_smoke: the TLS server did not start" >&2; exit 1; }
read -r tls_url tls_ip_url tls_ca <"$tmp/tls"
export SMOKE_TLS_URL=$tls_url SMOKE_TLS_IP_URL=$tls_ip_url SMOKE_TLS_CA="$(winpath "$tls_ca")"

export SMOKE_URL=http://127.0.0.1:$MOCK_PORT/v1 SMOKE_KEY=smoke-key
export SMOKE_SCRIPTED_URL=http://127.0.0.1:$SCRIPTED_PORT/v1
export LUA_PATH="$(winpath "$ROOT/lua")\\?.lua;$(winpath "$ROOT/lua")\\?\\init.lua"
# MCP over stdio: the specs' fault server, run by the Windows lua54.exe
export SMOKE_MCP_LUA="$(winpath "$OUT/lua54/lua54.exe")"
export SMOKE_MCP_SERVER="$(winpath "$ROOT/spec/support/mcp_fault_server.lua")"

wine_prefix

status=0
for lua in "${LUAS[@]}"; do
  case "$lua" in
    luajit) exe=luajit.exe ;;
    lua54) exe=lua54.exe ;;
    *) echo "windows_smoke: unknown Lua '$lua' (luajit or lua54)" >&2; exit 2 ;;
  esac
  [ -f "$OUT/$lua/$exe" ] && [ -f "$OUT/$lua/baseten/core.dll" ] || {
    echo "windows_smoke: build/windows/$lua is not built (make windows)" >&2; exit 1; }
  control "$SCRIPTED_PORT" /_control/reset
  control "$SCRIPTED_PORT" /_control/enqueue "$SCRIPT"
  t0=$SECONDS
  # cwd is the interpreter's folder: Lua's default cpath finds baseten\core.dll there
  rc=0
  (cd "$OUT/$lua" && timeout 300 "$WINE" "$exe" "$(winpath "$ROOT/spec/windows/smoke.lua")") \
    >"$tmp/$lua.out" 2>&1 || rc=$?
  tr -d '\r' <"$tmp/$lua.out"
  echo "windows_smoke: $lua under Wine: $((SECONDS - t0)) s, exit $rc"
  last=$(tr -d '\r' <"$tmp/$lua.out" | tail -n 1)
  if [ "$rc" -ne 0 ] || ! [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then status=1; fi
done
exit $status
