/*
 * c_measure.h: what the C floors of the benchmark (c_consumer.c,
 * c_batch.c) measure alike: CPU seconds (getrusage user+sys, as the Lua
 * and node consumers measure theirs), monotonic wall seconds, and a field
 * of /proc/self/status in kB (VmRSS now, VmHWM the peak).
 */
#ifndef BENCH_C_MEASURE_H
#define BENCH_C_MEASURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* status_kb("VmRSS:"): that line of /proc/self/status, or -1 */
static long status_kb(const char *field) {
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, n) == 0) kb = strtol(line + n, NULL, 10);
  fclose(f);
  return kb;
}

#endif
