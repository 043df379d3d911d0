/*
 * bt.h: the few functions one csrc/ file offers another. All hidden (see
 * compat.h); each file keeps everything else static.
 */
#ifndef BT_BT_H
#define BT_BT_H

#include <stddef.h>
#include "compat.h"

/* json.c: sets field "json" of the table on top of the stack. */
BT_HIDDEN void bt_json_open(lua_State *L);

/*
 * json.c: decodes len bytes at s and pushes the value (1). On malformed
 * input pushes nothing, writes a message into err (errlen bytes, always
 * NUL-terminated) and returns 0. Raises only on memory errors, and frees
 * everything it took before it does.
 */
BT_HIDDEN int bt_json_push_decoded(lua_State *L, const char *s, size_t len, char *err,
                                   size_t errlen);

/* lsse.c: sets field "sse" of the table on top of the stack. */
BT_HIDDEN void bt_sse_open(lua_State *L);

/* http.c: sets the engine constructor. */
BT_HIDDEN void bt_http_open(lua_State *L);

#endif
