/*
 * bt.h: the few functions one csrc/ file offers another. All hidden (see
 * compat.h); each file keeps everything else static.
 */
#ifndef BT_BT_H
#define BT_BT_H

#include <stddef.h>
#include "compat.h"
#include "json.h"

/* json_enc.c: sets field "json" of the table on top of the stack. */
BT_HIDDEN void bt_json_open(lua_State *L);

/* json_dec.c: sets field "decode" of the json table on top of the stack. */
BT_HIDDEN void bt_json_dec_open(lua_State *L);

/* Flags of bt_json_push_decoded (json.h repeats them). */
#ifndef BT_JSON_DROP_NULLS
/* An object member whose value is null is left out (a null in an array
 * stays json.null, so positions hold). */
#define BT_JSON_DROP_NULLS 1u
/* A lone \uD800-\uDFFF escape becomes its 3-byte generalized UTF-8 form
 * (ED A0..BF xx), so a later joiner can pair a high half ending one string
 * with a low half starting the next. */
#define BT_JSON_LONE_WTF8 2u
/* A lone surrogate becomes U+FFFD. */
#define BT_JSON_LONE_REPLACE 4u
#endif

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

/* http_engine.c: sets the engine constructor. */
BT_HIDDEN void bt_http_open(lua_State *L);

#endif
