/*
 * sse.h: an incremental Server-Sent Events parser in plain C99, following the
 * WHATWG HTML "interpreting an event stream" rules. No Lua here, so it can be
 * unit-tested and fuzzed on its own (see csrc/test/test_sse.c and
 * csrc/fuzz/fuzz_sse.c); lsse.c binds it as baseten.sse and http.c feeds it
 * the body of a streaming response.
 *
 * Feed bytes as they arrive, in pieces of any size; each call stops after the
 * first event it completes, so the caller handles one event at a time and
 * feeds the rest again:
 *
 *   size_t off = 0, used;
 *   sse_event ev;
 *   int rc;
 *   while ((rc = sse_feed(&p, buf + off, len - off, &used, &ev)) == SSE_EVENT) {
 *     off += used;
 *     ... use ev before the next call ...
 *   }
 *   if (rc < 0) ... SSE_ERR_TOO_BIG or SSE_ERR_NOMEM ...
 *
 * The parser allocates only to hold what crosses a feed boundary (a partial
 * line, the data of an unfinished event, the event type, the last event id),
 * and reuses those buffers, so a steady stream allocates nothing.
 */
#ifndef BT_SSE_H
#define BT_SSE_H

#include <stddef.h>

#include "buf.h"

enum {
  SSE_NEED_MORE = 0,    /* every byte consumed, no event completed */
  SSE_EVENT = 1,        /* an event completed; ev is filled */
  SSE_ERR_TOO_BIG = -1, /* one event needed more than max_event bytes */
  SSE_ERR_NOMEM = -2    /* an allocation failed */
};

#define SSE_DEFAULT_MAX_EVENT (16u * 1024u * 1024u)

/*
 * All state is public so the parser can be embedded in another struct (the
 * Lua userdata, http.c's transfer); treat the fields as private anyway.
 */
typedef struct sse_parser {
  bt_buf line;  /* a line begun in an earlier feed, not yet terminated */
  bt_buf data;  /* data lines of the current event, joined with '\n' */
  bt_buf type;  /* event type of the current event; empty = "message" */
  bt_buf id;    /* last event id; persists across events */
  size_t ndata; /* data lines in the current event (0: nothing to dispatch) */
  /*
   * The first data line of an event, when it lies wholly inside the
   * caller's buffer, is not copied: dref points at it until the event is
   * dispatched or the feed ends (then it is copied into data).
   */
  const char *dref;
  size_t dref_len;
  size_t max_event;      /* limit for line + data + type, in bytes */
  long retry;            /* last valid retry field in ms, -1 if none */
  int err;               /* 0, or the error every later call returns */
  unsigned char bom;     /* leading BOM bytes matched so far; 3 = done */
  unsigned char skip_lf; /* the last line ended with CR: skip one LF */
} sse_parser;

/*
 * An event. Pointers are never NULL and stay valid until the next call on
 * the parser -- and, because data may point into the caller's buffer, only
 * as long as the bytes just passed to sse_feed are unchanged.
 */
typedef struct sse_event {
  const char *type;
  size_t type_len; /* "message" when no event field */
  const char *data;
  size_t data_len; /* data lines joined with '\n' */
  const char *id;
  size_t id_len; /* last event id; may be empty */
} sse_event;

/* max_event: the most bytes one event may buffer; 0 = 16 MiB. */
BT_HIDDEN void sse_init(sse_parser *p, size_t max_event);

/* Frees the buffers; the parser may be used again after sse_init. */
BT_HIDDEN void sse_free(sse_parser *p);

/*
 * Back to the start-of-stream state (BOM expected, no event, no last event
 * id, no retry, no error), keeping the buffers' memory for reuse.
 */
BT_HIDDEN void sse_reset(sse_parser *p);

/*
 * Consumes bytes of buf up to and including the end of the first event it
 * completes and sets *consumed to the bytes used. Returns SSE_EVENT (ev
 * filled), SSE_NEED_MORE (all len bytes consumed; a partial line is kept
 * inside the parser), or an error; after an error the parser stays in that
 * state and every later call returns the same error until sse_reset.
 * Never reads outside buf[0, len).
 */
BT_HIDDEN int sse_feed(sse_parser *p, const char *buf, size_t len, size_t *consumed, sse_event *ev);

/*
 * At end of stream: fills ev with the event a blank line would dispatch now,
 * counting an unterminated last line as if it were terminated, and returns
 * 1; returns 0 when no event would be dispatched (no data line), when the
 * parser is in an error state, or when joining the data needed memory that
 * could not be had. Used so a final "data: [DONE]" without its blank line
 * still ends a stream. Changes nothing that affects later parsing; ev is
 * valid until the next call on the parser.
 */
BT_HIDDEN int sse_pending(sse_parser *p, sse_event *ev);

/* The last valid retry value in ms, -1 if none. */
BT_HIDDEN long sse_retry(const sse_parser *p);

#endif
