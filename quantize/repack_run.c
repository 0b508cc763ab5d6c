/*
 * repack.c - marlin_repack_run(): an existing GPTQ v1 checkpoint (from any
 * tool: AutoGPTQ, GPTQModel, ours) -> a Marlin checkpoint (B/s tiles), the
 * same transformation vLLM's gptq_marlin does at load time (marlin-format.md
 * 5.2), done once, offline, and checked.
 *
 * Every <p>.qweight/qzeros/scales/g_idx becomes <p>.B and <p>.s; every other
 * tensor (embeddings, norms, biases, unquantized layers) is copied
 * unchanged; config.json gets quant_method "marlin". Act-order (desc_act)
 * layers are refused: their rows would have to be sorted and the kernel fed
 * permuted activations, which the Marlin checkpoint format has no field for
 * (marlin-format.md pitfall 7.7).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_pack.h"
#include "pipeline_internal.h"

/* The layer a GPTQ tensor belongs to, or -1. */
static int64_t owner(const marlin_qckpt *c, const char *name) {
    static const char *const sfx[] = {".qweight", ".qzeros", ".scales", ".g_idx"};
    for (size_t i = 0; i < 4; i++) {
        if (!qrun_ends_with(name, sfx[i])) continue;
        char prefix[1024];
        size_t n = strlen(name) - strlen(sfx[i]);
        if (n >= sizeof prefix) return -1;
        memcpy(prefix, name, n);
        prefix[n] = '\0';
        return marlin_qckpt_find(c, prefix);
    }
    return -1;
}

marlin_status marlin_repack_run(const char *in, const char *out, bool force,
                                int threads, uint64_t shard_limit,
                                const marlin_progress *progress,
                                size_t *layers_done, marlin_error *err) {
    marlin_qckpt *c = NULL;
    marlin_writer *w = NULL;
    char *tmp = NULL;
    uint8_t *q = NULL;
    uint16_t *s = NULL, *sp = NULL;
    uint32_t *B = NULL;
    void *raw = NULL;
    marlin_status st;
    *layers_done = 0;
    if ((st = marlin_qckpt_open(in, &c, err))) goto out;
    const marlin_model *m = marlin_qckpt_model(c);
    size_t nl = marlin_qckpt_count(c);
    int64_t group = marlin_qckpt_layer(c, 0)->group_size;
    for (size_t i = 0; i < nl; i++) {
        const marlin_qlayer *L = marlin_qckpt_layer(c, i);
        if (L->format != MARLIN_QFMT_GPTQ) {
            st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                             "%s: not a GPTQ checkpoint (%s): nothing to repack",
                             in, marlin_qckpt_method(c));
            goto out;
        }
        if (L->act_order) {
            st = marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                             "%s: layer '%s' uses act-order (desc_act, a non-trivial "
                             "g_idx): the Marlin checkpoint format has no place for "
                             "the activation permutation it needs; requantize with "
                             "marlin-quantize --act-order (static groups)",
                             in, L->prefix);
            goto out;
        }
        if (group != -1 && group != 32 && group != 64 && group != 128) {
            st = marlin_fail(err, MARLIN_ERR_SHAPE,
                             "%s: group size %lld: Marlin kernels take 32, 64, 128 or -1",
                             in, (long long)group);
            goto out;
        }
        if ((st = marlin_pack_dense_check_shape(L->n, L->k, group, err))) {
            marlin_error_prefix(err, "%s: layer '%s'", in, L->prefix);
            goto out;
        }
    }
    if ((st = marlin_outdir_begin(out, force, &tmp, err))) goto out;
    if ((st = marlin_writer_create(tmp, shard_limit, &w, err))) goto out;
    for (size_t i = 0; i < marlin_model_count(m) && !st; i++) {
        const marlin_tensor *t = marlin_model_at(m, i, NULL);
        if (owner(c, t->name) < 0)
            st = marlin_writer_add(w, t->name, t->dtype, t->rank, t->shape, err);
    }
    for (size_t i = 0; i < nl && !st; i++) {
        const marlin_qlayer *L = marlin_qckpt_layer(c, i);
        char name[1100];
        uint64_t bs[2] = {(uint64_t)(L->k / 16), (uint64_t)(2 * L->n)};
        uint64_t ss[2] = {(uint64_t)marlin_pack_groups(L->k, group), (uint64_t)L->n};
        snprintf(name, sizeof name, "%s.B", L->prefix);
        st = marlin_writer_add(w, name, MARLIN_DT_I32, 2, bs, err);
        snprintf(name, sizeof name, "%s.s", L->prefix);
        if (!st) st = marlin_writer_add(w, name, MARLIN_DT_F16, 2, ss, err);
    }
    if (!st) st = marlin_writer_begin(w, err);
    /* copies */
    for (size_t i = 0; i < marlin_model_count(m) && !st; i++) {
        const marlin_st_file *sh = NULL;
        const marlin_tensor *t = marlin_model_at(m, i, &sh);
        if (owner(c, t->name) >= 0) continue;
        void *p = realloc(raw, t->nbytes ? (size_t)t->nbytes : 1);
        if (!p) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); break; }
        raw = p;
        st = marlin_st_read(sh, t, 0, t->nbytes, raw, err);
        if (!st) st = marlin_writer_put(w, t->name, raw, t->nbytes, err);
    }
    /* layers: decode (validates qzeros), pack into Marlin tiles */
    for (size_t i = 0; i < nl && !st; i++) {
        const marlin_qlayer *L = marlin_qckpt_layer(c, i);
        int64_t G = marlin_pack_groups(L->k, group);
        char name[1100];
        marlin_progress_report(progress, "layers", (int64_t)i, (int64_t)nl);
        free(q); free(s); free(sp); free(B);
        q = malloc((size_t)(L->n * L->k));
        s = malloc((size_t)(G * L->n) * 2);
        sp = malloc((size_t)(G * L->n) * 2);
        B = malloc((size_t)(L->n * L->k) / 2);
        if (!q || !s || !sp || !B) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); break; }
        st = marlin_qckpt_decode(c, i, q, s, threads, err);
        if (!st) st = marlin_pack_dense(q, s, L->n, L->k, group, threads, B, sp, err);
        snprintf(name, sizeof name, "%s.B", L->prefix);
        if (!st) st = marlin_writer_put(w, name, B, (uint64_t)(L->n * L->k) / 2, err);
        snprintf(name, sizeof name, "%s.s", L->prefix);
        if (!st) st = marlin_writer_put(w, name, sp, (uint64_t)(G * L->n) * 2, err);
        if (!st) *layers_done = i + 1;
    }
    if (!st) st = marlin_writer_finish(w, err);
    if (!st) {
        char qc[512];
        snprintf(qc, sizeof qc,
                 "{\"quant_method\": \"marlin\", \"bits\": 4, \"group_size\": %lld, "
                 "\"desc_act\": false, \"sym\": true, \"lm_head\": false, \"meta\": "
                 "{\"quantizer\": [\"marlin-toolchain:%s\"], \"method\": \"%s\", "
                 "\"repacked_from\": \"gptq\"}}",
                 (long long)group, MARLIN_VERSION_STRING, marlin_qckpt_algorithm(c));
        st = marlin_model_write_config(m, tmp, qc, err);
    }
    if (!st) st = marlin_model_copy_aux(m, tmp, err);
    if (!st) st = marlin_outdir_commit(tmp, out, force, err);
    if (!st) marlin_progress_report(progress, "layers", (int64_t)nl, (int64_t)nl);
out:
    marlin_writer_free(w);
    if (st && tmp) marlin_outdir_abort(tmp);
    free(tmp);
    free(q); free(s); free(sp); free(B); free(raw);
    marlin_qckpt_close(c);
    return st;
}
