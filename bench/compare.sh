#!/usr/bin/env bash
# bench/compare.sh: an older commit against this tree, Lua 5.4 and LuaJIT,
# in one run, so the ratios are fair on a noisy machine. Builds the old
# tree from `git archive` into a temporary directory, removed at the end.
#
#   bash bench/compare.sh core     the core alone (COMPARE_OLD, default
#       70362a3, the last with one json.c): stream CPU and instructions per
#       chunk, json.decode with and without drop_nulls; writes its section
#       of bench/RESULTS.md (bench/compare.lua says how)
#   bash bench/compare.sh client   stream CPU of the whole client, Lua
#       modules and core (COMPARE_OLD, default 57976ac, the `cjson` branch:
#       before null members were dropped and split surrogate pairs mended),
#       interleaved runs; prints a table for bench/RESULTS.md
#       (bench/stream_compare.lua says how)
#
# COMPARE_N and COMPARE_REPS tune both.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-core}" in
  core) OLD=${COMPARE_OLD:-70362a3} paths=(csrc) script=bench/compare.lua tree=/old ;;
  client) OLD=${COMPARE_OLD:-57976ac} paths=(csrc lua) script=bench/stream_compare.lua tree= ;;
  *) echo "usage: bash bench/compare.sh core|client" >&2; exit 2 ;;
esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
git archive "$OLD" "${paths[@]}" | tar -x -C "$TMP"
for v in 5.4 5.1; do
  mkdir -p "$TMP/old/$v/baseten"
  ${CC:-cc} -std=c99 -O2 -g -fPIC -shared -fvisibility=hidden -I"/usr/include/lua$v" -I"$TMP/csrc" \
    -o "$TMP/old/$v/baseten/core.so" "$TMP"/csrc/*.c -lcurl
done
bash bench/build_dev.sh 5.4 5.1
# shellcheck source=/dev/null
source scripts/env.sh 5.4
export LUA_PATH="$PWD/?.lua;$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/bench/out/dev/5.4/?.so;;"
BENCH_ROOT=$PWD COMPARE_OLD=$OLD COMPARE_OLD_TREE="$TMP$tree" lua5.4 "$script"
