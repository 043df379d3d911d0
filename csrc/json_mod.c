/*
 * json_mod.c: the `json` table of baseten.core (bt_json_open): encode
 * (json_enc.c), decode (json_dec.c), the array and object marks, null.
 */
#include "bt.h"

static int json_mark(lua_State *L, int uv) {
  if (lua_isnone(L, 1)) lua_newtable(L);
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushvalue(L, uv);
  lua_setmetatable(L, 1);
  return 1;
}

static int json_array(lua_State *L) { return json_mark(L, UV_ARRAY_MT); }

static int json_object(lua_State *L) { return json_mark(L, UV_OBJECT_MT); }

static int json_is_array(lua_State *L) {
  int yes = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1))
    yes = lua_rawequal(L, -1, UV_ARRAY_MT);
  lua_pushboolean(L, yes);
  return 1;
}

/* Pushes the mark metatable `name` (created once per state). */
static void push_mark(lua_State *L, const char *name, const char *jsontype) {
  luaL_newmetatable(L, name);
  lua_pushstring(L, jsontype);
  lua_setfield(L, -2, "__jsontype");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
}

void bt_json_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"encode", bt_json_encode},
                                   {"array", json_array},
                                   {"object", json_object},
                                   {"is_array", json_is_array},
                                   {NULL, NULL}};
  luaL_checkstack(L, 6, "cannot open baseten.core.json");
  bt_json_enc_open(L);
  lua_createtable(L, 0, 8);
  push_mark(L, BT_JSON_ARRAY_MT, "array");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "array_mt");
  push_mark(L, BT_JSON_OBJECT_MT, "object");
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "object_mt");
  lua_pushboolean(L, 0); /* the encoder cache starts empty */
  lua_pushinteger(L, 0); /* UV_DEPTH */
  luaL_setfuncs(L, funcs, 4);
  bt_json_dec_open(L);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_setfield(L, -2, "json");
}
