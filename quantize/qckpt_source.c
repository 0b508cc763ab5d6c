/*
 * qckpt_source.c - a model/ weight source over a quantized checkpoint: the
 * forward asks for "<p>.weight" by its Hugging Face name and gets the
 * dequantized matrix (q - 8) * s decoded from whatever packed format the
 * checkpoint holds; every other tensor (norms, embeddings, lm_head when not
 * quantized) comes from the checkpoint as stored. This is how marlin-eval
 * measures the perplexity of our own output with the same forward code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_model.h"
#include "marlin_pipeline.h"

typedef struct qsrc {
    const marlin_qckpt *c;
    marlin_weight_source plain;
    int threads;
} qsrc;

/* Layer index for "<p>.weight", or -1. */
static int64_t layer_of(const qsrc *s, const char *name) {
    size_t n = strlen(name);
    char prefix[1024];
    if (n < 8 || n - 7 >= sizeof prefix || strcmp(name + n - 7, ".weight")) return -1;
    memcpy(prefix, name, n - 7);
    prefix[n - 7] = '\0';
    return marlin_qckpt_find(s->c, prefix);
}

static bool q_has(void *user, const char *name) {
    qsrc *s = user;
    return layer_of(s, name) >= 0 || s->plain.has(s->plain.user, name);
}

static marlin_status q_read(void *user, const char *name, int rank,
                            const int64_t *shape, float *dst,
                            marlin_error *err) {
    qsrc *s = user;
    int64_t i = layer_of(s, name);
    if (i < 0) return s->plain.read(s->plain.user, name, rank, shape, dst, err);
    const marlin_qlayer *L = marlin_qckpt_layer(s->c, (size_t)i);
    if (rank != 2 || shape[0] != L->n || shape[1] != L->k)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: quantized layer '%s' is [%lld, %lld], the model "
                           "expects another shape",
                           marlin_model_dir(marlin_qckpt_model(s->c)), L->prefix,
                           (long long)L->n, (long long)L->k);
    return marlin_qckpt_dequant(s->c, (size_t)i, dst, s->threads, err);
}

marlin_status marlin_qckpt_weight_source(const marlin_qckpt *c, int threads,
                                         marlin_weight_source *out,
                                         void **state, marlin_error *err) {
    qsrc *s = calloc(1, sizeof *s);
    if (!s) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    s->c = c;
    s->threads = threads;
    marlin_weight_source_from_model(marlin_qckpt_model(c), &s->plain);
    out->has = q_has;
    out->read = q_read;
    out->user = s;
    *state = s;
    return MARLIN_OK;
}
