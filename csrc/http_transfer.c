/*
 * http_transfer.c: baseten.core.transfer, one request on an engine, and the
 * reads that turn its response bytes into Lua values.
 *
 * next_event, body and pending decode from the response bytes and the SSE
 * parser (t->rx), which they take out of the transfer while they run
 * (lend.h): a __gc that closes the transfer meanwhile frees nothing of
 * theirs. The per-token path decodes straight from curl's bytes, with no
 * Lua string made for the payload.
 */
#include <string.h>

#include "http.h"

/* A closed transfer raises nothing: it answers as canceled (result), with
 * no status and no bytes (the headers it captured stay). A finalizer (or a
 * hook) can close one between any two calls of the code driving it, which
 * must then see a canceled request, not a raise it cannot expect. */
static bt_transfer *check_transfer(lua_State *L, int i) {
  return luaL_checkudata(L, i, TRANSFER_MT);
}

void bt_http_rx_free(void *p) {
  bt_rx *rx = p;
  bt_buf_free(&rx->buf);
  rx->off = 0;
  sse_free(&rx->sse);
}

static int transfer_close(lua_State *L) {
  bt_transfer *t = luaL_checkudata(L, 1, TRANSFER_MT);
  if (t->state == T_CLOSED) return 0;
  bt_http_detach(t);
  bt_http_handle_give(t->pool, t->easy, t->pid);
  t->easy = NULL;
  t->pool = NULL;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, t->body_ref);
  t->body_ref = LUA_NOREF;
  bt_lend_close(&t->lend);
  t->state = T_CLOSED;
  return 0;
}

/* t:status() -> HTTP status (0 until known), whether the final headers are in */
static int transfer_status(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  int known = t->headers_done && t->state != T_CLOSED;
  lua_pushinteger(L, known ? t->status : 0);
  lua_pushboolean(L, known);
  return 2;
}

static int transfer_header(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *v = NULL;
  if (strcmp(name, "x-request-id") == 0) v = t->request_id;
  else if (strcmp(name, "retry-after") == 0) v = t->retry_after;
  else if (strcmp(name, "retry-after-ms") == 0) v = t->retry_after_ms;
  else if (strcmp(name, "content-type") == 0) v = t->ctype;
  else if (strcmp(name, "mcp-session-id") == 0) v = t->session_id;
  else return luaL_argerror(L, 2, "header not captured");
  if (*v) lua_pushstring(L, v); /* kept after close */
  else lua_pushnil(L);
  return 1;
}

/* t:result() -> nil while running; true when curl finished cleanly;
 * false, kind, message, curl_code when it failed; false, "canceled",
 * message once closed (a finalizer can close it between two calls of the
 * code reading it, which then ends as canceled, not with a raise). */
static int transfer_result(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  if (t->state == T_CLOSED) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "canceled");
    lua_pushliteral(L, "the transfer was closed");
    return 3;
  }
  if (t->state == T_RUNNING) return 0;
  if (t->result == CURLE_OK && t->failure == F_NONE) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return bt_http_push_failure(L, t);
}

/* Lets curl write again: at once after a read, for a full stream buffer
 * once half of it is consumed. curl may call on_write from here. */
static void maybe_unpause(bt_transfer *t) {
  if (t->paused == P_NONE || bt_lend_busy(&t->lend) || t->easy == NULL) return;
  if (t->paused == P_FULL && bt_http_unread(&t->rx) >= STREAM_PAUSE_BYTES / 2) return;
  if (bt_http_forked(t->pid)) return;
  t->paused = P_NONE;
  if (t->engine) t->engine->kick = 1;
  curl_easy_pause(t->easy, CURLPAUSE_CONT);
}

/* The readers, upvalue 1 of transfer_read: each works on the rx it was
 * lent (lend.h). */
static int read_body(lua_State *L) {
  bt_transfer *t = lua_touserdata(L, 1);
  bt_rx *rx = bt_lend_state(&t->lend);
  lua_pushlstring(L, rx->buf.p ? rx->buf.p + rx->off : "", bt_http_unread(rx));
  rx->off = rx->buf.len = 0;
  return 1;
}

static int read_pending(lua_State *L) {
  bt_transfer *t = lua_touserdata(L, 1);
  sse_event ev;
  if (sse_pending(&((bt_rx *)bt_lend_state(&t->lend))->sse, &ev))
    lua_pushlstring(L, ev.data, ev.data_len);
  else lua_pushnil(L);
  return 1;
}

static int is_done_marker(const sse_event *ev) {
  return ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0;
}

/* A stream's chunks are decoded by bt_delta_decode_chunk (ldelta.c) with
 * its DELTA_FLAGS: object members that are null are left out (what the
 * client returns holds no null member), and a lone surrogate escape
 * becomes its 3-byte form, for baseten.stream to pair with the half in the
 * next chunk or make U+FFFD (servers in JavaScript cut text between the
 * two halves of an emoji). */

/* Turns one parsed event into the values next_event returns. Returns the
 * number of values, or 0 to skip (an empty data frame). A chunk that holds
 * lone surrogates (see above) has a third value, how many: "chunk",
 * table, lone; baseten.stream mends them. Given a sink (the stack index of
 * the accumulator's content segment, or 0), a chunk whose only effect on
 * the accumulator is its content piece goes into it (bt_delta_decode_chunk)
 * and the third value is true. */
static int push_event(lua_State *L, const sse_event *ev, int sink) {
  char err[160];
  size_t lone = 0;
  int rc;
  if (ev->type_len != 7 || memcmp(ev->type, "message", 7) != 0) {
    lua_pushliteral(L, "event");
    lua_pushlstring(L, ev->type, ev->type_len);
    lua_pushlstring(L, ev->data, ev->data_len);
    return 3;
  }
  if (ev->data_len == 0) return 0;
  if (is_done_marker(ev)) {
    lua_pushliteral(L, "done");
    return 1;
  }
  lua_pushliteral(L, "chunk");
  rc = bt_delta_decode_chunk(L, ev->data, ev->data_len, &lone, err, sizeof err, sink);
  if (rc != 0) {
    if (lone != 0) {
      lua_pushinteger(L, (lua_Integer)lone); /* the rare case: a third value */
      return 3;
    }
    if (rc == 1) return 2;
    lua_pushboolean(L, 1); /* added to the sink: a third value, true */
    return 3;
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "invalid");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_pushstring(L, err);
  return 3;
}

/* Bytes go from curl's buffer through the SSE parser straight into the
 * JSON decoder, which builds the Lua table in one pass; no Lua string is
 * made for the payload. */
static int read_events(lua_State *L, int text) {
  bt_transfer *t = lua_touserdata(L, 1);
  bt_rx *rx = bt_lend_state(&t->lend);
  int head = text && lua_toboolean(L, 2);
  int sink = !text && lua_istable(L, 2) ? 2 : 0;
  while (!bt_lend_closed(&t->lend) && rx->off < rx->buf.len) {
    sse_event ev;
    size_t used = 0;
    int rc = sse_feed(&rx->sse, rx->buf.p + rx->off, bt_http_unread(rx), &used, &ev), nret;
    rx->off += used;
    if (rc == SSE_NEED_MORE) continue;
    if (rc < 0) { /* a runtime failure: nil, why (bt.h) */
      lua_pushnil(L);
      lua_pushstring(L, rc == SSE_ERR_TOO_BIG ? "SSE event too large" : "not enough memory");
      return 2;
    }
    if (text && (nret = bt_delta_push_event(L, &ev, head)) > 0) return nret;
    if ((nret = push_event(L, &ev, sink)) > 0) return nret;
  }
  return 0;
}

static int read_next_event(lua_State *L) { return read_events(L, 0); }

/* next_text: as next_event, but a chunk of the common text shape comes as
 * "text" and a row of values, no table (ldelta.c, delta.h). */
static int read_next_text(lua_State *L) { return read_events(L, 1); }

/* Runs the reader in upvalue 1 with t->rx lent to it:
 *   t:next_event([sink]) -> the next buffered SSE event, decoded:
 *     "chunk", table[, lone | true] | "done" | "event", type, data
 *     | "invalid", data, why (true: the chunk's content went into sink,
 *     baseten.accumulate's content segment; see bt_delta_decode_chunk)
 *     | nothing when more bytes are needed | nil, why (event too large)
 *   t:next_text([head]) -> the same, but a chunk of the common text shape
 *     as "text", choice, content, ... (ldelta.c; id, model, created if head)
 *   t:body() -> every unread response byte (drains the buffer)
 *   t:pending() -> the data of an event cut off by the end of the stream
 *     (so a last "data: [DONE]" without its blank line still counts), or nil
 * A closed transfer reads as nothing, as a read it was closed under gives:
 * a finalizer can close it between two reads of the code that owns it,
 * which sees state() "closed" and ends the read (canceled), not a raise. */
static int transfer_read(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  int rc;
  if (t->state == T_CLOSED) return 0;
  maybe_unpause(t); /* curl may hand over what it held back */
  rc = bt_lend_read(L, &t->lend);
  if (t->state != T_CLOSED) maybe_unpause(t);
  return bt_lend_finish(L, rc);
}

static int transfer_state(lua_State *L) {
  bt_transfer *t = luaL_checkudata(L, 1, TRANSFER_MT);
  static const char *const names[] = {"running", "done", "closed"};
  lua_pushstring(L, names[t->state]);
  return 1;
}

/* t:info() -> timings and connection facts from curl, for logs and tests */
static int transfer_info(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  double total = 0, ttfb = 0, conn = 0;
  long nconn = 0, ver = 0;
  if (t->easy != NULL) { /* closed: zeros */
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
    curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME, &ttfb);
    curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME, &conn);
    curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn);
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &ver);
  }
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "total_time");
  lua_pushnumber(L, ttfb);
  lua_setfield(L, -2, "starttransfer_time");
  lua_pushnumber(L, conn);
  lua_setfield(L, -2, "connect_time");
  lua_pushinteger(L, nconn);
  lua_setfield(L, -2, "new_connections");
  lua_pushinteger(L, ver == CURL_HTTP_VERSION_2_0 ? 2 : ver == CURL_HTTP_VERSION_3 ? 3 : 1);
  lua_setfield(L, -2, "http_version");
  lua_pushinteger(L, (lua_Integer)t->total);
  lua_setfield(L, -2, "bytes");
  return 1;
}

static int transfer_tostring(lua_State *L) {
  bt_transfer *t = luaL_checkudata(L, 1, TRANSFER_MT);
  if (t->state == T_CLOSED) lua_pushliteral(L, "baseten.transfer (closed)");
  else lua_pushfstring(L, "baseten.transfer (%p)", (void *)t);
  return 1;
}

void bt_http_transfer_open(lua_State *L) {
  static const luaL_Reg transfer_m[] = {
      {"status", transfer_status},       {"header", transfer_header},
      {"result", transfer_result},       {"state", transfer_state},
      {"info", transfer_info},           {"close", transfer_close},
      {"__gc", transfer_close},          {"__close", transfer_close},
      {"__tostring", transfer_tostring}, {NULL, NULL}};
  static const luaL_Reg transfer_reads[] = {{"body", read_body},
                                            {"next_event", read_next_event},
                                            {"next_text", read_next_text},
                                            {"pending", read_pending},
                                            {NULL, NULL}};
  bt_new_class(L, TRANSFER_MT, transfer_m);
  bt_lend_methods(L, transfer_reads, transfer_read);
  lua_pop(L, 1);
}
