/*
 * jpartial_oracle.h: the checks that the C unit test (test_jpartial.c) and
 * the fuzz target (csrc/fuzz/fuzz_jpartial.c) run on the resumable parser,
 * for one text under one set of flags. Include after jpartial.h; link
 * jpartial.c, json_scan.c and buf.c.
 *
 * The oracle is the event log: every event but a string's unfinished
 * pieces, written as bytes. For each prefix k of the text, L[k] is the log
 * of the prefix fed whole (no end); L is the log of the whole text, ended.
 *   - every split (each 2-way split, 1-byte pieces, random multi-way
 *     splits) gives L[k] after the piece that ends at k, and L at the end:
 *     the snapshot depends on the bytes so far only, never on the split;
 *   - L[k] is a prefix of L: what is shown complete is what the whole text
 *     makes;
 *   - an unfinished string piece is valid UTF-8, and each piece of a string
 *     extends the one before it and is a prefix of the finished string;
 *   - an invalid text fails with bt_json_scan_document's code at its offset
 *     (the decoder's twin), under every split, and stays failed.
 */
#ifndef JPARTIAL_ORACLE_H
#define JPARTIAL_ORACLE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bt_buf log;   /* finished events, as bytes */
  bt_buf piece; /* the unfinished string so far */
  int in_string;
  int wtf8;        /* lone surrogates come as ED A0..BF xx: not UTF-8 by design */
  const char *bad; /* the first broken rule, or NULL */
} jo_trace;

static void jo_put(jo_trace *t, const void *s, size_t n) {
  if (bt_buf_append(&t->log, s, n) != 0) {
    fprintf(stderr, "jpartial_oracle: out of memory\n");
    abort();
  }
}

static int jo_valid_utf8(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = bt_json_utf8_len((const unsigned char *)s + i, n - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

static void jo_record(jo_trace *t, const jp_event *ev) {
  unsigned char head[1 + sizeof(int) + sizeof(size_t)];
  if (ev->type == JP_STRING) {
    if (t->in_string &&
        (ev->n < t->piece.len || (t->piece.len > 0 && memcmp(ev->s, t->piece.p, t->piece.len))))
      t->bad = "a string piece does not extend the one before it";
    if (!t->wtf8 && !jo_valid_utf8(ev->s, ev->n)) t->bad = "a string piece is not valid UTF-8";
    t->piece.len = 0;
    if (!ev->done) {
      t->in_string = 1;
      if (bt_buf_append(&t->piece, ev->s, ev->n) != 0) abort();
      return;
    }
    t->in_string = 0;
  } else if (t->in_string) {
    t->bad = "an unfinished string was followed by another event";
  }
  head[0] = (unsigned char)ev->type;
  memcpy(head + 1, &ev->depth, sizeof(int));
  memcpy(head + 1 + sizeof(int), &ev->index, sizeof(size_t));
  jo_put(t, head, sizeof head);
  if (ev->type == JP_KEY || ev->type == JP_STRING) {
    jo_put(t, &ev->n, sizeof ev->n);
    jo_put(t, ev->s, ev->n);
  } else if (ev->type == JP_NUMBER) {
    jo_put(t, &ev->num.is_int, sizeof ev->num.is_int);
    jo_put(t, &ev->num.i, sizeof ev->num.i);
    jo_put(t, &ev->num.d, sizeof ev->num.d);
  }
}

/* Feeds s[0, n) to p and records the events; returns jp_next's last code. */
static int jo_feed(jp_parser *p, jo_trace *t, const char *s, size_t n) {
  jp_event ev;
  int rc;
  jp_input(p, s, n);
  while ((rc = jp_next(p, &ev)) == JP_EVENT) jo_record(t, &ev);
  return rc;
}

static int jo_end(jp_parser *p, jo_trace *t) {
  jp_event ev;
  int rc;
  jp_end(p);
  jp_input(p, "", 0);
  while ((rc = jp_next(p, &ev)) == JP_EVENT) jo_record(t, &ev);
  return rc;
}

static void jo_free(jo_trace *t) {
  bt_buf_free(&t->log);
  bt_buf_free(&t->piece);
}

/* The reference: the log of each prefix fed whole. */
typedef struct {
  size_t n;
  size_t *len;       /* len[k]: bytes of L[k] (n + 1 of them) */
  char **piece;      /* piece[k]: the unfinished string after k bytes */
  size_t *piece_len; /* and its length (0 when none) */
  int *failed;       /* failed[k]: the prefix already failed */
  jo_trace whole;    /* L, or the failure */
  int rc;            /* JP_DONE or JP_ERROR for the whole text */
  bt_json_error code;
  size_t err_pos;
  int with_pos;
  const char *bad; /* a prefix broke a rule */
} jo_ref;

static void jo_ref_free(jo_ref *r) {
  size_t k;
  for (k = 0; r->piece != NULL && k <= r->n; k++) free(r->piece[k]);
  free(r->piece);
  free(r->piece_len);
  free(r->len);
  free(r->failed);
  jo_free(&r->whole);
}

static void jo_ref_make(jo_ref *r, const char *s, size_t n, unsigned flags) {
  size_t k;
  jp_parser p;
  memset(r, 0, sizeof *r);
  r->whole.wtf8 = (flags & BT_JSON_LONE_WTF8) != 0;
  r->n = n;
  r->len = calloc(n + 1, sizeof *r->len);
  r->piece = calloc(n + 1, sizeof *r->piece);
  r->piece_len = calloc(n + 1, sizeof *r->piece_len);
  r->failed = calloc(n + 1, sizeof *r->failed);
  if (!r->len || !r->piece || !r->piece_len || !r->failed) abort();
  jp_init(&p, flags, BT_JSON_MAX_DEPTH);
  r->rc = jo_feed(&p, &r->whole, s, n);
  if (r->rc != JP_ERROR) r->rc = jo_end(&p, &r->whole);
  r->code = p.code;
  r->err_pos = p.err_pos;
  r->with_pos = p.with_pos;
  jp_free(&p);
  for (k = 0; k <= n; k++) {
    jo_trace t;
    memset(&t, 0, sizeof t);
    t.wtf8 = (flags & BT_JSON_LONE_WTF8) != 0;
    jp_init(&p, flags, BT_JSON_MAX_DEPTH);
    r->failed[k] = jo_feed(&p, &t, s, k) == JP_ERROR;
    r->len[k] = t.log.len;
    if (t.log.len > r->whole.log.len ||
        (t.log.len > 0 && memcmp(t.log.p, r->whole.log.p, t.log.len)))
      r->bad = "a prefix shows what the whole text does not";
    if (t.bad != NULL) r->bad = t.bad;
    if (t.in_string) {
      r->piece[k] = malloc(t.piece.len + 1);
      if (r->piece[k] == NULL) abort();
      memcpy(r->piece[k], t.piece.p != NULL ? t.piece.p : "", t.piece.len);
      r->piece_len[k] = t.piece.len;
    }
    jp_free(&p);
    jo_free(&t);
  }
}

/* Feeds s in the pieces that end at cuts[0..ncuts) (increasing, the last
 * is n) and checks each step against r. NULL, or what went wrong. */
static const char *jo_check_split(const jo_ref *r, const char *s, const size_t *cuts, int ncuts,
                                  unsigned flags) {
  jp_parser p;
  jo_trace t;
  const char *why = NULL;
  size_t at = 0;
  int i, rc = JP_MORE;
  memset(&t, 0, sizeof t);
  t.wtf8 = (flags & BT_JSON_LONE_WTF8) != 0;
  jp_init(&p, flags, BT_JSON_MAX_DEPTH);
  for (i = 0; i < ncuts && why == NULL; i++) {
    size_t k = cuts[i];
    rc = jo_feed(&p, &t, s + at, k - at);
    at = k;
    if ((rc == JP_ERROR) != (r->failed[k] != 0)) why = "fails on a different prefix than fed whole";
    else if (rc == JP_ERROR) break;
    else if (t.log.len != r->len[k] ||
             (t.log.len > 0 && memcmp(t.log.p, r->whole.log.p, t.log.len)))
      why = "the events so far differ from the prefix fed whole";
    else if (t.in_string != (r->piece[k] != NULL) ||
             (t.in_string && (t.piece.len != r->piece_len[k] ||
                              (t.piece.len > 0 && memcmp(t.piece.p, r->piece[k], t.piece.len)))))
      why = "the unfinished string differs from the prefix fed whole";
  }
  if (why == NULL && rc != JP_ERROR) rc = jo_end(&p, &t);
  if (why == NULL && t.bad != NULL) why = t.bad;
  if (why == NULL && rc != r->rc) why = "ends differently than fed whole";
  if (why == NULL && rc == JP_ERROR &&
      (p.code != r->code || p.err_pos != r->err_pos || p.with_pos != r->with_pos))
    why = "fails with another error than fed whole";
  if (why == NULL && rc == JP_ERROR) { /* sticky */
    jp_event ev;
    jp_input(&p, "[", 1);
    if (jp_next(&p, &ev) != JP_ERROR || p.code != r->code) why = "an error is not sticky";
  }
  if (why == NULL && rc == JP_DONE &&
      (t.log.len != r->whole.log.len ||
       (t.log.len > 0 && memcmp(t.log.p, r->whole.log.p, t.log.len))))
    why = "the events differ from the whole text's";
  jp_free(&p);
  jo_free(&t);
  return why;
}

/* The whole text against the decoder's scanner, and the reference with
 * itself: every L[k] a prefix of L. */
static const char *jo_check_ref(const jo_ref *r, const char *s, size_t n, unsigned flags) {
  bt_json_scanner sc;
  int ok;
  bt_json_scan_init(&sc, s, n, flags);
  ok = bt_json_scan_document(&sc);
  if (ok != (r->rc == JP_DONE)) return ok ? "fails a text the decoder takes" : "takes a bad text";
  if (!ok && sc.code != r->code) return "fails with another error code than the decoder";
  if (!ok && sc.with_pos && r->err_pos != sc.pos) return "fails at another offset than the decoder";
  if (r->whole.bad != NULL) return r->whole.bad;
  return r->bad;
}

#endif
