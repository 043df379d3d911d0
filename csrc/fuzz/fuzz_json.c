/*
 * fuzz_json.c: libFuzzer target for JSON decode then encode (Lua 5.4).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4 \
 *     -o build/fuzz_json csrc/fuzz/fuzz_json.c csrc/json_*.c csrc/buf.c -llua5.4
 *   ./build/fuzz_json -max_total_time=180 csrc/fuzz/corpus/json
 *
 * Oracles, for every input that decodes to a value V1:
 *   1. V1 encodes (whatever decode accepts, encode must accept): enc1.
 *   2. enc1 decodes to V2, and V2 equals V1 structurally: same types, same
 *      integer/float subtypes, same numbers and strings, same array marks,
 *      same key sets.
 *   3. V2 encodes to enc2 of the same length as enc1; and byte-identical to
 *      enc1 when no object in V1 has two or more members.
 * Why not "enc1 == enc2" always: object members come out in Lua's iteration
 * order, and V1 and V2 are different tables whose keys were inserted in
 * different orders (V1 in source order, V2 in V1's iteration order). Lua's
 * hash placement of colliding keys depends on insertion order, so the two
 * orders may differ although both encodings are right. Structural equality
 * is insensitive to that order, the length check still catches any change
 * in the bytes of a member, and with at most one member per object the
 * order cannot differ, so there bytes must match exactly.
 * 4. The raw input as a Lua string: if encode accepts it (valid UTF-8), the
 *    result decodes back to the identical string.
 * 5. A failed decode writes a NUL-terminated message, even into a 5-byte
 *    buffer (heap-allocated so ASan sees any overrun).
 * 6. Sparse arrays: a decoded array with its nulls made holes encodes only
 *    when its last value's index is at most 10 or twice its count of
 *    values (the default sparse_ratio), and then decodes back to the array
 *    cut after that value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bt.h"

static lua_State *fz_L;
static int fz_encode_ref;

static void fz_die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static void fz_setup(void) {
  fz_L = luaL_newstate();
  if (fz_L == NULL) fz_die("luaL_newstate failed", NULL);
  lua_newtable(fz_L);
  bt_json_open(fz_L);
  lua_getfield(fz_L, -1, "json");
  lua_getfield(fz_L, -1, "encode");
  fz_encode_ref = luaL_ref(fz_L, LUA_REGISTRYINDEX);
  lua_settop(fz_L, 0);
}

#include "fz_same.h"

/* encode(value at idx) under pcall; pushes the string or returns 0. */
static int fz_encode(lua_State *L, int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, fz_encode_ref);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != 0) return 0;
  return 1;
}

static void fz_check_failure_message(const uint8_t *data, size_t size, const char *err) {
  char *small = (char *)malloc(5);
  if (err[0] == '\0') fz_die("decode failed without a message", NULL);
  if (small == NULL) return;
  if (bt_json_push_decoded(fz_L, (const char *)data, size, 0, NULL, small, 5))
    fz_die("decode is not deterministic", NULL);
  if (strlen(small) > 4) fz_die("error message overran its buffer", NULL);
  free(small);
}

static void fz_roundtrip(lua_State *L) {
  size_t n1, n2;
  const char *enc1, *enc2;
  char err[128];
  int multikey = 0;
  if (!fz_encode(L, 1)) fz_die("a decoded value does not encode", lua_tostring(L, -1));
  enc1 = lua_tolstring(L, 2, &n1);
  if (!bt_json_push_decoded(L, enc1, n1, 0, NULL, err, sizeof err))
    fz_die("an encoding does not decode", err);
  if (!fz_same(L, 1, 3, &multikey)) fz_die("decode(encode(v)) differs from v", enc1);
  if (!fz_encode(L, 3)) fz_die("a re-decoded value does not encode", lua_tostring(L, -1));
  enc2 = lua_tolstring(L, 4, &n2);
  if (n1 != n2) fz_die("re-encoding changed the length", enc1);
  if (!multikey && memcmp(enc1, enc2, n1) != 0) fz_die("re-encoding changed the bytes", enc1);
}

/* Table at idx with its json.null elements made holes, pushed; *last gets
 * the index of its last value, *count how many values it has. */
static void fz_holed_copy(lua_State *L, int idx, long *last, long *count) {
  long i, n = (long)lua_rawlen(L, idx);
  lua_createtable(L, 0, 0);
  lua_getmetatable(L, idx);
  lua_setmetatable(L, -2);
  *last = *count = 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i);
    if (lua_touserdata(L, -1) == NULL && lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
      lua_pop(L, 1);
      continue;
    }
    lua_rawseti(L, -2, (lua_Integer)i);
    *last = i;
    (*count)++;
  }
}

/* Oracle 6 for the decoded array at index 1 (see the top). */
static void fz_sparse(lua_State *L) {
  long last, count, i;
  int multikey = 0, ok;
  size_t n;
  const char *enc;
  char err[128];
  if (lua_type(L, 1) != LUA_TTABLE || !lua_getmetatable(L, 1)) return;
  lua_pop(L, 1);
  fz_holed_copy(L, 1, &last, &count);
  ok = fz_encode(L, lua_gettop(L));
  if (last > 10 && (double)last > 2.0 * (double)count) {
    if (ok || !strstr(lua_tostring(L, -1), "sparse"))
      fz_die("a sparse array was not refused", NULL);
    return;
  }
  if (!ok) fz_die("an array with holes does not encode", lua_tostring(L, -1));
  enc = lua_tolstring(L, -1, &n);
  if (!bt_json_push_decoded(L, enc, n, 0, NULL, err, sizeof err))
    fz_die("an array with holes does not decode", err);
  if ((long)lua_rawlen(L, -1) != last) fz_die("an array with holes changed length", enc);
  for (i = 1; i <= last; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i);
    lua_rawgeti(L, -2, (lua_Integer)i);
    if (!fz_same(L, lua_gettop(L) - 1, lua_gettop(L), &multikey))
      fz_die("an array with holes changed a value", enc);
    lua_pop(L, 2);
  }
}

/* The input as a Lua string: encode accepts it only as valid UTF-8. */
static void fz_string(lua_State *L, const uint8_t *data, size_t size) {
  char err[128];
  size_t n;
  const char *enc;
  lua_pushlstring(L, (const char *)data, size);
  if (!fz_encode(L, lua_gettop(L))) return;
  enc = lua_tolstring(L, -1, &n);
  if (!bt_json_push_decoded(L, enc, n, 0, NULL, err, sizeof err))
    fz_die("an encoded string does not decode", err);
  if (!lua_rawequal(L, -1, -3)) fz_die("a string did not survive encode/decode", enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[128];
  if (fz_L == NULL) fz_setup();
  lua_settop(fz_L, 0);
  if (bt_json_push_decoded(fz_L, (const char *)data, size, 0, NULL, err, sizeof err)) {
    fz_roundtrip(fz_L);
    lua_settop(fz_L, 1);
    fz_sparse(fz_L);
  } else {
    fz_check_failure_message(data, size, err);
  }
  lua_settop(fz_L, 0);
  fz_string(fz_L, data, size);
  lua_settop(fz_L, 0);
  return 0;
}
