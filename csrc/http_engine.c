/*
 * http_engine.c: baseten.core.engine, one libcurl multi handle per client.
 * engine:request starts a transfer on it; engine:perform moves bytes for
 * all of them. A blocking call is a transfer plus a loop of perform in Lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "platform.h"

#define CLOSED_MSG "attempt to use a closed baseten engine"

static bt_engine *check_engine(lua_State *L, int i) {
  bt_engine *e = luaL_checkudata(L, i, ENGINE_MT);
  if (e->closed) luaL_error(L, CLOSED_MSG);
  if (bt_http_forked(e->pid))
    luaL_error(L,
               "baseten engine made in process %d used in process %d (a forked child): make a "
               "new client there",
               (int)e->pid, (int)bt_process_id());
  return e;
}

/* Puts t on e: the mirror of bt_http_detach. */
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

/* Leaving the multi hands the connection back to its pool; in a forked
 * child the transfer is only unlinked. */
void bt_http_detach(bt_transfer *t) {
  if (t->engine == NULL) return;
  if (!bt_http_forked(t->pid)) curl_multi_remove_handle(t->engine->multi, t->easy);
  if (t->prev) t->prev->next = t->next;
  else t->engine->head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->engine = NULL;
}

/* Ends t with a result, off its engine. */
static void transfer_finish(bt_transfer *t, CURLcode result) {
  t->result = result;
  t->state = T_DONE;
  bt_http_detach(t);
}

CURL *bt_http_handle_take(bt_engine *e, bt_pool **pool) {
  bt_pool *p = e->closed ? NULL : e->pool;
  CURL *h = p && p->n > 0 ? p->h[--p->n] : curl_easy_init();
  *pool = h ? p : NULL;
  if (*pool) p->refs++;
  return h;
}

static void pool_unref(bt_pool *p) {
  if (--p->refs == 0) free(p);
}

void bt_http_handle_give(bt_pool *p, CURL *h, long pid) {
  if (h != NULL && !bt_http_forked(pid)) {
    if (p && !p->closed && p->n < HANDLE_POOL_MAX) {
      curl_easy_reset(h); /* every option, the private pointer included, is set again */
      p->h[p->n++] = h;
    } else {
      curl_easy_cleanup(h);
    }
  }
  if (p) pool_unref(p);
}

/* The engine's share of its pool: the kept handles are freed (in the
 * process that made them), transfers still out free theirs on close. */
static void pool_close(bt_engine *e) {
  bt_pool *p = e->pool;
  e->pool = NULL;
  if (p == NULL) return;
  p->closed = 1;
  while (p->n > 0) {
    CURL *h = p->h[--p->n];
    if (!bt_http_forked(e->pid)) curl_easy_cleanup(h);
  }
  pool_unref(p);
}

static int engine_close(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) return 0;
  while (e->head != NULL) { /* the transfers outlive us only as closed */
    bt_transfer *t = e->head;
    if (t->state == T_RUNNING) transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
    else bt_http_detach(t);
  }
  pool_close(e);
  /* a forked child leaves the multi (and its memory) alone */
  if (!bt_http_forked(e->pid)) curl_multi_cleanup(e->multi);
  e->multi = NULL;
  e->closed = 1;
  return 0;
}

static int engine_new(lua_State *L) {
  bt_engine *e = lua_newuserdata(L, sizeof *e);
  memset(e, 0, sizeof *e);
  e->closed = 1; /* closed until the resource exists (liolib's habit) */
  e->pid = bt_process_id();
  luaL_setmetatable(L, ENGINE_MT);
  e->multi = curl_multi_init();
  if (e->multi == NULL) return luaL_error(L, "curl_multi_init failed");
  e->pool = calloc(1, sizeof *e->pool);
  if (e->pool == NULL) {
    curl_multi_cleanup(e->multi);
    e->multi = NULL;
    return luaL_error(L, "not enough memory");
  }
  e->pool->refs = 1;
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

/* engine:request{url=, method=, headers={"K: v"}, body=, timeout=,
 * connect_timeout=, idle_timeout=, ca_file=, ca_path=, proxy=, insecure=, ssl_no_revoke=,
 * user_agent=, stream=, max_event=, max_body=} -> transfer, already
 * running. Times are seconds, sizes bytes. */
static int engine_request(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  bt_transfer *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  t = bt_http_transfer_new(L, e, 2);
  if (e->closed) return luaL_error(L, CLOSED_MSG); /* by a finalizer or metamethod just now */
  if (transfer_attach(e, t) != CURLM_OK) return luaL_error(L, "curl_multi_add_handle failed");
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

void bt_http_open(lua_State *L) {
  static const luaL_Reg engine_m[] = {{"request", engine_request},
                                      {"perform", engine_perform},
                                      {"fds", engine_fds},
                                      {"close", engine_close},
                                      {"__gc", engine_close},
                                      {"__close", engine_close},
                                      {"__tostring", engine_tostring},
                                      {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"engine", engine_new}, {NULL, NULL}};
  bt_new_class(L, ENGINE_MT, engine_m);
  lua_pop(L, 1);
  bt_http_transfer_open(L);
  luaL_setfuncs(L, funcs, 0);
}
