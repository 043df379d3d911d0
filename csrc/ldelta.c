/*
 * ldelta.c: the text fast path's Lua face. One SSE event that delta.c
 * recognises becomes a row of plain values on the stack, no table:
 *
 *   "text", choice, content, reasoning_content, reasoning, refusal,
 *   finish_reason, role, system_fingerprint, usage[, id, model, created]
 *
 * choice is a boolean (the chunk has its one choice); the fields are nil
 * where absent or null; usage is its decoded table; the last three only
 * when asked for (the accumulator wants them until it has them). Each
 * value is what the full decode (DELTA_FLAGS) would have put in
 * the chunk: a string without escapes is its body, anything else goes
 * through bt_json_push_decoded on its own span. baseten.stream and
 * baseten.accumulate turn the row into pieces and the final message.
 */
#include <string.h>

#include "bt.h"
#include "delta.h"
#include "sse.h"

/* How a stream's chunks are decoded, on every path (see http_transfer.c) */
#define DELTA_FLAGS (BT_JSON_DROP_NULLS | BT_JSON_LONE_WTF8)

/* Pushes field f of the text s (nil when absent); 0 when the decoder
 * refuses its span (a usage span is only located by delta.c). */
static int push_field(lua_State *L, const char *s, const bt_delta_span *f) {
  char err[8]; /* the message is not wanted: the full path will say it */
  size_t lone = 0;
  if (f->len == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (s[f->off] == '"' && !f->escaped) {
    lua_pushlstring(L, s + f->off + 1, f->len - 2);
    return 1;
  }
  return bt_json_push_decoded(L, s + f->off, f->len, DELTA_FLAGS, &lone, err, sizeof err) &&
         lone == 0;
}

int bt_delta_push_event(lua_State *L, const sse_event *ev, int head) {
  int top = lua_gettop(L), k, last = head ? BT_D_COUNT : BT_D_ID;
  bt_delta d;
  if (ev->type_len != 7 || memcmp(ev->type, "message", 7) != 0) return 0;
  if (!bt_delta_extract(ev->data, ev->data_len, &d)) return 0;
  lua_pushliteral(L, "text");
  lua_pushboolean(L, d.choice);
  for (k = 0; k < last; k++) {
    if (!push_field(L, ev->data, &d.f[k])) {
      lua_settop(L, top); /* the full path decides, and says why */
      return 0;
    }
  }
  return lua_gettop(L) - top;
}

/* ------------------------------------------------------------------ */
/* The for-chunk path: a chunk whose whole effect on the accumulator is */
/* its content piece, told by watching the decoder                      */
/* ------------------------------------------------------------------ */

/* Pieces a text segment holds before baseten.accumulate joins them (its
 * SEGMENT); the append that would fill one is left to it. */
#define SINK_SEGMENT 512

enum { K_OTHER, K_CHOICES, K_DELTA, K_CONTENT };

typedef struct {
  bt_json_watch w;             /* first: the decoder's callbacks get &this->w */
  int bad;                     /* something accumulate.add would read besides content */
  int key;                     /* K_*: the member whose value comes next */
  int arrays, choices, deltas; /* containers opened at depths 2, 3 and 4 */
  int nchoice;                 /* elements of the choices array */
  unsigned seen;               /* K_* bits: a name given twice spoils it (the last wins) */
  int content;                 /* a content string was seen */
  size_t c_start, c_end;       /* its body */
  int c_escaped;
} chunk_watch;

static int name_is(const char *k, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

/* The member is the one of its kind (K_CHOICES, K_DELTA, K_CONTENT) that
 * counts: it is refused the second time. */
static int once(chunk_watch *w, int key) {
  if (w->seen & (1u << key)) {
    w->bad = 1;
    return K_OTHER;
  }
  w->seen |= 1u << key;
  return key;
}

/*
 * A member's name, at depth (its object's), before its value (sc->pos).
 * Depth 1 is the chunk, 3 its choice, 4 the choice's delta: a member there
 * that accumulate.add reads besides a delta's content spoils the chunk.
 */
static void watch_member(bt_json_watch *bw, const bt_json_scanner *sc, size_t start, size_t end,
                         int escaped) {
  chunk_watch *w = (chunk_watch *)bw;
  const char *k = (const char *)sc->s + start;
  size_t n = end - start;
  unsigned char v = bt_json_peek(sc); /* 0 at the end */
  w->key = K_OTHER;
  if (escaped) { /* a name with an escape may be any name */
    w->bad = 1;
  } else if (sc->depth == 1) {
    if (name_is(k, n, "choices")) w->key = once(w, K_CHOICES);
    else if (name_is(k, n, "usage") || name_is(k, n, "system_fingerprint") ||
             name_is(k, n, "error"))
      w->bad = 1;
  } else if (sc->depth == 3) {
    if (name_is(k, n, "delta")) w->key = once(w, K_DELTA);
    else if (name_is(k, n, "index")) /* exactly 0 */
      w->bad |= v != '0' ||
                (sc->pos + 1 < sc->len && (sc->s[sc->pos + 1] == '.' || sc->s[sc->pos + 1] == 'e' ||
                                           sc->s[sc->pos + 1] == 'E'));
    else if (name_is(k, n, "finish_reason") || name_is(k, n, "logprobs") ||
             name_is(k, n, "message"))
      w->bad = 1;
  } else if (sc->depth == 4) {
    if (name_is(k, n, "content")) {
      bt_json_scanner tmp = *sc; /* the value: where its body ends */
      if (once(w, K_CONTENT) != K_CONTENT || v != '"' || !bt_json_scan_string(&tmp)) {
        w->bad = 1;
        return;
      }
      w->content = 1;
      w->c_start = sc->pos + 1;
      w->c_end = tmp.pos - 1;
      w->c_escaped = tmp.escaped;
    } else if (name_is(k, n, "reasoning") || name_is(k, n, "reasoning_content") ||
               name_is(k, n, "refusal") || name_is(k, n, "role") || name_is(k, n, "tool_calls")) {
      w->bad = 1;
    }
  }
}

/* A container opened at depth: the chunk (an object), its choices (the
 * value of "choices"), a choice (an object in it), the choice's delta (the
 * value of "delta"); any other container spoils the chunk. */
static void watch_open(bt_json_watch *bw, int depth, int array) {
  chunk_watch *w = (chunk_watch *)bw;
  switch (depth) {
  case 1: w->bad |= array; break;
  case 2: w->bad |= !array || w->key != K_CHOICES || ++w->arrays > 1; break;
  case 3: w->bad |= array || ++w->choices > 1; break;
  case 4: w->bad |= array || w->key != K_DELTA || ++w->deltas > 1; break;
  default: w->bad = 1;
  }
}

static void watch_close_array(bt_json_watch *bw, int depth, int count) {
  chunk_watch *w = (chunk_watch *)bw;
  if (depth == 2) w->nchoice = count;
}

/* Appends the content piece of the watched chunk to the segment at sink,
 * as accumulate's push_text: 0 when the segment is full (accumulate joins
 * it). */
static int sink_append(lua_State *L, const char *s, const chunk_watch *w, int sink) {
  lua_Integer n;
  if (!w->content || w->c_end == w->c_start) return 1; /* no piece: nothing to add */
  lua_getfield(L, sink, "n");
  n = lua_tointeger(L, -1) + 1;
  lua_pop(L, 1);
  if (n < 1 || n >= SINK_SEGMENT) return 0;
  bt_json_push_string_body(L, s + w->c_start, w->c_end - w->c_start, w->c_escaped, DELTA_FLAGS);
  lua_rawseti(L, sink, n);
  lua_pushinteger(L, n);
  lua_setfield(L, sink, "n");
  return 1;
}

int bt_delta_decode_chunk(lua_State *L, const char *s, size_t n, size_t *lone, char *err,
                          size_t errlen, int sink) {
  chunk_watch w;
  memset(&w, 0, sizeof w);
  w.w.member = watch_member;
  w.w.open = watch_open;
  w.w.close_array = watch_close_array;
  if (!bt_json_push_decoded_watched(L, s, n, DELTA_FLAGS, lone, err, errlen, sink ? &w.w : NULL))
    return 0;
  if (sink == 0 || *lone != 0 || w.bad || w.nchoice != 1 || w.choices != 1 || w.deltas != 1)
    return 1;
  return sink_append(L, s, &w, sink) ? 2 : 1;
}
