/*
 * fuzz_st_header.c - libFuzzer target for the safetensors reader: the input
 * bytes are a whole safetensors image handed to marlin_st_parse.
 *
 * Besides "no crash, no leak, no UB" (ASan/UBSan), it checks:
 *  - a rejection is MARLIN_ERR_FORMAT with one line naming the image;
 *  - an accepted image is differentially re-read with jansson (safetensors.md
 *    9.4): the header must be valid JSON there too (except for jansson's
 *    documented gaps: integers above INT64_MAX, \u0000 in keys, reals out of
 *    double range, duplicate keys inside ignored fields), and every tensor
 *    and metadata entry must agree field by field;
 *  - every accessor works on an accepted image: find, data views, reads,
 *    fp32 reads, metadata.
 * A disagreement aborts, which libFuzzer reports as a crash.
 * Seed corpus: tests/fuzz/corpus/st_header/ (tests/fuzz/make_st_corpus.py).
 */
#include "marlin_formats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_st_header: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* jansson failures that are its gaps, not disagreements with our rules. */
static int jansson_gap(const json_error_t *je) {
    static const char *gaps[] = {"too big", "NUL", "duplicate object key",
                                 "overflow", "underflow"};
    for (size_t i = 0; i < sizeof gaps / sizeof gaps[0]; i++)
        if (strstr(je->text, gaps[i])) return 1;
    return 0;
}

static void differential(const marlin_st_file *f, const uint8_t *data) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    json_error_t je;
    json_t *root = json_loadb((const char *)data + 8, (size_t)n,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) {
        if (jansson_gap(&je)) return;
        die("accepted by us, rejected by jansson", je.text);
    }
    if (!json_is_object(root)) die("jansson: not an object", NULL);
    size_t tensors = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (json_is_null(val)) {
                if (marlin_st_metadata_count(f) != 0)
                    die("metadata null but entries", NULL);
                continue;
            }
            if (json_object_size(val) != marlin_st_metadata_count(f))
                die("metadata count differs", NULL);
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                const char *ours = marlin_st_metadata_get(f, mk);
                if (!ours || !json_is_string(mv))
                    die("metadata key missing", mk);
                /* values may hold \u0000: compare up to ours' C string */
                if (strcmp(ours, json_string_value(mv)) != 0)
                    die("metadata value differs", mk);
            }
            continue;
        }
        tensors++;
        const marlin_tensor *t = marlin_st_find(f, key);
        if (!t) die("tensor missing", key);
        const char *dt = json_string_value(json_object_get(val, "dtype"));
        if (!dt || strcmp(dt, marlin_dtype_name(t->dtype)) != 0)
            die("dtype differs", key);
        json_t *shape = json_object_get(val, "shape");
        if (!json_is_array(shape) || json_array_size(shape) != (size_t)t->rank)
            die("rank differs", key);
        for (int d = 0; d < t->rank; d++) {
            json_t *x = json_array_get(shape, (size_t)d);
            if (!json_is_integer(x) ||
                (uint64_t)json_integer_value(x) != t->shape[d])
                die("shape differs", key);
        }
        json_t *off = json_object_get(val, "data_offsets");
        if (!json_is_array(off) || json_array_size(off) != 2 ||
            (uint64_t)json_integer_value(json_array_get(off, 0)) != t->begin ||
            (uint64_t)json_integer_value(json_array_get(off, 1)) != t->end)
            die("data_offsets differ", key);
    }
    if (tensors != marlin_st_count(f)) die("tensor count differs", NULL);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    marlin_st_file *f = NULL;
    marlin_error err;
    marlin_status rc = marlin_st_parse(data, size, "fuzz", &f, &err);
    if (rc != MARLIN_OK) {
        if (f) die("failure left a file object", NULL);
        if (rc != MARLIN_ERR_FORMAT && rc != MARLIN_ERR_NOMEM)
            die("unexpected status", err.msg);
        if (strncmp(err.msg, "fuzz: ", 6) != 0 || strchr(err.msg, '\n'))
            die("message does not name the image in one line", err.msg);
        return 0;
    }
    uint64_t covered = 0;
    for (size_t i = 0; i < marlin_st_count(f); i++) {
        const marlin_tensor *t = marlin_st_at(f, i);
        covered += t->nbytes;
        if (i) {
            /* strictly increasing names: sorted, no duplicates */
            const marlin_tensor *p = marlin_st_at(f, i - 1);
            size_t m = p->name_len < t->name_len ? p->name_len : t->name_len;
            int c = memcmp(p->name, t->name, m);
            if (c > 0 || (c == 0 && p->name_len >= t->name_len))
                die("names not strictly increasing", t->name);
        }
        if (strlen(t->name) == t->name_len && marlin_st_find(f, t->name) != t)
            die("find does not return the tensor", t->name);
        const uint8_t *view = marlin_st_data(f, t);
        if (!view || view < data || view + t->nbytes > data + size)
            die("view outside the image", t->name);
        uint8_t buf[64];
        uint64_t k = t->nbytes < sizeof buf ? t->nbytes : sizeof buf;
        if (marlin_st_read(f, t, t->nbytes - k, k, buf, &err) != MARLIN_OK ||
            (k && memcmp(buf, view + t->nbytes - k, k) != 0))
            die("read differs from the view", t->name);
        if (marlin_st_read(f, t, t->nbytes, 1, buf, &err) !=
            MARLIN_ERR_INVALID_ARG)
            die("read past the tensor accepted", t->name);
        if ((t->dtype == MARLIN_DT_F16 || t->dtype == MARLIN_DT_BF16 ||
             t->dtype == MARLIN_DT_F32) &&
            t->numel <= 4096) {
            float *x = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *x);
            if (!x) die("malloc", NULL);
            if (marlin_st_read_f32(f, t, x, &err) != MARLIN_OK)
                die("read_f32 failed", err.msg);
            free(x);
        }
    }
    if (covered + 8 > size) die("tensors cover more than the image", NULL);
    for (size_t i = 0; i < marlin_st_metadata_count(f); i++) {
        const char *k, *v;
        marlin_st_metadata_at(f, i, &k, &v);
        if (!k || !v) die("metadata entry missing", NULL);
    }
    differential(f, data);
    marlin_st_close(f);
    return 0;
}
