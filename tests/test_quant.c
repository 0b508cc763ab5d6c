/*
 * test_quant.c - quantize/: RTN (code rule, ties, clipping, all-zero
 * groups, NaN/overflow rejection, thread determinism, 2:4), the Hessian,
 * the GPTQ solver against an unblocked textbook GPTQ written here in double
 * precision, damping/fallback, act-order, and SparseGPT.
 *
 * The references in this file are written from the rules in marlin_quant.h
 * and docs/reference/landscape.md section 2, independently of quantize/:
 * scalar loops, nearbyint for round-half-even, double accumulations.
 * Randomized tests print their seed on failure (MARLIN_TEST_SEED replays).
 */
#include "testutil.h"

#include "marlin_quant.h"

#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED 20240611ull

/* ------------------------------------------------------------ references */

/* The code rule, scalar: q = clamp(rne(w / s) + 8, 0, 15) with w / s in
 * fp32 and rne = nearbyintf in the default rounding mode. */
static uint8_t ref_code(float w, float s) {
    float t = nearbyintf(w / s) + 8.0f;
    if (t < 0.0f) t = 0.0f;
    if (t > 15.0f) t = 15.0f;
    return (uint8_t)t;
}

static float ref_value(float w, float s) {
    return (float)((int)ref_code(w, s) - 8) * s;
}

/* Candidate i's fp16 scale bits for a group with absmax a (a > 0). */
static uint16_t ref_candidate(float a, int i) {
    float s0 = (2.0f * a) / 15.0f;
    float p = (float)(100 - i) / 100.0f;
    uint16_t b = marlin_float_to_half(p * s0);
    return b == 0 ? 1 : b;
}

/* Weighted squared error of scale s on x[0..g) in double (c NULL = 1). */
static double ref_loss(const float *x, const float *c, int64_t g, float s) {
    double L = 0;
    for (int64_t j = 0; j < g; j++) {
        double d = (double)x[j] - (double)ref_value(x[j], s);
        L += d * d * (c ? (double)c[j] : 1.0);
    }
    return L;
}

/* Reference scale fit: returns bits; *loss gets the winner's double loss. */
static uint16_t ref_fit(const float *x, const float *c, int64_t g, bool clip,
                        double *loss) {
    float a = 0;
    for (int64_t j = 0; j < g; j++) a = fmaxf(a, fabsf(x[j]));
    if (a == 0) {
        *loss = 0;
        return marlin_float_to_half(2.0f / 15.0f);
    }
    uint16_t best = ref_candidate(a, 0);
    double bl = ref_loss(x, c, g, marlin_half_to_float(best));
    for (int i = 1; clip && i < MARLIN_CLIP_STEPS; i++) {
        uint16_t b = ref_candidate(a, i);
        double L = ref_loss(x, c, g, marlin_half_to_float(b));
        if (L < bl) {
            bl = L;
            best = b;
        }
    }
    *loss = bl;
    return best;
}

/* Random weights: Gaussian rows with a per-row scale spanning decades, a
 * few outliers, and some exact ties planted in groups of scale 1. */
static void fill_weights(marlin_rng *rng, float *w, int64_t n, int64_t k) {
    for (int64_t r = 0; r < n; r++) {
        float rs = powf(10.0f, (float)(marlin_rng_uniform(rng) * 4.0 - 3.0));
        for (int64_t c = 0; c < k; c++) {
            float v = marlin_rng_normal(rng) * rs;
            if (marlin_rng_uniform(rng) < 0.01) v *= 8.0f; /* outliers */
            w[r * k + c] = v;
        }
    }
}

/* ------------------------------------------------------------------ RTN */

static void check_rtn_against_ref(uint64_t seed, const float *w, int64_t n,
                                  int64_t k, int64_t g, bool clip,
                                  const uint8_t *q, const uint16_t *s) {
    int64_t G = g == -1 ? 1 : k / g, gs = g == -1 ? k : g;
    int64_t differ = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t t = 0; t < G; t++) {
            const float *x = w + r * k + t * gs;
            double rl;
            uint16_t rb = ref_fit(x, NULL, gs, clip, &rl);
            uint16_t got = s[t * n + r];
            if (got != rb) {
                /* Only a near-tie between candidates may pick another
                 * scale: our losses are fp32 sums in 16 lanes (relative
                 * error < g * 2^-24 ~ 1e-5 for g <= 128), the reference
                 * sums in double. */
                MT_ASSERT(seed, clip, "row %lld group %lld: scale %04x, "
                          "reference %04x without clipping",
                          (long long)r, (long long)t, got, rb);
                double gl = ref_loss(x, NULL, gs, marlin_half_to_float(got));
                MT_ASSERT(seed, gl <= rl * (1 + 1e-5) + 1e-30,
                          "row %lld group %lld: loss %.9g vs reference %.9g",
                          (long long)r, (long long)t, gl, rl);
                differ++;
            }
            float sv = marlin_half_to_float(got);
            for (int64_t j = 0; j < gs; j++)
                MT_ASSERT(seed, q[r * k + t * gs + j] == ref_code(x[j], sv),
                          "row %lld col %lld: code %d, reference %d",
                          (long long)r, (long long)(t * gs + j),
                          q[r * k + t * gs + j], ref_code(x[j], sv));
        }
    /* near-ties are rare: a systematic difference would show up here */
    MT_ASSERT(seed, differ * 200 <= n * G, "%lld of %lld scales differ",
              (long long)differ, (long long)(n * G));
}

static void test_quant_rtn_matches_reference(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 48, k = 512;
    float *w = malloc(sizeof(float) * n * k);
    uint8_t *q = malloc(n * k);
    uint16_t *s = malloc(sizeof(uint16_t) * n * k);
    assert_non_null(w);
    fill_weights(&rng, w, n, k);
    /* Exact ties: row 0 group 0 has absmax 7.5, so s = 2*7.5/15 = 1 exactly
     * (fp16) and every x.5 below lies halfway between two levels. */
    const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f,
                          6.5f, -6.5f, 7.5f, -7.5f, 4.5f, 5.5f, -4.5f, -5.5f};
    for (int j = 0; j < 16; j++) w[j] = ties[j];
    for (int j = 16; j < 32; j++) w[j] = 0.25f * (float)(j - 24);
    const int64_t groups[] = {32, 64, 128, -1};
    for (int gi = 0; gi < 4; gi++)
        for (int clip = 0; clip < 2; clip++) {
            marlin_rtn_opts o = marlin_rtn_default_opts();
            o.group_size = groups[gi];
            o.clip = clip;
            marlin_error err = {0};
            assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o,
                                                 q, s, &err),
                             MARLIN_OK);
            check_rtn_against_ref(seed, w, n, k, groups[gi], clip, q, s);
            if (!clip && groups[gi] == 32) {
                /* the planted ties, by hand: half to even, 7.5 -> 8 clamps */
                static const int want[16] = {0, 2, 2, 0, -2, -2, 4, -4,
                                             6, -6, 7, -8, 4, 6, -4, -6};
                assert_int_equal(s[0], 0x3c00); /* 1.0 */
                for (int j = 0; j < 16; j++)
                    MT_ASSERT(seed, q[j] == want[j] + 8,
                              "tie %g -> code %d, want %d", (double)ties[j],
                              q[j], want[j] + 8);
            }
        }
    free(w);
    free(q);
    free(s);
}

static void test_quant_rtn_zero_and_tiny_groups(void **state) {
    (void)state;
    const int64_t n = 3, k = 64;
    float w[3 * 64];
    uint8_t q[3 * 64];
    uint16_t s[2 * 3];
    memset(w, 0, sizeof w);
    /* row 1 group 1: tiny values whose scale would round to 0 in fp16 */
    for (int j = 32; j < 64; j++) w[64 + j] = (j % 2 ? 1e-8f : -3e-8f);
    /* row 2: a negative zero and a subnormal fp32 */
    w[128 + 3] = -0.0f;
    w[128 + 40] = 1e-40f;
    for (int clip = 0; clip < 2; clip++) {
        marlin_rtn_opts o = marlin_rtn_default_opts();
        o.group_size = 32;
        o.clip = clip;
        marlin_error err = {0};
        assert_int_equal(
            marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, &err),
            MARLIN_OK);
        for (int i = 0; i < 6; i++) {
            float sv = marlin_half_to_float(s[i]);
            assert_true(sv > 0 && isfinite(sv));
        }
        /* all-zero groups: the reference's scale 2/15, codes 8 */
        assert_int_equal(s[0 * 3 + 0], marlin_float_to_half(2.0f / 15.0f));
        assert_int_equal(s[1 * 3 + 0], marlin_float_to_half(2.0f / 15.0f));
        for (int j = 0; j < 64; j++) assert_int_equal(q[j], 8);
        /* tiny group: floored at the smallest subnormal, codes in range */
        assert_int_equal(s[1 * 3 + 1], 0x0001);
        for (int j = 32; j < 64; j++) {
            assert_true(q[64 + j] <= 15);
            assert_int_equal(q[64 + j], ref_code(w[64 + j], 0x1p-24f));
        }
        for (int j = 0; j < 64; j++) assert_int_equal(q[128 + j], 8);
    }
}

static void test_quant_rtn_rejects_nonfinite(void **state) {
    (void)state;
    const int64_t n = 8, k = 256;
    float *w = calloc(n * k, sizeof(float));
    uint8_t *q = malloc(n * k);
    uint16_t *s = malloc(sizeof(uint16_t) * n * 2);
    for (int64_t i = 0; i < n * k; i++) w[i] = (float)(i % 17) - 8.0f;
    marlin_rtn_opts o = marlin_rtn_default_opts();
    marlin_error err = {0};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int th = 1; th <= 4; th += 3) {
            float save = w[5 * k + 77];
            w[5 * k + 77] = bad[b];
            w[6 * k + 3] = bad[b]; /* a later row: row 5 must be named */
            o.threads = th;
            marlin_error_clear(&err);
            assert_int_equal(
                marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, &err),
                MARLIN_ERR_NUMERIC);
            assert_non_null(strstr(err.msg, "row 5, column 77"));
            assert_non_null(strstr(err.msg, b == 0 ? "NaN" : "infinite"));
            w[5 * k + 77] = save;
            w[6 * k + 3] = 0;
        }
    /* fp16 input: NaN and Inf bit patterns */
    uint16_t *h = malloc(sizeof(uint16_t) * n * k);
    marlin_float_to_half_n(w, h, (size_t)(n * k));
    h[2 * k + 200] = 0x7e00;
    marlin_error_clear(&err);
    assert_int_equal(marlin_rtn_quantize(h, MARLIN_DT_F16, n, k, &o, q, s, &err),
                     MARLIN_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "row 2, column 200"));
    /* a scale that does not fit fp16: 2 * 6e5 / 15 = 80000 > 65504 */
    w[3 * k + 130] = 6e5f;
    marlin_error_clear(&err);
    assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, &err),
                     MARLIN_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "row 3, group 1"));
    assert_non_null(strstr(err.msg, "fp16"));
    /* bad arguments */
    o.group_size = 100; /* does not divide 256 */
    assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, &err),
                     MARLIN_ERR_INVALID_ARG);
    o.group_size = 128;
    assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_I32, n, k, &o, q, s, &err),
                     MARLIN_ERR_INVALID_ARG);
    o.prune = MARLIN_PRUNE_SPARSEGPT;
    assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, &err),
                     MARLIN_ERR_INVALID_ARG);
    free(w);
    free(q);
    free(s);
    free(h);
}

/* Squared error of one (row, group) in double, from codes and scales. */
static double group_sqerr(const float *w, const uint8_t *q, const uint16_t *s,
                          int64_t n, int64_t k, int64_t gs, int64_t r,
                          int64_t t) {
    double e = 0;
    float sv = marlin_half_to_float(s[t * n + r]);
    for (int64_t j = t * gs; j < (t + 1) * gs; j++) {
        double d = (double)w[r * k + j] - (double)((int)q[r * k + j] - 8) * sv;
        e += d * d;
    }
    return e;
}

static void test_quant_rtn_clip_never_worse(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED + 1);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 64, k = 1024;
    float *w = malloc(sizeof(float) * n * k);
    uint8_t *q0 = malloc(n * k), *q1 = malloc(n * k);
    uint16_t *s0 = malloc(sizeof(uint16_t) * n * k),
             *s1 = malloc(sizeof(uint16_t) * n * k);
    fill_weights(&rng, w, n, k);
    const int64_t groups[] = {32, 128, -1};
    for (int gi = 0; gi < 3; gi++) {
        marlin_rtn_opts o = marlin_rtn_default_opts();
        o.group_size = groups[gi];
        int64_t gs = groups[gi] == -1 ? k : groups[gi], G = k / gs;
        o.clip = false;
        assert_int_equal(
            marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q0, s0, NULL),
            MARLIN_OK);
        o.clip = true;
        assert_int_equal(
            marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q1, s1, NULL),
            MARLIN_OK);
        double e0 = 0, e1 = 0;
        for (int64_t r = 0; r < n; r++)
            for (int64_t t = 0; t < G; t++) {
                double a = group_sqerr(w, q0, s0, n, k, gs, r, t);
                double b = group_sqerr(w, q1, s1, n, k, gs, r, t);
                /* tolerance: fp32 lane sums vs double (see above) */
                MT_ASSERT(seed, b <= a * (1 + 1e-5),
                          "g %lld row %lld group %lld: clip %.9g > no-clip %.9g",
                          (long long)groups[gi], (long long)r, (long long)t,
                          b, a);
                e0 += a;
                e1 += b;
            }
        /* and it helps on Gaussian data with outliers */
        MT_ASSERT(seed, e1 < 0.97 * e0, "g %lld: clip %.6g vs no-clip %.6g",
                  (long long)groups[gi], e1, e0);
        double rel0, rel1;
        assert_int_equal(marlin_quant_weight_error(w, MARLIN_DT_F32, n, k,
                                                   groups[gi], q0, s0, 2,
                                                   &rel0, NULL),
                         MARLIN_OK);
        assert_int_equal(marlin_quant_weight_error(w, MARLIN_DT_F32, n, k,
                                                   groups[gi], q1, s1, 3,
                                                   &rel1, NULL),
                         MARLIN_OK);
        assert_true(rel1 < rel0);
        /* weight error helper = sqrt(sum sq err / sum w^2) */
        double ww = 0;
        for (int64_t i = 0; i < n * k; i++) ww += (double)w[i] * w[i];
        MT_ASSERT(seed, fabs(rel0 - sqrt(e0 / ww)) <= 1e-9 * rel0,
                  "weight error %.12g vs %.12g", rel0, sqrt(e0 / ww));
    }
    free(w);
    free(q0);
    free(q1);
    free(s0);
    free(s1);
}

static void test_quant_rtn_threads_identical(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED + 2);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 129, k = 768; /* n not a multiple of anything */
    float *w = malloc(sizeof(float) * n * k);
    uint16_t *h = malloc(sizeof(uint16_t) * n * k);
    uint16_t *bf = malloc(sizeof(uint16_t) * n * k);
    float *wh = malloc(sizeof(float) * n * k);
    uint8_t *qa = malloc(n * k), *qb = malloc(n * k);
    uint16_t *sa = malloc(sizeof(uint16_t) * n * k),
             *sb = malloc(sizeof(uint16_t) * n * k);
    fill_weights(&rng, w, n, k);
    marlin_float_to_half_n(w, h, (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) bf[i] = marlin_float_to_bf16(w[i]);
    const void *src[3] = {w, h, bf};
    const marlin_dtype dt[3] = {MARLIN_DT_F32, MARLIN_DT_F16, MARLIN_DT_BF16};
    for (int d = 0; d < 3; d++)
        for (int clip = 0; clip < 2; clip++)
            for (int prune = 0; prune < 2; prune++) {
                marlin_rtn_opts o = marlin_rtn_default_opts();
                o.clip = clip;
                o.group_size = 64;
                o.prune = prune ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
                o.threads = 1;
                assert_int_equal(marlin_rtn_quantize(src[d], dt[d], n, k, &o,
                                                     qa, sa, NULL),
                                 MARLIN_OK);
                const int th[] = {2, 3, 7, 64};
                for (int t = 0; t < 4; t++) {
                    o.threads = th[t];
                    memset(qb, 0xff, n * k);
                    assert_int_equal(marlin_rtn_quantize(src[d], dt[d], n, k,
                                                         &o, qb, sb, NULL),
                                     MARLIN_OK);
                    assert_memory_equal(qa, qb, n * k);
                    assert_memory_equal(sa, sb, sizeof(uint16_t) * n * k / 64);
                }
            }
    /* F16 input quantizes exactly like its fp32 widening */
    marlin_half_to_float_n(h, wh, (size_t)(n * k));
    marlin_rtn_opts o = marlin_rtn_default_opts();
    assert_int_equal(
        marlin_rtn_quantize(h, MARLIN_DT_F16, n, k, &o, qa, sa, NULL),
        MARLIN_OK);
    assert_int_equal(
        marlin_rtn_quantize(wh, MARLIN_DT_F32, n, k, &o, qb, sb, NULL),
        MARLIN_OK);
    assert_memory_equal(qa, qb, n * k);
    assert_memory_equal(sa, sb, sizeof(uint16_t) * n * k / 128);
    free(w);
    free(h);
    free(bf);
    free(wh);
    free(qa);
    free(qb);
    free(sa);
    free(sb);
}

static void test_quant_rtn_magnitude_24(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED + 3);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 32, k = 256;
    float *w = malloc(sizeof(float) * n * k);
    float *wp = malloc(sizeof(float) * n * k);
    uint8_t *q = malloc(n * k), *qr = malloc(n * k);
    uint16_t *s = malloc(sizeof(uint16_t) * n * 2),
             *sr = malloc(sizeof(uint16_t) * n * 2);
    fill_weights(&rng, w, n, k);
    /* ties inside a run of 4: |w| equal, the lower columns are kept */
    w[0] = 1.0f;
    w[1] = -1.0f;
    w[2] = 1.0f;
    w[3] = 0.5f;
    /* reference mask: keep the 2 largest |w|, ties to the lower column */
    memcpy(wp, w, sizeof(float) * n * k);
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < k; j += 4) {
            float *x = wp + r * k + j;
            int keep[4] = {0, 0, 0, 0};
            for (int pick = 0; pick < 2; pick++) {
                int b = -1;
                for (int i = 0; i < 4; i++)
                    if (!keep[i] && (b < 0 || fabsf(x[i]) > fabsf(x[b]))) b = i;
                keep[b] = 1;
            }
            for (int i = 0; i < 4; i++)
                if (!keep[i]) x[i] = 0.0f;
        }
    assert_true(wp[0] == 1.0f && wp[1] == -1.0f && wp[2] == 0.0f);
    for (int clip = 0; clip < 2; clip++) {
        marlin_rtn_opts o = marlin_rtn_default_opts();
        o.clip = clip;
        o.prune = MARLIN_PRUNE_MAGNITUDE;
        assert_int_equal(
            marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, NULL),
            MARLIN_OK);
        assert_true(marlin_quant_is_24(q, n, k));
        /* = RTN of the pruned matrix (scale fitted on the survivors) */
        o.prune = MARLIN_PRUNE_NONE;
        assert_int_equal(
            marlin_rtn_quantize(wp, MARLIN_DT_F32, n, k, &o, qr, sr, NULL),
            MARLIN_OK);
        assert_memory_equal(q, qr, n * k);
        assert_memory_equal(s, sr, sizeof(uint16_t) * n * 2);
        for (int64_t i = 0; i < n * k; i++)
            if (wp[i] == 0.0f) assert_int_equal(q[i], 8);
    }
    /* a dense result is not 2:4 */
    marlin_rtn_opts o = marlin_rtn_default_opts();
    assert_int_equal(marlin_rtn_quantize(w, MARLIN_DT_F32, n, k, &o, q, s, NULL),
                     MARLIN_OK);
    assert_false(marlin_quant_is_24(q, n, k));
    free(w);
    free(wp);
    free(q);
    free(qr);
    free(s);
    free(sr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_rtn_matches_reference),
        cmocka_unit_test(test_quant_rtn_zero_and_tiny_groups),
        cmocka_unit_test(test_quant_rtn_rejects_nonfinite),
        cmocka_unit_test(test_quant_rtn_clip_never_worse),
        cmocka_unit_test(test_quant_rtn_threads_identical),
        cmocka_unit_test(test_quant_rtn_magnitude_24),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
