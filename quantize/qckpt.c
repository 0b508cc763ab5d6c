/*
 * qckpt.c - reading quantized checkpoints (ours, or GPTQ v1 from other
 * tools): find the quantized layers by tensor names, check every shape and
 * dtype against quantization_config, decode layers back to codes + scales.
 *
 * Format detection (see marlin_pipeline.h):
 *   quant_method "gptq", checkpoint_format "marlin_24"  -> <p>.B/.meta/.s
 *   quant_method "marlin"                               -> <p>.B/.s
 *   quant_method "gptq" (checkpoint_format gptq or "")  -> <p>.qweight/...
 * The config comes from config.json's quantization_config, else from
 * quantize_config.json beside it (vLLM's order).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_pack.h"
#include "pipeline_internal.h"

struct marlin_qckpt {
    marlin_model *m;
    marlin_quant_config qc;
    char method[96];
    marlin_qlayer *layers;
    size_t n_layers;
};

static const marlin_tensor *find2(const marlin_qckpt *c, const char *prefix,
                                  const char *suffix,
                                  const marlin_st_file **shard) {
    char name[1024];
    if ((size_t)snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= sizeof name)
        return NULL;
    return marlin_model_find(c->m, name, shard);
}

static marlin_status expect(const marlin_qckpt *c, const char *prefix,
                            const char *suffix, marlin_dtype dt, int rank,
                            int64_t d0, int64_t d1, bool required,
                            const marlin_tensor **out, marlin_error *err) {
    const marlin_st_file *sh = NULL;
    const marlin_tensor *t = find2(c, prefix, suffix, &sh);
    *out = t;
    if (!t) {
        if (!required) return MARLIN_OK;
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: layer '%s': tensor '%s.%s' is missing",
                           marlin_model_dir(c->m), prefix, prefix, suffix);
    }
    bool ok = t->dtype == dt && t->rank == rank &&
              (int64_t)t->shape[0] == d0 &&
              (rank == 1 || (int64_t)t->shape[1] == d1);
    if (!ok) {
        char want[64], got[64];
        if (rank == 1) snprintf(want, sizeof want, "%s [%lld]", marlin_dtype_name(dt), (long long)d0);
        else snprintf(want, sizeof want, "%s [%lld, %lld]", marlin_dtype_name(dt), (long long)d0, (long long)d1);
        if (t->rank == 1) snprintf(got, sizeof got, "%s [%llu]", marlin_dtype_name(t->dtype), (unsigned long long)t->shape[0]);
        else if (t->rank == 2) snprintf(got, sizeof got, "%s [%llu, %llu]", marlin_dtype_name(t->dtype), (unsigned long long)t->shape[0], (unsigned long long)t->shape[1]);
        else snprintf(got, sizeof got, "%s of rank %d", marlin_dtype_name(t->dtype), t->rank);
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: tensor '%s': is %s, expected %s for group size %lld",
                           marlin_st_label(sh), t->name, got, want,
                           (long long)c->qc.group_size);
    }
    return MARLIN_OK;
}

/* Shapes of one layer given the tensor that names it. */
static marlin_status add_layer(marlin_qckpt *c, const marlin_tensor *t,
                               const char *suffix, marlin_qformat fmt,
                               marlin_error *err) {
    size_t plen = strlen(t->name) - strlen(suffix) - 1;
    char *prefix = malloc(plen + 1);
    marlin_status st = MARLIN_OK;
    const marlin_tensor *x = NULL;
    if (!prefix) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    memcpy(prefix, t->name, plen);
    prefix[plen] = '\0';
    marlin_qlayer L;
    memset(&L, 0, sizeof L);
    L.prefix = prefix;
    L.format = fmt;
    L.group_size = c->qc.group_size;
    if (t->rank != 2 || t->dtype != MARLIN_DT_I32) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: tensor '%s': expected a 2-D I32 tensor",
                         marlin_model_dir(c->m), t->name);
        goto fail;
    }
    int64_t r0 = (int64_t)t->shape[0], r1 = (int64_t)t->shape[1];
    switch (fmt) {
    case MARLIN_QFMT_GPTQ: L.k = 8 * r0; L.n = r1; break;
    case MARLIN_QFMT_MARLIN: L.k = 16 * r0; L.n = r1 / 2; break;
    case MARLIN_QFMT_MARLIN24: L.k = 32 * r0; L.n = r1 / 2; break;
    }
    int64_t g = L.group_size;
    if (g != -1 && (g <= 0 || L.k % g != 0)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: layer '%s': group_size %lld does not divide k = %lld",
                         marlin_model_dir(c->m), prefix, (long long)g, (long long)L.k);
        goto fail;
    }
    int64_t G = marlin_pack_groups(L.k, g);
    switch (fmt) {
    case MARLIN_QFMT_GPTQ:
        st = expect(c, prefix, "scales", MARLIN_DT_F16, 2, G, L.n, true, &x, err);
        if (!st) st = expect(c, prefix, "qzeros", MARLIN_DT_I32, 2, G, L.n / 8, true, &x, err);
        if (!st) st = expect(c, prefix, "g_idx", MARLIN_DT_I32, 1, L.k, 0, false, &x, err);
        if (!st && L.n % 8)
            st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: layer '%s': n = %lld is not a multiple of 8",
                             marlin_model_dir(c->m), prefix, (long long)L.n);
        if (!st && x) {
            /* g_idx decides act-order; read it once here */
            int32_t *gi = malloc((size_t)L.k * 4);
            const marlin_st_file *sh = NULL;
            find2(c, prefix, "g_idx", &sh);
            if (!gi) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            if (!st) st = marlin_st_read(sh, x, 0, x->nbytes, gi, err);
            if (!st) st = marlin_pack_gptq_g_idx(gi, L.k, g, NULL, &L.act_order, err);
            if (st && st != MARLIN_ERR_NOMEM)
                marlin_error_prefix(err, "%s: tensor '%s.g_idx'", marlin_st_label(sh), prefix);
            free(gi);
        }
        break;
    case MARLIN_QFMT_MARLIN:
        if (r1 % 2)
            st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: tensor '%s': second dimension must be 2n",
                             marlin_model_dir(c->m), t->name);
        if (!st) st = expect(c, prefix, "s", MARLIN_DT_F16, 2, G, L.n, true, &x, err);
        if (!st) st = marlin_pack_dense_check_shape(L.n, L.k, g, err);
        break;
    case MARLIN_QFMT_MARLIN24:
        if (r1 % 2)
            st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: tensor '%s': second dimension must be 2n",
                             marlin_model_dir(c->m), t->name);
        if (!st) st = expect(c, prefix, "meta", MARLIN_DT_I16, 2, r0, r1, true, &x, err);
        if (!st) st = expect(c, prefix, "s", MARLIN_DT_F16, 2, G, L.n, true, &x, err);
        if (!st) st = marlin_pack_24_check_shape(L.n, L.k, g, err);
        break;
    }
    if (st) {
        if (st == MARLIN_ERR_SHAPE) marlin_error_prefix(err, "layer '%s'", prefix);
        goto fail;
    }
    marlin_qlayer *nl = realloc(c->layers, (c->n_layers + 1) * sizeof *nl);
    if (!nl) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto fail; }
    c->layers = nl;
    c->layers[c->n_layers++] = L;
    return MARLIN_OK;
fail:
    free(prefix);
    return st;
}

static marlin_status read_quantize_config(marlin_qckpt *c, marlin_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/quantize_config.json", marlin_model_dir(c->m));
    FILE *f = fopen(path, "rb");
    if (!f) return MARLIN_OK; /* absent: caller reports "no quantization config" */
    char *text = NULL;
    size_t len = 0, cap = 0;
    marlin_status st = MARLIN_OK;
    for (;;) {
        if (len + 4096 > cap) {
            if (cap > (1u << 22)) { st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: too large", path); break; }
            char *t = realloc(text, cap = cap ? 2 * cap : 8192);
            if (!t) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); break; }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f) && !st) st = marlin_fail(err, MARLIN_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!st) st = marlin_quant_config_parse(text, len, path, false, &c->qc, err);
    free(text);
    return st;
}

marlin_status marlin_qckpt_open(const char *path, marlin_qckpt **out,
                                marlin_error *err) {
    marlin_status st;
    marlin_qckpt *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if ((st = marlin_model_open(path, &c->m, err))) goto fail;
    const marlin_config *cfg = marlin_model_config(c->m);
    if (cfg && cfg->quant.present) c->qc = cfg->quant;
    else if ((st = read_quantize_config(c, err))) goto fail;
    if (!c->qc.present) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: not a quantized checkpoint (no quantization_config "
                         "in config.json and no quantize_config.json)",
                         marlin_model_dir(c->m));
        goto fail;
    }
    marlin_qformat fmt;
    if (!strcmp(c->qc.quant_method, "marlin")) fmt = MARLIN_QFMT_MARLIN;
    else if (!strcmp(c->qc.quant_method, "gptq") &&
             !strcmp(c->qc.checkpoint_format, "marlin_24")) fmt = MARLIN_QFMT_MARLIN24;
    else if (!strcmp(c->qc.quant_method, "gptq") &&
             (!c->qc.checkpoint_format[0] || !strcmp(c->qc.checkpoint_format, "gptq")))
        fmt = MARLIN_QFMT_GPTQ;
    else {
        st = marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                         "%s: quantization_config: quant_method '%s' / "
                         "checkpoint_format '%s' is not supported (gptq v1, "
                         "marlin, marlin_24)",
                         marlin_model_dir(c->m), c->qc.quant_method,
                         c->qc.checkpoint_format);
        goto fail;
    }
    snprintf(c->method, sizeof c->method, "%s%s%s", c->qc.quant_method,
             c->qc.checkpoint_format[0] ? "/" : "", c->qc.checkpoint_format);
    if (c->qc.bits != 4 || !c->qc.sym) {
        st = marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                         "%s: quantization_config: bits %lld sym %s: only "
                         "symmetric 4-bit checkpoints are supported",
                         marlin_model_dir(c->m), (long long)c->qc.bits,
                         c->qc.sym ? "true" : "false");
        goto fail;
    }
    if (!(c->qc.group_size == -1 || c->qc.group_size > 0)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: quantization_config: group_size %lld is invalid",
                         marlin_model_dir(c->m), (long long)c->qc.group_size);
        goto fail;
    }
    const char *key = fmt == MARLIN_QFMT_GPTQ ? "qweight" : "B";
    char suffix[16];
    snprintf(suffix, sizeof suffix, ".%s", key);
    for (size_t i = 0; i < marlin_model_count(c->m); i++) {
        const marlin_tensor *t = marlin_model_at(c->m, i, NULL);
        if (qrun_ends_with(t->name, suffix) && strlen(t->name) > strlen(suffix))
            if ((st = add_layer(c, t, key, fmt, err))) goto fail;
    }
    if (c->n_layers == 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: quantization_config says %s but no tensor is "
                         "named *.%s",
                         marlin_model_dir(c->m), c->method, key);
        goto fail;
    }
    *out = c;
    return MARLIN_OK;
fail:
    marlin_qckpt_close(c);
    return st;
}

void marlin_qckpt_close(marlin_qckpt *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_layers; i++) free(c->layers[i].prefix);
    free(c->layers);
    marlin_model_close(c->m);
    free(c);
}

const marlin_model *marlin_qckpt_model(const marlin_qckpt *c) { return c->m; }
size_t marlin_qckpt_count(const marlin_qckpt *c) { return c->n_layers; }
const marlin_qlayer *marlin_qckpt_layer(const marlin_qckpt *c, size_t i) {
    return i < c->n_layers ? &c->layers[i] : NULL;
}
const char *marlin_qckpt_method(const marlin_qckpt *c) { return c->method; }
const char *marlin_qckpt_algorithm(const marlin_qckpt *c) { return c->qc.method; }
bool marlin_qckpt_sparse24(const marlin_qckpt *c) {
    return !strcmp(c->qc.sparsity, "2:4") ||
           (c->n_layers && c->layers[0].format == MARLIN_QFMT_MARLIN24);
}

int64_t marlin_qckpt_find(const marlin_qckpt *c, const char *prefix) {
    for (size_t i = 0; i < c->n_layers; i++)
        if (!strcmp(c->layers[i].prefix, prefix)) return (int64_t)i;
    return -1;
}

/* Reads <prefix>.<suffix> whole into a new buffer. */
static marlin_status read_tensor(const marlin_qckpt *c, const char *prefix,
                                 const char *suffix, void **buf,
                                 marlin_error *err) {
    const marlin_st_file *sh = NULL;
    const marlin_tensor *t = find2(c, prefix, suffix, &sh);
    *buf = NULL;
    if (!t)
        return marlin_fail(err, MARLIN_ERR_FORMAT, "%s: tensor '%s.%s' is missing",
                           marlin_model_dir(c->m), prefix, suffix);
    if (!(*buf = malloc(t->nbytes ? (size_t)t->nbytes : 1)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = marlin_st_read(sh, t, 0, t->nbytes, *buf, err);
    if (st) {
        free(*buf);
        *buf = NULL;
    }
    return st;
}

marlin_status marlin_qckpt_read_packed(const marlin_qckpt *c, size_t i,
                                       uint32_t *B, uint16_t *meta,
                                       uint16_t *s_perm, marlin_error *err) {
    const marlin_qlayer *L = &c->layers[i];
    const marlin_st_file *sh = NULL;
    const marlin_tensor *t;
    marlin_status st = MARLIN_OK;
    if (L->format == MARLIN_QFMT_GPTQ)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "layer '%s': GPTQ layers have no Marlin tiles", L->prefix);
    t = find2(c, L->prefix, "B", &sh);
    if (B) st = marlin_st_read(sh, t, 0, t->nbytes, B, err);
    if (!st && meta && L->format == MARLIN_QFMT_MARLIN24) {
        t = find2(c, L->prefix, "meta", &sh);
        st = marlin_st_read(sh, t, 0, t->nbytes, meta, err);
    }
    if (!st && s_perm) {
        t = find2(c, L->prefix, "s", &sh);
        st = marlin_st_read(sh, t, 0, t->nbytes, s_perm, err);
    }
    return st;
}

marlin_status marlin_qckpt_decode(const marlin_qckpt *c, size_t i, uint8_t *q,
                                  uint16_t *scales, int threads,
                                  marlin_error *err) {
    const marlin_qlayer *L = &c->layers[i];
    void *a = NULL, *b = NULL, *s = NULL;
    marlin_status st;
    switch (L->format) {
    case MARLIN_QFMT_GPTQ:
        st = read_tensor(c, L->prefix, "qweight", &a, err);
        if (!st) st = read_tensor(c, L->prefix, "qzeros", &b, err);
        if (!st) st = read_tensor(c, L->prefix, "scales", &s, err);
        if (!st) st = marlin_unpack_gptq(a, b, s, L->n, L->k, L->group_size,
                                         threads, q, scales, err);
        break;
    case MARLIN_QFMT_MARLIN:
        st = read_tensor(c, L->prefix, "B", &a, err);
        if (!st) st = read_tensor(c, L->prefix, "s", &s, err);
        if (!st) st = marlin_unpack_dense(a, s, L->n, L->k, L->group_size,
                                          threads, q, scales, err);
        break;
    case MARLIN_QFMT_MARLIN24:
        st = read_tensor(c, L->prefix, "B", &a, err);
        if (!st) st = read_tensor(c, L->prefix, "meta", &b, err);
        if (!st) st = read_tensor(c, L->prefix, "s", &s, err);
        if (!st) st = marlin_unpack_24(a, b, s, L->n, L->k, L->group_size,
                                       threads, q, scales, err);
        break;
    default:
        st = marlin_fail(err, MARLIN_ERR_INTERNAL, "bad format");
    }
    if (st && st != MARLIN_ERR_NOMEM)
        marlin_error_prefix(err, "%s: layer '%s'", marlin_model_dir(c->m), L->prefix);
    free(a);
    free(b);
    free(s);
    return st;
}

marlin_status marlin_qckpt_g_idx(const marlin_qckpt *c, size_t i,
                                 int32_t *g_idx, marlin_error *err) {
    const marlin_qlayer *L = &c->layers[i];
    const marlin_st_file *sh = NULL;
    const marlin_tensor *t = L->format == MARLIN_QFMT_GPTQ
                                 ? find2(c, L->prefix, "g_idx", &sh) : NULL;
    if (t) return marlin_st_read(sh, t, 0, t->nbytes, g_idx, err);
    for (int64_t j = 0; j < L->k; j++)
        g_idx[j] = L->group_size == -1 ? 0 : (int32_t)(j / L->group_size);
    return MARLIN_OK;
}

marlin_status marlin_qckpt_dequant(const marlin_qckpt *c, size_t i, float *W,
                                   int threads, marlin_error *err) {
    const marlin_qlayer *L = &c->layers[i];
    int64_t n = L->n, k = L->k, G = marlin_pack_groups(k, L->group_size);
    uint8_t *q = malloc((size_t)(n * k));
    uint16_t *s = malloc((size_t)(G * n) * 2);
    int32_t *gi = malloc((size_t)k * 4);
    float *sf = malloc((size_t)(G * n) * 4);
    marlin_status st = MARLIN_OK;
    if (!q || !s || !gi || !sf) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (!st) st = marlin_qckpt_decode(c, i, q, s, threads, err);
    if (!st) st = marlin_qckpt_g_idx(c, i, gi, err);
    if (!st) {
        marlin_half_to_float_n(s, sf, (size_t)(G * n));
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < k; j++)
                W[r * k + j] = (float)((int)q[r * k + j] - 8) * sf[(int64_t)gi[j] * n + r];
    }
    free(q);
    free(s);
    free(gi);
    free(sf);
    return st;
}
