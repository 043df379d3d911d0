/*
 * fuzz_sse.c: libFuzzer target for the SSE parser (csrc/sse.c).
 *
 * Input layout: byte 0 picks where the stream is cut in two, byte 1 picks
 * the event size limit (high bit set: the 16 MiB default; else 1..128 bytes,
 * so the too-big path is reached), the rest is the stream. The stream is
 * parsed whole, cut in two, one byte per feed (when short), and again after
 * sse_reset; all must give the same events, error, pending event and retry
 * value. Each piece is copied into its own allocation so ASan sees a read
 * past a feed's end. Invariants are checked on every call.
 *
 * Build and run (from the repository root; new inputs go to the first
 * directory, so keep the checked-in seeds second):
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -o fuzz_sse csrc/fuzz/fuzz_sse.c csrc/sse.c
 *   mkdir -p /tmp/sse-corpus
 *   ./fuzz_sse -max_total_time=120 /tmp/sse-corpus csrc/fuzz/corpus/sse
 */
#include "../sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *p;
  size_t len, cap;
} fz_log;

static void must(int cond) {
  if (!cond) __builtin_trap();
}

static void log_add(fz_log *l, const void *s, size_t n) {
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < l->len + n) cap *= 2;
    l->p = realloc(l->p, cap);
    must(l->p != NULL);
    l->cap = cap;
  }
  if (n > 0) memcpy(l->p + l->len, s, n);
  l->len += n;
}

/* Length-prefixed, so no byte in an event can fake another's boundary. */
static void log_field(fz_log *l, const char *s, size_t n) {
  log_add(l, &n, sizeof n);
  log_add(l, s, n);
}

static void log_event(fz_log *l, char tag, const sse_event *ev, size_t max) {
  must(ev->type != NULL && ev->data != NULL && ev->id != NULL);
  must(ev->type_len > 0);
  /* Everything an event carries was held within the limit, except the
     default type, which is a constant and never buffered. */
  must(ev->type_len <= max || (ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0));
  must(ev->data_len <= max && ev->id_len <= max);
  must(memchr(ev->id, '\0', ev->id_len) == NULL);
  log_add(l, &tag, 1);
  log_field(l, ev->type, ev->type_len);
  log_field(l, ev->data, ev->data_len);
  log_field(l, ev->id, ev->id_len);
}

/* Feeds one piece from its own exact-size copy; returns the last code. */
static int feed_piece(sse_parser *p, const uint8_t *s, size_t n, fz_log *l) {
  char *copy = malloc(n ? n : 1);
  size_t off = 0;
  int rc;
  must(copy != NULL);
  if (n > 0) memcpy(copy, s, n);
  for (;;) {
    sse_event ev;
    size_t used = (size_t)-1;
    rc = sse_feed(p, copy + off, n - off, &used, &ev);
    must(used <= n - off);
    off += used;
    if (rc != SSE_EVENT) break;
    must(used > 0);
    log_event(l, 'E', &ev, p->max_event);
  }
  must(rc == SSE_NEED_MORE ? off == n : rc == SSE_ERR_TOO_BIG);
  free(copy);
  return rc;
}

/* Logs the end of a run: error, or pending event and retry value. */
static void log_end(sse_parser *p, int rc, fz_log *l) {
  sse_event ev;
  long retry = sse_retry(p);
  size_t used = 1;
  if (rc < 0) {
    char tag = (char)('0' - rc);
    log_add(l, &tag, 1);
    must(sse_feed(p, "\n\n", 2, &used, &ev) == rc && used == 0); /* sticks */
    must(sse_pending(p, &ev) == 0);
    return;
  }
  if (sse_pending(p, &ev)) log_event(l, 'P', &ev, p->max_event);
  must(retry >= -1);
  log_add(l, &retry, sizeof retry);
}

static void run(sse_parser *p, const uint8_t *s, size_t n, size_t cut, size_t step, fz_log *l) {
  size_t start = 0;
  int rc = 0;
  while (rc >= 0) {
    size_t stop = step ? start + step : (start < cut ? cut : n);
    if (stop > n) stop = n;
    rc = feed_piece(p, s + start, stop - start, l);
    start = stop;
    if (start >= n) break;
  }
  log_end(p, rc, l);
}

static void same(const fz_log *a, const fz_log *b) {
  must(a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sse_parser p;
  fz_log whole = {0}, split = {0}, bytes = {0}, again = {0};
  size_t n, cut, max;
  if (size < 2) return 0;
  n = size - 2;
  cut = n ? (size_t)data[0] * n / 255 : 0;
  max = (data[1] & 0x80) ? 0 : (size_t)(data[1] & 0x7f) + 1;
  sse_init(&p, max);
  run(&p, data + 2, n, n, 0, &whole);
  sse_free(&p);
  sse_init(&p, max);
  run(&p, data + 2, n, cut, 0, &split);
  same(&whole, &split);
  /* sse_reset must give a fresh stream, whatever state it was in. */
  sse_reset(&p);
  run(&p, data + 2, n, n, 0, &again);
  same(&whole, &again);
  sse_free(&p);
  if (n <= 4096) {
    sse_init(&p, max);
    run(&p, data + 2, n, 0, 1, &bytes);
    same(&whole, &bytes);
    sse_free(&p);
  }
  free(whole.p);
  free(split.p);
  free(bytes.p);
  free(again.p);
  return 0;
}
