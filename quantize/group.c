/*
 * group.c - the per-group INT4 kernels behind every algorithm in quantize/:
 * codes under a scale, absmax, the (weighted) squared-error loss of a
 * candidate scale, the scale fit with its clipping search, NaN/Inf scans.
 *
 * Spec: marlin_quant.h (code rule, scale rule, clipping grid). Each kernel
 * has a portable version, which is the definition, and an AVX2 version
 * that performs the same fp32 operations in the same order (no FMA; vector
 * lane l accumulates exactly what scalar lane l does; _mm256_round_ps with
 * round-to-nearest-even equals the magic-number rounding on [-8, 7]), so
 * results are bit-identical on every x86-64 CPU; tests compare them.
 *
 * Why this file exists: GCC does not vectorise the 16-lane loops with the
 * clamps (they stay scalar at -O2 and -O3), and the clipping search runs 76
 * candidates over every weight: it was 95% of RTN with clipping.
 */
#include "quant_internal.h"

#include <stdlib.h>

static int portable_forced; /* tests: run the portable kernels */

void mq_force_portable(bool on) {
    __atomic_store_n(&portable_forced, on ? 1 : 0, __ATOMIC_RELAXED);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MARLIN_NO_AVX2)
#define MQ_HAVE_AVX2_PATH 1
#include <immintrin.h>
/* libgcc / compiler-rt fill the CPU table before main. */
bool mq_use_avx2(void) {
    return !__atomic_load_n(&portable_forced, __ATOMIC_RELAXED) &&
           __builtin_cpu_supports("avx2");
}
#else
bool mq_use_avx2(void) { return false; }
#endif
#define use_avx2 mq_use_avx2

/* Pairwise sum of the lanes, in a fixed order. */
static float lane_sum(const float *acc) {
    float t[MQ_LANES];
    memcpy(t, acc, sizeof t);
    for (int w = MQ_LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) t[l] = t[l] + t[l + w];
    return t[0];
}

/* Early-exit check points, while elements remain: after the first block of
 * 16, then every 32 (a lane sum costs about one block). */
#define MQ_CHECK_AT(done) ((done) == MQ_LANES || (done) % 32 == 0)

/* ------------------------------------------------------------- portable */

static void codes_scalar(const float *x, int64_t g, float s, uint8_t *q) {
    for (int64_t j = 0; j < g; j++) q[j] = mq_code(x[j], s);
}

static float absmax_scalar(const float *x, int64_t g) {
    float m = 0.0f;
    for (int64_t j = 0; j < g; j++) {
        float a = fabsf(x[j]);
        m = a > m ? a : m;
    }
    return m;
}

/* The search's level: round_half_even(clamp(x * r, -8, 7)), r = 1/s in
 * fp32. The search multiplies by the reciprocal because the divider is the
 * bottleneck of the search (76 candidates per weight); x * r differs from
 * x / s by at most an ulp, which can move a level only for x within an ulp
 * of a rounding midpoint, where both levels have the same error to fp32
 * precision. The codes are always computed with the division. */
static inline float level_r(float x, float r) {
    float t = x * r;
    t = t < -8.0f ? -8.0f : t;
    t = t > 7.0f ? 7.0f : t;
    return (t + MQ_RNE_MAGIC) - MQ_RNE_MAGIC;
}

/* Adds elements [j, g) to lanes 0, 1, ... (the tail after the blocks). */
static void loss_tail(const float *x, const float *c, int64_t j, int64_t g,
                      float s, float r, float *acc) {
    for (int l = 0; j < g; j++, l = (l + 1) % MQ_LANES) {
        float d = x[j] - s * level_r(x[j], r);
        acc[l] += c ? (d * d) * c[j] : d * d;
    }
}

static float loss_scalar(const float *x, const float *c, int64_t g, float s,
                         float r, float best) {
    float acc[MQ_LANES] = {0};
    int64_t j = 0;
    for (; j + MQ_LANES <= g; j += MQ_LANES) {
        for (int l = 0; l < MQ_LANES; l++) {
            float d = x[j + l] - s * level_r(x[j + l], r);
            acc[l] += c ? (d * d) * c[j + l] : d * d;
        }
        if (MQ_CHECK_AT(j + MQ_LANES) && j + MQ_LANES < g) {
            float part = lane_sum(acc);
            if (part > best) return part;
        }
    }
    loss_tail(x, c, j, g, s, r, acc);
    return lane_sum(acc);
}

/* The candidate loop (see mq_fit_scale): returns the winning index. */
static int search_scalar(const float *x, const float *c, int64_t g,
                         const float *sv, const float *rv,
                         const uint16_t *bits) {
    int best_i = 0;
    float best = loss_scalar(x, c, g, sv[0], rv[0], INFINITY);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 1; i < MARLIN_CLIP_STEPS; i++) {
            if ((i % 4 == 0) != (pass == 0) || bits[i] == bits[i - 1])
                continue;
            float L = loss_scalar(x, c, g, sv[i], rv[i], best);
            if (L < best || (L == best && i < best_i)) {
                best = L;
                best_i = i;
            }
        }
    return best_i;
}

static int64_t nonfinite_scalar(const float *x, int64_t len) {
    for (int64_t i = 0; i < len; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* ----------------------------------------------------------------- AVX2 */
#ifdef MQ_HAVE_AVX2_PATH

#define MQ_AVX2 __attribute__((target("avx2")))

/* round_half_even(clamp(x / s, -8, 7)) for 8 lanes. */
MQ_AVX2 static inline __m256 level8(__m256 x, __m256 s) {
    __m256 t = _mm256_div_ps(x, s);
    t = _mm256_max_ps(t, _mm256_set1_ps(-8.0f));
    t = _mm256_min_ps(t, _mm256_set1_ps(7.0f));
    return _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

MQ_AVX2 static void codes_avx2(const float *x, int64_t g, float s,
                               uint8_t *q) {
    const __m256 vs = _mm256_set1_ps(s), eight = _mm256_set1_ps(8.0f);
    int64_t j = 0;
    for (; j + 16 <= g; j += 16) {
        __m256i a = _mm256_cvtps_epi32(
            _mm256_add_ps(level8(_mm256_loadu_ps(x + j), vs), eight));
        __m256i b = _mm256_cvtps_epi32(
            _mm256_add_ps(level8(_mm256_loadu_ps(x + j + 8), vs), eight));
        /* 16 x int32 (0..15) -> 16 bytes in order */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        __m128i u = _mm_packus_epi16(_mm256_castsi256_si128(p),
                                     _mm256_extracti128_si256(p, 1));
        _mm_storeu_si128((__m128i *)(void *)(q + j), u);
    }
    for (; j < g; j++) q[j] = mq_code(x[j], s);
}

MQ_AVX2 static float absmax_avx2(const float *x, int64_t g) {
    const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= g; j += 8)
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), mask));
    float t[8];
    _mm256_storeu_ps(t, m);
    float r = absmax_scalar(x + j, g - j);
    for (int l = 0; l < 8; l++) r = t[l] > r ? t[l] : r;
    return r;
}

/* lane_sum of the 16 lanes a0 (0..7), a1 (8..15) in registers, in the
 * same pairwise order: +8, +4, +2, +1. */
MQ_AVX2 static inline float lane_sum8x2(__m256 a0, __m256 a1) {
    __m256 v = _mm256_add_ps(a0, a1);
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

MQ_AVX2 static inline __attribute__((always_inline)) float
loss_avx2(const float *x, const float *c, int64_t g, float s, float r,
          float best) {
    const __m256 vs = _mm256_set1_ps(s), vr = _mm256_set1_ps(r);
    const __m256 lo = _mm256_set1_ps(-8.0f), hi = _mm256_set1_ps(7.0f);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + MQ_LANES <= g; j += MQ_LANES) {
        __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
        __m256 t0 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(x0, vr), lo), hi);
        __m256 t1 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(x1, vr), lo), hi);
        t0 = _mm256_round_ps(t0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        t1 = _mm256_round_ps(t1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 d0 = _mm256_sub_ps(x0, _mm256_mul_ps(vs, t0));
        __m256 d1 = _mm256_sub_ps(x1, _mm256_mul_ps(vs, t1));
        d0 = _mm256_mul_ps(d0, d0);
        d1 = _mm256_mul_ps(d1, d1);
        if (c) {
            d0 = _mm256_mul_ps(d0, _mm256_loadu_ps(c + j));
            d1 = _mm256_mul_ps(d1, _mm256_loadu_ps(c + j + 8));
        }
        a0 = _mm256_add_ps(a0, d0);
        a1 = _mm256_add_ps(a1, d1);
        if (MQ_CHECK_AT(j + MQ_LANES) && j + MQ_LANES < g) {
            float part = lane_sum8x2(a0, a1);
            if (part > best) return part;
        }
    }
    if (j == g) return lane_sum8x2(a0, a1);
    float acc[MQ_LANES];
    _mm256_storeu_ps(acc, a0);
    _mm256_storeu_ps(acc + 8, a1);
    loss_tail(x, c, j, g, s, r, acc);
    return lane_sum(acc);
}

MQ_AVX2 static int search_avx2(const float *x, const float *c, int64_t g,
                               const float *sv, const float *rv,
                               const uint16_t *bits) {
    int best_i = 0;
    float best = loss_avx2(x, c, g, sv[0], rv[0], INFINITY);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 1; i < MARLIN_CLIP_STEPS; i++) {
            if ((i % 4 == 0) != (pass == 0) || bits[i] == bits[i - 1])
                continue;
            float L = loss_avx2(x, c, g, sv[i], rv[i], best);
            if (L < best || (L == best && i < best_i)) {
                best = L;
                best_i = i;
            }
        }
    return best_i;
}

MQ_AVX2 static int64_t nonfinite_avx2(const float *x, int64_t len) {
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        __m256i bad = _mm256_setzero_si256();
        for (int v = 0; v < 4; v++) {
            __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(x + j + 8 * v));
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(u, e), e));
        }
        if (!_mm256_testz_si256(bad, bad)) return j + nonfinite_scalar(x + j, 32);
    }
    int64_t t = nonfinite_scalar(x + j, len - j);
    return t < 0 ? -1 : j + t;
}

#endif /* MQ_HAVE_AVX2_PATH */

/* ------------------------------------------------------------ dispatch */

void mq_codes(const float *x, int64_t g, float s, uint8_t *q) {
#ifdef MQ_HAVE_AVX2_PATH
    if (use_avx2()) {
        codes_avx2(x, g, s, q);
        return;
    }
#endif
    codes_scalar(x, g, s, q);
}

float mq_absmax(const float *x, int64_t g) {
#ifdef MQ_HAVE_AVX2_PATH
    if (use_avx2()) return absmax_avx2(x, g);
#endif
    return absmax_scalar(x, g);
}

int64_t mq_find_nonfinite(const float *x, int64_t len) {
#ifdef MQ_HAVE_AVX2_PATH
    if (use_avx2()) return nonfinite_avx2(x, len);
#endif
    return nonfinite_scalar(x, len);
}

bool mq_fit_scale(const float *x, const float *c, int64_t g, bool clip,
                  uint16_t *bits_out, float *s_out) {
    float amax = mq_absmax(x, g);
    if (amax == 0.0f) {
        /* the reference's degenerate range [-1, 1]: scale 2/15 */
        *bits_out = marlin_float_to_half(2.0f / 15.0f);
        *s_out = marlin_half_to_float(*bits_out);
        return true;
    }
    float s0 = (2.0f * amax) / 15.0f;
    uint16_t b0 = marlin_float_to_half(s0);
    if ((b0 & 0x7fffu) >= MQ_HALF_INF_BITS) return false;
    if (!clip) {
        *bits_out = b0 == 0 ? MQ_SCALE_FLOOR_BITS : b0;
        *s_out = marlin_half_to_float(*bits_out);
        return true;
    }
    float cand[MARLIN_CLIP_STEPS], sv[MARLIN_CLIP_STEPS];
    uint16_t bits[MARLIN_CLIP_STEPS];
    for (int i = 0; i < MARLIN_CLIP_STEPS; i++)
        cand[i] = ((float)(MARLIN_CLIP_GRID - i) / (float)MARLIN_CLIP_GRID) * s0;
    marlin_float_to_half_n(cand, bits, MARLIN_CLIP_STEPS);
    for (int i = 0; i < MARLIN_CLIP_STEPS; i++)
        if (bits[i] == 0) bits[i] = MQ_SCALE_FLOOR_BITS;
    marlin_half_to_float_n(bits, sv, MARLIN_CLIP_STEPS);
    float rv[MARLIN_CLIP_STEPS];
    for (int i = 0; i < MARLIN_CLIP_STEPS; i++) rv[i] = 1.0f / sv[i];
    /* Evaluation order: the no-clip scale, every 4th candidate (a good
     * incumbent early, so that the others stop early), then the rest; a
     * candidate with the same fp16 scale as candidate i-1 is skipped (same
     * loss, and the lower index wins ties). */
    int best_i;
#ifdef MQ_HAVE_AVX2_PATH
    if (use_avx2())
        best_i = search_avx2(x, c, g, sv, rv, bits);
    else
#endif
        best_i = search_scalar(x, c, g, sv, rv, bits);
    *bits_out = bits[best_i];
    *s_out = sv[best_i];
    return true;
}
