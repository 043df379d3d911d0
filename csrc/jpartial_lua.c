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
 * registry for the userdata: [2] the path table last made; [2d + 1] the
 * container open at depth d, [2d + 2] its current key (object) or index
 * (array). The root value has its own registry slot, so that a feed that
 * shows nothing new costs one lookup.
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

/* A parser's mark: its address in the userdata (with the userdata's size)
 * says "this is a json.partial" for a few loads, where luaL_checkudata
 * looks its metatable up by name (a tenth of a one-byte feed's cost). */
static const char partial_tag = 'p';

typedef struct {
  const char *tag; /* &partial_tag */
  jp_parser p;
  int busy;                /* a feed is putting events into Lua */
  int ref;                 /* the state table, in the registry */
  int root;                /* the root value, in the registry (one lookup per feed) */
  int has_root;            /* the root value has begun (until then the snapshot is nil) */
  int drop;                /* drop null members */
  int open;                /* p is initialised (jp_free not yet run) */
  int closing;             /* closed during a feed: the feed frees it as it ends */
  unsigned long path_ver;  /* bumped by every event that can change the path */
  unsigned long path_made; /* path_ver when the path in st[2] was made, + 1 */
} partial_ud;

/* The parser at 1 (open or not); anything else raises the usual message. */
static inline partial_ud *to_partial(lua_State *L) {
  partial_ud *u = (partial_ud *)lua_touserdata(L, 1);
  if (u == NULL || lua_rawlen(L, 1) != sizeof *u || u->tag != &partial_tag)
    u = (partial_ud *)luaL_checkudata(L, 1, JP_MT);
  return u;
}

/* The parser at 1, open: a closed one raises. */
static partial_ud *check_partial(lua_State *L) {
  partial_ud *u = to_partial(L);
  if (!u->open || u->closing) luaL_error(L, "json.partial: attempt to use a closed parser");
  return u;
}

/* Frees the parser's buffers and its live value. */
static void release(lua_State *L, partial_ud *u) {
  if (!u->open) return;
  jp_free(&u->p);
  luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->root);
  u->ref = u->root = LUA_NOREF;
  u->open = 0;
}

/* A new container's size: as its last sibling at the same depth (records
 * in a list share a shape), so that it is not rehashed as it fills; capped,
 * as the guess can be wrong. */
static int hint_size(const jp_event *ev) { return ev->hint < 64 ? (int)ev->hint : 64; }

/* Pushes the value ev begins or completes; 0 for a null member that is
 * dropped (nothing pushed). */
static int push_value(lua_State *L, const partial_ud *u, const jp_event *ev) {
  switch (ev->type) {
  case JP_STRING: lua_pushlstring(L, ev->s, ev->n); break;
  case JP_OBJECT: lua_createtable(L, 0, hint_size(ev)); break;
  case JP_ARRAY:
    lua_createtable(L, hint_size(ev), 0);
    luaL_getmetatable(L, BT_JSON_ARRAY_MT); /* as the decoder marks every array */
    lua_setmetatable(L, -2);
    break;
  case JP_NUMBER: bt_json_push_number(L, &ev->num); break;
  case JP_TRUE: lua_pushboolean(L, 1); break;
  case JP_FALSE: lua_pushboolean(L, 0); break;
  default:                                                    /* JP_NULL */
    if (u->drop && ev->depth > 0 && ev->index == 0) return 0; /* a null member */
    lua_pushlightuserdata(L, NULL);
  }
  return 1;
}

/* A new container (on top) opens at depth d + 1: it becomes st[2d + 3]. */
static void open_slot(lua_State *L, int st, const jp_event *ev) {
  if (ev->type != JP_OBJECT && ev->type != JP_ARRAY) return;
  lua_pushvalue(L, -1);
  lua_rawseti(L, st, 2 * ev->depth + 3);
}

/*
 * Puts one event into the live value. A string that grows (not fresh)
 * only replaces its text: the container and its key are at st[2d + 1],
 * st[2d + 2], and no path bookkeeping changes.
 */
static void apply(lua_State *L, partial_ud *u, int st, const jp_event *ev) {
  int d = ev->depth, fresh = ev->type != JP_STRING || ev->fresh;
  u->path_ver += (unsigned long)fresh;
  if (ev->type == JP_KEY) {
    lua_pushlstring(L, ev->s, ev->n);
    lua_rawseti(L, st, 2 * d + 2);
    return;
  }
  if (ev->type == JP_END) {
    lua_pushnil(L);
    lua_rawseti(L, st, 2 * d + 1);
    lua_pushnil(L);
    lua_rawseti(L, st, 2 * d + 2);
    return;
  }
  if (d == 0) {
    if (!push_value(L, u, ev)) return;
    open_slot(L, st, ev);
    lua_rawseti(L, LUA_REGISTRYINDEX, u->root);
    u->has_root = 1;
    return;
  }
  lua_rawgeti(L, st, 2 * d + 1); /* the container */
  if (ev->index > 0) {
    if (fresh) { /* the path's index at this depth */
      lua_pushinteger(L, (lua_Integer)ev->index);
      lua_rawseti(L, st, 2 * d + 2);
    }
    if (push_value(L, u, ev)) {
      open_slot(L, st, ev);
      lua_rawseti(L, -2, (int)ev->index);
    }
  } else {
    lua_rawgeti(L, st, 2 * d + 2); /* the member's name */
    if (push_value(L, u, ev)) {
      open_slot(L, st, ev);
      lua_rawset(L, -3);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static int push_error(lua_State *L, const jp_parser *p) {
  char msg[128];
  jp_error_message(p, msg, sizeof msg);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* Puts ev and every later event of the piece into the live value; returns
 * what jp_next said last (JP_EVENT if a close inside a push stopped it).
 * The parser is marked busy meanwhile: a push can run a GC step and so a
 * __gc that feeds this parser (that feed raises instead of moving the
 * buffers under this one) or closes it (the close waits for the feed).
 * Leaves the state table on the stack: the feed returns only its top. */
static int apply_all(lua_State *L, partial_ud *u, jp_event *ev) {
  int rc = JP_EVENT, st;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
  st = lua_gettop(L);
  u->busy = 1;
  do apply(L, u, st, ev);
  while (!u->closing && (rc = jp_next(&u->p, ev)) == JP_EVENT);
  u->busy = 0;
  return rc;
}

/* Why a feed cannot run: raises, or gives the parser's sticky error. */
static int feed_refused(lua_State *L, partial_ud *u) {
  if (!u->open || u->closing) return luaL_error(L, "json.partial: attempt to use a closed parser");
  if (u->busy)
    return luaL_error(
        L, "json.partial: feed while this parser is feeding (or after it ran out of memory)");
  return push_error(L, &u->p);
}

/*
 * p:feed(text). A piece that shows nothing new (space, punctuation, a
 * name, a number or literal not yet complete, half a UTF-8 sequence)
 * touches no Lua value: one lookup returns the snapshot. No lua_pcall per
 * feed (it cost more than a small piece's parse): only a memory error can
 * raise while the busy mark is set, and it leaves it set, so the parser,
 * whose live value would now lag its state, refuses every later feed. The
 * text at 2 stays alive (and unmoved) on the stack while it is read, and
 * is not held past the call. Lua gives a C function LUA_MINSTACK free
 * slots; a feed uses six (what it returns is on top of the state table).
 */
static int partial_feed(lua_State *L) {
  partial_ud *u = to_partial(L);
  size_t n;
  /* a number becomes its text, as luaL_checklstring does */
  const char *s = lua_tolstring(L, 2, &n);
  jp_event ev;
  int rc;
  if (s == NULL) s = luaL_checklstring(L, 2, &n);
  if (u->busy || !u->open || u->closing || u->p.code != BT_JSON_OK) return feed_refused(L, u);
  jp_input(&u->p, s, n);
  rc = jp_next(&u->p, &ev);
  if (rc == JP_EVENT) rc = apply_all(L, u, &ev);
  jp_input(&u->p, NULL, 0);
  if (u->closing) { /* p:close() ran inside a push (a __gc): free what it left */
    u->closing = 0;
    release(L, u);
    lua_pushnil(L);
    lua_pushliteral(L, "json.partial: the parser was closed during the feed");
    return 2;
  }
  if (rc == JP_ERROR) return push_error(L, &u->p);
  if (u->has_root) lua_rawgeti(L, LUA_REGISTRYINDEX, u->root);
  else lua_pushnil(L);
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
  if (pushed) return 1;
  if (u->has_root) lua_rawgeti(L, LUA_REGISTRYINDEX, u->root);
  else lua_pushnil(L);
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
  partial_ud *u = to_partial(L);
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
  u->ref = u->root = LUA_NOREF;
  luaL_setmetatable(L, JP_MT);
  lua_newtable(L);
  u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 0); /* a placeholder (nil gets no ref), read once has_root is set */
  u->root = luaL_ref(L, LUA_REGISTRYINDEX);
  u->tag = &partial_tag;
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
