/*
 * test_kernels24.c - the 2:4 sparse kernel (kernels/marlin24.cu) and its CPU
 * reference (kernels/marlin24_ref.c).
 *
 * CPU part (runs everywhere):
 *  - the shape gate;
 *  - the reference (which decodes through pack/) against a direct fp64
 *    product of the unpacked codes and scales;
 *  - a CPU emulation of the kernel's per-lane data flow for one warp tile:
 *    the words, metadata registers, scale halves and accumulator slots the
 *    kernel reads/writes, fed to the PTX mma.sp semantics, must give the
 *    direct product. This pins the index algebra in marlin24.cu's comments
 *    to pack/'s single layout definition without a GPU.
 * GPU part (skips with a message without a device): random 2:4 codes,
 * scales and activations (fresh seed per case), C poisoned with NaN before
 * every run, every element checked against the reference with a bound
 * derived below; m = 1..17, ragged and large m, real layer shapes, all group
 * sizes, every tile configuration, one and two blocks per SM, programmatic
 * dependent launch, shallow pipelines, determinism.
 *
 * Set MARLIN_K24_QUICK=1 for the small subset (used under compute-sanitizer).
 */
#include "testutil.h"

#include "marlin_kernels24.h"
#include "marlin_pack.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MARLIN_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#define SEED_DEFAULT 0x24c0ffeeu

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* 2:4 codes (n, k): every aligned group of 4 keeps 0, 1 or 2 (mostly 2)
 * weights with random non-zero signed values, code 0 (= -8) included;
 * pruned slots hold code 8. */
static void random_codes_24(marlin_rng *r, uint8_t *q, int64_t n, int64_t k) {
    for (int64_t i = 0; i < n * k; i += 4) {
        int keep = (int)(marlin_rng_u64(r) % 8);
        keep = keep == 0 ? 0 : keep == 1 ? 1 : 2;
        for (int t = 0; t < 4; t++) q[i + t] = 8;
        int placed = 0;
        while (placed < keep) {
            int pos = (int)(marlin_rng_u64(r) % 4);
            if (q[i + pos] != 8) continue;
            uint8_t v = (uint8_t)(marlin_rng_u64(r) % 15);
            q[i + pos] = v >= 8 ? (uint8_t)(v + 1) : v;
            placed++;
        }
    }
}

static void random_scales(marlin_rng *r, uint16_t *s, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        s[i] = marlin_float_to_half(
            (float)(0.002 + marlin_rng_uniform(r) * 0.03));
}

static void random_acts(marlin_rng *r, uint16_t *a, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        a[i] = marlin_float_to_half(marlin_rng_normal(r));
}

static int64_t groups_of(int64_t k, int64_t group) {
    return group == -1 ? 1 : k / group;
}

/* ------------------------------------------------------------ CPU tests */

static void test_kernels24_check_shape(void **state) {
    (void)state;
    marlin_error err;
    assert_int_equal(marlin_gemm24_check_shape(4096, 4096, 128, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_gemm24_check_shape(128, 128, -1, &err), MARLIN_OK);
    assert_int_equal(marlin_gemm24_check_shape(256, 512, 32, &err), MARLIN_OK);
    assert_int_equal(marlin_gemm24_check_shape(256, 512, 64, &err), MARLIN_OK);
    assert_int_equal(marlin_gemm24_check_shape(256, 512, 256, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_gemm24_check_shape(192, 512, 128, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n % 128"));
    assert_int_equal(marlin_gemm24_check_shape(256, 320, 128, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_gemm24_check_shape(256, 384, 96, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "group size 96"));
    assert_int_equal(marlin_gemm24_check_shape(256, 384, 256, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_gemm24_check_shape(256, 384, 0, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_gemm24_check_shape(0, 384, -1, &err),
                     MARLIN_ERR_SHAPE);
}

/* Packs random codes; returns the packed tensors (caller frees). */
typedef struct packed24 {
    uint8_t *q;   /* (n, k) codes */
    uint16_t *s;  /* (G, n) natural scales */
    uint32_t *B;  /* (k/32, 2n) */
    uint16_t *meta;
    uint16_t *sp; /* permuted scales */
} packed24;

static void make_packed(marlin_rng *r, int64_t n, int64_t k, int64_t group,
                        packed24 *p) {
    const int64_t G = groups_of(k, group);
    marlin_error err;
    p->q = xmalloc((size_t)(n * k));
    p->s = xmalloc((size_t)(G * n) * 2);
    p->B = xmalloc((size_t)(k / 32 * 2 * n) * 4);
    p->meta = xmalloc((size_t)(k / 32 * 2 * n) * 2);
    p->sp = xmalloc((size_t)(G * n) * 2);
    random_codes_24(r, p->q, n, k);
    random_scales(r, p->s, G * n);
    marlin_status st = marlin_pack_24(p->q, p->s, n, k, group, 0, p->B,
                                      p->meta, p->sp, &err);
    if (st != MARLIN_OK) print_error("pack: %s\n", err.msg);
    assert_int_equal(st, MARLIN_OK);
}

static void free_packed(packed24 *p) {
    free(p->q);
    free(p->s);
    free(p->B);
    free(p->meta);
    free(p->sp);
}

static void test_kernels24_ref_matches_direct(void **state) {
    (void)state;
    const uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    static const int64_t shapes[][4] = {
        /* m, n, k, group */
        {5, 128, 128, -1}, {3, 256, 512, 128}, {7, 128, 256, 32},
        {1, 384, 256, 64}, {4, 128, 384, 128}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t m = shapes[c][0], n = shapes[c][1], k = shapes[c][2];
        const int64_t group = shapes[c][3];
        marlin_rng r;
        marlin_rng_seed(&r, seed + c);
        packed24 p;
        make_packed(&r, n, k, group, &p);
        uint16_t *A = xmalloc((size_t)(m * k) * 2);
        float *C = xmalloc((size_t)(m * n) * 4);
        random_acts(&r, A, m * k);
        marlin_error err;
        assert_int_equal(marlin_gemm24_ref(A, p.B, p.meta, p.sp, m, n, k,
                                           group, 1, C, &err),
                         MARLIN_OK);
        const int64_t gs = group == -1 ? k : group;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int64_t kk = 0; kk < k; kk++) {
                    const double w =
                        ((int)p.q[j * k + kk] - 8) *
                        (double)marlin_half_to_float(p.s[(kk / gs) * n + j]);
                    const double a = marlin_half_to_float(A[i * k + kk]);
                    want += a * w;
                    mag += fabs(a * w);
                }
                const double got = C[i * n + j];
                MT_ASSERT(seed, fabs(got - want) <= 1e-5 * mag + 1e-6,
                          "case %zu: C[%lld][%lld] = %.9g, direct %.9g", c,
                          (long long)i, (long long)j, got, want);
            }
        free(A);
        free(C);
        free_packed(&p);
    }
}

/*
 * PTX semantics of mma.sp.sync.m16n8k32.row.col.f32.f16.f16.f32 as the
 * kernel relies on them (PTX ISA "Matrix fragments for mma.m16n8k32 with
 * sparse A", and "Sparse matrix storage"):
 *  - A (16 x 32, 2:4 along k) is given compressed (16 x 16) in the
 *    m16n8k16 A-fragment layout: lane (g, t): reg0 = row g, cols 2t, 2t+1;
 *    reg1 = row g+8, cols 2t, 2t+1; reg2 = row g, cols 2t+8, 2t+9; reg3 =
 *    row g+8, cols 2t+8, 2t+9 (low half = lower column);
 *  - metadata: with selector sel, lane 4g + 2 sel + h (h = 0, 1) supplies
 *    rows g (bits 0..15) and g+8 (bits 16..31) for dense k 16h .. 16h+15;
 *    bits 4i..4i+3 of a 16-bit field are the two 2-bit indices (low: first
 *    kept element) of dense k 16h+4i .. 16h+4i+3, whose values are
 *    compressed columns 8h+2i, 8h+2i+1;
 *  - B (32 x 8): lane (g, t) reg i = rows 8i+2t, 8i+2t+1 of column g;
 *  - D (16 x 8): c0, c1 = row g, cols 2t, 2t+1; c2, c3 = row g+8.
 * emulate_mma_sp computes D from the 32 lanes' registers exactly so.
 */
static float h_lo(uint32_t u) { return marlin_half_to_float((uint16_t)u); }
static float h_hi(uint32_t u) {
    return marlin_half_to_float((uint16_t)(u >> 16));
}

static void emulate_mma_sp(const uint32_t a[32][4], const uint32_t b[32][4],
                           const uint32_t e[32], int sel, float d[32][4]) {
    float comp[16][16], dense[16][32], bm[32][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        comp[g][2 * t] = h_lo(a[l][0]);
        comp[g][2 * t + 1] = h_hi(a[l][0]);
        comp[g + 8][2 * t] = h_lo(a[l][1]);
        comp[g + 8][2 * t + 1] = h_hi(a[l][1]);
        comp[g][2 * t + 8] = h_lo(a[l][2]);
        comp[g][2 * t + 9] = h_hi(a[l][2]);
        comp[g + 8][2 * t + 8] = h_lo(a[l][3]);
        comp[g + 8][2 * t + 9] = h_hi(a[l][3]);
        for (int i = 0; i < 4; i++) {
            bm[8 * i + 2 * t][g] = h_lo(b[l][i]);
            bm[8 * i + 2 * t + 1][g] = h_hi(b[l][i]);
        }
    }
    memset(dense, 0, sizeof dense);
    for (int row = 0; row < 16; row++)
        for (int h = 0; h < 2; h++) {
            const int lane = 4 * (row % 8) + 2 * sel + h;
            const uint32_t field = row < 8 ? e[lane] & 0xffffu : e[lane] >> 16;
            for (int i = 0; i < 4; i++) {
                const unsigned nib = (field >> (4 * i)) & 15u;
                const unsigned i0 = nib & 3u, i1 = nib >> 2;
                assert_true(i0 < i1); /* ordered_metadata */
                dense[row][16 * h + 4 * i + (int)i0] = comp[row][8 * h + 2 * i];
                dense[row][16 * h + 4 * i + (int)i1] =
                    comp[row][8 * h + 2 * i + 1];
            }
        }
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        for (int c = 0; c < 4; c++) {
            const int row = g + 8 * (c / 2), col = 2 * t + c % 2;
            double sum = 0;
            for (int kk = 0; kk < 32; kk++)
                sum += (double)dense[row][kk] * bm[kk][col];
            d[l][c] += (float)sum;
        }
    }
}

/* The LOP3 / magic-number dequantisation of marlin24.cu, in fp32 (exact:
 * the fp16 steps are exact for 4-bit values). Nibbles p and p+4 of q. */
static uint32_t dequant_pair(uint32_t q, int p) {
    const unsigned v0 = (q >> (4 * p)) & 15u, v1 = (q >> (4 * (p + 4))) & 15u;
    return (uint32_t)marlin_float_to_half((float)v0 - 8.f) |
           (uint32_t)marlin_float_to_half((float)v1 - 8.f) << 16;
}

static uint32_t hmul2(uint32_t x, float s) {
    const float a = marlin_round_to_half(h_lo(x) * s);
    const float b = marlin_round_to_half(h_hi(x) * s);
    return (uint32_t)marlin_float_to_half(a) |
           (uint32_t)marlin_float_to_half(b) << 16;
}

/* One warp of the kernel over dense k block kb (32 rows) and 64-column
 * block cb, for 8 activation rows X (8 x k), following marlin24.cu's
 * compute() and write_c() index by index; returns out[8][64] (batch, col). */
static void emulate_warp(const packed24 *p, int64_t n, int64_t k,
                         int64_t group, const float *X, int64_t kb,
                         int64_t cb, float out[8][64]) {
    const uint32_t *brow = p->B + kb * 2 * n + cb * 128;
    const uint16_t *mrow = p->meta + kb * 2 * n + cb * 128;
    const bool grouped = marlin_pack_scales_grouped(k, group);
    const int64_t grp = grouped ? (32 * kb) / group : 0;
    float acc[32][4][4];
    memset(acc, 0, sizeof acc);
    uint32_t bf[32][4];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            const float *xr = X + g * k + 32 * kb + 8 * i + 2 * t;
            bf[l][i] = (uint32_t)marlin_float_to_half(xr[0]) |
                       (uint32_t)marlin_float_to_half(xr[1]) << 16;
        }
    }
    for (int j = 0; j < 4; j++) {
        uint32_t af[32][4], e[32];
        float d[32][4];
        for (int l = 0; l < 32; l++) {
            const int g = l / 4;
            const uint32_t w = brow[4 * l + j]; /* lane's int4, word j */
            af[l][0] = dequant_pair(w, 0);      /* dequant2(w): lo */
            af[l][2] = dequant_pair(w, 1);      /* dequant2(w): hi */
            af[l][1] = dequant_pair(w >> 8, 0); /* dequant2(w >> 8) */
            af[l][3] = dequant_pair(w >> 8, 1);
            if (grouped) {
                const uint16_t *srow = p->sp + grp * n + cb * 64 + 8 * g;
                const float s0 = marlin_half_to_float(srow[2 * j]);
                const float s1 = marlin_half_to_float(srow[2 * j + 1]);
                af[l][0] = hmul2(af[l][0], s0);
                af[l][2] = hmul2(af[l][2], s0);
                af[l][1] = hmul2(af[l][1], s1);
                af[l][3] = hmul2(af[l][3], s1);
            }
            const int reg = j < 2 ? 0 : 1; /* words l and 32 + l */
            const int w16 = 2 * (32 * reg + l);
            e[l] = (uint32_t)mrow[w16] | (uint32_t)mrow[w16 + 1] << 16;
            for (int c = 0; c < 4; c++) d[l][c] = 0.f;
        }
        emulate_mma_sp(af, bf, e, j % 2, d);
        for (int l = 0; l < 32; l++)
            for (int c = 0; c < 4; c++) acc[l][j][c] = d[l][c];
    }
    /* write_c: feature f = j + 4x of lane (g, t) is acc[j][2x + y] for
     * batch row 2t + y; column 8g + f of the 64-column block */
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, t = l % 4;
        for (int y = 0; y < 2; y++)
            for (int f = 0; f < 8; f++) {
                float v = acc[l][f & 3][2 * (f >> 2) + y];
                if (!grouped)
                    v *= marlin_half_to_float(p->sp[cb * 64 + 8 * g + f]);
                out[2 * t + y][8 * g + f] = v;
            }
    }
}

static void test_kernels24_warp_emulation(void **state) {
    (void)state;
    const uint64_t seed = marlin_test_seed(SEED_DEFAULT + 100);
    static const int64_t cases[][3] = {
        /* n, k, group */
        {128, 128, -1}, {256, 256, 128}, {128, 256, 32}, {128, 256, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n = cases[c][0], k = cases[c][1], group = cases[c][2];
        marlin_rng r;
        marlin_rng_seed(&r, seed + c);
        packed24 p;
        make_packed(&r, n, k, group, &p);
        float *X = xmalloc((size_t)(8 * k) * 4);
        for (int64_t i = 0; i < 8 * k; i++)
            X[i] = marlin_round_to_half(marlin_rng_normal(&r));
        const int64_t gs = group == -1 ? k : group;
        const bool grouped = marlin_pack_scales_grouped(k, group);
        for (int64_t kb = 0; kb < k / 32; kb++)
            for (int64_t cb = 0; cb < n / 64; cb++) {
                float out[8][64];
                emulate_warp(&p, n, k, group, X, kb, cb, out);
                for (int b = 0; b < 8; b++)
                    for (int f = 0; f < 64; f++) {
                        const int64_t col = cb * 64 + f;
                        double want = 0, mag = 0;
                        for (int64_t kk = 32 * kb; kk < 32 * kb + 32; kk++) {
                            const float sc = marlin_half_to_float(
                                p.s[(kk / gs) * n + col]);
                            /* grouped: the kernel's fp16 product */
                            const double w =
                                grouped ? marlin_round_to_half(
                                              (float)((int)p.q[col * k + kk] -
                                                      8) * sc)
                                        : (double)((int)p.q[col * k + kk] - 8);
                            want += w * X[b * k + kk];
                            mag += fabs(w * X[b * k + kk]);
                        }
                        if (!grouped)
                            want *= marlin_half_to_float(p.s[col]),
                                mag *= marlin_half_to_float(p.s[col]);
                        MT_ASSERT(seed,
                                  fabs(out[b][f] - want) <= 1e-5 * mag + 1e-6,
                                  "case %zu kb %lld cb %lld: row %d col %lld: "
                                  "emulated %.7g, direct %.7g",
                                  c, (long long)kb, (long long)cb, b,
                                  (long long)col, out[b][f], want);
                    }
            }
        free(X);
        free_packed(&p);
    }
}

/* The automatic choice of the wgmma path (pure rule): sm_90 only, more
 * than MARLIN_GEMM24_WGMMA_MIN_ROWS rows, n % 256, power-of-two groups. */
static void test_kernels24_pick_wgmma(void **state) {
    (void)state;
    const int T = MARLIN_GEMM24_WGMMA_MIN_ROWS;
    assert_int_equal(marlin_gemm24_pick_wgmma(T + 1, 4096, 4096, 128, 9, 0), 1);
    assert_int_equal(marlin_gemm24_pick_wgmma(T, 4096, 4096, 128, 9, 0), 0);
    assert_int_equal(marlin_gemm24_pick_wgmma(4096, 4096, 4096, -1, 9, 0), 1);
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4096, 4096, 9, 0), 1); /* g == k */
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4096, 32, 9, 0), 1);
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4608, 384, 9, 0), 0); /* 384 */
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4224, 4096, 128, 9, 0), 0); /* n % 256 */
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4096, 128, 8, 0), 0);
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4096, 128, 8, 9), 0);
    assert_int_equal(marlin_gemm24_pick_wgmma(128, 4096, 4096, 128, 10, 0), 0);
#ifndef MARLIN_HAVE_CUDA
    assert_int_equal(marlin_gemm24_wgmma_built(), 0);
#endif
    /* the tile rule on 132 SMs, Llama-2-7B layers: m, n, k, forced rows ->
     * rows, pieces */
    static const int64_t cases[][7] = {
        {128, 4096, 4096, 0, 64, 4},    /* o_proj: 64-row tiles, one piece per SM */
        {64, 4096, 4096, 0, 64, 8},     /* at 64 rows two per SM, 512 deep */
        {128, 12288, 4096, 0, 128, 2},  /* qkv */
        {128, 4096, 11008, 0, 128, 8},  /* down_proj: pieces 1376 deep */
        {64, 4096, 11008, 0, 64, 16},   /* down_proj */
        {20, 4096, 4096, 0, 32, 8},     /* the narrowest that holds m */
        {20, 4096, 4096, 128, 128, 8},  /* a forced width is kept */
        {4096, 22016, 4096, 0, 128, 1}, /* many tiles: one piece */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rows = (int)cases[i][3], splits = 0;
        marlin_gemm24_wgmma_tile(cases[i][0], cases[i][1], cases[i][2], 132, &rows, &splits);
        assert_int_equal(rows, cases[i][4]);
        assert_int_equal(splits, cases[i][5]);
    }
}

/* ------------------------------------------------------------ GPU tests */

#ifdef MARLIN_HAVE_CUDA

static int gpu_ready(void) {
    static int probed = 0, ok = 0;
    static char why[MARLIN_ERRMSG_MAX];
    if (!probed) {
        marlin_error err;
        marlin24_device_info info;
        marlin_status st = marlin_gemm24_device(&info, &err);
        ok = st == MARLIN_OK;
        if (!ok)
            snprintf(why, sizeof why, "%s", err.msg);
        else
            printf("[ INFO     ] GPU: %s, %d SMs, sm_%d%d, %d B smem/block\n",
                   info.name, info.sm_count, info.cc_major, info.cc_minor,
                   info.smem_optin);
        probed = 1;
    }
    if (!ok) printf("[ SKIPPED  ] no usable GPU: %s\n", why);
    return ok;
}

#define CU(call)                                                              \
    do {                                                                      \
        cudaError_t ce_ = (call);                                             \
        if (ce_ != cudaSuccess) {                                             \
            print_error("%s:%d: %s: %s\n", __FILE__, __LINE__, #call,         \
                        cudaGetErrorString(ce_));                             \
            fail();                                                           \
        }                                                                     \
    } while (0)

/* 0: everything; 1: small subset (memcheck); 2: smaller (racecheck). */
static int quick_mode(void) {
    const char *q = getenv("MARLIN_K24_QUICK");
    return q && *q ? atoi(q) : 0;
}

/* One weight matrix on host and device, shared by several batch sizes. */
typedef struct prob24 {
    int64_t n, k, group, G;
    packed24 p;
    void *B, *meta, *s;
} prob24;

static void prob_init(prob24 *pr, uint64_t seed, int64_t n, int64_t k,
                      int64_t group) {
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    pr->n = n;
    pr->k = k;
    pr->group = group;
    pr->G = groups_of(k, group);
    make_packed(&r, n, k, group, &pr->p);
    const size_t bw = (size_t)(k / 32 * 2 * n);
    CU(cudaMalloc(&pr->B, bw * 4));
    CU(cudaMalloc(&pr->meta, bw * 2));
    CU(cudaMalloc(&pr->s, (size_t)(pr->G * n) * 2));
    CU(cudaMemcpy(pr->B, pr->p.B, bw * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(pr->meta, pr->p.meta, bw * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(pr->s, pr->p.sp, (size_t)(pr->G * n) * 2,
                  cudaMemcpyHostToDevice));
}

static void prob_free(prob24 *pr) {
    CU(cudaFree(pr->B));
    CU(cudaFree(pr->meta));
    CU(cudaFree(pr->s));
    free_packed(&pr->p);
}

/*
 * Element bound. The reference is fp32 of exact inputs; the kernel differs
 * by (1) grouped mode: each weight (q-8)*s rounded to fp16, relative error
 * <= 2^-11 per product, so <= 2^-11 * sum|a*w|; (2) fp32 accumulation in a
 * different order, <= ~k * 2^-24 * sum|a*w| (k <= 16384: <= 2^-10 sum|a*w|;
 * in practice far smaller); (3) the fp16 output, <= 2^-11 |C|. So
 *     |C - C_ref| <= 2^-11 * (3 * sum|a*w| + |C_ref|) + 1e-6
 * holds with margin; a layout error is O(|C|) and fails it everywhere.
 * The upstream acceptance metric (mean|C - C_ref| / mean|C_ref| < 2e-3,
 * MF 7.4) is checked as well.
 *
 * Runs the kernel for every m in ms (activations: fresh random rows from
 * `seed`, stacked so that one reference product serves all of them).
 */
static void prob_run(const prob24 *pr, uint64_t seed, const char *tag,
                     const int64_t *ms, int count,
                     const marlin_gemm24_opts *opts, int repeat_determinism) {
    const int64_t n = pr->n, k = pr->k, group = pr->group;
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    marlin_error err;
    int64_t M = 0, mmax = 0;
    for (int i = 0; i < count; i++) {
        M += ms[i];
        if (ms[i] > mmax) mmax = ms[i];
    }
    uint16_t *A = xmalloc((size_t)(M * k) * 2);
    uint16_t *C = xmalloc((size_t)(mmax * n) * 2);
    uint16_t *C2 = xmalloc((size_t)(mmax * n) * 2);
    float *ref = xmalloc((size_t)(M * n) * 4);
    float *mag = xmalloc((size_t)(M * n) * 4);
    random_acts(&r, A, M * k);
    assert_int_equal(marlin_gemm24_ref(A, pr->p.B, pr->p.meta, pr->p.sp, M, n,
                                       k, group, 0, ref, &err),
                     MARLIN_OK);
    /* sum |a| * |w| through sgemm on absolute values */
    {
        float *aa = xmalloc((size_t)(M * k) * 4);
        float *wa = xmalloc((size_t)(n * k) * 4);
        const int64_t gs = group == -1 ? k : group;
        for (int64_t i = 0; i < M * k; i++)
            aa[i] = fabsf(marlin_half_to_float(A[i]));
        for (int64_t j = 0; j < n; j++)
            for (int64_t kk = 0; kk < k; kk++)
                wa[j * k + kk] =
                    fabsf((float)((int)pr->p.q[j * k + kk] - 8) *
                          marlin_half_to_float(pr->p.s[(kk / gs) * n + j]));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)n,
                    (int)k, 1.0f, aa, (int)k, wa, (int)k, 0.0f, mag, (int)n);
        free(aa);
        free(wa);
    }
    void *dA = NULL, *dC = NULL, *ws = NULL;
    size_t wsb = 0;
    CU(cudaMalloc(&dA, (size_t)(M * k) * 2));
    CU(cudaMalloc(&dC, (size_t)(mmax * n) * 2));
    assert_int_equal(marlin_gemm24_workspace_size(mmax, n, &wsb, &err),
                     MARLIN_OK);
    CU(cudaMalloc(&ws, wsb));
    CU(cudaMemset(ws, 0, wsb));
    CU(cudaMemcpy(dA, A, (size_t)(M * k) * 2, cudaMemcpyHostToDevice));
    /* MARLIN_K24_PDL=1 launches with programmatic dependent launch where
     * a case names no options (to run the sanitizers over that path) */
    marlin_gemm24_opts env_opts;
    memset(&env_opts, 0, sizeof env_opts);
    if (!opts && getenv("MARLIN_K24_PDL")) {
        env_opts.pdl = atoi(getenv("MARLIN_K24_PDL"));
        opts = &env_opts;
    }
    int64_t row0 = 0;
    for (int c = 0; c < count; row0 += ms[c], c++) {
        const int64_t m = ms[c];
        for (int rep = 0; rep < (repeat_determinism ? 2 : 1); rep++) {
            /* poison: 0xffff is a NaN in fp16: an unwritten element fails */
            CU(cudaMemset(dC, 0xff, (size_t)(m * n) * 2));
            marlin_status st = marlin_gemm24_ex(
                (const char *)dA + (size_t)(row0 * k) * 2, pr->B, pr->meta,
                pr->s, dC, m, n, k, group, ws, wsb, NULL, opts, &err);
            if (st != MARLIN_OK)
                MT_FAILF(seed, "%s m=%lld: marlin_gemm24: %s", tag,
                         (long long)m, err.msg);
            CU(cudaDeviceSynchronize());
            CU(cudaMemcpy(rep ? C2 : C, dC, (size_t)(m * n) * 2,
                          cudaMemcpyDeviceToHost));
        }
        double sum_err = 0, sum_ref = 0;
        int64_t bad = 0, first_bad = -1;
        const float *rf = ref + row0 * n, *mg = mag + row0 * n;
        for (int64_t i = 0; i < m * n; i++) {
            const float got = marlin_half_to_float(C[i]);
            const double diff = fabs((double)got - rf[i]);
            const double bound = (3.0 * mg[i] + fabs(rf[i])) / 2048.0 + 1e-6;
            if (!isfinite(got) || !(diff <= bound)) {
                if (first_bad < 0) first_bad = i;
                bad++;
            }
            sum_err += isfinite(got) ? diff : 1e30;
            sum_ref += fabs(rf[i]);
        }
        const double rel = sum_err / (sum_ref > 0 ? sum_ref : 1);
        if (bad) {
            const int64_t i = first_bad;
            MT_FAILF(seed,
                     "%s (m=%lld n=%lld k=%lld group=%lld): %lld of %lld "
                     "elements out of bound; first C[%lld][%lld] = %g, ref "
                     "%g, bound %g; mean rel err %.3g",
                     tag, (long long)m, (long long)n, (long long)k,
                     (long long)group, (long long)bad,
                     (long long)(m * n), (long long)(i / n),
                     (long long)(i % n), (double)marlin_half_to_float(C[i]),
                     (double)rf[i], (3.0 * mg[i] + fabs(rf[i])) / 2048.0 + 1e-6,
                     rel);
        }
        MT_ASSERT(seed, rel < 2e-3, "%s m=%lld: mean relative error %.3g",
                  tag, (long long)m, rel);
        if (repeat_determinism)
            MT_ASSERT(seed, memcmp(C, C2, (size_t)(m * n) * 2) == 0,
                      "%s m=%lld: two runs differ (not deterministic, or the "
                      "workspace was not left zeroed)",
                      tag, (long long)m);
    }
    CU(cudaFree(dA));
    CU(cudaFree(dC));
    CU(cudaFree(ws));
    free(A);
    free(C);
    free(C2);
    free(ref);
    free(mag);
}

static uint64_t case_seed(uint64_t base, int64_t i) {
    /* a fresh seed per case, reproducible from the printed base */
    return base * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0x632be59bd9b4e019ull;
}

static const int64_t k_all_m[] = {1,  2,  3,  4,  5,  6,  7,   8,   9,
                                  10, 11, 12, 13, 14, 15, 16,  17,  31,
                                  32, 33, 48, 64, 65, 127, 128, 256, 1000};
static const int64_t k_quick_m[] = {1, 2, 7, 8, 9, 16, 17, 65};

static void test_kernels24_gpu_small_all_m(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 200);
    printf("[ INFO     ] base seed %llu\n", (unsigned long long)base);
    static const int64_t shapes[][3] = {{256, 256, -1}, {384, 512, 128}};
    const int quick = quick_mode();
    for (int s = 0; s < 2; s++) {
        prob24 pr;
        prob_init(&pr, case_seed(base, 2 * s), shapes[s][0], shapes[s][1],
                  shapes[s][2]);
        char tag[64];
        snprintf(tag, sizeof tag, "small n=%lld", (long long)shapes[s][0]);
        if (quick)
            prob_run(&pr, case_seed(base, 2 * s + 1), tag, k_quick_m,
                     (int)(sizeof k_quick_m / sizeof k_quick_m[0]), NULL, 0);
        else
            prob_run(&pr, case_seed(base, 2 * s + 1), tag, k_all_m,
                     (int)(sizeof k_all_m / sizeof k_all_m[0]), NULL, 0);
        prob_free(&pr);
    }
}

static void test_kernels24_gpu_groups(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    if (quick_mode() >= 2) skip();
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 300);
    static const int64_t groups[] = {-1, 32, 64, 128, 256, 1024};
    static const int64_t ms[] = {1, 16, 40, 200};
    for (int g = 0; g < 6; g++) {
        prob24 pr;
        prob_init(&pr, case_seed(base, 2 * g), 512, 1024, groups[g]);
        char tag[64];
        snprintf(tag, sizeof tag, "group %lld", (long long)groups[g]);
        prob_run(&pr, case_seed(base, 2 * g + 1), tag, ms, quick_mode() ? 2 : 4,
                 NULL, 0);
        /* the 512-deep k tile (configuration 4): groups below, equal to
         * and above a stage */
        marlin_gemm24_opts o;
        memset(&o, 0, sizeof o);
        o.config = 4;
        snprintf(tag, sizeof tag, "group %lld config 4", (long long)groups[g]);
        prob_run(&pr, case_seed(base, 2 * g + 101), tag, ms, 2, &o, 0);
        prob_free(&pr);
    }
}

/* Every tile configuration, one and two blocks per SM, programmatic
 * dependent launch, the shallowest pipelines and determinism across two
 * launches (which also proves that the workspace counters are left zeroed).
 * Configurations 2-5 apply to m <= 16 (larger m falls back to the automatic
 * choice, tested too). The removed bulk-copy loader (2) must be refused. */
static void test_kernels24_gpu_configs(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    if (quick_mode() >= 2) skip();
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 400);
    /* config, blocks_per_sm, max_stages, pdl */
    static const int cfg[][4] = {{1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0},
                                 {4, 0, 0, 0}, {5, 0, 0, 0}, {6, 0, 0, 0},
                                 {1, 1, 2, 1}, {2, 1, 0, 0}, {3, 2, 2, 0},
                                 {4, 2, 0, 1}, {5, 1, 2, 0}, {6, 2, 3, 1},
                                 {2, 2, 2, 1}, {0, 0, 0, 1}, {0, 1, 0, 0}};
    static const int64_t ms[] = {1, 16, 64, 100};
    const int nc = (int)(sizeof cfg / sizeof cfg[0]);
    for (int c = 0; c < nc; c++) {
        prob24 pr;
        /* n = 1536 and k = 2048 fit every configuration */
        prob_init(&pr, case_seed(base, 2 * c), 1536, 2048, c % 2 ? 128 : -1);
        char tag[96];
        snprintf(tag, sizeof tag, "config %d bps %d stages %d pdl %d",
                 cfg[c][0], cfg[c][1], cfg[c][2], cfg[c][3]);
        marlin_gemm24_opts o;
        memset(&o, 0, sizeof o);
        o.config = cfg[c][0];
        o.blocks_per_sm = cfg[c][1];
        o.max_stages = cfg[c][2];
        o.pdl = cfg[c][3];
        prob_run(&pr, case_seed(base, 2 * c + 1), tag, ms,
                 quick_mode() ? 2 : 4, &o, 1);
        prob_free(&pr);
    }
    /* the former bulk-copy loader is gone: refused, not silently ignored */
    {
        prob24 pr;
        prob_init(&pr, case_seed(base, 999), 256, 256, -1);
        marlin_gemm24_opts o2;
        memset(&o2, 0, sizeof o2);
        o2.loader = 2;
        marlin_error e2;
        size_t wsb = 0;
        assert_int_equal(marlin_gemm24_workspace_size(1, 256, &wsb, &e2),
                         MARLIN_OK);
        void *ws = NULL;
        CU(cudaMalloc(&ws, wsb));
        assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, pr.B, 1,
                                          pr.n, pr.k, pr.group, ws, wsb, NULL,
                                          &o2, &e2),
                         MARLIN_ERR_UNSUPPORTED);
        assert_non_null(strstr(e2.msg, "loader"));
        o2.loader = 0;
        o2.blocks_per_sm = 3;
        assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, pr.B, 1,
                                          pr.n, pr.k, pr.group, ws, wsb, NULL,
                                          &o2, &e2),
                         MARLIN_ERR_INVALID_ARG);
        CU(cudaFree(ws));
        prob_free(&pr);
    }
}

/* The cluster path (opts.cluster_k 2..8, sm_90+: the blocks of a cluster
 * split a slice's k range and add their parts in distributed shared
 * memory): configurations 3 and 4 x cluster sizes x scale modes x m up to
 * 16, PDL on half, against the reference and run twice for determinism.
 * Refused with MARLIN_ERR_INVALID_ARG by the launcher checks where it
 * cannot run: before sm_90, more blocks than k tiles, other
 * configurations, more than 16 rows. */
static void test_kernels24_gpu_cluster(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    if (quick_mode() >= 2) skip();
    marlin24_device_info info;
    marlin_error e2;
    assert_int_equal(marlin_gemm24_device(&info, &e2), MARLIN_OK);
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 500);
    static const int sizes[] = {2, 3, 5, 8};
    static const int64_t ms[] = {1, 7, 16};
    const int64_t n = 1536, k = 2048;
    int ran = 0, refused = 0;
    for (int gi = 0; gi < 2; gi++) {
        prob24 pr;
        prob_init(&pr, case_seed(base, gi), n, k, gi ? 128 : -1);
        size_t wsb = 0;
        assert_int_equal(marlin_gemm24_workspace_size(64, n, &wsb, &e2), MARLIN_OK);
        void *ws = NULL, *C = NULL;
        CU(cudaMalloc(&ws, wsb));
        CU(cudaMemset(ws, 0, wsb));
        CU(cudaMalloc(&C, (size_t)(64 * n) * 2));
        for (int cfg = 3; cfg <= 4; cfg++)
            for (int si = 0; si < 4; si++) {
                if (quick_mode() && si % 2) continue;
                marlin_gemm24_opts o;
                memset(&o, 0, sizeof o);
                o.config = cfg;
                o.cluster_k = sizes[si];
                o.pdl = (si + cfg) % 2;
                const int kt = cfg == 3 ? 256 : 512;
                if (info.cc_major < 9 || sizes[si] > k / kt) {
                    assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, C, 1, n, k,
                                                      pr.group, ws, wsb, NULL, &o, &e2),
                                     MARLIN_ERR_INVALID_ARG);
                    refused++;
                    continue;
                }
                char tag[96];
                snprintf(tag, sizeof tag, "cluster %d config %d pdl %d", o.cluster_k, cfg, o.pdl);
                prob_run(&pr, case_seed(base, 10 + 8 * gi + 2 * si + cfg), tag, ms, 3, &o, 1);
                ran++;
                /* more than 16 rows: no cluster kernel */
                o.pdl = 0;
                assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, C, 17, n, k,
                                                  pr.group, ws, wsb, NULL, &o, &e2),
                                 MARLIN_ERR_INVALID_ARG);
            }
        if (info.cc_major >= 9) {
            /* configurations without a cluster kernel */
            marlin_gemm24_opts o;
            memset(&o, 0, sizeof o);
            o.config = 1;
            o.cluster_k = 2;
            assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, C, 1, n, k, pr.group,
                                              ws, wsb, NULL, &o, &e2),
                             MARLIN_ERR_INVALID_ARG);
            o.cluster_k = 9;
            o.config = 3;
            assert_int_equal(marlin_gemm24_ex(pr.B, pr.B, pr.meta, pr.s, C, 1, n, k, pr.group,
                                              ws, wsb, NULL, &o, &e2),
                             MARLIN_ERR_INVALID_ARG);
        }
        CU(cudaFree(ws));
        CU(cudaFree(C));
        prob_free(&pr);
    }
    printf("[ INFO     ] cluster path: %d configurations run, %d refused (sm_%d%d)\n", ran,
           refused, info.cc_major, info.cc_minor);
}

/* Real layer shapes (k, n): Llama-2-7B qkv / o / gate+up / down, Llama-3-8B
 * gate+up / down, Llama-2-13B down, Llama-2-70B o. */
static void test_kernels24_gpu_real_shapes(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    if (quick_mode()) skip();
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 500);
    static const int64_t shapes[][2] = {
        {4096, 12288}, {4096, 4096},  {4096, 22016}, {11008, 4096},
        {4096, 28672}, {14336, 4096}, {13824, 5120}, {8192, 8192}};
    static const int64_t ms[] = {1, 7, 16, 128};
    for (int s = 0; s < 8; s++) {
        prob24 pr;
        prob_init(&pr, case_seed(base, 2 * s), shapes[s][1], shapes[s][0],
                  s % 3 == 1 ? -1 : 128);
        char tag[64];
        snprintf(tag, sizeof tag, "k %lld n %lld", (long long)shapes[s][0],
                 (long long)shapes[s][1]);
        prob_run(&pr, case_seed(base, 2 * s + 1), tag, ms, 4, NULL, s == 0);
        prob_free(&pr);
    }
    /* large m (several launches of up to 1024 rows) */
    static const int64_t big[] = {4096};
    static const int64_t mid[] = {1500};
    prob24 pr;
    prob_init(&pr, case_seed(base, 100), 4096, 4096, 128);
    prob_run(&pr, case_seed(base, 101), "m 4096", big, 1, NULL, 0);
    prob_free(&pr);
    prob_init(&pr, case_seed(base, 102), 1024, 2048, -1);
    prob_run(&pr, case_seed(base, 103), "m 1500", mid, 1, NULL, 0);
    prob_free(&pr);
}

/* One call's setting for the refusal checks: a problem, a workspace sized
 * for ws_rows (zeroed) and an output of m rows. */
typedef struct call24 {
    prob24 pr;
    void *ws, *C;
    size_t wsb;
    int64_t m;
} call24;

static void call24_init(call24 *c, uint64_t seed, int64_t n, int64_t k, int64_t group,
                        int64_t ws_rows, int64_t m) {
    marlin_error e;
    prob_init(&c->pr, seed, n, k, group);
    c->m = m;
    c->wsb = 0;
    assert_int_equal(marlin_gemm24_workspace_size(ws_rows, n, &c->wsb, &e), MARLIN_OK);
    CU(cudaMalloc(&c->ws, c->wsb));
    CU(cudaMemset(c->ws, 0, c->wsb));
    CU(cudaMalloc(&c->C, (size_t)(m * n) * 2));
}

static marlin_status call24_run(call24 *c, const marlin_gemm24_opts *o, marlin_error *e) {
    /* A: any readable device buffer (a refused call reads nothing) */
    return marlin_gemm24_ex(c->pr.B, c->pr.B, c->pr.meta, c->pr.s, c->C, c->m, c->pr.n,
                            c->pr.k, c->pr.group, c->ws, c->wsb, NULL, o, e);
}

static void call24_free(call24 *c) {
    CU(cudaFree(c->ws));
    CU(cudaFree(c->C));
    prob_free(&c->pr);
}

/* The Hopper path (opts.wgmma, wgmma.mma_async.sp; kernels built for
 * sm_90a): every tile width x scale mode (-1, 32, 64, 128) x k pieces
 * (the rule, 1, 3, 16) x m around the width and across several row tiles,
 * PDL on half, each run twice for identical bits (fixed-order sums; the
 * counters left zeroed). Then what it refuses. Elsewhere: that forcing it
 * is MARLIN_ERR_UNSUPPORTED with a reason. */
static void test_kernels24_gpu_wgmma(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    marlin24_device_info info;
    marlin_error e2;
    assert_int_equal(marlin_gemm24_device(&info, &e2), MARLIN_OK);
    const int runs_here = info.cc_major == 9 && info.cc_minor == 0 && marlin_gemm24_wgmma_built();
    const uint64_t base = marlin_test_seed(SEED_DEFAULT + 700);
    printf("[ INFO     ] base seed %llu\n", (unsigned long long)base);
    const int64_t n = 512, k = 2048;
    static const int64_t groups[] = {-1, 32, 64, 128};
    static const int rows[] = {32, 64, 128};
    static const int pieces[] = {0, 1, 3, 16};
    int ran = 0;
    for (int gi = 0; gi < 4 && runs_here; gi++) {
        if (quick_mode() && gi % 2) continue;
        prob24 pr;
        prob_init(&pr, case_seed(base, gi), n, k, groups[gi]);
        for (int ri = 0; ri < 3; ri++)
            for (int pi = 0; pi < 4; pi++) {
                if (quick_mode() && pi % 2) continue;
                const int64_t nb = rows[ri];
                const int64_t ms[] = {1, nb - 3, nb, nb + 5, 300};
                marlin_gemm24_opts o;
                memset(&o, 0, sizeof o);
                o.wgmma = 2;
                o.wg_rows = rows[ri];
                o.wg_splits = pieces[pi];
                o.pdl = (ri + pi) % 2;
                char tag[96];
                snprintf(tag, sizeof tag, "wgmma rows %d pieces %d group %lld pdl %d",
                         rows[ri], pieces[pi], (long long)groups[gi], o.pdl);
                prob_run(&pr, case_seed(base, 100 + 16 * gi + 4 * ri + pi), tag, ms,
                         quick_mode() ? 3 : 5, &o, 1);
                ran++;
            }
        prob_free(&pr);
    }
    /* refusals (checked before anything runs) */
    call24 c;
    marlin_gemm24_opts o;
    memset(&o, 0, sizeof o);
    o.wgmma = 2;
    call24_init(&c, case_seed(base, 900), 384, 1536, 384, 128, 128);
    /* n % 256 != 0 (and group 384 is no power of two) */
    assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(e2.msg, "wgmma"));
    /* bad option values */
    o.wgmma = 3;
    assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_INVALID_ARG);
    o.wgmma = 2;
    o.wg_rows = 48;
    assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_INVALID_ARG);
    o.wg_rows = 0;
    o.wg_splits = -1;
    assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_INVALID_ARG);
    call24_free(&c);
    o.wg_splits = 0;
    if (runs_here) {
        /* k pieces need partial sums: a workspace sized for 16 rows has
         * none for them (sized for more rows, as above, it does): 8 tiles x
         * 16 pieces of 128 x 256 fp32 = 16 MB, more than the mma.sp
         * kernels' partial area for 16 rows (run 1: 4 pieces of 32-row
         * tiles still fitted it) */
        call24_init(&c, case_seed(base, 901), 2048, 2048, 128, 16, 16);
        o.wg_rows = 128;
        o.wg_splits = 16;
        assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(e2.msg, "partial sums"));
    } else {
        call24_init(&c, case_seed(base, 902), 512, 1024, 128, 64, 64);
        assert_int_equal(call24_run(&c, &o, &e2), MARLIN_ERR_UNSUPPORTED);
        assert_non_null(strstr(e2.msg, "wgmma path"));
    }
    call24_free(&c);
    printf("[ INFO     ] wgmma path: %d configurations run (sm_%d%d, %s)\n", ran, info.cc_major,
           info.cc_minor, marlin_gemm24_wgmma_built() ? "built" : "not built");
}

static void test_kernels24_gpu_errors(void **state) {
    (void)state;
    if (!gpu_ready()) skip();
    marlin_error err;
    void *buf = NULL, *ws = NULL;
    size_t wsb = 0;
    CU(cudaMalloc(&buf, 1 << 20));
    assert_int_equal(marlin_gemm24_workspace_size(16, 256, &wsb, &err),
                     MARLIN_OK);
    CU(cudaMalloc(&ws, wsb));
    CU(cudaMemset(ws, 0, wsb));
    char *b = buf;
    assert_int_equal(marlin_gemm24(b, b, b, b, b, 16, 192, 256, -1, ws, wsb,
                                   NULL, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_gemm24(b + 8, b, b, b, b, 16, 256, 256, -1, ws,
                                   wsb, NULL, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "A is not 16-byte aligned"));
    assert_int_equal(marlin_gemm24(b, b, b, b, b, 16, 256, 256, -1, ws,
                                   wsb - 16, NULL, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "workspace"));
    assert_int_equal(marlin_gemm24(b, b, NULL, b, b, 16, 256, 256, -1, ws,
                                   wsb, NULL, &err),
                     MARLIN_ERR_INVALID_ARG);
    /* m == 0 is a no-op */
    assert_int_equal(marlin_gemm24(b, b, b, b, b, 0, 256, 256, -1, ws, wsb,
                                   NULL, &err),
                     MARLIN_OK);
    CU(cudaFree(buf));
    CU(cudaFree(ws));
}

#else /* !MARLIN_HAVE_CUDA */

static void test_kernels24_gpu_not_built(void **state) {
    (void)state;
    marlin_error err;
    size_t b = 1;
    assert_int_equal(marlin_gemm24_workspace_size(1, 128, &b, &err),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "built without CUDA"));
    printf("[ SKIPPED  ] GPU cases: built without CUDA\n");
    skip();
}

#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels24_check_shape),
        cmocka_unit_test(test_kernels24_ref_matches_direct),
        cmocka_unit_test(test_kernels24_warp_emulation),
        cmocka_unit_test(test_kernels24_pick_wgmma),
#ifdef MARLIN_HAVE_CUDA
        cmocka_unit_test(test_kernels24_gpu_errors),
        cmocka_unit_test(test_kernels24_gpu_small_all_m),
        cmocka_unit_test(test_kernels24_gpu_groups),
        cmocka_unit_test(test_kernels24_gpu_configs),
        cmocka_unit_test(test_kernels24_gpu_cluster),
        cmocka_unit_test(test_kernels24_gpu_real_shapes),
        cmocka_unit_test(test_kernels24_gpu_wgmma),
#else
        cmocka_unit_test(test_kernels24_gpu_not_built),
#endif
    };
    /* MARLIN_TEST_FILTER: a cmocka name pattern (device runs of one test) */
    if (getenv("MARLIN_TEST_FILTER")) cmocka_set_test_filter(getenv("MARLIN_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
