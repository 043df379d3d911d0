/*
 * prof_lua.c: a minimal `lua5.4 script args...` linked against Debian's
 * static liblua5.4.a, which keeps its symbol table, so that callgrind names
 * Lua's own functions (Debian's lua5.4 binary is stripped). Used by
 * bench/profile.lua:
 *   cc -O2 -g -o bench/out/prof_lua5.4 bench/prof_lua.c \
 *      -I/usr/include/lua5.4 /usr/lib/x86_64-linux-gnu/liblua5.4.a -lm -ldl -Wl,-E
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int report(lua_State *L, int status) {
  if (status != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  return status;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  int i, status;
  if (L == NULL || argc < 2) {
    fprintf(stderr, "usage: prof_lua script [args]\n");
    return 2;
  }
  luaL_openlibs(L);
  lua_createtable(L, argc, 0); /* arg, as lua.c sets it */
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  status = report(L, luaL_loadfile(L, argv[1]));
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = report(L, lua_pcall(L, argc - 2, 0, 0));
  }
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
