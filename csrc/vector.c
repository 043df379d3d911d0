/*
 * vector.c: baseten.vector, packed float32 vectors for embeddings. The math
 * is plain C in vecmath.c; this file is the Lua face.
 *
 *   local v = vector.from({0.1, 0.2})      -- or frombytes(s), frombase64(s)
 *   #v, v[1], v:dot(w), v:cosine(w), v:norm(), v:normalized(), v:totable()
 *   vector.tobytes(v)                       -- little-endian float32
 *   local idx, scores = vector.top_k(q, vectors, k)  -- cosine, best first
 *
 * A vector is one userdata holding its length and its floats (4 bytes a
 * value, against about 16 in a Lua table), immutable once made. Misuse
 * raises at the caller's line (a bad argument, mismatched dimensions, a
 * table holding NaN); frombytes and frombase64, which read bytes from a
 * file or a server, return nil and a message instead (bt.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bt.h"
#include "vecmath.h"

#define VEC_MT "baseten.vector"
/* Keeps every index a Lua integer, and the userdata size far from SIZE_MAX. */
#define VEC_MAX ((size_t)1 << 28)

typedef struct vec {
  size_t n;
  float v[]; /* C99 flexible array member */
} vec;

static vec *vec_push(lua_State *L, size_t n) {
  vec *u;
  if (n == 0) luaL_error(L, "baseten.vector: a vector needs at least one value");
  if (n > VEC_MAX)
    luaL_error(L, "baseten.vector: more values than a vector holds (%d at most)", (int)VEC_MAX);
  u = (vec *)lua_newuserdata(L, sizeof(vec) + n * sizeof(float));
  u->n = n;
  luaL_setmetatable(L, VEC_MT);
  return u;
}

static vec *vec_check(lua_State *L, int i) { return (vec *)luaL_checkudata(L, i, VEC_MT); }

/* Two vectors of one dimension, or an error naming both sizes. */
static vec *vec_check_same(lua_State *L, const vec *a, int i, const char *what) {
  vec *b = vec_check(L, i);
  if (b->n != a->n)
    luaL_error(L, "baseten.vector: %s of vectors of different dimensions: %d and %d", what,
               (int)a->n, (int)b->n);
  return b;
}

static int vec_from(lua_State *L) {
  size_t n, i;
  vec *u;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (size_t)lua_rawlen(L, 1);
  u = vec_push(L, n);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)(i + 1));
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "baseten.vector.from: t[%d] is a %s, not a number", (int)(i + 1),
                 luaL_typename(L, -1));
    if (!bt_f32_from_double((double)lua_tonumber(L, -1), &u->v[i]))
      luaL_error(L, "baseten.vector.from: t[%d] is NaN, infinite or beyond float32", (int)(i + 1));
    lua_pop(L, 1);
  }
  return 1;
}

/* Bytes from a file or a database: nil, why when they are not whole
 * finite float32 values (bt.h's convention for the caller's data). */
static int vec_frombytes(lua_State *L) {
  size_t len, where;
  const char *s = luaL_checklstring(L, 1, &len);
  vec *u;
  int rc;
  if (len == 0 || len % 4 != 0 || len / 4 > VEC_MAX) {
    lua_pushnil(L);
    lua_pushfstring(L, "%d bytes is not a whole number (>= 1) of float32 values",
                    (int)(len > INT32_MAX ? INT32_MAX : len));
    return 2;
  }
  u = vec_push(L, len / 4);
  rc = bt_f32_from_le((const unsigned char *)s, len, u->v, &where);
  if (rc == BT_VEC_OK) return 1;
  lua_pushnil(L);
  lua_pushfstring(L, "value %d: %s", (int)(where + 1), bt_vec_status_text(rc));
  return 2;
}

/* Data from a server: nil, message on anything wrong (never raises but on
 * a non-string argument or out of memory). */
static int vec_frombase64(lua_State *L) {
  size_t len, where, n;
  const char *s = luaL_checklstring(L, 1, &len);
  vec *u;
  int rc;
  n = bt_b64_float_count(s, len);
  if (n == 0 || n > VEC_MAX) {
    lua_pushnil(L);
    lua_pushfstring(L, "base64 embedding of %d characters is not a whole number of float32 values",
                    (int)(len > INT32_MAX ? INT32_MAX : len));
    return 2;
  }
  u = vec_push(L, n);
  rc = bt_b64_decode_f32(s, len, u->v, n, &where);
  if (rc == BT_VEC_OK) return 1;
  lua_pushnil(L);
  lua_pushfstring(L, "base64 embedding: %s (at %s %d)", bt_vec_status_text(rc),
                  rc == BT_VEC_NOT_FINITE ? "value" : "character", (int)where + 1);
  return 2;
}

static int vec_tobytes(lua_State *L) {
  vec *u = vec_check(L, 1);
  luaL_Buffer b;
  size_t i;
  luaL_buffinit(L, &b);
  for (i = 0; i < u->n; i++) {
    unsigned char p[4];
    bt_f32_store_le(u->v[i], p);
    luaL_addlstring(&b, (const char *)p, 4);
  }
  luaL_pushresult(&b);
  return 1;
}

static int vec_dot(lua_State *L) {
  vec *a = vec_check(L, 1);
  vec *b = vec_check_same(L, a, 2, "dot");
  lua_pushnumber(L, (lua_Number)bt_vec_dot(a->v, b->v, a->n));
  return 1;
}

static int vec_cosine(lua_State *L) {
  vec *a = vec_check(L, 1);
  vec *b = vec_check_same(L, a, 2, "cosine");
  lua_pushnumber(L, (lua_Number)bt_vec_cosine(a->v, b->v, a->n, -1.0));
  return 1;
}

static int vec_norm(lua_State *L) {
  vec *a = vec_check(L, 1);
  lua_pushnumber(L, (lua_Number)bt_vec_norm(a->v, a->n));
  return 1;
}

static int vec_normalized(lua_State *L) {
  vec *a = vec_check(L, 1);
  vec *u = vec_push(L, a->n);
  bt_vec_normalize(u->v, a->v, a->n);
  return 1;
}

static int vec_totable(lua_State *L) {
  vec *a = vec_check(L, 1);
  size_t i;
  lua_createtable(L, (int)a->n, 0);
  for (i = 0; i < a->n; i++) {
    lua_pushnumber(L, (lua_Number)a->v[i]);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  return 1;
}

/* The k integer argument: a whole number >= 0 (a float such as 3.0 too). */
static size_t topk_count(lua_State *L, int i, size_t n) {
  lua_Number k = luaL_checknumber(L, i);
  if (!(k >= 0) || k != (lua_Number)(size_t)k) luaL_argerror(L, i, "k must be a whole number >= 0");
  return (size_t)k < n ? (size_t)k : n;
}

/* The vectors' pointers, checked, into a scratch userdata (GC-owned). */
static const vec **topk_gather(lua_State *L, const vec *q, size_t n) {
  const vec **all = (const vec **)lua_newuserdata(L, (n ? n : 1) * sizeof *all);
  size_t i;
  for (i = 0; i < n; i++) {
    const vec *v;
    lua_rawgeti(L, 2, (int)(i + 1));
    v = (const vec *)luaL_testudata(L, -1, VEC_MT);
    if (v == NULL) {
      luaL_error(L, "baseten.vector.top_k: vectors[%d] is a %s, not a vector", (int)(i + 1),
                 luaL_typename(L, -1));
      return NULL; /* not reached: luaL_error does not return */
    }
    if (v->n != q->n)
      luaL_error(L, "baseten.vector.top_k: vectors[%d] has %d dimensions, the query %d",
                 (int)(i + 1), (int)v->n, (int)q->n);
    lua_pop(L, 1); /* still referenced by the table: the pointer stays valid */
    all[i] = v;
  }
  return all;
}

static int vec_top_k(lua_State *L) {
  const vec *q = vec_check(L, 1);
  size_t n, k, i;
  const vec **all;
  size_t *idx;
  double *score, qnorm;
  bt_topk h;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (size_t)lua_rawlen(L, 2);
  k = topk_count(L, 3, n);
  all = topk_gather(L, q, n);
  idx = (size_t *)lua_newuserdata(L, (k ? k : 1) * sizeof *idx);
  score = (double *)lua_newuserdata(L, (k ? k : 1) * sizeof *score);
  bt_topk_init(&h, k, idx, score);
  qnorm = bt_vec_norm(q->v, q->n);
  for (i = 0; i < n && k > 0; i++) bt_topk_push(&h, i, bt_vec_cosine(q->v, all[i]->v, q->n, qnorm));
  bt_topk_sort(&h);
  lua_createtable(L, (int)h.count, 0);
  lua_createtable(L, (int)h.count, 0);
  for (i = 0; i < h.count; i++) {
    lua_pushinteger(L, (lua_Integer)(idx[i] + 1));
    lua_rawseti(L, -3, (int)(i + 1));
    lua_pushnumber(L, (lua_Number)score[i]);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  return 2;
}

static int vec_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)vec_check(L, 1)->n);
  return 1;
}

/* v[i] (1-based; nil outside 1..#v), else a method by name. */
static int vec_index(lua_State *L) {
  vec *a = vec_check(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Number i = lua_tonumber(L, 2);
    if (i >= 1 && i <= (lua_Number)a->n && i == (lua_Number)(size_t)i)
      lua_pushnumber(L, (lua_Number)a->v[(size_t)i - 1]);
    else lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int vec_newindex(lua_State *L) {
  vec_check(L, 1);
  return luaL_error(L, "baseten.vector: a vector is read-only");
}

static int vec_tostring(lua_State *L) {
  vec *a = vec_check(L, 1);
  char buf[160];
  size_t i, shown = a->n < 4 ? a->n : 4;
  int len = snprintf(buf, sizeof buf, "baseten.vector(%d) [", (int)a->n);
  for (i = 0; i < shown; i++)
    len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%.6g", i ? ", " : "", (double)a->v[i]);
  snprintf(buf + len, sizeof buf - (size_t)len, "%s]", a->n > shown ? ", ..." : "");
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg vec_methods[] = {{"dot", vec_dot},         {"cosine", vec_cosine},
                                       {"norm", vec_norm},       {"normalized", vec_normalized},
                                       {"totable", vec_totable}, {NULL, NULL}};

static const luaL_Reg vec_funcs[] = {
    {"from", vec_from},       {"frombytes", vec_frombytes}, {"frombase64", vec_frombase64},
    {"tobytes", vec_tobytes}, {"top_k", vec_top_k},         {NULL, NULL}};

static const luaL_Reg vec_meta[] = {
    {"__newindex", vec_newindex}, {"__len", vec_len}, {"__tostring", vec_tostring}, {NULL, NULL}};

void bt_vector_open(lua_State *L) {
  luaL_newmetatable(L, VEC_MT);
  luaL_newlib(L, vec_methods);
  lua_pushcclosure(L, vec_index, 1);
  lua_setfield(L, -2, "__index");
  luaL_setfuncs(L, vec_meta, 0);
  lua_pushliteral(L, VEC_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newlib(L, vec_funcs);
  /* the methods too, so vector.dot(a, b) works as a plain function */
  luaL_setfuncs(L, vec_methods, 0);
  lua_setfield(L, -2, "vector");
}
