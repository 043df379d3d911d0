/*
 * platform.h: every call csrc/ makes that C99 does not define, behind one
 * small interface with a POSIX side and a Windows side (platform.c). The
 * rest of csrc/ is plain C99 and includes no OS header.
 *
 * Tested: Linux (glibc) and Windows (MinGW-w64 cross build, run under Wine).
 * macOS compiles the POSIX side (clock_gettime from 10.12, mach_absolute_time
 * before) but is not tested here.
 */
#ifndef BT_PLATFORM_H
#define BT_PLATFORM_H

#include <stddef.h>
#include "compat.h"

/* Seconds on a monotonic clock with an arbitrary origin; never goes back. */
BT_HIDDEN double bt_mono_now(void);

/*
 * Sleeps about `seconds` (resumed after signals). Defined for every double:
 * zero, negative and NaN return at once; anything above BT_SLEEP_MAX sleeps
 * BT_SLEEP_MAX (about 31 years), so no conversion ever overflows.
 */
#define BT_SLEEP_MAX 1e9
BT_HIDDEN void bt_sleep(double seconds);

/* The id of this process: an engine made before a fork knows it is in the
 * child when this differs from the id it recorded. */
BT_HIDDEN long bt_process_id(void);

/*
 * Compares at most n bytes ignoring ASCII case, like strncasecmp but the
 * same in every locale (HTTP header names are ASCII; a Turkish locale must
 * not fold 'I' differently). Returns <0, 0 or >0.
 */
BT_HIDDEN int bt_ascii_ncasecmp(const char *a, const char *b, size_t n);

/* Whether file descriptor fd is a terminal (isatty; _isatty on Windows). */
BT_HIDDEN int bt_isatty(int fd);

/* Sets core.now, core.sleep, core.isatty and core.curl_version in the table on top. */
BT_HIDDEN void bt_platform_open(lua_State *L);

#endif
