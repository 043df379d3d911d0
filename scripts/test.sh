#!/usr/bin/env bash
# Runs the busted suite on Lua 5.4, 5.3, 5.1 and LuaJIT 2.1 against the
# rocks that scripts/build.sh installed, then prints one closing line:
#   busted: N passed, N failed
set -uo pipefail
cd "$(dirname "$0")/.."
interps=${LUA_INTERPS:-"lua5.4:5.4 lua5.3:5.3 lua5.1:5.1 luajit:5.1"}
passed=0; failed=0; status=0
for pair in $interps; do
  interp=${pair%%:*}; v=${pair##*:}
  out=$(mktemp)
  ( source scripts/env.sh "$v"; "$interp" /usr/bin/busted "$@" ) >"$out" 2>&1
  rc=$?
  line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$out" | tail -1)
  if [ -z "$line" ]; then
    echo "== $interp: busted printed no summary (exit $rc)"; tail -40 "$out"; failed=$((failed + 1)); status=1
  else
    s=$(echo "$line" | sed -E 's#^([0-9]+) success.*#\1#')
    f=$(echo "$line" | sed -E 's#^[0-9]+ success(es)? / ([0-9]+) failure.*#\2#')
    e=$(echo "$line" | sed -E 's#.* / ([0-9]+) errors?.*#\1#')
    pe=$(echo "$line" | sed -E 's#.* / ([0-9]+) pending.*#\1#')
    echo "== $interp: $line"
    if [ "$f" != 0 ] || [ "$e" != 0 ] || [ $rc -ne 0 ]; then
      grep -vE '^[●◼✱]+$' "$out" | tail -80; status=1
    fi
    # a spec that cannot run fails the run, with its reason: never silently pending
    if [ "$pe" != 0 ]; then
      echo "== $interp: $pe pending: these specs could not run (make test installs what they need):"
      grep -A3 '^Pending → ' "$out" | grep -v '^--$'
      status=1; failed=$((failed + pe))
    fi
    passed=$((passed + s)); failed=$((failed + f + e))
  fi
  rm -f "$out"
done
echo "busted: $passed passed, $failed failed"
exit $status
