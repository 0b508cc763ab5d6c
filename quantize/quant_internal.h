/*
 * quant_internal.h - PRIVATE to quantize/ (not installed, not for other
 * stages): the per-group INT4 kernels shared by rtn.c, gptq.c and
 * sparse24.c: the code rule, the scale fit with its clipping search, the 2:4
 * choice of 4, non-finite scans, and a few cross-file helpers.
 *
 * The rules themselves are specified in marlin_quant.h; this header and
 * group.c are their one implementation. The vector kernels (group.c, and
 * the GPTQ tile in gptq.c) have AVX2 versions next to portable ones, chosen
 * at run time; both run the same fp32 operations in the same order (no FMA
 * contraction: GCC's ISO C mode has -ffp-contract=off, and clang is told
 * below), so results do not depend on the CPU (tests/test_quant.c checks
 * it with mq_force_portable).
 */
#ifndef MARLIN_QUANT_INTERNAL_H
#define MARLIN_QUANT_INTERNAL_H

#include "marlin_quant.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MQ_INLINE static inline __attribute__((always_inline))

/* Lanes of the fixed-order float accumulations (a multiple of every vector
 * width we compile for, so the vectorised and scalar loops agree). */
#define MQ_LANES 16

/* 1.5 * 2^23: (x + M) - M rounds x to an integer, half to even, in the
 * default rounding mode, for |x| < 2^22 (our x is clamped to [-8, 7]). It
 * vectorises with plain SSE2 where nearbyintf would be a library call. */
#define MQ_RNE_MAGIC 12582912.0f

/* Smallest positive fp16 (subnormal 2^-24): the floor of every scale. */
#define MQ_SCALE_FLOOR_BITS ((uint16_t)0x0001)
#define MQ_HALF_INF_BITS ((uint16_t)0x7c00)

/* round_half_even(clamp(x / s, -8, 7)): the signed level of w under s.
 * Clamping before rounding is equivalent to clamping the rounded value
 * (the bounds are integers) and keeps the magic-number rounding in range;
 * an infinite x / s clamps too. */
MQ_INLINE float mq_level(float w, float s) {
    float t = w / s;
    t = t < -8.0f ? -8.0f : t;
    t = t > 7.0f ? 7.0f : t;
    return (t + MQ_RNE_MAGIC) - MQ_RNE_MAGIC;
}

MQ_INLINE uint8_t mq_code(float w, float s) {
    return (uint8_t)(int)(mq_level(w, s) + 8.0f);
}

/* ---- group kernels (group.c): AVX2 and portable versions with the same
 * fp32 operations in the same order, so results do not depend on the CPU */

/* Codes of x[0..g) under scale s (the code rule). */
void mq_codes(const float *x, int64_t g, float s, uint8_t *q);
/* max |x_j| (x finite). */
float mq_absmax(const float *x, int64_t g);
/* Fits the scale of one (row, group) x[0..g) (marlin_quant.h: base scale,
 * all-zero group, floor, clipping candidates with weights c). Writes the
 * fp16 bits and their value; returns false when the base scale overflows
 * fp16 (the caller names row and group). How a candidate's loss
 * sum_j c_j (x_j - s * level_j)^2 is computed (group.c): levels from
 * x * (1/s) (the codes use x / s); in 16 fixed fp32 lanes (element j of
 * each full block of 16 in lane j % 16, the tail in lanes 0, 1, ...)
 * summed pairwise. Candidates are tried in the order 0, every 4th, the
 * rest, and a sum stops early once a partial sum exceeds the incumbent:
 * terms are >= 0 and fp32 addition is monotone, so this never changes the
 * winner, which is exactly the first candidate with the least loss. */
bool mq_fit_scale(const float *x, const float *c, int64_t g, bool clip,
                  uint16_t *bits_out, float *s_out);

/* Index of the first non-finite x[j], or -1. */
int64_t mq_find_nonfinite(const float *x, int64_t len);
/* True when the AVX2 kernels run (CPU has AVX2 and not forced off). */
bool mq_use_avx2(void);
/* Tests only: force the portable kernels (on) or allow AVX2 again (off).
 * Results must not change either way. */
void mq_force_portable(bool on);

/* 2:4 choice within one run of 4: keep[i] = 1 for the 2 entries with the
 * largest key (ties keep the lower index), 0 for the other 2. */
MQ_INLINE void mq_keep2of4(const float *key, uint8_t *keep) {
    for (int i = 0; i < 4; i++) {
        int beaten = 0;
        for (int j = 0; j < 4; j++)
            if (j != i && (key[j] > key[i] || (key[j] == key[i] && j < i)))
                beaten++;
        keep[i] = (uint8_t)(beaten < 2);
    }
}

/* Internal entry points shared between files. */

/* Converts row r of w (dtype F32/F16/BF16) into dst[0..k). */
void mq_load_row(const void *w, marlin_dtype dtype, int64_t k, int64_t r,
                 float *dst);
/* True for the dtypes W may have (F32, F16, BF16). */
bool mq_dtype_ok(marlin_dtype dtype);
/* Magnitude 2:4 on one row in place: zeroes the 2 smallest |x| of each run
 * of 4 (k % 4 == 0). */
void mq_prune_magnitude_row(float *x, int64_t k);
/* SparseGPT choice for columns [j, j+len) of one row (len % 4 == 0):
 * keep[i] from saliency x^2 * dinv2 (= x^2 / U_jj^2). */
void mq_sparsegpt_mask(const float *x, const float *dinv2, int64_t len,
                       uint8_t *keep);
/* trace(M H M^T) = <H, M^T M>, in two steps so that M can be streamed in
 * row chunks: mq_gram_add accumulates G += M^T M (upper triangle, ssyrk;
 * first = true overwrites G) for M (rows, k) with leading dimension ld;
 * mq_gram_dot returns sum_ij H_ij G_ij in double from the two upper
 * triangles. */
void mq_gram_add(float *g, int64_t k, const float *m, int64_t rows,
                 int64_t ld, bool first);
double mq_gram_dot(const float *h, const float *g, int64_t k);

#endif /* MARLIN_QUANT_INTERNAL_H */
