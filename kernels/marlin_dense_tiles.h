/*
 * marlin_dense_tiles.h - PRIVATE to kernels/: the one list of dense-kernel
 * tile shapes that have an instantiated kernel. Included by the CUDA side
 * (which instantiates one kernel per entry and per scale mode) and by the C
 * side (marlin_dense_tiles, the heuristic, the workspace bound), so the two
 * can never disagree. Not installed.
 *
 * X(m_blocks, n_blocks, k_blocks): a threadblock computes a
 * (16*m_blocks) x (16*n_blocks) output tile, consuming 16*k_blocks rows of
 * the reduction per pipeline stage. 256 threads = 8 warps; each warp owns 64
 * output columns, so n_blocks/4 warps span the tile's columns and the other
 * 8/(n_blocks/4) split the stage's k16 steps (k_blocks must be a multiple).
 */
#ifndef MARLIN_DENSE_TILES_H
#define MARLIN_DENSE_TILES_H

#include <stdbool.h>
#include <stdint.h>

#define MARLIN_DENSE_TILE_LIST(X)                                            \
    X(1, 4, 8)  X(1, 8, 8)  X(1, 16, 8)                                      \
    X(2, 4, 8)  X(2, 8, 8)  X(2, 16, 8)                                      \
    X(3, 4, 8)  X(3, 8, 8)  X(3, 16, 8)                                      \
    X(4, 4, 8)  X(4, 8, 8)  X(4, 16, 8)

/* The v2 main loop (MARLIN_DENSE_PIPE_CPASYNC2, dense_v2_kernel): the same
 * 8 warps and operand layout, but the whole k range a warp owns in a stage
 * is unrolled with its fragments double-buffered in registers, and stages
 * may be 256 deep (k_blocks 16: 32 KB of weights per 256-column stage, as
 * the 2:4 kernel's 24-48 KB stages). Its own list: these kernels exist for
 * that pipeline only. */
#define MARLIN_DENSE_V2_TILE_LIST(X)                                         \
    X(1, 8, 8)  X(1, 16, 8)  X(1, 8, 16)  X(1, 16, 16)                       \
    X(2, 8, 8)  X(2, 16, 8)  X(2, 8, 16)  X(2, 16, 16)                       \
    X(3, 8, 8)  X(3, 16, 8)  X(3, 8, 16)  X(3, 16, 16)                       \
    X(4, 8, 8)  X(4, 16, 8)  X(4, 8, 16)  X(4, 16, 16)

/* Launch geometry shared by host and device code. */
#define MARLIN_DENSE_THREADS 256
#define MARLIN_DENSE_MAX_STAGES 8
#define MARLIN_DENSE_MIN_STAGES 2
/* Shared memory of the cross-warp reduction: 4 warps x 32 lanes x 4 float4
 * (half of one 16-row block of a warp's 16x64 accumulators at a time). */
#define MARLIN_DENSE_RED_BYTES (4 * 32 * 4 * 16)
/* v2: all 8 n8 tiles of a 16-row block per tree round (half the barriers
 * at a segment end): 4 warps x 32 lanes x 8 float4. */
#define MARLIN_DENSE_V2_RED_BYTES (4 * 32 * 8 * 16)
/* The cluster path's receive area (v2, tile.cluster_k > 1): the parts of
 * one 16*mb x 16*nb fp32 tile from every block of the cluster, one chunk
 * each, + 16 float4 of rounding slack (cluster sizes that do not divide the
 * tile). */
#define MARLIN_DENSE_CLUSTER_RECV_BYTES(mb, nb) ((64 * (mb) * (nb) + 16) * 16)
/* Upper bound of a kernel's static shared memory (mbarriers, a flag). */
#define MARLIN_DENSE_STATIC_SMEM 256

/* The mbarrier pipelines (sm_90, same 8 warps) pad each A row by 16 bytes
 * in shared memory instead of swizzling (conflict-free ldmatrix). */
#define MARLIN_DENSE_MBAR_STAGE_BYTES(mb, nb, kb, grouped)                   \
    (MARLIN_DENSE_STAGE_BYTES(mb, nb, kb, grouped) + 16 * (mb) * 16)

/* Shared memory of one pipeline stage, in bytes: A (16*mb x 16*kb fp16),
 * B (kb rows of 16*nb*16 4-bit codes) and, when grouped, up to kb/2 scale
 * rows of 16*nb fp16 (group size 32 gives 16*kb/32 groups per stage). */
#define MARLIN_DENSE_STAGE_BYTES(mb, nb, kb, grouped)                        \
    ((16 * (mb) * 16 * (kb) * 2) + ((kb) * (nb) * 128) +                     \
     ((grouped) ? ((kb) / 2) * (nb) * 32 : 0))

/* The Hopper (wgmma) kernel, marlin_dense_sm90a.cu. Its tile widths (batch
 * rows) and residency, for the kernel's launch bounds and every host rule
 * that counts its blocks (dense and 2:4): the narrowest width that holds m
 * rows, and the blocks one SM runs of a width (two of the 32- and 64-row
 * kernels at <= 128 registers, one of the 128-row one). */
#define MARLIN_DENSE_WG_ROWS(m) ((m) <= 32 ? 32 : (m) <= 64 ? 64 : 128)
#define MARLIN_DENSE_WG_BLOCKS_PER_SM(nb) ((nb) <= 64 ? 2 : 1)
/* Its shared memory of one 64-deep stage for nb batch rows (A: nb rows of
 * 128 bytes; B: 4 k16 rows of 256 columns; grouped: up to 2 scale rows of
 * 256 fp16), and of a whole launch: the stages or the epilogue's fp16 tile
 * (nb rows of 256 + 8 halves), whichever is larger, + 1 KB of alignment
 * slack + the mbarriers. One definition for the launcher and the host-side
 * rule. */
#define MARLIN_DENSE_WG_STAGE_BYTES(nb, grouped)                             \
    ((nb) * 128 + 4 * 2048 + ((grouped) ? 1024 : 0))
#define MARLIN_DENSE_WG_SMEM_BYTES(nb, grouped, stages)                      \
    (((stages) * MARLIN_DENSE_WG_STAGE_BYTES(nb, grouped) > (nb) * 264 * 2   \
          ? (stages) * MARLIN_DENSE_WG_STAGE_BYTES(nb, grouped)              \
          : (nb) * 264 * 2) + 1024 + MARLIN_DENSE_WG_BAR_BYTES)
/* The pipeline's mbarriers ("full" per stage, "empty" too in the
 * ping-pong form), right after the stages; dead once the main loop ends,
 * when the epilogue's tile reuses the buffers (4+ stages are larger than
 * that tile anyway). */
#define MARLIN_DENSE_WG_BAR_BYTES (2 * 8 * MARLIN_DENSE_MAX_STAGES)
/* Its pipeline depth, dense and 2:4: 32-row tiles whose k pieces are at
 * least 16 stages deep take 6 stages (4 in flight), every other launch 4
 * (session 7: runs 4 and 12, docs/perf.md; shallow pieces lose with 6,
 * and at 64 and 128 rows 6 was no faster). */
#define MARLIN_DENSE_WG_STAGES(nb, piece_stages) ((nb) == 32 && (piece_stages) >= 16 ? 6 : 4)
/* Its narrower tile for small layers, dense and 2:4: where 128-row tiles
 * in s128 pieces would cut k into pieces shallower than 768, 64-row tiles
 * in twice the row tiles with one piece per SM (at least 512 deep, at most
 * 16) run faster (docs/perf.md: Llama-2-7B o_proj at m = 128, sessions 4
 * and 7). Returns that piece count, or 0 to keep the 128-row tile. */
static inline int marlin_dense_wg_narrow_pieces(int64_t m, int64_t n, int64_t k, int s128,
                                                int sm_count) {
    if (s128 <= 1 || k / s128 >= 768) return 0;
    const int64_t tiles64 = ((m + 63) / 64) * (n / 256);
    int64_t s = tiles64 > 0 ? sm_count / tiles64 : 0;
    if (s > k / 512) s = k / 512;
    if (s > 16) s = 16;
    return (int)s;
}

/* ------------------------------------------------------------------------
 * Work partition (stream-K). The T work units of a launch, numbered down k
 * inside a column slice and then slice by slice, are split over B blocks in
 * contiguous ranges whose sizes differ by at most one:
 *   block b owns units [begin(b), begin(b+1)),  begin(b) = floor(b*T/B).
 * A column slice (k_tiles consecutive units) may span several blocks; each
 * block's piece of it is the block's first segment (partial slot 0) when the
 * block begins inside the slice, else its last segment (slot 1). Shared by
 * the kernel, the launcher and the CPU test of these rules.
 */
#if defined(__CUDACC__)
#define MK_DENSE_HD __host__ __device__ __forceinline__
#else
#define MK_DENSE_HD static inline
#endif

/* First unit of block b (b = B gives T). */
MK_DENSE_HD int mk_dense_unit_begin(int b, int total, int blocks) {
    return (int)(((long long)b * total) / blocks);
}

/* The block that owns unit u: the largest b with begin(b) <= u, i.e.
 * b*T < (u+1)*B. */
MK_DENSE_HD int mk_dense_unit_owner(int u, int total, int blocks) {
    return (int)((((long long)u + 1) * blocks - 1) / total);
}

/* The Hopper kernel's output column (within its block's 256) of thread t's
 * fragment i, rows g (h = 0) and g + 8 (h = 1) of its wgmma A tile. Warp w
 * of warpgroup wg decodes slab 2 wg + (w & 1), words 2 (w >> 1) + i. Dense:
 * word j of a lane holds columns 16j + g and 16j + 8 + g of its slab;
 * sparse (MF 4.4, the 2:4 kernel's "subtile j"): columns 8g + j and
 * 8g + j + 4. Shared with the CPU test of the scale-word rule. */
MK_DENSE_HD int mk_dense_wg_fcol(int t, int i, int h, bool sparse) {
    const int warp = t >> 5, g = (t & 31) >> 2;
    const int slab = 2 * (warp >> 2) + (warp & 1), word = 2 * ((warp & 3) >> 1) + i;
    return sparse ? 64 * slab + 8 * g + word + 4 * h : 64 * slab + 16 * word + 8 * h + g;
}

#endif
