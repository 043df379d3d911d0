/*
 * core.c: luaopen_baseten_core, the one symbol this module exports. Each
 * concept lives in its own file (json_enc.c, lsse.c, http_*.c) and adds its part
 * to the module table here.
 */
#include <curl/curl.h>

#include "bt.h"
#include "platform.h"

#define BT_CORE_VERSION "0.1.0"

BT_EXPORT int luaopen_baseten_core(lua_State *L);

void bt_new_class(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, m, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
}

/*
 * curl_global_init, once per process. Since 7.84.0 libcurl can say that it
 * is thread-safe (CURL_VERSION_THREADSAFE): then every luaopen calls it, as
 * libcurl counts the calls and serialises them itself, so two threads, each
 * with its own Lua state, may open the module at once. An older libcurl
 * cannot guard it: the flag below is then unsynchronised, and the rule is
 * that a program opening baseten.core from several threads must open it
 * once in one thread before it starts the others.
 */
static int curl_ready(void) {
  static int ready = 0;
#ifdef CURL_VERSION_THREADSAFE
  if (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_THREADSAFE)
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
#endif
  if (!ready) ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ready;
}

int luaopen_baseten_core(lua_State *L) {
  if (!curl_ready()) return luaL_error(L, "curl_global_init failed");
  lua_newtable(L);
  bt_json_open(L);
  lua_getfield(L, -1, "json"); /* json.partial (jpartial_lua.c) */
  bt_json_partial_open(L);
  lua_pop(L, 1);
  bt_sse_open(L);
  bt_http_open(L);
  bt_platform_open(L);
  bt_vector_open(L);
  bt_proc_open(L);
  lua_pushliteral(L, BT_CORE_VERSION);
  lua_setfield(L, -2, "VERSION");
  /* the Lua whose headers built this core, as _VERSION says it ("Lua 5.4");
     LuaJIT reports "Lua 5.1": :checkhealth compares the two */
  lua_pushliteral(L, LUA_VERSION);
  lua_setfield(L, -2, "LUA_VERSION");
  return 1;
}
