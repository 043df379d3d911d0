#!/usr/bin/env bash
# windows_check.sh DLL LUA_DLL: asserts, from `objdump -p`, that the module
# exports exactly one name, luaopen_baseten_core, and imports nothing but
# LUA_DLL (lua51.dll or lua54.dll) and DLLs that ship with Windows; a
# libgcc, winpthreads or libcurl DLL would mean a user must ship it too.
set -euo pipefail
dll=$1
lua_dll=$2
OBJDUMP=${OBJDUMP:-x86_64-w64-mingw32-objdump}
# DLLs every Windows since 7 has in System32
SYSTEM_DLLS="kernel32.dll msvcrt.dll ws2_32.dll crypt32.dll bcrypt.dll advapi32.dll
secur32.dll user32.dll ntdll.dll shell32.dll ole32.dll iphlpapi.dll normaliz.dll wldap32.dll"

dump=$("$OBJDUMP" -p "$dll")
exports=$(printf '%s\n' "$dump" |
  sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$/p' | sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p')
imports=$(printf '%s\n' "$dump" | sed -n 's/^[[:space:]]*DLL Name: //p')

ok=1
if [ "$exports" != "luaopen_baseten_core" ]; then
  echo "windows_check: $dll must export only luaopen_baseten_core; it exports:" >&2
  printf '  %s\n' "${exports:-(nothing)}" >&2
  ok=0
fi
for imp in $imports; do
  low=$(printf '%s' "$imp" | tr 'A-Z' 'a-z')
  [ "$low" = "$(printf '%s' "$lua_dll" | tr 'A-Z' 'a-z')" ] && continue
  case " $(echo $SYSTEM_DLLS) " in *" $low "*) continue ;; esac
  case "$low" in api-ms-win-*) continue ;; esac
  echo "windows_check: $dll imports $imp, which is neither $lua_dll nor a Windows DLL" >&2
  ok=0
done
printf '%s\n' "$imports" | grep -qix "$lua_dll" || {
  echo "windows_check: $dll does not import $lua_dll" >&2; ok=0; }
[ "$ok" = 1 ] || exit 1
echo "windows_check: $(basename "$(dirname "$(dirname "$dll")")")/baseten/core.dll exports" \
  "luaopen_baseten_core only; imports $(echo $imports)"
