/*
 * jpartial.h: a resumable JSON parser in plain C (no Lua), for JSON that
 * arrives in pieces (a model's structured reply, a tool call's arguments).
 *
 * Feed it any split of the text, down to one byte (inside a \u escape pair
 * or a UTF-8 sequence too), and pull events: a container begins, an object
 * member's name is complete, a string has grown or ended, a scalar is
 * complete, a container ends. Each byte is scanned once; a string's bytes
 * are kept in one buffer that grows by doubling, so a caller that shows a
 * growing string reads it once per piece, not once per byte. The rules are
 * the decoder's (json_scan.c): the same grammar, the same number and escape
 * rules, and the same error code at the same byte offset as
 * bt_json_push_decoded for any invalid text. csrc/jpartial_lua.c applies the
 * events to one live Lua table (baseten.json.partial).
 *
 *   jp_init(&p, flags, max_depth);
 *   jp_input(&p, bytes, n);                 (p reads bytes until jp_next
 *   while ((rc = jp_next(&p, &ev)) == JP_EVENT) ...    returns JP_MORE)
 *   jp_end(&p); then jp_next until JP_DONE or JP_ERROR
 *   jp_free(&p);
 */
#ifndef BT_JPARTIAL_H
#define BT_JPARTIAL_H

#include <stddef.h>

#include "buf.h"
#include "json.h"

/* What jp_next returns. */
#define JP_ERROR (-1) /* invalid (sticky: every later call says so too) */
#define JP_MORE 0     /* the input is used up; feed more, or call jp_end */
#define JP_EVENT 1    /* *ev holds an event */
#define JP_DONE 2     /* after jp_end: the text was one complete value */

typedef enum {
  JP_OBJECT = 1, /* an object begins: a value, then members at depth + 1 */
  JP_ARRAY,      /* an array begins */
  JP_END,        /* the container at `depth` ends */
  JP_KEY,        /* a member's name is complete (s, n), in the object at depth */
  JP_STRING,     /* a string value so far (s, n: whole UTF-8 sequences); done when closed */
  JP_NUMBER,     /* a complete number: num */
  JP_TRUE,
  JP_FALSE,
  JP_NULL
} jp_type;

typedef struct {
  jp_type type;
  int depth;    /* the container the value goes into, 0 for the root; JP_END, JP_KEY:
                   the container's own depth */
  size_t index; /* the value's 1-based position when that container is an array, else 0 */
  const char *s;
  size_t n;
  size_t hint;        /* JP_OBJECT, JP_ARRAY: the members or elements of the container of
                         its kind last closed at its depth (a sibling's size, for presizing) */
  int done;           /* JP_STRING: the closing quote has come */
  int fresh;          /* JP_STRING: the first event of this string */
  bt_json_number num; /* JP_NUMBER */
} jp_event;

typedef struct {
  const unsigned char *in; /* the current piece, read until JP_MORE */
  size_t len, pos;
  size_t base; /* offset of in[0] in the whole text */
  unsigned flags;
  int max_depth;
  int mode, sub;       /* what is expected next; a sub-state of it */
  int depth;           /* containers open */
  int eof;             /* jp_end was called */
  int seen;            /* a root value has begun */
  unsigned char *kind; /* per depth (1..): 1 object, 0 array */
  size_t *count;       /* per depth: values begun (elements, members) */
  size_t *last;        /* per depth: the count of the container last closed there (kind
                          keeps its kind until the next opens) */
  int cap;             /* room of kind and count */
  size_t index;        /* the current value's index (see jp_event) */
  int is_key;          /* the string being read is a name */
  int dirty;           /* the value string grew since it was last reported */
  int reported;        /* the value string has had an event */
  bt_buf str;          /* the string being read, escapes decoded */
  bt_buf num;          /* the number being read, as written */
  unsigned char esc[12];
  int esc_len;
  unsigned char u8[4];
  int u8_len, u8_need;
  const char *lit; /* the literal being read and its length */
  int lit_len, lit_i;
  size_t start;  /* offset where the current token began */
  size_t esc_at; /* offset of the pending escape's backslash */
  size_t u8_at;  /* offset of the pending UTF-8 sequence's first byte */
  bt_json_error code;
  size_t err_pos;
  int with_pos;
} jp_parser;

/* flags: BT_JSON_DROP_NULLS is the caller's (events carry every null);
 * BT_JSON_LONE_* as the decoder. max_depth: 1..BT_JSON_MAX_DEPTH. */
BT_HIDDEN void jp_init(jp_parser *p, unsigned flags, int max_depth);
BT_HIDDEN void jp_free(jp_parser *p);

/* The next piece; s must stay valid until jp_next returns JP_MORE. Inline:
 * a feed of one byte calls it twice. */
static inline void jp_input(jp_parser *p, const char *s, size_t n) {
  p->base += p->len;
  p->in = (const unsigned char *)s;
  p->len = n;
  p->pos = 0;
}

/* The text ends; jp_next then finishes a number at the end and says
 * JP_DONE or gives the decoder's error for an incomplete text. */
BT_HIDDEN void jp_end(jp_parser *p);

BT_HIDDEN int jp_next(jp_parser *p, jp_event *ev);

/* Bytes fed so far. */
static inline size_t jp_offset(const jp_parser *p) { return p->base + p->pos; }

/* The error message as the decoder writes it ("... at byte N", 1-based). */
BT_HIDDEN void jp_error_message(const jp_parser *p, char *out, size_t outlen);

#endif
