/*
 * sse.c: the Server-Sent Events parser declared in sse.h, after the WHATWG
 * HTML "interpreting an event stream" section.
 *
 * This is the hottest path of a streaming response (one event per token), so
 * a complete line that lies inside the caller's buffer is parsed where it
 * lies; only a line cut by a feed boundary is copied, into p->line. Line ends
 * are found with memchr, buffers are reused, and nothing allocates once the
 * buffers have grown to the stream's event size.
 *
 * Memory is bounded by one invariant: the bytes buffered for the event being
 * read (partial line + data + type) never exceed p->max_event. Every line is
 * checked against it before it is stored or used, and the check depends only
 * on the line's length, never on where feeds were cut, so a stream fails at
 * the same event however it is split.
 */
#include "sse.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { F_OTHER, F_DATA, F_EVENT, F_ID, F_RETRY };

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

/* bt_buf (buf.c) with the parser's error code; tests swap its allocator. */
static int buf_reserve(bt_buf *b, size_t extra) {
  return bt_buf_reserve(b, extra) == 0 ? 0 : SSE_ERR_NOMEM;
}

static int buf_append(bt_buf *b, const char *s, size_t n) {
  return bt_buf_append(b, s, n) == 0 ? 0 : SSE_ERR_NOMEM;
}

static int buf_set(bt_buf *b, const char *s, size_t n) {
  b->len = 0;
  return buf_append(b, s, n);
}

/* Bytes held for the event being read: what max_event limits. */
static size_t buffered(const sse_parser *p) {
  return p->line.len + (p->dref ? p->dref_len : p->data.len) + p->type.len;
}

/* Appends part of a line that continues in a later feed. */
static int line_append(sse_parser *p, const char *s, size_t n) {
  if (n > p->max_event - buffered(p)) return SSE_ERR_TOO_BIG;
  return buf_append(&p->line, s, n);
}

/*
 * First CR or LF in [s, end), or NULL. One memchr per byte value would scan
 * to the end of the buffer for a byte that never comes (no CR in most
 * streams, no LF in CR-only ones), so a window that grows geometrically
 * keeps the work proportional to the line, and each window costs two
 * vectorised memchr calls instead of a byte loop.
 */
static const char *find_eol(const char *s, const char *end) {
  size_t win = 256;
  while (s < end) {
    size_t n = (size_t)(end - s);
    const char *lf, *cr;
    if (n > win) n = win;
    lf = (const char *)memchr(s, '\n', n);
    cr = (const char *)memchr(s, '\r', lf ? (size_t)(lf - s) : n);
    if (cr != NULL) return cr;
    if (lf != NULL) return lf;
    s += n;
    if (win < 65536) win *= 2;
  }
  return NULL;
}

/* Splits a non-comment line into its field kind and value. */
static int split_field(const char *line, size_t n, const char **val, size_t *vlen) {
  const char *colon = (const char *)memchr(line, ':', n);
  size_t nlen = colon ? (size_t)(colon - line) : n;
  *val = colon ? colon + 1 : line + n;
  *vlen = n - (size_t)(*val - line);
  if (*vlen > 0 && **val == ' ') { /* one space only */
    (*val)++;
    (*vlen)--;
  }
  switch (nlen) {
  case 2: return memcmp(line, "id", 2) == 0 ? F_ID : F_OTHER;
  case 4: return memcmp(line, "data", 4) == 0 ? F_DATA : F_OTHER;
  case 5:
    if (memcmp(line, "event", 5) == 0) return F_EVENT;
    return memcmp(line, "retry", 5) == 0 ? F_RETRY : F_OTHER;
  default: return F_OTHER;
  }
}

/* Copies a borrowed first data line into p->data before its bytes go away. */
static int materialize(sse_parser *p) {
  if (buf_set(&p->data, p->dref, p->dref_len) < 0) return SSE_ERR_NOMEM;
  p->dref = NULL;
  return 0;
}

/* The data buffer holds lines joined with '\n', so WHATWG's trailing LF
   never needs stripping; ndata tells "no data" from "one empty line". */
static int on_data(sse_parser *p, const char *v, size_t n, int in_place) {
  bt_buf *d = &p->data;
  if (p->ndata == 0 && in_place) {
    p->dref = v;
    p->dref_len = n;
    p->ndata = 1;
    return 0;
  }
  if (p->dref != NULL && materialize(p) < 0) return SSE_ERR_NOMEM;
  if (buf_reserve(d, (p->ndata > 0) + n) < 0) return SSE_ERR_NOMEM;
  if (p->ndata > 0) d->p[d->len++] = '\n';
  if (n > 0) memcpy(d->p + d->len, v, n);
  d->len += n;
  p->ndata++;
  return 0;
}

/* Only ASCII digits count; a value too large for long is clamped. */
static void on_retry(sse_parser *p, const char *v, size_t n) {
  long r = 0;
  size_t i;
  if (n == 0) return;
  for (i = 0; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return;
  for (i = 0; i < n; i++) {
    int d = v[i] - '0';
    if (r > (LONG_MAX - d) / 10) {
      r = LONG_MAX;
      break;
    }
    r = r * 10 + d;
  }
  p->retry = r;
}

/* Event and id pointers share the fallbacks sse_pending uses too. */
static void fill_meta(const sse_parser *p, sse_event *ev) {
  ev->type = p->type.len ? p->type.p : "message";
  ev->type_len = p->type.len ? p->type.len : 7;
  ev->id = p->id.len ? p->id.p : "";
  ev->id_len = p->id.len;
}

/*
 * Blank line. The buffers are emptied by length only: their bytes stay put,
 * so ev remains valid until the next call, as sse.h promises.
 */
static int dispatch(sse_parser *p, sse_event *ev) {
  if (p->ndata == 0) {
    p->type.len = 0;
    return 0;
  }
  fill_meta(p, ev);
  if (p->dref != NULL) {
    ev->data = p->dref;
    ev->data_len = p->dref_len;
    p->dref = NULL;
  } else {
    ev->data = p->data.len ? p->data.p : "";
    ev->data_len = p->data.len;
  }
  p->ndata = 0;
  p->data.len = 0;
  p->type.len = 0;
  return SSE_EVENT;
}

/* One complete line without its terminator. in_place: it lies in the
   caller's buffer (so a data value may be borrowed) rather than p->line. */
static int process_line(sse_parser *p, const char *line, size_t n, int in_place, sse_event *ev) {
  const char *v;
  size_t vn;
  if (n == 0) return dispatch(p, ev);
  if (line[0] == ':') return 0;
  switch (split_field(line, n, &v, &vn)) {
  case F_DATA: return on_data(p, v, vn, in_place);
  case F_EVENT: return buf_set(&p->type, v, vn);
  case F_ID: return memchr(v, '\0', vn) ? 0 : buf_set(&p->id, v, vn);
  case F_RETRY: on_retry(p, v, vn); return 0;
  default: return 0;
  }
}

/*
 * Takes the next line from [*ps, end): parses it in place when it is whole
 * there, completes it in p->line when an earlier feed began it, or stores
 * the unterminated rest in p->line. A CR ends its line at once; skip_lf
 * swallows an LF that follows, even in the next feed.
 */
static int next_line(sse_parser *p, const char **ps, const char *end, sse_event *ev) {
  const char *s = *ps, *eol = find_eol(s, end);
  size_t n;
  int rc;
  if (eol == NULL) {
    *ps = end;
    return line_append(p, s, (size_t)(end - s));
  }
  n = (size_t)(eol - s);
  p->skip_lf = (*eol == '\r');
  *ps = eol + 1;
  if (p->line.len == 0) {
    if (n > p->max_event - buffered(p)) return SSE_ERR_TOO_BIG;
    return process_line(p, s, n, 1, ev);
  }
  if ((rc = line_append(p, s, n)) < 0) return rc;
  n = p->line.len;
  p->line.len = 0; /* bytes stay valid while process_line reads them */
  return process_line(p, p->line.p, n, 0, ev);
}

/*
 * A BOM may arrive split across feeds, so the bytes matched so far are
 * counted in p->bom; on a mismatch they were ordinary text and become the
 * start of the first line.
 */
static int strip_bom(sse_parser *p, const char **ps, const char *end) {
  const char *s = *ps;
  while (p->bom < 3 && s < end) {
    if ((unsigned char)*s != sse_bom[p->bom]) {
      size_t k = p->bom;
      p->bom = 3;
      *ps = s;
      return line_append(p, (const char *)sse_bom, k);
    }
    s++;
    p->bom++;
  }
  *ps = s;
  return 0;
}

void sse_init(sse_parser *p, size_t max_event) {
  memset(p, 0, sizeof *p);
  p->max_event = max_event ? max_event : SSE_DEFAULT_MAX_EVENT;
  p->retry = -1;
}

void sse_free(sse_parser *p) {
  size_t max = p->max_event;
  bt_buf_free(&p->line);
  bt_buf_free(&p->data);
  bt_buf_free(&p->type);
  bt_buf_free(&p->id);
  sse_init(p, max); /* a second sse_free is harmless */
}

void sse_reset(sse_parser *p) {
  p->line.len = p->data.len = p->type.len = p->id.len = 0;
  p->ndata = 0;
  p->dref = NULL;
  p->dref_len = 0;
  p->retry = -1;
  p->err = 0;
  p->bom = 0;
  p->skip_lf = 0;
}

int sse_feed(sse_parser *p, const char *buf, size_t len, size_t *consumed, sse_event *ev) {
  const char *s = buf, *end;
  int rc = p->err;
  *consumed = 0;
  if (rc != 0 || len == 0) return rc;
  end = buf + len;
  if (p->bom < 3 && (rc = strip_bom(p, &s, end)) < 0) goto fail;
  while (s < end) {
    if (p->skip_lf) {
      p->skip_lf = 0;
      if (*s == '\n' && ++s == end) break;
    }
    rc = next_line(p, &s, end, ev);
    if (rc == SSE_EVENT) {
      *consumed = (size_t)(s - buf);
      return rc;
    }
    if (rc < 0) goto fail;
  }
  /* The caller may reuse buf once everything is consumed. */
  if (p->dref != NULL && (rc = materialize(p)) < 0) goto fail;
  *consumed = len;
  return SSE_NEED_MORE;
fail:
  p->err = rc;
  p->dref = NULL;
  *consumed = (size_t)(s - buf);
  return rc;
}

/* Joins the pending data with the unterminated line's value, in the spare
   room of p->data so its length, and so later parsing, is untouched. */
static int pending_join(sse_parser *p, sse_event *ev, const char *v, size_t n) {
  bt_buf *d = &p->data;
  if (n >= SIZE_MAX - d->len || buf_reserve(d, 1 + n) < 0) return 0;
  d->p[d->len] = '\n';
  if (n > 0) memcpy(d->p + d->len + 1, v, n);
  ev->data = d->p;
  ev->data_len = d->len + 1 + n;
  return 1;
}

/* Between feeds p->dref is always NULL: sse_feed copies a borrowed data
   line before returning SSE_NEED_MORE and gives it away with SSE_EVENT. */
int sse_pending(sse_parser *p, sse_event *ev) {
  const char *v = NULL;
  size_t vn = 0;
  int kind = F_OTHER;
  if (p->err != 0) return 0;
  if (p->line.len > 0 && p->line.p[0] != ':') kind = split_field(p->line.p, p->line.len, &v, &vn);
  if (p->ndata == 0 && kind != F_DATA) return 0;
  fill_meta(p, ev);
  if (kind == F_EVENT) {
    ev->type = vn ? v : "message";
    ev->type_len = vn ? vn : 7;
  } else if (kind == F_ID && memchr(v, '\0', vn) == NULL) {
    ev->id = vn ? v : "";
    ev->id_len = vn;
  }
  if (kind == F_DATA && p->ndata > 0) return pending_join(p, ev, v, vn);
  if (kind == F_DATA) {
    ev->data = v;
    ev->data_len = vn;
  } else {
    ev->data = p->data.len ? p->data.p : "";
    ev->data_len = p->data.len;
  }
  return 1;
}

long sse_retry(const sse_parser *p) { return p->retry; }
