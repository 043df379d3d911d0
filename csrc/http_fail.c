/*
 * http_fail.c: why a transfer failed, as the kind the Lua layer maps to an
 * error (lua/baseten/errors.lua) and a message.
 */
#include <string.h>

#include "http.h"

/* libcurl's own HTTP/2 header cap (128 KiB in 7.88) fails nghttp2's header
 * callback: a receive error before the headers are in, which nghttp2 names
 * -902, "The user callback function failed". Its other causes (a header
 * nghttp2 or curl refuses, no memory) are not worth a retry either. */
static int h2_header_failure(const bt_transfer *t) {
  return t->result == CURLE_RECV_ERROR && !t->headers_done && strstr(t->errbuf, "nghttp2") &&
         (strstr(t->errbuf, "-902") || strstr(t->errbuf, "callback function failed"));
}

/* Why t failed, if through no fault of curl's transport: our own limits,
 * and libcurl's header limits: one line over HTTP/1.1, which it reports as
 * out of memory before the headers are complete, and HTTP/2's. */
static int transfer_failure(const bt_transfer *t) {
  if (t->failure != F_NONE) return t->failure;
  if (t->result == CURLE_OUT_OF_MEMORY && !t->headers_done) return F_HEADER;
  if (h2_header_failure(t)) return F_HEADER_H2;
  return F_NONE;
}

static const char *curl_kind(CURLcode result) {
  switch (result) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_ABORTED_BY_CALLBACK: return "canceled";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_USE_SSL_FAILED: return "tls";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "dns";
  default: return "connection";
  }
}

/* kind and message (the Lua layer maps "too_large" and "nomem" to
 * invalid_response, never retried) */
static void push_kind(lua_State *L, const bt_transfer *t) {
  switch (transfer_failure(t)) {
  case F_TOO_BIG:
    lua_pushliteral(L, "too_large");
    lua_pushliteral(L, "response body too large");
    return;
  case F_HEADER:
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L,
                    "response headers too large (the header limit is %d bytes a line, %d in all)",
                    (int)CURL_MAX_HTTP_HEADER, (int)MAX_HEADER_BYTES);
    return;
  case F_HEADER_H2:
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L, "response headers too large for libcurl over HTTP/2 (%s)", t->errbuf);
    return;
  case F_NOMEM: lua_pushliteral(L, "nomem"); break;
  default: lua_pushstring(L, curl_kind(t->result));
  }
  if (t->errbuf[0]) lua_pushstring(L, t->errbuf);
  else lua_pushstring(L, curl_easy_strerror(t->result));
}

int bt_http_push_failure(lua_State *L, const bt_transfer *t) {
  lua_pushboolean(L, 0);
  push_kind(L, t);
  lua_pushinteger(L, (lua_Integer)t->result);
  return 4;
}
