/*
 * lproc.c: core.spawn, the Lua side of proc.c (MCP's stdio transport).
 *
 *   local p = core.spawn{argv = {"cmd", "arg"}, env = {"K=V"}, clear_env = false,
 *                        cwd = nil, max_line = 4194304, keep_err = true}
 *   p:write(s)        -> true | nil, why       (queued; never blocks)
 *   p:pump()          -> whether anything moved (never blocks)
 *   p:read_line()     -> line | nil (none yet) | false, why (over max_line)
 *   p:take_err()      -> the stderr bytes kept so far, or nil
 *   p:fds()           -> {fd, events, ...} worth waiting on (POSIX; {} on Windows)
 *   p:status()        -> "running" | "exited", code | "closed"
 *   p:eof()           -> stdout ended and every line was read
 *   p:close([grace])  -> ends the child (proc.h); __gc and __close too
 *
 * read_line and take_err hand the child's output to lua_pushlstring,
 * which can run a GC step and so any __gc: they are reads (lend.h) that
 * move the output state out while they run, so a close meanwhile frees
 * nothing under them.
 */
#include <string.h>

#include "bt.h"
#include "lend.h"
#include "proc.h"

#define PROC_MT "baseten.core.proc"
#define DEFAULT_MAX_LINE (4u * 1024u * 1024u)
#define MAX_ARGS 4096
/* __gc cannot wait long: a finalizer runs in the middle of anything. */
#define GC_GRACE 0.2
#define CLOSE_GRACE 2.0

typedef struct lproc {
  bt_proc p;
  int state;       /* 0 running, 1 closed */
  bt_lender lend;  /* lends out to read_line and take_err */
  bt_proc_out out; /* what the child wrote */
} lproc;

static void out_free(void *o) { bt_proc_out_free(o); }

/* A process neither closed nor out on a read. */
static lproc *check_proc(lua_State *L, int i) {
  lproc *lp = luaL_checkudata(L, i, PROC_MT);
  if (lp->state != 0) luaL_error(L, "attempt to use a closed baseten process");
  if (bt_lend_busy(&lp->lend))
    luaL_error(L, "process is being read (by the code this finalizer interrupted)");
  return lp;
}

/* A NULL-terminated array of the strings of the table at opts[key], kept
 * alive on the stack by the caller, in a userdata (freed by the GC). */
static const char **string_array(lua_State *L, int opts, const char *key, int need) {
  const char **a;
  int i, n;
  lua_getfield(L, opts, key);
  if (lua_isnil(L, -1) && !need) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "spawn: %s must be an array of strings", key);
  n = (int)lua_rawlen(L, -1);
  if (need && n == 0) luaL_error(L, "spawn: %s must not be empty", key);
  if (n > MAX_ARGS) luaL_error(L, "spawn: %s has more than %d entries", key, MAX_ARGS);
  a = lua_newuserdata(L, (size_t)(n + 1) * sizeof *a);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: %s[%d] must be a string", key, i);
    a[i - 1] = lua_tostring(L, -1);
    if (strlen(a[i - 1]) != lua_rawlen(L, -1))
      luaL_error(L, "spawn: %s[%d] holds a NUL byte", key, i);
    lua_pop(L, 1); /* the table keeps the string alive */
  }
  a[n] = NULL;
  return a; /* stack: table, userdata */
}

static int proc_spawn(lua_State *L) {
  bt_proc_opts o;
  char err[256];
  lproc *lp;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&o, 0, sizeof o);
  o.argv = string_array(L, 1, "argv", 1);
  o.env = string_array(L, 1, "env", 0);
  lua_getfield(L, 1, "cwd");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "spawn: cwd must be a string");
  o.cwd = lua_tostring(L, -1);
  lua_getfield(L, 1, "clear_env");
  o.clear_env = lua_toboolean(L, -1);
  lua_getfield(L, 1, "keep_err");
  o.keep_err = lua_toboolean(L, -1);
  lua_getfield(L, 1, "max_line");
  o.max_line = lua_isnil(L, -1) ? DEFAULT_MAX_LINE : (size_t)luaL_checknumber(L, -1);
  lua_pop(L, 4);
  lp = lua_newuserdata(L, sizeof *lp);
  memset(lp, 0, sizeof *lp);
  lp->state = 1; /* closed until the child exists */
  BT_LEND_INIT(&lp->lend, &lp->out, out_free, "process");
  luaL_setmetatable(L, PROC_MT);
  if (bt_proc_spawn(&lp->p, &o, &lp->out, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lp->state = 0;
  return 1;
}

static void proc_end(lproc *lp, double grace) {
  if (lp->state != 0) {
    bt_lend_close(&lp->lend); /* a failed spawn: nothing was read */
    return;
  }
  lp->state = 1;
  bt_proc_close(&lp->p, grace); /* detaches out: a read may hold it */
  bt_proc_free(&lp->p);
  bt_lend_close(&lp->lend); /* frees out now, or when the read ends */
}

static int proc_close(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  double grace = luaL_optnumber(L, 2, CLOSE_GRACE);
  proc_end(lp, grace >= 0 && grace <= 60 ? grace : CLOSE_GRACE);
  return 0;
}

static int proc_gc(lua_State *L) {
  proc_end(luaL_checkudata(L, 1, PROC_MT), GC_GRACE);
  return 0;
}

static int proc_write(lua_State *L) {
  lproc *lp = check_proc(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  if (bt_proc_write(&lp->p, s, n) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "the server's stdin is closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_pump(lua_State *L) {
  lproc *lp = check_proc(L, 1);
  int rc = bt_proc_pump(&lp->p);
  if (rc < 0) return luaL_error(L, "not enough memory");
  lua_pushboolean(L, rc);
  return 1;
}

static int proc_fds(lua_State *L) {
  lproc *lp = check_proc(L, 1);
  int fds[3], ev[3], n = bt_proc_fds(&lp->p, fds, ev), i;
  lua_createtable(L, 2 * n, 0);
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, fds[i]);
    lua_rawseti(L, -2, 2 * i + 1);
    lua_pushinteger(L, ev[i]);
    lua_rawseti(L, -2, 2 * i + 2);
  }
  return 1;
}

static int proc_status(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  if (lp->state != 0) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  if (lp->p.running) {
    lua_pushliteral(L, "running");
    return 1;
  }
  lua_pushliteral(L, "exited");
  lua_pushinteger(L, lp->p.code);
  return 2;
}

static int proc_eof(lua_State *L) {
  lproc *lp = check_proc(L, 1);
  lua_pushboolean(L, lp->p.out_eof && lp->out.lines.off == lp->out.lines.b.len);
  return 1;
}

static int proc_tostring(lua_State *L) {
  lproc *lp = luaL_checkudata(L, 1, PROC_MT);
  if (lp->state != 0) lua_pushliteral(L, "baseten.process (closed)");
  else lua_pushfstring(L, "baseten.process (%p)", (void *)lp);
  return 1;
}

/* The readers (upvalue 1 of proc_read): they work on the lent copy. */
static int read_line(lua_State *L) {
  lproc *lp = lua_touserdata(L, 1);
  bt_proc_out *o = bt_lend_state(&lp->lend);
  const char *line = NULL;
  size_t len = 0;
  int rc = bt_lines_next(&o->lines, &line, &len);
  if (rc == 0) return 0;
  if (rc < 0) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "a line longer than max_line");
    return 2;
  }
  lua_pushlstring(L, line, len);
  return 1;
}

static int take_err(lua_State *L) {
  lproc *lp = lua_touserdata(L, 1);
  bt_proc_out *o = bt_lend_state(&lp->lend);
  if (o->errb.len == 0) return 0;
  lua_pushlstring(L, o->errb.p, o->errb.len);
  o->errb.len = 0;
  return 1;
}

static int proc_read(lua_State *L) {
  lproc *lp = check_proc(L, 1);
  return bt_lend_finish(L, bt_lend_read(L, &lp->lend));
}

void bt_proc_open(lua_State *L) {
  static const luaL_Reg m[] = {{"write", proc_write},
                               {"pump", proc_pump},
                               {"fds", proc_fds},
                               {"status", proc_status},
                               {"eof", proc_eof},
                               {"close", proc_close},
                               {"__gc", proc_gc},
                               {"__close", proc_gc},
                               {"__tostring", proc_tostring},
                               {NULL, NULL}};
  static const luaL_Reg reads[] = {{"read_line", read_line}, {"take_err", take_err}, {NULL, NULL}};
  bt_new_class(L, PROC_MT, m);
  bt_lend_methods(L, reads, proc_read);
  lua_pop(L, 1);
  lua_pushcfunction(L, proc_spawn);
  lua_setfield(L, -2, "spawn");
}
