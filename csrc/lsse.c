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
 * feed and pending lend the parser's buffers to Lua while they build
 * events, and building allocates, so a __gc may run meanwhile and close,
 * reset or feed this parser. They run as reads (bt_call_marked, bt.h):
 * close then only marks the parser closed and the read frees the buffers
 * when it ends; reset, feed and pending raise.
 */
#include <stdint.h>
#include <stdio.h>

#include "bt.h"
#include "sse.h"

#define LSSE_MT "baseten.sse.parser"

typedef struct lsse {
  sse_parser p;
  int closed;  /* 1 once close ran: p holds no memory, or a read frees it */
  int reading; /* feed or pending is lending p's buffers */
} lsse;

static lsse *lsse_check(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  if (u->closed) luaL_error(L, "attempt to use a closed SSE parser");
  if (u->reading)
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
  u->closed = 1; /* closed until initialised, as liolib does */
  u->reading = 0;
  luaL_setmetatable(L, LSSE_MT);
  sse_init(&u->p, max);
  u->closed = 0;
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
 * A too-big event is a runtime failure of the stream: nil, message, and the
 * events completed before it (so none is lost). Memory failure raises.
 */
static int lsse_feed_error(lua_State *L, const lsse *u, int rc) {
  char msg[64];
  if (rc == SSE_ERR_NOMEM) return luaL_error(L, "not enough memory");
  snprintf(msg, sizeof msg, "SSE event exceeds %zu bytes", u->p.max_event);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushvalue(L, -3);
  return 3;
}

/* p:feed(bytes) -> the events completed, in a list. Stops early when a
 * finalizer closed the parser. */
static int read_feed(lua_State *L) {
  lsse *u = (lsse *)lua_touserdata(L, 1);
  size_t len, off = 0, used;
  const char *s = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  sse_event ev;
  int rc = SSE_NEED_MORE, n = 0;
  if (s == NULL) /* named by hand: under lua_pcall this function has no name */
    return luaL_error(L, "bad argument #2 to 'feed' (string expected, got %s)",
                      luaL_typename(L, 2));
  lua_newtable(L);
  /* s stays on the stack, so ev.data may point into it while we copy. */
  while (!u->closed && (rc = sse_feed(&u->p, s + off, len - off, &used, &ev)) == SSE_EVENT) {
    off += used;
    lsse_push_event(L, &ev);
    lua_rawseti(L, -2, ++n);
  }
  if (u->closed || rc == SSE_NEED_MORE) return 1;
  return lsse_feed_error(L, u, rc);
}

/* p:pending() -> the data a blank line would dispatch now, or nil */
static int read_pending(lua_State *L) {
  lsse *u = (lsse *)lua_touserdata(L, 1);
  sse_event ev;
  if (sse_pending(&u->p, &ev)) lua_pushlstring(L, ev.data, ev.data_len);
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

/* Runs the reader in upvalue 1 (feed or pending) as a read. */
static int lsse_read(lua_State *L) {
  lsse *u = lsse_check(L);
  int rc = bt_call_marked(L, &u->reading);
  if (u->closed) sse_free(&u->p); /* closed by a finalizer meanwhile */
  if (rc != 0) return lua_error(L);
  return lua_gettop(L);
}

/* close, __gc and __close: one idempotent close. */
static int lsse_close(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  if (!u->closed) {
    u->closed = 1;
    if (!u->reading) sse_free(&u->p); /* else the read frees it */
  }
  return 0;
}

static int lsse_tostring(lua_State *L) {
  lsse *u = (lsse *)luaL_checkudata(L, 1, LSSE_MT);
  if (u->closed) lua_pushliteral(L, LSSE_MT " (closed)");
  else lua_pushfstring(L, LSSE_MT " (%p)", (void *)u);
  return 1;
}

static const luaL_Reg lsse_methods[] = {
    {"reset", lsse_reset}, {"retry", lsse_retry}, {"close", lsse_close}, {NULL, NULL}};

static const luaL_Reg lsse_reads[] = {{"feed", read_feed}, {"pending", read_pending}, {NULL, NULL}};

static const luaL_Reg lsse_meta[] = {{"__gc", lsse_close},
#if LUA_VERSION_NUM >= 504
                                     {"__close", lsse_close},
#endif
                                     {"__tostring", lsse_tostring},
                                     {NULL, NULL}};

void bt_sse_open(lua_State *L) {
  luaL_newmetatable(L, LSSE_MT);
  luaL_setfuncs(L, lsse_meta, 0);
  luaL_newlib(L, lsse_methods);
  bt_set_marked(L, lsse_reads, lsse_read);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lsse_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "sse");
}
