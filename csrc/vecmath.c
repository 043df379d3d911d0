/*
 * vecmath.c: float32 vector math in plain C (vecmath.h). No Lua, no
 * allocation: every buffer is the caller's.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "vecmath.h"

double bt_vec_dot(const float *a, const float *b, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += (double)a[i] * b[i];
    s1 += (double)a[i + 1] * b[i + 1];
    s2 += (double)a[i + 2] * b[i + 2];
    s3 += (double)a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += (double)a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

double bt_vec_norm(const float *a, size_t n) { return sqrt(bt_vec_dot(a, a, n)); }

/* One pass over both: the dot and b's squared norm together. */
double bt_vec_cosine(const float *a, const float *b, size_t n, double qnorm) {
  double d0 = 0, d1 = 0, q0 = 0, q1 = 0, den;
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    d0 += (double)a[i] * b[i];
    d1 += (double)a[i + 1] * b[i + 1];
    q0 += (double)b[i] * b[i];
    q1 += (double)b[i + 1] * b[i + 1];
  }
  for (; i < n; i++) {
    d0 += (double)a[i] * b[i];
    q0 += (double)b[i] * b[i];
  }
  if (qnorm < 0) qnorm = bt_vec_norm(a, n);
  den = qnorm * sqrt(q0 + q1);
  if (!(den > 0)) return 0.0;
  return (d0 + d1) / den;
}

void bt_vec_normalize(float *out, const float *a, size_t n) {
  double norm = bt_vec_norm(a, n);
  size_t i;
  for (i = 0; i < n; i++) out[i] = norm > 0 ? (float)(a[i] / norm) : 0.0f;
}

int bt_f32_from_double(double x, float *out) {
  if (!(x >= -FLT_MAX && x <= FLT_MAX)) return 0; /* NaN fails both */
  *out = (float)x;
  return 1;
}

float bt_f32_load_le(const unsigned char *p) {
  uint32_t u =
      (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

void bt_f32_store_le(float f, unsigned char *p) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  p[0] = (unsigned char)(u & 0xff);
  p[1] = (unsigned char)((u >> 8) & 0xff);
  p[2] = (unsigned char)((u >> 16) & 0xff);
  p[3] = (unsigned char)((u >> 24) & 0xff);
}

const char *bt_vec_status_text(int status) {
  switch (status) {
  case BT_VEC_OK: return "ok";
  case BT_VEC_BAD_CHAR: return "not base64";
  case BT_VEC_BAD_LENGTH: return "not a whole number of float32 values";
  case BT_VEC_NOT_FINITE: return "a value is NaN or infinite";
  case BT_VEC_EMPTY: return "no values";
  default: return "unknown error";
  }
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

size_t bt_b64_float_count(const char *s, size_t len) {
  size_t bytes, pad = 0;
  if (len == 0 || len % 4 != 0) return 0;
  if (s[len - 1] == '=') pad++;
  if (pad == 1 && s[len - 2] == '=') pad++;
  bytes = len / 4 * 3 - pad;
  return bytes % 4 == 0 ? bytes / 4 : 0;
}

/* The float just completed in buf, checked and stored. */
static int b64_emit(const unsigned char *buf, float *out, size_t j, size_t *where) {
  float f = bt_f32_load_le(buf);
  if (!isfinite(f)) {
    *where = j;
    return BT_VEC_NOT_FINITE;
  }
  out[j] = f;
  return BT_VEC_OK;
}

/* The 1-3 bytes of the quartet at q (pad '=' only at its end). */
static int b64_quartet(const unsigned char *q, int last, unsigned char *bytes, int *nbytes) {
  int v[4], i, pad = 0;
  for (i = 0; i < 4; i++) {
    if (q[i] == '=' && last && i >= 2) {
      pad++;
      v[i] = 0;
      continue;
    }
    if (pad > 0) return 0; /* a byte after padding */
    v[i] = b64_value(q[i]);
    if (v[i] < 0) return 0;
  }
  bytes[0] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
  bytes[1] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
  bytes[2] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
  *nbytes = 3 - pad;
  return 1;
}

int bt_b64_decode_f32(const char *s, size_t len, float *out, size_t n, size_t *where) {
  const unsigned char *u = (const unsigned char *)s;
  unsigned char buf[4], bytes[3];
  size_t i, j = 0;
  int fill = 0, nbytes, b, rc;
  *where = 0;
  if (len % 4 != 0 || bt_b64_float_count(s, len) != n) return BT_VEC_BAD_LENGTH;
  if (n == 0) return BT_VEC_EMPTY;
  for (i = 0; i < len; i += 4) {
    if (!b64_quartet(u + i, i + 4 == len, bytes, &nbytes)) {
      *where = i;
      return BT_VEC_BAD_CHAR;
    }
    for (b = 0; b < nbytes; b++) {
      buf[fill++] = bytes[b];
      if (fill < 4) continue;
      fill = 0;
      rc = b64_emit(buf, out, j++, where);
      if (rc != BT_VEC_OK) return rc;
    }
  }
  return j == n && fill == 0 ? BT_VEC_OK : BT_VEC_BAD_LENGTH;
}

int bt_f32_from_le(const unsigned char *p, size_t len, float *out, size_t *where) {
  size_t j;
  *where = 0;
  if (len % 4 != 0) return BT_VEC_BAD_LENGTH;
  if (len == 0) return BT_VEC_EMPTY;
  for (j = 0; j < len / 4; j++) {
    int rc = b64_emit(p + 4 * j, out, j, where);
    if (rc != BT_VEC_OK) return rc;
  }
  return BT_VEC_OK;
}

void bt_topk_init(bt_topk *h, size_t k, size_t *idx, double *score) {
  h->k = k;
  h->count = 0;
  h->idx = idx;
  h->score = score;
}

/* Whether slot a ranks below slot b: a lower score, or the same score and
 * a higher index. The heap keeps the lowest-ranked at its root. */
static int topk_below(const bt_topk *h, size_t a, size_t b) {
  if (h->score[a] != h->score[b]) return h->score[a] < h->score[b];
  return h->idx[a] > h->idx[b];
}

static void topk_swap(bt_topk *h, size_t a, size_t b) {
  size_t ti = h->idx[a];
  double ts = h->score[a];
  h->idx[a] = h->idx[b];
  h->score[a] = h->score[b];
  h->idx[b] = ti;
  h->score[b] = ts;
}

static void topk_sift_down(bt_topk *h, size_t i, size_t count) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < count && topk_below(h, l, m)) m = l;
    if (r < count && topk_below(h, r, m)) m = r;
    if (m == i) return;
    topk_swap(h, i, m);
    i = m;
  }
}

void bt_topk_push(bt_topk *h, size_t index, double score) {
  size_t i;
  if (h->k == 0 || score != score) return;
  if (h->count < h->k) {
    i = h->count++;
    h->idx[i] = index;
    h->score[i] = score;
    while (i > 0 && topk_below(h, i, (i - 1) / 2)) {
      topk_swap(h, i, (i - 1) / 2);
      i = (i - 1) / 2;
    }
    return;
  }
  if (score < h->score[0] || (score == h->score[0] && index > h->idx[0])) return;
  h->idx[0] = index;
  h->score[0] = score;
  topk_sift_down(h, 0, h->count);
}

void bt_topk_sort(bt_topk *h) {
  size_t end;
  for (end = h->count; end > 1; end--) {
    topk_swap(h, 0, end - 1);
    topk_sift_down(h, 0, end - 1);
  }
}
