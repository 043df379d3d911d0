#!/usr/bin/env bash
# Builds baseten.core straight from csrc/ into bench/out/dev/<v>/baseten/,
# with -O2 (what LuaRocks uses) plus debug info, for profiling
# (bench/profile.lua) and for quick benchmark runs of a work tree:
# `BENCH_DEV=1 bash bench/run.sh` loads this build and the Lua modules from
# lua/ instead of the rocks in .rocks/.
#   bash bench/build_dev.sh [5.4 5.1 ...]   (default: 5.4 5.1)
set -euo pipefail
cd "$(dirname "$0")/.."
for v in ${*:-5.4 5.1}; do
  inc=/usr/include/lua$v # the 5.1 build is the one LuaJIT loads too, as with the rocks
  mkdir -p "bench/out/dev/$v/baseten"
  ${CC:-cc} -std=c99 -O2 -g -fPIC -shared -fvisibility=hidden -Wall -Wextra -Wpedantic \
    -I"$inc" -Icsrc -o "bench/out/dev/$v/baseten/core.so" \
    csrc/*.c -lcurl
done
