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
 * value is what the full decode (http.c's CHUNK_FLAGS) would have put in
 * the chunk: a string without escapes is its body, anything else goes
 * through bt_json_push_decoded on its own span. baseten.stream and
 * baseten.accumulate turn the row into pieces and the final message.
 */
#include <string.h>

#include "bt.h"
#include "delta.h"
#include "sse.h"

#define DELTA_FLAGS (BT_JSON_DROP_NULLS | BT_JSON_LONE_WTF8) /* http.c's CHUNK_FLAGS */

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
