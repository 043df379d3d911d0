#!/usr/bin/env bash
# `make dist-test`: each archive in dist/ (make dist) unpacked into an empty
# folder and used from there, with nothing from the build tree: no LUA_PATH,
# no .rocks, no lua/ of the clone. spec/dist/check.lua (copied alone into a
# scratch folder) requires baseten from the unpacked folder, checks
# baseten.VERSION against the archive's name, and runs a chat and a stream
# against the local test server (spec/support/server.py, on 127.0.0.1).
#
#   Linux archives   with the system lua5.4 (lua5.4 archive) and luajit
#                    (luajit archive), then both again inside a Debian 11
#                    root (scripts/oldroot.sh: glibc 2.31, libcurl 7.74,
#                    no compiler), where it also checks that INSTALL.txt
#                    names the glibc and libcurl it ran with
#   Windows archives under Wine, with the lua54.exe / luajit.exe that
#                    `make windows` builds (the user's interpreter), copied
#                    into the empty folder with its DLL
#
#   LÖVE kit         build/love-kit/windows (make love-kit), when present:
#                    its core.dll in baseten\ next to the .exe of a folder
#                    laid out like a fused game, with luajit.exe standing in
#                    for love.exe and found through LuaJIT's default
#                    `!\?.dll` (no LUA_CPATH; the working folder elsewhere)
#
# First checks SHA256SUMS (sha256sum -c). DIST_TEST_OLDROOT=0 skips the
# Debian 11 root; archives that are missing (DIST_TARGETS=linux) are
# reported as not tested, and fail the run unless DIST_TARGETS says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/windows
V=$(sed -n 's/^#define BT_CORE_VERSION "\(.*\)"$/\1/p' csrc/core.c)
TARGETS=${DIST_TARGETS:-"linux windows"}
t_all=$SECONDS
(cd dist && sha256sum --quiet -c SHA256SUMS) || { echo "dist_test: dist/SHA256SUMS does not match" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
oldroot=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  [ -n "$oldroot" ] && rm -rf "$oldroot/tmp/baseten-dist" || true
  [ -n "${WINEPREFIX:-}" ] && wine_unlink || true
}
trap cleanup EXIT

python3 spec/support/server.py --port 0 --port-file "$tmp/port" --parent-pid $$ --api-key dist-key \
  >"$tmp/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 500); do [ -s "$tmp/port" ] && break; sleep 0.02; done
PORT=$(cat "$tmp/port" 2>/dev/null) || { cat "$tmp/server.log" >&2; exit 1; }
mkdir -p "$tmp/harness"
cp spec/dist/check.lua "$tmp/harness/"
CHECK_ENV=(CHECK_URL="http://127.0.0.1:$PORT/v1" CHECK_KEY=dist-key)

status=0
ran=0
report() { # report WHAT RC LOG
  ran=$((ran + 1))
  if [ "$2" -eq 0 ]; then
    echo "dist_test: ok     $1 ($(grep -m1 '^libcurl:' "$3" | tr -d '\r'))"
  else
    status=1
    echo "dist_test: FAILED $1:" >&2
    tr -d '\r' <"$3" >&2
  fi
}

unpack() { # unpack ARCHIVE DIR: into a new empty folder
  mkdir -p "$2"
  [ -z "$(ls -A "$2")" ] || { echo "dist_test: $2 is not empty" >&2; exit 1; }
  unzip -q "dist/$1" -d "$2"
  # the fixed layout, and INSTALL.txt names the version the core reports (check.lua)
  local f
  for f in INSTALL.txt LICENSE lua/baseten/init.lua; do
    [ -f "$2/$f" ] || { echo "dist_test: FAILED $1 has no $f" >&2; status=1; }
  done
  head -n 1 "$2/INSTALL.txt" | grep -q "^baseten $V for " ||
    { echo "dist_test: FAILED $1: INSTALL.txt does not start with \"baseten $V for\"" >&2; status=1; }
}

linux_run() { # linux_run ABI INTERP
  local zip="baseten-$V-linux-x86_64-$1.zip" dir="$tmp/linux-$1" rc=0
  unpack "$zip" "$dir/pkg"
  (cd "$dir" && env -i PATH=/usr/bin:/bin HOME="$dir" "${CHECK_ENV[@]}" \
    timeout 60 "$2" "$tmp/harness/check.lua" "$dir/pkg" "$V") >"$dir.log" 2>&1 || rc=$?
  report "$zip with $2 ($(command -v "$2"))" "$rc" "$dir.log"
}

oldroot_run() { # oldroot_run ABI INTERP
  local zip="baseten-$V-linux-x86_64-$1.zip" dir="/tmp/baseten-dist/$1" rc=0
  unpack "$zip" "$oldroot$dir/pkg"
  cp "$tmp/harness/check.lua" "$oldroot$dir/"
  chroot "$oldroot" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp "${CHECK_ENV[@]}" \
    timeout 60 "$2" "$dir/check.lua" "$dir/pkg" "$V" >"$tmp/old-$1.log" 2>&1 || rc=$?
  # INSTALL.txt names the oldest glibc and libcurl it was tested with: these
  local glibc curl
  glibc=$(chroot "$oldroot" ldd --version | awk 'NR == 1 { print $NF }')
  curl=$(sed -n 's/^libcurl: \([0-9.]*\).*/\1/p' "$tmp/old-$1.log")
  if [ "$rc" -eq 0 ] && ! tr '\n' ' ' <"$oldroot$dir/pkg/INSTALL.txt" |
      grep -q "glibc $glibc and libcurl *$curl (Debian 11)"; then
    echo "INSTALL.txt does not say it was tested with glibc $glibc and libcurl $curl" >>"$tmp/old-$1.log"
    rc=1
  fi
  report "$zip with $2 in a Debian 11 root (glibc $glibc)" "$rc" "$tmp/old-$1.log"
}

windows_run() { # windows_run ABI LUA EXE DLL
  local zip="baseten-$V-windows-x86_64-$1.zip" dir="$tmp/windows-$1" rc=0
  unpack "$zip" "$dir/pkg"
  # the user's interpreter, in a folder of its own
  mkdir -p "$dir/bin"
  cp "$OUT/$2/$3" "$OUT/$2/$4" "$dir/bin/"
  (cd "$dir" && env "${CHECK_ENV[@]}" timeout 120 "$WINE" "$dir/bin/$3" \
    "$(winpath "$tmp/harness/check.lua")" "$(winpath "$dir/pkg")" "$V") >"$dir.log" 2>&1 || rc=$?
  report "$zip with $3 under Wine" "$rc" "$dir.log"
}

missing() { # missing ZIP OS: a missing archive fails unless its OS is not a target
  if [[ " $TARGETS " == *" $2 "* ]]; then
    echo "dist_test: FAILED dist/$1 is missing (make dist)" >&2
    status=1
  else
    echo "dist_test: not tested: dist/$1 (DIST_TARGETS=$TARGETS)"
  fi
}

for pair in lua5.4:lua5.4 luajit:luajit; do
  abi=${pair%%:*} interp=${pair#*:}
  if [ -f "dist/baseten-$V-linux-x86_64-$abi.zip" ]; then linux_run "$abi" "$interp"
  else missing "baseten-$V-linux-x86_64-$abi.zip" linux; fi
done

if [ "${DIST_TEST_OLDROOT:-1}" != 0 ] && ls dist/baseten-"$V"-linux-*.zip >/dev/null 2>&1; then
  oldroot=$(bash scripts/oldroot.sh)
  rm -rf "$oldroot/tmp/baseten-dist"
  for pair in lua5.4:lua5.4 luajit:luajit; do
    abi=${pair%%:*} interp=${pair#*:}
    [ -f "dist/baseten-$V-linux-x86_64-$abi.zip" ] && oldroot_run "$abi" "$interp"
  done
fi

if ls dist/baseten-"$V"-windows-*.zip >/dev/null 2>&1; then
  . scripts/wine.sh
  wine_prefix
  windows_run lua5.4 lua54 lua54.exe lua54.dll
  windows_run luajit luajit luajit.exe lua51.dll
else
  missing "baseten-$V-windows-x86_64-*.zip" windows
fi

KIT=build/love-kit/windows
if [ -f "$KIT/beside-the-love/baseten/core.dll" ]; then
  # mygame/: the fused game's folder (mygame.exe is luajit.exe), its
  # baseten\core.dll from the kit; the kit's Lua files stand in for the .love
  game=$tmp/love/mygame
  mkdir -p "$game" "$tmp/love/elsewhere"
  cp "$OUT/luajit/luajit.exe" "$game/mygame.exe"
  cp "$OUT/luajit/lua51.dll" "$game/"
  cp -r "$KIT/beside-the-love/baseten" "$game/"
  rc=0
  (cd "$tmp/love/elsewhere" && env "${CHECK_ENV[@]}" CHECK_CPATH=default \
    CHECK_LUA_DIR="$(winpath "$ROOT/$KIT/in-the-love")" timeout 120 "$WINE" "$game/mygame.exe" \
    "$(winpath "$tmp/harness/check.lua")" "$(winpath "$game")" "$V") >"$tmp/love.log" 2>&1 || rc=$?
  # found through !\?.dll: the .exe's own folder
  if [ "$rc" -eq 0 ] && ! tr -d '\r' <"$tmp/love.log" | grep -qiF '\mygame\baseten\core.dll ('; then
    echo "the core was not loaded from mygame\\baseten\\core.dll" >>"$tmp/love.log"
    rc=1
  fi
  report "the LÖVE kit's core.dll beside a fused game (luajit.exe as mygame.exe, !\\?.dll) under Wine" "$rc" \
    "$tmp/love.log"
elif [[ " $TARGETS " == *" windows "* ]]; then
  echo "dist_test: FAILED $KIT is missing (make love-kit)" >&2
  status=1
fi

echo "dist_test: $ran runs in $((SECONDS - t_all)) s, $([ $status -eq 0 ] && echo all passed || echo SOME FAILED)"
exit $status
