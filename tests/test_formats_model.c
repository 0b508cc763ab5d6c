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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_model_writer_exact_bytes),
        cmocka_unit_test(test_formats_model_writer_empty),
        cmocka_unit_test(test_formats_model_writer_python_bytes),
        cmocka_unit_test(test_formats_model_writer_sharded),
        cmocka_unit_test(test_formats_model_writer_refusals),
        cmocka_unit_test(test_formats_model_writer_temp_rename),
        cmocka_unit_test(test_formats_model_outdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
