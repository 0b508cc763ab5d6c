/*
 * marlin_dense.cu - our dense FP16 x INT4 Marlin GEMM (marlin_kernels.h
 * section 2), written from the contract and layout in
 * docs/reference/marlin-format.md sections 1.4-1.6, 2 and 3 (no upstream code).
 *
 *   C[m][n] = A[m][k] @ W,  W[k][n] = (q[k][n] - 8) * s[k/g][n]
 *
 * Design (why each piece is there):
 * - Work units are (output tile, 16*KB-deep k slice) pairs, enumerated down k
 *   inside a column slice, then slice by slice ("stream-K"/striped). Every
 *   block takes the same number of consecutive units, so all SMs stay busy
 *   on any layer shape, whatever n/tile_n is.
 * - A block whose units cover only part of a slice's k range writes fp32
 *   partial sums to the workspace and bumps the slice's counter; the block
 *   that arrives last adds all partials of the slice in block order (a fixed
 *   order: results do not depend on timing), writes C and resets the counter
 *   to 0. No block ever waits for another, so no residency assumption.
 * - Global -> shared memory by cp.async (16 bytes per thread and copy), in a
 *   runtime-deep pipeline (2..8 stages, as much as the GPU's shared memory
 *   allows: decode at small m is purely bandwidth-bound and needs megabytes
 *   in flight). B and the grouped scales are read once: L2 evict_first so
 *   they do not push A and the partial sums out of L2.
 * - A sits in shared memory with its 16-byte chunks XOR-swizzled by row so
 *   ldmatrix.x4 reads and the cp.async writes are bank-conflict free.
 * - B is loaded as one int4 per lane per 16x64 slab: by construction of the
 *   layout (1.5) the 4 words are exactly this lane's mma.m16n8k16 B fragments
 *   for 8 n8-tiles, decoded with LOP3 + fp16 magic numbers (no shuffles).
 * - 8 warps: tile_n/64 of them along n, the rest split the k16 steps of each
 *   stage; their partial accumulators meet in shared memory at a segment end.
 * - Two more ways to fill the stages on sm_90 (dense_mbar_kernel: mbarrier
 *   stages refilled by the last warp done with them, B by cp.async or by
 *   cp.async.bulk), selectable per call (marlin_dense_tile.pipeline). They
 *   issue fewer instructions but measured slower on the H100 (docs/perf.md),
 *   so they are never chosen automatically.
 * - A second cp.async main loop, dense_v2_kernel (pipeline CPASYNC2, its own
 *   tile shapes): the 2:4 kernel's structure (comment above that kernel).
 *   It measured faster than dense_kernel on the H100 at every batch size of
 *   the four Llama models (docs/perf.md, runs 6-7), so the automatic choice
 *   runs it wherever it has a tile (n a multiple of 128) and dense_kernel
 *   elsewhere.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

#include <atomic>

#include "marlin_cuda_internal.h"
#include "marlin_dense_tiles.h"
#include "marlin_ptx.cuh"
#include "marlin_kernels.h"
#include "marlin_pack.h"

namespace {

/* Kernel parameters (by value). Counts fit int32 (contract: < 2^31). */
struct DenseParams {
    const int4 *A;        /* fp16 [m][k]        as int4: [m][k/8] */
    const int4 *B;        /* int32 [k/16][2n]   as int4: [k/16][n/2] */
    const int4 *s;        /* fp16 [G][n]        as int4: [G][n/8] */
    __half *C;            /* fp16 [m][n] */
    int *counters;        /* [n_slices * m_chunks], zero between launches */
    float4 *partials;     /* [blocks][2][slot_f4] fp32 partial tiles */
    int m, n, k;
    int m_chunks;         /* row chunks of 16*MB rows */
    int k_tiles;          /* k / (16*KB) units per slice */
    int total_units;      /* n_slices * m_chunks * k_tiles */
    int group_shift;      /* grouped: log2(group_size / 16) */
    int group_rows;       /* grouped: scale rows per stage (>= 1) */
    int group_size;       /* grouped: rows per group */
    int stages;           /* pipeline depth, 2..MARLIN_DENSE_MAX_STAGES */
    int pdl;              /* launched with programmatic dependent launch */
    int evict_first;      /* 1: B is read once (one row chunk): L2 evict_first */
    int units32;          /* total_units * gridDim.x < 2^32 (v2: 32-bit partition math) */
    unsigned long long *trace; /* v2 only, diagnostics: per-block timeline or NULL */
    int cluster_k;        /* v2, sm_90: > 1 = blocks of a cluster split one slice's k
                             (cluster path); 0 = stream-K */
};

/* Built with -DMARLIN_TRACE=ON only (CMake): MARLIN_DENSE_TRACE. */
#ifndef MARLIN_DENSE_TRACE
#define MARLIN_DENSE_TRACE 0
#endif
#if MARLIN_DENSE_TRACE
/* Diagnostics (marlin_dense_args.trace): thread 0 of each block writes
 * MARLIN_DENSE_TRACE_SLOTS 64-bit values: SM id, then %globaltimer (ns) at
 * entry, after the PDL wait, when the first stage is ready, before the last
 * segment end, and at exit, then the block's unit count and the phases of
 * its last segment end. Compiled in only for tracing builds: even unused,
 * the branches cost 1-2.5% on stream-K decode launches (run 14). */
__device__ __forceinline__ unsigned long long gtimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
/* Thread 0 of the block writes the timer to its trace slot: for the points
 * inside the segment-end helpers. */
#define MK_TRACE_P(p, slot)                                                                    \
    do {                                                                                       \
        if ((p).trace && threadIdx.x == 0)                                                     \
            (p).trace[(size_t)blockIdx.x * MARLIN_DENSE_TRACE_SLOTS + (slot)] = gtimer();      \
    } while (0)
__device__ __forceinline__ unsigned smid_reg() {
    unsigned r;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(r));
    return r;
}
#else
#define MK_TRACE_P(p, slot) ((void)0)
#endif

/* ------------------------------------------------------------ PTX wrappers */


/* D = A(16x16 fp16, row) * B(16x8 fp16, col) + D, fp32 accumulators. */
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}


__device__ __forceinline__ uint32_t hmul2_bits(uint32_t a, uint32_t b) {
    return h2_bits(__hmul2(bits_h2(a), bits_h2(b)));
}

/* fp16 number `idx` (0..7) of an int4, as float (idx is a constant after
 * unrolling, so this is register moves, not memory). */
__device__ __forceinline__ float half_at(const int4 &v, int idx) {
    const uint32_t w = (idx >> 1) == 0 ? (uint32_t)v.x
                       : (idx >> 1) == 1 ? (uint32_t)v.y
                       : (idx >> 1) == 2 ? (uint32_t)v.z
                                         : (uint32_t)v.w;
    return __half2float(__ushort_as_half((unsigned short)(w >> (16 * (idx & 1)))));
}

/* Position of a work unit: k tile kt of column slice ns, row chunk mc.
 * Advanced incrementally (units are visited in order), which keeps integer
 * divisions out of the per-unit path. */
struct Cursor {
    int kt, ns, mc;
    __device__ __forceinline__ void init(int u, const DenseParams &p) {
        const int slice = u / p.k_tiles;
        kt = u - slice * p.k_tiles;
        ns = slice / p.m_chunks;
        mc = slice - ns * p.m_chunks;
    }
    __device__ __forceinline__ void advance(const DenseParams &p) {
        if (++kt == p.k_tiles) {
            kt = 0;
            if (++mc == p.m_chunks) {
                mc = 0;
                ++ns;
            }
        }
    }
};

/* End of a segment (this block's units inside one slice, cursor c): the
 * warps that split k meet in shared memory (`red`, 8 KB), then the segment's
 * sums go straight to C when the block owns the whole slice, else to the
 * block's partial slot, and the block that completes the slice adds all
 * partials in block order and writes C. Called by all 256 threads of the
 * block (both pipelines); leaves acc zeroed for the next segment. */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void finish_segment(float (&acc)[MB][8][4], const Cursor &c,
                                               const DenseParams &p, int u_begin, float4 *red,
                                               int *s_last) {
    constexpr int WN = NB / 4;
    constexpr int WK = 8 / WN;
    constexpr int SLOT_F4 = 64 * MB * NB;
    constexpr int T = MARLIN_DENSE_THREADS;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % WN;
    const int wk = warp / WN;
    const int n_blocks = (int)gridDim.x;
    const int ns = c.ns, mc = c.mc;
    const int slice = ns * p.m_chunks + mc;
    const int slice_u0 = slice * p.k_tiles;
    const int seg_u0 = max(u_begin, slice_u0);

    /* 1. Sum the WK warps that share columns: tree through shared
     *    memory, four n8 tiles of one 16-row block at a time (8 KB). */
#pragma unroll
    for (int i = 0; i < MB; i++) {
#pragma unroll
        for (int jh = 0; jh < 8; jh += 4) {
#pragma unroll
            for (int off = WK / 2; off >= 1; off /= 2) {
                if (wk >= off && wk < 2 * off) {
                    float4 *dst = red + ((wk - off) * WN + wn) * 128 + lane;
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        dst[j * 32] = make_float4(acc[i][jh + j][0], acc[i][jh + j][1],
                                                  acc[i][jh + j][2], acc[i][jh + j][3]);
                }
                __syncthreads();
                if (wk < off) {
                    const float4 *src = red + (wk * WN + wn) * 128 + lane;
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const float4 v = src[j * 32];
                        acc[i][jh + j][0] += v.x;
                        acc[i][jh + j][1] += v.y;
                        acc[i][jh + j][2] += v.z;
                        acc[i][jh + j][3] += v.w;
                    }
                }
                __syncthreads();
            }
        }
    }

    /* 2. Output mapping. Fragment (i, j) of a wk == 0 warp: c0,c1 are
     *    row lane/4, columns 2(lane%4)+{0,1} of n8 tile j; c2,c3 the
     *    same columns 8 rows lower. Per-channel scales come from the
     *    32-column shuffle (1.6): int4 (lane%4) of each 32-column chunk
     *    holds columns 2(lane%4)+e+8t at half 2t+e. */
    const bool owner = (tid < 32 * WN); /* the wk == 0 warps hold the sum */
    const int col0 = ns * 16 * NB + wn * 64 + 2 * (lane & 3);
    const int rbase = mc * 16 * MB + (lane >> 2);
    float sc[8][2];
#pragma unroll
    for (int j = 0; j < 8; j++) sc[j][0] = sc[j][1] = 1.0f;
    auto load_channel_scales = [&]() {
        if (!GROUPED) {
            const int4 *srow = p.s + (ns * 16 * NB + wn * 64) / 8 + (lane & 3);
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int4 v = __ldg(srow + 4 * c);
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    sc[4 * c + t][0] = half_at(v, 2 * t);
                    sc[4 * c + t][1] = half_at(v, 2 * t + 1);
                }
            }
        }
    };
    auto store_c = [&](int i, int j, float4 v) {
        const int row = rbase + 16 * i;
        __half *dst = p.C + (int64_t)row * p.n + col0 + 8 * j;
        if (row < p.m)
            *reinterpret_cast<__half2 *>(dst) =
                __floats2half2_rn(v.x * sc[j][0], v.y * sc[j][1]);
        if (row + 8 < p.m)
            *reinterpret_cast<__half2 *>(dst + 8 * (int64_t)p.n) =
                __floats2half2_rn(v.z * sc[j][0], v.w * sc[j][1]);
    };

    /* 3. Which blocks hold pieces of this slice (marlin_dense_tiles.h:
     *    block b's piece is its first segment, slot 0, when b begins
     *    inside the slice, else its last segment, slot 1). */
    const int b_first = mk_dense_unit_owner(slice_u0, p.total_units, n_blocks);
    const int b_last = mk_dense_unit_owner(slice_u0 + p.k_tiles - 1, p.total_units, n_blocks);
    if (b_first == b_last) {
        /* The whole k range is ours: straight to C. */
        if (owner) {
            load_channel_scales();
#pragma unroll
            for (int i = 0; i < MB; i++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    store_c(i, j, make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2],
                                              acc[i][j][3]));
        }
    } else {
        const int my_slot = (seg_u0 == u_begin) ? 0 : 1;
        float4 *mine = p.partials + ((int64_t)blockIdx.x * 2 + my_slot) * SLOT_F4 + tid;
        if (owner) {
#pragma unroll
            for (int i = 0; i < MB; i++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    __stcg(mine + (i * 8 + j) * (32 * WN),
                           make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2],
                                       acc[i][j][3]));
        }
        /* Publish the partial before counting it (threadFenceReduction
         * pattern): every writer fences, then one thread counts. */
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            const int before = atomicAdd(p.counters + slice, 1);
            *s_last = (before == b_last - b_first);
        }
        __syncthreads();
        if (*s_last) {
            __threadfence();
            /* Every block of the slice, this one included, has published
             * its partial. All 256 threads add them up, E float4 each,
             * in block order b_first..b_last (a fixed order: the sum is
             * bitwise the same whichever block arrives last), with the
             * loads of U blocks in flight at once. */
            /* Blocks after b_first begin inside the slice (slot 0);
             * b_first does only if it begins exactly at its start. */
            const bool first_inside =
                mk_dense_unit_begin(b_first, p.total_units, n_blocks) == slice_u0;
            constexpr int E = SLOT_F4 / T;
            constexpr int U = (E >= 8) ? 1 : 8 / E;
            float4 sum[E];
#pragma unroll
            for (int e = 0; e < E; e++) sum[e] = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int b0 = b_first; b0 <= b_last; b0 += U) {
                float4 w[U][E];
#pragma unroll
                for (int u = 0; u < U; u++) {
                    const int b = b0 + u;
                    if (b <= b_last) {
                        const int slot = (b > b_first || first_inside) ? 0 : 1;
                        const float4 *src = p.partials + ((int64_t)b * 2 + slot) * SLOT_F4 + tid;
#pragma unroll
                        for (int e = 0; e < E; e++) w[u][e] = __ldcg(src + e * T);
                    }
                }
#pragma unroll
                for (int u = 0; u < U; u++)
                    if (b0 + u <= b_last) {
#pragma unroll
                        for (int e = 0; e < E; e++) {
                            sum[e].x += w[u][e].x;
                            sum[e].y += w[u][e].y;
                            sum[e].z += w[u][e].z;
                            sum[e].w += w[u][e].w;
                        }
                    }
            }
            /* Element tid + e*T of a partial is fragment (i, j) of owner
             * thread o (the layout the owners wrote above). */
#pragma unroll
            for (int e = 0; e < E; e++) {
                const int idx = tid + e * T;
                const int o = idx % (32 * WN), ij = idx / (32 * WN);
                const int i = ij >> 3, j = ij & 7;
                const int ol = o & 31, ow = o >> 5;
                const int row = mc * 16 * MB + 16 * i + (ol >> 2);
                const int col = ns * 16 * NB + ow * 64 + 8 * j + 2 * (ol & 3);
                float s0 = 1.0f, s1 = 1.0f;
                if (!GROUPED) {
                    /* Per-channel scales in the 32-column shuffle; col is
                     * even, so col and col+1 are adjacent halves there. */
                    const int pos = (int)marlin_pack_dense_scale_col(col, false);
                    const __half2 sc2 = __ldg(reinterpret_cast<const __half2 *>(
                        reinterpret_cast<const __half *>(p.s) + pos));
                    s0 = __low2float(sc2);
                    s1 = __high2float(sc2);
                }
                __half *dst = p.C + (int64_t)row * p.n + col;
                if (row < p.m)
                    *reinterpret_cast<__half2 *>(dst) =
                        __floats2half2_rn(sum[e].x * s0, sum[e].y * s1);
                if (row + 8 < p.m)
                    *reinterpret_cast<__half2 *>(dst + 8 * (int64_t)p.n) =
                        __floats2half2_rn(sum[e].z * s0, sum[e].w * s1);
            }
            if (tid == 0) p.counters[slice] = 0; /* self-reset for the next launch */
        }
    }
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
}

/* ------------------------------------------------------------------ kernel */

template <int MB,      /* 16-row blocks of A per tile (1..4) */
          int NB,      /* 16-column blocks of C per tile (4, 8, 16) */
          int KB,      /* 16-deep k steps per pipeline stage (4, 8) */
          bool GROUPED /* true: scales per group, applied to W before the MMA;
                          false: per column, applied in fp32 at the end */
          >
__global__ void __launch_bounds__(MARLIN_DENSE_THREADS, (MB == 1) ? 2 : 1)
    dense_kernel(const DenseParams p) {
    constexpr int WN = NB / 4;           /* warps along n (64 columns each) */
    constexpr int WK = 8 / WN;           /* warps along k */
    constexpr int KSTEPS = KB / WK;      /* k16 steps per warp per stage */
    static_assert(WN * WK == 8 && KB % WK == 0, "tile does not map to 8 warps");
    constexpr int A_ROW = 2 * KB;        /* int4 per A row in a stage */
    constexpr int A_STAGE = 16 * MB * A_ROW;
    constexpr int B_ROW = 8 * NB;        /* int4 per B row (16 k) in a stage */
    constexpr int B_STAGE = KB * B_ROW;
    constexpr int S_ROW = 2 * NB;        /* int4 per scale row of the tile */
    constexpr int S_STAGE = GROUPED ? (KB / 2) * S_ROW : 0;
    constexpr int STAGE = A_STAGE + B_STAGE + S_STAGE;
    static_assert(STAGE * 16 == MARLIN_DENSE_STAGE_BYTES(MB, NB, KB, GROUPED),
                  "stage size disagrees with marlin_dense_tiles.h");
    constexpr int T = MARLIN_DENSE_THREADS;

    extern __shared__ int4 smem[];
    float4 *red = reinterpret_cast<float4 *>(smem + p.stages * STAGE);
    __shared__ int s_last;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % WN;
    const int wk = warp / WN;

    const int n_blocks = (int)gridDim.x;
    const int u_begin = mk_dense_unit_begin(blockIdx.x, p.total_units, n_blocks);
    const int u_end = mk_dense_unit_begin(blockIdx.x + 1, p.total_units, n_blocks);
    const int n_units = u_end - u_begin;
    if (n_units <= 0) return; /* the host never launches such a block */

    const uint64_t b_policy = make_policy(p.evict_first != 0);
    const int a_row_i4 = p.k >> 3; /* int4 per row of A */
    const int b_row_i4 = p.n >> 1; /* int4 per row of B (2n words) */
    const int s_row_i4 = p.n >> 3; /* int4 per row of s */

    /* ---- global -> shared. Each thread copies the same chunks of every
     * tile (A: MB rows-of-16-bytes, B: B_PER_T, scales: at most one), so
     * their offsets inside a tile are computed once here; per unit only the
     * tile's base pointers change. */
    constexpr int A_PER_T = A_STAGE / T; /* = MB */
    constexpr int B_PER_T = B_STAGE / T;
    static_assert(A_STAGE % T == 0 && B_STAGE % T == 0, "stage not a multiple of the block");
    static_assert(T % A_ROW == 0 && T % B_ROW == 0, "chunk rows must advance by whole rows");
    /* Chunk q of this thread is chunk tid + q*T of the tile: same column,
     * q*T/ROW rows further down, and (A) the same XOR swizzle, because T/A_ROW
     * is a multiple of 8. So one offset per operand plus constant strides. */
    static_assert((T / A_ROW) % 8 == 0, "swizzle must repeat every chunk row step");
    const int a_r0 = tid / A_ROW, a_ch = tid % A_ROW;
    const int a_src0 = a_r0 * a_row_i4 + a_ch;        /* < 64 * 2^28: fits int32 */
    const int a_dst0 = a_r0 * A_ROW + (a_ch ^ (a_r0 & 7));
    const int b_src0 = (tid / B_ROW) * b_row_i4 + tid % B_ROW; /* < 16 * 2^27 */
    const int n_s_i4 = GROUPED ? p.group_rows * S_ROW : 0;
    const int s_src = (tid / S_ROW) * s_row_i4 + tid % S_ROW;

    /* Activations of the unit at cursor c into stage st. */
    auto load_a = [&](const Cursor &c, int st) {
        int4 *sA = smem + st * STAGE;
        const int row0 = c.mc * 16 * MB;
        /* A rows at or past m are not loaded at all: an output row depends
         * only on its own A row, and those rows are never stored. */
        const int4 *gA = p.A + (int64_t)row0 * a_row_i4 + c.kt * A_ROW + a_src0;
#pragma unroll
        for (int q = 0; q < A_PER_T; q++)
            if (row0 + a_r0 + q * (T / A_ROW) < p.m)
                cp_async16(sA + a_dst0 + q * T, gA + (int64_t)q * (T / A_ROW) * a_row_i4);
    };
    /* Weights (and grouped scales) of the unit at cursor c into stage st. */
    auto load_b = [&](const Cursor &c, int st) {
        int4 *sB = smem + st * STAGE + A_STAGE;
        const int4 *gB = p.B + (int64_t)c.kt * KB * b_row_i4 + (int64_t)c.ns * B_ROW + b_src0;
#pragma unroll
        for (int q = 0; q < B_PER_T; q++)
            cp_async16_policy(sB + tid + q * T, gB + (int64_t)q * (T / B_ROW) * b_row_i4, b_policy);
        if (GROUPED && tid < n_s_i4) {
            /* group size = 16 << group_shift (a power of two) */
            const int g0 = (c.kt * 16 * KB) >> (p.group_shift + 4);
            const int4 *gS = p.s + (int64_t)g0 * s_row_i4 + (int64_t)c.ns * S_ROW;
            cp_async16_policy(sB + B_STAGE + tid, gS + s_src, b_policy);
        }
    };

    /* ---- accumulators: [m block][n8 tile of the warp's 64 columns][4] */
    float acc[MB][8][4];
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    /* ---- shared -> registers -> tensor cores for one stage */
    auto compute_stage = [&](int st) {
        const int4 *sA = smem + st * STAGE;
        const int4 *sB = sA + A_STAGE;
        /* k steps in pairs: unrolling all of them lets the compiler hoist
         * every fragment load of the stage, which overflows the register
         * budget of two resident blocks. */
        constexpr int KP = (KSTEPS >= 2 && MB <= 2) ? 2 : 1;
#pragma unroll 1
        for (int ks0 = 0; ks0 < KSTEPS; ks0 += KP)
#pragma unroll
        for (int ks = ks0; ks < ks0 + KP; ks++) {
            const int kk = wk + ks * WK; /* k16 step inside the stage */
            const int4 bq = sB[kk * B_ROW + wn * 32 + lane];
            uint32_t a[MB][4];
#pragma unroll
            for (int i = 0; i < MB; i++) {
                const int r = 16 * i + (lane & 15);
                const int c = 2 * kk + (lane >> 4);
                ldmatrix_x4(a[i], sA + r * A_ROW + (c ^ (r & 7)));
            }
            int4 sv = make_int4(0, 0, 0, 0);
            if (GROUPED) {
                const int4 *sS = sB + B_STAGE;
                sv = sS[(kk >> p.group_shift) * S_ROW + wn * 8 + (lane >> 2)];
            }
            const uint32_t sw[4] = {(uint32_t)sv.x, (uint32_t)sv.y, (uint32_t)sv.z,
                                    (uint32_t)sv.w};
            const uint32_t w[4] = {(uint32_t)bq.x, (uint32_t)bq.y, (uint32_t)bq.z,
                                   (uint32_t)bq.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t f0b0, f0b1, f1b0, f1b1;
                dequant_word(w[j], f0b0, f0b1, f1b0, f1b1);
                if (GROUPED) {
                    /* Half 2j (low half of word j) scales n8 tile 2j, column
                     * 16j + lane/4; half 2j+1 tile 2j+1, column 16j+8+lane/4
                     * (1.6). low2half2/high2half2 broadcast one half; the
                     * compiler folds that into HMUL2's operand selector. */
                    const __half2 sh = bits_h2(sw[j]);
                    const uint32_t s0 = h2_bits(__low2half2(sh));
                    const uint32_t s1 = h2_bits(__high2half2(sh));
                    f0b0 = hmul2_bits(f0b0, s0);
                    f0b1 = hmul2_bits(f0b1, s0);
                    f1b0 = hmul2_bits(f1b0, s1);
                    f1b1 = hmul2_bits(f1b1, s1);
                }
#pragma unroll
                for (int i = 0; i < MB; i++) {
                    mma_16816(acc[i][2 * j], a[i], f0b0, f0b1);
                    mma_16816(acc[i][2 * j + 1], a[i], f1b0, f1b1);
                }
            }
        }
    };

    /* ---- end of a segment: finish_segment() above */

    /* ---- the pipeline: stage (i % stages) holds unit u_begin + i */
    Cursor lc, cc; /* next unit to load, unit being computed */
    lc.init(u_begin, p);
    cc = lc;
    /* Prologue: stages-1 cp.async groups (some possibly empty), group s
     * completing unit s, which is what the main loop's counting expects.
     * With programmatic dependent launch (p.pdl, sm_90) the weights of the
     * first stages are requested first and stream in while the previous
     * kernel of the stream is still finishing (the caller promises that
     * kernel does not write them); activations, C and the workspace are
     * touched only after griddepcontrol.wait, i.e. after that kernel has
     * completed and its writes are visible. */
    const int pro = min(p.stages - 1, n_units);
    if (!p.pdl) {
        /* One cp.async group per stage: the first compute waits only for
         * the first unit. */
        for (int s = 0; s < p.stages - 1; s++) {
            if (s < pro) {
                load_b(lc, s);
                load_a(lc, s);
                lc.advance(p);
            }
            cp_async_commit();
        }
    } else {
        for (int s = 0; s < pro; s++) {
            load_b(lc, s);
            lc.advance(p);
        }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        asm volatile("griddepcontrol.wait;\n" ::: "memory");
        /* Our blocks are all resident or started: let the next kernel's
         * blocks take SMs as ours leave. */
        asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
        /* Group 0 = every prologue weight load + A of unit 0, group s = A
         * of unit s: group s still completes everything of unit s. */
        Cursor ac = cc;
        for (int s = 0; s < p.stages - 1; s++) {
            if (s < pro) {
                load_a(ac, s);
                ac.advance(p);
            }
            cp_async_commit();
        }
    }
    int st_read = 0, st_write = p.stages - 1;
    for (int i = 0; i < n_units; i++) {
        cp_async_wait(p.stages - 2);
        /* Unit i has landed for every thread, and every thread is done with
         * the stage computed in iteration i-1, which is refilled now. */
        __syncthreads();
        if (i + p.stages - 1 < n_units) {
            load_b(lc, st_write);
            load_a(lc, st_write);
            lc.advance(p);
        }
        cp_async_commit();
        compute_stage(st_read);
        st_read = (st_read + 1 == p.stages) ? 0 : st_read + 1;
        st_write = (st_write + 1 == p.stages) ? 0 : st_write + 1;
        if (i == n_units - 1 || cc.kt == p.k_tiles - 1)
            finish_segment<MB, NB, GROUPED>(acc, cc, p, u_begin, red, &s_last);
        cc.advance(p);
    }
    cp_async_wait(0);
}

/* -------------------------------------------- v2 main loop (CPASYNC2) */
/*
 * dense_v2_kernel: the same work units, stage layout, copies and MMAs as
 * dense_kernel, with the main-loop structure that made the 2:4 kernel fast
 * (kernels/marlin24.cu; docs/perf.md "2:4 sparse kernel"):
 * - a warp's whole k range of a stage (KSTEPS k16 steps: 2-8) is unrolled
 *   and its fragments (B int4, A ldmatrix, grouped scales) are
 *   double-buffered in registers: step s+1 is read from shared memory while
 *   step s runs on the tensor cores. dense_kernel walks the steps in pairs
 *   in a rolled loop, so each pair waits for its own shared-memory loads
 *   (the "long scoreboard" stall at the top of ncu's list);
 * - 256-deep stages (k_blocks 16): 32 KB of weights per 256-column stage,
 *   half the per-stage barrier, wait and copy bookkeeping per byte;
 * - segment ends: the k-split tree moves all 8 n8 tiles of a 16-row block
 *   per round (half the barriers), and a split slice is published with one
 *   fence by one thread after the block barrier (the cooperative-groups
 *   grid-sync pattern: bar.sync, then thread 0 fences and counts) instead
 *   of a MEMBAR.SC.GPU in each of the 256 threads ("membar" was 0.41 stall
 *   cycles per instruction in ncu);
 * - the reducer of the last block runs out of line above 16 rows, so the
 *   64-row kernels' main loop keeps its registers (dense_kernel<4,...>
 *   spills 40-172 bytes at its inline segment end).
 */

/* The partition rules of marlin_dense_tiles.h in 32-bit unsigned
 * arithmetic when the host found total_units * blocks < 2^32 (p.units32;
 * every real layer): the 64-bit divisions are a ~100-instruction call,
 * three of them at every segment end on the kernel's tail. */
__device__ __forceinline__ int v2_unit_begin(int b, const DenseParams &p) {
    if (p.units32)
        return (int)(((unsigned)b * (unsigned)p.total_units) / gridDim.x);
    return mk_dense_unit_begin(b, p.total_units, (int)gridDim.x);
}
__device__ __forceinline__ int v2_unit_owner(int u, const DenseParams &p) {
    if (p.units32)
        return (int)(((unsigned)(u + 1) * gridDim.x - 1u) / (unsigned)p.total_units);
    return mk_dense_unit_owner(u, p.total_units, (int)gridDim.x);
}

/* Element idx of a tile in the partial-sum layout (float4 (i*8 + j) *
 * (32*WN) + owner thread o: acc[i][j] of warp wn = o/32, lane o%32): the
 * C row of its x,y (z,w: 8 rows lower) and its first column. */
template <int MB, int NB>
__device__ __forceinline__ void v2_f4_pos(int idx, int mc, int ns, int &row, int &col) {
    constexpr int WN = NB / 4;
    const int o = idx % (32 * WN), ij = idx / (32 * WN);
    const int i = ij >> 3, j = ij & 7;
    const int ol = o & 31, ow = o >> 5;
    row = mc * 16 * MB + 16 * i + (ol >> 2);
    col = ns * 16 * NB + ow * 64 + 8 * j + 2 * (ol & 3);
}

/* Writes the finished sums of partial-layout element idx to C (rows < m),
 * applying per-channel scales (grouped ones are already in the weights). */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void v2_store_f4(const float4 &v, int idx, __half *C, const int4 *s,
                                            int m, int n, int mc, int ns) {
    int row, col;
    v2_f4_pos<MB, NB>(idx, mc, ns, row, col);
    float s0 = 1.0f, s1 = 1.0f;
    if (!GROUPED) {
        /* per-channel scales in the 32-column shuffle; col is even, so col
         * and col+1 are adjacent halves there */
        const int pos = (int)marlin_pack_dense_scale_col(col, false);
        const __half2 sc2 =
            __ldg(reinterpret_cast<const __half2 *>(reinterpret_cast<const __half *>(s) + pos));
        s0 = __low2float(sc2);
        s1 = __high2float(sc2);
    }
    __half *dst = C + (int64_t)row * n + col;
    if (row < m) *reinterpret_cast<__half2 *>(dst) = __floats2half2_rn(v.x * s0, v.y * s1);
    if (row + 8 < m)
        *reinterpret_cast<__half2 *>(dst + 8 * (int64_t)n) = __floats2half2_rn(v.z * s0, v.w * s1);
}

/* The last block of a split slice adds the fp32 partials of blocks
 * b_first..b_last in block order (a fixed order: bitwise the same whichever
 * block arrives last) and writes C. All 256 threads, E float4 each, the
 * loads of U blocks in flight at once. Partial layout: float4 (i*8 + j) *
 * (32*WN) + owner thread, as finish_segment_v2 writes it. */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void v2_reduce(const float4 *partials, __half *C, const int4 *s,
                                          int m, int n, int b_first, int b_last,
                                          bool first_inside, int mc, int ns) {
    constexpr int SLOT_F4 = 64 * MB * NB;
    constexpr int T = MARLIN_DENSE_THREADS;
    constexpr int E = SLOT_F4 / T;
    constexpr int U = (E >= 8) ? 1 : 8 / E;
    const int tid = threadIdx.x;
    float4 sum[E];
#pragma unroll
    for (int e = 0; e < E; e++) sum[e] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int b0 = b_first; b0 <= b_last; b0 += U) {
        float4 w[U][E];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int b = b0 + u;
            if (b <= b_last) {
                const int slot = (b > b_first || first_inside) ? 0 : 1;
                const float4 *src = partials + ((int64_t)b * 2 + slot) * SLOT_F4 + tid;
#pragma unroll
                for (int e = 0; e < E; e++) w[u][e] = __ldcg(src + e * T);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++)
            if (b0 + u <= b_last) {
#pragma unroll
                for (int e = 0; e < E; e++) {
                    sum[e].x += w[u][e].x;
                    sum[e].y += w[u][e].y;
                    sum[e].z += w[u][e].z;
                    sum[e].w += w[u][e].w;
                }
            }
    }
#pragma unroll
    for (int e = 0; e < E; e++)
        v2_store_f4<MB, NB, GROUPED>(sum[e], tid + e * T, C, s, m, n, mc, ns);
}

/* Out of line for the multi-row kernels: it runs once per split slice, the
 * accumulators are dead at the call, and its own register budget keeps all
 * loads in flight without spilling their main loop. */
template <int MB, int NB, bool GROUPED>
__device__ __noinline__ void v2_reduce_call(const float4 *partials, __half *C, const int4 *s,
                                            int m, int n, int b_first, int b_last,
                                            bool first_inside, int mc, int ns) {
    v2_reduce<MB, NB, GROUPED>(partials, C, s, m, n, b_first, b_last, first_inside, mc, ns);
}

/* Sums the WK warps of a block that share columns: tree through shared
 * memory `red`, all 8 n8 tiles of one 16-row block per round (16 KB);
 * afterwards the wk == 0 warps hold the block's sums in acc. Called by all
 * threads. The last round needs no closing barrier: red is next written at
 * the next segment end, behind at least one main-loop barrier (or, in the
 * cluster path, never again). */
template <int MB, int NB>
__device__ __forceinline__ void v2_tree(float (&acc)[MB][8][4], float4 *red) {
    constexpr int WN = NB / 4;
    constexpr int WK = 8 / WN;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % WN;
    const int wk = warp / WN;
#pragma unroll
    for (int i = 0; i < MB; i++) {
#pragma unroll
        for (int off = WK / 2; off >= 1; off /= 2) {
            if (wk >= off && wk < 2 * off) {
                float4 *dst = red + ((wk - off) * WN + wn) * 256 + lane;
#pragma unroll
                for (int j = 0; j < 8; j++)
                    dst[j * 32] = make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2],
                                              acc[i][j][3]);
            }
            __syncthreads();
            if (wk < off) {
                const float4 *src = red + (wk * WN + wn) * 256 + lane;
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float4 v = src[j * 32];
                    acc[i][j][0] += v.x;
                    acc[i][j][1] += v.y;
                    acc[i][j][2] += v.z;
                    acc[i][j][3] += v.w;
                }
            }
            if (!(i == MB - 1 && off == 1)) __syncthreads();
        }
    }
}

/* Writes a block's finished sums (acc of a wk == 0 warp) straight to C:
 * fragment (i, j): c0,c1 row lane/4, columns 2(lane%4)+{0,1} of n8 tile j;
 * c2,c3 8 rows lower; per-channel scales from the 32-column shuffle, int4
 * (lane%4) of each 32-column chunk. Rows >= m are not stored. */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void v2_store_acc(const float (&acc)[MB][8][4], const DenseParams &p,
                                             int mc, int ns) {
    constexpr int WN = NB / 4;
    const int lane = threadIdx.x & 31;
    const int wn = (threadIdx.x >> 5) % WN;
    float sc[8][2];
#pragma unroll
    for (int j = 0; j < 8; j++) sc[j][0] = sc[j][1] = 1.0f;
    if (!GROUPED) {
        const int4 *srow = p.s + (ns * 16 * NB + wn * 64) / 8 + (lane & 3);
#pragma unroll
        for (int cc = 0; cc < 2; cc++) {
            const int4 v = __ldg(srow + 4 * cc);
#pragma unroll
            for (int t = 0; t < 4; t++) {
                sc[4 * cc + t][0] = half_at(v, 2 * t);
                sc[4 * cc + t][1] = half_at(v, 2 * t + 1);
            }
        }
    }
    const int col0 = ns * 16 * NB + wn * 64 + 2 * (lane & 3);
    const int rbase = mc * 16 * MB + (lane >> 2);
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int row = rbase + 16 * i;
            __half *dst = p.C + (int64_t)row * p.n + col0 + 8 * j;
            if (row < p.m)
                *reinterpret_cast<__half2 *>(dst) =
                    __floats2half2_rn(acc[i][j][0] * sc[j][0], acc[i][j][1] * sc[j][1]);
            if (row + 8 < p.m)
                *reinterpret_cast<__half2 *>(dst + 8 * (int64_t)p.n) =
                    __floats2half2_rn(acc[i][j][2] * sc[j][0], acc[i][j][3] * sc[j][1]);
        }
}

/* End of a segment for dense_v2_kernel (see finish_segment for the rules;
 * the differences are listed above the kernel). */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void finish_segment_v2(float (&acc)[MB][8][4], const Cursor &c,
                                                  const DenseParams &p, int u_begin, float4 *red,
                                                  int *s_last) {
    constexpr int WN = NB / 4;
    constexpr int SLOT_F4 = 64 * MB * NB;
    const int tid = threadIdx.x;
    const int ns = c.ns, mc = c.mc;
    const int slice = ns * p.m_chunks + mc;
    const int slice_u0 = slice * p.k_tiles;
    const int seg_u0 = max(u_begin, slice_u0);

    /* 1. Sum the WK warps that share columns (v2_tree). */
    v2_tree<MB, NB>(acc, red);
    MK_TRACE_P(p, 7); /* (the block's last segment end writes it last) */

    const bool owner = (tid < 32 * WN); /* the wk == 0 warps hold the sum */
    const int b_first = v2_unit_owner(slice_u0, p);
    const int b_last = v2_unit_owner(slice_u0 + p.k_tiles - 1, p);
    if (b_first == b_last) {
        /* 2. The whole k range is ours: straight to C. */
        if (owner) v2_store_acc<MB, NB, GROUPED>(acc, p, mc, ns);
    } else {
        /* 3. Partial: publish, count, and the last block of the slice adds
         *    all parts. Rows >= m are not stored (nothing reads them). */
        const int my_slot = (seg_u0 == u_begin) ? 0 : 1;
        if (owner) {
            float4 *mine = p.partials + ((int64_t)blockIdx.x * 2 + my_slot) * SLOT_F4 + tid;
#pragma unroll
            for (int i = 0; i < MB; i++)
#pragma unroll
                for (int j = 0; j < 8; j++)
                    __stcg(mine + (i * 8 + j) * (32 * WN),
                           make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]));
        }
        /* Every thread's partial stores precede the barrier; thread 0's
         * fence after it makes them all visible at GPU scope before the
         * count (cumulativity: the pattern of cooperative_groups' grid
         * sync), and its second fence orders the other blocks' parts
         * before this block's reads, which the barrier hands on. (acq_rel
         * fences instead of these SC ones measured no faster here: median
         * +0.9% over 93 layer x m pairs, run 11; the 2:4 kernel, which
         * fenced in all 256 threads, gained 2-4% from one acq_rel fence in
         * thread 0.) Counting here, mid-loop, and not
         * once at the block's end matters: deferring every count to the
         * end piled all slices' reductions onto the kernel's tail (+2-3 us
         * a launch, measured in run 9, docs/perf.md). */
        __syncthreads();
        if (tid == 0) {
            __threadfence();
            const int before = atomicAdd(p.counters + slice, 1);
            const int last = (before == b_last - b_first);
            if (last) __threadfence();
            *s_last = last;
        }
        __syncthreads();
        MK_TRACE_P(p, 8);
        if (*s_last) {
            /* Blocks after b_first begin inside the slice (slot 0); b_first
             * does only if it begins exactly at the slice's start. */
            const bool first_inside = v2_unit_begin(b_first, p) == slice_u0;
            if (MB == 1)
                v2_reduce<MB, NB, GROUPED>(p.partials, p.C, p.s, p.m, p.n, b_first, b_last,
                                           first_inside, mc, ns);
            else
                v2_reduce_call<MB, NB, GROUPED>(p.partials, p.C, p.s, p.m, p.n, b_first, b_last,
                                                first_inside, mc, ns);
            if (tid == 0) p.counters[slice] = 0; /* self-reset for the next launch */
        }
    }
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
}

/* ------------------------------------------ cluster path (sm_90) */
/*
 * Split k over the blocks of a thread-block cluster instead of stream-K
 * (p.cluster_k = CS > 1, sm_90): block r of a cluster of CS takes k tiles
 * [r*kt/CS, (r+1)*kt/CS) of one slice, and the CS parts meet in distributed
 * shared memory, not in the global workspace. Why: the trace of the
 * stream-K kernel on the H100 (marlin-bench --mode trace, docs/perf.md run
 * 8) showed 2.7-3.7 us of every decode launch after the last block's
 * compute, and ~1.5 us per fence + atomic round trip through an L2 that
 * the next kernel's prefetch keeps busy; the cluster's SM-to-SM network
 * and hardware barrier do not queue behind DRAM traffic.
 * Reduce-scatter: after the block's own tree, the owner threads send
 * partial-layout element e (v2_f4_pos) to block e / CH of the cluster (CH =
 * ceil(SLOT_F4 / CS)), into its receive area at [source rank][e % CH]; one
 * cluster barrier (release/acquire); then every block adds its CH
 * elements over the CS sources in rank order (a fixed order: deterministic)
 * and writes them to C. Rows >= m are neither sent nor stored.
 * Every block arrived on the cluster barrier at its start and waits on that
 * phase before its first remote store: no block's shared memory is written
 * before it runs. After the second phase a block reads only its own shared
 * memory, so blocks may exit in any order.
 */
template <int MB, int NB, bool GROUPED>
__device__ __forceinline__ void finish_cluster_v2(float (&acc)[MB][8][4], const Cursor &c,
                                                  const DenseParams &p, float4 *red,
                                                  float4 *recv) {
    constexpr int WN = NB / 4;
    constexpr int SLOT_F4 = 64 * MB * NB;
    constexpr int T = MARLIN_DENSE_THREADS;
    const int tid = threadIdx.x;
    const int cs = p.cluster_k;
    const int rank = (int)(blockIdx.x % (unsigned)cs);
    const int ch = (SLOT_F4 + cs - 1) / cs;
    v2_tree<MB, NB>(acc, red);
    MK_TRACE_P(p, 7);
    cluster_wait(); /* phase 0: every block of the cluster has started */
    if (tid < 32 * WN) {
#pragma unroll
        for (int i = 0; i < MB; i++)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = (i * 8 + j) * (32 * WN) + tid;
                int row, col;
                v2_f4_pos<MB, NB>(e, c.mc, c.ns, row, col);
                if (row < p.m) {
                    const int dst = e / ch;
                    st_cluster_f4(recv + rank * ch + (e - dst * ch), dst,
                                  make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2],
                                              acc[i][j][3]));
                }
            }
    }
    cluster_sync_acq_rel(); /* phase 1: every part has landed */
    MK_TRACE_P(p, 8);
    const int e0 = rank * ch;
    const int e1 = min(SLOT_F4, e0 + ch);
    for (int e = e0 + tid; e < e1; e += T) {
        int row, col;
        v2_f4_pos<MB, NB>(e, c.mc, c.ns, row, col);
        if (row >= p.m) continue;
        float4 sum = recv[e - e0];
        for (int r = 1; r < cs; r++) {
            const float4 v = recv[r * ch + (e - e0)];
            sum.x += v.x;
            sum.y += v.y;
            sum.z += v.z;
            sum.w += v.w;
        }
        v2_store_f4<MB, NB, GROUPED>(sum, e, p.C, p.s, p.m, p.n, c.mc, c.ns);
    }
}

template <int MB,      /* 16-row blocks of A per tile (1..4) */
          int NB,      /* 16-column blocks of C per tile (8, 16) */
          int KB,      /* 16-deep k steps per pipeline stage (8, 16) */
          bool GROUPED, /* scales per group (applied to W) or per column */
          bool CLUSTER  /* the cluster path (p.cluster_k > 1; 16-row tiles) */
          >
__global__ void __launch_bounds__(MARLIN_DENSE_THREADS, (MB == 1) ? 2 : 1)
    dense_v2_kernel(const DenseParams p) {
    constexpr int WN = NB / 4;      /* warps along n (64 columns each) */
    constexpr int WK = 8 / WN;      /* warps along k */
    constexpr int KSTEPS = KB / WK; /* k16 steps per warp per stage */
    static_assert(WN * WK == 8 && KB % WK == 0 && KSTEPS >= 1, "tile does not map to 8 warps");
    constexpr int A_ROW = 2 * KB; /* int4 per A row in a stage */
    constexpr int A_STAGE = 16 * MB * A_ROW;
    constexpr int B_ROW = 8 * NB; /* int4 per B row (16 k) in a stage */
    constexpr int B_STAGE = KB * B_ROW;
    constexpr int S_ROW = 2 * NB; /* int4 per scale row of the tile */
    constexpr int S_STAGE = GROUPED ? (KB / 2) * S_ROW : 0;
    constexpr int STAGE = A_STAGE + B_STAGE + S_STAGE;
    static_assert(STAGE * 16 == MARLIN_DENSE_STAGE_BYTES(MB, NB, KB, GROUPED),
                  "stage size disagrees with marlin_dense_tiles.h");
    constexpr int T = MARLIN_DENSE_THREADS;

    extern __shared__ int4 smem[];
    float4 *red = reinterpret_cast<float4 *>(smem + p.stages * STAGE);
    __shared__ int s_last;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % WN;
    const int wk = warp / WN;

    /* p.trace is re-read at each point (a kernel parameter: no register
     * kept live across the main loop) */
#if MARLIN_DENSE_TRACE
#define MK_TRACE(slot, value)                                                                  \
    do {                                                                                       \
        if (p.trace && tid == 0)                                                               \
            p.trace[(size_t)blockIdx.x * MARLIN_DENSE_TRACE_SLOTS + (slot)] = (value);         \
    } while (0)
#else
#define MK_TRACE(slot, value) ((void)0)
#endif
    MK_TRACE(1, gtimer());
    MK_TRACE(0, smid_reg());
    int u_begin, u_end;
    if (CLUSTER) {
        cluster_unit_range(p.cluster_k, p.k_tiles, u_begin, u_end);
    } else {
        u_begin = v2_unit_begin(blockIdx.x, p);
        u_end = v2_unit_begin(blockIdx.x + 1, p);
    }
    const int n_units = u_end - u_begin;
    MK_TRACE(6, (unsigned long long)n_units);
    if (n_units <= 0) return; /* the host never launches such a block */

    const uint64_t b_policy = make_policy(p.evict_first != 0);
    const int a_row_i4 = p.k >> 3; /* int4 per row of A */
    const int b_row_i4 = p.n >> 1; /* int4 per row of B (2n words) */
    const int s_row_i4 = p.n >> 3; /* int4 per row of s */

    /* ---- global -> shared: each thread copies the same chunks of every
     * tile, so their offsets inside a tile are computed once (as in
     * dense_kernel; see there). */
    constexpr int A_PER_T = A_STAGE / T;
    constexpr int B_PER_T = B_STAGE / T;
    static_assert(A_STAGE % T == 0 && B_STAGE % T == 0, "stage not a multiple of the block");
    static_assert(T % A_ROW == 0 && T % B_ROW == 0, "chunk rows must advance by whole rows");
    static_assert((T / A_ROW) % 8 == 0, "swizzle must repeat every chunk row step");
    const int a_r0 = tid / A_ROW, a_ch = tid % A_ROW;
    const int a_src0 = a_r0 * a_row_i4 + a_ch;
    const int a_dst0 = a_r0 * A_ROW + (a_ch ^ (a_r0 & 7));
    const int b_src0 = (tid / B_ROW) * b_row_i4 + tid % B_ROW;
    const int n_s_i4 = GROUPED ? p.group_rows * S_ROW : 0;
    const int s_src = (tid / S_ROW) * s_row_i4 + tid % S_ROW;
    /* Shared memory by 32-bit addresses (marlin_ptx.cuh): this thread's
     * copy destinations in stage 0. */
    constexpr uint32_t STAGE_BYTES = STAGE * 16;
    const uint32_t s_base = (uint32_t)__cvta_generic_to_shared(smem);
    const uint32_t d_a = s_base + a_dst0 * 16;
    const uint32_t d_b = s_base + (A_STAGE + tid) * 16;
    const int a_step = (T / A_ROW) * a_row_i4; /* < 4 * 16 * 2^21 */
    const int b_step = (T / B_ROW) * b_row_i4; /* < 4 * 2^23 */

    /* The load stream: the next unit to load (l_u), how many units of its
     * slice are left (l_left, counting it) and its source addresses (this
     * thread's chunks), stepped by a constant inside a slice and derived
     * from the unit's cursor when the slice changes (stream-K only); a_ok:
     * bit q set when A chunk q's row is < m (rows at or past m are never
     * loaded, nor stored). Counters rather than a cursor: fewer registers
     * live across the loop (the 16-row stream-K kernels spilled). */
    auto a_at = [&](const Cursor &c, const int4 *&ga, unsigned &ok) {
        const int row0 = c.mc * 16 * MB;
        ga = p.A + (int64_t)row0 * a_row_i4 + c.kt * A_ROW + a_src0;
        ok = 0;
#pragma unroll
        for (int q = 0; q < A_PER_T; q++)
            if (row0 + a_r0 + q * (T / A_ROW) < p.m) ok |= 1u << q;
    };
    int l_u = u_begin, l_left;
    const int4 *l_b, *l_a, *l_s = nullptr;
    unsigned a_ok;
    auto l_set = [&]() {
        Cursor c;
        c.init(l_u, p);
        l_left = p.k_tiles - c.kt;
        l_b = p.B + (int64_t)c.kt * KB * b_row_i4 + (int64_t)c.ns * B_ROW + b_src0;
        a_at(c, l_a, a_ok);
        if (GROUPED) {
            /* group size = 16 << group_shift, at most one stage deep */
            const int g0 = (c.kt * 16 * KB) >> (p.group_shift + 4);
            l_s = p.s + (int64_t)g0 * s_row_i4 + (int64_t)c.ns * S_ROW + s_src;
        }
    };
    auto l_advance = [&]() {
        l_u++;
        if (--l_left > 0) {
            l_b += (int64_t)KB * b_row_i4;
            l_a += A_ROW;
            if (GROUPED) l_s += (int64_t)p.group_rows * s_row_i4;
        } else {
            l_set();
        }
    };
    /* The copies of one unit into the stage whose A (w_a) and B (w_b)
     * destinations this thread holds as full addresses, stepped per stage
     * (never "base + stage offset": marlin_ptx.cuh says why; session 6 run
     * 1, likely also session 5's "compile-time stages" failure). */
    auto issue_a = [&](const int4 *ga, unsigned ok, uint32_t w_a) {
#pragma unroll
        for (int q = 0; q < A_PER_T; q++)
            if (ok & (1u << q)) cp_async16_s(w_a + q * T * 16, ga + q * a_step);
    };
    auto issue_b = [&](uint32_t w_b) {
#pragma unroll
        for (int q = 0; q < B_PER_T; q++)
            cp_async16_policy_s(w_b + q * T * 16, l_b + q * b_step, b_policy);
        if (GROUPED && tid < n_s_i4) cp_async16_policy_s(w_b + B_STAGE * 16, l_s, b_policy);
    };

    float acc[MB][8][4];
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    /* Per-thread shared-memory read addresses in stage 0 (bytes): B int4
     * of k16 step kk is b_rd + kk * B_ROW; the A row of ldmatrix lane l in
     * 16-row block i is 16i + l%16, whose swizzle key is l & 7, and its
     * chunk of step kk is (2 kk + l/16) ^ key. With kk = wk + ks * WK, 2 kk =
     * (2 wk) + (2 WK ks % 8) + 8 * (2 WK ks / 8), and the XOR touches only
     * the low three bits, where the first two terms stay (2 wk + 1 + 4 < 8
     * for WK = 2, 2 wk + 1 < 8 for WK = 4): so a step's chunk is one of two
     * per-thread bases (r_a0: 2 WK ks % 8 = 0, r_a4: = 4) plus an immediate. */
    const int b_rd = wn * 32 + lane;
    const int a_rd = (lane & 15) * A_ROW;
    const int a_half = lane >> 4, a_key = lane & 7;
    const int s_rd = wn * 8 + (lane >> 2);
    static_assert(WK == 2 || WK == 4, "the A swizzle bases assume 2 or 4 warps along k");
    const uint32_t r_b = s_base + (A_STAGE + wk * B_ROW + b_rd) * 16;
    const uint32_t r_a0 = s_base + (a_rd + ((2 * wk + a_half) ^ a_key)) * 16;
    const uint32_t r_a4 = s_base + (a_rd + ((2 * wk + a_half + 4) ^ a_key)) * 16;
    const uint32_t r_s = s_base + (A_STAGE + B_STAGE + s_rd) * 16;

    /* ---- one stage (st_off: its byte offset): the warp's KSTEPS k16
     * steps, unrolled, fragments of step s+1 loaded while step s runs */
    auto compute_stage = [&](uint32_t st_off) {
        const uint32_t rb = r_b + st_off;
        const uint32_t ra0 = r_a0 + st_off;
        const uint32_t ra4 = r_a4 + st_off;
        const uint32_t rs = r_s + st_off;
        /* A fragments are double-buffered up to 32 rows; the 48/64-row
         * kernels (16 A registers per step beside 96-128 accumulators)
         * read A at the start of its step instead, behind the dequant of
         * the already loaded B (ptxas spilled in the main loop otherwise). */
        constexpr bool PREFETCH_A = (MB <= 2);
        int4 bq[2];
        int4 sv[2];
        uint32_t a[PREFETCH_A ? 2 : 1][MB][4];
        auto fetch_a = [&](int buf, int ks) {
            const int t = 2 * WK * ks;
            const uint32_t ra = ((t & 7) ? ra4 : ra0) + (t & ~7) * 16;
#pragma unroll
            for (int i = 0; i < MB; i++) ldmatrix_x4_s(a[buf][i], ra + 16 * i * A_ROW * 16);
        };
        auto fetch = [&](int buf, int ks) {
            bq[buf] = lds128_s(rb + ks * WK * B_ROW * 16);
            if (PREFETCH_A) fetch_a(buf, ks);
            if (GROUPED)
                sv[buf] = lds128_s(rs + ((wk + ks * WK) >> p.group_shift) * S_ROW * 16);
            else
                sv[buf] = make_int4(0, 0, 0, 0);
        };
        fetch(0, 0);
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ks++) {
            const int cur = ks & 1;
            const int acur = PREFETCH_A ? cur : 0;
            if (!PREFETCH_A) fetch_a(0, ks);
            if (ks + 1 < KSTEPS) fetch(cur ^ 1, ks + 1);
            const uint32_t sw[4] = {(uint32_t)sv[cur].x, (uint32_t)sv[cur].y,
                                    (uint32_t)sv[cur].z, (uint32_t)sv[cur].w};
            const uint32_t w[4] = {(uint32_t)bq[cur].x, (uint32_t)bq[cur].y,
                                   (uint32_t)bq[cur].z, (uint32_t)bq[cur].w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t f0b0, f0b1, f1b0, f1b1;
                dequant_word(w[j], f0b0, f0b1, f1b0, f1b1);
                if (GROUPED) {
                    /* half 2j scales n8 tile 2j, half 2j+1 tile 2j+1 (1.6) */
                    const __half2 sh = bits_h2(sw[j]);
                    const uint32_t s0 = h2_bits(__low2half2(sh));
                    const uint32_t s1 = h2_bits(__high2half2(sh));
                    f0b0 = hmul2_bits(f0b0, s0);
                    f0b1 = hmul2_bits(f0b1, s0);
                    f1b0 = hmul2_bits(f1b0, s1);
                    f1b1 = hmul2_bits(f1b1, s1);
                }
#pragma unroll
                for (int i = 0; i < MB; i++) {
                    mma_16816(acc[i][2 * j], a[acur][i], f0b0, f0b1);
                    mma_16816(acc[i][2 * j + 1], a[acur][i], f1b0, f1b1);
                }
            }
        }
    };

    /* ---- the pipeline (as dense_kernel): stage (i % stages) holds unit
     * u_begin + i; with PDL the prologue's weights stream in before
     * griddepcontrol.wait, A only after it. */
    l_set();
    /* units of the current slice left to compute (stream-K segment ends) */
    int c_left = l_left;
    const int pro = min(p.stages - 1, n_units);
    if (!p.pdl) {
        uint32_t wa = d_a, wb = d_b;
        for (int s = 0; s < p.stages - 1; s++) {
            if (s < pro) {
                issue_b(wb);
                issue_a(l_a, a_ok, wa);
                l_advance();
            }
            cp_async_commit();
            wa += STAGE_BYTES;
            wb += STAGE_BYTES;
        }
        MK_TRACE(2, gtimer());
    } else {
        /* the A stream of the prologue's units, from the first unit on */
        const int4 *pa = l_a;
        unsigned pa_ok = a_ok;
        Cursor ac;
        ac.init(u_begin, p);
        uint32_t wb = d_b;
        for (int s = 0; s < pro; s++) {
            issue_b(wb);
            l_advance();
            wb += STAGE_BYTES;
        }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        asm volatile("griddepcontrol.wait;\n" ::: "memory");
        asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
        MK_TRACE(2, gtimer());
        uint32_t wa = d_a;
        for (int s = 0; s < p.stages - 1; s++, wa += STAGE_BYTES) {
            if (s < pro) {
                issue_a(pa, pa_ok, wa);
                if (ac.kt + 1 < p.k_tiles) {
                    ac.kt++;
                    pa += A_ROW;
                } else {
                    ac.advance(p);
                    a_at(ac, pa, pa_ok);
                }
            }
            cp_async_commit();
        }
    }
    const uint32_t wrap = (uint32_t)p.stages * STAGE_BYTES;
    uint32_t off_read = 0, off_write = (uint32_t)(p.stages - 1) * STAGE_BYTES;
    uint32_t w_a = d_a + off_write, w_b = d_b + off_write;
#pragma unroll 1
    for (int i = 0; i < n_units; i++) {
        cp_async_wait(p.stages - 2);
        __syncthreads();
        if (i == 0) MK_TRACE(3, gtimer());
        if (i + p.stages - 1 < n_units) {
            issue_b(w_b);
            issue_a(l_a, a_ok, w_a);
            l_advance();
        }
        cp_async_commit();
        compute_stage(off_read);
        off_read = (off_read + STAGE_BYTES == wrap) ? 0 : off_read + STAGE_BYTES;
        off_write = (off_write + STAGE_BYTES == wrap) ? 0 : off_write + STAGE_BYTES;
        w_a = off_write ? w_a + STAGE_BYTES : d_a;
        w_b = off_write ? w_b + STAGE_BYTES : d_b;
        if (i == n_units - 1) MK_TRACE(4, gtimer());
        if (!CLUSTER) {
            if (i == n_units - 1 || c_left == 1) {
                Cursor cc;
                cc.init(u_begin + i, p);
                finish_segment_v2<MB, NB, GROUPED>(acc, cc, p, u_begin, red, &s_last);
            }
            c_left = (c_left == 1) ? p.k_tiles : c_left - 1;
        }
    }
    /* The cluster path's one segment end (its units are all in one slice,
     * which the first unit's cursor names), after the loop rather than a
     * test in every iteration: 1-3% faster on the Llama-2-7B / Llama-3-8B
     * decode launches, neutral elsewhere (docs/perf.md, session 5) */
    if (CLUSTER) {
        Cursor first;
        first.init(u_begin, p);
        finish_cluster_v2<MB, NB, GROUPED>(
            acc, first, p, red,
            red + MARLIN_DENSE_V2_RED_BYTES / 16 /* the host adds
                                                    MARLIN_DENSE_CLUSTER_RECV_BYTES */);
    }
    MK_TRACE(9, gtimer());
    cp_async_wait(0);
    MK_TRACE(5, gtimer());
#undef MK_TRACE
}

/* ------------------------------------------ mbarrier kernels (sm_90) */
/*
 * The same tiles, work units, MMAs and segment ends as dense_kernel, with the
 * global -> shared traffic taken off the math warps (ncu on the H100: with
 * every thread issuing cp.async the decode kernel ran ~4,400 warp
 * instructions per 16 KB stage for ~1,900 of dequant + MMA, and met at a
 * block barrier per stage):
 * - the warps wait on the stage's "full" mbarrier, compute the stage (fully
 *   unrolled, constant shared-memory offsets) and count themselves out on a
 *   per-stage counter; the warp that counts last refills the stage with the
 *   unit `stages` further on. No block-wide barrier, no waiting for a stage
 *   to drain: the last reader is the writer.
 * - the refilling warp copies A (rows < m only) and the grouped scales with
 *   cp.async, each lane then arrives on "full" when its copies have landed
 *   (cp.async.mbarrier.arrive.noinc); B, the bulk of the bytes, either the
 *   same way (BULK_B false: 32 cp.async per lane per 16 KB) or as one
 *   cp.async.bulk per B row issued by lane 0 (BULK_B true), completing as
 *   transaction bytes on the same barrier.
 * Measured on the H100 (docs/perf.md, runs 4-5): both variants issue ~16%
 * fewer instructions than dense_kernel at m = 16, yet run 2-20% slower on
 * every Llama-2-7B/70B layer at m = 1..128 with PDL (waits on "full" spin
 * in try_wait, the refilling warp lags, PDL overlaps less), so they are
 * options (marlin_dense_tile.pipeline), not the automatic choice. A first
 * version that copied each A row with its own bulk copy lost 2x at m >= 32
 * (bulk copies from divergent lanes are issued one at a time), and a
 * dedicated producer warp would make 9 warps a block, which caps registers
 * at 96 (two blocks) or 168 (one): 3 or 5 warps then share one SM
 * sub-partition's register file; ptxas spilled at both.
 * A rows are padded to 2*KB+1 int4 (no XOR swizzle needed: the pad keeps
 * ldmatrix free of bank conflicts, and a bulk copy could not swizzle).
 */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MK_HAVE_MBAR 1
#else
#define MK_HAVE_MBAR 0
#endif

/* Only the sm_90 device pass needs (and can assemble) these. */
#if MK_HAVE_MBAR
__device__ __forceinline__ uint32_t smem_u32(const void *ptr) {
    return (uint32_t)__cvta_generic_to_shared(ptr);
}

/* One arrival that also raises the transaction count by `bytes`: the phase
 * cannot complete before those bytes have landed. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
                 "r"(bytes)
                 : "memory");
}

/* Shared-memory counter += 1 with acquire-release ordering at block scope:
 * the warp's earlier reads of a stage happen before it, and the warp that
 * sees the final count sees every other warp's reads done. */
__device__ __forceinline__ uint32_t smem_count_acq_rel(uint32_t addr) {
    uint32_t old = 0;
    asm volatile("atom.acq_rel.cta.shared::cta.add.u32 %0, [%1], 1;\n"
                 : "=r"(old)
                 : "r"(addr)
                 : "memory");
    return old;
}

/* Global -> shared bulk copy (size and both addresses multiples of 16),
 * completing as transaction bytes on mbarrier `bar`, with an L2 policy. */
__device__ __forceinline__ void bulk_g2s_policy(uint32_t dst, const void *src, uint32_t bytes,
                                                uint32_t bar, uint64_t pol) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                 " [%0], [%1], %2, [%3], %4;\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar), "l"(pol)
                 : "memory");
}
#endif

template <int MB, int NB, int KB, bool GROUPED, bool BULK_B>
__global__ void __launch_bounds__(MARLIN_DENSE_THREADS, (MB == 1) ? 2 : 1)
    dense_mbar_kernel(const DenseParams p) {
#if MK_HAVE_MBAR
    constexpr int WN = NB / 4;
    constexpr int WK = 8 / WN;
    constexpr int KSTEPS = KB / WK;
    static_assert(WN * WK == 8 && KB % WK == 0, "tile does not map to 8 warps");
    constexpr int A_ROW = 2 * KB;      /* int4 per A row in a stage */
    constexpr int A_ROWP = A_ROW + 1;  /* ... padded */
    constexpr int A_STAGE = 16 * MB * A_ROWP;
    constexpr int B_ROW = 8 * NB;
    constexpr int B_STAGE = KB * B_ROW;
    constexpr int S_ROW = 2 * NB;
    constexpr int S_STAGE = GROUPED ? (KB / 2) * S_ROW : 0;
    constexpr int STAGE = A_STAGE + B_STAGE + S_STAGE;
    static_assert(STAGE * 16 == MARLIN_DENSE_MBAR_STAGE_BYTES(MB, NB, KB, GROUPED),
                  "stage size disagrees with marlin_dense_tiles.h");
    static_assert(32 % A_ROW == 0 && B_ROW % 32 == 0, "copies must map to a warp's lanes");
    constexpr int NWARPS = MARLIN_DENSE_THREADS / 32;
    /* "full" completes on 32 cp.async arrivals (+ lane 0's byte-count
     * arrival for bulk B). */
    constexpr int FULL_COUNT = 32 + (BULK_B ? 1 : 0);

    extern __shared__ int4 smem[];
    float4 *red = reinterpret_cast<float4 *>(smem + p.stages * STAGE);
    __shared__ __align__(8) uint64_t full_bar[MARLIN_DENSE_MAX_STAGES];
    __shared__ uint32_t out_count[MARLIN_DENSE_MAX_STAGES];
    __shared__ int s_last;

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % WN;
    const int wk = warp / WN;
    const int n_blocks = (int)gridDim.x;
    const int u_begin = mk_dense_unit_begin(blockIdx.x, p.total_units, n_blocks);
    const int u_end = mk_dense_unit_begin(blockIdx.x + 1, p.total_units, n_blocks);
    const int n_units = u_end - u_begin;
    if (n_units <= 0) return; /* the host never launches such a block */

    const uint32_t full0 = smem_u32(full_bar), count0 = smem_u32(out_count);
    if (tid == 0) {
        for (int s = 0; s < p.stages; s++) {
            mbar_init(full0 + 8 * s, FULL_COUNT);
            out_count[s] = 0;
        }
        /* Make the initialised barriers visible to the copy engine. */
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    const uint64_t b_policy = make_policy(p.evict_first != 0);
    const int a_row_i4 = p.k >> 3, b_row_i4 = p.n >> 1, s_row_i4 = p.n >> 3;
    const int n_s_i4 = GROUPED ? p.group_rows * S_ROW : 0;
    /* The unit at cursor c into stage st, by the calling warp. Weights
     * (B, grouped scales) and activations can be issued apart (PDL); every
     * lane's arrival comes after its last copy of the unit (`done`). */
    auto fill = [&](const Cursor &c, int st, bool weights, bool acts, bool done) {
        const uint32_t full = full0 + 8 * st;
        int4 *sst = smem + st * STAGE;
        if (weights) {
            const int4 *gB = p.B + (int64_t)c.kt * KB * b_row_i4 + (int64_t)c.ns * B_ROW;
            if (BULK_B) {
                if (lane == 0) {
                    mbar_arrive_expect_tx(full, KB * B_ROW * 16);
#pragma unroll
                    for (int r = 0; r < KB; r++)
                        bulk_g2s_policy(smem_u32(sst + A_STAGE + r * B_ROW),
                                        gB + (int64_t)r * b_row_i4, B_ROW * 16, full, b_policy);
                }
            } else {
#pragma unroll
                for (int r = 0; r < KB; r++)
#pragma unroll
                    for (int q = 0; q < B_ROW / 32; q++)
                        cp_async16_policy(sst + A_STAGE + r * B_ROW + q * 32 + lane,
                                          gB + (int64_t)r * b_row_i4 + q * 32 + lane, b_policy);
            }
            if (GROUPED) {
                /* group size = 16 << group_shift (a power of two) */
                const int g0 = (c.kt * 16 * KB) >> (p.group_shift + 4);
                const int4 *gS = p.s + (int64_t)g0 * s_row_i4 + (int64_t)c.ns * S_ROW;
                for (int j = lane; j < n_s_i4; j += 32)
                    cp_async16_policy(sst + A_STAGE + B_STAGE + j,
                                      gS + (int64_t)(j / S_ROW) * s_row_i4 + j % S_ROW, b_policy);
            }
        }
        if (acts) {
            /* A rows at or past m are not loaded at all: an output row
             * depends only on its own A row, and those rows are never
             * stored. 32/A_ROW rows per warp instruction. */
            const int row0 = c.mc * 16 * MB;
            const int a_rows = min(16 * MB, p.m - row0);
            const int4 *gA = p.A + (int64_t)row0 * a_row_i4 + c.kt * A_ROW + lane % A_ROW;
            for (int r = lane / A_ROW; r < a_rows; r += 32 / A_ROW)
                cp_async16(sst + r * A_ROWP + lane % A_ROW, gA + (int64_t)r * a_row_i4);
        }
        if (done) mbar_arrive_cp_async(full);
    };

    /* Prologue: warp 0 fills the first stages. With programmatic dependent
     * launch the weights of the first stage(s) stream in while the previous
     * kernel of the stream drains; A, C and the workspace are touched only
     * after it has completed. A lane's arrival covers all its earlier
     * cp.async, so with cp.async B only stage 0's weights go ahead (else
     * stage 0 would wait for every prologue stage); bulk B completes per
     * stage by byte count, so all of it goes ahead. */
    const int pro = min(p.stages, n_units);
    const int pre = p.pdl ? (BULK_B ? pro : 1) : 0;
    if (warp == 0) {
        Cursor c;
        c.init(u_begin, p);
        for (int s = 0; s < pre; s++) {
            fill(c, s, true, false, false);
            c.advance(p);
        }
    }
    if (p.pdl) {
        asm volatile("griddepcontrol.wait;\n" ::: "memory");
        asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    }
    if (warp == 0) {
        Cursor c;
        c.init(u_begin, p);
        for (int s = 0; s < pro; s++) {
            fill(c, s, s >= pre, true, true);
            c.advance(p);
        }
    }

    float acc[MB][8][4];
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    /* Per-thread offsets inside a stage; the k step adds constants. */
    const int a_off = (lane & 15) * A_ROWP + (lane >> 4) + 2 * wk;
    const int b_off = A_STAGE + wk * B_ROW + wn * 32 + lane;
    int s_off[KSTEPS];
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ks++)
        s_off[ks] = A_STAGE + B_STAGE + ((wk + ks * WK) >> p.group_shift) * S_ROW + wn * 8 +
                    (lane >> 2);

    Cursor cc, lc; /* unit being computed, unit that refills its stage */
    cc.init(u_begin, p);
    lc.init(u_begin + pro, p);
    int st = 0;
    uint32_t ph = 0;
    for (int i = 0; i < n_units; i++) {
        mbar_wait(full0 + 8 * st, ph);
        const int4 *sbase = smem + st * STAGE;
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ks++) {
            const int4 bq = sbase[b_off + ks * WK * B_ROW];
            uint32_t a[MB][4];
#pragma unroll
            for (int mi = 0; mi < MB; mi++)
                ldmatrix_x4(a[mi], sbase + a_off + 16 * mi * A_ROWP + 2 * ks * WK);
            int4 sv = make_int4(0, 0, 0, 0);
            if (GROUPED) sv = sbase[s_off[ks]];
            const uint32_t sw[4] = {(uint32_t)sv.x, (uint32_t)sv.y, (uint32_t)sv.z,
                                    (uint32_t)sv.w};
            const uint32_t w[4] = {(uint32_t)bq.x, (uint32_t)bq.y, (uint32_t)bq.z,
                                   (uint32_t)bq.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t f0b0, f0b1, f1b0, f1b1;
                dequant_word(w[j], f0b0, f0b1, f1b0, f1b1);
                if (GROUPED) {
                    const __half2 sh = bits_h2(sw[j]);
                    const uint32_t s0 = h2_bits(__low2half2(sh));
                    const uint32_t s1 = h2_bits(__high2half2(sh));
                    f0b0 = hmul2_bits(f0b0, s0);
                    f0b1 = hmul2_bits(f0b1, s0);
                    f1b0 = hmul2_bits(f1b0, s1);
                    f1b1 = hmul2_bits(f1b1, s1);
                }
#pragma unroll
                for (int mi = 0; mi < MB; mi++) {
                    mma_16816(acc[mi][2 * j], a[mi], f0b0, f0b1);
                    mma_16816(acc[mi][2 * j + 1], a[mi], f1b0, f1b1);
                }
            }
        }
        /* This warp is done reading stage st; the last of the 8 warps
         * refills it (the count only grows: 8 per use of the stage). */
        if (i + pro < n_units) {
            __syncwarp();
            uint32_t last = 0;
            if (lane == 0) last = (smem_count_acq_rel(count0 + 4 * st) % NWARPS) == NWARPS - 1;
            if (__shfl_sync(0xffffffffu, last, 0)) {
                /* The other warps' reads (generic proxy) are ordered before
                 * the copy engine's writes (async proxy). */
                if (BULK_B) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
                fill(lc, st, true, true, true);
            }
            lc.advance(p);
        }
        if (++st == p.stages) {
            st = 0;
            ph ^= 1;
        }
        if (i == n_units - 1 || cc.kt == p.k_tiles - 1)
            finish_segment<MB, NB, GROUPED>(acc, cc, p, u_begin, red, &s_last);
        cc.advance(p);
    }
#endif
}

/* ------------------------------------------------------------ kernel table */

typedef void (*kernel_fn)(DenseParams);

struct KernelEntry {
    int mb, nb, kb;
    kernel_fn fn[3][2]; /* [pipeline - 1][grouped]: CPASYNC, BULK (bulk B), MBAR */
};

#define MK_ENTRY(mb, nb, kb)                                                                  \
    {mb,                                                                                      \
     nb,                                                                                      \
     kb,                                                                                      \
     {{dense_kernel<mb, nb, kb, false>, dense_kernel<mb, nb, kb, true>},                      \
      {dense_mbar_kernel<mb, nb, kb, false, true>, dense_mbar_kernel<mb, nb, kb, true, true>},   \
      {dense_mbar_kernel<mb, nb, kb, false, false>, dense_mbar_kernel<mb, nb, kb, true, false>}}},
const KernelEntry kKernels[] = {MARLIN_DENSE_TILE_LIST(MK_ENTRY)};
#undef MK_ENTRY
constexpr int kNumKernels = sizeof kKernels / sizeof kKernels[0];

/* The v2 kernels (MARLIN_DENSE_PIPE_CPASYNC2), their own shapes. */
struct KernelEntryV2 {
    int mb, nb, kb;
    kernel_fn fn[2];         /* [grouped] */
    kernel_fn fn_cluster[2]; /* [grouped], the cluster path: 16-row tiles only */
};
#define MK_ENTRY2(mb, nb, kb)                                                                 \
    {mb,                                                                                      \
     nb,                                                                                      \
     kb,                                                                                      \
     {dense_v2_kernel<mb, nb, kb, false, false>, dense_v2_kernel<mb, nb, kb, true, false>},    \
     {(mb) == 1 ? dense_v2_kernel<1, nb, kb, false, true> : nullptr,                          \
      (mb) == 1 ? dense_v2_kernel<1, nb, kb, true, true> : nullptr}},
const KernelEntryV2 kKernelsV2[] = {MARLIN_DENSE_V2_TILE_LIST(MK_ENTRY2)};
#undef MK_ENTRY2
constexpr int kNumKernelsV2 = sizeof kKernelsV2 / sizeof kKernelsV2[0];

/* The pipeline a tile with MARLIN_DENSE_PIPE_AUTO runs on sm_90+ (the
 * heuristic returns AUTO only for the original kernel's shapes; it names
 * CPASYNC2 itself). Measured on the H100 (docs/perf.md, run 5, one call):
 * cp.async beat both mbarrier pipelines on every Llama-2-7B/70B layer at
 * m = 1..128 with PDL (by 2-20%). */
constexpr int MK_DENSE_AUTO_PIPE_SM90 = MARLIN_DENSE_PIPE_CPASYNC;

/* Per (device, kernel, scale mode, pipeline): bytes the
 * MaxDynamicSharedMemorySize attribute was raised to (0: never). Atomic:
 * several host threads may launch; setting it twice is harmless. */
constexpr int kMaxDev = 16;
std::atomic<int> g_smem_set[kMaxDev][kNumKernels][2][3];
std::atomic<int> g_smem_set_v2[kMaxDev][kNumKernelsV2][2][2]; /* [..][grouped][cluster] */
/* Per (device, v2 kernel, scale mode, cluster size): the shared-memory size
 * for which cudaOccupancyMaxActiveClusters found the cluster resident. */
std::atomic<int> g_cluster_ok[kMaxDev][kNumKernelsV2][2][9];

} // namespace

/* --------------------------------------------------------------- launcher */

extern "C" int marlin_dense_trace_built(void) { return MARLIN_DENSE_TRACE; }

extern "C" marlin_status mk_dense_workspace_split(const marlin_dense_args *a,
                                                  size_t counters_bytes, size_t partial_bytes,
                                                  size_t *partial_off, marlin_error *err) {
    if (a->workspace_bytes < counters_bytes + partial_bytes + 256)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: workspace of %zu bytes, this call needs %zu (use "
                           "marlin_dense_workspace_bytes)",
                           a->workspace_bytes, counters_bytes + partial_bytes + 256);
    *partial_off = (a->workspace_bytes - partial_bytes) & ~(size_t)255;
    return MARLIN_OK;
}

#ifdef MARLIN_HAVE_SM90A
extern "C" int marlin_dense_wgmma_built(void) { return 1; }
#else
/* The build does not target sm_90 (CMAKE_CUDA_ARCHITECTURES without 90):
 * no wgmma kernels; the pipeline says so instead of running. */
extern "C" int marlin_dense_wgmma_built(void) { return 0; }
extern "C" marlin_status mk_dense_wgmma_launch(const marlin_dense_args *a,
                                               const marlin_dense_tile *t, int dev,
                                               const mk_device *d, marlin_error *err) {
    (void)a;
    (void)t;
    (void)d;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "dense gemm: the wgmma pipeline is not in this build (device %d; build "
                       "with 90 in CMAKE_CUDA_ARCHITECTURES)",
                       dev);
}
#endif

extern "C" marlin_status marlin_dense_gemm(const marlin_dense_args *a, marlin_error *err) {
    if (!a) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "dense gemm: args is NULL");
    marlin_status st = marlin_dense_check_shape(a->m, a->n, a->k, a->group_size, err);
    if (st) return st;
    if (a->m == 0) return MARLIN_OK;
    if (!a->A || !a->B || !a->s || !a->C || !a->workspace)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: NULL pointer (A %p, B %p, s %p, C %p, workspace %p)",
                           a->A, a->B, a->s, a->C, a->workspace);
    if (((uintptr_t)a->A | (uintptr_t)a->B | (uintptr_t)a->s | (uintptr_t)a->C |
         (uintptr_t)a->workspace) & 15)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: A, B, s, C and workspace must be 16-byte aligned");

    int dev = 0;
    const mk_device *d = NULL;
    st = mk_current_device(&dev, &d, err);
    if (st) return st;
    if (d->cc_major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "dense gemm: device %d is sm_%d%d, the kernel needs sm_80+", dev,
                           d->cc_major, d->cc_minor);

    marlin_dense_tile t;
    if (a->tile) {
        t = *a->tile;
    } else {
        st = marlin_dense_pick_tile(a->m, a->n, a->k, a->group_size, d->sm_count, d->smem_optin,
                                    &t, err);
        if (st) return st;
        if (d->cc_major >= 9)
            (void)marlin_dense_pick_cluster(a->m, a->n, a->k, a->group_size, d->sm_count,
                                            d->smem_optin, &t);
        if (d->cc_major == 9 && marlin_dense_wgmma_built())
            (void)marlin_dense_pick_wgmma(a->m, a->n, a->k, a->group_size, d->sm_count,
                                          d->smem_optin, &t);
    }
    if (t.pipeline < MARLIN_DENSE_PIPE_AUTO || t.pipeline > MARLIN_DENSE_PIPE_WGMMA)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "dense gemm: pipeline %d outside [0, 5]",
                           t.pipeline);
    if (t.pipeline == MARLIN_DENSE_PIPE_WGMMA)
        return mk_dense_wgmma_launch(a, &t, dev, d, err);
    int pipe = t.pipeline;
    if (pipe == MARLIN_DENSE_PIPE_AUTO)
        pipe = d->cc_major >= 9 ? MK_DENSE_AUTO_PIPE_SM90 : MARLIN_DENSE_PIPE_CPASYNC;
    const bool v2 = (pipe == MARLIN_DENSE_PIPE_CPASYNC2);
    if (!v2 && pipe != MARLIN_DENSE_PIPE_CPASYNC && d->cc_major < 9)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: pipeline %d needs sm_90+, device %d is sm_%d%d", pipe,
                           dev, d->cc_major, d->cc_minor);
    /* The kernel of this shape in the pipeline's own table. */
    int ki = -1, kmb = 0, knb = 0, kkb = 0;
    if (v2) {
        for (int i = 0; i < kNumKernelsV2; i++)
            if (kKernelsV2[i].mb == t.m_blocks && kKernelsV2[i].nb * 16 == t.n &&
                kKernelsV2[i].kb * 16 == t.k) {
                ki = i;
                kmb = kKernelsV2[i].mb;
                knb = kKernelsV2[i].nb;
                kkb = kKernelsV2[i].kb;
            }
    } else {
        for (int i = 0; i < kNumKernels; i++)
            if (kKernels[i].mb == t.m_blocks && kKernels[i].nb * 16 == t.n &&
                kKernels[i].kb * 16 == t.k) {
                ki = i;
                kmb = kKernels[i].mb;
                knb = kKernels[i].nb;
                kkb = kKernels[i].kb;
            }
    }
    if (ki < 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: no instantiated kernel for tile m_blocks=%d n=%d k=%d "
                           "in pipeline %d (see marlin_dense_tiles)",
                           t.m_blocks, t.n, t.k, pipe);
    if (t.blocks_per_sm < 0 || t.blocks_per_sm > 2)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: blocks_per_sm %d outside [0, 2]", t.blocks_per_sm);
    if (a->n % t.n != 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: tile n=%d does not divide n=%lld", t.n, (long long)a->n);
    if (a->k % t.k != 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: tile k=%d does not divide k=%lld", t.k, (long long)a->k);
    const bool grouped = marlin_pack_scales_grouped(a->k, a->group_size);
    const int red_bytes = v2 ? MARLIN_DENSE_V2_RED_BYTES : MARLIN_DENSE_RED_BYTES;
    const int stage_bytes = (pipe == MARLIN_DENSE_PIPE_BULK || pipe == MARLIN_DENSE_PIPE_MBAR)
                                ? MARLIN_DENSE_MBAR_STAGE_BYTES(kmb, knb, kkb, grouped)
                                : MARLIN_DENSE_STAGE_BYTES(kmb, knb, kkb, grouped);
    int stages = t.stages;
    if (stages == 0) {
        stages = (int)((d->smem_optin - red_bytes - 1024) / stage_bytes);
        if (stages > MARLIN_DENSE_MAX_STAGES) stages = MARLIN_DENSE_MAX_STAGES;
    }
    if (stages < MARLIN_DENSE_MIN_STAGES || stages > MARLIN_DENSE_MAX_STAGES)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: %d pipeline stages (tile of %d bytes a stage) outside "
                           "[%d, %d] on device %d",
                           stages, stage_bytes, MARLIN_DENSE_MIN_STAGES, MARLIN_DENSE_MAX_STAGES,
                           dev);
    const int cluster_k = (t.cluster_k > 1) ? t.cluster_k : 0;
    if (cluster_k && (!v2 || d->cc_major < 9 || cluster_k > 8))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: cluster_k %d needs the CPASYNC2 pipeline, sm_90+ (device "
                           "%d is sm_%d%d) and at most 8 blocks",
                           t.cluster_k, dev, d->cc_major, d->cc_minor);
    const int smem = stages * stage_bytes + red_bytes +
                     (cluster_k ? MARLIN_DENSE_CLUSTER_RECV_BYTES(kmb, knb) : 0);
    /* + the kernel's static shared memory (16 bytes for cp.async, mbarriers
     * and counters for the others) */
    const bool plain = (pipe == MARLIN_DENSE_PIPE_CPASYNC || v2);
    if (smem + (plain ? 64 : MARLIN_DENSE_STATIC_SMEM) > d->smem_optin)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: %d stages need %d bytes of shared memory, device %d "
                           "allows %lld",
                           stages, smem, dev, (long long)d->smem_optin);
    int bps = t.blocks_per_sm;
    if (bps <= 0) bps = 2;
    /* Kernels with more than one m block are compiled for one resident
     * block per SM (__launch_bounds__: up to 255 registers a thread). */
    if (kmb > 1) bps = 1;
    /* Never ask for more co-resident blocks than shared memory admits (1 KB
     * per block is reserved by the system on sm_80+). */
    while (bps > 1 && (int64_t)bps * (smem + 1024) > d->smem_per_sm) bps--;

    const int m_chunks = (int)((a->m + 16 * kmb - 1) / (16 * kmb));
    const int n_slices = (int)(a->n / (16 * knb));
    const int k_tiles = (int)(a->k / (16 * kkb));
    const int64_t total64 = (int64_t)n_slices * m_chunks * k_tiles;
    if (total64 > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE, "dense gemm: problem too large (%lld work units)",
                           (long long)total64);
    const int total = (int)total64;
    /* One wave of co-resident blocks; units spread over them evenly
     * (mk_dense_unit_begin), every block gets at least one. */
    int blocks = d->sm_count * bps;
    if (blocks > total) blocks = total;
    if (cluster_k) {
        if (cluster_k > k_tiles)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "dense gemm: cluster_k %d exceeds the %d k tiles of a slice",
                               cluster_k, k_tiles);
        if ((int64_t)n_slices * m_chunks * cluster_k > INT32_MAX)
            return marlin_fail(err, MARLIN_ERR_SHAPE, "dense gemm: problem too large");
        blocks = n_slices * m_chunks * cluster_k; /* one cluster per slice */
    }

    const size_t counters_bytes = (size_t)n_slices * m_chunks * 4;
    /* (the cluster path adds its parts in shared memory: no partials) */
    const size_t partial_bytes = cluster_k ? 0 : (size_t)blocks * 2 * 64 * kmb * knb * 16;
    size_t partial_off = 0;
    st = mk_dense_workspace_split(a, counters_bytes, partial_bytes, &partial_off, err);
    if (st) return st;

    DenseParams p;
    p.A = (const int4 *)a->A;
    p.B = (const int4 *)a->B;
    p.s = (const int4 *)a->s;
    p.C = (__half *)a->C;
    p.counters = (int *)a->workspace;
    p.partials = (float4 *)((char *)a->workspace + partial_off);
    p.m = (int)a->m;
    p.n = (int)a->n;
    p.k = (int)a->k;
    p.m_chunks = m_chunks;
    p.k_tiles = k_tiles;
    p.total_units = total;
    p.group_size = grouped ? a->group_size : (int)a->k;
    p.group_shift = 0;
    while ((16 << p.group_shift) < p.group_size) p.group_shift++;
    p.group_rows = grouped ? ((16 * kkb) / a->group_size > 1 ? (16 * kkb) / a->group_size : 1)
                           : 0;
    p.stages = stages;
    p.evict_first = (m_chunks == 1);
    p.pdl = (a->pdl && d->cc_major >= 9) ? 1 : 0;
    p.units32 = ((int64_t)total * blocks < ((int64_t)1 << 32)) ? 1 : 0;
    p.trace = v2 ? (unsigned long long *)a->trace : NULL;
    p.cluster_k = cluster_k;

    kernel_fn fn = v2 ? (cluster_k ? kKernelsV2[ki].fn_cluster[grouped ? 1 : 0]
                                   : kKernelsV2[ki].fn[grouped ? 1 : 0])
                      : kKernels[ki].fn[pipe - 1][grouped ? 1 : 0];
    if (!fn)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: the cluster path has 16-row tiles only (m_blocks %d)",
                           t.m_blocks);
    const int threads = MARLIN_DENSE_THREADS;
    std::atomic<int> *set = (dev >= kMaxDev) ? NULL
                            : v2 ? &g_smem_set_v2[dev][ki][grouped ? 1 : 0][cluster_k ? 1 : 0]
                                 : &g_smem_set[dev][ki][grouped ? 1 : 0][pipe - 1];
    if (!set || set->load(std::memory_order_relaxed) < smem) {
        st = MK_CUDA(err, cudaFuncSetAttribute((const void *)fn,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        if (st) return st;

        if (set) set->store(smem, std::memory_order_relaxed);
    }
    if (p.pdl || cluster_k) {
        /* Programmatic dependent launch: the kernel may start while the
         * previous kernel of the stream finishes; it waits for it (all its
         * writes visible) before touching A, C or the workspace. Cluster
         * path: clusters of cluster_k consecutive blocks. */
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute attr[2];
        mk_launch_config(&cfg, attr, (unsigned)blocks, (unsigned)threads, (size_t)smem,
                         a->stream, p.pdl, cluster_k);
        if (cluster_k) {
            /* checked once per (device, kernel, scale mode, size, smem) */
            std::atomic<int> *ok = (dev < kMaxDev)
                                       ? &g_cluster_ok[dev][ki][grouped ? 1 : 0][cluster_k]
                                       : NULL;
            if (!ok || ok->load(std::memory_order_relaxed) != smem) {
                st = mk_cluster_fits((const void *)fn, &cfg, cluster_k, dev, "dense gemm", err);
                if (st) return st;
                if (ok) ok->store(smem, std::memory_order_relaxed);
            }
        }
        st = MK_CUDA(err, cudaLaunchKernelEx(&cfg, fn, p));
        if (st) return st;
    } else {
        fn<<<blocks, threads, smem, (cudaStream_t)a->stream>>>(p);
    }
    return MK_CUDA(err, cudaGetLastError());
}
