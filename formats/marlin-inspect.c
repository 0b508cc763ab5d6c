/*
 * marlin-inspect - lists the tensors of a checkpoint (a .safetensors file,
 * a model folder, a sharded folder or an index file, a hub cache entry):
 * name, dtype, shape, bytes and shard, then totals, and the config.json
 * summary. --json prints the same as one JSON object.
 *
 * Every check of the reader and of the model folder runs (safetensors.md
 * sections 1, 3, 4, 6), so this is also the validator: a malformed file or
 * folder gives one line `marlin-inspect: <file>: <problem>` on stderr, exit
 * 1, and nothing on stdout. Warnings (stray shards, total_size mismatch...)
 * go to stderr, and into the JSON.
 * Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#include "marlin_cli.h"
#include "marlin_formats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *const tool = "marlin-inspect";

static void usage(FILE *f) {
    fprintf(f,
            "Usage: %s FILE|DIR [--json]\n"
            "List the tensors of a safetensors checkpoint (name, dtype, shape,\n"
            "bytes, shard), the totals and the config.json summary, after\n"
            "validating every file. FILE|DIR: a .safetensors file, a model folder\n"
            "(model.safetensors, or shards + model.safetensors.index.json), an\n"
            "index file, or a Hugging Face hub cache folder.\n"
            "\n"
            "  --json       one JSON object on stdout instead of the table\n"
            "  -h, --help   this help\n"
            "  -V, --version\n"
            "\n"
            "Exit codes: 0 ok, 1 bad or unreadable checkpoint (one line on stderr),\n"
            "2 usage error.\n",
            tool);
}

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", tool);
    return MARLIN_EXIT_USAGE;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* A tensor name as one printable line: control bytes as \xNN. */
static void print_name(const marlin_tensor *t, int width) {
    int n = 0;
    for (size_t i = 0; i < t->name_len; i++) {
        unsigned char c = (unsigned char)t->name[i];
        if (c < 0x20 || c == 0x7f) n += printf("\\x%02x", c);
        else {
            putchar(c);
            /* count characters, not UTF-8 continuation bytes */
            if ((c & 0xc0) != 0x80) n++;
        }
    }
    for (; n < width; n++) putchar(' ');
}

static void shape_text(const marlin_tensor *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->rank && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %" PRIu64 : "%" PRIu64,
                              t->shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static const char *rope_name(marlin_rope_type r) {
    switch (r) {
    case MARLIN_ROPE_DEFAULT: return "default";
    case MARLIN_ROPE_LINEAR: return "linear";
    case MARLIN_ROPE_LLAMA3: return "llama3";
    case MARLIN_ROPE_DYNAMIC: return "dynamic";
    case MARLIN_ROPE_YARN: return "yarn";
    }
    return "?";
}

static void human_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) { v /= 1024; u++; }
    if (u == 0) snprintf(buf, cap, "%" PRIu64 " B", b);
    else snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

static json_t *config_json(const marlin_config *c) {
    if (!c->present) return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "model_type", json_string(c->model_type));
    json_object_set_new(o, "llama_like", json_boolean(marlin_config_is_llama_like(c)));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->num_key_value_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "max_position_embeddings",
                        json_integer(c->max_position_embeddings));
    json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    json_t *r = json_object();
    json_object_set_new(r, "type", json_string(rope_name(c->rope_type)));
    if (c->rope_type != MARLIN_ROPE_DEFAULT) {
        json_object_set_new(r, "factor", json_real(c->rope_factor));
        if (c->rope_original_max_position)
            json_object_set_new(r, "original_max_position_embeddings",
                                json_integer(c->rope_original_max_position));
    }
    if (c->rope_type == MARLIN_ROPE_LLAMA3) {
        json_object_set_new(r, "low_freq_factor", json_real(c->rope_low_freq_factor));
        json_object_set_new(r, "high_freq_factor", json_real(c->rope_high_freq_factor));
    }
    json_object_set_new(o, "rope", r);
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "attention_bias", json_boolean(c->attention_bias));
    json_object_set_new(o, "mlp_bias", json_boolean(c->mlp_bias));
    json_object_set_new(o, "torch_dtype", json_string(c->torch_dtype));
    return o;
}

static int print_json(const char *path, const marlin_model *m) {
    json_t *root = json_object(), *tensors = json_array(), *files = json_array();
    json_t *dtypes = json_object(), *warnings = json_array();
    uint64_t total = 0;
    for (size_t i = 0; i < marlin_model_shard_count(m); i++)
        json_array_append_new(files, json_string(base(marlin_st_label(marlin_model_shard(m, i)))));
    for (size_t i = 0; i < marlin_model_count(m); i++) {
        const marlin_st_file *f = NULL;
        const marlin_tensor *t = marlin_model_at(m, i, &f);
        json_t *shape = json_array();
        for (int d = 0; d < t->rank; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_t *e = json_object();
        json_object_set_new(e, "name", json_stringn(t->name, t->name_len));
        json_object_set_new(e, "dtype", json_string(marlin_dtype_name(t->dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "bytes", json_integer((json_int_t)t->nbytes));
        json_object_set_new(e, "shard", json_string(base(marlin_st_label(f))));
        json_array_append_new(tensors, e);
        total += t->nbytes;
        const char *dn = marlin_dtype_name(t->dtype);
        json_t *cnt = json_object_get(dtypes, dn);
        json_object_set_new(dtypes, dn,
                            json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
    }
    for (size_t i = 0; i < marlin_model_warning_count(m); i++)
        json_array_append_new(warnings, json_string(marlin_model_warning(m, i)));
    json_object_set_new(root, "path", json_string(path));
    json_object_set_new(root, "dir", json_string(marlin_model_dir(m)));
    json_object_set_new(root, "files", files);
    json_object_set_new(root, "tensor_count", json_integer((json_int_t)marlin_model_count(m)));
    json_object_set_new(root, "total_bytes", json_integer((json_int_t)total));
    json_object_set_new(root, "dtypes", dtypes);
    json_object_set_new(root, "config", config_json(marlin_model_config(m)));
    json_object_set_new(root, "warnings", warnings);
    json_object_set_new(root, "tensors", tensors);
    /* 15 significant digits print 1e-05 as 1e-05, not 1.0000000000000001e-05 */
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!s) {
        fprintf(stderr, "%s: out of memory\n", tool);
        return MARLIN_EXIT_RUNTIME;
    }
    puts(s);
    free(s);
    return MARLIN_EXIT_OK;
}

static void print_table(const char *path, const marlin_model *m) {
    size_t n = marlin_model_count(m);
    uint64_t total = 0;
    int wname = 4, wshape = 5;
    int dcount[MARLIN_DT_COUNT] = {0};
    char sh[256];
    for (size_t i = 0; i < n; i++) {
        const marlin_tensor *t = marlin_model_at(m, i, NULL);
        int w = 0;
        for (size_t k = 0; k < t->name_len; k++) {
            unsigned char c = (unsigned char)t->name[k];
            w += c < 0x20 || c == 0x7f ? 4 : (c & 0xc0) != 0x80;
        }
        if (w > wname) wname = w;
        shape_text(t, sh, sizeof sh);
        if ((int)strlen(sh) > wshape) wshape = (int)strlen(sh);
        total += t->nbytes;
        dcount[t->dtype]++;
    }
    char hb[32];
    human_bytes(total, hb, sizeof hb);
    printf("%s: %zu tensors in %zu file%s, %" PRIu64 " bytes (%s); dtypes:", path,
           n, marlin_model_shard_count(m), marlin_model_shard_count(m) == 1 ? "" : "s",
           total, hb);
    for (int d = 0; d < MARLIN_DT_COUNT; d++)
        if (dcount[d]) printf(" %s %d", marlin_dtype_name((marlin_dtype)d), dcount[d]);
    printf("\n");
    const marlin_config *c = marlin_model_config(m);
    if (c->present) {
        printf("config: model_type %s%s, hidden %" PRId64 ", intermediate %" PRId64
               ", layers %" PRId64 ", heads %" PRId64 " (kv %" PRId64
               ", head_dim %" PRId64 "), vocab %" PRId64,
               c->model_type[0] ? c->model_type : "(none)",
               marlin_config_is_llama_like(c) ? "" : " (not Llama-like)",
               c->hidden_size, c->intermediate_size, c->num_hidden_layers,
               c->num_attention_heads, c->num_key_value_heads, c->head_dim,
               c->vocab_size);
        if (c->max_position_embeddings)
            printf(", max_position %" PRId64, c->max_position_embeddings);
        printf(", rms_eps %g, rope %s (theta %g", c->rms_norm_eps,
               rope_name(c->rope_type), c->rope_theta);
        if (c->rope_type != MARLIN_ROPE_DEFAULT) printf(", factor %g", c->rope_factor);
        printf("), tie_embeddings %s, attention_bias %s, mlp_bias %s, dtype %s\n",
               c->tie_word_embeddings ? "yes" : "no", c->attention_bias ? "yes" : "no",
               c->mlp_bias ? "yes" : "no", c->torch_dtype[0] ? c->torch_dtype : "(none)");
    } else {
        printf("config: none (no config.json beside the weights)\n");
    }
    printf("\n");
    printf("%-*s  %-11s  %-*s  %14s  %s\n", wname, "NAME", "DTYPE", wshape, "SHAPE",
           "BYTES", "SHARD");
    for (size_t i = 0; i < n; i++) {
        const marlin_st_file *f = NULL;
        const marlin_tensor *t = marlin_model_at(m, i, &f);
        print_name(t, wname);
        shape_text(t, sh, sizeof sh);
        printf("  %-11s  %-*s  %14" PRIu64 "  %s\n", marlin_dtype_name(t->dtype),
               wshape, sh, t->nbytes, base(marlin_st_label(f)));
    }
    printf("total: %zu tensors, %" PRIu64 " bytes\n", n, total);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1]) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                usage(stdout);
                return MARLIN_EXIT_OK;
            }
            if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
                printf("%s %s\n", tool, MARLIN_VERSION_STRING);
                return MARLIN_EXIT_OK;
            }
            if (!strcmp(a, "--json")) json = true;
            else if (!strcmp(a, "--")) opts_done = true;
            else return usage_error("unknown option '%s'", a);
        } else if (path) {
            return usage_error("unexpected argument '%s' (one FILE or DIR)", a);
        } else {
            path = a;
        }
    }
    if (!path) return usage_error("missing FILE or DIR");
    marlin_model *m = NULL;
    marlin_error err = {0};
    if (marlin_model_open(path, &m, &err) != MARLIN_OK) {
        fprintf(stderr, "%s: %s\n", tool, err.msg);
        return MARLIN_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < marlin_model_warning_count(m); i++)
        fprintf(stderr, "%s: warning: %s\n", tool, marlin_model_warning(m, i));
    int rc = MARLIN_EXIT_OK;
    if (json) rc = print_json(path, m);
    else print_table(path, m);
    marlin_model_close(m);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: error writing to standard output\n", tool);
        return MARLIN_EXIT_RUNTIME;
    }
    return rc;
}
