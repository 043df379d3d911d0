/*
 * json_scan.c: the JSON scanner (json.h). Plain C: no Lua, and no
 * allocation except the copy strtod needs of a number longer than 64 bytes.
 *
 * It checks each token as strictly as JSON's grammar asks: UTF-8, control
 * characters, escapes (four hex digits; surrogates in pairs unless a
 * BT_JSON_LONE_* flag takes lone ones), numbers ("01", "1.", "-.5" are
 * refused; any length is fine) and literals.
 */
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

const unsigned char bt_json_byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 DEL is plain */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

const char *bt_json_error_message(bt_json_error e) {
  switch (e) {
  case BT_JSON_OK: return "ok";
  case BT_JSON_E_SYNTAX: return "malformed JSON";
  case BT_JSON_E_EMPTY: return "empty JSON text";
  case BT_JSON_E_TRAILING: return "trailing garbage after JSON value";
  case BT_JSON_E_BYTE: return "unexpected byte";
  case BT_JSON_E_DEPTH: return "nesting too deep";
  case BT_JSON_E_NUMBER: return "invalid number";
  case BT_JSON_E_RANGE: return "number out of range";
  case BT_JSON_E_UNTERMINATED: return "unterminated string";
  case BT_JSON_E_CONTROL: return "control character in string";
  case BT_JSON_E_UTF8: return "invalid UTF-8 in string";
  case BT_JSON_E_ESCAPE: return "invalid escape in string";
  case BT_JSON_E_HEX: return "invalid \\u escape";
  case BT_JSON_E_SURROGATE: return "lone surrogate in \\u escape";
  case BT_JSON_E_NOMEM: return "not enough memory";
  }
  return "cannot decode JSON";
}

/* ------------------------------------------------------------------ */
/* UTF-8                                                              */
/* ------------------------------------------------------------------ */

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* The second-byte ranges are what reject overlongs (E0, F0), surrogates
 * (ED) and code points past U+10FFFF (F4); see Unicode table 3-7. */
size_t bt_json_utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t len, i;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3;
  else if (c >= 0xF0 && c <= 0xF4) len = 4;
  else return 0;
  if (n < len) return 0;
  if (c == 0xE0) lo = 0xA0;
  else if (c == 0xED) hi = 0x9F;
  else if (c == 0xF0) lo = 0x90;
  else if (c == 0xF4) hi = 0x8F;
  if (p[1] < lo || p[1] > hi) return 0;
  for (i = 2; i < len; i++)
    if (!is_cont(p[i])) return 0;
  return len;
}

/* ------------------------------------------------------------------ */
/* Scanner state                                                      */
/* ------------------------------------------------------------------ */

void bt_json_scan_init(bt_json_scanner *sc, const char *s, size_t len, unsigned flags) {
  memset(sc, 0, sizeof *sc);
  sc->s = (const unsigned char *)s;
  sc->len = len;
  sc->flags = flags;
}

int bt_json_fail(bt_json_scanner *sc, bt_json_error code, size_t pos) {
  sc->code = code;
  sc->pos = pos;
  sc->with_pos = 1;
  return 0;
}

int bt_json_fail_nopos(bt_json_scanner *sc, bt_json_error code) {
  sc->code = code;
  sc->with_pos = 0;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Strings                                                            */
/* ------------------------------------------------------------------ */

static long hex4(const unsigned char *s, size_t n, size_t at) {
  long v = 0;
  size_t i;
  if (at + 4 > n) return -1;
  for (i = at; i < at + 4; i++) {
    unsigned char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* The low half that pairs with a high surrogate at s[i] (its backslash), or
 * -1: it must be the very next escape. */
static long low_half(const unsigned char *s, size_t n, size_t i) {
  long lo;
  if (i + 12 > n || s[i + 6] != '\\' || s[i + 7] != 'u') return -1;
  lo = hex4(s, n, i + 8);
  return lo >= 0xDC00 && lo <= 0xDFFF ? lo : -1;
}

/* A \u escape at *i (the backslash). A surrogate needs its other half,
 * unless a BT_JSON_LONE_* flag lets it stand alone. */
static int scan_unicode_escape(bt_json_scanner *sc, size_t *i) {
  long cp = hex4(sc->s, sc->len, *i + 2);
  if (cp < 0) return bt_json_fail(sc, BT_JSON_E_HEX, *i);
  if (cp >= 0xD800 && cp <= 0xDBFF && low_half(sc->s, sc->len, *i) >= 0) {
    *i += 12;
    return 1;
  }
  if (cp >= 0xD800 && cp <= 0xDFFF) {
    if (!(sc->flags & (BT_JSON_LONE_WTF8 | BT_JSON_LONE_REPLACE)))
      return bt_json_fail(sc, BT_JSON_E_SURROGATE, *i);
    sc->lone++;
  }
  *i += 6;
  return 1;
}

static int scan_escape(bt_json_scanner *sc, size_t *i) {
  sc->escaped = 1;
  if (*i + 1 >= sc->len) return bt_json_fail(sc, BT_JSON_E_UNTERMINATED, *i);
  switch (sc->s[*i + 1]) {
  case '"':
  case '\\':
  case '/':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't': *i += 2; return 1;
  case 'u': return scan_unicode_escape(sc, i);
  default: return bt_json_fail(sc, BT_JSON_E_ESCAPE, *i);
  }
}

int bt_json_scan_string_from(bt_json_scanner *sc, size_t i) {
  const unsigned char *s = sc->s;
  const unsigned char *cls = bt_json_byte_class;
  size_t n = sc->len;
  sc->escaped = 0;
  for (;;) {
    unsigned char c;
    /* four plain bytes a step: most of a chunk's bytes are in strings */
    while (i + 4 <= n && (cls[s[i]] | cls[s[i + 1]] | cls[s[i + 2]] | cls[s[i + 3]]) == 0) i += 4;
    while (i < n && cls[s[i]] == 0) i++;
    if (i >= n) return bt_json_fail(sc, BT_JSON_E_UNTERMINATED, sc->pos);
    c = s[i];
    if (c == '"') {
      sc->pos = i + 1;
      return 1;
    } else if (c == '\\') {
      if (!scan_escape(sc, &i)) return 0;
    } else if (c < 0x20) {
      return bt_json_fail(sc, BT_JSON_E_CONTROL, i);
    } else {
      size_t k = bt_json_utf8_len(s + i, n - i);
      if (k == 0) return bt_json_fail(sc, BT_JSON_E_UTF8, i);
      i += k;
    }
  }
}

/* UTF-8 for a code point below 0x110000 (surrogates give their 3-byte
 * generalized form); returns the bytes written. */
static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The code point of the \u escape at in[*i], its pair included; *i moves
 * past it. A lone surrogate stays itself or, under LONE_REPLACE, U+FFFD. */
static unsigned long take_unicode(const unsigned char *in, size_t n, size_t *i, unsigned flags) {
  unsigned long cp = (unsigned long)hex4(in, n, *i + 2);
  long lo = cp >= 0xD800 && cp <= 0xDBFF ? low_half(in, n, *i) : -1;
  *i += 6;
  if (lo >= 0) {
    *i += 6;
    return 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
  }
  if (cp >= 0xD800 && cp <= 0xDFFF && (flags & BT_JSON_LONE_REPLACE)) return 0xFFFD;
  return cp;
}

size_t bt_json_unescape(const unsigned char *in, size_t n, unsigned flags, char *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    const unsigned char *bs = memchr(in + i, '\\', n - i);
    size_t run = bs ? (size_t)(bs - in) - i : n - i;
    memcpy(out + o, in + i, run);
    o += run;
    i += run;
    if (i >= n) break;
    switch (in[i + 1]) {
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': o += put_utf8(out + o, take_unicode(in, n, &i, flags)); continue;
    default: out[o++] = (char)in[i + 1]; /* '"', '\\' or '/' */
    }
    i += 2;
  }
  return o;
}

/* ------------------------------------------------------------------ */
/* Numbers                                                            */
/* ------------------------------------------------------------------ */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(const unsigned char *s, size_t n, size_t i) {
  while (i < n && is_digit(s[i])) i++;
  return i;
}

/* What may not follow a number: it would make a longer, invalid one. */
static int number_byte(unsigned char c) {
  return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

int bt_json_scan_number_full(bt_json_scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, start = sc->pos, i = start;
  sc->integral = 1;
  if (s[i] == '-') i++;
  if (i < n && s[i] == '0') i++;
  else if (i < n && is_digit(s[i])) i = skip_digits(s, n, i);
  else return bt_json_fail(sc, BT_JSON_E_NUMBER, start);
  if (i < n && s[i] == '.') {
    if (!(i + 1 < n && is_digit(s[i + 1]))) return bt_json_fail(sc, BT_JSON_E_NUMBER, start);
    i = skip_digits(s, n, i + 1);
    sc->integral = 0;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (!(i < n && is_digit(s[i]))) return bt_json_fail(sc, BT_JSON_E_NUMBER, start);
    i = skip_digits(s, n, i);
    sc->integral = 0;
  }
  if (i < n && number_byte(s[i])) return bt_json_fail(sc, BT_JSON_E_NUMBER, start);
  sc->pos = i;
  return 1;
}

/* An integer literal of at most 19 digits into *out, exactly; 0 when it
 * does not fit in a long long. */
static int exact_integer(const unsigned char *p, size_t n, long long *out) {
  size_t neg = p[0] == '-', i;
  unsigned long long u = 0, limit = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
  if (n - neg > 19) return 0;
  for (i = neg; i < n; i++) u = u * 10 + (unsigned)(p[i] - '0'); /* 19 digits fit a u64 */
  if (u > limit) return 0;
  /* via unsigned, so LLONG_MIN comes out without overflow */
  *out = neg ? (long long)(0ULL - u) : (long long)u;
  if (neg && u == 9223372036854775808ULL) *out = -9223372036854775807LL - 1;
  return 1;
}

/* p[0, n) into out (room for 4n + 1 bytes), NUL-terminated, with '.' as
 * the dpn bytes of dp. */
static void number_text(const unsigned char *p, size_t n, const char *dp, size_t dpn, char *out) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (p[i] == '.' && dpn > 0) {
      memcpy(out, dp, dpn);
      out += dpn;
    } else {
      *out++ = (char)p[i];
    }
  }
  *out = '\0';
}

/*
 * strtod of p[0, n) under the C locale's decimal point, whatever it is (a
 * host may have called setlocale(LC_NUMERIC, "de_DE")). A number longer
 * than the stack copy is copied to the heap: any length is valid JSON.
 */
static bt_json_error locale_strtod(const unsigned char *p, size_t n, double *out) {
  char small[64 * 4 + 1];
  char *tmp = small;
  const char *dp = localeconv()->decimal_point;
  size_t dpn = (dp != NULL && *dp != '\0' && strlen(dp) <= 4) ? strlen(dp) : 0;
  if (n > 64 && (n > ((size_t)-1 - 1) / 4 || (tmp = (char *)malloc(n * 4 + 1)) == NULL))
    return BT_JSON_E_NOMEM;
  number_text(p, n, dp, dpn, tmp);
  *out = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  return BT_JSON_OK;
}

bt_json_error bt_json_number_slow(const unsigned char *p, size_t n, int integral,
                                  bt_json_number *out) {
  bt_json_error e;
  out->is_int = 0;
  out->i = 0;
  if (integral && exact_integer(p, n, &out->i)) {
    out->is_int = 1;
    out->d = (double)out->i; /* "-0" is 0: a zero has no sign */
    return BT_JSON_OK;
  }
  if ((e = locale_strtod(p, n, &out->d)) != BT_JSON_OK) return e;
  if (isnan(out->d) || isinf(out->d)) return BT_JSON_E_RANGE;
  if (out->d == 0) out->d = 0; /* -0.0, "-1e-400": a zero has no sign */
  return BT_JSON_OK;
}

/* ------------------------------------------------------------------ */
/* Whole documents                                                    */
/* ------------------------------------------------------------------ */

/* Open containers, one bit each (1: object), for the iterative walk. */
typedef struct {
  unsigned char bits[BT_JSON_MAX_DEPTH / 8 + 1];
} open_stack;

static int top_is_object(const bt_json_scanner *sc, const open_stack *st) {
  int d = sc->depth - 1;
  return (st->bits[d >> 3] >> (d & 7)) & 1;
}

/* A scalar at pos; a number's value is checked too (its range). */
static int scan_scalar(bt_json_scanner *sc) {
  size_t start = sc->pos;
  unsigned char c = bt_json_peek(sc);
  bt_json_number num;
  bt_json_error e;
  switch (c) {
  case '"': return bt_json_scan_string(sc);
  case 't': return bt_json_scan_literal(sc, "true", 4);
  case 'f': return bt_json_scan_literal(sc, "false", 5);
  case 'n': return bt_json_scan_literal(sc, "null", 4);
  default: break;
  }
  if (c != '-' && !is_digit(c)) {
    if (sc->pos < sc->len && (c < 0x20 || c >= 0x80))
      return bt_json_fail(sc, BT_JSON_E_BYTE, sc->pos);
    return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  }
  if (!bt_json_scan_number(sc)) return 0;
  e = bt_json_number_value(sc->s + start, sc->pos - start, sc->integral, &num);
  if (e == BT_JSON_E_RANGE) return bt_json_fail(sc, e, start);
  if (e != BT_JSON_OK) return bt_json_fail_nopos(sc, e);
  return 1;
}

/* An object member's name and colon, at pos. */
static int scan_name(bt_json_scanner *sc) {
  if (bt_json_peek(sc) != '"') return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  if (!bt_json_scan_string(sc)) return 0;
  bt_json_skip_space(sc);
  if (bt_json_peek(sc) != ':') return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  sc->pos++;
  bt_json_skip_space(sc);
  return 1;
}

/* Opens the container at pos; 1 if it is empty and already closed. */
static int scan_open(bt_json_scanner *sc, open_stack *st, int *closed) {
  int obj = bt_json_peek(sc) == '{', d = sc->depth;
  if (d >= BT_JSON_MAX_DEPTH) return bt_json_fail_nopos(sc, BT_JSON_E_DEPTH);
  if (obj) st->bits[d >> 3] |= (unsigned char)(1u << (d & 7));
  else st->bits[d >> 3] &= (unsigned char)~(1u << (d & 7));
  sc->depth++;
  sc->pos++;
  bt_json_skip_space(sc);
  *closed = bt_json_peek(sc) == (obj ? '}' : ']');
  if (*closed) {
    sc->pos++;
    sc->depth--;
  } else if (obj && !scan_name(sc)) {
    return 0;
  }
  return 1;
}

/* After a value: ',' and the next member's name, or closing brackets.
 * Returns 1 when a value is due next, 2 when the text is complete. */
static int scan_after_value(bt_json_scanner *sc, const open_stack *st) {
  for (;;) {
    unsigned char c;
    bt_json_skip_space(sc);
    if (sc->depth == 0) return 2;
    c = bt_json_peek(sc);
    if (c == ',') {
      sc->pos++;
      bt_json_skip_space(sc);
      return top_is_object(sc, st) ? scan_name(sc) : 1;
    }
    if (c != (top_is_object(sc, st) ? '}' : ']'))
      return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
    sc->pos++;
    sc->depth--;
  }
}

int bt_json_scan_document(bt_json_scanner *sc) {
  open_stack st = {{0}};
  int rc = 1;
  bt_json_skip_space(sc);
  if (sc->pos == sc->len) return bt_json_fail_nopos(sc, BT_JSON_E_EMPTY);
  while (rc == 1) {
    unsigned char c = bt_json_peek(sc);
    int closed = 1;
    if (c == '{' || c == '[') {
      if (!scan_open(sc, &st, &closed)) return 0;
    } else if (!scan_scalar(sc)) {
      return 0;
    }
    rc = closed ? scan_after_value(sc, &st) : 1;
  }
  if (rc == 0) return 0;
  if (sc->pos != sc->len) return bt_json_fail(sc, BT_JSON_E_TRAILING, sc->pos);
  return 1;
}
