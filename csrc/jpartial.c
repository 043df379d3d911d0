/*
 * jpartial.c: the resumable JSON parser (jpartial.h). Plain C, no Lua.
 *
 * A state machine over bytes instead of the decoder's recursion: `mode` is
 * what may come next, a bit per open container says object or array, and a
 * token cut by the end of a piece (a string, an escape, a UTF-8 sequence, a
 * number, a literal) keeps what it has read in the parser, so the next piece
 * goes on from there. Errors name the byte json_scan.c names for the same
 * text, so a text fails here exactly where json.decode fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpartial.h"

enum { M_VALUE, M_KEY, M_COLON, M_AFTER, M_STRING, M_NUMBER, M_LITERAL };

/* Number states: after '-', after a leading 0, in the integer digits, after
 * '.', in the fraction, after 'e', after its sign, in the exponent. */
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

#define N_INVALID (-1) /* a number byte that cannot come here: "01", "1.e" */
#define N_ENDS (-2)    /* a byte that is not part of a number */

void jp_init(jp_parser *p, unsigned flags, int max_depth) {
  memset(p, 0, sizeof *p);
  p->flags = flags;
  p->max_depth = max_depth < 1 || max_depth > BT_JSON_MAX_DEPTH ? BT_JSON_MAX_DEPTH : max_depth;
  p->mode = M_VALUE;
}

void jp_free(jp_parser *p) {
  bt_buf_free(&p->str);
  bt_buf_free(&p->num);
  free(p->kind);
  free(p->count);
  free(p->last);
  p->kind = NULL;
  p->count = NULL;
  p->last = NULL;
  p->cap = 0;
}

void jp_end(jp_parser *p) { p->eof = 1; }

void jp_error_message(const jp_parser *p, char *out, size_t outlen) {
  const char *msg = bt_json_error_message(p->code);
  if (outlen == 0) return;
  if (p->with_pos) snprintf(out, outlen, "%s at byte %lu", msg, (unsigned long)p->err_pos + 1);
  else snprintf(out, outlen, "%s", msg);
}

static int fail(jp_parser *p, bt_json_error code, size_t at) {
  p->code = code;
  p->err_pos = at;
  p->with_pos = 1;
  return JP_ERROR;
}

static int fail_nopos(jp_parser *p, bt_json_error code) {
  p->code = code;
  p->err_pos = jp_offset(p);
  p->with_pos = 0;
  return JP_ERROR;
}

static int append(jp_parser *p, bt_buf *b, const void *s, size_t n) {
  if (bt_buf_append(b, s, n) != 0) return fail_nopos(p, BT_JSON_E_NOMEM);
  return 0;
}

/* An event for the value that just began or ended at the current depth. */
static int value_event(jp_parser *p, jp_event *ev, jp_type type) {
  ev->type = type;
  ev->depth = p->depth;
  ev->index = p->index;
  ev->s = NULL;
  ev->n = 0;
  ev->hint = 0;
  ev->done = 1;
  ev->fresh = 1;
  return JP_EVENT;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static long hex4(const unsigned char *s) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    unsigned char c = s[i];
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* ------------------------------------------------------------------ */
/* Strings                                                            */
/* ------------------------------------------------------------------ */

static void start_string(jp_parser *p, int is_key) {
  p->mode = M_STRING;
  p->is_key = is_key;
  p->dirty = !is_key; /* a value that has begun is shown, even empty */
  p->reported = 0;
  p->str.len = 0;
  p->esc_len = 0;
  p->u8_len = 0;
}

static int string_event(jp_parser *p, jp_event *ev, int done) {
  value_event(p, ev, JP_STRING);
  ev->s = p->str.p != NULL ? p->str.p : "";
  ev->n = p->str.len;
  ev->done = done;
  ev->fresh = !p->reported;
  p->reported = 1;
  p->dirty = 0;
  return JP_EVENT;
}

static int string_done(jp_parser *p, jp_event *ev) {
  if (!p->is_key) {
    p->mode = M_AFTER;
    return string_event(p, ev, 1);
  }
  ev->type = JP_KEY;
  ev->depth = p->depth;
  ev->index = 0;
  ev->s = p->str.p != NULL ? p->str.p : "";
  ev->n = p->str.len;
  ev->done = 1;
  p->mode = M_COLON;
  return JP_EVENT;
}

/* Appends the escape esc[0, n) decoded, as the decoder decodes it. */
static int put_escape(jp_parser *p, int n) {
  char out[8];
  size_t k = bt_json_unescape(p->esc, (size_t)n, p->flags, out);
  p->dirty = 1;
  return append(p, &p->str, out, k);
}

static int lone_allowed(const jp_parser *p) {
  return (p->flags & (BT_JSON_LONE_WTF8 | BT_JSON_LONE_REPLACE)) != 0;
}

/* esc holds a whole \uXXXX (esc_len 6): a character, a lone low half, or a
 * high half that waits for its pair. */
static int escape_unit(jp_parser *p) {
  long cp = hex4(p->esc + 2);
  if (cp >= 0xD800 && cp <= 0xDBFF) return 0;
  if (cp >= 0xDC00 && cp <= 0xDFFF && !lone_allowed(p))
    return fail(p, BT_JSON_E_SURROGATE, p->esc_at);
  p->esc_len = 0;
  return put_escape(p, 6);
}

/* The high half in esc[0, 6) has no low half after it: esc[6, esc_len) is
 * what came instead, and the byte at pos (not yet read) broke the pair, or
 * esc_len is 12 and the second escape is not a low half. */
static int lone_high(jp_parser *p) {
  int rest = p->esc_len - 6;
  if (!lone_allowed(p)) return fail(p, BT_JSON_E_SURROGATE, p->esc_at);
  if (put_escape(p, 6) != 0) return JP_ERROR;
  p->esc_at += 6;
  if (rest == 0) {
    p->esc_len = 0; /* the byte at pos is read afresh */
    return 0;
  }
  if (rest == 1) {
    p->esc_len = 1; /* a backslash: the byte at pos is its letter */
    return 0;
  }
  if (rest < 6) return fail(p, BT_JSON_E_HEX, p->esc_at);
  memmove(p->esc, p->esc + 6, 6);
  p->esc_len = 6;
  return escape_unit(p);
}

/* One byte of the escape whose backslash is esc[0]. */
static int step_escape(jp_parser *p) {
  unsigned char c = p->in[p->pos];
  int k = p->esc_len, ok;
  static const char simple[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
  const char *hit;
  if (k == 1) {
    if (c == 'u') {
      p->esc[p->esc_len++] = c;
      p->pos++;
      return 0;
    }
    if (c == 0 || (hit = strchr(simple, c)) == NULL) return fail(p, BT_JSON_E_ESCAPE, p->esc_at);
    p->pos++;
    p->esc_len = 0;
    p->dirty = 1;
    return append(p, &p->str, decoded + (hit - simple), 1);
  }
  if (k < 6) {
    if (!is_hex(c)) return fail(p, BT_JSON_E_HEX, p->esc_at);
    p->esc[p->esc_len++] = c;
    p->pos++;
    return p->esc_len == 6 ? escape_unit(p) : 0;
  }
  /* a high half read: "\uDC00".."\uDFFF" must follow at once */
  ok = k == 6 ? c == '\\' : k == 7 ? c == 'u' : is_hex(c);
  if (!ok) return lone_high(p);
  p->esc[p->esc_len++] = c;
  p->pos++;
  if (p->esc_len < 12) return 0;
  if (hex4(p->esc + 8) < 0xDC00 || hex4(p->esc + 8) > 0xDFFF) return lone_high(p);
  p->esc_len = 0;
  return put_escape(p, 12);
}

/* How long the UTF-8 sequence led by c is, or 0 if no sequence starts so. */
static int utf8_need(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

/* One more byte of the sequence in u8 (bt_json_utf8_len's ranges). */
static int step_utf8(jp_parser *p) {
  unsigned char c = p->in[p->pos], lead = p->u8[0], lo = 0x80, hi = 0xBF;
  if (p->u8_len == 1) {
    if (lead == 0xE0) lo = 0xA0;
    else if (lead == 0xED) hi = 0x9F;
    else if (lead == 0xF0) lo = 0x90;
    else if (lead == 0xF4) hi = 0x8F;
  }
  if (c < lo || c > hi) return fail(p, BT_JSON_E_UTF8, p->u8_at);
  p->u8[p->u8_len++] = c;
  p->pos++;
  if (p->u8_len < p->u8_need) return 0;
  p->u8_len = 0;
  p->dirty = 1;
  return append(p, &p->str, p->u8, (size_t)p->u8_need);
}

static int step_string(jp_parser *p, jp_event *ev) {
  const unsigned char *s = p->in, *cls = bt_json_byte_class;
  size_t i = p->pos, n = p->len;
  unsigned char c;
  if (p->esc_len > 0) return step_escape(p);
  if (p->u8_len > 0) return step_utf8(p);
  while (i + 4 <= n && (cls[s[i]] | cls[s[i + 1]] | cls[s[i + 2]] | cls[s[i + 3]]) == 0) i += 4;
  while (i < n && cls[s[i]] == 0) i++;
  if (i > p->pos) {
    if (append(p, &p->str, s + p->pos, i - p->pos) != 0) return JP_ERROR;
    p->dirty = 1;
    p->pos = i;
  }
  if (i == n) return 0;
  c = s[i];
  if (c == '"') {
    p->pos++;
    return string_done(p, ev);
  }
  if (c == '\\') {
    p->esc[0] = c;
    p->esc_len = 1;
    p->esc_at = jp_offset(p);
  } else if (c < 0x20) {
    return fail(p, BT_JSON_E_CONTROL, jp_offset(p));
  } else {
    if ((p->u8_need = utf8_need(c)) == 0) return fail(p, BT_JSON_E_UTF8, jp_offset(p));
    p->u8[0] = c;
    p->u8_len = 1;
    p->u8_at = jp_offset(p);
  }
  p->pos++;
  return 0;
}

/* The text ends inside a string: the decoder's error for that text. */
static int string_eof(jp_parser *p) {
  if (p->esc_len == 1) return fail(p, BT_JSON_E_UNTERMINATED, p->esc_at);
  if (p->esc_len > 1 && p->esc_len < 6) return fail(p, BT_JSON_E_HEX, p->esc_at);
  if (p->esc_len >= 6) { /* a high half, unpaired */
    if (!lone_allowed(p)) return fail(p, BT_JSON_E_SURROGATE, p->esc_at);
    if (p->esc_len == 7) return fail(p, BT_JSON_E_UNTERMINATED, p->esc_at + 6);
    if (p->esc_len > 7) return fail(p, BT_JSON_E_HEX, p->esc_at + 6);
  }
  if (p->u8_len > 0) return fail(p, BT_JSON_E_UTF8, p->u8_at);
  return fail(p, BT_JSON_E_UNTERMINATED, p->start);
}

/* ------------------------------------------------------------------ */
/* Numbers and literals                                               */
/* ------------------------------------------------------------------ */

static int num_next(int state, unsigned char c) {
  int digit = c >= '0' && c <= '9';
  int exp = c == 'e' || c == 'E', sign = c == '+' || c == '-';
  if (!digit && !exp && !sign && c != '.') return N_ENDS;
  switch (state) {
  case N_START:
    if (c == '-') return N_MINUS;
    /* fall through */
  case N_MINUS:
    if (c == '0') return N_ZERO;
    return digit ? N_INT : N_INVALID;
  case N_ZERO:
  case N_INT:
    if (digit) return state == N_INT ? N_INT : N_INVALID;
    if (c == '.') return N_DOT;
    return exp ? N_E : N_INVALID;
  case N_DOT: return digit ? N_FRAC : N_INVALID;
  case N_FRAC:
    if (digit) return N_FRAC;
    return exp ? N_E : N_INVALID;
  case N_E:
    if (sign) return N_ESIGN;
    /* fall through */
  case N_ESIGN:
  case N_EXP: return digit ? N_EXP : N_INVALID;
  default: return N_INVALID;
  }
}

static int num_complete(int state) {
  return state == N_ZERO || state == N_INT || state == N_FRAC || state == N_EXP;
}

/* The number in p->num has ended (it is complete): its value. Reads the
 * buffers only, so it may run on a copy of the parser (jpartial_lua.c's
 * result). */
static int number_done(jp_parser *p, jp_event *ev) {
  bt_json_error e;
  int integral = p->sub == N_ZERO || p->sub == N_INT;
  if (!num_complete(p->sub)) return fail(p, BT_JSON_E_NUMBER, p->start);
  e = bt_json_number_value((const unsigned char *)p->num.p, p->num.len, integral, &ev->num);
  if (e == BT_JSON_E_RANGE) return fail(p, e, p->start);
  if (e != BT_JSON_OK) return fail_nopos(p, e);
  p->mode = M_AFTER;
  return value_event(p, ev, JP_NUMBER);
}

static int step_number(jp_parser *p, jp_event *ev) {
  size_t from = p->pos;
  int next = N_ENDS;
  while (p->pos < p->len && (next = num_next(p->sub, p->in[p->pos])) >= 0) {
    p->sub = next;
    p->pos++;
  }
  if (p->pos > from && append(p, &p->num, p->in + from, p->pos - from) != 0) return JP_ERROR;
  if (next == N_INVALID) return fail(p, BT_JSON_E_NUMBER, p->start);
  if (p->pos == p->len) return 0;
  return number_done(p, ev);
}

static int step_literal(jp_parser *p, jp_event *ev) {
  while (p->pos < p->len && p->lit_i < p->lit_len) {
    if (p->in[p->pos] != (unsigned char)p->lit[p->lit_i])
      return fail(p, BT_JSON_E_SYNTAX, p->start);
    p->pos++;
    p->lit_i++;
  }
  if (p->lit_i < p->lit_len) return 0;
  p->mode = M_AFTER;
  return value_event(p, ev, p->lit[0] == 't' ? JP_TRUE : p->lit[0] == 'f' ? JP_FALSE : JP_NULL);
}

/* ------------------------------------------------------------------ */
/* Structure                                                          */
/* ------------------------------------------------------------------ */

static int grow_stack(jp_parser *p) {
  int cap = p->cap == 0 ? 16 : p->cap * 2;
  unsigned char *kind;
  size_t *count;
  if (cap > p->max_depth + 1) cap = p->max_depth + 1;
  kind = (unsigned char *)realloc(p->kind, (size_t)cap);
  if (kind == NULL) return fail_nopos(p, BT_JSON_E_NOMEM);
  memset(kind + p->cap, 0, (size_t)(cap - p->cap)); /* read for the hint before any opens */
  p->kind = kind;
  count = (size_t *)realloc(p->count, (size_t)cap * sizeof *count);
  if (count == NULL) return fail_nopos(p, BT_JSON_E_NOMEM);
  p->count = count;
  count = (size_t *)realloc(p->last, (size_t)cap * sizeof *count);
  if (count == NULL) return fail_nopos(p, BT_JSON_E_NOMEM);
  memset(count + p->cap, 0, (size_t)(cap - p->cap) * sizeof *count); /* none closed there yet */
  p->last = count;
  p->cap = cap;
  return 0;
}

static int open_container(jp_parser *p, unsigned char c, jp_event *ev) {
  if (p->depth >= p->max_depth) return fail(p, BT_JSON_E_DEPTH, jp_offset(p));
  if (p->depth + 1 >= p->cap && grow_stack(p) != 0) return JP_ERROR;
  value_event(p, ev, c == '{' ? JP_OBJECT : JP_ARRAY);
  if (p->kind[p->depth + 1] == (c == '{')) /* the container last there (none: last is 0) */
    ev->hint = p->last[p->depth + 1];
  p->pos++;
  p->depth++;
  p->kind[p->depth] = c == '{';
  p->count[p->depth] = 0;
  p->mode = c == '{' ? M_KEY : M_VALUE;
  p->sub = 1; /* the container may close at once */
  return JP_EVENT;
}

static int close_container(jp_parser *p, jp_event *ev) {
  p->last[p->depth] = p->count[p->depth];
  p->pos++;
  ev->type = JP_END;
  ev->depth = p->depth;
  ev->index = 0;
  p->depth--;
  p->mode = M_AFTER;
  return JP_EVENT;
}

static int begin_literal(jp_parser *p, const char *word) {
  p->mode = M_LITERAL;
  p->lit = word;
  p->lit_len = (int)strlen(word);
  p->lit_i = 0;
  return 0;
}

static int begin_value(jp_parser *p, unsigned char c, jp_event *ev) {
  size_t at = jp_offset(p);
  int in_array = p->depth > 0 && !p->kind[p->depth];
  p->seen = 1;
  p->start = at;
  p->index = in_array ? p->count[p->depth] + 1 : 0;
  if (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' || c == '-' ||
      (c >= '0' && c <= '9')) {
    if (p->depth > 0) p->count[p->depth]++;
  }
  switch (c) {
  case '"':
    p->pos++;
    start_string(p, 0);
    return 0;
  case '{':
  case '[': return open_container(p, c, ev);
  case 't': return begin_literal(p, "true");
  case 'f': return begin_literal(p, "false");
  case 'n': return begin_literal(p, "null");
  default: break;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    p->mode = M_NUMBER;
    p->sub = N_START;
    p->num.len = 0;
    return 0;
  }
  return fail(p, c < 0x20 || c >= 0x80 ? BT_JSON_E_BYTE : BT_JSON_E_SYNTAX, at);
}

static int step_structure(jp_parser *p, jp_event *ev) {
  unsigned char c = p->in[p->pos];
  int obj;
  if (is_space(c)) {
    p->pos++;
    return 0;
  }
  switch (p->mode) {
  case M_VALUE:
    if (c == ']' && p->sub) return close_container(p, ev);
    return begin_value(p, c, ev);
  case M_KEY:
    if (c == '}' && p->sub) return close_container(p, ev);
    if (c != '"') return fail(p, BT_JSON_E_SYNTAX, jp_offset(p));
    p->start = jp_offset(p);
    p->pos++;
    start_string(p, 1);
    return 0;
  case M_COLON:
    if (c != ':') return fail(p, BT_JSON_E_SYNTAX, jp_offset(p));
    p->pos++;
    p->mode = M_VALUE;
    p->sub = 0;
    return 0;
  default: /* M_AFTER */
    if (p->depth == 0) return fail(p, BT_JSON_E_TRAILING, jp_offset(p));
    obj = p->kind[p->depth];
    if (c == ',') {
      p->pos++;
      p->mode = obj ? M_KEY : M_VALUE;
      p->sub = 0;
      return 0;
    }
    if (c == (obj ? '}' : ']')) return close_container(p, ev);
    return fail(p, BT_JSON_E_SYNTAX, jp_offset(p));
  }
}

/* The input is used up. */
static int at_end(jp_parser *p, jp_event *ev) {
  if (p->mode == M_STRING && !p->is_key && p->dirty) return string_event(p, ev, 0);
  if (!p->eof) return JP_MORE;
  switch (p->mode) {
  case M_NUMBER: return number_done(p, ev);
  case M_LITERAL: return fail(p, BT_JSON_E_SYNTAX, p->start);
  case M_STRING: return string_eof(p);
  case M_AFTER:
    if (p->depth == 0) return JP_DONE;
    break;
  default:
    if (!p->seen) return fail_nopos(p, BT_JSON_E_EMPTY);
  }
  return fail(p, BT_JSON_E_SYNTAX, jp_offset(p));
}

int jp_next(jp_parser *p, jp_event *ev) {
  if (p->code != BT_JSON_OK) return JP_ERROR;
  for (;;) {
    int rc;
    if (p->pos >= p->len) return at_end(p, ev);
    switch (p->mode) {
    case M_STRING: rc = step_string(p, ev); break;
    case M_NUMBER: rc = step_number(p, ev); break;
    case M_LITERAL: rc = step_literal(p, ev); break;
    default: rc = step_structure(p, ev);
    }
    if (rc != 0) return rc;
  }
}
