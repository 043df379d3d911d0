# scripts/wine.sh: Wine for the scripts that run Windows builds
# (windows_smoke.sh, dist_test.sh). Sourced, never run; needs OUT (the
# build/windows folder). Sets WINE and Wine's environment, and wine_prefix
# makes the prefix build/windows/wine on first use (~10 s). WINEDEBUG=-all
# keeps Wine quiet; the Mono and Gecko installers are switched off, so
# nothing asks a question or downloads anything.
WINE=${WINE:-$(command -v wine || command -v wine64 || echo /usr/lib/wine/wine64)}
export WINEPREFIX=$OUT/wine WINEDEBUG=-all WINEDLLOVERRIDES="mscoree=;mshtml="
export HOME=$OUT/home # Wine links its user folders to $HOME: keep them in build/
mkdir -p "$HOME"
unset DISPLAY LUA_PATH LUA_PATH_5_4 LUA_CPATH LUA_CPATH_5_4 LUA_INIT LUA_INIT_5_4

winpath() { printf 'Z:%s' "${1//\//\\}"; }

wine_prefix() {
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    local t0=$SECONDS
    "$WINE" wineboot --init >"$OUT/wineboot.log" 2>&1 || {
      cat "$OUT/wineboot.log" >&2; echo "wine: wineboot failed" >&2; return 1; }
    echo "wine: made the Wine prefix build/windows/wine in $((SECONDS - t0)) s"
  fi
  mkdir -p "$WINEPREFIX/dosdevices"
  ln -sfn / "$WINEPREFIX/dosdevices/z:" # the scripts' paths are Z:\...
}

# Wine's Z: drive links to /, and its Desktop, Documents, ... to $HOME:
# tools that walk the tree (luacheck .) would walk the file system through
# them. Only the prefix's relative links (c: -> ../drive_c) stay.
wine_unlink() {
  find "$WINEPREFIX" -type l -lname '/*' -delete 2>/dev/null || true
}
