#!/usr/bin/env bash
# `make bench`: installs what the benchmark needs, builds the C consumer and
# runs bench/run.lua (see there for what is measured and the BENCH_* knobs).
# Not part of `make test`. Expects the rocks of `make build` in .rocks/,
# or BENCH_DEV=1 with bench/build_dev.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# node, npm, nginx (the batch scenario's server) and valgrind: Debian's packages only
# when missing (a NodeSource node that bundles npm is already fine, and
# Debian's npm would conflict with it)
if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! command -v nginx >/dev/null ||
   [ ! -f /usr/include/valgrind/callgrind.h ]; then
  bash scripts/deps.sh bench
fi
mkdir -p bench/out
# openai-node and @basetenlabs/performance-client, pinned by bench/package-lock.json
if [ ! -f bench/node_modules/openai/package.json ] ||
   [ ! -f bench/node_modules/@basetenlabs/performance-client-linux-x64-gnu/package.json ] ||
   [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  # npm install, not npm ci: the performance client lists its other
  # platforms' bindings as optional dependencies with no version, which
  # npm 10/11's ci counts as "missing from lock file" and refuses; install
  # still takes the lock file's pinned versions
  (cd bench && npm install --no-audit --no-fund --loglevel=error)
fi
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -o bench/out/c_consumer bench/c_consumer.c -lcurl -lcjson
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -o bench/out/c_batch bench/c_batch.c -lcurl -lcjson
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -D_POSIX_C_SOURCE=199309L -o bench/out/c_topk bench/c_topk.c -lm
# bench/partial.lua's helpers (the do-nothing feed of the floor row, callgrind's
# toggle around the measured part), for Lua 5.4 and LuaJIT
for v in 5.4 5.1; do
  mkdir -p "bench/out/floor/$v"
  ${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -fPIC -shared -fvisibility=hidden -I"/usr/include/lua$v" \
    -o "bench/out/floor/$v/partial_floor.so" bench/partial_floor.c
done
# the dev build: BENCH_DEV=1 runs on it, and instructions.lua always does
bash bench/build_dev.sh 5.4 5.1
# BENCH_BEFORE_REF=main (any git ref): that tree too, into bench/out/before,
# for instructions.lua's "what changed" table
if [ -n "${BENCH_BEFORE_REF:-}" ]; then
  rm -rf bench/out/before && mkdir -p bench/out/before
  git archive "$BENCH_BEFORE_REF" | tar -x -C bench/out/before
  for v in 5.4 5.1; do
    mkdir -p "bench/out/before/bench/out/dev/$v/baseten"
    ${CC:-cc} -std=c99 -O2 -g -fPIC -shared -fvisibility=hidden -I"/usr/include/lua$v" \
      -Ibench/out/before/csrc -o "bench/out/before/bench/out/dev/$v/baseten/core.so" \
      bench/out/before/csrc/*.c -lcurl
  done
  export BENCH_BEFORE=$PWD/bench/out/before
fi
source scripts/env.sh 5.4
if [ "${BENCH_DEV:-}" = 1 ]; then # the runner loads the dev build too
  export LUA_PATH="$PWD/?.lua;$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/bench/out/dev/5.4/?.so;;"
fi
# BENCH_ONLY=embed: the embeddings section alone (bench/embed.lua); a whole
# run ends with it and instructions.lua (run.lua rewrites RESULTS.md, the
# other two add their sections)
if [ "${BENCH_ONLY:-}" = embed ]; then BENCH_ROOT=$(pwd) exec lua5.4 bench/embed.lua "$@"; fi
BENCH_ROOT=$(pwd) lua5.4 bench/run.lua "$@"
if [ -z "${BENCH_ONLY:-}" ]; then BENCH_ROOT=$(pwd) lua5.4 bench/embed.lua; fi
# instruction counts (callgrind) and the byte-at-a-time stream: issue 26
if [ -z "${BENCH_ONLY:-}" ] && [ "${BENCH_INSTR:-1}" = 1 ]; then
  BENCH_ROOT=$(pwd) lua5.4 bench/instructions.lua >/dev/null
fi
