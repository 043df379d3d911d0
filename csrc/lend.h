/*
 * lend.h: how C code hands bytes it owns to Lua.
 *
 * Pushing a Lua value can allocate; an allocation can run a GC step and so
 * any __gc; and a __gc can close the object whose bytes are being read. So
 * a read MOVES the state it decodes out of its owner for as long as it
 * runs: the owner is left holding zero bytes (its close frees nothing the
 * read holds), the read works on its own copy, and when it ends, however
 * it ends, the copy goes back to the owner, or is freed if the owner was
 * closed meanwhile. Nothing else has to be remembered anywhere.
 *
 *   typedef struct { bt_buf in; size_t off; } my_state;  all zeros = empty
 *   typedef struct { bt_lender lend; my_state st; } my_obj;    a userdata
 *
 *   making it:  BT_LEND_INIT(&o->lend, &o->st, my_state_free, "my object");
 *   closing it: bt_lend_close(&o->lend);   frees st now, or after the read
 *   the method: a closure of a guard over the reader (bt_lend_methods):
 *     static int my_guard(lua_State *L) {
 *       my_obj *o = my_check(L);            raises if closed
 *       return bt_lend_finish(L, bt_lend_read(L, &o->lend));
 *     }
 *   the reader (upvalue 1 of the guard; runs under lua_pcall with the
 *   guard's arguments):
 *     static int my_next(lua_State *L) {
 *       my_obj *o = lua_touserdata(L, 1);
 *       my_state *st = bt_lend_state(&o->lend);   the moved copy
 *       ... push values built from st; stop early if bt_lend_closed ...
 *     }
 *
 * A producer that appends to the state (a curl write callback) checks
 * bt_lend_busy first and waits (pauses) while it is true: the bytes are
 * out, and a second read is refused until they are back.
 *
 * The state is moved with memcpy, so it may point to heap blocks and to
 * bytes outside it, never into itself (no pointer to its own inline array),
 * and it is at most BT_LEND_MAX bytes (BT_LEND_INIT checks).
 */
#ifndef BT_LEND_H
#define BT_LEND_H

#include <stddef.h>

#include "compat.h"

/* The largest state a lender can lend: it is copied onto the C stack. */
#define BT_LEND_MAX 1024

typedef struct bt_lender {
  void *home;                /* the owner's state, size bytes */
  size_t size;               /* at most BT_LEND_MAX */
  void (*free)(void *state); /* frees what a state holds; given zeros, nothing */
  void *out;                 /* the read's copy while a read runs, else NULL */
  const char *what;          /* names the owner in "x is being read" */
  int closed;                /* bt_lend_close ran */
} bt_lender;

/* Ties l to state (size bytes, whose all-zero form must be a valid empty
 * state). BT_LEND_INIT checks the size at compile time. */
BT_HIDDEN void bt_lend_init(bt_lender *l, void *state, size_t size, void (*free)(void *),
                            const char *what);
/* a state larger than BT_LEND_MAX fails to compile (an array of size -1) */
#define BT_LEND_INIT(l, state, free, what)                                                         \
  bt_lend_init((l), (state),                                                                       \
               sizeof *(state) + 0 * sizeof(char[sizeof *(state) <= BT_LEND_MAX ? 1 : -1]),        \
               (free), (what))

/* The state a reader works on: the read's copy during a read, else home. */
static inline void *bt_lend_state(const bt_lender *l) { return l->out ? l->out : l->home; }

/* Whether a read holds the state now. */
static inline int bt_lend_busy(const bt_lender *l) { return l->out != NULL; }

/* Whether the owner was closed (maybe during the read now running). */
static inline int bt_lend_closed(const bt_lender *l) { return l->closed; }

/* Frees the state now, or, while a read holds it, when the read ends.
 * Idempotent. */
BT_HIDDEN void bt_lend_close(bt_lender *l);

/* Runs upvalue 1 of the running C function with all the stack as its
 * arguments, under lua_pcall, with the state moved out of l (see the top).
 * Raises if a read already holds it. Returns lua_pcall's status; the
 * results (or the error) are then the whole stack. */
BT_HIDDEN int bt_lend_read(lua_State *L, bt_lender *l);

/* What a guard returns after bt_lend_read: the results, or the error
 * raised again. */
BT_HIDDEN int bt_lend_finish(lua_State *L, int status);

/* Sets, in the table on top of the stack, each reader of l as a closure of
 * guard with that reader as upvalue 1. */
BT_HIDDEN void bt_lend_methods(lua_State *L, const luaL_Reg *l, lua_CFunction guard);

#endif
