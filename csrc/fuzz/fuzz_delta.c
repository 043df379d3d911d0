/*
 * fuzz_delta.c: the text fast path's extractor (delta.c) against the full
 * decoder it stands in for (libFuzzer, Lua 5.4).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4 -Icsrc \
 *     -o build/fuzz_delta csrc/fuzz/fuzz_delta.c csrc/delta.c csrc/json_dec.c \
 *     csrc/json_enc.c csrc/json_scan.c csrc/buf.c -llua5.4
 *
 * Whenever the extractor takes a chunk (and its usage span decodes, as
 * ldelta.c asks), the whole text must decode with the stream's flags
 * (DROP_NULLS | LONE_WTF8) without a lone surrogate, to a table that:
 *   - has no `error`, and `choices` absent or an array of at most one
 *     table, which the extractor's `choice` says;
 *   - in that choice: `index` absent or the integer 0, no `message`, no
 *     `logprobs`, `delta` absent or a table whose `tool_calls` is absent
 *     or empty;
 *   - holds, in each field the extractor names, the value the span decodes
 *     to (strings, the number, the usage table, compared deeply), and
 *     nothing in a field it says is absent.
 * Those are all the fields baseten.stream and baseten.accumulate read of a
 * chunk, so the two paths cannot differ. When the extractor falls back,
 * nothing is claimed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bt.h"
#include "../delta.h"

#define FLAGS (BT_JSON_DROP_NULLS | BT_JSON_LONE_WTF8)

static lua_State *fz_L;

static void fz_die(const char *what, const uint8_t *data, size_t size) {
  fprintf(stderr, "fuzz_delta: %s: %.*s\n", what, (int)(size > 400 ? 400 : size),
          (const char *)data);
  abort();
}

static int fz_same(lua_State *L, int a, int b);

static int fz_same_table(lua_State *L, int a, int b) {
  long na = 0, nb = 0;
  if (!lua_checkstack(L, 8)) abort();
  lua_pushnil(L);
  while (lua_next(L, a)) {
    int top = lua_gettop(L);
    na++;
    lua_pushvalue(L, top - 1);
    lua_rawget(L, b);
    if (!fz_same(L, top, top + 1)) return 0;
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {
    nb++;
    lua_pop(L, 1);
  }
  return na == nb;
}

static int fz_same(lua_State *L, int a, int b) {
  int t = lua_type(L, a);
  if (t != lua_type(L, b)) return 0;
  if (t == LUA_TNUMBER && lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
  if (t == LUA_TTABLE) return fz_same_table(L, lua_absindex(L, a), lua_absindex(L, b));
  return lua_rawequal(L, a, b);
}

/* Pushes field `key` of the table at t (nil when t is not a table). */
static int fz_field(lua_State *L, int t, const char *key) {
  if (lua_type(L, t) != LUA_TTABLE) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, t, key);
}

/* Field k of the extraction, decoded from its span as ldelta.c does, must
 * equal the value at v (absent: nil). Returns 0 when the span does not
 * decode (only a usage span may: the binding then falls back). */
static int fz_check_field(lua_State *L, const char *s, const bt_delta *d, int k, int v,
                          const uint8_t *data, size_t size) {
  char err[64];
  size_t lone = 0;
  int same;
  if (d->f[k].len == 0) {
    if (!lua_isnil(L, v)) fz_die("a field said absent is there", data, size);
    return 1;
  }
  if (!bt_json_push_decoded(L, s + d->f[k].off, d->f[k].len, FLAGS, &lone, err, sizeof err)) {
    if (k != BT_D_USAGE) fz_die("a string or number span does not decode", data, size);
    return 0;
  }
  if (lone != 0) fz_die("a lone surrogate in a taken chunk", data, size);
  if (k != BT_D_USAGE && k != BT_D_CREATED && lua_type(L, -1) != LUA_TSTRING)
    fz_die("a text field is not a string", data, size);
  same = fz_same(L, -1, v);
  lua_pop(L, 1);
  if (!same) fz_die("a field differs from the full decode", data, size);
  return 1;
}

/* The choice at c (a table or nil) and its delta, against the extraction. */
static void fz_check_choice(lua_State *L, const char *s, const bt_delta *d, int c,
                            const uint8_t *data, size_t size) {
  static const char *const names[] = {"content", "reasoning_content", "reasoning", "refusal"};
  int delta, k;
  if (fz_field(L, c, "index") != LUA_TNIL && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 0))
    fz_die("a taken choice has an index other than 0", data, size);
  if (fz_field(L, c, "message") != LUA_TNIL) fz_die("a taken choice has a message", data, size);
  if (fz_field(L, c, "logprobs") != LUA_TNIL) fz_die("a taken choice has logprobs", data, size);
  fz_field(L, c, "finish_reason");
  fz_check_field(L, s, d, BT_D_FINISH, lua_gettop(L), data, size);
  lua_pop(L, 4);
  delta = lua_gettop(L) + 1;
  k = fz_field(L, c, "delta");
  if (k != LUA_TNIL && k != LUA_TTABLE) fz_die("a taken delta is not a table", data, size);
  if (fz_field(L, delta, "tool_calls") != LUA_TNIL && lua_rawlen(L, -1) != 0)
    fz_die("a taken delta has tool calls", data, size);
  lua_pop(L, 1);
  for (k = 0; k < 4; k++) {
    fz_field(L, delta, names[k]);
    fz_check_field(L, s, d, BT_D_CONTENT + k, lua_gettop(L), data, size);
    lua_pop(L, 1);
  }
  fz_field(L, delta, "role");
  fz_check_field(L, s, d, BT_D_ROLE, lua_gettop(L), data, size);
  lua_pop(L, 2);
}

/* The span of field k decodes (only a usage span may not: ldelta.c then
 * falls back, and so nothing is claimed). */
static int fz_span_decodes(lua_State *L, const char *s, const bt_delta *d, int k) {
  char err[64];
  int top = lua_gettop(L), r;
  if (d->f[k].len == 0) return 1;
  r = bt_json_push_decoded(L, s + d->f[k].off, d->f[k].len, FLAGS, NULL, err, sizeof err);
  lua_settop(L, top);
  return r;
}

/* The number of entries of the table at t. */
static long fz_count(lua_State *L, int t) {
  long n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* A taken chunk: the full decode must agree (see the top of this file). */
static void fz_check_taken(lua_State *L, const char *s, size_t n, const bt_delta *d) {
  static const struct {
    const char *name;
    int k;
  } top[] = {{"id", BT_D_ID},
             {"model", BT_D_MODEL},
             {"created", BT_D_CREATED},
             {"system_fingerprint", BT_D_FINGERPRINT},
             {"usage", BT_D_USAGE}};
  const uint8_t *data = (const uint8_t *)s;
  char err[128];
  size_t lone = 0, i;
  int t;
  lua_settop(L, 0);
  if (!fz_span_decodes(L, s, d, BT_D_USAGE)) return;
  if (!bt_json_push_decoded(L, s, n, FLAGS, &lone, err, sizeof err))
    fz_die("a taken chunk does not decode", data, n);
  if (lone != 0) fz_die("a taken chunk has a lone surrogate", data, n);
  if (lua_type(L, 1) != LUA_TTABLE) fz_die("a taken chunk is not an object", data, n);
  if (fz_field(L, 1, "error") != LUA_TNIL) fz_die("a taken chunk has an error", data, n);
  lua_pop(L, 1);
  for (i = 0; i < sizeof top / sizeof top[0]; i++) {
    fz_field(L, 1, top[i].name);
    fz_check_field(L, s, d, top[i].k, 2, data, n);
    lua_pop(L, 1);
  }
  t = fz_field(L, 1, "choices"); /* slot 2 */
  if (t == LUA_TNIL) {
    if (d->choice) fz_die("a choice where the decode has none", data, n);
    return;
  }
  if (t != LUA_TTABLE) fz_die("taken choices are not an array", data, n);
  if (fz_count(L, 2) != (long)lua_rawlen(L, 2) || lua_rawlen(L, 2) > 1)
    fz_die("taken choices are not an array of at most one", data, n);
  if ((int)lua_rawlen(L, 2) != d->choice) fz_die("the choice count differs", data, n);
  if (!d->choice) return;
  lua_rawgeti(L, 2, 1); /* slot 3 */
  if (lua_type(L, 3) != LUA_TTABLE) fz_die("a taken choice is not an object", data, n);
  fz_check_choice(L, s, d, 3, data, n);
}

static void fz_setup(void) {
  fz_L = luaL_newstate();
  if (fz_L == NULL) abort();
  lua_newtable(fz_L);
  bt_json_open(fz_L); /* the array/object mark metatables the decoder sets */
  lua_settop(fz_L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bt_delta d;
  if (fz_L == NULL) fz_setup();
  if (bt_delta_extract((const char *)data, size, &d))
    fz_check_taken(fz_L, (const char *)data, size, &d);
  lua_settop(fz_L, 0);
  return 0;
}
