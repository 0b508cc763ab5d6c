/*
 * hessian.c - GPTQ's layer Hessian H = (2/N) sum_b X_b^T X_b as a running
 * mean over sequences (issue 4; docs/reference/landscape.md 2.1, the
 * reference `add_batch`), and the relative output error computed from H
 * (trace identity stated in marlin_quant.h).
 *
 * Storage: the UPPER triangle of a row-major (k, k) fp32 matrix, which is
 * what cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, ...) writes; the
 * lower triangle is left alone (zero after init) until symmetrize.
 */
#include "quant_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

/* cblas takes int dimensions; longer token runs are fed in chunks. */
#define MQ_SYRK_MAX_ROWS (1 << 20)

marlin_status marlin_hessian_init(marlin_hessian *H, int64_t k,
                                  marlin_error *err) {
    H->k = 0;
    H->nseq = 0;
    H->h = NULL;
    uint64_t bytes;
    if (k <= 0 || k > INT_MAX ||
        !marlin_mul_u64((uint64_t)k * (uint64_t)k, sizeof(float), &bytes) ||
        bytes > SIZE_MAX)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "hessian: k = %lld columns out of range",
                           (long long)k);
    H->h = calloc((size_t)k * (size_t)k, sizeof(float));
    if (!H->h)
        return marlin_fail(err, MARLIN_ERR_NOMEM,
                           "hessian: out of memory (%lld x %lld fp32)",
                           (long long)k, (long long)k);
    H->k = k;
    return MARLIN_OK;
}

void marlin_hessian_free(marlin_hessian *H) {
    if (!H) return;
    MARLIN_FREE(H->h);
    H->k = 0;
    H->nseq = 0;
}

marlin_status marlin_hessian_add(marlin_hessian *H, const float *x,
                                 int64_t tokens, int64_t nseq,
                                 marlin_error *err) {
    if (!H || !H->h)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "hessian: not initialised");
    if (!x)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "hessian: NULL input");
    if (tokens <= 0 || nseq <= 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "hessian: %lld tokens in %lld sequences: both must "
                           "be positive",
                           (long long)tokens, (long long)nseq);
    const int64_t k = H->k;
    /* Reject NaN/Inf before touching H, so a bad batch leaves H intact. */
    for (int64_t t = 0; t < tokens; t++) {
        int64_t bad = mq_find_nonfinite(x + (size_t)t * (size_t)k, k);
        if (bad >= 0)
            return marlin_fail(err, MARLIN_ERR_NUMERIC,
                               "hessian input: token %lld, column %lld is %s",
                               (long long)t, (long long)bad,
                               isnan(x[(size_t)t * (size_t)k + (size_t)bad])
                                   ? "NaN"
                                   : "infinite");
    }
    /* H <- H * N/(N+b) + (2/(N+b)) X^T X: ssyrk's beta and alpha. */
    double n_old = (double)H->nseq, n_new = n_old + (double)nseq;
    float alpha = (float)(2.0 / n_new), beta = (float)(n_old / n_new);
    for (int64_t t0 = 0; t0 < tokens; t0 += MQ_SYRK_MAX_ROWS) {
        int64_t rows = tokens - t0 < MQ_SYRK_MAX_ROWS ? tokens - t0
                                                      : MQ_SYRK_MAX_ROWS;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)rows,
                    alpha, x + (size_t)t0 * (size_t)k, (int)k,
                    t0 == 0 ? beta : 1.0f, H->h, (int)k);
    }
    H->nseq += nseq;
    return MARLIN_OK;
}

void marlin_hessian_symmetrize(marlin_hessian *H) {
    if (!H || !H->h) return;
    const int64_t k = H->k;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = i + 1; j < k; j++)
            H->h[(size_t)j * (size_t)k + (size_t)i] =
                H->h[(size_t)i * (size_t)k + (size_t)j];
}

void mq_gram_add(float *g, int64_t k, const float *m, int64_t rows,
                 int64_t ld, bool first) {
    for (int64_t t0 = 0; t0 < rows; t0 += MQ_SYRK_MAX_ROWS) {
        int64_t cnt = rows - t0 < MQ_SYRK_MAX_ROWS ? rows - t0
                                                   : MQ_SYRK_MAX_ROWS;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)cnt,
                    1.0f, m + (size_t)t0 * (size_t)ld, (int)ld,
                    (first && t0 == 0) ? 0.0f : 1.0f, g, (int)k);
    }
}

double mq_gram_dot(const float *h, const float *g, int64_t k) {
    double total = 0;
    for (int64_t i = 0; i < k; i++) {
        const float *hr = h + (size_t)i * (size_t)k;
        const float *gr = g + (size_t)i * (size_t)k;
        double off = 0;
        for (int64_t j = i + 1; j < k; j++) off += (double)hr[j] * (double)gr[j];
        total += (double)hr[i] * (double)gr[i] + 2.0 * off;
    }
    return total;
}

/* Rows per ssyrk chunk: large enough for BLAS-3 speed, small next to W. */
#define MQ_TRACE_CHUNK 512

marlin_status marlin_quant_output_error(const void *w, marlin_dtype dtype,
                                        int64_t n, int64_t k,
                                        int64_t group_size, const uint8_t *q,
                                        const uint16_t *scales,
                                        const float *h, double *rel,
                                        marlin_error *err) {
    int64_t G = 0; /* set by marlin_quant_num_groups */
    if (!w || !q || !scales || !h || !rel)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "output error: NULL buffer");
    if (!mq_dtype_ok(dtype))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "output error: dtype %d: need F32, F16 or BF16",
                           (int)dtype);
    marlin_status st = marlin_quant_num_groups(k, group_size, &G, err);
    if (st != MARLIN_OK) return st;
    if (k > INT_MAX || n <= 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "output error: shape (%lld, %lld) out of range",
                           (long long)n, (long long)k);
    const int64_t g = group_size == -1 ? k : group_size;
    const int64_t chunk = n < MQ_TRACE_CHUNK ? n : MQ_TRACE_CHUNK;
    float *gram = malloc((size_t)k * (size_t)k * sizeof(float));
    float *wc = malloc((size_t)chunk * (size_t)k * sizeof(float));
    float *dc = malloc((size_t)chunk * (size_t)k * sizeof(float));
    if (!gram || !wc || !dc) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "output error: out of memory");
        goto done;
    }
    /* pass 0: W^T W (denominator); pass 1: D^T D (numerator) */
    double tr[2];
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t r0 = 0; r0 < n; r0 += chunk) {
            int64_t rows = n - r0 < chunk ? n - r0 : chunk;
            for (int64_t i = 0; i < rows; i++) {
                int64_t r = r0 + i;
                float *wr = wc + (size_t)i * (size_t)k;
                mq_load_row(w, dtype, k, r, wr);
                if (pass == 1) {
                    const uint8_t *qr = q + (size_t)r * (size_t)k;
                    float *dr = dc + (size_t)i * (size_t)k;
                    for (int64_t t = 0; t < G; t++) {
                        float s = marlin_half_to_float(
                            scales[(size_t)t * (size_t)n + (size_t)r]);
                        for (int64_t c = t * g; c < (t + 1) * g; c++)
                            dr[c] = wr[c] -
                                    (float)((int)qr[c] - MARLIN_QUANT_ZERO) * s;
                    }
                }
            }
            mq_gram_add(gram, k, pass == 0 ? wc : dc, rows, k, r0 == 0);
        }
        tr[pass] = mq_gram_dot(h, gram, k);
    }
    if (!(tr[0] > 0)) {
        if (tr[1] == 0) {
            *rel = 0;
        } else {
            st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                             "output error: trace(W H W^T) = %g is not "
                             "positive (H not positive semi-definite?)",
                             tr[0]);
            goto done;
        }
    } else {
        /* D^T D is PSD: a negative trace is fp32 rounding around 0 */
        *rel = tr[1] > 0 ? sqrt(tr[1] / tr[0]) : 0.0;
    }
done:
    free(gram);
    free(wc);
    free(dc);
    return st;
}
