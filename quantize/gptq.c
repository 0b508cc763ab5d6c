/*
 * gptq.c - the GPTQ solver (issue 4) with SparseGPT 2:4 pruning chosen
 * jointly with the quantization (issue 6).
 *
 * Follows the reference GPTQ (IST-DASLab/gptq `gptq.py`, docs/reference/
 * landscape.md 2.2-2.7) and SparseGPT (IST-DASLab/sparsegpt `sparsegpt.py`,
 * landscape 2.10); the objective, the steps and our deliberate differences
 * (exact group scales for g < 128, Hessian-weighted clipping, static-group
 * act-order, damping escalation) are stated in marlin_quant.h.
 *
 * Where the time goes (k = in, n = out columns/rows):
 *   - U: one spotrf + one strtri on the reversed H (2/3 k^3 flops), with
 *     OpenBLAS's threads;
 *   - the row phase (rows are independent given U): each of our threads
 *     takes fixed panels of 128 rows through every block: the column loop
 *     (8 rows at a time on AVX2 tiles; n k B flops, 3% of the work at
 *     k = 4096, plus the clipping search at each group start), then one
 *     single-threaded sgemm for the panel, 2 n B (k - i2) flops per block,
 *     about n k^2 in all: the bulk for n >= k;
 *   - the optional output error: one ssyrk of W, n k^2 flops.
 * Everything is fp32 (OpenBLAS has no tf32); reported sums are double.
 */
#include "quant_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__)
/* GCC 12's -O2 cost model ("very cheap") leaves the portable row loop's
 * update (block_row) scalar; it runs for rows outside the AVX2 tiles. */
#pragma GCC optimize("O3")
#endif

/* LAPACK in OpenBLAS, Fortran convention (by-reference arguments; the
 * trailing hidden lengths of the CHARACTER arguments are passed so the call
 * is also right for a reference-LAPACK build). */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda,
             int *info, size_t uplo_len);
void strtri_(const char *uplo, const char *diag, const int *n, float *a,
             const int *lda, int *info, size_t uplo_len, size_t diag_len);

marlin_gptq_opts marlin_gptq_default_opts(void) {
    marlin_gptq_opts o;
    o.group_size = 128;
    o.damp = 0.01;
    o.damp_step = 0.01;
    o.damp_max = 0.10;
    o.clip = true;
    o.act_order = false;
    o.prune = MARLIN_PRUNE_NONE;
    o.masks = MARLIN_MASKS_ADAPTIVE;
    o.blocksize = 128;
    o.output_error = true;
    o.threads = 0;
    return o;
}

void marlin_gptq_step_describe(const marlin_gptq_step *s, char *buf,
                               size_t len) {
    static const char *const what[] = {
        "ok", "Cholesky of H failed", "inverse of the Cholesky factor failed",
        "factor has a non-finite or non-positive diagonal"};
    const char *w = (unsigned)s->fail < 4 ? what[s->fail] : "?";
    if (s->kind == MARLIN_GPTQ_STEP_RTN) {
        snprintf(buf, len, "every factorisation failed: RTN for this layer");
        return;
    }
    char col[48] = "";
    if (s->column >= 0)
        snprintf(col, sizeof col, " at column %lld", (long long)s->column);
    snprintf(buf, len, "%s %.4f (lambda %.3g): %s%s",
             s->kind == MARLIN_GPTQ_STEP_FLOOR ? "diagonal floor, damp"
                                               : "damp",
             s->damp_rel, s->lambda, w, s->fail ? col : "");
}

/* ---------------------------------------------------------------- state */

typedef struct gptq_fail {
    marlin_status st;
    int64_t row, where;
} gptq_fail;

typedef struct gptq_state {
    int64_t n, k;
    int64_t g;        /* group width (k when per channel) */
    bool grouped;     /* group_size != -1 */
    int64_t B;        /* block width */
    bool clip, act_order;
    marlin_prune prune;
    bool adaptive;    /* SparseGPT masks per run of 4 in the loop */
    const void *w;    /* the input */
    marlin_dtype dtype;
    const float *h;   /* input H, upper triangle */
    float *W;         /* (n, k) work copy, solve order */
    float *U;         /* (k, k), upper: H^-1 = U^T U (solve order) */
    float *ErrT;      /* (B, n) scaled errors of the current block */
    float *dinv2;     /* (k) 1 / U_jj^2 */
    float *diag;      /* (k) diag H after dead-column handling, original order */
    uint8_t *dead;    /* (k) 1 where the input H_jj == 0 */
    int64_t *perm;    /* (k) solve position -> original column, or NULL */
    int64_t *iperm;   /* (k) original column -> solve position, or NULL */
    uint8_t *keep;    /* (n, k) 2:4 masks (1 = kept), or NULL */
    float *sval;      /* (G, n) static scales (act order), or NULL */
    float *cur_s;     /* (n) scale of each row's current group */
    float *ws;        /* per thread scratch (scratch_floats) */
    size_t ws_per_thread;
    double *rowloss;  /* (n) sum e^2 per row */
    double *rowd2;    /* (n) |W_dz - Wq|^2 per row (output error) */
    uint8_t *q;
    uint16_t *scales;
    int abort;        /* set by a failing thread: the others stop */
    double *t_col, *t_gemm; /* per thread seconds */
    int nthreads;
    gptq_fail *fail;  /* one per thread */
} gptq_state;

static void note_fail(gptq_fail *f, marlin_status st, int64_t row,
                      int64_t where) {
    if (f->st == MARLIN_OK || row < f->row) {
        f->st = st;
        f->row = row;
        f->where = where;
    }
}

/* Smallest failing row over threads (independent of the thread count). */
static const gptq_fail *first_fail(const gptq_state *S) {
    const gptq_fail *first = NULL;
    for (int i = 0; i < S->nthreads; i++)
        if (S->fail[i].st != MARLIN_OK &&
            (!first || S->fail[i].row < first->row))
            first = &S->fail[i];
    return first;
}

/* --------------------------------------------------- loading W (rows) */

/* Rows [b, e): convert to fp32, reject NaN/Inf, zero dead columns. */
static void load_chunk(void *arg, int64_t b, int64_t e, int ti) {
    gptq_state *S = arg;
    for (int64_t r = b; r < e; r++) {
        float *x = S->W + (size_t)r * (size_t)S->k;
        mq_load_row(S->w, S->dtype, S->k, r, x);
        int64_t bad = mq_find_nonfinite(x, S->k);
        if (bad >= 0) {
            note_fail(&S->fail[ti], MARLIN_ERR_NUMERIC, r, bad);
            return;
        }
        for (int64_t c = 0; c < S->k; c++)
            if (S->dead[c]) x[c] = 0.0f;
    }
}

/* ------------------------------------------------------- factorisation */

typedef struct fill_job {
    gptq_state *S;
    float lambda;
    const float *floor_abs; /* (k) off-diagonal |row| sums, or NULL */
} fill_job;

static inline float h_at(const float *h, int64_t k, int64_t a, int64_t b) {
    return a <= b ? h[(size_t)a * (size_t)k + (size_t)b]
                  : h[(size_t)b * (size_t)k + (size_t)a];
}

/* R = J Hp J (row-major lower triangle, the rest 0), Hp = H in solve order
 * with dead diagonals 1, plus lambda (and the floor) on the diagonal.
 * Row ri of R is solve row i = k-1-ri read backwards from column k-1. */
static void fill_chunk(void *arg, int64_t b, int64_t e, int ti) {
    (void)ti;
    const fill_job *F = arg;
    const gptq_state *S = F->S;
    const int64_t k = S->k;
    for (int64_t ri = b; ri < e; ri++) {
        int64_t i = k - 1 - ri;
        int64_t oi = S->perm ? S->perm[i] : i;
        float *out = S->U + (size_t)ri * (size_t)k;
        if (S->perm) {
            for (int64_t rj = 0; rj < ri; rj++)
                out[rj] = h_at(S->h, k, oi, S->perm[k - 1 - rj]);
        } else {
            const float *hr = S->h + (size_t)i * (size_t)k;
            for (int64_t rj = 0; rj < ri; rj++) out[rj] = hr[k - 1 - rj];
        }
        float d = S->diag[oi];
        if (F->floor_abs && F->floor_abs[oi] > d) d = F->floor_abs[oi];
        out[ri] = d + F->lambda;
        for (int64_t rj = ri + 1; rj < k; rj++) out[rj] = 0.0f;
    }
}

typedef struct rev_job {
    float *a;
    int64_t len;
} rev_job;

/* In-place reversal of a flat array: entry (i, j) of a k x k row-major
 * matrix goes to (k-1-i, k-1-j), i.e. R -> J R J. */
static void rev_chunk(void *arg, int64_t b, int64_t e, int ti) {
    (void)ti;
    const rev_job *R = arg;
    for (int64_t i = b; i < e; i++) {
        float t = R->a[i];
        R->a[i] = R->a[R->len - 1 - i];
        R->a[R->len - 1 - i] = t;
    }
}

typedef struct finite_job {
    const float *U;
    int64_t k;
    int *bad; /* per thread */
} finite_job;

static void finite_chunk(void *arg, int64_t b, int64_t e, int ti) {
    const finite_job *F = arg;
    for (int64_t i = b; i < e; i++) {
        const float *row = F->U + (size_t)i * (size_t)F->k;
        if (!(row[i] > 0.0f) || mq_find_nonfinite(row + i, F->k - i) >= 0) {
            F->bad[ti] = 1;
            return;
        }
    }
}

/* One attempt: U from H + lambda I (or the floor). Returns MARLIN_GPTQ_OK
 * or the failure with *col the original column (or -1). */
static marlin_gptq_fail factor_once(gptq_state *S, float lambda,
                                    const float *floor_abs, int64_t *col,
                                    marlin_status *st) {
    const int64_t k = S->k;
    int ik = (int)k, info = 0;
    *col = -1;
    *st = MARLIN_OK;
    fill_job F = {S, lambda, floor_abs};
    marlin_parallel_for(k, 64, S->nthreads, fill_chunk, &F);
    /* Row-major lower = column-major upper: spotrf("U") factors
     * J Hp J = Uc^T Uc, i.e. L L^T with L = Uc^T lower (row-major view). */
    spotrf_("U", &ik, S->U, &ik, &info, 1);
    if (info != 0) {
        if (info > 0) *col = S->perm ? S->perm[k - info] : k - info;
        return MARLIN_GPTQ_FAIL_CHOL;
    }
    strtri_("U", "N", &ik, S->U, &ik, &info, 1, 1);
    if (info != 0) {
        if (info > 0) *col = S->perm ? S->perm[k - info] : k - info;
        return MARLIN_GPTQ_FAIL_TRTRI;
    }
    /* Row-major view now holds L^-1 (lower); U = J L^-1 J is upper and
     * H^-1 = (J L L^T J)^-1 = (J L^-1 J)^T (J L^-1 J) = U^T U. */
    rev_job R = {S->U, k * k};
    marlin_parallel_for(k * k / 2, 1 << 16, S->nthreads, rev_chunk, &R);
    int *bad = calloc((size_t)S->nthreads, sizeof(int));
    if (!bad) {
        *st = MARLIN_ERR_NOMEM;
        return MARLIN_GPTQ_FAIL_NONFINITE;
    }
    finite_job FJ = {S->U, k, bad};
    marlin_parallel_for(k, 64, S->nthreads, finite_chunk, &FJ);
    int any = 0;
    for (int i = 0; i < S->nthreads; i++) any |= bad[i];
    free(bad);
    return any ? MARLIN_GPTQ_FAIL_NONFINITE : MARLIN_GPTQ_OK;
}

/* ------------------------------------------------ static groups, masks */

/* Act order: fit every group's scale on the original (dead-zeroed) row
 * with weights 1/U_jj^2 at the columns' solve positions, then permute the
 * row into solve order. Magnitude 2:4 masks are computed here too (no act
 * order then, so solve order = original order). */
static void prep_chunk(void *arg, int64_t b, int64_t e, int ti) {
    gptq_state *S = arg;
    const int64_t k = S->k, g = S->g, n = S->n;
    float *tmp = S->ws + (size_t)ti * S->ws_per_thread;
    float *cw = tmp + k; /* group weights in original order */
    for (int64_t r = b; r < e; r++) {
        float *x = S->W + (size_t)r * (size_t)k;
        if (S->prune == MARLIN_PRUNE_MAGNITUDE) {
            uint8_t *kp = S->keep + (size_t)r * (size_t)k;
            for (int64_t j = 0; j < k; j += 4) {
                float key[4];
                for (int i = 0; i < 4; i++) key[i] = fabsf(x[j + i]);
                mq_keep2of4(key, kp + j);
            }
        }
        if (!S->act_order) continue;
        for (int64_t t = 0; t < k / g; t++) {
            for (int64_t j = 0; j < g; j++)
                cw[j] = S->dinv2[S->iperm[t * g + j]];
            uint16_t bits;
            float s;
            if (!mq_fit_scale(x + t * g, S->clip ? cw : NULL, g, S->clip,
                              &bits, &s)) {
                note_fail(&S->fail[ti], MARLIN_ERR_NUMERIC, r, t);
                return;
            }
            S->scales[(size_t)t * (size_t)n + (size_t)r] = bits;
            S->sval[(size_t)t * (size_t)n + (size_t)r] = s;
        }
        for (int64_t j = 0; j < k; j++) tmp[j] = x[S->perm[j]];
        memcpy(x, tmp, (size_t)k * sizeof(float));
    }
}

/* ------------------------------------------------------ the column loop */
/*
 * Rows are independent inside a block, so the column loop runs per row.
 * Per row it is a chain of dependent steps (each column's value comes from
 * the previous column's update, then two divisions), i.e. latency-bound.
 * The AVX2 path therefore runs 8 rows at once on a transposed (B, 8) tile:
 * one vector per column, the update tile[m] -= err * U[j][m] broadcast
 * along m. It performs exactly the scalar path's fp32/double operations per
 * row, so the result does not depend on which rows went through which path
 * (and hence on the thread count; tested).
 */

#define MQ_TILE 8 /* rows per tile: one AVX2 vector */
#define MQ_PANEL 128 /* rows per sgemm call in the row phase (fixed) */

/* Per-thread scratch layout (floats): prep_chunk: [0, k) a row, then g
 * clip weights; the column loop: [0, 8B) the tile, then g for a gathered
 * group, then group_start's g. */
static size_t scratch_floats(int64_t k, int64_t g, int64_t B) {
    int64_t a = k + g, b = MQ_TILE * B + 2 * g;
    return (size_t)(a > b ? a : b);
}

/* Group start of row r at column j: x = the row's current values of
 * columns [j, j+g). SparseGPT chooses the group's masks here; the scale is
 * fitted on the survivors. scratch: g floats. Returns false on scale
 * overflow. */
static bool group_start(gptq_state *S, int64_t r, int64_t j, const float *x,
                        float *scratch, float *s_out) {
    float *xs = scratch;
    const int64_t g = S->g, k = S->k;
    uint8_t *kp = S->keep ? S->keep + (size_t)r * (size_t)k + (size_t)j : NULL;
    const float *fitx = x;
    if (S->prune == MARLIN_PRUNE_SPARSEGPT)
        mq_sparsegpt_mask(x, S->dinv2 + j, g, kp);
    if (kp) {
        for (int64_t t = 0; t < g; t++) xs[t] = kp[t] ? x[t] : 0.0f;
        fitx = xs;
    }
    uint16_t bits;
    if (!mq_fit_scale(fitx, S->clip ? S->dinv2 + j : NULL, g, S->clip, &bits,
                      s_out))
        return false;
    S->scales[(size_t)(j / g) * (size_t)S->n + (size_t)r] = bits;
    return true;
}

static inline float static_scale(const gptq_state *S, int64_t r, int64_t j) {
    return S->sval[(size_t)(S->perm[j] / S->g) * (size_t)S->n + (size_t)r];
}

/* One row, columns [i1, i2): the definition of the column step. */
static void block_row(gptq_state *S, int64_t r, int64_t i1, int64_t i2,
                      float *scratch, int ti) {
    const int64_t k = S->k, n = S->n, g = S->g;
    const bool adaptive =
        S->prune == MARLIN_PRUNE_SPARSEGPT && S->adaptive;
    float *w = S->W + (size_t)r * (size_t)k;
    uint8_t *qr = S->q + (size_t)r * (size_t)k;
    uint8_t *kp = S->keep ? S->keep + (size_t)r * (size_t)k : NULL;
    double loss = 0;
    float s = S->cur_s[r];
    for (int64_t j = i1; j < i2; j++) {
        if (!S->act_order && j % g == 0) {
            /* every earlier update has reached w[j..j+g) */
            if (!group_start(S, r, j, w + j, scratch, &s)) {
                note_fail(&S->fail[ti], MARLIN_ERR_NUMERIC, r, j / g);
                return;
            }
        }
        if (adaptive && j % 4 == 0) /* SparseGPT proper */
            mq_sparsegpt_mask(w + j, S->dinv2 + j, 4, kp + j);
        if (S->act_order) s = static_scale(S, r, j);
        float x = w[j], qv;
        uint8_t code;
        if (kp && !kp[j]) {
            qv = 0.0f;
            code = MARLIN_QUANT_ZERO;
        } else {
            float lev = mq_level(x, s);
            qv = lev * s;
            code = (uint8_t)(int)(lev + 8.0f);
        }
        const float *u = S->U + (size_t)j * (size_t)k;
        float err = (x - qv) / u[j];
        loss += (double)err * (double)err;
        S->ErrT[(size_t)(j - i1) * (size_t)n + (size_t)r] = err;
        for (int64_t m = j + 1; m < i2; m++) w[m] -= err * u[m];
        qr[S->perm ? S->perm[j] : j] = code;
    }
    S->cur_s[r] = s;
    S->rowloss[r] += loss;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MARLIN_NO_AVX2)
#define MQ_HAVE_TILE 1
#include <immintrin.h>

/* Rows [r0, r0 + 8), columns [i1, i2): block_row on 8 rows at once. */
__attribute__((target("avx2")))
static bool block_tile(gptq_state *S, int64_t r0, int64_t i1, int64_t i2,
                       float *scratch, int ti) {
    const int64_t k = S->k, n = S->n, g = S->g, B = S->B;
    const int64_t bw = i2 - i1;
    const bool adaptive =
        S->prune == MARLIN_PRUNE_SPARSEGPT && S->adaptive;
    float *T = scratch;                 /* (bw, 8): T[jj*8 + r] */
    float *xg = scratch + MQ_TILE * B;  /* a row's group, gathered */
    float *gs = xg + g;                 /* group_start's scratch */
    for (int64_t jj = 0; jj < bw; jj++)
        for (int r = 0; r < MQ_TILE; r++)
            T[jj * MQ_TILE + r] =
                S->W[(size_t)(r0 + r) * (size_t)k + (size_t)(i1 + jj)];
    float sv[MQ_TILE];
    memcpy(sv, S->cur_s + r0, sizeof sv);
    __m256 s = _mm256_loadu_ps(sv);
    __m256d l0 = _mm256_setzero_pd(), l1 = _mm256_setzero_pd();
    const __m256 lo = _mm256_set1_ps(-8.0f), hi = _mm256_set1_ps(7.0f),
                 eight = _mm256_set1_ps(8.0f), zero = _mm256_setzero_ps();
    for (int64_t j = i1; j < i2; j++) {
        const int64_t jj = j - i1;
        if (!S->act_order && j % g == 0) {
            for (int r = 0; r < MQ_TILE; r++) {
                const float *x;
                if (j == i1) { /* the tile is fresh: W has the whole group */
                    x = S->W + (size_t)(r0 + r) * (size_t)k + (size_t)j;
                } else { /* g < B: the group lies in the tile */
                    for (int64_t t = 0; t < g; t++)
                        xg[t] = T[(jj + t) * MQ_TILE + r];
                    x = xg;
                }
                if (!group_start(S, r0 + r, j, x, gs, &sv[r])) {
                    note_fail(&S->fail[ti], MARLIN_ERR_NUMERIC, r0 + r, j / g);
                    return false;
                }
            }
            s = _mm256_loadu_ps(sv);
        }
        if (S->act_order) {
            for (int r = 0; r < MQ_TILE; r++) sv[r] = static_scale(S, r0 + r, j);
            s = _mm256_loadu_ps(sv);
        }
        float *tj = T + jj * MQ_TILE;
        __m256 x = _mm256_loadu_ps(tj);
        /* level = round_half_even(clamp(x / s, -8, 7)) */
        __m256 lev = _mm256_div_ps(x, s);
        lev = _mm256_min_ps(_mm256_max_ps(lev, lo), hi);
        lev = _mm256_round_ps(lev, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 qv = _mm256_mul_ps(lev, s);
        __m256 codef = _mm256_add_ps(lev, eight);
        if (S->keep) {
            float kf[MQ_TILE];
            if (adaptive && j % 4 == 0)
                for (int r = 0; r < MQ_TILE; r++) {
                    float x4[4];
                    for (int t = 0; t < 4; t++) x4[t] = tj[t * MQ_TILE + r];
                    mq_sparsegpt_mask(x4, S->dinv2 + j, 4,
                                      S->keep + (size_t)(r0 + r) * (size_t)k + j);
                }
            for (int r = 0; r < MQ_TILE; r++)
                kf[r] = S->keep[(size_t)(r0 + r) * (size_t)k + (size_t)j]
                            ? 1.0f : 0.0f;
            __m256 kv = _mm256_cmp_ps(_mm256_loadu_ps(kf), zero, _CMP_NEQ_OQ);
            qv = _mm256_blendv_ps(zero, qv, kv);
            codef = _mm256_blendv_ps(eight, codef, kv);
        }
        const float *u = S->U + (size_t)j * (size_t)k;
        __m256 err = _mm256_div_ps(_mm256_sub_ps(x, qv), _mm256_set1_ps(u[j]));
        __m256d e0 = _mm256_cvtps_pd(_mm256_castps256_ps128(err));
        __m256d e1 = _mm256_cvtps_pd(_mm256_extractf128_ps(err, 1));
        l0 = _mm256_add_pd(l0, _mm256_mul_pd(e0, e0));
        l1 = _mm256_add_pd(l1, _mm256_mul_pd(e1, e1));
        _mm256_storeu_ps(S->ErrT + (size_t)jj * (size_t)n + (size_t)r0, err);
        int32_t cv[MQ_TILE];
        _mm256_storeu_si256((__m256i *)(void *)cv, _mm256_cvtps_epi32(codef));
        const int64_t col = S->perm ? S->perm[j] : j;
        for (int r = 0; r < MQ_TILE; r++)
            S->q[(size_t)(r0 + r) * (size_t)k + (size_t)col] = (uint8_t)cv[r];
        for (int64_t m = j + 1; m < i2; m++) {
            float *tm = T + (m - i1) * MQ_TILE;
            _mm256_storeu_ps(tm, _mm256_sub_ps(_mm256_loadu_ps(tm),
                                               _mm256_mul_ps(err, _mm256_set1_ps(u[m]))));
        }
    }
    _mm256_storeu_ps(sv, s);
    memcpy(S->cur_s + r0, sv, sizeof sv);
    double lv[MQ_TILE];
    _mm256_storeu_pd(lv, l0);
    _mm256_storeu_pd(lv + 4, l1);
    for (int r = 0; r < MQ_TILE; r++) S->rowloss[r0 + r] += lv[r];
    return true;
}
#endif

/* Rows [r0, r1), columns [i1, i2). */
static bool block_rows(gptq_state *S, int64_t r0, int64_t r1, int64_t i1,
                       int64_t i2, float *scratch, int ti) {
    int64_t r = r0;
#ifdef MQ_HAVE_TILE
    if (mq_use_avx2())
        for (; r + MQ_TILE <= r1; r += MQ_TILE)
            if (!block_tile(S, r, i1, i2, scratch, ti)) return false;
#endif
    for (; r < r1; r++) {
        block_row(S, r, i1, i2, scratch, ti);
        if (S->fail[ti].st != MARLIN_OK) return false;
    }
    return true;
}

/*
 * The row phase. Given U, GPTQ is independent across rows, so each thread
 * takes whole panels of MQ_PANEL rows through every block with no barrier:
 * the column loop, then its own sgemm W[p, i2:] -= E1[p]^T U[i1:i2, i2:].
 * OpenBLAS runs single-threaded here (set by the caller), and the panels
 * sit at fixed row offsets, so every sgemm call is the same whatever the
 * thread count: OpenBLAS's results depend on how a product is partitioned
 * (measured: slicing the rows of one call differently changes ~3% of the
 * elements in the last bit), and GPTQ would carry that into the codes.
 */
static void solve_panels(void *arg, int64_t p0, int64_t p1, int ti) {
    gptq_state *S = arg;
    const int64_t n = S->n, k = S->k;
    float *scratch = S->ws + (size_t)ti * S->ws_per_thread;
    double tc = 0, tg = 0;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t r0 = p * MQ_PANEL, r1 = r0 + MQ_PANEL < n ? r0 + MQ_PANEL : n;
        for (int64_t i1 = 0; i1 < k; i1 += S->B) {
            const int64_t i2 = i1 + S->B < k ? i1 + S->B : k;
            if (__atomic_load_n(&S->abort, __ATOMIC_RELAXED)) goto out;
            double t0 = marlin_now();
            bool ok = block_rows(S, r0, r1, i1, i2, scratch, ti);
            tc += marlin_now() - t0;
            if (!ok) {
                __atomic_store_n(&S->abort, 1, __ATOMIC_RELAXED);
                goto out;
            }
            if (i2 < k) {
                t0 = marlin_now();
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                            (int)(r1 - r0), (int)(k - i2), (int)(i2 - i1), -1.0f,
                            S->ErrT + r0, (int)n,
                            S->U + (size_t)i1 * (size_t)k + (size_t)i2, (int)k,
                            1.0f, S->W + (size_t)r0 * (size_t)k + (size_t)i2,
                            (int)k);
                tg += marlin_now() - t0;
            }
        }
    }
out:
    S->t_col[ti] += tc;
    S->t_gemm[ti] += tg;
}

/* |W_dz - Wq|^2 per row (for the output-error identity), and the original
 * rows back into S->W for the ssyrk of W. */
static void reload_chunk(void *arg, int64_t b, int64_t e, int ti) {
    (void)ti;
    gptq_state *S = arg;
    const int64_t k = S->k, n = S->n, g = S->g;
    for (int64_t r = b; r < e; r++) {
        float *x = S->W + (size_t)r * (size_t)k;
        const uint8_t *qr = S->q + (size_t)r * (size_t)k;
        mq_load_row(S->w, S->dtype, k, r, x);
        double d2 = 0;
        for (int64_t t = 0; t < k / g; t++) {
            double s = marlin_half_to_float(
                S->scales[(size_t)t * (size_t)n + (size_t)r]);
            for (int64_t c = t * g; c < (t + 1) * g; c++) {
                double wq = (double)((int)qr[c] - MARLIN_QUANT_ZERO) * s;
                /* dead columns were zeroed for the solve */
                double d = (S->dead[c] ? 0.0 : (double)x[c]) - wq;
                d2 += d * d;
            }
        }
        S->rowd2[r] = d2;
    }
}

/* ------------------------------------------------------------- helpers */

/* Block width: every group start must be a block start (see header). */
static int64_t choose_block(int64_t cap, bool grouped, int64_t g, bool need4) {
    if (cap < 4 && need4) cap = 4;
    if (!grouped) return need4 ? cap - cap % 4 : cap;
    if (g <= cap) return g * (cap / g);
    for (int64_t d = cap; d > 1; d--)
        if (g % d == 0 && (!need4 || d % 4 == 0)) return d;
    return need4 ? 4 : 1;
}

/* Stable argsort of diag, descending (ties keep the column order). */
static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *d = ctx;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (d[i] > d[j]) return -1;
    if (d[i] < d[j]) return 1;
    return i < j ? -1 : (i > j);
}

static void log_step(marlin_gptq_result *R, marlin_gptq_step_kind kind,
                     marlin_gptq_fail fail, double rel, double lambda,
                     int64_t col) {
    if (R->nsteps >= MARLIN_GPTQ_MAX_STEPS) return;
    marlin_gptq_step *s = &R->steps[R->nsteps++];
    s->kind = kind;
    s->fail = fail;
    s->damp_rel = rel;
    s->lambda = lambda;
    s->column = col;
}

/* ---------------------------------------------------------------- solve */

marlin_status marlin_gptq_quantize(const void *w, marlin_dtype dtype,
                                   int64_t n, int64_t k, const float *h,
                                   const marlin_gptq_opts *opts, uint8_t *q,
                                   uint16_t *scales, marlin_gptq_result *res,
                                   marlin_error *err) {
    marlin_gptq_opts o = opts ? *opts : marlin_gptq_default_opts();
    marlin_gptq_result R_local;
    marlin_gptq_result *R = res ? res : &R_local;
    memset(R, 0, sizeof *R);
    R->loss = -1;
    R->out_rel_err = -1;
    double t_start = marlin_now();
    marlin_status st;
    int64_t G = 0; /* set by marlin_quant_num_groups */

    /* ---- arguments */
    if (!w || !h || !q || !scales)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "gptq: NULL buffer");
    if (!mq_dtype_ok(dtype))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: weight dtype %d: need F32, F16 or BF16",
                           (int)dtype);
    if (n <= 0 || n > INT_MAX || k > INT_MAX)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: shape (%lld, %lld) out of range",
                           (long long)n, (long long)k);
    st = marlin_quant_num_groups(k, o.group_size, &G, err);
    if (st != MARLIN_OK) return st;
    const bool grouped = o.group_size != -1;
    const int64_t g = grouped ? o.group_size : k;
    if (o.prune != MARLIN_PRUNE_NONE && o.prune != MARLIN_PRUNE_MAGNITUDE &&
        o.prune != MARLIN_PRUNE_SPARSEGPT)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: unknown prune mode %d", (int)o.prune);
    const bool sparse = o.prune != MARLIN_PRUNE_NONE;
    if (o.masks != MARLIN_MASKS_ADAPTIVE && o.masks != MARLIN_MASKS_GROUP_START)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: unknown SparseGPT mask mode %d", (int)o.masks);
    if (sparse && o.act_order)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: act-order is incompatible with 2:4 pruning "
                           "(the runs of 4 are defined in the original column "
                           "order)");
    if (sparse && (k % 4 != 0 || g % 4 != 0))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: 2:4 needs k (%lld) and the group size (%lld) "
                           "to be multiples of 4",
                           (long long)k, (long long)g);
    if (!(o.damp >= 0) || !(o.damp_step > 0) || !(o.damp_max >= o.damp) ||
        !isfinite(o.damp_max))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: damping %g, step %g, max %g: need 0 <= damp "
                           "<= max and step > 0",
                           o.damp, o.damp_step, o.damp_max);
    /* damp, damp + step, ... <= damp_max (with slack for decimal steps) */
    double n_attempts_d = floor((o.damp_max - o.damp) / o.damp_step + 1e-9) + 1;
    if (n_attempts_d > MARLIN_GPTQ_MAX_STEPS - 2)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: %g damping steps: at most %d",
                           n_attempts_d, MARLIN_GPTQ_MAX_STEPS - 2);
    const int n_attempts = (int)n_attempts_d;
    if (o.blocksize <= 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq: block size %lld: must be positive",
                           (long long)o.blocksize);

    gptq_state S;
    memset(&S, 0, sizeof S);
    S.n = n;
    S.k = k;
    S.g = g;
    S.grouped = grouped;
    S.B = choose_block(o.blocksize, grouped, g, sparse);
    S.clip = o.clip;
    S.act_order = o.act_order;
    S.prune = o.prune;
    S.adaptive = o.masks == MARLIN_MASKS_ADAPTIVE;
    S.w = w;
    S.dtype = dtype;
    S.h = h;
    S.q = q;
    S.scales = scales;
    S.nthreads = o.threads > 0 ? o.threads : marlin_cpu_count();
    const size_t nk = (size_t)n * (size_t)k, kk = (size_t)k * (size_t)k;

    S.fail = calloc((size_t)S.nthreads, sizeof *S.fail);
    S.diag = malloc((size_t)k * sizeof(float));
    S.dead = calloc((size_t)k, 1);
    S.dinv2 = malloc((size_t)k * sizeof(float));
    S.cur_s = calloc((size_t)n, sizeof(float));
    S.rowloss = calloc((size_t)n, sizeof(double));
    S.rowd2 = calloc((size_t)n, sizeof(double));
    S.ws_per_thread = scratch_floats(k, g, S.B);
    S.ws = malloc((size_t)S.nthreads * S.ws_per_thread * sizeof(float));
    S.W = malloc(nk * sizeof(float));
    S.U = malloc(kk * sizeof(float));
    S.ErrT = malloc((size_t)n * (size_t)S.B * sizeof(float));
    S.t_col = calloc((size_t)S.nthreads, sizeof(double));
    S.t_gemm = calloc((size_t)S.nthreads, sizeof(double));
    float *floor_abs = NULL;
    if (!S.fail || !S.diag || !S.dead || !S.dinv2 || !S.cur_s || !S.rowloss ||
        !S.rowd2 || !S.ws || !S.W || !S.U || !S.ErrT || !S.t_col || !S.t_gemm)
        goto nomem;
    if (sparse && !(S.keep = malloc(nk))) goto nomem;
    if (o.act_order) {
        S.perm = malloc((size_t)k * sizeof(int64_t));
        S.iperm = malloc((size_t)k * sizeof(int64_t));
        S.sval = malloc((size_t)G * (size_t)n * sizeof(float));
        if (!S.perm || !S.iperm || !S.sval) goto nomem;
    }

    /* ---- H: finite, dead columns */
    for (int64_t i = 0; i < k; i++) {
        const float *hr = h + (size_t)i * (size_t)k;
        int64_t bad = mq_find_nonfinite(hr + i, k - i);
        if (bad >= 0) {
            st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                             "gptq: H[%lld][%lld] is %s", (long long)i,
                             (long long)(i + bad),
                             isnan(hr[i + bad]) ? "NaN" : "infinite");
            goto done;
        }
        S.diag[i] = hr[i];
        S.dead[i] = hr[i] == 0.0f;
        R->dead_cols += S.dead[i];
    }
    double mean = 0, mean_abs = 0;
    for (int64_t i = 0; i < k; i++) {
        float d = S.diag[i] == 0.0f ? 1.0f : S.diag[i];
        mean += d;
        mean_abs += fabs((double)d);
    }
    mean /= (double)k;
    mean_abs /= (double)k;
    /* for a valid (PSD) H both are mean(diag H); an indefinite one with a
     * negative mean still gets a positive damping unit */
    const double unit = mean > 0 ? mean : mean_abs;

    /* ---- W: load, reject NaN/Inf, zero dead columns */
    marlin_parallel_for(n, 16, S.nthreads, load_chunk, &S);
    const gptq_fail *f = first_fail(&S);
    if (f) {
        float v;
        float *row = S.W + (size_t)f->row * (size_t)k;
        mq_load_row(w, dtype, k, f->row, row);
        v = row[f->where];
        st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                         "row %lld, column %lld: weight is %s",
                         (long long)f->row, (long long)f->where,
                         isnan(v) ? "NaN" : "infinite");
        goto done;
    }
    for (int64_t i = 0; i < k; i++)
        if (S.diag[i] == 0.0f) S.diag[i] = 1.0f; /* H_jj = 1 (dead) */

    /* ---- act order: decreasing diag(H), stable */
    if (o.act_order) {
        for (int64_t i = 0; i < k; i++) S.perm[i] = i;
        qsort_r(S.perm, (size_t)k, sizeof(int64_t), cmp_desc, S.diag);
        for (int64_t i = 0; i < k; i++) S.iperm[S.perm[i]] = i;
    }

    /* ---- U = chol(H^-1) upper, with damping escalation */
    double t0 = marlin_now();
    bool ok = false;
    double rel = o.damp;
    for (int a = 0; a < n_attempts && !ok; a++) {
        rel = o.damp + a * o.damp_step;
        int64_t col;
        marlin_gptq_fail fl = factor_once(&S, (float)(rel * unit), NULL, &col,
                                          &st);
        if (st != MARLIN_OK) goto nomem;
        R->flops_factor += fl == MARLIN_GPTQ_OK ? 2.0 * (double)k * k * k / 3
                                                : 0;
        log_step(R, MARLIN_GPTQ_STEP_DAMP, fl, rel, rel * unit, col);
        if (fl == MARLIN_GPTQ_OK) {
            ok = true;
            R->damp_rel = rel;
            R->lambda = rel * unit;
        }
    }
    if (!ok) {
        /* diagonal floor: strict diagonal dominance => SPD (Gershgorin) */
        floor_abs = calloc((size_t)k, sizeof(float));
        if (!floor_abs) goto nomem;
        double *acc = calloc((size_t)k, sizeof(double));
        if (!acc) goto nomem;
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = i + 1; j < k; j++) {
                double v = fabs((double)h[(size_t)i * (size_t)k + (size_t)j]);
                acc[i] += v;
                acc[j] += v;
            }
        for (int64_t i = 0; i < k; i++) floor_abs[i] = (float)acc[i];
        free(acc);
        double frel = rel > 0.01 ? rel : 0.01;
        int64_t col;
        marlin_gptq_fail fl = factor_once(&S, (float)(frel * unit), floor_abs,
                                          &col, &st);
        if (st != MARLIN_OK) goto nomem;
        log_step(R, MARLIN_GPTQ_STEP_FLOOR, fl, frel, frel * unit, col);
        if (fl == MARLIN_GPTQ_OK) {
            ok = true;
            R->floor_used = true;
            R->damp_rel = frel;
            R->lambda = frel * unit;
            R->flops_factor += 2.0 * (double)k * k * k / 3;
        }
    }
    R->t_factor = marlin_now() - t0;

    if (!ok) {
        /* RTN for the whole layer, on the original weights */
        log_step(R, MARLIN_GPTQ_STEP_RTN, MARLIN_GPTQ_OK, 0, 0, -1);
        R->fallback_rtn = true;
        marlin_rtn_opts ro = marlin_rtn_default_opts();
        ro.group_size = o.group_size;
        ro.clip = o.clip;
        ro.prune = sparse ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
        ro.threads = o.threads;
        st = marlin_rtn_quantize(w, dtype, n, k, &ro, q, scales, err);
        if (st != MARLIN_OK) goto done;
    } else {
        for (int64_t j = 0; j < k; j++) {
            float u = S.U[(size_t)j * (size_t)k + (size_t)j];
            S.dinv2[j] = 1.0f / (u * u);
        }
        /* ---- static scales (act order) / magnitude masks */
        if (o.act_order || o.prune == MARLIN_PRUNE_MAGNITUDE) {
            marlin_parallel_for(n, 16, S.nthreads, prep_chunk, &S);
            if ((f = first_fail(&S)) != NULL) {
                st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                                 "row %lld, group %lld: scale 2*absmax/15 "
                                 "overflows fp16 (max 65504)",
                                 (long long)f->row, (long long)f->where);
                goto done;
            }
        }
        /* ---- the row phase (one thread of OpenBLAS per caller) */
        const int64_t panels = (n + MQ_PANEL - 1) / MQ_PANEL;
        const int blas_threads = openblas_get_num_threads();
        double tr = marlin_now();
        openblas_set_num_threads(1);
        marlin_parallel_for(panels, 1, S.nthreads, solve_panels, &S);
        openblas_set_num_threads(blas_threads);
        R->t_rows = marlin_now() - tr;
        for (int i = 0; i < S.nthreads; i++) {
            R->t_columns += S.t_col[i] / S.nthreads;
            R->t_gemm += S.t_gemm[i] / S.nthreads;
        }
        if ((f = first_fail(&S)) != NULL) {
            st = marlin_fail(err, MARLIN_ERR_NUMERIC,
                             "row %lld, group %lld: scale 2*absmax/15 of "
                             "the error-updated weights overflows fp16",
                             (long long)f->row, (long long)f->where);
            goto done;
        }
        for (int64_t i1 = 0; i1 < k; i1 += S.B) {
            int64_t i2 = i1 + S.B < k ? i1 + S.B : k, bw = i2 - i1;
            R->flops_update += (double)n * (double)bw * (double)(bw - 1) +
                               2.0 * (double)n * (double)bw * (double)(k - i2);
        }
        double sum = 0;
        for (int64_t r = 0; r < n; r++) sum += S.rowloss[r];
        R->loss = sum / 2;
    }

    /* ---- relative output error on the calibration inputs */
    if (o.output_error) {
        double to = marlin_now();
        /* the original rows into S.W (free now), |D|^2 per row */
        marlin_parallel_for(n, 16, S.nthreads, reload_chunk, &S);
        float *gram = S.U; /* free now too */
        mq_gram_add(gram, k, S.W, n, k, true);
        double den = mq_gram_dot(h, gram, k), num;
        if (ok && !R->floor_used) {
            /* trace(D (H + lambda I) D^T) = 2 loss (marlin_quant.h) */
            double d2 = 0;
            for (int64_t r = 0; r < n; r++) d2 += S.rowd2[r];
            num = 2 * R->loss - R->lambda * d2;
        } else {
            for (int64_t r = 0; r < n; r++) {
                float *x = S.W + (size_t)r * (size_t)k;
                const uint8_t *qr = q + (size_t)r * (size_t)k;
                for (int64_t t = 0; t < G; t++) {
                    float sc = marlin_half_to_float(
                        scales[(size_t)t * (size_t)n + (size_t)r]);
                    for (int64_t c = t * g; c < (t + 1) * g; c++)
                        x[c] -= (float)((int)qr[c] - MARLIN_QUANT_ZERO) * sc;
                }
            }
            mq_gram_add(gram, k, S.W, n, k, true);
            num = mq_gram_dot(h, gram, k);
        }
        if (den > 0)
            R->out_rel_err = num > 0 ? sqrt(num / den) : 0.0;
        else
            R->out_rel_err = num == 0 ? 0.0 : -1.0;
        R->t_outerr = marlin_now() - to;
    }
    st = MARLIN_OK;
    goto done;

nomem:
    st = marlin_fail(err, MARLIN_ERR_NOMEM,
                     "gptq: out of memory for a (%lld, %lld) layer",
                     (long long)n, (long long)k);
done:
    R->t_total = marlin_now() - t_start;
    free(floor_abs);
    free(S.fail);
    free(S.diag);
    free(S.dead);
    free(S.dinv2);
    free(S.cur_s);
    free(S.rowloss);
    free(S.rowd2);
    free(S.ws);
    free(S.W);
    free(S.U);
    free(S.ErrT);
    free(S.t_col);
    free(S.t_gemm);
    free(S.keep);
    free(S.perm);
    free(S.iperm);
    free(S.sval);
    return st;
}
