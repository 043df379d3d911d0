#!/usr/bin/env bash
# Instructions per request of a batch (issue 26, part 2), load-independent:
# callgrind counts the consumer process's instructions for a batch of
# BIG requests and for one of SMALL; (big - small) / (BIG - SMALL) is the
# cost of one request with start-up and warm-up taken out. Consumers: the C
# floor (bench/c_batch.c), client:batch on Lua 5.4 and LuaJIT with this
# tree's core and Lua, and, with BENCH_BEFORE_REF (a git ref, e.g. main), the
# same with that ref's. All against one nginx answering a canned chat
# completion (as run.lua's batch scenario), at BENCH_BATCH_C in flight.
#   bash bench/batch_instr.sh            prints a Markdown table
#   BENCH_BEFORE_REF=main bash bench/batch_instr.sh
# Knobs: BENCH_INSTR_BIG (3000), BENCH_INSTR_SMALL (500), BENCH_BATCH_C (64).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
BIG=${BENCH_INSTR_BIG:-3000}
SMALL=${BENCH_INSTR_SMALL:-500}
C=${BENCH_BATCH_C:-64}
BODY='{"id":"chatcmpl-bench","object":"chat.completion","created":1735689600,"model":"test/bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}'
mkdir -p "$OUT/instr_nginx/tmp"
cc -std=c99 -O2 -Wall -Wextra -Wpedantic -o "$OUT/c_batch" bench/c_batch.c -lcurl -lcjson

build_core() { # src dir, out dir
  for v in 5.4 5.1; do
    mkdir -p "$2/$v/baseten"
    ${CC:-cc} -std=c99 -O2 -g -fPIC -shared -fvisibility=hidden -I/usr/include/lua$v -I"$1/csrc" \
      -o "$2/$v/baseten/core.so" "$1"/csrc/*.c -lcurl
  done
}
build_core "$ROOT" "$OUT/instr_after"
if [ -n "${BENCH_BEFORE_REF:-}" ]; then
  rm -rf "$OUT/instr_before_src" && mkdir -p "$OUT/instr_before_src"
  git archive "$BENCH_BEFORE_REF" csrc lua | tar -x -C "$OUT/instr_before_src"
  build_core "$OUT/instr_before_src" "$OUT/instr_before"
fi

port=$((20000 + RANDOM % 20000))
dir=$OUT/instr_nginx
cat >"$dir/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $dir/nginx.pid; error_log $dir/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 75s;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '$BODY'; } } }
EOF
nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/out.log" 2>&1 &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$port/v1
for _ in $(seq 100); do
  curl -s -m 1 -X POST -d '{}' "$URL/chat/completions" 2>/dev/null | grep -q chatcmpl-bench && break
  sleep 0.05
done

instr() { # command... -> instructions of the whole process
  local f=$OUT/instr.callgrind
  valgrind --tool=callgrind --callgrind-out-file="$f" "$@" >/dev/null 2>"$OUT/instr.err" ||
    { cat "$OUT/instr.err" >&2; return 1; }
  grep -q '^summary: [0-9]' "$f" || { echo "no callgrind summary for $*" >&2; return 1; }
  sed -n 's/^summary: //p' "$f" | head -1
}
per_request() { # command-with-N-placeholder...
  local big small
  big=$(instr "${@//@N@/$BIG}")
  small=$(instr "${@//@N@/$SMALL}")
  echo $(((big - small) / (BIG - SMALL)))
}
floor=$(per_request "$OUT/c_batch" "$URL" @N@ "$C")
echo "| consumer | instructions per request | ÷ C floor |"
echo "|---|---|---|"
printf '| C (curl multi + cJSON, %d reused easy handles) | %d | 1.00x |\n' "$C" "$floor"
row() { # label, lua tree, interp, core dir
  local n v=5.4
  [ "$3" = luajit ] && v=5.1
  n=$(
    unset LUA_PATH_5_4 LUA_CPATH_5_4
    export LUA_PATH="$2/lua/?.lua;$2/lua/?/init.lua;;" LUA_CPATH="$4/$v/?.so;;"
    per_request "$3" "$ROOT/bench/consumer.lua" batch "$URL" @N@ "$C"
  )
  printf '| %s | %d | %.2fx |\n' "$1" "$n" "$(echo "$n / $floor" | bc -l)"
}
if [ -n "${BENCH_BEFORE_REF:-}" ]; then
  row "client:batch, Lua 5.4, $BENCH_BEFORE_REF" "$OUT/instr_before_src" lua5.4 "$OUT/instr_before"
  row "client:batch, LuaJIT, $BENCH_BEFORE_REF" "$OUT/instr_before_src" luajit "$OUT/instr_before"
fi
row "client:batch, Lua 5.4, this tree" "$ROOT" lua5.4 "$OUT/instr_after"
row "client:batch, LuaJIT, this tree" "$ROOT" luajit "$OUT/instr_after"
