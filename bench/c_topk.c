/*
 * c_topk.c: the plain C floor of the top_k benchmark (bench/embed.lua):
 * N vectors of DIMS float32 in one contiguous array, and for each query
 * one loop that takes the cosine of the query with every row (one pass:
 * dot and squared norm) and keeps the best K by insertion. The rows hold
 * the same kind of values as embed_consumer.lua's topk mode.
 *
 *   c_topk N DIMS QUERIES K  ->  {"n":N,"dims":D,"ms_per_query":ms}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  size_t n, dims, k, i, j, r;
  int queries, qi;
  float *rows, *q;
  double *best, qn = 0, t0, sink = 0;
  unsigned long seed = 42;
  if (argc != 5) return 2;
  n = strtoul(argv[1], NULL, 10);
  dims = strtoul(argv[2], NULL, 10);
  queries = atoi(argv[3]);
  k = strtoul(argv[4], NULL, 10);
  rows = malloc(n * dims * sizeof *rows);
  q = malloc(dims * sizeof *q);
  best = malloc((k + 1) * sizeof *best);
  if (!rows || !q || !best) return 1;
  for (i = 0; i < n * dims; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648UL;
    rows[i] = (float)(seed / 2147483648.0 - 0.5);
  }
  for (j = 0; j < dims; j++) {
    q[j] = rows[3 * dims + j];
    qn += (double)q[j] * q[j];
  }
  qn = sqrt(qn);
  t0 = cpu_now();
  for (qi = 0; qi < queries; qi++) {
    size_t have = 0;
    for (i = 0; i < n; i++) {
      const float *row = rows + i * dims;
      double dot = 0, nn = 0, s;
      for (j = 0; j < dims; j++) {
        dot += (double)q[j] * row[j];
        nn += (double)row[j] * row[j];
      }
      s = nn > 0 && qn > 0 ? dot / (qn * sqrt(nn)) : 0;
      if (have < k || s > best[have - 1]) {
        r = have < k ? have++ : have - 1;
        while (r > 0 && best[r - 1] < s) {
          best[r] = best[r - 1];
          r--;
        }
        best[r] = s;
      }
    }
    sink += best[0];
  }
  printf("{\"n\":%zu,\"dims\":%zu,\"ms_per_query\":%.4f,\"sink\":%.3f}\n", n, dims,
         (cpu_now() - t0) / queries * 1000, sink);
  free(rows);
  free(q);
  free(best);
  return 0;
}
