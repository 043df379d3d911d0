/*
 * c_consumer.c: the floor of the streaming benchmark -- what a plain C
 * program pays to consume the same chat.completion.chunk stream with no Lua
 * at all: libcurl easy, SSE events split on their blank line, each payload
 * parsed by cJSON and its choices[0].delta.content read.
 *
 *   c_consumer BASE_URL   ->  one JSON line on stdout:
 *   {"chunks":N,"chars":N,"cpu":s,"wall":s,"rss_kb":N}
 *
 * cpu is getrusage(RUSAGE_SELF) user+sys around the request, as the Lua and
 * node consumers measure theirs; rss_kb is VmHWM (peak resident set).
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_measure.h"

typedef struct {
  char *buf;
  size_t len, cap;
  long chunks, chars, bad;
  int done;
} consumer;

/* One event (its lines, without the blank line that ended it). The bench
 * stream has one data line per event, as every OpenAI-compatible server
 * sends; comments and other fields are skipped. */
static void on_event(consumer *c, const char *ev, size_t n) {
  cJSON *root, *choice, *delta, *content;
  if (n < 5 || memcmp(ev, "data:", 5) != 0) return;
  ev += 5, n -= 5;
  if (n > 0 && *ev == ' ') ev++, n--;
  if (n == 6 && memcmp(ev, "[DONE]", 6) == 0) {
    c->done = 1;
    return;
  }
  root = cJSON_ParseWithLength(ev, n);
  if (root == NULL) {
    c->bad++;
    return;
  }
  c->chunks++;
  choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
  delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
  content = cJSON_GetObjectItemCaseSensitive(delta, "content");
  if (cJSON_IsString(content)) c->chars += (long)strlen(content->valuestring);
  cJSON_Delete(root);
}

/* Appends what curl read, hands on every complete event, keeps the rest. */
static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  consumer *c = ud;
  size_t bytes = size * n, start = 0, i;
  if (c->len + bytes > c->cap) {
    size_t cap = c->cap ? c->cap : 65536;
    char *nb;
    while (cap < c->len + bytes) cap *= 2;
    if ((nb = realloc(c->buf, cap)) == NULL) return 0;
    c->buf = nb;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, p, bytes);
  c->len += bytes;
  for (i = 0; i + 1 < c->len;) {
    const char *nl = memchr(c->buf + i, '\n', c->len - i - 1);
    if (nl == NULL) break;
    i = (size_t)(nl - c->buf) + 1;
    if (c->buf[i] == '\n') { /* blank line: the event is complete */
      on_event(c, c->buf + start, i - 1 - start);
      start = ++i;
    }
  }
  memmove(c->buf, c->buf + start, c->len - start);
  c->len -= start;
  return bytes;
}

int main(int argc, char **argv) {
  static const char body[] =
      "{\"model\":\"test/bench\",\"stream\":true,"
      "\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}";
  consumer c;
  char url[1024];
  struct curl_slist *h = NULL;
  CURL *easy;
  CURLcode rc;
  double cpu0, wall0;
  if (argc < 2) {
    fprintf(stderr, "usage: c_consumer BASE_URL\n");
    return 2;
  }
  memset(&c, 0, sizeof c);
  snprintf(url, sizeof url, "%s/chat/completions", argv[1]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  cpu0 = cpu_seconds();
  wall0 = wall_seconds();
  easy = curl_easy_init();
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "Accept: text/event-stream");
  h = curl_slist_append(h, "Authorization: Bearer bench");
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &c);
  rc = curl_easy_perform(easy);
  curl_easy_cleanup(easy);
  curl_slist_free_all(h);
  if (rc != CURLE_OK || !c.done || c.bad) {
    fprintf(stderr, "c_consumer: %s, done=%d, bad=%ld\n", curl_easy_strerror(rc), c.done, c.bad);
    return 1;
  }
  printf("{\"chunks\":%ld,\"chars\":%ld,\"cpu\":%.4f,\"wall\":%.4f,\"rss_kb\":%ld}\n",
         c.chunks, c.chars, cpu_seconds() - cpu0, wall_seconds() - wall0, status_kb("VmHWM:"));
  free(c.buf);
  curl_global_cleanup();
  return 0;
}
