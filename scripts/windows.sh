#!/usr/bin/env bash
# `make windows`: cross-builds the core for 64-bit Windows with MinGW-w64,
# from Debian's own source packages, into build/windows/ (nothing is cached
# anywhere else, so a fresh clone does it all):
#
#   build/windows/src/        apt-get source curl luajit lua5.4
#   build/windows/luajit/     luajit.exe, lua51.dll, baseten/core.dll
#   build/windows/lua54/      lua54.exe,  lua54.dll, baseten/core.dll
#
# libcurl is built with Schannel (Windows' own TLS: no OpenSSL), HTTP and
# HTTPS only, and linked statically into each core.dll, so a core.dll needs
# no DLL but its Lua DLL and Windows' own; scripts/windows_check.sh proves
# that and that luaopen_baseten_core is its only export. Each step prints
# its time. Steps whose output exists are skipped (rm -rf build/windows to
# start over). The Lua sources of the core come from the rockspec.
#
# Needs root (or sudo) once: it adds a deb-src copy of the apt sources when
# `apt-get source` has none, and installs the cross compiler and Wine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/windows
SRC=$OUT/src
HOST=x86_64-w64-mingw32
CC=$HOST-gcc
JOBS=${JOBS:-2}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

t_all=$SECONDS
step() { # step NAME: starts the clock for a step; done_step prints it
  STEP=$1
  t_step=$SECONDS
}
done_step() { echo "windows: $STEP: $((SECONDS - t_step)) s"; }

mkdir -p "$SRC"

step deps
bash scripts/deps.sh windows
done_step

# ---------------------------------------------------------------- sources
step sources
src_dir() { ls -d "$SRC/$1"-[0-9]*/ 2>/dev/null | head -n 1 | sed 's:/$::'; }
if [ -z "$(src_dir curl)" ] || [ -z "$(src_dir luajit)" ] || [ -z "$(src_dir lua5.4)" ]; then
  if ! apt-cache showsrc curl 2>/dev/null | grep -q '^Package:'; then
    # the binary archive's own source packages: same suites, Types: deb-src
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed 's/^Types:.*$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
        $SUDO tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
    fi
    if [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list |
        $SUDO tee /etc/apt/sources.list.d/debian-src.list >/dev/null
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  fi
  # apt-get source unpacks and applies Debian's patches (security fixes
  # included); as root it warns that it cannot drop to the _apt user
  (cd "$SRC" && apt-get source -qq curl luajit lua5.4 >"$OUT/sources.log" 2>&1) || {
    cat "$OUT/sources.log" >&2; echo "windows: apt-get source failed" >&2; exit 1; }
fi
CURL_SRC=$(src_dir curl)
LUAJIT_SRC=$(src_dir luajit)
LUA54_SRC=$(src_dir lua5.4)
done_step

fail_log() { tail -n 40 "$1" >&2; echo "windows: $STEP failed (log: $1)" >&2; exit 1; }

# ---------------------------------------------------------------- libcurl
# curl's own MinGW makefile (lib/Makefile.mk, with lib/config-win32.h): no
# configure run, which alone took minutes here. Only what the core uses:
# HTTP(S) over Schannel (with SSPI, which Schannel needs), IPv6, proxies,
# and the threaded resolver on Windows threads (so no winpthreads DLL).
# CURL_STATICLIB keeps curl's functions from being exported by core.dll.
step libcurl
CURL_LIB=$CURL_SRC/lib/libcurl.a
CURL_OFF=(-DCURL_STATICLIB -DCURL_DISABLE_LDAP -DCURL_DISABLE_LDAPS -DCURL_DISABLE_RTSP
  -DCURL_DISABLE_DICT -DCURL_DISABLE_TELNET -DCURL_DISABLE_TFTP -DCURL_DISABLE_POP3
  -DCURL_DISABLE_IMAP -DCURL_DISABLE_SMB -DCURL_DISABLE_SMTP -DCURL_DISABLE_GOPHER
  -DCURL_DISABLE_MQTT -DCURL_DISABLE_FTP -DCURL_DISABLE_FILE -DCURL_DISABLE_COOKIES
  -DCURL_DISABLE_MIME -DCURL_DISABLE_FORM_API -DCURL_DISABLE_DOH -DCURL_DISABLE_NETRC
  -DCURL_DISABLE_ALTSVC -DCURL_DISABLE_HSTS -DCURL_DISABLE_AWS -DCURL_DISABLE_NTLM_WB
  -DCURL_DISABLE_LIBCURL_OPTION)
if [ ! -f "$CURL_LIB" ]; then
  mkdir -p "$CURL_SRC/lib/$HOST"
  # flags through the environment: Makefile.mk appends its own to them
  (cd "$CURL_SRC/lib" && env CPPFLAGS="${CURL_OFF[*]}" CFLAGS=-O2 \
    make -f Makefile.mk -j"$JOBS" CROSSPREFIX=$HOST- CFG=-schannel-sspi-ipv6 libcurl.a) \
    >"$OUT/curl-make.log" 2>&1 || fail_log "$OUT/curl-make.log"
fi
CURL_INC=$CURL_SRC/include
CURL_LIBS=("$CURL_LIB" -lws2_32 -lcrypt32 -lbcrypt -ladvapi32)
done_step

# ---------------------------------------------------------------- LuaJIT
# LuaJIT's own makefile cross-builds lua51.dll and luajit.exe (its build
# tools run on the host, hence HOST_CC).
step luajit
mkdir -p "$OUT/luajit/baseten"
if [ ! -f "$OUT/luajit/luajit.exe" ]; then
  make -C "$LUAJIT_SRC/src" -j"$JOBS" HOST_CC=gcc CROSS=$HOST- TARGET_SYS=Windows \
    TARGET_LDFLAGS=-static-libgcc >"$OUT/luajit-make.log" 2>&1 || fail_log "$OUT/luajit-make.log"
  cp "$LUAJIT_SRC/src/lua51.dll" "$LUAJIT_SRC/src/luajit.exe" "$OUT/luajit/"
fi
done_step

# ---------------------------------------------------------------- Lua 5.4
# Debian patches Lua's makefile for libtool, so this compiles the upstream
# file list directly, as upstream's `make mingw` does: lua54.dll exports
# the API (LUA_BUILD_AS_DLL), lua54.exe links against it.
step lua54
mkdir -p "$OUT/lua54/baseten" "$OUT/lua54-build"
if [ ! -f "$OUT/lua54/lua54.exe" ]; then
  LUA_CFLAGS=(-O2 -std=gnu99 -DLUA_COMPAT_5_3 -DLUA_BUILD_AS_DLL)
  (cd "$LUA54_SRC/src" && ls l*.c | grep -v -x -e lua.c -e luac.c |
    xargs -P "$JOBS" -I{} sh -c "$CC ${LUA_CFLAGS[*]} -c {} -o '$OUT/lua54-build/{}.o'") \
    >"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
  $CC -shared -s -static-libgcc -o "$OUT/lua54/lua54.dll" "$OUT"/lua54-build/*.o \
    >>"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
  $CC "${LUA_CFLAGS[@]}" -s -static-libgcc -o "$OUT/lua54/lua54.exe" "$LUA54_SRC/src/lua.c" \
    "$OUT/lua54/lua54.dll" >>"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
fi
done_step

# ---------------------------------------------------------------- core.dll
# The sources the rockspec builds, with the flags CI holds the core to.
step core
mapfile -t CORE_SRC < <(grep -o '"csrc/[A-Za-z0-9_]*\.c"' baseten-scm-1.rockspec | tr -d '"')
CORE_CFLAGS=(-std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -DCURL_STATICLIB -DLUA_BUILD_AS_DLL)
build_core() { # build_core DIR LUA_INCDIR LUA_DLL
  $CC "${CORE_CFLAGS[@]}" -shared -s -static-libgcc -I"$2" -I"$CURL_INC" -Icsrc \
    -o "$1/baseten/core.dll" "${CORE_SRC[@]}" "${CURL_LIBS[@]}" "$3"
}
build_core "$OUT/luajit" "$LUAJIT_SRC/src" "$OUT/luajit/lua51.dll"
build_core "$OUT/lua54" "$LUA54_SRC/src" "$OUT/lua54/lua54.dll"
done_step

step check
bash scripts/windows_check.sh "$OUT/luajit/baseten/core.dll" lua51.dll
bash scripts/windows_check.sh "$OUT/lua54/baseten/core.dll" lua54.dll
done_step
echo "windows: built build/windows/luajit and build/windows/lua54 in $((SECONDS - t_all)) s"
