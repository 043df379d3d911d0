# scripts/lib.sh: what the runner scripts (test.sh, sanitize.sh, valgrind.sh,
# fuzz.sh) share. Sourced, never run.

# parallel JOBS FUNC ITEM...: runs `FUNC ITEM` for every item, at most JOBS
# at once, in the order given. Returns 1 if any of them failed.
parallel() {
  local jobs=$1 fn=$2 pids=() rc=0 item
  shift 2
  for item in "$@"; do
    "$fn" "$item" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then
      wait "${pids[0]}" || rc=1
      pids=("${pids[@]:1}")
    fi
  done
  for item in "${pids[@]}"; do wait "$item" || rc=1; done
  return $rc
}

# spec_files "FIRST..." "SKIP...": every spec/*_spec.lua, the names in FIRST
# first (the slowest, so parallel jobs end together), none of those in SKIP.
# Prints one path a line.
spec_files() {
  local first=" $1 " skip=" ${2:-} " f b
  for b in $1; do [ -f "spec/${b}_spec.lua" ] && case "$skip" in *" $b "*) ;; *) echo "spec/${b}_spec.lua" ;; esac; done
  for f in spec/*_spec.lua; do
    b=$(basename "$f" _spec.lua)
    case "$first$skip" in *" $b "*) ;; *) echo "$f" ;; esac
  done
}

# busted_counts FILE...: the successes, failures, errors and pending of the
# busted summary lines in these outputs, summed; prints "S F E P MISSING",
# MISSING the count of outputs with no summary line.
busted_counts() {
  local f line s=0 fl=0 e=0 p=0 missing=0 a b c d
  for f in "$@"; do
    line=$(grep -oE '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$f" 2>/dev/null | tail -1)
    if [ -z "$line" ]; then
      missing=$((missing + 1))
      continue
    fi
    read -r a _ _ b _ _ c _ _ d _ <<<"$line"
    s=$((s + a)) fl=$((fl + b)) e=$((e + c)) p=$((p + d))
  done
  echo "$s $fl $e $p $missing"
}

# show_outs PREFIX FILE...: prints the kept output PREFIX<name>.out of each
# spec file, in order, and sets COUNTS to their busted_counts.
show_outs() {
  local prefix=$1 f outs=()
  shift
  for f in "$@"; do
    outs+=("$prefix$(basename "$f" .lua).out")
    cat "${outs[-1]}"
  done
  COUNTS=$(busted_counts "${outs[@]}")
}

# recap TITLE OUTPUT...: after a run, repeats in a few lines what failed in
# these outputs (each failed run's line, and the place and message of its
# first failed tests), so that the tail of a long log, all that CI shows of
# it, names the failure. Prints nothing when none failed.
recap() {
  local title=$1 f one lines=""
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    one=$(grep -E '(exit [1-9][0-9]*|reports?( lines)?: [1-9][0-9]*|killed after|no busted summary)' "$f" | grep -vE '^(Failure|Error) ' | head -2)
    one+=$'\n'
    one+=$(grep -A2 -E '^(Failure|Error) → ' "$f" | grep -v '^--$' | head -9)
    [ -n "${one//$'\n'/}" ] || continue
    lines+="-- ${f##*/}"$'\n'"$one"$'\n'
  done
  lines=$(printf '%s' "$lines" | grep -v '^$' | head -40)
  [ -n "$lines" ] || return 0
  echo "== $title: what failed"
  printf '%s\n' "$lines"
}
