/*
 * test_sse.c: unit tests for the SSE parser (csrc/sse.c), plain C, no Lua.
 *
 * sse.c and buf.c are included rather than linked so the tests can swap the
 * allocator of buf.c (BT_BUF_REALLOC), the only one sse.c uses, to make
 * allocations fail on purpose. Every stream is fed
 * whole, split in two at every byte boundary, split in three at every pair
 * of boundaries (short streams), and one byte per feed; every way must give
 * the same events. Each feed's bytes are copied to end right before an
 * unmapped page, as picohttpparser's tests do, so a read past the end
 * faults even without a sanitizer.
 *
 * Build and run (from the repository root):
 *   cc -std=c99 -g -O1 -Wall -Wextra -Wpedantic \
 *      -fsanitize=address,undefined -fno-sanitize-recover=all \
 *      -o test_sse csrc/test/test_sse.c && ./test_sse
 */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long alloc_count;   /* reallocs that returned memory or failed */
static long alloc_fail_at; /* fail the Nth realloc; 0 = never */

static void *test_realloc(void *p, size_t n) {
  if (++alloc_count == alloc_fail_at) return NULL;
  return realloc(p, n);
}

#define BT_BUF_REALLOC test_realloc
#include "../buf.c"
#include "../sse.c"
#define BT_TEST_GUARD
#define GUARD_ROOM (1u << 20)
#include "test_util.h"

/* ---- a growable log of what a run produced ---- */

typedef struct {
  char *p;
  size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL) abort();
    b->cap = cap;
  }
  if (n > 0) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* "[type|data|id]": readable, and the tests keep '|' and ']' out of data. */
static void sb_event(strbuf *b, const char *prefix, const sse_event *ev) {
  sb_str(b, prefix);
  sb_str(b, "[");
  sb_add(b, ev->type, ev->type_len);
  sb_str(b, "|");
  sb_add(b, ev->data, ev->data_len);
  sb_str(b, "|");
  sb_add(b, ev->id, ev->id_len);
  sb_str(b, "]");
}

enum { LOG_PENDING = 1, LOG_RETRY = 2, NO_GUARD = 4 };

/*
 * Feeds one piece, taking every event out of it; returns the parser's last
 * code. Checks the sse_feed contract on the way.
 */
static int feed_piece(sse_parser *p, const char *s, size_t n, int flags, strbuf *log) {
  const char *g = s;
  size_t off = 0;
  if (!(flags & NO_GUARD) && n <= GUARD_ROOM) g = guarded(s, n);
  for (;;) {
    sse_event ev;
    size_t used = (size_t)-1;
    int rc = sse_feed(p, g + off, n - off, &used, &ev);
    if (used > n - off) {
      sb_str(log, "!consumed>len");
      return -100;
    }
    off += used;
    if (rc == SSE_EVENT) {
      if (used == 0) sb_str(log, "!event-without-bytes");
      sb_event(log, "", &ev);
      continue;
    }
    if (rc == SSE_NEED_MORE && off != n) sb_str(log, "!need-more-not-all");
    return rc;
  }
}

/* Runs a stream cut at the given positions (ascending, within len). */
static void run_cuts(const char *in, size_t len, size_t max, int flags, const size_t *cuts,
                     int ncuts, strbuf *log) {
  sse_parser p;
  size_t start = 0;
  int i, rc = 0;
  sse_init(&p, max);
  for (i = 0; i <= ncuts && rc >= 0; i++) {
    size_t stop = i < ncuts ? cuts[i] : len;
    rc = feed_piece(&p, in + start, stop - start, flags, log);
    start = stop;
  }
  if (rc < 0) {
    char e[32];
    size_t used = 7;
    sse_event ev;
    snprintf(e, sizeof e, "!%d", rc);
    sb_str(log, e);
    /* The error sticks, and nothing more is consumed. */
    if (sse_feed(&p, "\n\n", 2, &used, &ev) != rc || used != 0) sb_str(log, "!not-sticky");
  } else {
    sse_event ev;
    char r[48];
    if ((flags & LOG_PENDING) && sse_pending(&p, &ev)) sb_event(log, "P", &ev);
    snprintf(r, sizeof r, "R%ld", sse_retry(&p));
    if (flags & LOG_RETRY) sb_str(log, r);
  }
  sse_free(&p);
}

static void run_bytewise(const char *in, size_t len, size_t max, int flags, strbuf *log) {
  size_t *cuts = malloc((len + 1) * sizeof *cuts);
  size_t i;
  if (cuts == NULL) abort();
  for (i = 0; i < len; i++) cuts[i] = i + 1;
  run_cuts(in, len, max, flags, cuts, len ? (int)len - 1 : 0, log);
  free(cuts);
}

static void show_mismatch(const char *name, const char *how, const strbuf *got, const char *want) {
  printf("FAIL %s (%s)\n  want: %s\n  got:  %s\n", name, how, want, got->p ? got->p : "");
}

/*
 * The core check: the stream gives `want` fed whole, cut in two anywhere,
 * cut in three anywhere (when short), and one byte at a time.
 */
static void check_stream(const char *name, const char *in, size_t len, size_t max, int flags,
                         const char *want, size_t wlen) {
  strbuf log = {0};
  size_t i, j, cut[2];
  int bad = 0;
  run_cuts(in, len, max, flags, NULL, 0, &log);
  if (log.len != wlen || memcmp(log.p ? log.p : "", want, log.len) != 0) {
    show_mismatch(name, "whole", &log, want);
    bad = 1;
  }
  for (i = 0; i <= len && !bad; i++) {
    log.len = 0;
    cut[0] = i;
    run_cuts(in, len, max, flags, cut, 1, &log);
    if (log.len != wlen || memcmp(log.p ? log.p : "", want, log.len) != 0) {
      char how[48];
      snprintf(how, sizeof how, "cut at %zu", i);
      show_mismatch(name, how, &log, want);
      bad = 1;
    }
  }
  for (i = 0; i <= len && len <= 96 && !bad; i++)
    for (j = i; j <= len && !bad; j++) {
      log.len = 0;
      cut[0] = i;
      cut[1] = j;
      run_cuts(in, len, max, flags, cut, 2, &log);
      if (log.len != wlen || memcmp(log.p ? log.p : "", want, log.len) != 0) {
        char how[64];
        snprintf(how, sizeof how, "cuts at %zu,%zu", i, j);
        show_mismatch(name, how, &log, want);
        bad = 1;
      }
    }
  if (!bad) {
    log.len = 0;
    run_bytewise(in, len, max, flags, &log);
    if (log.len != wlen || memcmp(log.p ? log.p : "", want, log.len) != 0) {
      show_mismatch(name, "byte by byte", &log, want);
      bad = 1;
    }
  }
  free(log.p);
  if (bad) failed++;
  else passed++;
}

#define CHECK(name, lit, max, flags, want)                                                         \
  check_stream((name), (lit), sizeof(lit) - 1, (max), (flags), (want), strlen(want))

/* ---- the WHATWG rules, one group at a time ---- */

static void test_line_ends(void) {
  CHECK("LF", "data: hello\n\n", 0, 0, "[message|hello|]");
  CHECK("CRLF", "data: hello\r\n\r\n", 0, 0, "[message|hello|]");
  CHECK("CR", "data: hello\r\r", 0, 0, "[message|hello|]");
  CHECK("mixed", "data: a\r\ndata: b\rdata: c\n\r\n", 0, 0, "[message|a\nb\nc|]");
  /* Were the LF after a CR a second line end, "a" would dispatch alone. */
  CHECK("CRLF is one end", "data: a\r\ndata: b\n\n", 0, 0, "[message|a\nb|]");
  CHECK("LFCR is two ends", "data: a\n\rdata: b\n\n", 0, 0, "[message|a|][message|b|]");
  CHECK("CR CR LF", "data: a\r\r\ndata: b\r\n\r\n", 0, 0, "[message|a|][message|b|]");
  CHECK("several events", "data: 1\n\ndata: 2\r\n\r\ndata: 3\r\r", 0, 0,
        "[message|1|][message|2|][message|3|]");
}

/* A CR ends its line at once: the event must not wait for the next byte. */
static void test_cr_immediate(void) {
  sse_parser p;
  sse_event ev;
  size_t used;
  int rc;
  sse_init(&p, 0);
  rc = sse_feed(&p, "data: x\r\r", 9, &used, &ev);
  ok(rc == SSE_EVENT && used == 9 && ev.data_len == 1 && ev.data[0] == 'x',
     "CR dispatches without waiting", NULL);
  rc = sse_feed(&p, "\ndata: y\n\n", 10, &used, &ev);
  ok(rc == SSE_EVENT && used == 10 && ev.data_len == 1 && ev.data[0] == 'y',
     "LF after CR across feeds is skipped", NULL);
  rc = sse_feed(&p, "data: z\r", 8, &used, &ev);
  ok(rc == SSE_NEED_MORE && used == 8, "CR at end of feed", NULL);
  rc = sse_feed(&p, "\r", 1, &used, &ev);
  ok(rc == SSE_EVENT && used == 1 && ev.data_len == 1 && ev.data[0] == 'z',
     "CR then CR across feeds dispatches", NULL);
  /* Only one LF is skipped: the second is a blank line. */
  sse_free(&p);
  sse_init(&p, 0);
  rc = sse_feed(&p, "data: w\r", 8, &used, &ev);
  rc = sse_feed(&p, "\n", 1, &used, &ev);
  ok(rc == SSE_NEED_MORE, "skipped LF is not a blank line", NULL);
  rc = sse_feed(&p, "\n", 1, &used, &ev);
  ok(rc == SSE_EVENT && ev.data_len == 1 && ev.data[0] == 'w', "next LF is", NULL);
  sse_free(&p);
}

static void test_bom(void) {
  CHECK("BOM",
        "\xEF\xBB\xBF"
        "data: x\n\n",
        0, 0, "[message|x|]");
  CHECK("BOM CRLF",
        "\xEF\xBB\xBF"
        "data: x\r\n\r\n",
        0, 0, "[message|x|]");
  CHECK("BOM then blank", "\xEF\xBB\xBF\ndata: x\n\n", 0, 0, "[message|x|]");
  /* Only one: a second BOM makes the field name "\xEF\xBB\xBFdata". */
  CHECK("second BOM kept",
        "\xEF\xBB\xBF\xEF\xBB\xBF"
        "data: x\n\ndata: y\n\n",
        0, 0, "[message|y|]");
  CHECK("BOM inside a value kept", "data: \xEF\xBB\xBFx\n\n", 0, 0, "[message|\xEF\xBB\xBFx|]");
  CHECK("BOM later in stream kept",
        "data: a\n\n\xEF\xBB\xBF"
        "data: b\n\n",
        0, 0, "[message|a|]");
  /* A partial BOM is ordinary text at the start of the first line. */
  CHECK("partial BOM 1",
        "\xEF"
        "data: x\n\ndata: y\n\n",
        0, 0, "[message|y|]");
  CHECK("partial BOM 2",
        "\xEF\xBB"
        "data: x\n\ndata: y\n\n",
        0, 0, "[message|y|]");
  CHECK("partial BOM then LF", "\xEF\xBB\ndata: y\n\n", 0, 0, "[message|y|]");
  CHECK("partial BOM then CR", "\xEF\r\ndata: y\r\n\r\n", 0, 0, "[message|y|]");
  CHECK("BOM only", "\xEF\xBB\xBF", 0, LOG_PENDING, "");
  CHECK("partial BOM at end", "\xEF\xBB", 0, LOG_PENDING, "");
  CHECK("BOM-like value",
        "\xEF\xBB\xBF"
        "data:\xEF\xBB\n\n",
        0, 0, "[message|\xEF\xBB|]");
  /* The limit counts the partial BOM bytes, which are line bytes. */
  CHECK("partial BOM over limit",
        "\xEF\xBB"
        "abc\n",
        4, 0, "!-1");
  CHECK("partial BOM at limit",
        "\xEF\xBB"
        "ab\ndata:1\n\n",
        6, 0, "[message|1|]");
}

static void test_fields(void) {
  CHECK("comments", ": hi\ndata: a\n: mid\ndata: b\n\n", 0, 0, "[message|a\nb|]");
  CHECK("comment only", ": ping\n\n:\n\n", 0, 0, "");
  CHECK("comment with CR", ":x\rdata: a\r\r", 0, 0, "[message|a|]");
  CHECK("no space", "data:a\n\n", 0, 0, "[message|a|]");
  CHECK("two spaces keep one", "data:  a\n\n", 0, 0, "[message| a|]");
  CHECK("trailing space kept", "data: a \n\n", 0, 0, "[message|a |]");
  CHECK("tab not stripped", "data:\ta\n\n", 0, 0, "[message|\ta|]");
  CHECK("colon in value", "data: a:b: c\n\n", 0, 0, "[message|a:b: c|]");
  CHECK("data joins", "data: a\ndata: b\ndata: c\n\n", 0, 0, "[message|a\nb\nc|]");
  CHECK("empty data dispatches", "data:\n\n", 0, 0, "[message||]");
  CHECK("space-only data", "data: \n\n", 0, 0, "[message||]");
  CHECK("no colon is empty value", "data\n\n", 0, 0, "[message||]");
  CHECK("two empty data lines", "data\ndata\n\n", 0, 0, "[message|\n|]");
  CHECK("empty then value", "data:\ndata: x\n\n", 0, 0, "[message|\nx|]");
  CHECK("blank without data", "\n\n\r\n\r", 0, 0, "");
  CHECK("case matters", "Data: x\n\nDATA: y\n\n", 0, 0, "");
  CHECK("name with space", "data : x\n\n data: y\n\n", 0, 0, "");
  CHECK("unknown fields", "foo: 1\ndata: x\nbar\n\n", 0, 0, "[message|x|]");
  CHECK("near names", "dat: 1\ndataa: 2\nide: 3\nevents: 4\nretr: 5\ndata: x\n\n", 0, LOG_RETRY,
        "[message|x|]R-1");
  CHECK("event type", "event: add\ndata: x\n\ndata: y\n\n", 0, 0, "[add|x|][message|y|]");
  CHECK("event last wins", "event: a\nevent: b\ndata: x\n\n", 0, 0, "[b|x|]");
  CHECK("event reset without dispatch", "event: a\n\ndata: b\n\n", 0, 0, "[message|b|]");
  CHECK("event empty is message", "event: a\nevent:\ndata: x\n\n", 0, 0, "[message|x|]");
  CHECK("event no colon", "event\ndata: x\n\n", 0, 0, "[message|x|]");
  CHECK("event after data", "data: x\nevent: late\n\n", 0, 0, "[late|x|]");
}

static void test_id(void) {
  CHECK("id persists", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", 0, 0,
        "[message|a|1][message|b|1][message|c|]");
  CHECK("id without data", "id: 5\n\ndata: x\n\n", 0, 0, "[message|x|5]");
  CHECK("id empty resets", "id: 5\ndata: a\n\nid:\ndata: b\n\n", 0, 0, "[message|a|5][message|b|]");
  CHECK("id with NUL ignored", "id: 1\n\nid: a\0b\ndata: x\n\n", 0, 0, "[message|x|1]");
  CHECK("id NUL at end ignored", "id: 1\nid: ab\0\ndata: x\n\n", 0, 0, "[message|x|1]");
  CHECK("id space", "id:  7\ndata: x\n\n", 0, 0, "[message|x| 7]");
  CHECK("id after data", "data: x\nid: 9\n\ndata: y\n\n", 0, 0, "[message|x|9][message|y|9]");
  check_stream("NUL in data passes", "data: a\0b\n\n", 11, 0, 0, "[message|a\0b|]", 14);
}

static void test_retry(void) {
  CHECK("retry", "retry: 3000\n", 0, LOG_RETRY, "R3000");
  CHECK("retry none", "data: x\n\n", 0, LOG_RETRY, "[message|x|]R-1");
  CHECK("retry last valid", "retry: 100\nretry: x\nretry: 1a\nretry: -1\nretry:\nretry\n", 0,
        LOG_RETRY, "R100");
  CHECK("retry two spaces", "retry:  5\n", 0, LOG_RETRY, "R-1");
  CHECK("retry no space", "retry:42\n", 0, LOG_RETRY, "R42");
  CHECK("retry zero", "retry: 7\nretry: 0\n", 0, LOG_RETRY, "R0");
  CHECK("retry leading zeros", "retry: 007\n", 0, LOG_RETRY, "R7");
  CHECK("retry unterminated", "retry: 12", 0, LOG_RETRY, "R-1");
  CHECK("retry does not dispatch", "retry: 1\n\n", 0, LOG_RETRY, "R1");
  {
    char want[48];
    snprintf(want, sizeof want, "R%ld", LONG_MAX);
    CHECK("retry huge clamps", "retry: 99999999999999999999999999\n", 0, LOG_RETRY, want);
  }
}

static void test_pending(void) {
  CHECK("unfinished discarded", "data: a\n", 0, 0, "");
  CHECK("unfinished discarded 2", "data: a\n\ndata: b", 0, 0, "[message|a|]");
  CHECK("pending terminated", "data: a\n", 0, LOG_PENDING, "P[message|a|]");
  CHECK("pending DONE", "data: [DONE]", 0, LOG_PENDING, "P[message|[DONE]|]");
  CHECK("pending DONE CR", "data: [DONE]\r", 0, LOG_PENDING, "P[message|[DONE]|]");
  CHECK("pending join", "data: a\ndata: [DONE]", 0, LOG_PENDING, "P[message|a\n[DONE]|]");
  CHECK("pending after event", "data: x\n\ndata: y\nevent: z", 0, LOG_PENDING,
        "[message|x|]P[z|y|]");
  CHECK("pending event empty", "event: q\ndata: y\nevent:", 0, LOG_PENDING, "P[message|y|]");
  CHECK("pending id", "id: 7\ndata: q\nid: 8", 0, LOG_PENDING, "P[message|q|8]");
  CHECK("pending id NUL", "id: 7\ndata: q\nid: 8\0", 0, LOG_PENDING, "P[message|q|7]");
  CHECK("pending empty data", "data:", 0, LOG_PENDING, "P[message||]");
  CHECK("pending no colon", "data", 0, LOG_PENDING, "P[message||]");
  CHECK("no pending: comment", ": data: x", 0, LOG_PENDING, "");
  CHECK("no pending: event only", "event: x", 0, LOG_PENDING, "");
  CHECK("no pending: after event", "data: x\n\n", 0, LOG_PENDING, "[message|x|]");
  CHECK("no pending: blank", "data: x\n\n\n", 0, LOG_PENDING, "[message|x|]");
  CHECK("pending comment after data", "data: x\n: c", 0, LOG_PENDING, "P[message|x|]");
  CHECK("pending other field", "data: x\nfoo: 1", 0, LOG_PENDING, "P[message|x|]");
}

/* sse_pending must leave parsing exactly as it was. */
static void test_pending_no_side_effects(void) {
  static const char *const parts[] = {"data: a\ndata: b", "\ndata: c", "\n\n"};
  sse_parser p;
  sse_event ev;
  size_t used;
  int i, rc = 0;
  sse_init(&p, 0);
  for (i = 0; i < 3; i++) {
    int pr = sse_pending(&p, &ev);
    if (i == 1)
      ok(pr == 1 && ev.data_len == 3 && memcmp(ev.data, "a\nb", 3) == 0, "pending mid-stream",
         NULL);
    rc = sse_feed(&p, parts[i], strlen(parts[i]), &used, &ev);
  }
  ok(rc == SSE_EVENT && ev.data_len == 5 && memcmp(ev.data, "a\nb\nc", 5) == 0,
     "pending changes nothing", NULL);
  ok(sse_pending(&p, &ev) == 0, "nothing pending after dispatch", NULL);
  sse_free(&p);
}

static void test_utf8(void) {
  CHECK("utf8 split", "data: h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\n\n", 0, 0,
        "[message|h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80|]");
  CHECK("utf8 event and id", "event: \xC3\xA9v\nid: \xE2\x82\xAC\ndata: \xF0\x9F\x98\x80\n\n", 0, 0,
        "[\xC3\xA9v|\xF0\x9F\x98\x80|\xE2\x82\xAC]");
  CHECK("invalid utf8 passes", "data: \xFF\xFE\xC3\n\n", 0, 0, "[message|\xFF\xFE\xC3|]");
}

static void test_limits(void) {
  CHECK("line at limit", "data: 0123456789\n\n", 16, 0, "[message|0123456789|]");
  CHECK("line over limit", "data: 01234567890\n\n", 16, 0, "!-1");
  CHECK("unterminated over limit", "data: 01234567890", 16, 0, "!-1");
  CHECK("comment over limit", ": 01234567890123456\n", 16, 0, "!-1");
  CHECK("type counts", "event: abc\ndata: 0123456\n\n", 16, 0, "[abc|0123456|]");
  CHECK("type counts over", "event: abcd\ndata: 0123456\n\n", 16, 0, "!-1");
  CHECK("data accumulates", "data: 0123\ndata: 0123\ndata: 0123\n\n", 16, 0, "!-1");
  CHECK("data at limit", "data: 01\ndata: 0123\ndata: 0\n\n", 16, 0, "[message|01\n0123\n0|]");
  CHECK("events before error kept", "data: a\n\ndata: 0123456789abcdefgh\n\ndata: b\n\n", 16, 0,
        "[message|a|]!-1");
  CHECK("limit resets per event", "data: 0123456789\n\ndata: 0123456789\n\n", 16, 0,
        "[message|0123456789|][message|0123456789|]");
  CHECK("limit 1", "a\n\n:\n\nb\n", 1, 0, "");
  CHECK("limit 1 over", "ab\n", 1, 0, "!-1");
  CHECK("CRLF not counted", "data:0123456789a\r\n\r\n", 16, 0, "[message|0123456789a|]");
}

/* A 50 MB line with the default limit fails with bounded memory. */
static void test_huge_line(void) {
  size_t total = 50u * 1024u * 1024u, chunk = 65536, fed = 0;
  char *big = malloc(total + 8);
  sse_parser p;
  sse_event ev;
  size_t used;
  int rc = SSE_NEED_MORE;
  if (big == NULL) abort();
  memcpy(big, "data: ", 6);
  memset(big + 6, 'a', total - 6);
  memcpy(big + total, "\n\n", 2);
  sse_init(&p, 0);
  while (fed < total && rc == SSE_NEED_MORE) {
    rc = sse_feed(&p, big + fed, chunk, &used, &ev);
    fed += chunk;
  }
  ok(rc == SSE_ERR_TOO_BIG, "50 MB line in pieces errors", NULL);
  ok(fed <= SSE_DEFAULT_MAX_EVENT + chunk, "errors once the limit is passed", NULL);
  ok(p.line.cap <= SSE_DEFAULT_MAX_EVENT, "line buffer bounded", NULL);
  ok(sse_feed(&p, "\n\n", 2, &used, &ev) == SSE_ERR_TOO_BIG, "error sticks", NULL);
  sse_free(&p);
  /* Whole in one call: the line lies in the caller's buffer, nothing is copied. */
  sse_init(&p, 0);
  rc = sse_feed(&p, big, total + 2, &used, &ev);
  ok(rc == SSE_ERR_TOO_BIG && p.line.cap == 0 && p.data.cap == 0,
     "50 MB line whole errors without copying", NULL);
  sse_free(&p);
  /* Unterminated and whole: rejected before anything is stored. */
  sse_init(&p, 0);
  rc = sse_feed(&p, big, total, &used, &ev);
  ok(rc == SSE_ERR_TOO_BIG && p.line.cap == 0, "50 MB partial line not copied", NULL);
  sse_free(&p);
  free(big);
}

/* Lines longer than find_eol's first windows, with CR and LF placed apart. */
static void test_long_lines(void) {
  size_t n = 70000, i;
  char *s = malloc(2 * n + 64), *want = malloc(2 * n + 64);
  strbuf log = {0};
  int k;
  if (s == NULL || want == NULL) abort();
  /* CR at 300, LF at 600, both in find_eol's second window: the CR wins. */
  for (k = 0; k < 2; k++) {
    char first = k ? '\n' : '\r', second = k ? '\r' : '\n';
    memcpy(s, "data: ", 6);
    for (i = 6; i < 300; i++) s[i] = (char)('a' + i % 26);
    s[300] = first;
    s[301] = first; /* blank line: dispatch */
    for (i = 302; i < 600; i++) s[i] = (char)('a' + i % 26);
    s[600] = second;
    memcpy(want, "[message|", 9);
    memcpy(want + 9, s + 6, 294);
    memcpy(want + 303, "|]", 3);
    check_stream(k ? "LF before a later CR" : "CR before a later LF", s, 601, 0, 0, want,
                 strlen(want));
  }
  /* Long LF-only and CR-only lines, past the largest window. */
  for (k = 0; k < 2; k++) {
    char eol = k ? '\r' : '\n';
    memcpy(s, "data: ", 6);
    for (i = 6; i < n; i++) s[i] = (char)('a' + i % 26);
    s[n] = eol;
    s[n + 1] = eol;
    log.len = 0;
    run_cuts(s, n + 2, 0, NO_GUARD, NULL, 0, &log);
    ok(log.len == n - 6 + 11 && memcmp(log.p + 9, s + 6, n - 6) == 0,
       k ? "70 kB CR line" : "70 kB LF line", NULL);
  }
  free(log.p);
  free(s);
  free(want);
}

/* ---- an OpenAI-shaped stream ---- */

static void build_openai(strbuf *in, strbuf *want, int chunks, const char *eol) {
  int i;
  char line[512], ev[600];
  static const char *const words[] = {"Hello", " w\xC3\xB6rld", ",", " \xE2\x82\xAC", "!\\n"};
  for (i = 0; i < chunks; i++) {
    if (i == 0)
      snprintf(line, sizeof line,
               "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
               "\"content\":\"\"},\"finish_reason\":null}]}");
    else
      snprintf(line, sizeof line,
               "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
               "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},"
               "\"finish_reason\":null}]}",
               words[i % 5]);
    sb_str(in, "data: ");
    sb_str(in, line);
    sb_str(in, eol);
    sb_str(in, eol);
    if (i % 7 == 3) {
      sb_str(in, ": keep-alive");
      sb_str(in, eol);
    }
    snprintf(ev, sizeof ev, "[message|%s|]", line);
    sb_str(want, ev);
  }
  sb_str(in, "data: [DONE]");
  sb_str(in, eol);
  sb_str(in, eol);
  sb_str(want, "[message|[DONE]|]");
}

static void test_openai(void) {
  static const char *const eols[] = {"\n", "\r\n", "\r"};
  int k;
  for (k = 0; k < 3; k++) {
    strbuf in = {0}, want = {0};
    char name[32];
    build_openai(&in, &want, 24, eols[k]);
    snprintf(name, sizeof name, "openai stream eol %d", k);
    check_stream(name, in.p, in.len, 0, 0, want.p, want.len);
    free(in.p);
    free(want.p);
  }
  {
    strbuf in = {0}, want = {0}, log = {0};
    build_openai(&in, &want, 5000, "\n");
    run_cuts(in.p, in.len, 0, 0, NULL, 0, &log);
    ok(log.len == want.len && memcmp(log.p, want.p, log.len) == 0, "openai 5000 chunks", NULL);
    free(in.p);
    free(want.p);
    free(log.p);
  }
}

/* ---- state management ---- */

static void test_reset_and_free(void) {
  sse_parser p;
  sse_event ev;
  size_t used;
  int rc;
  sse_init(&p, 8);
  rc = sse_feed(&p, "id: 1\nretry: 5\ndata: 0123456789\n\n", 33, &used, &ev);
  ok(rc == SSE_ERR_TOO_BIG, "error before reset", NULL);
  sse_reset(&p);
  ok(sse_retry(&p) == -1, "reset clears retry", NULL);
  rc = sse_feed(&p,
                "\xEF\xBB\xBF"
                "data: x\n\n",
                12, &used, &ev);
  ok(rc == SSE_EVENT && ev.data_len == 1 && ev.id_len == 0,
     "reset clears error and id, BOM stripped again", NULL);
  rc = sse_feed(&p, "data: a\ndata", 12, &used, &ev);
  sse_reset(&p);
  ok(sse_pending(&p, &ev) == 0, "reset drops the partial event", NULL);
  rc = sse_feed(&p, "data: b\n\n", 9, &used, &ev);
  ok(rc == SSE_EVENT && ev.data_len == 1 && ev.data[0] == 'b', "reset keeps limit", NULL);
  sse_free(&p);
  sse_free(&p); /* twice is harmless */
  ok(p.line.p == NULL && p.max_event == 8, "free leaves a fresh parser", NULL);
  rc = sse_feed(&p, "data: c\n\n", 9, &used, &ev);
  ok(rc == SSE_EVENT && ev.data[0] == 'c', "usable after free", NULL);
  sse_free(&p);
  sse_init(&p, 0);
  rc = sse_feed(&p, NULL, 0, &used, &ev);
  ok(rc == SSE_NEED_MORE && used == 0, "empty feed", NULL);
  ok(p.max_event == SSE_DEFAULT_MAX_EVENT, "0 means default", NULL);
  sse_free(&p);
}

/* Buffers are reused: a steady stream stops allocating. */
static void test_no_steady_alloc(void) {
  strbuf in = {0}, want = {0};
  sse_parser p;
  sse_event ev;
  size_t off, used;
  long start = alloc_count, half = 0;
  build_openai(&in, &want, 200, "\n");
  sse_init(&p, 0);
  for (off = 0; off < in.len; off++) {
    if (sse_feed(&p, in.p + off, 1, &used, &ev) < 0) break;
    if (off == in.len / 2) half = alloc_count;
  }
  ok(alloc_count == half && half - start < 16, "no allocation in steady state", NULL);
  sse_free(&p);
  free(in.p);
  free(want.p);
}

/*
 * Allocation failure at every allocation: the run ends in SSE_ERR_NOMEM
 * with the events before it intact, and (under ASan/valgrind) no leak.
 */
static void test_nomem(void) {
  static const char in[] = "\xEF\xBB"
                           "x\nevent: t\nid: 1\ndata: a\ndata: b\n\ndata: c";
  strbuf good = {0}, log = {0};
  long n, total;
  alloc_count = 0;
  run_bytewise(in, sizeof in - 1, 0, LOG_PENDING, &good);
  total = alloc_count;
  ok(total > 3, "nomem: the stream allocates", NULL);
  for (n = 1; n <= total; n++) {
    char *bang;
    log.len = 0;
    alloc_count = 0;
    alloc_fail_at = n;
    run_bytewise(in, sizeof in - 1, 0, LOG_PENDING, &log);
    bang = log.p ? strstr(log.p, "!-2") : NULL;
    ok(bang != NULL, "nomem: fails with SSE_ERR_NOMEM", log.p);
    if (bang != NULL)
      ok(memcmp(log.p, good.p, (size_t)(bang - log.p)) == 0, "nomem: prefix intact", log.p);
  }
  alloc_fail_at = 0;
  /* Joining in sse_pending may need memory; failing it gives 0, no change. */
  {
    sse_parser p;
    sse_event ev;
    size_t used;
    char line[72];
    memcpy(line, "data: ", 6);
    memset(line + 6, 'x', 64);
    line[70] = '\n';
    sse_init(&p, 0);
    sse_feed(&p, line, 71, &used, &ev);
    sse_feed(&p, "data: b", 7, &used, &ev);
    ok(p.data.len == 64 && p.data.cap == 64, "nomem: data buffer full", NULL);
    alloc_count = 0;
    alloc_fail_at = 1;
    ok(sse_pending(&p, &ev) == 0, "pending join nomem gives 0", NULL);
    alloc_fail_at = 0;
    ok(sse_pending(&p, &ev) == 1 && ev.data_len == 66 && ev.data[64] == '\n' && ev.data[65] == 'b',
       "pending join after", NULL);
    ok(sse_feed(&p, "\n\n", 2, &used, &ev) == SSE_EVENT && ev.data_len == 66,
       "state intact after pending nomem", NULL);
    sse_free(&p);
  }
  free(good.p);
  free(log.p);
}

int main(void) {
  guard_init();
  test_line_ends();
  test_cr_immediate();
  test_bom();
  test_fields();
  test_id();
  test_retry();
  test_pending();
  test_pending_no_side_effects();
  test_utf8();
  test_limits();
  test_huge_line();
  test_long_lines();
  test_openai();
  test_reset_and_free();
  test_no_steady_alloc();
  test_nomem();
  printf("sse: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
