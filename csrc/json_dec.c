/*
 * json_dec.c: JSON text to Lua values (bt_json_push_decoded, json.decode).
 *
 * One pass, no intermediate tree: the scanner (json_scan.c) checks each
 * token and it becomes a Lua value at once, and strings without escapes
 * (nearly all) go to Lua straight from the input. This is the stream's hot
 * path: one decode per token. A data error returns 0 (the caller drops what
 * was pushed); only Lua can raise (out of memory), and then nothing is held:
 * the scratch space is a C array or a userdata.
 *
 * Table sizes: a container keeps its first members on the Lua stack and
 * makes its table when it knows the count, so the table is made at its
 * final size without rehashing. It makes it early, with room to spare,
 * before a nested container (so every open container holds at most its
 * table and a key on the stack, however deep) or after DEC_BATCH members.
 *
 * The JSON null is a lightuserdata holding NULL, as in lua-cjson.
 */
#include <stdio.h>
#include <string.h>

#include "bt.h"
#include "json.h"

#define DEC_BATCH 16

/* Stack slots a container needs: its table, DEC_BATCH pairs, a key, a
 * value, and scratch for a string (userdata and string). */
#define DEC_SLOTS (2 * DEC_BATCH + 6)

#if defined(__GNUC__) || defined(__clang__)
#define DEC_NOINLINE __attribute__((noinline))
#else
#define DEC_NOINLINE
#endif

typedef struct {
  bt_json_scanner sc;
  unsigned flags;
  int array_mt;         /* stack index of the array mark */
  int cache;            /* stack index of the string cache, 0 if none */
  bt_json_watch *watch; /* told of members and containers, or NULL */
} decoder;

static int dec_value(lua_State *L, decoder *d);

/* ------------------------------------------------------------------ */
/* Strings                                                            */
/* ------------------------------------------------------------------ */

/*
 * The string cache: a table in the registry whose array holds the short
 * strings decoded lately, one per slot, the slot picked by a cheap hash.
 * The same names ("choices", "delta", ...) and values ("assistant",
 * "chat.completion.chunk", the id) come in every chunk of a stream; taking
 * them from the cache skips Lua's interning of a fresh copy (hashing every
 * byte, then a string-table search), which cost more than half of pushing
 * a string. At most STRCACHE_SIZE short strings stay alive through it.
 * (Lua 5.4: 8% fewer instructions per chunk decoded; LuaJIT, whose
 * interning is cheaper than the lookup, goes without: see bt_json_dec_open.)
 */
#define STRCACHE_SIZE 256  /* a power of two */
#define STRCACHE_MAXLEN 40 /* Lua 5.4's short strings, the interned ones */

static const char strcache_key = 'S'; /* its address is the registry key */

static int strcache_slot(const unsigned char *p, size_t n) {
  unsigned long h = (unsigned long)n * 0x9E3779B1ul;
  h = ((h ^ p[0]) * 0x01000193ul) & 0xFFFFFFFFul;
  h = ((h ^ p[n >> 1]) * 0x01000193ul) & 0xFFFFFFFFul;
  h = ((h ^ p[n - 1]) * 0x01000193ul) & 0xFFFFFFFFul;
  h = ((h ^ p[n > 1]) * 0x01000193ul) & 0xFFFFFFFFul;
  return (int)((h ^ (h >> 15)) & (STRCACHE_SIZE - 1)) + 1;
}

/* Pushes the string p[0, n) (0 < n <= STRCACHE_MAXLEN), from the cache
 * when it is there. */
static void dec_push_cached(lua_State *L, const decoder *d, const char *p, size_t n) {
  const char *c;
  size_t cn;
  int slot;
  slot = strcache_slot((const unsigned char *)p, n);
  lua_rawgeti(L, d->cache, slot);
  c = lua_tolstring(L, -1, &cn); /* NULL for an empty slot (nil) */
  if (c != NULL && cn == n && memcmp(c, p, n) == 0) return;
  lua_pop(L, 1);
  lua_pushlstring(L, p, n);
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->cache, slot);
}

/* Kept out of line so its buffer never sits in the recursive frames. */
static DEC_NOINLINE void dec_push_unescaped(lua_State *L, const unsigned char *p, size_t n,
                                            unsigned flags) {
  char small[256];
  char *buf;
  if (n <= sizeof small) {
    lua_pushlstring(L, small, bt_json_unescape(p, n, flags, small));
    return;
  }
  buf = (char *)lua_newuserdata(L, n); /* the collector frees it */
  lua_pushlstring(L, buf, bt_json_unescape(p, n, flags, buf));
  lua_remove(L, -2);
}

void bt_json_push_string_body(lua_State *L, const char *p, size_t n, int escaped, unsigned flags) {
  if (escaped) dec_push_unescaped(L, (const unsigned char *)p, n, flags);
  else lua_pushlstring(L, p, n);
}

/* Pushes the body s[start, end) of a scanned string. */
static inline void dec_push_body(lua_State *L, const decoder *d, size_t start, size_t end,
                                 int escaped) {
  const char *p = (const char *)d->sc.s + start;
  size_t n = end - start;
  if (escaped) dec_push_unescaped(L, (const unsigned char *)p, n, d->flags);
  else if (d->cache == 0 || n == 0 || n > STRCACHE_MAXLEN) lua_pushlstring(L, p, n);
  else dec_push_cached(L, d, p, n);
}

static int dec_string(lua_State *L, decoder *d) {
  size_t start = d->sc.pos + 1;
  if (!bt_json_scan_string(&d->sc)) return 0;
  dec_push_body(L, d, start, d->sc.pos - 1, d->sc.escaped);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Numbers                                                            */
/* ------------------------------------------------------------------ */

/*
 * 5.3+: an integer literal that fits in 64 bits is that integer, exactly;
 * other integral values below 2^53 ("1e3", "2.0") are integers too, as
 * encode writes them (bt_exact_int). 5.1 and LuaJIT: the nearest double. A zero has no
 * sign ("-0" is 0), on every version.
 */
void bt_json_push_number(lua_State *L, const bt_json_number *num) {
#if BT_HAS_INTEGERS
  if (num->is_int) {
    lua_pushinteger(L, (lua_Integer)num->i);
    return;
  }
  if (bt_exact_int(num->d)) {
    lua_pushinteger(L, (lua_Integer)num->d);
    return;
  }
#endif
  lua_pushnumber(L, num->is_int ? (lua_Number)num->i : (lua_Number)num->d);
}

static int dec_number(lua_State *L, bt_json_scanner *sc) {
  const unsigned char *p = sc->s + sc->pos;
  bt_json_number num;
  bt_json_error e;
  if (!bt_json_scan_number(sc)) return 0;
  e = bt_json_number_value(p, (size_t)(sc->s + sc->pos - p), sc->integral, &num);
  if (e == BT_JSON_E_RANGE) return bt_json_fail(sc, e, (size_t)(p - sc->s));
  if (e != BT_JSON_OK) return bt_json_fail_nopos(sc, e);
  bt_json_push_number(L, &num);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Containers                                                         */
/* ------------------------------------------------------------------ */

/* Makes the object's table in slot t, sized for size members, and moves
 * the `pending` pairs above t into it. */
static void dec_make_object(lua_State *L, int t, int pending, int size) {
  int i;
  lua_createtable(L, 0, size);
  lua_replace(L, t);
  for (i = 0; i < pending; i++) { /* in order: a repeated name, the last wins */
    lua_pushvalue(L, t + 1 + 2 * i);
    lua_pushvalue(L, t + 2 + 2 * i);
    lua_rawset(L, t);
  }
  lua_settop(L, t);
}

static int is_container(unsigned char c) { return c == '{' || c == '['; }

/* What may follow a member or element: ',' (returns 1) or `close` (2). */
static inline int dec_next(bt_json_scanner *sc, unsigned char close) {
  unsigned char c;
  bt_json_skip_space(sc);
  c = bt_json_peek(sc);
  sc->pos++;
  if (c == ',') {
    bt_json_skip_space(sc);
    return 1;
  }
  if (c == close) return 2;
  return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos - 1);
}

/* Opens a container at sc->pos: depth, stack room, a placeholder slot for
 * its table; returns the slot, or 0. */
static int dec_open(lua_State *L, bt_json_scanner *sc) {
  if (++sc->depth > BT_JSON_MAX_DEPTH || !lua_checkstack(L, DEC_SLOTS))
    return bt_json_fail_nopos(sc, BT_JSON_E_DEPTH);
  sc->pos++;
  bt_json_skip_space(sc);
  lua_pushnil(L);
  return lua_gettop(L);
}

/*
 * One member. The name is scanned first and pushed only once the value is
 * known to be kept: under BT_JSON_DROP_NULLS a null member costs a scan
 * and nothing in Lua.
 */
static int dec_member(lua_State *L, decoder *d, int t, int *pending, int *made) {
  bt_json_scanner *sc = &d->sc;
  size_t start = sc->pos + 1, end;
  int escaped;
  if (bt_json_peek(sc) != '"') return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  if (!bt_json_scan_string(sc)) return 0;
  end = sc->pos - 1;
  escaped = sc->escaped;
  bt_json_skip_space(sc);
  if (bt_json_peek(sc) != ':') return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  sc->pos++;
  bt_json_skip_space(sc);
  if ((d->flags & BT_JSON_DROP_NULLS) && bt_json_peek(sc) == 'n')
    return bt_json_scan_literal(sc, "null", 4);
  if (d->watch) d->watch->member(d->watch, sc, start, end, escaped);
  if (!*made && (is_container(bt_json_peek(sc)) || *pending == DEC_BATCH)) {
    /* a nested one: this and two more; a big one: twice the batch */
    dec_make_object(L, t, *pending, *pending < DEC_BATCH ? *pending + 3 : 2 * DEC_BATCH);
    *made = 1;
  }
  dec_push_body(L, d, start, end, escaped);
  if (!dec_value(L, d)) return 0;
  if (*made) lua_rawset(L, t);
  else (*pending)++;
  return 1;
}

static int dec_object(lua_State *L, decoder *d) {
  bt_json_scanner *sc = &d->sc;
  int t = dec_open(L, sc), pending = 0, made = 0, rc = 2;
  if (t == 0) return 0;
  if (d->watch) d->watch->open(d->watch, sc->depth, 0);
  if (bt_json_peek(sc) == '}') {
    sc->pos++;
  } else {
    do {
      if (!dec_member(L, d, t, &pending, &made)) return 0;
    } while ((rc = dec_next(sc, '}')) == 1);
    if (rc == 0) return 0;
  }
  if (!made) dec_make_object(L, t, pending, pending);
  sc->depth--;
  return 1;
}

/* Makes the array's table in slot t and moves the `pending` elements above
 * t into it (popping from the top: the last element first). */
static void dec_make_array(lua_State *L, int t, int pending, int size) {
  lua_createtable(L, size, 0);
  lua_replace(L, t);
  for (; pending > 0; pending--) lua_rawseti(L, t, pending);
}

static int dec_array(lua_State *L, decoder *d) {
  bt_json_scanner *sc = &d->sc;
  int t = dec_open(L, sc), n = 0, made = 0, rc = 2;
  if (t == 0) return 0;
  if (d->watch) d->watch->open(d->watch, sc->depth, 1);
  if (bt_json_peek(sc) == ']') {
    sc->pos++;
  } else {
    do {
      if (!made && (is_container(bt_json_peek(sc)) || n == DEC_BATCH)) {
        dec_make_array(L, t, n, n < DEC_BATCH ? n + 1 : 2 * DEC_BATCH);
        made = 1;
      }
      if (!dec_value(L, d)) return 0;
      n++;
      if (made) lua_rawseti(L, t, n);
    } while ((rc = dec_next(sc, ']')) == 1);
    if (rc == 0) return 0;
  }
  if (!made) dec_make_array(L, t, n, n);
  lua_pushvalue(L, d->array_mt); /* every array, so [] re-encodes as [] */
  lua_setmetatable(L, t);
  if (d->watch) d->watch->close_array(d->watch, sc->depth, n);
  sc->depth--;
  return 1;
}

/* One value at sc->pos (space already skipped), pushed. */
static int dec_value(lua_State *L, decoder *d) {
  bt_json_scanner *sc = &d->sc;
  unsigned char c = bt_json_peek(sc);
  switch (c) {
  case '"': return dec_string(L, d);
  case '{': return dec_object(L, d);
  case '[': return dec_array(L, d);
  case 't':
    if (!bt_json_scan_literal(sc, "true", 4)) return 0;
    lua_pushboolean(L, 1);
    return 1;
  case 'f':
    if (!bt_json_scan_literal(sc, "false", 5)) return 0;
    lua_pushboolean(L, 0);
    return 1;
  case 'n':
    if (!bt_json_scan_literal(sc, "null", 4)) return 0;
    lua_pushlightuserdata(L, NULL);
    return 1;
  default:
    if (c == '-' || (c >= '0' && c <= '9')) return dec_number(L, sc);
    if (sc->pos < sc->len && (c < 0x20 || c >= 0x80))
      return bt_json_fail(sc, BT_JSON_E_BYTE, sc->pos);
    return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  }
}

/* ------------------------------------------------------------------ */
/* Entry points                                                       */
/* ------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const bt_json_scanner *sc) {
  const char *msg = bt_json_error_message(sc->code);
  if (err == NULL || errlen == 0) return;
  if (sc->with_pos) snprintf(err, errlen, "%s at byte %lu", msg, (unsigned long)sc->pos + 1);
  else snprintf(err, errlen, "%s", msg);
}

/* Decodes the value and checks that nothing but space follows it. */
static int dec_document(lua_State *L, decoder *d) {
  bt_json_scanner *sc = &d->sc;
  bt_json_skip_space(sc);
  if (sc->pos == sc->len) return bt_json_fail_nopos(sc, BT_JSON_E_EMPTY);
  if (!dec_value(L, d)) return 0;
  bt_json_skip_space(sc);
  if (sc->pos != sc->len) return bt_json_fail(sc, BT_JSON_E_TRAILING, sc->pos);
  return 1;
}

int bt_json_push_decoded(lua_State *L, const char *s, size_t len, unsigned flags, size_t *lone,
                         char *err, size_t errlen) {
  return bt_json_push_decoded_watched(L, s, len, flags, lone, err, errlen, NULL);
}

int bt_json_push_decoded_watched(lua_State *L, const char *s, size_t len, unsigned flags,
                                 size_t *lone, char *err, size_t errlen, bt_json_watch *w) {
  decoder d;
  int base = lua_gettop(L);
  luaL_checkstack(L, DEC_SLOTS, "cannot decode JSON"); /* before anything is pushed */
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (lone != NULL) *lone = 0;
  bt_json_scan_init(&d.sc, s, len, flags);
  d.flags = flags;
  d.watch = w;
  if ((flags & BT_JSON_LONE_WTF8) && (flags & BT_JSON_LONE_REPLACE)) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "conflicting lone-surrogate flags");
    return 0;
  }
  luaL_getmetatable(L, BT_JSON_ARRAY_MT);
  d.array_mt = base + 1;
  lua_pushlightuserdata(L, (void *)&strcache_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  d.cache = lua_istable(L, base + 2) ? base + 2 : 0;
  if (dec_document(L, &d)) {
    lua_replace(L, base + 1); /* the value, over the array mark */
    lua_settop(L, base + 1);
    if (lone != NULL) *lone = d.sc.lone;
    return 1;
  }
  lua_settop(L, base);
  set_err(err, errlen, &d.sc);
  return 0;
}

/* opts.lone_surrogates: "error" (the default), "replace" or "wtf8". */
static unsigned lone_option(lua_State *L) {
  const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (v != NULL && strcmp(v, "error") == 0) return 0;
  if (v != NULL && strcmp(v, "replace") == 0) return BT_JSON_LONE_REPLACE;
  if (v != NULL && strcmp(v, "wtf8") == 0) return BT_JSON_LONE_WTF8;
  return (unsigned)luaL_argerror(L, 2,
                                 "lone_surrogates must be \"error\", \"replace\" or \"wtf8\"");
}

/* The flags that the options table at idx asks for; misuse raises. */
static unsigned decode_flags(lua_State *L, int idx) {
  unsigned flags = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "drop_nulls") == 0) {
      if (lua_type(L, -1) != LUA_TBOOLEAN) luaL_argerror(L, idx, "drop_nulls must be a boolean");
      if (lua_toboolean(L, -1)) flags |= BT_JSON_DROP_NULLS;
    } else if (strcmp(k, "lone_surrogates") == 0) {
      flags |= lone_option(L);
    } else {
      lua_pushfstring(L, "unknown option %s", lua_type(L, -2) == LUA_TSTRING ? k : "(not a name)");
      luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  }
  return flags;
}

/* json.decode(text [, opts]): the value, or nil and why. */
static int json_decode(lua_State *L) {
  char err[128];
  size_t len;
  const char *s;
  unsigned flags;
  luaL_checktype(L, 1, LUA_TSTRING);
  flags = decode_flags(L, 2);
  lua_settop(L, 1); /* s stays alive at 1 while it is read */
  s = lua_tolstring(L, 1, &len);
  if (bt_json_push_decoded(L, s, len, flags, NULL, err, sizeof err)) return 1;
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

void bt_json_dec_open(lua_State *L) {
  lua_pushcfunction(L, json_decode);
  lua_setfield(L, -2, "decode");
  lua_getglobal(L, "jit"); /* LuaJIT interns strings faster than the cache finds them */
  if (!lua_istable(L, -1)) {
    lua_pushlightuserdata(L, (void *)&strcache_key); /* see dec_push_cached */
    lua_createtable(L, STRCACHE_SIZE, 0);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
}
