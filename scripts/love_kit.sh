#!/usr/bin/env bash
# `make love-kit` (love_kit.sh [linux] [windows]): what a LÖVE game ships,
# one kit per platform, in build/love-kit/<platform>/:
#
#   README.txt                  where each part goes
#   in-the-love/baseten/*.lua   the Lua files: into the game folder, so into the .love
#   beside-the-love/baseten/    core.so (Linux) or core.dll (Windows): next to the
#                               fused game's executable or love.exe (or, on
#                               Linux, into the save directory), never inside
#                               the .love, where LÖVE cannot load it
#
# A kit's folder can be zipped as it is. The Linux core is the one `make
# dist` builds (libcurl.so.4 and glibc 2.17+ only); the Windows core is
# `make windows`'s LuaJIT core.dll (static curl over Schannel; needs only
# lua51.dll, which LÖVE ships). scripts/dist_test.sh loads the Windows kit's
# DLL under Wine the way LÖVE does; spec/hosts_spec.lua runs the Linux kit
# in real LÖVE.
set -euo pipefail
cd "$(dirname "$0")/.."
V=$(sed -n 's/^#define BT_CORE_VERSION "\(.*\)"$/\1/p' csrc/core.c)
PLATFORMS=("$@")
[ ${#PLATFORMS[@]} -eq 0 ] && PLATFORMS=(linux windows)
# the library's Lua files, without the LuaLS definitions and Neovim's health check
mapfile -t LUA_FILES < <(grep -o '"lua/baseten/[A-Za-z0-9_]*\.lua"' baseten-scm-1.rockspec | tr -d '"' | sort -u |
  grep -v -e '/types\.lua$' -e '/health\.lua$')

readme() { # readme PLATFORM
  local so where
  if [ "$1" = linux ]; then
    so=core.so
    where='    - next to the fused game executable, with this line at the top of
      main.lua (before require("baseten")):
        package.cpath = love.filesystem.getSourceBaseDirectory() .. "/?.so;" .. package.cpath
    - or into the save directory, which LÖVE searches by itself:
      ~/.local/share/love/<identity>/baseten/core.so
      (a fused game: ~/.local/share/<identity>/baseten/core.so)
    It needs libcurl.so.4 (Debian/Ubuntu: libcurl4) and glibc 2.17 or later.'
  else
    so=core.dll
    where='    - next to love.exe, or next to your fused game'"'"'s .exe: LÖVE'"'"'s LuaJIT
      searches !\?.dll (! is the running .exe'"'"'s folder), so
      require("baseten.core") finds baseten\core.dll there, no extra line.
    It needs only Windows'"'"' own DLLs and lua51.dll, which LÖVE ships.
    Tested under Wine with luajit.exe standing in for love.exe; not tested
    on Windows itself, nor with love.exe.'
  fi
  cat <<TXT
baseten $V for LÖVE 11 (LuaJIT), $1 x86_64

in-the-love/baseten/
    Copy this baseten/ folder into your game folder, next to main.lua, so
    that it ends up inside the .love. Then: local baseten = require("baseten")

beside-the-love/baseten/$so
    LÖVE cannot load a C module from inside the .love. Copy this baseten/
    folder (with $so in it):
$where

Zip this kit as it is to hand it on: the core stays outside the .love.
TXT
}

for platform in "${PLATFORMS[@]}"; do
  kit=build/love-kit/$platform
  rm -rf "$kit"
  mkdir -p "$kit/in-the-love/baseten" "$kit/beside-the-love/baseten"
  cp "${LUA_FILES[@]}" "$kit/in-the-love/baseten/"
  case "$platform" in
    linux) bash scripts/dist.sh core-linux luajit "$kit/beside-the-love/baseten/core.so" ;;
    windows)
      bash scripts/windows.sh
      cp build/windows/luajit/baseten/core.dll "$kit/beside-the-love/baseten/" ;;
    *) echo "love_kit: unknown platform '$platform' (linux or windows)" >&2; exit 2 ;;
  esac
  readme "$platform" >"$kit/README.txt"
  echo "love-kit: $kit (README.txt there says where each part goes)"
done
