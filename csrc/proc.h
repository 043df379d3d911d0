/*
 * proc.h: a child process with three non-blocking pipes, for MCP's stdio
 * transport (lproc.c puts Lua on it). Plain C, no Lua: the POSIX side uses
 * posix_spawn, the Windows side CreateProcess with pipes polled by
 * PeekNamedPipe, so nothing ever blocks and no thread is started.
 *
 * Output is read into buffers by bt_proc_pump; stdout is cut into lines
 * (newline-delimited JSON) of at most max_line bytes; stderr bytes are kept
 * only when keep_err is set (else read and dropped), so a chatty server
 * never fills its pipe and stalls.
 */
#ifndef BT_PROC_H
#define BT_PROC_H

#include <stddef.h>

#include "base.h"
#include "buf.h"

/* Lines of a byte stream. Bytes before off are handed out; scan is where
 * the search for the next newline resumes, so a long line is scanned once. */
typedef struct bt_lines {
  bt_buf b;
  size_t off, scan, max;
} bt_lines;

/* Appends n bytes. 0, or -1 when memory is short. */
BT_HIDDEN int bt_lines_feed(bt_lines *l, const char *s, size_t n);

/* The next complete line, without its "\n" (nor a "\r" before it): 1 with
 * *line and *len set (valid until the next feed), 0 when none is complete,
 * -1 when a line (complete or not) is longer than max. */
BT_HIDDEN int bt_lines_next(bt_lines *l, const char **line, size_t *len);

BT_HIDDEN void bt_lines_free(bt_lines *l);

typedef struct bt_proc_opts {
  const char *const *argv; /* argv[0] is looked up on PATH; NULL-terminated */
  const char *const *env;  /* "K=V" added to (or replacing) the inherited ones */
  int clear_env;           /* start from an empty environment instead */
  const char *cwd;         /* NULL: the parent's */
  size_t max_line;         /* longest stdout line, bytes */
  int keep_err;            /* keep stderr bytes for bt_proc_take_err */
} bt_proc_opts;

/* What the child wrote: stdout cut into lines, stderr kept. Separate from
 * bt_proc so that its owner can lend it to a read (lend.h) while the pipes
 * stay put; all zeros is a valid empty state. */
typedef struct bt_proc_out {
  bt_lines lines; /* stdout */
  bt_buf errb;    /* stderr bytes kept */
} bt_proc_out;

/* Frees what an out state holds. */
BT_HIDDEN void bt_proc_out_free(bt_proc_out *o);

typedef struct bt_proc {
#if defined(_WIN32)
  void *process, *in, *out, *err; /* HANDLEs; NULL when closed */
#else
  int pid, in, out, err; /* fds are -1 when closed; pid 0 once reaped */
#endif
  int running;   /* not yet seen to exit */
  int code;      /* exit code, or -signal (POSIX) once running is 0 */
  int out_eof;   /* stdout reached its end */
  int keep_err;  /* see bt_proc_opts */
  int write_err; /* stdin broke (the child closed it or exited) */
  bt_buf wbuf;   /* stdin bytes not yet written */
  size_t woff;
  bt_proc_out *sink; /* where pumped output goes (the owner's) */
} bt_proc;

/* Starts a child whose output goes to out (its lines limited to
 * o->max_line). 0, or -1 with a message in err (always NUL-terminated); on
 * failure p holds nothing to free. */
BT_HIDDEN int bt_proc_spawn(bt_proc *p, const bt_proc_opts *o, bt_proc_out *out, char *err,
                            size_t errlen);

/* Queues n bytes for stdin and writes what the pipe takes now. 0, or -1
 * when stdin is closed or broken, or memory is short. */
BT_HIDDEN int bt_proc_write(bt_proc *p, const char *s, size_t n);

/* Moves bytes without waiting: pending stdin out, stdout and stderr in,
 * and notes an exit. Returns 1 when anything moved or changed, 0 if not,
 * -1 when memory is short. */
BT_HIDDEN int bt_proc_pump(bt_proc *p);

/* POSIX: the fds worth waiting on (stdout, stderr, and stdin while bytes
 * wait for it), for poll(2)-like waiting; returns how many (at most 3),
 * with events[i] 1 for input, 2 for output. Windows: 0 (pipes cannot be
 * waited on with sockets: callers poll at short intervals). */
BT_HIDDEN int bt_proc_fds(const bt_proc *p, int fds[3], int events[3]);

/* Ends the child: closes stdin, waits up to grace seconds for it to exit,
 * then terminates it (SIGTERM to its process group), waits grace again,
 * then kills it, and reaps it; closes every pipe. Leaves the buffers (a
 * read may be borrowing them). Idempotent. */
BT_HIDDEN void bt_proc_close(bt_proc *p, double grace);

/* Frees the stdin buffer (not out: its owner frees that). Idempotent. */
BT_HIDDEN void bt_proc_free(bt_proc *p);

#endif
