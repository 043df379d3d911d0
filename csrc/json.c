/*
 * json.c: JSON for Lua over cJSON (the `json` table of baseten.core).
 *
 * Decoding runs in three steps. A strict lexical pre-scan (scan_*) checks
 * what cJSON lets through: invalid UTF-8, raw control characters, bad \u
 * escapes (cJSON turns "\uZZZZ" into a NUL), lone surrogates, non-JSON
 * numbers ("01", "1.", "-.5") and nesting depth. cJSON then builds the tree,
 * and dec_* turn the tree into Lua values under a protected call so that a
 * Lua memory error cannot leak it.
 *
 * Encoding writes into a growable buffer owned by a userdata (json_encoder),
 * so any error raised mid-encode leaves nothing behind: the garbage collector
 * frees the buffer. One encoder is cached in an upvalue of `encode`.
 *
 * The JSON null is a lightuserdata holding NULL, as in lua-cjson.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bt.h"

#define ARRAY_MT "baseten.json.array"
#define OBJECT_MT "baseten.json.object"
#define ENCODER_MT "baseten.json.encoder"

/* Same limit as cJSON's CJSON_NESTING_LIMIT, so encode and decode agree. */
#define MAX_DEPTH 1000

/* Integral doubles below this print as integers and decode as integers. */
#define EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */

/* cJSON copies a number into a 64-byte buffer; longer ones it misparses. */
#define MAX_NUMBER_LEN 63

/* A cached encoder whose buffer grew past this gives the memory back. */
#define ENCODER_KEEP_BYTES (1u << 20)

/* Upvalues shared by every function of the table. */
#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_OBJECT_MT lua_upvalueindex(2)
#define UV_ENCODER lua_upvalueindex(3)

/*
 * Byte classes for strings, shared by the encoder and the decoder's scan:
 * 0 plain ASCII that needs nothing, 1 '"', '\\' or a control character,
 * 2 a byte >= 0x80 that starts (or wrongly continues) a UTF-8 sequence.
 */
static const unsigned char byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 DEL is plain */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

/* ------------------------------------------------------------------ */
/* UTF-8                                                              */
/* ------------------------------------------------------------------ */

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/*
 * Length of the well-formed UTF-8 sequence at p (n bytes available), or 0.
 * The second-byte ranges are what reject overlongs (E0, F0), surrogates (ED)
 * and code points past U+10FFFF (F4); see Unicode table 3-7.
 */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t len, i;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3;
  else if (c >= 0xF0 && c <= 0xF4) len = 4;
  else return 0;
  if (n < len) return 0;
  if (c == 0xE0) lo = 0xA0;
  else if (c == 0xED) hi = 0x9F;
  else if (c == 0xF0) lo = 0x90;
  else if (c == 0xF4) hi = 0x8F;
  if (p[1] < lo || p[1] > hi) return 0;
  for (i = 2; i < len; i++)
    if (!is_cont(p[i])) return 0;
  return len;
}

/* ------------------------------------------------------------------ */
/* Encoder buffer                                                     */
/* ------------------------------------------------------------------ */

typedef struct {
  char *data;
  size_t len, cap;
  int depth;
  /* Containers on the current path, for cycle detection (O(depth)). */
  const void *path[MAX_DEPTH];
} json_encoder;

static int encoder_gc(lua_State *L) {
  json_encoder *e = (json_encoder *)luaL_checkudata(L, 1, ENCODER_MT);
  free(e->data);
  e->data = NULL;
  e->len = e->cap = 0;
  return 0;
}

static void enc_grow(lua_State *L, json_encoder *e, size_t need) {
  size_t cap = e->cap ? e->cap : 256;
  char *p;
  if (need > (size_t)-1 - e->len) luaL_error(L, "not enough memory");
  while (cap - e->len < need) {
    if (cap > (size_t)-1 / 2) {
      cap = e->len + need;
      break;
    }
    cap *= 2;
  }
  p = (char *)realloc(e->data, cap);
  if (p == NULL) luaL_error(L, "not enough memory"); /* e->data still owned */
  e->data = p;
  e->cap = cap;
}

static void enc_reserve(lua_State *L, json_encoder *e, size_t n) {
  if (e->cap - e->len < n) enc_grow(L, e, n);
}

static void enc_put(lua_State *L, json_encoder *e, const void *s, size_t n) {
  enc_reserve(L, e, n);
  memcpy(e->data + e->len, s, n);
  e->len += n;
}

static void enc_putc(lua_State *L, json_encoder *e, char c) {
  enc_reserve(L, e, 1);
  e->data[e->len++] = c;
}

#define enc_lit(L, e, s) enc_put((L), (e), "" s, sizeof(s) - 1)

/*
 * Takes the cached encoder out of the upvalue (leaving false there) and
 * pushes it; makes a fresh one when the cache is empty, which is also what a
 * nested encode (from a __tojson) sees. An error leaves the taken encoder to
 * the collector; the next call just makes a new one.
 */
static json_encoder *encoder_take(lua_State *L) {
  json_encoder *e;
  lua_pushvalue(L, UV_ENCODER);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    lua_pushboolean(L, 0);
    lua_replace(L, UV_ENCODER);
    return (json_encoder *)lua_touserdata(L, -1);
  }
  lua_pop(L, 1);
  e = (json_encoder *)lua_newuserdata(L, sizeof(json_encoder));
  e->data = NULL;
  e->len = e->cap = 0;
  e->depth = 0;
  luaL_setmetatable(L, ENCODER_MT);
  return e;
}

/* Puts the encoder at idx back in the cache, shrinking a huge buffer. */
static void encoder_give_back(lua_State *L, json_encoder *e, int idx) {
  if (e->cap > ENCODER_KEEP_BYTES) {
    free(e->data);
    e->data = NULL;
    e->cap = 0;
  }
  e->len = 0;
  e->depth = 0;
  lua_pushvalue(L, idx);
  lua_replace(L, UV_ENCODER);
}

/* ------------------------------------------------------------------ */
/* Encoding scalars                                                   */
/* ------------------------------------------------------------------ */

static void enc_integer(lua_State *L, json_encoder *e, long long v) {
  char tmp[24], *p = tmp + sizeof tmp;
  /* via unsigned, so LLONG_MIN negates without overflow */
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--p = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  enc_put(L, e, p, (size_t)(tmp + sizeof tmp - p));
}

/*
 * Copies a printf'd number, turning the locale's decimal point (one or more
 * bytes that are not digits, signs or 'e') into '.', so a host that called
 * setlocale(LC_NUMERIC, "de_DE") still gets JSON.
 */
static void enc_put_number_text(lua_State *L, json_encoder *e, const char *s) {
  enc_reserve(L, e, strlen(s));
  while (*s != '\0') {
    char c = *s++;
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
      e->data[e->len++] = c;
    } else {
      e->data[e->len++] = '.';
      while (*s != '\0' && !(*s >= '0' && *s <= '9') && *s != 'e') s++;
    }
  }
}

static void enc_double(lua_State *L, json_encoder *e, double d) {
  char tmp[40];
  int prec;
  if (isnan(d) || isinf(d)) luaL_error(L, "cannot encode NaN/inf");
  if (d > -EXACT_INT_LIMIT && d < EXACT_INT_LIMIT) {
    long long i = (long long)d;
    if ((double)i == d) { /* integral: no ".0" and no exponent on the wire */
      enc_integer(L, e, i);
      return;
    }
  }
  /* Shortest precision that reads back as the same double. strtod shares
   * snprintf's locale, so the check holds before the decimal point fix. */
  for (prec = 14; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (strtod(tmp, NULL) == d) break;
  }
  if (prec == 17) snprintf(tmp, sizeof tmp, "%.17g", d);
  enc_put_number_text(L, e, tmp);
}

static void enc_number(lua_State *L, json_encoder *e, int idx) {
#if BT_HAS_INTEGERS
  if (lua_isinteger(L, idx)) {
    enc_integer(L, e, (long long)lua_tointeger(L, idx));
    return;
  }
#endif
  enc_double(L, e, (double)lua_tonumber(L, idx));
}

/* The escape for a byte of class 1 ('"', '\\', or a control character). */
static void enc_escape(lua_State *L, json_encoder *e, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  char u[6] = {'\\', 'u', '0', '0', 0, 0};
  switch (c) {
  case '"': enc_lit(L, e, "\\\""); return;
  case '\\': enc_lit(L, e, "\\\\"); return;
  case '\n': enc_lit(L, e, "\\n"); return;
  case '\r': enc_lit(L, e, "\\r"); return;
  case '\t': enc_lit(L, e, "\\t"); return;
  case '\b': enc_lit(L, e, "\\b"); return;
  case '\f': enc_lit(L, e, "\\f"); return;
  default:
    u[4] = hex[c >> 4];
    u[5] = hex[c & 15];
    enc_put(L, e, u, 6);
  }
}

/*
 * Copies runs of plain bytes and valid UTF-8 with one memcpy each; only
 * bytes that need an escape, and invalid UTF-8, stop a run.
 */
static void enc_string(lua_State *L, json_encoder *e, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  enc_reserve(L, e, n + 2);
  e->data[e->len++] = '"';
  while (i < n) {
    size_t start = i;
    for (;;) {
      while (i < n && byte_class[s[i]] == 0) i++;
      if (i < n && byte_class[s[i]] == 2) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0)
          luaL_error(L, "cannot encode string: invalid UTF-8 at byte %d", (int)(i + 1));
        i += k;
        continue;
      }
      break;
    }
    if (i > start) enc_put(L, e, s + start, i - start);
    if (i < n) enc_escape(L, e, s[i++]);
  }
  enc_putc(L, e, '"');
}

/* ------------------------------------------------------------------ */
/* Encoding tables                                                    */
/* ------------------------------------------------------------------ */

enum { KIND_AUTO, KIND_ARRAY, KIND_OBJECT, KIND_TOJSON };

static void enc_value(lua_State *L, json_encoder *e, int idx);

/* Enters a container: depth limit, cycle check, stack room for its level. */
static void enc_enter(lua_State *L, json_encoder *e, int idx) {
  const void *p = lua_topointer(L, idx);
  int i;
  for (i = 0; i < e->depth; i++)
    if (e->path[i] == p) luaL_error(L, "cannot encode cyclic table");
  if (e->depth >= MAX_DEPTH) luaL_error(L, "nesting too deep");
  e->path[e->depth++] = p;
  luaL_checkstack(L, 6, "nesting too deep");
}

static int kind_from_jsontype(lua_State *L) {
  int kind = KIND_AUTO;
  lua_pushliteral(L, "__jsontype");
  lua_rawget(L, -2);
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *t = lua_tostring(L, -1);
    if (strcmp(t, "array") == 0) kind = KIND_ARRAY;
    else if (strcmp(t, "object") == 0) kind = KIND_OBJECT;
  }
  lua_pop(L, 1);
  return kind;
}

/*
 * How the metatable of the value at idx says to encode it. For KIND_TOJSON
 * the __tojson function is left on top of the stack. Raw gets only: a
 * metatable's own __index must not run here.
 */
static int kind_of(lua_State *L, int idx) {
  int kind;
  if (!lua_getmetatable(L, idx)) return KIND_AUTO;
  if (lua_rawequal(L, -1, UV_ARRAY_MT)) kind = KIND_ARRAY;
  else if (lua_rawequal(L, -1, UV_OBJECT_MT)) kind = KIND_OBJECT;
  else kind = kind_from_jsontype(L);
  if (kind == KIND_AUTO) {
    lua_pushliteral(L, "__tojson");
    lua_rawget(L, -2);
    if (lua_isfunction(L, -1)) {
      lua_replace(L, -2);
      return KIND_TOJSON;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return kind;
}

/* Encodes what the __tojson on top of the stack returns for the value. */
static void enc_tojson(lua_State *L, json_encoder *e, int idx) {
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  enc_value(L, e, lua_gettop(L));
  lua_pop(L, 1);
}

/* Elements 1..n; holes (possible only under an explicit mark) are null. */
static void enc_array_n(lua_State *L, json_encoder *e, int idx, size_t n) {
  size_t i;
  enc_putc(L, e, '[');
  for (i = 1; i <= n; i++) {
    if (i > 1) enc_putc(L, e, ',');
    lua_rawgeti(L, idx, (int)i);
    enc_value(L, e, lua_gettop(L));
    lua_pop(L, 1);
  }
  enc_putc(L, e, ']');
}

/* The error for a key that fits neither an array nor an object. */
static void mixed_key_error(lua_State *L, int kidx, const char *among) {
  int t = lua_type(L, kidx);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    luaL_error(L, "cannot encode table with mixed or sparse keys (%s key among %s keys)",
               luaL_typename(L, kidx), among);
  }
  luaL_error(L, "cannot encode table with mixed or sparse keys (key of type %s)",
             luaL_typename(L, kidx));
}

static void enc_key(lua_State *L, json_encoder *e, int kidx, int marked) {
  if (lua_type(L, kidx) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, kidx, &n);
    enc_string(L, e, s, n);
  } else if (marked && lua_type(L, kidx) == LUA_TNUMBER) {
    enc_putc(L, e, '"'); /* an explicit object may use numbers as names */
    enc_number(L, e, kidx);
    enc_putc(L, e, '"');
  } else if (marked) {
    luaL_error(L, "cannot encode object key of type %s", luaL_typename(L, kidx));
  } else {
    mixed_key_error(L, kidx, "string");
  }
}

/*
 * Object members in Lua's iteration order. Called with the first key and
 * value already pushed by lua_next (marked == 0, the heuristic path) or with
 * just a nil key on top (marked == 1).
 */
static void enc_object_members(lua_State *L, json_encoder *e, int idx, int marked) {
  int first = 1;
  enc_putc(L, e, '{');
  if (marked && !lua_next(L, idx)) {
    enc_putc(L, e, '}');
    return;
  }
  do {
    int top = lua_gettop(L);
    if (!first) enc_putc(L, e, ',');
    first = 0;
    enc_key(L, e, top - 1, marked);
    enc_putc(L, e, ':');
    enc_value(L, e, top);
    lua_pop(L, 1);
  } while (lua_next(L, idx));
  enc_putc(L, e, '}');
}

/* The key at kidx as a positive integer; any other key raises. */
static double array_key(lua_State *L, int kidx) {
  double k;
  if (lua_type(L, kidx) != LUA_TNUMBER) mixed_key_error(L, kidx, "integer");
  k = (double)lua_tonumber(L, kidx);
  if (!(k >= 1 && k < EXACT_INT_LIMIT && (double)(long long)k == k)) {
    luaL_error(L, "cannot encode table with mixed or sparse keys (number key %f is not a positive integer)",
               lua_tonumber(L, kidx));
  }
  return k;
}

/*
 * Heuristic array: keys must be exactly 1..n. Elements are written while
 * lua_next yields them in order (the common case: the array part); if the
 * order breaks, the output is rewound and rewritten with rawgeti.
 */
static void enc_array_auto(lua_State *L, json_encoder *e, int idx) {
  size_t start = e->len, count = 0;
  double max = 0;
  int in_order = 1;
  enc_putc(L, e, '[');
  do {
    int top = lua_gettop(L);
    double k = array_key(L, top - 1);
    count++;
    if (k > max) max = k;
    if (in_order && k == (double)count) {
      if (count > 1) enc_putc(L, e, ',');
      enc_value(L, e, top);
    } else {
      in_order = 0;
    }
    lua_pop(L, 1);
  } while (lua_next(L, idx));
  if (max != (double)count) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.0f", max);
    luaL_error(L, "cannot encode table with mixed or sparse keys (sparse array: %d values, largest index %s)",
               (int)count, tmp);
  }
  if (in_order) {
    enc_putc(L, e, ']');
  } else {
    e->len = start;
    enc_array_n(L, e, idx, count);
  }
}

/* No mark: {} when empty, an array for keys 1..n, an object for strings. */
static void enc_table_auto(lua_State *L, json_encoder *e, int idx) {
  lua_pushnil(L);
  if (!lua_next(L, idx)) {
    enc_lit(L, e, "{}");
    return;
  }
  if (lua_type(L, -2) == LUA_TSTRING) enc_object_members(L, e, idx, 0);
  else if (lua_type(L, -2) == LUA_TNUMBER) enc_array_auto(L, e, idx);
  else mixed_key_error(L, lua_gettop(L) - 1, "");
}

static void enc_table(lua_State *L, json_encoder *e, int idx) {
  enc_enter(L, e, idx);
  switch (kind_of(L, idx)) {
  case KIND_ARRAY: enc_array_n(L, e, idx, (size_t)lua_rawlen(L, idx)); break;
  case KIND_OBJECT:
    lua_pushnil(L);
    enc_object_members(L, e, idx, 1);
    break;
  case KIND_TOJSON: enc_tojson(L, e, idx); break;
  default: enc_table_auto(L, e, idx); break;
  }
  e->depth--;
}

/* A full userdata is encodable only through a __tojson of its metatable. */
static void enc_userdata(lua_State *L, json_encoder *e, int idx) {
  enc_enter(L, e, idx);
  if (kind_of(L, idx) != KIND_TOJSON) luaL_error(L, "cannot encode value of type userdata");
  enc_tojson(L, e, idx);
  e->depth--;
}

static void enc_value(lua_State *L, json_encoder *e, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    enc_string(L, e, s, n);
    break;
  }
  case LUA_TNUMBER: enc_number(L, e, idx); break;
  case LUA_TTABLE: enc_table(L, e, idx); break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) enc_lit(L, e, "true");
    else enc_lit(L, e, "false");
    break;
  case LUA_TNIL: enc_lit(L, e, "null"); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL) luaL_error(L, "cannot encode value of type lightuserdata");
    enc_lit(L, e, "null");
    break;
  case LUA_TUSERDATA: enc_userdata(L, e, idx); break;
  default: luaL_error(L, "cannot encode value of type %s", luaL_typename(L, idx));
  }
}

static int json_encode(lua_State *L) {
  json_encoder *e;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  e = encoder_take(L); /* at index 2 */
  enc_value(L, e, 1);
  lua_pushlstring(L, e->data, e->len);
  encoder_give_back(L, e, 2);
  return 1;
}

/* ------------------------------------------------------------------ */
/* Decoding: strict pre-scan                                          */
/* ------------------------------------------------------------------ */

typedef struct {
  const unsigned char *s;
  size_t len;
  size_t pos;      /* where scanning is; on failure where the problem is */
  int has_nul;     /* saw a \u0000 escape */
  const char *msg; /* set on failure */
} scanner;

static int scan_fail(scanner *sc, const char *msg, size_t pos) {
  sc->msg = msg;
  sc->pos = pos;
  return 0;
}

static long hex4(const unsigned char *s, size_t n, size_t at) {
  long v = 0;
  size_t i;
  if (at + 4 > n) return -1;
  for (i = at; i < at + 4; i++) {
    unsigned char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* A \u escape at *i (the backslash); a high surrogate needs its low half. */
static int scan_unicode_escape(scanner *sc, size_t *i) {
  const unsigned char *s = sc->s;
  long cp = hex4(s, sc->len, *i + 2), lo;
  if (cp < 0) return scan_fail(sc, "invalid \\u escape", *i);
  if (cp == 0) sc->has_nul = 1;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return scan_fail(sc, "lone surrogate in \\u escape", *i);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (*i + 12 > sc->len || s[*i + 6] != '\\' || s[*i + 7] != 'u')
      return scan_fail(sc, "lone surrogate in \\u escape", *i);
    lo = hex4(s, sc->len, *i + 8);
    if (lo < 0xDC00 || lo > 0xDFFF) return scan_fail(sc, "lone surrogate in \\u escape", *i);
    *i += 12;
    return 1;
  }
  *i += 6;
  return 1;
}

static int scan_escape(scanner *sc, size_t *i) {
  if (*i + 1 >= sc->len) return scan_fail(sc, "unterminated string", *i);
  switch (sc->s[*i + 1]) {
  case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
    *i += 2;
    return 1;
  case 'u': return scan_unicode_escape(sc, i);
  default: return scan_fail(sc, "invalid escape in string", *i);
  }
}

/* A string starting at sc->pos (the opening quote). */
static int scan_string(scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, i = sc->pos + 1;
  for (;;) {
    unsigned char c;
    while (i < n && byte_class[s[i]] == 0) i++;
    if (i >= n) return scan_fail(sc, "unterminated string", sc->pos);
    c = s[i];
    if (c == '"') {
      sc->pos = i + 1;
      return 1;
    } else if (c == '\\') {
      if (!scan_escape(sc, &i)) return 0;
    } else if (c < 0x20) {
      return scan_fail(sc, "control character in string", i);
    } else {
      size_t k = utf8_len(s + i, n - i);
      if (k == 0) return scan_fail(sc, "invalid UTF-8 in string", i);
      i += k;
    }
  }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(const unsigned char *s, size_t n, size_t i) {
  while (i < n && is_digit(s[i])) i++;
  return i;
}

/*
 * A number at sc->pos, by the JSON grammar. It must not run on into bytes
 * cJSON would take as part of it, so cJSON sees the very same token.
 */
static int scan_number(scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, start = sc->pos, i = start;
  if (s[i] == '-') i++;
  if (i < n && s[i] == '0') i++;
  else if (i < n && is_digit(s[i])) i = skip_digits(s, n, i);
  else return scan_fail(sc, "invalid number", start);
  if (i < n && s[i] == '.') {
    if (!(i + 1 < n && is_digit(s[i + 1]))) return scan_fail(sc, "invalid number", start);
    i = skip_digits(s, n, i + 1);
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (!(i < n && is_digit(s[i]))) return scan_fail(sc, "invalid number", start);
    i = skip_digits(s, n, i);
  }
  if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-'))
    return scan_fail(sc, "invalid number", start);
  if (i - start > MAX_NUMBER_LEN) return scan_fail(sc, "number too long", start);
  sc->pos = i;
  return 1;
}

/*
 * The whole text. Structure (commas, colons, literals) is left to cJSON;
 * this checks tokens cJSON is lax about and counts nesting.
 */
static int scan_text(scanner *sc) {
  int depth = 0;
  while (sc->pos < sc->len) {
    unsigned char c = sc->s[sc->pos];
    if (c == '"') {
      if (!scan_string(sc)) return 0;
      continue;
    }
    if (c == '-' || is_digit(c)) {
      if (!scan_number(sc)) return 0;
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > MAX_DEPTH) return scan_fail(sc, "nesting too deep", sc->pos);
    } else if (c == ']' || c == '}') {
      depth--;
    } else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c >= 0x80) {
      return scan_fail(sc, "unexpected byte", sc->pos);
    }
    sc->pos++;
  }
  return 1;
}

/*
 * cJSON keeps strings NUL-terminated, so "\u0000" would silently cut one
 * short. For such (rare) input, each \u0000 escape becomes a raw 0xFF byte,
 * which the scan guarantees appears nowhere else (it is never valid UTF-8),
 * and dec_string turns 0xFF back into NUL. Returns the new length.
 */
static size_t substitute_nul(const char *in, size_t n, char *out) {
  size_t i = 0, o = 0;
  int in_string = 0;
  while (i < n) {
    char c = in[i];
    if (in_string && c == '\\') {
      if (in[i + 1] == 'u' && memcmp(in + i + 2, "0000", 4) == 0) {
        out[o++] = (char)0xFF;
        i += 6;
      } else { /* any other escape: copy both bytes, hex digits follow */
        out[o++] = c;
        out[o++] = in[i + 1];
        i += 2;
      }
      continue;
    }
    if (c == '"') in_string = !in_string;
    out[o++] = c;
    i++;
  }
  return o;
}

/* ------------------------------------------------------------------ */
/* Decoding: cJSON tree to Lua                                        */
/* ------------------------------------------------------------------ */

typedef struct {
  cJSON *root;
  int nul_substituted;
  int array_mt; /* stack index of the array mark inside the protected call */
} dec_ctx;

/* A data error found while converting: reported as nil, msg, not raised. */
static void dec_fail(lua_State *L, const char *msg) {
  lua_pushstring(L, msg);
  lua_error(L);
}

static void dec_push(lua_State *L, dec_ctx *c, const cJSON *n);

static void dec_string(lua_State *L, dec_ctx *c, char *s) {
  size_t n = strlen(s);
  if (c->nul_substituted) {
    char *p = s;
    while ((p = (char *)memchr(p, 0xFF, n - (size_t)(p - s))) != NULL) *p++ = '\0';
  }
  lua_pushlstring(L, s, n);
}

static void dec_number(lua_State *L, double d) {
  if (isnan(d) || isinf(d)) dec_fail(L, "number out of range");
#if BT_HAS_INTEGERS
  if (d >= -EXACT_INT_LIMIT && d <= EXACT_INT_LIMIT && (double)(lua_Integer)d == d) {
    lua_pushinteger(L, (lua_Integer)d);
    return;
  }
#endif
  lua_pushnumber(L, (lua_Number)d);
}

static int dec_count(const cJSON *n) {
  int count = 0;
  for (n = n->child; n != NULL; n = n->next) count++;
  return count;
}

static void dec_array(lua_State *L, dec_ctx *c, const cJSON *n) {
  int i = 1;
  const cJSON *item;
  if (!lua_checkstack(L, 4)) dec_fail(L, "nesting too deep");
  lua_createtable(L, dec_count(n), 0);
  for (item = n->child; item != NULL; item = item->next) {
    dec_push(L, c, item);
    lua_rawseti(L, -2, i++);
  }
  lua_pushvalue(L, c->array_mt); /* every array, so [] re-encodes as [] */
  lua_setmetatable(L, -2);
}

static void dec_object(lua_State *L, dec_ctx *c, const cJSON *n) {
  const cJSON *item;
  if (!lua_checkstack(L, 4)) dec_fail(L, "nesting too deep");
  lua_createtable(L, 0, dec_count(n));
  for (item = n->child; item != NULL; item = item->next) {
    dec_string(L, c, item->string);
    dec_push(L, c, item);
    lua_rawset(L, -3); /* a repeated name: the last one wins */
  }
}

static void dec_push(lua_State *L, dec_ctx *c, const cJSON *n) {
  switch (n->type & 0xFF) {
  case cJSON_False: lua_pushboolean(L, 0); break;
  case cJSON_True: lua_pushboolean(L, 1); break;
  case cJSON_NULL: lua_pushlightuserdata(L, NULL); break;
  case cJSON_Number: dec_number(L, n->valuedouble); break;
  case cJSON_String: dec_string(L, c, n->valuestring); break;
  case cJSON_Array: dec_array(L, c, n); break;
  case cJSON_Object: dec_object(L, c, n); break;
  default: dec_fail(L, "unexpected JSON value");
  }
}

#if LUA_VERSION_NUM < 502
/* lua_cpcall drops results, so the value travels through the registry. */
static char dec_result_key;
#endif

static int dec_protected(lua_State *L) {
  dec_ctx *c = (dec_ctx *)lua_touserdata(L, 1);
  luaL_getmetatable(L, ARRAY_MT);
  c->array_mt = lua_gettop(L);
  dec_push(L, c, c->root);
#if LUA_VERSION_NUM < 502
  lua_pushlightuserdata(L, &dec_result_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 0;
#else
  return 1;
#endif
}

/*
 * Converts the tree under a protected call, frees it whatever happened, and
 * then either leaves the value on the stack (0), reports a data error
 * (LUA_ERRRUN, message on the stack) or re-raises a memory error.
 * lua_pushcfunction does not allocate on 5.2+ (light C function), and
 * lua_cpcall allocates its closure inside the protection on 5.1/LuaJIT.
 */
static int dec_convert(lua_State *L, dec_ctx *c) {
  int status;
#if LUA_VERSION_NUM < 502
  status = lua_cpcall(L, dec_protected, c);
  if (status == 0) {
    lua_pushlightuserdata(L, &dec_result_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &dec_result_key);
    lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX); /* clearing a key does not allocate */
  }
#else
  lua_pushcfunction(L, dec_protected);
  lua_pushlightuserdata(L, c);
  status = lua_pcall(L, 1, 1, 0);
#endif
  cJSON_Delete(c->root);
  c->root = NULL;
  if (status != 0 && status != LUA_ERRRUN) lua_error(L);
  return status;
}

static void set_err(char *err, size_t errlen, const char *msg, size_t pos, int with_pos) {
  if (err == NULL || errlen == 0) return;
  if (msg == NULL) msg = "cannot decode JSON";
  if (with_pos) snprintf(err, errlen, "%s at byte %lu", msg, (unsigned long)pos + 1);
  else snprintf(err, errlen, "%s", msg);
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_blank(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!is_json_space(s[i])) return 0;
  return 1;
}

/* Parses text (the scan passed); on failure writes err and returns NULL. */
static cJSON *dec_parse(const char *text, size_t len, int exact_pos, char *err, size_t errlen) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  size_t at;
  if (root == NULL) {
    at = end != NULL ? (size_t)(end - text) : 0;
    if (is_blank(text, len)) set_err(err, errlen, "empty JSON text", 0, 0);
    else set_err(err, errlen, "malformed JSON", at, exact_pos);
    return NULL;
  }
  at = (size_t)(end - text);
  while (at < len && is_json_space(text[at])) at++;
  if (at < len) { /* cJSON stops after one value; JSON text is one value */
    cJSON_Delete(root);
    set_err(err, errlen, "trailing garbage after JSON value", at, exact_pos);
    return NULL;
  }
  return root;
}

/* Scan, then parse (through the \u0000 substitution when needed). */
static cJSON *dec_text(lua_State *L, const char *s, size_t len, int *nul, char *err, size_t errlen) {
  scanner sc;
  char *copy;
  cJSON *root;
  sc.s = (const unsigned char *)s;
  sc.len = len;
  sc.pos = 0;
  sc.has_nul = 0;
  sc.msg = NULL;
  if (!scan_text(&sc)) {
    set_err(err, errlen, sc.msg, sc.pos, strcmp(sc.msg, "nesting too deep") != 0);
    return NULL;
  }
  *nul = sc.has_nul;
  if (!sc.has_nul) return dec_parse(s, len, 1, err, errlen);
  copy = (char *)malloc(len);
  if (copy == NULL) luaL_error(L, "not enough memory"); /* nothing held yet */
  root = dec_parse(copy, substitute_nul(s, len, copy), 0, err, errlen);
  free(copy);
  return root;
}

int bt_json_push_decoded(lua_State *L, const char *s, size_t len, char *err, size_t errlen) {
  dec_ctx c;
  luaL_checkstack(L, 4, "cannot decode JSON"); /* before anything is held */
  if (err != NULL && errlen > 0) err[0] = '\0';
  c.root = dec_text(L, s, len, &c.nul_substituted, err, errlen);
  if (c.root == NULL) return 0;
  if (dec_convert(L, &c) == 0) return 1;
  set_err(err, errlen, lua_tostring(L, -1), 0, 0);
  lua_pop(L, 1);
  return 0;
}

static int json_decode(lua_State *L) {
  char err[128];
  size_t len;
  const char *s;
  luaL_checktype(L, 1, LUA_TSTRING);
  s = lua_tolstring(L, 1, &len);
  if (bt_json_push_decoded(L, s, len, err, sizeof err)) return 1;
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

/* ------------------------------------------------------------------ */
/* Marks and module table                                             */
/* ------------------------------------------------------------------ */

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
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) yes = lua_rawequal(L, -1, UV_ARRAY_MT);
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
  static const luaL_Reg funcs[] = {
      {"encode", json_encode}, {"decode", json_decode},   {"array", json_array},
      {"object", json_object}, {"is_array", json_is_array}, {NULL, NULL}};
  luaL_checkstack(L, 6, "cannot open baseten.core.json");
  if (luaL_newmetatable(L, ENCODER_MT)) {
    lua_pushcfunction(L, encoder_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 8);
  push_mark(L, ARRAY_MT, "array");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "array_mt");
  push_mark(L, OBJECT_MT, "object");
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "object_mt");
  lua_pushboolean(L, 0); /* the encoder cache starts empty */
  luaL_setfuncs(L, funcs, 3);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_setfield(L, -2, "json");
}
