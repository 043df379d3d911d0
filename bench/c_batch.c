/*
 * c_batch.c: the floor of the batch benchmark -- what a plain C program
 * pays to send N small non-streamed chat completions, C at a time, on the
 * libcurl multi interface with no Lua: C easy handles reused from request
 * to request (so are their connections), each response parsed by cJSON
 * and its usage.total_tokens read.
 *
 *   c_batch BASE_URL N C   ->  one JSON line on stdout:
 *   {"requests":N,"tokens":N,"cpu":s,"wall":s,"rss_kb":N,"rss10k_kb":N}
 *
 * cpu is getrusage(RUSAGE_SELF) user+sys around the batch, as the Lua and
 * node consumers measure theirs; rss_kb is VmRSS at the end, rss10k_kb
 * VmRSS once 10,000 requests were done.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_measure.h"

typedef struct {
  CURL *easy;
  char *buf;
  size_t len, cap;
} slot;

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  slot *s = ud;
  size_t bytes = size * n;
  if (s->len + bytes > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    char *nb;
    while (cap < s->len + bytes) cap *= 2;
    if ((nb = realloc(s->buf, cap)) == NULL) return 0;
    s->buf = nb;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, p, bytes);
  s->len += bytes;
  return bytes;
}

static long tokens_of(const slot *s) {
  long t = -1;
  cJSON *root = cJSON_ParseWithLength(s->buf, s->len);
  cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
  cJSON *total = cJSON_GetObjectItemCaseSensitive(usage, "total_tokens");
  if (cJSON_IsNumber(total)) t = (long)total->valuedouble;
  cJSON_Delete(root);
  return t;
}

int main(int argc, char **argv) {
  static const char body[] = "{\"model\":\"test/bench\",\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}";
  char url[1024];
  struct curl_slist *h = NULL;
  CURLM *multi;
  slot *slots;
  long n, c, i, started = 0, done = 0, failed = 0, tokens = 0, rss10k = -1;
  double cpu0, wall0;
  int running = 1;
  if (argc < 4) {
    fprintf(stderr, "usage: c_batch BASE_URL N CONCURRENCY\n");
    return 2;
  }
  n = atol(argv[2]);
  c = atol(argv[3]);
  snprintf(url, sizeof url, "%s/chat/completions", argv[1]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "Accept: application/json");
  h = curl_slist_append(h, "Authorization: Bearer bench");
  h = curl_slist_append(h, "Expect:");
  cpu0 = cpu_seconds();
  wall0 = wall_seconds();
  multi = curl_multi_init();
  slots = calloc((size_t)c, sizeof *slots);
  if (slots == NULL) return 1;
  for (i = 0; i < c && started < n; i++, started++) {
    slot *s = &slots[i];
    s->easy = curl_easy_init();
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (char *)s);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi, s->easy);
  }
  while (running > 0 || done < n) {
    CURLMsg *msg;
    int left;
    curl_multi_perform(multi, &running);
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
      slot *s = NULL;
      long status = 0;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi, s->easy);
      if (msg->data.result == CURLE_OK && status == 200) {
        long t = tokens_of(s);
        if (t < 0) failed++;
        else tokens += t;
      } else {
        failed++;
      }
      s->len = 0;
      if (++done == 10000) rss10k = status_kb("VmRSS:");
      if (started < n) { /* the same handle, the same connection */
        started++;
        curl_multi_add_handle(multi, s->easy);
        running = 1;
      }
    }
    if (done >= n) break;
    curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  printf("{\"requests\":%ld,\"failed\":%ld,\"tokens\":%ld,\"cpu\":%.4f,\"wall\":%.4f,\"rss_kb\":%ld,"
         "\"rss10k_kb\":%ld}\n",
         done, failed, tokens, cpu_seconds() - cpu0, wall_seconds() - wall0, status_kb("VmRSS:"), rss10k);
  for (i = 0; i < c; i++) {
    if (slots[i].easy) curl_easy_cleanup(slots[i].easy);
    free(slots[i].buf);
  }
  free(slots);
  curl_multi_cleanup(multi);
  curl_slist_free_all(h);
  curl_global_cleanup();
  return failed ? 1 : 0;
}
