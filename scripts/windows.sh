#!/usr/bin/env bash
# `make windows`: cross-builds the core for 64-bit Windows with MinGW-w64,
# from Debian's own source packages, into build/windows/:
#
#   build/windows/src/        apt-get source curl luajit lua5.4 (when needed)
#   build/windows/luajit/     luajit.exe, lua51.dll, baseten/core.dll
#   build/windows/lua54/      lua54.exe,  lua54.dll, baseten/core.dll
#
# The cross-built libcurl.a, LuaJIT and Lua 5.4 (with their headers) are
# cached outside the clone, in $BASETEN_CACHE/windows (default
# /var/cache/baseten/windows), each under its Debian source package's
# version and a hash of the flags it is built with: a fresh clone on the
# same machine (CI) builds only core.dll, in about 20 s, and a new Debian
# security update of curl makes a new entry. The first build takes about
# 3-4 minutes on 2 cores.
#
# libcurl is built with Schannel (Windows' own TLS: no OpenSSL), HTTP and
# HTTPS only, and linked statically into each core.dll, so a core.dll needs
# no DLL but its Lua DLL and Windows' own; scripts/windows_check.sh proves
# that and that luaopen_baseten_core is its only export. Each step prints
# its time. The Lua sources of the core come from the rockspec.
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
CACHE=${BASETEN_CACHE:-/var/cache/baseten}/windows
mkdir -p "$CACHE" 2>/dev/null && [ -w "$CACHE" ] || CACHE=$OUT/cache

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
# the version apt-get source would fetch (its .dsc name), without fetching
src_version() {
  apt-get source --print-uris "$1" 2>/dev/null | grep -o "/$1_[^/']*\.dsc'" | head -n 1 |
    sed -e "s:^/$1_::" -e "s:\.dsc'\$::" -e 's/%2[bB]/+/g' -e 's/%7[eE]/~/g'
}
# cache_dir NAME RECIPE...: the cache folder for a source package built with RECIPE
cache_dir() {
  local name=$1 ver
  shift
  ver=$(src_version "$name")
  [ -n "$ver" ] || { echo "windows: apt-get source knows no $name" >&2; exit 1; }
  echo "$CACHE/$name-$ver-$(printf '%s\n' "$@" | sha256sum | cut -c1-10)"
}
fetch_sources() { # apt-get source, once, when something is not cached
  [ -n "$(src_dir curl)" ] && [ -n "$(src_dir luajit)" ] && [ -n "$(src_dir lua5.4)" ] && return 0
  # apt-get source unpacks and applies Debian's patches (security fixes
  # included); as root it warns that it cannot drop to the _apt user
  (cd "$SRC" && apt-get source -qq curl luajit lua5.4 >"$OUT/sources.log" 2>&1) || {
    cat "$OUT/sources.log" >&2; echo "windows: apt-get source failed" >&2; exit 1; }
}
# cached LIB: moves a finished build into the cache, in one rename
cache_put() { rm -rf "$1"; mv "$1.tmp" "$1"; }
done_step

fail_log() { tail -n 40 "$1" >&2; echo "windows: $STEP failed (log: $1)" >&2; exit 1; }

# ---------------------------------------------------------------- libcurl
# curl's own MinGW makefile (lib/Makefile.mk, with lib/config-win32.h): no
# configure run, which alone took minutes here. Only what the core uses:
# HTTP(S) over Schannel (with SSPI, which Schannel needs), IPv6, proxies,
# and the threaded resolver on Windows threads (so no winpthreads DLL).
# CURL_STATICLIB keeps curl's functions from being exported by core.dll.
step libcurl
CURL_OFF=(-DCURL_STATICLIB -DCURL_DISABLE_LDAP -DCURL_DISABLE_LDAPS -DCURL_DISABLE_RTSP
  -DCURL_DISABLE_DICT -DCURL_DISABLE_TELNET -DCURL_DISABLE_TFTP -DCURL_DISABLE_POP3
  -DCURL_DISABLE_IMAP -DCURL_DISABLE_SMB -DCURL_DISABLE_SMTP -DCURL_DISABLE_GOPHER
  -DCURL_DISABLE_MQTT -DCURL_DISABLE_FTP -DCURL_DISABLE_FILE -DCURL_DISABLE_COOKIES
  -DCURL_DISABLE_MIME -DCURL_DISABLE_FORM_API -DCURL_DISABLE_DOH -DCURL_DISABLE_NETRC
  -DCURL_DISABLE_ALTSVC -DCURL_DISABLE_HSTS -DCURL_DISABLE_AWS -DCURL_DISABLE_NTLM_WB
  -DCURL_DISABLE_LIBCURL_OPTION)
CURL_CFG=-schannel-sspi-ipv6
C_CURL=$(cache_dir curl "${CURL_OFF[@]}" "$CURL_CFG" "$($CC -dumpversion)")
if [ ! -f "$C_CURL/libcurl.a" ]; then
  fetch_sources
  CURL_SRC=$(src_dir curl)
  mkdir -p "$CURL_SRC/lib/$HOST"
  # flags through the environment: Makefile.mk appends its own to them
  (cd "$CURL_SRC/lib" && rm -f libcurl.a && env CPPFLAGS="${CURL_OFF[*]}" CFLAGS=-O2 \
    make -f Makefile.mk -j"$JOBS" CROSSPREFIX=$HOST- CFG=$CURL_CFG libcurl.a) \
    >"$OUT/curl-make.log" 2>&1 || fail_log "$OUT/curl-make.log"
  rm -rf "$C_CURL.tmp" && mkdir -p "$C_CURL.tmp"
  cp "$CURL_SRC/lib/libcurl.a" "$C_CURL.tmp/" && cp -r "$CURL_SRC/include" "$C_CURL.tmp/include"
  cache_put "$C_CURL"
else
  echo "windows: libcurl from the cache, $C_CURL"
fi
CURL_INC=$C_CURL/include
CURL_LIBS=("$C_CURL/libcurl.a" -lws2_32 -lcrypt32 -lbcrypt -ladvapi32)
done_step

# ---------------------------------------------------------------- LuaJIT
# LuaJIT's own makefile cross-builds lua51.dll and luajit.exe (its build
# tools run on the host, hence HOST_CC).
step luajit
LJ_FLAGS=(HOST_CC=gcc CROSS=$HOST- TARGET_SYS=Windows TARGET_LDFLAGS=-static-libgcc)
C_LUAJIT=$(cache_dir luajit "${LJ_FLAGS[@]}" "$($CC -dumpversion)")
if [ ! -f "$C_LUAJIT/luajit.exe" ]; then
  fetch_sources
  LUAJIT_SRC=$(src_dir luajit)
  make -C "$LUAJIT_SRC/src" -j"$JOBS" "${LJ_FLAGS[@]}" >"$OUT/luajit-make.log" 2>&1 ||
    fail_log "$OUT/luajit-make.log"
  rm -rf "$C_LUAJIT.tmp" && mkdir -p "$C_LUAJIT.tmp/include"
  cp "$LUAJIT_SRC/src/lua51.dll" "$LUAJIT_SRC/src/luajit.exe" "$C_LUAJIT.tmp/"
  (cd "$LUAJIT_SRC/src" && cp lua.h luaconf.h lauxlib.h lualib.h luajit.h lua.hpp "$C_LUAJIT.tmp/include/")
  cache_put "$C_LUAJIT"
else
  echo "windows: LuaJIT from the cache, $C_LUAJIT"
fi
mkdir -p "$OUT/luajit/baseten"
cp "$C_LUAJIT/lua51.dll" "$C_LUAJIT/luajit.exe" "$OUT/luajit/"
done_step

# ---------------------------------------------------------------- Lua 5.4
# Debian patches Lua's makefile for libtool, so this compiles the upstream
# file list directly, as upstream's `make mingw` does: lua54.dll exports
# the API (LUA_BUILD_AS_DLL), lua54.exe links against it.
step lua54
LUA_CFLAGS=(-O2 -std=gnu99 -DLUA_COMPAT_5_3 -DLUA_BUILD_AS_DLL)
C_LUA54=$(cache_dir lua5.4 "${LUA_CFLAGS[@]}" "$($CC -dumpversion)")
if [ ! -f "$C_LUA54/lua54.exe" ]; then
  fetch_sources
  LUA54_SRC=$(src_dir lua5.4)
  rm -rf "$OUT/lua54-build" "$C_LUA54.tmp" && mkdir -p "$OUT/lua54-build" "$C_LUA54.tmp/include"
  (cd "$LUA54_SRC/src" && ls l*.c | grep -v -x -e lua.c -e luac.c |
    xargs -P "$JOBS" -I{} sh -c "$CC ${LUA_CFLAGS[*]} -c {} -o '$OUT/lua54-build/{}.o'") \
    >"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
  $CC -shared -s -static-libgcc -o "$C_LUA54.tmp/lua54.dll" "$OUT"/lua54-build/*.o \
    >>"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
  $CC "${LUA_CFLAGS[@]}" -s -static-libgcc -o "$C_LUA54.tmp/lua54.exe" "$LUA54_SRC/src/lua.c" \
    "$C_LUA54.tmp/lua54.dll" >>"$OUT/lua54-make.log" 2>&1 || fail_log "$OUT/lua54-make.log"
  (cd "$LUA54_SRC/src" && cp lua.h luaconf.h lauxlib.h lualib.h "$C_LUA54.tmp/include/")
  cache_put "$C_LUA54"
else
  echo "windows: Lua 5.4 from the cache, $C_LUA54"
fi
mkdir -p "$OUT/lua54/baseten"
cp "$C_LUA54/lua54.dll" "$C_LUA54/lua54.exe" "$OUT/lua54/"
done_step

# ---------------------------------------------------------------- core.dll
# The sources the rockspec builds, with the flags CI holds the core to.
step core
mapfile -t CORE_SRC < <(grep -o '"csrc/[A-Za-z0-9_]*\.c"' baseten-scm-1.rockspec | tr -d '"')
CORE_CFLAGS=(-std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -DCURL_STATICLIB -DLUA_BUILD_AS_DLL)
build_core() { # build_core DIR LUA_INCDIR LUA_DLL
  $CC "${CORE_CFLAGS[@]}" -shared -s -static-libgcc -Wl,--no-insert-timestamp -I"$2" -I"$CURL_INC" -Icsrc \
    -o "$1/baseten/core.dll" "${CORE_SRC[@]}" "${CURL_LIBS[@]}" "$3"
}
# skipped when core.dll is newer than every source (make dist and make
# love-kit run this script again after make windows)
# (only C sources and headers count: luarocks make leaves .o files in csrc/)
stale() {
  [ ! -f "$1" ] || [ -n "$(find csrc baseten-scm-1.rockspec scripts/windows.sh \( -name '*.[ch]' -o -name '*.rockspec' \
    -o -name '*.sh' \) -newer "$1" -print -quit)" ]
}
# the two builds side by side (JOBS=2)
core_pids=()
if stale "$OUT/luajit/baseten/core.dll"; then
  build_core "$OUT/luajit" "$C_LUAJIT/include" "$OUT/luajit/lua51.dll" &
  core_pids+=($!)
fi
if stale "$OUT/lua54/baseten/core.dll"; then
  build_core "$OUT/lua54" "$C_LUA54/include" "$OUT/lua54/lua54.dll" &
  core_pids+=($!)
fi
for p in "${core_pids[@]}"; do wait "$p" || { echo "windows: building core.dll failed" >&2; exit 1; }; done
done_step

step check
bash scripts/windows_check.sh "$OUT/luajit/baseten/core.dll" lua51.dll
bash scripts/windows_check.sh "$OUT/lua54/baseten/core.dll" lua54.dll
done_step
echo "windows: built build/windows/luajit and build/windows/lua54 in $((SECONDS - t_all)) s"
