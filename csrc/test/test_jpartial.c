/*
 * test_jpartial.c: unit tests for the resumable JSON parser (jpartial.c),
 * built with ASan + UBSan by `make test-c`:
 *
 *   cc -std=c99 -g -fsanitize=address,undefined -Icsrc -o build/test_jpartial \
 *     csrc/test/test_jpartial.c csrc/jpartial.c csrc/json_scan.c csrc/buf.c
 *   ./build/test_jpartial csrc/fuzz/corpus/json
 *
 * Every text (the ones below, the JSON corpus given as arguments, generated
 * values and their mutations) under each lone-surrogate rule goes through
 * jpartial_oracle.h: every 2-way split, 1-byte pieces and random multi-way
 * splits against the prefixes fed whole, and the whole against the
 * decoder's scanner. Then what the oracle does not see: the work a growing
 * string costs, depth limits, indices.
 */
#define _DEFAULT_SOURCE /* opendir under -std=c99 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpartial.h"
#include "jpartial_oracle.h"
#include "test_util.h"

static unsigned long rng = 12345;
static unsigned rnd(unsigned n) {
  rng = rng * 6364136223846793005ul + 1442695040888963407ul;
  return (unsigned)((rng >> 33) % n);
}

static const unsigned flag_sets[] = {0, BT_JSON_LONE_WTF8, BT_JSON_LONE_REPLACE};

/* The oracle on one text under one flag set. */
static void check_text(const char *s, size_t n, unsigned flags, const char *name) {
  jo_ref r;
  const char *why;
  size_t k, *cuts = malloc((n + 2) * sizeof *cuts);
  size_t step = n > 600 ? n / 300 : 1; /* long texts: 300 of the 2-way splits */
  int i, j;
  if (cuts == NULL) abort();
  jo_ref_make(&r, s, n, flags);
  why = jo_check_ref(&r, s, n, flags);
  for (k = 0; why == NULL && k <= n; k += step) {
    cuts[0] = k;
    cuts[1] = n;
    why = jo_check_split(&r, s, cuts, 2, flags);
  }
  for (k = 0; k < n; k++) cuts[k] = k + 1; /* 1-byte pieces */
  if (why == NULL && n > 0) why = jo_check_split(&r, s, cuts, (int)n, flags);
  for (i = 0; why == NULL && i < 20; i++) { /* random multi-way splits */
    size_t at = 0;
    j = 0;
    while (at < n) {
      at += 1 + rnd(i % 2 ? 3 : 12);
      if (at > n) at = n;
      cuts[j++] = at;
    }
    if (j > 0) why = jo_check_split(&r, s, cuts, j, flags);
  }
  ok(why == NULL, name, why);
  if (why != NULL)
    printf("  text (%lu bytes, flags %u): %.*s\n", (unsigned long)n, flags,
           (int)(n > 200 ? 200 : n), s);
  jo_ref_free(&r);
  free(cuts);
}

static void check_all_flags(const char *s, size_t n, const char *name) {
  size_t f;
  for (f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++) check_text(s, n, flag_sets[f], name);
}

/* ---- texts ---- */

static const char *const texts[] = {
    "{\"mood\":\"happy\",\"say\":\"Hello th\\u00e9re \\ud83d\\ude00 w\xc3\xa9!\"}",
    "[1,2.5,-3e2,1E+2,0.0e-0,-0,true,false,null,{\"a\":null},[],{}]",
    "  \"abc\"  ",
    "123",
    "-0.5",
    "1e400",
    "-",
    "1.",
    "01",
    "0x1",
    "1.5.3",
    "1e5e",
    "- 1",
    "[1 2]",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{1:2}",
    "[tru]",
    "[nul",
    "truex",
    "true false",
    "\"\\uD800\"",
    "\"\\uD800\\u0041\"",
    "\"\\uD800\\uDC00\"",
    "\"\\uDC00\"",
    "\"\\uD800\\\"",
    "\"\\uD800\\uD800\\uDC00\"",
    "\"\\uD800\\n\"",
    "\"\\uD800\\uZZ\"",
    "\"\\uD800\\",
    "\"\\uD8",
    "\"\\x\"",
    "\"\\u12G4\"",
    "\"a\x01\"",
    "\"\xc3\x28\"",
    "\"\xe0\x80\x80\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xf0\x9f\x98\x80\"",
    "\"\xc3",
    "{\"a\":\"x\xc3",
    "\x80",
    "\x01",
    "",
    "   ",
    "[",
    "{",
    "{\"a\"",
    "{\"a\":",
    "[1,",
    "[\"a\",\"b\"",
    "{\"a\":{\"b\":[1,{\"c\":\"",
    "[[[[[[[[[[]]]]]]]]]]",
    "{\"\":\"\",\"\\u0000\":\"\\u0000\"}",
    "{\"a\":1,\"a\":2,\"a\":null}",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
    "[1]x",
    "[1] ]",
    "12345678901234567890123",
    "-9223372036854775808",
    "9223372036854775807",
    "0.1e1",
    "[1e-400]",
};

/* A random value, written into b; depth bounds the nesting. */
static void gen_value(bt_buf *b, int depth);

static void put(bt_buf *b, const char *s) {
  if (bt_buf_append(b, s, strlen(s)) != 0) abort();
}

static void gen_string(bt_buf *b) {
  static const char *const parts[] = {"a",
                                      "Hello",
                                      " ",
                                      "\\n",
                                      "\\\"",
                                      "\\u00e9",
                                      "\\ud83d\\ude00",
                                      "\xc3\xa9",
                                      "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80",
                                      "\\/",
                                      "\\u0000",
                                      "\\uDBFF\\uDFFF",
                                      "x",
                                      "\\t",
                                      "tab\\t"};
  unsigned i, n = rnd(6);
  put(b, "\"");
  for (i = 0; i < n; i++) put(b, parts[rnd(sizeof parts / sizeof parts[0])]);
  put(b, "\"");
}

static void gen_value(bt_buf *b, int depth) {
  static const char *const scalars[] = {"0",     "-1",   "42",       "3.25",
                                        "-0.0",  "1e3",  "2E-2",     "true",
                                        "false", "null", "1.5e+300", "12345678901234567890",
                                        "-7"};
  unsigned i, n, kind = depth > 0 ? rnd(5) : 2 + rnd(3);
  if (kind == 0 || kind == 1) {
    n = rnd(5);
    put(b, kind == 0 ? "{" : "[");
    for (i = 0; i < n; i++) {
      if (i > 0) put(b, rnd(3) ? "," : " , ");
      if (kind == 0) {
        gen_string(b);
        put(b, rnd(2) ? ":" : " :\n ");
      }
      gen_value(b, depth - 1);
    }
    put(b, kind == 0 ? "}" : "]");
  } else if (kind == 2) {
    gen_string(b);
  } else {
    put(b, scalars[rnd(sizeof scalars / sizeof scalars[0])]);
  }
}

static void check_generated(int count) {
  int i;
  for (i = 0; i < count; i++) {
    bt_buf b = BT_BUF_INIT;
    gen_value(&b, 4);
    check_all_flags(b.p, b.len, "generated value");
    if (b.len > 0) { /* a mutation: a byte changed, or the text cut */
      char *m = malloc(b.len);
      size_t at = rnd((unsigned)b.len);
      if (m == NULL) abort();
      memcpy(m, b.p, b.len);
      m[at] = "\"\\{}[],:0e.-u\x80 "[rnd(16)];
      check_text(m, b.len, flag_sets[rnd(3)], "mutated value");
      check_text(m, at, flag_sets[rnd(3)], "cut value");
      free(m);
    }
    bt_buf_free(&b);
  }
}

static void check_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  ok(d != NULL, "the corpus directory opens", dir);
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL) {
    char path[4096];
    FILE *f;
    char *s;
    long n;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if ((f = fopen(path, "rb")) == NULL) continue;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    check_all_flags(s, (size_t)n, path);
    free(s);
  }
  closedir(d);
}

/* ---- what the oracle does not cover ---- */

/* A 1 MB string in 1 KB pieces: one event per piece (not per byte; the
 * first piece gives the object, the name and the empty string), and
 * the buffer grows by doubling, so the copies total O(n). */
static void check_growing_string(void) {
  static char piece[1024];
  jp_parser p;
  jp_event ev;
  int i, events = 0, rc = 0;
  memset(piece, 'x', sizeof piece);
  jp_init(&p, 0, 10);
  jp_input(&p, "{\"say\":\"", 8);
  while (jp_next(&p, &ev) == JP_EVENT) events++;
  for (i = 0; i < 1024; i++) {
    jp_input(&p, piece, sizeof piece);
    while ((rc = jp_next(&p, &ev)) == JP_EVENT) {
      events++;
      if (ev.type != JP_STRING || ev.done || ev.n != (size_t)(i + 1) * sizeof piece) rc = -9;
    }
    if (rc != JP_MORE) break;
  }
  ok(rc == JP_MORE && events == 3 + 1024, "a growing string: one event per piece", NULL);
  jp_free(&p);
}

static void check_depth(void) {
  jp_parser p;
  jp_event ev;
  int rc;
  jp_init(&p, 0, 3);
  jp_input(&p, "[[[1]]]", 7);
  while ((rc = jp_next(&p, &ev)) == JP_EVENT) continue;
  ok(rc == JP_MORE, "max_depth 3 takes three levels", NULL);
  jp_free(&p);
  jp_init(&p, 0, 3);
  jp_input(&p, "[[[[1]]]]", 9);
  while ((rc = jp_next(&p, &ev)) == JP_EVENT) continue;
  ok(rc == JP_ERROR && p.code == BT_JSON_E_DEPTH && p.err_pos == 3 && p.with_pos,
     "max_depth 3 refuses a fourth level, at its bracket", NULL);
  jp_free(&p);
}

static void check_indices(void) {
  jp_parser p;
  jp_event ev;
  size_t idx[8];
  int n = 0;
  jp_init(&p, 0, 10);
  jp_input(&p, "[\"a\",[],{},1,true,null]", 23);
  jp_end(&p);
  while (jp_next(&p, &ev) == JP_EVENT)
    if (ev.depth == 1 && ev.type != JP_END && n < 8) idx[n++] = ev.index;
  ok(n == 6 && idx[0] == 1 && idx[1] == 2 && idx[2] == 3 && idx[3] == 4 && idx[4] == 5 &&
         idx[5] == 6,
     "array elements carry their 1-based index", NULL);
  jp_free(&p);
}

/* A container's hint is the size of the one of its kind last closed at its
 * depth: the members of the record before, the elements of the list
 * before; 0 when the one before there was of the other kind. */
static void check_hints(void) {
  static const char text[] = "[{\"a\":1,\"b\":[1,2,3]},{\"b\":[4,5],\"c\":{}},{}]";
  jp_parser p;
  jp_event ev;
  size_t obj[4], arr[4];
  int no = 0, na = 0;
  jp_init(&p, 0, 10);
  jp_input(&p, text, sizeof text - 1);
  jp_end(&p);
  while (jp_next(&p, &ev) == JP_EVENT) {
    if (ev.type == JP_OBJECT && no < 4) obj[no++] = ev.hint;
    if (ev.type == JP_ARRAY && na < 4) arr[na++] = ev.hint;
  }
  ok(no == 4 && obj[0] == 0 && obj[1] == 2 && obj[2] == 0 && obj[3] == 2,
     "an object's hint: the members of the object last closed at its depth", NULL);
  ok(na == 3 && arr[0] == 0 && arr[1] == 0 && arr[2] == 3,
     "an array's hint: the elements of the array last closed at its depth", NULL);
  jp_free(&p);
}

int main(int argc, char **argv) {
  size_t i;
  int a;
  for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
    check_all_flags(texts[i], strlen(texts[i]), texts[i]);
  for (a = 1; a < argc; a++) check_dir(argv[a]);
  check_generated(300);
  check_growing_string();
  check_depth();
  check_indices();
  check_hints();
  printf("test_jpartial: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
