/*
 * block.c - one Llama decoder block forward in fp32 on the CPU: RMSNorm,
 * q/k/v projections, RoPE (rotate_half), causal grouped-query attention,
 * o_proj + residual, RMSNorm, SwiGLU MLP + residual; with taps on the inputs
 * of every linear group for GPTQ Hessians.
 *
 * Spec: transformers models/llama/modeling_llama.py (LlamaRMSNorm,
 * apply_rotary_pos_emb/rotate_half, eager_attention_forward with
 * repeat_kv, LlamaMLP, LlamaDecoderLayer); see marlin_model.h for the
 * equations.
 *
 * Where the time goes: the seven projections are sgemm over all T = nseq*L
 * rows at once, cut in 512x512 output tiles; attention is one sgemm pair
 * per (sequence, head, 64-query block); both spread over
 * marlin_parallel_for with OpenBLAS at one thread, so results do not depend
 * on the thread count (model_internal.h). The row kernels are O(T*hidden)
 * and split by rows.
 */
#include "model_internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- kernels */

void marlin_rmsnorm_rows(const float *x, const float *w, float *out,
                         int64_t rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *o = out + r * dim;
        /* HF takes the mean of x^2 in fp32; a double sum is at least as
         * accurate and keeps the result independent of dim's size. */
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / (double)dim);
        float inv = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < dim; i++) o[i] = w[i] * (xr[i] * inv);
    }
}

void marlin_rope_tables(const float *inv_freq, int64_t head_dim,
                        int64_t seqlen, float *cos_t, float *sin_t) {
    int64_t half = head_dim / 2;
    for (int64_t p = 0; p < seqlen; p++) {
        for (int64_t j = 0; j < half; j++) {
            /* fp32 product first, as HF's (inv_freq @ position_ids) in fp32:
             * at position 4000 the angle's fp32 rounding is what the
             * reference sees, so we must see it too. */
            float ang = inv_freq[j] * (float)p;
            cos_t[p * half + j] = (float)cos((double)ang);
            sin_t[p * half + j] = (float)sin((double)ang);
        }
    }
}

/* Rotates rows [r0, r1) of x (row r is at position r % seqlen). */
static void rope_rows(float *x, int64_t r0, int64_t r1, int64_t seqlen,
                      int64_t nheads, int64_t hd, const float *cos_t,
                      const float *sin_t) {
    int64_t half = hd / 2, width = nheads * hd;
    for (int64_t r = r0; r < r1; r++) {
        int64_t p = r % seqlen;
        const float *c = cos_t + p * half, *s = sin_t + p * half;
        for (int64_t h = 0; h < nheads; h++) {
            float *v = x + r * width + h * hd;
            for (int64_t j = 0; j < half; j++) {
                float a = v[j], b = v[j + half];
                /* q*cos + rotate_half(q)*sin, rotate_half = (-b, a) */
                v[j] = a * c[j] - b * s[j];
                v[j + half] = b * c[j] + a * s[j];
            }
        }
    }
}

void marlin_rope_apply(float *x, int64_t nseq, int64_t seqlen, int64_t nheads,
                       int64_t head_dim, const float *cos_t,
                       const float *sin_t) {
    rope_rows(x, 0, nseq * seqlen, seqlen, nheads, head_dim, cos_t, sin_t);
}

void marlin_swiglu(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        /* x * sigmoid(x); for x -> -inf, expf overflows to inf and the
         * quotient is -0, as torch's silu. */
        g[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

int marlin_blas_single_begin(void) {
    int prev = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return prev;
}

void marlin_blas_single_end(int prev) {
    if (prev >= 1) openblas_set_num_threads(prev);
}

typedef struct lin_job {
    const float *x, *w, *b;
    float *y;
    int64_t rows, k, n, tiles_n;
} lin_job;

static void lin_range(void *arg, int64_t begin, int64_t end, int tid) {
    const lin_job *j = arg;
    (void)tid;
    for (int64_t t = begin; t < end; t++) {
        int64_t r0 = (t / j->tiles_n) * MARLIN_LINEAR_TILE;
        int64_t c0 = (t % j->tiles_n) * MARLIN_LINEAR_TILE;
        int64_t nr = j->rows - r0 < MARLIN_LINEAR_TILE ? j->rows - r0
                                                       : MARLIN_LINEAR_TILE;
        int64_t nc = j->n - c0 < MARLIN_LINEAR_TILE ? j->n - c0
                                                    : MARLIN_LINEAR_TILE;
        float *y = j->y + r0 * j->n + c0;
        float beta = 0.0f;
        if (j->b) {
            /* F.linear = addmm(b, x, W^T): seed y with the bias, beta 1 */
            for (int64_t r = 0; r < nr; r++)
                memcpy(y + r * j->n, j->b + c0, (size_t)nc * sizeof(float));
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nc,
                    (int)j->k, 1.0f, j->x + r0 * j->k, (int)j->k,
                    j->w + c0 * j->k, (int)j->k, beta, y, (int)j->n);
    }
}

void marlin_linear_fwd(const float *x, int64_t rows, int64_t k,
                       const float *w, const float *b, int64_t n, float *y,
                       int threads) {
    /* 512x512 tiles: packing costs (512+512)*k floats per 2*512*512*k
     * flops, under 1%; measured on 2 cores as fast as OpenBLAS's own
     * threading (docs/perf.md "model forward"). */
    lin_job j = {.x = x, .w = w, .b = b, .y = y, .rows = rows, .k = k, .n = n,
                 .tiles_n = (n + MARLIN_LINEAR_TILE - 1) / MARLIN_LINEAR_TILE};
    int64_t tiles = ((rows + MARLIN_LINEAR_TILE - 1) / MARLIN_LINEAR_TILE) *
                    j.tiles_n;
    (void)marlin_parallel_for(tiles, 1, threads, lin_range, &j);
}

/* -------------------------------------------------------------- attention */

typedef struct attn_job {
    const float *q, *k, *v;
    float *out;
    int64_t seqlen, heads, group, hd, q_dim, kv_dim, nblk;
    float scale;
    float *scratch; /* [threads][QBLOCK * seqlen] */
} attn_job;

static void attn_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_job *j = arg;
    float *S = j->scratch + (int64_t)tid * MARLIN_ATTN_QBLOCK * j->seqlen;
    for (int64_t it = begin; it < end; it++) {
        /* item = (sequence, head, query block), query block fastest */
        int64_t qb = it % j->nblk;
        int64_t h = (it / j->nblk) % j->heads;
        int64_t s = it / (j->nblk * j->heads);
        int64_t r0 = qb * MARLIN_ATTN_QBLOCK;
        int64_t r1 = r0 + MARLIN_ATTN_QBLOCK;
        if (r1 > j->seqlen) r1 = j->seqlen;
        int64_t nb = r1 - r0, nk = r1; /* causal: keys 0..r1-1 suffice */
        int64_t base = s * j->seqlen;
        int64_t g = h / j->group; /* repeat_kv: kv head of query head h */
        const float *Q = j->q + (base + r0) * j->q_dim + h * j->hd;
        const float *K = j->k + base * j->kv_dim + g * j->hd;
        const float *V = j->v + base * j->kv_dim + g * j->hd;
        float *O = j->out + (base + r0) * j->q_dim + h * j->hd;

        /* S[nb, nk] = scale * Q K^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk,
                    (int)j->hd, j->scale, Q, (int)j->q_dim, K, (int)j->kv_dim,
                    0.0f, S, (int)nk);
        for (int64_t i = 0; i < nb; i++) {
            float *row = S + i * nk;
            int64_t last = r0 + i; /* keys <= the query's own position */
            float mx = row[0];
            for (int64_t c = 1; c <= last; c++) mx = row[c] > mx ? row[c] : mx;
            float sum = 0.0f;
            for (int64_t c = 0; c <= last; c++) {
                row[c] = expf(row[c] - mx);
                sum += row[c];
            }
            float inv = 1.0f / sum;
            for (int64_t c = 0; c <= last; c++) row[c] *= inv;
            /* masked keys get probability 0 (HF adds -inf, exp gives 0) */
            for (int64_t c = last + 1; c < nk; c++) row[c] = 0.0f;
        }
        /* O[nb, hd] = P V */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb,
                    (int)j->hd, (int)nk, 1.0f, S, (int)nk, V, (int)j->kv_dim,
                    0.0f, O, (int)j->q_dim);
    }
}

marlin_status marlin_attention(const float *q, const float *k, const float *v,
                               float *out, int64_t nseq, int64_t seqlen,
                               int64_t heads, int64_t kv_heads,
                               int64_t head_dim, float scale, int threads,
                               float *scratch) {
    if (threads < 1) threads = 1;
    attn_job j = {
        .q = q, .k = k, .v = v, .out = out, .seqlen = seqlen, .heads = heads,
        .group = heads / kv_heads, .hd = head_dim, .q_dim = heads * head_dim,
        .kv_dim = kv_heads * head_dim,
        .nblk = (seqlen + MARLIN_ATTN_QBLOCK - 1) / MARLIN_ATTN_QBLOCK,
        .scale = scale, .scratch = scratch};
    int64_t items = nseq * heads * j.nblk;
    float *own = NULL;
    if (!scratch) {
        own = malloc((size_t)threads * MARLIN_ATTN_QBLOCK * (size_t)seqlen *
                     sizeof(float));
        if (!own) return MARLIN_ERR_NOMEM;
        j.scratch = own;
    }
    /* parallel_for hands out thread indexes below min(threads, items) */
    /* A thread that cannot be started has its chunk run on the caller
     * (common/threads.c), so the output is complete either way: only the
     * speed suffers, and the status is not an error of this call. */
    (void)marlin_parallel_for(items, 1, threads, attn_range, &j);
    free(own);
    return MARLIN_OK;
}

/* ------------------------------------------------------ parallel row ops */

/* The row kernels run by run_rows (a mode enum, not a magic int). */
typedef enum rows_op { OP_NORM, OP_ROPE, OP_SWIGLU, OP_ADD } rows_op;

typedef struct rows_job {
    const marlin_llama *m;
    rows_op op;
    const float *a, *w;
    float *b, *c;
    int64_t width, seqlen, nheads;
    const float *cos_t, *sin_t;
} rows_job;

static void rows_range(void *arg, int64_t r0, int64_t r1, int tid) {
    const rows_job *j = arg;
    (void)tid;
    int64_t w = j->width;
    switch (j->op) {
    case OP_NORM: /* c = rmsnorm(a) * w */
        marlin_rmsnorm_rows(j->a + r0 * w, j->w, j->c + r0 * w, r1 - r0, w,
                            j->m->eps);
        break;
    case OP_ROPE: /* b rotated in place */
        rope_rows(j->b, r0, r1, j->seqlen, j->nheads, j->m->head_dim,
                  j->cos_t, j->sin_t);
        break;
    case OP_SWIGLU: /* b = silu(b) * a */
        marlin_swiglu(j->b + r0 * w, j->a + r0 * w, (r1 - r0) * w);
        break;
    case OP_ADD: /* c = a + b */
        for (int64_t i = r0 * w; i < r1 * w; i++) j->c[i] = j->a[i] + j->b[i];
        break;
    }
}

static void run_rows(const marlin_llama *m, rows_job *j, int64_t rows) {
    j->m = m;
    /* chunks of at least 16 rows keep thread start-up (tens of
     * microseconds) small against the work */
    (void)marlin_parallel_for(rows, 16, m->threads, rows_range, j);
}

/* ------------------------------------------------------------ the block */

static marlin_status tap(const marlin_taps *t, int64_t layer,
                         marlin_tap_point where, const float *x, int64_t rows,
                         int64_t cols, bool *stop, marlin_error *err) {
    *stop = false;
    if (!t || !t->fn) return MARLIN_OK;
    marlin_status st = t->fn(t->user, layer, where, x, rows, cols, err);
    if (st != MARLIN_OK) return st;
    *stop = t->stop_early && t->stop_after == where;
    return MARLIN_OK;
}

marlin_status marlin_llama_block_forward(marlin_llama *m, int64_t layer,
                                         const marlin_block_weights *w,
                                         float *hidden, int64_t nseq,
                                         int64_t seqlen,
                                         const marlin_taps *taps,
                                         marlin_error *err) {
    marlin_status st = MARLIN_OK;
    bool stop = false;
    if (!m || !w || !hidden || nseq < 1 || seqlen < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "layer %lld: block forward needs a model, weights, "
                           "hidden states and nseq, seqlen >= 1",
                           (long long)layer);
    if (!w->input_norm || !w->post_norm)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "layer %lld: missing norm weights", (long long)layer);
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        if (!w->w[l])
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "layer %lld: no weight for %s", (long long)layer,
                               marlin_linear_name((marlin_linear)l));
        if (m->bias[l] && !w->b[l])
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "layer %lld: %s needs a bias (config) but none "
                               "was given", (long long)layer,
                               marlin_linear_name((marlin_linear)l));
    }
    const int64_t T = nseq * seqlen, H = m->hidden, NI = m->inter;
    const int64_t QD = m->q_dim, KD = m->kv_dim, half = m->head_dim / 2;
    /* sgemm takes int dimensions; the widest product dimension is T. */
    if (nseq > INT_MAX / seqlen)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "layer %lld: %lld x %lld tokens exceed the sgemm "
                           "row limit %d", (long long)layer, (long long)nseq,
                           (long long)seqlen, INT_MAX);

    /* One workspace: xn [T,H] (reused for o_proj out, hn, down out),
     * h [T,H], q, att [T,QD], k, v [T,KD], gate, up [T,NI], cos/sin
     * [L, hd/2], attention scores [threads, QBLOCK, L]. */
    uint64_t nfl = 0, part, tail;
    bool ok = marlin_mul_u64((uint64_t)T,
                             (uint64_t)(2 * H + 2 * QD + 2 * KD + 2 * NI),
                             &part) &&
              marlin_mul_u64((uint64_t)seqlen,
                             2 * (uint64_t)half +
                                 (uint64_t)m->threads * MARLIN_ATTN_QBLOCK,
                             &tail) &&
              marlin_add_u64(part, tail, &nfl) &&
              nfl <= SIZE_MAX / sizeof(float);
    if (ok && nfl > m->ws_floats) {
        free(m->ws);
        m->ws_floats = 0;
        m->ws = malloc((size_t)nfl * sizeof(float));
        if (m->ws) m->ws_floats = nfl;
    }
    if (!ok || !m->ws)
        return marlin_fail(err, MARLIN_ERR_NOMEM,
                           "layer %lld: cannot allocate %llu floats of "
                           "activations for %lld tokens", (long long)layer,
                           (unsigned long long)nfl, (long long)T);
    float *xn = m->ws, *hb = xn + T * H, *q = hb + T * H, *att = q + T * QD;
    float *k = att + T * QD, *v = k + T * KD, *gate = v + T * KD;
    float *up = gate + T * NI, *cos_t = up + T * NI;
    float *sin_t = cos_t + seqlen * half, *scores = sin_t + seqlen * half;

    int blas_prev = marlin_blas_single_begin();

    /* --- attention half --- */
    rows_job j = {.op = OP_NORM, .a = hidden, .w = w->input_norm, .c = xn,
                  .width = H};
    run_rows(m, &j, T);
    st = tap(taps, layer, MARLIN_TAP_QKV, xn, T, H, &stop, err);
    if (st != MARLIN_OK || stop) goto out;

    marlin_linear_fwd(xn, T, H, w->w[MARLIN_Q_PROJ], w->b[MARLIN_Q_PROJ], QD,
                      q, m->threads);
    marlin_linear_fwd(xn, T, H, w->w[MARLIN_K_PROJ], w->b[MARLIN_K_PROJ], KD,
                      k, m->threads);
    marlin_linear_fwd(xn, T, H, w->w[MARLIN_V_PROJ], w->b[MARLIN_V_PROJ], KD,
                      v, m->threads);

    marlin_rope_tables(m->inv_freq, m->head_dim, seqlen, cos_t, sin_t);
    j = (rows_job){.op = OP_ROPE, .b = q, .seqlen = seqlen, .nheads = m->heads,
                   .cos_t = cos_t, .sin_t = sin_t};
    run_rows(m, &j, T);
    j.b = k;
    j.nheads = m->kv_heads;
    run_rows(m, &j, T);

    st = marlin_attention(q, k, v, att, nseq, seqlen, m->heads, m->kv_heads,
                          m->head_dim, 1.0f / sqrtf((float)m->head_dim),
                          m->threads, scores);
    if (st != MARLIN_OK) {
        st = marlin_fail(err, st, "layer %lld: attention scratch allocation "
                         "failed", (long long)layer);
        goto out;
    }
    st = tap(taps, layer, MARLIN_TAP_O, att, T, QD, &stop, err);
    if (st != MARLIN_OK || stop) goto out;

    marlin_linear_fwd(att, T, QD, w->w[MARLIN_O_PROJ], w->b[MARLIN_O_PROJ], H,
                      xn, m->threads);
    st = tap(taps, layer, MARLIN_TAP_ATTN_OUT, xn, T, H, &stop, err);
    if (st != MARLIN_OK || stop) goto out;
    j = (rows_job){.op = OP_ADD, .a = hidden, .b = xn, .c = hb, .width = H};
    run_rows(m, &j, T);

    /* --- MLP half --- */
    j = (rows_job){.op = OP_NORM, .a = hb, .w = w->post_norm, .c = xn,
                   .width = H};
    run_rows(m, &j, T);
    st = tap(taps, layer, MARLIN_TAP_GATE_UP, xn, T, H, &stop, err);
    if (st != MARLIN_OK || stop) goto out;

    marlin_linear_fwd(xn, T, H, w->w[MARLIN_GATE_PROJ], w->b[MARLIN_GATE_PROJ],
                      NI, gate, m->threads);
    marlin_linear_fwd(xn, T, H, w->w[MARLIN_UP_PROJ], w->b[MARLIN_UP_PROJ], NI,
                      up, m->threads);
    j = (rows_job){.op = OP_SWIGLU, .a = up, .b = gate, .width = NI};
    run_rows(m, &j, T);
    st = tap(taps, layer, MARLIN_TAP_DOWN, gate, T, NI, &stop, err);
    if (st != MARLIN_OK || stop) goto out;

    marlin_linear_fwd(gate, T, NI, w->w[MARLIN_DOWN_PROJ],
                      w->b[MARLIN_DOWN_PROJ], H, xn, m->threads);
    st = tap(taps, layer, MARLIN_TAP_MLP_OUT, xn, T, H, &stop, err);
    if (st != MARLIN_OK || stop) goto out;

    /* Only now is the caller's buffer written: an early stop or a failed
     * tap leaves it as it was. */
    j = (rows_job){.op = OP_ADD, .a = hb, .b = xn, .c = hidden, .width = H};
    run_rows(m, &j, T);

out:
    marlin_blas_single_end(blas_prev);
    return st;
}
