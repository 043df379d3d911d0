/*
 * fuzz_json_diff.c: the core's JSON decoder against cJSON, the reference
 * (libFuzzer, Lua 5.4, libcjson).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4 -Icsrc \
 *     -o build/fuzz_json_diff csrc/fuzz/fuzz_json_diff.c csrc/json_dec.c \
 *     csrc/json_enc.c csrc/json_mod.c csrc/json_scan.c csrc/buf.c -llua5.4 -lcjson
 *
 * On every input both must agree on accept or reject, and when both accept,
 * on the value. The deliberate differences are written out below; each is
 * checked where it is claimed, never assumed:
 *
 *   D1 numbers: ours follow JSON's grammar ("01", "1.", "-01" are refused;
 *      cJSON hands them to strtod), refuse values beyond a double (cJSON
 *      gives inf) and take any length (cJSON reads at most 63 bytes of a
 *      number, then fails on the rest).
 *   D2 exact integers: ours hold an integer literal that fits in 64 bits
 *      exactly (cJSON: a double), hold integral values within 2^53 as
 *      integers, and a zero has no sign. Compared after rounding to double.
 *   D3 strings: ours refuse ill-formed UTF-8 and raw control characters;
 *      cJSON passes the bytes through.
 *   D4 whitespace: ours take JSON's four; cJSON skips any byte <= 0x20 and
 *      a leading UTF-8 byte order mark.
 *   D5 \u with a non-hex digit: cJSON reads it as 0; ours refuse it.
 *   D6 cJSON strings are C strings: \u0000 cuts a string or a name.
 *      Strings compare up to the first NUL; an object with a NUL in a name
 *      compares by accept/reject only.
 *   D7 repeated names: cJSON keeps every member, ours the last (with
 *      BT_JSON_DROP_NULLS, the last that is not null).
 *
 * Also: the validator (bt_json_scan_document) and the decoder agree on
 * every input, message and position alike; and a decode with
 * BT_JSON_DROP_NULLS equals cJSON's tree without its null members.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../bt.h"
#include "../json.h"

static lua_State *fz_L;

static void fz_die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_json_diff: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_num_byte(unsigned char c) {
  return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* ---- the independent checks behind D1, D3, D4, D5 ---- */

/* JSON's number grammar over the whole run of number bytes at p, written
 * as a plain state machine (not the scanner's code). */
static int ref_number_ok(const unsigned char *p, size_t n) {
  size_t i = 0, end = 0;
  int state = 0; /* 0 start, 1 sign, 2 zero, 3 int, 4 dot, 5 frac, 6 e, 7 esign, 8 exp */
  while (end < n && is_num_byte(p[end])) end++;
  for (i = 0; i < end; i++) {
    unsigned char c = p[i];
    if (state == 0 && c == '-') state = 1;
    else if ((state == 0 || state == 1) && c == '0') state = 2;
    else if ((state == 0 || state == 1) && is_digit(c)) state = 3;
    else if (state == 3 && is_digit(c)) state = 3;
    else if ((state == 2 || state == 3) && c == '.') state = 4;
    else if ((state == 4 || state == 5) && is_digit(c)) state = 5;
    else if ((state == 2 || state == 3 || state == 5) && (c == 'e' || c == 'E')) state = 6;
    else if (state == 6 && (c == '+' || c == '-')) state = 7;
    else if ((state == 6 || state == 7 || state == 8) && is_digit(c)) state = 8;
    else return 0;
  }
  return state == 2 || state == 3 || state == 5 || state == 8;
}

static int ref_number_inf(const unsigned char *p, size_t n) {
  char tmp[4096];
  size_t end = 0;
  while (end < n && end < sizeof tmp - 1 && is_num_byte(p[end])) end++;
  memcpy(tmp, p, end);
  tmp[end] = '\0';
  return isinf(strtod(tmp, NULL));
}

/* Well-formed UTF-8 at p, by decoding the code point (not by the
 * scanner's table of second-byte ranges). */
static int ref_utf8_ok(const unsigned char *p, size_t n) {
  unsigned long cp, min;
  size_t len, i;
  if (p[0] < 0x80) return 1;
  if ((p[0] & 0xE0) == 0xC0) len = 2, cp = p[0] & 0x1F, min = 0x80;
  else if ((p[0] & 0xF0) == 0xE0) len = 3, cp = p[0] & 0x0F, min = 0x800;
  else if ((p[0] & 0xF8) == 0xF0) len = 4, cp = p[0] & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static int is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ---- accept/reject ---- */

/* Ours refused at sc->pos and cJSON accepted: 1 if a deliberate difference
 * explains it. */
static int fz_excused_refusal(const uint8_t *d, size_t n, const bt_json_scanner *sc) {
  size_t p = sc->pos;
  if (!sc->with_pos || p >= n) return 0;
  if (p == 0 && n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF) return 1; /* D4 */
  switch (sc->code) {
  case BT_JSON_E_NUMBER: return !ref_number_ok(d + p, n - p); /* D1 */
  case BT_JSON_E_RANGE: return ref_number_inf(d + p, n - p);  /* D1 */
  case BT_JSON_E_UTF8: return !ref_utf8_ok(d + p, n - p);     /* D3 */
  case BT_JSON_E_CONTROL: return d[p] < 0x20;                 /* D3 */
  case BT_JSON_E_HEX:                                         /* D5 */
    return p + 6 <= n && d[p + 1] == 'u' &&
           !(is_hex(d[p + 2]) && is_hex(d[p + 3]) && is_hex(d[p + 4]) && is_hex(d[p + 5]));
  case BT_JSON_E_BYTE:
  case BT_JSON_E_SYNTAX:
  case BT_JSON_E_TRAILING: return d[p] <= 0x20 && !is_space(d[p]); /* D4 */
  default: return 0;
  }
}

/* Ours accepted and cJSON refused: 1 if a number is longer than cJSON's
 * 63 bytes (D1). The text is valid JSON, so strings are easy to skip. */
static int fz_has_long_number(const uint8_t *d, size_t n) {
  size_t i, run = 0;
  int in_string = 0;
  for (i = 0; i < n; i++) {
    if (in_string) {
      if (d[i] == '\\') i++;
      else if (d[i] == '"') in_string = 0;
      continue;
    }
    if (d[i] == '"') in_string = 1;
    run = is_num_byte(d[i]) ? run + 1 : 0;
    if (run > 63) return 1;
  }
  return 0;
}

/* ---- values ---- */

static int fz_same(lua_State *L, int idx, const cJSON *c, int drop);

static int fz_same_number(lua_State *L, int idx, const cJSON *c) {
  double ours, want = c->valuedouble;
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  ours = lua_isinteger(L, idx) ? (double)lua_tointeger(L, idx) : (double)lua_tonumber(L, idx);
  if (ours != want) return 0; /* D2: an exact integer rounds to cJSON's double */
  if (!lua_isinteger(L, idx) && ours == 0 && signbit(ours)) return 0;
  if (!lua_isinteger(L, idx) && fabs(want) < BT_EXACT_INT && want == floor(want)) return 0;
  return 1;
}

static int fz_same_string(lua_State *L, int idx, const char *c) {
  size_t n, cut;
  const char *s;
  const char *nul;
  if (lua_type(L, idx) != LUA_TSTRING) return 0;
  s = lua_tolstring(L, idx, &n);
  nul = (const char *)memchr(s, '\0', n);
  cut = nul ? (size_t)(nul - s) : n; /* D6 */
  return strlen(c) == cut && memcmp(s, c, cut) == 0;
}

static int fz_same_array(lua_State *L, int idx, const cJSON *c, int drop) {
  const cJSON *e;
  int i = 0, same = 1;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, BT_JSON_ARRAY_MT);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!same || (int)lua_rawlen(L, idx) != cJSON_GetArraySize(c)) return 0;
  for (e = c->child; e != NULL && same; e = e->next) {
    lua_rawgeti(L, idx, ++i);
    same = fz_same(L, lua_gettop(L), e, drop);
    lua_pop(L, 1);
  }
  return same;
}

/* The member that decides the value of `name` (D7), or NULL: none, or
 * (dropping nulls) only null ones. */
static const cJSON *fz_winner(const cJSON *obj, const char *name, int drop) {
  const cJSON *e, *w = NULL;
  for (e = obj->child; e != NULL; e = e->next)
    if (strcmp(e->string, name) == 0 && !(drop && cJSON_IsNull(e))) w = e;
  return w;
}

static int fz_key_has_nul(lua_State *L, int idx, long *count) {
  int nul = 0;
  *count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t n;
    const char *k = lua_tolstring(L, -2, &n);
    if (memchr(k, '\0', n) != NULL) nul = 1;
    (*count)++;
    lua_pop(L, 1);
  }
  return nul;
}

static int fz_same_object(lua_State *L, int idx, const cJSON *c, int drop) {
  const cJSON *e;
  long keys, names = 0;
  if (lua_getmetatable(L, idx)) return 0;
  if (fz_key_has_nul(L, idx, &keys)) return 1; /* D6 */
  for (e = c->child; e != NULL; e = e->next) {
    const cJSON *w = fz_winner(c, e->string, drop);
    int same;
    if (w != e) {
      if (w == NULL) {
        lua_getfield(L, idx, e->string);
        same = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!same) return 0;
      }
      continue;
    }
    names++;
    lua_getfield(L, idx, e->string);
    same = fz_same(L, lua_gettop(L), e, drop);
    lua_pop(L, 1);
    if (!same) return 0;
  }
  return names == keys;
}

static int fz_same(lua_State *L, int idx, const cJSON *c, int drop) {
  if (!lua_checkstack(L, 8)) fz_die("lua_checkstack failed", NULL);
  switch (c->type & 0xFF) {
  case cJSON_NULL: return lua_type(L, idx) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, idx);
  case cJSON_True: return lua_type(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, idx);
  case cJSON_False: return lua_type(L, idx) == LUA_TBOOLEAN && !lua_toboolean(L, idx);
  case cJSON_Number: return fz_same_number(L, idx, c);
  case cJSON_String: return fz_same_string(L, idx, c->valuestring);
  case cJSON_Array: return lua_type(L, idx) == LUA_TTABLE && fz_same_array(L, idx, c, drop);
  case cJSON_Object: return lua_type(L, idx) == LUA_TTABLE && fz_same_object(L, idx, c, drop);
  default: return 0;
  }
}

/* ---- the run ---- */

static cJSON *fz_cjson(const uint8_t *data, size_t size) {
  char *z = (char *)malloc(size + 1);
  cJSON *c;
  if (z == NULL) fz_die("malloc failed", NULL);
  if (size) memcpy(z, data, size);
  z[size] = '\0';
  c = cJSON_ParseWithLengthOpts(z, size + 1, NULL, 1);
  free(z);
  return c;
}

/* The validator's verdict, as the decoder words it. */
static int fz_validate(const uint8_t *data, size_t size, bt_json_scanner *sc, char *msg,
                       size_t msglen) {
  const char *m;
  bt_json_scan_init(sc, (const char *)data, size, 0);
  if (bt_json_scan_document(sc)) return 1;
  m = bt_json_error_message(sc->code);
  if (sc->with_pos) snprintf(msg, msglen, "%s at byte %lu", m, (unsigned long)sc->pos + 1);
  else snprintf(msg, msglen, "%s", m);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[128], msg[128];
  bt_json_scanner sc;
  int ours, valid, drop;
  cJSON *ref;
  if (fz_L == NULL) {
    fz_L = luaL_newstate();
    lua_newtable(fz_L);
    bt_json_open(fz_L);
  }
  lua_settop(fz_L, 1);
  valid = fz_validate(data, size, &sc, msg, sizeof msg);
  ours = bt_json_push_decoded(fz_L, (const char *)data, size, 0, NULL, err, sizeof err);
  if (ours != valid) fz_die("the validator and the decoder disagree", ours ? msg : err);
  if (!ours && strcmp(err, msg) != 0) fz_die("the validator and the decoder differ", msg);
  ref = fz_cjson(data, size);
  if (!ours && ref != NULL && !fz_excused_refusal(data, size, &sc))
    fz_die("ours refuses what cJSON accepts", err);
  if (ours && ref == NULL && !fz_has_long_number(data, size))
    fz_die("ours accepts what cJSON refuses", NULL);
  for (drop = 0; ours && ref != NULL && drop < 2; drop++) {
    lua_settop(fz_L, 1);
    if (!bt_json_push_decoded(fz_L, (const char *)data, size, drop ? BT_JSON_DROP_NULLS : 0, NULL,
                              err, sizeof err))
      fz_die("decode is not deterministic", err);
    if (!fz_same(fz_L, 2, ref, drop))
      fz_die(drop ? "values differ (drop_nulls)" : "values differ", NULL);
  }
  cJSON_Delete(ref);
  lua_settop(fz_L, 1);
  return 0;
}
