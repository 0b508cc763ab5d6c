/*
 * test_safetensors.c - the safetensors reader (formats/dtype.c,
 * st_header.c, st_file.c).
 *
 * - The evil-input table of safetensors.md section 6, cases 1-81 (plus two
 *   nesting-boundary cases), built byte-exact from the table below; every
 *   case goes through marlin_st_parse and marlin_st_open and must give "our
 *   verdict": the status, a message that starts with the file name, names
 *   the tensor where one is at fault, and names the broken rule. When Python's
 *   safetensors is importable, the same bytes go through the reference
 *   and must give the reference verdict recorded in the table.
 * - File-system cases 82-84 (truncated after open, grown after open, not a
 *   regular file), symlinks.
 * - Valid files: every dtype, empty, scalar, metadata, escapes; F16/BF16/F32
 *   -> fp32 exactness on all 65536 half and bfloat16 patterns; seeded random
 *   files round-trip; seeded mutations never crash.
 * - The shared model: 3 shards, 39 F16 tensors shaped as config.json says,
 *   values spot-checked against Python's safetensors.
 *
 * `test_safetensors --dump-evil DIR` writes the evil cases as files (the
 * fuzz seed corpus script, tests/fuzz/make_st_corpus.py, uses it).
 */
#include "testutil.h"

#include "marlin_formats.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- builders */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        b->p = realloc(b->p, c);
        assert_non_null(b->p);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_str(buf *b, const char *s) { b_put(b, s, strlen(s)); }
static void b_fmt(buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void b_fmt(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof tmp);
    b_put(b, tmp, (size_t)k);
}
static void b_u64le(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_put(b, x, 8);
}
/* A file image: N, the header (padded with spaces to a multiple of 8
 * unless `unpadded`), then data_len bytes of a fixed pattern. */
static buf image(const void *hdr, size_t hlen, bool unpadded,
                 uint64_t data_len) {
    buf b = {0};
    size_t pad = unpadded ? 0 : (8 - hlen % 8) % 8;
    b_u64le(&b, hlen + pad);
    b_put(&b, hdr, hlen);
    for (size_t i = 0; i < pad; i++) b_put(&b, " ", 1);
    for (uint64_t i = 0; i < data_len; i++) {
        uint8_t c = (uint8_t)(i * 37 + 11);
        b_put(&b, &c, 1);
    }
    return b;
}

/* ---------------------------------------------------------- evil table */

#define T(dt, shape, b, e)                                                  \
    "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e  \
    "]}"

enum gen {
    G_TEXT = 0,  /* hdr text, padded (or unpadded) */
    G_RAW,       /* hdr bytes are the whole file */
    G_N0,        /* N = 0, nothing else */
    G_N100,      /* N = 100, "{}" follows */
    G_NMAX,      /* N = 2^64-1 */
    G_NOVER,     /* N = 100,000,001 */
    G_NCAP,      /* N = 100,000,000: "{}" + spaces */
    G_BIGEND,    /* N written big-endian */
    G_DEPTH100,  /* unknown field nested 100 deep */
    G_DEPTH200,
    G_DEPTH125,  /* 127 open containers in all: the deepest serde accepts */
    G_DEPTH126,  /* 128: the first it refuses */
    G_NCOUNTSDATA, /* N covers the data too */
    G_LONGNAME,  /* 1,000,000-byte name */
    G_RANK10K,   /* rank 10,000 shape of ones */
    G_POLYGLOT,  /* valid file + "PK\x03\x04" */
};

/* Checks run on accepted cases. */
typedef void (*accept_check)(const marlin_st_file *f);

typedef struct evil {
    const char *id;
    const char *what;
    enum gen gen;
    const char *hdr;
    size_t hlen;      /* 0: strlen(hdr) */
    bool unpadded;
    uint64_t data;    /* data bytes after the header */
    marlin_status want;
    const char *tensor; /* tensor the message must name */
    const char *rule;   /* substring of the message */
    char ref;           /* the reference's verdict: 'O'k or 'E'rror */
    accept_check check;
} evil;

static void chk_empty(const marlin_st_file *f) {
    assert_int_equal(marlin_st_count(f), 0);
    assert_int_equal(marlin_st_metadata_count(f), 0);
}
static void chk_emoji(const marlin_st_file *f) {
    assert_int_equal(marlin_st_count(f), 1);
    const marlin_tensor *t = marlin_st_at(f, 0);
    assert_int_equal(t->name_len, 4);
    assert_memory_equal(t->name, "\xF0\x9F\x98\x80", 4);
    assert_ptr_equal(marlin_st_find(f, "\xF0\x9F\x98\x80"), t);
}
static void chk_unknown_field(const marlin_st_file *f) {
    assert_int_equal(marlin_st_count(f), 1);
    assert_non_null(marlin_st_warning(f));
    assert_non_null(strstr(marlin_st_warning(f), "tensor 'a', field 'foo'"));
}
static void chk_a_f32(const marlin_st_file *f) {
    const marlin_tensor *t = marlin_st_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->dtype, MARLIN_DT_F32);
    assert_int_equal(t->rank, 1);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->nbytes, 8);
}
static void chk_f4_f6(const marlin_st_file *f) {
    const marlin_tensor *t = marlin_st_at(f, 0);
    assert_int_equal(marlin_st_count(f), 1);
    assert_true(t->dtype == MARLIN_DT_F4 || t->dtype == MARLIN_DT_F6_E2M3);
    assert_int_equal(t->nbytes, t->dtype == MARLIN_DT_F4 ? 1 : 3);
}
static void chk_empty_tensor(const marlin_st_file *f) {
    const marlin_tensor *t = marlin_st_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(t->rank, 2);
}
static void chk_62(const marlin_st_file *f) {
    assert_int_equal(marlin_st_count(f), 3);
    assert_int_equal(marlin_st_find(f, "e1")->nbytes, 0);
    assert_int_equal(marlin_st_find(f, "e2")->nbytes, 0);
    assert_int_equal(marlin_st_find(f, "f")->nbytes, 8);
}
static void chk_scalar(const marlin_st_file *f) {
    const marlin_tensor *t = marlin_st_find(f, "s");
    assert_non_null(t);
    assert_int_equal(t->rank, 0);
    assert_non_null(t->shape);
    assert_int_equal(t->numel, 1);
    assert_int_equal(t->nbytes, 4);
}
static void chk_meta_null(const marlin_st_file *f) {
    assert_int_equal(marlin_st_metadata_count(f), 0);
    assert_null(marlin_st_metadata_get(f, "format"));
    assert_int_equal(marlin_st_count(f), 1);
}
static void chk_empty_name(const marlin_st_file *f) {
    assert_non_null(marlin_st_find(f, ""));
    assert_int_equal(marlin_st_find(f, "")->name_len, 0);
}
static void chk_nul_name(const marlin_st_file *f) {
    const marlin_tensor *t = marlin_st_at(f, 0);
    assert_int_equal(t->name_len, 3);
    assert_memory_equal(t->name, "a\0b", 4); /* NUL-terminated too */
    assert_null(marlin_st_find(f, "a")); /* "a" != "a\0b" */
}
static void chk_long_name(const marlin_st_file *f) {
    assert_int_equal(marlin_st_count(f), 1);
    assert_int_equal(marlin_st_at(f, 0)->name_len, 1000000);
}
static void chk_order(const marlin_st_file *f) {
    /* listed b, c, a; offsets a < b < c; lookup order is by name */
    assert_int_equal(marlin_st_count(f), 3);
    assert_string_equal(marlin_st_at(f, 0)->name, "a");
    assert_string_equal(marlin_st_at(f, 1)->name, "b");
    assert_string_equal(marlin_st_at(f, 2)->name, "c");
    assert_int_equal(marlin_st_find(f, "a")->begin, 0);
    assert_int_equal(marlin_st_find(f, "b")->begin, 4);
    assert_int_equal(marlin_st_find(f, "c")->begin, 12);
}
static void chk_new_dtypes(const marlin_st_file *f) {
    static const struct { const char *n; marlin_dtype dt; } w[] = {
        {"c64", MARLIN_DT_C64},       {"e4", MARLIN_DT_F8_E4M3},
        {"e4z", MARLIN_DT_F8_E4M3FNUZ}, {"e5", MARLIN_DT_F8_E5M2},
        {"e5z", MARLIN_DT_F8_E5M2FNUZ}, {"e8", MARLIN_DT_F8_E8M0},
        {"u16", MARLIN_DT_U16},       {"u32", MARLIN_DT_U32},
        {"u64", MARLIN_DT_U64}};
    assert_int_equal(marlin_st_count(f), 9);
    for (size_t i = 0; i < 9; i++) {
        const marlin_tensor *t = marlin_st_find(f, w[i].n);
        assert_non_null(t);
        assert_int_equal(t->dtype, w[i].dt);
        assert_int_equal(t->nbytes, 2 * (uint64_t)marlin_dtype_bits(w[i].dt) / 8);
    }
}
static void chk_escaped_dtype(const marlin_st_file *f) { chk_a_f32(f); }

#define A8 "{\"a\":" T("F32", "[2]", "0", "8") "}"

static const evil EVIL[] = {
    {"1", "empty file", G_RAW, "", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "shorter than the 8-byte", 'E', NULL},
    {"2", "7-byte file", G_RAW, "\x02\0\0\0\0\0\0", 7, 0, 0,
     MARLIN_ERR_FORMAT, NULL, "shorter than the 8-byte", 'E', NULL},
    {"3", "N=0, nothing else", G_N0, NULL, 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "no JSON value", 'E', NULL},
    {"4", "N=100 but only {} follows", G_N100, NULL, 0, 0, 0,
     MARLIN_ERR_FORMAT, NULL, "header length 100 exceeds the 2 bytes", 'E',
     NULL},
    {"5", "N=2^64-1", G_NMAX, NULL, 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "exceeds the limit", 'E', NULL},
    {"6", "N=100,000,001", G_NOVER, NULL, 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "exceeds the limit of 100000000", 'E', NULL},
    {"7", "N=100,000,000 (boundary), {} + spaces", G_NCAP, NULL, 0, 0, 0,
     MARLIN_OK, NULL, NULL, 'O', chk_empty},
    {"8", "N written big-endian", G_BIGEND, NULL, 0, 0, 0, MARLIN_ERR_FORMAT,
     NULL, "exceeds the limit", 'E', NULL},
    {"9", "{ + byte 0xFF", G_TEXT, "{\xFF", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "not valid UTF-8", 'E', NULL},
    {"10", "overlong UTF-8 C0 AF in a name", G_TEXT,
     "{\"a\xC0\xAF\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, NULL, "not valid UTF-8", 'E', NULL},
    {"11", "encoded surrogate ED A0 80 in a name", G_TEXT,
     "{\"a\xED\xA0\x80\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, NULL, "not valid UTF-8", 'E', NULL},
    {"12", "UTF-8 BOM before {}", G_TEXT, "\xEF\xBB\xBF{}", 0, 0, 0,
     MARLIN_ERR_FORMAT, NULL, "invalid JSON", 'E', NULL},
    {"13", "leading whitespace", G_TEXT, "\n\t {}", 0, 0, 0, MARLIN_OK, NULL,
     NULL, 'O', chk_empty},
    {"14", "{} padded with NUL", G_TEXT, "{}\0\0\0\0\0\0", 8, true, 0,
     MARLIN_ERR_FORMAT, NULL, "trailing characters", 'E', NULL},
    {"15", "{} padded with \\t\\r\\n and spaces", G_TEXT, "{}\t\r\n   ", 0,
     true, 0, MARLIN_OK, NULL, NULL, 'O', chk_empty},
    {"16a", "{} padded with form feed", G_TEXT, "{}\f     ", 0, true, 0,
     MARLIN_ERR_FORMAT, NULL, "trailing characters", 'E', NULL},
    {"16b", "{} padded with VT", G_TEXT, "{}\v     ", 0, true, 0,
     MARLIN_ERR_FORMAT, NULL, "trailing characters", 'E', NULL},
    {"16c", "{} padded with NBSP", G_TEXT, "{}\xC2\xA0    ", 0, true, 0,
     MARLIN_ERR_FORMAT, NULL, "trailing characters", 'E', NULL},
    {"17", "{} x", G_TEXT, "{} x", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "trailing characters", 'E', NULL},
    {"18", "{}{}", G_TEXT, "{}{}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "trailing characters", 'E', NULL},
    {"19a", "top level []", G_TEXT, "[]", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "header is an array; expected a JSON object", 'E', NULL},
    {"19b", "top level null", G_TEXT, "null", 0, 0, 0, MARLIN_ERR_FORMAT,
     NULL, "header is null; expected a JSON object", 'E', NULL},
    {"20", "comment", G_TEXT, "{/*c*/}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "expected a string key", 'E', NULL},
    {"21", "trailing comma after the last tensor", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",}", 0, 0, 8, MARLIN_ERR_FORMAT,
     NULL, "trailing comma", 'E', NULL},
    {"22", "single-quoted keys", G_TEXT,
     "{'a':" T("F32", "[2]", "0", "8") "}", 0, 0, 8, MARLIN_ERR_FORMAT, NULL,
     "expected a string key", 'E', NULL},
    {"23", "raw newline inside a name", G_TEXT,
     "{\"a\nb\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     NULL, "control character", 'E', NULL},
    {"24", "invalid escape \\x41", G_TEXT,
     "{\"a\\x41\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, NULL, "invalid escape", 'E', NULL},
    {"25", "lone surrogate escape \\ud800", G_TEXT,
     "{\"\\ud800\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, NULL, "surrogate", 'E', NULL},
    {"26", "valid surrogate pair (emoji) as a name", G_TEXT,
     "{\"\\ud83d\\ude00\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_OK, NULL, NULL, 'O', chk_emoji},
    {"27a", "entry without dtype", G_TEXT,
     "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "missing field 'dtype'", 'E', NULL},
    {"27b", "entry without shape", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "missing field 'shape'", 'E', NULL},
    {"27c", "entry without data_offsets", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "missing field 'data_offsets'", 'E', NULL},
    {"28", "dtype repeated", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[0,8]}}", 0, 0, 8, MARLIN_ERR_FORMAT, "a",
     "duplicate field 'dtype'", 'E', NULL},
    {"29", "unknown field foo:1", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"foo\":1,\"shape\":[2],"
     "\"data_offsets\":[0,8]}}", 0, 0, 8, MARLIN_OK, NULL, NULL, 'O',
     chk_unknown_field},
    {"30a", "unknown field nested 100 deep", G_DEPTH100, NULL, 0, 0, 8,
     MARLIN_OK, NULL, NULL, 'O', chk_a_f32},
    {"30b", "unknown field nested 200 deep", G_DEPTH200, NULL, 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "nesting deeper than", 'E', NULL},
    {"30c", "nesting boundary: 127 containers (not in safetensors.md)",
     G_DEPTH125, NULL, 0, 0, 8, MARLIN_OK, NULL, NULL, 'O', chk_a_f32},
    {"30d", "nesting boundary: 128 containers (not in safetensors.md)",
     G_DEPTH126, NULL, 0, 0, 8, MARLIN_ERR_FORMAT, "a",
     "nesting deeper than 127", 'E', NULL},
    {"31a", "dtype f32", G_TEXT, "{\"a\":" T("f32", "[2]", "0", "8") "}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "unknown dtype 'f32'", 'E', NULL},
    {"31b", "dtype Q4_0", G_TEXT, "{\"a\":" T("Q4_0", "[2]", "0", "8") "}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "unknown dtype 'Q4_0'", 'E', NULL},
    {"31c", "dtype F8_E4M3FN", G_TEXT,
     "{\"a\":" T("F8_E4M3FN", "[8]", "0", "8") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "unknown dtype 'F8_E4M3FN'", 'E', NULL},
    {"32", "dtype 7 (number)", G_TEXT,
     "{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "dtype is a number", 'E', NULL},
    {"33", "dtype written with escapes", G_TEXT,
     "{\"a\":" T("\\u0046\\u0033\\u0032", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_OK, NULL, NULL, 'O', chk_escaped_dtype},
    {"34", "key d\\u0074ype", G_TEXT,
     "{\"a\":{\"d\\u0074ype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     0, 0, 8, MARLIN_OK, NULL, NULL, 'O', chk_a_f32},
    {"35", "entry value is a string", G_TEXT, "{\"a\":\"F32\"}", 0, 0, 0,
     MARLIN_ERR_FORMAT, "a", "entry is a string", 'E', NULL},
    {"36", "shape [-2]", G_TEXT, "{\"a\":" T("F32", "[-2]", "0", "8") "}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "shape[0] = -2 is negative", 'E', NULL},
    {"37a", "shape [2.0]", G_TEXT, "{\"a\":" T("F32", "[2.0]", "0", "8") "}",
     0, 0, 8, MARLIN_ERR_FORMAT, "a", "shape[0] is not an integer", 'E',
     NULL},
    {"37b", "shape [2e0]", G_TEXT, "{\"a\":" T("F32", "[2e0]", "0", "8") "}",
     0, 0, 8, MARLIN_ERR_FORMAT, "a", "shape[0] is not an integer", 'E',
     NULL},
    {"37c", "shape [1e400]", G_TEXT,
     "{\"a\":" T("F32", "[1e400]", "0", "8") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "shape[0] is not an integer", 'E', NULL},
    {"38a", "shape [\"2\"]", G_TEXT,
     "{\"a\":" T("F32", "[\"2\"]", "0", "8") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "shape[0] is a string", 'E', NULL},
    {"38b", "shape null", G_TEXT, "{\"a\":" T("F32", "null", "0", "8") "}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "shape is null", 'E', NULL},
    {"38c", "shape [[1]]", G_TEXT, "{\"a\":" T("F32", "[[1]]", "0", "8") "}",
     0, 0, 8, MARLIN_ERR_FORMAT, "a", "shape[0] is an array", 'E', NULL},
    {"39", "shape [-0, 2]", G_TEXT,
     "{\"a\":" T("F32", "[-0,2]", "0", "8") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "shape[0] = -0 is negative", 'E', NULL},
    {"40", "shape [02]", G_TEXT, "{\"a\":" T("F32", "[02]", "0", "8") "}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "shape[0] has a leading zero", 'E', NULL},
    {"41a", "data_offsets [0,8,8]", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 0,
     0, 8, MARLIN_ERR_FORMAT, "a", "data_offsets has more than 2", 'E', NULL},
    {"41b", "data_offsets [8]", G_TEXT,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 0, 0,
     8, MARLIN_ERR_FORMAT, "a", "data_offsets has 1 element;", 'E', NULL},
    {"42a", "data_offsets [-8,0]", G_TEXT,
     "{\"a\":" T("F32", "[2]", "-8", "0") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "data_offsets[0] = -8 is negative", 'E', NULL},
    {"42b", "data_offsets [0.0,8.0]", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0.0", "8.0") "}", 0, 0, 8, MARLIN_ERR_FORMAT,
     "a", "data_offsets[0] is not an integer", 'E', NULL},
    {"43", "data_offsets [0, 2^64]", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "18446744073709551616") "}", 0, 0, 8,
     MARLIN_ERR_FORMAT, "a", "data_offsets[1] exceeds 2^64-1", 'E', NULL},
    {"44", "U8 [2^53+1] read exactly, 1 data byte", G_TEXT,
     "{\"a\":" T("U8", "[9007199254740993]", "0", "9007199254740993") "}", 0,
     0, 1, MARLIN_ERR_FORMAT, "a",
     "data_offsets [0, 9007199254740993) run past the end of the data "
     "buffer (1 bytes", 'E', NULL},
    {"45", "NaN inside shape", G_TEXT, "{\"a\":" T("F32", "[NaN]", "0", "8")
     "}", 0, 0, 8, MARLIN_ERR_FORMAT, "a", "invalid JSON", 'E', NULL},
    {"46", "data_offsets [8,0] (reversed)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "8", "0") "}", 0, 0, 8, MARLIN_ERR_FORMAT, "a",
     "reversed", 'E', NULL},
    {"47", "only tensor at [8,16] (gap at start)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "8", "16") "}", 0, 0, 16, MARLIN_ERR_FORMAT,
     "a", "leave bytes [0, 8) of the data buffer unused", 'E', NULL},
    {"48", "a [0,8], b [16,24] (hole)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "16", "24")
     "}", 0, 0, 24, MARLIN_ERR_FORMAT, "b",
     "leave bytes [8, 16) unused after tensor 'a'", 'E', NULL},
    {"49", "a [0,8], b [4,12] (overlap)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "4", "12")
     "}", 0, 0, 12, MARLIN_ERR_FORMAT, "b", "overlap tensor 'a' [0, 8)", 'E',
     NULL},
    {"50", "a and b both [0,8] (aliasing)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "0", "8")
     "}", 0, 0, 8, MARLIN_ERR_FORMAT, "b", "overlap tensor 'a' [0, 8)", 'E',
     NULL},
    {"51", "valid file + PK\\x03\\x04 appended (polyglot)", G_POLYGLOT, NULL, 0,
     0, 0, MARLIN_ERR_FORMAT, NULL, "4 trailing bytes after the last tensor",
     'E', NULL},
    {"52", "data one byte short", G_TEXT, A8, 0, 0, 7, MARLIN_ERR_FORMAT, "a",
     "run past the end of the data buffer (7 bytes", 'E', NULL},
    {"53", "{} + one data byte", G_TEXT, "{}", 0, 0, 1, MARLIN_ERR_FORMAT,
     NULL, "1 trailing byte after the last tensor", 'E', NULL},
    {"54", "N counts the data too", G_NCOUNTSDATA, NULL, 0, 0, 0,
     MARLIN_ERR_FORMAT, NULL, "trailing characters", 'E', NULL},
    {"55", "T(F32,[3],0,8)", G_TEXT, "{\"a\":" T("F32", "[3]", "0", "8") "}",
     0, 0, 8, MARLIN_ERR_FORMAT, "a",
     "data_offsets [0, 8) do not match shape [3] x F32 (12 bytes)", 'E',
     NULL},
    {"56", "T(I32,[2,2^64-2],0,16)", G_TEXT,
     "{\"a\":" T("I32", "[2,18446744073709551614]", "0", "16") "}", 0, 0, 16,
     MARLIN_ERR_FORMAT, "a", "more than 2^64-1 elements", 'E', NULL},
    {"57", "T(I32,[2,2^61],0,16) (bit count overflows)", G_TEXT,
     "{\"a\":" T("I32", "[2,2305843009213693952]", "0", "16") "}", 0, 0, 16,
     MARLIN_ERR_FORMAT, "a", "overflows 64-bit arithmetic", 'E', NULL},
    {"58", "T(F32,[4194305,4194305,211106198978564],0,16)", G_TEXT,
     "{\"a\":" T("F32", "[4194305,4194305,211106198978564]", "0", "16") "}",
     0, 0, 16, MARLIN_ERR_FORMAT, "a", "more than 2^64-1 elements", 'E',
     NULL},
    {"59", "T(F4,[3],0,2) (12 bits)", G_TEXT,
     "{\"a\":" T("F4", "[3]", "0", "2") "}", 0, 0, 2, MARLIN_ERR_FORMAT, "a",
     "12 bits, not a whole number of bytes", 'E', NULL},
    {"60a", "T(F4,[2],0,1)", G_TEXT, "{\"a\":" T("F4", "[2]", "0", "1") "}",
     0, 0, 1, MARLIN_OK, NULL, NULL, 'O', chk_f4_f6},
    {"60b", "F6 [4] -> 3 bytes", G_TEXT,
     "{\"a\":" T("F6_E2M3", "[4]", "0", "3") "}", 0, 0, 3, MARLIN_OK, NULL,
     NULL, 'O', chk_f4_f6},
    {"61", "T(I32,[2,0],0,0) (empty tensor)", G_TEXT,
     "{\"a\":" T("I32", "[2,0]", "0", "0") "}", 0, 0, 0, MARLIN_OK, NULL,
     NULL, 'O', chk_empty_tensor},
    {"62", "two empty tensors at [0,0] + F32 [0,8]", G_TEXT,
     "{\"e1\":" T("I32", "[0]", "0", "0") ",\"e2\":" T("F16", "[3,0]", "0",
     "0") ",\"f\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8, MARLIN_OK, NULL,
     NULL, 'O', chk_62},
    {"63", "a [0,8], empty z at [4,4] (inside a)", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"z\":" T("F32", "[0]", "4", "4")
     "}", 0, 0, 8, MARLIN_ERR_FORMAT, "z", "overlap tensor 'a' [0, 8)", 'E',
     NULL},
    {"64a", "scalar T(I32,[],0,4)", G_TEXT,
     "{\"s\":" T("I32", "[]", "0", "4") "}", 0, 0, 4, MARLIN_OK, NULL, NULL,
     'O', chk_scalar},
    {"64b", "scalar T(I32,[],0,0)", G_TEXT,
     "{\"s\":" T("I32", "[]", "0", "0") "}", 0, 0, 0, MARLIN_ERR_FORMAT, "s",
     "do not match shape [] x I32 (4 bytes)", 'E', NULL},
    {"65", "{} with 0 data bytes", G_TEXT, "{}", 0, 0, 0, MARLIN_OK, NULL,
     NULL, 'O', chk_empty},
    {"66", "duplicate name, identical entries", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"a\":" T("F32", "[2]", "0", "8")
     "}", 0, 0, 8, MARLIN_ERR_FORMAT, "a", "duplicate key", 'O', NULL},
    {"67", "duplicate name, F32 then I32, same range", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"a\":" T("I32", "[2]", "0", "8")
     "}", 0, 0, 8, MARLIN_ERR_FORMAT, "a", "duplicate key", 'O', NULL},
    {"68", "duplicate name, ranges [0,8] and [8,16]", G_TEXT,
     "{\"a\":" T("F32", "[2]", "0", "8") ",\"a\":" T("F32", "[2]", "8", "16")
     "}", 0, 0, 16, MARLIN_ERR_FORMAT, "a", "duplicate key", 'E', NULL},
    {"69", "__metadata__ twice", G_TEXT,
     "{\"__metadata__\":{\"format\":\"pt\"},\"__metadata__\":{\"format\":"
     "\"pt\"}}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "duplicate key '__metadata__'", 'E', NULL},
    {"70", "__metadata__ with a repeated inner key", G_TEXT,
     "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0, 0,
     MARLIN_ERR_FORMAT, NULL, "__metadata__: duplicate key 'k'", 'O', NULL},
    {"71a", "__metadata__ value a number", G_TEXT,
     "{\"__metadata__\":{\"k\":1}}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "__metadata__: value of 'k' is a number; expected a string", 'E', NULL},
    {"71b", "__metadata__ value a nested object", G_TEXT,
     "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, 0, 0, MARLIN_ERR_FORMAT,
     NULL, "value of 'k' is an object", 'E', NULL},
    {"71c", "__metadata__ value null", G_TEXT,
     "{\"__metadata__\":{\"k\":null}}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "value of 'k' is null", 'E', NULL},
    {"71d", "__metadata__ value an array", G_TEXT,
     "{\"__metadata__\":{\"k\":[\"x\"]}}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "value of 'k' is an array", 'E', NULL},
    {"71e", "__metadata__ itself a number", G_TEXT, "{\"__metadata__\":1}", 0,
     0, 0, MARLIN_ERR_FORMAT, NULL, "__metadata__: is a number", 'E', NULL},
    {"71f", "__metadata__ itself an array", G_TEXT,
     "{\"__metadata__\":[\"x\"]}", 0, 0, 0, MARLIN_ERR_FORMAT, NULL,
     "__metadata__: is an array", 'E', NULL},
    {"72", "__metadata__ null", G_TEXT,
     "{\"__metadata__\":null,\"a\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8,
     MARLIN_OK, NULL, NULL, 'O', chk_meta_null},
    {"73", "__metadata__ holding a tensor entry", G_TEXT,
     "{\"__metadata__\":{\"a\":" T("F32", "[2]", "0", "8") "}}", 0, 0, 8,
     MARLIN_ERR_FORMAT, NULL, "value of 'a' is an object", 'E', NULL},
    {"74", "key __METADATA__ with a string map", G_TEXT,
     "{\"__METADATA__\":{\"format\":\"pt\"}}", 0, 0, 0, MARLIN_ERR_FORMAT,
     "__METADATA__", "missing field 'dtype'", 'E', NULL},
    {"75", "empty name", G_TEXT, "{\"\":" T("F32", "[2]", "0", "8") "}", 0, 0,
     8, MARLIN_OK, NULL, NULL, 'O', chk_empty_name},
    {"76", "name a\\u0000b", G_TEXT,
     "{\"a\\u0000b\":" T("F32", "[2]", "0", "8") "}", 0, 0, 8, MARLIN_OK,
     NULL, NULL, 'O', chk_nul_name},
    {"77", "1,000,000-byte name", G_LONGNAME, NULL, 0, 0, 8, MARLIN_OK, NULL,
     NULL, 'O', chk_long_name},
    {"78", "rank 10,000 shape of ones", G_RANK10K, NULL, 0, 0, 4,
     MARLIN_ERR_FORMAT, "a", "more than 64 dimensions", 'O', NULL},
    {"79", "unpadded header", G_TEXT, A8, 0, true, 8, MARLIN_OK, NULL, NULL,
     'O', chk_a_f32},
    {"80", "listing order differs from offset order", G_TEXT,
     "{\"b\":" T("F32", "[2]", "4", "12") ",\"c\":" T("U8", "[3]", "12", "15")
     ",\"a\":" T("I32", "[1]", "0", "4") "}", 0, 0, 15, MARLIN_OK, NULL,
     NULL, 'O', chk_order},
    {"81", "every new dtype", G_TEXT,
     "{\"e5\":" T("F8_E5M2", "[2]", "0", "2")
     ",\"e4\":" T("F8_E4M3", "[2]", "2", "4")
     ",\"e8\":" T("F8_E8M0", "[2]", "4", "6")
     ",\"e4z\":" T("F8_E4M3FNUZ", "[2]", "6", "8")
     ",\"e5z\":" T("F8_E5M2FNUZ", "[2]", "8", "10")
     ",\"c64\":" T("C64", "[2]", "10", "26")
     ",\"u16\":" T("U16", "[2]", "26", "30")
     ",\"u32\":" T("U32", "[2]", "30", "38")
     ",\"u64\":" T("U64", "[2]", "38", "54") "}", 0, 0, 54, MARLIN_OK, NULL,
     NULL, 'O', chk_new_dtypes},
};
#define N_EVIL (sizeof EVIL / sizeof EVIL[0])

/* The bytes of one case. */
static buf evil_bytes(const evil *c) {
    buf b = {0}, h = {0};
    switch (c->gen) {
    case G_TEXT:
        return image(c->hdr, c->hlen ? c->hlen : strlen(c->hdr), c->unpadded,
                     c->data);
    case G_RAW:
        b_put(&b, c->hdr, c->hlen);
        if (!b.p) { /* never hand NULL to fwrite */
            b.p = malloc(1);
            assert_non_null(b.p);
        }
        return b;
    case G_N0:
        b_u64le(&b, 0);
        return b;
    case G_N100:
        b_u64le(&b, 100);
        b_str(&b, "{}");
        return b;
    case G_NMAX:
        b_u64le(&b, UINT64_MAX);
        b_str(&b, "{}");
        return b;
    case G_NOVER:
        b_u64le(&b, 100000001);
        b_str(&b, "{}");
        return b;
    case G_NCAP:
        b_u64le(&b, 100000000);
        b_str(&b, "{}");
        b.p = realloc(b.p, 8 + 100000000);
        assert_non_null(b.p);
        b.cap = 8 + 100000000;
        memset(b.p + 10, ' ', 100000000 - 2);
        b.n = 8 + 100000000;
        return b;
    case G_POLYGLOT:
        b = image(A8, strlen(A8), false, 8);
        b_put(&b, "PK\x03\x04", 4);
        return b;
    case G_BIGEND: {
        uint8_t be[8] = {0, 0, 0, 0, 0, 0, 0, 8};
        b_put(&b, be, 8);
        b_str(&b, "{}      ");
        return b;
    }
    case G_DEPTH100:
    case G_DEPTH200:
    case G_DEPTH125:
    case G_DEPTH126: {
        int k = c->gen == G_DEPTH100   ? 100
                : c->gen == G_DEPTH200 ? 200
                : c->gen == G_DEPTH125 ? 125
                                       : 126;
        b_str(&h, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                  "\"data_offsets\":[0,8],\"foo\":");
        for (int i = 0; i < k; i++) b_str(&h, "[");
        for (int i = 0; i < k; i++) b_str(&h, "]");
        b_str(&h, "}}");
        break;
    }
    case G_NCOUNTSDATA: {
        const char *j = A8;
        size_t pad = (8 - strlen(j) % 8) % 8;
        b_u64le(&b, strlen(j) + pad + 8);
        b_str(&b, j);
        for (size_t i = 0; i < pad; i++) b_str(&b, " ");
        b_str(&b, "\1\2\3\4\5\6\7\10");
        return b;
    }
    case G_LONGNAME:
        b_str(&h, "{\"");
        for (int i = 0; i < 1000000; i++) b_put(&h, "n", 1);
        b_str(&h, "\":" T("F32", "[2]", "0", "8") "}");
        break;
    case G_RANK10K:
        b_str(&h, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1");
        for (int i = 1; i < 10000; i++) b_str(&h, ",1");
        b_str(&h, "],\"data_offsets\":[0,4]}}");
        break;
    }
    b = image(h.p, h.n, c->unpadded, c->data);
    free(h.p);
    return b;
}

/* The verdict for one image: status, message contents, accept checks. */
static void expect_verdict(const evil *c, marlin_status rc,
                           const marlin_st_file *f, const marlin_error *e,
                           const char *label, const char *path_kind) {
    if (rc != c->want) {
        print_error("case %s (%s) via %s: status %d (%s), want %d; msg: %s\n",
                    c->id, c->what, path_kind, rc, marlin_status_str(rc),
                    c->want, rc ? e->msg : "-");
        fail();
    }
    if (rc == MARLIN_OK) {
        assert_non_null(f);
        if (c->check) c->check(f);
        return;
    }
    assert_null(f);
    assert_int_equal(e->code, c->want);
    if (strncmp(e->msg, label, strlen(label)) != 0 ||
        e->msg[strlen(label)] != ':') {
        print_error("case %s: message does not name the file '%s': %s\n",
                    c->id, label, e->msg);
        fail();
    }
    if (c->tensor) {
        char want[128];
        snprintf(want, sizeof want, ": tensor '%s': ", c->tensor);
        if (!strstr(e->msg, want)) {
            print_error("case %s: message does not name tensor '%s': %s\n",
                        c->id, c->tensor, e->msg);
            fail();
        }
    } else if (strstr(e->msg, ": tensor '")) {
        print_error("case %s: unexpected tensor blame: %s\n", c->id, e->msg);
        fail();
    }
    if (c->rule && !strstr(e->msg, c->rule)) {
        print_error("case %s: message lacks '%s': %s\n", c->id, c->rule,
                    e->msg);
        fail();
    }
    if (strchr(e->msg, '\n')) {
        print_error("case %s: message is not one line: %s\n", c->id, e->msg);
        fail();
    }
}

static void test_safetensors_evil_parse(void **state) {
    (void)state;
    for (size_t i = 0; i < N_EVIL; i++) {
        const evil *c = &EVIL[i];
        char label[64];
        buf b = evil_bytes(c);
        marlin_st_file *f = (marlin_st_file *)&b; /* must be reset to NULL */
        marlin_error e;
        snprintf(label, sizeof label, "case%s.safetensors", c->id);
        marlin_error_clear(&e);
        marlin_status rc = marlin_st_parse(b.p, b.n, label, &f, &e);
        expect_verdict(c, rc, f, &e, label, "parse");
        marlin_st_close(f);
        free(b.p);
    }
}

static void test_safetensors_evil_open(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("st-evil");
    assert_non_null(dir);
    for (size_t i = 0; i < N_EVIL; i++) {
        const evil *c = &EVIL[i];
        char path[512];
        buf b = evil_bytes(c);
        marlin_st_file *f = NULL;
        marlin_error e;
        snprintf(path, sizeof path, "%s/case%s.safetensors", dir, c->id);
        assert_int_equal(marlin_write_file(path, b.p, b.n), 0);
        free(b.p);
        marlin_error_clear(&e);
        marlin_status rc = marlin_st_open(path, &f, &e);
        expect_verdict(c, rc, f, &e, path, "open");
        marlin_st_close(f);
        unlink(path);
    }
    marlin_rmtree(dir);
    free(dir);
}

/* Python's safetensors (the reference) on the same bytes must give the
 * reference verdict of the table: this checks that the table's byte
 * recipes are the cases safetensors.md measured. */
static void test_safetensors_evil_reference(void **state) {
    (void)state;
    if (!marlin_have_python_modules("safetensors")) {
        print_message("skipped: python3 with safetensors is not available\n");
        skip();
    }
    char *dir = marlin_test_tmpdir("st-ref");
    assert_non_null(dir);
    char path[512], out[512];
    for (size_t i = 0; i < N_EVIL; i++) {
        buf b = evil_bytes(&EVIL[i]);
        snprintf(path, sizeof path, "%s/%s.st", dir, EVIL[i].id);
        assert_int_equal(marlin_write_file(path, b.p, b.n), 0);
        free(b.p);
    }
    snprintf(out, sizeof out, "%s/verdicts.txt", dir);
    int rc = marlin_test_system(
        "cd '%s' && python3 -c '\n"
        "import glob, safetensors\n"
        "for p in sorted(glob.glob(\"*.st\")):\n"
        "    try:\n"
        "        safetensors.deserialize(open(p, \"rb\").read())\n"
        "        print(p[:-3], \"O\")\n"
        "    except Exception as e:\n"
        "        print(p[:-3], \"E\", str(e).replace(chr(10), \" \")[:200])\n"
        "' > '%s'",
        dir, out);
    assert_int_equal(rc, 0);
    FILE *fp = fopen(out, "r");
    assert_non_null(fp);
    char line[512];
    size_t seen = 0;
    while (fgets(line, sizeof line, fp)) {
        char id[16], v;
        assert_int_equal(sscanf(line, "%15s %c", id, &v), 2);
        for (size_t i = 0; i < N_EVIL; i++) {
            if (strcmp(EVIL[i].id, id) != 0) continue;
            seen++;
            if (EVIL[i].ref != v) {
                print_error("case %s (%s): reference says %c, table says %c: "
                            "%s",
                            id, EVIL[i].what, v, EVIL[i].ref, line);
                fail();
            }
        }
    }
    fclose(fp);
    assert_int_equal(seen, N_EVIL);
    marlin_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ dtypes */

static void test_safetensors_dtype_table(void **state) {
    (void)state;
    static const char *names[] = {
        "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
        "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16",
        "I32", "U32", "F32", "C64", "F64", "I64", "U64"};
    static const int bits[] = {8,  4,  6,  6,  8,  8,  8,  8,  8,  8,  8,
                               16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64};
    assert_int_equal(MARLIN_DT_COUNT, 22);
    for (int i = 0; i < MARLIN_DT_COUNT; i++) {
        marlin_dtype dt;
        assert_string_equal(marlin_dtype_name((marlin_dtype)i), names[i]);
        assert_int_equal(marlin_dtype_bits((marlin_dtype)i), bits[i]);
        assert_true(marlin_dtype_parse(names[i], strlen(names[i]), &dt));
        assert_int_equal(dt, i);
        /* a prefix or an extension is not a dtype */
        assert_false(marlin_dtype_parse(names[i], strlen(names[i]) - 1, &dt));
    }
    static const char *bad[] = {"f32", "F8_E4M3FN", "Q4_0", "", "F16 ",
                                "bf16", "FP16", "F32\0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(marlin_dtype_parse(bad[i], strlen(bad[i]) + (i == 7), NULL));
    assert_string_equal(marlin_dtype_name(MARLIN_DT_COUNT), "?");
    assert_int_equal(marlin_dtype_bits(MARLIN_DT_COUNT), 0);
}

/* ----------------------------------------------------- valid, all dtypes */

/* Writes a header for `n` tensors listed in the given order with offsets
 * assigned in the given order, then the data. */
typedef struct spec {
    const char *name;
    marlin_dtype dt;
    int rank;
    uint64_t shape[4];
} spec;

static uint64_t spec_bytes(const spec *s) {
    uint64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->shape[i];
    return n * (uint64_t)marlin_dtype_bits(s->dt) / 8;
}

static buf build(const spec *s, size_t n, const char *meta, uint8_t fill) {
    buf h = {0};
    uint64_t off = 0;
    b_str(&h, "{");
    if (meta) b_fmt(&h, "\"__metadata__\":%s%s", meta, n ? "," : "");
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = spec_bytes(&s[i]);
        b_fmt(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
              s[i].name, marlin_dtype_name(s[i].dt));
        for (int d = 0; d < s[i].rank; d++)
            b_fmt(&h, "%s%llu", d ? "," : "", (unsigned long long)s[i].shape[d]);
        b_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
              (unsigned long long)(off + nb));
        off += nb;
    }
    b_str(&h, "}");
    buf b = image(h.p, h.n, false, 0);
    for (uint64_t i = 0; i < off; i++) {
        uint8_t c = (uint8_t)(i * 13 + fill);
        b_put(&b, &c, 1);
    }
    free(h.p);
    return b;
}

static void test_safetensors_all_dtypes(void **state) {
    (void)state;
    spec s[MARLIN_DT_COUNT];
    char names[MARLIN_DT_COUNT][24];
    for (int i = 0; i < MARLIN_DT_COUNT; i++) {
        /* listed in reverse name order to exercise the sort */
        snprintf(names[i], sizeof names[i], "t%02d.%s", MARLIN_DT_COUNT - i,
                 marlin_dtype_name((marlin_dtype)i));
        s[i].name = names[i];
        s[i].dt = (marlin_dtype)i;
        s[i].rank = 2;
        s[i].shape[0] = 3;
        s[i].shape[1] = 4; /* 12 elements: whole bytes for F4 and F6 */
    }
    buf b = build(s, MARLIN_DT_COUNT, "{\"format\":\"pt\",\"a\":\"b\"}", 5);
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_parse(b.p, b.n, "all.safetensors", &f, &e),
                     MARLIN_OK);
    assert_string_equal(marlin_st_label(f), "all.safetensors");
    assert_int_equal(marlin_st_count(f), MARLIN_DT_COUNT);
    assert_null(marlin_st_at(f, MARLIN_DT_COUNT));
    assert_null(marlin_st_warning(f));
    for (size_t i = 1; i < marlin_st_count(f); i++)
        assert_true(strcmp(marlin_st_at(f, i - 1)->name,
                           marlin_st_at(f, i)->name) < 0);
    for (int i = 0; i < MARLIN_DT_COUNT; i++) {
        const marlin_tensor *t = marlin_st_find(f, names[i]);
        assert_non_null(t);
        assert_int_equal(t->dtype, i);
        assert_int_equal(t->rank, 2);
        assert_int_equal(t->shape[0], 3);
        assert_int_equal(t->shape[1], 4);
        assert_int_equal(t->numel, 12);
        assert_int_equal(t->nbytes, 12 * marlin_dtype_bits(t->dtype) / 8);
        assert_int_equal(t->end - t->begin, t->nbytes);
        /* the view and the copy see the same bytes */
        uint8_t tmp[96];
        assert_int_equal(marlin_st_read(f, t, 0, t->nbytes, tmp, &e),
                         MARLIN_OK);
        assert_memory_equal(tmp, marlin_st_data(f, t), t->nbytes);
        for (uint64_t k = 0; k < t->nbytes; k++)
            assert_int_equal(tmp[k], (uint8_t)((t->begin + k) * 13 + 5));
    }
    assert_null(marlin_st_find(f, "t01"));
    assert_null(marlin_st_find(f, "zzz"));
    assert_int_equal(marlin_st_metadata_count(f), 2);
    const char *k, *v;
    marlin_st_metadata_at(f, 0, &k, &v);
    assert_string_equal(k, "a");
    assert_string_equal(v, "b");
    marlin_st_metadata_at(f, 1, &k, &v);
    assert_string_equal(k, "format");
    assert_string_equal(v, "pt");
    marlin_st_metadata_at(f, 2, &k, &v);
    assert_null(k);
    assert_null(v);
    assert_string_equal(marlin_st_metadata_get(f, "format"), "pt");
    assert_null(marlin_st_metadata_get(f, "formats"));
    marlin_st_close(f);
    free(b.p);
}

/* Argument checking on the read API: ranges, foreign tensors, NULLs. */
static void test_safetensors_read_bounds(void **state) {
    (void)state;
    spec s[2] = {{"a", MARLIN_DT_F32, 1, {4}}, {"b", MARLIN_DT_I8, 1, {3}}};
    buf b1 = build(s, 2, NULL, 1), b2 = build(s, 2, NULL, 2);
    marlin_st_file *f1 = NULL, *f2 = NULL;
    marlin_error e;
    uint8_t tmp[16];
    assert_int_equal(marlin_st_parse(b1.p, b1.n, "one", &f1, &e), MARLIN_OK);
    assert_int_equal(marlin_st_parse(b2.p, b2.n, "two", &f2, &e), MARLIN_OK);
    const marlin_tensor *a = marlin_st_find(f1, "a");
    assert_int_equal(marlin_st_read(f1, a, 4, 12, tmp, &e), MARLIN_OK);
    assert_int_equal(marlin_st_read(f1, a, 16, 0, NULL, &e), MARLIN_OK);
    assert_int_equal(marlin_st_read(f1, a, 4, 13, tmp, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "one: tensor 'a': read of 13 bytes at "
                                  "offset 4 exceeds its 16 bytes"));
    assert_int_equal(marlin_st_read(f1, a, UINT64_MAX, 2, tmp, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_st_read(f1, a, 0, 4, NULL, &e),
                     MARLIN_ERR_INVALID_ARG);
    /* a tensor of f1 used with f2 */
    assert_int_equal(marlin_st_read(f2, a, 0, 4, tmp, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "another file"));
    assert_null(marlin_st_data(f2, a));
    assert_int_equal(marlin_st_read_f32(f2, a, (float *)(void *)tmp, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_st_read(f1, NULL, 0, 0, tmp, &e),
                     MARLIN_ERR_INVALID_ARG);
    /* an unsupported dtype for fp32 reads names the tensor */
    float fl[4];
    assert_int_equal(marlin_st_read_f32(f1, marlin_st_find(f1, "b"), fl, &e),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "one: tensor 'b': dtype I8"));
    /* NULL-tolerant accessors */
    marlin_st_close(NULL);
    assert_int_equal(marlin_st_count(NULL), 0);
    assert_null(marlin_st_at(NULL, 0));
    assert_null(marlin_st_find(NULL, "a"));
    assert_null(marlin_st_find(f1, NULL));
    assert_null(marlin_st_label(NULL));
    assert_null(marlin_st_metadata_get(NULL, "x"));
    marlin_st_file *f3 = NULL;
    assert_int_equal(marlin_st_parse(NULL, 8, "x", &f3, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_null(f3);
    marlin_st_close(f1);
    marlin_st_close(f2);
    free(b1.p);
    free(b2.p);
}

/* Escapes are decoded in names and metadata, which are stored with their
 * lengths. */
static void test_safetensors_escapes(void **state) {
    (void)state;
    const char *h =
        "{\"__metadata__\":{\"k\\u00e9y\":\"v\\\"a\\\\l\\/\\n\\t\"},"
        "\"a\\\"q\\\\b/\\u00e9\\u4e2d\\ud834\\udd1e\":"
        "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    buf b = image(h, strlen(h), false, 1);
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_parse(b.p, b.n, "esc", &f, &e), MARLIN_OK);
    const char *want = "a\"q\\b/\xC3\xA9\xE4\xB8\xAD\xF0\x9D\x84\x9E";
    const marlin_tensor *t = marlin_st_find(f, want);
    assert_non_null(t);
    assert_int_equal(t->name_len, strlen(want));
    assert_string_equal(marlin_st_metadata_get(f, "k\xC3\xA9y"),
                        "v\"a\\l/\n\t");
    marlin_st_close(f);
    free(b.p);
}

/* Error messages render hostile names printably and one line long. */
static void test_safetensors_message_names(void **state) {
    (void)state;
    buf h = {0};
    b_str(&h, "{\"bad\\n\\u0001name");
    for (int i = 0; i < 2000; i++) b_str(&h, "x");
    b_str(&h, "\":" T("F32", "[3]", "0", "8") "}");
    buf b = image(h.p, h.n, false, 8);
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_parse(b.p, b.n, "m", &f, &e),
                     MARLIN_ERR_FORMAT);
    assert_null(strchr(e.msg, '\n'));
    assert_non_null(strstr(e.msg, "m: tensor 'bad\\x0a\\x01namexxx"));
    assert_non_null(strstr(e.msg, "...': data_offsets [0, 8) do not match"));
    assert_true(strlen(e.msg) < 600);
    free(h.p);
    free(b.p);
}

/* -------------------------------------------------------- fp32 reads */

static uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* read_f32 over every F16 and BF16 bit pattern, and random F32, from a
 * file (pread path), an aligned buffer and an unaligned buffer. */
static void test_safetensors_read_f32_exact(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(2024);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    enum { N = 65536 + 7 }; /* + a tail that is not a multiple of 8 */
    static const marlin_dtype dts[3] = {MARLIN_DT_F16, MARLIN_DT_BF16,
                                        MARLIN_DT_F32};
    char *dir = marlin_test_tmpdir("st-f32");
    assert_non_null(dir);
    for (int k = 0; k < 3; k++) {
        marlin_dtype dt = dts[k];
        size_t esz = (size_t)marlin_dtype_bits(dt) / 8;
        uint8_t *raw = malloc(N * esz);
        float *want = malloc(N * sizeof *want), *got = malloc(N * sizeof *got);
        assert_non_null(raw);
        assert_non_null(want);
        assert_non_null(got);
        for (uint32_t i = 0; i < N; i++) {
            if (esz == 2) {
                uint16_t h = (uint16_t)(i < 65536 ? i : marlin_rng_u64(&r));
                memcpy(raw + 2 * i, &h, 2);
                want[i] = dt == MARLIN_DT_F16 ? marlin_half_to_float(h)
                                              : marlin_bf16_to_float(h);
            } else {
                uint32_t u = (uint32_t)marlin_rng_u64(&r);
                memcpy(raw + 4 * i, &u, 4);
                memcpy(&want[i], &u, 4);
            }
        }
        /* a 1-byte U8 tensor first so that the F16 data starts at an odd
         * offset inside the data buffer, plus a parity flip of the image */
        char h[256];
        snprintf(h, sizeof h,
                 "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
                 "[0,1]},\"x\":{\"dtype\":\"%s\",\"shape\":[%d],"
                 "\"data_offsets\":[1,%zu]}}",
                 marlin_dtype_name(dt), N, 1 + N * esz);
        buf b = image(h, strlen(h), false, 0);
        b_put(&b, "\x42", 1);
        b_put(&b, raw, N * esz);
        for (int shift = 0; shift < 3; shift++) {
            marlin_st_file *f = NULL;
            marlin_error e;
            uint8_t *img = NULL;
            char path[512];
            if (shift < 2) {
                /* shift 0: data at an odd address; 1: even address */
                img = malloc(b.n + 1);
                assert_non_null(img);
                memcpy(img + shift, b.p, b.n);
                assert_int_equal(marlin_st_parse(img + shift, b.n, "mem", &f, &e),
                                 MARLIN_OK);
            } else {
                snprintf(path, sizeof path, "%s/x.safetensors", dir);
                assert_int_equal(marlin_write_file(path, b.p, b.n), 0);
                assert_int_equal(marlin_st_open(path, &f, &e), MARLIN_OK);
            }
            const marlin_tensor *t = marlin_st_find(f, "x");
            assert_non_null(t);
            memset(got, 0xff, N * sizeof *got);
            assert_int_equal(marlin_st_read_f32(f, t, got, &e), MARLIN_OK);
            for (uint32_t i = 0; i < N; i++)
                MT_ASSERT(seed, f2u(got[i]) == f2u(want[i]) ||
                                    (isnan(got[i]) && isnan(want[i])),
                          "%s shift %d element %u: got 0x%08x want 0x%08x",
                          marlin_dtype_name(dt), shift, i, f2u(got[i]),
                          f2u(want[i]));
            marlin_st_close(f);
            free(img);
        }
        free(b.p);
        free(raw);
        free(want);
        free(got);
    }
    marlin_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------- file-system cases */

static char *write_tmp_model(const char *dir, const char *name, uint64_t n16,
                             buf *out) {
    char h[256];
    snprintf(h, sizeof h,
             "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F16\","
             "\"shape\":[%llu],\"data_offsets\":[0,%llu]}}",
             (unsigned long long)n16, (unsigned long long)(2 * n16));
    *out = image(h, strlen(h), false, 2 * n16);
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(path);
    sprintf(path, "%s/%s", dir, name);
    assert_int_equal(marlin_write_file(path, out->p, out->n), 0);
    return path;
}

/* 82: truncated after open -> MARLIN_ERR_IO naming the tensor, no SIGBUS
 * (the reads use pread). */
static void test_safetensors_fs_truncated_after_open(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("st-trunc");
    buf b;
    char *path = write_tmp_model(dir, "m.safetensors", 1 << 19, &b);
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_open(path, &f, &e), MARLIN_OK);
    const marlin_tensor *t = marlin_st_find(f, "w");
    assert_non_null(t);
    assert_int_equal(truncate(path, (off_t)(b.n / 2)), 0);
    uint8_t *dst = malloc(t->nbytes);
    float *fl = malloc(t->numel * sizeof *fl);
    assert_non_null(dst);
    assert_non_null(fl);
    assert_int_equal(marlin_st_read(f, t, 0, t->nbytes, dst, &e), MARLIN_ERR_IO);
    assert_int_equal(strncmp(e.msg, path, strlen(path)), 0);
    assert_non_null(strstr(e.msg, "tensor 'w': file ends at byte"));
    assert_non_null(strstr(e.msg, "truncated"));
    assert_int_equal(marlin_st_read_f32(f, t, fl, &e), MARLIN_ERR_IO);
    /* the bytes that are still there read fine */
    assert_int_equal(marlin_st_read(f, t, 0, 1000, dst, &e), MARLIN_OK);
    assert_memory_equal(dst, b.p + (b.n - t->nbytes), 1000);
    marlin_st_close(f);
    /* and a fresh open sees the truncation as a format error */
    assert_int_equal(marlin_st_open(path, &f, &e), MARLIN_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "tensor 'w': data_offsets"));
    assert_non_null(strstr(e.msg, "run past the end"));
    free(dst);
    free(fl);
    free(b.p);
    free(path);
    marlin_rmtree(dir);
    free(dir);
}

/* 83: grown after open -> the size taken at open rules; reads still work. */
static void test_safetensors_fs_grown_after_open(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("st-grow");
    buf b;
    char *path = write_tmp_model(dir, "m.safetensors", 1000, &b);
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_open(path, &f, &e), MARLIN_OK);
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite("PK\3\4junk", 1, 8, fp), 8);
    assert_int_equal(fclose(fp), 0);
    const marlin_tensor *t = marlin_st_find(f, "w");
    uint8_t dst[2000];
    assert_int_equal(marlin_st_read(f, t, 0, t->nbytes, dst, &e), MARLIN_OK);
    assert_memory_equal(dst, b.p + (b.n - 2000), 2000);
    assert_memory_equal(marlin_st_data(f, t), dst, 2000);
    marlin_st_close(f);
    assert_int_equal(marlin_st_open(path, &f, &e), MARLIN_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "8 trailing bytes"));
    free(b.p);
    free(path);
    marlin_rmtree(dir);
    free(dir);
}

/* 84: directories, FIFOs and devices are refused (a FIFO without a writer
 * must not block); a missing file is an I/O error; symlinks to regular
 * files are followed. */
static void test_safetensors_fs_not_regular(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("st-nonreg");
    char p[512];
    marlin_st_file *f = NULL;
    marlin_error e;
    assert_int_equal(marlin_st_open(dir, &f, &e), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "is a directory"));
    assert_null(f);
    snprintf(p, sizeof p, "%s/fifo.safetensors", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(marlin_st_open(p, &f, &e), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "is a FIFO"));
    assert_int_equal(marlin_st_open("/dev/null", &f, &e),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "/dev/null: is a character device"));
    snprintf(p, sizeof p, "%s/missing.safetensors", dir);
    assert_int_equal(marlin_st_open(p, &f, &e), MARLIN_ERR_IO);
    assert_non_null(strstr(e.msg, "cannot open"));
    /* a symlink to a valid file opens (hub caches are made of them) */
    buf b;
    char *path = write_tmp_model(dir, "real.safetensors", 10, &b);
    snprintf(p, sizeof p, "%s/link.safetensors", dir);
    assert_int_equal(symlink("real.safetensors", p), 0);
    assert_int_equal(marlin_st_open(p, &f, &e), MARLIN_OK);
    assert_int_equal(marlin_st_count(f), 1);
    assert_string_equal(marlin_st_label(f), p);
    marlin_st_close(f);
    /* an empty regular file */
    snprintf(p, sizeof p, "%s/empty.safetensors", dir);
    assert_int_equal(marlin_write_file(p, "", 0), 0);
    assert_int_equal(marlin_st_open(p, &f, &e), MARLIN_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "shorter than the 8-byte"));
    free(b.p);
    free(path);
    marlin_rmtree(dir);
    free(dir);
}

/* ------------------------------------------- random files and mutations */

static marlin_dtype rand_dtype(marlin_rng *r) {
    return (marlin_dtype)(marlin_rng_u64(r) % MARLIN_DT_COUNT);
}

/* A random valid image: random dtypes, shapes (scalars and empties
 * included), names with escapes, entry order shuffled against offset order,
 * random whitespace, optional metadata. Expected tensors go to `exp`. */
typedef struct rt {
    char name[32];
    size_t name_len;
    marlin_dtype dt;
    int rank;
    uint64_t shape[4];
    uint64_t nbytes, begin;
} rt;

static const char *ws_pick(marlin_rng *r) {
    static const char *w[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
    return w[marlin_rng_u64(r) % 7];
}

static buf random_image(marlin_rng *r, rt *exp, size_t *n_out) {
    size_t n = marlin_rng_u64(r) % 12;
    uint64_t off = 0;
    size_t order[12];
    for (size_t i = 0; i < n; i++) {
        rt *t = &exp[i];
        /* unique names: an index prefix plus a random tail */
        int k = snprintf(t->name, sizeof t->name, "t%zu.", i);
        int tail = (int)(marlin_rng_u64(r) % 6);
        for (int j = 0; j < tail; j++) t->name[k++] = "ab.\"\\/\x01"[marlin_rng_u64(r) % 7];
        t->name[k] = 0;
        t->name_len = (size_t)k;
        t->dt = rand_dtype(r);
        t->rank = (int)(marlin_rng_u64(r) % 4);
        uint64_t numel = 1;
        for (int d = 0; d < t->rank; d++) {
            t->shape[d] = marlin_rng_u64(r) % 5;
            numel *= t->shape[d];
        }
        int bits = marlin_dtype_bits(t->dt);
        if ((numel * (uint64_t)bits) % 8) { /* make F4/F6 whole bytes */
            t->rank = 1;
            t->shape[0] = 4;
            numel = 4;
        }
        t->nbytes = numel * (uint64_t)bits / 8;
        t->begin = off;
        off += t->nbytes;
        order[i] = i;
    }
    for (size_t i = n; i > 1; i--) { /* shuffle the listing order */
        size_t j = marlin_rng_u64(r) % i, x = order[i - 1];
        order[i - 1] = order[j];
        order[j] = x;
    }
    buf h = {0};
    b_str(&h, ws_pick(r));
    b_str(&h, "{");
    bool meta = marlin_rng_u64(r) % 2;
    size_t meta_at = n ? marlin_rng_u64(r) % (n + 1) : 0;
    bool first = true;
    for (size_t i = 0; i <= n; i++) {
        if (meta && i == meta_at) {
            b_fmt(&h, "%s%s\"__metadata__\"%s:%s{\"format\":\"pt\",\"\\u0078\":"
                      "\"y\\n\"}",
                  first ? "" : ",", ws_pick(r), ws_pick(r), ws_pick(r));
            first = false;
        }
        if (i == n) break;
        const rt *t = &exp[order[i]];
        b_fmt(&h, "%s%s\"", first ? "" : ",", ws_pick(r));
        first = false;
        for (size_t c = 0; c < t->name_len; c++) {
            char ch = t->name[c];
            if (ch == '"') b_str(&h, "\\\"");
            else if (ch == '\\') b_str(&h, "\\\\");
            else if (ch == 1) b_str(&h, "\\u0001");
            else if (ch == 'a' && marlin_rng_u64(r) % 2) b_str(&h, "\\u0061");
            else b_put(&h, &ch, 1);
        }
        b_fmt(&h, "\"%s:%s{", ws_pick(r), ws_pick(r));
        /* fields in a random rotation */
        int rot = (int)(marlin_rng_u64(r) % 3);
        for (int fidx = 0; fidx < 3; fidx++) {
            int which = (fidx + rot) % 3;
            if (fidx) b_fmt(&h, ",%s", ws_pick(r));
            if (which == 0) {
                b_fmt(&h, "\"dtype\":%s\"%s\"", ws_pick(r),
                      marlin_dtype_name(t->dt));
            } else if (which == 1) {
                b_str(&h, "\"shape\":[");
                for (int d = 0; d < t->rank; d++)
                    b_fmt(&h, "%s%s%llu", d ? "," : "", ws_pick(r),
                          (unsigned long long)t->shape[d]);
                b_str(&h, "]");
            } else {
                b_fmt(&h, "\"data_offsets\":[%llu,%s%llu]",
                      (unsigned long long)t->begin, ws_pick(r),
                      (unsigned long long)(t->begin + t->nbytes));
            }
        }
        b_fmt(&h, "%s}", ws_pick(r));
    }
    b_fmt(&h, "%s}%s", ws_pick(r), ws_pick(r));
    buf b = image(h.p, h.n, marlin_rng_u64(r) % 2, off);
    free(h.p);
    *n_out = n;
    return b;
}

static int rt_cmp(const void *x, const void *y) {
    const rt *a = x, *b = y;
    size_t m = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, m);
    return c ? c : (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static void test_safetensors_random_valid(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(7);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    for (int it = 0; it < 2000; it++) {
        rt exp[12];
        size_t n;
        buf b = random_image(&r, exp, &n);
        marlin_st_file *f = NULL;
        marlin_error e;
        marlin_status rc = marlin_st_parse(b.p, b.n, "rnd", &f, &e);
        MT_ASSERT(seed, rc == MARLIN_OK, "iteration %d: %s", it, e.msg);
        qsort(exp, n, sizeof exp[0], rt_cmp);
        MT_ASSERT(seed, marlin_st_count(f) == n, "iteration %d: count", it);
        size_t data_off = b.n;
        for (size_t i = 0; i < n; i++) data_off -= exp[i].nbytes;
        for (size_t i = 0; i < n; i++) {
            const marlin_tensor *t = marlin_st_at(f, i);
            MT_ASSERT(seed, t->name_len == exp[i].name_len &&
                                memcmp(t->name, exp[i].name, t->name_len) == 0,
                      "iteration %d: name %zu", it, i);
            MT_ASSERT(seed, t->dtype == exp[i].dt && t->rank == exp[i].rank &&
                                t->begin == exp[i].begin &&
                                t->nbytes == exp[i].nbytes,
                      "iteration %d: tensor %s", it, exp[i].name);
            for (int d = 0; d < t->rank; d++)
                MT_ASSERT(seed, t->shape[d] == exp[i].shape[d],
                          "iteration %d: shape", it);
            MT_ASSERT(seed, marlin_st_find(f, exp[i].name) == t,
                      "iteration %d: find %s", it, exp[i].name);
            MT_ASSERT(seed, (const uint8_t *)marlin_st_data(f, t) ==
                                b.p + data_off + t->begin,
                      "iteration %d: data pointer", it);
        }
        if (marlin_st_metadata_count(f)) {
            MT_ASSERT(seed, strcmp(marlin_st_metadata_get(f, "x"), "y\n") == 0,
                      "iteration %d: metadata", it);
        }
        marlin_st_close(f);
        free(b.p);
    }
}

/* Mutated valid images: never a crash (ASan/UBSan watch), always OK or
 * FORMAT with a one-line message naming the file; an accepted mutant still
 * tiles its data buffer. */
static void test_safetensors_random_mutations(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(99);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    static const char tokens[] = "{}[],:\"\\-0123456789eE. \nuU";
    for (int it = 0; it < 20000; it++) {
        rt exp[12];
        size_t n;
        buf b = random_image(&r, exp, &n);
        int muts = 1 + (int)(marlin_rng_u64(&r) % 3);
        for (int m = 0; m < muts && b.n; m++) {
            size_t at = marlin_rng_u64(&r) % b.n;
            switch (marlin_rng_u64(&r) % 4) {
            case 0: b.p[at] = (uint8_t)marlin_rng_u64(&r); break;
            case 1: b.p[at] = (uint8_t)tokens[marlin_rng_u64(&r) % (sizeof tokens - 1)]; break;
            case 2: b.n = at; break; /* truncate */
            default: b.p[at] ^= (uint8_t)(1u << (marlin_rng_u64(&r) % 8)); break;
            }
        }
        marlin_st_file *f = NULL;
        marlin_error e;
        marlin_status rc = marlin_st_parse(b.p, b.n, "mut", &f, &e);
        MT_ASSERT(seed, rc == MARLIN_OK || rc == MARLIN_ERR_FORMAT,
                  "iteration %d: status %d: %s", it, rc, e.msg);
        if (rc != MARLIN_OK) {
            MT_ASSERT(seed, strncmp(e.msg, "mut: ", 5) == 0 &&
                                !strchr(e.msg, '\n'),
                      "iteration %d: message %s", it, e.msg);
        } else {
            uint64_t total = 0;
            for (size_t i = 0; i < marlin_st_count(f); i++) {
                const marlin_tensor *t = marlin_st_at(f, i);
                total += t->nbytes;
                if (t->nbytes) {
                    /* touch the first and last byte through the view */
                    const volatile uint8_t *d = marlin_st_data(f, t);
                    (void)d[0];
                    (void)d[t->nbytes - 1];
                }
            }
            MT_ASSERT(seed, total <= b.n, "iteration %d: coverage", it);
        }
        marlin_st_close(f);
        free(b.p);
    }
}

/* ---------------------------------------------------- the shared model */

static int64_t cfg_int(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* Shape a Llama checkpoint tensor must have, from config.json. */
static int expected_shape(json_t *cfg, const char *name, uint64_t *shape) {
    int64_t h = cfg_int(cfg, "hidden_size"), it = cfg_int(cfg, "intermediate_size");
    int64_t nh = cfg_int(cfg, "num_attention_heads");
    int64_t kv = cfg_int(cfg, "num_key_value_heads");
    int64_t hd = cfg_int(cfg, "head_dim"), v = cfg_int(cfg, "vocab_size");
    const char *leaf = strrchr(name, '.');
    char mod[64];
    size_t ml;
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight")) {
        shape[0] = (uint64_t)v;
        shape[1] = (uint64_t)h;
        return 2;
    }
    if (!strcmp(name, "model.norm.weight")) { shape[0] = (uint64_t)h; return 1; }
    assert_non_null(leaf);
    /* module = the component before ".weight" */
    const char *p = leaf - 1;
    while (p > name && *p != '.') p--;
    ml = (size_t)(leaf - p - 1);
    assert_true(ml < sizeof mod);
    memcpy(mod, p + 1, ml);
    mod[ml] = 0;
    if (!strcmp(mod, "input_layernorm") || !strcmp(mod, "post_attention_layernorm")) {
        shape[0] = (uint64_t)h;
        return 1;
    }
    int64_t rows = 0, cols = 0;
    if (!strcmp(mod, "q_proj")) { rows = nh * hd; cols = h; }
    else if (!strcmp(mod, "k_proj") || !strcmp(mod, "v_proj")) { rows = kv * hd; cols = h; }
    else if (!strcmp(mod, "o_proj")) { rows = h; cols = nh * hd; }
    else if (!strcmp(mod, "gate_proj") || !strcmp(mod, "up_proj")) { rows = it; cols = h; }
    else if (!strcmp(mod, "down_proj")) { rows = h; cols = it; }
    else return -1;
    shape[0] = (uint64_t)rows;
    shape[1] = (uint64_t)cols;
    return 2;
}

static const char *SHARDS[3] = {"model-00001-of-00003.safetensors",
                                "model-00002-of-00003.safetensors",
                                "model-00003-of-00003.safetensors"};

static void test_safetensors_shared_model(void **state) {
    (void)state;
    const char *d = marlin_shared_path("models/shakespeare-llama-13m");
    if (!d) {
        print_message("skipped: shared model folder is absent\n");
        skip();
    }
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(cfg);
    int64_t layers = cfg_int(cfg, "num_hidden_layers");
    size_t total = 0;
    for (int s = 0; s < 3; s++) {
        marlin_st_file *f = NULL;
        marlin_error e;
        snprintf(p, sizeof p, "%s/%s", dir, SHARDS[s]);
        assert_int_equal(marlin_st_open(p, &f, &e), MARLIN_OK);
        assert_string_equal(marlin_st_metadata_get(f, "format"), "pt");
        assert_null(marlin_st_warning(f));
        for (size_t i = 0; i < marlin_st_count(f); i++) {
            const marlin_tensor *t = marlin_st_at(f, i);
            uint64_t shape[2];
            int rank = expected_shape(cfg, t->name, shape);
            if (rank < 0) {
                print_error("unexpected tensor %s\n", t->name);
                fail();
            }
            assert_int_equal(t->dtype, MARLIN_DT_F16);
            assert_int_equal(t->rank, rank);
            for (int k = 0; k < rank; k++) assert_int_equal(t->shape[k], shape[k]);
            assert_int_equal(t->nbytes, 2 * t->numel);
            /* values are finite (a sanity check on the conversion path) */
            float *x = malloc(t->numel * sizeof *x);
            assert_non_null(x);
            assert_int_equal(marlin_st_read_f32(f, t, x, &e), MARLIN_OK);
            for (uint64_t k = 0; k < t->numel; k++) assert_true(isfinite(x[k]));
            free(x);
        }
        total += marlin_st_count(f);
        marlin_st_close(f);
    }
    /* per layer: 4 attention + 3 MLP projections + 2 norms; plus embed,
     * final norm and (untied) lm_head */
    assert_int_equal(total, (size_t)(9 * layers + 3));
    assert_int_equal(total, 39);
    json_decref(cfg);
}

/* Values against Python's safetensors: for every tensor, five elements;
 * for one tensor per shard, every element, bit for bit. */
static void test_safetensors_shared_model_python(void **state) {
    (void)state;
    const char *d = marlin_shared_path("models/shakespeare-llama-13m");
    if (!d) {
        print_message("skipped: shared model folder is absent\n");
        skip();
    }
    if (!marlin_have_python_modules("numpy, safetensors")) {
        print_message("skipped: python3 with numpy and safetensors is not "
                      "available\n");
        skip();
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", d);
    char *tmp = marlin_test_tmpdir("st-py");
    assert_non_null(tmp);
    static const char *full[3] = {"model.layers.0.self_attn.q_proj.weight",
                                  "model.layers.1.mlp.down_proj.weight",
                                  "lm_head.weight"};
    int rc = marlin_test_system(
        "cd '%s' && python3 -c '\n"
        "import sys, numpy as np\n"
        "from safetensors import safe_open\n"
        "full = set(sys.argv[2:])\n"
        "with open(\"samples.txt\", \"w\") as out:\n"
        "    for s in (1, 2, 3):\n"
        "        with safe_open(\"%%s/model-%%05d-of-00003.safetensors\" %% (sys.argv[1], s), \"np\") as f:\n"
        "            for k in f.keys():\n"
        "                x = f.get_tensor(k).astype(np.float32).ravel()\n"
        "                n = x.size\n"
        "                for i in sorted({0, n // 3, n // 2, 2 * n // 3, n - 1}):\n"
        "                    out.write(\"%%d %%s %%d %%08x\\n\" %% (s, k, i, x[i:i+1].view(np.uint32)[0]))\n"
        "                if k in full:\n"
        "                    x.tofile(k + \".f32\")\n"
        "' '%s' %s %s %s",
        tmp, dir, full[0], full[1], full[2]);
    assert_int_equal(rc, 0);
    char p[1400];
    marlin_st_file *f[3] = {NULL, NULL, NULL};
    marlin_error e;
    for (int s = 0; s < 3; s++) {
        snprintf(p, sizeof p, "%s/%s", dir, SHARDS[s]);
        assert_int_equal(marlin_st_open(p, &f[s], &e), MARLIN_OK);
    }
    snprintf(p, sizeof p, "%s/samples.txt", tmp);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    char name[256];
    int shard;
    unsigned long long idx;
    unsigned bits;
    size_t checked = 0;
    const marlin_tensor *cur = NULL;
    float *x = NULL;
    while (fscanf(fp, "%d %255s %llu %x", &shard, name, &idx, &bits) == 4) {
        assert_true(shard >= 1 && shard <= 3);
        const marlin_tensor *t = marlin_st_find(f[shard - 1], name);
        assert_non_null(t);
        if (t != cur) {
            free(x);
            x = malloc(t->numel * sizeof *x);
            assert_non_null(x);
            assert_int_equal(marlin_st_read_f32(f[shard - 1], t, x, &e), MARLIN_OK);
            cur = t;
        }
        assert_true(idx < t->numel);
        if (f2u(x[idx]) != bits) {
            print_error("%s[%llu]: ours 0x%08x, python 0x%08x\n", name, idx,
                        f2u(x[idx]), bits);
            fail();
        }
        checked++;
    }
    fclose(fp);
    free(x);
    assert_true(checked >= 39 * 3);
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s.f32", tmp, full[k]);
        FILE *ff = fopen(p, "rb");
        assert_non_null(ff);
        const marlin_tensor *t = NULL;
        int s;
        for (s = 0; s < 3 && !t; s++) t = marlin_st_find(f[s], full[k]);
        assert_non_null(t);
        float *ours = malloc(t->numel * sizeof *ours);
        float *theirs = malloc(t->numel * sizeof *theirs);
        assert_non_null(ours);
        assert_non_null(theirs);
        assert_int_equal(fread(theirs, sizeof *theirs, t->numel, ff), t->numel);
        fclose(ff);
        assert_int_equal(marlin_st_read_f32(f[s - 1], t, ours, &e), MARLIN_OK);
        assert_memory_equal(ours, theirs, t->numel * sizeof *ours);
        free(ours);
        free(theirs);
    }
    for (int s = 0; s < 3; s++) marlin_st_close(f[s]);
    marlin_rmtree(tmp);
    free(tmp);
}

/* ------------------------------------------------------------- main */

/* --dump-evil DIR: the evil cases as files, for the fuzz seed corpus
 * (case 7, 100 MB, and case 77, 1 MB, are left out: too big for seeds). */
static int dump_evil(const char *dir) {
    for (size_t i = 0; i < N_EVIL; i++) {
        char p[4096];
        if (EVIL[i].gen == G_NCAP || EVIL[i].gen == G_LONGNAME) continue;
        buf b = evil_bytes(&EVIL[i]);
        snprintf(p, sizeof p, "%s/evil-%s.safetensors", dir, EVIL[i].id);
        if (marlin_write_file(p, b.p, b.n) != 0) {
            fprintf(stderr, "%s: %s\n", p, strerror(errno));
            free(b.p);
            return 1;
        }
        free(b.p);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--dump-evil") == 0)
        return dump_evil(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_dtype_table),
        cmocka_unit_test(test_safetensors_evil_parse),
        cmocka_unit_test(test_safetensors_evil_open),
        cmocka_unit_test(test_safetensors_evil_reference),
        cmocka_unit_test(test_safetensors_all_dtypes),
        cmocka_unit_test(test_safetensors_read_bounds),
        cmocka_unit_test(test_safetensors_escapes),
        cmocka_unit_test(test_safetensors_message_names),
        cmocka_unit_test(test_safetensors_read_f32_exact),
        cmocka_unit_test(test_safetensors_fs_truncated_after_open),
        cmocka_unit_test(test_safetensors_fs_grown_after_open),
        cmocka_unit_test(test_safetensors_fs_not_regular),
        cmocka_unit_test(test_safetensors_random_valid),
        cmocka_unit_test(test_safetensors_random_mutations),
        cmocka_unit_test(test_safetensors_shared_model),
        cmocka_unit_test(test_safetensors_shared_model_python),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
