/*
 * test_kernels.c - kernels/: the dense Marlin GEMM (GPU) against its CPU
 * reference, the reference itself, the shape contract, the tile heuristic,
 * the workspace rule and the error statuses.
 *
 * GPU cases run where a CUDA device is present and are reported as skipped
 * (with the reason) elsewhere; the CPU cases run everywhere.
 * Environment:
 *   MARLIN_TEST_SEED           base seed (every shape derives a fresh one)
 *   MARLIN_KERNEL_TEST_FULL=1  the whole sweep: m in {1..17, 31, 64, 127,
 *                              128, 256, 1000, 4096} on small shapes, real
 *                              layer shapes of Llama-2/3 7B..70B, all groups
 *   MARLIN_KERNEL_TEST_QUICK=1 a small subset (for compute-sanitizer)
 *   MARLIN_KERNEL_TEST_PIPE=cpasync|bulk|mbar|cpasync2  one pipeline only;
 *                              the sweeps then use its family's heuristic
 *   MARLIN_KERNEL_TEST_VERBOSE=1  one line of error statistics per case
 *   MARLIN_KERNEL_TEST_DUMP=DIR   raw inputs and output of the first few
 *                              failing cases (for offline analysis)
 *
 * Tolerance (derived; see check_output). For one output element with
 * exact value C = sum_k A_k W_k and S = sum_k |A_k W_k|:
 *  - grouped mode rounds each W_k = (q-8)*s to fp16: |error| <= 2^-11 |W_k|,
 *    so at most 2^-11 * S on C (per-channel mode multiplies the fp32 sum by
 *    s instead: no such term);
 *  - fp32 accumulation: the tensor cores add 16 exact products at a time
 *    into fp32 (alignment + truncation: assume 2 ulps = 2^-22 relative per
 *    step), k/16 steps in sequence plus at most 8 levels of cross-warp and
 *    cross-block sums: (k/16 + 8) * 2^-22 * S;
 *  - the output is rounded to fp16 once: 2^-11 |C|, plus 2^-24 absolute
 *    for the subnormal range.
 * The reference C is computed in double from the exact fp32 W, so its own
 * error is negligible (k * 2^-53 S). Every element must satisfy
 *   |C_gpu - C_ref| <= 1.01 * (2^-11 |C_ref| + (g_term + (k/16+8) 2^-22) S)
 *                      + 2^-24,
 * and, as the reference implementation's acceptance test does, the mean
 * relative error mean|C_gpu - C_ref| / mean|C_ref| must stay below 1e-3
 * (for correct code it is about 2.5e-4 per-channel, 4e-4 grouped: fp16
 * output rounding averages 2^-12 relative). NaN/inf never pass.
 */
#include "testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_dense_tiles.h" /* private: the work-partition rules */
#include "marlin_kernels.h"
#include "marlin_pack.h"

/* ------------------------------------------------------------------ utils */

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static uint64_t case_seed(uint64_t base, int64_t a, int64_t b, int64_t c, int64_t d) {
    /* A fresh, reproducible seed per shape: mix the shape into the base. */
    marlin_rng r;
    marlin_rng_seed(&r, base ^ (uint64_t)(a * 0x9e3779b97f4a7c15ull) ^
                            (uint64_t)(b * 0xc2b2ae3d27d4eb4full) ^
                            (uint64_t)(c * 0x165667b19e3779f9ull) ^
                            (uint64_t)(d * 0x27d4eb2f165667c5ull));
    return marlin_rng_u64(&r);
}

/* One quantized layer: codes, natural scales, packed B/s and exact W. */
typedef struct layer {
    int64_t n, k;
    int32_t g;
    uint64_t seed;
    uint8_t *q;      /* (n, k) codes */
    uint16_t *s;     /* (G, n) natural fp16 scales */
    uint32_t *B;     /* (k/16, 2n) packed */
    uint16_t *sp;    /* (G, n) permuted */
    float *W;        /* (k, n) exact (q-8)*s */
    float *Wabs;     /* |W| */
    double *Wd;      /* W in double (reference GEMM) */
} layer;

static void layer_free(layer *L) {
    free(L->q);
    free(L->s);
    free(L->B);
    free(L->sp);
    free(L->W);
    free(L->Wabs);
    free(L->Wd);
    memset(L, 0, sizeof *L);
}

/* Random codes 0..15 and scales in [0.001, 0.02] (the range of real INT4
 * layers: |w| up to ~0.15), packed by pack/ exactly as a checkpoint. */
static void layer_make(layer *L, int64_t n, int64_t k, int32_t g, uint64_t seed) {
    marlin_error err = {0};
    const int64_t G = marlin_pack_groups(k, g);
    marlin_rng r;
    memset(L, 0, sizeof *L);
    L->n = n;
    L->k = k;
    L->g = g;
    L->seed = seed;
    L->q = malloc((size_t)(n * k));
    L->s = malloc((size_t)(G * n) * 2);
    L->B = malloc((size_t)(k / 16) * (size_t)(2 * n) * 4);
    L->sp = malloc((size_t)(G * n) * 2);
    L->W = malloc((size_t)(k * n) * 4);
    L->Wabs = malloc((size_t)(k * n) * 4);
    L->Wd = malloc((size_t)(k * n) * 8);
    assert_non_null(L->q);
    assert_non_null(L->s);
    assert_non_null(L->B);
    assert_non_null(L->sp);
    assert_non_null(L->W);
    assert_non_null(L->Wabs);
    assert_non_null(L->Wd);
    marlin_rng_seed(&r, seed);
    for (int64_t i = 0; i < n * k; i += 16) {
        uint64_t v = marlin_rng_u64(&r);
        for (int t = 0; t < 16 && i + t < n * k; t++) L->q[i + t] = (uint8_t)((v >> (4 * t)) & 15);
    }
    for (int64_t i = 0; i < G * n; i++)
        L->s[i] = marlin_float_to_half(0.001f + 0.019f * (float)marlin_rng_uniform(&r));
    marlin_status st = marlin_pack_dense(L->q, L->s, n, k, g, 0, L->B, L->sp, &err);
    MT_ASSERT(seed, st == MARLIN_OK, "pack: %s", err.msg);
    const int64_t gs = (g == -1) ? k : g;
    for (int64_t c = 0; c < k; c++)
        for (int64_t o = 0; o < n; o++) {
            float w = (float)((int)L->q[o * k + c] - 8) *
                      marlin_half_to_float(L->s[(c / gs) * n + o]);
            L->W[c * n + o] = w;
            L->Wabs[c * n + o] = fabsf(w);
            L->Wd[c * n + o] = (double)w;
        }
}

static void random_a(uint16_t *A, int64_t count, uint64_t seed) {
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    for (int64_t i = 0; i < count; i++)
        A[i] = marlin_float_to_half(2.0f * (float)marlin_rng_uniform(&r) - 1.0f);
}

typedef struct check_stats {
    double max_ratio; /* max |d| / tol */
    double mean_rel;  /* mean|d| / mean|ref| */
    int64_t bad;      /* elements over tol or not finite */
} check_stats;

/* Compares the GPU output C16 (m, n fp16) of A (m, k) x L against a double
 * reference, element by element (see the file comment for the bound). */
static check_stats check_output(const layer *L, const uint16_t *A, const uint16_t *C16,
                                int64_t m, const char *what) {
    const int64_t n = L->n, k = L->k;
    double *Ad = malloc((size_t)(m * k) * 8);
    float *Aabs = malloc((size_t)(m * k) * 4);
    double *Cref = malloc((size_t)(m * n) * 8);
    float *S = malloc((size_t)(m * n) * 4);
    check_stats cs = {0, 0, 0};
    assert_non_null(Ad);
    assert_non_null(Aabs);
    assert_non_null(Cref);
    assert_non_null(S);
    for (int64_t i = 0; i < m * k; i++) {
        float a = marlin_half_to_float(A[i]);
        Ad[i] = a;
        Aabs[i] = fabsf(a);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, Ad,
                (int)k, L->Wd, (int)n, 0.0, Cref, (int)n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, Aabs,
                (int)k, L->Wabs, (int)n, 0.0f, S, (int)n);
    const bool grouped = marlin_pack_scales_grouped(k, L->g);
    const double g_term = grouped ? ldexp(1.0, -11) : 0.0;
    const double acc_term = (double)(k / 16 + 8) * ldexp(1.0, -22);
    double sum_d = 0, sum_ref = 0;
    int reported = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            const double ref = Cref[i * n + j];
            const double got = marlin_half_to_float(C16[i * n + j]);
            const double tol = 1.01 * (ldexp(fabs(ref), -11) + (g_term + acc_term) * S[i * n + j]) +
                               ldexp(1.0, -24);
            const double d = fabs(got - ref);
            if (!isfinite(got) || !(d <= tol)) {
                if (what && reported < 8)
                    print_error("%s: C[%lld][%lld] = %.8g (bits 0x%04x), reference %.8g, "
                                "tolerance %.3g\n",
                                what, (long long)i, (long long)j, got, C16[i * n + j], ref, tol);
                reported++;
                cs.bad++;
                continue;
            }
            if (d / tol > cs.max_ratio) cs.max_ratio = d / tol;
            sum_d += d;
            sum_ref += fabs(ref);
        }
    cs.mean_rel = sum_ref > 0 ? sum_d / sum_ref : 0.0;

    free(Ad);
    free(Aabs);
    free(Cref);
    free(S);
    return cs;
}

/* ------------------------------------------------------- CPU-only cases */

static void test_kernels_check_shape(void **state) {
    (void)state;
    marlin_error err = {0};
    assert_int_equal(marlin_dense_check_shape(1, 64, 128, 128, &err), MARLIN_OK);
    assert_int_equal(marlin_dense_check_shape(0, 4096, 4096, -1, &err), MARLIN_OK);
    assert_int_equal(marlin_dense_check_shape(4096, 28672, 8192, 32, &err), MARLIN_OK);
    assert_int_equal(marlin_dense_check_shape(-1, 64, 128, 128, &err), MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, 96, 128, 128, &err), MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n = 96"));
    assert_int_equal(marlin_dense_check_shape(1, 0, 128, 128, &err), MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, 64, 192, 64, &err), MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "k = 192"));
    assert_int_equal(marlin_dense_check_shape(1, 64, 128, 16, &err), MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, 64, 128, 256, &err), MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, 64, 128, 0, &err), MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, ((int64_t)1 << 24) + 64, 128, 128, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, 64, ((int64_t)1 << 24) + 128, 128, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, (int64_t)1 << 24, (int64_t)1 << 17, -1, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_dense_check_shape(1, (int64_t)1 << 24, (int64_t)1 << 15, -1, &err),
                     MARLIN_OK);
}

static void test_kernels_workspace_bytes(void **state) {
    (void)state;
    assert_int_equal(marlin_dense_workspace_bytes(0, 4096, 132), 0);
    assert_int_equal(marlin_dense_workspace_bytes(16, 100, 132), 0);
    assert_int_equal(marlin_dense_workspace_bytes(16, 4096, 0), 0);
    assert_int_equal(marlin_dense_workspace_counter_bytes(16, 96), 0);
    size_t prev = 0;
    for (int64_t m = 1; m <= 4096; m *= 2) {
        size_t w = marlin_dense_workspace_bytes(m, 4096, 132);
        size_t c = marlin_dense_workspace_counter_bytes(m, 4096);
        assert_true(w >= prev);
        assert_true(c > 0 && c % 256 == 0 && c < w);
        /* One counter per 64-column x 16-row tile at least. */
        assert_true(c >= (size_t)(4096 / 64) * (size_t)((m + 15) / 16) * 4);
        prev = w;
    }
    assert_true(marlin_dense_workspace_bytes(64, 8192, 132) >
                marlin_dense_workspace_bytes(64, 4096, 132));
}

/* The heuristic only returns instantiated tiles that fit the GPU. */
static void test_kernels_pick_tile(void **state) {
    (void)state;
    marlin_dense_tile tiles[64];
    int nt = marlin_dense_tiles(tiles, 64);
    assert_true(nt > 0 && nt <= 64);
    const int64_t smem[] = {99 * 1024, 163 * 1024, 227 * 1024}; /* sm_86, sm_80, sm_90 */
    const int64_t ns[] = {64, 128, 192, 256, 4096, 6144, 22016, 57344};
    for (int si = 0; si < 3; si++)
        for (int ni = 0; ni < 8; ni++)
            for (int64_t m = 1; m <= 300; m += (m < 70 ? 1 : 37)) {
                for (int gi = 0; gi < 2; gi++) {
                    marlin_error err = {0};
                    marlin_dense_tile t;
                    int32_t g = gi ? 128 : -1;
                    assert_int_equal(
                        marlin_dense_pick_tile(m, ns[ni], 4096, g, 132, smem[si], &t, &err),
                        MARLIN_OK);
                    /* the shape exists in the family of the pipeline it
                     * comes with (CPASYNC2 shapes only with CPASYNC2) */
                    const int fam = t.pipeline == MARLIN_DENSE_PIPE_CPASYNC2
                                        ? MARLIN_DENSE_PIPE_CPASYNC2
                                        : 0;
                    int found = 0;
                    for (int i = 0; i < nt; i++)
                        found |= tiles[i].m_blocks == t.m_blocks && tiles[i].n == t.n &&
                                 tiles[i].k == t.k && tiles[i].pipeline == fam;
                    assert_true(found);
                    assert_int_equal(ns[ni] % t.n, 0);
                    assert_int_equal(4096 % t.k, 0);
                    assert_true(t.stages >= 2 && t.stages <= 8);
                    assert_true(t.blocks_per_sm == 1 || t.blocks_per_sm == 2);
                    assert_true(m > 64 ? t.m_blocks == 4 : t.m_blocks * 16 >= m);
                }
            }
}

/* The cluster path's automatic rule (marlin_dense_pick_cluster, pure): on
 * the measured Llama layers of <= 40 MB at m <= 16 (<= 10 MB at 17-32
 * rows) it picks 128 x 256
 * tiles, 2 stages and the cluster size that puts the grid nearest 1.45
 * blocks per SM; larger layers, m > 16 and shapes it cannot tile keep the
 * stream-K tile (0 returned, *tile untouched). */
static void test_kernels_pick_cluster(void **state) {
    (void)state;
    const int64_t smem = 232448; /* H100 opt-in */
    marlin_dense_tile t, keep;
    memset(&keep, 0x5a, sizeof keep);
    /* Llama-2-7B o_proj, 132 SMs: 32 slices x 6 = 192 blocks (1.45/SM) */
    t = keep;
    assert_int_equal(marlin_dense_pick_cluster(1, 4096, 4096, 128, 132, smem, &t), 1);
    assert_int_equal(t.m_blocks, 1);
    assert_int_equal(t.n, 128);
    assert_int_equal(t.k, 256);
    assert_int_equal(t.stages, 2);
    assert_int_equal(t.pipeline, MARLIN_DENSE_PIPE_CPASYNC2);
    assert_int_equal(t.cluster_k, 6);
    /* Llama-2-7B qkv (25 MB): 96 slices x 2 */
    t = keep;
    assert_int_equal(marlin_dense_pick_cluster(16, 12288, 4096, 128, 132, smem, &t), 1);
    assert_int_equal(t.cluster_k, 2);
    /* per-channel scales and group 32 take the same path */
    assert_int_equal(marlin_dense_pick_cluster(7, 4096, 11008, -1, 132, smem, &t), 1);
    assert_int_equal(marlin_dense_pick_cluster(7, 4096, 11008, 32, 132, smem, &t), 1);
    /* k not a multiple of 256: 128-deep stages; the size never exceeds
     * the k tiles (k = 384: 3) */
    t = keep;
    assert_int_equal(marlin_dense_pick_cluster(1, 8192, 384, 128, 132, smem, &t), 1);
    assert_int_equal(t.k, 128);
    assert_int_equal(t.cluster_k, 3);
    assert_int_equal(marlin_dense_pick_cluster(1, 8192, 256, 128, 132, smem, &t), 0);
    /* not chosen: m > 32, > 40 MB of weights (Llama-2-70B gate_up), n not a
     * multiple of 128, too few slices for 0.6 blocks per SM, a shape
     * outside the contract, > 10 MB at 17-32 rows; *tile is left alone */
    /* 17-32 rows: two row chunks, layers of <= 10 MB, 3 stages, ~1 block
     * per SM (Llama-2-7B o_proj: 32 slices x 2 chunks x 2) */
    t = keep;
    assert_int_equal(marlin_dense_pick_cluster(17, 4096, 4096, 128, 132, smem, &t), 1);
    assert_int_equal(t.stages, 3);
    assert_int_equal(t.cluster_k, 2);
    assert_int_equal(marlin_dense_pick_cluster(32, 4096, 4096, 128, 132, smem, &t), 1);
    const int64_t no[][3] = {{33, 4096, 4096},   {1, 57344, 8192}, {1, 4160, 4096},
                             {1, 128, 4096},     {0, 4096, 4096},  {1, 4096, 4000},
                             {17, 12288, 4096}};
    for (int i = 0; i < 7; i++) {
        t = keep;
        assert_int_equal(marlin_dense_pick_cluster(no[i][0], no[i][1], no[i][2], 128, 132, smem,
                                                   &t),
                         0);
        assert_memory_equal(&t, &keep, sizeof t);
    }
    assert_int_equal(marlin_dense_pick_cluster(1, 4096, 4096, 128, 132, smem, NULL), 0);
}

/* marlin_dense_pick_tile_pipe: each family's heuristic returns one of its
 * own shapes, dividing n and k and fitting the shared memory; CPASYNC2
 * falls back to CPASYNC where it has no tile (n not a multiple of 128). */
static void test_kernels_pick_tile_pipe(void **state) {
    (void)state;
    marlin_dense_tile tiles[64];
    const int nt = marlin_dense_tiles(tiles, 64);
    const int64_t smem[] = {99 * 1024, 163 * 1024, 227 * 1024};
    const int64_t shapes[][2] = {{4096, 12288}, {4096, 4096}, {11008, 4096}, {4096, 22016},
                                 {8192, 57344}, {28672, 8192}, {640, 192}, {1024, 768},
                                 {16384, 64},   {384, 256}};
    const int pipes[] = {MARLIN_DENSE_PIPE_CPASYNC, MARLIN_DENSE_PIPE_BULK,
                         MARLIN_DENSE_PIPE_MBAR, MARLIN_DENSE_PIPE_CPASYNC2};
    for (int si = 0; si < 3; si++)
        for (int hi = 0; hi < 10; hi++)
            for (int pi = 0; pi < 4; pi++)
                for (int64_t m = 1; m <= 300; m += (m < 70 ? 3 : 50)) {
                    const int64_t k = shapes[hi][0], n = shapes[hi][1];
                    marlin_error err = {0};
                    marlin_dense_tile t;
                    assert_int_equal(marlin_dense_pick_tile_pipe(m, n, k, 128, 132, smem[si],
                                                                 pipes[pi], &t, &err),
                                     MARLIN_OK);
                    const int want = (pipes[pi] == MARLIN_DENSE_PIPE_CPASYNC2 && n % 128 != 0)
                                         ? MARLIN_DENSE_PIPE_CPASYNC
                                         : pipes[pi];
                    assert_int_equal(t.pipeline, want);
                    const int fam = want == MARLIN_DENSE_PIPE_CPASYNC2 ? want : 0;
                    int found = 0;
                    for (int i = 0; i < nt; i++)
                        found |= tiles[i].m_blocks == t.m_blocks && tiles[i].n == t.n &&
                                 tiles[i].k == t.k && tiles[i].pipeline == fam;
                    assert_true(found);
                    assert_int_equal(n % t.n, 0);
                    assert_int_equal(k % t.k, 0);
                    assert_true(t.stages >= 2 && t.stages <= 8);
                    assert_true(t.blocks_per_sm == 1 || t.blocks_per_sm == 2);
                    /* shared memory of the chosen depth and occupancy fits */
                    const int64_t stage = MARLIN_DENSE_STAGE_BYTES(t.m_blocks, t.n / 16,
                                                                   t.k / 16, 1);
                    const int64_t red = fam ? MARLIN_DENSE_V2_RED_BYTES : MARLIN_DENSE_RED_BYTES;
                    assert_true(t.blocks_per_sm * (t.stages * stage + red + 1024) <=
                                smem[si] + 1024);
                }
    marlin_error err = {0};
    marlin_dense_tile t;
    assert_int_equal(marlin_dense_pick_tile_pipe(1, 4096, 4096, 128, 132, 227 * 1024, 6, &t, &err),
                     MARLIN_ERR_INVALID_ARG);
}

/* The wgmma rule (pure): taken above 16 rows when n % 256 == 0 and the
 * stages fit, except where the cluster path takes a 17-32-row layer
 * (<= 10 MB); batch width 32/64/128 by m (64 for a small layer at m > 64,
 * one piece per SM); its k pieces: each >= 512 deep, at most 16, one wave
 * of resident blocks or, where one piece would leave SMs idle, up to 4 that
 * fill whole waves (the measured choices on the Llama-2-7B layers,
 * kernels/marlin_dense_host.c). */
static void test_kernels_pick_wgmma(void **state) {
    (void)state;
    marlin_dense_tile t;
    memset(&t, 0, sizeof t);
    const int64_t smem = 232448; /* H100 opt-in */
    assert_int_equal(marlin_dense_pick_wgmma(16, 12288, 4096, 128, 132, smem, &t), 0);
    /* 17-32 rows on a small layer: the cluster path's (session 6 run 4) */
    assert_int_equal(marlin_dense_pick_cluster(32, 4096, 4096, 128, 132, smem, &t), 1);
    assert_int_equal(marlin_dense_pick_wgmma(32, 4096, 4096, 128, 132, smem, &t), 0);
    assert_int_equal(marlin_dense_pick_wgmma(64, 4096 + 128, 4096, 128, 132, smem, &t), 0);
    assert_int_equal(marlin_dense_pick_wgmma(64, 4096, 4096, 100, 132, smem, &t), 0);
    assert_int_equal(marlin_dense_pick_wgmma(64, 4096, 4096, 128, 132, 48 * 1024, &t), 0);
    const int64_t ms[] = {17, 32, 33, 48, 49, 64, 65, 128, 129, 4096};
    const int want_mb[] = {2, 2, 4, 4, 4, 4, 8, 8, 8, 8};
    for (int i = 0; i < 10; i++) {
        memset(&t, 0, sizeof t);
        assert_int_equal(marlin_dense_pick_wgmma(ms[i], 12288, 4096, 128, 132, smem, &t), 1);
        assert_int_equal(t.pipeline, MARLIN_DENSE_PIPE_WGMMA);
        assert_int_equal(t.m_blocks, want_mb[i]);
        assert_int_equal(t.n, 256);
        assert_int_equal(t.k, 64);
        assert_true(t.stages >= 4 && t.stages <= MARLIN_DENSE_MAX_STAGES);
    }
    /* the bench's family pick: any m, v2 where n % 256 != 0 */
    marlin_error err = {0};
    assert_int_equal(marlin_dense_pick_tile_pipe(1, 4096, 4096, 128, 132, smem,
                                                 MARLIN_DENSE_PIPE_WGMMA, &t, &err),
                     MARLIN_OK);
    assert_int_equal(t.pipeline, MARLIN_DENSE_PIPE_WGMMA);
    assert_int_equal(t.m_blocks, 2);
    assert_int_equal(marlin_dense_pick_tile_pipe(1, 4096 + 128, 4096, 128, 132, smem,
                                                 MARLIN_DENSE_PIPE_WGMMA, &t, &err),
                     MARLIN_OK);
    assert_int_equal(t.pipeline, MARLIN_DENSE_PIPE_CPASYNC2);
    const int64_t kn[][2] = {{4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096},
                             {64, 256},     {128, 65536}, {28672, 8192}, {8192, 57344}};
    const int sms[] = {132, 114, 108, 1};
    for (int i = 0; i < 8; i++)
        for (int si = 0; si < 4; si++)
            for (int64_t m = 1; m <= 1024; m *= 4) {
                const int64_t k = kn[i][0], n = kn[i][1];
                const int S = marlin_dense_wgmma_splits(m, n, k, 0, sms[si]);
                const int64_t nb = m <= 32 ? 32 : m <= 64 ? 64 : 128;
                const int64_t tiles = ((m + nb - 1) / nb) * (n / 256);
                const int64_t slots = (int64_t)sms[si] * (nb <= 64 ? 2 : 1);
                /* pieces >= 512 deep, <= 16 of them; one wave, or 2-4
                 * pieces of fewer tiles than 70% of the slots */
                assert_true(S >= 1 && S <= 16);
                if (S > 1) {
                    assert_true(64 * 8 * (int64_t)S <= k);
                    assert_true(tiles * S <= slots || (S <= 4 && 10 * tiles < 7 * slots));
                }
            }
    /* Llama-2-7B at m = 128 on 132 SMs, 128-row tiles: qkv 2 pieces,
     * o_proj 8, gate_up 3 (86 tiles: 1.95 waves), down 8 */
    const int want7b[] = {2, 8, 3, 8};
    for (int i = 0; i < 4; i++)
        assert_int_equal(marlin_dense_wgmma_splits(128, kn[i][1], kn[i][0], 0, 132), want7b[i]);
    /* The tiles the rule sets (m, n, k -> rows / 16, pieces (0: the
     * launch's rule), stages), Llama-2-7B on 132 SMs: o_proj at m = 128
     * would cut 128-row tiles into pieces 512 deep, so 64-row tiles x 4
     * pieces (one per SM, set in the tile); qkv keeps its 128-row tile and
     * the rule's pieces; 32-row tiles take 6 stages where the pieces are
     * >= 16 stages deep (gate_up at m = 32: 3 pieces of 21), else 4
     * (down_proj: 16 pieces of 10) */
    const int64_t picks[][6] = {{128, 4096, 4096, 4, 4, 4},
                                {128, 12288, 4096, 8, 0, 4},
                                {32, 22016, 4096, 2, 0, 6},
                                {32, 4096, 11008, 2, 0, 4}};
    for (int i = 0; i < 4; i++) {
        memset(&t, 0, sizeof t);
        assert_int_equal(
            marlin_dense_pick_wgmma(picks[i][0], picks[i][1], picks[i][2], 128, 132, smem, &t), 1);
        assert_int_equal(t.m_blocks, picks[i][3]);
        assert_int_equal(t.k_splits, picks[i][4]);
        assert_int_equal(t.stages, picks[i][5]);
    }
    /* m = 64: two pieces per SM (down_proj 16, qkv 5) */
    assert_int_equal(marlin_dense_wgmma_splits(64, 4096, 11008, 0, 132), 16);
    assert_int_equal(marlin_dense_wgmma_splits(64, 12288, 4096, 0, 132), 5);
    /* a forced narrower tile: its own tile count (m = 300 in 32-row tiles:
     * 10 x 5 tiles, 264 slots: 5 pieces) */
    assert_int_equal(marlin_dense_wgmma_splits(300, 1280, 4096, 2, 132), 5);
}

/* pack/ -> marlin_dense_dequant_ref gives back (q-8)*s exactly. */
static void test_kernels_dequant_ref_exact(void **state) {
    (void)state;
    const uint64_t base = marlin_test_seed(0x6b65726e656c31ull);
    const int64_t shapes[][2] = {{64, 128}, {192, 256}, {128, 384}, {320, 1024}};
    const int32_t groups[] = {-1, 32, 64, 128};
    for (int si = 0; si < 4; si++)
        for (int gi = 0; gi < 4; gi++) {
            const int64_t n = shapes[si][0], k = shapes[si][1];
            const uint64_t seed = case_seed(base, n, k, groups[gi], 1);
            layer L;
            marlin_error err = {0};
            layer_make(&L, n, k, groups[gi], seed);
            float *W = malloc((size_t)(k * n) * 4);
            assert_non_null(W);
            MT_ASSERT(seed,
                      marlin_dense_dequant_ref(L.B, L.sp, n, k, groups[gi], W, &err) == MARLIN_OK,
                      "%s", err.msg);
            for (int64_t i = 0; i < k * n; i++)
                MT_ASSERT(seed, W[i] == L.W[i], "W[%lld] = %g, expected %g (n %lld k %lld g %d)",
                          (long long)i, W[i], L.W[i], (long long)n, (long long)k, groups[gi]);
            free(W);
            layer_free(&L);
        }
}

/* marlin_dense_gemm_ref against a plain double loop. */
static void test_kernels_gemm_ref(void **state) {
    (void)state;
    const uint64_t base = marlin_test_seed(0x6b65726e656c32ull);
    const int64_t m = 7, n = 192, k = 256;
    for (int gi = 0; gi < 2; gi++) {
        const int32_t g = gi ? 64 : -1;
        const uint64_t seed = case_seed(base, m, n, k, g);
        layer L;
        marlin_error err = {0};
        layer_make(&L, n, k, g, seed);
        uint16_t *A = malloc((size_t)(m * k) * 2);
        float *C = malloc((size_t)(m * n) * 4);
        assert_non_null(A);
        assert_non_null(C);
        random_a(A, m * k, seed + 1);
        MT_ASSERT(seed, marlin_dense_gemm_ref(A, L.B, L.sp, C, m, n, k, g, &err) == MARLIN_OK,
                  "%s", err.msg);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double ref = 0, S = 0;
                for (int64_t c = 0; c < k; c++) {
                    double p = (double)marlin_half_to_float(A[i * k + c]) * L.W[c * n + j];
                    ref += p;
                    S += fabs(p);
                }
                /* fp32 sgemm: at most k roundings of 2^-24 relative to S. */
                MT_ASSERT(seed, fabs(C[i * n + j] - ref) <= (double)k * ldexp(S, -24) + 1e-30,
                          "C[%lld][%lld] = %g, expected %g", (long long)i, (long long)j,
                          C[i * n + j], ref);
            }
        assert_int_equal(marlin_dense_gemm_ref(A, L.B, L.sp, C, m, 100, k, g, &err),
                         MARLIN_ERR_SHAPE);
        free(A);
        free(C);
        layer_free(&L);
    }
}

/* The stream-K partition the kernel uses (marlin_dense_tiles.h): every unit
 * has exactly one owner, blocks differ by at most one unit, and the partial
 * slot a block writes for a slice (by its own range) is the one the slice's
 * reducer reads (by the owner rule), never used twice by one block. */
static void test_kernels_partition_rules(void **state) {
    (void)state;
    const uint64_t seed = marlin_test_seed(0x7061727469ull);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    for (int trial = 0; trial < 3000; trial++) {
        const int k_tiles = 1 + (int)(marlin_rng_u64(&r) % 300);
        const int slices = 1 + (int)(marlin_rng_u64(&r) % 200);
        const int total = k_tiles * slices;
        int blocks = 1 + (int)(marlin_rng_u64(&r) % 300);
        if (blocks > total) blocks = total;
        int *slot_used = calloc((size_t)blocks * 2, sizeof *slot_used);
        assert_non_null(slot_used);
        MT_ASSERT(seed, mk_dense_unit_begin(0, total, blocks) == 0 &&
                            mk_dense_unit_begin(blocks, total, blocks) == total,
                  "range ends (trial %d)", trial);
        for (int b = 0; b < blocks; b++) {
            const int len = mk_dense_unit_begin(b + 1, total, blocks) -
                            mk_dense_unit_begin(b, total, blocks);
            MT_ASSERT(seed, len == total / blocks || len == total / blocks + 1,
                      "block %d has %d units (T %d, B %d)", b, len, total, blocks);
        }
        for (int u = 0; u < total; u++) {
            const int o = mk_dense_unit_owner(u, total, blocks);
            MT_ASSERT(seed,
                      o >= 0 && o < blocks && mk_dense_unit_begin(o, total, blocks) <= u &&
                          u < mk_dense_unit_begin(o + 1, total, blocks),
                      "owner of unit %d is %d (T %d, B %d)", u, o, total, blocks);
        }
        for (int sl = 0; sl < slices; sl++) {
            const int s0 = sl * k_tiles, s1 = s0 + k_tiles; /* [s0, s1) */
            const int bf = mk_dense_unit_owner(s0, total, blocks);
            const int bl = mk_dense_unit_owner(s1 - 1, total, blocks);
            if (bf == bl) continue; /* written straight to C */
            for (int b = bf; b <= bl; b++) {
                const int ub = mk_dense_unit_begin(b, total, blocks);
                const int ue = mk_dense_unit_begin(b + 1, total, blocks);
                /* writer's rule: its segment starts at its own first unit */
                const int seg0 = ub > s0 ? ub : s0;
                const int writer_slot = (seg0 == ub) ? 0 : 1;
                /* reader's rule, as the kernel evaluates it */
                const int first_inside = mk_dense_unit_begin(bf, total, blocks) == s0;
                const int reader_slot = (b > bf || first_inside) ? 0 : 1;
                MT_ASSERT(seed, writer_slot == reader_slot, "slot mismatch");
                MT_ASSERT(seed, ub < s1 && ue > s0, "block %d does not overlap slice %d", b, sl);
                MT_ASSERT(seed, !slot_used[2 * b + writer_slot],
                          "block %d writes slot %d twice", b, writer_slot);
                slot_used[2 * b + writer_slot] = 1;
            }
        }
        free(slot_used);
    }
}

/* The Hopper kernels load a lane's 4 group scales as one 8-byte word
 * (marlin_dense_sm90a.cu, wg_decode_step): thread t of 256 owns output
 * columns mk_dense_wg_fcol(t, i, h), i, h in {0, 1}, of its block's 256,
 * and both stored scale permutations must put them at 4 consecutive,
 * 8-byte-aligned places, half 2 i + h. A change to either permutation (or
 * to the column map) that broke this would decode with wrong scales. */
static void test_kernels_wg_scale_words(void **state) {
    (void)state;
    for (int sparse = 0; sparse < 2; sparse++)
        for (int t = 0; t < 256; t++) {
            int64_t base = -1;
            for (int i = 0; i < 2; i++)
                for (int h = 0; h < 2; h++) {
                    const int64_t col = mk_dense_wg_fcol(t, i, h, sparse != 0);
                    /* a block's 256 columns at an arbitrary 256-column tile */
                    const int64_t x = 256 * 7 + col;
                    const int64_t st = sparse ? marlin_pack_24_scale_col(x, true)
                                              : marlin_pack_dense_scale_col(x, true);
                    if (base < 0) base = st;
                    if (st != base + 2 * i + h || base % 4 != 0)
                        fail_msg("%s thread %d: column %lld stored at %lld, expected %lld + %d",
                                 sparse ? "2:4" : "dense", t, (long long)x, (long long)st,
                                 (long long)base, 2 * i + h);
                }
        }
}

/* A CPU-only build reports the GPU entry points as a disabled feature. */
static void test_kernels_without_cuda(void **state) {
    (void)state;
#ifdef MARLIN_HAVE_CUDA
    print_message("built with CUDA: the disabled-feature path does not exist here\n");
    skip();
#else
    marlin_error err = {0};
    marlin_gpu_info info;
    void *p = (void *)1;
    assert_int_equal(marlin_gpu_probe(0, &info, &err), MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "built without CUDA"));
    assert_int_equal(marlin_gpu_alloc(&p, 16, &err), MARLIN_ERR_UNSUPPORTED);
    assert_null(p);
    marlin_dense_args a;
    memset(&a, 0, sizeof a);
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "built without CUDA"));
    marlin_cublas *h = (marlin_cublas *)1;
    assert_int_equal(marlin_cublas_create(&h, NULL, &err), MARLIN_ERR_UNSUPPORTED);
    assert_null(h);
    assert_int_equal(marlin_dense_wgmma_built(), 0);
    assert_int_equal(marlin_dense_trace_built(), 0);
    marlin_stream_floor_args fa;
    memset(&fa, 0, sizeof fa);
    assert_int_equal(marlin_stream_floor(&fa, &err), MARLIN_ERR_UNSUPPORTED);
#endif
}

/* -------------------------------------------------------------- GPU cases */

typedef struct gpu_ctx {
    int ok;
    char why[MARLIN_ERRMSG_MAX + 64];
    marlin_gpu_info info;
    void *stream;
    void *ws;
    size_t ws_bytes;
    int64_t ws_max_m, ws_max_n;
} gpu_ctx;

static gpu_ctx g_gpu;

#define GPU_MAX_M 4096
#define GPU_MAX_N 28672

static int gpu_setup(void **state) {
    (void)state;
    marlin_error err = {0};
    memset(&g_gpu, 0, sizeof g_gpu);
    marlin_status st = marlin_gpu_probe(-1, &g_gpu.info, &err);
    if (st != MARLIN_OK) {
        snprintf(g_gpu.why, sizeof g_gpu.why, "%s: %s", marlin_status_str(st), err.msg);
        return 0;
    }
    g_gpu.ws_max_m = GPU_MAX_M;
    g_gpu.ws_max_n = GPU_MAX_N;
    g_gpu.ws_bytes = marlin_dense_workspace_bytes(GPU_MAX_M, GPU_MAX_N, g_gpu.info.sm_count);
    if (marlin_gpu_stream_create(&g_gpu.stream, &err) ||
        marlin_gpu_alloc(&g_gpu.ws, g_gpu.ws_bytes, &err) ||
        marlin_gpu_memset(g_gpu.ws, 0, g_gpu.ws_bytes, &err)) {
        snprintf(g_gpu.why, sizeof g_gpu.why, "GPU set-up failed: %s", err.msg);
        return -1;
    }
    print_message("GPU: %s (sm_%d%d, %d SMs, %lld KB shared/block), workspace %zu bytes\n",
                  g_gpu.info.name, g_gpu.info.cc_major, g_gpu.info.cc_minor, g_gpu.info.sm_count,
                  (long long)g_gpu.info.smem_optin_bytes / 1024, g_gpu.ws_bytes);
    g_gpu.ok = 1;
    return 0;
}

static int gpu_teardown(void **state) {
    (void)state;
    marlin_gpu_free(g_gpu.ws);
    marlin_gpu_stream_destroy(g_gpu.stream);
    memset(&g_gpu, 0, sizeof g_gpu);
    return 0;
}

#define NEED_GPU()                                                                 \
    do {                                                                           \
        if (!g_gpu.ok) {                                                           \
            print_message("skipped: no usable GPU (%s)\n", g_gpu.why);             \
            skip();                                                                \
        }                                                                          \
    } while (0)

/* MARLIN_KERNEL_TEST_PIPE=cpasync|bulk|mbar|cpasync2 restricts the GPU
 * cases to one pipeline (the automatic sweeps then use that family's
 * heuristic): a short run for compute-sanitizer, or a family's own sweep.
 * Returns 0 (all) or the pipeline. */
static int test_pipe(void) {
    const char *v = getenv("MARLIN_KERNEL_TEST_PIPE");
    if (!v || !*v) return 0;
    if (!strcmp(v, "cpasync")) return MARLIN_DENSE_PIPE_CPASYNC;
    if (!strcmp(v, "bulk")) return MARLIN_DENSE_PIPE_BULK;
    if (!strcmp(v, "mbar")) return MARLIN_DENSE_PIPE_MBAR;
    if (!strcmp(v, "cpasync2")) return MARLIN_DENSE_PIPE_CPASYNC2;
    if (!strcmp(v, "wgmma")) return MARLIN_DENSE_PIPE_WGMMA;
    return 0;
}

/* The shared-memory pipelines this GPU runs: cp.async (both main loops)
 * everywhere, the mbarrier ones on sm_90+. Returns the count. */
static int gpu_has_wgmma(void) {
    return g_gpu.info.cc_major == 9 && marlin_dense_wgmma_built();
}

static int gpu_pipelines(int out[5]) {
    int n = 0;
    const int only = test_pipe();
    out[n++] = MARLIN_DENSE_PIPE_CPASYNC;
    out[n++] = MARLIN_DENSE_PIPE_CPASYNC2;
    if (g_gpu.info.cc_major >= 9) {
        out[n++] = MARLIN_DENSE_PIPE_BULK;
        out[n++] = MARLIN_DENSE_PIPE_MBAR;
    }
    if (gpu_has_wgmma()) out[n++] = MARLIN_DENSE_PIPE_WGMMA;
    if (only) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (out[i] == only) out[k++] = out[i];
        n = k;
    }
    return n;
}

/* Device copies of one layer plus A/C buffers for up to max_m rows. C has
 * 256-byte guards on both sides to catch writes outside [m][n]. */
typedef struct dev_layer {
    void *B, *s, *A, *Cbase;
    uint16_t *C;
    int64_t max_m;
} dev_layer;

#define GUARD 256

static void dev_layer_make(dev_layer *D, const layer *L, int64_t max_m) {
    marlin_error err = {0};
    const int64_t G = marlin_pack_groups(L->k, L->g);
    memset(D, 0, sizeof *D);
    D->max_m = max_m;
    size_t bB = (size_t)(L->k / 16) * (size_t)(2 * L->n) * 4, bs = (size_t)(G * L->n) * 2;
    size_t bA = (size_t)(max_m * L->k) * 2, bC = (size_t)(max_m * L->n) * 2 + 2 * GUARD;
    MT_ASSERT(L->seed,
              !marlin_gpu_alloc(&D->B, bB, &err) && !marlin_gpu_alloc(&D->s, bs, &err) &&
                  !marlin_gpu_alloc(&D->A, bA, &err) && !marlin_gpu_alloc(&D->Cbase, bC, &err),
              "%s", err.msg);
    D->C = (uint16_t *)((char *)D->Cbase + GUARD);
    MT_ASSERT(L->seed,
              !marlin_gpu_upload(D->B, L->B, bB, &err) && !marlin_gpu_upload(D->s, L->sp, bs, &err),
              "%s", err.msg);
}

static void dev_layer_free(dev_layer *D) {
    marlin_gpu_free(D->B);
    marlin_gpu_free(D->s);
    marlin_gpu_free(D->A);
    marlin_gpu_free(D->Cbase);
    memset(D, 0, sizeof *D);
}

/* Failing cases print one line each (and element details for the first
 * few), so that one run on a lent GPU shows the whole failure pattern; the
 * calling test fails at its end when any case failed. */
static int g_detail_budget = 24;

static int g_dump_budget = 4;

/* Writes a failing case's inputs (codes (n,k) u8, natural scales (G,n) f16,
 * A (m,k) f16) and the GPU output (m,n) f16 to $MARLIN_KERNEL_TEST_DUMP. */
static void dump_case(const layer *L, const uint16_t *A, const uint16_t *C, int64_t m,
                      const char *what) {
    const char *dir = getenv("MARLIN_KERNEL_TEST_DUMP");
    char path[4096];
    if (!dir || !*dir || g_dump_budget <= 0) return;
    const int id = 4 - g_dump_budget--;
    const int64_t G = marlin_pack_groups(L->k, L->g);
    snprintf(path, sizeof path, "%s/case%d.txt", dir, id);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "m %lld n %lld k %lld g %d\n%s\n", (long long)m, (long long)L->n, (long long)L->k,
            L->g, what);
    fclose(f);
    snprintf(path, sizeof path, "%s/case%d.q", dir, id);
    marlin_write_file(path, L->q, (size_t)(L->n * L->k));
    snprintf(path, sizeof path, "%s/case%d.s", dir, id);
    marlin_write_file(path, L->s, (size_t)(G * L->n) * 2);
    snprintf(path, sizeof path, "%s/case%d.A", dir, id);
    marlin_write_file(path, A, (size_t)(m * L->k) * 2);
    snprintf(path, sizeof path, "%s/case%d.C", dir, id);
    marlin_write_file(path, C, (size_t)(m * L->n) * 2);
}

/* Runs one GEMM with a poisoned output, checks guards and every element.
 * Returns 1 when the case passed. */
/* The call of layer L's device copy D on m rows: all operands, the shared
 * workspace and stream, automatic tile, no PDL; callers change fields. */
static marlin_dense_args layer_args(const layer *L, const dev_layer *D, int64_t m) {
    marlin_dense_args a;
    memset(&a, 0, sizeof a);
    a.A = D->A;
    a.B = D->B;
    a.s = D->s;
    a.C = D->C;
    a.m = m;
    a.n = L->n;
    a.k = L->k;
    a.group_size = L->g;
    a.workspace = g_gpu.ws;
    a.workspace_bytes = g_gpu.ws_bytes;
    a.stream = g_gpu.stream;
    return a;
}

static int run_case(const layer *L, dev_layer *D, int64_t m, const marlin_dense_tile *tile,
                    void *stream, uint64_t seed, check_stats *out) {
    marlin_error err = {0};
    const int64_t n = L->n, k = L->k;
    char what[256];
    int ok = 1;
    if (tile)
        snprintf(what, sizeof what,
                 "m %lld n %lld k %lld g %d tile %dx%dx%d st %d bps %d pipe %d cluster %d "
                 "splits %d (seed %llu)",
                 (long long)m, (long long)n, (long long)k, L->g, tile->m_blocks, tile->n, tile->k,
                 tile->stages, tile->blocks_per_sm, tile->pipeline, tile->cluster_k,
                 tile->k_splits, (unsigned long long)seed);
    else
        snprintf(what, sizeof what, "m %lld n %lld k %lld g %d auto (seed %llu)", (long long)m,
                 (long long)n, (long long)k, L->g, (unsigned long long)seed);
    assert_true(m <= D->max_m);
    uint16_t *A = malloc((size_t)(m * k) * 2);
    uint16_t *Cg = malloc((size_t)(m * n) * 2 + 2 * GUARD);
    assert_non_null(A);
    assert_non_null(Cg);
    random_a(A, m * k, seed);
    const size_t bC = (size_t)(m * n) * 2;
    MT_ASSERT(seed, !marlin_gpu_upload(D->A, A, (size_t)(m * k) * 2, &err), "%s", err.msg);
    /* Poison: 0xFFFF is an fp16 NaN, so an unwritten element can't pass. */
    MT_ASSERT(seed, !marlin_gpu_memset(D->Cbase, 0xFF, bC + 2 * GUARD, &err), "%s", err.msg);
    marlin_dense_args a = layer_args(L, D, m);
    a.stream = stream;
    a.tile = tile;
    a.pdl = stream != NULL && (seed & 1); /* half the cases take the PDL path */
    marlin_status st = marlin_dense_gemm(&a, &err);
    MT_ASSERT(seed, st == MARLIN_OK, "%s: %s", what, err.msg);
    st = marlin_gpu_stream_sync(stream, &err);
    MT_ASSERT(seed, st == MARLIN_OK, "%s: %s", what, err.msg);
    MT_ASSERT(seed, !marlin_gpu_download(Cg, D->Cbase, bC + 2 * GUARD, &err), "%s", err.msg);
    const unsigned char *gb = (const unsigned char *)Cg;
    size_t before = 0, after = 0;
    for (size_t i = 0; i < GUARD; i++) {
        before += gb[i] != 0xFF;
        after += gb[GUARD + bC + i] != 0xFF;
    }
    if (before || after) {
        print_error("FAIL %s: %zu guard bytes before C and %zu after C overwritten\n", what,
                    before, after);
        ok = 0;
    }
    const int detail = g_detail_budget > 0;
    check_stats cs = check_output(L, A, (const uint16_t *)(gb + GUARD), m, detail ? what : NULL);
    if (env_flag("MARLIN_KERNEL_TEST_VERBOSE"))
        print_message("%s: max err/tol %.3f, mean rel err %.2e\n", what, cs.max_ratio,
                      cs.mean_rel);
    if (cs.bad || !(cs.mean_rel < 1e-3)) {
        print_error("FAIL %s: %lld elements outside tolerance, mean relative error %.3e\n", what,
                    (long long)cs.bad, cs.mean_rel);
        if (detail) g_detail_budget -= 8;
        if (m * L->n <= (int64_t)1 << 22 && L->n * L->k <= (int64_t)1 << 22)
            dump_case(L, A, (const uint16_t *)(gb + GUARD), m, what);
        ok = 0;
    }
    free(A);
    free(Cg);
    if (out) *out = cs;
    return ok;
}

/* Sweeps m over `ms` for every (k, n) x group; layer data fresh per shape. */
static void sweep(const int64_t (*shapes)[2], int nshapes, const int32_t *groups, int ngroups,
                  const int64_t *ms, int nms, uint64_t tag, int *failed) {
    const uint64_t base = marlin_test_seed(0x6d61726c696e6bull) ^ tag;
    for (int si = 0; si < nshapes; si++)
        for (int gi = 0; gi < ngroups; gi++) {
            const int64_t k = shapes[si][0], n = shapes[si][1];
            int64_t max_m = 0;
            for (int mi = 0; mi < nms; mi++)
                if (ms[mi] > max_m) max_m = ms[mi];
            layer L;
            dev_layer D;
            const uint64_t seed = case_seed(base, n, k, groups[gi], 0);
            layer_make(&L, n, k, groups[gi], seed);
            dev_layer_make(&D, &L, max_m);
            double worst = 0, worst_mean = 0;
            int good = 0;
            const int only = test_pipe();
            for (int mi = 0; mi < nms; mi++) {
                check_stats cs;
                marlin_dense_tile ft;
                const marlin_dense_tile *tp = NULL;
                if (only) { /* the family's own heuristic instead of the automatic one */
                    marlin_error e2 = {0};
                    MT_ASSERT(seed,
                              marlin_dense_pick_tile_pipe(ms[mi], n, k, groups[gi],
                                                          g_gpu.info.sm_count,
                                                          g_gpu.info.smem_optin_bytes, only, &ft,
                                                          &e2) == MARLIN_OK,
                              "%s", e2.msg);
                    tp = &ft;
                }
                good += run_case(&L, &D, ms[mi], tp, g_gpu.stream,
                                 case_seed(seed, ms[mi], 1, 2, 3), &cs);
                if (cs.max_ratio > worst) worst = cs.max_ratio;
                if (cs.mean_rel > worst_mean) worst_mean = cs.mean_rel;
            }
            print_message("k %6lld n %6lld g %4d: %d of %d values of m ok, worst err/tol %.3f, "
                          "worst mean rel err %.2e\n",
                          (long long)k, (long long)n, groups[gi], good, nms, worst, worst_mean);
            *failed += nms - good;
            dev_layer_free(&D);
            layer_free(&L);
        }
}

static const int64_t k_all_m[] = {1,  2,  3,  4,  5,  6,   7,   8,   9,    10,  11, 12, 13,
                                  14, 15, 16, 17, 31, 64, 127, 128, 256, 1000, 4096};

/* Small shapes: every m of the issue, every group size; n not a multiple of
 * 128 (64-column tiles), of 256, long-k/narrow-n (heavy k splitting). */
static void test_kernels_gpu_dense_small(void **state) {
    (void)state;
    NEED_GPU();
    const int64_t shapes[][2] = {{128, 64},   {256, 192},  {640, 384},
                                 {1024, 768}, {2048, 320}, {16384, 64}};
    const int32_t groups[] = {128, -1, 64, 32};
    const int quick = env_flag("MARLIN_KERNEL_TEST_QUICK");
    const int64_t quick_m[] = {1, 5, 16, 17, 33, 100};
    int failed = 0;
    if (quick)
        sweep(shapes, 5, groups, 4, quick_m, 6, 1, &failed);
    else
        sweep(shapes, 6, groups, 4, k_all_m, (int)(sizeof k_all_m / sizeof k_all_m[0]), 1,
              &failed);
    assert_int_equal(failed, 0);
}

/* Real layer shapes (k, n) of Llama-2-7B/13B/70B and Llama-3-8B. */
static void test_kernels_gpu_dense_models(void **state) {
    (void)state;
    NEED_GPU();
    if (env_flag("MARLIN_KERNEL_TEST_QUICK")) {
        print_message("skipped in quick mode\n");
        skip();
    }
    const int64_t real[][2] = {{4096, 4096},  {4096, 12288}, {4096, 11008}, {11008, 4096},
                               {4096, 14336}, {14336, 4096}, {5120, 13824}, {13824, 5120},
                               {8192, 28672}, {28672, 8192}, {5120, 5120},  {8192, 10240}};
    const int32_t g128[] = {128}, gother[] = {-1, 64, 32};
    int failed = 0;
    if (env_flag("MARLIN_KERNEL_TEST_FULL")) {
        const int64_t ms[] = {1, 7, 16, 17, 33, 64, 127, 128};
        sweep(real, 12, g128, 1, ms, 8, 2, &failed);
        const int64_t some[][2] = {{4096, 4096}, {4096, 14336}, {11008, 4096}, {5120, 13824}};
        const int64_t m1000[] = {1000};
        sweep(some, 4, g128, 1, m1000, 1, 3, &failed);
        const int64_t other[][2] = {{4096, 11008}, {14336, 4096}, {8192, 10240}};
        const int64_t ms_other[] = {1, 16, 127};
        sweep(other, 3, gother, 3, ms_other, 3, 4, &failed);
        const int64_t m4096[] = {4096};
        sweep(real, 1, g128, 1, m4096, 1, 5, &failed);
    } else {
        const int64_t ms[] = {1, 16, 33, 128};
        sweep(real, 2, g128, 1, ms, 4, 2, &failed);
        const int64_t ms1[] = {7};
        sweep(real + 3, 1, gother, 1, ms1, 1, 3, &failed);
    }
    assert_int_equal(failed, 0);
}

/* Every instantiated kernel, forced, at several pipeline depths and
 * occupancies, for grouped and per-channel scales, through each
 * shared-memory pipeline the GPU runs. */
static void test_kernels_gpu_all_tiles(void **state) {
    (void)state;
    NEED_GPU();
    marlin_dense_tile tiles[64];
    int nt = marlin_dense_tiles(tiles, 64);
    int pipes[5];
    const int npipes = gpu_pipelines(pipes);
    const uint64_t base = marlin_test_seed(0x74696c6573ull);
    const int32_t groups[] = {64, -1};
    const int stages[] = {2, 3, 0};
    const int quick = env_flag("MARLIN_KERNEL_TEST_QUICK");
    int failed = 0;
    for (int gi = 0; gi < 2; gi++) {
        const int64_t n = 768, k = 1024;
        layer L;
        dev_layer D;
        const uint64_t seed = case_seed(base, n, k, groups[gi], 7);
        layer_make(&L, n, k, groups[gi], seed);
        dev_layer_make(&D, &L, 100);
        int ran = 0, failed_here = 0;
        for (int pi = 0; pi < npipes; pi++)
            for (int ti = 0; ti < nt; ti++)
                for (int sti = 0; sti < 3; sti++)
                    for (int bps = 1; bps <= 2; bps++) {
                        if (quick && (sti != 2 || bps != 1)) continue;
                        /* a CPASYNC2 shape runs with that pipeline only, the
                         * others with the three original pipelines */
                        if ((tiles[ti].pipeline == MARLIN_DENSE_PIPE_CPASYNC2) !=
                            (pipes[pi] == MARLIN_DENSE_PIPE_CPASYNC2))
                            continue;
                        /* (the wgmma shapes: test_kernels_gpu_wgmma) */
                        if (pipes[pi] == MARLIN_DENSE_PIPE_WGMMA) continue;
                        marlin_dense_tile t = tiles[ti];
                        t.stages = stages[sti];
                        t.blocks_per_sm = bps;
                        t.pipeline = pipes[pi];
                        const int64_t full = 16 * t.m_blocks;
                        const int64_t ms[] = {1, full - 3 > 0 ? full - 3 : 1, full, 100};
                        for (int mi = 0; mi < 4; mi++) {
                            failed_here += !run_case(
                                &L, &D, ms[mi], &t, g_gpu.stream,
                                case_seed(seed, ti + 64 * pi, sti * 2 + bps, ms[mi], 0), NULL);
                            ran++;
                        }
                    }
        print_message("g %d: %d of %d forced-tile runs ok over %d tiles, %d pipelines\n",
                      groups[gi], ran - failed_here, ran, nt, npipes);
        failed += failed_here;
        dev_layer_free(&D);
        layer_free(&L);
    }
    assert_int_equal(failed, 0);
}

/* The cluster path (tile.cluster_k > 1: the blocks of a cluster split a
 * slice's k range and add their parts in distributed shared memory; sm_90+,
 * 16-row v2 shapes): every such shape x cluster sizes x stages x group
 * sizes x m (1, ragged, one full block, several row chunks) against the CPU
 * reference, PDL on half the cases (run_case). Refused with
 * MARLIN_ERR_INVALID_ARG by the launcher checks where it cannot run: on
 * GPUs before sm_90, with more blocks than k tiles, and for 32-64-row
 * tiles. */
static void test_kernels_gpu_cluster(void **state) {
    (void)state;
    NEED_GPU();
    marlin_dense_tile tiles[64];
    const int nt = marlin_dense_tiles(tiles, 64);
    const uint64_t base = marlin_test_seed(0x636c75737465ull);
    const int32_t groups[] = {128, 64, -1};
    const int sizes[] = {2, 3, 5, 8};
    const int quick = env_flag("MARLIN_KERNEL_TEST_QUICK");
    marlin_error err = {0};
    int failed = 0, ran = 0, refused = 0;
    for (int gi = 0; gi < 3; gi++) {
        if (quick && gi == 1) continue;
        const int64_t n = 768, k = 2048;
        layer L;
        dev_layer D;
        const uint64_t seed = case_seed(base, n, k, groups[gi], 11);
        layer_make(&L, n, k, groups[gi], seed);
        dev_layer_make(&D, &L, 100);
        for (int ti = 0; ti < nt; ti++) {
            if (tiles[ti].pipeline != MARLIN_DENSE_PIPE_CPASYNC2) continue;
            for (int ci = 0; ci < 4; ci++)
                for (int sti = 0; sti < 2; sti++) {
                    if (quick && sti) continue;
                    marlin_dense_tile t = tiles[ti];
                    t.stages = 2 + sti;
                    t.blocks_per_sm = 2;
                    t.cluster_k = sizes[ci];
                    const int fits = g_gpu.info.cc_major >= 9 && t.m_blocks == 1 &&
                                     sizes[ci] <= k / t.k;
                    if (!fits) {
                        /* refused by the launcher checks, before any launch */
                        marlin_dense_args a = layer_args(&L, &D, 5);
                        a.tile = &t;
                        assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
                        refused++;
                        continue;
                    }
                    const int64_t ms[] = {1, 13, 16, 100};
                    for (int mi = 0; mi < 4; mi++) {
                        failed += !run_case(&L, &D, ms[mi], &t, g_gpu.stream,
                                            case_seed(seed, ti, ci * 2 + sti, ms[mi], 0), NULL);
                        ran++;
                    }
                }
        }
        dev_layer_free(&D);
        layer_free(&L);
    }
    print_message("cluster path: %d of %d runs ok, %d configurations refused (sm_%d%d)\n",
                  ran - failed, ran, refused, g_gpu.info.cc_major, g_gpu.info.cc_minor);
    assert_int_equal(failed, 0);
}

/* The Hopper path (pipeline WGMMA, sm_90 with the sm_90a kernels built):
 * every batch width (32/64/128 rows) x stages 4 and max x k pieces (1, 2,
 * 3, automatic, and as many as 2 blocks per SM allow) x grouped/per-channel
 * scales x m (1, ragged, full, two row tiles, many) on a long-k layer (the
 * k split's partials and fixed-order sum) and a wide one, against the CPU
 * reference with poisoned outputs; PDL on half the cases (run_case). A
 * second identical launch must give the same bits, and the counters end at
 * 0. Elsewhere the forced pipeline is refused: MARLIN_ERR_INVALID_ARG on
 * GPUs other than sm_90, MARLIN_ERR_UNSUPPORTED when the build lacks
 * sm_90a. */
static void test_kernels_gpu_wgmma(void **state) {
    (void)state;
    NEED_GPU();
    marlin_error err = {0};
    marlin_dense_tile t;
    memset(&t, 0, sizeof t);
    t.m_blocks = 4;
    t.n = 256;
    t.k = 64;
    t.pipeline = MARLIN_DENSE_PIPE_WGMMA;
    if (!gpu_has_wgmma()) {
        layer L;
        dev_layer D;
        layer_make(&L, 256, 1024, 128, 5);
        dev_layer_make(&D, &L, 40);
        marlin_dense_args a = layer_args(&L, &D, 40);
        a.tile = &t;
        const marlin_status want =
            g_gpu.info.cc_major != 9 ? MARLIN_ERR_INVALID_ARG : MARLIN_ERR_UNSUPPORTED;
        assert_int_equal(marlin_dense_gemm(&a, &err), want);
        print_message("wgmma pipeline refused as expected on sm_%d%d (built: %d): %s\n",
                      g_gpu.info.cc_major, g_gpu.info.cc_minor, marlin_dense_wgmma_built(),
                      err.msg);
        dev_layer_free(&D);
        layer_free(&L);
        return;
    }
    const uint64_t base = marlin_test_seed(0x7767676d6dull);
    const int quick = env_flag("MARLIN_KERNEL_TEST_QUICK");
    const int64_t shapes[][2] = {{8192, 256}, {1024, 1280}};
    const int32_t groups[] = {128, 32, -1, 64};
    const int mbs[] = {2, 4, 8};
    /* pieces: none; 2 and 20 (the last piece adds the tile: fewer than 3
     * or more than 16 pieces; on k = 1024 the 16 stages cap 20 at 16); 3,
     * 7 and mostly the rule's (every piece adds a share) */
    const int splits[] = {1, 2, 3, 0, 7, 20};
    int failed = 0, ran = 0;
    for (int si = 0; si < 2; si++)
        for (int gi = 0; gi < 4; gi++) {
            if (quick && gi == 3) continue;
            const int64_t k = shapes[si][0], n = shapes[si][1];
            layer L;
            dev_layer D;
            const uint64_t seed = case_seed(base, n, k, groups[gi], 13);
            layer_make(&L, n, k, groups[gi], seed);
            dev_layer_make(&D, &L, 300);
            for (int mi = 0; mi < 3; mi++)
                for (int sti = 0; sti < 2; sti++)
                    for (int spi = 0; spi < 6; spi++) {
                        if (quick && (sti || spi == 1 || spi == 2)) continue;
                        t.m_blocks = mbs[mi];
                        t.stages = sti ? 0 : 4;
                        t.k_splits = splits[spi];
                        t.cluster_k = 0;
                        const int64_t nb = 16 * t.m_blocks;
                        const int64_t ms[] = {1, nb - 3, nb, nb + 5, 300};
                        for (int mj = 0; mj < 5; mj++) {
                            /* more pieces than 2 blocks per SM hold is
                             * refused (workspace bound): skip those */
                            const int64_t tiles = ((ms[mj] + nb - 1) / nb) * (n / 256);
                            if (splits[spi] > 1 && tiles * splits[spi] > 2 * g_gpu.info.sm_count)
                                continue;
                            failed += !run_case(&L, &D, ms[mj], &t, g_gpu.stream,
                                                case_seed(seed, mi, sti * 8 + spi, ms[mj], 0),
                                                NULL);
                            /* the same call again: identical bits (fixed-order
                             * sums of the pieces) */
                            if (splits[spi] != 1 && mj == 4) {
                                const size_t bc = (size_t)(ms[mj] * n) * 2;
                                marlin_dense_args a2 = layer_args(&L, &D, ms[mj]);
                                uint16_t *c1 = malloc(bc), *c2 = malloc(bc);
                                assert_non_null(c1);
                                assert_non_null(c2);
                                a2.tile = &t;
                                MT_ASSERT(seed, !marlin_gpu_download(c1, D.C, bc, &err), "%s",
                                          err.msg);
                                MT_ASSERT(seed, marlin_dense_gemm(&a2, &err) == MARLIN_OK, "%s",
                                          err.msg);
                                MT_ASSERT(seed, marlin_gpu_sync(&err) == MARLIN_OK, "%s",
                                          err.msg);
                                MT_ASSERT(seed, !marlin_gpu_download(c2, D.C, bc, &err), "%s",
                                          err.msg);
                                if (memcmp(c1, c2, bc)) {
                                    print_error("FAIL wgmma rerun differs: m %lld splits %d\n",
                                                (long long)ms[mj], t.k_splits);
                                    failed++;
                                }
                                free(c1);
                                free(c2);
                            }
                            ran++;
                        }
                    }
            dev_layer_free(&D);
            layer_free(&L);
        }
    print_message("wgmma path: %d of %d runs ok\n", ran - failed, ran);
    assert_int_equal(failed, 0);

    /* Refused: n not a multiple of 256, a width without a kernel, fewer
     * than 4 stages, any cluster (no cluster path), stages other than 64
     * deep; more pieces than k/64 are capped. */
    layer L;
    dev_layer D;
    layer_make(&L, 384, 1024, 128, 9);
    dev_layer_make(&D, &L, 64);
    marlin_dense_args a = layer_args(&L, &D, 64);
    t.m_blocks = 4;
    t.stages = 0;
    t.k_splits = 0;
    a.tile = &t;
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
    dev_layer_free(&D);
    layer_free(&L);
    layer_make(&L, 256, 1024, 128, 9);
    dev_layer_make(&D, &L, 64);
    a = layer_args(&L, &D, 64);
    a.tile = &t;
    t.m_blocks = 3;
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
    t.m_blocks = 4;
    t.stages = 3;
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
    t.stages = 0;
    t.m_blocks = 4; /* no cluster path */
    t.cluster_k = 2;
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no cluster path"));
    t.m_blocks = 4;
    t.cluster_k = 0;
    t.k = 128; /* stages are 64 deep */
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_ERR_INVALID_ARG);
    t.k = 64;
    t.stages = 0;
    t.k_splits = 2 * g_gpu.info.sm_count + 1; /* capped at k/64 = 16 pieces: runs */
    assert_int_equal(marlin_dense_gemm(&a, &err), MARLIN_OK);
    assert_int_equal(marlin_gpu_sync(&err), MARLIN_OK);
    dev_layer_free(&D);
    layer_free(&L);
}

/* Bad calls return the specific status and launch nothing. */
/* The launch-floor kernel of marlin-bench --mode floor (a diagnostic that
 * only moves bytes): its C is a fold of what it read, so a CPU model of
 * the fold checks that every input int4 was read by the thread the share
 * rule names and every C int4 written: block b owns [n*b/B, n*(b+1)/B) of
 * each input and of C; thread t of it starts at t and steps by T; its fold
 * starts as (t, b, 0, 0) and XORs every int4 it reads; C[i] is the fold of
 * the thread that writes it with i XORed into .x. Every PDL mode, odd
 * sizes (shares that do not divide), a NULL input; bad arguments refused. */
static void floor_ref(const int32_t *const in[4], const size_t n_in[4], size_t n_c, int B,
                      int T, int32_t *C) {
    int32_t *acc = malloc((size_t)B * (size_t)T * 4 * sizeof *acc);
    assert_non_null(acc);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t *a = acc + 4 * ((size_t)b * (size_t)T + (size_t)t);
            a[0] = t;
            a[1] = b;
            a[2] = a[3] = 0;
            for (int j = 0; j < 4; j++) {
                if (!in[j]) continue;
                const size_t lo = n_in[j] * (size_t)b / (size_t)B;
                const size_t hi = n_in[j] * (size_t)(b + 1) / (size_t)B;
                for (size_t i = lo + (size_t)t; i < hi; i += (size_t)T)
                    for (int e = 0; e < 4; e++) a[e] ^= in[j][4 * i + (size_t)e];
            }
        }
    for (int b = 0; b < B; b++) {
        const size_t lo = n_c * (size_t)b / (size_t)B, hi = n_c * (size_t)(b + 1) / (size_t)B;
        for (size_t i = lo; i < hi; i++) {
            const int32_t *a = acc + 4 * ((size_t)b * (size_t)T + (i - lo) % (size_t)T);
            for (int e = 0; e < 4; e++) C[4 * i + (size_t)e] = a[e];
            C[4 * i] ^= (int32_t)i;
        }
    }
    free(acc);
}

static void test_kernels_gpu_stream_floor(void **state) {
    (void)state;
    NEED_GPU();
    const uint64_t seed = marlin_test_seed(0x666c6f6f72ull);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    marlin_error err = {0};
    /* int4 counts: shares of 5 and 3 blocks that do not divide, one input
     * absent (the dense case has no metadata), one longer than 8 loads
     * per thread */
    const size_t n_in[4] = {4099, 0, 333, 77}, n_c = 1001;
    int32_t *h_in[4] = {NULL, NULL, NULL, NULL};
    void *d_in[4] = {NULL, NULL, NULL, NULL};
    for (int j = 0; j < 4; j++) {
        if (!n_in[j]) continue;
        h_in[j] = malloc(n_in[j] * 16);
        assert_non_null(h_in[j]);
        for (size_t i = 0; i < 4 * n_in[j]; i++) h_in[j][i] = (int32_t)marlin_rng_u64(&r);
        assert_int_equal(marlin_gpu_alloc(&d_in[j], n_in[j] * 16, &err), MARLIN_OK);
        assert_int_equal(marlin_gpu_upload(d_in[j], h_in[j], n_in[j] * 16, &err), MARLIN_OK);
    }
    void *d_c = NULL;
    assert_int_equal(marlin_gpu_alloc(&d_c, n_c * 16, &err), MARLIN_OK);
    int32_t *ref = malloc(n_c * 16), *got = malloc(n_c * 16);
    assert_non_null(ref);
    assert_non_null(got);
    const int32_t *const cin[4] = {h_in[0], h_in[1], h_in[2], h_in[3]};
    static const int grids[][2] = {{5, 64}, {3, 256}, {1, 1024}};
    for (int g = 0; g < 3; g++)
        for (int pdl = 0; pdl <= 3; pdl++) {
            if (pdl && g_gpu.info.cc_major < 9) continue;
            marlin_stream_floor_args a;
            memset(&a, 0, sizeof a);
            for (int j = 0; j < 4; j++) {
                a.in[j] = d_in[j];
                a.in_bytes[j] = n_in[j] * 16;
            }
            a.C = d_c;
            a.c_bytes = n_c * 16;
            a.blocks = grids[g][0];
            a.threads = grids[g][1];
            a.pdl = pdl;
            a.stream = g_gpu.stream;
            assert_int_equal(marlin_gpu_memset(d_c, 0xA5, n_c * 16, &err), MARLIN_OK);
            marlin_status st = marlin_stream_floor(&a, &err);
            MT_ASSERT(seed, st == MARLIN_OK, "floor %dx%d pdl %d: %s", a.blocks, a.threads, pdl,
                      err.msg);
            assert_int_equal(marlin_gpu_stream_sync(g_gpu.stream, &err), MARLIN_OK);
            assert_int_equal(marlin_gpu_download(got, d_c, n_c * 16, &err), MARLIN_OK);
            floor_ref(cin, n_in, n_c, a.blocks, a.threads, ref);
            for (size_t i = 0; i < 4 * n_c; i++)
                MT_ASSERT(seed, got[i] == ref[i], "floor %dx%d pdl %d: C word %zu %d != %d",
                          a.blocks, a.threads, pdl, i, got[i], ref[i]);
        }
    /* bad arguments: a clear error, nothing launched */
    marlin_stream_floor_args bad;
    memset(&bad, 0, sizeof bad);
    bad.C = d_c;
    bad.c_bytes = 16;
    bad.blocks = 1;
    bad.threads = 64;
    bad.pdl = 4;
    assert_int_equal(marlin_stream_floor(&bad, &err), MARLIN_ERR_INVALID_ARG);
    bad.pdl = 0;
    bad.threads = 48;
    assert_int_equal(marlin_stream_floor(&bad, &err), MARLIN_ERR_INVALID_ARG);
    bad.threads = 64;
    bad.in_bytes[0] = 24;
    bad.in[0] = d_c;
    assert_int_equal(marlin_stream_floor(&bad, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "input 0"));
    bad.in_bytes[0] = 32;
    bad.in[0] = NULL;
    assert_int_equal(marlin_stream_floor(&bad, &err), MARLIN_ERR_INVALID_ARG);
    for (int j = 0; j < 4; j++) {
        marlin_gpu_free(d_in[j]);
        free(h_in[j]);
    }
    marlin_gpu_free(d_c);
    free(ref);
    free(got);
}

static void test_kernels_gpu_errors(void **state) {
    (void)state;
    NEED_GPU();
    const int64_t n = 256, k = 512, m = 8;
    layer L;
    dev_layer D;
    marlin_error err = {0};
    const uint64_t seed = marlin_test_seed(0x6572726f7273ull);
    layer_make(&L, n, k, 128, seed);
    dev_layer_make(&D, &L, m);
    assert_int_equal(marlin_gpu_memset(D.Cbase, 0xFF, (size_t)(m * n) * 2 + 2 * GUARD, &err),
                     MARLIN_OK);
    marlin_dense_args a = layer_args(&L, &D, m), b;

    b = a;
    b.n = 200;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_SHAPE);
    b = a;
    b.k = 500;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_SHAPE);
    b = a;
    b.group_size = 16;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_SHAPE);
    b = a;
    b.m = -3;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_SHAPE);
    b = a;
    b.A = NULL;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    b = a;
    b.C = (char *)D.C + 2;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "aligned"));
    b = a;
    b.workspace_bytes = 64;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "workspace"));
    assert_int_equal(marlin_dense_gemm(NULL, &err), MARLIN_ERR_INVALID_ARG);
    marlin_dense_tile t = {5, 128, 128, 4, 1, 0, 0, 0};
    b = a;
    b.tile = &t;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no instantiated kernel"));
    t = (marlin_dense_tile){1, 512, 128, 4, 1, 0, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    t = (marlin_dense_tile){1, 128, 128, 1, 1, 0, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    t = (marlin_dense_tile){1, 128, 128, 20, 1, 0, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    t = (marlin_dense_tile){1, 128, 128, 4, 3, 0, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    t = (marlin_dense_tile){1, 128, 128, 4, 1, 6, 0, 0}; /* no such pipeline */
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "pipeline"));
    if (g_gpu.info.cc_major < 9) { /* the mbarrier pipelines need sm_90 */
        t = (marlin_dense_tile){1, 128, 128, 4, 1, MARLIN_DENSE_PIPE_BULK, 0, 0};
        assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "sm_90"));
        t.pipeline = MARLIN_DENSE_PIPE_MBAR;
        assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    }
    /* a CPASYNC2 shape with another pipeline, a v1 shape... */
    t = (marlin_dense_tile){1, 256, 256, 2, 1, MARLIN_DENSE_PIPE_CPASYNC, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no instantiated kernel"));
    /* ... and a stage deeper than k: k = 512 is fine for 256, not for a
     * k that 256 does not divide */
    b.k = 640;
    t = (marlin_dense_tile){1, 256, 256, 2, 1, MARLIN_DENSE_PIPE_CPASYNC2, 0, 0};
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "does not divide"));
    b = a;
    b.n = 192; /* valid shape, but a forced 256-wide tile does not divide it */
    t = (marlin_dense_tile){1, 256, 64, 4, 1, 0, 0, 0};
    b.tile = &t;
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_ERR_INVALID_ARG);
    b = a;
    b.m = 0; /* nothing to do: OK, nothing written */
    assert_int_equal(marlin_dense_gemm(&b, &err), MARLIN_OK);

    /* None of the above launched anything: C is still all poison. */
    assert_int_equal(marlin_gpu_stream_sync(g_gpu.stream, &err), MARLIN_OK);
    size_t bytes = (size_t)(m * n) * 2 + 2 * GUARD;
    unsigned char *h = malloc(bytes);
    assert_non_null(h);
    assert_int_equal(marlin_gpu_download(h, D.Cbase, bytes, &err), MARLIN_OK);
    for (size_t i = 0; i < bytes; i++) MT_ASSERT(seed, h[i] == 0xFF, "byte %zu written", i);
    free(h);
    dev_layer_free(&D);
    layer_free(&L);
}

/* The workspace counters are zero after calls (the zeroing rule); results
 * are bitwise reproducible; the default stream works; and two different
 * problems sharing one workspace, launched back to back with programmatic
 * dependent launch (each may start before the previous one ends), still
 * give exactly the results of isolated launches. */
static void test_kernels_gpu_workspace_and_determinism(void **state) {
    (void)state;
    NEED_GPU();
    const int64_t n = 256, k = 16384, m = 50, m2 = 7; /* 1 column slice: heavy k splitting */
    layer L;
    dev_layer D;
    marlin_error err = {0};
    void *C2dev = NULL;
    const uint64_t seed = marlin_test_seed(0x64657465726dull);
    layer_make(&L, n, k, 128, seed);
    dev_layer_make(&D, &L, m);
    uint16_t *A = malloc((size_t)(m * k) * 2);
    uint16_t *C1 = malloc((size_t)(m * n) * 2), *C2 = malloc((size_t)(m * n) * 2);
    uint16_t *R1 = malloc((size_t)(m * n) * 2), *R2 = malloc((size_t)(m2 * n) * 2);
    assert_non_null(A);
    assert_non_null(C1);
    assert_non_null(C2);
    assert_non_null(R1);
    assert_non_null(R2);
    random_a(A, m * k, seed);
    assert_int_equal(marlin_gpu_upload(D.A, A, (size_t)(m * k) * 2, &err), MARLIN_OK);
    assert_int_equal(marlin_gpu_alloc(&C2dev, (size_t)(m2 * n) * 2, &err), MARLIN_OK);
    marlin_dense_args a = layer_args(&L, &D, m), a2;
    a2 = a;
    a2.m = m2;
    a2.C = C2dev;
    /* Each pipeline the GPU runs, with the automatic tile otherwise. */
    int pipes[5];
    const int npipes = gpu_pipelines(pipes);
    for (int pi = 0; pi < npipes; pi++) {
        marlin_dense_tile t1, t2;
        MT_ASSERT(seed,
                  !marlin_dense_pick_tile_pipe(m, n, k, 128, g_gpu.info.sm_count,
                                               g_gpu.info.smem_optin_bytes, pipes[pi], &t1,
                                               &err) &&
                      !marlin_dense_pick_tile_pipe(m2, n, k, 128, g_gpu.info.sm_count,
                                                   g_gpu.info.smem_optin_bytes, pipes[pi], &t2,
                                                   &err),
                  "%s", err.msg);
        a.tile = &t1;
        a2.tile = &t2;
        a.pdl = a2.pdl = 0;
        /* Isolated launches, default and own stream: identical bits. */
        for (int rep = 0; rep < 6; rep++) {
            a.stream = (rep % 2) ? g_gpu.stream : NULL;
            MT_ASSERT(seed, marlin_dense_gemm(&a, &err) == MARLIN_OK, "%s", err.msg);
            MT_ASSERT(seed, marlin_gpu_sync(&err) == MARLIN_OK, "%s", err.msg);
            MT_ASSERT(seed, !marlin_gpu_download(rep ? C2 : R1, D.C, (size_t)(m * n) * 2, &err), "%s",
                      err.msg);
            if (rep) MT_ASSERT(seed, memcmp(R1, C2, (size_t)(m * n) * 2) == 0, "run %d differs", rep);
        }
        a2.stream = g_gpu.stream;
        MT_ASSERT(seed, marlin_dense_gemm(&a2, &err) == MARLIN_OK, "%s", err.msg);
        MT_ASSERT(seed, marlin_gpu_sync(&err) == MARLIN_OK, "%s", err.msg);
        MT_ASSERT(seed, !marlin_gpu_download(R2, C2dev, (size_t)(m2 * n) * 2, &err), "%s", err.msg);
        check_stats cs = check_output(&L, A, R1, m, "determinism case");
        MT_ASSERT(seed, cs.bad == 0 && cs.mean_rel < 1e-3, "wrong result");
        /* Back to back, no synchronization, PDL on (ignored before sm_90). */
        a.stream = a2.stream = g_gpu.stream;
        a.pdl = a2.pdl = 1;
        MT_ASSERT(seed, !marlin_gpu_memset(D.C, 0xFF, (size_t)(m * n) * 2, &err), "%s", err.msg);
        MT_ASSERT(seed, !marlin_gpu_memset(C2dev, 0xFF, (size_t)(m2 * n) * 2, &err), "%s", err.msg);
        for (int rep = 0; rep < 40; rep++) {
            MT_ASSERT(seed, marlin_dense_gemm(&a, &err) == MARLIN_OK, "%s", err.msg);
            MT_ASSERT(seed, marlin_dense_gemm(&a2, &err) == MARLIN_OK, "%s", err.msg);
        }
        MT_ASSERT(seed, marlin_gpu_sync(&err) == MARLIN_OK, "%s", err.msg);
        MT_ASSERT(seed, !marlin_gpu_download(C1, D.C, (size_t)(m * n) * 2, &err), "%s", err.msg);
        MT_ASSERT(seed, !marlin_gpu_download(C2, C2dev, (size_t)(m2 * n) * 2, &err), "%s", err.msg);
        MT_ASSERT(seed, memcmp(R1, C1, (size_t)(m * n) * 2) == 0, "back-to-back PDL result differs");
        MT_ASSERT(seed, memcmp(R2, C2, (size_t)(m2 * n) * 2) == 0,
                  "back-to-back PDL result (second problem) differs");
    }
    size_t cb = marlin_dense_workspace_counter_bytes(g_gpu.ws_max_m, g_gpu.ws_max_n);
    unsigned char *h = malloc(cb);
    assert_non_null(h);
    assert_int_equal(marlin_gpu_download(h, g_gpu.ws, cb, &err), MARLIN_OK);
    for (size_t i = 0; i < cb; i++) MT_ASSERT(seed, h[i] == 0, "counter byte %zu is %d", i, h[i]);
    free(h);
    free(A);
    free(C1);
    free(C2);
    free(R1);
    free(R2);
    marlin_gpu_free(C2dev);
    dev_layer_free(&D);
    layer_free(&L);
}

int main(void) {
    const struct CMUnitTest cpu[] = {
        cmocka_unit_test(test_kernels_check_shape),
        cmocka_unit_test(test_kernels_workspace_bytes),
        cmocka_unit_test(test_kernels_pick_tile),
        cmocka_unit_test(test_kernels_pick_tile_pipe),
        cmocka_unit_test(test_kernels_pick_cluster),
        cmocka_unit_test(test_kernels_pick_wgmma),
        cmocka_unit_test(test_kernels_dequant_ref_exact),
        cmocka_unit_test(test_kernels_gemm_ref),
        cmocka_unit_test(test_kernels_partition_rules),
        cmocka_unit_test(test_kernels_wg_scale_words),
        cmocka_unit_test(test_kernels_without_cuda),
    };
    const struct CMUnitTest gpu[] = {
        cmocka_unit_test(test_kernels_gpu_errors),
        cmocka_unit_test(test_kernels_gpu_dense_small),
        cmocka_unit_test(test_kernels_gpu_all_tiles),
        cmocka_unit_test(test_kernels_gpu_cluster),
        cmocka_unit_test(test_kernels_gpu_wgmma),
        cmocka_unit_test(test_kernels_gpu_workspace_and_determinism),
        cmocka_unit_test(test_kernels_gpu_dense_models),
        cmocka_unit_test(test_kernels_gpu_stream_floor),
    };
    /* MARLIN_TEST_FILTER: a cmocka name pattern (device runs of one test) */
    if (getenv("MARLIN_TEST_FILTER")) cmocka_set_test_filter(getenv("MARLIN_TEST_FILTER"));
    int fails = cmocka_run_group_tests_name("kernels_cpu", cpu, NULL, NULL);
    fails += cmocka_run_group_tests_name("kernels_gpu", gpu, gpu_setup, gpu_teardown);
    return fails ? 1 : 0;
}
