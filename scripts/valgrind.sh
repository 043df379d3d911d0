#!/usr/bin/env bash
# make valgrind: busted specs on Lua 5.4 under valgrind's memcheck, against
# a -g -O1 build of baseten.core (build/valgrind/baseten/core.so, first on
# LUA_CPATH). Fails on any memcheck error (invalid read or write, use of
# uninitialised memory, bad free), on any definite leak and on a failed test.
#
#   bash scripts/valgrind.sh                 every spec file
#   VALGRIND_SPECS="json stream" bash scripts/valgrind.sh   these specs
#   bash scripts/valgrind.sh spec/json_spec.lua ...         these files
#
# Each spec file runs in its own valgrind, VALGRIND_JOBS (2) at a time, each
# bounded by VALGRIND_TIMEOUT seconds (600), so CI cannot hang. One process
# for the whole suite did not end within 15 minutes: a collection's cost
# grows with the heap, every earlier file's heap stays alive, and the
# finalizer spec collects without pause. The slowest files start first, so
# the two jobs end together (3.5 to 4 minutes in all on 2 cores).
# Only the Lua interpreter that runs busted is checked: the helpers the specs
# start (python3, nginx, child Lua processes) are not traced. Tests whose
# point is volume or sub-second latency pend themselves when BASETEN_VALGRIND
# is set (skip_volume and skip_latency in spec/support/util.lua).
# Suppressions: scripts/valgrind.supp (third-party code only).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
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

if [ $# -gt 0 ]; then
  files=("$@")
elif [ -n "${VALGRIND_SPECS:-}" ]; then
  files=()
  for s in $VALGRIND_SPECS; do files+=("spec/${s}_spec.lua"); done
else # the longest under memcheck first
  mapfile -t files < <(spec_files "finalizer faults hosts tls async examples")
fi
for f in "${files[@]}"; do [ -f "$f" ] || { echo "valgrind: no spec file $f" >&2; exit 1; }; done

# One spec file under memcheck; prints a line, and the reports when it failed.
run_one() { # file
  local f=$1 b rc=0 t0 line errors log vlog
  b=$(basename "$f" .lua)
  log="$OUT/busted-$b.log" vlog="$OUT/valgrind-$b.log"
  t0=$(date +%s)
  timeout -k 10 "${VALGRIND_TIMEOUT:-600}" valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite --track-origins=yes --num-callers=30 \
    --keep-debuginfo=yes --suppressions=scripts/valgrind.supp --log-file="$vlog" \
    lua5.4 /usr/bin/busted "$f" >"$log" 2>&1 || rc=$?
  line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -1 || true)
  errors=$(grep -cE '^==[0-9]+== [A-Z]' "$vlog" || true)
  echo "valgrind ($f, $(($(date +%s) - t0)) s): ${line:-no busted summary}; exit $rc; valgrind report lines: $errors"
  if [ "$rc" -ne 0 ] || [ "$errors" != 0 ] || [ -z "$line" ]; then
    [ "$rc" -eq 124 ] && echo "valgrind ($f): killed after ${VALGRIND_TIMEOUT:-600} s"
    head -200 "$vlog"
    grep -vE '^[●◼✱]+$' "$log" | tail -60
    return 1
  fi
}

run_file() { # spec file: run_one, its lines kept for the end
  run_one "$1" >"$OUT/run-$(basename "$1" .lua).out" 2>&1
}
t0=$SECONDS
status=0
parallel "${VALGRIND_JOBS:-2}" run_file "${files[@]}" || status=1
show_outs "$OUT/run-" "${files[@]}"
read -r s fl e p missing <<<"$COUNTS"
echo "valgrind: ${#files[@]} spec files, $s passed, $((fl + e + missing)) failed, $p pending, $((SECONDS - t0)) s"
[ "$status" = 0 ] || recap valgrind "$OUT"/run-*.out
exit $status
