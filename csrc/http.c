/*
 * http.c: one libcurl multi engine per client, and the transfers it drives.
 *
 * Blocking, streaming and non-blocking requests all run here: a blocking
 * call is a transfer plus a loop of engine:perform() in Lua. The curl
 * callbacks only copy bytes and note headers; they never touch Lua, so no
 * Lua error can unwind through libcurl (the Lua-cURLv3 lesson). SSE parsing
 * and JSON decoding happen later, in transfer:next_event(), outside curl.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bt.h"
#include "sse.h"

#define ENGINE_MT "baseten.core.engine"
#define TRANSFER_MT "baseten.core.transfer"

/* A stream pauses curl once this many bytes wait unread, so memory stays
 * flat however fast the server floods and however slow the consumer is. */
#define STREAM_PAUSE_BYTES (4u * 1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)

enum { T_RUNNING = 0, T_DONE = 1, T_CLOSED = 2 };
enum { F_NONE = 0, F_TOO_BIG, F_NOMEM };

typedef struct bt_transfer bt_transfer;

typedef struct bt_engine {
  CURLM *multi;
  bt_transfer *head; /* transfers still attached to this engine */
  int closed;
  int kick;   /* a transfer was unpaused: the next perform must not sleep */
  int active; /* bytes arrived during this perform: no need to sleep */
} bt_engine;

struct bt_transfer {
  CURL *easy;
  bt_engine *engine;
  bt_transfer *prev, *next;
  struct curl_slist *headers;
  int body_ref; /* registry ref keeping the request body string alive */
  char *buf;    /* response bytes not yet consumed */
  size_t off, len, cap, total, max_body;
  long status;
  int headers_done, state, stream, paused, failure;
  double idle, last_rx; /* idle timeout (s, 0 = none) and last byte's time */
  CURLcode result;
  sse_parser sse;
  char request_id[128], retry_after[64], retry_after_ms[32], ctype[128];
  char errbuf[CURL_ERROR_SIZE];
};

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- buffer */

static int buf_reserve(bt_transfer *t, size_t extra) {
  size_t need, cap;
  char *p;
  if (t->off > 0 && t->off == t->len) t->off = t->len = 0;
  if (t->len + extra <= t->cap) return 1;
  if (t->off > 0) { /* reclaim consumed room before growing */
    memmove(t->buf, t->buf + t->off, t->len - t->off);
    t->len -= t->off;
    t->off = 0;
    if (t->len + extra <= t->cap) return 1;
  }
  need = t->len + extra;
  cap = t->cap ? t->cap : 16384;
  while (cap < need) cap *= 2;
  p = realloc(t->buf, cap);
  if (p == NULL) return 0;
  t->buf = p;
  t->cap = cap;
  return 1;
}

/* ------------------------------------------------------- curl callbacks */

static size_t on_write(char *ptr, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t bytes = size * n;
  int ok_status = t->status >= 200 && t->status < 300;
  if (t->stream && ok_status && t->len - t->off >= STREAM_PAUSE_BYTES) {
    t->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  if ((!t->stream || !ok_status) && t->total + bytes > t->max_body) {
    t->failure = F_TOO_BIG;
    return 0;
  }
  if (!buf_reserve(t, bytes)) {
    t->failure = F_NOMEM;
    return 0;
  }
  memcpy(t->buf + t->len, ptr, bytes);
  if (t->engine) t->engine->active = 1;
  t->last_rx = mono_now();
  t->len += bytes;
  t->total += bytes;
  return bytes;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int header_is(const char *line, size_t n, const char *name) {
  size_t k = strlen(name);
  return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* Each response (a 100 Continue, a redirect, the final one) starts with a
 * status line; what we keep always describes the latest response. */
static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t len = size * n;
  t->last_rx = mono_now();
  if (t->engine) t->engine->active = 1;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
    const char *sp = memchr(line, ' ', len);
    t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    t->request_id[0] = t->retry_after[0] = t->retry_after_ms[0] = '\0';
    t->ctype[0] = '\0';
    t->headers_done = 0;
  } else if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
    if (t->status >= 200) t->headers_done = 1;
  } else if (header_is(line, len, "x-request-id")) {
    copy_value(t->request_id, sizeof t->request_id, line + 13, len - 13);
  } else if (header_is(line, len, "retry-after-ms")) {
    copy_value(t->retry_after_ms, sizeof t->retry_after_ms, line + 15, len - 15);
  } else if (header_is(line, len, "retry-after")) {
    copy_value(t->retry_after, sizeof t->retry_after, line + 12, len - 12);
  } else if (header_is(line, len, "content-type")) {
    copy_value(t->ctype, sizeof t->ctype, line + 13, len - 13);
  }
  return len;
}

/* --------------------------------------------------------------- engine */

static bt_engine *check_engine(lua_State *L, int i) {
  bt_engine *e = luaL_checkudata(L, i, ENGINE_MT);
  if (e->closed) luaL_error(L, "attempt to use a closed baseten engine");
  return e;
}

static void transfer_detach(bt_transfer *t) {
  if (t->engine == NULL) return;
  curl_multi_remove_handle(t->engine->multi, t->easy);
  if (t->prev) t->prev->next = t->next;
  else t->engine->head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->engine = NULL;
}

static void transfer_release(lua_State *L, bt_transfer *t) {
  if (t->state == T_CLOSED) return;
  transfer_detach(t);
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
  if (L != NULL) luaL_unref(L, LUA_REGISTRYINDEX, t->body_ref);
  t->body_ref = LUA_NOREF;
  free(t->buf);
  t->buf = NULL;
  t->off = t->len = t->cap = 0;
  sse_free(&t->sse);
  t->state = T_CLOSED;
}

static int engine_close(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) return 0;
  while (e->head != NULL) { /* the transfers outlive us only as closed */
    bt_transfer *t = e->head;
    transfer_detach(t);
    if (t->state == T_RUNNING) {
      t->state = T_DONE;
      t->result = CURLE_ABORTED_BY_CALLBACK;
    }
  }
  curl_multi_cleanup(e->multi);
  e->multi = NULL;
  e->closed = 1;
  return 0;
}

static int engine_new(lua_State *L) {
  bt_engine *e = lua_newuserdata(L, sizeof *e);
  memset(e, 0, sizeof *e);
  e->closed = 1; /* closed until the resource exists (liolib's habit) */
  luaL_setmetatable(L, ENGINE_MT);
  e->multi = curl_multi_init();
  if (e->multi == NULL) return luaL_error(L, "curl_multi_init failed");
  e->closed = 0;
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  return 1;
}

static void engine_collect(bt_engine *e) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
    bt_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t == NULL) continue;
    t->result = msg->data.result;
    t->state = T_DONE;
    e->active = 1;
    /* Leaving the multi hands the connection back to its pool. */
    transfer_detach(t);
  }
}

/* Ends transfers that received nothing for their idle timeout (curl's
 * low-speed check averages over several seconds, too coarse for this).
 * Returns the seconds until the nearest idle deadline, or `cap`. */
static double engine_check_idle(bt_engine *e, double cap) {
  double now = mono_now();
  bt_transfer *t = e->head, *next;
  for (; t != NULL; t = next) {
    next = t->next;
    if (t->idle <= 0 || t->state != T_RUNNING || t->paused) continue;
    if (now - t->last_rx >= t->idle) {
      t->result = CURLE_OPERATION_TIMEDOUT;
      t->state = T_DONE;
      snprintf(t->errbuf, sizeof t->errbuf, "no data received for %.3g seconds", t->idle);
      transfer_detach(t);
    } else if (t->last_rx + t->idle - now < cap) {
      cap = t->last_rx + t->idle - now;
    }
  }
  return cap;
}

/* engine:perform(timeout) -> transfers still running. Waits at most
 * timeout seconds for network activity; 0 never blocks. */
static int engine_perform(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  int running = 0;
  CURLMcode rc;
  e->active = 0;
  rc = curl_multi_perform(e->multi, &running);
  engine_collect(e);
  if (e->kick || e->active) { /* progress already: let the caller use it */
    e->kick = 0;
    timeout = 0;
  }
  timeout = engine_check_idle(e, timeout);
  if (rc == CURLM_OK && running > 0 && timeout > 0) {
    int ms = timeout > 3600 ? 3600000 : (int)(timeout * 1000 + 0.5);
    rc = curl_multi_poll(e->multi, NULL, 0, ms, NULL);
    if (rc == CURLM_OK) rc = curl_multi_perform(e->multi, &running);
    engine_collect(e);
    engine_check_idle(e, 0);
  }
  if (rc != CURLM_OK) return luaL_error(L, "curl multi: %s", curl_multi_strerror(rc));
  lua_pushinteger(L, running);
  return 1;
}

static int engine_tostring(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) lua_pushliteral(L, "baseten.engine (closed)");
  else lua_pushfstring(L, "baseten.engine (%p)", (void *)e);
  return 1;
}

/* ------------------------------------------------------------- transfer */

static bt_transfer *check_transfer(lua_State *L, int i) {
  bt_transfer *t = luaL_checkudata(L, i, TRANSFER_MT);
  if (t->state == T_CLOSED) luaL_error(L, "attempt to use a closed transfer");
  return t;
}

static long opt_ms(lua_State *L, int opts, const char *key) {
  long ms = 0;
  lua_getfield(L, opts, key);
  if (!lua_isnil(L, -1)) ms = (long)(luaL_checknumber(L, -1) * 1000.0 + 0.5);
  lua_pop(L, 1);
  return ms;
}

static size_t opt_size(lua_State *L, int opts, const char *key) {
  lua_Number n = 0;
  lua_getfield(L, opts, key);
  if (!lua_isnil(L, -1)) n = luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return n > 0 ? (size_t)n : 0;
}

static const char *opt_string(lua_State *L, int opts, const char *key) {
  const char *s;
  lua_getfield(L, opts, key);
  s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* still referenced by opts, so s stays valid */
  return s;
}

static int opt_bool(lua_State *L, int opts, const char *key) {
  int b;
  lua_getfield(L, opts, key);
  b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

static void set_headers(lua_State *L, bt_transfer *t, int opts) {
  size_t i, n;
  lua_getfield(L, opts, "headers");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    struct curl_slist *s;
    lua_rawgeti(L, -1, (int)i);
    s = curl_slist_append(t->headers, luaL_checkstring(L, -1));
    lua_pop(L, 1);
    if (s == NULL) luaL_error(L, "out of memory");
    t->headers = s;
  }
  lua_pop(L, 1);
  /* Some LLM endpoints never answer 100-continue: never wait for it. */
  t->headers = curl_slist_append(t->headers, "Expect:");
  if (t->headers == NULL) luaL_error(L, "out of memory");
}

static void set_body(lua_State *L, bt_transfer *t, int opts) {
  size_t len;
  const char *body;
  lua_getfield(L, opts, "body");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  body = luaL_checklstring(L, -1, &len);
  t->body_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pins the string */
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, body);
}

static void set_tls_proxy(lua_State *L, bt_transfer *t, int opts) {
  const char *s;
  if ((s = opt_string(L, opts, "ca_file")) != NULL) curl_easy_setopt(t->easy, CURLOPT_CAINFO, s);
  if ((s = opt_string(L, opts, "ca_path")) != NULL) curl_easy_setopt(t->easy, CURLOPT_CAPATH, s);
  if ((s = opt_string(L, opts, "proxy")) != NULL) curl_easy_setopt(t->easy, CURLOPT_PROXY, s);
  if (opt_bool(L, opts, "insecure")) {
    curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

static void set_timeouts(lua_State *L, bt_transfer *t, int opts) {
  long ms = opt_ms(L, opts, "timeout");
  if (ms > 0) curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, ms);
  if ((ms = opt_ms(L, opts, "connect_timeout")) > 0)
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);
  t->idle = (double)opt_ms(L, opts, "idle_timeout") / 1000.0;
  t->last_rx = mono_now();
}

static void set_basics(lua_State *L, bt_transfer *t, int opts) {
  CURL *h = t->easy;
  const char *method = opt_string(L, opts, "method");
  const char *ua = opt_string(L, opts, "user_agent");
  const char *url = opt_string(L, opts, "url");
  if (url == NULL) luaL_error(L, "request needs a url");
  curl_easy_setopt(h, CURLOPT_URL, url); /* curl copies option strings */
  curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (ua) curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
  if (method && strcmp(method, "GET") == 0) curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  else if (method && strcmp(method, "POST") != 0)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
}

/* engine:request{url=, method=, headers={"K: v"}, body=, timeout=,
 * connect_timeout=, idle_timeout=, ca_file=, proxy=, stream=, max_event=,
 * max_body=} -> transfer, already running. */
static int engine_request(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  bt_transfer *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  t = lua_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = T_CLOSED; /* nothing to free yet */
  t->body_ref = LUA_NOREF;
  sse_init(&t->sse, opt_size(L, 2, "max_event"));
  luaL_setmetatable(L, TRANSFER_MT);
  t->easy = curl_easy_init();
  if (t->easy == NULL) return luaL_error(L, "curl_easy_init failed");
  t->state = T_RUNNING; /* from here on __gc frees what we take */
  t->stream = opt_bool(L, 2, "stream");
  t->max_body = opt_size(L, 2, "max_body");
  if (t->max_body == 0) t->max_body = DEFAULT_MAX_BODY;
  set_basics(L, t, 2);
  set_headers(L, t, 2);
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
  set_body(L, t, 2);
  set_timeouts(L, t, 2);
  set_tls_proxy(L, t, 2);
  if (curl_multi_add_handle(e->multi, t->easy) != CURLM_OK)
    return luaL_error(L, "curl_multi_add_handle failed");
  t->engine = e;
  t->next = e->head;
  if (e->head) e->head->prev = t;
  e->head = t;
  return 1;
}

static int transfer_close(lua_State *L) {
  bt_transfer *t = luaL_checkudata(L, 1, TRANSFER_MT);
  transfer_release(L, t);
  return 0;
}

static int transfer_gc(lua_State *L) { return transfer_close(L); }

/* t:status() -> HTTP status (0 until known), whether the final headers are in */
static int transfer_status(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  lua_pushinteger(L, t->headers_done ? t->status : 0);
  lua_pushboolean(L, t->headers_done);
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
  else return luaL_argerror(L, 2, "header not captured");
  if (*v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

static const char *result_kind(const bt_transfer *t) {
  if (t->failure == F_TOO_BIG) return "too_large";
  if (t->failure == F_NOMEM) return "nomem";
  switch (t->result) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_ABORTED_BY_CALLBACK: return "canceled";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_USE_SSL_FAILED: return "tls";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "dns";
  default: return "connection";
  }
}

/* t:result() -> nil while running; true when curl finished cleanly;
 * false, kind, message, curl_code when it failed. */
static int transfer_result(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  if (t->state == T_RUNNING) return 0;
  if (t->result == CURLE_OK && t->failure == F_NONE) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, result_kind(t));
  if (t->failure == F_TOO_BIG) lua_pushliteral(L, "response body too large");
  else if (t->errbuf[0]) lua_pushstring(L, t->errbuf);
  else lua_pushstring(L, curl_easy_strerror(t->result));
  lua_pushinteger(L, (lua_Integer)t->result);
  return 4;
}

static void maybe_unpause(bt_transfer *t) {
  if (t->paused && t->len - t->off < STREAM_PAUSE_BYTES / 2 && t->easy) {
    t->paused = 0;
    if (t->engine) t->engine->kick = 1;
    curl_easy_pause(t->easy, CURLPAUSE_CONT); /* may call on_write now */
  }
}

/* t:body() -> every unread response byte (drains the buffer) */
static int transfer_body(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  lua_pushlstring(L, t->buf ? t->buf + t->off : "", t->len - t->off);
  t->off = t->len = 0;
  maybe_unpause(t);
  return 1;
}

static int is_done_marker(const sse_event *ev) {
  return ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0;
}

/* How a stream's chunks are decoded: object members that are null are left
 * out (what the client returns holds no null member), and a lone surrogate
 * escape becomes its 3-byte form, for baseten.stream to pair with the half
 * in the next chunk or make U+FFFD (servers in JavaScript cut text between
 * the two halves of an emoji). */
#define CHUNK_FLAGS (BT_JSON_DROP_NULLS | BT_JSON_LONE_WTF8)

/* Turns one parsed event into the values next_event returns. Returns the
 * number of values, or 0 to skip (an empty data frame). A chunk that holds
 * lone surrogates (CHUNK_FLAGS) has a third value, how many: "chunk",
 * table, lone; baseten.stream mends them. */
static int push_event(lua_State *L, const sse_event *ev) {
  char err[160];
  size_t lone = 0;
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
  if (bt_json_push_decoded(L, ev->data, ev->data_len, CHUNK_FLAGS, &lone, err, sizeof err)) {
    if (lone == 0) return 2;
    lua_pushinteger(L, (lua_Integer)lone); /* the rare case: a third value */
    return 3;
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "invalid");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_pushstring(L, err);
  return 3;
}

/*
 * t:next_event() -> the next buffered SSE event, decoded:
 *   "chunk", table | "done" | "event", type, data | "invalid", data, why
 *   | "error", why (event too large) | nothing when more bytes are needed.
 * This is the per-chunk hot path: bytes go from curl's buffer through the
 * SSE parser straight into the JSON decoder, which builds the Lua table in
 * one pass; no Lua string is made for the payload.
 */
static int transfer_next_event(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  for (;;) {
    sse_event ev;
    size_t used = 0;
    int rc, nret;
    maybe_unpause(t);
    if (t->off == t->len) return 0;
    rc = sse_feed(&t->sse, t->buf + t->off, t->len - t->off, &used, &ev);
    t->off += used;
    if (rc == SSE_NEED_MORE) continue;
    if (rc < 0) {
      lua_pushliteral(L, "error");
      lua_pushstring(L, rc == SSE_ERR_TOO_BIG ? "SSE event too large" : "out of memory");
      return 2;
    }
    nret = push_event(L, &ev);
    if (nret > 0) return nret;
  }
}

/* t:pending() -> the data of an event cut off by the end of the stream
 * (so a last "data: [DONE]" without its blank line still counts), or nil */
static int transfer_pending(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  sse_event ev;
  if (sse_pending(&t->sse, &ev)) lua_pushlstring(L, ev.data, ev.data_len);
  else lua_pushnil(L);
  return 1;
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
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
  curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME, &ttfb);
  curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME, &conn);
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn);
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &ver);
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

/* ---------------------------------------------------------------- clock */

static int clock_now(lua_State *L) {
  lua_pushnumber(L, mono_now());
  return 1;
}

static int clock_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (s <= 0) return 0;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return 0;
}

static int core_curl_version(lua_State *L) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  return 3;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, m, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void bt_http_open(lua_State *L) {
  static const luaL_Reg engine_m[] = {{"request", engine_request},
                                      {"perform", engine_perform},
                                      {"close", engine_close},
                                      {"__gc", engine_close},
                                      {"__close", engine_close},
                                      {"__tostring", engine_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg transfer_m[] = {{"status", transfer_status},
                                        {"header", transfer_header},
                                        {"result", transfer_result},
                                        {"body", transfer_body},
                                        {"next_event", transfer_next_event},
                                        {"pending", transfer_pending},
                                        {"state", transfer_state},
                                        {"info", transfer_info},
                                        {"close", transfer_close},
                                        {"__gc", transfer_gc},
                                        {"__close", transfer_close},
                                        {"__tostring", transfer_tostring},
                                        {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"engine", engine_new},
                                   {"now", clock_now},
                                   {"sleep", clock_sleep},
                                   {"curl_version", core_curl_version},
                                   {NULL, NULL}};
  new_class(L, ENGINE_MT, engine_m);
  new_class(L, TRANSFER_MT, transfer_m);
  luaL_setfuncs(L, funcs, 0);
}
