/*
 * test_util.h: what the plain-C unit tests share, included once by each
 * test file (everything static; no .c to link).
 *
 *   ok(cond, what, detail)  counts a check in passed / failed and prints
 *                           the failing ones.
 *
 * With BT_TEST_GUARD defined before the include (and _DEFAULT_SOURCE, for
 * MAP_ANONYMOUS under -std=c99):
 *
 *   guard_init()            maps GUARD_ROOM bytes followed by a PROT_NONE
 *                           page (call once, first thing in main);
 *   guarded(s, n)           copies the n bytes of s to end right before
 *                           that page, so a read one byte past the input
 *                           faults at once, sanitizers or not (as
 *                           picohttpparser's tests do).
 *
 * GUARD_ROOM is 64 KiB unless the test defines it first.
 */
#ifndef BT_TEST_UTIL_H
#define BT_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void ok(int cond, const char *what, const char *detail) {
  if (cond) {
    passed++;
    return;
  }
  failed++;
  printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

#ifdef BT_TEST_GUARD
#include <sys/mman.h>
#include <unistd.h>

#ifndef GUARD_ROOM
#define GUARD_ROOM (1u << 16)
#endif
static unsigned char *guard_base; /* GUARD_ROOM bytes, then a PROT_NONE page */

static void guard_init(void) {
  long pg = sysconf(_SC_PAGESIZE);
  unsigned char *m = mmap(NULL, GUARD_ROOM + (size_t)pg, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m + GUARD_ROOM, (size_t)pg, PROT_NONE) != 0) {
    perror("mmap guard");
    exit(2);
  }
  guard_base = m;
}

/* The n bytes of s, moved to end right at the guard page. */
static const char *guarded(const char *s, size_t n) {
  unsigned char *g;
  if (n > GUARD_ROOM) {
    fprintf(stderr, "input too long for the guard room\n");
    exit(2);
  }
  g = guard_base + GUARD_ROOM - n;
  memmove(g, s, n);
  return (const char *)g;
}
#endif /* BT_TEST_GUARD */

#endif /* BT_TEST_UTIL_H */
