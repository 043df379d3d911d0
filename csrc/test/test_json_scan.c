/*
 * test_json_scan.c: unit tests for the JSON scanner (json_scan.c), built
 * with ASan + UBSan by `make test-c`:
 *
 *   cc -std=c99 -g -fsanitize=address,undefined -Icsrc \
 *     -o build/test_json_scan csrc/test/test_json_scan.c csrc/json_scan.c
 *
 * Every input is copied to the end of a mapping whose next page is
 * PROT_NONE (as picohttpparser's tests do), so a read one byte past the
 * input faults at once, sanitizers or not.
 */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS under -std=c99 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#define BT_TEST_GUARD
#include "test_util.h"

/* bt_json_scan_document over s[0, n) at the guard page; its code. */
static bt_json_error doc_n(const char *s, size_t n, unsigned flags, size_t *pos) {
  bt_json_scanner sc;
  bt_json_scan_init(&sc, guarded(s, n), n, flags);
  if (bt_json_scan_document(&sc)) return BT_JSON_OK;
  if (sc.pos > n) return (bt_json_error)-1; /* a position past the end is a bug */
  if (pos != NULL) *pos = sc.with_pos ? sc.pos : (size_t)-1;
  return sc.code;
}

static bt_json_error doc(const char *s, unsigned flags) { return doc_n(s, strlen(s), flags, NULL); }

/* ---- whole texts ---- */

static const char *const valid_docs[] = {"0",
                                         "-0",
                                         "1",
                                         "-1",
                                         "1.5",
                                         "-0.0e-0",
                                         "1E+2",
                                         "1e-2",
                                         "123456789012345678901234567890",
                                         "true",
                                         "false",
                                         "null",
                                         "\"\"",
                                         "\"a\"",
                                         " \t\r\n[ ] ",
                                         "{}",
                                         "[]",
                                         "[[[]]]",
                                         "{\"a\":{}}",
                                         "[1,2,3]",
                                         "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}",
                                         "[\"\\u00e9\\ud83d\\ude00\"]",
                                         "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                                         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
                                         "[\"\x7f\"]",
                                         "{\"a\" : 1 , \"a\" : 2}",
                                         "[-1e308,2.2250738585072014e-308,1e-400]"};

static const struct {
  const char *text;
  bt_json_error code;
  long pos; /* -1: no position */
} invalid_docs[] = {
    {"", BT_JSON_E_EMPTY, -1},
    {" \n", BT_JSON_E_EMPTY, -1},
    {"01", BT_JSON_E_NUMBER, 0},
    {"1.", BT_JSON_E_NUMBER, 0},
    {"-.5", BT_JSON_E_NUMBER, 0},
    {"[.5]", BT_JSON_E_SYNTAX, 1},
    {"+1", BT_JSON_E_SYNTAX, 0},
    {"1e", BT_JSON_E_NUMBER, 0},
    {"1e+", BT_JSON_E_NUMBER, 0},
    {"-", BT_JSON_E_NUMBER, 0},
    {"[1,-]", BT_JSON_E_NUMBER, 3},
    {"0x10", BT_JSON_E_TRAILING, 1},
    {"1.5e3.2", BT_JSON_E_NUMBER, 0},
    {"1e999", BT_JSON_E_RANGE, 0},
    {"[-1e400]", BT_JSON_E_RANGE, 1},
    {"[1,2", BT_JSON_E_SYNTAX, 4},
    {"[1,]", BT_JSON_E_SYNTAX, 3},
    {"[1 2]", BT_JSON_E_SYNTAX, 3},
    {"{\"a\"}", BT_JSON_E_SYNTAX, 4},
    {"{a:1}", BT_JSON_E_SYNTAX, 1},
    {"{\"a\":1,}", BT_JSON_E_SYNTAX, 7},
    {"{\"a\":1]", BT_JSON_E_SYNTAX, 6},
    {"[1}", BT_JSON_E_SYNTAX, 2},
    {"tru", BT_JSON_E_SYNTAX, 0},
    {"nul", BT_JSON_E_SYNTAX, 0},
    {"[1] x", BT_JSON_E_TRAILING, 4},
    {"{}{}", BT_JSON_E_TRAILING, 2},
    {"\f[1]", BT_JSON_E_BYTE, 0},
    {"\xef\xbb\xbf[1]", BT_JSON_E_BYTE, 0},
    {"\"abc", BT_JSON_E_UNTERMINATED, 0},
    {"\"\\", BT_JSON_E_UNTERMINATED, 1},
    {"\"a\nb\"", BT_JSON_E_CONTROL, 2},
    {"\"\\x41\"", BT_JSON_E_ESCAPE, 1},
    {"\"\\u12\"", BT_JSON_E_HEX, 1},
    {"\"\\uZZZZ\"", BT_JSON_E_HEX, 1},
    {"\"\\ud83d\"", BT_JSON_E_SURROGATE, 1},
    {"\"\\ude00\"", BT_JSON_E_SURROGATE, 1},
    {"\"\\ud83d\\u0041\"", BT_JSON_E_SURROGATE, 1},
    {"[\"\xc0\xaf\"]", BT_JSON_E_UTF8, 2},
    {"\"\xed\xa0\x80\"", BT_JSON_E_UTF8, 1},
    {"\"\xf4\x90\x80\x80\"", BT_JSON_E_UTF8, 1},
    {"\"\xe2\x82\"", BT_JSON_E_UTF8, 1},
};

static void test_documents(void) {
  size_t i, pos;
  char msg[160];
  for (i = 0; i < sizeof valid_docs / sizeof *valid_docs; i++) {
    ok(doc(valid_docs[i], 0) == BT_JSON_OK, "valid text", valid_docs[i]);
    ok(doc(valid_docs[i], BT_JSON_LONE_WTF8) == BT_JSON_OK, "valid text, wtf8", valid_docs[i]);
  }
  for (i = 0; i < sizeof invalid_docs / sizeof *invalid_docs; i++) {
    bt_json_error e;
    pos = 12345;
    e = doc_n(invalid_docs[i].text, strlen(invalid_docs[i].text), 0, &pos);
    snprintf(msg, sizeof msg, "'%s': code %d pos %ld, want %d at %ld", invalid_docs[i].text, (int)e,
             (long)pos, (int)invalid_docs[i].code, invalid_docs[i].pos);
    ok(e == invalid_docs[i].code && (long)pos == invalid_docs[i].pos, "invalid text", msg);
  }
  ok(doc_n("[1]\0", 4, 0, NULL) == BT_JSON_E_TRAILING, "a NUL after the value is garbage", NULL);
  ok(doc_n("\"a\0\"", 4, 0, NULL) == BT_JSON_E_CONTROL, "a raw NUL in a string", NULL);
  ok(doc_n("\"\\u0000\"", 8, 0, NULL) == BT_JSON_OK, "an escaped NUL", NULL);
}

/* Every strict prefix of a container is incomplete: each must fail, and
 * none may read past its end (the guard page). */
static void test_prefixes(void) {
  static const char *const texts[] = {
      "{\"a\":[1,2.5e-3,{\"b\":\"c\\u00e9\\ud83d\\ude00\"}],\"n\":null,\"t\":true,\"f\":false}",
      "[\"x\",-0,[],{}]"};
  size_t t, n;
  for (t = 0; t < 2; t++) {
    size_t len = strlen(texts[t]);
    ok(doc(texts[t], 0) == BT_JSON_OK, "the whole text", texts[t]);
    for (n = 0; n < len; n++)
      ok(doc_n(texts[t], n, 0, NULL) != BT_JSON_OK, "a strict prefix", texts[t]);
  }
}

static void test_depth(void) {
  static char text[2 * 1001 + 1];
  memset(text, '[', 1000);
  memset(text + 1000, ']', 1000);
  ok(doc_n(text, 2000, 0, NULL) == BT_JSON_OK, "1000 levels", NULL);
  memset(text, '[', 1001);
  memset(text + 1001, ']', 1001);
  ok(doc_n(text, 2002, 0, NULL) == BT_JSON_E_DEPTH, "1001 levels", NULL);
  memset(text, '[', sizeof text);
  ok(doc_n(text, sizeof text, 0, NULL) == BT_JSON_E_DEPTH, "unclosed, too deep", NULL);
}

/* ---- strings, escapes, lone surrogates ---- */

/* Scans the string literal s (quotes included) under flags, then unescapes
 * its body into a heap block of exactly the body's size (ASan sees any
 * overrun). Returns the decoded length, or -1 when the scan fails. */
static long string_value(const char *s, unsigned flags, char *out, size_t *lone) {
  size_t n = strlen(s), body;
  bt_json_scanner sc;
  char *buf;
  long r;
  bt_json_scan_init(&sc, guarded(s, n), n, flags);
  if (!bt_json_scan_string(&sc) || sc.pos != n) return -1;
  body = n - 2;
  buf = (char *)malloc(body ? body : 1);
  r = (long)(sc.escaped ? bt_json_unescape(sc.s + 1, body, flags, buf) : body);
  memcpy(out, sc.escaped ? buf : (const char *)sc.s + 1, (size_t)r);
  free(buf);
  if (lone != NULL) *lone = sc.lone;
  return r;
}

static int decodes_to(const char *s, unsigned flags, const char *want, size_t want_len,
                      size_t want_lone) {
  char out[256];
  size_t lone = 99;
  long r = string_value(s, flags, out, &lone);
  return r == (long)want_len && memcmp(out, want, want_len) == 0 && lone == want_lone;
}

static void test_strings(void) {
  const unsigned W = BT_JSON_LONE_WTF8, R = BT_JSON_LONE_REPLACE;
  unsigned modes[3] = {0, BT_JSON_LONE_WTF8, BT_JSON_LONE_REPLACE};
  int m;
  ok(decodes_to("\"abc\"", 0, "abc", 3, 0), "plain", NULL);
  ok(decodes_to("\"a\\u0000b\"", 0, "a\0b", 3, 0), "\\u0000 is a NUL", NULL);
  ok(decodes_to("\"\\n\\\"\\/\"", 0, "\n\"/", 3, 0), "short escapes", NULL);
  for (m = 0; m < 3; m++) {
    ok(decodes_to("\"\\ud83d\\ude00\"", modes[m], "\xf0\x9f\x98\x80", 4, 0), "a pair", NULL);
    ok(decodes_to("\"\\uDBFF\\uDFFF\"", modes[m], "\xf4\x8f\xbf\xbf", 4, 0), "the last pair", NULL);
  }
  ok(string_value("\"\\ud83d\"", 0, NULL, NULL) == -1, "lone high refused", NULL);
  ok(decodes_to("\"\\ud83d\"", W, "\xed\xa0\xbd", 3, 1), "wtf8 high", NULL);
  ok(decodes_to("\"\\ude00x\"", W, "\xed\xb8\x80x", 4, 1), "wtf8 low", NULL);
  ok(decodes_to("\"\\ud800\\ud800\\udc00\"", W, "\xed\xa0\x80\xf0\x90\x80\x80", 7, 1),
     "wtf8 high, then a pair", NULL);
  ok(decodes_to("\"\\udc00\\ud800\"", W, "\xed\xb0\x80\xed\xa0\x80", 6, 2), "wtf8 low then high",
     NULL);
  ok(decodes_to("\"\\ud83d\"", R, "\xef\xbf\xbd", 3, 1), "replace high", NULL);
  ok(decodes_to("\"a\\ud83d\\u0041\"", R,
                "a\xef\xbf\xbd"
                "A",
                5, 1),
     "replace, then A", NULL);
  ok(decodes_to("\"\\udfff\\udfff\"", R, "\xef\xbf\xbd\xef\xbf\xbd", 6, 2), "replace two", NULL);
  ok(string_value("\"\\ud83d\\u00\"", W, NULL, NULL) == -1, "a bad escape after a lone half", NULL);
  ok(string_value("\"\\ud83d\\", W, NULL, NULL) == -1, "cut after a lone half", NULL);
}

/* ---- numbers ---- */

static int number_is(const char *s, int is_int, long long i, double d) {
  bt_json_scanner sc;
  bt_json_number num;
  size_t n = strlen(s);
  bt_json_scan_init(&sc, guarded(s, n), n, 0);
  if (!bt_json_scan_number(&sc) || sc.pos != n) return 0;
  if (bt_json_number_value(sc.s, n, sc.integral, &num) != BT_JSON_OK) return 0;
  if (num.is_int != is_int) return 0;
  if (is_int) return num.i == i;
  return num.d == d && (d != 0 || 1 / num.d > 0);
}

static bt_json_error number_error(const char *s) {
  bt_json_scanner sc;
  bt_json_number num;
  size_t n = strlen(s);
  bt_json_scan_init(&sc, guarded(s, n), n, 0);
  if (!bt_json_scan_number(&sc)) return sc.code;
  return bt_json_number_value(sc.s, sc.pos, sc.integral, &num);
}

static void test_numbers(void) {
  static char longnum[2001];
  ok(number_is("0", 1, 0, 0), "0", NULL);
  ok(number_is("-0", 1, 0, 0), "-0 is the integer 0", NULL);
  ok(number_is("-0.0", 0, 0, 0.0), "-0.0 is +0.0", NULL);
  ok(number_is("-1e-400", 0, 0, 0.0), "an underflow is +0.0", NULL);
  ok(number_is("9007199254740993", 1, 9007199254740993LL, 0), "2^53 + 1 exact", NULL);
  ok(number_is("9223372036854775807", 1, 9223372036854775807LL, 0), "LLONG_MAX", NULL);
  ok(number_is("-9223372036854775808", 1, -9223372036854775807LL - 1, 0), "LLONG_MIN", NULL);
  ok(number_is("9223372036854775808", 0, 0, 9223372036854775808.0), "2^63 is a float", NULL);
  ok(number_is("-9223372036854775809", 0, 0, -9223372036854775808.0), "below LLONG_MIN", NULL);
  ok(number_is("99999999999999999999", 0, 0, 1e20), "20 digits", NULL);
  ok(number_is("0.25", 0, 0, 0.25), "0.25", NULL);
  ok(number_is("1E2", 0, 0, 100.0), "1E2 is not an integer literal", NULL);
  memset(longnum, '0', sizeof longnum - 1);
  longnum[0] = '1';
  longnum[1000] = '\0';
  ok(number_error(longnum) == BT_JSON_E_RANGE, "1 and 999 zeros is out of range", NULL);
  longnum[81] = '\0';
  ok(number_is(longnum, 0, 0, 1e80), "81 digits", NULL);
  memcpy(longnum, "0.", 2);
  longnum[1999] = '5';
  longnum[2000] = '\0';
  ok(number_is(longnum, 0, 0, 0.0), "2000 bytes that underflow to +0", NULL);
}

/* strtod reads the locale's decimal point; the scanner must not care. */
static void test_locale(void) {
  if (setlocale(LC_NUMERIC, "de_DE.UTF-8") == NULL && setlocale(LC_NUMERIC, "de_DE.utf8") == NULL) {
    printf("skip: no de_DE locale\n");
    return;
  }
  ok(number_is("0.25", 0, 0, 0.25), "0.25 under de_DE", NULL);
  ok(number_is("-1.5e3", 0, 0, -1500.0), "-1.5e3 under de_DE", NULL);
  ok(number_is("0.2500000000000000000000000000000000000000000000000000000000000000000000001", 0, 0,
               0.25),
     "a long number under de_DE", NULL);
  setlocale(LC_NUMERIC, "C");
}

/* ---- UTF-8 ---- */

static void test_utf8(void) {
  static const char *const good[] = {"\xc2\x80",         "\xdf\xbf",        "\xe0\xa0\x80",
                                     "\xed\x9f\xbf",     "\xee\x80\x80",    "\xef\xbf\xbf",
                                     "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"};
  static const char *const bad[] = {
      "\xc0\xaf",         "\xc1\xbf",         "\xe0\x80\xaf", "\xed\xa0\x80", "\xf0\x80\x80\xaf",
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80",         "\xff",         "\xe2\x82"};
  size_t i;
  for (i = 0; i < sizeof good / sizeof *good; i++) {
    size_t n = strlen(good[i]);
    ok(bt_json_utf8_len((const unsigned char *)guarded(good[i], n), n) == n, "good UTF-8", NULL);
  }
  for (i = 0; i < sizeof bad / sizeof *bad; i++) {
    size_t n = strlen(bad[i]);
    ok(bt_json_utf8_len((const unsigned char *)guarded(bad[i], n), n) == 0, "bad UTF-8", NULL);
  }
}

/* Random texts from JSON's alphabet: no crash, no read past the end, and a
 * position within the text. */
static void test_random(void) {
  static const char alphabet[] = "{}[],:\"\\u0123456789abcdefABCDEF-+.eE ntrlsx\xed\xa0\xc3\xa9";
  char text[64];
  unsigned long seed = 12345;
  int i;
  for (i = 0; i < 200000; i++) {
    size_t n, k, pos = 0;
    bt_json_error e;
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    n = (size_t)(seed >> 33) % sizeof text;
    for (k = 0; k < n; k++) {
      seed = seed * 6364136223846793005UL + 1442695040888963407UL;
      text[k] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
    }
    e = doc_n(text, n, (unsigned)(i % 3) * 2, &pos);
    if (e == (bt_json_error)-1) {
      ok(0, "random text: position past the end", NULL);
      return;
    }
  }
  ok(1, "random texts", NULL);
}

int main(void) {
  guard_init();
  test_documents();
  test_prefixes();
  test_depth();
  test_strings();
  test_numbers();
  test_locale();
  test_utf8();
  test_random();
  printf("json_scan: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
