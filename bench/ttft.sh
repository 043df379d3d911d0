#!/usr/bin/env bash
# Time to first token added by the client (issue 26, part 4): from the
# server writing the first SSE event (bench/ttft_server.py notes
# CLOCK_MONOTONIC just before its send) to the first piece handed to Lua by
# stream:pieces() (bench/ttft.lua, baseten.core.now, the same clock), for
# Lua 5.4 and LuaJIT, against a bare libcurl loop in C (bench/c_ttft.c:
# the first bytes in its write callback) on the same stream. Each request
# is a new connection; the server waits 30 ms after the headers, so every
# client sits in its wait when the event comes. Prints a Markdown table of
# the median and 90th percentile in µs over BENCH_TTFT_N (200) requests.
#   bash bench/ttft.sh      (uses the rocks in .rocks/, as run.lua does)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
N=${BENCH_TTFT_N:-200}
mkdir -p "$OUT"
cc -std=c99 -O2 -Wall -Wextra -Wpedantic -o "$OUT/c_ttft" bench/c_ttft.c -lcurl

measure() { # name, command... (gets BASE_URL N appended) -> "name median p90" in µs
  local name=$1 port
  shift
  rm -f "$OUT/ttft.port"
  python3 bench/ttft_server.py "$OUT/ttft.port" "$N" >"$OUT/ttft.server" &
  local srv=$!
  for _ in $(seq 100); do [ -s "$OUT/ttft.port" ] && break; sleep 0.05; done
  port=$(cat "$OUT/ttft.port")
  "$@" "http://127.0.0.1:$port/v1" "$N" >"$OUT/ttft.client"
  wait "$srv"
  paste "$OUT/ttft.server" "$OUT/ttft.client" | awk '{ printf "%.1f\n", ($2 - $1) * 1e6 }' | sort -n >"$OUT/ttft.us"
  awk -v name="$name" '{ v[NR] = $1 } END { printf "%s %.0f %.0f\n", name, v[int((NR + 1) / 2)], v[int(NR * 0.9)] }' "$OUT/ttft.us"
}

lua_cmd() { # version interp
  local tree=$ROOT/.rocks/$1
  echo env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "LUA_PATH=$tree/share/lua/$1/?.lua;$tree/share/lua/$1/?/init.lua;;" \
    "LUA_CPATH=$tree/lib/lua/$1/?.so;;" "$2" "$ROOT/bench/ttft.lua"
}

set -f # the ? in LUA_PATH, in unquoted words
read -r _ c_med c_p90 < <(measure c "$OUT/c_ttft")
# shellcheck disable=SC2046
read -r _ l54_med l54_p90 < <(measure lua54 $(lua_cmd 5.4 lua5.4))
# shellcheck disable=SC2046
read -r _ jit_med jit_p90 < <(measure luajit $(lua_cmd 5.1 luajit))
echo "| client | first byte -> first piece, median µs | p90 µs | added over the C loop (median) |"
echo "|---|---|---|---|"
echo "| bare libcurl loop in C (write callback) | $c_med | $c_p90 | - |"
echo "| \`stream:pieces()\`, Lua 5.4 | $l54_med | $l54_p90 | $((l54_med - c_med)) |"
echo "| \`stream:pieces()\`, LuaJIT | $jit_med | $jit_p90 | $((jit_med - c_med)) |"
