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
# Wine's prefix lives in build/windows/wine (made on the first run, ~10 s);
# WINEDEBUG=-all keeps Wine quiet, and the Mono and Gecko installers are
# switched off, so nothing asks a question or downloads anything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/windows
LUAS=("$@")
[ ${#LUAS[@]} -eq 0 ] && LUAS=(luajit lua54)
WINE=${WINE:-$(command -v wine || command -v wine64 || echo /usr/lib/wine/wine64)}
export WINEPREFIX=$OUT/wine WINEDEBUG=-all WINEDLLOVERRIDES="mscoree=;mshtml="
export HOME=$OUT/home # Wine links its user folders to $HOME: keep them in build/
mkdir -p "$HOME"
unset DISPLAY LUA_PATH_5_4 LUA_CPATH LUA_CPATH_5_4 LUA_INIT LUA_INIT_5_4

winpath() { printf 'Z:%s' "${1//\//\\}"; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  # Wine's Z: drive links to /, and its Desktop, Documents, ... to $HOME:
  # tools that walk the tree (luacheck .) would walk the file system
  # through them. Only the prefix's relative links (c: -> ../drive_c) stay.
  find "$WINEPREFIX" -type l -lname '/*' -delete 2>/dev/null || true
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

export SMOKE_URL=http://127.0.0.1:$MOCK_PORT/v1 SMOKE_KEY=smoke-key
export SMOKE_SCRIPTED_URL=http://127.0.0.1:$SCRIPTED_PORT/v1
export LUA_PATH="$(winpath "$ROOT/lua")\\?.lua;$(winpath "$ROOT/lua")\\?\\init.lua"
# MCP over stdio: the specs' fault server, run by the Windows lua54.exe
export SMOKE_MCP_LUA="$(winpath "$OUT/lua54/lua54.exe")"
export SMOKE_MCP_SERVER="$(winpath "$ROOT/spec/support/mcp_fault_server.lua")"

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  t0=$SECONDS
  "$WINE" wineboot --init >"$OUT/wineboot.log" 2>&1 || {
    cat "$OUT/wineboot.log" >&2; echo "windows_smoke: wineboot failed" >&2; exit 1; }
  echo "windows_smoke: made the Wine prefix build/windows/wine in $((SECONDS - t0)) s"
fi

mkdir -p "$WINEPREFIX/dosdevices"
ln -sfn / "$WINEPREFIX/dosdevices/z:" # the suite's paths are Z:\...

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
