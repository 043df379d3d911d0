/*
 * buf.c: the growable byte buffer (buf.h).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#ifndef BT_BUF_REALLOC
#define BT_BUF_REALLOC realloc
#endif
#ifndef BT_BUF_FREE
#define BT_BUF_FREE free
#endif

#define BT_BUF_MIN 64

int bt_buf_reserve(bt_buf *b, size_t extra) {
  size_t need, cap;
  char *np;
  if (extra > (size_t)-1 - b->len) return -1;
  need = b->len + extra;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : BT_BUF_MIN;
  while (cap < need) cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  np = (char *)BT_BUF_REALLOC(b->p, cap);
  if (np == NULL) return -1; /* b still owns its old block */
  b->p = np;
  b->cap = cap;
  return 0;
}

int bt_buf_append(bt_buf *b, const void *s, size_t n) {
  if (n == 0) return 0;
  if (bt_buf_reserve(b, n) != 0) return -1;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

void bt_buf_free(bt_buf *b) {
  BT_BUF_FREE(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
