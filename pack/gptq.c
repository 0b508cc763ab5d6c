/*
 * gptq.c - GPTQ v1 tensors (qweight, qzeros, scales, g_idx) and their
 * inverse, plus act-order (desc_act) g_idx analysis and the column gather
 * that turns an act-order checkpoint into Marlin-packable codes.
 * Spec: docs/reference/marlin-format.md 5.2 and 5.4 (pack_rows), design.md
 * "Formats"; the layouts are documented in marlin_pack.h section 1.
 *
 * qweight word (r, c) = the 8 codes q[c][8r .. 8r+7], lowest k in the lowest
 * nibble. The codes of one word are 8 consecutive bytes of one row of q, so
 * a word is one unaligned 64-bit load folded into nibbles
 * (marlin_nib_pack8). Threads own 8-column slices; inside a slice we walk
 * 64 columns x 64 k at a time so that input rows are read a cache line at a
 * time and every qweight row segment is written contiguously.
 */
#include "pack_internal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#define COLS_BLOCK 64 /* output columns per inner block */
#define R_STEP 8      /* qweight rows per step: 64 input bytes per column */

marlin_status marlin_pack_gptq_check_shape(int64_t n, int64_t k,
                                           int64_t group, marlin_error *err) {
    if (n <= 0 || k <= 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "gptq: shape n=%" PRId64 " k=%" PRId64
                           " must be positive",
                           n, k);
    if (k % 8 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "gptq: k = %" PRId64
                           " (in_features) is not a multiple of 8 "
                           "(rule: k %% 8 == 0, 8 codes per qweight word)",
                           k);
    if (n % 8 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "gptq: n = %" PRId64
                           " (out_features) is not a multiple of 8 "
                           "(rule: n %% 8 == 0, 8 zero points per qzeros "
                           "word)",
                           n);
    if (k > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "gptq: k = %" PRId64 " does not fit g_idx (I32)",
                           k);
    return marlin_pack_check_group("gptq", k, group, 1, err);
}

typedef struct gptq_job {
    const uint8_t *q_in;
    uint8_t *q_out;
    const uint32_t *w_in;
    uint32_t *w_out;
    int64_t n, k;
    atomic_int bad;
} gptq_job;

static void gptq_pack_range(void *arg, int64_t u_begin, int64_t u_end,
                            int thread_index) {
    gptq_job *job = arg;
    const int64_t n = job->n, k = job->k, rows = k / 8;
    uint64_t or_all = 0;
    (void)thread_index;
    for (int64_t c0 = 8 * u_begin; c0 < 8 * u_end; c0 += COLS_BLOCK) {
        int64_t c1 = c0 + COLS_BLOCK < 8 * u_end ? c0 + COLS_BLOCK : 8 * u_end;
        for (int64_t r0 = 0; r0 < rows; r0 += R_STEP) {
            int64_t nr = rows - r0 < R_STEP ? rows - r0 : R_STEP;
            for (int64_t c = c0; c < c1; c++) {
                const uint8_t *p = job->q_in + c * k + 8 * r0;
                uint32_t *w = job->w_out + r0 * n + c;
                for (int64_t t = 0; t < nr; t++) {
                    uint64_t x = marlin_ld64(p + 8 * t);
                    or_all |= x;
                    w[t * n] = marlin_nib_pack8(x);
                }
            }
        }
    }
    if (or_all & MARLIN_NIB_HI)
        atomic_store_explicit(&job->bad, 1, memory_order_relaxed);
}

static void gptq_unpack_range(void *arg, int64_t u_begin, int64_t u_end,
                              int thread_index) {
    gptq_job *job = arg;
    const int64_t n = job->n, k = job->k, rows = k / 8;
    (void)thread_index;
    for (int64_t c0 = 8 * u_begin; c0 < 8 * u_end; c0 += COLS_BLOCK) {
        int64_t c1 = c0 + COLS_BLOCK < 8 * u_end ? c0 + COLS_BLOCK : 8 * u_end;
        for (int64_t r0 = 0; r0 < rows; r0 += R_STEP) {
            int64_t nr = rows - r0 < R_STEP ? rows - r0 : R_STEP;
            for (int64_t c = c0; c < c1; c++) {
                uint8_t *p = job->q_out + c * k + 8 * r0;
                const uint32_t *w = job->w_in + r0 * n + c;
                for (int64_t t = 0; t < nr; t++)
                    marlin_st64(p + 8 * t, marlin_nib_unpack8(w[t * n]));
            }
        }
    }
}

marlin_status marlin_pack_gptq(const uint8_t *q, const uint16_t *s,
                               int64_t n, int64_t k, int64_t group,
                               int threads, uint32_t *qweight,
                               uint32_t *qzeros, uint16_t *scales,
                               int32_t *g_idx, marlin_error *err) {
    marlin_status st = marlin_pack_gptq_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if ((qweight && !q) || (scales && !s))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq pack: qweight needs codes and scales needs "
                           "s (got NULL)");
    const int64_t G = marlin_pack_groups(k, group);
    if (qweight) {
        gptq_job job = {.q_in = q, .w_out = qweight, .n = n, .k = k};
        atomic_init(&job.bad, 0);
        /* A thread that fails to start has its slices run on the caller:
         * same output, so the status is not an error here. */
        (void)marlin_parallel_for(n / 8, marlin_pack_grain(8 * k), threads,
                                  gptq_pack_range, &job);
        if (atomic_load(&job.bad))
            return marlin_pack_bad_code_error("gptq pack", q, n, k, err);
    }
    if (qzeros)
        for (int64_t i = 0; i < G * (n / 8); i++)
            qzeros[i] = MARLIN_GPTQ_V1_ZERO_WORD;
    if (scales) memcpy(scales, s, (size_t)(G * n) * sizeof *scales);
    if (g_idx) {
        const int64_t g = group == -1 ? k : group;
        for (int64_t c = 0; c < k; c++) g_idx[c] = (int32_t)(c / g);
    }
    return MARLIN_OK;
}

marlin_status marlin_unpack_gptq(const uint32_t *qweight,
                                 const uint32_t *qzeros,
                                 const uint16_t *scales, int64_t n,
                                 int64_t k, int64_t group, int threads,
                                 uint8_t *q, uint16_t *s, marlin_error *err) {
    marlin_status st = marlin_pack_gptq_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!qweight || !qzeros || !q || (!s) != (!scales))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq unpack: NULL qweight/qzeros/codes, or only "
                           "one of scales and s given");
    const int64_t G = marlin_pack_groups(k, group), zw = n / 8;
    /* Validate the zero points first: unpacking codes whose zero is not 8
     * would give wrong weights without any error later. */
    for (int64_t i = 0; i < G * zw; i++) {
        uint32_t z = qzeros[i];
        if (z == MARLIN_GPTQ_V1_ZERO_WORD) continue;
        const char *why =
            z == 0x88888888u
                ? "zero point 8 stored as 8: a GPTQ v2 (checkpoint_format "
                  "gptq_v2) checkpoint; convert it to v1 first"
                : "zero points other than 8: an asymmetric (sym=false) "
                  "checkpoint; only symmetric INT4 maps to Marlin";
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "gptq: qzeros[%" PRId64 "][%" PRId64
                           "] = 0x%08" PRIx32
                           ", expected 0x77777777 (symmetric GPTQ v1): %s",
                           i / zw, i % zw, z, why);
    }
    gptq_job job = {.q_out = q, .w_in = qweight, .n = n, .k = k};
    atomic_init(&job.bad, 0);
    (void)marlin_parallel_for(n / 8, marlin_pack_grain(8 * k), threads,
                              gptq_unpack_range, &job);
    if (s) memcpy(s, scales, (size_t)(G * n) * sizeof *s);
    return MARLIN_OK;
}

marlin_status marlin_pack_gptq_g_idx(const int32_t *g_idx, int64_t k,
                                     int64_t group, int32_t *perm,
                                     bool *act_order, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    int64_t *next = NULL;
    if (!g_idx || !act_order)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq g_idx: NULL argument");
    if (k <= 0 || k > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "gptq g_idx: k = %" PRId64 " out of range", k);
    st = marlin_pack_check_group("gptq g_idx", k, group, 1, err);
    if (st != MARLIN_OK) return st;
    const int64_t G = marlin_pack_groups(k, group);
    const int64_t g = k / G;

    int64_t c = 0;
    while (c < k && g_idx[c] == c / g) c++;
    if (c == k) {
        *act_order = false;
        if (perm)
            for (int64_t i = 0; i < k; i++) perm[i] = (int32_t)i;
        return MARLIN_OK;
    }
    if (G == 1)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "gptq g_idx[%" PRId64 "] = %" PRId32
                           ", but a per-channel layer has one group: every "
                           "entry must be 0",
                           c, g_idx[c]);

    /* Act-order: a valid g_idx assigns exactly g columns to every group
     * (GPTQ quantizes the permuted columns in runs of g), which is what lets
     * sorted rows keep the plain grouped scale layout. */
    next = calloc((size_t)G, sizeof *next);
    if (!next) return marlin_fail(err, MARLIN_ERR_NOMEM, "gptq g_idx: calloc");
    for (int64_t i = 0; i < k; i++) {
        int32_t v = g_idx[i];
        if (v < 0 || v >= G) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "gptq g_idx[%" PRId64 "] = %" PRId32
                             " is outside [0, %" PRId64 ") (G = k/g = %" PRId64
                             "/%" PRId64 ")",
                             i, v, G, k, g);
            goto out;
        }
        next[v]++;
    }
    for (int64_t grp = 0; grp < G; grp++) {
        if (next[grp] != g) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "gptq g_idx: group %" PRId64 " has %" PRId64
                             " columns, expected group_size %" PRId64
                             " (act-order rows cannot be sorted into "
                             "contiguous groups)",
                             grp, next[grp], g);
            goto out;
        }
    }
    *act_order = true;
    if (perm) {
        /* Stable counting sort: next[grp] = the next free sorted row. */
        for (int64_t grp = 0; grp < G; grp++) next[grp] = grp * g;
        for (int64_t i = 0; i < k; i++) perm[next[g_idx[i]]++] = (int32_t)i;
    }
out:
    free(next);
    return st;
}

typedef struct permute_job {
    const uint8_t *q;
    uint8_t *out;
    const int32_t *perm;
    int64_t k;
} permute_job;

static void permute_range(void *arg, int64_t r_begin, int64_t r_end,
                          int thread_index) {
    permute_job *job = arg;
    (void)thread_index;
    for (int64_t r = r_begin; r < r_end; r++) {
        const uint8_t *src = job->q + r * job->k;
        uint8_t *dst = job->out + r * job->k;
        for (int64_t j = 0; j < job->k; j++) dst[j] = src[job->perm[j]];
    }
}

marlin_status marlin_pack_permute_k(const uint8_t *q, int64_t n, int64_t k,
                                    const int32_t *perm, int threads,
                                    uint8_t *out, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    uint8_t *seen = NULL;
    if (!q || !perm || !out || q == out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "permute_k: NULL or in-place arguments");
    if (n <= 0 || k <= 0 || k > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "permute_k: shape n=%" PRId64 " k=%" PRId64
                           " out of range",
                           n, k);
    seen = calloc((size_t)k, 1);
    if (!seen) return marlin_fail(err, MARLIN_ERR_NOMEM, "permute_k: calloc");
    for (int64_t j = 0; j < k; j++) {
        int32_t p = perm[j];
        if (p < 0 || p >= k || seen[p]) {
            st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                             "permute_k: perm[%" PRId64 "] = %" PRId32
                             " is %s (perm must be a permutation of "
                             "0..%" PRId64 ")",
                             j, p, (p < 0 || p >= k) ? "out of range"
                                                     : "a repeat",
                             k - 1);
            goto out;
        }
        seen[p] = 1;
    }
    {
        permute_job job = {.q = q, .out = out, .perm = perm, .k = k};
        (void)marlin_parallel_for(n, marlin_pack_grain(k), threads,
                                  permute_range, &job);
    }
out:
    free(seen);
    return st;
}
