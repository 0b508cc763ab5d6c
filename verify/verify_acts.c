/*
 * verify_acts.c - real activations for marlin-verify --gpu --calib: the
 * inputs every linear of the ORIGINAL model sees on the first calibration
 * sequence (its first `batch` tokens), captured with model/'s forward taps.
 * Real activations have the outlier channels that random N(0,1) rows lack,
 * so they exercise the kernel's fp16 range the way inference will.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_model.h"
#include "verify_internal.h"

struct verify_acts {
    int64_t layers, rows;
    float *x[4 * 512];  /* [layer * 4 + group] -> rows x k, or NULL */
    int64_t k[4 * 512];
};

typedef struct cap_ctx {
    verify_acts *a;
} cap_ctx;

static marlin_status capture(void *user, int64_t layer, marlin_tap_point where,
                             const float *x, int64_t rows, int64_t cols,
                             marlin_error *err) {
    cap_ctx *c = user;
    if (where > MARLIN_TAP_DOWN) return MARLIN_OK;
    size_t idx = (size_t)(layer * 4 + (int64_t)where);
    float *dst = malloc((size_t)(rows * cols) * 4);
    if (!dst) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    memcpy(dst, x, (size_t)(rows * cols) * 4);
    free(c->a->x[idx]);
    c->a->x[idx] = dst;
    c->a->k[idx] = cols;
    return MARLIN_OK;
}

marlin_status verify_acts_capture(const marlin_model *ref, const char *calib,
                                  int64_t rows, int threads, verify_acts **out,
                                  marlin_error *err) {
    marlin_tokens tok;
    marlin_weight_source src;
    marlin_llama *m = NULL;
    float *h = NULL;
    marlin_status st;
    verify_acts *a = calloc(1, sizeof *a);
    const marlin_config *cfg = marlin_model_config(ref);
    memset(&tok, 0, sizeof tok);
    *out = NULL;
    if (!a) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (!cfg || !cfg->present) {
        st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                         "--calib needs the reference model's config.json (the forward "
                         "runs the architecture)");
        goto out;
    }
    if (cfg->num_hidden_layers > 512) {
        st = marlin_fail(err, MARLIN_ERR_UNSUPPORTED, "--calib: more than 512 layers");
        goto out;
    }
    if ((st = marlin_tokens_load(calib, &tok, err))) goto out;
    if ((st = marlin_tokens_check(&tok, cfg->vocab_size, calib, err))) goto out;
    a->rows = rows < tok.seqlen ? rows : tok.seqlen;
    a->layers = cfg->num_hidden_layers;
    marlin_weight_source_from_model(ref, &src);
    if ((st = marlin_llama_create(cfg, &src, &m, err))) goto out;
    marlin_llama_set_threads(m, threads);
    if ((st = marlin_llama_load_embed(m, err))) goto out;
    if (!(h = malloc((size_t)(a->rows * cfg->hidden_size) * 4))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* the first `rows` tokens of the first sequence (causal: a prefix is a
     * sequence of its own) */
    if ((st = marlin_llama_embed(m, tok.ids, a->rows, h, err))) goto out;
    cap_ctx cc = {a};
    marlin_taps taps = {capture, &cc, false, MARLIN_TAP_QKV};
    for (int64_t L = 0; L < a->layers && !st; L++) {
        marlin_block *b = NULL;
        st = marlin_block_load(m, L, &b, err);
        if (!st) {
            marlin_block_weights w = marlin_block_view(b);
            st = marlin_llama_block_forward(m, L, &w, h, 1, a->rows, &taps, err);
        }
        marlin_block_free(b);
    }
out:
    free(h);
    marlin_llama_free(m);
    marlin_tokens_free(&tok);
    if (st) verify_acts_free(a);
    else *out = a;
    return st;
}

const float *verify_acts_for(const verify_acts *a, const char *prefix, int64_t k,
                             int64_t *rows) {
    static const struct { const char *name; int group; } lin[] = {
        {"self_attn.q_proj", 0}, {"self_attn.k_proj", 0}, {"self_attn.v_proj", 0},
        {"self_attn.o_proj", 1}, {"mlp.gate_proj", 2}, {"mlp.up_proj", 2},
        {"mlp.down_proj", 3}};
    long long layer;
    int off = 0;
    if (!a || sscanf(prefix, "model.layers.%lld.%n", &layer, &off) != 1 || off == 0 ||
        layer < 0 || layer >= a->layers)
        return NULL;
    for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
        if (!strcmp(prefix + off, lin[i].name)) {
            size_t idx = (size_t)(layer * 4 + lin[i].group);
            if (!a->x[idx] || a->k[idx] != k) return NULL;
            *rows = a->rows;
            return a->x[idx];
        }
    return NULL;
}

void verify_acts_free(verify_acts *a) {
    if (!a) return;
    for (size_t i = 0; i < sizeof a->x / sizeof a->x[0]; i++) free(a->x[i]);
    free(a);
}
