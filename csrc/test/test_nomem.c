/*
 * test_nomem.c: every allocation libcurl makes while baseten.core sets up
 * and runs a request fails in turn, and nothing leaks or crashes. libcurl
 * takes its allocator from curl_global_init_mem, called here before the
 * module opens (its own curl_global_init then only counts one more user).
 * Run k fails the k-th libcurl allocation after the engine exists; the
 * request must then either raise "out of memory", end with an error, or
 * succeed as usual. Built under ASan + UBSan with leak detection, so a list
 * or handle dropped on such a path
 * fails the run at exit. `make test-c` builds and runs it.
 */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_baseten_core(lua_State *L);

static long countdown = -1; /* the allocation that fails; -1: none */
static long failures;

static int fail_now(void) {
  if (countdown < 0) return 0;
  if (countdown-- == 0) {
    failures++;
    return 1;
  }
  return 0;
}

static void *t_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }
static void t_free(void *p) { free(p); }
static void *t_realloc(void *p, size_t n) { return fail_now() ? NULL : realloc(p, n); }
static char *t_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = fail_now() ? NULL : malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}
static void *t_calloc(size_t n, size_t size) { return fail_now() ? NULL : calloc(n, size); }

/* A request to a port nobody listens on, with headers and a body: every
 * setup step runs, then the transfer ends with a connection error. */
static const char *const chunk =
    "local core = ...\n"
    "local ok, e = pcall(core.engine)\n"
    "if not ok then return (e:find('out of memory', 1, true) or e:find('_init failed', 1, true)) "
    "and 'raised' or ('unexpected: ' .. e) end\n"
    "local t\n"
    "ok, t = pcall(e.request, e, { url = 'http://127.0.0.1:9/v1/chat/completions',\n"
    "  headers = { 'Authorization: Bearer k', 'Content-Type: application/json', 'X-A: 1' },\n"
    "  body = '{\"model\":\"m\"}', timeout = 2, connect_timeout = 2 })\n"
    "if not ok then\n"
    "  e:close()\n"
    "  return (tostring(t):find('out of memory', 1, true) or tostring(t):find('_init failed', 1, "
    "true)) and 'raised' or ('unexpected: ' .. tostring(t))\n"
    "end\n"
    "while t:state() == 'running' do e:perform(0.05) end\n"
    "t:result()\n"
    "t:close(); e:close()\n"
    "return 'ended'\n";

/* One run with allocation k failing: "raised", "ended" or an error text. */
static int run(long k, char *outcome, size_t size) {
  lua_State *L = luaL_newstate();
  int rc;
  luaL_openlibs(L);
  luaL_requiref(L, "baseten.core", luaopen_baseten_core, 0);
  if (luaL_loadstring(L, chunk) != LUA_OK) {
    snprintf(outcome, size, "load: %s", lua_tostring(L, -1));
    lua_close(L);
    return 0;
  }
  lua_insert(L, -2);
  countdown = k;
  rc = lua_pcall(L, 1, 1, 0);
  countdown = -1;
  snprintf(outcome, size, "%s%s", rc == LUA_OK ? "" : "error: ", lua_tostring(L, -1));
  lua_close(L);
  return 1;
}

int main(void) {
  char outcome[512];
  long k, raised = 0, ended = 0, bad = 0, last = 0;
  if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, t_malloc, t_free, t_realloc, t_strdup, t_calloc) !=
      CURLE_OK) {
    printf("FAILED curl_global_init_mem\n");
    return 1;
  }
  /* Past the last allocation a request makes, nothing fails: stop there. */
  for (k = 0; k < 2000; k++) {
    long before = failures;
    if (!run(k, outcome, sizeof outcome)) bad++;
    else if (strcmp(outcome, "raised") == 0) raised++;
    else if (strcmp(outcome, "ended") == 0) ended++;
    else {
      bad++;
      printf("FAILED allocation %ld: %s\n", k, outcome);
    }
    last = k;
    if (failures == before) break;
  }
  printf("test_nomem: %ld allocations failed in turn: %ld raised out of memory, %ld ended, "
         "%ld bad\n",
         last, raised, ended, bad);
  curl_global_cleanup();
  if (raised == 0 || last >= 1999) {
    printf("FAILED the runs never reached the request's setup, or never ended\n");
    return 1;
  }
  return bad != 0;
}
