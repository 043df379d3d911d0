/*
 * json.h: what the three parts of baseten.json share.
 *
 *   json_scan.c  a JSON scanner and validator in plain C (no Lua, no
 *                allocation but for the copy of a long number), so it can be
 *                unit-tested and fuzzed alone (csrc/test/test_json_scan.c,
 *                csrc/fuzz/fuzz_json_scan.c)
 *   json_dec.c   the decoder: one pass over the scanner's tokens, each made a
 *                Lua value at once (bt_json_push_decoded in bt.h)
 *   json_enc.c   the encoder (its limits: max_depth, sparse_ratio)
 *   json_mod.c   the array/object marks and the module table
 *
 * The scanner works token by token, so the decoder builds values while it
 * checks them (no second pass, no tree); bt_json_scan_document runs the same
 * tokens over a whole text without building anything.
 */
#ifndef BT_JSON_H
#define BT_JSON_H

#include <stddef.h>

#include "base.h"

/* Flags of bt_json_push_decoded (bt.h) and the scanner. */
/* An object member whose value is null is left out (a null in an array
 * stays json.null, so positions hold). */
#define BT_JSON_DROP_NULLS 1u
/* A lone \uD800-\uDFFF escape becomes its 3-byte generalized UTF-8 form
 * (ED A0..BF xx), so a later joiner can pair a high half ending one string
 * with a low half starting the next. */
#define BT_JSON_LONE_WTF8 2u
/* A lone surrogate becomes U+FFFD. */
#define BT_JSON_LONE_REPLACE 4u

/* Registry names of the mark metatables. */
#define BT_JSON_ARRAY_MT "baseten.json.array"
#define BT_JSON_OBJECT_MT "baseten.json.object"

/* Nesting limit of encode and decode alike. */
#define BT_JSON_MAX_DEPTH 1000

/* Why a scan failed; bt_json_error_message names each. */
typedef enum {
  BT_JSON_OK = 0,
  BT_JSON_E_SYNTAX,       /* a token where it may not be */
  BT_JSON_E_EMPTY,        /* nothing but whitespace */
  BT_JSON_E_TRAILING,     /* more after the value */
  BT_JSON_E_BYTE,         /* a control or non-ASCII byte outside strings */
  BT_JSON_E_DEPTH,        /* more than BT_JSON_MAX_DEPTH containers open */
  BT_JSON_E_NUMBER,       /* not JSON's number grammar ("01", "1.", "-") */
  BT_JSON_E_RANGE,        /* a number beyond a double */
  BT_JSON_E_UNTERMINATED, /* a string without its closing quote */
  BT_JSON_E_CONTROL,      /* a raw control character in a string */
  BT_JSON_E_UTF8,         /* ill-formed UTF-8 in a string */
  BT_JSON_E_ESCAPE,       /* a backslash and a letter JSON does not know */
  BT_JSON_E_HEX,          /* \u without four hex digits */
  BT_JSON_E_SURROGATE,    /* a lone surrogate, when that is an error */
  BT_JSON_E_NOMEM         /* no memory to copy a long number */
} bt_json_error;

BT_HIDDEN const char *bt_json_error_message(bt_json_error e);

/*
 * Byte classes for strings, shared by the encoder and the scanner: 0 plain
 * ASCII that needs nothing, 1 '"', '\\' or a control character, 2 a byte
 * >= 0x80 that starts (or wrongly continues) a UTF-8 sequence.
 */
BT_HIDDEN extern const unsigned char bt_json_byte_class[256];

/* Length of the well-formed UTF-8 sequence at p (n > 0 bytes there), or 0. */
BT_HIDDEN size_t bt_json_utf8_len(const unsigned char *p, size_t n);

typedef struct bt_json_scanner {
  const unsigned char *s;
  size_t len;
  size_t pos;         /* where scanning is; on failure where the problem is */
  unsigned flags;     /* BT_JSON_LONE_* */
  int depth;          /* containers open */
  int escaped;        /* the last string had an escape */
  int integral;       /* the last number had no fraction and no exponent */
  int with_pos;       /* the failure is at pos (else it is about the whole) */
  size_t lone;        /* lone surrogates accepted so far */
  bt_json_error code; /* set on failure */
} bt_json_scanner;

/*
 * A watcher of a decode (bt_json_push_decoded_watched): told of each
 * member kept (not a null one dropped) before its value is decoded, with
 * its object's depth (sc->depth; 1 for the outermost) and its name's body
 * s[start, end) (escaped: it has an escape), the value at sc->pos; of each
 * container opened (its depth, 1 for the outermost); and of each array
 * closed, with its count of elements. baseten.stream's for-chunk path
 * (ldelta.c) watches a chunk's shape this way instead of reading its table.
 */
typedef struct bt_json_watch bt_json_watch;
struct bt_json_watch {
  void (*member)(bt_json_watch *w, const bt_json_scanner *sc, size_t start, size_t end,
                 int escaped);
  void (*open)(bt_json_watch *w, int depth, int array);
  void (*close_array)(bt_json_watch *w, int depth, int count);
};

BT_HIDDEN void bt_json_scan_init(bt_json_scanner *sc, const char *s, size_t len, unsigned flags);

/* Records a failure; returns 0 so callers can `return bt_json_fail(...)`. */
BT_HIDDEN int bt_json_fail(bt_json_scanner *sc, bt_json_error code, size_t pos);
BT_HIDDEN int bt_json_fail_nopos(bt_json_scanner *sc, bt_json_error code);

/* The byte at pos, or 0 at the end (0 is never valid where one is read). */
static inline unsigned char bt_json_peek(const bt_json_scanner *sc) {
  return sc->pos < sc->len ? sc->s[sc->pos] : 0;
}

/* inline: runs between any two tokens, and usually finds no space */
static inline void bt_json_skip_space(bt_json_scanner *sc) {
  while (sc->pos < sc->len) {
    unsigned char c = sc->s[sc->pos];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
    sc->pos++;
  }
}

/*
 * Tokens. Each starts at sc->pos (the token's first byte), returns 1 and
 * leaves pos just past it, or returns 0 with the failure recorded.
 * bt_json_scan_string: sc->escaped says whether the body, s[start + 1,
 * pos - 1), needs bt_json_unescape. bt_json_scan_number: sc->integral.
 */
/* bt_json_scan_number past its inline fast path. */
BT_HIDDEN int bt_json_scan_number_full(bt_json_scanner *sc);

/* Inline for a plain integer ("1741569952", "-3") followed by what may end
 * a number; anything else ("0", fractions, exponents, errors) goes to
 * json_scan.c. */
static inline int bt_json_scan_number(bt_json_scanner *sc) {
  const unsigned char *s = sc->s;
  size_t n = sc->len, i = sc->pos + (s[sc->pos] == '-');
  if (i < n && s[i] >= '1' && s[i] <= '9') {
    do i++;
    while (i < n && s[i] >= '0' && s[i] <= '9');
    if (i == n || (s[i] != '.' && s[i] != 'e' && s[i] != 'E' && s[i] != '+' && s[i] != '-')) {
      sc->integral = 1;
      sc->pos = i;
      return 1;
    }
  }
  return bt_json_scan_number_full(sc);
}

/* bt_json_scan_string from byte i of the string on (an escape, UTF-8, a
 * control character or the end). */
BT_HIDDEN int bt_json_scan_string_from(bt_json_scanner *sc, size_t i);

/* Inline for the common case, a short string of plain ASCII (nearly every
 * name, and most values of a stream's chunks): the call into json_scan.c,
 * which costs more than the scan of such a string, is then skipped. */
static inline int bt_json_scan_string(bt_json_scanner *sc) {
  const unsigned char *s = sc->s, *cls = bt_json_byte_class;
  size_t n = sc->len, i = sc->pos + 1;
  /* four plain bytes a step: most of a chunk's bytes are in strings */
  while (i + 4 <= n && (cls[s[i]] | cls[s[i + 1]] | cls[s[i + 2]] | cls[s[i + 3]]) == 0) i += 4;
  while (i < n && cls[s[i]] == 0) i++;
  if (i < n && s[i] == '"') {
    sc->escaped = 0;
    sc->pos = i + 1;
    return 1;
  }
  return bt_json_scan_string_from(sc, i);
}

/* true, false or null (word, n bytes); inline: a few byte compares, on
 * the decoder's hot path. */
static inline int bt_json_scan_literal(bt_json_scanner *sc, const char *word, size_t n) {
  const unsigned char *p = sc->s + sc->pos;
  size_t i;
  if (sc->len - sc->pos < n) return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  for (i = 0; i < n; i++)
    if (p[i] != (unsigned char)word[i]) return bt_json_fail(sc, BT_JSON_E_SYNTAX, sc->pos);
  sc->pos += n;
  return 1;
}

/*
 * The body in[0, n) of a string bt_json_scan_string accepted under `flags`,
 * escapes decoded, into out (room for n bytes: no escape decodes longer than
 * it is written). Returns the bytes written. \u0000 becomes a real NUL.
 */
BT_HIDDEN size_t bt_json_unescape(const unsigned char *in, size_t n, unsigned flags, char *out);

/* The value of a number token p[0, n) that bt_json_scan_number accepted. */
typedef struct {
  int is_int;  /* 1: the literal is an integer that fits in 64 bits: i */
  long long i; /* exact */
  double d;    /* else the nearest double; a zero is always +0 */
} bt_json_number;

/* bt_json_number_value past its inline fast path. */
BT_HIDDEN bt_json_error bt_json_number_slow(const unsigned char *p, size_t n, int integral,
                                            bt_json_number *out);

/* 0 on success; else BT_JSON_E_RANGE (beyond a double) or BT_JSON_E_NOMEM.
 * Inline for what streams send most, an integer of at most 18 bytes (17
 * digits and a sign at most: exact in a long long, no overflow check). */
static inline bt_json_error bt_json_number_value(const unsigned char *p, size_t n, int integral,
                                                 bt_json_number *out) {
  size_t i = p[0] == '-';
  unsigned long long u = 0;
  if (!integral || n > 18) return bt_json_number_slow(p, n, integral, out);
  for (; i < n; i++) u = u * 10 + (unsigned)(p[i] - '0');
  out->is_int = 1;
  out->i = p[0] == '-' ? -(long long)u : (long long)u;
  out->d = (double)out->i; /* "-0" is 0: a zero has no sign */
  return BT_JSON_OK;
}

/*
 * Checks that s[0, len) is exactly one JSON text, with the decoder's rules:
 * returns 1, or 0 with sc->code and sc->pos. Allocates nothing (bar a long
 * number's copy) and never recurses: open containers are a bit stack.
 */
BT_HIDDEN int bt_json_scan_document(bt_json_scanner *sc);

#endif
