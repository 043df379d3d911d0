#!/usr/bin/env bash
# The whole busted suite (scripts/test.sh, every Lua) while four busy-loop
# processes keep the CPUs busy, as a loaded CI machine does: a spec that
# bounds wall-clock time too tightly, or counts what happens to be open at
# an instant, fails here. `make test-stress`; STRESS_LOOPS sets how many
# busy loops (default 4). Prints how long the run took. The loops are
# killed on exit, however the run ends.
set -uo pipefail
cd "$(dirname "$0")/.."
loops=${STRESS_LOOPS:-4}
pids=()
stop_loops() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_loops EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 "$loops"); do
  ( trap - EXIT INT TERM; while :; do :; done ) &
  pids+=("$!")
done
echo "test-stress: ${#pids[@]} busy loops on $(nproc) CPUs (pids ${pids[*]})"
t0=$SECONDS
bash scripts/test.sh "$@"
rc=$?
echo "test-stress: the suite took $((SECONDS - t0)) s under load (exit $rc)"
exit "$rc"
