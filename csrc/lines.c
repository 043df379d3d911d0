/*
 * lines.c: the line splitter of proc.h (newline-delimited messages with a
 * size limit). Plain C99, no OS and no Lua: tested in csrc/test/test_proc.c
 * and fuzzed by csrc/fuzz/fuzz_lines.c.
 */
#include <string.h>

#include "proc.h"

int bt_lines_feed(bt_lines *l, const char *s, size_t n) {
  if (l->off > 0 && l->off == l->b.len) { /* everything handed out: restart */
    l->b.len = l->off = l->scan = 0;
  } else if (l->off > 0 && l->off >= l->b.len / 2) { /* compact */
    memmove(l->b.p, l->b.p + l->off, l->b.len - l->off);
    l->b.len -= l->off;
    l->scan -= l->off;
    l->off = 0;
  }
  return bt_buf_append(&l->b, s, n);
}

int bt_lines_next(bt_lines *l, const char **line, size_t *len) {
  const char *nl;
  size_t n;
  if (l->scan < l->off) l->scan = l->off;
  nl = l->scan < l->b.len ? memchr(l->b.p + l->scan, '\n', l->b.len - l->scan) : NULL;
  if (nl == NULL) {
    l->scan = l->b.len;
    return l->b.len - l->off > l->max ? -1 : 0;
  }
  n = (size_t)(nl - (l->b.p + l->off));
  *line = l->b.p + l->off;
  l->off += n + 1;
  l->scan = l->off;
  if (n > 0 && (*line)[n - 1] == '\r') n--;
  *len = n;
  return n > l->max ? -1 : 1;
}

void bt_lines_free(bt_lines *l) {
  bt_buf_free(&l->b);
  l->off = l->scan = 0;
}
