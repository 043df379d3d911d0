/*
 * proc.c: child processes with non-blocking pipes (proc.h): the POSIX side
 * (posix_spawn), then the Windows side (CreateProcess, PeekNamedPipe). The
 * line splitter is lines.c.
 */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#define _GNU_SOURCE /* pipe2, execvpe, environ */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "proc.h"

/* Bytes read from one pipe per pump at most, so a flooding child cannot
 * keep the caller in one pump forever. */
#define PUMP_MAX (1024u * 1024u)
/* stderr kept but not taken: past this, the oldest half is dropped. */
#define ERR_KEEP_MAX (256u * 1024u)

void bt_proc_free(bt_proc *p) {
  bt_buf_free(&p->wbuf);
  p->woff = 0;
}

void bt_proc_out_free(bt_proc_out *o) {
  bt_lines_free(&o->lines);
  bt_buf_free(&o->errb);
}

/* Keeps stderr bytes, dropping the oldest half when too many wait. */
static int keep_err(bt_proc *p, const char *s, size_t n) {
  bt_buf *e;
  if (!p->keep_err || p->sink == NULL) return 0;
  e = &p->sink->errb;
  if (e->len + n > ERR_KEEP_MAX) {
    size_t drop = e->len / 2;
    memmove(e->p, e->p + drop, e->len - drop);
    e->len -= drop;
    if (n > ERR_KEEP_MAX / 2) {
      s += n - ERR_KEEP_MAX / 2;
      n = ERR_KEEP_MAX / 2;
    }
  }
  return bt_buf_append(e, s, n);
}

/* stdout bytes into the lines; dropped once the process is closing. */
static int feed_out(bt_proc *p, const char *s, size_t n) {
  return p->sink ? bt_lines_feed(&p->sink->lines, s, n) : 0;
}

static void set_err(char *err, size_t errlen, const char *what, const char *detail) {
  snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

#if !defined(_WIN32)
/* ----------------------------------------------------------------- POSIX */

extern char **environ;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static int env_key_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (int)(eq - kv) : (int)strlen(kv);
}

/* The child's environment: the inherited one (unless clear) without the
 * keys add sets, then add. A malloc'd array of borrowed strings, or NULL. */
static char **env_build(const char *const *add, int clear) {
  size_t n = 0, na = 0, i, j, k = 0;
  char **out;
  if (!clear)
    while (environ[n]) n++;
  while (add && add[na]) na++;
  out = malloc((n + na + 1) * sizeof *out);
  if (out == NULL) return NULL;
  for (i = 0; i < n; i++) {
    int klen = env_key_len(environ[i]), over = 0;
    for (j = 0; j < na && !over; j++)
      over = env_key_len(add[j]) == klen && strncmp(add[j], environ[i], (size_t)klen) == 0;
    if (!over) out[k++] = environ[i];
  }
  for (j = 0; j < na; j++) out[k++] = (char *)add[j];
  out[k] = NULL;
  return out;
}

static int make_pipe(int fds[2]) {
#if defined(__linux__)
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) != 0) return -1;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
#endif
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* The file actions: the child's ends onto 0, 1 and 2. */
static int spawn_actions(posix_spawn_file_actions_t *fa, int pin[2], int pout[2], int perr[2]) {
  int rc = posix_spawn_file_actions_adddup2(fa, pin[0], 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(fa, pout[1], 1);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(fa, perr[1], 2);
  return rc;
}

/* Attributes: its own process group (close signals the whole group: npx
 * runs the server as a grandchild), default SIGPIPE and an empty signal
 * mask, whatever the host (Neovim ignores SIGPIPE) set for itself. */
static int spawn_attrs(posix_spawnattr_t *at) {
  sigset_t def, none;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigemptyset(&none);
  posix_spawnattr_setpgroup(at, 0);
  posix_spawnattr_setsigdefault(at, &def);
  posix_spawnattr_setsigmask(at, &none);
  return posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                          POSIX_SPAWN_SETSIGMASK);
}

static int spawn_child(bt_proc *p, const bt_proc_opts *o, int pipes[3][2], char **envp) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  pid_t pid = 0;
  int rc;
  if (posix_spawn_file_actions_init(&fa) != 0) return ENOMEM;
  if (posix_spawnattr_init(&at) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return ENOMEM;
  }
  rc = spawn_actions(&fa, pipes[0], pipes[1], pipes[2]);
  if (rc == 0) rc = spawn_attrs(&at);
  if (rc == 0) rc = posix_spawnp(&pid, o->argv[0], &fa, &at, (char *const *)o->argv, envp);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == 0) p->pid = (int)pid;
  return rc;
}

/* fd onto target in a child about to exec: dup2 clears close-on-exec,
 * except when the two are already the same fd. */
static int move_fd(int fd, int target) {
  if (fd == target) return fcntl(fd, F_SETFD, 0);
  return dup2(fd, target) < 0 ? -1 : 0;
}

/* The child of spawn_forked: async-signal-safe calls only, then exec; on
 * failure its errno goes up the report pipe. Never returns. */
static void child_exec(const bt_proc_opts *o, int pipes[3][2], char **envp, int report) {
  struct sigaction sa;
  sigset_t none;
  int e = 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setpgid(0, 0);
  if (move_fd(pipes[0][0], 0) != 0 || move_fd(pipes[1][1], 1) != 0 ||
      move_fd(pipes[2][1], 2) != 0 || chdir(o->cwd) != 0) {
    e = errno;
  } else {
#if defined(__GLIBC__)
    execvpe(o->argv[0], (char *const *)o->argv, envp); /* argv[0] on the parent's PATH */
#else
    environ = envp;
    execvp(o->argv[0], (char *const *)o->argv);
#endif
    e = errno;
  }
  if (write(report, &e, sizeof e) < 0) e = 0;
  _exit(127);
}

/* With a cwd: fork and exec, as posix_spawn's cwd action
 * (posix_spawn_file_actions_addchdir_np) needs glibc 2.29, newer than the
 * 2.17 the release cores need. A close-on-exec pipe brings the child's
 * errno back when chdir or exec fails; it closes empty on success. */
static int spawn_forked(bt_proc *p, const bt_proc_opts *o, int pipes[3][2], char **envp) {
  int report[2], e = 0;
  ssize_t r;
  pid_t pid;
  if (make_pipe(report) != 0) return errno;
  pid = fork();
  if (pid == 0) child_exec(o, pipes, envp, report[1]);
  if (pid < 0) e = errno;
  else setpgid(pid, pid); /* as the child does: whichever runs first */
  close(report[1]);
  if (pid > 0) {
    do r = read(report[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof e) e = 0;
    if (e != 0) waitpid(pid, NULL, 0);
    else p->pid = (int)pid;
  }
  close(report[0]);
  return e;
}

int bt_proc_spawn(bt_proc *p, const bt_proc_opts *o, bt_proc_out *out, char *err, size_t errlen) {
  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, i, rc = 0;
  char **envp;
  memset(p, 0, sizeof *p);
  p->in = p->out = p->err = -1;
  p->sink = out;
  out->lines.max = o->max_line;
  p->keep_err = o->keep_err;
  for (i = 0; i < 3 && rc == 0; i++) rc = make_pipe(pipes[i]) != 0 ? errno : 0;
  envp = rc == 0 ? env_build(o->env, o->clear_env) : NULL;
  if (rc == 0 && envp == NULL) rc = ENOMEM;
  if (rc == 0) rc = o->cwd ? spawn_forked(p, o, pipes, envp) : spawn_child(p, o, pipes, envp);
  free(envp);
  close_fd(&pipes[0][0]);
  close_fd(&pipes[1][1]);
  close_fd(&pipes[2][1]);
  if (rc != 0) {
    close_fd(&pipes[0][1]);
    close_fd(&pipes[1][0]);
    close_fd(&pipes[2][0]);
    set_err(err, errlen, "cannot start", strerror(rc));
    return -1;
  }
  p->in = pipes[0][1];
  p->out = pipes[1][0];
  p->err = pipes[2][0];
  set_nonblock(p->in);
  set_nonblock(p->out);
  set_nonblock(p->err);
  p->running = 1;
  return 0;
}

/* write(2) on a pipe whose reader is gone raises SIGPIPE, which would end
 * the host: it is blocked for the call, and one it raised is consumed. */
static ssize_t write_nosig(int fd, const char *s, size_t n) {
  sigset_t pipe_set, old, pending;
  struct timespec zero = {0, 0};
  ssize_t w;
  int was_pending, e;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  was_pending = sigismember(&pending, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old);
  w = write(fd, s, n);
  e = errno;
  if (w < 0 && e == EPIPE && !was_pending) sigtimedwait(&pipe_set, NULL, &zero);
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return w;
}

static int flush_in(bt_proc *p) {
  int moved = 0;
  while (p->in >= 0 && p->woff < p->wbuf.len) {
    ssize_t w = write_nosig(p->in, p->wbuf.p + p->woff, p->wbuf.len - p->woff);
    if (w > 0) {
      p->woff += (size_t)w;
      moved = 1;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        p->write_err = 1;
        close_fd(&p->in);
      }
      break;
    }
  }
  if (p->woff == p->wbuf.len) p->woff = p->wbuf.len = 0;
  return moved;
}

int bt_proc_write(bt_proc *p, const char *s, size_t n) {
  if (p->in < 0 || p->write_err) return -1;
  if (bt_buf_append(&p->wbuf, s, n) != 0) return -1;
  flush_in(p);
  return p->write_err ? -1 : 0;
}

/* Reads what fd holds now into stdout's lines (is_out) or stderr. Returns
 * 1 when bytes came or the pipe ended, 0 if not, -1 on memory. */
static int drain(bt_proc *p, int *fd, int is_out) {
  char chunk[16384];
  size_t total = 0;
  int moved = 0;
  while (*fd >= 0 && total < PUMP_MAX) {
    ssize_t r = read(*fd, chunk, sizeof chunk);
    if (r > 0) {
      total += (size_t)r;
      moved = 1;
      if ((is_out ? feed_out(p, chunk, (size_t)r) : keep_err(p, chunk, (size_t)r)) != 0) return -1;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        close_fd(fd);
        if (is_out) p->out_eof = 1;
        moved = 1;
      }
      break;
    }
  }
  return moved;
}

static int note_exit(bt_proc *p, int options) {
  int status = 0;
  pid_t r;
  if (!p->running) return 0;
  do r = waitpid((pid_t)p->pid, &status, options);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  p->running = 0;
  p->pid = 0;
  if (r < 0) p->code = -1;
  else p->code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return 1;
}

/* 1 when the child has exited (noted in p), 0 when it still runs. */
static int poll_exit(bt_proc *p) { return note_exit(p, WNOHANG); }

int bt_proc_fds(const bt_proc *p, int fds[3], int events[3]) {
  int n = 0;
  if (p->out >= 0) fds[n] = p->out, events[n++] = 1;
  if (p->err >= 0) fds[n] = p->err, events[n++] = 1;
  if (p->in >= 0 && p->woff < p->wbuf.len) fds[n] = p->in, events[n++] = 2;
  return n;
}

/* Waits up to s seconds for the exit, reading (and dropping) output
 * meanwhile so that a child blocked on a full pipe can get to its exit. */
static int wait_exit(bt_proc *p, double s) {
  double end = bt_mono_now() + s;
  for (;;) {
    if (note_exit(p, WNOHANG)) return 1;
    if (bt_mono_now() >= end) return 0;
    drain(p, &p->out, 1);
    drain(p, &p->err, 0);
    bt_sleep(0.005);
  }
}

void bt_proc_close(bt_proc *p, double grace) {
  close_fd(&p->in);
  p->keep_err = 0;
  p->sink = NULL; /* what comes now is dropped: out may be lent to a read */
  if (p->running && !wait_exit(p, grace)) {
    kill(-(pid_t)p->pid, SIGTERM);
    kill((pid_t)p->pid, SIGTERM);
    if (!wait_exit(p, grace)) {
      kill(-(pid_t)p->pid, SIGKILL);
      kill((pid_t)p->pid, SIGKILL);
      note_exit(p, 0);
    }
  }
  close_fd(&p->out);
  close_fd(&p->err);
}

#else
/* --------------------------------------------------------------- Windows */

static void close_handle(void **h) {
  if (*h) CloseHandle((HANDLE)*h);
  *h = NULL;
}

/* Appends one argument quoted as CommandLineToArgvW and the MS C runtime
 * read it back: backslashes double only before a quote. */
static int repeat(bt_buf *b, char c, size_t n) {
  int rc = 0;
  while (rc == 0 && n-- > 0) rc = bt_buf_append(b, &c, 1);
  return rc;
}

static int quote_arg(bt_buf *b, const char *a) {
  int rc = bt_buf_append(b, "\"", 1);
  while (rc == 0 && *a) {
    size_t bs = 0;
    while (a[bs] == '\\') bs++;
    if (a[bs] == '\0') {
      rc = repeat(b, '\\', 2 * bs);
      break;
    }
    rc = repeat(b, '\\', a[bs] == '"' ? 2 * bs + 1 : bs);
    if (rc == 0) rc = bt_buf_append(b, a + bs, 1);
    a += bs + 1;
  }
  if (rc == 0) rc = bt_buf_append(b, "\"", 1);
  return rc;
}

static int command_line(bt_buf *b, const char *const *argv) {
  int i, rc = 0;
  for (i = 0; rc == 0 && argv[i]; i++) {
    if (i > 0) rc = bt_buf_append(b, " ", 1);
    if (rc == 0) rc = quote_arg(b, argv[i]);
  }
  return rc == 0 ? bt_buf_append(b, "", 1) : rc;
}

static size_t env_key_len(const char *kv) {
  const char *eq = strchr(kv + 1, '='); /* "=C:=C:\\" keys start with '=' */
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* A double-NUL-terminated environment block: inherited (unless clear)
 * without the keys add sets, then add. */
static int env_block(bt_buf *b, const char *const *add, int clear) {
  char *base = clear ? NULL : GetEnvironmentStringsA();
  const char *e;
  int rc = 0;
  size_t j;
  for (e = base; e && *e && rc == 0; e += strlen(e) + 1) {
    int over = 0;
    for (j = 0; add && add[j] && !over; j++)
      over = env_key_len(add[j]) == env_key_len(e) && _strnicmp(add[j], e, env_key_len(e)) == 0;
    if (!over) rc = bt_buf_append(b, e, strlen(e) + 1);
  }
  if (base) FreeEnvironmentStringsA(base);
  for (j = 0; add && add[j] && rc == 0; j++) rc = bt_buf_append(b, add[j], strlen(add[j]) + 1);
  if (rc == 0 && b->len == 0) rc = bt_buf_append(b, "", 1);
  return rc == 0 ? bt_buf_append(b, "", 1) : rc;
}

/* A pipe whose parent end (read end when parent_reads) is not inherited. */
static int make_pipe(HANDLE *parent, HANDLE *child, int parent_reads) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE r, w;
  if (!CreatePipe(&r, &w, &sa, 0)) return -1;
  *parent = parent_reads ? r : w;
  *child = parent_reads ? w : r;
  SetHandleInformation(*parent, HANDLE_FLAG_INHERIT, 0);
  return 0;
}

static int create(bt_proc *p, const bt_proc_opts *o, char *cmd, char *envb, HANDLE child[3]) {
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = child[0];
  si.hStdOutput = child[1];
  si.hStdError = child[2];
  if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, CREATE_NO_WINDOW, envb, o->cwd, &si, &pi))
    return -1;
  CloseHandle(pi.hThread);
  p->process = pi.hProcess;
  return 0;
}

int bt_proc_spawn(bt_proc *p, const bt_proc_opts *o, bt_proc_out *out, char *err, size_t errlen) {
  HANDLE par[3] = {NULL, NULL, NULL}, child[3] = {NULL, NULL, NULL};
  bt_buf cmd = BT_BUF_INIT, envb = BT_BUF_INIT;
  int rc = 0, i;
  DWORD mode = PIPE_READMODE_BYTE | PIPE_NOWAIT;
  memset(p, 0, sizeof *p);
  p->sink = out;
  out->lines.max = o->max_line;
  p->keep_err = o->keep_err;
  for (i = 0; i < 3 && rc == 0; i++) rc = make_pipe(&par[i], &child[i], i > 0);
  if (rc == 0) rc = command_line(&cmd, o->argv);
  if (rc == 0) rc = env_block(&envb, o->env, o->clear_env);
  if (rc == 0) rc = create(p, o, cmd.p, envb.p, child);
  for (i = 0; i < 3; i++) close_handle(&child[i]);
  bt_buf_free(&cmd);
  bt_buf_free(&envb);
  if (rc != 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "Windows error %lu", (unsigned long)GetLastError());
    for (i = 0; i < 3; i++) close_handle(&par[i]);
    set_err(err, errlen, "cannot start", msg);
    return -1;
  }
  SetNamedPipeHandleState(par[0], &mode, NULL, NULL); /* writes never block */
  p->in = par[0];
  p->out = par[1];
  p->err = par[2];
  p->running = 1;
  return 0;
}

static int flush_in(bt_proc *p) {
  int moved = 0;
  while (p->in && p->woff < p->wbuf.len) {
    DWORD w = 0, n = (DWORD)(p->wbuf.len - p->woff > 65536 ? 65536 : p->wbuf.len - p->woff);
    if (!WriteFile((HANDLE)p->in, p->wbuf.p + p->woff, n, &w, NULL)) {
      p->write_err = 1;
      close_handle(&p->in);
      break;
    }
    if (w == 0) break; /* full (PIPE_NOWAIT) */
    p->woff += w;
    moved = 1;
  }
  if (p->woff == p->wbuf.len) p->woff = p->wbuf.len = 0;
  return moved;
}

int bt_proc_write(bt_proc *p, const char *s, size_t n) {
  if (!p->in || p->write_err) return -1;
  if (bt_buf_append(&p->wbuf, s, n) != 0) return -1;
  flush_in(p);
  return p->write_err ? -1 : 0;
}

static int drain(bt_proc *p, void **h, int is_out) {
  char chunk[16384];
  size_t total = 0;
  int moved = 0;
  while (*h && total < PUMP_MAX) {
    DWORD avail = 0, r = 0;
    if (!PeekNamedPipe((HANDLE)*h, NULL, 0, NULL, &avail, NULL)) { /* broken: the end */
      close_handle(h);
      if (is_out) p->out_eof = 1;
      return 1;
    }
    if (avail == 0) break;
    if (!ReadFile((HANDLE)*h, chunk, avail < sizeof chunk ? avail : sizeof chunk, &r, NULL) ||
        r == 0)
      break;
    total += r;
    moved = 1;
    if ((is_out ? feed_out(p, chunk, r) : keep_err(p, chunk, r)) != 0) return -1;
  }
  return moved;
}

static int note_exit(bt_proc *p, DWORD ms) {
  DWORD code = 0;
  if (!p->running) return 0;
  if (WaitForSingleObject((HANDLE)p->process, ms) != WAIT_OBJECT_0) return 0;
  GetExitCodeProcess((HANDLE)p->process, &code);
  p->code = (int)code;
  p->running = 0;
  return 1;
}

static int poll_exit(bt_proc *p) { return note_exit(p, 0); }

int bt_proc_fds(const bt_proc *p, int fds[3], int events[3]) {
  (void)p, (void)fds, (void)events;
  return 0;
}

static int wait_exit(bt_proc *p, double s) {
  double end = bt_mono_now() + s;
  for (;;) {
    if (note_exit(p, 5)) return 1;
    if (bt_mono_now() >= end) return 0;
    drain(p, &p->out, 1);
    drain(p, &p->err, 0);
  }
}

void bt_proc_close(bt_proc *p, double grace) {
  close_handle(&p->in);
  p->keep_err = 0;
  p->sink = NULL; /* what comes now is dropped: out may be lent to a read */
  if (p->running && !wait_exit(p, grace)) {
    TerminateProcess((HANDLE)p->process, 1);
    note_exit(p, INFINITE);
  }
  close_handle(&p->process);
  close_handle(&p->out);
  close_handle(&p->err);
}

#endif

/* One step of both platforms' I/O: stdin flushed, stdout and stderr
 * drained, the exit noted; 1 when anything moved, -1 on a failed read. */
int bt_proc_pump(bt_proc *p) {
  int a = flush_in(p), b, c;
  b = drain(p, &p->out, 1);
  c = drain(p, &p->err, 0);
  if (b < 0 || c < 0) return -1;
  return (poll_exit(p) | a | b | c) ? 1 : 0;
}
