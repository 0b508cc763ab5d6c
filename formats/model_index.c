/*
 * model_index.c - parser and validator of model.safetensors.index.json
 * (marlin_index_parse), the fuzzing entry point of the sharded-folder code.
 *
 * Spec: safetensors.md section 4 ("Rules for our reader") and cases 86-91:
 * a JSON object with "metadata" (object; total_size a non-negative integer)
 * and "weight_map" (object of tensor name -> plain shard file name: no '/',
 * '\\', "..", NUL, not absolute, not empty); duplicate keys rejected (a
 * name repeated in weight_map is case 89); shard names that break the
 * "-XXXXX-of-YYYYY" pattern, or whose YYYYY is not the shard count, are
 * warnings (case 91). Extra metadata keys (mlx-lm's total_parameters...)
 * are tolerated. Whether the shards exist and agree with the index is the
 * model folder's job (model.c), which has the files.
 */
#include "formats_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct ix_entry {
    char *name;
    size_t shard; /* index into shards */
} ix_entry;

struct marlin_index {
    ix_entry *t;   /* sorted by name */
    size_t n;
    char **shards; /* distinct file names, sorted */
    size_t nshards;
    bool has_total;
    uint64_t total;
    char **warn;
    size_t nwarn;
};

void marlin_index_free(marlin_index *ix) {
    if (!ix) return;
    for (size_t i = 0; i < ix->n; i++) free(ix->t[i].name);
    for (size_t i = 0; i < ix->nshards; i++) free(ix->shards[i]);
    for (size_t i = 0; i < ix->nwarn; i++) free(ix->warn[i]);
    free(ix->t);
    free(ix->shards);
    free(ix->warn);
    free(ix);
}

size_t marlin_index_count(const marlin_index *ix) { return ix ? ix->n : 0; }

const char *marlin_index_tensor(const marlin_index *ix, size_t i) {
    return ix && i < ix->n ? ix->t[i].name : NULL;
}

const char *marlin_index_tensor_shard(const marlin_index *ix, size_t i) {
    return ix && i < ix->n ? ix->shards[ix->t[i].shard] : NULL;
}

size_t marlin_index_shard_count(const marlin_index *ix) {
    return ix ? ix->nshards : 0;
}

const char *marlin_index_shard(const marlin_index *ix, size_t i) {
    return ix && i < ix->nshards ? ix->shards[i] : NULL;
}

bool marlin_index_total_size(const marlin_index *ix, uint64_t *out) {
    if (!ix || !ix->has_total) return false;
    if (out) *out = ix->total;
    return true;
}

size_t marlin_index_warning_count(const marlin_index *ix) {
    return ix ? ix->nwarn : 0;
}

const char *marlin_index_warning(const marlin_index *ix, size_t i) {
    return ix && i < ix->nwarn ? ix->warn[i] : NULL;
}

const char *marlin_index_find(const marlin_index *ix, const char *name) {
    if (!ix || !name) return NULL;
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->t[mid].name, name);
        if (c == 0) return ix->shards[ix->t[mid].shard];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static bool add_warning(marlin_index *ix, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool add_warning(marlin_index *ix, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **nw = realloc(ix->warn, (ix->nwarn + 1) * sizeof *nw);
    if (!nw) return false;
    ix->warn = nw;
    if (!(nw[ix->nwarn] = strdup(buf))) return false;
    ix->nwarn++;
    return true;
}

/* Case 86: a shard must be a plain file name inside the model folder. */
static const char *bad_shard_name(const char *s, size_t n) {
    if (n == 0) return "is empty";
    if (memchr(s, '\0', n)) return "contains a NUL byte";
    if (s[0] == '/') return "is an absolute path";
    if (memchr(s, '/', n) || memchr(s, '\\', n))
        return "is a path, not a plain file name";
    if (strstr(s, "..")) return "contains '..'";
    if (strcmp(s, ".") == 0) return "is '.'";
    return NULL;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const ix_entry *)a)->name, ((const ix_entry *)b)->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<prefix>-NNNNN-of-MMMMM.safetensors": 1 and fills i/n on a match. */
static bool shard_pattern(const char *s, unsigned *i, unsigned *n) {
    size_t l = strlen(s);
    static const char tail[] = ".safetensors";
    const size_t tl = sizeof tail - 1;
    /* -NNNNN-of-MMMMM is 15 bytes */
    if (l < tl + 15 || strcmp(s + l - tl, tail) != 0) return false;
    const char *p = s + l - tl - 15;
    if (p[0] != '-' || memcmp(p + 6, "-of-", 4) != 0) return false;
    unsigned a = 0, b = 0;
    for (int k = 1; k <= 5; k++) {
        if (p[k] < '0' || p[k] > '9' || p[k + 9] < '0' || p[k + 9] > '9')
            return false;
        a = a * 10 + (unsigned)(p[k] - '0');
        b = b * 10 + (unsigned)(p[k + 9] - '0');
    }
    *i = a;
    *n = b;
    return true;
}

marlin_status marlin_index_parse(const char *text, size_t len,
                                 const char *label, marlin_index **out,
                                 marlin_error *err) {
    marlin_status st = MARLIN_OK;
    json_t *root = NULL;
    marlin_index *ix = NULL;
    label = label ? label : "model.safetensors.index.json";
    if (!out || (!text && len))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "index: NULL argument");
    *out = NULL;
    /* JSON_ALLOW_NUL so a shard name with \u0000 gets the precise message
     * below rather than a generic parse error. */
    st = mf_json_parse(text ? text : "", len, label,
                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &root, err);
    if (st) return st;
    if (!json_is_object(root)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: top level is not a JSON object",
                         label);
        goto out;
    }
    /* Case 87: transformers raises KeyError without either key. */
    json_t *meta = json_object_get(root, "metadata");
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(meta)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: \"metadata\" %s", label,
                         meta ? "is not an object" : "is missing");
        goto out;
    }
    if (!json_is_object(wm)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: \"weight_map\" %s", label,
                         wm ? "is not an object" : "is missing");
        goto out;
    }
    if (json_object_size(wm) == 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: \"weight_map\" is empty", label);
        goto out;
    }
    if (!(ix = calloc(1, sizeof *ix))) goto oom;
    /* Case 90: total_size must be a non-negative integer (jansson already
     * refused integers above 2^63-1 as "too big"). */
    json_t *ts = json_object_get(meta, "total_size");
    if (!ts) {
        if (!add_warning(ix, "%s: metadata.total_size is missing", label)) goto oom;
    } else if (!json_is_integer(ts) || json_integer_value(ts) < 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: metadata.total_size must be a non-negative integer",
                         label);
        goto out;
    } else {
        ix->has_total = true;
        ix->total = (uint64_t)json_integer_value(ts);
    }
    size_t n = json_object_size(wm);
    if (!(ix->t = calloc(n, sizeof *ix->t))) goto oom;
    char **names = calloc(n, sizeof *names); /* shard name per tensor */
    if (!names) goto oom;
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        char pk[256], pv[256];
        mf_printable(key, strlen(key), pk, sizeof pk);
        if (!json_is_string(val)) {
            free(names);
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: weight_map['%s'] is not a file name string",
                             label, pk);
            goto out;
        }
        const char *why = bad_shard_name(json_string_value(val),
                                         json_string_length(val));
        if (why) {
            free(names);
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: weight_map['%s'] = '%s' %s", label, pk,
                             mf_printable(json_string_value(val),
                                          json_string_length(val), pv, sizeof pv),
                             why);
            goto out;
        }
        if (!(ix->t[ix->n].name = strdup(key))) { free(names); goto oom; }
        names[ix->n++] = (char *)json_string_value(val);
    }
    /* Distinct shard names, sorted (transformers: sorted(set(values))). */
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) { free(names); goto oom; }
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    size_t ns = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[ns - 1])) sorted[ns++] = sorted[i];
    if (!(ix->shards = calloc(ns, sizeof *ix->shards))) {
        free(sorted);
        free(names);
        goto oom;
    }
    for (size_t i = 0; i < ns; i++) {
        if (!(ix->shards[i] = strdup(sorted[i]))) {
            free(sorted);
            free(names);
            goto oom;
        }
        ix->nshards++;
    }
    for (size_t i = 0; i < n; i++) {
        char **hit = bsearch(&names[i], sorted, ns, sizeof *sorted, cmp_str);
        ix->t[i].shard = (size_t)(hit - sorted);
    }
    free(sorted);
    free(names);
    qsort(ix->t, ix->n, sizeof *ix->t, cmp_entry);
    /* Case 91: the hub pattern, numbered 1..N of N. */
    bool pattern = true;
    for (size_t i = 0; i < ns && pattern; i++) {
        unsigned a, b;
        pattern = shard_pattern(ix->shards[i], &a, &b) && b == ns && a == i + 1;
    }
    if (!pattern && ns > 1 &&
        !add_warning(ix, "%s: the %zu shard names do not follow "
                         "<name>-00001-of-%05zu.safetensors ... (loaders do "
                         "not need it; noted in case a shard is missing)",
                     label, ns, ns))
        goto oom;
    *out = ix;
    ix = NULL;
    goto out;
oom:
    st = marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
out:
    marlin_index_free(ix);
    json_decref(root);
    return st;
}
