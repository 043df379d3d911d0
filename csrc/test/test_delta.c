/*
 * test_delta.c: unit tests for the text fast path's extractor (delta.c),
 * built with ASan + UBSan by `make test-c`:
 *
 *   cc -std=c99 -g -fsanitize=address,undefined -Icsrc \
 *     -o build/test_delta csrc/test/test_delta.c csrc/delta.c csrc/json_scan.c
 *
 * Every input sits right before a PROT_NONE page, so a read one byte past
 * it faults. Each accepted chunk is checked field by field; each refused
 * one, and every proper prefix of every accepted one, must fall back.
 */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#define BT_TEST_GUARD
#include "test_util.h"

static int extract(const char *s, size_t n, bt_delta *d) {
  return bt_delta_extract(guarded(s, n), n, d);
}

/* The token of field k as text ("" when absent). */
static const char *token(const char *s, const bt_delta *d, int k) {
  static char buf[256];
  size_t n = d->f[k].len < sizeof buf - 1 ? d->f[k].len : sizeof buf - 1;
  memcpy(buf, s + d->f[k].off, n);
  buf[n] = '\0';
  return buf;
}

#define H "\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":17,\"model\":\"m\","

/* An accepted chunk and the token of each field it names ("" absent). */
static const struct {
  const char *text;
  int choice;
  const char *content, *rc, *reasoning, *refusal, *finish, *role, *usage, *created;
  int content_escaped;
} accepted[] = {
    {"{" H "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}", 1,
     "\"Hi\"", "", "", "", "", "", "", "17", 0},
    {"{" H "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}", 1,
     "\"\"", "", "", "", "", "\"assistant\"", "", "17", 0},
    {"{\"choices\":[{\"delta\":{\"content\":\"a\\nb\\u00e9\"},\"logprobs\":null}]}", 1,
     "\"a\\nb\\u00e9\"", "", "", "", "", "", "", "", 1},
    {"{\"choices\":[{\"index\":null,\"delta\":{\"reasoning_content\":\"r\",\"reasoning\":\"s\","
     "\"refusal\":\"no\",\"tool_calls\":[ ]},\"finish_reason\":\"stop\",\"stop_reason\":null}]}",
     1, "", "\"r\"", "\"s\"", "\"no\"", "\"stop\"", "", "", "", 0},
    {"{" H "\"choices\":[],\"usage\":{\"total_tokens\":3,\"d\":{\"x\":[\"}]\"]}}}", 0, "", "", "",
     "", "", "", "{\"total_tokens\":3,\"d\":{\"x\":[\"}]\"]}}", "17", 0},
    {" {\"choices\" : null , \"usage\" : null, \"created\": -1.5e3 } \n", 0, "", "", "", "", "", "",
     "", "-1.5e3", 0},
    {"{}", 0, "", "", "", "", "", "", "", "", 0},
    {"{\"choices\":[{}],\"x\":true,\"y\":false,\"z\":1,\"w\":\"s\"}", 1, "", "", "", "", "", "", "",
     "", 0},
    {"{\"choices\":[{\"delta\":null,\"index\":0}]}", 1, "", "", "", "", "", "", "", "", 0},
    {"{\"choices\":[{\"delta\":{\"content\":\"\\ud83d\\ude00\"}}]}", 1, "\"\\ud83d\\ude00\"", "",
     "", "", "", "", "", "", 1},
};

static void test_accepted(void) {
  size_t i;
  for (i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
    const char *s = accepted[i].text;
    size_t n = strlen(s), cut;
    bt_delta d;
    if (!extract(s, n, &d)) {
      ok(0, "accepted", s);
      continue;
    }
    s = guarded(s, n);
    ok(d.choice == accepted[i].choice, "choice", accepted[i].text);
    ok(strcmp(token(s, &d, BT_D_CONTENT), accepted[i].content) == 0, "content", accepted[i].text);
    ok(d.f[BT_D_CONTENT].escaped == accepted[i].content_escaped, "escaped", accepted[i].text);
    ok(strcmp(token(s, &d, BT_D_REASONING_CONTENT), accepted[i].rc) == 0, "rc", accepted[i].text);
    ok(strcmp(token(s, &d, BT_D_REASONING), accepted[i].reasoning) == 0, "reasoning", s);
    ok(strcmp(token(s, &d, BT_D_REFUSAL), accepted[i].refusal) == 0, "refusal", s);
    ok(strcmp(token(s, &d, BT_D_FINISH), accepted[i].finish) == 0, "finish", s);
    ok(strcmp(token(s, &d, BT_D_ROLE), accepted[i].role) == 0, "role", s);
    ok(strcmp(token(s, &d, BT_D_USAGE), accepted[i].usage) == 0, "usage", s);
    ok(strcmp(token(s, &d, BT_D_CREATED), accepted[i].created) == 0, "created", s);
    /* a chunk cut short is never taken (a trailing space cut is still whole) */
    for (cut = 0; cut < n; cut++) {
      const char *t = accepted[i].text;
      int whole = t[cut] == ' ' || t[cut] == '\n';
      size_t k;
      for (k = cut; whole && k < n; k++) whole = t[k] == ' ' || t[k] == '\n';
      if (!whole) ok(!extract(t, cut, &d), "prefix falls back", t);
    }
  }
}

static const char *const refused[] = {
    "",
    "[]",
    "\"s\"",
    "{\"error\":{\"message\":\"x\"}}",
    "{\"error\":null}",
    "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}}]}",
    "{\"choices\":[{\"index\":0.0}]}",
    "{\"choices\":[{\"index\":00}]}",
    "{\"choices\":[{\"index\":\"0\"}]}",
    "{\"choices\":[{},{}]}",
    "{\"choices\":[1]}",
    "{\"choices\":{}}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
    "{\"choices\":[{\"logprobs\":{\"content\":[]}}]}",
    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}",
    "{\"choices\":[{\"delta\":{\"content\":1}}]}",
    "{\"choices\":[{\"delta\":{\"role\":false}}]}",
    "{\"choices\":[{\"delta\":\"x\"}]}",
    "{\"choices\":[{\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}",
    "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"delta\":{}}]}",
    "{\"choices\":[],\"choices\":[]}",
    "{\"choices\":[{\"delta\":{\"con\\u0074ent\":\"x\"}}]}",
    "{\"choices\":[{\"delta\":{\"content\":\"\\ud83d\"}}]}",
    "{\"x\":\"\\udc00\",\"choices\":[]}",
    "{\"choices\":[{\"delta\":{\"content\":\"x\",\"extra\":{}}}]}",
    "{\"extra\":[],\"choices\":[]}",
    "{\"usage\":1}",
    "{\"usage\":{\"a\":1}",
    "{\"created\":\"now\"}",
    "{\"created\":1e999}",
    "{\"id\":1}",
    "{\"finish_reason\":\"stop\",}",
    "{\"choices\":[]} x",
    "{\"choices\":[]}{}",
    "{\"a\":\"\xff\"}",
    "{\"a\":\"\\q\"}",
    "{\"a\":tru}",
    "{\"a\":01}",
    "\xef\xbb\xbf{}",
    "{'a':1}",
};

static void test_refused(void) {
  size_t i;
  for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    bt_delta d;
    ok(!extract(refused[i], strlen(refused[i]), &d), "falls back", refused[i]);
  }
}

/* A deep usage is only located (the decoder judges it); one past the
 * depth limit falls back at once. */
static void test_depth(void) {
  static char s[2 * BT_JSON_MAX_DEPTH + 64];
  bt_delta d;
  int depth, i;
  for (depth = BT_JSON_MAX_DEPTH; depth <= BT_JSON_MAX_DEPTH + 1; depth++) {
    size_t n = 0;
    n += (size_t)sprintf(s + n, "{\"usage\":");
    for (i = 0; i < depth; i++) s[n++] = '{';
    for (i = 0; i < depth; i++) s[n++] = '}';
    s[n++] = '}';
    ok(extract(s, n, &d) == (depth <= BT_JSON_MAX_DEPTH), "usage depth", NULL);
  }
}

int main(void) {
  guard_init();
  test_accepted();
  test_refused();
  test_depth();
  printf("delta: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
