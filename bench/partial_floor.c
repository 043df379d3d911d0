/*
 * bench/partial_floor.c: bench/partial_worker.lua's helpers, built by
 * bench/run.sh for Lua 5.4 and LuaJIT (5.1 headers) into
 * bench/out/floor/<v>/partial_floor.so:
 *
 *   feed(p, piece)  the floor of a feed: a C function called as p:feed(piece)
 *                   is (the parser, a string) that checks the string and
 *                   returns its first argument, doing nothing else. A Lua
 *                   loop of these, one per 1-byte piece, is what any
 *                   per-piece C API costs before it parses a byte.
 *   toggle()        callgrind's CALLGRIND_TOGGLE_COLLECT (nothing outside
 *                   valgrind): under --collect-atstart=no, the worker counts
 *                   the instructions of the measured part alone.
 */
#include <valgrind/callgrind.h>

#include <lauxlib.h>
#include <lua.h>

static int floor_feed(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_argerror(L, 2, "string expected");
  lua_settop(L, 1);
  return 1;
}

static int toggle(lua_State *L) {
  (void)L;
  CALLGRIND_TOGGLE_COLLECT;
  return 0;
}

__attribute__((visibility("default"))) int luaopen_partial_floor(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, floor_feed);
  lua_setfield(L, -2, "feed");
  lua_pushcfunction(L, toggle);
  lua_setfield(L, -2, "toggle");
  return 1;
}
