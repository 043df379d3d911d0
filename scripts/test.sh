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
#
# Each spec file runs in its own interpreter, so no file pays for another's
# heap: the finalizer spec collects without pause, and after the rest of the
# suite it took 133 s in one process instead of 12 s alone.
set -uo pipefail
cd "$(dirname "$0")/.."
interps=${LUA_INTERPS:-"lua5.4:5.4 lua5.3:5.3 lua5.1:5.1 luajit:5.1"}
jobs=${TEST_JOBS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SUMMARY='^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending'

# The spec files, slowest first, so parallel jobs end together.
files=()
for b in finalizer hosts async faults; do [ -f "spec/${b}_spec.lua" ] && files+=("spec/${b}_spec.lua"); done
for f in spec/*_spec.lua; do
  case " ${files[*]} " in *" $f "*) ;; *) files+=("$f") ;; esac
done

# run_one INTERP V OUT busted-args...: one busted run, its output in OUT
run_one() {
  local interp=$1 v=$2 out=$3 rc=0
  shift 3
  ( source scripts/env.sh "$v"; "$interp" /usr/bin/busted "$@" ) >"$out" 2>&1 || rc=$?
  echo "$rc" >"$out.rc"
}

passed=0; failed=0; status=0
for pair in $interps; do
  interp=${pair%%:*}; v=${pair##*:}
  t0=$(date +%s)
  outs=()
  if [ $# -gt 0 ]; then
    run_one "$interp" "$v" "$tmp/$interp-args" "$@"
    outs=("$tmp/$interp-args")
  else
    pids=()
    for f in "${files[@]}"; do
      out="$tmp/$interp-$(basename "$f" .lua)"
      outs+=("$out")
      run_one "$interp" "$v" "$out" "$f" &
      pids+=($!)
      if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
  fi
  s_all=0; f_all=0; e_all=0; p_all=0; bad=0
  for out in "${outs[@]}"; do
    rc=$(cat "$out.rc")
    line=$(grep -E "$SUMMARY" "$out" | tail -1)
    if [ -z "$line" ]; then
      echo "== $interp ${out##*/}: busted printed no summary (exit $rc)"; tail -40 "$out"; bad=$((bad + 1))
      continue
    fi
    read -r s _ _ f _ _ e _ _ pe _ <<<"$line"
    s_all=$((s_all + s)); f_all=$((f_all + f)); e_all=$((e_all + e)); p_all=$((p_all + pe))
    if [ "$f" != 0 ] || [ "$e" != 0 ] || [ "$rc" -ne 0 ]; then
      grep -vE '^[●◼✱◌]+$' "$out" | tail -80; bad=$((bad + 1))
    fi
    # a spec that cannot run fails the run, with its reason: never silently pending
    if [ "$pe" != 0 ]; then
      echo "== $interp: $pe pending in ${out##*/}: these specs could not run (make test installs what they need):"
      grep -A3 '^Pending → ' "$out" | grep -v '^--$'
    fi
  done
  echo "== $interp: $s_all successes / $f_all failures / $e_all errors / $p_all pending ($(( $(date +%s) - t0 )) s, ${#outs[@]} busted runs)"
  [ "$bad" != 0 ] || [ "$f_all" != 0 ] || [ "$e_all" != 0 ] || [ "$p_all" != 0 ] && status=1
  passed=$((passed + s_all)); failed=$((failed + f_all + e_all + p_all + bad))
done
echo "busted: $passed passed, $failed failed"
exit $status
