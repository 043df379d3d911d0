/*
 * vecmath.h: the float32 vector math behind baseten.vector (vector.c), in
 * plain C with no Lua: dot products, norms, cosine, little-endian float32
 * bytes, base64 straight into floats, and a bounded top-k selection. Unit
 * tested alone (csrc/test/test_vecmath.c) and fuzzed (csrc/fuzz/fuzz_b64.c).
 *
 * Byte order never depends on the host: a float is assembled from its four
 * little-endian bytes into a uint32_t with shifts and copied with memcpy, so
 * a big-endian host and MinGW read and write the same bytes.
 */
#ifndef BT_VECMATH_H
#define BT_VECMATH_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* Sums in double (four lanes), so no finite float32 input overflows. */
BT_HIDDEN double bt_vec_dot(const float *a, const float *b, size_t n);
BT_HIDDEN double bt_vec_norm(const float *a, size_t n);

/* The cosine of a and b: 0 when either has norm 0 (never NaN for finite
 * input). qnorm is a's norm when the caller knows it, else a negative value. */
BT_HIDDEN double bt_vec_cosine(const float *a, const float *b, size_t n, double qnorm);

/* out = a / |a|; a zero vector gives zeros. out may be a. */
BT_HIDDEN void bt_vec_normalize(float *out, const float *a, size_t n);

/* 1 when x is a finite number that fits a float32 (casting anything else
 * is undefined or gives inf); stores the float in *out. */
BT_HIDDEN int bt_f32_from_double(double x, float *out);

/* Little-endian float32 at p (4 bytes). */
BT_HIDDEN float bt_f32_load_le(const unsigned char *p);
BT_HIDDEN void bt_f32_store_le(float f, unsigned char *p);

/* Results of bt_b64_decode_f32 and bt_f32_from_le. */
enum {
  BT_VEC_OK = 0,
  BT_VEC_BAD_CHAR,   /* a byte outside the base64 alphabet, or misplaced '=' */
  BT_VEC_BAD_LENGTH, /* base64 not a multiple of 4 characters, or bytes not of 4 */
  BT_VEC_NOT_FINITE, /* a NaN or an infinity */
  BT_VEC_EMPTY       /* no floats at all */
};

/* A message for a status above. */
BT_HIDDEN const char *bt_vec_status_text(int status);

/* How many floats len bytes of base64 hold (padding counted): 0 when len
 * is not a multiple of 4. */
BT_HIDDEN size_t bt_b64_float_count(const char *s, size_t len);

/* Decodes standard base64 (RFC 4648, '+' '/', '=' padding; no whitespace)
 * into exactly n little-endian float32 values, n from bt_b64_float_count.
 * *where gets the index of the offending float (BT_VEC_NOT_FINITE) or byte. */
BT_HIDDEN int bt_b64_decode_f32(const char *s, size_t len, float *out, size_t n, size_t *where);

/* n floats from 4n little-endian bytes, each checked finite. */
BT_HIDDEN int bt_f32_from_le(const unsigned char *p, size_t len, float *out, size_t *where);

/*
 * The k best (highest score) of a stream of (index, score) pairs, in a
 * min-heap over caller-owned arrays of k slots. Ties keep the lower index
 * first; a NaN score is never taken.
 */
typedef struct bt_topk {
  size_t k, count;
  size_t *idx;
  double *score;
} bt_topk;

BT_HIDDEN void bt_topk_init(bt_topk *h, size_t k, size_t *idx, double *score);
BT_HIDDEN void bt_topk_push(bt_topk *h, size_t index, double score);
/* Sorts the heap in place, best first; count stays. */
BT_HIDDEN void bt_topk_sort(bt_topk *h);

#endif
