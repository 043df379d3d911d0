/*
 * http.c: one libcurl multi engine per client, and the transfers it drives.
 *
 * Blocking, streaming and non-blocking requests all run here: a blocking
 * call is a transfer plus a loop of engine:perform() in Lua. The curl
 * callbacks only copy bytes and note headers; they never touch Lua, so no
 * Lua error can unwind through libcurl (the Lua-cURLv3 lesson). SSE parsing
 * and JSON decoding happen later, in transfer:next_event(), outside curl.
 *
 * Borrowed bytes. next_event, body and pending hand the JSON decoder or Lua
 * pointers into t->buf and t->sse. Any allocation on the way can run a GC
 * step, and so any __gc, which may close the transfer, perform its engine
 * or read the transfer again. So these three run as "reads" (transfer_read):
 * under lua_pcall with t->reading set, cleared however the read ends. While
 * it is set, close leaves the buffers alone (the read frees them when it
 * ends), on_write pauses curl instead of writing, and a second read raises.
 * Letting Lua own the bytes instead would cost a Lua string per event on
 * the per-token path, which decodes straight from curl's bytes.
 */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bt.h"
#include "buf.h"
#include "platform.h"
#include "sse.h"

#define ENGINE_MT "baseten.core.engine"
#define TRANSFER_MT "baseten.core.transfer"

/* A stream pauses curl once this many bytes wait unread, so memory stays
 * flat however fast the server floods and however slow the consumer is. */
#define STREAM_PAUSE_BYTES (4u * 1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
/* The headers of one response, in all. libcurl (7.88) stops at 300 KiB
 * with a receive error, and at CURL_MAX_HTTP_HEADER for one line with "out
 * of memory"; both must read as a response too large, never retried. */
#define MAX_HEADER_BYTES (256u * 1024u)
/* The longest time option, in seconds: curl takes milliseconds in a long,
 * 32 bits on some systems. */
#define MAX_SECONDS 2147483.0
/* The largest byte count option: every integer up to 2^53 is a double. */
#define MAX_BYTES 9007199254740992.0

enum { T_RUNNING = 0, T_DONE = 1, T_CLOSED = 2 };
enum { F_NONE = 0, F_TOO_BIG, F_NOMEM, F_HEADER };
enum { P_NONE = 0, P_FULL, P_READING }; /* why curl is paused */

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
  bt_buf buf;   /* response bytes; those before off are consumed */
  size_t off, total, max_body, header_bytes;
  long status;
  int headers_done, state, stream, paused, failure;
  int reading;          /* a read borrows buf and sse: see the top of this file */
  double idle, last_rx; /* idle timeout (s, 0 = none) and last byte's time */
  CURLcode result;
  sse_parser sse;
  char request_id[128], retry_after[64], retry_after_ms[32], ctype[128];
  char session_id[256]; /* Mcp-Session-Id (MCP's Streamable HTTP) */
  char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------- curl callbacks */

static size_t unread(const bt_transfer *t) { return t->buf.len - t->off; }

/* Appends to t->buf, first dropping the consumed bytes at its front when
 * that makes the room. Never runs during a read (on_write pauses then). */
static int buf_store(bt_transfer *t, const char *p, size_t n) {
  bt_buf *b = &t->buf;
  if (t->off == b->len) {
    t->off = b->len = 0;
  } else if (t->off > 0 && b->cap - b->len < n) {
    memmove(b->p, b->p + t->off, b->len - t->off);
    b->len -= t->off;
    t->off = 0;
  }
  return bt_buf_append(b, p, n) == 0;
}

static size_t pause_writes(bt_transfer *t, int why) {
  t->paused = why;
  return CURL_WRITEFUNC_PAUSE;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t bytes = size * n;
  int ok_status = t->status >= 200 && t->status < 300;
  if (t->reading) return pause_writes(t, P_READING);
  if (t->stream && ok_status && unread(t) >= STREAM_PAUSE_BYTES) return pause_writes(t, P_FULL);
  if ((!t->stream || !ok_status) && bytes > t->max_body - t->total) {
    t->failure = F_TOO_BIG;
    return 0;
  }
  if (!buf_store(t, ptr, bytes)) {
    t->failure = F_NOMEM;
    return 0;
  }
  if (t->engine) t->engine->active = 1;
  t->last_rx = bt_mono_now();
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
  return n > k && line[k] == ':' && bt_ascii_ncasecmp(line, name, k) == 0;
}

/* A status line starts a response (a 100 Continue, a redirect, the final
 * one); what we keep always describes the latest. */
static void on_status_line(bt_transfer *t, const char *line, size_t len) {
  const char *sp = memchr(line, ' ', len);
  t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
  t->request_id[0] = t->retry_after[0] = t->retry_after_ms[0] = '\0';
  t->ctype[0] = t->session_id[0] = '\0';
  t->headers_done = 0;
  t->header_bytes = 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t len = size * n;
  t->last_rx = bt_mono_now();
  if (t->engine) t->engine->active = 1;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) on_status_line(t, line, len);
  if ((t->header_bytes += len) > MAX_HEADER_BYTES) {
    t->failure = F_HEADER;
    return 0;
  }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
    if (t->status >= 200) t->headers_done = 1;
  } else if (header_is(line, len, "x-request-id")) {
    copy_value(t->request_id, sizeof t->request_id, line + 13, len - 13);
  } else if (header_is(line, len, "retry-after-ms")) {
    copy_value(t->retry_after_ms, sizeof t->retry_after_ms, line + 15, len - 15);
  } else if (header_is(line, len, "retry-after")) {
    copy_value(t->retry_after, sizeof t->retry_after, line + 12, len - 12);
  } else if (header_is(line, len, "content-type")) {
    copy_value(t->ctype, sizeof t->ctype, line + 13, len - 13);
  } else if (header_is(line, len, "mcp-session-id")) {
    copy_value(t->session_id, sizeof t->session_id, line + 15, len - 15);
  }
  return len;
}

/* --------------------------------------------------------------- engine */

static bt_engine *check_engine(lua_State *L, int i) {
  bt_engine *e = luaL_checkudata(L, i, ENGINE_MT);
  if (e->closed) luaL_error(L, "attempt to use a closed baseten engine");
  return e;
}

/* Puts t on e: the mirror of transfer_detach. */
static CURLMcode transfer_attach(bt_engine *e, bt_transfer *t) {
  CURLMcode rc = curl_multi_add_handle(e->multi, t->easy);
  if (rc != CURLM_OK) return rc;
  t->engine = e;
  t->prev = NULL;
  t->next = e->head;
  if (e->head) e->head->prev = t;
  e->head = t;
  return CURLM_OK;
}

/* Takes t off its engine; leaving the multi hands the connection back to
 * its pool. */
static void transfer_detach(bt_transfer *t) {
  if (t->engine == NULL) return;
  curl_multi_remove_handle(t->engine->multi, t->easy);
  if (t->prev) t->prev->next = t->next;
  else t->engine->head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->engine = NULL;
}

/* Frees what a read may borrow: the response bytes and the SSE parser. */
static void transfer_free_buffers(bt_transfer *t) {
  bt_buf_free(&t->buf);
  t->off = 0;
  sse_free(&t->sse);
}

static void transfer_release(lua_State *L, bt_transfer *t) {
  if (t->state == T_CLOSED) return;
  transfer_detach(t);
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, t->body_ref);
  t->body_ref = LUA_NOREF;
  if (!t->reading) transfer_free_buffers(t); /* else the read frees them */
  t->state = T_CLOSED;
}

/* Ends t with a result, off its engine. */
static void transfer_finish(bt_transfer *t, CURLcode result) {
  t->result = result;
  t->state = T_DONE;
  transfer_detach(t);
}

static int engine_close(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) return 0;
  while (e->head != NULL) { /* the transfers outlive us only as closed */
    bt_transfer *t = e->head;
    if (t->state == T_RUNNING) transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
    else transfer_detach(t);
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
    transfer_finish(t, msg->data.result);
    e->active = 1;
  }
}

/* Ends transfers that received nothing for their idle timeout (curl's
 * low-speed check averages over several seconds, too coarse for this).
 * Returns the seconds until the nearest idle deadline, or `cap`. */
static double engine_check_idle(bt_engine *e, double cap) {
  double now = bt_mono_now();
  bt_transfer *t = e->head, *next;
  for (; t != NULL; t = next) {
    next = t->next;
    if (t->idle <= 0 || t->state != T_RUNNING || t->paused) continue;
    if (now - t->last_rx >= t->idle) {
      snprintf(t->errbuf, sizeof t->errbuf, "no data received for %.3g seconds", t->idle);
      transfer_finish(t, CURLE_OPERATION_TIMEDOUT);
    } else if (t->last_rx + t->idle - now < cap) {
      cap = t->last_rx + t->idle - now;
    }
  }
  return cap;
}

/* One round: curl moves bytes, finished transfers are collected, idle
 * ones ended. *wait becomes 0 once there was progress (let the caller use
 * it), else at most the time to the nearest idle deadline. */
static CURLMcode engine_round(bt_engine *e, int *running, double *wait) {
  CURLMcode rc = curl_multi_perform(e->multi, running);
  engine_collect(e);
  if (e->kick || e->active) {
    e->kick = 0;
    *wait = 0;
  }
  *wait = engine_check_idle(e, *wait);
  return rc;
}

/* perform's wait in seconds: NaN raises; below 0 is 0; at most an hour per
 * call (callers loop), so the conversion to milliseconds stays defined. */
static double check_wait(lua_State *L, int i) {
  double s = luaL_optnumber(L, i, 0);
  if (s != s) luaL_argerror(L, i, "wait is NaN");
  return s < 0 ? 0 : s > 3600 ? 3600 : s;
}

/* perform's extra file descriptors (a child's pipes, MCP's stdio
 * transport): an optional flat array {fd, events, ...}, events 1 for
 * input, 2 for output. Returns how many were put in w. */
#define MAX_EXTRA_FDS 48
static unsigned extra_fds(lua_State *L, int i, struct curl_waitfd *w) {
  unsigned n = 0;
  int k, len;
  if (lua_isnoneornil(L, i)) return 0;
  luaL_checktype(L, i, LUA_TTABLE);
  len = (int)lua_rawlen(L, i);
  if (len / 2 > MAX_EXTRA_FDS) luaL_argerror(L, i, "more than 48 extra fds");
  for (k = 1; k + 1 <= len; k += 2, n++) {
    lua_rawgeti(L, i, k);
    lua_rawgeti(L, i, k + 1);
    w[n].fd = (curl_socket_t)luaL_checkinteger(L, -2);
    w[n].events = (short)(luaL_checkinteger(L, -1) == 2 ? CURL_WAIT_POLLOUT : CURL_WAIT_POLLIN);
    w[n].revents = 0;
    lua_pop(L, 2);
  }
  return n;
}

/* engine:perform(wait[, fds]) -> transfers still running. Waits at most
 * wait seconds for network activity (or for one of the extra fds), and
 * only when a first round made no progress; 0 never blocks. */
static int engine_perform(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  double wait = check_wait(L, 2);
  struct curl_waitfd w[MAX_EXTRA_FDS];
  unsigned nw = extra_fds(L, 3, w);
  int running = 0;
  CURLMcode rc;
  e->active = 0;
  rc = engine_round(e, &running, &wait);
  if (rc == CURLM_OK && (running > 0 || nw > 0) && wait > 0) {
    rc = curl_multi_poll(e->multi, nw ? w : NULL, nw, (int)(wait * 1000 + 0.5), NULL);
    if (rc == CURLM_OK) rc = engine_round(e, &running, &wait);
  }
  if (rc != CURLM_OK) return luaL_error(L, "curl multi: %s", curl_multi_strerror(rc));
  lua_pushinteger(L, running);
  return 1;
}

/* engine:fds() -> {fd, events, ...}, timeout: the sockets curl waits on
 * now (events 1 input, 2 output), for another engine's perform to wait on
 * them too (an MCP session's engine inside a client's poll), and curl's
 * next timeout in seconds (nil: none). Through curl_multi_fdset, so POSIX
 * sees only fds below FD_SETSIZE. */
static void push_fdset(lua_State *L, fd_set *set, int maxfd, int events, int *n) {
#if defined(_WIN32)
  u_int i;
  (void)maxfd;
  for (i = 0; i < set->fd_count; i++) {
    lua_pushinteger(L, (lua_Integer)set->fd_array[i]);
    lua_rawseti(L, -2, ++*n);
    lua_pushinteger(L, events);
    lua_rawseti(L, -2, ++*n);
  }
#else
  int fd;
  for (fd = 0; fd <= maxfd; fd++) {
    if (!FD_ISSET(fd, set)) continue;
    lua_pushinteger(L, fd);
    lua_rawseti(L, -2, ++*n);
    lua_pushinteger(L, events);
    lua_rawseti(L, -2, ++*n);
  }
#endif
}

static int engine_fds(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  fd_set r, w, x;
  int maxfd = -1, n = 0;
  long ms = -1;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&x);
  curl_multi_fdset(e->multi, &r, &w, &x, &maxfd);
  lua_newtable(L);
  push_fdset(L, &r, maxfd, 1, &n);
  push_fdset(L, &w, maxfd, 2, &n);
  curl_multi_timeout(e->multi, &ms);
  if (ms >= 0) lua_pushnumber(L, (lua_Number)ms / 1000.0);
  else lua_pushnil(L);
  return 2;
}

static int engine_tostring(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) lua_pushliteral(L, "baseten.engine (closed)");
  else lua_pushfstring(L, "baseten.engine (%p)", (void *)e);
  return 1;
}

/* -------------------------------------------------------------- request */

static bt_transfer *check_transfer(lua_State *L, int i) {
  bt_transfer *t = luaL_checkudata(L, i, TRANSFER_MT);
  if (t->state == T_CLOSED) luaL_error(L, "attempt to use a closed transfer");
  return t;
}

/* The option value on top of the stack as a string, or an error naming it. */
static const char *field_string(lua_State *L, const char *key) {
  if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "engine:request: %s must be a string, not %s", key, luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

/* opts[key] as a number from 0 to max; 0 when absent. NaN, infinities and
 * values out of range raise, naming the key: the integer conversions that
 * follow would be undefined for them. */
static lua_Number opt_number(lua_State *L, int opts, const char *key, lua_Number max) {
  lua_Number n = 0;
  lua_getfield(L, opts, key);
  if (!lua_isnil(L, -1)) {
    char msg[128];
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "engine:request: %s must be a number, not %s", key, luaL_typename(L, -1));
    n = lua_tonumber(L, -1);
    if (!(n >= 0 && n <= max)) {
      snprintf(msg, sizeof msg, "engine:request: %s must be from 0 to %.0f, not %g", key, max, n);
      luaL_error(L, "%s", msg);
    }
  }
  lua_pop(L, 1);
  return n;
}

static long opt_ms(lua_State *L, int opts, const char *key) {
  return (long)(opt_number(L, opts, key, MAX_SECONDS) * 1000.0 + 0.5);
}

static size_t opt_bytes(lua_State *L, int opts, const char *key) {
  lua_Number n = opt_number(L, opts, key, MAX_BYTES);
  return n >= (lua_Number)SIZE_MAX ? SIZE_MAX : (size_t)n;
}

static int opt_bool(lua_State *L, int opts, const char *key) {
  int b;
  lua_getfield(L, opts, key);
  b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

/* Sets a string option from opts[key], if present, while the value is still
 * on the stack: a metatable may have made it just now, and only curl's copy
 * outlives the pop. Returns whether it was set. */
static int set_string(lua_State *L, bt_transfer *t, int opts, const char *key, CURLoption o) {
  int present;
  lua_getfield(L, opts, key);
  present = !lua_isnil(L, -1);
  if (present) curl_easy_setopt(t->easy, o, field_string(L, key));
  lua_pop(L, 1);
  return present;
}

static void set_method(lua_State *L, bt_transfer *t, int opts) {
  const char *m;
  lua_getfield(L, opts, "method");
  m = lua_isnil(L, -1) ? "POST" : field_string(L, "method");
  if (strcmp(m, "GET") == 0) curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
  else if (strcmp(m, "POST") != 0) curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, m);
  lua_pop(L, 1);
}

/* http and https only, redirects included: curl would fetch file://,
 * ftp://, ... URLs too. The string options came with 7.85.0. */
static void set_protocols(CURL *h) {
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

static void set_callbacks(bt_transfer *t) {
  CURL *h = t->easy;
  curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
}

/* Connection habits. HTTP/2 only over TLS, where ALPN says at the
 * handshake whether a connection multiplexes; PIPEWAIT makes a transfer
 * wait for that answer rather than open one more connection beside it.
 * Not in clear: curl learns an HTTP/1.1 connection's version only from the
 * response, so transfers there would wait for each other. */
static void set_connection(bt_transfer *t, const char *url) {
  CURL *h = t->easy;
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (curl_strnequal(url, "https://", 8)) curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  set_protocols(h);
}

static void header_append(lua_State *L, bt_transfer *t, const char *line) {
  struct curl_slist *s = curl_slist_append(t->headers, line);
  if (s == NULL) luaL_error(L, "out of memory"); /* t->headers still owned */
  t->headers = s;
}

static void set_headers(lua_State *L, bt_transfer *t, int opts) {
  int i, n;
  lua_getfield(L, opts, "headers");
  if (!lua_isnil(L, -1) && !lua_istable(L, -1))
    luaL_error(L, "engine:request: headers must be a table, not %s", luaL_typename(L, -1));
  n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "engine:request: header %d must be a string \"Name: value\", not %s", i,
                 luaL_typename(L, -1));
    header_append(L, t, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  /* Some LLM endpoints never answer 100-continue: never wait for it. */
  header_append(L, t, "Expect:");
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
}

static void set_body(lua_State *L, bt_transfer *t, int opts) {
  size_t len;
  const char *body;
  lua_getfield(L, opts, "body");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  body = field_string(L, "body");
  len = lua_rawlen(L, -1);
  t->body_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pins the string */
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, body);
}

static void set_tls_proxy(lua_State *L, bt_transfer *t, int opts) {
  set_string(L, t, opts, "ca_file", CURLOPT_CAINFO);
  set_string(L, t, opts, "ca_path", CURLOPT_CAPATH);
  set_string(L, t, opts, "proxy", CURLOPT_PROXY);
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
  t->idle = opt_number(L, opts, "idle_timeout", MAX_SECONDS);
  t->last_rx = bt_mono_now();
}

/* A new transfer, on top of the stack, with its easy handle. Closed until
 * the handle exists, so that __gc frees only what was taken. */
static bt_transfer *transfer_new(lua_State *L, int opts) {
  size_t max_event = opt_bytes(L, opts, "max_event");
  size_t max_body = opt_bytes(L, opts, "max_body");
  bt_transfer *t = lua_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = T_CLOSED;
  t->body_ref = LUA_NOREF;
  sse_init(&t->sse, max_event);
  luaL_setmetatable(L, TRANSFER_MT);
  t->easy = curl_easy_init();
  if (t->easy == NULL) luaL_error(L, "curl_easy_init failed");
  t->state = T_RUNNING; /* from here on __gc frees what we take */
  t->stream = opt_bool(L, opts, "stream");
  t->max_body = max_body ? max_body : DEFAULT_MAX_BODY;
  return t;
}

static void set_url(lua_State *L, bt_transfer *t, int opts) {
  lua_getfield(L, opts, "url");
  if (lua_isnil(L, -1)) luaL_error(L, "request needs a url");
  curl_easy_setopt(t->easy, CURLOPT_URL, field_string(L, "url"));
  set_connection(t, lua_tostring(L, -1));
  lua_pop(L, 1);
}

static void transfer_configure(lua_State *L, bt_transfer *t, int opts) {
  set_url(L, t, opts);
  set_string(L, t, opts, "user_agent", CURLOPT_USERAGENT);
  set_method(L, t, opts);
  set_callbacks(t);
  set_headers(L, t, opts);
  set_body(L, t, opts);
  set_timeouts(L, t, opts);
  set_tls_proxy(L, t, opts);
}

/* engine:request{url=, method=, headers={"K: v"}, body=, timeout=,
 * connect_timeout=, idle_timeout=, ca_file=, ca_path=, proxy=, insecure=,
 * user_agent=, stream=, max_event=, max_body=} -> transfer, already
 * running. Times are seconds, sizes bytes. */
static int engine_request(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  bt_transfer *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  t = transfer_new(L, 2);
  transfer_configure(L, t, 2);
  if (transfer_attach(e, t) != CURLM_OK) return luaL_error(L, "curl_multi_add_handle failed");
  return 1;
}

/* ------------------------------------------------------------- transfer */

static int transfer_close(lua_State *L) {
  bt_transfer *t = luaL_checkudata(L, 1, TRANSFER_MT);
  transfer_release(L, t);
  return 0;
}

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
  else if (strcmp(name, "mcp-session-id") == 0) v = t->session_id;
  else return luaL_argerror(L, 2, "header not captured");
  if (*v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

/* Why t failed, if through no fault of curl's transport: our own limits,
 * and libcurl's limit on one header line, which it reports as out of
 * memory before the headers are complete. */
static int transfer_failure(const bt_transfer *t) {
  if (t->failure != F_NONE) return t->failure;
  if (t->result == CURLE_OUT_OF_MEMORY && !t->headers_done) return F_HEADER;
  return F_NONE;
}

static const char *curl_kind(CURLcode result) {
  switch (result) {
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

/* kind and message of a failed transfer (the Lua layer maps "too_large"
 * and "nomem" to invalid_response, never retried) */
static void push_failure(lua_State *L, const bt_transfer *t) {
  switch (transfer_failure(t)) {
  case F_TOO_BIG:
    lua_pushliteral(L, "too_large");
    lua_pushliteral(L, "response body too large");
    return;
  case F_HEADER:
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L,
                    "response headers too large (the header limit is %d bytes a line, %d in all)",
                    (int)CURL_MAX_HTTP_HEADER, (int)MAX_HEADER_BYTES);
    return;
  case F_NOMEM: lua_pushliteral(L, "nomem"); break;
  default: lua_pushstring(L, curl_kind(t->result));
  }
  if (t->errbuf[0]) lua_pushstring(L, t->errbuf);
  else lua_pushstring(L, curl_easy_strerror(t->result));
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
  push_failure(L, t);
  lua_pushinteger(L, (lua_Integer)t->result);
  return 4;
}

/* Lets curl write again: at once after a read, for a full stream buffer
 * once half of it is consumed. curl may call on_write from here. */
static void maybe_unpause(bt_transfer *t) {
  if (t->paused == P_NONE || t->reading || t->easy == NULL) return;
  if (t->paused == P_FULL && unread(t) >= STREAM_PAUSE_BYTES / 2) return;
  t->paused = P_NONE;
  if (t->engine) t->engine->kick = 1;
  curl_easy_pause(t->easy, CURLPAUSE_CONT);
}

/* The methods in upvalue 1 of transfer_read: they run with t->reading set,
 * so they may borrow t->buf and t->sse. A close during the read keeps
 * those; the loop stops. */
static int read_body(lua_State *L) {
  bt_transfer *t = lua_touserdata(L, 1);
  lua_pushlstring(L, t->buf.p ? t->buf.p + t->off : "", unread(t));
  t->off = t->buf.len = 0;
  return 1;
}

static int read_pending(lua_State *L) {
  bt_transfer *t = lua_touserdata(L, 1);
  sse_event ev;
  if (sse_pending(&t->sse, &ev)) lua_pushlstring(L, ev.data, ev.data_len);
  else lua_pushnil(L);
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

/* Bytes go from curl's buffer through the SSE parser straight into the
 * JSON decoder, which builds the Lua table in one pass; no Lua string is
 * made for the payload. */
static int read_next_event(lua_State *L) {
  bt_transfer *t = lua_touserdata(L, 1);
  while (t->state != T_CLOSED && t->off < t->buf.len) {
    sse_event ev;
    size_t used = 0;
    int rc = sse_feed(&t->sse, t->buf.p + t->off, unread(t), &used, &ev), nret;
    t->off += used;
    if (rc == SSE_NEED_MORE) continue;
    if (rc < 0) {
      lua_pushliteral(L, "error");
      lua_pushstring(L, rc == SSE_ERR_TOO_BIG ? "SSE event too large" : "out of memory");
      return 2;
    }
    if ((nret = push_event(L, &ev)) > 0) return nret;
  }
  return 0;
}

/* Runs the reader in upvalue 1 as a read (see the top of this file):
 *   t:next_event() -> the next buffered SSE event, decoded:
 *     "chunk", table | "done" | "event", type, data | "invalid", data, why
 *     | "error", why (event too large) | nothing when more bytes are needed
 *   t:body() -> every unread response byte (drains the buffer)
 *   t:pending() -> the data of an event cut off by the end of the stream
 *     (so a last "data: [DONE]" without its blank line still counts), or nil */
static int transfer_read(lua_State *L) {
  bt_transfer *t = check_transfer(L, 1);
  int rc;
  if (t->reading)
    return luaL_error(L, "transfer is being read (by the code this finalizer interrupted)");
  maybe_unpause(t); /* curl may hand over what it held back */
  rc = bt_call_marked(L, &t->reading);
  if (t->state == T_CLOSED) transfer_free_buffers(t);
  else maybe_unpause(t);
  if (rc != 0) return lua_error(L);
  return lua_gettop(L);
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
                                      {"fds", engine_fds},
                                      {"close", engine_close},
                                      {"__gc", engine_close},
                                      {"__close", engine_close},
                                      {"__tostring", engine_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg transfer_m[] = {
      {"status", transfer_status},       {"header", transfer_header},
      {"result", transfer_result},       {"state", transfer_state},
      {"info", transfer_info},           {"close", transfer_close},
      {"__gc", transfer_close},          {"__close", transfer_close},
      {"__tostring", transfer_tostring}, {NULL, NULL}};
  static const luaL_Reg transfer_reads[] = {{"body", read_body},
                                            {"next_event", read_next_event},
                                            {"pending", read_pending},
                                            {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"engine", engine_new}, {NULL, NULL}};
  new_class(L, ENGINE_MT, engine_m);
  new_class(L, TRANSFER_MT, transfer_m);
  luaL_getmetatable(L, TRANSFER_MT);
  bt_set_marked(L, transfer_reads, transfer_read);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
