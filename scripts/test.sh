#!/usr/bin/env bash
# Runs the busted suite on Lua 5.4, 5.3, 5.1 and LuaJIT 2.1 against the
# rocks that scripts/build.sh installed, then prints one closing line:
#   busted: N passed, N failed
#
#   bash scripts/test.sh                    every spec file, every Lua
#   bash scripts/test.sh spec/json_spec.lua one busted run per Lua, with these args
#   LUA_INTERPS="lua5.4:5.4" bash scripts/test.sh     one Lua
#   TEST_JOBS=1 bash scripts/test.sh        one spec file at a time (default 2:
#                                           the suite mostly waits on servers)
#   TEST_TIMEOUT=300 bash scripts/test.sh   each busted run's limit (default 600 s)
#   TEST_RERUN_HUNG=0 bash scripts/test.sh  a file killed for hanging is not run again
#
# Each spec file runs in its own interpreter, so no file pays for another's
# heap: the finalizer spec collects without pause, and after the rest of the
# suite it took 133 s in one process instead of 12 s alone.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
interps=${LUA_INTERPS:-"lua5.4:5.4 lua5.3:5.3 lua5.1:5.1 luajit:5.1"}
jobs=${TEST_JOBS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mapfile -t files < <(spec_files "finalizer hosts async faults")

# Each busted run is bounded (TEST_TIMEOUT seconds, default 600: the
# slowest spec file takes about 40 s idle and under 3 minutes with the CPUs
# busy), so a hang fails the run and names itself instead of holding CI
# until its own limit. Each run keeps a trail of the tests it starts
# (spec/support/trail.lua; not when the arguments name another --helper):
# a killed run's output ends with the test it was in and the processes
# that were running a second before. A spec file killed for hanging runs
# once more (TEST_RERUN_HUNG=0: not); the hang is reported above the
# closing line either way, and a second hang fails the run.
limit=${TEST_TIMEOUT:-600}

# run_one INTERP V OUT busted-args...: one busted run, its output in OUT
run_one() {
  local interp=$1 v=$2 out=$3 rc=0 spy
  shift 3
  case " $* " in *" --helper"*) ;; *) set -- --helper=spec/support/trail.lua "$@" ;; esac
  # the processes a second before the limit: what the run was waiting for
  ( trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$((limit > 1 ? limit - 1 : 1))" & s=$!
    wait "$s" && ps -eo pid,ppid,etimes,stat,wchan:20,args --forest >"$out.ps" ) &
  spy=$!
  ( source scripts/env.sh "$v"
    BASETEN_TEST_TRAIL=$out.trail timeout -k 10 "$limit" "$interp" /usr/bin/busted "$@" ) >"$out" 2>&1 || rc=$?
  kill "$spy" 2>/dev/null; wait "$spy" 2>/dev/null
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    # the trail's last line is the test still running when it was killed
    printf "\nkilled after %s s (exit %s), %s busted %s, at: %s\n" "$limit" "$rc" "$interp" "$*" \
      "$(tail -1 "$out.trail" 2>/dev/null)" >>"$out"
    if [ -s "$out.ps" ]; then
      echo "the processes a second before (ps --forest):"
      grep -vE ' \[[^]]*\]$' "$out.ps" | cut -c1-200 | head -60
    fi >>"$out"
  fi
  echo "$rc" >"$out.rc"
}
run_file() {
  local out=$tmp/$INTERP-$(basename "$1" .lua) rc
  run_one "$INTERP" "$V" "$out" "$1"
  rc=$(cat "$out.rc")
  if { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && [ "${TEST_RERUN_HUNG:-1}" != 0 ]; then
    mv "$out" "$out.hung"
    run_one "$INTERP" "$V" "$out" "$1"
    echo "$INTERP $1: $(grep -m1 '^killed after' "$out.hung"); run again: exit $(cat "$out.rc")" >"$out.hungnote"
  fi
}

passed=0; failed=0; status=0 T_START=$SECONDS
failed_outs=() hung=()
for pair in $interps; do
  INTERP=${pair%%:*}; V=${pair##*:}
  t0=$SECONDS
  # each Lua's run is silent until it ends: say that it started
  if [ $# -gt 0 ]; then echo "== $INTERP: running $*"
  else echo "== $INTERP: running ${#files[@]} spec files, $jobs at a time (a few minutes)"; fi
  outs=()
  if [ $# -gt 0 ]; then
    run_one "$INTERP" "$V" "$tmp/$INTERP-args" "$@"
    outs=("$tmp/$INTERP-args")
  else
    parallel "$jobs" run_file "${files[@]}"
    for f in "${files[@]}"; do outs+=("$tmp/$INTERP-$(basename "$f" .lua)"); done
  fi
  bad=0
  for out in "${outs[@]}"; do
    if [ -f "$out.hungnote" ]; then # killed for hanging, then run again (run_file)
      hung+=("$(cat "$out.hungnote")")
      echo "== $INTERP ${out##*/}: killed for hanging, then run again; the hung run's end:"
      grep -vE '^[●◼✱◌]+$' "$out.hung" | tail -40
    fi
    rc=$(cat "$out.rc")
    read -r _ f e pe missing <<<"$(busted_counts "$out")"
    if [ "$missing" != 0 ]; then
      echo "== $INTERP ${out##*/}: busted printed no summary (exit $rc)"; tail -40 "$out"; bad=$((bad + 1)); failed_outs+=("$out")
    elif [ "$f" != 0 ] || [ "$e" != 0 ] || [ "$rc" -ne 0 ]; then
      grep -vE '^[●◼✱◌]+$' "$out" | tail -80; bad=$((bad + 1))
      failed_outs+=("$out")
    fi
    # a spec that cannot run fails the run, with its reason: never silently pending
    if [ "$missing" = 0 ] && [ "$pe" != 0 ]; then
      echo "== $INTERP: $pe pending in ${out##*/}: these specs could not run (make test installs what they need):"
      grep -A3 '^Pending → ' "$out" | grep -v '^--$'
    fi
  done
  read -r s f e pe missing <<<"$(busted_counts "${outs[@]}")"
  echo "== $INTERP: $s successes / $f failures / $e errors / $pe pending ($((SECONDS - t0)) s, ${#outs[@]} busted runs)"
  if [ "$bad" != 0 ] || [ "$pe" != 0 ]; then status=1; fi
  passed=$((passed + s)); failed=$((failed + f + e + pe + missing))
  # a run that failed with no failed test (it exited badly) still counts
  if [ "$bad" != 0 ] && [ $((f + e + pe + missing)) = 0 ]; then failed=$((failed + bad)); fi
done
# the failures again, just before the closing line: CI shows only the tail
[ ${#failed_outs[@]} = 0 ] || recap "make test" "${failed_outs[@]}"
if [ ${#hung[@]} != 0 ]; then
  echo "== make test: ${#hung[@]} spec run(s) killed for hanging and run again (TEST_RERUN_HUNG):"
  printf '%s\n' "${hung[@]}"
fi
# under .ci/run: the time of each step before this one
if [ -n "${CI_TIMES:-}" ] && [ -s "$CI_TIMES" ]; then
  echo "== ci steps before make test: $(cat "$CI_TIMES")make test $((SECONDS - T_START)) s"
fi
echo "busted: $passed passed, $failed failed"
exit $status
