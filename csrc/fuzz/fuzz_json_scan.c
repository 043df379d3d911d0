/*
 * fuzz_json_scan.c: libFuzzer target for the JSON scanner alone
 * (json_scan.c; no Lua).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     -o build/fuzz_json_scan csrc/fuzz/fuzz_json_scan.c csrc/json_scan.c
 *
 * libFuzzer hands over a heap block of exactly `size` bytes, so ASan sees
 * any read past the input. Oracles:
 *   1. The whole-text validator, in each lone-surrogate mode, fails only
 *      with a position inside the input; what the strict mode accepts both
 *      lenient modes accept, and the two lenient modes agree.
 *   2. An accepted text stays accepted inside whitespace and inside [ ]
 *      (unless that is one level too deep), and is refused with a byte
 *      after it.
 *   3. The input as a string body ("input"): when the scanner accepts it,
 *      unescaping fits in the body's size (an exact heap block), gives
 *      valid UTF-8 in the strict and replace modes, and in wtf8 mode valid
 *      UTF-8 but for exactly sc.lone 3-byte surrogates.
 *   4. The input as a number: when the scanner accepts it whole, its value
 *      matches strtoll (an integer literal that fits) or strtod (else), and
 *      a zero is +0.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../json.h"

static const unsigned modes[3] = {0, BT_JSON_LONE_WTF8, BT_JSON_LONE_REPLACE};

static void fz_die(const char *what) {
  fprintf(stderr, "fuzz_json_scan: %s\n", what);
  abort();
}

static int fz_doc(const uint8_t *data, size_t size, unsigned flags, bt_json_error *code) {
  bt_json_scanner sc;
  int r;
  bt_json_scan_init(&sc, (const char *)data, size, flags);
  r = bt_json_scan_document(&sc);
  if (!r && sc.with_pos && sc.pos > size) fz_die("failure position past the end");
  if (!r && sc.code == BT_JSON_OK) fz_die("failure without a code");
  if (code != NULL) *code = r ? BT_JSON_OK : sc.code;
  return r;
}

/* data wrapped as pre + data + post, in an exact heap block. */
static int fz_wrapped(const uint8_t *data, size_t size, const char *pre, const char *post,
                      bt_json_error *code) {
  size_t a = strlen(pre), b = strlen(post);
  uint8_t *w = (uint8_t *)malloc(a + size + b);
  int r;
  if (w == NULL) return -1;
  memcpy(w, pre, a);
  if (size) memcpy(w + a, data, size);
  memcpy(w + a + size, post, b);
  r = fz_doc(w, a + size + b, 0, code);
  free(w);
  return r;
}

static void fz_documents(const uint8_t *data, size_t size) {
  int acc[3], i;
  bt_json_error code;
  for (i = 0; i < 3; i++) acc[i] = fz_doc(data, size, modes[i], NULL);
  if (acc[0] && !(acc[1] && acc[2])) fz_die("a lenient mode refuses what strict accepts");
  if (acc[1] != acc[2]) fz_die("the two lenient modes disagree");
  if (!acc[0]) return;
  if (fz_wrapped(data, size, " \t", "\r\n ", &code) == 0) fz_die("space around refused");
  if (fz_wrapped(data, size, "[", "]", &code) == 0 && code != BT_JSON_E_DEPTH)
    fz_die("[text] refused");
  if (fz_wrapped(data, size, "", "x", &code) == 1) fz_die("text then x accepted");
}

/* Valid UTF-8 but for 3-byte surrogates (ED A0..BF xx), which are counted. */
static int fz_utf8(const unsigned char *p, size_t n, size_t *surrogates) {
  size_t i = 0;
  *surrogates = 0;
  while (i < n) {
    size_t k = bt_json_utf8_len(p + i, n - i);
    if (k == 0 && n - i >= 3 && p[i] == 0xED && p[i + 1] >= 0xA0 && p[i + 1] <= 0xBF &&
        (p[i + 2] & 0xC0) == 0x80) {
      (*surrogates)++;
      k = 3;
    }
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

static void fz_string_mode(const uint8_t *q, size_t n, unsigned flags) {
  bt_json_scanner sc;
  size_t body = n - 2, out_len, surrogates;
  char *out;
  bt_json_scan_init(&sc, (const char *)q, n, flags);
  if (!bt_json_scan_string(&sc) || sc.pos != n) return;
  out = (char *)malloc(body ? body : 1); /* exactly the body: ASan sees an overrun */
  if (out == NULL) return;
  out_len = sc.escaped ? bt_json_unescape(q + 1, body, flags, out) : body;
  if (!sc.escaped) memcpy(out, q + 1, body);
  if (out_len > body) fz_die("unescape grew the string");
  if (!fz_utf8((const unsigned char *)out, out_len, &surrogates)) fz_die("invalid UTF-8 out");
  if (flags != BT_JSON_LONE_WTF8 && surrogates != 0) fz_die("a surrogate outside wtf8 mode");
  if (flags == BT_JSON_LONE_WTF8 && surrogates != sc.lone) fz_die("lone count is wrong");
  if (flags == 0 && sc.lone != 0) fz_die("strict mode counted a lone surrogate");
  free(out);
}

static void fz_string(const uint8_t *data, size_t size) {
  uint8_t *q = (uint8_t *)malloc(size + 2);
  int i;
  if (q == NULL) return;
  q[0] = '"';
  if (size) memcpy(q + 1, data, size);
  q[size + 1] = '"';
  for (i = 0; i < 3; i++) fz_string_mode(q, size + 2, modes[i]);
  free(q);
}

static void fz_number(const uint8_t *data, size_t size) {
  bt_json_scanner sc;
  bt_json_number num;
  char *z;
  if (size == 0) return;
  bt_json_scan_init(&sc, (const char *)data, size, 0);
  if (!bt_json_scan_number(&sc) || sc.pos != size) return;
  if (bt_json_number_value(data, size, sc.integral, &num) != BT_JSON_OK) return;
  if ((z = (char *)malloc(size + 1)) == NULL) return;
  memcpy(z, data, size);
  z[size] = '\0';
  errno = 0;
  if (num.is_int) {
    long long want = strtoll(z, NULL, 10);
    if (errno != 0 || want != num.i || !sc.integral) fz_die("integer differs from strtoll");
  } else {
    double want = strtod(z, NULL);
    if (want == 0) want = 0; /* a zero has no sign */
    if (want != num.d) fz_die("double differs from strtod");
    if (sc.integral) {
      errno = 0;
      (void)strtoll(z, NULL, 10);
      if (errno != ERANGE) fz_die("a 64-bit integer literal came out as a double");
    }
  }
  if (num.d == 0 && signbit(num.d)) fz_die("a negative zero");
  free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_documents(data, size);
  fz_string(data, size);
  fz_number(data, size);
  return 0;
}
