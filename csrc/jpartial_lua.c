/*
 * jpartial_lua.c: baseten.json.partial, the resumable parser (jpartial.c)
 * applied to one live Lua value.
 *
 *   local p = json.partial({drop_nulls = true, lone_surrogates = "error",
 *                           max_depth = 1000})
 *   p:feed(text)  -> the snapshot (the same table on every feed once the
 *                    root is a container; nil while nothing is complete
 *                    enough to show), or nil, err (sticky)
 *   p:result()    -> the whole value (as json.decode of all that was fed),
 *                    or nil, err while it is incomplete or invalid
 *   p:path()      -> the keys and indices of the value being filled
 *
 * The events go into the live value through a state table, kept in the
 * registry for the userdata: [1] the root value; [2d + 1] the container
 * open at depth d, [2d + 2] its current key (object) or index (array).
 *
 * Lending: feed reads the text (a Lua string held on the stack, which
 * cannot move or be freed) and the parser's own buffers (held by the
 * userdata, also on the stack). Pushing a value can run a GC step, and so a
 * __gc that feeds or closes this very parser: feed marks the parser busy; a
 * feed while one is running raises, and a close only marks it closing, and
 * the running feed stops and frees the buffers as it ends. This is what
 * lend.h's move-out does, without its lua_pcall per read: a feed of one
 * byte cost 250 ns with it and 150 ns without (bench/RESULTS.md), and the
 * parser's only owner of moving bytes is itself.
 */
#include <string.h>

#include "bt.h"
#include "jpartial.h"

#define JP_MT "baseten.json.partial"

typedef struct {
  jp_parser p;
  int busy;                /* a feed is running */
  int ref;                 /* the state table, in the registry */
  int drop;                /* drop null members */
  int open;                /* p is initialised (jp_free not yet run) */
  int closing;             /* closed during a feed: the feed frees it as it ends */
  unsigned long path_ver;  /* bumped by every event that can change the path */
  unsigned long path_made; /* path_ver when the path in st[2] was made, + 1 */
} partial_ud;

/* The parser at 1, open: a closed one raises. */
static partial_ud *check_partial(lua_State *L) {
  partial_ud *u = (partial_ud *)luaL_checkudata(L, 1, JP_MT);
  if (!u->open || u->closing) luaL_error(L, "json.partial: attempt to use a closed parser");
  return u;
}

/* Frees the parser's buffers and its live value. */
static void release(lua_State *L, partial_ud *u) {
  if (!u->open) return;
  jp_free(&u->p);
  luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
  u->ref = LUA_NOREF;
  u->open = 0;
}

/* Sets st[slot] to the value on top, popping it. */
static void set_slot(lua_State *L, int st, int slot) { lua_rawseti(L, st, slot); }

/* The value on top goes where ev says, and stays on top. */
static void place(lua_State *L, const partial_ud *u, int st, const jp_event *ev) {
  int d = ev->depth;
  if (d == 0) {
    lua_pushvalue(L, -1);
    set_slot(L, st, 1);
    return;
  }
  lua_rawgeti(L, st, 2 * d + 1); /* the container */
  if (ev->index > 0) {
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (int)ev->index);
    lua_pushinteger(L, (lua_Integer)ev->index);
    set_slot(L, st, 2 * d + 2);
  } else {
    lua_rawgeti(L, st, 2 * d + 2); /* the member's name */
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  (void)u;
}

static void apply(lua_State *L, partial_ud *u, int st, const jp_event *ev) {
  if (ev->type != JP_STRING || ev->fresh) u->path_ver++;
  switch (ev->type) {
  case JP_KEY:
    lua_pushlstring(L, ev->s, ev->n);
    set_slot(L, st, 2 * ev->depth + 2);
    return;
  case JP_END:
    lua_pushnil(L);
    set_slot(L, st, 2 * ev->depth + 1);
    lua_pushnil(L);
    set_slot(L, st, 2 * ev->depth + 2);
    return;
  case JP_OBJECT: lua_createtable(L, 0, 0); break;
  case JP_ARRAY:
    lua_createtable(L, 0, 0);
    luaL_getmetatable(L, BT_JSON_ARRAY_MT); /* as the decoder marks every array */
    lua_setmetatable(L, -2);
    break;
  case JP_STRING: lua_pushlstring(L, ev->s, ev->n); break;
  case JP_NUMBER: bt_json_push_number(L, &ev->num); break;
  case JP_TRUE: lua_pushboolean(L, 1); break;
  case JP_FALSE: lua_pushboolean(L, 0); break;
  case JP_NULL:
    if (u->drop && ev->depth > 0 && ev->index == 0) return; /* a null member */
    lua_pushlightuserdata(L, NULL);
    break;
  }
  place(L, u, st, ev);
  if (ev->type == JP_OBJECT || ev->type == JP_ARRAY) {
    set_slot(L, st, 2 * (ev->depth + 1) + 1);
    lua_pushnil(L);
    set_slot(L, st, 2 * (ev->depth + 1) + 2);
  } else {
    lua_pop(L, 1);
  }
}

static int push_error(lua_State *L, const jp_parser *p) {
  char msg[128];
  jp_error_message(p, msg, sizeof msg);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/*
 * p:feed(text). The parser is marked busy while events go into Lua (any
 * push can run a GC step and so a __gc that feeds this parser: that feed
 * raises instead of moving the buffers under this one). No lua_pcall per
 * feed (it cost more than a small piece's parse): only a memory error can
 * raise between the mark and its clearing, and it leaves the mark set, so
 * the parser, whose live value would now lag its state, refuses every
 * later feed.
 */
static int partial_feed(lua_State *L) {
  partial_ud *u = (partial_ud *)lua_touserdata(L, 1);
  size_t n;
  const char *s;
  jp_event ev;
  int rc, st;
  if (u == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_checkudata(L, 1, JP_MT); /* raises the usual message */
  s = luaL_checklstring(L, 2, &n);
  if (!u->open || u->closing) return luaL_error(L, "json.partial: attempt to use a closed parser");
  if (u->busy)
    return luaL_error(
        L, "json.partial: feed while this parser is feeding (or after it ran out of memory)");
  if (u->p.code != BT_JSON_OK) return push_error(L, &u->p);
  lua_settop(L, 2); /* s stays alive at 2 while it is read */
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
  st = lua_gettop(L);
  luaL_checkstack(L, 8, "json.partial");
  u->busy = 1;
  jp_input(&u->p, s, n);
  while ((rc = jp_next(&u->p, &ev)) == JP_EVENT && !u->closing) apply(L, u, st, &ev);
  jp_input(&u->p, NULL, 0); /* s is not held past the call */
  u->busy = 0;
  if (u->closing) { /* p:close() ran inside a push (a __gc): free what it left */
    u->closing = 0;
    release(L, u);
    lua_pushnil(L);
    lua_pushliteral(L, "json.partial: the parser was closed during the feed");
    return 2;
  }
  if (rc == JP_ERROR) return push_error(L, &u->p);
  lua_rawgeti(L, st, 1);
  return 1;
}

/* p:result(): ends a copy of the parser (jp_end's checks read the parser's
 * buffers and write only the copy), so feeding may go on after it. */
static int partial_result(lua_State *L) {
  partial_ud *u = check_partial(L);
  jp_parser end;
  jp_event ev;
  int rc, pushed = 0;
  if (u->p.code != BT_JSON_OK) return push_error(L, &u->p);
  end = u->p;
  end.dirty = 0;
  jp_end(&end);
  while ((rc = jp_next(&end, &ev)) == JP_EVENT) { /* only a root number ends at the end */
    bt_json_push_number(L, &ev.num);
    pushed = 1;
  }
  if (rc == JP_ERROR) return push_error(L, &end);
  if (!pushed) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
    lua_rawgeti(L, -1, 1);
  }
  return 1;
}

/* p:path(): {key or index, ...} down to the value being filled. The same
 * table while the path stays the same (a string growing over many feeds),
 * kept in st[2]: a new one costs as much as a small feed. */
static int partial_path(lua_State *L) {
  partial_ud *u = check_partial(L);
  int d, n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
  if (u->path_made == u->path_ver + 1) {
    lua_rawgeti(L, -1, 2);
    return 1;
  }
  lua_createtable(L, u->p.depth, 0);
  for (d = 1; d <= u->p.depth; d++) {
    lua_rawgeti(L, -2, 2 * d + 2);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    lua_rawseti(L, -2, ++n);
  }
  lua_pushvalue(L, lua_upvalueindex(1)); /* the array mark, kept as an upvalue: */
  lua_setmetatable(L, -2);               /* no registry lookup by name per call */
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, 2);
  u->path_made = u->path_ver + 1;
  return 1;
}

/* p:close(), __close: frees the parser now, or, inside a feed of it (a
 * __gc run by one of its pushes), as that feed ends: the feed's buffers
 * are not freed under it. Idempotent. */
static int partial_close(lua_State *L) {
  partial_ud *u = (partial_ud *)luaL_checkudata(L, 1, JP_MT);
  if (u->busy) u->closing = u->open;
  else release(L, u);
  return 0;
}

/* __gc: no feed runs (a running feed holds the parser on its stack), but
 * one that a memory error ended may have left the busy mark: free anyway. */
static int partial_gc(lua_State *L) {
  release(L, (partial_ud *)luaL_checkudata(L, 1, JP_MT));
  return 0;
}

static int partial_tostring(lua_State *L) {
  partial_ud *u = (partial_ud *)luaL_checkudata(L, 1, JP_MT);
  if (!u->open || u->closing) lua_pushliteral(L, "baseten.json.partial (closed)");
  else
    lua_pushfstring(L, "baseten.json.partial (%d bytes%s)", (int)jp_offset(&u->p),
                    u->p.code != BT_JSON_OK ? ", failed" : "");
  return 1;
}

/* json.partial([opts]): drop_nulls (true), lone_surrogates, max_depth. */
static void partial_options(lua_State *L, int *drop, unsigned *flags, int *max_depth) {
  const char *lone;
  if (lua_isnoneornil(L, 1)) return;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "drop_nulls");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN) luaL_argerror(L, 1, "drop_nulls must be a boolean");
    *drop = lua_toboolean(L, -1);
  }
  lua_getfield(L, 1, "lone_surrogates");
  lone = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (lone != NULL && strcmp(lone, "replace") == 0) *flags |= BT_JSON_LONE_REPLACE;
  else if (lone != NULL && strcmp(lone, "wtf8") == 0) *flags |= BT_JSON_LONE_WTF8;
  else if (!lua_isnil(L, -1) && (lone == NULL || strcmp(lone, "error") != 0))
    luaL_argerror(L, 1, "lone_surrogates must be \"error\", \"replace\" or \"wtf8\"");
  lua_getfield(L, 1, "max_depth");
  if (!lua_isnil(L, -1)) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || v != (lua_Number)(int)v || v < 1 || v > BT_JSON_MAX_DEPTH)
      luaL_argerror(L, 1, "max_depth must be an integer from 1 to 1000");
    *max_depth = (int)v;
  }
  lua_pop(L, 3);
}

static int json_partial(lua_State *L) {
  int drop = 1, max_depth = BT_JSON_MAX_DEPTH;
  unsigned flags = 0;
  partial_ud *u;
  partial_options(L, &drop, &flags, &max_depth);
  u = (partial_ud *)lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  u->ref = LUA_NOREF;
  luaL_setmetatable(L, JP_MT);
  lua_newtable(L);
  u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  jp_init(&u->p, flags, max_depth);
  u->drop = drop;
  u->open = 1;
  return 1;
}

void bt_json_partial_open(lua_State *L) {
  static const luaL_Reg plain[] = {{"result", partial_result},       {"close", partial_close},
                                   {"__close", partial_close},       {"__gc", partial_gc},
                                   {"__tostring", partial_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, JP_MT);
  luaL_setfuncs(L, plain, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1); /* feed's upvalue: its metatable, for a cheap type check */
  lua_pushcclosure(L, partial_feed, 1);
  lua_setfield(L, -2, "feed");
  luaL_getmetatable(L, BT_JSON_ARRAY_MT);
  lua_pushcclosure(L, partial_path, 1);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_pushcfunction(L, json_partial);
  lua_setfield(L, -2, "partial");
}
