/*
 * buf.h: the one growable byte buffer of csrc/ (transfer bodies, the SSE
 * parser's line and data, the JSON encoder's output). Plain C, no Lua.
 *
 * A bt_buf owns p. Growth doubles the capacity and is guarded against
 * size_t overflow; on failure the buffer keeps its old block and contents.
 * Tests may define BT_BUF_REALLOC and BT_BUF_FREE (before including buf.c)
 * to swap in a failing allocator.
 */
#ifndef BT_BUF_H
#define BT_BUF_H

#include <stddef.h>

#include "base.h"

typedef struct bt_buf {
  char *p;
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated */
} bt_buf;

#define BT_BUF_INIT                                                                                \
  { NULL, 0, 0 }

/* Makes room for extra more bytes after len. 0 on success; -1 when
 * len + extra overflows size_t or memory is short. */
BT_HIDDEN int bt_buf_reserve(bt_buf *b, size_t extra);

/* Appends n bytes of s. 0 on success, -1 as bt_buf_reserve. */
BT_HIDDEN int bt_buf_append(bt_buf *b, const void *s, size_t n);

/* Frees the block; the buffer is empty and reusable afterwards. */
BT_HIDDEN void bt_buf_free(bt_buf *b);

#endif
