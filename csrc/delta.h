/*
 * delta.h: the text fast path's extractor (delta.c), plain C, no Lua.
 *
 * Given the data of one SSE event, bt_delta_extract recognises the common
 * shape of a chat.completion.chunk and says where its fields are:
 *
 *   {"id": s, "object": s, "created": n, "model": s, "system_fingerprint": s,
 *    "choices": [] or [{"index": 0, "delta": {"role": s, "content": s,
 *                       "reasoning_content": s, "reasoning": s, "refusal": s,
 *                       "tool_calls": []}, "logprobs": null,
 *                       "finish_reason": s}],
 *    "usage": {...}}
 *
 * every member optional, any of them null, in any order, plus members of
 * other names whose values are scalars (vLLM's "stop_reason": null, ...).
 * Anything else is "fall back": a member named "error", "message" or
 * "tool_calls" with calls, logprobs, a second choice, an index other than a
 * literal 0, a name written with an escape, a name given twice, a value of
 * an unexpected type, a nested value under an unknown name, a lone
 * surrogate escape anywhere, or anything that is not well-formed JSON. A
 * fallback costs one scan; the caller then decodes the chunk in full.
 *
 * Conservative by design: when it says yes, decoding the whole text with
 * DROP_NULLS | LONE_WTF8 (ldelta.c's DELTA_FLAGS) would give a table whose
 * only parts that baseten.stream and baseten.accumulate read are the ones
 * found here. The usage value is only located, not checked: the caller
 * decodes that span and falls back if the decoder refuses it.
 * csrc/test/test_delta.c and csrc/fuzz/fuzz_delta.c (against cJSON) check it.
 */
#ifndef BT_DELTA_H
#define BT_DELTA_H
#include <stddef.h>

#include "json.h"

enum {
  BT_D_CONTENT,
  BT_D_REASONING_CONTENT,
  BT_D_REASONING,
  BT_D_REFUSAL,
  BT_D_FINISH, /* the choice's finish_reason */
  BT_D_ROLE,
  BT_D_FINGERPRINT, /* system_fingerprint */
  BT_D_USAGE,       /* an object: its span, undecoded */
  BT_D_ID,
  BT_D_MODEL,
  BT_D_CREATED, /* a number token */
  BT_D_COUNT
};

/* One value: s[off, off + len) is its whole token (a string's quotes
 * included). len 0: absent or null. escaped: a string with an escape (its
 * body is then not its value). */
typedef struct {
  size_t off, len;
  int escaped;
} bt_delta_span;

typedef struct {
  bt_delta_span f[BT_D_COUNT];
  int choice; /* 1: one choice, of index 0; 0: "choices" absent, null or [] */
} bt_delta;

/* 1 when s[0, n) has the shape above (d filled in); 0: fall back. */
BT_HIDDEN int bt_delta_extract(const char *s, size_t n, bt_delta *d);

#endif
