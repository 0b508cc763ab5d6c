/*
 * eval.c - perplexity of a checkpoint over windows of token ids, with
 * bounded memory: windows go through the model in batches, and decoder
 * blocks are either all kept in fp32 (when they fit a budget) or converted
 * again for every batch.
 *
 * Spec: IST-DASLab/gptq llama.py llama_eval (mean next-token cross-entropy
 * over non-overlapping windows, PPL = exp(mean)); marlin_model.h.
 */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_DEFAULT_BATCH_TOKENS 4096
#define EVAL_DEFAULT_CACHE_BYTES (2ull << 30)

marlin_status marlin_llama_perplexity(marlin_llama *m,
                                      const marlin_tokens *tokens,
                                      const marlin_eval_opts *opts,
                                      marlin_eval_result *res,
                                      marlin_error *err) {
    marlin_status st = MARLIN_OK;
    marlin_block **cache = NULL;
    marlin_block *blk = NULL;
    float *hidden = NULL;
    marlin_eval_opts o = {0};
    if (opts) o = *opts;
    memset(res, 0, sizeof *res);

    const int64_t L = tokens->seqlen;
    if (L < 2)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "windows of %lld token(s) have no next token to "
                           "predict (need L >= 2)", (long long)L);
    int64_t rows = tokens->nseq;
    if (o.rows < 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rows %lld must be >= 0", (long long)o.rows);
    if (o.rows > 0 && o.rows < rows) rows = o.rows;
    st = marlin_tokens_check(tokens, m->vocab, NULL, err);
    if (st != MARLIN_OK) return st;

    int64_t bt = o.batch_tokens > 0 ? o.batch_tokens : EVAL_DEFAULT_BATCH_TOKENS;
    int64_t bseq = bt / L < 1 ? 1 : bt / L;
    if (bseq > rows) bseq = rows;
    uint64_t budget = o.cache_bytes ? o.cache_bytes : EVAL_DEFAULT_CACHE_BYTES;
    uint64_t all_blocks = 0;
    bool keep = marlin_mul_u64(marlin_block_bytes(m), (uint64_t)m->layers,
                               &all_blocks) && all_blocks <= budget;

    st = marlin_llama_load_embed(m, err);
    if (st == MARLIN_OK) st = marlin_llama_load_head(m, err);
    if (st != MARLIN_OK) goto out;

    hidden = malloc((size_t)(bseq * L) * (size_t)m->hidden * sizeof(float));
    cache = calloc((size_t)m->layers, sizeof *cache);
    if (!hidden || !cache) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM,
                         "cannot allocate hidden states for %lld x %lld "
                         "tokens", (long long)bseq, (long long)L);
        goto out;
    }

    double t0 = marlin_now(), tblock = 0.0, nll = 0.0;
    int64_t count = 0;
    marlin_progress_report(&o.progress, "windows", 0, rows);
    for (int64_t r0 = 0; r0 < rows; r0 += bseq) {
        int64_t nb = rows - r0 < bseq ? rows - r0 : bseq;
        const int32_t *ids = tokens->ids + r0 * L;
        st = marlin_llama_embed(m, ids, nb * L, hidden, err);
        if (st != MARLIN_OK) goto out;
        for (int64_t layer = 0; layer < m->layers; layer++) {
            marlin_block *b = cache[layer];
            if (!b) {
                st = marlin_block_load(m, layer, &blk, err);
                if (st != MARLIN_OK) goto out;
                b = blk;
                if (keep) {
                    cache[layer] = blk;
                    blk = NULL;
                }
            }
            marlin_block_weights w = marlin_block_view(b);
            double tb = marlin_now();
            st = marlin_llama_block_forward(m, layer, &w, hidden, nb, L, NULL,
                                            err);
            tblock += marlin_now() - tb;
            marlin_block_free(blk);
            blk = NULL;
            if (st != MARLIN_OK) goto out;
        }
        st = marlin_llama_nll(m, hidden, ids, nb, L, &nll, &count, err);
        if (st != MARLIN_OK) goto out;
        marlin_progress_report(&o.progress, "windows", r0 + nb, rows);
    }
    res->rows = rows;
    res->tokens = count;
    res->nll = nll / (double)count;
    res->perplexity = exp(res->nll);
    res->seconds = marlin_now() - t0;
    res->block_seconds = tblock;
    if (!isfinite(res->nll))
        st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                         "the mean NLL is %g: the model produced non-finite "
                         "logits", res->nll);
out:
    if (cache)
        for (int64_t l = 0; l < m->layers; l++) marlin_block_free(cache[l]);
    free(cache);
    marlin_block_free(blk);
    free(hidden);
    return st;
}
