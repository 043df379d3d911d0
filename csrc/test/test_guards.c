/*
 * test_guards.c: guards of baseten.core that depend on what libcurl says
 * or on the process, checked by wrapping libcurl functions at link time
 * (-Wl,--wrap=...). `make test-c` builds and runs it.
 *
 * 1. The protocol restriction: when libcurl refuses CURLOPT_PROTOCOLS_STR
 *    (built without it, or a runtime older than the headers) the request
 *    falls back to CURLOPT_PROTOCOLS with http and https; when that is
 *    refused too, engine:request raises rather than allow every protocol.
 * 2. fork: in a child, engine calls raise, and closing the engine and its
 *    transfers calls none of libcurl's cleanup (which would send on the
 *    parent's connections).
 */
#define CURL_DISABLE_TYPECHECK 1
#define CURL_DISABLE_DEPRECATION 1
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int luaopen_baseten_core(lua_State *L);

static int refuse_str, refuse_bits; /* which protocol options to refuse */
static long set_bits = -1;          /* the CURLOPT_PROTOCOLS value set, -1: none */
static int cleanups;                /* libcurl cleanup calls seen */
static int failed;

CURLcode __real_curl_easy_setopt(CURL *h, CURLoption o, ...);
CURLcode __wrap_curl_easy_setopt(CURL *h, CURLoption o, ...);
CURLcode __wrap_curl_easy_setopt(CURL *h, CURLoption o, ...) {
  va_list ap;
  CURLcode rc;
  va_start(ap, o);
  if (o < CURLOPTTYPE_OBJECTPOINT) {
    long v = va_arg(ap, long);
    if (o == CURLOPT_PROTOCOLS || o == CURLOPT_REDIR_PROTOCOLS) {
      if (refuse_bits) rc = CURLE_UNKNOWN_OPTION;
      else rc = __real_curl_easy_setopt(h, o, v), set_bits = v;
    } else {
      rc = __real_curl_easy_setopt(h, o, v);
    }
  } else if (o >= CURLOPTTYPE_OFF_T) {
    rc = __real_curl_easy_setopt(h, o, va_arg(ap, curl_off_t));
  } else if (o >= CURLOPTTYPE_FUNCTIONPOINT) {
    rc = __real_curl_easy_setopt(h, o, va_arg(ap, void (*)(void)));
  } else if ((o == CURLOPT_PROTOCOLS_STR || o == CURLOPT_REDIR_PROTOCOLS_STR) && refuse_str) {
    (void)va_arg(ap, void *);
    rc = CURLE_UNKNOWN_OPTION;
  } else {
    rc = __real_curl_easy_setopt(h, o, va_arg(ap, void *));
  }
  va_end(ap);
  return rc;
}

CURLMcode __real_curl_multi_cleanup(CURLM *m);
CURLMcode __wrap_curl_multi_cleanup(CURLM *m) {
  cleanups++;
  return __real_curl_multi_cleanup(m);
}
CURLMcode __real_curl_multi_remove_handle(CURLM *m, CURL *h);
CURLMcode __wrap_curl_multi_remove_handle(CURLM *m, CURL *h) {
  cleanups++;
  return __real_curl_multi_remove_handle(m, h);
}
void __real_curl_easy_cleanup(CURL *h);
void __wrap_curl_easy_cleanup(CURL *h) {
  cleanups++;
  __real_curl_easy_cleanup(h);
}

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) failed++;
}

/* Runs chunk with the module as ..., returns its one string result ("" on error). */
static const char *run(lua_State *L, const char *chunk) {
  lua_settop(L, 0);
  if (luaL_loadstring(L, chunk) != 0) return lua_tostring(L, -1);
  lua_getglobal(L, "core");
  if (lua_pcall(L, 1, 1, 0) != 0) return lua_tostring(L, -1);
  return lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no string)";
}

static const char *const request =
    "local core = ...\n"
    "E = E or core.engine()\n"
    "local ok, t = pcall(E.request, E, { url = 'http://127.0.0.1:9/', timeout = 1 })\n"
    "if ok then T = t return 'started' end\n"
    "return 'raised: ' .. tostring(t)\n";

static void test_protocols(lua_State *L) {
  const char *r;
  refuse_str = 1;
  r = run(L, request);
  check(strcmp(r, "started") == 0 && set_bits == (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS),
        "PROTOCOLS_STR refused: CURLOPT_PROTOCOLS set to http|https instead");
  refuse_bits = 1;
  r = run(L, request);
  check(strstr(r, "raised") != NULL && strstr(r, "protocol") != NULL,
        "both refused: engine:request raises");
  if (strstr(r, "raised") == NULL || strstr(r, "protocol") == NULL) printf("  got: %s\n", r);
  refuse_str = refuse_bits = 0;
}

static const char *const in_child =
    "local core = ...\n"
    "local ok1, e1 = pcall(E.perform, E, 0)\n"
    "local ok2, e2 = pcall(E.request, E, { url = 'http://127.0.0.1:9/' })\n"
    "if ok1 or ok2 then return 'engine calls ran in the child' end\n"
    "if not tostring(e1):find('forked child', 1, true) then return tostring(e1) end\n"
    "E:close() T:close() E = nil T = nil\n"
    "collectgarbage() collectgarbage()\n"
    "return 'ok'\n";

static void test_fork(lua_State *L) {
  int status = 0;
  pid_t pid;
  run(L, request); /* E and T, with T on E */
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    const char *r;
    cleanups = 0;
    r = run(L, in_child);
    if (strcmp(r, "ok") != 0) printf("  child: %s\n", r);
    if (cleanups != 0) printf("  child: %d libcurl cleanup calls\n", cleanups);
    fflush(stdout);
    _exit(strcmp(r, "ok") == 0 && cleanups == 0 ? 0 : 1);
  }
  check(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "fork: the child's engine calls raise and its closes leave libcurl alone");
  check(strcmp(run(L, "local core = ... E:perform(0) E:close() return 'ok'"), "ok") == 0,
        "fork: the parent still drives and closes its engine");
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "baseten.core", luaopen_baseten_core, 0);
  lua_setglobal(L, "core");
  test_protocols(L);
  run(L, "E:close() E = nil T = nil collectgarbage() return ''");
  test_fork(L);
  lua_close(L);
  printf("test_guards: %d failed\n", failed);
  return failed ? 1 : 0;
}
