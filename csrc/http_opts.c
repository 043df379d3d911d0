/*
 * http_opts.c: a transfer made from engine:request's option table. A bad
 * option raises at once, naming it; the transfer's __gc frees whatever was
 * taken before that.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "platform.h"

/* The longest time option, in seconds: curl takes milliseconds in a long,
 * 32 bits on some systems. */
#define MAX_SECONDS 2147483.0
/* The largest byte count option: up to 2^53 every integer is a double. */
#define MAX_BYTES BT_EXACT_INT

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
  /* Schannel only; other backends ignore the bit */
  if (opt_bool(L, opts, "ssl_no_revoke"))
    curl_easy_setopt(t->easy, CURLOPT_SSL_OPTIONS, (long)CURLSSLOPT_NO_REVOKE);
}

static void set_timeouts(lua_State *L, bt_transfer *t, int opts) {
  long ms = opt_ms(L, opts, "timeout");
  if (ms > 0) curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, ms);
  if ((ms = opt_ms(L, opts, "connect_timeout")) > 0)
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);
  t->idle = opt_number(L, opts, "idle_timeout", MAX_SECONDS);
  t->last_rx = bt_mono_now();
}

static void set_url(lua_State *L, bt_transfer *t, int opts) {
  lua_getfield(L, opts, "url");
  if (lua_isnil(L, -1)) luaL_error(L, "request needs a url");
  curl_easy_setopt(t->easy, CURLOPT_URL, field_string(L, "url"));
  if (bt_http_set_curl(t, lua_tostring(L, -1)) != 0)
    luaL_error(L, "engine:request: this libcurl cannot be limited to the http and https "
                  "protocols, so no request is made");
  lua_pop(L, 1);
}

/* Closed until the handle exists, so that __gc frees only what was taken. */
static bt_transfer *transfer_alloc(lua_State *L, bt_engine *e, int opts) {
  size_t max_event = opt_bytes(L, opts, "max_event");
  size_t max_body = opt_bytes(L, opts, "max_body");
  bt_transfer *t = lua_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = T_CLOSED;
  t->pid = bt_process_id();
  t->body_ref = LUA_NOREF;
  sse_init(&t->rx.sse, max_event);
  BT_LEND_INIT(&t->lend, &t->rx, bt_http_rx_free, "transfer");
  luaL_setmetatable(L, TRANSFER_MT);
  /* no Lua call (so no finalizer) from here to T_RUNNING: the pool ref
   * taken is t's before anything can close e or raise */
  t->easy = bt_http_handle_take(e, &t->pool);
  if (t->easy == NULL) luaL_error(L, "curl_easy_init failed");
  t->state = T_RUNNING; /* from here on __gc frees what we take */
  t->stream = opt_bool(L, opts, "stream");
  t->max_body = max_body ? max_body : DEFAULT_MAX_BODY;
  return t;
}

bt_transfer *bt_http_transfer_new(lua_State *L, bt_engine *e, int opts) {
  bt_transfer *t = transfer_alloc(L, e, opts);
  set_url(L, t, opts);
  set_string(L, t, opts, "user_agent", CURLOPT_USERAGENT);
  set_method(L, t, opts);
  set_headers(L, t, opts);
  set_body(L, t, opts);
  set_timeouts(L, t, opts);
  set_tls_proxy(L, t, opts);
  return t;
}
