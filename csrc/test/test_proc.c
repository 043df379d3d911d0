/*
 * test_proc.c: proc.c alone, under ASan and UBSan (make test-c). The line
 * splitter fed at every byte boundary, and real children: output, env,
 * cwd, a stderr flood that is never read by anyone, stdin to a child that
 * is gone (no SIGPIPE), a child that ignores SIGTERM, a command that
 * does not exist.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "proc.h"

static int failures = 0;
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                        \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* Feeds text in pieces of `step` bytes; joins the lines with '|'. */
static int split(const char *text, size_t step, size_t max, char *out, size_t cap) {
  bt_lines l;
  size_t i, n = strlen(text), o = 0;
  int rc = 0;
  memset(&l, 0, sizeof l);
  l.max = max;
  out[0] = '\0';
  for (i = 0; i < n && rc >= 0; i += step) {
    const char *line;
    size_t len;
    CHECK(bt_lines_feed(&l, text + i, i + step > n ? n - i : step) == 0);
    while ((rc = bt_lines_next(&l, &line, &len)) == 1) {
      CHECK(o + len + 2 < cap);
      memcpy(out + o, line, len);
      o += len;
      out[o++] = '|';
      out[o] = '\0';
    }
  }
  bt_lines_free(&l);
  return rc;
}

static void test_lines(void) {
  char out[256];
  size_t step;
  for (step = 1; step <= 12; step++) {
    CHECK(split("ab\ncd\r\n\nlast", step, 100, out, sizeof out) == 0);
    CHECK(strcmp(out, "ab|cd||") == 0);
    CHECK(split("short\nthis line is too long\n", step, 10, out, sizeof out) == -1);
    CHECK(strcmp(out, "short|") == 0);
    CHECK(split("no newline at all, and long", step, 10, out, sizeof out) == -1);
  }
}

/* Runs argv until stdout ends (at most 20 s); the stdout lines joined. */
static int run(const char *const *argv, const char *const *env, int clear, const char *cwd,
               const char *input, char *out, size_t cap) {
  bt_proc p;
  bt_proc_out po;
  bt_proc_opts o;
  char err[128];
  double end = bt_mono_now() + 20;
  size_t n = 0;
  memset(&o, 0, sizeof o);
  o.argv = argv, o.env = env, o.clear_env = clear, o.cwd = cwd, o.max_line = 1 << 20;
  memset(&po, 0, sizeof po);
  if (bt_proc_spawn(&p, &o, &po, err, sizeof err) != 0) return -1;
  if (input) CHECK(bt_proc_write(&p, input, strlen(input)) == 0);
  out[0] = '\0';
  while (!p.out_eof && bt_mono_now() < end) {
    const char *line;
    size_t len;
    CHECK(bt_proc_pump(&p) >= 0);
    while (bt_lines_next(&po.lines, &line, &len) == 1 && n + len + 2 < cap) {
      memcpy(out + n, line, len);
      n += len;
      out[n++] = '|';
      out[n] = '\0';
    }
    bt_sleep(0.002);
  }
  bt_proc_close(&p, 2);
  bt_proc_free(&p);
  bt_proc_out_free(&po);
  CHECK(!p.running);
  return p.code;
}

static void test_children(void) {
  char out[4096];
  const char *echo[] = {"sh", "-c", "echo one; echo two; read x; echo got $x; exit 7", NULL};
  const char *env[] = {"BT_TEST_A=alpha", "HOME=/override", NULL};
  const char *envsh[] = {"sh", "-c", "echo $BT_TEST_A $HOME; echo ${PATH:-nopath}", NULL};
  const char *pwd[] = {"sh", "-c", "pwd", NULL};
  const char *flood[] = {"sh", "-c", "head -c 3000000 /dev/zero >&2; echo done", NULL};
  const char *missing[] = {"/nonexistent/program", NULL};
  CHECK(run(echo, NULL, 0, NULL, "in\n", out, sizeof out) == 7);
  CHECK(strcmp(out, "one|two|got in|") == 0);
  CHECK(run(envsh, env, 0, NULL, NULL, out, sizeof out) == 0);
  CHECK(strncmp(out, "alpha /override|/", 17) == 0);
  {
    const char *abs_sh[] = {"/bin/sh", "-c", "echo $BT_TEST_A $HOME; echo ${PATH:-nopath}", NULL};
    CHECK(run(abs_sh, env, 1, NULL, NULL, out, sizeof out) == 0);
    CHECK(strncmp(out, "alpha /override|", 16) == 0);
  }
  CHECK(run(pwd, NULL, 0, "/tmp", NULL, out, sizeof out) == 0);
  CHECK(strcmp(out, "/tmp|") == 0);
  CHECK(run(pwd, NULL, 0, "/nonexistent/folder", NULL, out, sizeof out) == -1); /* chdir fails */
  CHECK(run(missing, NULL, 0, "/tmp", NULL, out, sizeof out) == -1);            /* exec fails */
  CHECK(run(envsh, env, 0, "/tmp", NULL, out, sizeof out) == 0); /* the forked path's env */
  CHECK(strncmp(out, "alpha /override|/", 17) == 0);
  CHECK(run(flood, NULL, 0, NULL, NULL, out, sizeof out) == 0); /* stderr dropped, never stalls */
  CHECK(strcmp(out, "done|") == 0);
  CHECK(run(missing, NULL, 0, NULL, NULL, out, sizeof out) == -1);
}

static void test_dead_stdin_and_kill(void) {
  bt_proc p;
  bt_proc_out po;
  bt_proc_opts o;
  char err[128], big[65536];
  const char *quit[] = {"sh", "-c", "exit 0", NULL};
  const char *stubborn[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done",
                            NULL};
  double t;
  int i, rc = 0;
  memset(&o, 0, sizeof o);
  memset(&po, 0, sizeof po);
  memset(big, 'x', sizeof big);
  o.argv = quit, o.max_line = 100;
  CHECK(bt_proc_spawn(&p, &o, &po, err, sizeof err) == 0);
  t = bt_mono_now() + 10;
  while (p.running && bt_mono_now() < t) bt_proc_pump(&p), bt_sleep(0.01);
  for (i = 0; i < 100 && rc == 0; i++) rc = bt_proc_write(&p, big, sizeof big);
  CHECK(rc == -1); /* broken, and this process is still alive: no SIGPIPE */
  bt_proc_close(&p, 1);
  bt_proc_free(&p);
  o.argv = stubborn;
  CHECK(bt_proc_spawn(&p, &o, &po, err, sizeof err) == 0);
  t = bt_mono_now() + 10;
  while (po.lines.b.len == 0 && bt_mono_now() < t) bt_proc_pump(&p), bt_sleep(0.01);
  bt_proc_close(&p, 0.2); /* stdin, TERM (ignored), then KILL */
  CHECK(!p.running);
  CHECK(p.code == -9);
  bt_proc_close(&p, 0.2); /* idempotent */
  bt_proc_free(&p);
  bt_proc_out_free(&po);
}

int main(void) {
  test_lines();
  test_children();
  test_dead_stdin_and_kill();
  if (failures) {
    fprintf(stderr, "test_proc: %d failures\n", failures);
    return 1;
  }
  printf("test_proc: ok\n");
  return 0;
}
