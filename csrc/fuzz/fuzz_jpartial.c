/*
 * fuzz_jpartial.c: libFuzzer target for the resumable JSON parser
 * (jpartial.c) and json.partial (jpartial_lua.c), on Lua 5.4.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4 \
 *     -o build/fuzz_jpartial csrc/fuzz/fuzz_jpartial.c csrc/[a-z]*.c -llua5.4 -lcurl
 *
 * (the whole core: core.c registers json.partial)
 *
 * The first byte picks the lone-surrogate rule and seeds the splits; the
 * rest is the text. Oracles:
 *   1. jpartial_oracle.h: the prefixes fed whole agree with the whole text
 *      and with the decoder's scanner (code and offset); 1-byte pieces and
 *      two random multi-way splits agree with the prefixes.
 *   2. json.partial fed in random pieces: result() equals json.decode of
 *      the text with drop_nulls (same types, integer subtypes, array marks,
 *      keys), or both fail with the same message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "../bt.h"
#include "../jpartial.h"
#include "../test/jpartial_oracle.h"

int luaopen_baseten_core(lua_State *L);

static lua_State *fz_L;

static void fz_die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_jpartial: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

#include "fz_same.h"

static unsigned long fz_rng;
static size_t fz_rnd(size_t n) {
  fz_rng = fz_rng * 6364136223846793005ul + 1442695040888963407ul;
  return (size_t)((fz_rng >> 33) % n);
}

static void fz_oracle(const char *s, size_t n, unsigned flags) {
  jo_ref r;
  const char *why;
  size_t *cuts = malloc((n + 2) * sizeof *cuts), k, at;
  int i, j;
  if (cuts == NULL) return;
  jo_ref_make(&r, s, n, flags);
  why = jo_check_ref(&r, s, n, flags);
  for (k = 0; k < n; k++) cuts[k] = k + 1;
  if (why == NULL && n > 0) why = jo_check_split(&r, s, cuts, (int)n, flags);
  for (i = 0; why == NULL && i < 2; i++) {
    for (at = 0, j = 0; at < n; cuts[j++] = at) {
      at += 1 + fz_rnd(i ? 4 : 40);
      if (at > n) at = n;
    }
    if (j > 0) why = jo_check_split(&r, s, cuts, j, flags);
  }
  jo_ref_free(&r);
  free(cuts);
  if (why != NULL) fz_die(why, NULL);
}

/* json.partial in random pieces against json.decode. */
static void fz_lua(const char *s, size_t n, const char *lone) {
  lua_State *L = fz_L;
  size_t at = 0;
  const char *e1, *e2;
  int multikey = 0; /* fz_same's report on key order: not needed here */
  lua_settop(L, 0);
  lua_getglobal(L, "json"); /* 1 */
  lua_createtable(L, 0, 2); /* 2: the options of both */
  lua_pushboolean(L, 1);
  lua_setfield(L, 2, "drop_nulls");
  lua_pushstring(L, lone);
  lua_setfield(L, 2, "lone_surrogates");
  lua_getfield(L, 1, "partial");
  lua_pushvalue(L, 2);
  if (lua_pcall(L, 1, 1, 0) != 0) fz_die("json.partial raised", lua_tostring(L, -1));
  while (at < n) { /* 3: the parser */
    size_t k = 1 + fz_rnd(16);
    if (k > n - at) k = n - at;
    lua_getfield(L, 3, "feed");
    lua_pushvalue(L, 3);
    lua_pushlstring(L, s + at, k);
    if (lua_pcall(L, 2, 2, 0) != 0) fz_die("feed raised", lua_tostring(L, -1));
    lua_pop(L, 2);
    at += k;
  }
  lua_getfield(L, 3, "result");
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 1, 2, 0) != 0) fz_die("result raised", lua_tostring(L, -1)); /* 4, 5 */
  lua_getfield(L, 1, "decode");
  lua_pushlstring(L, s, n);
  lua_pushvalue(L, 2);
  if (lua_pcall(L, 2, 2, 0) != 0) fz_die("decode raised", lua_tostring(L, -1)); /* 6, 7 */
  if (lua_isnil(L, 4) != lua_isnil(L, 6)) fz_die("result and decode disagree on success", NULL);
  if (!lua_isnil(L, 4) && !fz_same(L, 4, 6, &multikey)) fz_die("result differs from decode", NULL);
  e1 = lua_tostring(L, 5);
  e2 = lua_tostring(L, 7);
  /* the decoder names no offset for a depth error; partial does */
  if (lua_isnil(L, 4) && strstr(e2, "too deep") == NULL && strcmp(e1, e2) != 0)
    fz_die("result's error differs from decode's", e1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const unsigned flags[] = {0, BT_JSON_LONE_WTF8, BT_JSON_LONE_REPLACE};
  static const char *const lone[] = {"error", "wtf8", "replace"};
  unsigned pick;
  if (fz_L == NULL) {
    fz_L = luaL_newstate();
    if (fz_L == NULL) fz_die("luaL_newstate failed", NULL);
    luaL_openlibs(fz_L);
    luaL_requiref(fz_L, "baseten.core", luaopen_baseten_core, 0);
    lua_getfield(fz_L, -1, "json");
    lua_setglobal(fz_L, "json");
    lua_settop(fz_L, 0);
  }
  if (size < 1) return 0;
  pick = data[0] % 3;
  fz_rng = data[0];
  fz_oracle((const char *)data + 1, size - 1, flags[pick]);
  fz_lua((const char *)data + 1, size - 1, lone[pick]);
  lua_settop(fz_L, 0);
  lua_gc(fz_L, LUA_GCSTEP, 0);
  return 0;
}
