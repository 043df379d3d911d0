/*
 * test_platform.c: unit tests for the OS layer (csrc/platform.c): the
 * monotonic clock, bt_sleep on every kind of double, and the ASCII case
 * compare, isatty. Built under ASan + UBSan with -fsanitize=float-cast-overflow,
 * so a double converted out of range (core.sleep(0/0), say)
 * fails the run. `make test-c` builds and runs it.
 */
#define _XOPEN_SOURCE 600 /* pipe, posix_openpt */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../platform.h"
#include "test_util.h"

/* test_util.h's ok, for checks that need no detail */
static void check(int cond, const char *name) { ok(cond, name, NULL); }

/* bt_sleep(s) returns within `limit` seconds; the clock never goes back */
static double timed_sleep(double s) {
  double t0 = bt_mono_now(), t1;
  bt_sleep(s);
  t1 = bt_mono_now();
  check(t1 >= t0, "the clock never goes back");
  return t1 - t0;
}

int main(void) {
  volatile double zero = 0.0; /* no constant folding of 0/0 */
  double t;

  check(timed_sleep(zero / zero) < 0.5, "NaN returns at once");
  check(timed_sleep(-zero / zero) < 0.5, "-NaN returns at once");
  check(timed_sleep(-HUGE_VAL) < 0.5, "-inf returns at once");
  check(timed_sleep(-1e300) < 0.5, "a huge negative number returns at once");
  check(timed_sleep(-1.0) < 0.5, "-1 returns at once");
  check(timed_sleep(0.0) < 0.5, "0 returns at once");
  check(timed_sleep(-0.0) < 0.5, "-0 returns at once");
  check(timed_sleep(5e-324) < 0.5, "the smallest denormal returns at once");
  check(timed_sleep(1e-9) < 0.5, "a nanosecond");
  t = timed_sleep(0.05);
  check(t >= 0.049 && t < 5.0, "0.05 s sleeps at least 0.05 s");
  t = timed_sleep(0.9999999999);
  check(t >= 0.99 && t < 10.0, "just under a second (nanoseconds round below 1e9)");

  check(bt_ascii_ncasecmp("Retry-After", "retry-after", 11) == 0, "case is ignored");
  check(bt_ascii_ncasecmp("X-REQUEST-ID: 1", "x-request-id", 12) == 0, "only n bytes compared");
  check(bt_ascii_ncasecmp("abc", "abd", 3) < 0, "a smaller byte compares lower");
  check(bt_ascii_ncasecmp("abd", "abc", 3) > 0, "a larger byte compares higher");
  check(bt_ascii_ncasecmp("ab", "abc", 3) < 0, "a shorter string compares lower");
  check(bt_ascii_ncasecmp("ab", "ab", 10) == 0, "stops at the terminator");
  check(bt_ascii_ncasecmp("\xc4\xb0", "\xc4\xb0", 2) == 0,
        "bytes above 127 are equal to themselves");
  check(bt_ascii_ncasecmp("\xc4", "\xe4", 1) != 0, "bytes above 127 are not folded");
  check(bt_ascii_ncasecmp("@[`{", "@[`{", 4) == 0 && bt_ascii_ncasecmp("[", "{", 1) != 0,
        "only A-Z fold");
  check(bt_ascii_ncasecmp("x", "y", 0) == 0, "n = 0 is equal");

  {
    int fds[2], pty;
    check(pipe(fds) == 0, "a pipe");
    check(!bt_isatty(fds[0]) && !bt_isatty(fds[1]), "a pipe is not a terminal");
    close(fds[0]);
    close(fds[1]);
    check(!bt_isatty(fds[0]), "a closed descriptor is not a terminal");
    check(!bt_isatty(-1), "-1 is not a terminal");
    pty = posix_openpt(O_RDWR | O_NOCTTY);
    if (pty >= 0) { /* a pseudo-terminal's master side is a terminal */
      check(bt_isatty(pty), "a pseudo-terminal is a terminal");
      close(pty);
    }
  }

  printf("test_platform: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
