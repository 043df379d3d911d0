/*
 * http.h: what the http_*.c files share. One libcurl multi engine per
 * client (http_engine.c) drives transfers (http_transfer.c), configured
 * from a Lua option table (http_opts.c), fed by curl callbacks that only
 * copy bytes and note headers (http_curl.c), and whose failures are mapped
 * to error kinds (http_fail.c).
 *
 * The curl callbacks never touch Lua, so no Lua error can unwind through
 * libcurl. SSE parsing and JSON decoding happen later, in
 * transfer:next_event(), outside curl.
 */
#ifndef BT_HTTP_H
#define BT_HTTP_H

#include <curl/curl.h>

#include "bt.h"
#include "buf.h"
#include "lend.h"
#include "platform.h"
#include "sse.h"

#define ENGINE_MT "baseten.core.engine"
#define TRANSFER_MT "baseten.core.transfer"

/* A stream pauses curl once this many bytes wait unread, so memory stays
 * flat however fast the server floods and however slow the consumer is. */
#define STREAM_PAUSE_BYTES (4u * 1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
/* The headers of one response, in all. libcurl (7.88) stops at 300 KiB
 * with a receive error, and at CURL_MAX_HTTP_HEADER for one line with "out
 * of memory"; both must read as a response too large, never retried. */
#define MAX_HEADER_BYTES (256u * 1024u)

enum { T_RUNNING = 0, T_DONE = 1, T_CLOSED = 2 };
enum { F_NONE = 0, F_TOO_BIG, F_NOMEM, F_HEADER, F_HEADER_H2 };
enum { P_NONE = 0, P_FULL, P_READING }; /* why curl is paused */

typedef struct bt_transfer bt_transfer;

/* What a transfer's reads lend to Lua (lend.h): the response bytes (those
 * before off are consumed) and the SSE parser they go through. */
typedef struct bt_rx {
  bt_buf buf;
  size_t off;
  sse_parser sse;
} bt_rx;

/* Easy handles kept for reuse: a transfer's handle goes back here when it
 * closes (curl_easy_reset), and the engine's next request takes it, which
 * saves making and freeing one per request. Shared by the engine and every
 * transfer that may give a handle back (refs), since either may be
 * collected first; once the engine closes, handles are freed, not kept. */
#define HANDLE_POOL_MAX 64
typedef struct bt_pool {
  CURL *h[HANDLE_POOL_MAX];
  int n, refs, closed;
} bt_pool;

typedef struct bt_engine {
  CURLM *multi;
  bt_pool *pool;     /* NULL once closed */
  long pid;          /* the process that made it: a forked child may not drive it */
  bt_transfer *head; /* transfers still attached to this engine */
  int closed;
  int kick;   /* a transfer was unpaused: the next perform must not sleep */
  int active; /* bytes arrived during this perform: no need to sleep */
} bt_engine;

struct bt_transfer {
  CURL *easy;
  long pid; /* the process that made it (see bt_engine) */
  bt_engine *engine;
  bt_pool *pool; /* where the handle goes back on close (a ref), or NULL */
  bt_transfer *prev, *next;
  struct curl_slist *headers;
  int body_ref; /* registry ref keeping the request body string alive */
  size_t total, max_body, header_bytes;
  long status;
  int headers_done, state, stream, paused, failure;
  double idle, last_rx; /* idle timeout (s, 0 = none) and last byte's time */
  CURLcode result;
  bt_lender lend; /* lends rx to the reads */
  bt_rx rx;
  char request_id[128], retry_after[64], retry_after_ms[32], ctype[128];
  char session_id[256]; /* Mcp-Session-Id (MCP's Streamable HTTP) */
  char errbuf[CURL_ERROR_SIZE];
};

/* Whether we run in a child forked after pid made a handle: the child shares
 * the parent's sockets, so it must not drive, or even close, curl's handles
 * (that would send on the parent's connections); it only forgets them. */
static inline int bt_http_forked(long pid) { return pid != bt_process_id(); }

/* Response bytes not yet consumed. */
static inline size_t bt_http_unread(const bt_rx *rx) { return rx->buf.len - rx->off; }

/* http_transfer.c: frees what an rx holds (a bt_rx *). */
BT_HIDDEN void bt_http_rx_free(void *rx);

/* http_curl.c: sets the callbacks and connection habits of t's easy handle
 * for url. -1 when libcurl would not restrict it to http and https. */
BT_HIDDEN int bt_http_set_curl(bt_transfer *t, const char *url);

/* http_opts.c: a new transfer of engine e on top of the stack, configured
 * from the option table at index opts (see engine_request); raises on a bad
 * option. */
BT_HIDDEN bt_transfer *bt_http_transfer_new(lua_State *L, bt_engine *e, int opts);

/* http_engine.c: an easy handle from e's pool (NULL: none, or e closed)
 * or a new one; NULL when curl cannot make one. On success *pool is the
 * pool the handle goes back to, with a ref taken for the caller, or NULL. */
BT_HIDDEN CURL *bt_http_handle_take(bt_engine *e, bt_pool **pool);

/* http_engine.c: a transfer's handle back to pool (made in process pid):
 * reset and kept, or freed (pool closed or full); then the ref dropped.
 * A forked child touches neither the handle nor curl. */
BT_HIDDEN void bt_http_handle_give(bt_pool *pool, CURL *h, long pid);

/* http_engine.c: takes t off its engine (no-op when it has none). */
BT_HIDDEN void bt_http_detach(bt_transfer *t);

/* http_engine.c: the engine class and the engine constructor. */
BT_HIDDEN void bt_http_engine_open(lua_State *L);

/* http_transfer.c: the transfer class. */
BT_HIDDEN void bt_http_transfer_open(lua_State *L);

/* http_fail.c: false, kind, message of a failed transfer, and its curl code
 * (4 values pushed); see transfer:result(). */
BT_HIDDEN int bt_http_push_failure(lua_State *L, const bt_transfer *t);

#endif
