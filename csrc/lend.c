/*
 * lend.c: reads that move the bytes they lend to Lua (lend.h).
 */
#include <string.h>

#include "lend.h"

/* Aligned room for a moved state. */
typedef union {
  long double ld;
  void *p;
  long long ll;
  unsigned char b[BT_LEND_MAX];
} lend_copy;

void bt_lend_init(bt_lender *l, void *state, size_t size, void (*free)(void *), const char *what) {
  l->home = state;
  l->size = size;
  l->free = free;
  l->out = NULL;
  l->what = what;
  l->closed = 0;
}

void bt_lend_close(bt_lender *l) {
  if (l->closed) return;
  l->closed = 1;
  if (l->out == NULL) l->free(l->home); /* else the read frees its copy */
}

int bt_lend_read(lua_State *L, bt_lender *l) {
  lend_copy copy;
  int rc;
  if (l->out != NULL)
    return luaL_error(L, "%s is being read (by the code this finalizer interrupted)", l->what);
  memcpy(copy.b, l->home, l->size);
  memset(l->home, 0, l->size);
  l->out = copy.b;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  l->out = NULL;
  if (l->closed) l->free(copy.b);
  else memcpy(l->home, copy.b, l->size);
  return rc;
}

int bt_lend_finish(lua_State *L, int status) {
  if (status != 0) return lua_error(L);
  return lua_gettop(L);
}

void bt_lend_methods(lua_State *L, const luaL_Reg *l, lua_CFunction guard) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_pushcclosure(L, guard, 1);
    lua_setfield(L, -2, l->name);
  }
}
