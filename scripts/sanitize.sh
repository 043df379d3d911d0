#!/usr/bin/env bash
# make sanitize: the busted suite on Lua 5.4 against an ASan + UBSan build
# of baseten.core, twice: once as is, once with the garbage collector
# running all the time (spec/support/gc_torture.lua). Any sanitizer report
# (memory error, undefined behaviour, a leak) or failed test fails the run.
#
#   bash scripts/sanitize.sh [busted args...]     e.g. spec/faults_spec.lua
#   SANITIZE_PASSES="plain gc" (default) | "plain" | "gc"
#   SANITIZE_GC_SKIP_FILES: spec names the gc pass leaves out (below)
#   SANITIZE_GC_SKIP: '|'-separated busted --filter-out patterns for the gc
#   pass (empty, the default: run everything; tests whose point is volume
#   pend themselves there, as the pass sets BASETEN_GC_TORTURE=1: see
#   skip_volume in spec/support/util.lua)
#
# How: core.so is compiled with gcc -fsanitize=address,undefined and
# float-cast-overflow (not part of undefined; NaN or huge numbers cast to
# integers) into
# build/asan/baseten/ and put first on LUA_CPATH. The interpreter is not
# instrumented, so libasan is preloaded, by a wrapper build/asan/bin/lua5.4
# put first on PATH: Lua children that specs start by name (examples, the
# CLI, BASETEN_LOG runs) load the same build under the same runtime. A
# second preloaded shim removes LD_PRELOAD from the environment at start-up,
# so the other helpers (python3, nginx, openssl, sh, xvfb) run as usual.
#
# Leaks: detect_leaks=1. LeakSanitizer reports memory that nothing points to
# at exit; the Lua state, libcurl's and OpenSSL's global state stay
# reachable, so no suppression is needed for them today. Add one to
# scripts/lsan.supp only for a leak proven to be outside csrc/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
OUT=build/asan
CC=${SAN_CC:-gcc}
SRC=(csrc/*.c) # every module source: the rockspec lists the same
mkdir -p "$OUT/baseten" "$OUT/bin"
"$CC" -std=c99 -g -O1 -fPIC -shared -Wall -Wextra \
  -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -Wl,-z,nodelete -I/usr/include/lua5.4 -o "$OUT/baseten/core.so" "${SRC[@]}" -lcurl
# -z nodelete: lua_close's dlclose leaves it mapped, so LeakSanitizer, which
# reports after it, can still name the functions that leaked. (Preloading
# core.so instead deadlocks at exit: libcurl's dependencies then initialise
# before the interpreter, and p11-kit's destructor hangs in freelocale.)

# preloaded after libasan: the children of a Lua process start without it
# It also ends the process right after LeakSanitizer's check: under ASan, a
# process that called setlocale/localeconv (Lua does) deadlocks in
# libp11-kit's destructor (libcurl -> gnutls -> p11-kit) when dl_fini runs.
cat >"$OUT/unpreload.c" <<'C'
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
void __lsan_do_leak_check(void) __attribute__((weak));
static void leave(int status, void *arg) {
  (void)arg;
  fflush(NULL);
  if (__lsan_do_leak_check) __lsan_do_leak_check(); /* dies on a leak */
  _exit(status);
}
__attribute__((constructor)) static void unpreload(void) {
  unsetenv("LD_PRELOAD");
  on_exit(leave, NULL);
}
C
"$CC" -O1 -fPIC -shared -o "$OUT/unpreload.so" "$OUT/unpreload.c"
LIBASAN=$("$CC" -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize: libasan not found ($LIBASAN)" >&2; exit 1; }
printf '#!/bin/sh\nLD_PRELOAD="%s %s" exec /usr/bin/lua5.4 "$@"\n' \
  "$LIBASAN" "$PWD/$OUT/unpreload.so" >"$OUT/bin/lua5.4"
chmod +x "$OUT/bin/lua5.4"

# shellcheck source=/dev/null
source scripts/env.sh 5.4
export LUA_CPATH="$PWD/$OUT/?.so;$LUA_CPATH"
export PATH="$PWD/$OUT/bin:$PATH"
export BASETEN_SANITIZER=asan
so=$(lua5.4 -e 'print(package.searchpath("baseten.core", package.cpath))')
[ "$so" = "$PWD/$OUT/baseten/core.so" ] || { echo "sanitize: would load $so, not the ASan build" >&2; exit 1; }
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
# use_tls=0: the LeakSanitizer of gcc 12 crashes ("Tracer caught signal 11")
# scanning the dynamic TLS of dlopen()ed libraries under glibc 2.36
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0:exitcode=86:use_tls=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=86"

# One busted run; prints a line, and the reports when it failed.
run_busted() { # label log busted-args...
  local label=$1 log=$2 rc=0 t0 line reports
  shift 2
  t0=$(date +%s)
  # never hang CI: a stuck run is killed and counts as a failure
  timeout -k 10 "${SANITIZE_TIMEOUT:-900}" lua5.4 /usr/bin/busted "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" -eq 124 ] && echo "sanitize ($label): killed after ${SANITIZE_TIMEOUT:-900} s" >&2
  line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -1 || true)
  reports=$(grep -cE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: (Address|Leak|Undefined)' "$log" || true)
  if [ "$rc" -ne 0 ] || [ "$reports" != 0 ] || [ -z "$line" ]; then
    echo "sanitize ($label, $(($(date +%s) - t0)) s): ${line:-no busted summary}; exit $rc; sanitizer reports: $reports"
    grep -E -B2 -A40 '^==[0-9]+==ERROR|runtime error:' "$log" | head -150 || true
    grep -vE '^[●◼✱]+$' "$log" | tail -60
    return 1
  fi
  echo "sanitize ($label, $(($(date +%s) - t0)) s): $line"
}

# Every spec file in its own interpreter, SANITIZE_JOBS (2) at a time, the
# slowest first; prints each file's line, then the pass's total.
run_file() { # spec file; PASS and PASS_ARGS say which pass
  local b
  b=$(basename "$1" .lua)
  run_busted "$PASS $1" "$OUT/busted-$PASS-$b.log" "${PASS_ARGS[@]}" "$1" >"$OUT/$PASS-$b.out" 2>&1
}
run_files() { # pass skip
  local t0=$SECONDS rc=0 files s fl e p missing
  PASS=$1
  mapfile -t files < <(spec_files "finalizer surrogates batch faults cli json tools hosts" "$2")
  parallel "${SANITIZE_JOBS:-2}" run_file "${files[@]}" || rc=1
  show_outs "$OUT/$PASS-" "${files[@]}"
  read -r s fl e p missing <<<"$COUNTS"
  echo "sanitize: $PASS pass, ${#files[@]} spec files, $s passed, $((fl + e + missing)) failed, $p pending, $((SECONDS - t0)) s"
  return $rc
}

passes=${SANITIZE_PASSES:-"plain gc"}
status=0
for pass in $passes; do
  PASS_ARGS=() skip=""
  if [ "$pass" = gc ]; then
    # specs whose work runs in child processes (the CLI, build.lua, Neovim
    # and LÖVE, a wrong-Lua check, the MCP CLI and Neovim), which the
    # collector of this process never touches: the plain pass runs them under ASan
    skip=${SANITIZE_GC_SKIP_FILES-"cli cli_batch cli_session hosts build_lua abi mcp_cli mcp_nvim"}
    # what is only volume pends itself (BASETEN_GC_TORTURE: 200,000 chunks
    # would take ten minutes, a 2 MB request body 20 s), as do latency
    # checks: what this pass checks is memory, not timing
    PASS_ARGS=(--helper=spec/support/gc_torture.lua)
    export BASETEN_GC_TORTURE=1
    IFS='|' read -r -a pats <<<"${SANITIZE_GC_SKIP-}"
    for p in "${pats[@]}"; do [ -n "${p// /}" ] && PASS_ARGS+=("--filter-out=$p"); done
  fi
  if [ $# -gt 0 ]; then
    run_busted "$pass" "$OUT/busted-$pass.log" "${PASS_ARGS[@]}" "$@" || status=1
  else
    # one interpreter per spec file: a collection's cost grows with the
    # heap (the gc pass took 220 s in one process, 80 s per file)
    run_files "$pass" "$skip" || status=1
  fi
  unset BASETEN_GC_TORTURE
done
# the failures again, last: CI shows only a log's tail
[ "$status" = 0 ] || recap sanitize "$OUT"/plain-*.out "$OUT"/gc-*.out "$OUT"/busted-plain.log "$OUT"/busted-gc.log
exit $status
