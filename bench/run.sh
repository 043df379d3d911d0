#!/usr/bin/env bash
# `make bench`: installs what the benchmark needs, builds the C consumer and
# runs bench/run.lua (see there for what is measured and the BENCH_* knobs).
# Not part of `make test`. Expects the rocks of `make build` in .rocks/,
# or BENCH_DEV=1 with bench/build_dev.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# node, npm and nginx (the batch scenario's server): Debian's packages only
# when missing (a NodeSource node that bundles npm is already fine, and
# Debian's npm would conflict with it)
if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! command -v nginx >/dev/null; then
  bash scripts/deps.sh bench
fi
mkdir -p bench/out
# openai-node and @basetenlabs/performance-client, pinned by bench/package-lock.json
if [ ! -f bench/node_modules/openai/package.json ] ||
   [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -o bench/out/c_consumer bench/c_consumer.c -lcurl -lcjson
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -o bench/out/c_batch bench/c_batch.c -lcurl -lcjson
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Wpedantic -D_POSIX_C_SOURCE=199309L -o bench/out/c_topk bench/c_topk.c -lm
if [ "${BENCH_DEV:-}" = 1 ]; then bash bench/build_dev.sh 5.4 5.1; fi
source scripts/env.sh 5.4
if [ "${BENCH_DEV:-}" = 1 ]; then # the runner loads the dev build too
  export LUA_PATH="$PWD/?.lua;$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/bench/out/dev/5.4/?.so;;"
fi
# BENCH_ONLY=embed: the embeddings section alone (bench/embed.lua); a whole
# run ends with it (run.lua rewrites RESULTS.md, embed.lua adds its section)
if [ "${BENCH_ONLY:-}" = embed ]; then BENCH_ROOT=$(pwd) exec lua5.4 bench/embed.lua "$@"; fi
BENCH_ROOT=$(pwd) lua5.4 bench/run.lua "$@"
if [ -z "${BENCH_ONLY:-}" ]; then BENCH_ROOT=$(pwd) lua5.4 bench/embed.lua; fi
