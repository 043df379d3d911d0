#!/usr/bin/env bash
# make valgrind: the busted suite on Lua 5.4 under valgrind's memcheck,
# against a -g -O1 build of baseten.core (build/valgrind/baseten/core.so,
# first on LUA_CPATH). Fails on any memcheck error (invalid read or write,
# use of uninitialised memory, bad free) and on any definite leak.
#
#   bash scripts/valgrind.sh [busted args...]
#
# Only the Lua interpreter that runs busted is checked: the helpers the specs
# start (python3, nginx, child Lua processes) are not traced. Memcheck makes
# the code ~20-50x slower, so tests whose point is volume or sub-second
# latency pend themselves when BASETEN_VALGRIND is set (skip_volume and
# skip_latency in spec/support/util.lua): the long memory stream (200,000
# chunks: ~50 s under memcheck; `make test` and `make sanitize` run it), a
# 2 MB upload, cancel. VALGRIND_SKIP ('|'-separated busted --filter-out Lua
# patterns; empty by default) leaves out more.
# Suppressions: scripts/valgrind.supp (third-party code only).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/valgrind
SRC=(csrc/*.c) # every module source: the rockspec lists the same
mkdir -p "$OUT/baseten"
gcc -std=c99 -g -O1 -fPIC -shared -Wall -Wextra -fno-omit-frame-pointer \
  -I/usr/include/lua5.4 -o "$OUT/baseten/core.so" "${SRC[@]}" -lcurl

# shellcheck source=/dev/null
source scripts/env.sh 5.4
export LUA_CPATH="$PWD/$OUT/?.so;$LUA_CPATH"
export BASETEN_VALGRIND=1
so=$(lua5.4 -e 'print(package.searchpath("baseten.core", package.cpath))')
[ "$so" = "$PWD/$OUT/baseten/core.so" ] || { echo "valgrind: would load $so, not the valgrind build" >&2; exit 1; }

skip=${VALGRIND_SKIP-}
filters=()
IFS='|' read -r -a pats <<<"$skip"
for p in "${pats[@]}"; do [ -n "${p// /}" ] && filters+=("--filter-out=$p"); done

log="$OUT/busted.log"
t0=$(date +%s)
rc=0
# never hang CI: a stuck run is killed and counts as a failure
timeout -k 10 "${VALGRIND_TIMEOUT:-900}" valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --track-origins=yes --num-callers=30 --keep-debuginfo=yes \
  --suppressions=scripts/valgrind.supp --log-file="$OUT/valgrind.log" \
  lua5.4 /usr/bin/busted "${filters[@]}" "$@" >"$log" 2>&1 || rc=$?
line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -1 || true)
errors=$(grep -cE '^==[0-9]+== [A-Z]' "$OUT/valgrind.log" || true)
echo "valgrind ($(($(date +%s) - t0)) s): ${line:-no busted summary}; exit $rc; valgrind report lines: $errors"
if [ "$rc" -ne 0 ] || [ "$errors" != 0 ] || [ -z "$line" ]; then
  head -200 "$OUT/valgrind.log"
  grep -vE '^[●◼✱]+$' "$log" | tail -60
  exit 1
fi
