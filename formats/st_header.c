/*
 * st_header.c - the safetensors header scanner and validator.
 *
 * Spec: huggingface/safetensors README ("Format") and tensor.rs
 * (read_metadata, Metadata::validate); our rule numbers are those of
 * safetensors.md sections 1 (R1-R19) and 3 (V1-V14), including the places
 * where we are deliberately stricter than the reference (duplicate tensor
 * names and duplicate __metadata__ keys rejected, rank capped).
 *
 * Why a purpose-built scanner and not jansson (safetensors.md 9.4): the
 * header grammar is fixed (an object of objects with three known fields,
 * plus an optional string map), the numbers must be exact u64 (jansson stops
 * at INT64_MAX and reads -0 as 0), and jansson is 3-4x slower than the
 * reference. This file makes one pass over the bytes for UTF-8 (R4) and one
 * for the JSON (R5-R12), allocating only the output tables, then checks the
 * layout (R13-R16) on the table.
 *
 * Nesting: serde_json gives up when 128 containers are open; we allow at
 * most ST_MAX_NESTING = 127 open containers (the top-level object and the
 * tensor entry count), so depth 100 passes and depth 200 fails, as in the
 * reference (safetensors.md case 30); the exact boundary (127 accepted, 128
 * refused) was checked against Python's safetensors 0.8.0 and is a test.
 */
#include "st_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_NESTING 127

/* The shape of every scalar: a valid pointer with nothing to read. */
static const uint64_t no_dims[1];

/* A tensor entry while the header is scanned: strings and dims are kept as
 * offsets because their arenas may move when they grow. */
typedef struct st_rec {
    size_t name_off, name_len;
    size_t dims_off;
    int rank;
    marlin_dtype dtype;
    uint64_t numel, nbytes, begin, end;
} st_rec;

/* The entry table is parsed as st_rec and converted in place to the final
 * marlin_tensor once the string and dims arenas stop moving (no second
 * table: this matters for 10^4-10^5-tensor headers). */
typedef union st_slot {
    st_rec r;
    marlin_tensor t;
} st_slot;
_Static_assert(sizeof(st_slot) == sizeof(marlin_tensor),
               "st_slot must index like marlin_tensor");

typedef struct st_mrec {
    size_t key_off, key_len, val_off, val_len;
} st_mrec;

/* A JSON string token: raw bytes between the quotes. */
typedef struct st_str {
    const uint8_t *raw;
    size_t len;
    bool esc; /* contains escapes: decode before comparing or storing */
} st_str;

typedef struct scanner {
    const uint8_t *start, *p, *end;
    marlin_st_file *f;
    marlin_error *err;
    int depth;
    /* context for messages */
    int ctx;          /* 0 top level, 1 inside a tensor entry, 2 metadata */
    size_t cur_off, cur_len; /* current tensor name in the arena */
    /* arenas */
    char *str;
    size_t str_used, str_cap;
    st_slot *recs;
    size_t nrec, rec_cap;
    uint64_t *dims;
    size_t ndims, dims_cap;
    st_mrec *meta;
    size_t nmeta, meta_cap;
    bool have_meta;
    /* unknown entry fields (accepted, reported as a warning) */
    size_t unknown;
    size_t unk_tensor_off, unk_tensor_len;
    st_str unk_field;
} scanner;

/* ------------------------------------------------------------------ errors */

const char *st_printable(const char *s, size_t n, char *buf, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;
    /* leave room for "\xNN", "..." and the NUL */
    while (i < n && o + 8 < cap) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
            i++;
            continue;
        }
        if (c >= 0x80) {
            /* copy a whole UTF-8 sequence or stop, so that a cut never
             * leaves half a character (names are valid UTF-8 here) */
            size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + k > n || o + k + 8 >= cap) break;
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        buf[o++] = (char)c;
        i++;
    }
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static marlin_status st_fail(scanner *s, const char *fmt, ...) {
    char rule[640], nm[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    if (s->ctx == 1)
        return marlin_fail(s->err, MARLIN_ERR_FORMAT, "%s: tensor '%s': %s",
                           s->f->label,
                           st_printable(s->str + s->cur_off, s->cur_len, nm,
                                        sizeof nm),
                           rule);
    if (s->ctx == 2)
        return marlin_fail(s->err, MARLIN_ERR_FORMAT, "%s: __metadata__: %s",
                           s->f->label, rule);
    return marlin_fail(s->err, MARLIN_ERR_FORMAT, "%s: %s", s->f->label, rule);
}

/* Malformed JSON: say where (byte offset inside the header). */
static marlin_status st_syntax(scanner *s, const uint8_t *at,
                               const char *what) {
    if (at > s->end) at = s->end;
    return st_fail(s, "invalid JSON in header at byte %llu: %s",
                   (unsigned long long)(at - s->start), what);
}

static marlin_status st_nomem(scanner *s) {
    return marlin_fail(s->err, MARLIN_ERR_NOMEM,
                       "%s: out of memory while reading the header",
                       s->f->label);
}

/* ------------------------------------------------------------------ arenas */

/* Makes room for `more` elements of `elem` bytes (doubling). */
static bool grow(void **p, size_t *cap, size_t used, size_t more,
                 size_t elem) {
    size_t need, ncap;
    void *q;
    if (__builtin_add_overflow(used, more, &need)) return false;
    if (need <= *cap) return true;
    ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (__builtin_mul_overflow(ncap, (size_t)2, &ncap)) return false;
    }
    if (__builtin_mul_overflow(ncap, elem, &need)) return false;
    q = realloc(*p, need);
    if (!q) return false;
    *p = q;
    *cap = ncap;
    return true;
}

/* ------------------------------------------------------------------- UTF-8 */

/* R4: every header byte, padding included, is valid UTF-8: no overlong
 * forms, no encoded surrogates (ED A0..BF), nothing above U+10FFFF.
 * Returns the offset of the first bad byte, or n. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time (headers are almost all ASCII) */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) k = 1;
        else if (c == 0xe0) { k = 2; lo = 0xa0; }
        else if (c == 0xed) { k = 2; hi = 0x9f; }
        else if (c >= 0xe1 && c <= 0xef) k = 2;
        else if (c == 0xf0) { k = 3; lo = 0x90; }
        else if (c == 0xf4) { k = 3; hi = 0x8f; }
        else if (c >= 0xf1 && c <= 0xf3) k = 3;
        else return i;
        if (n - i <= k) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return i;
        i += k + 1;
    }
    return n;
}

/* ------------------------------------------------------------ JSON tokens */

static inline void skip_ws(scanner *s) {
    const uint8_t *p = s->p, *e = s->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    s->p = p;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(const uint8_t *p, const uint8_t *end, unsigned *out) {
    unsigned v = 0;
    if (end - p < 4) return false;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return false;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return true;
}

/* Scans a string whose opening quote is at s->p; leaves s->p after the
 * closing quote. Checks escapes (including surrogate pairing) and raw
 * control characters; UTF-8 was checked beforehand. */
static marlin_status scan_string(scanner *s, st_str *out) {
    const uint8_t *p = s->p + 1, *e = s->end;
    bool esc = false;
    for (;;) {
        while (p < e && *p >= 0x20 && *p != '"' && *p != '\\') p++;
        if (p >= e) return st_syntax(s, p, "unterminated string");
        if (*p == '"') break;
        if (*p < 0x20)
            return st_syntax(s, p, "raw control character in a string "
                                   "(it must be escaped)");
        /* backslash */
        esc = true;
        if (e - p < 2) return st_syntax(s, p, "unterminated string");
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p += 2;
            continue;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(p + 2, e, &cp))
                return st_syntax(s, p, "\\u escape needs 4 hex digits");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return st_syntax(s, p, "lone low surrogate escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (e - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                    !hex4(p + 8, e, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return st_syntax(s, p, "lone high surrogate escape "
                                           "(no low surrogate follows)");
                p += 12;
            } else {
                p += 6;
            }
            continue;
        }
        default:
            return st_syntax(s, p, "invalid escape sequence");
        }
    }
    out->raw = s->p + 1;
    out->len = (size_t)(p - out->raw);
    out->esc = esc;
    s->p = p + 1;
    return MARLIN_OK;
}

static size_t put_utf8(uint8_t *d, unsigned cp) {
    if (cp < 0x80) { d[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xc0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xe0 | cp >> 12);
        d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (uint8_t)(0xf0 | cp >> 18);
    d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a validated string token into d (room for `cap` bytes). Returns
 * the decoded length, or SIZE_MAX when it would exceed cap. Decoded text is
 * never longer than the raw text (every escape is >= its UTF-8 length). */
static size_t decode(const st_str *t, uint8_t *d, size_t cap) {
    const uint8_t *r = t->raw, *e = t->raw + t->len;
    size_t o = 0;
    while (r < e) {
        uint8_t tmp[4];
        size_t k;
        if (*r != '\\') {
            const uint8_t *q = r;
            while (q < e && *q != '\\') q++;
            k = (size_t)(q - r);
            if (k > cap - o) return SIZE_MAX;
            memcpy(d + o, r, k);
            o += k;
            r = q;
            continue;
        }
        switch (r[1]) {
        case 'b': tmp[0] = '\b'; k = 1; r += 2; break;
        case 'f': tmp[0] = '\f'; k = 1; r += 2; break;
        case 'n': tmp[0] = '\n'; k = 1; r += 2; break;
        case 'r': tmp[0] = '\r'; k = 1; r += 2; break;
        case 't': tmp[0] = '\t'; k = 1; r += 2; break;
        case 'u': {
            unsigned cp = 0, lo = 0;
            hex4(r + 2, e, &cp);
            r += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                hex4(r + 2, e, &lo);
                r += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            k = put_utf8(tmp, cp);
            break;
        }
        default: /* " \ / */
            tmp[0] = r[1];
            k = 1;
            r += 2;
            break;
        }
        if (k > cap - o) return SIZE_MAX;
        memcpy(d + o, tmp, k);
        o += k;
    }
    return o;
}

/* True when the token decodes to exactly the n bytes of `lit`. */
static bool str_is(const st_str *t, const char *lit, size_t n) {
    uint8_t buf[16];
    if (!t->esc) return t->len == n && memcmp(t->raw, lit, n) == 0;
    size_t k = decode(t, buf, sizeof buf);
    return k == n && memcmp(buf, lit, n) == 0;
}

/* Stores the decoded string in the arena (NUL-terminated). */
static marlin_status store_string(scanner *s, const st_str *t, size_t *off,
                                  size_t *len) {
    if (!grow((void **)&s->str, &s->str_cap, s->str_used, t->len + 1, 1))
        return st_nomem(s);
    uint8_t *d = (uint8_t *)s->str + s->str_used;
    size_t k = t->len;
    if (t->esc) k = decode(t, d, t->len);
    else memcpy(d, t->raw, k);
    d[k] = 0;
    *off = s->str_used;
    *len = k;
    s->str_used += k + 1;
    return MARLIN_OK;
}

static bool lit_at(const scanner *s, const char *lit, size_t n) {
    return (size_t)(s->end - s->p) >= n && memcmp(s->p, lit, n) == 0;
}

/* Name of the JSON type starting at p, for "invalid type" messages. */
static const char *type_name(uint8_t c) {
    switch (c) {
    case '"': return "a string";
    case '[': return "an array";
    case '{': return "an object";
    case 'n': return "null";
    case 't': case 'f': return "a boolean";
    default: return (c == '-' || (c >= '0' && c <= '9')) ? "a number"
                                                         : "not a JSON value";
    }
}

/* True when a JSON value can start at s->p (for choosing between "wrong
 * type" and "invalid JSON" in messages). */
static bool value_start(const scanner *s) {
    if (s->p >= s->end) return false;
    switch (*s->p) {
    case '"': case '[': case '{': case '-':
        return true;
    case 't': return lit_at(s, "true", 4);
    case 'f': return lit_at(s, "false", 5);
    case 'n': return lit_at(s, "null", 4);
    default: return *s->p >= '0' && *s->p <= '9';
    }
}

/* Skips any JSON number (unknown fields): -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)? */
static marlin_status skip_number(scanner *s) {
    const uint8_t *p = s->p, *e = s->end;
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return st_syntax(s, p, "invalid number");
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9')
            return st_syntax(s, p, "number with a leading zero");
    } else {
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return st_syntax(s, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9')
            return st_syntax(s, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    s->p = p;
    return MARLIN_OK;
}

static marlin_status enter(scanner *s) {
    if (++s->depth > ST_MAX_NESTING)
        return st_fail(s, "JSON nesting deeper than %d levels",
                       ST_MAX_NESTING);
    return MARLIN_OK;
}

/* Validates and skips one JSON value (unknown entry fields: parsed as
 * strictly as the rest, then ignored). */
static marlin_status skip_value(scanner *s) {
    marlin_status rc;
    st_str t;
    skip_ws(s);
    if (s->p >= s->end) return st_syntax(s, s->p, "expected a value");
    switch (*s->p) {
    case '"':
        return scan_string(s, &t);
    case 't':
        if (!lit_at(s, "true", 4)) break;
        s->p += 4;
        return MARLIN_OK;
    case 'f':
        if (!lit_at(s, "false", 5)) break;
        s->p += 5;
        return MARLIN_OK;
    case 'n':
        if (!lit_at(s, "null", 4)) break;
        s->p += 4;
        return MARLIN_OK;
    case '[':
    case '{': {
        bool obj = *s->p == '{';
        uint8_t close = obj ? '}' : ']';
        if ((rc = enter(s)) != MARLIN_OK) return rc;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            s->depth--;
            return MARLIN_OK;
        }
        for (;;) {
            if (obj) {
                skip_ws(s);
                if (s->p >= s->end || *s->p != '"')
                    return st_syntax(s, s->p, "expected a string key");
                if ((rc = scan_string(s, &t)) != MARLIN_OK) return rc;
                skip_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return st_syntax(s, s->p, "expected ':' after a key");
                s->p++;
            }
            if ((rc = skip_value(s)) != MARLIN_OK) return rc;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == close)
                    return st_syntax(s, s->p, "trailing comma");
                continue;
            }
            if (s->p < s->end && *s->p == close) {
                s->p++;
                s->depth--;
                return MARLIN_OK;
            }
            return st_syntax(s, s->p, obj ? "expected ',' or '}'"
                                          : "expected ',' or ']'");
        }
    }
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return skip_number(s);
        break;
    }
    return st_syntax(s, s->p, "expected a value");
}

/* R10: an exact unsigned 64-bit integer: digits only, no sign (so no -0),
 * no leading zero, no fraction or exponent, at most 2^64-1. */
static marlin_status scan_u64(scanner *s, const char *field, size_t idx,
                              uint64_t *out) {
    const uint8_t *p = s->p, *e = s->end;
    char tok[40];
    if (p >= e) return st_syntax(s, p, "expected a value");
    if (*p < '0' || *p > '9') {
        if (*p == '-') {
            /* quote the token: "-0" is its own classic (serde types it as
             * a float) */
            size_t k = 0;
            const uint8_t *q = p;
            while (q < e && k + 4 < sizeof tok &&
                   ((*q >= '0' && *q <= '9') || *q == '-' || *q == '.' ||
                    *q == 'e' || *q == 'E' || *q == '+'))
                tok[k++] = (char)*q++;
            tok[k] = '\0';
            return st_fail(s, "%s[%zu] = %s is negative; expected an "
                              "unsigned 64-bit integer", field, idx, tok);
        }
        if (!value_start(s)) return st_syntax(s, p, "expected a value");
        return st_fail(s, "%s[%zu] is %s; expected an unsigned 64-bit "
                          "integer", field, idx, type_name(*p));
    }
    if (*p == '0' && e - p > 1 && p[1] >= '0' && p[1] <= '9')
        return st_fail(s, "%s[%zu] has a leading zero (invalid JSON number)",
                       field, idx);
    uint64_t v = 0;
    while (p < e && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return st_fail(s, "%s[%zu] exceeds 2^64-1", field, idx);
        v = v * 10 + d;
        p++;
    }
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
        return st_fail(s, "%s[%zu] is not an integer (fraction or exponent); "
                          "expected an unsigned 64-bit integer", field, idx);
    *out = v;
    s->p = p;
    return MARLIN_OK;
}

/* Formats a shape as "[a, b, c]" (long shapes elided). */
static const char *shape_str(const uint64_t *d, int rank, char *buf,
                             size_t cap) {
    size_t o = 0;
    buf[o++] = '[';
    for (int i = 0; i < rank && o + 32 < cap; i++) {
        if (i == 8 && rank > 9) {
            o += (size_t)snprintf(buf + o, cap - o, "%s... (rank %d)",
                                  i ? ", " : "", rank);
            break;
        }
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)d[i]);
    }
    snprintf(buf + o, cap - o, "]");
    return buf;
}

/* ----------------------------------------------------------- tensor entry */

enum { F_DTYPE = 1, F_SHAPE = 2, F_OFFSETS = 4 };

static marlin_status scan_dtype(scanner *s, st_rec *r) {
    st_str t;
    uint8_t buf[16];
    char nm[64];
    marlin_status rc;
    if (s->p >= s->end || *s->p != '"') {
        if (!value_start(s)) return st_syntax(s, s->p, "expected a value");
        return st_fail(s, "dtype is %s; expected a string",
                       s->p < s->end ? type_name(*s->p) : "missing");
    }
    if ((rc = scan_string(s, &t)) != MARLIN_OK) return rc;
    size_t k = t.esc ? decode(&t, buf, sizeof buf) : t.len;
    const char *name = t.esc ? (const char *)buf : (const char *)t.raw;
    if (k == SIZE_MAX || !marlin_dtype_parse(name, k, &r->dtype))
        return st_fail(s, "unknown dtype '%s' (dtypes are case-sensitive: "
                          "F16, BF16, F32, ...)",
                       st_printable((const char *)t.raw, t.len, nm,
                                    sizeof nm));
    return MARLIN_OK;
}

/* shape (R12) or data_offsets (R13): an array of u64. */
static marlin_status scan_u64_array(scanner *s, const char *field,
                                    bool offsets, st_rec *r) {
    marlin_status rc;
    size_t count = 0;
    uint64_t v = 0, pair[2] = {0, 0};
    if (s->p >= s->end || *s->p != '[') {
        if (!value_start(s)) return st_syntax(s, s->p, "expected a value");
        return st_fail(s, "%s is %s; expected an array of unsigned integers",
                       field, s->p < s->end ? type_name(*s->p) : "missing");
    }
    s->p++;
    if (!offsets) r->dims_off = s->ndims;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            skip_ws(s);
            if (offsets && count == 2)
                return st_fail(s, "data_offsets has more than 2 elements; "
                                  "expected [BEGIN, END]");
            if (!offsets && count == MARLIN_ST_MAX_RANK)
                return st_fail(s, "shape has more than %d dimensions (our "
                                  "rank limit)", MARLIN_ST_MAX_RANK);
            if ((rc = scan_u64(s, field, count, &v)) != MARLIN_OK) return rc;
            if (offsets) {
                pair[count] = v;
            } else {
                if (!grow((void **)&s->dims, &s->dims_cap, s->ndims, 1,
                          sizeof *s->dims))
                    return st_nomem(s);
                s->dims[s->ndims++] = v;
            }
            count++;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == ']')
                    return st_syntax(s, s->p, "trailing comma");
                continue;
            }
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                break;
            }
            return st_syntax(s, s->p, "expected ',' or ']'");
        }
    }
    if (offsets) {
        if (count != 2)
            return st_fail(s, "data_offsets has %zu element%s; expected "
                              "[BEGIN, END]", count, count == 1 ? "" : "s");
        r->begin = pair[0];
        r->end = pair[1];
    } else {
        r->rank = (int)count;
    }
    return MARLIN_OK;
}

/* R14 for one tensor: size arithmetic with overflow checks (V10, V11),
 * whole bytes (V12), END >= BEGIN and END - BEGIN == size (V13). */
static marlin_status check_entry(scanner *s, st_rec *r) {
    char sh[256];
    const uint64_t *d = r->rank ? s->dims + r->dims_off : no_dims;
    uint64_t numel = 1, bits;
    int b = marlin_dtype_bits(r->dtype);
    for (int i = 0; i < r->rank; i++) {
        if (!marlin_mul_u64(numel, d[i], &numel))
            return st_fail(s, "shape %s has more than 2^64-1 elements",
                           shape_str(d, r->rank, sh, sizeof sh));
    }
    if (!marlin_mul_u64(numel, (uint64_t)b, &bits))
        return st_fail(s, "shape %s x %s overflows 64-bit arithmetic "
                          "(%llu elements of %d bits)",
                       shape_str(d, r->rank, sh, sizeof sh),
                       marlin_dtype_name(r->dtype),
                       (unsigned long long)numel, b);
    if (bits % 8 != 0)
        return st_fail(s, "shape %s x %s is %llu bits, not a whole number of "
                          "bytes",
                       shape_str(d, r->rank, sh, sizeof sh),
                       marlin_dtype_name(r->dtype), (unsigned long long)bits);
    r->numel = numel;
    r->nbytes = bits / 8;
    if (r->end < r->begin)
        return st_fail(s, "data_offsets [%llu, %llu) are reversed "
                          "(END < BEGIN)",
                       (unsigned long long)r->begin,
                       (unsigned long long)r->end);
    if (r->end - r->begin != r->nbytes)
        return st_fail(s, "data_offsets [%llu, %llu) do not match shape %s x "
                          "%s (%llu bytes)",
                       (unsigned long long)r->begin,
                       (unsigned long long)r->end,
                       shape_str(d, r->rank, sh, sizeof sh),
                       marlin_dtype_name(r->dtype),
                       (unsigned long long)r->nbytes);
    return MARLIN_OK;
}

/* R9: {"dtype": .., "shape": .., "data_offsets": ..} in any order, each
 * exactly once; other fields are validated and ignored. */
static marlin_status scan_entry(scanner *s, st_rec *r) {
    marlin_status rc;
    unsigned seen = 0;
    st_str key;
    if (s->p >= s->end) return st_syntax(s, s->p, "expected a value");
    if (*s->p != '{') {
        if (!value_start(s)) return st_syntax(s, s->p, "expected a value");
        return st_fail(s, "entry is %s; expected an object with dtype, shape "
                          "and data_offsets", type_name(*s->p));
    }
    if ((rc = enter(s)) != MARLIN_OK) return rc;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            skip_ws(s);
            if (s->p >= s->end || *s->p != '"')
                return st_syntax(s, s->p, "expected a field name");
            if ((rc = scan_string(s, &key)) != MARLIN_OK) return rc;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return st_syntax(s, s->p, "expected ':' after a key");
            s->p++;
            skip_ws(s);
            unsigned fl = str_is(&key, "dtype", 5)          ? F_DTYPE
                          : str_is(&key, "shape", 5)        ? F_SHAPE
                          : str_is(&key, "data_offsets", 12) ? F_OFFSETS
                                                             : 0;
            if (fl & seen)
                return st_fail(s, "duplicate field '%s'",
                               fl == F_DTYPE   ? "dtype"
                               : fl == F_SHAPE ? "shape"
                                               : "data_offsets");
            seen |= fl;
            if (fl == F_DTYPE) rc = scan_dtype(s, r);
            else if (fl == F_SHAPE) rc = scan_u64_array(s, "shape", false, r);
            else if (fl == F_OFFSETS)
                rc = scan_u64_array(s, "data_offsets", true, r);
            else {
                rc = skip_value(s);
                if (rc == MARLIN_OK && s->unknown++ == 0) {
                    s->unk_tensor_off = s->cur_off;
                    s->unk_tensor_len = s->cur_len;
                    s->unk_field = key;
                }
            }
            if (rc != MARLIN_OK) return rc;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == '}')
                    return st_syntax(s, s->p, "trailing comma");
                continue;
            }
            if (s->p < s->end && *s->p == '}') {
                s->p++;
                break;
            }
            return st_syntax(s, s->p, "expected ',' or '}'");
        }
    }
    s->depth--;
    if (!(seen & F_DTYPE)) return st_fail(s, "missing field 'dtype'");
    if (!(seen & F_SHAPE)) return st_fail(s, "missing field 'shape'");
    if (!(seen & F_OFFSETS)) return st_fail(s, "missing field 'data_offsets'");
    return check_entry(s, r);
}

/* R7: null, or an object whose values are all strings. */
static marlin_status scan_metadata(scanner *s) {
    marlin_status rc;
    st_str k, v;
    char nm[200];
    if (s->p >= s->end) return st_syntax(s, s->p, "expected a value");
    if (*s->p == 'n' && lit_at(s, "null", 4)) {
        s->p += 4;
        return MARLIN_OK;
    }
    if (*s->p != '{') {
        if (!value_start(s)) return st_syntax(s, s->p, "expected a value");
        return st_fail(s, "is %s; expected an object of strings or null",
                       type_name(*s->p));
    }
    if ((rc = enter(s)) != MARLIN_OK) return rc;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return MARLIN_OK;
    }
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return st_syntax(s, s->p, "expected a string key");
        if ((rc = scan_string(s, &k)) != MARLIN_OK) return rc;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return st_syntax(s, s->p, "expected ':' after a key");
        s->p++;
        skip_ws(s);
        if (s->p >= s->end) return st_syntax(s, s->p, "expected a value");
        if (*s->p != '"') {
            if (!value_start(s))
                return st_syntax(s, s->p, "expected a value");
            return st_fail(s, "value of '%s' is %s; expected a string",
                           st_printable((const char *)k.raw, k.len, nm,
                                        sizeof nm),
                           type_name(*s->p));
        }
        if ((rc = scan_string(s, &v)) != MARLIN_OK) return rc;
        if (!grow((void **)&s->meta, &s->meta_cap, s->nmeta, 1,
                  sizeof *s->meta))
            return st_nomem(s);
        st_mrec *m = &s->meta[s->nmeta];
        if ((rc = store_string(s, &k, &m->key_off, &m->key_len)) != MARLIN_OK)
            return rc;
        if ((rc = store_string(s, &v, &m->val_off, &m->val_len)) != MARLIN_OK)
            return rc;
        s->nmeta++;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == '}')
                return st_syntax(s, s->p, "trailing comma");
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->depth--;
            return MARLIN_OK;
        }
        return st_syntax(s, s->p, "expected ',' or '}'");
    }
}

/* R5, R6: ws* { key: value, ... } ws* and nothing else. */
static marlin_status scan_top(scanner *s) {
    marlin_status rc;
    st_str key;
    skip_ws(s);
    if (s->p >= s->end)
        return st_fail(s, "header holds no JSON value (empty or whitespace "
                          "only)");
    if (*s->p != '{') {
        if (!value_start(s)) return st_syntax(s, s->p, "expected '{'");
        return st_fail(s, "header is %s; expected a JSON object",
                       type_name(*s->p));
    }
    if ((rc = enter(s)) != MARLIN_OK) return rc;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            skip_ws(s);
            if (s->p >= s->end || *s->p != '"')
                return st_syntax(s, s->p, "expected a string key");
            if ((rc = scan_string(s, &key)) != MARLIN_OK) return rc;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return st_syntax(s, s->p, "expected ':' after a key");
            s->p++;
            skip_ws(s);
            if (str_is(&key, "__metadata__", 12)) {
                if (s->have_meta)
                    return st_fail(s, "duplicate key '__metadata__'");
                s->have_meta = true;
                s->ctx = 2;
                rc = scan_metadata(s);
            } else {
                if (!grow((void **)&s->recs, &s->rec_cap, s->nrec, 1,
                          sizeof *s->recs))
                    return st_nomem(s);
                st_rec *r = &s->recs[s->nrec].r;
                memset(r, 0, sizeof *r);
                if ((rc = store_string(s, &key, &r->name_off, &r->name_len)) !=
                    MARLIN_OK)
                    return rc;
                s->cur_off = r->name_off;
                s->cur_len = r->name_len;
                s->ctx = 1;
                rc = scan_entry(s, r);
                s->nrec++;
            }
            if (rc != MARLIN_OK) return rc;
            s->ctx = 0;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == '}')
                    return st_syntax(s, s->p, "trailing comma");
                continue;
            }
            if (s->p < s->end && *s->p == '}') {
                s->p++;
                break;
            }
            return st_syntax(s, s->p, "expected ',' or '}'");
        }
    }
    s->depth--;
    skip_ws(s);
    if (s->p != s->end)
        return st_syntax(s, s->p, "trailing characters after the JSON object "
                                  "(only space, tab, CR, LF may pad it)");
    return MARLIN_OK;
}

/* --------------------------------------------------------------- ordering */

static int name_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int cmp_tensor_name(const void *x, const void *y) {
    const marlin_tensor *a = x, *b = y;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int cmp_meta_key(const void *x, const void *y) {
    const st_meta *a = x, *b = y;
    return name_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* (BEGIN, END), then name so that the tensor blamed is deterministic. */
static int cmp_tensor_range(const void *x, const void *y) {
    const marlin_tensor *a = *(const marlin_tensor *const *)x;
    const marlin_tensor *b = *(const marlin_tensor *const *)y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static marlin_status tensor_fail(scanner *s, const marlin_tensor *t,
                                 const char *fmt, ...) {
    char rule[640], nm[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    return marlin_fail(s->err, MARLIN_ERR_FORMAT, "%s: tensor '%s': %s",
                       s->f->label,
                       st_printable(t->name, t->name_len, nm, sizeof nm),
                       rule);
}

/* R15, R16: sorted by (BEGIN, END) the tensors tile [0, data_len) exactly.
 * Zero-byte tensors may sit on a boundary, never strictly inside another
 * tensor's range. */
static marlin_status check_layout(scanner *s, marlin_tensor *t, size_t n,
                                  uint64_t data_len) {
    const marlin_tensor **ord = NULL;
    marlin_status rc = MARLIN_OK;
    char nm[200];
    /* Writers emit offsets in entry order: then walk the table as it is,
     * else sort pointers by (BEGIN, END). */
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++) {
        const marlin_tensor *a = &t[i - 1], *b = &t[i];
        if (cmp_tensor_range(&a, &b) > 0) sorted = false;
    }
    if (!sorted) {
        ord = malloc(n * sizeof *ord);
        if (!ord) return st_nomem(s);
        for (size_t i = 0; i < n; i++) ord[i] = &t[i];
        qsort(ord, n, sizeof *ord, cmp_tensor_range);
    }
    uint64_t run = 0;
    const marlin_tensor *owner = NULL; /* the tensor that ends at `run` */
    for (size_t i = 0; i < n; i++) {
        const marlin_tensor *c = ord ? ord[i] : &t[i];
        if (c->begin == run) {
            if (c->nbytes || !owner) owner = c;
            run = c->end;
            continue;
        }
        if (c->begin > run) {
            if (owner)
                rc = tensor_fail(s, c, "data_offsets [%llu, %llu) leave bytes "
                                       "[%llu, %llu) unused after tensor '%s'",
                                 (unsigned long long)c->begin,
                                 (unsigned long long)c->end,
                                 (unsigned long long)run,
                                 (unsigned long long)c->begin,
                                 st_printable(owner->name, owner->name_len,
                                              nm, sizeof nm));
            else
                rc = tensor_fail(s, c, "data_offsets [%llu, %llu) leave bytes "
                                       "[0, %llu) of the data buffer unused",
                                 (unsigned long long)c->begin,
                                 (unsigned long long)c->end,
                                 (unsigned long long)c->begin);
        } else {
            rc = tensor_fail(s, c, "data_offsets [%llu, %llu) overlap tensor "
                                   "'%s' [%llu, %llu)",
                             (unsigned long long)c->begin,
                             (unsigned long long)c->end,
                             st_printable(owner->name, owner->name_len, nm,
                                          sizeof nm),
                             (unsigned long long)owner->begin,
                             (unsigned long long)owner->end);
        }
        goto out;
    }
    if (run > data_len) {
        rc = tensor_fail(s, owner,
                         "data_offsets [%llu, %llu) run past the end of the "
                         "data buffer (%llu bytes; file truncated?)",
                         (unsigned long long)owner->begin,
                         (unsigned long long)owner->end,
                         (unsigned long long)data_len);
    } else if (run < data_len) {
        rc = marlin_fail(s->err, MARLIN_ERR_FORMAT,
                         "%s: %llu trailing byte%s after the last tensor (the "
                         "data buffer has %llu bytes, tensors cover %llu)",
                         s->f->label, (unsigned long long)(data_len - run),
                         data_len - run == 1 ? "" : "s",
                         (unsigned long long)data_len,
                         (unsigned long long)run);
    }
out:
    free(ord);
    return rc;
}

/* ------------------------------------------------------------------ entry */

marlin_status st_header_scan(marlin_st_file *f, const uint8_t *hdr,
                             uint64_t n, uint64_t data_len,
                             marlin_error *err) {
    scanner s;
    marlin_status rc = MARLIN_OK;
    marlin_tensor *t = NULL;
    st_meta *m = NULL;
    char nm[200], fld[200];

    memset(&s, 0, sizeof s);
    s.start = s.p = hdr;
    s.end = hdr + n;
    s.f = f;
    s.err = err;

    size_t bad = utf8_check(hdr, (size_t)n);
    if (bad != n) {
        rc = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: header is not valid UTF-8 (byte 0x%02x at "
                         "header byte %zu)",
                         f->label, hdr[bad], bad);
        goto out;
    }
    if ((rc = scan_top(&s)) != MARLIN_OK) goto out;

    /* Final table, converted in place: the arenas stopped moving, so
     * pointers into them are safe now. */
    t = s.recs ? &s.recs[0].t : NULL;
    for (size_t i = 0; i < s.nrec; i++) {
        st_rec r = s.recs[i].r;
        marlin_tensor *o = &s.recs[i].t;
        o->name = s.str + r.name_off;
        o->name_len = r.name_len;
        o->dtype = r.dtype;
        o->rank = r.rank;
        o->shape = r.rank ? s.dims + r.dims_off : no_dims;
        o->numel = r.numel;
        o->nbytes = r.nbytes;
        o->begin = r.begin;
        o->end = r.end;
    }
    s.recs = NULL;
    /* The layout is checked in header order (usually already sorted by
     * offset), but its verdict waits for the duplicate check, so that a
     * repeated name is reported as such, not as an overlap with itself. */
    marlin_error lay;
    marlin_error_clear(&lay);
    marlin_status lay_rc = check_layout(&s, t, s.nrec, data_len);
    if (lay_rc != MARLIN_OK) {
        if (err) lay = *err;
        lay.code = lay_rc;
    }
    /* Lookup order, and the duplicate check the reference lacks (finding
     * 0.1: it keeps the last duplicate silently). */
    bool sorted = true;
    for (size_t i = 1; i < s.nrec && sorted; i++)
        if (cmp_tensor_name(&t[i - 1], &t[i]) > 0) sorted = false;
    if (!sorted) qsort(t, s.nrec, sizeof *t, cmp_tensor_name);
    for (size_t i = 1; i < s.nrec; i++) {
        if (cmp_tensor_name(&t[i - 1], &t[i]) == 0) {
            rc = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: tensor '%s': duplicate key (the name "
                             "appears more than once in the header)",
                             f->label,
                             st_printable(t[i].name, t[i].name_len, nm,
                                          sizeof nm));
            goto out;
        }
    }
    if (lay_rc != MARLIN_OK) {
        if (err) *err = lay;
        rc = lay_rc;
        goto out;
    }

    if (s.nmeta) {
        m = malloc(s.nmeta * sizeof *m);
        if (!m) { rc = st_nomem(&s); goto out; }
        for (size_t i = 0; i < s.nmeta; i++) {
            m[i].key = s.str + s.meta[i].key_off;
            m[i].key_len = s.meta[i].key_len;
            m[i].value = s.str + s.meta[i].val_off;
            m[i].value_len = s.meta[i].val_len;
        }
        qsort(m, s.nmeta, sizeof *m, cmp_meta_key);
        for (size_t i = 1; i < s.nmeta; i++) {
            if (cmp_meta_key(&m[i - 1], &m[i]) == 0) {
                rc = marlin_fail(err, MARLIN_ERR_FORMAT,
                                 "%s: __metadata__: duplicate key '%s'",
                                 f->label,
                                 st_printable(m[i].key, m[i].key_len, nm,
                                              sizeof nm));
                goto out;
            }
        }
    }
    if (s.unknown) {
        char line[1024];
        snprintf(line, sizeof line,
                 "%s: ignored %zu unknown field%s in tensor entries (first: "
                 "tensor '%s', field '%s')",
                 f->label, s.unknown, s.unknown == 1 ? "" : "s",
                 st_printable(s.str + s.unk_tensor_off, s.unk_tensor_len, nm,
                              sizeof nm),
                 st_printable((const char *)s.unk_field.raw, s.unk_field.len,
                              fld, sizeof fld));
        f->warning = strdup(line);
        if (!f->warning) { rc = st_nomem(&s); goto out; }
    }

    f->tensors = t;
    f->count = s.nrec;
    f->dims = s.dims;
    f->meta = m;
    f->meta_count = s.nmeta;
    f->strings = s.str;
    t = NULL;
    m = NULL;
    s.dims = NULL;
    s.str = NULL;
out:
    free(t);
    free(m);
    free(s.recs);
    free(s.meta);
    free(s.dims);
    free(s.str);
    if (rc != MARLIN_OK) MARLIN_FREE(f->warning);
    return rc;
}
