/*
 * test_sse_work.c: the SSE parser fed one byte at a time does work linear
 * in the bytes, never quadratic in what it has buffered (issue 26: undici
 * parsed 10x slower fed byte by byte; openai-node once re-scanned most of
 * its buffer on every piece).
 *
 * sse.c and buf.c are included, as test_sse.c does, with their memchr,
 * memcpy and realloc counted (they call no other scan or copy): the work of a feed is the bytes
 * those calls are given. An event of N bytes fed in N one-byte feeds (and
 * in 7-byte feeds) must cost at most a constant per byte, the same
 * constant for N = 1 KiB and N = 256 KiB; a step that re-scanned or
 * re-copied its buffer would cost N/2 per byte at the larger size.
 *
 *   cc -std=c99 -g -O1 -fsanitize=address,undefined -Icsrc \
 *     -o build/test_sse_work csrc/test/test_sse_work.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long work; /* bytes handed to the counted calls */

static const void *count_memchr(const void *s, int c, size_t n) {
  work += n;
  return memchr(s, c, n);
}
static void *count_memcpy(void *d, const void *s, size_t n) {
  work += n;
  return memcpy(d, s, n);
}
static void *count_realloc(void *p, size_t n) {
  work += n; /* a move copies at most what it keeps */
  return realloc(p, n);
}

#define memchr(s, c, n) count_memchr((s), (c), (n))
#define memcpy(d, s, n) count_memcpy((d), (s), (n))
#define BT_BUF_REALLOC count_realloc
#include "../buf.c"
#include "../sse.c"
#include "test_util.h"

/* Builds a stream whose one big event has about n bytes in the shape
 * `shape` names, then a small event; returns it (malloc'd), its length in
 * *len. */
static char *make_stream(const char *shape, size_t n, size_t *len) {
  char *s = malloc(n + 256), *p = s;
  size_t i;
  if (s == NULL) exit(2);
  if (strcmp(shape, "one line") == 0) {
    p += sprintf(p, "data: ");
    for (i = 0; i < n; i++) *p++ = (char)('a' + i % 26);
    p += sprintf(p, "\n\n");
  } else if (strcmp(shape, "many lines") == 0) { /* data: x\r\n per 8 bytes */
    for (i = 0; i + 10 <= n; i += 10) p += sprintf(p, "data: %c\r\n", (char)('a' + i % 26));
    p += sprintf(p, "\r\n");
  } else if (strcmp(shape, "comment") == 0) {
    *p++ = ':';
    for (i = 0; i < n; i++) *p++ = 'c';
    p += sprintf(p, "\ndata: x\n\n");
  } else { /* many small events */
    for (i = 0; i + 20 <= n; i += 20) p += sprintf(p, "data: {\"n\":%06lu}\n\n", (unsigned long)i);
  }
  p += sprintf(p, "event: end\ndata: [DONE]\n\n");
  *len = (size_t)(p - s);
  return s;
}

/* The work per byte of the stream fed `step` bytes a feed; the events
 * seen go in *events. */
static double work_per_byte(const char *s, size_t len, size_t step, long *events) {
  sse_parser p;
  size_t off = 0;
  sse_init(&p, 0);
  work = 0;
  *events = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step, at = 0;
    while (at < n) {
      sse_event ev;
      size_t used = 0;
      int rc = sse_feed(&p, s + off + at, n - at, &used, &ev);
      at += used;
      if (rc == SSE_EVENT) (*events)++;
      else if (rc != SSE_NEED_MORE) {
        ok(0, "feed failed", NULL);
        sse_free(&p);
        return 1e9;
      }
    }
    off += n;
  }
  sse_free(&p);
  return (double)work / (double)len;
}

int main(void) {
  static const char *const shapes[] = {"one line", "many lines", "comment", "small events"};
  static const size_t steps[] = {1, 7};
  size_t i, j;
  for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    for (j = 0; j < sizeof steps / sizeof steps[0]; j++) {
      size_t small_len, big_len;
      char *small = make_stream(shapes[i], 1024, &small_len);
      char *big = make_stream(shapes[i], 256 * 1024, &big_len);
      long e_small, e_big, e_whole;
      double w_small = work_per_byte(small, small_len, steps[j], &e_small);
      double w_big = work_per_byte(big, big_len, steps[j], &e_big);
      double w_whole = work_per_byte(big, big_len, big_len, &e_whole);
      char what[160];
      snprintf(what, sizeof what, "%s, %zu-byte feeds: %.1f then %.1f per byte (whole: %.1f)",
               shapes[i], steps[j], w_small, w_big, w_whole);
      ok(e_big == e_whole && e_big >= 2, "the same events fed whole", what);
      ok(w_big <= 2.0 * w_small + 8.0, "work per byte does not grow with the event", what);
      ok(w_big <= 32.0, "work per byte is a small constant", what);
      if (getenv("TEST_VERBOSE")) printf("%s\n", what);
      free(small);
      free(big);
    }
  }
  printf("sse_work: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
