/*
 * rtn.c - round-to-nearest INT4 group quantization with a clipping search
 * (issue 3), and the code/scale helpers every algorithm shares: group
 * count, row loading, dequantization, relative weight error.
 *
 * Spec: marlin_quant.h (code rule, scale rule, clipping grid), after
 * docs/reference/landscape.md 2.7-2.8 and marlin-format.md 1.1. The
 * objective (per row and group): min over the candidate scales s of
 * sum_j (w_j - s * (q_j - 8))^2, with q_j the nearest level under s.
 *
 * Speed: rows are independent and split statically over threads; each row
 * is converted to fp32 once, scanned for NaN/Inf, and its groups are
 * quantized in place by the group kernels (group.c, AVX2 when available).
 */
#include "quant_internal.h"

#include <stdlib.h>

marlin_status marlin_quant_num_groups(int64_t k, int64_t group_size,
                                      int64_t *groups, marlin_error *err) {
    if (k <= 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "k = %lld columns: must be positive", (long long)k);
    if (group_size == -1) {
        *groups = 1;
        return MARLIN_OK;
    }
    if (group_size <= 0 || k % group_size != 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "group size %lld: must be -1 or a positive divisor "
                           "of k = %lld",
                           (long long)group_size, (long long)k);
    *groups = k / group_size;
    return MARLIN_OK;
}

bool mq_dtype_ok(marlin_dtype dtype) {
    return dtype == MARLIN_DT_F32 || dtype == MARLIN_DT_F16 ||
           dtype == MARLIN_DT_BF16;
}

void mq_load_row(const void *w, marlin_dtype dtype, int64_t k, int64_t r,
                 float *dst) {
    size_t off = (size_t)r * (size_t)k;
    if (dtype == MARLIN_DT_F32)
        memcpy(dst, (const float *)w + off, (size_t)k * sizeof(float));
    else if (dtype == MARLIN_DT_F16)
        marlin_half_to_float_n((const uint16_t *)w + off, dst, (size_t)k);
    else
        marlin_bf16_to_float_n((const uint16_t *)w + off, dst, (size_t)k);
}

marlin_rtn_opts marlin_rtn_default_opts(void) {
    marlin_rtn_opts o;
    o.group_size = 128;
    o.clip = true;
    o.prune = MARLIN_PRUNE_NONE;
    o.threads = 0;
    return o;
}

/* First failure seen by one thread; the smallest row wins overall so the
 * reported error does not depend on the thread count. */
typedef struct rtn_fail {
    marlin_status st;
    int64_t row, where; /* column (NaN/Inf) or group (overflow) */
} rtn_fail;

typedef struct rtn_job {
    const void *w;
    marlin_dtype dtype;
    int64_t n, k, g, G;
    bool clip;
    marlin_prune prune;
    uint8_t *q;
    uint16_t *scales;
    rtn_fail *fail; /* one per thread index */
} rtn_job;

/* Quantizes rows [r0, r1); `buf` holds k floats. Returns MARLIN_OK or the
 * failure (with f filled). */
static marlin_status rtn_rows(const rtn_job *J, int64_t r0, int64_t r1,
                              float *buf, rtn_fail *f) {
    const int64_t k = J->k, g = J->g;
    for (int64_t r = r0; r < r1; r++) {
        const float *x;
        if (J->dtype == MARLIN_DT_F32 && J->prune == MARLIN_PRUNE_NONE) {
            x = (const float *)J->w + (size_t)r * (size_t)k;
        } else {
            mq_load_row(J->w, J->dtype, k, r, buf);
            x = buf;
        }
        int64_t bad = mq_find_nonfinite(x, k);
        if (bad >= 0) {
            f->st = MARLIN_ERR_NUMERIC;
            f->row = r;
            f->where = bad;
            return f->st;
        }
        if (J->prune == MARLIN_PRUNE_MAGNITUDE)
            mq_prune_magnitude_row(buf, k); /* x == buf here */
        uint8_t *qr = J->q + (size_t)r * (size_t)k;
        for (int64_t t = 0; t < J->G; t++) {
            const float *xg = x + t * g;
            uint16_t bits;
            float s;
            if (!mq_fit_scale(xg, NULL, g, J->clip, &bits, &s)) {
                f->st = MARLIN_ERR_NUMERIC;
                f->row = r;
                f->where = t;
                return f->st;
            }
            J->scales[(size_t)t * (size_t)J->n + (size_t)r] = bits;
            mq_codes(xg, g, s, qr + t * g);
        }
    }
    return MARLIN_OK;
}

static void rtn_chunk(void *arg, int64_t begin, int64_t end, int ti) {
    const rtn_job *J = arg;
    rtn_fail *f = &J->fail[ti];
    float *buf = malloc((size_t)J->k * sizeof(float));
    if (!buf) {
        f->st = MARLIN_ERR_NOMEM;
        f->row = begin;
        return;
    }
    rtn_rows(J, begin, end, buf, f);
    free(buf);
}

marlin_status marlin_rtn_quantize(const void *w, marlin_dtype dtype,
                                  int64_t n, int64_t k,
                                  const marlin_rtn_opts *opts, uint8_t *q,
                                  uint16_t *scales, marlin_error *err) {
    marlin_rtn_opts o = opts ? *opts : marlin_rtn_default_opts();
    int64_t G = 0; /* set by marlin_quant_num_groups below; 0 keeps -O3 quiet */
    if (!w || !q || !scales)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "rtn: NULL buffer");
    if (!mq_dtype_ok(dtype))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rtn: weight dtype %d: need F32, F16 or BF16",
                           (int)dtype);
    if (n <= 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rtn: n = %lld rows: must be positive", (long long)n);
    marlin_status st = marlin_quant_num_groups(k, o.group_size, &G, err);
    if (st != MARLIN_OK) return st;
    int64_t g = o.group_size == -1 ? k : o.group_size;
    if (o.prune == MARLIN_PRUNE_SPARSEGPT)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rtn: SparseGPT pruning needs a Hessian (use GPTQ)");
    if (o.prune != MARLIN_PRUNE_NONE && o.prune != MARLIN_PRUNE_MAGNITUDE)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rtn: unknown prune mode %d", (int)o.prune);
    if (o.prune == MARLIN_PRUNE_MAGNITUDE && (k % 4 != 0 || g % 4 != 0))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "rtn: 2:4 needs k (%lld) and the group size (%lld) "
                           "to be multiples of 4",
                           (long long)k, (long long)g);

    int nthreads = o.threads > 0 ? o.threads : marlin_cpu_count();
    rtn_fail *fail = calloc((size_t)nthreads, sizeof *fail);
    if (!fail) return marlin_fail(err, MARLIN_ERR_NOMEM, "rtn: out of memory");
    rtn_job J = {w, dtype, n, k, g, G, o.clip, o.prune, q, scales, fail};
    /* ~64k weights per chunk at least: thread start-up stays negligible */
    int64_t grain = k >= 65536 ? 1 : 65536 / k;
    st = marlin_parallel_for(n, grain, nthreads, rtn_chunk, &J);
    if (st == MARLIN_ERR_INTERNAL || st == MARLIN_ERR_NOMEM)
        st = MARLIN_OK; /* the work was done on the calling thread */
    const rtn_fail *first = NULL;
    for (int i = 0; i < nthreads; i++)
        if (fail[i].st != MARLIN_OK && (!first || fail[i].row < first->row))
            first = &fail[i];
    if (first && first->st == MARLIN_ERR_NOMEM)
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "rtn: out of memory");
    if (first && first->st == MARLIN_ERR_NUMERIC) {
        /* tell the two numeric failures apart by re-checking the row */
        float *row = malloc((size_t)k * sizeof(float));
        if (!row) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "rtn: out of memory");
        } else {
            mq_load_row(w, dtype, k, first->row, row);
            int64_t bad = mq_find_nonfinite(row, k);
            if (bad >= 0)
                st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                                 "row %lld, column %lld: weight is %s",
                                 (long long)first->row, (long long)bad,
                                 isnan(row[bad]) ? "NaN" : "infinite");
            else
                st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                                 "row %lld, group %lld: scale 2*absmax/15 "
                                 "overflows fp16 (max 65504)",
                                 (long long)first->row, (long long)first->where);
            free(row);
        }
    }
    free(fail);
    return st;
}

marlin_status marlin_quant_dequant(const uint8_t *q, const uint16_t *scales,
                                   int64_t n, int64_t k, int64_t group_size,
                                   float *out, marlin_error *err) {
    int64_t G = 0; /* set by marlin_quant_num_groups */
    marlin_status st = marlin_quant_num_groups(k, group_size, &G, err);
    if (st != MARLIN_OK) return st;
    int64_t g = group_size == -1 ? k : group_size;
    for (int64_t r = 0; r < n; r++)
        for (int64_t t = 0; t < G; t++) {
            size_t i0 = (size_t)r * (size_t)k + (size_t)(t * g);
            float s = marlin_half_to_float(scales[(size_t)t * (size_t)n + (size_t)r]);
            for (int64_t j = 0; j < g; j++)
                out[i0 + (size_t)j] =
                    (float)((int)q[i0 + (size_t)j] - MARLIN_QUANT_ZERO) * s;
        }
    return MARLIN_OK;
}

typedef struct werr_job {
    const void *w;
    marlin_dtype dtype;
    int64_t n, k, g;
    const uint8_t *q;
    const uint16_t *scales;
    double *num, *den; /* per row */
    int *nomem;        /* per thread */
} werr_job;

static void werr_chunk(void *arg, int64_t begin, int64_t end, int ti) {
    const werr_job *J = arg;
    float *x = malloc((size_t)J->k * sizeof(float));
    if (!x) {
        J->nomem[ti] = 1;
        return;
    }
    for (int64_t r = begin; r < end; r++) {
        mq_load_row(J->w, J->dtype, J->k, r, x);
        const uint8_t *qr = J->q + (size_t)r * (size_t)J->k;
        double num = 0, den = 0;
        /* One scale per group and 8 double lanes (vectorizable); the float
         * difference is exact: (q-8)*s fits in 24 bits, and x - wq of two
         * values within a factor 2 is exact (Sterbenz). Strided scale reads
         * and scalar conversions per element made this pass slower than
         * RTN itself. */
        for (int64_t c0 = 0; c0 < J->k; c0 += J->g) {
            float s = marlin_half_to_float(
                J->scales[(size_t)(c0 / J->g) * (size_t)J->n + (size_t)r]);
            double an[8] = {0}, ad[8] = {0};
            int64_t c = c0, ce = c0 + J->g;
            for (; c + 8 <= ce; c += 8)
                for (int j = 0; j < 8; j++) {
                    float xv = x[c + j];
                    float d = xv - (float)((int)qr[c + j] - MARLIN_QUANT_ZERO) * s;
                    an[j] += (double)d * (double)d;
                    ad[j] += (double)xv * (double)xv;
                }
            for (; c < ce; c++) {
                float d = x[c] - (float)((int)qr[c] - MARLIN_QUANT_ZERO) * s;
                an[0] += (double)d * (double)d;
                ad[0] += (double)x[c] * (double)x[c];
            }
            for (int j = 0; j < 8; j++) {
                num += an[j];
                den += ad[j];
            }
        }
        J->num[r] = num;
        J->den[r] = den;
    }
    free(x);
}

marlin_status marlin_quant_weight_error(const void *w, marlin_dtype dtype,
                                        int64_t n, int64_t k,
                                        int64_t group_size, const uint8_t *q,
                                        const uint16_t *scales, int threads,
                                        double *rel, marlin_error *err) {
    int64_t G = 0; /* set by marlin_quant_num_groups */
    if (!w || !q || !scales || !rel)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "weight error: NULL buffer");
    if (!mq_dtype_ok(dtype))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "weight error: dtype %d: need F32, F16 or BF16",
                           (int)dtype);
    marlin_status st = marlin_quant_num_groups(k, group_size, &G, err);
    if (st != MARLIN_OK) return st;
    int nthreads = threads > 0 ? threads : marlin_cpu_count();
    double *acc = calloc((size_t)n * 2, sizeof(double));
    int *nomem = calloc((size_t)nthreads, sizeof(int));
    if (!acc || !nomem) {
        free(acc);
        free(nomem);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "weight error: out of memory");
    }
    werr_job J = {w, dtype, n, k, group_size == -1 ? k : group_size,
                  q, scales, acc, acc + n, nomem};
    marlin_parallel_for(n, k >= 65536 ? 1 : 65536 / k, nthreads, werr_chunk, &J);
    for (int i = 0; i < nthreads; i++)
        if (nomem[i]) st = MARLIN_ERR_NOMEM;
    /* row order, so the sum does not depend on the thread count */
    double num = 0, den = 0;
    for (int64_t r = 0; r < n; r++) {
        num += acc[r];
        den += acc[n + r];
    }
    free(acc);
    free(nomem);
    if (st != MARLIN_OK)
        return marlin_fail(err, st, "weight error: out of memory");
    *rel = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
    return MARLIN_OK;
}
