#!/usr/bin/env bash
# bench/stream_compare.sh: stream CPU of the whole client (Lua modules and
# core) of an older commit (COMPARE_OLD, default 57976ac, the `cjson`
# branch: before null members were dropped and split surrogate pairs
# mended) against this tree, Lua 5.4
# and LuaJIT, in one interleaved run (bench/stream_compare.lua says how).
# Prints a table for bench/RESULTS.md. Builds the old tree from
# `git archive` into a temporary directory, removed at the end.
#   bash bench/stream_compare.sh      (COMPARE_N, COMPARE_REPS tune it)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${COMPARE_OLD:-57976ac}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
git archive "$OLD" csrc lua | tar -x -C "$TMP"
for v in 5.4 5.1; do
  mkdir -p "$TMP/old/$v/baseten"
  ${CC:-cc} -std=c99 -O2 -g -fPIC -shared -fvisibility=hidden -I"/usr/include/lua$v" -I"$TMP/csrc" \
    -o "$TMP/old/$v/baseten/core.so" "$TMP"/csrc/*.c -lcurl
done
bash bench/build_dev.sh 5.4 5.1
# shellcheck source=/dev/null
source scripts/env.sh 5.4
export LUA_PATH="$PWD/?.lua;$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/bench/out/dev/5.4/?.so;;"
BENCH_ROOT=$PWD COMPARE_OLD=$OLD COMPARE_OLD_TREE="$TMP" lua5.4 bench/stream_compare.lua
