/*
 * json_enc.c: Lua values to JSON text (json.encode).
 *
 * json_mod.c makes the table. Encoding writes into a growable buffer (bt_buf) owned by a userdata
 * (json_encoder), so any error raised mid-encode leaves nothing behind: the
 * garbage collector frees the buffer. One encoder is cached in an upvalue of
 * `encode`. Every value is encoded once, so the cost is linear in its size.
 *
 * Limits (lua-cjson's encode_max_depth and encode_sparse_array, as options
 * of json.encode): the depth budget protects the C stack, so an encode run
 * by a __tojson inside another inherits what the outer one left (upvalue
 * UV_DEPTH); a marked array may not be mostly holes, since each hole costs
 * output bytes that no input byte paid for.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bt.h"
#include "buf.h"
#include "json.h"

#define ENCODER_MT "baseten.json.encoder"

/* A cached encoder whose buffer grew past this gives the memory back. */
#define ENCODER_KEEP_BYTES (1u << 20)

/* Defaults of json.encode's options (README "JSON"). A marked array is
 * refused when its largest index is above SPARSE_SAFE and more than
 * sparse_ratio times its count of elements (lua-cjson's rule and values). */
#define DEFAULT_SPARSE_RATIO 2.0
#define SPARSE_SAFE 10.0

/* ------------------------------------------------------------------ */
/* Encoder buffer                                                     */
/* ------------------------------------------------------------------ */

typedef struct {
  bt_buf b;
  int depth;     /* containers open in this encode */
  int base;      /* containers open in the encodes this one runs inside */
  int max_depth; /* base + depth may not exceed it */
  double sparse_ratio;
  /* Containers on the current path, for cycle detection (O(depth)). */
  const void *path[BT_JSON_MAX_DEPTH];
} json_encoder;

static int encoder_gc(lua_State *L) {
  json_encoder *e = (json_encoder *)luaL_checkudata(L, 1, ENCODER_MT);
  bt_buf_free(&e->b);
  return 0;
}

static void enc_reserve(lua_State *L, json_encoder *e, size_t n) {
  if (e->b.cap - e->b.len < n && bt_buf_reserve(&e->b, n) != 0)
    luaL_error(L, "not enough memory"); /* e->b still owns its block */
}

static void enc_put(lua_State *L, json_encoder *e, const void *s, size_t n) {
  enc_reserve(L, e, n);
  memcpy(e->b.p + e->b.len, s, n);
  e->b.len += n;
}

static void enc_putc(lua_State *L, json_encoder *e, char c) {
  enc_reserve(L, e, 1);
  e->b.p[e->b.len++] = c;
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
  e->b.p = NULL;
  e->b.len = e->b.cap = 0;
  e->depth = e->base = 0;
  luaL_setmetatable(L, ENCODER_MT);
  return e;
}

/* Puts the encoder at idx back in the cache, shrinking a huge buffer. */
static void encoder_give_back(lua_State *L, json_encoder *e, int idx) {
  if (e->b.cap > ENCODER_KEEP_BYTES) bt_buf_free(&e->b);
  e->b.len = 0;
  e->depth = e->base = 0;
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
 * Rewrites a printf'd number in place, turning the locale's decimal point
 * (one or more bytes that are not digits, signs or 'e') into '.', so a host
 * that called setlocale(LC_NUMERIC, "ps_AF") still gets JSON. Returns the
 * new length.
 */
static size_t number_text_fix(char *text) {
  const char *s = text;
  char *out = text;
  while (*s != '\0') {
    char c = *s++;
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
      *out++ = c;
    } else {
      *out++ = '.';
      while (*s != '\0' && !(*s >= '0' && *s <= '9') && *s != 'e') s++;
    }
  }
  *out = '\0';
  return (size_t)(out - text);
}

static void enc_double(lua_State *L, json_encoder *e, double d) {
  char tmp[48];
  int prec;
  size_t n;
  if (isnan(d) || isinf(d)) luaL_error(L, "cannot encode NaN/inf");
  if (bt_exact_int(d)) { /* no ".0" and no exponent on the wire */
    enc_integer(L, e, (long long)d);
    return;
  }
  /* Shortest precision that reads back as the same double. strtod shares
   * snprintf's locale, so the check holds before the decimal point fix. */
  for (prec = 14; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (strtod(tmp, NULL) == d) break;
  }
  if (prec == 17) snprintf(tmp, sizeof tmp, "%.17g", d);
  n = number_text_fix(tmp);
  /* An integral float at or past 2^53 printed as bare digits would decode
   * as an exact integer on 5.3+; ".0" keeps it a float (and the same number). */
  if (strpbrk(tmp, ".e") == NULL) memcpy(tmp + n, ".0", 3), n += 2;
  enc_put(L, e, tmp, n);
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
  e->b.p[e->b.len++] = '"';
  while (i < n) {
    size_t start = i;
    for (;;) {
      while (i < n && bt_json_byte_class[s[i]] == 0) i++;
      if (i < n && bt_json_byte_class[s[i]] == 2) {
        size_t k = bt_json_utf8_len(s + i, n - i);
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
  if (e->base + e->depth >= e->max_depth)
    luaL_error(L, "nesting too deep"); /* max_depth, nested encodes included */
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

/* Encodes what the __tojson on top of the stack returns for the value. An
 * encode the call runs starts at our depth; protected, so that the budget
 * is back however the call ends. */
static void enc_tojson(lua_State *L, json_encoder *e, int idx) {
  int rc;
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->base + e->depth);
  lua_replace(L, UV_DEPTH);
  rc = lua_pcall(L, 1, 1, 0);
  lua_pushinteger(L, e->base);
  lua_replace(L, UV_DEPTH);
  if (rc != 0) lua_error(L);
  enc_value(L, e, lua_gettop(L));
  lua_pop(L, 1);
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

/* The key at kidx as a positive integer below 2^53, or 0. */
static double positive_int_key(lua_State *L, int kidx) {
  double k;
  if (lua_type(L, kidx) != LUA_TNUMBER) return 0;
  k = (double)lua_tonumber(L, kidx);
  return k >= 1 && bt_exact_int(k) ? k : 0;
}

/* The key at kidx as a positive integer; any other key raises. */
static double array_key(lua_State *L, int kidx) {
  double k;
  if (lua_type(L, kidx) != LUA_TNUMBER) mixed_key_error(L, kidx, "integer");
  k = positive_int_key(L, kidx);
  if (k == 0 && (double)lua_tonumber(L, kidx) >= BT_EXACT_INT) {
    luaL_error(L, "cannot encode array: index %f is 2^53 or more", lua_tonumber(L, kidx));
  } else if (k == 0) {
    luaL_error(
        L,
        "cannot encode table with mixed or sparse keys (number key %f is not a positive integer)",
        lua_tonumber(L, kidx));
  }
  return k;
}

/*
 * An array in one walk of lua_next. While the keys come as 1, 2, 3, ...
 * (the array part: the common case) each element is written as it comes.
 * The first key out of order ends that; the walk then only checks the keys
 * and finds the largest, and array_tail fetches the rest by index. So each
 * element is encoded once, and the cost stays linear however deep.
 */
typedef struct {
  size_t written; /* elements 1..written are in the output */
  size_t count;   /* positive integer keys seen */
  double max;     /* the largest of them */
  int in_order;
} array_walk;

/* The key and value lua_next left on top; pops the value. A key that is
 * not an index raises, marked or not: dropping it would lose data. */
static void array_pair(lua_State *L, json_encoder *e, array_walk *w) {
  int top = lua_gettop(L);
  double k = array_key(L, top - 1);
  w->count++;
  if (k > w->max) w->max = k;
  if (w->in_order && k == (double)(w->written + 1)) {
    if (w->written > 0) enc_putc(L, e, ',');
    enc_value(L, e, top);
    w->written++;
  } else {
    w->in_order = 0;
  }
  lua_pop(L, 1);
}

/* Elements written+1 .. max by index, then ']'; a hole is null. */
static void array_tail(lua_State *L, json_encoder *e, int idx, const array_walk *w) {
  double i;
  for (i = (double)w->written + 1; i <= w->max; i++) {
    if (i > 1) enc_putc(L, e, ',');
    if (i <= INT_MAX) {
      lua_rawgeti(L, idx, (int)i);
    } else {
      lua_pushnumber(L, (lua_Number)i); /* a float key finds an integer key too */
      lua_rawget(L, idx);
    }
    enc_value(L, e, lua_gettop(L));
    lua_pop(L, 1);
  }
  enc_putc(L, e, ']');
}

/* Marked: holes are null up to the largest index, unless they would be
 * most of the output (sparse_ratio, checked before any hole is written). */
static void enc_array_marked(lua_State *L, json_encoder *e, int idx) {
  array_walk w = {0, 0, 0, 1};
  enc_putc(L, e, '[');
  lua_pushnil(L);
  while (lua_next(L, idx)) array_pair(L, e, &w);
  if (e->sparse_ratio > 0 && w.max > SPARSE_SAFE && w.max > (double)w.count * e->sparse_ratio) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "cannot encode sparse array (%.0f values, largest index %.0f; the sparse_ratio "
             "option allows %g times the count)",
             (double)w.count, w.max, e->sparse_ratio);
    luaL_error(L, "%s", msg);
  }
  array_tail(L, e, idx, &w);
}

/* No mark: keys must be exactly 1..n. The first pair is already pushed. */
static void enc_array_auto(lua_State *L, json_encoder *e, int idx) {
  array_walk w = {0, 0, 0, 1};
  enc_putc(L, e, '[');
  do {
    array_pair(L, e, &w);
  } while (lua_next(L, idx));
  if (w.max != (double)w.count) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.0f", w.max);
    luaL_error(
        L,
        "cannot encode table with mixed or sparse keys (sparse array: %d values, largest index %s)",
        (int)w.count, tmp);
  }
  array_tail(L, e, idx, &w);
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
  case KIND_ARRAY: enc_array_marked(L, e, idx); break;
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

/* opts.max_depth (1 to BT_JSON_MAX_DEPTH) and opts.sparse_ratio (>= 0; 0:
 * any) of json.encode's argument 2, or their defaults. */
static void encode_options(lua_State *L, int *max_depth, double *ratio) {
  *max_depth = BT_JSON_MAX_DEPTH;
  *ratio = DEFAULT_SPARSE_RATIO;
  if (lua_isnoneornil(L, 2)) return;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    lua_pop(L, 1);
    if (strcmp(k, "max_depth") != 0 && strcmp(k, "sparse_ratio") != 0)
      luaL_argerror(L, 2, "unknown option (max_depth and sparse_ratio are known)");
  }
  lua_getfield(L, 2, "max_depth");
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    luaL_argcheck(L, n >= 1 && n <= BT_JSON_MAX_DEPTH && n == (int)n, 2,
                  "max_depth must be an integer from 1 to 1000");
    *max_depth = (int)n;
  }
  lua_getfield(L, 2, "sparse_ratio");
  if (!lua_isnil(L, -1)) {
    lua_Number r = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    luaL_argcheck(L, r >= 0 && r <= 1e300, 2, "sparse_ratio must be a number >= 0");
    *ratio = r;
  }
}

/* json.encode(value[, {max_depth =, sparse_ratio =}]) -> text */
int bt_json_encode(lua_State *L) {
  json_encoder *e;
  int max_depth;
  double ratio;
  luaL_checkany(L, 1);
  encode_options(L, &max_depth, &ratio);
  lua_settop(L, 1);
  e = encoder_take(L); /* at index 2 */
  e->base = (int)lua_tointeger(L, UV_DEPTH);
  e->max_depth = max_depth;
  e->sparse_ratio = ratio;
  enc_value(L, e, 1);
  lua_pushlstring(L, e->b.p, e->b.len);
  encoder_give_back(L, e, 2);
  return 1;
}

void bt_json_enc_open(lua_State *L) {
  if (luaL_newmetatable(L, ENCODER_MT)) {
    lua_pushcfunction(L, encoder_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
