/*
 * delta.c: the text fast path's extractor (see delta.h). One pass over the
 * chunk with the JSON scanner's own tokens (json.h), so a string, a number
 * or a literal is accepted here exactly when the decoder would accept it.
 * Builds nothing and allocates nothing (bar the scanner's copy of a number
 * longer than 64 bytes).
 */
#include <string.h>

#include "delta.h"

/* Members whose repetition must also fall back, besides the fields. */
enum { K_CHOICES = BT_D_COUNT, K_DELTA, K_INDEX, K_LOGPROBS, K_TOOL_CALLS };

typedef struct {
  bt_json_scanner sc;
  bt_delta *d;
  unsigned seen; /* bit k: field or member k was met (a repeat falls back) */
} dx;

typedef int (*member_fn)(dx *x, const unsigned char *name, size_t len);

#define NAME_IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, sizeof(lit) - 1) == 0)

static int expect(bt_json_scanner *sc, unsigned char c) {
  bt_json_skip_space(sc);
  if (bt_json_peek(sc) != c) return 0;
  sc->pos++;
  return 1;
}

/* A member that must not come twice. */
static int first_time(dx *x, int k) {
  if (x->seen & (1u << k)) return 0;
  x->seen |= 1u << k;
  return 1;
}

static int scan_null(bt_json_scanner *sc) { return bt_json_scan_literal(sc, "null", 4); }

/* A number, in JSON's grammar and within a double (as the decoder wants). */
static int scan_number(bt_json_scanner *sc) {
  size_t start = sc->pos;
  unsigned char c = bt_json_peek(sc);
  bt_json_number v;
  if (c != '-' && (c < '0' || c > '9')) return 0;
  if (!bt_json_scan_number(sc)) return 0;
  return bt_json_number_value(sc->s + start, sc->pos - start, sc->integral, &v) == BT_JSON_OK;
}

/* The value of a member nobody reads: a scalar only. */
static int skip_scalar(bt_json_scanner *sc) {
  switch (bt_json_peek(sc)) {
  case '"': return bt_json_scan_string(sc);
  case 't': return bt_json_scan_literal(sc, "true", 4);
  case 'f': return bt_json_scan_literal(sc, "false", 5);
  case 'n': return scan_null(sc);
  default: return scan_number(sc);
  }
}

/* An object or array, located: strings are scanned (so a bracket inside
 * one does not count), brackets counted. Whether it is well-formed is the
 * decoder's call, on this span (see delta.h). */
static int skip_container(bt_json_scanner *sc) {
  int depth = 0;
  do {
    unsigned char c = bt_json_peek(sc);
    if (sc->pos >= sc->len) return 0;
    if (c == '"') {
      if (!bt_json_scan_string(sc)) return 0;
      continue;
    }
    if (c == '{' || c == '[') {
      if (++depth > BT_JSON_MAX_DEPTH) return 0;
    } else if (c == '}' || c == ']') {
      depth--;
    }
    sc->pos++;
  } while (depth > 0);
  return 1;
}

/* Field k: a value of type `kind` ('"' string, '0' number, '{' object) or
 * null (left absent, as DROP_NULLS leaves it). */
static int take(dx *x, int k, unsigned char kind) {
  bt_json_scanner *sc = &x->sc;
  bt_delta_span *f = &x->d->f[k];
  size_t start = sc->pos;
  unsigned char c = bt_json_peek(sc);
  int ok;
  if (!first_time(x, k)) return 0;
  if (c == 'n') return scan_null(sc);
  if (kind == '"') ok = c == '"' && bt_json_scan_string(sc);
  else if (kind == '{') ok = c == '{' && skip_container(sc);
  else ok = scan_number(sc);
  if (!ok) return 0;
  f->off = start;
  f->len = sc->pos - start;
  f->escaped = kind == '"' && sc->escaped;
  return 1;
}

/* Each member of an object: the name (no escape in it), ':', then fn on
 * the value. */
static int walk_object(dx *x, member_fn fn) {
  bt_json_scanner *sc = &x->sc;
  if (!expect(sc, '{')) return 0;
  bt_json_skip_space(sc);
  if (bt_json_peek(sc) == '}') {
    sc->pos++;
    return 1;
  }
  for (;;) {
    size_t start = sc->pos, end;
    unsigned char c;
    if (bt_json_peek(sc) != '"' || !bt_json_scan_string(sc) || sc->escaped) return 0;
    end = sc->pos;
    if (!expect(sc, ':')) return 0;
    bt_json_skip_space(sc);
    if (!fn(x, sc->s + start + 1, end - start - 2)) return 0;
    bt_json_skip_space(sc);
    c = bt_json_peek(sc);
    sc->pos++;
    if (c == '}') return 1;
    if (c != ',') return 0;
    bt_json_skip_space(sc);
  }
}

static int delta_member(dx *x, const unsigned char *name, size_t len) {
  bt_json_scanner *sc = &x->sc;
  if (NAME_IS("content")) return take(x, BT_D_CONTENT, '"');
  if (NAME_IS("reasoning_content")) return take(x, BT_D_REASONING_CONTENT, '"');
  if (NAME_IS("reasoning")) return take(x, BT_D_REASONING, '"');
  if (NAME_IS("refusal")) return take(x, BT_D_REFUSAL, '"');
  if (NAME_IS("role")) return take(x, BT_D_ROLE, '"');
  if (NAME_IS("tool_calls")) { /* null or [] only: calls take the full path */
    if (!first_time(x, K_TOOL_CALLS)) return 0;
    if (bt_json_peek(sc) == 'n') return scan_null(sc);
    return expect(sc, '[') && expect(sc, ']');
  }
  return skip_scalar(sc);
}

/* "index": a literal 0 (or null: the accumulator and pieces_of read no
 * index as 0). Any other index is another choice's. */
static int choice_index(dx *x) {
  bt_json_scanner *sc = &x->sc;
  size_t start = sc->pos;
  if (!first_time(x, K_INDEX)) return 0;
  if (bt_json_peek(sc) == 'n') return scan_null(sc);
  return bt_json_peek(sc) == '0' && scan_number(sc) && sc->pos - start == 1; /* not 0.0, 0e0 */
}

static int choice_member(dx *x, const unsigned char *name, size_t len) {
  bt_json_scanner *sc = &x->sc;
  if (NAME_IS("delta")) {
    if (!first_time(x, K_DELTA)) return 0;
    if (bt_json_peek(sc) == 'n') return scan_null(sc);
    return walk_object(x, delta_member);
  }
  if (NAME_IS("finish_reason")) return take(x, BT_D_FINISH, '"');
  if (NAME_IS("index")) return choice_index(x);
  if (NAME_IS("logprobs")) return first_time(x, K_LOGPROBS) && scan_null(sc);
  if (NAME_IS("message")) return 0; /* the accumulator reads it when delta is missing */
  return skip_scalar(sc);
}

/* [] or [one choice]. */
static int choices(dx *x) {
  bt_json_scanner *sc = &x->sc;
  if (!first_time(x, K_CHOICES)) return 0;
  if (bt_json_peek(sc) == 'n') return scan_null(sc);
  if (!expect(sc, '[')) return 0;
  bt_json_skip_space(sc);
  if (bt_json_peek(sc) == ']') {
    sc->pos++;
    return 1;
  }
  if (!walk_object(x, choice_member)) return 0;
  x->d->choice = 1;
  return expect(sc, ']');
}

static int top_member(dx *x, const unsigned char *name, size_t len) {
  if (NAME_IS("choices")) return choices(x);
  if (NAME_IS("id")) return take(x, BT_D_ID, '"');
  if (NAME_IS("model")) return take(x, BT_D_MODEL, '"');
  if (NAME_IS("created")) return take(x, BT_D_CREATED, '0');
  if (NAME_IS("system_fingerprint")) return take(x, BT_D_FINGERPRINT, '"');
  if (NAME_IS("usage")) return take(x, BT_D_USAGE, '{');
  if (NAME_IS("error")) return 0; /* the stream's error path */
  return skip_scalar(&x->sc);
}

int bt_delta_extract(const char *s, size_t n, bt_delta *d) {
  dx x;
  memset(d, 0, sizeof *d);
  bt_json_scan_init(&x.sc, s, n, BT_JSON_LONE_WTF8);
  x.d = d;
  x.seen = 0;
  if (!walk_object(&x, top_member)) return 0;
  bt_json_skip_space(&x.sc);
  return x.sc.pos == n && x.sc.lone == 0; /* lone halves: baseten.mend's, on the full path */
}
