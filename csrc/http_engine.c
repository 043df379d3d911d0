/*
 * http_engine.c: baseten.core.engine, one libcurl multi handle per client.
 * engine:request starts a transfer on it; engine:perform moves bytes for
 * all of them. A blocking call is a transfer plus a loop of perform in Lua.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "platform.h"

static bt_engine *check_engine(lua_State *L, int i) {
  bt_engine *e = luaL_checkudata(L, i, ENGINE_MT);
  if (e->closed) luaL_error(L, "attempt to use a closed baseten engine");
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

/* Leaving the multi hands the connection back to its pool. */
void bt_http_detach(bt_transfer *t) {
  if (t->engine == NULL) return;
  curl_multi_remove_handle(t->engine->multi, t->easy);
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

static int engine_close(lua_State *L) {
  bt_engine *e = luaL_checkudata(L, 1, ENGINE_MT);
  if (e->closed) return 0;
  while (e->head != NULL) { /* the transfers outlive us only as closed */
    bt_transfer *t = e->head;
    if (t->state == T_RUNNING) transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
    else bt_http_detach(t);
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

/* engine:perform(wait) -> transfers still running. Waits at most wait
 * seconds for network activity, and only when a first round made no
 * progress; 0 never blocks. */
static int engine_perform(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  double wait = check_wait(L, 2);
  int running = 0;
  CURLMcode rc;
  e->active = 0;
  rc = engine_round(e, &running, &wait);
  if (rc == CURLM_OK && running > 0 && wait > 0) {
    rc = curl_multi_poll(e->multi, NULL, 0, (int)(wait * 1000 + 0.5), NULL);
    if (rc == CURLM_OK) rc = engine_round(e, &running, &wait);
  }
  if (rc != CURLM_OK) return luaL_error(L, "curl multi: %s", curl_multi_strerror(rc));
  lua_pushinteger(L, running);
  return 1;
}

/* engine:request{url=, method=, headers={"K: v"}, body=, timeout=,
 * connect_timeout=, idle_timeout=, ca_file=, ca_path=, proxy=, insecure=,
 * user_agent=, stream=, max_event=, max_body=} -> transfer, already
 * running. Times are seconds, sizes bytes. */
static int engine_request(lua_State *L) {
  bt_engine *e = check_engine(L, 1);
  bt_transfer *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  t = bt_http_transfer_new(L, 2);
  if (transfer_attach(e, t) != CURLM_OK) return luaL_error(L, "curl_multi_add_handle failed");
  return 1;
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
