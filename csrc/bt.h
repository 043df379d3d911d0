/*
 * bt.h: the few functions one csrc/ file offers another. All hidden (see
 * base.h); each file keeps everything else static.
 *
 * How every Lua function of the core reports trouble (one convention):
 *   - Misuse raises, at the caller: a bad argument or option, a closed or
 *     busy handle, an engine used in a forked child, a value json.encode
 *     cannot write.
 *   - Lua's own allocator failing raises, as any lua_push* does.
 *   - Any other failure (bytes from the network, the server or the caller's
 *     text that cannot be had or used) returns nil, a message, and then
 *     whatever the caller still needs: json.decode -> nil, why;
 *     parser:feed -> nil, why, the events completed before the failure;
 *     transfer:next_event -> nil, why.
 *   transfer:result() is a query, not a failure: nothing while running,
 *   true, or false, kind, message, curl code for how the transfer ended.
 */
#ifndef BT_BT_H
#define BT_BT_H

#include <stddef.h>
#include "compat.h"
#include "json.h"

/* json_mod.c: sets field "json" of the table on top of the stack. */
BT_HIDDEN void bt_json_open(lua_State *L);

/* The upvalues of every function of the json table (json_mod.c). */
#define UV_ARRAY_MT lua_upvalueindex(1)
#define UV_OBJECT_MT lua_upvalueindex(2)
#define UV_ENCODER lua_upvalueindex(3) /* the cached encoder, or false */
/* containers open in the encodes that the running encode is nested in
 * (through __tojson); 0 when none runs */
#define UV_DEPTH lua_upvalueindex(4)

/* json_enc.c: json.encode, and the encoder's metatable. */
BT_HIDDEN int bt_json_encode(lua_State *L);
BT_HIDDEN void bt_json_enc_open(lua_State *L);

/* json_dec.c: sets field "decode" of the json table on top of the stack. */
BT_HIDDEN void bt_json_dec_open(lua_State *L);

/*
 * json_dec.c: decodes len bytes at s and pushes the value (1). On malformed
 * input pushes nothing, writes a message into err (errlen bytes, always
 * NUL-terminated) and returns 0. Raises only on memory errors, and frees
 * everything it took before it does. flags: BT_JSON_DROP_NULLS, and at most
 * one of BT_JSON_LONE_WTF8 and BT_JSON_LONE_REPLACE (both: an error); with
 * neither, a lone surrogate is an error. *lone (lone may be NULL) receives
 * how many lone surrogates the value holds (0 when the call fails). s must
 * not move or be freed until the call returns: it pushes, so it can run a
 * garbage-collection step and any __gc.
 */
BT_HIDDEN int bt_json_push_decoded(lua_State *L, const char *s, size_t len, unsigned flags,
                                   size_t *lone, char *err, size_t errlen);

/* The same, telling w (json.h's bt_json_watch; NULL for none) of the
 * document's members and containers as they are decoded. */
struct bt_json_watch;
BT_HIDDEN int bt_json_push_decoded_watched(lua_State *L, const char *s, size_t len, unsigned flags,
                                           size_t *lone, char *err, size_t errlen,
                                           struct bt_json_watch *w);

/* json_dec.c: pushes the string whose body (between the quotes) is p[0, n),
 * as the decoder would under flags (escaped: the body has an escape). */
BT_HIDDEN void bt_json_push_string_body(lua_State *L, const char *p, size_t n, int escaped,
                                        unsigned flags);

/* json_dec.c: pushes a number as json.decode makes it (5.3+: an integer
 * when the literal is one, or an integral value within 2^53), so the
 * resumable parser's numbers are the decoder's. */
BT_HIDDEN void bt_json_push_number(lua_State *L, const bt_json_number *num);

/* jpartial_lua.c: sets field "partial" of the json table on top of the
 * stack (the resumable parser, baseten.json.partial). */
BT_HIDDEN void bt_json_partial_open(lua_State *L);

/* lsse.c: sets field "sse" of the table on top of the stack. */
BT_HIDDEN void bt_sse_open(lua_State *L);

/* core.c: makes (or finds) the metatable name with the functions of m and
 * __index pointing at itself, and leaves it on the stack. */
BT_HIDDEN void bt_new_class(lua_State *L, const char *name, const luaL_Reg *m);

/* lproc.c: sets core.spawn (child processes, proc.h). */
BT_HIDDEN void bt_proc_open(lua_State *L);

/* ldelta.c: for t:next_text (http_transfer.c). When the event is a "message" whose
 * data delta.c recognises, pushes its row of values (see ldelta.c; the
 * last three when head) and returns how many; else pushes nothing and
 * returns 0, and the event takes the full path. */
struct sse_event;
BT_HIDDEN int bt_delta_push_event(lua_State *L, const struct sse_event *ev, int head);

/* ldelta.c: for t:next_event(sink) (http_transfer.c). Decodes the chunk
 * s[0, n) as bt_json_push_decoded does with ldelta.c's DELTA_FLAGS
 * (returns 0 with err set, or 1 with the table pushed); given a sink (a
 * stack index, or 0), when the chunk is one whose only effect on
 * baseten.accumulate is a content piece for choice 0, also appends that
 * piece to the text segment at sink as accumulate's push_text would, and
 * returns 2. */
BT_HIDDEN int bt_delta_decode_chunk(lua_State *L, const char *s, size_t n, size_t *lone, char *err,
                                    size_t errlen, int sink);

/* http_engine.c: sets the engine constructor. */
BT_HIDDEN void bt_http_open(lua_State *L);

/* vector.c: sets field "vector" (baseten.vector) of the table on top. */
BT_HIDDEN void bt_vector_open(lua_State *L);

#endif
