/*
 * pipeline.c - marlin_quantize_run(): checkpoint in, quantized checkpoint
 * folder(s) out (see marlin_pipeline.h for the formats).
 *
 * Shape of a run:
 *   1. open the source (formats/), pick the quantization targets;
 *   2. check every target against the shape gates of every requested format
 *      before anything is written (an incompatible layer is an error naming
 *      it, or stays FP16 with --skip-incompatible);
 *   3. declare every output tensor up front (all shapes are known), so the
 *      writers can lay out files and then accept tensors in any order;
 *   4. stream: one tensor at a time is read, quantized (RTN here, GPTQ in
 *      calib_run.c through the same emit functions), packed for each format
 *      and written; memory stays near one tensor plus its packed forms;
 *   5. config.json (+ quantize_config.json for GPTQ), tokenizer files, then
 *      the temporary folder is renamed to the output path.
 */
#include "pipeline_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "marlin_pack.h"

marlin_qrun_opts marlin_qrun_default_opts(void) {
    marlin_qrun_opts o;
    memset(&o, 0, sizeof o);
    o.method = MARLIN_METHOD_RTN;
    o.group_size = 128;
    o.formats = MARLIN_WRITE_GPTQ;
    o.prune = MARLIN_PRUNE_NONE;
    o.damp = 0.01;
    o.clip = true;
    o.threads = 0;
    o.shard_limit = MARLIN_DEFAULT_SHARD_LIMIT;
    return o;
}

/* ------------------------------------------------------------------ targets */

/* True when name contains ".layers.<digits>." or starts with
 * "layers.<digits>." (decoder blocks of every Llama-family layout, including
 * nested ones such as model.language_model.layers.3.). */
static bool in_decoder_layer(const char *name) {
    const char *p = name;
    while ((p = strstr(p, "layers.")) != NULL) {
        bool at_boundary = p == name || p[-1] == '.';
        const char *d = p + 7;
        const char *e = d;
        while (*e >= '0' && *e <= '9') e++;
        if (at_boundary && e > d && *e == '.') return true;
        p += 7;
    }
    return false;
}

bool marlin_is_quant_target(const char *name, int rank, bool have_config,
                            bool quantize_lm_head) {
    static const char *const linears[] = {
        ".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
        ".self_attn.v_proj.weight", ".self_attn.o_proj.weight",
        ".self_attn.qkv_proj.weight", ".mlp.gate_proj.weight",
        ".mlp.up_proj.weight", ".mlp.down_proj.weight",
        ".mlp.gate_up_proj.weight"};
    if (rank != 2) return false;
    if (quantize_lm_head && (!strcmp(name, "lm_head.weight") ||
                             qrun_ends_with(name, ".lm_head.weight")))
        return true;
    if (!have_config) return qrun_ends_with(name, "_proj.weight");
    if (!in_decoder_layer(name)) return false;
    for (size_t i = 0; i < sizeof linears / sizeof linears[0]; i++)
        if (qrun_ends_with(name, linears[i])) return true;
    return false;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

marlin_status qrun_notice(qrun *r, const char *msg) {
    marlin_qrun_report *rep = r->rep;
    char **nn = realloc(rep->notices, (rep->n_notices + 1) * sizeof *nn);
    if (!nn) return MARLIN_ERR_NOMEM;
    rep->notices = nn;
    if (!(nn[rep->n_notices] = xstrdup(msg))) return MARLIN_ERR_NOMEM;
    rep->n_notices++;
    return MARLIN_OK;
}

/* The "<p>" of "<p>.weight". */
static char *prefix_of(const char *name) {
    size_t n = strlen(name);
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, name, n + 1);
    if (n > 7 && !strcmp(p + n - 7, ".weight")) p[n - 7] = '\0';
    return p;
}

/* Checks one target against the gates of every requested output format.
 * Returns MARLIN_OK or MARLIN_ERR_SHAPE with the rule in err. */
static marlin_status check_gates(const qrun *r, const qtarget *t,
                                 marlin_error *err) {
    const marlin_qrun_opts *o = r->o;
    marlin_status st = MARLIN_OK;
    for (int i = 0; i < r->n_outs && st == MARLIN_OK; i++) {
        switch (r->outs[i].fmt) {
        case MARLIN_QFMT_GPTQ:
            st = marlin_pack_gptq_check_shape(t->n, t->k, o->group_size, err);
            break;
        case MARLIN_QFMT_MARLIN:
            /* The layout exists for more group sizes; these are the ones
             * the Marlin kernels (ours, vLLM's) run. */
            if (o->group_size != -1 && o->group_size != 32 &&
                o->group_size != 64 && o->group_size != 128)
                st = marlin_fail(err, MARLIN_ERR_SHAPE,
                                 "Marlin kernels take group size 32, 64, 128 "
                                 "or -1, not %lld", (long long)o->group_size);
            if (!st) st = marlin_pack_dense_check_shape(t->n, t->k, o->group_size, err);
            break;
        case MARLIN_QFMT_MARLIN24:
            if (o->group_size != -1 && o->group_size != 128)
                st = marlin_fail(err, MARLIN_ERR_SHAPE,
                                 "Sparse-Marlin kernels take group size 128 "
                                 "or -1, not %lld", (long long)o->group_size);
            if (!st) st = marlin_pack_24_check_shape(t->n, t->k, o->group_size, err);
            break;
        }
    }
    if (st == MARLIN_OK && o->sparse24 && t->k % 4 != 0)
        st = marlin_fail(err, MARLIN_ERR_SHAPE,
                         "2:4 sparsity needs k %% 4 == 0 (k = %lld)",
                         (long long)t->k);
    return st;
}

static marlin_status plan_targets(qrun *r, marlin_error *err) {
    const marlin_qrun_opts *o = r->o;
    size_t n = marlin_model_count(r->m);
    bool have_config = r->cfg && r->cfg->present;
    r->targets = calloc(n ? n : 1, sizeof *r->targets);
    if (!r->targets) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    r->n_targets = n;
    size_t nq = 0;
    for (size_t i = 0; i < n; i++) {
        qtarget *t = &r->targets[i];
        t->t = marlin_model_at(r->m, i, &t->shard);
        t->quant = marlin_is_quant_target(t->t->name, t->t->rank, have_config,
                                          o->quantize_lm_head);
        if (!t->quant) continue;
        t->n = (int64_t)t->t->shape[0];
        t->k = (int64_t)t->t->shape[1];
        if (t->t->dtype != MARLIN_DT_F16 && t->t->dtype != MARLIN_DT_BF16 &&
            t->t->dtype != MARLIN_DT_F32)
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "%s: tensor '%s': dtype %s cannot be quantized "
                               "(F16, BF16 or F32 expected)",
                               marlin_st_label(t->shard), t->t->name,
                               marlin_dtype_name(t->t->dtype));
        marlin_error gate;
        marlin_error_clear(&gate);
        if (check_gates(r, t, &gate) != MARLIN_OK) {
            if (!o->skip_incompatible)
                return marlin_fail(err, MARLIN_ERR_SHAPE,
                                   "tensor '%s' [%lld, %lld]: %s (use "
                                   "--skip-incompatible to keep it in FP16)",
                                   t->t->name, (long long)t->n,
                                   (long long)t->k, gate.msg);
            t->quant = false;
            t->kept = true;
            t->note = xasprintf("kept FP16: %s", gate.msg);
            if (!t->note) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            continue;
        }
        if (!(t->prefix = prefix_of(t->t->name)))
            return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        nq++;
    }
    if (nq == 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: no tensor to quantize (%s)", o->in,
                           have_config
                               ? "no 2-D q/k/v/o/gate/up/down_proj weight "
                                 "inside decoder layers"
                               : "no 2-D tensor named *_proj.weight");
    if (!have_config) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "no config.json beside the input: quantizing every 2-D "
                 "tensor whose name ends in _proj.weight (%zu tensors)", nq);
        if (qrun_notice(r, msg)) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    }
    return MARLIN_OK;
}

/* ---------------------------------------------------------------- outputs */

static marlin_status declare(qout *out, const char *prefix, const char *suffix,
                             marlin_dtype dt, uint64_t d0, uint64_t d1,
                             int rank, marlin_error *err) {
    char *name = xasprintf("%s.%s", prefix, suffix);
    uint64_t shape[2] = {d0, d1};
    if (!name) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = marlin_writer_add(out->w, name, dt, rank, shape, err);
    free(name);
    return st;
}

static marlin_status declare_all(qrun *r, qout *out, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    for (size_t i = 0; i < r->n_targets && st == MARLIN_OK; i++) {
        const qtarget *t = &r->targets[i];
        if (!t->quant) {
            st = marlin_writer_add(out->w, t->t->name, t->t->dtype, t->t->rank,
                                   t->t->shape, err);
            continue;
        }
        uint64_t n = (uint64_t)t->n, k = (uint64_t)t->k;
        uint64_t G = (uint64_t)marlin_pack_groups(t->k, r->o->group_size);
        switch (out->fmt) {
        case MARLIN_QFMT_GPTQ:
            st = declare(out, t->prefix, "qweight", MARLIN_DT_I32, k / 8, n, 2, err);
            if (!st) st = declare(out, t->prefix, "qzeros", MARLIN_DT_I32, G, n / 8, 2, err);
            if (!st) st = declare(out, t->prefix, "scales", MARLIN_DT_F16, G, n, 2, err);
            if (!st) st = declare(out, t->prefix, "g_idx", MARLIN_DT_I32, k, 0, 1, err);
            break;
        case MARLIN_QFMT_MARLIN:
            st = declare(out, t->prefix, "B", MARLIN_DT_I32, k / 16, 2 * n, 2, err);
            if (!st) st = declare(out, t->prefix, "s", MARLIN_DT_F16, G, n, 2, err);
            break;
        case MARLIN_QFMT_MARLIN24:
            st = declare(out, t->prefix, "B", MARLIN_DT_I32, k / 32, 2 * n, 2, err);
            if (!st) st = declare(out, t->prefix, "meta", MARLIN_DT_I16, k / 32, 2 * n, 2, err);
            if (!st) st = declare(out, t->prefix, "s", MARLIN_DT_F16, G, n, 2, err);
            break;
        }
    }
    return st;
}

static marlin_status put(qrun *r, qout *out, const char *prefix,
                         const char *suffix, const void *data, uint64_t nbytes,
                         marlin_error *err) {
    char *name = xasprintf("%s.%s", prefix, suffix);
    if (!name) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = marlin_writer_put(out->w, name, data, nbytes, err);
    free(name);
    if (st == MARLIN_OK) r->rep->bytes_out += nbytes;
    return st;
}

/* Grows *buf to at least n bytes (keeps it across tensors). */
static marlin_status reserve(void **buf, size_t *cap, size_t n,
                             marlin_error *err) {
    if (*cap >= n) return MARLIN_OK;
    void *p = realloc(*buf, n);
    if (!p)
        return marlin_fail(err, MARLIN_ERR_NOMEM,
                           "out of memory (%zu bytes for a packed tensor)", n);
    *buf = p;
    *cap = n;
    return MARLIN_OK;
}

marlin_status qrun_emit(qrun *r, const qtarget *t, const uint8_t *q,
                        const uint16_t *s, marlin_error *err) {
    const int64_t n = t->n, k = t->k, g = r->o->group_size;
    const int64_t G = marlin_pack_groups(k, g);
    const int th = r->o->threads;
    marlin_status st = MARLIN_OK;
    for (int i = 0; i < r->n_outs && st == MARLIN_OK; i++) {
        qout *out = &r->outs[i];
        size_t packed = (size_t)(n * k / 2), sbytes = (size_t)(G * n * 2);
        switch (out->fmt) {
        case MARLIN_QFMT_GPTQ: {
            size_t zbytes = (size_t)(G * n / 2), gbytes = (size_t)k * 4;
            st = reserve(&r->buf_packed, &r->cap_packed, packed, err);
            if (!st) st = reserve(&r->buf_aux, &r->cap_aux, zbytes + gbytes, err);
            if (!st) st = reserve(&r->buf_scales, &r->cap_scales, sbytes, err);
            if (st) break;
            uint32_t *qzeros = r->buf_aux;
            int32_t *g_idx = (int32_t *)(void *)((char *)r->buf_aux + zbytes);
            st = marlin_pack_gptq(q, s, n, k, g, th, r->buf_packed, qzeros,
                                  r->buf_scales, g_idx, err);
            if (!st) st = put(r, out, t->prefix, "qweight", r->buf_packed, packed, err);
            if (!st) st = put(r, out, t->prefix, "qzeros", qzeros, zbytes, err);
            if (!st) st = put(r, out, t->prefix, "scales", r->buf_scales, sbytes, err);
            if (!st) st = put(r, out, t->prefix, "g_idx", g_idx, gbytes, err);
            break;
        }
        case MARLIN_QFMT_MARLIN:
            st = reserve(&r->buf_packed, &r->cap_packed, packed, err);
            if (!st) st = reserve(&r->buf_scales, &r->cap_scales, sbytes, err);
            if (!st) st = marlin_pack_dense(q, s, n, k, g, th, r->buf_packed,
                                            r->buf_scales, err);
            if (!st) st = put(r, out, t->prefix, "B", r->buf_packed, packed, err);
            if (!st) st = put(r, out, t->prefix, "s", r->buf_scales, sbytes, err);
            break;
        case MARLIN_QFMT_MARLIN24: {
            size_t b24 = (size_t)(n * k / 4), meta = (size_t)(n * k / 8);
            st = reserve(&r->buf_packed, &r->cap_packed, b24, err);
            if (!st) st = reserve(&r->buf_aux, &r->cap_aux, meta, err);
            if (!st) st = reserve(&r->buf_scales, &r->cap_scales, sbytes, err);
            if (!st) st = marlin_pack_24(q, s, n, k, g, th, r->buf_packed,
                                         r->buf_aux, r->buf_scales, err);
            if (!st) st = put(r, out, t->prefix, "B", r->buf_packed, b24, err);
            if (!st) st = put(r, out, t->prefix, "meta", r->buf_aux, meta, err);
            if (!st) st = put(r, out, t->prefix, "s", r->buf_scales, sbytes, err);
            break;
        }
        }
    }
    if (st != MARLIN_OK) marlin_error_prefix(err, "tensor '%s'", t->t->name);
    return st;
}

/* Copies a tensor unchanged into every output, in bounded chunks. */
marlin_status qrun_copy(qrun *r, const qtarget *t, marlin_error *err) {
    const uint64_t chunk = 64ull << 20;
    uint64_t total = t->t->nbytes;
    size_t want = (size_t)(total < chunk ? total : chunk);
    marlin_status st = reserve(&r->buf_raw, &r->cap_raw, want ? want : 1, err);
    for (uint64_t off = 0; st == MARLIN_OK && off < total; off += chunk) {
        uint64_t len = total - off < chunk ? total - off : chunk;
        st = marlin_st_read(t->shard, t->t, off, len, r->buf_raw, err);
        for (int i = 0; i < r->n_outs && st == MARLIN_OK; i++)
            st = marlin_writer_put_part(r->outs[i].w, t->t->name, r->buf_raw,
                                        len, err);
    }
    /* empty tensors still need their (empty) put */
    for (int i = 0; i < r->n_outs && st == MARLIN_OK && total == 0; i++)
        st = marlin_writer_put(r->outs[i].w, t->t->name, r->buf_raw, 0, err);
    if (st == MARLIN_OK) r->rep->bytes_out += total * (uint64_t)r->n_outs;
    return st;
}

marlin_status qrun_add_layer(qrun *r, const qtarget *t,
                             marlin_qlayer_report **out) {
    marlin_qrun_report *rep = r->rep;
    marlin_qlayer_report *l =
        realloc(rep->layers, (rep->n_layers + 1) * sizeof *l);
    if (!l) return MARLIN_ERR_NOMEM;
    rep->layers = l;
    l = &l[rep->n_layers];
    memset(l, 0, sizeof *l);
    l->name = xstrdup(t->t->name);
    if (!l->name) return MARLIN_ERR_NOMEM;
    rep->n_layers++;
    l->n = t->t->rank == 2 ? (int64_t)t->t->shape[0] : 0;
    l->k = t->t->rank == 2 ? (int64_t)t->t->shape[1] : 0;
    l->group_size = r->o->group_size;
    l->rel_out_err = l->rtn_out_err = l->loss = l->damp_rel = -1;
    l->kept_fp16 = t->kept;
    if (t->note && !(l->note = xstrdup(t->note))) return MARLIN_ERR_NOMEM;
    *out = l;
    return MARLIN_OK;
}

bool qrun_cancelled(const qrun *r) {
    return r->o->cancel && *r->o->cancel;
}

/* RTN: every target is independent, so tensors are processed in name
 * order, each read once. */
static marlin_status run_rtn(qrun *r, marlin_error *err) {
    const marlin_qrun_opts *o = r->o;
    marlin_status st = MARLIN_OK;
    marlin_rtn_opts ro = marlin_rtn_default_opts();
    ro.group_size = o->group_size;
    ro.clip = o->clip;
    ro.prune = o->sparse24 ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
    ro.threads = o->threads;
    for (size_t i = 0; i < r->n_targets && st == MARLIN_OK; i++) {
        const qtarget *t = &r->targets[i];
        if (qrun_cancelled(r))
            return marlin_fail(err, MARLIN_ERR_INTERRUPTED, "interrupted");
        marlin_progress_report(&o->progress, "tensors", (int64_t)i,
                               (int64_t)r->n_targets);
        if (!t->quant) {
            if (t->kept) {
                marlin_qlayer_report *l = NULL;
                if (qrun_add_layer(r, t, &l))
                    return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            }
            r->rep->n_copied++;
            st = qrun_copy(r, t, err);
            continue;
        }
        double t0 = marlin_now();
        int64_t n = t->n, k = t->k;
        int64_t G = marlin_pack_groups(k, o->group_size);
        st = reserve(&r->buf_raw, &r->cap_raw, (size_t)t->t->nbytes, err);
        if (!st) st = reserve((void **)&r->buf_q, &r->cap_q, (size_t)(n * k), err);
        if (!st) st = reserve((void **)&r->buf_s, &r->cap_s, (size_t)(G * n * 2), err);
        if (!st) st = marlin_st_read(t->shard, t->t, 0, t->t->nbytes, r->buf_raw, err);
        if (st) break;
        st = marlin_rtn_quantize(r->buf_raw, t->t->dtype, n, k, &ro, r->buf_q,
                                 r->buf_s, err);
        if (st) {
            marlin_error_prefix(err, "%s: tensor '%s'", marlin_st_label(t->shard),
                                t->t->name);
            break;
        }
        marlin_qlayer_report *l = NULL;
        if (qrun_add_layer(r, t, &l))
            return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        st = marlin_quant_weight_error(r->buf_raw, t->t->dtype, n, k,
                                       o->group_size, r->buf_q, r->buf_s,
                                       o->threads, &l->rel_weight_err, err);
        if (!st) st = qrun_emit(r, t, r->buf_q, r->buf_s, err);
        r->rep->bytes_in += t->t->nbytes;
        l->seconds = marlin_now() - t0;
    }
    if (st == MARLIN_OK)
        marlin_progress_report(&o->progress, "tensors", (int64_t)r->n_targets,
                               (int64_t)r->n_targets);
    return st;
}

/* ---------------------------------------------------------- config files */

/* The quantization_config object for one output format (JSON text). */
static char *quant_config_json(const qrun *r, marlin_qformat fmt) {
    const marlin_qrun_opts *o = r->o;
    char meta[512];
    snprintf(meta, sizeof meta,
             "\"meta\": {\"quantizer\": [\"marlin-toolchain:%s\"], "
             "\"method\": \"%s\", \"clip\": %s%s%s%s}",
             MARLIN_VERSION_STRING,
             o->method == MARLIN_METHOD_GPTQ ? "gptq" : "rtn",
             o->clip ? "true" : "false",
             o->sparse24 ? ", \"sparsity\": \"2:4\", \"prune\": \"" : "",
             o->sparse24 ? (o->prune == MARLIN_PRUNE_SPARSEGPT ? "sparsegpt"
                                                               : "magnitude")
                         : "",
             o->sparse24 ? "\"" : "");
    char damp[64] = "";
    if (o->method == MARLIN_METHOD_GPTQ)
        snprintf(damp, sizeof damp, "\"damp_percent\": %.17g, ", o->damp);
    const char *lm = o->quantize_lm_head ? "true" : "false";
    switch (fmt) {
    case MARLIN_QFMT_GPTQ:
        return xasprintf(
            "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": %lld, "
            "\"desc_act\": false, \"sym\": true, \"checkpoint_format\": "
            "\"gptq\", \"lm_head\": %s, %s\"true_sequential\": true, "
            "\"static_groups\": %s, %s}",
            (long long)o->group_size, lm, damp,
            o->act_order ? "true" : "false", meta);
    case MARLIN_QFMT_MARLIN:
        return xasprintf(
            "{\"quant_method\": \"marlin\", \"bits\": 4, \"group_size\": "
            "%lld, \"desc_act\": false, \"sym\": true, \"lm_head\": %s, %s%s}",
            (long long)o->group_size, lm, damp, meta);
    case MARLIN_QFMT_MARLIN24:
        return xasprintf(
            "{\"quant_method\": \"gptq\", \"checkpoint_format\": "
            "\"marlin_24\", \"bits\": 4, \"group_size\": %lld, \"desc_act\": "
            "false, \"sym\": true, \"lm_head\": %s, %s%s}",
            (long long)o->group_size, lm, damp, meta);
    }
    return NULL;
}

static marlin_status write_configs(qrun *r, qout *out, marlin_error *err) {
    char *qc = quant_config_json(r, out->fmt);
    if (!qc) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = marlin_model_write_config(r->m, out->dir, qc, err);
    if (st == MARLIN_OK && out->fmt == MARLIN_QFMT_GPTQ) {
        /* Older loaders (AutoGPTQ) read quantize_config.json; vLLM reads it
         * only when config.json has no quantization_config. */
        size_t len = strlen(qc);
        char *text = malloc(len + 2);
        if (!text) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        } else {
            memcpy(text, qc, len);
            text[len] = '\n';
            text[len + 1] = '\0';
            st = marlin_write_file_atomic(out->dir, "quantize_config.json",
                                          text, len + 1, err);
            free(text);
        }
    }
    if (st == MARLIN_OK) st = marlin_model_copy_aux(r->m, out->dir, err);
    free(qc);
    return st;
}

/* ------------------------------------------------------------------ driver */

static marlin_status check_opts(const marlin_qrun_opts *o, marlin_error *err) {
    if (!o->in || !o->out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "input and output paths are required");
    if (!(o->group_size == -1 || o->group_size > 0))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "group size %lld: must be -1 (per channel) or positive",
                           (long long)o->group_size);
    if (!(o->formats & (MARLIN_WRITE_GPTQ | MARLIN_WRITE_MARLIN)))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "no output format selected");
    if (o->method == MARLIN_METHOD_GPTQ && !o->calib && !o->hessians)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "GPTQ needs calibration tokens (--calib) or stored "
                           "Hessians (--hessians)");
    if (o->method == MARLIN_METHOD_RTN &&
        (o->calib || o->hessians || o->save_hessians || o->cache_dir || o->compare_rtn))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "--calib/--hessians/--save-hessians/--cache/--compare-rtn need "
                           "--method gptq");
    if (o->sparse24 && o->prune == MARLIN_PRUNE_SPARSEGPT &&
        o->method != MARLIN_METHOD_GPTQ)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "--prune sparsegpt needs GPTQ (calibration data)");
    if (o->sparse24 && o->act_order)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "--act-order cannot be combined with 2:4 sparsity "
                           "(the 4-column groups must stay in the original order)");
    if (!(o->damp > 0 && o->damp < 1))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "damping %g: must lie in (0, 1)", o->damp);
    return MARLIN_OK;
}

static void qrun_free(qrun *r) {
    for (size_t i = 0; r->targets && i < r->n_targets; i++) {
        free(r->targets[i].prefix);
        free(r->targets[i].note);
    }
    free(r->targets);
    for (int i = 0; i < r->n_outs; i++) {
        marlin_writer_free(r->outs[i].w);
        free(r->outs[i].dir);
    }
    free(r->buf_raw);
    free(r->buf_q);
    free(r->buf_s);
    free(r->buf_packed);
    free(r->buf_aux);
    free(r->buf_scales);
    marlin_model_close(r->m);
}

marlin_status marlin_quantize_run(const marlin_qrun_opts *opts,
                                  marlin_qrun_report *report,
                                  marlin_error *err) {
    qrun r;
    char *tmp = NULL;
    marlin_status st;
    memset(&r, 0, sizeof r);
    memset(report, 0, sizeof *report);
    r.o = opts;
    r.rep = report;
    double t0 = marlin_now();
    snprintf(report->method, sizeof report->method, "%s",
             opts->method == MARLIN_METHOD_GPTQ ? "gptq" : "rtn");

    if ((st = check_opts(opts, err))) goto out;
    if ((st = marlin_model_open(opts->in, &r.m, err))) goto out;
    r.cfg = marlin_model_config(r.m);
    for (size_t i = 0; i < marlin_model_warning_count(r.m); i++)
        if (qrun_notice(&r, marlin_model_warning(r.m, i))) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            goto out;
        }

    /* outputs: one folder, or gptq/ and marlin/ inside it */
    bool both = (opts->formats & MARLIN_WRITE_GPTQ) &&
                (opts->formats & MARLIN_WRITE_MARLIN);
    if (opts->formats & MARLIN_WRITE_GPTQ) r.outs[r.n_outs++].fmt = MARLIN_QFMT_GPTQ;
    if (opts->formats & MARLIN_WRITE_MARLIN)
        r.outs[r.n_outs++].fmt = opts->sparse24 ? MARLIN_QFMT_MARLIN24 : MARLIN_QFMT_MARLIN;
    snprintf(report->formats, sizeof report->formats, "%s",
             both ? (opts->sparse24 ? "gptq+marlin24" : "gptq+marlin")
                  : r.outs[0].fmt == MARLIN_QFMT_GPTQ ? "gptq"
                  : r.outs[0].fmt == MARLIN_QFMT_MARLIN ? "marlin" : "marlin24");

    if ((st = plan_targets(&r, err))) goto out;
    if ((st = marlin_outdir_begin(opts->out, opts->force, &tmp, err))) goto out;
    for (int i = 0; i < r.n_outs; i++) {
        qout *o = &r.outs[i];
        if (both) {
            o->dir = xasprintf("%s/%s", tmp, o->fmt == MARLIN_QFMT_GPTQ ? "gptq" : "marlin");
            if (o->dir && mkdir(o->dir, 0777) != 0) {
                st = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot create folder", o->dir);
                goto out;
            }
        } else {
            o->dir = xstrdup(tmp);
        }
        if (!o->dir) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        if ((st = marlin_writer_create(o->dir, opts->shard_limit, &o->w, err))) goto out;
        if ((st = declare_all(&r, o, err))) goto out;
        if ((st = marlin_writer_begin(o->w, err))) goto out;
    }

    st = opts->method == MARLIN_METHOD_GPTQ ? qrun_gptq(&r, err) : run_rtn(&r, err);
    if (st) goto out;

    for (int i = 0; i < r.n_outs && st == MARLIN_OK; i++) {
        st = marlin_writer_finish(r.outs[i].w, err);
        if (!st) st = write_configs(&r, &r.outs[i], err);
    }
    if (st) goto out;
    if (qrun_cancelled(&r)) {
        st = marlin_fail(err, MARLIN_ERR_INTERRUPTED, "interrupted");
        goto out;
    }
    st = marlin_outdir_commit(tmp, opts->out, opts->force, err);
out:
    if (st != MARLIN_OK && tmp) {
        /* writers first (they hold temporary files in the folder) */
        for (int i = 0; i < r.n_outs; i++) {
            marlin_writer_free(r.outs[i].w);
            r.outs[i].w = NULL;
        }
        marlin_outdir_abort(tmp);
    }
    free(tmp);
    qrun_free(&r);
    report->seconds = marlin_now() - t0;
    return st;
}

void marlin_qrun_report_free(marlin_qrun_report *rep) {
    if (!rep) return;
    for (size_t i = 0; i < rep->n_layers; i++) {
        free(rep->layers[i].name);
        free(rep->layers[i].note);
    }
    free(rep->layers);
    for (size_t i = 0; i < rep->n_notices; i++) free(rep->notices[i]);
    free(rep->notices);
    memset(rep, 0, sizeof *rep);
}
