/*
 * http_curl.c: what libcurl calls while a transfer runs, and the easy
 * handle's connection habits. The callbacks only copy bytes and note
 * headers: no Lua here, so no Lua error can unwind through libcurl.
 */
/* CURLOPT_PROTOCOLS is deprecated, but it is the fallback for a runtime
 * libcurl that refuses the string form. */
#define CURL_DISABLE_DEPRECATION 1
#include <string.h>
#include <stdlib.h>

#include "http.h"
#include "platform.h"

/* Appends to rx->buf, first dropping the consumed bytes at its front when
 * that makes the room. Never runs during a read (on_write pauses then). */
static int buf_store(bt_rx *rx, const char *p, size_t n) {
  bt_buf *b = &rx->buf;
  if (rx->off == b->len) {
    rx->off = b->len = 0;
  } else if (rx->off > 0 && b->cap - b->len < n) {
    memmove(b->p, b->p + rx->off, b->len - rx->off);
    b->len -= rx->off;
    rx->off = 0;
  }
  return bt_buf_append(b, p, n) == 0;
}

static size_t pause_writes(bt_transfer *t, int why) {
  t->paused = why;
  return CURL_WRITEFUNC_PAUSE;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t bytes = size * n;
  int ok_status = t->status >= 200 && t->status < 300;
  if (bt_lend_busy(&t->lend)) return pause_writes(t, P_READING);
  if (t->stream && ok_status && bt_http_unread(&t->rx) >= STREAM_PAUSE_BYTES)
    return pause_writes(t, P_FULL);
  if ((!t->stream || !ok_status) && bytes > t->max_body - t->total) {
    t->failure = F_TOO_BIG;
    return 0;
  }
  if (!buf_store(&t->rx, ptr, bytes)) {
    t->failure = F_NOMEM;
    return 0;
  }
  if (t->engine) t->engine->active = 1;
  t->last_rx = bt_mono_now();
  t->total += bytes;
  return bytes;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static int header_is(const char *line, size_t n, const char *name) {
  size_t k = strlen(name);
  return n > k && line[k] == ':' && bt_ascii_ncasecmp(line, name, k) == 0;
}

/* A status line starts a response (a 100 Continue, a redirect, the final
 * one); what we keep always describes the latest. */
static void on_status_line(bt_transfer *t, const char *line, size_t len) {
  const char *sp = memchr(line, ' ', len);
  t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
  t->request_id[0] = t->retry_after[0] = t->retry_after_ms[0] = '\0';
  t->ctype[0] = t->session_id[0] = '\0';
  t->headers_done = 0;
  t->header_bytes = 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  bt_transfer *t = ud;
  size_t len = size * n;
  t->last_rx = bt_mono_now();
  if (t->engine) t->engine->active = 1;
  if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) on_status_line(t, line, len);
  if ((t->header_bytes += len) > MAX_HEADER_BYTES) {
    t->failure = F_HEADER;
    return 0;
  }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
    if (t->status >= 200) t->headers_done = 1;
  } else if (header_is(line, len, "x-request-id")) {
    copy_value(t->request_id, sizeof t->request_id, line + 13, len - 13);
  } else if (header_is(line, len, "retry-after-ms")) {
    copy_value(t->retry_after_ms, sizeof t->retry_after_ms, line + 15, len - 15);
  } else if (header_is(line, len, "retry-after")) {
    copy_value(t->retry_after, sizeof t->retry_after, line + 12, len - 12);
  } else if (header_is(line, len, "content-type")) {
    copy_value(t->ctype, sizeof t->ctype, line + 13, len - 13);
  } else if (header_is(line, len, "mcp-session-id")) {
    copy_value(t->session_id, sizeof t->session_id, line + 15, len - 15);
  }
  return len;
}

/* http and https only, redirects included: curl would fetch file://,
 * ftp://, ... URLs too. The string options came with 7.85.0; a runtime
 * libcurl older than our headers, or built without an option, refuses
 * them, so the bit mask is the fallback. 0, or -1 when neither holds. */
static int set_protocols(CURL *h) {
  const long bits = (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS);
#if LIBCURL_VERSION_NUM >= 0x075500
  if (curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
      curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK)
    return 0;
#endif
  if (curl_easy_setopt(h, CURLOPT_PROTOCOLS, bits) == CURLE_OK &&
      curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, bits) == CURLE_OK)
    return 0;
  return -1;
}

static void set_callbacks(bt_transfer *t) {
  CURL *h = t->easy;
  curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
}

/* Connection habits. HTTP/2 only over TLS, where ALPN says at the
 * handshake whether a connection multiplexes; PIPEWAIT makes a transfer
 * wait for that answer rather than open one more connection beside it.
 * Not in clear: curl learns an HTTP/1.1 connection's version only from the
 * response, so transfers there would wait for each other. */
int bt_http_set_curl(bt_transfer *t, const char *url) {
  CURL *h = t->easy;
  set_callbacks(t);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (curl_strnequal(url, "https://", 8)) curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  return set_protocols(h);
}
