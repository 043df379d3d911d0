/*
 * platform.c: the monotonic clock, sleeping and ASCII case folding for
 * POSIX and for Windows (see platform.h), and the Lua functions built on
 * them: core.now, core.sleep, core.isatty and core.curl_version.
 */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* Vista: CreateWaitableTimerExW */
#endif
#include <windows.h>
#include <io.h> /* _isatty */
#else
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE /* clock_gettime is hidden from plain POSIX there */
#include <AvailabilityMacros.h>
#if !defined(MAC_OS_X_VERSION_10_12) || MAC_OS_X_VERSION_MIN_REQUIRED < MAC_OS_X_VERSION_10_12
#define BT_MACH_CLOCK 1 /* clock_gettime only exists from macOS 10.12 */
#include <mach/mach_time.h>
#endif
#endif
#include <errno.h>
#include <time.h>
#include <unistd.h> /* getpid, isatty */
#endif

#include <curl/curl.h>

#include "platform.h"

/* ---------------------------------------------------------------- clock */

#if defined(_WIN32)

double bt_mono_now(void) {
  LARGE_INTEGER count, freq;
  /* Both always succeed on XP and later. Split so a large count keeps its
   * sub-second digits. */
  QueryPerformanceCounter(&count);
  QueryPerformanceFrequency(&freq);
  return (double)(count.QuadPart / freq.QuadPart) +
         (double)(count.QuadPart % freq.QuadPart) / (double)freq.QuadPart;
}

#elif defined(BT_MACH_CLOCK)

double bt_mono_now(void) {
  mach_timebase_info_data_t tb; /* cheap; no static, so no race between Lua states */
  mach_timebase_info(&tb);
  return (double)mach_absolute_time() * (double)tb.numer / (double)tb.denom / 1e9;
}

#else

double bt_mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif

/* ---------------------------------------------------------------- sleep */

#if defined(_WIN32)

#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

/* Sleep() rounds up to the system tick (15.6 ms by default), which is a
 * whole frame in a game; a high-resolution waitable timer (Windows 10 1803
 * and later) does not. Older systems fall back to Sleep(). */
void bt_sleep(double seconds) {
  HANDLE timer;
  unsigned long long ms;
  if (!(seconds > 0)) return; /* NaN too */
  if (seconds > BT_SLEEP_MAX) seconds = BT_SLEEP_MAX;
  timer =
      CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
  if (timer != NULL) {
    LARGE_INTEGER due; /* negative: relative, in 100 ns units */
    LONGLONG ticks = (LONGLONG)(seconds * 1e7);
    int slept;
    due.QuadPart = -(ticks > 0 ? ticks : 1);
    slept = SetWaitableTimer(timer, &due, 0, NULL, NULL, FALSE) &&
            WaitForSingleObject(timer, INFINITE) == WAIT_OBJECT_0;
    CloseHandle(timer);
    if (slept) return;
  }
  ms = (unsigned long long)(seconds * 1000.0) + 1; /* round up, never 0 */
  while (ms > 0) {
    DWORD step = ms > 86400000ULL ? 86400000UL : (DWORD)ms; /* INFINITE is 0xFFFFFFFF */
    Sleep(step);
    ms -= step;
  }
}

#else

void bt_sleep(double seconds) {
  struct timespec ts;
  if (!(seconds > 0)) return;                         /* NaN too */
  if (seconds > BT_SLEEP_MAX) seconds = BT_SLEEP_MAX; /* fits a 32-bit time_t */
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

#endif

/* ---------------------------------------------------------------- text */

/* ------------------------------------------------------------- process */

#if defined(_WIN32)
long bt_process_id(void) { return (long)GetCurrentProcessId(); }
#else
long bt_process_id(void) { return (long)getpid(); }
#endif

static int ascii_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

int bt_ascii_ncasecmp(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    int ca = ascii_lower((unsigned char)a[i]), cb = ascii_lower((unsigned char)b[i]);
    if (ca != cb) return ca - cb;
    if (ca == 0) break;
  }
  return 0;
}

/* ---------------------------------------------------------------- terminal */

int bt_isatty(int fd) {
#if defined(_WIN32)
  return _isatty(fd) != 0;
#else
  return isatty(fd) == 1;
#endif
}

/* ---------------------------------------------------------------- Lua */

static int platform_now(lua_State *L) {
  lua_pushnumber(L, bt_mono_now());
  return 1;
}

static int platform_sleep(lua_State *L) {
  double s = (double)luaL_checknumber(L, 1);
  /* NaN fails the first test; a huge value would be silently capped */
  luaL_argcheck(L, s == s && s <= BT_SLEEP_MAX, 1, "seconds must be a number no larger than 1e9");
  bt_sleep(s);
  return 0;
}

/* core.isatty(fd): whether file descriptor fd (0 stdin, 1 stdout, 2 stderr)
 * is a terminal. */
static int platform_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "fd must be from 0 to 1024");
  lua_pushboolean(L, bt_isatty((int)fd));
  return 1;
}

static int platform_curl_version(lua_State *L) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  return 3;
}

void bt_platform_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"now", platform_now},
                                   {"sleep", platform_sleep},
                                   {"isatty", platform_isatty},
                                   {"curl_version", platform_curl_version},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
