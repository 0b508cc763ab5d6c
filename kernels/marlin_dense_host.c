/*
 * marlin_dense_host.c - the host-side pieces of the dense Marlin GEMM that
 * need no GPU (marlin_kernels.h section 2 and 3): the shape contract, the
 * tile list and the tile heuristic, the workspace bound, and the CPU
 * reference (decode through pack/'s one definition of the layout, then
 * fp32 OpenBLAS sgemm). Built in every configuration, CPU-only included.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_dense_tiles.h"
#include "marlin_kernels.h"
#include "marlin_pack.h"

/* ------------------------------------------------------------------ shapes */

marlin_status marlin_dense_check_shape(int64_t m, int64_t n, int64_t k,
                                       int32_t group_size, marlin_error *err) {
    if (m < 0 || m > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "dense gemm: m = %lld outside [0, 2^31)", (long long)m);
    /* n, k <= 2^24 keeps every per-thread offset inside one tile in 32 bits
     * (the kernel's address arithmetic); real layers are below 2^18. */
    if (n < 64 || n > ((int64_t)1 << 24) || n % 64 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "dense gemm: n = %lld must be a positive multiple of 64, at most 2^24",
                           (long long)n);
    if (k < 128 || k > ((int64_t)1 << 24) || k % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "dense gemm: k = %lld must be a positive multiple of 128, at most 2^24",
                           (long long)k);
    /* k*n/2 bytes of B: 2^40 elements is far above any real layer. */
    if (k * n >= ((int64_t)1 << 40))
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "dense gemm: k*n = %lld exceeds 2^40", (long long)(k * n));
    if (group_size != -1 && group_size != 32 && group_size != 64 && group_size != 128)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "dense gemm: group size %d not supported (32, 64, 128 or -1)",
                           (int)group_size);
    /* k % 128 == 0 makes every supported group size divide k. */
    return MARLIN_OK;
}

/* ------------------------------------------------------------------- tiles */

#define MK_TILE(mb, nb, kb) {mb, 16 * (nb), 16 * (kb), 0, 0, 0, 0, 0},
#define MK_TILE2(mb, nb, kb) {mb, 16 * (nb), 16 * (kb), 0, 0, MARLIN_DENSE_PIPE_CPASYNC2, 0, 0},
static const marlin_dense_tile k_tiles[] = {MARLIN_DENSE_TILE_LIST(MK_TILE)
                                                MARLIN_DENSE_V2_TILE_LIST(MK_TILE2)};
#undef MK_TILE
#undef MK_TILE2
#define N_TILES ((int)(sizeof k_tiles / sizeof k_tiles[0]))

int marlin_dense_tiles(marlin_dense_tile *out, int cap) {
    for (int i = 0; i < N_TILES && i < cap; i++) out[i] = k_tiles[i];
    return N_TILES;
}

/* Largest pipeline depth whose shared memory fits `bps` blocks on one SM.
 * Per-SM shared memory is the per-block opt-in limit + 1 KB on sm_80..90,
 * and the system reserves 1 KB per resident block. `red` is the kernel's
 * k-split reduction buffer. */
static int stages_that_fit(const marlin_dense_tile *t, bool grouped, int64_t smem_optin,
                           int bps, int64_t red) {
    /* Sized for the cp.async pipelines (what the heuristics pick); a
     * forced mbarrier pipeline checks its slightly larger stages itself. */
    const int64_t stage = MARLIN_DENSE_STAGE_BYTES(t->m_blocks, t->n / 16, t->k / 16,
                                                   grouped ? 1 : 0);
    int64_t per_block = smem_optin;
    if (bps > 1) {
        int64_t b = (smem_optin + 1024) / bps - 1024;
        if (b < per_block) per_block = b;
    }
    int64_t s = (per_block - red - 64) / stage;
    if (s > MARLIN_DENSE_MAX_STAGES) s = MARLIN_DENSE_MAX_STAGES;
    return (int)s;
}

/* The original kernel's heuristic (CPASYNC/BULK/MBAR shapes). */
static marlin_status pick_v1(int64_t m, int64_t n, int64_t k, bool grouped, int sm_count,
                             int64_t smem_optin, marlin_dense_tile *tile, marlin_error *err) {
    marlin_dense_tile t;
    t.pipeline = MARLIN_DENSE_PIPE_AUTO;
    /* Rows: one tile covers all of m up to 64 rows (every weight is read
     * once); beyond, 64-row chunks share each weight tile through L2. */
    t.m_blocks = m <= 64 ? (int)((m + 15) / 16) : 4;
    if (t.m_blocks < 1) t.m_blocks = 1;
    /* Columns: the widest tile n allows (a 256 x 128 stage is 16 KB of
     * weights: half the per-stage bookkeeping per byte of 128 x 128, and
     * each A fragment feeds 4 warps), unless that leaves fewer than 4 work
     * units per SM: then the k range of each column slice is cut into few,
     * short pieces and 128 columns balance better (H100 tuning: 7B o_proj
     * 8.4 vs 8.7 us at m = 1, 18.4 vs 20.7 us at m = 64; docs/perf.md). */
    const int64_t chunks = (m + 16 * t.m_blocks - 1) / (16 * t.m_blocks);
    t.n = (n % 256 == 0) ? 256 : (n % 128 == 0) ? 128 : 64;
    t.k = 128;
    if (t.n == 256 && (n / 256) * chunks * (k / 128) < (int64_t)4 * sm_count) t.n = 128;
    const int64_t units = (n / t.n) * chunks * (k / t.k);
    /* Decode (one m block) is bandwidth-bound: two blocks per SM hide
     * latency, unless the layer is so small that the k range would be
     * split into many short pieces (each piece costs a partial tile). */
    t.blocks_per_sm = (t.m_blocks == 1 && units >= (int64_t)8 * sm_count) ? 2 : 1;
    t.stages = stages_that_fit(&t, grouped, smem_optin, t.blocks_per_sm, MARLIN_DENSE_RED_BYTES);
    if (t.stages < 3 && t.blocks_per_sm > 1) {
        t.blocks_per_sm = 1;
        t.stages = stages_that_fit(&t, grouped, smem_optin, 1, MARLIN_DENSE_RED_BYTES);
    }
    /* Three stages (two units in flight per block) won almost every case of
     * the H100 tuning sweep; a lone decode block per SM wants one more. */
    const int want = (t.m_blocks == 1 && t.blocks_per_sm == 1) ? 4 : 3;
    if (t.stages > want) t.stages = want;
    if (t.stages < MARLIN_DENSE_MIN_STAGES)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "dense gemm: %lld bytes of shared memory per block are too few "
                           "for a 2-stage pipeline",
                           (long long)smem_optin);
    *tile = t;
    return MARLIN_OK;
}

/* The v2 kernel's heuristic, from the H100 sweep of its shapes (docs/perf.md,
 * "Dense Marlin kernel", run 6: every v2 shape x 2/3/4/max stages x 1/2
 * blocks per SM on the Llama-2-7B/70B layers at m = 1, 16, 32, 64, 128).
 * Candidates in order of preference; the first that divides the shape,
 * fits its stages and leaves at least 2 work units per block wins (fewer
 * make every block's range a partial slice); else the last that fits.
 * - one m block (decode): two blocks per SM, 2 stages, 128 x 256 when A is
 *   at most 8 rows or n < 8192 (the deep k tile halves the partial sums
 *   per split slice; within 0-6% of the best on all 8 layers at m = 1),
 *   256 x 128 for 9-16 rows on wide layers (half the activation bytes per
 *   weight byte: best or within 1% on the 6 wide layers at m = 16);
 *   128 x 128 when the layer is too small for either (7B o_proj). The
 *   256 x 256 stage lost 10-30% at one m block (only 2.6-5 units a block).
 * - 2-3 m blocks: 256 x 256, 3 stages, one block per SM (m = 32: within
 *   0.1% of the best per layer).
 * - 4 m blocks: 256 x 256 with 2 stages when there are at least a quarter
 *   as many column slices x row chunks as blocks, else 128 x 256 with 3
 *   (split slices of a 64 x 256 tile move 64 KB of partial sums each:
 *   Llama-2-7B o/down_proj at m = 64 ran 1.2-1.5x slower at 256 columns).
 * Returns 0 when no v2 tile fits (n not a multiple of 128, or a GPU with
 * too little shared memory for 2 stages of any of them). */
typedef struct v2_cand {
    int n, k, stages;
} v2_cand;

static int pick_v2(int64_t m, int64_t n, int64_t k, bool grouped, int sm_count,
                   int64_t smem_optin, marlin_dense_tile *tile) {
    static const v2_cand dec_deep[] = {{128, 256, 2}, {256, 128, 2}, {128, 128, 2}};
    static const v2_cand dec_wide[] = {{256, 128, 2}, {128, 256, 2}, {128, 128, 2}};
    static const v2_cand mid[] = {{256, 256, 3}, {128, 256, 3}, {256, 128, 3}, {128, 128, 3}};
    static const v2_cand big_wide[] = {{256, 256, 2}, {128, 256, 3}, {256, 128, 3}, {128, 128, 3}};
    static const v2_cand big_deep[] = {{128, 256, 3}, {256, 256, 2}, {128, 128, 3}, {256, 128, 3}};
    const int mb = m <= 64 ? (int)((m + 15) / 16) : 4;
    const int64_t chunks = (m + 16 * mb - 1) / (16 * mb);
    const v2_cand *cand;
    int nc;
    if (mb == 1) {
        cand = (m <= 8 || n < 8192) ? dec_deep : dec_wide;
        nc = 3;
    } else if (mb < 4) {
        cand = mid;
        nc = 4;
    } else {
        cand = ((n / 256) * chunks * 4 >= (int64_t)sm_count) ? big_wide : big_deep;
        nc = 4;
    }
    int found = 0;
    marlin_dense_tile best;
    memset(&best, 0, sizeof best);
    for (int c = 0; c < nc; c++) {
        marlin_dense_tile t;
        t.m_blocks = mb < 1 ? 1 : mb;
        t.n = cand[c].n;
        t.k = cand[c].k;
        t.pipeline = MARLIN_DENSE_PIPE_CPASYNC2;
        if (n % t.n != 0 || k % t.k != 0) continue;
        t.blocks_per_sm = t.m_blocks == 1 ? 2 : 1;
        t.stages = stages_that_fit(&t, grouped, smem_optin, t.blocks_per_sm,
                                   MARLIN_DENSE_V2_RED_BYTES);
        if (t.stages < 2 && t.blocks_per_sm > 1) {
            t.blocks_per_sm = 1;
            t.stages = stages_that_fit(&t, grouped, smem_optin, 1, MARLIN_DENSE_V2_RED_BYTES);
        }
        if (t.stages < MARLIN_DENSE_MIN_STAGES) continue;
        if (t.stages > cand[c].stages) t.stages = cand[c].stages;
        const int64_t units = (n / t.n) * chunks * (k / t.k);
        const int64_t blocks = (int64_t)sm_count * t.blocks_per_sm;
        /* the last (smallest) fitting candidate is the fallback */
        best = t;
        found = 1;
        if (units >= 2 * blocks) break;
    }
    if (found) *tile = best;
    return found;
}

/* ------------------------------------------------- Hopper (wgmma) path */

/* The wgmma tile for m rows: the narrowest batch width that holds them
 * (32, 64 or 128 rows: the wgmma N), 256 columns, 64-deep stages, 4
 * stages. 0 when n is not a multiple of 256 or they do not fit. */
static int wgmma_tile(int64_t m, int64_t n, int64_t k, bool grouped, int64_t smem_optin,
                      marlin_dense_tile *tile) {
    (void)k;
    if (n % 256 != 0) return 0;
    const int nb = MARLIN_DENSE_WG_ROWS(m);
    /* 4 stages (2 in flight): best or within 3% on 20 of the 24 Llama-2-7B
     * and 70B layer x m pairs of run 4's tune; 8 lost up to 30%
     * (marlin_dense_pick_wgmma then applies MARLIN_DENSE_WG_STAGES) */
    int stages = 4;
    if ((int64_t)MARLIN_DENSE_WG_SMEM_BYTES(nb, grouped, stages) + MARLIN_DENSE_STATIC_SMEM > smem_optin)
        return 0;
    marlin_dense_tile t;
    memset(&t, 0, sizeof t);
    t.m_blocks = nb / 16;
    t.n = 256;
    t.k = 64;
    t.stages = stages;
    t.blocks_per_sm = MARLIN_DENSE_WG_BLOCKS_PER_SM(nb); /* informative */
    t.pipeline = MARLIN_DENSE_PIPE_WGMMA;
    t.k_splits = 0; /* marlin_dense_wgmma_splits at launch */
    *tile = t;
    return 1;
}

/* k pieces per output tile. Base rule: as many as keep the launch to one
 * wave of resident blocks (two per SM of the 32- and 64-row kernels, one
 * of the 128-row one) and every piece at least 8 stages (512 of k) deep, at
 * most 16. Fit to session 3's run 7 (sweep of pieces on the Llama-2-7B/70B
 * layers at m = 32, 64, 128, one block per SM then: the best count or one
 * within 3% on 22 of the 24 pairs; a second wave cost more than the stages
 * it saved - run 4 had split 7B qkv into 240 pieces of 128 rows, 1.8
 * waves, 15-25% slower). One refinement: a single piece that leaves more
 * than 30% of the SMs idle (fewer tiles than SMs, no room for two pieces in
 * one wave) takes the 2-4 pieces that fill the most of whole waves, if that
 * is >= 90% (m = 128, Llama-2-7B gate_up, 86 tiles: 65.8 us in 3 pieces =
 * 1.95 waves against 69.9-70.0 us in 1; session 3 run 15 and session 4
 * run 3). */
int marlin_dense_wgmma_splits(int64_t m, int64_t n, int64_t k, int m_blocks, int sm_count) {
    if (m < 1 || n < 256 || k < 64 || sm_count < 1) return 1;
    const int64_t nb = m_blocks > 0 ? 16 * m_blocks : MARLIN_DENSE_WG_ROWS(m);
    const int64_t tiles = ((m + nb - 1) / nb) * (n / 256);
    const int64_t slots = (int64_t)sm_count * MARLIN_DENSE_WG_BLOCKS_PER_SM(nb);
    const int64_t deep = k / 512;
    int64_t S = slots / tiles;
    if (S > deep) S = deep;
    if (S <= 1 && 10 * tiles < 7 * slots) {
        /* whole waves filled by 2..4 pieces */
        int64_t best = 1, best_fill = 0;
        for (int64_t c = 2; c <= 4 && c <= deep; c++) {
            const int64_t b = tiles * c, waves = (b + slots - 1) / slots;
            const int64_t fill = 1000 * b / (waves * slots);
            if (fill >= 900 && fill > best_fill) {
                best = c;
                best_fill = fill;
            }
        }
        S = best;
    }
    if (S > 16) S = 16;
    if (S < 1) S = 1;
    return (int)S;
}

/* The automatic choice of the wgmma path (sm_90, caller checks): batches
 * of more than 16 rows on layers with n % 256 == 0, except where the
 * cluster path takes the layer (17-32 rows: layers of <= 10 MB). At m = 64
 * and 128 it beat the v2 kernels on every model since session 3 (run 16,
 * same call: 1.46x vs 1.13x and 0.97x vs 0.71x on Llama-2-7B). Below 49
 * rows it took over in session 6 (run 4, after its copy plan was
 * rewritten; same call, two rounds, with PDL, four models at m = 17, 24,
 * 32, 40, 48): the model totals 3-11% below the automatic choice of
 * then (v2 32- and 48-row tiles), 73 of 80 layers faster; the 7 slower
 * were the Llama-2-7B / Llama-3-8B o_proj on the cluster path at 17-32
 * rows (wgmma 17-22% slower: kept there) and Llama-2-70B gate_up at
 * m = 17 (+1.4%). */
int marlin_dense_pick_wgmma(int64_t m, int64_t n, int64_t k, int32_t group_size, int sm_count,
                            int64_t smem_optin, marlin_dense_tile *tile) {
    if (!tile || sm_count < 1 || m <= 16) return 0;
    if (marlin_dense_check_shape(m, n, k, group_size, NULL)) return 0;
    marlin_dense_tile cl;
    if (m <= 32 && marlin_dense_pick_cluster(m, n, k, group_size, sm_count, smem_optin, &cl))
        return 0;
    marlin_dense_tile t;
    if (!wgmma_tile(m, n, k, marlin_pack_scales_grouped(k, group_size), smem_optin, &t))
        return 0;
    /* The pipeline depth (MARLIN_DENSE_WG_STAGES): 6 stages for 32-row
     * tiles of deep pieces - session 7's run 4 tune, with every piece
     * adding a share of the tile, 6 stages against 4 at m = 17 and 32:
     * gate_up 1-5% faster on all four models, Llama-2-13B / 70B qkv 2-3%;
     * layers of shallow pieces (o_proj, down_proj in 8-16 pieces) 2-5%
     * slower with 6. */
    {
        const int S = marlin_dense_wgmma_splits(m, n, k, t.m_blocks, sm_count);
        const int st = MARLIN_DENSE_WG_STAGES(16 * t.m_blocks, (int)(k / 64 / S));
        const bool grouped = marlin_pack_scales_grouped(k, group_size);
        if ((int64_t)MARLIN_DENSE_WG_SMEM_BYTES(16 * t.m_blocks, grouped, st) +
                MARLIN_DENSE_STATIC_SMEM <=
            smem_optin)
            t.stages = st;
    }
    /* 128-row tiles cut into pieces shallower than 768 (a small layer: few
     * tiles, many pieces) run as 64-row tiles in twice the row tiles, one
     * piece per SM (k_splits set here; marlin_dense_wg_narrow_pieces):
     * Llama-2-7B and Llama-3-8B o_proj at m = 128 20.0 us in 64-row tiles
     * x 4 pieces against 23.1 us in 128-row tiles x 8 pieces of 512 and
     * 22.6 us in 64-row tiles x 8 (session 4 run 3, with PDL; session 3
     * run 15 alike); the 2:4 path measured the same, while pieces of
     * 819-853 (Llama-3-8B qkv, Llama-2-13B o_proj) kept the 128-row tile
     * ahead there. (One piece per SM as a general rule for 64-row tiles
     * was tried in run 3 and dropped: with PDL the next launch's blocks
     * take the free second slots unevenly, Llama-2-70B qkv at m = 64
     * 54.5 us against 42.3 us without PDL.) */
    if (t.m_blocks == 8) {
        const int s64 = marlin_dense_wg_narrow_pieces(
            m, n, k, marlin_dense_wgmma_splits(m, n, k, 8, sm_count), sm_count);
        marlin_dense_tile t64;
        if (s64 > 0 &&
            wgmma_tile(64, n, k, marlin_pack_scales_grouped(k, group_size), smem_optin, &t64)) {
            t64.k_splits = s64;
            t = t64;
        }
    }
    *tile = t;
    return 1;
}

marlin_status marlin_dense_pick_tile_pipe(int64_t m, int64_t n, int64_t k, int32_t group_size,
                                          int sm_count, int64_t smem_optin, int pipeline,
                                          marlin_dense_tile *tile, marlin_error *err) {
    marlin_status st = marlin_dense_check_shape(m, n, k, group_size, err);
    if (st) return st;
    if (!tile || sm_count < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "pick tile: bad arguments");
    if (pipeline < MARLIN_DENSE_PIPE_AUTO || pipeline > MARLIN_DENSE_PIPE_WGMMA)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "pick tile: pipeline %d outside [0, 5]",
                           pipeline);
    const bool grouped = marlin_pack_scales_grouped(k, group_size);
    if (pipeline == MARLIN_DENSE_PIPE_WGMMA) {
        /* the Hopper family at any m (benchmarks compare it where the
         * automatic rule would not take it); v2 where it has no tile */
        if (wgmma_tile(m, n, k, grouped, smem_optin, tile)) return MARLIN_OK;
        pipeline = MARLIN_DENSE_PIPE_CPASYNC2;
    }
    if (pipeline == MARLIN_DENSE_PIPE_CPASYNC2 || pipeline == MARLIN_DENSE_PIPE_AUTO) {
        /* Automatic choice: v2 wherever it has a tile, else the original
         * kernel. H100, run 7 (docs/perf.md), same call, with PDL: summed
         * over the four layers, v2 was faster for Llama-2-7B/13B/70B and
         * Llama-3-8B at m = 1, 8, 16, 32, 48, 64 and 128 (27 of 28 totals;
         * 70B at m = 16 +0.3%, within the run-to-run spread; without PDL
         * 25 of 28, the others +0.2-1.8% at m = 48-64), and on 92 of the
         * 112 layer x m pairs (the rest 0-11% slower, listed there). */
        if (pick_v2(m, n, k, grouped, sm_count, smem_optin, tile)) return MARLIN_OK;
        if (pipeline == MARLIN_DENSE_PIPE_CPASYNC2) pipeline = MARLIN_DENSE_PIPE_CPASYNC;
    }
    st = pick_v1(m, n, k, grouped, sm_count, smem_optin, tile, err);
    if (st) return st;
    tile->pipeline = pipeline;
    return MARLIN_OK;
}

/* The cluster path's automatic choice (sm_90+). Fit to run 10's sweep on
 * the H100 (docs/perf.md: every 16-row v2 shape x cluster sizes 2-6, 8 x
 * 2-4 stages against stream-K, Llama-2-7B/13B, Llama-3-8B, Llama-2-70B at
 * m = 1 and 16): the cluster path won on most layers of <= ~40 MB of
 * weights (no fix-up through L2 on the launch's tail) and lost or tied on
 * the 70B layers and the largest gate_up ones, where the tail is a small
 * part of the launch. The rule: 128 columns x 256-deep stages (128-deep
 * when k is not a multiple of 256), 2 stages, and the cluster size that
 * puts the grid nearest 1.45 blocks per SM within [0.6, 2.0] per SM. Over
 * the 32 measured layer x m pairs it gives 807 us against 836 us for
 * stream-K alone (the best per pair: 785 us; a first version, <= 30 MB and
 * <= 1.6 blocks per SM, 815 us, left Llama-2-13B qkv on stream-K).
 * 17-32 rows (run 16's sweep at m = 24 and 32, 16-row tiles in two row
 * chunks against the 32-row kernels): the cluster path won on the layers of
 * <= 10 MB (Llama-2-7B and Llama-3-8B o_proj: -23%, 128 x 256, 3 stages, 2
 * blocks per cluster, ~1 block per SM) and lost or tied above; so there it
 * takes layers of <= 10 MB, 3 stages and the grid nearest 1.0 per SM. */
int marlin_dense_pick_cluster(int64_t m, int64_t n, int64_t k, int32_t group_size, int sm_count,
                              int64_t smem_optin, marlin_dense_tile *tile) {
    static const int sizes[] = {2, 3, 4, 5, 6, 8};
    if (!tile || sm_count < 1 || m < 1 || m > 32 || n % 128 != 0 || k % 128 != 0) return 0;
    /* 17-32 rows: two 16-row chunks, each dequantizing the whole layer
     * (twice the 32-row kernel's dequantization); measured better only on
     * the smallest layers */
    const int64_t chunks = (m + 15) / 16;
    const double target = chunks == 1 ? 1.45 : 1.0;
    if (k * n / 2 > (int64_t)(chunks == 1 ? 40 : 10) * 1000 * 1000) return 0;
    if (marlin_dense_check_shape(m, n, k, group_size, NULL)) return 0;
    marlin_dense_tile t;
    memset(&t, 0, sizeof t);
    t.m_blocks = 1;
    t.n = 128;
    t.k = (k % 256 == 0) ? 256 : 128;
    t.stages = chunks == 1 ? 2 : 3;
    t.blocks_per_sm = 2;
    t.pipeline = MARLIN_DENSE_PIPE_CPASYNC2;
    const bool grouped = marlin_pack_scales_grouped(k, group_size);
    if (stages_that_fit(&t, grouped, smem_optin, 2,
                        MARLIN_DENSE_V2_RED_BYTES + MARLIN_DENSE_CLUSTER_RECV_BYTES(1, 8)) <
        t.stages)
        return 0;
    const int64_t slices = n / t.n, kt = k / t.k;
    double best = 1e30;
    int pick = 0;
    for (int i = 0; i < 6; i++) {
        if (sizes[i] > kt) break;
        const double per_sm = (double)(slices * chunks * sizes[i]) / sm_count;
        if (per_sm < 0.6 || per_sm > 2.0) continue;
        const double d = per_sm > target ? per_sm - target : target - per_sm;
        if (d < best) {
            best = d;
            pick = sizes[i];
        }
    }
    if (!pick) return 0;
    t.cluster_k = pick;
    *tile = t;
    return 1;
}

marlin_status marlin_dense_pick_tile(int64_t m, int64_t n, int64_t k, int32_t group_size,
                                     int sm_count, int64_t smem_optin,
                                     marlin_dense_tile *tile, marlin_error *err) {
    return marlin_dense_pick_tile_pipe(m, n, k, group_size, sm_count, smem_optin,
                                       MARLIN_DENSE_PIPE_AUTO, tile, err);
}

/* --------------------------------------------------------------- workspace */

size_t marlin_dense_workspace_counter_bytes(int64_t max_m, int64_t n) {
    if (max_m < 1 || max_m > INT32_MAX || n < 64 || n % 64 != 0 || n > INT32_MAX) return 0;
    /* One counter per (column slice, row chunk); the narrowest tile (64
     * columns) and the shortest chunk (16 rows) give the most. */
    size_t counters = (size_t)(n / 64) * (size_t)((max_m + 15) / 16) * 4;
    return (counters + 255) & ~(size_t)255;
}

size_t marlin_dense_workspace_bytes(int64_t max_m, int64_t n, int sm_count) {
    const size_t counters = marlin_dense_workspace_counter_bytes(max_m, n);
    if (!counters || sm_count < 1) return 0;
    /* Partials: two fp32 tiles per block, at most 2 blocks per SM, of the
     * largest tile a call with m <= max_m and a width <= n can use; plus
     * 256 bytes for aligning them to the end of the buffer. */
    int64_t mb = (max_m + 15) / 16;
    if (mb > 4) mb = 4;
    const int64_t nb = n >= 256 ? 16 : n >= 128 ? 8 : 4;
    const size_t partials = (size_t)2 * (size_t)(2 * sm_count) * (size_t)(16 * mb) *
                            (size_t)(16 * nb) * sizeof(float);
    return counters + partials + 256;
}

/* -------------------------------------------------------- CPU references */

marlin_status marlin_dense_dequant_ref(const uint32_t *B, const uint16_t *s, int64_t n,
                                       int64_t k, int32_t group_size, float *W,
                                       marlin_error *err) {
    uint8_t *q = NULL;
    uint16_t *sn = NULL;
    float *sf = NULL;
    marlin_status st = marlin_dense_check_shape(1, n, k, group_size, err);
    if (st) return st;
    if (!B || !s || !W)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "dense dequant ref: NULL pointer");
    const int64_t G = marlin_pack_groups(k, group_size);
    const int64_t g = (group_size == -1) ? k : group_size;
    q = malloc((size_t)(n * k));
    sn = malloc((size_t)(G * n) * sizeof *sn);
    sf = malloc((size_t)(G * n) * sizeof *sf);
    if (!q || !sn || !sf) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "dense dequant ref: out of memory (%lld x %lld)",
                         (long long)n, (long long)k);
        goto out;
    }
    /* The layout is decoded by pack/ (its one definition), not here. */
    st = marlin_unpack_dense(B, s, n, k, group_size, 0, q, sn, err);
    if (st) goto out;
    marlin_half_to_float_n(sn, sf, (size_t)(G * n));
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *qr = q + r * k;
        for (int64_t c = 0; c < k; c++)
            W[c * n + r] = (float)((int)qr[c] - 8) * sf[(c / g) * n + r];
    }
out:
    free(q);
    free(sn);
    free(sf);
    return st;
}

marlin_status marlin_dense_gemm_ref(const uint16_t *A, const uint32_t *B, const uint16_t *s,
                                    float *C, int64_t m, int64_t n, int64_t k,
                                    int32_t group_size, marlin_error *err) {
    float *W = NULL, *Af = NULL;
    marlin_status st = marlin_dense_check_shape(m, n, k, group_size, err);
    if (st) return st;
    if (m == 0) return MARLIN_OK;
    if (!A || !C)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "dense gemm ref: NULL pointer");
    W = malloc((size_t)(k * n) * sizeof *W);
    Af = malloc((size_t)(m * k) * sizeof *Af);
    if (!W || !Af) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "dense gemm ref: out of memory");
        goto out;
    }
    st = marlin_dense_dequant_ref(B, s, n, k, group_size, W, err);
    if (st) goto out;
    marlin_half_to_float_n(A, Af, (size_t)(m * k));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, Af,
                (int)k, W, (int)n, 0.0f, C, (int)n);
out:
    free(W);
    free(Af);
    return st;
}
