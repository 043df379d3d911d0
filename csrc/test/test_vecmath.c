/*
 * test_vecmath.c: unit tests for the float32 vector math (csrc/vecmath.c):
 * dot, norm, cosine (a zero vector gives 0), normalize, little-endian
 * bytes, base64 into floats (length, alphabet, padding, NaN), and the
 * top-k heap (order, ties, NaN). Built under ASan + UBSan with
 * float-cast-overflow, so a double cast out of float range fails the run.
 * `make test-c` builds and runs it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vecmath.h"
#include "test_util.h"

/* test_util.h's ok, for checks that need no detail */
static void check(int cond, const char *name) { ok(cond, name, NULL); }

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

/* Standard base64 of n bytes (the test's own encoder). */
static void b64(const unsigned char *in, size_t n, char *out) {
  static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = A[(v >> 18) & 63];
    out[o++] = A[(v >> 12) & 63];
    out[o++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? A[v & 63] : '=';
  }
  out[o] = 0;
}

static void test_math(void) {
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1}, z[5] = {0}, out[5];
  check(near(bt_vec_dot(a, b, 5), 35), "dot");
  check(near(bt_vec_dot(a, a, 3), 14), "dot over a prefix (the tail loop)");
  check(near(bt_vec_norm(a, 5), sqrt(55.0)), "norm");
  check(near(bt_vec_cosine(a, a, 5, -1), 1), "cosine with itself is 1");
  check(near(bt_vec_cosine(a, b, 5, bt_vec_norm(a, 5)), 35 / 55.0), "cosine with a given norm");
  check(bt_vec_cosine(a, z, 5, -1) == 0, "cosine with a zero vector is 0");
  check(bt_vec_cosine(z, a, 5, -1) == 0, "a zero vector's cosine is 0");
  check(bt_vec_cosine(z, z, 5, -1) == 0, "two zero vectors: 0, not NaN");
  bt_vec_normalize(out, a, 5);
  check(near(bt_vec_norm(out, 5), 1), "normalized has norm 1");
  bt_vec_normalize(out, z, 5);
  check(out[0] == 0 && out[4] == 0, "a zero vector normalizes to zeros");
  {
    float big[2] = {3e38f, 3e38f};
    check(isfinite(bt_vec_dot(big, big, 2)), "the largest floats do not overflow the sum");
    check(near(bt_vec_cosine(big, big, 2, -1), 1), "nor the cosine");
  }
}

static void test_cast(void) {
  volatile double zero = 0.0;
  float f = 7;
  check(bt_f32_from_double(1.5, &f) && f == 1.5f, "a float converts");
  check(!bt_f32_from_double(zero / zero, &f), "NaN is refused");
  check(!bt_f32_from_double(1.0 / zero, &f), "inf is refused");
  check(!bt_f32_from_double(1e300, &f), "beyond float32 is refused (no undefined cast)");
  check(!bt_f32_from_double(-1e39, &f), "below -FLT_MAX is refused");
}

static void test_bytes(void) {
  unsigned char p[4];
  float vals[3] = {1.0f, -2.5f, 3.25f}, out[3];
  size_t where;
  bt_f32_store_le(1.0f, p);
  check(p[0] == 0 && p[1] == 0 && p[2] == 0x80 && p[3] == 0x3f, "1.0 is 00 00 80 3f little-endian");
  check(bt_f32_load_le(p) == 1.0f, "and reads back");
  {
    unsigned char buf[12];
    int i;
    for (i = 0; i < 3; i++) bt_f32_store_le(vals[i], buf + 4 * i);
    check(bt_f32_from_le(buf, 12, out, &where) == BT_VEC_OK && out[1] == -2.5f, "bytes round trip");
    check(bt_f32_from_le(buf, 11, out, &where) == BT_VEC_BAD_LENGTH, "11 bytes is a bad length");
    check(bt_f32_from_le(buf, 0, out, &where) == BT_VEC_EMPTY, "no bytes is empty");
    buf[4] = 0, buf[5] = 0, buf[6] = 0xc0, buf[7] = 0x7f; /* a quiet NaN */
    check(bt_f32_from_le(buf, 12, out, &where) == BT_VEC_NOT_FINITE && where == 1,
          "NaN found at 1");
  }
}

static void test_base64(void) {
  float vals[3] = {0.5f, -1.0f, 1e-3f}, out[4];
  unsigned char raw[16];
  char text[64];
  size_t where, n, len;
  int i;
  for (i = 0; i < 3; i++) bt_f32_store_le(vals[i], raw + 4 * i);
  b64(raw, 12, text); /* 12 bytes: no padding */
  len = strlen(text);
  n = bt_b64_float_count(text, len);
  check(n == 3, "12 bytes hold 3 floats");
  check(bt_b64_decode_f32(text, len, out, n, &where) == BT_VEC_OK && out[0] == 0.5f &&
            out[1] == -1.0f && out[2] == 1e-3f,
        "base64 decodes to the same floats");
  b64(raw, 8, text); /* 8 bytes: one '=' */
  len = strlen(text);
  check(text[len - 1] == '=' && bt_b64_float_count(text, len) == 2, "padding is counted");
  check(bt_b64_decode_f32(text, len, out, 2, &where) == BT_VEC_OK && out[1] == -1.0f,
        "padded decodes");
  b64(raw, 4, text); /* 4 bytes: "==" */
  len = strlen(text);
  check(bt_b64_decode_f32(text, len, out, 1, &where) == BT_VEC_OK && out[0] == 0.5f,
        "double padding");
  b64(raw, 6, text); /* 6 bytes: not whole floats */
  check(bt_b64_float_count(text, strlen(text)) == 0, "6 bytes is no whole number of floats");
  check(bt_b64_decode_f32(text, strlen(text), out, 1, &where) == BT_VEC_BAD_LENGTH, "and fails");
  check(bt_b64_float_count("AAAAA", 5) == 0, "5 characters is a bad length");
  check(bt_b64_decode_f32("", 0, out, 0, &where) == BT_VEC_EMPTY, "empty text is no vector");
  check(bt_b64_decode_f32("AA*A", 4, out, 0, &where) != BT_VEC_OK, "'*' fails");
  b64(raw, 12, text);
  text[5] = '!';
  check(bt_b64_decode_f32(text, 16, out, 3, &where) == BT_VEC_BAD_CHAR, "a bad character fails");
  b64(raw, 12, text);
  text[3] = '=';
  check(bt_b64_decode_f32(text, 16, out, 3, &where) == BT_VEC_BAD_CHAR, "'=' in the middle fails");
  check(bt_b64_decode_f32("AA=AAAAAAAAAAAAA", 16, out, 3, &where) == BT_VEC_BAD_CHAR && where == 0,
        "'=' not at the end");
  check(bt_b64_decode_f32("AAA=AAAAAAAAAAAA", 16, out, 3, &where) == BT_VEC_BAD_CHAR,
        "'=' in a first quartet");
  check(bt_b64_float_count("AAAAAAAAAAAAAA=A", 16) == 3,
        "'=' before the last character is no padding");
  check(bt_b64_decode_f32("AAAAAAAAAAAAAA=A", 16, out, 3, &where) == BT_VEC_BAD_CHAR, "and fails");
  raw[4] = 0, raw[5] = 0, raw[6] = 0x80, raw[7] = 0x7f; /* +inf */
  b64(raw, 12, text);
  check(bt_b64_decode_f32(text, 16, out, 3, &where) == BT_VEC_NOT_FINITE && where == 1,
        "inf fails at 1");
  raw[6] = 0xc0; /* NaN */
  b64(raw, 12, text);
  check(bt_b64_decode_f32(text, 16, out, 3, &where) == BT_VEC_NOT_FINITE, "NaN fails");
  check(bt_b64_decode_f32(text, 16, out, 2, &where) == BT_VEC_BAD_LENGTH, "a wrong n fails");
  check(strcmp(bt_vec_status_text(BT_VEC_NOT_FINITE), "a value is NaN or infinite") == 0,
        "message");
}

static void test_topk(void) {
  size_t idx[3];
  double score[3];
  bt_topk h;
  double in[7] = {0.1, 0.9, 0.5, 0.9, -1, 0.7, 0.0};
  size_t i;
  volatile double zero = 0.0;
  bt_topk_init(&h, 3, idx, score);
  for (i = 0; i < 7; i++) bt_topk_push(&h, i, in[i]);
  bt_topk_push(&h, 7, zero / zero);
  bt_topk_sort(&h);
  check(h.count == 3, "three kept");
  check(idx[0] == 1 && idx[1] == 3 && idx[2] == 5, "best first; a tie keeps the lower index first");
  check(score[0] == 0.9 && score[2] == 0.7, "scores follow");
  bt_topk_init(&h, 3, idx, score);
  bt_topk_push(&h, 4, 0.5);
  bt_topk_push(&h, 2, 0.5);
  bt_topk_push(&h, 9, 0.5);
  bt_topk_push(&h, 1, 0.5); /* pushes out index 9 */
  bt_topk_sort(&h);
  check(idx[0] == 1 && idx[1] == 2 && idx[2] == 4, "ties in any push order rank by index");
  bt_topk_init(&h, 0, idx, score);
  bt_topk_push(&h, 0, 1.0);
  check(h.count == 0, "k = 0 keeps nothing");
  bt_topk_init(&h, 3, idx, score);
  bt_topk_push(&h, 0, 1.0);
  bt_topk_sort(&h);
  check(h.count == 1 && idx[0] == 0, "fewer than k");
  {
    /* a thousand scores against a sort of the same */
    size_t kidx[10];
    double kscore[10], all[1000];
    srand(7);
    bt_topk_init(&h, 10, kidx, kscore);
    for (i = 0; i < 1000; i++) {
      all[i] = (double)(rand() % 200) / 200.0;
      bt_topk_push(&h, i, all[i]);
    }
    bt_topk_sort(&h);
    for (i = 1; i < 10; i++) {
      check(kscore[i - 1] > kscore[i] || (kscore[i - 1] == kscore[i] && kidx[i - 1] < kidx[i]),
            "the heap's order holds");
    }
    {
      size_t better = 0;
      for (i = 0; i < 1000; i++)
        if (all[i] > kscore[9] || (all[i] == kscore[9] && kidx[9] > i)) better++;
      check(better == 9, "exactly nine rank above the tenth");
    }
  }
}

int main(void) {
  test_math();
  test_cast();
  test_bytes();
  test_base64();
  test_topk();
  printf("test_vecmath: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
