/*
 * lsse.c: baseten.sse, the Lua face of the SSE parser in sse.c.
 *
 *   local p = baseten.sse.new([max_event_bytes])
 *   for _, ev in ipairs(p:feed(bytes)) do ... ev.event, ev.data, ev.id end
 *
 * The parser lives inside the userdata, so its buffers belong to the
 * garbage collector: a Lua error raised while events are being built leaks
 * nothing, and the parser is left between two events, ready for more.
 *
 * feed and pending take the parser out of the userdata while they build
 * events (lend.h), so a __gc that closes it meanwhile frees nothing of
 * theirs; one that resets, feeds or reads it raises.
 */
#include <stdint.h>
#include <stdio.h>

#include "bt.h"
#include "lend.h"
#include "sse.h"

#define LSSE_MT "baseten.sse.parser"

typedef struct lsse {
  bt_lender lend; /* lends p to feed and pending */
  sse_parser p;
} lsse;

static void lsse_free(void *p) { sse_free(p); }

/* A parser neither closed nor out on a read. */
static lsse *lsse_check(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  if (bt_lend_closed(&u->lend)) luaL_error(L, "attempt to use a closed SSE parser");
  if (bt_lend_busy(&u->lend))
    luaL_error(L, "SSE parser is being read (by the code this finalizer interrupted)");
  return u;
}

/* A number rather than an integer argument, so 5.1 and 5.4 accept alike. */
static int lsse_new(lua_State *L) {
  lua_Number m = luaL_optnumber(L, 1, 0);
  size_t max;
  lsse *u;
  luaL_argcheck(L, m >= 0, 1, "expected a non-negative byte count");
  max = m >= (lua_Number)SIZE_MAX ? SIZE_MAX : (size_t)m;
  u = (lsse *)lua_newuserdata(L, sizeof *u);
  sse_init(&u->p, max);
  BT_LEND_INIT(&u->lend, &u->p, lsse_free, "SSE parser");
  luaL_setmetatable(L, LSSE_MT);
  return 1;
}

/* {event = type, data = data[, id = id]}; id only when one was set. */
static void lsse_push_event(lua_State *L, const sse_event *ev) {
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, ev->type, ev->type_len);
  lua_setfield(L, -2, "event");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  if (ev->id_len > 0) {
    lua_pushlstring(L, ev->id, ev->id_len);
    lua_setfield(L, -2, "id");
  }
}

/*
 * A too-big event, or a buffer the parser could not grow, is a runtime
 * failure (bt.h): nil, message, and the events completed before it (so
 * none is lost).
 */
static int lsse_feed_error(lua_State *L, const sse_parser *p, int rc) {
  char msg[64];
  if (rc == SSE_ERR_NOMEM) snprintf(msg, sizeof msg, "not enough memory");
  else snprintf(msg, sizeof msg, "SSE event exceeds %zu bytes", p->max_event);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushvalue(L, -3);
  return 3;
}

/* p:feed(bytes) -> the events completed, in a list. Stops early when a
 * finalizer closed the parser. */
static int read_feed(lua_State *L) {
  lsse *u = (lsse *)lua_touserdata(L, 1);
  sse_parser *p = bt_lend_state(&u->lend);
  size_t len, off = 0, used;
  const char *s = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  sse_event ev;
  int rc = SSE_NEED_MORE, n = 0;
  if (s == NULL) /* named by hand: under lua_pcall this function has no name */
    return luaL_error(L, "bad argument #2 to 'feed' (string expected, got %s)",
                      luaL_typename(L, 2));
  lua_newtable(L);
  /* s stays on the stack, so ev.data may point into it while we copy. */
  while (!bt_lend_closed(&u->lend) &&
         (rc = sse_feed(p, s + off, len - off, &used, &ev)) == SSE_EVENT) {
    off += used;
    lsse_push_event(L, &ev);
    lua_rawseti(L, -2, ++n);
  }
  if (bt_lend_closed(&u->lend) || rc == SSE_NEED_MORE) return 1;
  return lsse_feed_error(L, p, rc);
}

/* p:pending() -> the data a blank line would dispatch now, or nil */
static int read_pending(lua_State *L) {
  lsse *u = (lsse *)lua_touserdata(L, 1);
  sse_event ev;
  if (sse_pending(bt_lend_state(&u->lend), &ev)) lua_pushlstring(L, ev.data, ev.data_len);
  else lua_pushnil(L);
  return 1;
}

static int lsse_reset(lua_State *L) {
  sse_reset(&lsse_check(L)->p);
  return 0;
}

static int lsse_retry(lua_State *L) {
  long r = sse_retry(&lsse_check(L)->p);
  if (r < 0) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* Runs the reader in upvalue 1 (feed or pending) with the parser lent. */
static int lsse_read(lua_State *L) {
  lsse *u = lsse_check(L);
  return bt_lend_finish(L, bt_lend_read(L, &u->lend));
}

/* close, __gc and __close: one idempotent close. */
static int lsse_close(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  bt_lend_close(&u->lend);
  return 0;
}

static int lsse_tostring(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  if (bt_lend_closed(&u->lend)) lua_pushliteral(L, LSSE_MT " (closed)");
  else lua_pushfstring(L, LSSE_MT " (%p)", (void *)u);
  return 1;
}

static const luaL_Reg lsse_methods[] = {
    {"reset", lsse_reset}, {"retry", lsse_retry}, {"close", lsse_close}, {NULL, NULL}};

static const luaL_Reg lsse_reads[] = {{"feed", read_feed}, {"pending", read_pending}, {NULL, NULL}};

/* __close on every version, as the engine and transfer have it: 5.4 uses
 * it, and a wrapper may call it by name on any version. */
static const luaL_Reg lsse_meta[] = {
    {"__gc", lsse_close}, {"__close", lsse_close}, {"__tostring", lsse_tostring}, {NULL, NULL}};

void bt_sse_open(lua_State *L) {
  luaL_newmetatable(L, LSSE_MT);
  luaL_setfuncs(L, lsse_meta, 0);
  luaL_newlib(L, lsse_methods);
  bt_lend_methods(L, lsse_reads, lsse_read);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lsse_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "sse");
}
