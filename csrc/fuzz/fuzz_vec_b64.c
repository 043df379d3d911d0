/*
 * fuzz_vec_b64.c: libFuzzer target for base64 into float32 (vecmath.c; no
 * Lua). The input is the base64 text, in an exact heap block, so ASan sees
 * any read past it. Oracles:
 *   1. bt_b64_decode_f32 with the count bt_b64_float_count gives never
 *      writes past those floats (the output is an exact heap block too),
 *      and on success every float is finite.
 *   2. On success the floats, stored back as little-endian bytes, read
 *      back through bt_f32_from_le to the same values.
 *   3. A count other than the real one always fails.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     -o build/fuzz_vec_b64 csrc/fuzz/fuzz_vec_b64.c csrc/vecmath.c -lm
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vecmath.h"

static void fz_die(const char *what) {
  fprintf(stderr, "fuzz_vec_b64: %s\n", what);
  abort();
}

static void fz_roundtrip(const float *out, size_t n) {
  unsigned char *bytes = malloc(4 * n);
  float *back = malloc(sizeof(float) * n);
  size_t i, where;
  if (bytes == NULL || back == NULL) fz_die("out of memory");
  for (i = 0; i < n; i++) bt_f32_store_le(out[i], bytes + 4 * i);
  if (bt_f32_from_le(bytes, 4 * n, back, &where) != BT_VEC_OK) fz_die("stored floats refused");
  if (memcmp(back, out, sizeof(float) * n) != 0) fz_die("bytes do not round trip");
  free(bytes);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  size_t n = bt_b64_float_count(s, size), i, where;
  float *out = malloc(sizeof(float) * (n ? n : 1));
  int rc;
  if (out == NULL) fz_die("out of memory");
  rc = bt_b64_decode_f32(s, size, out, n, &where);
  if (rc == BT_VEC_OK) {
    for (i = 0; i < n; i++)
      if (!isfinite(out[i])) fz_die("a decoded value is not finite");
    fz_roundtrip(out, n);
  }
  if (bt_b64_decode_f32(s, size, out, n ? n - 1 : 0, &where) == BT_VEC_OK && n > 0)
    fz_die("a short count was accepted");
  free(out);
  return 0;
}
