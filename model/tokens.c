/*
 * tokens.c - calibration / evaluation token files: a safetensors file with
 * a tensor `input_ids`, I32 or I64, shape [N, L] (design.md "Formats").
 *
 * Ids are held as int32 (every real vocabulary is far below 2^31), so I64
 * files are narrowed here with a range check rather than silently wrapped.
 */
#include "model_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void marlin_tokens_free(marlin_tokens *t) {
    if (!t) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

marlin_status marlin_tokens_load(const char *path, marlin_tokens *out,
                                 marlin_error *err) {
    marlin_status st = MARLIN_OK;
    marlin_st_file *f = NULL;
    void *raw = NULL;
    int32_t *ids = NULL;
    memset(out, 0, sizeof *out);

    st = marlin_st_open(path, &f, err);
    if (st != MARLIN_OK) return st;
    const marlin_tensor *t = marlin_st_find(f, "input_ids");
    if (!t) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: no tensor 'input_ids' (a token file holds "
                         "input_ids I32/I64 [N, L])", path);
        goto out;
    }
    if (t->dtype != MARLIN_DT_I32 && t->dtype != MARLIN_DT_I64) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: input_ids has dtype %s, expected I32 or I64",
                         path, marlin_dtype_name(t->dtype));
        goto out;
    }
    if (t->rank != 2 || t->shape[0] < 1 || t->shape[1] < 1 ||
        t->shape[0] > INT64_MAX / 2 || t->shape[1] > INT64_MAX / 2) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: input_ids must have shape [N, L] with N, L >= 1",
                         path);
        goto out;
    }
    uint64_t n = t->numel;
    if (n > SIZE_MAX / 8) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: input_ids too large",
                         path);
        goto out;
    }
    raw = malloc((size_t)t->nbytes);
    ids = malloc((size_t)n * sizeof(int32_t));
    if (!raw || !ids) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM,
                         "%s: cannot allocate %llu token ids", path,
                         (unsigned long long)n);
        goto out;
    }
    st = marlin_st_read(f, t, 0, t->nbytes, raw, err);
    if (st != MARLIN_OK) goto out;
    /* safetensors is little-endian, as is every host we build for */
    for (uint64_t i = 0; i < n; i++) {
        int64_t v;
        if (t->dtype == MARLIN_DT_I32) {
            int32_t x;
            memcpy(&x, (const char *)raw + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, (const char *)raw + 8 * i, 8);
        }
        if (v < 0 || v > INT32_MAX) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: input_ids[%llu][%llu] = %" PRId64
                             " is not a token id (must be in [0, 2^31))",
                             path, (unsigned long long)(i / t->shape[1]),
                             (unsigned long long)(i % t->shape[1]), v);
            goto out;
        }
        ids[i] = (int32_t)v;
    }
    out->nseq = (int64_t)t->shape[0];
    out->seqlen = (int64_t)t->shape[1];
    out->ids = ids;
    ids = NULL;
out:
    free(raw);
    free(ids);
    marlin_st_close(f);
    return st;
}

marlin_status marlin_tokens_check(const marlin_tokens *t, int64_t vocab,
                                  const char *label, marlin_error *err) {
    int64_t n = t->nseq * t->seqlen;
    for (int64_t i = 0; i < n; i++)
        if (t->ids[i] < 0 || t->ids[i] >= vocab)
            return marlin_fail(err, MARLIN_ERR_FORMAT,
                               "%s: input_ids[%lld][%lld] = %" PRId32
                               " is outside the model's vocabulary [0, %lld)",
                               label ? label : "tokens",
                               (long long)(i / t->seqlen),
                               (long long)(i % t->seqlen), t->ids[i],
                               (long long)vocab);
    return MARLIN_OK;
}
