/*
 * fz_same.h: deep equality of two Lua values for the fuzz targets that
 * compare what the decoder gives with another path (fuzz_json.c,
 * fuzz_jpartial.c). Tables are equal when they have the same metatable
 * and the same keys with equal values; a number's subtype counts. Sets
 * *multikey when an object (no metatable) has two keys or more, whose
 * encoding order may vary. The including file defines fz_die first.
 */
#ifndef BT_FZ_SAME_H
#define BT_FZ_SAME_H

#include <lua.h>

static int fz_same(lua_State *L, int a, int b, int *multikey);

/* Every key of table a is in b with an equal value; *count gets a's keys. */
static int fz_keys_in(lua_State *L, int a, int b, int *multikey, long *count) {
  *count = 0;
  lua_pushnil(L);
  while (lua_next(L, a)) {
    int top = lua_gettop(L);
    (*count)++;
    lua_pushvalue(L, top - 1);
    lua_rawget(L, b);
    if (!fz_same(L, top, top + 1, multikey)) return 0;
    lua_pop(L, 2);
  }
  return 1;
}

static int fz_same_table(lua_State *L, int a, int b, int *multikey) {
  long na, nb = 0;
  int ma, mb, same_mt;
  if (!lua_checkstack(L, 8)) fz_die("lua_checkstack failed", NULL);
  ma = lua_getmetatable(L, a);
  mb = lua_getmetatable(L, b);
  same_mt = ma == mb && (!ma || lua_rawequal(L, -1, -2));
  lua_pop(L, ma + mb);
  if (!same_mt) return 0;
  if (!fz_keys_in(L, a, b, multikey, &na)) return 0;
  lua_pushnil(L);
  while (lua_next(L, b)) {
    nb++;
    lua_pop(L, 1);
  }
  if (!ma && na >= 2) *multikey = 1; /* an object whose order may vary */
  return na == nb;
}

static int fz_same(lua_State *L, int a, int b, int *multikey) {
  int t = lua_type(L, a);
  if (t != lua_type(L, b)) return 0;
  if (t == LUA_TNUMBER && lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
  if (t == LUA_TTABLE) return fz_same_table(L, a, b, multikey);
  return lua_rawequal(L, a, b);
}

#endif /* BT_FZ_SAME_H */
