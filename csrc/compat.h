/*
 * compat.h: one place that maps the Lua 5.1 / LuaJIT API onto the 5.2+ names
 * the rest of csrc/ is written against (the LPeg lptypes.h approach).
 */
#ifndef BT_COMPAT_H
#define BT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#include "base.h"

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define lua_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#define luaL_setmetatable(L, name) (luaL_getmetatable((L), (name)), lua_setmetatable((L), -2))

/*
 * LuaJIT 2.1's lauxlib.h already has luaL_newlib, luaL_setfuncs and
 * luaL_testudata (luajit.h, which would name it, is not included here, so
 * its luaL_newlibtable macro is how we tell); plain 5.1 has none of them.
 */
#if !defined(luaL_newlibtable)
#define BT_PLAIN_LUA51 1
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif

#if defined(BT_PLAIN_LUA51)
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#endif
#if defined(BT_PLAIN_LUA51)
static inline void *luaL_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#endif
#endif

/* Integers: 5.3+ has a real integer subtype; 5.1 and LuaJIT only doubles. */
#if LUA_VERSION_NUM >= 503
#define BT_HAS_INTEGERS 1
#else
#define BT_HAS_INTEGERS 0
#endif

#endif
