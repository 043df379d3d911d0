/* The floor of bench/ttft.sh: a bare libcurl loop (curl_easy_perform, one
 * POST per request, as the Lua client sends) that notes CLOCK_MONOTONIC when
 * the first body bytes reach its write callback. Prints one time a line.
 * Usage: c_ttft URL N */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double first;

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  if (first == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    first = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  }
  return size * n;
}

int main(int argc, char **argv) {
  int i, n = argc > 2 ? atoi(argv[2]) : 100;
  CURL *h;
  if (argc < 2) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, argv[1]);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"model\":\"m\",\"stream\":true}");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  for (i = 0; i < n; i++) {
    first = 0;
    if (curl_easy_perform(h) != CURLE_OK) return 1;
    printf("%.9f\n", first);
  }
  curl_easy_cleanup(h);
  curl_global_cleanup();
  return 0;
}
