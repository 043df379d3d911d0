/*
 * fuzz_lines.c: libFuzzer target for the line splitter (csrc/lines.c).
 *
 * Input layout: byte 0 is the line limit (1..256), byte 1 the feed size
 * (1..256), the rest the stream. The stream is fed in pieces of that size
 * and the lines compared with a plain reference split of the whole
 * stream: the same lines, in order, the same "too long" verdict at the
 * same place. Each piece is copied into its own allocation so ASan sees a
 * read past a feed's end.
 *
 *   clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     -o fuzz_lines csrc/fuzz/fuzz_lines.c csrc/lines.c csrc/buf.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../proc.h"

static void must(int cond) {
  if (!cond) __builtin_trap();
}

/* The reference: line k of data (without "\n" and one "\r" before it),
 * from *pos on. 1 with a line, 0 at the end (no complete line left), -1
 * when the next line (complete or not) is longer than max. */
static int ref_next(const uint8_t *d, size_t n, size_t *pos, size_t max, size_t *start,
                    size_t *len) {
  const uint8_t *nl = *pos < n ? memchr(d + *pos, '\n', n - *pos) : NULL;
  size_t l;
  if (nl == NULL) return n - *pos > max ? -1 : 0;
  l = (size_t)(nl - (d + *pos));
  *start = *pos;
  *pos += l + 1;
  if (l > 0 && d[*start + l - 1] == '\r') l--;
  *len = l;
  return l > max ? -1 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bt_lines l;
  size_t max, step, i, pos = 0;
  int done = 0;
  if (size < 2) return 0;
  max = (size_t)data[0] + 1;
  step = (size_t)data[1] + 1;
  data += 2, size -= 2;
  memset(&l, 0, sizeof l);
  l.max = max;
  for (i = 0; i < size && !done; i += step) {
    size_t n = i + step > size ? size - i : step;
    char *piece = malloc(n);
    const char *line;
    size_t len;
    int rc;
    must(piece != NULL);
    memcpy(piece, data + i, n);
    must(bt_lines_feed(&l, piece, n) == 0);
    free(piece);
    while ((rc = bt_lines_next(&l, &line, &len)) == 1) {
      size_t rs = 0, rl = 0;
      must(ref_next(data, size, &pos, max, &rs, &rl) == 1);
      must(rl == len && memcmp(data + rs, line, len) == 0);
    }
    if (rc < 0) {
      /* too long: the reference agrees on the line at pos, within what was fed */
      size_t rs = 0, rl = 0;
      must(ref_next(data, i + n, &pos, max, &rs, &rl) == -1);
      done = 1;
    }
  }
  if (!done) {
    size_t rs = 0, rl = 0;
    must(ref_next(data, size, &pos, max, &rs, &rl) == 0);
  }
  bt_lines_free(&l);
  return 0;
}
