#!/usr/bin/env bash
# `make dist`: the release archives, from a clean clone on Debian 12, into
# dist/ (README "Install", table row "prebuilt archive"):
#
#   baseten-V-linux-x86_64-lua5.4.zip     core.so for Lua 5.4
#   baseten-V-linux-x86_64-luajit.zip     core.so for the 5.1 ABI (LuaJIT,
#                                         Neovim, LÖVE)
#   baseten-V-windows-x86_64-lua5.4.zip   core.dll (what `make windows` builds)
#   baseten-V-windows-x86_64-luajit.zip
#   SHA256SUMS                            in `sha256sum` format
#
# Every archive holds lua/baseten/*.lua (the rockspec's Lua files),
# lua/baseten/core.so or core.dll, LICENSE and an INSTALL.txt for its
# target. V is baseten.VERSION (BT_CORE_VERSION in csrc/core.c, which the
# core reports). The Linux cores link only libcurl.so.4 and glibc, and use
# no glibc symbol newer than GLIBC_MAX (checked with objdump), so they load
# on Debian 11 / Ubuntu 20.04; scripts/dist_test.sh runs them there.
# Zip entries are sorted and dated from the last commit, so two runs give
# the same file lists (and, with the same compilers, the same bytes).
# DIST_TARGETS=linux limits it to the Linux archives (no MinGW, no Wine),
# DIST_ABIS=luajit to one Lua (the Neovim spec serves only that one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/dist
STAGE=$ROOT/build/dist
GLIBC_MAX=2.31
TARGETS=${DIST_TARGETS:-"linux windows"}
ABIS=${DIST_ABIS:-"lua5.4 luajit"}
V=$(sed -n 's/^#define BT_CORE_VERSION "\(.*\)"$/\1/p' csrc/core.c)
[ -n "$V" ] || { echo "dist: no BT_CORE_VERSION in csrc/core.c" >&2; exit 1; }
t_all=$SECONDS

bash scripts/deps.sh dist >&2
mapfile -t CORE_SRC < <(grep -o '"csrc/[A-Za-z0-9_]*\.c"' baseten-scm-1.rockspec | tr -d '"')
mapfile -t LUA_FILES < <(grep -o '"lua/baseten/[A-Za-z0-9_]*\.lua"' baseten-scm-1.rockspec | tr -d '"' | sort -u)
# the date every zip entry carries: the last commit's (a tree with no git: a fixed one)
STAMP=$(git log -1 --format=%cd --date=format-local:%Y%m%d%H%M.%S 2>/dev/null || echo 202001010000.00)


# ------------------------------------------------------------ Linux cores
# -fvisibility=hidden: only luaopen_baseten_core is exported. --as-needed
# keeps libm and friends off the NEEDED list when unused.
linux_core() { # linux_core ABI OUTFILE
  local inc
  case "$1" in
    lua5.4) inc=/usr/include/lua5.4 ;;
    luajit) inc=/usr/include/luajit-2.1 ;;
  esac
  cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -fPIC -fvisibility=hidden -shared -s \
    -Wl,--as-needed -I"$inc" -Icsrc -o "$2" "${CORE_SRC[@]}" -lcurl
  # the NEEDED list: libcurl.so.4 and glibc's own libraries, nothing else
  local needed bad
  needed=$(objdump -p "$2" | awk '$1 == "NEEDED" { print $2 }')
  bad=$(printf '%s\n' "$needed" | grep -v -x -e 'libcurl\.so\.4' -e 'libc\.so\.6' -e 'libm\.so\.6' || true)
  [ -z "$bad" ] || { echo "dist: $2 needs $bad (only libcurl.so.4 and glibc allowed)" >&2; exit 1; }
  # the newest glibc symbol version it asks for
  local newest
  newest=$(objdump -T "$2" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
  if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
    echo "dist: $2 needs GLIBC_$newest, newer than $GLIBC_MAX:" >&2
    objdump -T "$2" | grep "GLIBC_$newest" >&2
    exit 1
  fi
  [ "$(objdump -T "$2" | awk '$2 == "g" && $4 == ".text" { print $NF }')" = luaopen_baseten_core ] || {
    echo "dist: $2 exports more than luaopen_baseten_core" >&2; exit 1; }
  echo "dist: $2: needs $(echo $needed), newest glibc symbol GLIBC_$newest"
}

# `dist.sh core-linux ABI OUT`: only that core, checked (make love-kit's)
if [ "${1:-}" = core-linux ]; then
  linux_core "$2" "$3"
  exit 0
fi

# ------------------------------------------------------------ INSTALL.txt
install_txt() { # install_txt OS ABI
  local os=$1 abi=$2 so lua_name
  so=$([ "$os" = windows ] && echo core.dll || echo core.so)
  lua_name=$([ "$abi" = luajit ] && echo "LuaJIT 2.1 / Lua 5.1 ABI (Neovim, LÖVE, luajit)" || echo "Lua 5.4")
  cat <<TXT
baseten $V for $os x86_64, $lua_name

  lua/baseten/*.lua     the library
  lua/baseten/$so   its C core, built for $lua_name

Check the archive first: sha256sum -c SHA256SUMS --ignore-missing
(Windows: certutil -hashfile <archive> SHA256), against the SHA256SUMS of
the same release.
TXT
  if [ "$os" = linux ]; then
    cat <<TXT

Run-time needs: libcurl.so.4 (Debian/Ubuntu: libcurl4; Fedora: libcurl;
Arch: curl) and glibc 2.17 or later. Tested with glibc 2.31 and libcurl
7.74.0 (Debian 11) and with glibc 2.36 and libcurl 7.88.1 (Debian 12).
TXT
  else
    cat <<TXT

Run-time needs: nothing but Windows' own DLLs and the Lua DLL
($([ "$abi" = luajit ] && echo "lua51.dll, which LuaJIT, Neovim and LÖVE ship" || echo "lua54.dll")).
libcurl is built in, over Schannel (Windows' own TLS and certificate store).
Tested under Wine on Linux; not tested on native Windows.
TXT
  fi
  if [ "$abi" = lua5.4 ]; then
    if [ "$os" = linux ]; then
      cat <<'TXT'

Plain Lua 5.4: unzip into a folder, then from that folder
  export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
  export LUA_CPATH="$PWD/lua/?.so;;"
  lua5.4 -e 'print(require("baseten").VERSION)'
or copy lua/baseten/*.lua into a folder on package.path (for example
/usr/local/share/lua/5.4/baseten/) and core.so into one on package.cpath
(/usr/local/lib/lua/5.4/baseten/core.so).
TXT
    else
      cat <<'TXT'

Plain Lua 5.4: unzip next to lua54.exe (Lua finds !\lua\?.lua by itself),
and point package.cpath at the core, for example in cmd.exe:
  set LUA_CPATH=!\lua\?.dll;;
  lua54.exe -e "print(require('baseten').VERSION)"
TXT
    fi
  else
    if [ "$os" = linux ]; then
      cat <<'TXT'

LuaJIT: as for plain Lua, with LUA_PATH and LUA_CPATH set the same way:
  export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
  export LUA_CPATH="$PWD/lua/?.so;;"
  luajit -e 'print(require("baseten").VERSION)'

Neovim: unzip into a folder on the runtimepath, for example
  ~/.local/share/nvim/site/pack/baseten/start/baseten/
Neovim finds lua/baseten/core.so there by itself. (A plugin manager that
runs build.lua fetches and checks this archive for you.)

LÖVE: lua/baseten/*.lua go inside your game (the .love) as baseten/*.lua;
core.so goes in a baseten/ folder in the game's save directory
(~/.local/share/love/<identity>/baseten/core.so) or next to the fused
game executable (baseten/core.so beside it). LÖVE cannot load a C module
from inside the .love. `make love-kit` lays this out.
TXT
    else
      cat <<'TXT'

LuaJIT: unzip next to luajit.exe, then in cmd.exe
  set LUA_CPATH=!\lua\?.dll;;
  luajit.exe -e "print(require('baseten').VERSION)"

Neovim: unzip into a folder on the runtimepath, for example
  %LOCALAPPDATA%\nvim-data\site\pack\baseten\start\baseten\
Neovim finds lua\baseten\core.dll there by itself. (A plugin manager that
runs build.lua fetches and checks this archive for you.)

LÖVE: lua\baseten\*.lua go inside your game (the .love) as baseten\*.lua;
core.dll goes in a baseten\ folder next to love.exe or your fused game's
.exe (LÖVE's LuaJIT searches !\?.dll, and ! is the .exe's folder). LÖVE
cannot load a C module from inside the .love. `make love-kit` lays this out.
TXT
    fi
  fi
}

rm -rf "$STAGE" "$OUT"
mkdir -p "$STAGE" "$OUT"

# ------------------------------------------------------------ one archive
pack() { # pack OS ABI CORE_FILE
  local name="baseten-$V-$1-x86_64-$2" ext dir
  ext=$([ "$1" = windows ] && echo dll || echo so)
  dir=$STAGE/$name
  mkdir -p "$dir/lua/baseten"
  cp "${LUA_FILES[@]}" "$dir/lua/baseten/"
  cp "$3" "$dir/lua/baseten/core.$ext"
  cp LICENSE "$dir/"
  install_txt "$1" "$2" >"$dir/INSTALL.txt"
  find "$dir" -exec touch -h -t "$STAMP" {} +
  (cd "$dir" && find . -type f | sed 's:^\./::' | LC_ALL=C sort | TZ=UTC zip -q -X -D "$OUT/$name.zip" -@)
  echo "dist: dist/$name.zip ($(stat -c %s "$OUT/$name.zip") bytes)"
}

if [[ " $TARGETS " == *" linux "* ]]; then
  mkdir -p "$STAGE/cores"
  for abi in $ABIS; do
    linux_core "$abi" "$STAGE/cores/linux-$abi.so"
    pack linux "$abi" "$STAGE/cores/linux-$abi.so"
  done
fi
if [[ " $TARGETS " == *" windows "* ]]; then
  bash scripts/windows.sh
  [[ " $ABIS " == *" lua5.4 "* ]] && pack windows lua5.4 build/windows/lua54/baseten/core.dll
  [[ " $ABIS " == *" luajit "* ]] && pack windows luajit build/windows/luajit/baseten/core.dll
fi

(cd "$OUT" && sha256sum -- *.zip >SHA256SUMS)
echo "dist: dist/SHA256SUMS; $(ls "$OUT"/*.zip | wc -l) archives in $((SECONDS - t_all)) s"
