#!/usr/bin/env bash
# Builds and installs the rock with `luarocks make` into .rocks/<version>,
# once per Lua version (the 5.1 build is the one LuaJIT loads).
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${LUA_VERSIONS:-"5.4 5.3 5.1"}
for v in $versions; do
  echo "build: the library for Lua $v with luarocks make, into .rocks/$v (about 10-30 s)" >&2
  luarocks --lua-version="$v" make --tree=".rocks/$v" baseten-scm-1.rockspec >".rocks-$v.log" 2>&1 || {
    cat ".rocks-$v.log" >&2; echo "build for Lua $v failed" >&2; exit 1; }
  rm -f ".rocks-$v.log"
done
