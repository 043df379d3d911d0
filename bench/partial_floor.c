/*
 * bench/partial_floor.c: the floor of a feed, for bench/partial.lua: a C
 * function called as p:feed(piece) is (the parser, a string) that checks
 * the string and returns its first argument, doing nothing else. A Lua loop
 * of these calls, one per 1-byte piece, is what any per-piece C API costs
 * before it parses a byte. Built by bench/run.sh for Lua 5.4 and LuaJIT
 * (5.1 headers) into bench/out/floor/<v>/partial_floor.so.
 */
#include <lauxlib.h>
#include <lua.h>

static int floor_feed(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_argerror(L, 2, "string expected");
  lua_settop(L, 1);
  return 1;
}

__attribute__((visibility("default"))) int luaopen_partial_floor(lua_State *L) {
  lua_pushcfunction(L, floor_feed);
  return 1;
}
