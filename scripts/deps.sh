#!/usr/bin/env bash
# Installs what building and testing need, from Debian's archive only.
# Runs apt-get only when something is missing, so it is cheap to call often.
set -euo pipefail
PKGS=(
  build-essential pkg-config git python3
  lua5.4 liblua5.4-dev lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev
  luajit libluajit-5.1-dev
  libcurl4-openssl-dev
  luarocks lua-busted lua-socket lua-check
)
# extra package groups: deps.sh [extra...]  (e.g. "tools" for sanitizers)
for g in "$@"; do
  case "$g" in
    tools) PKGS+=(clang libclang-rt-14-dev valgrind locales libcjson-dev) ;; # cJSON: the fuzz reference
    hosts) PKGS+=(neovim love xvfb xauth zip unzip lua-luv) ;; # zip, unzip: the LÖVE and build.lua specs
    # make dist and its test: zip, objdump (binutils), a Debian 11 root
    dist) PKGS+=(zip unzip binutils) ;;
    oldroot) PKGS+=(debootstrap) ;;
    locale) PKGS+=(locales) ;; # the Makefile's deps-test then generates de_DE.UTF-8
    tls) PKGS+=(nginx-light openssl) ;;
    docs) PKGS+=(lua-ldoc lua-discount cppcheck clang-format) ;;
    # make windows: the MinGW-w64 cross compiler, Wine, and apt-get source
    windows) PKGS+=(gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 wine64 dpkg-dev xz-utils) ;;
    # a machine may already have Node.js from elsewhere (its own npm inside):
    # Debian's npm would conflict with it
    # valgrind: callgrind counts and its client-request header (bench/partial_floor.c)
    bench) PKGS+=(libcjson-dev valgrind); command -v nginx >/dev/null 2>&1 || PKGS+=(nginx-light); command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm) ;;
    # the real MCP servers the MCP specs run (spec/mcp_npm_spec.lua): Node 18
    # or later (Debian 12's nodejs is 18.19), then mcp_servers below
    mcp) command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm) ;;
  esac
done
# The MCP reference servers from npm, pinned, into .mcp/ (gitignored);
# their SDK (1.32) speaks protocol 2025-11-25 and 2025-06-18 and needs
# Node >= 18. Idempotent: npm ci-like, skipped when the pins are in place.
MCP_SERVERS=(
  @modelcontextprotocol/server-everything@2026.8.31
  @modelcontextprotocol/server-filesystem@2026.8.31
  @modelcontextprotocol/server-memory@2026.8.31
)
mcp_servers() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/.mcp"
  [ -f "$dir/pins" ] && [ "$(cat "$dir/pins")" = "${MCP_SERVERS[*]}" ] && return 0
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  echo "deps: npm install ${MCP_SERVERS[*]} into $dir" >&2
  (cd "$dir" && npm install --no-audit --no-fund --save-exact --loglevel=error "${MCP_SERVERS[@]}" >/dev/null)
  echo "${MCP_SERVERS[*]}" >"$dir/pins"
}
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # apt-get is quiet: say what it does and roughly how long it takes
  n=${#missing[@]}
  if [ "$n" -le 5 ]; then about="under a minute"; elif [ "$n" -le 25 ]; then about="about 1-2 minutes"; else about="about 2-5 minutes"; fi
  echo "deps: installing $n Debian package$([ "$n" -eq 1 ] || echo s) with apt-get ($about): ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps: installed $n package$([ "$n" -eq 1 ] || echo s)" >&2
fi
for g in "$@"; do
  if [ "$g" = mcp ]; then mcp_servers; fi
done
