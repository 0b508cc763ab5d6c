/*
 * test_formats_model.c - formats/: the safetensors writer (byte-compatible
 * with Python's safetensors, sharding + index, refusals, temp + rename),
 * output folders (marlin_outdir_*), the model folder (index rules and the
 * folder cases 82-93 of safetensors.md section 6, hub cache layout,
 * symlink escapes), config.json parsing and rewriting, auxiliary file copy.
 */
#include "testutil.h"

#include "marlin_formats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* ------------------------------------------------------------- helpers */
static char *path2(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(got, (size_t)n);
    b[n] = '\0';
    if (len) *len = (size_t)n;
    return b;
}

static void put_text(const char *dir, const char *name, const char *text) {
    char *p = path2(dir, name);
    assert_int_equal(marlin_write_file(p, text, strlen(text)), 0);
    free(p);
}

/* Entries of a folder (sorted, '\n'-joined) for layout assertions. */
static char *list_dir(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        assert_true(n < 256);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += strlen(names[i]) + 1;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, names[i]);
        if (i + 1 < n) strcat(out, "\n");
        free(names[i]);
    }
    return out;
}

/* The tensor bytes both this file and formats_model_check.py generate:
 * byte k of tensor j is (k*131 + j*17 + 7) mod 256; BOOL (k+j) mod 2. */
static unsigned char *tensor_bytes(size_t j, marlin_dtype dt, uint64_t n) {
    unsigned char *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (uint64_t k = 0; k < n; k++)
        b[k] = dt == MARLIN_DT_BOOL ? (unsigned char)((k + j) & 1)
                                    : (unsigned char)((k * 131 + j * 17 + 7) & 0xff);
    return b;
}

typedef struct spec_t {
    const char *name;
    marlin_dtype dt;
    int rank;
    uint64_t shape[4];
} spec_t;

static uint64_t spec_bytes(const spec_t *s) {
    uint64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->shape[i];
    return n * (uint64_t)marlin_dtype_bits(s->dt) / 8;
}

/* Writes the tensors with our writer (put in reverse order, to exercise
 * positioned writes) and the spec JSON the Python checker reads. */
static void write_specs(const char *dir, const spec_t *s, size_t n,
                        uint64_t limit, const char *spec_path) {
    marlin_error err = {0};
    marlin_writer *w = NULL;
    assert_int_equal(marlin_writer_create(dir, limit, &w, &err), MARLIN_OK);
    for (size_t i = 0; i < n; i++) {
        marlin_status st = marlin_writer_add(w, s[i].name, s[i].dt, s[i].rank,
                                             s[i].shape, &err);
        if (st) fail_msg("add %s: %s", s[i].name, err.msg);
    }
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    for (size_t i = n; i-- > 0;) {
        uint64_t nb = spec_bytes(&s[i]);
        unsigned char *b = tensor_bytes(i, s[i].dt, nb);
        assert_int_equal(marlin_writer_put(w, s[i].name, b, nb, &err), MARLIN_OK);
        free(b);
    }
    if (marlin_writer_finish(w, &err)) fail_msg("finish: %s", err.msg);
    marlin_writer_free(w);
    if (!spec_path) return;
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "limit", json_integer((json_int_t)limit));
    for (size_t i = 0; i < n; i++) {
        json_t *sh = json_array();
        for (int d = 0; d < s[i].rank; d++)
            json_array_append_new(sh, json_integer((json_int_t)s[i].shape[d]));
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "name", s[i].name,
                                             "dtype", marlin_dtype_name(s[i].dt),
                                             "shape", sh));
    }
    json_object_set_new(root, "tensors", arr);
    assert_int_equal(json_dump_file(root, spec_path, 0), 0);
    json_decref(root);
}

static bool have_py(void) {
    if (marlin_have_python_modules("numpy, safetensors")) return true;
    printf("skip: python3 with numpy + safetensors is not available; "
           "byte-compatibility with Python is not checked\n");
    return false;
}

static void py_check(const char *spec, const char *dir) {
    int rc = marlin_test_system("python3 '%s' writer '%s' '%s'",
                                marlin_source_path("tests/formats_model_check.py"),
                                spec, dir);
    assert_int_equal(rc, 0);
}

/* Every dtype the Python binding can take (all but F6), names exercising
 * each escaping rule of W3, an empty tensor and a scalar. */
static const spec_t mixed_specs[] = {
    {"model.embed_tokens.weight", MARLIN_DT_F16, 2, {7, 5}},
    {"a.bf16", MARLIN_DT_BF16, 2, {3, 4}},
    {"B.bf16", MARLIN_DT_BF16, 1, {2}},
    {"q\"uote\\back/slash", MARLIN_DT_F32, 1, {3}},
    {"ctl\b\f\n\r\t\x01\x1f\x7f", MARLIN_DT_I32, 1, {2}},
    {"utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", MARLIN_DT_U8, 1, {5}},
    {"", MARLIN_DT_I8, 1, {3}},
    {"empty", MARLIN_DT_F16, 2, {3, 0}},
    {"scalar", MARLIN_DT_I64, 0, {0}},
    {"u64", MARLIN_DT_U64, 1, {2}},
    {"f64", MARLIN_DT_F64, 1, {1}},
    {"c64", MARLIN_DT_C64, 1, {2}},
    {"u32", MARLIN_DT_U32, 1, {3}},
    {"i16", MARLIN_DT_I16, 1, {3}},
    {"u16", MARLIN_DT_U16, 1, {1}},
    {"f8e5m2fnuz", MARLIN_DT_F8_E5M2FNUZ, 1, {3}},
    {"f8e4m3fnuz", MARLIN_DT_F8_E4M3FNUZ, 1, {2}},
    {"f8e8m0", MARLIN_DT_F8_E8M0, 1, {1}},
    {"f8e4m3", MARLIN_DT_F8_E4M3, 1, {4}},
    {"f8e5m2", MARLIN_DT_F8_E5M2, 1, {2}},
    {"f4", MARLIN_DT_F4, 2, {3, 4}},
    {"bool", MARLIN_DT_BOOL, 1, {9}},
};
#define NMIXED (sizeof mixed_specs / sizeof mixed_specs[0])

/* -------------------------------------------------------------- writer */
/* The exact bytes the reference writes for a small dictionary (obtained
 * from safetensors 0.8 save(); checked here without Python). */
static void test_formats_model_writer_exact_bytes(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("wexact");
    const spec_t s[] = {
        {"s", MARLIN_DT_I32, 0, {0}},
        {"b", MARLIN_DT_C64, 1, {2}},
        {"a\"\\\n\x01\x7f/\xc3\xa9\xf0\x9f\x98\x80", MARLIN_DT_F16, 2, {0, 3}},
    };
    marlin_error err = {0};
    marlin_writer *w = NULL;
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(marlin_writer_add(w, s[i].name, s[i].dt, s[i].rank,
                                           s[i].shape, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_shard_count(w), 1);
    unsigned char c64[16] = {0}, i32[4] = {3, 0, 0, 0};
    assert_int_equal(marlin_writer_put(w, "s", i32, 4, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put(w, s[2].name, NULL, 0, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put(w, "b", c64, 16, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_OK);
    marlin_writer_free(w);
    static const char hdr[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"b\":{\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[0,16]},"
        "\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[16,20]},"
        "\"a\\\"\\\\\\n\\u0001\x7f/\xc3\xa9\xf0\x9f\x98\x80\":{\"dtype\":\"F16\",\"shape\":[0,3],"
        "\"data_offsets\":[20,20]}}       ";
    size_t hl = sizeof hdr - 1, len = 0;
    assert_int_equal(hl % 8, 0);
    char *p = path2(dir, "model.safetensors");
    char *got = read_all(p, &len);
    assert_non_null(got);
    assert_int_equal(len, 8 + hl + 20);
    assert_int_equal((unsigned char)got[0], hl);
    for (int i = 1; i < 8; i++) assert_int_equal(got[i], 0);
    assert_memory_equal(got + 8, hdr, hl);
    assert_memory_equal(got + 8 + hl, c64, 16);
    assert_memory_equal(got + 8 + hl + 16, i32, 4);
    free(got);
    free(p);
    marlin_rmtree(dir);
    free(dir);
}

/* An empty dictionary: {"__metadata__":{"format":"pt"}} is 32 bytes, a
 * multiple of 8 already, so no padding (Python writes the same). */
static void test_formats_model_writer_empty(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("wempty");
    marlin_error err = {0};
    marlin_writer *w = NULL;
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_OK);
    marlin_writer_free(w);
    char *p = path2(dir, "model.safetensors");
    size_t len = 0;
    char *got = read_all(p, &len);
    static const char want[] = "{\"__metadata__\":{\"format\":\"pt\"}}";
    assert_int_equal(len, 8 + sizeof want - 1);
    assert_int_equal((unsigned char)got[0], sizeof want - 1);
    assert_memory_equal(got + 8, want, sizeof want - 1);
    free(got);
    free(p);
    char *ls = list_dir(dir);
    assert_string_equal(ls, "model.safetensors");
    free(ls);
    marlin_rmtree(dir);
    free(dir);
}

static void test_formats_model_writer_python_bytes(void **state) {
    (void)state;
    if (!have_py()) skip();
    char *dir = marlin_test_tmpdir("wpy");
    char *out = path2(dir, "out");
    char *spec = path2(dir, "spec.json");
    assert_int_equal(mkdir(out, 0777), 0);
    write_specs(out, mixed_specs, NMIXED, 0, spec);
    char *ls = list_dir(out);
    assert_string_equal(ls, "model.safetensors");
    free(ls);
    py_check(spec, out);
    marlin_rmtree(dir);
    free(out);
    free(spec);
    free(dir);
}

/* Sharding at a small limit: huggingface_hub's split (incl. a tensor larger
 * than the limit getting its own shard), 5-digit names, the index text. */
static void test_formats_model_writer_sharded(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("wshard");
    char *out = path2(dir, "out");
    char *spec = path2(dir, "spec.json");
    assert_int_equal(mkdir(out, 0777), 0);
    const spec_t s[] = {
        {"model.embed_tokens.weight", MARLIN_DT_F16, 2, {8, 4}}, /* 64 B */
        {"model.layers.0.w", MARLIN_DT_F16, 2, {4, 4}},          /* 32 */
        {"model.layers.0.n", MARLIN_DT_F32, 1, {4}},             /* 16 */
        {"model.layers.1.big", MARLIN_DT_F32, 2, {8, 8}},        /* 256 > limit */
        {"model.layers.1.w", MARLIN_DT_BF16, 2, {4, 4}},         /* 32 */
        {"model.layers.\xc3\xa9.x", MARLIN_DT_I32, 1, {10}},     /* 40 */
        {"model.norm.weight", MARLIN_DT_F16, 1, {4}},            /* 8 */
        {"lm_head.weight", MARLIN_DT_F16, 2, {8, 4}},            /* 64 */
    };
    const size_t n = sizeof s / sizeof s[0];
    write_specs(out, s, n, 100, spec);
    /* By hand: [emb 64, w 32] is closed by n; big gets its own shard,
     * appended while [n 16, w 32, x 40, norm 8] is still open; lm_head
     * closes that one. Shards are numbered in the order the hub appends
     * them: [emb, w0] [big] [n, w1, x, norm] [lm_head]. */
    char *ls = list_dir(out);
    assert_string_equal(ls, "model-00001-of-00004.safetensors\n"
                            "model-00002-of-00004.safetensors\n"
                            "model-00003-of-00004.safetensors\n"
                            "model-00004-of-00004.safetensors\n"
                            "model.safetensors.index.json");
    free(ls);
    char *ip = path2(out, "model.safetensors.index.json");
    char *idx = read_all(ip, NULL);
    const char *want =
        "{\n  \"metadata\": {\n    \"total_size\": 512\n  },\n"
        "  \"weight_map\": {\n"
        "    \"lm_head.weight\": \"model-00004-of-00004.safetensors\",\n"
        "    \"model.embed_tokens.weight\": \"model-00001-of-00004.safetensors\",\n"
        "    \"model.layers.0.n\": \"model-00003-of-00004.safetensors\",\n"
        "    \"model.layers.0.w\": \"model-00001-of-00004.safetensors\",\n"
        "    \"model.layers.1.big\": \"model-00002-of-00004.safetensors\",\n"
        "    \"model.layers.1.w\": \"model-00003-of-00004.safetensors\",\n"
        "    \"model.layers.\\u00e9.x\": \"model-00003-of-00004.safetensors\",\n"
        "    \"model.norm.weight\": \"model-00003-of-00004.safetensors\"\n"
        "  }\n}\n";
    assert_string_equal(idx, want);
    free(idx);
    free(ip);
    if (have_py()) py_check(spec, out);
    marlin_rmtree(dir);
    free(out);
    free(spec);
    free(dir);
}

static void test_formats_model_writer_refusals(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("wref");
    marlin_error err = {0};
    marlin_writer *w = NULL;
    uint64_t sh2[2] = {2, 2}, big[3] = {4194305, 4194305, 211106198978564ull};
    uint64_t odd[1] = {3}, huge_rank[65];
    for (int i = 0; i < 65; i++) huge_rank[i] = 1;
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "__metadata__", MARLIN_DT_F16, 2, sh2, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "__metadata__"));
    assert_int_equal(marlin_writer_add(w, "a", MARLIN_DT_F16, 2, sh2, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "a", MARLIN_DT_F32, 2, sh2, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "'a'"));
    assert_int_equal(marlin_writer_add(w, "ovf", MARLIN_DT_F32, 3, big, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "overflow"));
    assert_int_equal(marlin_writer_add(w, "f4", MARLIN_DT_F4, 1, odd, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_add(w, "bad\xc0\xaf", MARLIN_DT_U8, 1, odd, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_add(w, "r", MARLIN_DT_U8, 65, huge_rank, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_add(w, "b", MARLIN_DT_U8, 1, odd, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_set_metadata(w, "format", "np", &err),
                     MARLIN_ERR_INVALID_ARG);
    /* put before begin */
    unsigned char buf[8] = {0};
    assert_int_equal(marlin_writer_put(w, "a", buf, 8, &err), MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "late", MARLIN_DT_U8, 1, odd, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_put(w, "zz", buf, 8, &err), MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_put(w, "a", buf, 7, &err), MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_writer_put(w, "a", buf, 8, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put(w, "a", buf, 8, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "twice"));
    /* finish with "b" missing: refused, nothing published */
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "'b'"));
    char *ls = list_dir(dir); /* only the hidden temporary */
    assert_true(ls[0] == '.' && !strchr(ls, '\n'));
    free(ls);
    marlin_writer_free(w);
    ls = list_dir(dir);
    assert_string_equal(ls, ""); /* temporaries removed */
    free(ls);
    marlin_rmtree(dir);
    free(dir);
}

/* W5 / PR #669: a header above 100,000,000 bytes is refused at begin(),
 * before any file exists (here: 101 names of 1,000,000 bytes). */
static void test_formats_model_writer_header_limit(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("whdr");
    marlin_error err = {0};
    marlin_writer *w = NULL;
    uint64_t sh[1] = {1};
    const size_t nl = 1000000;
    char *name = malloc(nl + 1);
    memset(name, 'a', nl);
    name[nl] = '\0';
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    for (int i = 0; i < 101; i++) {
        snprintf(name, 8, "%07d", i); /* distinct prefixes */
        name[7] = 'a';
        assert_int_equal(marlin_writer_add(w, name, MARLIN_DT_U8, 1, sh, &err), MARLIN_OK);
    }
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "100000000"));
    marlin_writer_free(w);
    char *ls = list_dir(dir);
    assert_string_equal(ls, "");
    free(ls);
    free(name);
    marlin_rmtree(dir);
    free(dir);
}

/* Files live under hidden temporary names until finish(); a writer freed
 * before finish leaves nothing; an existing checkpoint is not mixed into. */
static void test_formats_model_writer_temp_rename(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("wtmp");
    marlin_error err = {0};
    marlin_writer *w = NULL;
    uint64_t sh[1] = {4};
    unsigned char buf[4] = {1, 2, 3, 4};
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "x", MARLIN_DT_U8, 1, sh, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    char *ls = list_dir(dir);
    assert_true(ls[0] == '.' && strstr(ls, ".model.safetensors.tmp-") == ls);
    assert_null(strchr(ls, '\n'));
    free(ls);
    marlin_writer_free(w); /* abandoned */
    ls = list_dir(dir);
    assert_string_equal(ls, "");
    free(ls);
    /* finished: exactly the final name */
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "x", MARLIN_DT_U8, 1, sh, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put_part(w, "x", buf, 1, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put_part(w, "x", buf + 1, 3, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_put_part(w, "x", buf, 1, &err),
                     MARLIN_ERR_INVALID_ARG); /* past the end */
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_OK);
    marlin_writer_free(w);
    ls = list_dir(dir);
    assert_string_equal(ls, "model.safetensors");
    free(ls);
    char *p = path2(dir, "model.safetensors");
    size_t len;
    char *got = read_all(p, &len);
    assert_memory_equal(got + len - 4, buf, 4);
    free(got);
    free(p);
    /* a second checkpoint into the same folder is refused at begin */
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_add(w, "x", MARLIN_DT_U8, 1, sh, &err), MARLIN_OK);
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "model.safetensors"));
    marlin_writer_free(w);
    marlin_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- outdir */
static void test_formats_model_outdir(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("odir");
    char *final = path2(dir, "out");
    marlin_error err = {0};
    char *tmp = NULL;
    /* fresh: temp sibling, nothing at the final path until commit */
    assert_int_equal(marlin_outdir_begin(final, false, &tmp, &err), MARLIN_OK);
    assert_non_null(strstr(tmp, "/out.tmp-"));
    put_text(tmp, "config.json", "{}");
    struct stat sb;
    assert_int_equal(stat(final, &sb), -1);
    assert_int_equal(marlin_outdir_commit(tmp, final, false, &err), MARLIN_OK);
    assert_int_equal(stat(tmp, &sb), -1);
    free(tmp);
    tmp = NULL;
    char *ls = list_dir(final);
    assert_string_equal(ls, "config.json");
    free(ls);
    /* exists, no force: refused before anything is created */
    assert_int_equal(marlin_outdir_begin(final, false, &tmp, &err), MARLIN_ERR_EXISTS);
    assert_null(tmp);
    assert_non_null(strstr(err.msg, final));
    /* abort removes the temporary folder, the old output is untouched */
    assert_int_equal(marlin_outdir_begin(final, true, &tmp, &err), MARLIN_OK);
    put_text(tmp, "model.safetensors", "x");
    marlin_outdir_abort(tmp);
    assert_int_equal(stat(tmp, &sb), -1);
    free(tmp);
    tmp = NULL;
    ls = list_dir(dir);
    assert_string_equal(ls, "out");
    free(ls);
    /* force: replaced in one step */
    assert_int_equal(marlin_outdir_begin(final, true, &tmp, &err), MARLIN_OK);
    put_text(tmp, "model.safetensors", "new");
    assert_int_equal(marlin_outdir_commit(tmp, final, true, &err), MARLIN_OK);
    free(tmp);
    tmp = NULL;
    ls = list_dir(final);
    assert_string_equal(ls, "model.safetensors");
    free(ls);
    ls = list_dir(dir);
    assert_string_equal(ls, "out");
    free(ls);
    /* the final name appearing during the run, without force: refused */
    char *final2 = path2(dir, "out2");
    assert_int_equal(marlin_outdir_begin(final2, false, &tmp, &err), MARLIN_OK);
    assert_int_equal(mkdir(final2, 0777), 0);
    assert_int_equal(marlin_outdir_commit(tmp, final2, false, &err), MARLIN_ERR_EXISTS);
    marlin_outdir_abort(tmp);
    free(tmp);
    tmp = NULL;
    /* force never replaces a folder that is not a checkpoint, nor a file */
    char *home = path2(dir, "notes");
    assert_int_equal(mkdir(home, 0777), 0);
    put_text(home, "todo.txt", "keep me");
    assert_int_equal(marlin_outdir_begin(home, true, &tmp, &err), MARLIN_ERR_EXISTS);
    put_text(dir, "file", "x");
    char *file = path2(dir, "file");
    assert_int_equal(marlin_outdir_begin(file, true, &tmp, &err), MARLIN_ERR_EXISTS);
    assert_null(tmp);
    free(file);
    free(home);
    free(final2);
    free(final);
    marlin_rmtree(dir);
    free(dir);
}

/* -------------------------------------------------- writer -> reader */
/* Random tensors of several dtypes, sharded, read back bit for bit through
 * the reader and the model folder. */
static void test_formats_model_writer_roundtrip(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(20240601);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    char *dir = marlin_test_tmpdir("wrt");
    marlin_error err = {0};
    marlin_writer *w = NULL;
    enum { NT = 24 };
    static const marlin_dtype dts[] = {MARLIN_DT_F16, MARLIN_DT_BF16,
                                       MARLIN_DT_F32, MARLIN_DT_I32,
                                       MARLIN_DT_U8, MARLIN_DT_I64};
    char names[NT][32];
    marlin_dtype dt[NT];
    uint64_t shape[NT][2], nb[NT];
    unsigned char *data[NT];
    assert_int_equal(marlin_writer_create(dir, 4096, &w, &err), MARLIN_OK);
    for (int i = 0; i < NT; i++) {
        snprintf(names[i], sizeof names[i], "layers.%d.w%d", i / 3, i % 3);
        dt[i] = dts[marlin_rng_u64(&rng) % 6];
        shape[i][0] = 1 + marlin_rng_u64(&rng) % 17;
        shape[i][1] = 1 + marlin_rng_u64(&rng) % 33;
        nb[i] = shape[i][0] * shape[i][1] * (uint64_t)marlin_dtype_bits(dt[i]) / 8;
        data[i] = malloc(nb[i]);
        for (uint64_t k = 0; k < nb[i]; k++) data[i][k] = (unsigned char)marlin_rng_u64(&rng);
        assert_int_equal(marlin_writer_add(w, names[i], dt[i], 2, shape[i], &err), MARLIN_OK);
    }
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    MT_ASSERT(seed, marlin_writer_shard_count(w) > 1, "expected several shards");
    for (int i = NT; i-- > 0;) /* any order */
        assert_int_equal(marlin_writer_put(w, names[i], data[i], nb[i], &err), MARLIN_OK);
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_OK);
    marlin_writer_free(w);
    marlin_model *m = NULL;
    if (marlin_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(marlin_model_count(m), NT);
    assert_int_equal(marlin_model_warning_count(m), 0);
    for (int i = 0; i < NT; i++) {
        const marlin_st_file *f = NULL;
        const marlin_tensor *t = marlin_model_find(m, names[i], &f);
        MT_ASSERT(seed, t != NULL, "tensor %s missing", names[i]);
        MT_ASSERT(seed, t->dtype == dt[i] && t->rank == 2 &&
                            t->shape[0] == shape[i][0] && t->shape[1] == shape[i][1],
                  "tensor %s: header differs", names[i]);
        MT_ASSERT(seed, memcmp(marlin_st_data(f, t), data[i], nb[i]) == 0,
                  "tensor %s: bytes differ", names[i]);
        unsigned char *back = malloc(nb[i]);
        assert_int_equal(marlin_st_read(f, t, 0, nb[i], back, &err), MARLIN_OK);
        MT_ASSERT(seed, memcmp(back, data[i], nb[i]) == 0, "pread differs");
        free(back);
        free(data[i]);
    }
    marlin_model_close(m);
    marlin_rmtree(dir);
    free(dir);
}

/* ---------------------------------------------------- model fixtures */
/* A safetensors file holding F16 [2] tensors with the given names (data:
 * tensor i is {i, i}). */
static void write_st(const char *path, const char *const *names, size_t n) {
    char hdr[8192];
    size_t hl = 0;
    hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "{");
    for (size_t i = 0; i < n; i++)
        hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl,
                               "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[2],"
                               "\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", names[i], 4 * i, 4 * i + 4);
    hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    size_t total = 8 + hl + 4 * n;
    unsigned char *b = calloc(1, total);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < n; i++) {
        uint16_t h = marlin_float_to_half((float)i);
        memcpy(b + 8 + hl + 4 * i, &h, 2);
        memcpy(b + 8 + hl + 4 * i + 2, &h, 2);
    }
    assert_int_equal(marlin_write_file(path, b, total), 0);
    free(b);
}

static void write_st_in(const char *dir, const char *file,
                        const char *const *names, size_t n) {
    char *p = path2(dir, file);
    write_st(p, names, n);
    free(p);
}

static const char *const shard1[] = {"a", "b"};
static const char *const shard2[] = {"c"};

static const char good_index[] =
    "{\"metadata\":{\"total_size\":12},\"weight_map\":{"
    "\"a\":\"model-00001-of-00002.safetensors\","
    "\"b\":\"model-00001-of-00002.safetensors\","
    "\"c\":\"model-00002-of-00002.safetensors\"}}";

/* A valid two-shard folder. */
static char *sharded_folder(const char *tag) {
    char *dir = marlin_test_tmpdir(tag);
    write_st_in(dir, "model-00001-of-00002.safetensors", shard1, 2);
    write_st_in(dir, "model-00002-of-00002.safetensors", shard2, 1);
    put_text(dir, "model.safetensors.index.json", good_index);
    return dir;
}

/* Opens `path` expecting failure with `code`; the message must hold every
 * string of `want` (NULL-terminated). */
static void expect_open_fail(const char *path, marlin_status code,
                             const char *const *want) {
    marlin_model *m = NULL;
    marlin_error err = {0};
    marlin_status st = marlin_model_open(path, &m, &err);
    if (st != code)
        fail_msg("%s: status %d (%s), want %d", path, st, err.msg, code);
    assert_null(m);
    assert_null(strchr(err.msg, '\n')); /* one line */
    for (size_t i = 0; want && want[i]; i++)
        if (!strstr(err.msg, want[i]))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, want[i]);
}

/* Opens and returns the model; fails the test on error. */
static marlin_model *open_ok(const char *path) {
    marlin_model *m = NULL;
    marlin_error err = {0};
    if (marlin_model_open(path, &m, &err) != MARLIN_OK)
        fail_msg("%s: %s", path, err.msg);
    return m;
}

static bool has_warning(const marlin_model *m, const char *needle) {
    for (size_t i = 0; i < marlin_model_warning_count(m); i++)
        if (strstr(marlin_model_warning(m, i), needle)) return true;
    return false;
}

/* ------------------------------------------------------- model folder */
static void test_formats_model_shared_model(void **state) {
    (void)state;
    const char *p = marlin_shared_path("models/shakespeare-llama-13m");
    if (!p) {
        printf("skip: ../shared/models/shakespeare-llama-13m is absent\n");
        skip();
    }
    char *path = strdup(p);
    marlin_model *m = open_ok(path);
    assert_int_equal(marlin_model_count(m), 39);
    assert_int_equal(marlin_model_shard_count(m), 3);
    assert_int_equal(marlin_model_warning_count(m), 0);
    uint64_t total = 0;
    for (size_t i = 0; i < marlin_model_count(m); i++) {
        const marlin_tensor *t = marlin_model_at(m, i, NULL);
        assert_int_equal(t->dtype, MARLIN_DT_F16);
        total += t->nbytes;
    }
    assert_int_equal(total, 25699328); /* the index's total_size */
    const marlin_config *c = marlin_model_config(m);
    assert_true(c->present);
    assert_string_equal(c->model_type, "llama");
    assert_true(marlin_config_is_llama_like(c));
    assert_int_equal(c->hidden_size, 512);
    assert_int_equal(c->num_attention_heads, 8);
    assert_int_equal(c->num_key_value_heads, 4);
    assert_int_equal(c->head_dim, 64);
    assert_int_equal(c->intermediate_size, 1536);
    assert_int_equal(c->num_hidden_layers, 4);
    assert_int_equal(c->vocab_size, 256);
    assert_int_equal(c->max_position_embeddings, 512);
    assert_true(c->rms_norm_eps == 1e-5);
    assert_true(c->rope_theta == 10000.0);
    assert_int_equal(c->rope_type, MARLIN_ROPE_DEFAULT);
    assert_false(c->tie_word_embeddings);
    assert_false(c->attention_bias);
    assert_string_equal(c->torch_dtype, "float16");
    const marlin_st_file *f = NULL;
    const marlin_tensor *t = marlin_model_find(m, "model.layers.0.self_attn.k_proj.weight", &f);
    assert_non_null(t);
    assert_int_equal(t->shape[0], 256);
    assert_int_equal(t->shape[1], 512);
    assert_non_null(f);
    assert_null(marlin_model_find(m, "model.layers.0.self_attn.k_proj", NULL));
    marlin_model_close(m);
    free(path);
}

static void test_formats_model_single_and_file(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("msingle");
    write_st_in(dir, "model.safetensors", shard1, 2);
    marlin_model *m = open_ok(dir);
    assert_int_equal(marlin_model_count(m), 2);
    assert_false(marlin_model_config(m)->present); /* no config.json */
    marlin_model_close(m);
    /* a file path, any name, config.json beside it read */
    write_st_in(dir, "other.safetensors", shard2, 1);
    put_text(dir, "config.json", "{\"model_type\":\"llama\",\"hidden_size\":64,"
             "\"intermediate_size\":128,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":4,\"vocab_size\":10}");
    char *p = path2(dir, "other.safetensors");
    m = open_ok(p);
    assert_int_equal(marlin_model_count(m), 1);
    assert_true(marlin_model_config(m)->present);
    assert_string_equal(marlin_model_dir(m), dir);
    marlin_model_close(m);
    free(p);
    marlin_rmtree(dir);
    free(dir);
    /* a folder with only another name: explained, not guessed */
    dir = marlin_test_tmpdir("mnone");
    write_st_in(dir, "consolidated.safetensors", shard1, 2);
    expect_open_fail(dir, MARLIN_ERR_FORMAT,
                     (const char *[]){dir, "consolidated.safetensors", NULL});
    char *q = path2(dir, "consolidated.safetensors");
    unlink(q);
    free(q);
    put_text(dir, "pytorch_model.bin", "x");
    expect_open_fail(dir, MARLIN_ERR_FORMAT, (const char *[]){"PyTorch", NULL});
    marlin_rmtree(dir);
    free(dir);
}

static void test_formats_model_sharded_ok(void **state) {
    (void)state;
    char *dir = sharded_folder("mshard");
    marlin_model *m = open_ok(dir);
    assert_int_equal(marlin_model_count(m), 3);
    assert_int_equal(marlin_model_shard_count(m), 2);
    assert_int_equal(marlin_model_warning_count(m), 0);
    const marlin_st_file *f = NULL;
    const marlin_tensor *t = marlin_model_find(m, "c", &f);
    assert_non_null(t);
    assert_non_null(strstr(marlin_st_label(f), "model-00002-of-00002"));
    /* names sorted across shards */
    assert_string_equal(marlin_model_at(m, 0, NULL)->name, "a");
    assert_string_equal(marlin_model_at(m, 2, NULL)->name, "c");
    marlin_model_close(m);
    /* the index file itself is a valid path too */
    char *ip = path2(dir, "model.safetensors.index.json");
    m = open_ok(ip);
    assert_int_equal(marlin_model_count(m), 3);
    marlin_model_close(m);
    free(ip);
    marlin_rmtree(dir);
    free(dir);
}

/* Cases 82 and 83: a shard truncated after open is an I/O error on read,
 * never a crash; a shard that grows after open is read as it was. */
static void test_formats_model_case82_83_truncate_grow(void **state) {
    (void)state;
    char *dir = sharded_folder("m8283");
    marlin_model *m = open_ok(dir);
    const marlin_st_file *f = NULL;
    const marlin_tensor *t = marlin_model_find(m, "b", &f);
    char *p = path2(dir, "model-00001-of-00002.safetensors");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    /* grow: append garbage; reads still see the original tensor */
    FILE *fp = fopen(p, "ab");
    fputs("garbage appended after open", fp);
    fclose(fp);
    float v[2];
    marlin_error err = {0};
    assert_int_equal(marlin_st_read_f32(f, t, v, &err), MARLIN_OK);
    assert_true(v[0] == 1.0f && v[1] == 1.0f);
    /* truncate into the data: the read fails cleanly */
    assert_int_equal(truncate(p, sb.st_size - 6), 0);
    assert_int_equal(marlin_st_read_f32(f, t, v, &err), MARLIN_ERR_IO);
    assert_non_null(strstr(err.msg, "model-00001-of-00002"));
    marlin_model_close(m);
    /* and opening the truncated folder now fails, naming the shard */
    expect_open_fail(dir, MARLIN_ERR_FORMAT,
                     (const char *[]){"model-00001-of-00002.safetensors", NULL});
    free(p);
    marlin_rmtree(dir);
    free(dir);
}

/* Case 84: a shard that is a folder or a FIFO. */
static void test_formats_model_case84_not_regular(void **state) {
    (void)state;
    char *dir = sharded_folder("m84");
    char *p = path2(dir, "model-00002-of-00002.safetensors");
    unlink(p);
    assert_int_equal(mkdir(p, 0777), 0);
    expect_open_fail(dir, MARLIN_ERR_FORMAT, (const char *[]){p, "not a regular file", NULL});
    rmdir(p);
    assert_int_equal(mkfifo(p, 0666), 0);
    expect_open_fail(dir, MARLIN_ERR_FORMAT, (const char *[]){p, "not a regular file", NULL});
    unlink(p);
    expect_open_fail(dir, MARLIN_ERR_FORMAT, (const char *[]){p, "does not exist", NULL});
    free(p);
    marlin_rmtree(dir);
    free(dir);
}

/* Case 85: links may resolve inside the model folder (or a hub repo),
 * never outside it. */
static void test_formats_model_case85_symlinks(void **state) {
    (void)state;
    char *base = marlin_test_tmpdir("m85");
    char *model = path2(base, "model"), *outside = path2(base, "outside");
    assert_int_equal(mkdir(model, 0777), 0);
    assert_int_equal(mkdir(outside, 0777), 0);
    write_st_in(outside, "w.safetensors", shard1, 2);
    char *link = path2(model, "model.safetensors");
    assert_int_equal(symlink("../outside/w.safetensors", link), 0);
    expect_open_fail(model, MARLIN_ERR_FORMAT,
                     (const char *[]){"outside the model folder", link, NULL});
    /* a link to a file inside the folder is fine */
    unlink(link);
    write_st_in(model, "real.safetensors", shard1, 2);
    assert_int_equal(symlink("real.safetensors", link), 0);
    marlin_model *m = open_ok(model);
    assert_int_equal(marlin_model_count(m), 2);
    assert_true(has_warning(m, "real.safetensors") == false);
    marlin_model_close(m);
    /* config.json linking outside is refused as well */
    put_text(outside, "config.json", "{}");
    char *cl = path2(model, "config.json");
    assert_int_equal(symlink("../outside/config.json", cl), 0);
    expect_open_fail(model, MARLIN_ERR_FORMAT, (const char *[]){"config.json", NULL});
    free(cl);
    /* hub cache: models--o--n with blobs, refs/main, snapshots/<rev> */
    char *repo = path2(base, "models--org--tiny");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/blobs' '%s/refs' '%s/snapshots/abc123' && "
             "printf 'abc123' > '%s/refs/main'",
             repo, repo, repo, repo);
    assert_int_equal(marlin_test_system("%s", cmd), 0);
    char *blobs = path2(repo, "blobs");
    write_st_in(blobs, "1111", shard1, 2);
    put_text(blobs, "2222", "{\"model_type\":\"llama\",\"hidden_size\":64,"
             "\"intermediate_size\":128,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":4,\"vocab_size\":10}");
    char *snap = path2(repo, "snapshots/abc123");
    char *s1 = path2(snap, "model.safetensors"), *s2 = path2(snap, "config.json");
    assert_int_equal(symlink("../../blobs/1111", s1), 0);
    assert_int_equal(symlink("../../blobs/2222", s2), 0);
    m = open_ok(snap);
    assert_int_equal(marlin_model_count(m), 2);
    assert_true(marlin_model_config(m)->present);
    marlin_model_close(m);
    m = open_ok(repo); /* the repo folder resolves refs/main */
    assert_int_equal(marlin_model_count(m), 2);
    assert_non_null(strstr(marlin_model_dir(m), "snapshots/abc123"));
    marlin_model_close(m);
    /* a snapshot link escaping the repo is refused */
    unlink(s1);
    assert_int_equal(symlink("../../../outside/w.safetensors", s1), 0);
    expect_open_fail(snap, MARLIN_ERR_FORMAT, (const char *[]){"outside", NULL});
    free(s1);
    free(s2);
    free(snap);
    free(blobs);
    free(repo);
    free(link);
    free(model);
    free(outside);
    marlin_rmtree(base);
    free(base);
}

/* Rewrites the index of a good folder and expects failure. */
static void index_case(const char *index, marlin_status code, const char *const *want) {
    char *dir = sharded_folder("mix");
    put_text(dir, "model.safetensors.index.json", index);
    expect_open_fail(dir, code, want);
    marlin_rmtree(dir);
    free(dir);
}

#define IDX(wm) "{\"metadata\":{\"total_size\":12},\"weight_map\":{" wm "}}"
#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""

/* Case 86: weight_map values must be plain file names. */
static void test_formats_model_case86_shard_names(void **state) {
    (void)state;
    index_case(IDX("\"a\":\"../x.safetensors\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"'a'", "../x.safetensors", NULL});
    index_case(IDX("\"a\":\"/etc/x.safetensors\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"absolute", NULL});
    index_case(IDX("\"a\":\"sub/x.safetensors\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"plain file name", NULL});
    index_case(IDX("\"a\":\"sub\\\\x.safetensors\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"plain file name", NULL});
    index_case(IDX("\"a\":\"x\\u0000.safetensors\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"NUL", NULL});
    index_case(IDX("\"a\":\"\",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"empty", NULL});
}

/* Case 87: wrong types and missing keys. */
static void test_formats_model_case87_types(void **state) {
    (void)state;
    index_case(IDX("\"a\":7,\"b\":" S1 ",\"c\":" S2), MARLIN_ERR_FORMAT,
               (const char *[]){"weight_map['a']", NULL});
    index_case(IDX("\"a\":null,\"b\":" S1 ",\"c\":" S2), MARLIN_ERR_FORMAT,
               (const char *[]){"weight_map['a']", NULL});
    index_case("{\"metadata\":{\"total_size\":12}}", MARLIN_ERR_FORMAT,
               (const char *[]){"\"weight_map\" is missing", NULL});
    index_case("{\"weight_map\":{\"a\":" S1 "}}", MARLIN_ERR_FORMAT,
               (const char *[]){"\"metadata\" is missing", NULL});
    index_case("[1,2]", MARLIN_ERR_FORMAT, (const char *[]){"not a JSON object", NULL});
    index_case("{\"metadata\":{}, \"weight_map\":", MARLIN_ERR_FORMAT,
               (const char *[]){"invalid JSON", "model.safetensors.index.json", NULL});
}

/* Case 88: index and shards must agree both ways. */
static void test_formats_model_case88_agreement(void **state) {
    (void)state;
    index_case(IDX("\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"d\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"'d'", "does not hold it", NULL});
    index_case(IDX("\"a\":" S1 ",\"c\":" S2), MARLIN_ERR_FORMAT,
               (const char *[]){"'b'", "not listed", "model-00001-of-00002", NULL});
}

/* Case 89: one tensor in two shards; a name repeated in weight_map. */
static void test_formats_model_case89_duplicates(void **state) {
    (void)state;
    char *dir = sharded_folder("m89");
    static const char *const both[] = {"b", "c"};
    write_st_in(dir, "model-00002-of-00002.safetensors", both, 2);
    expect_open_fail(dir, MARLIN_ERR_FORMAT,
                     (const char *[]){"'b'", "one shard only", NULL});
    marlin_rmtree(dir);
    free(dir);
    index_case(IDX("\"a\":" S1 ",\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2),
               MARLIN_ERR_FORMAT, (const char *[]){"duplicate", NULL});
}

/* Case 90: total_size. */
static void test_formats_model_case90_total_size(void **state) {
    (void)state;
    static const char *const bad[][2] = {
        {"-1", "total_size"}, {"12.5", "total_size"}, {"\"12\"", "total_size"},
        {"null", "total_size"}, {"9223372036854775808", "too big integer"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char idx[512];
        snprintf(idx, sizeof idx,
                 "{\"metadata\":{\"total_size\":%s},\"weight_map\":{\"a\":" S1
                 ",\"b\":" S1 ",\"c\":" S2 "}}", bad[i][0]);
        index_case(idx, MARLIN_ERR_FORMAT, (const char *[]){bad[i][1], NULL});
    }
    /* a wrong sum is only a warning; extra metadata keys are fine */
    char *dir = sharded_folder("m90");
    put_text(dir, "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":999,\"total_parameters\":6},"
             "\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 "}}");
    marlin_model *m = open_ok(dir);
    assert_true(has_warning(m, "total_size is 999"));
    assert_true(has_warning(m, "12"));
    marlin_model_close(m);
    marlin_rmtree(dir);
    free(dir);
}

/* Case 91: shard names off the pattern, or a wrong count: warnings. */
static void test_formats_model_case91_pattern(void **state) {
    (void)state;
    char *dir = marlin_test_tmpdir("m91");
    write_st_in(dir, "part-a.safetensors", shard1, 2);
    write_st_in(dir, "model-00002-of-00003.safetensors", shard2, 1);
    put_text(dir, "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":12},\"weight_map\":{"
             "\"a\":\"part-a.safetensors\",\"b\":\"part-a.safetensors\","
             "\"c\":\"model-00002-of-00003.safetensors\"}}");
    marlin_model *m = open_ok(dir);
    assert_int_equal(marlin_model_count(m), 3);
    assert_true(has_warning(m, "do not follow"));
    marlin_model_close(m);
    marlin_rmtree(dir);
    free(dir);
}

/* Case 92: model.safetensors beside an index is refused; stray shards are
 * reported and not used. */
static void test_formats_model_case92_stale(void **state) {
    (void)state;
    char *dir = sharded_folder("m92");
    write_st_in(dir, "old-00001-of-00001.safetensors", shard2, 1);
    marlin_model *m = open_ok(dir);
    assert_true(has_warning(m, "old-00001-of-00001.safetensors"));
    assert_int_equal(marlin_model_count(m), 3);
    marlin_model_close(m);
    write_st_in(dir, "model.safetensors", shard1, 2);
    expect_open_fail(dir, MARLIN_ERR_FORMAT,
                     (const char *[]){"model.safetensors", "index", "stale", NULL});
    marlin_rmtree(dir);
    free(dir);
}

/* Case 93: NaN/Infinity in unrelated config fields load. */
static void test_formats_model_case93_config_nan(void **state) {
    (void)state;
    char *dir = sharded_folder("m93");
    put_text(dir, "config.json",
             "{\"model_type\": \"llama\", \"hidden_size\": 64,\n"
             " \"intermediate_size\": 128, \"num_hidden_layers\": 2,\n"
             " \"num_attention_heads\": 4, \"vocab_size\": 100,\n"
             " \"router_aux_loss_coef\": NaN, \"clip\": [-Infinity, Infinity],\n"
             " \"note\": \"NaN stays a string\"}");
    marlin_model *m = open_ok(dir);
    assert_int_equal(marlin_model_config(m)->hidden_size, 64);
    marlin_model_close(m);
    /* a broken config.json is an error naming it */
    put_text(dir, "config.json", "{\"model_type\": \"llama\",}");
    expect_open_fail(dir, MARLIN_ERR_FORMAT, (const char *[]){"config.json", NULL});
    marlin_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- config */
static marlin_status cfg(const char *text, marlin_config *c, marlin_error *err) {
    return marlin_config_parse(text, strlen(text), "config.json", c, err);
}

#define LLAMA_BASE "\"model_type\":\"llama\",\"hidden_size\":4096," \
    "\"intermediate_size\":14336,\"num_hidden_layers\":32," \
    "\"num_attention_heads\":32,\"vocab_size\":128256"

static void test_formats_model_config_defaults(void **state) {
    (void)state;
    marlin_config c;
    marlin_error err = {0};
    assert_int_equal(cfg("{" LLAMA_BASE "}", &c, &err), MARLIN_OK);
    assert_int_equal(c.num_key_value_heads, 32);  /* = heads */
    assert_int_equal(c.head_dim, 128);            /* hidden / heads */
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.rope_type, MARLIN_ROPE_DEFAULT);
    assert_true(c.rope_factor == 1.0);
    assert_int_equal(c.max_position_embeddings, 0);
    assert_false(c.tie_word_embeddings || c.attention_bias || c.mlp_bias);
    assert_string_equal(c.torch_dtype, "");
    /* explicit values, 4.x style */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"num_key_value_heads\":8,"
                         "\"head_dim\":128,\"rms_norm_eps\":1e-05,"
                         "\"rope_theta\":500000.0,\"tie_word_embeddings\":true,"
                         "\"mlp_bias\":true,\"torch_dtype\":\"bfloat16\","
                         "\"max_position_embeddings\":131072,"
                         "\"head_dim_unused\":null,\"rope_scaling\":null}",
                         &c, &err), MARLIN_OK);
    assert_int_equal(c.num_key_value_heads, 8);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.rope_theta == 500000.0);
    assert_true(c.tie_word_embeddings && c.mlp_bias);
    assert_string_equal(c.torch_dtype, "bfloat16");
    /* "dtype" (transformers 5) wins over torch_dtype */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"dtype\":\"float16\","
                         "\"torch_dtype\":\"bfloat16\"}", &c, &err), MARLIN_OK);
    assert_string_equal(c.torch_dtype, "float16");
    /* model_type inferred from architectures */
    assert_int_equal(cfg("{\"architectures\":[\"MistralForCausalLM\"],"
                         "\"hidden_size\":64,\"intermediate_size\":128,"
                         "\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                         "\"vocab_size\":10,\"head_dim\":null}", &c, &err), MARLIN_OK);
    assert_string_equal(c.model_type, "mistral");
    assert_int_equal(c.head_dim, 16);
}

static void test_formats_model_config_rope(void **state) {
    (void)state;
    marlin_config c;
    marlin_error err = {0};
    /* transformers 5: rope_parameters holds theta and type */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_parameters\":{\"rope_theta\":"
                         "20000.0,\"rope_type\":\"default\"}}", &c, &err), MARLIN_OK);
    assert_true(c.rope_theta == 20000.0);
    assert_int_equal(c.rope_type, MARLIN_ROPE_DEFAULT);
    /* llama3 (Llama 3.1) in rope_scaling, theta at the top */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_theta\":500000.0,\"rope_scaling\":"
                         "{\"factor\":8.0,\"low_freq_factor\":1.0,"
                         "\"high_freq_factor\":4.0,"
                         "\"original_max_position_embeddings\":8192,"
                         "\"rope_type\":\"llama3\"}}", &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_LLAMA3);
    assert_true(c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 &&
                c.rope_high_freq_factor == 4.0);
    assert_int_equal(c.rope_original_max_position, 8192);
    assert_true(c.rope_theta == 500000.0);
    /* the same inside rope_parameters */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_parameters\":{\"rope_theta\":"
                         "500000.0,\"factor\":8.0,\"low_freq_factor\":1.0,"
                         "\"high_freq_factor\":4.0,"
                         "\"original_max_position_embeddings\":8192,"
                         "\"rope_type\":\"llama3\"}}", &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_LLAMA3);
    assert_true(c.rope_theta == 500000.0);
    /* legacy "type" key; linear/dynamic/yarn */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"type\":\"linear\","
                         "\"factor\":2.0}}", &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_LINEAR);
    assert_true(c.rope_factor == 2.0);
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"type\":\"dynamic\","
                         "\"factor\":2.0}}", &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_DYNAMIC);
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\","
                         "\"factor\":4.0,\"original_max_position_embeddings\":"
                         "32768}}", &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_YARN);
    assert_int_equal(c.rope_original_max_position, 32768);
    /* refusals */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":"
                         "\"longrope\",\"factor\":4.0}}", &c, &err),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "longrope"));
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":"
                         "\"linear\"}}", &c, &err), MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "rope_scaling.factor"));
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\","
                         "\"factor\":8.0,\"low_freq_factor\":4.0,"
                         "\"high_freq_factor\":1.0,"
                         "\"original_max_position_embeddings\":8192}}", &c, &err),
                     MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "high_freq_factor"));
}

static void test_formats_model_config_qwen2_and_families(void **state) {
    (void)state;
    marlin_config c;
    marlin_error err = {0};
    /* qwen2: q/k/v biases without an attention_bias key */
    assert_int_equal(cfg("{\"model_type\":\"qwen2\",\"hidden_size\":896,"
                         "\"intermediate_size\":4864,\"num_hidden_layers\":24,"
                         "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
                         "\"vocab_size\":151936,\"rope_theta\":1000000.0,"
                         "\"tie_word_embeddings\":true}", &c, &err), MARLIN_OK);
    assert_true(c.attention_bias);
    assert_int_equal(c.head_dim, 64);
    assert_true(marlin_config_is_llama_like(&c));
    /* llama with attention_bias */
    assert_int_equal(cfg("{" LLAMA_BASE ",\"attention_bias\":true}", &c, &err), MARLIN_OK);
    assert_true(c.attention_bias);
    /* an unknown family parses; what it lacks stays 0 */
    assert_int_equal(cfg("{\"model_type\":\"gpt2\",\"n_embd\":768,\"vocab_size\":50257}",
                         &c, &err), MARLIN_OK);
    assert_string_equal(c.model_type, "gpt2");
    assert_false(marlin_config_is_llama_like(&c));
    assert_int_equal(c.hidden_size, 0);
    assert_int_equal(c.vocab_size, 50257);
    /* a rope variant we do not model blocks the Llama family only */
    assert_int_equal(cfg("{\"model_type\":\"phi3\",\"hidden_size\":3072,"
                         "\"rope_scaling\":{\"type\":\"longrope\",\"long_factor\":[1]}}",
                         &c, &err), MARLIN_OK);
    assert_int_equal(c.rope_type, MARLIN_ROPE_DEFAULT);
    assert_int_equal(cfg("{" LLAMA_BASE ",\"rope_scaling\":{\"type\":\"longrope\"}}",
                         &c, &err), MARLIN_ERR_UNSUPPORTED);
}

static void test_formats_model_config_errors(void **state) {
    (void)state;
    marlin_config c;
    marlin_error err = {0};
    static const struct { const char *text; const char *want; } bad[] = {
        {"{\"model_type\":\"llama\",\"hidden_size\":64}", "intermediate_size is required"},
        {"{" LLAMA_BASE ",\"num_key_value_heads\":5}", "does not divide"},
        {"{" LLAMA_BASE ",\"rms_norm_eps\":NaN}", "rms_norm_eps is NaN"},
        {"{" LLAMA_BASE ",\"rope_theta\":-Infinity}", "rope_theta is -Infinity"},
        {"{" LLAMA_BASE ",\"rms_norm_eps\":0}", "rms_norm_eps"},
        {"{" LLAMA_BASE ",\"hidden_size\":4096}", "duplicate"},
        {"{" LLAMA_BASE ",\"num_hidden_layers\":\"32\"}", "num_hidden_layers"},
        {"{\"model_type\":\"llama\",\"hidden_size\":4096.5}", "hidden_size must be an integer"},
        {"{\"model_type\":\"llama\",\"hidden_size\":-1}", "hidden_size is -1"},
        {"{" LLAMA_BASE ",\"tie_word_embeddings\":1}", "tie_word_embeddings"},
        {"{\"model_type\":\"llama\",\"hidden_size\":100,\"intermediate_size\":1,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"vocab_size\":1}",
         "not a multiple"},
        {"[]", "not a JSON object"},
        {"", "invalid JSON"},
        {"{\"model_type\":7}", "model_type must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        marlin_status st = cfg(bad[i].text, &c, &err);
        if (st != MARLIN_ERR_FORMAT || !strstr(err.msg, bad[i].want) ||
            !strstr(err.msg, "config.json"))
            fail_msg("case %zu: status %d, message \"%s\" (want \"%s\")", i, st,
                     err.msg, bad[i].want);
        assert_false(c.present);
    }
}

/* ------------------------------------------------------ config rewrite */
static char *rewrite(const char *src, const char *qc) {
    char *out = NULL;
    size_t len = 0;
    marlin_error err = {0};
    if (marlin_config_rewrite(src, strlen(src), "config.json", qc, &out, &len, &err))
        fail_msg("rewrite: %s", err.msg);
    assert_int_equal(strlen(out), len);
    return out;
}

static const char qc_text[] =
    "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":128,"
    "\"damp_percent\":0.01,\"desc_act\":false,\"sym\":true,"
    "\"meta\":{\"quantizer\":[\"marlin:0.1.0\"]},\"empty\":{}}";

static void test_formats_model_config_rewrite(void **state) {
    (void)state;
    /* transformers layout (sorted keys, indent 2): inserted in place,
     * re-indented; NaN and odd numbers kept verbatim; dtype rewritten */
    const char *src =
        "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
        "  \"dtype\": \"bfloat16\",\n  \"odd\": NaN,\n"
        "  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": \"bfloat16\"\n}\n";
    char *out = rewrite(src, qc_text);
    const char *want =
        "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
        "  \"dtype\": \"float16\",\n  \"odd\": NaN,\n"
        "  \"quantization_config\": {\n"
        "    \"quant_method\": \"gptq\",\n    \"bits\": 4,\n"
        "    \"group_size\": 128,\n    \"damp_percent\": 0.01,\n"
        "    \"desc_act\": false,\n    \"sym\": true,\n"
        "    \"meta\": {\n      \"quantizer\": [\n        \"marlin:0.1.0\"\n"
        "      ]\n    },\n    \"empty\": {}\n  },\n"
        "  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": \"float16\"\n}\n";
    assert_string_equal(out, want);
    /* rewriting the output again replaces the block: a fixed point */
    char *again = rewrite(out, qc_text);
    assert_string_equal(again, out);
    free(again);
    free(out);
    /* unsorted, compact source: appended at the end; torch_dtype added */
    out = rewrite("{\"b\":1,\"a\":[1.50,2]}", "{\"bits\":4}");
    assert_string_equal(out, "{\"b\":1,\"a\":[1.50,2], \"quantization_config\":"
                             "{\"bits\":4}, \"torch_dtype\":\"float16\"}");
    free(out);
    out = rewrite("{}", "{\"bits\":4}");
    assert_string_equal(out, "{\"quantization_config\": {\"bits\": 4}, "
                             "\"torch_dtype\": \"float16\"}");
    free(out);
    /* refusals */
    char *o = NULL;
    marlin_error err = {0};
    assert_int_equal(marlin_config_rewrite("{}", 2, "config.json", "[1]", &o, NULL, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_config_rewrite("{}", 2, "config.json", "{\"a\":NaN}", &o,
                                           NULL, &err), MARLIN_ERR_INVALID_ARG);
    assert_int_equal(marlin_config_rewrite("{\"a\":1,\"a\":2}", 13, "config.json",
                                           "{}", &o, NULL, &err), MARLIN_ERR_FORMAT);
    assert_null(o);
}

/* The shared model's config: only quantization_config is added (dtype is
 * already float16); every other byte is kept. */
static void test_formats_model_config_rewrite_shared(void **state) {
    (void)state;
    const char *p = marlin_shared_path("models/shakespeare-llama-13m/config.json");
    if (!p) {
        printf("skip: ../shared/models/shakespeare-llama-13m is absent\n");
        skip();
    }
    size_t len = 0;
    char *src = read_all(p, &len);
    char *out = rewrite(src, "{\"bits\":4}");
    const char *ins = "  \"quantization_config\": {\n    \"bits\": 4\n  },\n";
    char *at = strstr(out, ins);
    assert_non_null(at);
    assert_non_null(strstr(at + strlen(ins), "  \"rms_norm_eps\"") == at + strlen(ins)
                        ? at : NULL);
    size_t pre = (size_t)(at - out);
    assert_int_equal(strlen(out), len + strlen(ins));
    assert_memory_equal(out, src, pre);
    assert_string_equal(out + pre + strlen(ins), src + pre);
    free(out);
    free(src);
}

/* write_config + copy_aux on a folder with every kind of file. */
static void test_formats_model_write_config_copy_aux(void **state) {
    (void)state;
    char *base = marlin_test_tmpdir("maux");
    char *src = path2(base, "src"), *out = path2(base, "out");
    assert_int_equal(mkdir(src, 0777), 0);
    assert_int_equal(mkdir(out, 0777), 0);
    write_st_in(src, "model.safetensors", shard1, 2);
    put_text(src, "config.json",
             "{\"auto_map\": {\"AutoConfig\": \"configuration_x.XConfig\","
             " \"AutoModel\": \"other/repo--modeling_y.Y\"},"
             " \"model_type\": \"x\", \"torch_dtype\": \"bfloat16\"}");
    put_text(src, "tokenizer_config.json",
             "{\"auto_map\": {\"AutoTokenizer\": [\"tokenization_x.XTok\", null]}}");
    static const char *const keep[] = {
        "generation_config.json", "tokenizer.json", "special_tokens_map.json",
        "tokenizer.model", "chat_template.jinja", "LICENSE", "USE_POLICY.md",
        "configuration_x.py", "tokenization_x.py"};
    static const char *const drop[] = {
        "pytorch_model.bin", "pytorch_model.bin.index.json", "training_args.bin",
        "optimizer.pt", "quantize_config.json", "params.json",
        "consolidated.safetensors", "unrelated.py", "modeling_y.py"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) put_text(src, keep[i], keep[i]);
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) put_text(src, drop[i], drop[i]);
    put_text(src, "README.md", "---\nlicense: mit\n---\n# Model\ntext\n");
    char *act = path2(src, "additional_chat_templates");
    assert_int_equal(mkdir(act, 0777), 0);
    put_text(act, "tool_use.jinja", "{{ x }}");
    put_text(act, "notes.txt", "no");
    /* consolidated.safetensors beside model.safetensors is not our file */
    marlin_model *m = NULL;
    marlin_error err = {0};
    if (marlin_model_open(src, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(marlin_model_write_config(m, out, "{\"bits\":4}", &err), MARLIN_OK);
    assert_int_equal(marlin_model_copy_aux(m, out, &err), MARLIN_OK);
    char *ls = list_dir(out);
    assert_string_equal(ls, "LICENSE\nREADME.md\nUSE_POLICY.md\n"
                            "additional_chat_templates\nchat_template.jinja\n"
                            "config.json\nconfiguration_x.py\n"
                            "generation_config.json\nspecial_tokens_map.json\n"
                            "tokenization_x.py\ntokenizer.json\ntokenizer.model\n"
                            "tokenizer_config.json");
    free(ls);
    char *sub = path2(out, "additional_chat_templates");
    ls = list_dir(sub);
    assert_string_equal(ls, "tool_use.jinja");
    free(ls);
    free(sub);
    char *cp = path2(out, "config.json");
    char *c = read_all(cp, NULL);
    assert_string_equal(c, "{\"auto_map\": {\"AutoConfig\": \"configuration_x.XConfig\","
                           " \"AutoModel\": \"other/repo--modeling_y.Y\"},"
                           " \"model_type\": \"x\", \"quantization_config\": "
                           "{\"bits\": 4}, \"torch_dtype\": \"float16\"}");
    free(c);
    free(cp);
    char *rp = path2(out, "README.md");
    c = read_all(rp, NULL);
    assert_true(strncmp(c, "---\nlicense: mit\n---\n> **Quantized copy.**", 42) == 0);
    assert_non_null(strstr(c, "\n\n# Model\ntext\n"));
    free(c);
    free(rp);
    char *tp = path2(out, "tokenizer.json");
    c = read_all(tp, NULL);
    assert_string_equal(c, "tokenizer.json");
    free(c);
    free(tp);
    marlin_model_close(m);
    /* a config-less checkpoint gets a minimal config */
    char *single = path2(src, "model.safetensors");
    char *out2 = path2(base, "out2");
    assert_int_equal(mkdir(out2, 0777), 0);
    char *cfgp = path2(src, "config.json");
    unlink(cfgp);
    if (marlin_model_open(single, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(marlin_model_write_config(m, out2, "{\"bits\":4}", &err), MARLIN_OK);
    char *cp2 = path2(out2, "config.json");
    c = read_all(cp2, NULL);
    assert_string_equal(c, "{\n  \"dtype\": \"float16\",\n  \"quantization_config\": {\n"
                           "    \"bits\": 4\n  },\n  \"torch_dtype\": \"float16\"\n}\n");
    free(c);
    free(cp2);
    marlin_model_close(m);
    free(cfgp);
    free(out2);
    free(single);
    free(act);
    free(src);
    free(out);
    marlin_rmtree(base);
    free(base);
}

/* ------------------------------------------------------------- index */
static void test_formats_model_index_parse(void **state) {
    (void)state;
    marlin_index *ix = NULL;
    marlin_error err = {0};
    assert_int_equal(marlin_index_parse(good_index, strlen(good_index), "i.json",
                                        &ix, &err), MARLIN_OK);
    assert_int_equal(marlin_index_count(ix), 3);
    assert_int_equal(marlin_index_shard_count(ix), 2);
    assert_string_equal(marlin_index_shard(ix, 1), "model-00002-of-00002.safetensors");
    assert_string_equal(marlin_index_find(ix, "c"), "model-00002-of-00002.safetensors");
    assert_null(marlin_index_find(ix, "d"));
    uint64_t ts = 0;
    assert_true(marlin_index_total_size(ix, &ts));
    assert_int_equal(ts, 12);
    assert_int_equal(marlin_index_warning_count(ix), 0);
    marlin_index_free(ix);
    /* no total_size: a warning, not an error */
    const char *nots = "{\"metadata\":{},\"weight_map\":{\"a\":\"x.safetensors\"}}";
    assert_int_equal(marlin_index_parse(nots, strlen(nots), "i.json", &ix, &err), MARLIN_OK);
    assert_false(marlin_index_total_size(ix, &ts));
    assert_int_equal(marlin_index_warning_count(ix), 1);
    marlin_index_free(ix);
    const char *empty = "{\"metadata\":{},\"weight_map\":{}}";
    assert_int_equal(marlin_index_parse(empty, strlen(empty), "i.json", &ix, &err),
                     MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "i.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_model_writer_exact_bytes),
        cmocka_unit_test(test_formats_model_writer_empty),
        cmocka_unit_test(test_formats_model_writer_python_bytes),
        cmocka_unit_test(test_formats_model_writer_sharded),
        cmocka_unit_test(test_formats_model_writer_refusals),
        cmocka_unit_test(test_formats_model_writer_header_limit),
        cmocka_unit_test(test_formats_model_writer_temp_rename),
        cmocka_unit_test(test_formats_model_outdir),
        cmocka_unit_test(test_formats_model_writer_roundtrip),
        cmocka_unit_test(test_formats_model_shared_model),
        cmocka_unit_test(test_formats_model_single_and_file),
        cmocka_unit_test(test_formats_model_sharded_ok),
        cmocka_unit_test(test_formats_model_case82_83_truncate_grow),
        cmocka_unit_test(test_formats_model_case84_not_regular),
        cmocka_unit_test(test_formats_model_case85_symlinks),
        cmocka_unit_test(test_formats_model_case86_shard_names),
        cmocka_unit_test(test_formats_model_case87_types),
        cmocka_unit_test(test_formats_model_case88_agreement),
        cmocka_unit_test(test_formats_model_case89_duplicates),
        cmocka_unit_test(test_formats_model_case90_total_size),
        cmocka_unit_test(test_formats_model_case91_pattern),
        cmocka_unit_test(test_formats_model_case92_stale),
        cmocka_unit_test(test_formats_model_case93_config_nan),
        cmocka_unit_test(test_formats_model_config_defaults),
        cmocka_unit_test(test_formats_model_config_rope),
        cmocka_unit_test(test_formats_model_config_qwen2_and_families),
        cmocka_unit_test(test_formats_model_config_errors),
        cmocka_unit_test(test_formats_model_config_rewrite),
        cmocka_unit_test(test_formats_model_config_rewrite_shared),
        cmocka_unit_test(test_formats_model_write_config_copy_aux),
        cmocka_unit_test(test_formats_model_index_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
