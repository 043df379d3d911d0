# Source with a Lua version (5.4, 5.3, 5.1): points LUA_PATH/LUA_CPATH at
# the rock built in .rocks/<version> and at the repo root (for spec.support).
_bt_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_bt_v=${1:-5.4}
eval "$(luarocks --lua-version="$_bt_v" path --tree="$_bt_root/.rocks/$_bt_v")"
export LUA_PATH="$_bt_root/?.lua;$LUA_PATH"
export PATH="$_bt_root/.rocks/$_bt_v/bin:$PATH"
