/*
 * json.c: JSON for Lua (the `json` table of baseten.core).
 *
 * Decoding is one strict pass (the stream's hot path: one decode per
 * token). A lexer in plain C (scan_*) checks each token as the JSON grammar
 * says -- UTF-8, control characters, escapes, lone surrogates, numbers
 * ("01", "1.", "-.5" are refused), nesting depth -- and dec_* turn each
 * token into its Lua value at once: no intermediate tree, no malloc, and
 * strings without escapes go from the input straight into Lua. (It
 * replaced a strict pre-scan, cJSON's parse and a walk of cJSON's tree:
 * three passes and a malloc per node, about half of a stream's CPU.)
 *
 * Encoding writes into a growable buffer owned by a userdata (json_encoder),
 * so any error raised mid-encode leaves nothing behind: the garbage collector
 * frees the buffer. One encoder is cached in an upvalue of `encode`.
 *
 * The JSON null is a lightuserdata holding NULL, as in lua-cjson.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bt.h"

#define ARRAY_MT "baseten.json.array"
#define OBJECT_MT "baseten.json.object"
#define ENCODER_MT "baseten.json.encoder"

/* Nesting limit of both encode and decode (cJSON's, which decode used). */
#define MAX_DEPTH 1000

/* Integral doubles below this print as integers and decode as integers. */
#define EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */

/* Longer numbers are refused ("number too long"), as when cJSON, which
 * copied numbers into a 64-byte buffer, did the decoding. */
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
        if (k == 0) luaL_error(L, "cannot encode string: invalid UTF-8 at byte %d", (int)(i + 1));
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
    luaL_error(
        L,
        "cannot encode table with mixed or sparse keys (number key %f is not a positive integer)",
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
    luaL_error(
        L,
        "cannot encode table with mixed or sparse keys (sparse array: %d values, largest index %s)",
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
/* Decoding: the lexer (plain C, no Lua)                              */
/* ------------------------------------------------------------------ */

/*
 * Checks each token as strictly as JSON's grammar asks: UTF-8, control
 * characters, escapes (four hex digits; surrogates in pairs), numbers
 * ("01", "1.", "-.5" are refused) and literals. Never allocates.
 */
typedef struct {
  const unsigned char *s;
  size_t len;
  size_t pos;      /* where lexing is; on failure where the problem is */
  int depth;       /* containers open */
  int escaped;     /* the last string had an escape */
  int integral;    /* the last number had no fraction and no exponent */
  int with_pos;    /* the failure message names pos */
  const char *msg; /* set on failure */
} scanner;

static int scan_fail(scanner *sc, const char *msg, size_t pos) {
  sc->msg = msg;
  sc->pos = pos;
  sc->with_pos = 1;
  return 0;
}

static int scan_fail_nopos(scanner *sc, const char *msg) {
  sc->msg = msg;
  sc->with_pos = 0;
  return 0;
}

/* The byte at pos, or 0 at the end (0 is never valid where one is read). */
static unsigned char scan_peek(const scanner *sc) { return sc->pos < sc->len ? sc->s[sc->pos] : 0; }

static int is_json_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* inline: called between any two tokens, and usually finds no space */
static inline void skip_space(scanner *sc) {
  while (sc->pos < sc->len && is_json_space(sc->s[sc->pos])) sc->pos++;
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
  sc->escaped = 1;
  if (*i + 1 >= sc->len) return scan_fail(sc, "unterminated string", *i);
  switch (sc->s[*i + 1]) {
  case '"':
  case '\\':
  case '/':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't': *i += 2; return 1;
  case 'u': return scan_unicode_escape(sc, i);
  default: return scan_fail(sc, "invalid escape in string", *i);
  }
}

/* A string starting at sc->pos (the opening quote); on success pos is past
 * the closing quote and sc->escaped tells whether it needs unescape(). */
static int scan_string(scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, i = sc->pos + 1;
  sc->escaped = 0;
  for (;;) {
    unsigned char c;
    /* four plain bytes a step: most of a chunk's bytes are in strings */
    while (i + 4 <= n && (byte_class[s[i]] | byte_class[s[i + 1]] | byte_class[s[i + 2]] |
                          byte_class[s[i + 3]]) == 0)
      i += 4;
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

/* A number at sc->pos, by the JSON grammar; pos ends past it. */
static int scan_number(scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, start = sc->pos, i = start;
  sc->integral = 1;
  if (s[i] == '-') i++;
  if (i < n && s[i] == '0') i++;
  else if (i < n && is_digit(s[i])) i = skip_digits(s, n, i);
  else return scan_fail(sc, "invalid number", start);
  if (i < n && s[i] == '.') {
    if (!(i + 1 < n && is_digit(s[i + 1]))) return scan_fail(sc, "invalid number", start);
    i = skip_digits(s, n, i + 1);
    sc->integral = 0;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (!(i < n && is_digit(s[i]))) return scan_fail(sc, "invalid number", start);
    i = skip_digits(s, n, i);
    sc->integral = 0;
  }
  if (i < n &&
      (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-'))
    return scan_fail(sc, "invalid number", start);
  if (i - start > MAX_NUMBER_LEN) return scan_fail(sc, "number too long", start);
  sc->pos = i;
  return 1;
}

static int scan_literal(scanner *sc, const char *word, size_t n) {
  if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
    return scan_fail(sc, "malformed JSON", sc->pos);
  sc->pos += n;
  return 1;
}

/* UTF-8 for a code point below 0x110000; returns the bytes written. */
static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The code point of the \u escape at in[*i] (its pair included); *i moves
 * past it. scan_unicode_escape checked it, pairs included. */
static unsigned long take_unicode(const unsigned char *in, size_t n, size_t *i) {
  unsigned long cp = (unsigned long)hex4(in, n, *i + 2);
  *i += 6;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    unsigned long lo = (unsigned long)hex4(in, n, *i + 2);
    *i += 6;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  return cp;
}

/*
 * The body in[0, n) of a string scan_string accepted, escapes decoded,
 * into out (room for n bytes: no escape decodes longer than it is written).
 * \u0000 becomes a real NUL: Lua strings carry their length.
 */
static size_t unescape(const unsigned char *in, size_t n, char *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    const unsigned char *bs = memchr(in + i, '\\', n - i);
    size_t run = bs ? (size_t)(bs - in) - i : n - i;
    memcpy(out + o, in + i, run);
    o += run;
    i += run;
    if (i >= n) break;
    switch (in[i + 1]) {
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': o += put_utf8(out + o, take_unicode(in, n, &i)); continue;
    default: out[o++] = (char)in[i + 1]; /* '"', '\\' or '/' */
    }
    i += 2;
  }
  return o;
}

/* ------------------------------------------------------------------ */
/* Decoding: building the Lua value as the lexer goes                 */
/* ------------------------------------------------------------------ */

/*
 * One pass, no intermediate tree: each token becomes a Lua value at once,
 * and the strings without escapes (nearly all) go to Lua straight from the
 * input. A data error returns 0 (the caller drops what was pushed); only
 * Lua can raise (out of memory), and then nothing is held: the scratch
 * space is a C array or a userdata.
 *
 * Table sizes: a container keeps its first members on the Lua stack and
 * makes its table when it knows the count, so the table is made at its
 * final size without rehashing. It makes it early, with room to spare,
 * before a nested container (so every open container holds at most its
 * table and a key on the stack, however deep) or after DEC_BATCH members.
 */
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
  scanner sc;
  int array_mt; /* stack index of the array mark */
  int cache;    /* stack index of the string cache, 0 if none */
} decoder;

static int dec_value(lua_State *L, decoder *d);

/*
 * The string cache: a table in the registry whose array holds the short
 * strings decoded lately, one per slot, the slot picked by a cheap hash.
 * The same names ("choices", "delta", ...) and values ("assistant",
 * "chat.completion.chunk", the id) come in every chunk of a stream; taking
 * them from the cache skips Lua's interning of a fresh copy (hashing every
 * byte, then a string-table search), which cost more than half of pushing
 * a string. At most STRCACHE_SIZE short strings stay alive through it.
 * (Lua 5.4: 8% fewer instructions per chunk decoded; LuaJIT, whose
 * interning is cheaper than the lookup, goes without: see bt_json_open.)
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

/* Pushes the string p[0, n), from the cache when it is there. */
static void dec_push_cached(lua_State *L, const decoder *d, const char *p, size_t n) {
  const char *c;
  size_t cn;
  int slot;
  if (d->cache == 0 || n == 0 || n > STRCACHE_MAXLEN) {
    lua_pushlstring(L, p, n);
    return;
  }
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
static DEC_NOINLINE void dec_push_unescaped(lua_State *L, const unsigned char *p, size_t n) {
  char small[256];
  char *buf;
  if (n <= sizeof small) {
    lua_pushlstring(L, small, unescape(p, n, small));
    return;
  }
  buf = (char *)lua_newuserdata(L, n); /* the collector frees it */
  lua_pushlstring(L, buf, unescape(p, n, buf));
  lua_remove(L, -2);
}

static int dec_string(lua_State *L, decoder *d) {
  scanner *sc = &d->sc;
  size_t start = sc->pos + 1, n;
  if (!scan_string(sc)) return 0;
  n = sc->pos - 1 - start;
  if (sc->escaped) dec_push_unescaped(L, sc->s + start, n);
  else dec_push_cached(L, d, (const char *)sc->s + start, n);
  return 1;
}

/* Integral values within 2^53 become integers (5.3+), as encode writes
 * them; 15 digits or fewer are exact in a double, so they skip strtod. */
static void dec_push_double(lua_State *L, double d) {
#if BT_HAS_INTEGERS
  if (d >= -EXACT_INT_LIMIT && d <= EXACT_INT_LIMIT && (double)(lua_Integer)d == d) {
    lua_pushinteger(L, (lua_Integer)d);
    return;
  }
#endif
  lua_pushnumber(L, (lua_Number)d);
}

/* strtod under the C locale's decimal point, whatever it is. */
static DEC_NOINLINE double number_strtod(const unsigned char *p, size_t n) {
  char tmp[MAX_NUMBER_LEN * 4 + 1], *o = tmp;
  const char *dp = localeconv()->decimal_point;
  size_t i, dpn = (dp != NULL && *dp != '\0' && strlen(dp) <= 4) ? strlen(dp) : 0;
  for (i = 0; i < n; i++) {
    if (p[i] == '.' && dpn > 0) {
      memcpy(o, dp, dpn);
      o += dpn;
    } else {
      *o++ = (char)p[i];
    }
  }
  *o = '\0';
  return strtod(tmp, NULL);
}

static int dec_number(lua_State *L, scanner *sc) {
  const unsigned char *p = sc->s + sc->pos;
  size_t n, i, neg = p[0] == '-';
  double d;
  if (!scan_number(sc)) return 0;
  n = (size_t)(sc->s + sc->pos - p);
  if (sc->integral && n - neg <= 15) {
    unsigned long long u = 0;
    for (i = neg; i < n; i++) u = u * 10 + (unsigned)(p[i] - '0');
#if BT_HAS_INTEGERS
    lua_pushinteger(L, neg ? -(lua_Integer)u : (lua_Integer)u);
#else
    lua_pushnumber(L, neg ? -(lua_Number)u : (lua_Number)u); /* "-0" is -0.0 */
#endif
    return 1;
  }
  d = number_strtod(p, n);
  if (isnan(d) || isinf(d)) return scan_fail_nopos(sc, "number out of range");
  dec_push_double(L, d);
  return 1;
}

/* Makes the object's table in slot t, sized for size members, and moves
 * the `pending` pairs above t into it; a key on top of them stays (at t+1). */
static void dec_make_object(lua_State *L, int t, int pending, int size, int key_on_top) {
  int i;
  lua_createtable(L, 0, size);
  lua_replace(L, t);
  for (i = 0; i < pending; i++) { /* in order: a repeated name, the last wins */
    lua_pushvalue(L, t + 1 + 2 * i);
    lua_pushvalue(L, t + 2 + 2 * i);
    lua_rawset(L, t);
  }
  if (key_on_top && pending > 0) lua_replace(L, t + 1);
  lua_settop(L, t + key_on_top);
}

static int is_container(unsigned char c) { return c == '{' || c == '['; }

/* What may follow a member or element: ',' (returns 1) or `close` (2). */
static int dec_next(scanner *sc, unsigned char close) {
  unsigned char c;
  skip_space(sc);
  c = scan_peek(sc);
  sc->pos++;
  if (c == ',') {
    skip_space(sc);
    return 1;
  }
  if (c == close) return 2;
  return scan_fail(sc, "malformed JSON", sc->pos - 1);
}

/* Opens a container at sc->pos: depth, stack room, a placeholder slot for
 * its table; returns the slot, or 0. */
static int dec_open(lua_State *L, scanner *sc) {
  if (++sc->depth > MAX_DEPTH || !lua_checkstack(L, DEC_SLOTS))
    return scan_fail_nopos(sc, "nesting too deep");
  sc->pos++;
  skip_space(sc);
  lua_pushnil(L);
  return lua_gettop(L);
}

static int dec_member(lua_State *L, decoder *d, int t, int *pending, int *made) {
  scanner *sc = &d->sc;
  if (scan_peek(sc) != '"') return scan_fail(sc, "malformed JSON", sc->pos);
  if (!dec_string(L, d)) return 0;
  skip_space(sc);
  if (scan_peek(sc) != ':') return scan_fail(sc, "malformed JSON", sc->pos);
  sc->pos++;
  skip_space(sc);
  if (!*made && is_container(scan_peek(sc))) {
    dec_make_object(L, t, *pending, *pending + 3, 1); /* this one and two more */
    *made = 1;
  } else if (!*made && *pending == DEC_BATCH) {
    dec_make_object(L, t, *pending, 2 * DEC_BATCH, 1); /* a big one */
    *made = 1;
  }
  if (!dec_value(L, d)) return 0;
  if (*made) lua_rawset(L, t);
  else (*pending)++;
  return 1;
}

static int dec_object(lua_State *L, decoder *d) {
  scanner *sc = &d->sc;
  int t = dec_open(L, sc), pending = 0, made = 0, rc = 2;
  if (t == 0) return 0;
  if (scan_peek(sc) == '}') {
    sc->pos++;
  } else {
    do {
      if (!dec_member(L, d, t, &pending, &made)) return 0;
    } while ((rc = dec_next(sc, '}')) == 1);
    if (rc == 0) return 0;
  }
  if (!made) dec_make_object(L, t, pending, pending, 0);
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
  scanner *sc = &d->sc;
  int t = dec_open(L, sc), n = 0, made = 0, rc = 2;
  if (t == 0) return 0;
  if (scan_peek(sc) == ']') {
    sc->pos++;
  } else {
    do {
      if (!made && (is_container(scan_peek(sc)) || n == DEC_BATCH)) {
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
  sc->depth--;
  return 1;
}

/* One value at sc->pos (space already skipped), pushed. */
static int dec_value(lua_State *L, decoder *d) {
  scanner *sc = &d->sc;
  unsigned char c = scan_peek(sc);
  switch (c) {
  case '"': return dec_string(L, d);
  case '{': return dec_object(L, d);
  case '[': return dec_array(L, d);
  case 't':
    if (!scan_literal(sc, "true", 4)) return 0;
    lua_pushboolean(L, 1);
    return 1;
  case 'f':
    if (!scan_literal(sc, "false", 5)) return 0;
    lua_pushboolean(L, 0);
    return 1;
  case 'n':
    if (!scan_literal(sc, "null", 4)) return 0;
    lua_pushlightuserdata(L, NULL);
    return 1;
  default:
    if (c == '-' || is_digit(c)) return dec_number(L, sc);
    if (sc->pos < sc->len && (c < 0x20 || c >= 0x80))
      return scan_fail(sc, "unexpected byte", sc->pos);
    return scan_fail(sc, "malformed JSON", sc->pos);
  }
}

static void set_err(char *err, size_t errlen, const char *msg, size_t pos, int with_pos) {
  if (err == NULL || errlen == 0) return;
  if (msg == NULL) msg = "cannot decode JSON";
  if (with_pos) snprintf(err, errlen, "%s at byte %lu", msg, (unsigned long)pos + 1);
  else snprintf(err, errlen, "%s", msg);
}

int bt_json_push_decoded(lua_State *L, const char *s, size_t len, char *err, size_t errlen) {
  decoder d;
  int base = lua_gettop(L);
  luaL_checkstack(L, DEC_SLOTS, "cannot decode JSON"); /* before anything is pushed */
  if (err != NULL && errlen > 0) err[0] = '\0';
  memset(&d, 0, sizeof d);
  d.sc.s = (const unsigned char *)s;
  d.sc.len = len;
  skip_space(&d.sc);
  if (d.sc.pos == len) {
    set_err(err, errlen, "empty JSON text", 0, 0);
    return 0;
  }
  luaL_getmetatable(L, ARRAY_MT);
  d.array_mt = base + 1;
  lua_pushlightuserdata(L, (void *)&strcache_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  d.cache = lua_istable(L, base + 2) ? base + 2 : 0;
  if (dec_value(L, &d)) {
    skip_space(&d.sc);
    if (d.sc.pos == len) {
      lua_replace(L, base + 1); /* the value, over the array mark */
      lua_settop(L, base + 1);
      return 1;
    }
    scan_fail(&d.sc, "trailing garbage after JSON value", d.sc.pos);
  }
  lua_settop(L, base);
  set_err(err, errlen, d.sc.msg, d.sc.pos, d.sc.with_pos);
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
  static const luaL_Reg funcs[] = {{"encode", json_encode},     {"decode", json_decode},
                                   {"array", json_array},       {"object", json_object},
                                   {"is_array", json_is_array}, {NULL, NULL}};
  luaL_checkstack(L, 6, "cannot open baseten.core.json");
  if (luaL_newmetatable(L, ENCODER_MT)) {
    lua_pushcfunction(L, encoder_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_getglobal(L, "jit"); /* LuaJIT interns strings faster than the cache finds them */
  if (!lua_istable(L, -1)) {
    lua_pushlightuserdata(L, (void *)&strcache_key); /* see dec_push_cached */
    lua_createtable(L, STRCACHE_SIZE, 0);
    lua_rawset(L, LUA_REGISTRYINDEX);
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
