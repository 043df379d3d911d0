/*
 * test_threads.c: two threads, each with its own Lua state, open
 * baseten.core at the same moment and use it, many times over. Built with
 * ThreadSanitizer, which reports any unsynchronised access to shared state
 * in csrc/ (the module's curl_global_init guard was once a plain static
 * flag, a data race). libcurl 7.84+ serialises curl_global_init itself
 * (CURL_VERSION_THREADSAFE); with an older libcurl the module's rule is to
 * open it once in one thread before starting the others, and this test
 * does not apply. `make test-c` builds and runs it.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>

int luaopen_baseten_core(lua_State *L);

#define ROUNDS 20

static pthread_barrier_t start;
static int failed[2];

static const char *const chunk =
    "local core = ...\n"
    "local v = core.json.decode('{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":true}}')\n"
    "assert(v.a[2] == 2.5 and v.b.c == true)\n"
    "assert(core.json.encode({ 1, 2 }) == '[1,2]')\n"
    "local p = core.sse.new()\n"
    "p:close()\n"
    "local e = core.engine()\n"
    "e:close()\n";

static void *worker(void *arg) {
  int id = *(int *)arg, i;
  for (i = 0; i < ROUNDS; i++) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    pthread_barrier_wait(&start); /* both open the module at once */
    luaL_requiref(L, "baseten.core", luaopen_baseten_core, 0);
    if (luaL_loadstring(L, chunk) != LUA_OK) failed[id]++;
    else {
      lua_insert(L, -2);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        printf("FAILED thread %d: %s\n", id, lua_tostring(L, -1));
        failed[id]++;
      }
    }
    lua_close(L);
  }
  return NULL;
}

int main(void) {
  pthread_t th[2];
  int ids[2] = {0, 1}, i;
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
#ifdef CURL_VERSION_THREADSAFE
  if (!(v->features & CURL_VERSION_THREADSAFE))
#endif
  {
    printf("test_threads: libcurl %s cannot init from two threads at once; skipped\n", v->version);
    return 0;
  }
  pthread_barrier_init(&start, NULL, 2);
  for (i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker, &ids[i]);
  for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&start);
  printf("test_threads: 2 threads opened and used baseten.core %d times each, %d failed\n", ROUNDS,
         failed[0] + failed[1]);
  return failed[0] + failed[1] != 0;
}
