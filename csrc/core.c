/*
 * core.c: luaopen_baseten_core, the one symbol this module exports. Each
 * concept lives in its own file (json_enc.c, lsse.c, http.c) and adds its part
 * to the module table here.
 */
#include <curl/curl.h>

#include "bt.h"

#define BT_CORE_VERSION "0.1.0"

BT_EXPORT int luaopen_baseten_core(lua_State *L);

int luaopen_baseten_core(lua_State *L) {
  static int curl_ready = 0;
  if (!curl_ready) { /* once per process; libcurl wants it before any thread */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return luaL_error(L, "curl_global_init failed");
    curl_ready = 1;
  }
  lua_newtable(L);
  bt_json_open(L);
  bt_sse_open(L);
  bt_http_open(L);
  lua_pushliteral(L, BT_CORE_VERSION);
  lua_setfield(L, -2, "VERSION");
  /* the Lua whose headers built this core, as _VERSION says it ("Lua 5.4");
     LuaJIT reports "Lua 5.1": :checkhealth compares the two */
  lua_pushliteral(L, LUA_VERSION);
  lua_setfield(L, -2, "LUA_VERSION");
  return 1;
}
