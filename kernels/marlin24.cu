/*
 * marlin24.cu - our 2:4 sparse FP16 x INT4 GEMM (Sparse-Marlin layout) for
 * sm_80+, written from the format contract (marlin-format.md section 4,
 * pack/marlin_pack.h section 3) and the PTX ISA; API in marlin_kernels24.h.
 *
 * The sparse operand of mma.sp must be operand A, so the kernel computes C^T
 * tiles: the weights (rows = output features n) are the 16 x 32 sparse A
 * operand of mma.sp.m16n8k32, the activations (k x batch) the dense B operand.
 * https://docs.nvidia.com/cuda/parallel-thread-execution/#warp-level-matrix-instructions-for-sparse-mma
 *
 * How one warp reads the packed tensors (derived from pack/'s index maps):
 *  - B24: for one 32-row dense k block and one 64-column block, the 128 words
 *    are 512 contiguous bytes; lane l loads words 4l..4l+3 (one int4). Word j
 *    (0..3) holds, for g = l/4 and t = l%4, the compressed values of output
 *    features 8g+j (nibbles 0,4,1,5) and 8g+j+4 (nibbles 2,6,3,7) at
 *    compressed k 2t, 2t+1, 2t+8, 2t+9: exactly the mma.m16n8k16-style A
 *    fragment of a 16 x 16 (compressed) tile whose row g is feature 8g+j and
 *    row g+8 is feature 8g+j+4. So "subtile j" = word j, and the LOP3 magic
 *    number dequantisation (MF 3) turns a word into the 4 A registers
 *    {nib(0,4), nib(2,6), nib(1,5), nib(3,7)} with no shuffles.
 *  - meta: the same block is 128 int16 = 64 words; lane l needs words l and
 *    32 + l (what ldmatrix.x2 would hand it): word l holds, for rows g and
 *    g+8 of subtiles 0 (t = 0, 1) and 1 (t = 2, 3), the indices of dense
 *    k 0..15 (t even) or 16..31 (t odd); word 32 + l the same for subtiles
 *    2 and 3. Hence sparsity selector j % 2 and register j / 2 (the CUTLASS
 *    ColumnMajorInterleaved<2> order of MF 4.5 is built for exactly this).
 *  - scales: grouped scales are stored with the 8-wide permutation (MF 4.6),
 *    so the int4 at features 8g..8g+7 holds s[8g+j] in half 2j and
 *    s[8g+j+4] in half 2j+1: the two scales of subtile j's two A rows.
 *  - accumulators: for subtile j the thread holds features 8g+j (c0, c1) and
 *    8g+j+4 (c2, c3) for batch rows 2t, 2t+1, so over j = 0..3 it owns 8
 *    consecutive output features of 2 batch rows: one 16-byte store each.
 *
 * Work split ("stream-K"): work units are (n slice, m chunk, k tile) in
 * k-fastest order; a grid of one or two blocks per SM gives every block a
 * contiguous, balanced range (+-1 unit). The cp.async pipeline runs across
 * slice boundaries. A block that covers a whole slice writes C directly;
 * partial slices are stored as fp32 to the workspace, and the last block to
 * arrive (atomic counter) sums all parts in block order (a fixed order:
 * bit-identical results) with all its threads, and writes C.
 *
 * Why the main loop looks the way it does (the first version of this kernel
 * was limited by its own per-step instruction latency, not by memory:
 * docs/perf.md, "2:4 sparse kernel"):
 *  - every thread's global and shared offsets are computed once; per work
 *    unit only the tile's base pointers change (a cursor advanced without
 *    divisions), so a pipeline step is the copies, one barrier and the MMAs;
 *  - each warp handles KP 32-row k blocks per stage (unrolled), so the fixed
 *    per-step cost (barrier, wait, copy issue) is paid per 24-48 KB of
 *    weights and the loads of one k block overlap the MMAs of the previous;
 *  - 16 rows or fewer: two resident blocks per SM (16 warps), registers
 *    capped at 128 by __launch_bounds__;
 *  - optional programmatic dependent launch (sm_90): the first stages'
 *    weights stream in while the previous kernel of the stream drains.
 * Weights, metadata and scales of a one-chunk launch are streamed with an L2
 * evict-first policy (read exactly once); activations use the default policy
 * (re-read by every n slice). Launches of several row chunks keep the
 * weights in L2 for the next chunk.
 *
 * On sm_90, above MARLIN_GEMM24_WGMMA_MIN_ROWS rows, marlin_gemm24_ex hands
 * the call to the Hopper wgmma.sp kernel instead (marlin_dense_sm90a.cu,
 * mk_sparse_wgmma_launch), sharing this workspace: its tile counters in the
 * counter area (zero at rest in both), its fp32 partials after it.
 */
#include "marlin_kernels24.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

#include <mutex>

#include "marlin_cuda_internal.h"
#include "marlin_ptx.cuh"

namespace {

constexpr int kThreads = 256; /* 8 warps */
constexpr int kMaxStages = 8;
constexpr int kMaxChunks = 16; /* 64-row chunks per launch (<= 1024 rows) */

/* ------------------------------------------------------------------ PTX */


/* Nibbles 0 and 4 of q -> half2 (v0 - 8, v4 - 8); nibbles 1 and 5 -> half2
 * (v1 - 8, v5 - 8). OR-ing a nibble into the mantissa of 1024.0 (0x6400)
 * gives 1024 + v (low nibble) or 1024 + 16v (second nibble); subtracting
 * 1032 / multiplying by 1/16 and adding -72 leaves v - 8 exactly. */
__device__ __forceinline__ void dequant2(uint32_t q, uint32_t &lo,
                                         uint32_t &hi) {
    const uint32_t l = lop3_and_or(q, 0x000f000fu, 0x64006400u);
    const uint32_t h = lop3_and_or(q, 0x00f000f0u, 0x64006400u);
    lo = h2_bits(__hsub2(bits_h2(l), bits_h2(0x64086408u)));
    hi = h2_bits(
        __hfma2(bits_h2(h), bits_h2(0x2c002c00u), bits_h2(0xd480d480u)));
}

/* D += A_sparse(16x32, compressed 16x16) * B(32x8), fp16 in, fp32 acc.
 * Our indices are always ordered (idx0 < idx1), which is what the
 * ::ordered_metadata form requires; PTX recommends it (the plain form "may
 * have substantially reduced performance" on newer parts; same SASS on
 * sm_80/sm_90). */
template <int SEL>
__device__ __forceinline__ void mma_sp(float (&d)[4], const uint32_t (&a)[4],
                                       const uint32_t (&b)[4], uint32_t e) {
#if (__CUDACC_VER_MAJOR__ > 12) || \
    (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 5)
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16."
        "f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, "
        "%12, %13;\n"
#else
    asm volatile(
        "mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, "
        "%12, %13;\n"
#endif
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "r"(b[2]), "r"(b[3]), "r"(e), "n"(SEL));
}

/* --------------------------------------------------------------- params */

struct Params {
    const int4 *A;     /* fp16 [m, k] row-major, this launch's first row */
    const int4 *B;     /* I32 [k/32, 2n] */
    const int4 *meta;  /* I16 [k/32, 2n] */
    const int4 *s;     /* F16 [G, n] */
    int4 *C;           /* fp16 [m, n] row-major, this launch's first row */
    int *counters;     /* [chunks * nslices], zero on entry and exit */
    float4 *partials;  /* [2 * gridDim.x][slot] float4 */
    int m;             /* rows of this launch */
    int n, k;
    int ktiles;        /* k / k_tile */
    int chunks;        /* ceil(m / (16*MB)) */
    int units;         /* chunks * nslices * ktiles */
    int stages;        /* pipeline depth, 2..kMaxStages */
    int stage_i4;      /* int4 per stage (A, B, meta, then scale rows) */
    int s_rows;        /* grouped: scale rows per stage (>= 1) */
    int s_shift;       /* grouped: scale row of 32-row k block kb = kb >> s_shift */
    int g_step;        /* grouped: the first group of k tile kt is */
    int g_every;       /*   (kt / g_every) * g_step */
    int pdl;           /* launched as a programmatic dependent launch */
    int evict_first;   /* weights read once (one row chunk) */
    int cluster_k;     /* cluster path (sm_90): blocks per cluster = k split */
};

/* Block b of G owns units [b*T/G, (b+1)*T/G) (the host keeps T * G below
 * 2^31, so 32-bit arithmetic is exact). */
__device__ __forceinline__ int unit_start(int b, int T, int G) {
    return (int)((unsigned)b * (unsigned)T / (unsigned)G);
}
/* The block whose range holds unit x (the largest b with start(b) <= x). */
__device__ __forceinline__ int unit_owner(int x, int T, int G) {
    return (int)(((unsigned)(x + 1) * (unsigned)G + (unsigned)T - 1) /
                 (unsigned)T) - 1;
}

/* Position of a work unit, advanced incrementally (units are visited in
 * order), which keeps integer divisions out of the per-unit path. g0 is the
 * first scale group of the k tile (grouped scales). */
struct Cursor {
    int kt, mc, ns, g0, gc;
    __device__ __forceinline__ void init(int u, const Params &p) {
        const int slice = u / p.ktiles;
        kt = u - slice * p.ktiles;
        ns = slice / p.chunks;
        mc = slice - ns * p.chunks;
        gc = kt % p.g_every;
        g0 = (kt / p.g_every) * p.g_step;
    }
    __device__ __forceinline__ void advance(const Params &p) {
        if (++kt == p.ktiles) {
            kt = 0;
            g0 = 0;
            gc = 0;
            if (++mc == p.chunks) {
                mc = 0;
                ++ns;
            }
        } else if (++gc == p.g_every) {
            gc = 0;
            g0 += p.g_step;
        }
    }
};

/* ---------------------------------------------------------- epilogue */

/* One C row of 8 features from finished sums: feature f = j + 4x of the
 * thread's 8 lives in v[j][2x + y] (y: which of the thread's two rows). */
__device__ __forceinline__ void store8(int4 *C, int n, int row, int col,
                                       const float (&v)[4][4], int y,
                                       const float (&sv)[8]) {
    uint32_t o[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        const int f0 = 2 * q, f1 = 2 * q + 1;
        o[q] = h2_bits(
            __floats2half2_rn(v[f0 & 3][2 * (f0 >> 2) + y] * sv[f0],
                              v[f1 & 3][2 * (f1 >> 2) + y] * sv[f1]));
    }
    C[(size_t)row * (n >> 3) + (col >> 3)] =
        make_int4((int)o[0], (int)o[1], (int)o[2], (int)o[3]);
}

/* Per-channel scales of features col..col+7 (1.0 when grouped: the grouped
 * scales were applied to the weights). */
template <bool GROUPED>
__device__ __forceinline__ void col_scales(const int4 *s, int col,
                                           float (&sv)[8]) {
#pragma unroll
    for (int f = 0; f < 8; ++f) sv[f] = 1.f;
    if (!GROUPED) {
        const int4 raw = __ldg(s + (col >> 3));
        const __half *hs = reinterpret_cast<const __half *>(&raw);
#pragma unroll
        for (int f = 0; f < 8; ++f) sv[f] = __half2float(hs[f]);
    }
}

/*
 * The last block to finish a split slice sums the fp32 parts of blocks
 * b_first..b_last in block order and writes C rows row0 .. row0+rows-1,
 * columns n0 .. n0+64*NW-1, with U parts per thread in flight.
 *
 * Partial layout (written by the kernel): slot (2*b + s) holds float4
 * ((a*2 + h)*4 + j) * OWNERS + owner. Every thread takes quads (a, h,
 * owner: 4 float4 = 8 features x 2 rows); with fewer quads than threads,
 * TPG adjacent lanes share one, each summing every TPG-th part, combined by
 * shuffles in a fixed tree order, so results are bit-identical run to run.
 */
template <int MB, int NW, bool GROUPED, int U>
__device__ __forceinline__ void reduce_parts(const float4 *partials, int4 *C,
                                             const int4 *s, int n,
                                             int b_first, int b_last,
                                             bool first_inside, int rows,
                                             int row0, int n0) {
    constexpr int OWNERS = 32 * NW;
    constexpr int GROUPS = 2 * MB * OWNERS;
    constexpr int TPG = GROUPS >= kThreads ? 1 : kThreads / GROUPS;
    constexpr int QPT = GROUPS >= kThreads ? GROUPS / kThreads : 1;
    const int tid = threadIdx.x;
    const int sub = tid % TPG;
    int q_ah[QPT], q_o[QPT], q_r[QPT];
    bool live[QPT]; /* uniform across the TPG lanes of a quad */
#pragma unroll
    for (int qi = 0; qi < QPT; ++qi) {
        const int q = tid / TPG + qi * kThreads;
        q_ah[qi] = q / OWNERS;
        q_o[qi] = q % OWNERS;
        q_r[qi] = 16 * (q_ah[qi] >> 1) + 8 * (q_ah[qi] & 1) + 2 * (q_o[qi] & 3);
        live[qi] = q_r[qi] < rows;
    }
    float v[QPT][4][4];
#pragma unroll
    for (int qi = 0; qi < QPT; ++qi)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) v[qi][j][e] = 0.f;
    /* every quad of U parts in flight, then added in part order */
    for (int b0 = b_first + sub; b0 <= b_last; b0 += U * TPG) {
        float4 w[U][QPT][4];
#pragma unroll
        for (int uu = 0; uu < U; ++uu) {
            const int b = b0 + uu * TPG;
            if (b <= b_last) {
                const int slot = (b > b_first || first_inside) ? 0 : 1;
                const float4 *src = partials + (size_t)(2 * b + slot) * (GROUPS * 4);
#pragma unroll
                for (int qi = 0; qi < QPT; ++qi)
                    if (live[qi])
#pragma unroll
                        for (int j = 0; j < 4; ++j)
                            w[uu][qi][j] =
                                __ldcg(src + (q_ah[qi] * 4 + j) * OWNERS + q_o[qi]);
            }
        }
#pragma unroll
        for (int uu = 0; uu < U; ++uu)
            if (b0 + uu * TPG <= b_last) {
#pragma unroll
                for (int qi = 0; qi < QPT; ++qi)
                    if (live[qi])
#pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            v[qi][j][0] += w[uu][qi][j].x;
                            v[qi][j][1] += w[uu][qi][j].y;
                            v[qi][j][2] += w[uu][qi][j].z;
                            v[qi][j][3] += w[uu][qi][j].w;
                        }
            }
    }
#pragma unroll
    for (int qi = 0; qi < QPT; ++qi) {
#pragma unroll
        for (int x = 1; x < TPG; x *= 2)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    v[qi][j][e] += __shfl_xor_sync(0xffffffffu, v[qi][j][e], x);
        if (!live[qi] || sub != 0) continue;
        float sv[8];
        const int o = q_o[qi];
        const int col = n0 + 64 * (o >> 5) + 8 * ((o & 31) >> 2);
        col_scales<GROUPED>(s, col, sv);
#pragma unroll
        for (int y = 0; y < 2; ++y)
            if (q_r[qi] + y < rows) store8(C, n, row0 + q_r[qi] + y, col, v[qi], y, sv);
    }
}

/* The same as a call, for the multi-row kernels: it runs once per split
 * slice, and out of line it has its own register budget, so all quads of
 * 4 / QPT parts are in flight without pushing the 64-row kernels' main loop
 * (about 250 registers) into spills. The 16-row kernels keep it inline (a
 * call's saved registers would spill their 128-register main loop). */
template <int MB, int NW, bool GROUPED>
__device__ __noinline__ void reduce_parts_call(const float4 *partials,
                                               int4 *C, const int4 *s, int n,
                                               int b_first, int b_last,
                                               bool first_inside, int rows,
                                               int row0, int n0) {
    constexpr int GROUPS = 2 * MB * 32 * NW;
    constexpr int QPT = GROUPS >= kThreads ? GROUPS / kThreads : 1;
    reduce_parts<MB, NW, GROUPED, (QPT >= 4 ? 1 : 4 / QPT)>(
        partials, C, s, n, b_first, b_last, first_inside, rows, row0, n0);
}

/*
 * Template parameters:
 *   MB      16-row batch blocks per chunk (1, 2 or 4)
 *   NW      warps along n; each owns 64 output features (n tile = 64*NW)
 *   KW      warps along k (NW * KW = 8 warps)
 *   KP      32-row dense k blocks per warp per stage (k tile = 32*KW*KP)
 *   GROUPED scales multiply the weights per k group (G > 1); otherwise one
 *           scale per column, applied to the fp32 sums in the epilogue
 * Blocks per SM: 2 for MB == 1 (registers capped at 128), else 1.
 */
template <int MB, int NW, int KW, int KP, bool GROUPED, bool CLUSTER>
__global__ void __launch_bounds__(kThreads, MB == 1 ? 2 : 1)
    marlin24_kernel(const Params p) {
    static_assert(NW * KW == kThreads / 32, "8 warps");
    constexpr int KB = KW * KP;        /* 32-row k blocks per stage */
    constexpr int KT = 32 * KB;        /* dense k per stage */
    constexpr int NT = 64 * NW;        /* output features per slice */
    constexpr int A_ROW = KT / 8;      /* int4 per activation row */
    constexpr int A_I4 = 16 * MB * A_ROW;
    constexpr int B_I4 = KB * NW * 32; /* 512 bytes per (k block, 64 cols) */
    constexpr int M_I4 = KB * NW * 16; /* 256 bytes per (k block, 64 cols) */
    constexpr int S_ROW = NT / 8;      /* int4 per scale row of the slice */
    constexpr int A_PER = A_I4 / kThreads;
    constexpr int B_PER = B_I4 / kThreads;
    constexpr int M_PER = (M_I4 + kThreads - 1) / kThreads;
    static_assert(A_I4 % kThreads == 0 && B_I4 % kThreads == 0, "copies");
    static_assert(kThreads % A_ROW == 0, "A rows advance by whole rows");
    static_assert(M_I4 % kThreads == 0 || M_PER == 1, "meta copies");
    /* partial sums: 2*MB (16-row block, 8-row half) x 4 subtiles x owners */
    constexpr int OWNERS = 32 * NW;
    constexpr int GROUPS = 2 * MB * OWNERS; /* (a, h, owner) float4 quads */
    constexpr int RJ = MB == 1 ? 1 : 4;     /* subtiles per k-split round */

    extern __shared__ int4 smem[];
    __shared__ int s_last;
    float4 *const red =
        reinterpret_cast<float4 *>(smem + (size_t)p.stages * p.stage_i4);

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % NW; /* 64-column block of this warp */
    const int wk = warp / NW; /* k blocks wk*KP .. wk*KP+KP-1 of a stage */
    const int g = lane >> 2;
    const int t4 = lane & 3;

    const int T = p.units;
    const int nblk = (int)gridDim.x;
    int u_begin, u_end;
    if (CLUSTER) {
        cluster_unit_range(p.cluster_k, p.ktiles, u_begin, u_end);
    } else {
        u_begin = unit_start(blockIdx.x, T, nblk);
        u_end = unit_start(blockIdx.x + 1, T, nblk);
    }
    const int n_units = u_end - u_begin;
    if (n_units <= 0) return; /* the host never launches such a block */

    const int k_i4 = p.k >> 3;   /* int4 per A row */
    const int nB = p.n >> 1;     /* int4 per B row (2n words) */
    const int nM = p.n >> 2;     /* int4 per meta row (2n int16) */
    const int nS = p.n >> 3;     /* int4 per scale row */
    const uint64_t wpol = make_policy(p.evict_first != 0);

    /* ---- per-thread copy plan, computed once ------------------------ */
    /* Each thread copies the same chunks of every tile, so only 32-bit
     * offsets inside a tile are kept; per unit only the tile's base offset
     * changes, and each copy costs one wide add. */
    /* A: chunk q of this thread is row a_r0 + q*A_RSTEP, column a_c */
    constexpr int A_RSTEP = kThreads / A_ROW;
    const int a_r0 = tid / A_ROW, a_c = tid % A_ROW;
    const int a_dst0 = a_r0 * A_ROW + (a_c ^ (a_r0 & 7)); /* XOR swizzle */
    const int a_src0 = a_r0 * k_i4 + a_c;
    const int a_qstep = A_RSTEP * k_i4;
    /* B: int4 tid + q*256 of the stage = k block tid/OWNERS + q*KW */
    const int b_src0 = (tid / OWNERS) * nB + tid % OWNERS;
    const int b_qstep = KW * nB;
    const int b_tile = KB * nB; /* per k tile */
    /* meta: int4 tid + q*256 = k block tid/(16 NW) + q*(16/NW) */
    const int m_src0 = (tid / (16 * NW)) * nM + tid % (16 * NW);
    const int m_qstep = (kThreads / (16 * NW)) * nM;
    const int m_tile = KB * nM;
    /* scales: row tid / S_ROW of the tile's groups */
    const int s_src0 = (tid / S_ROW) * nS + tid % S_ROW;
    const int s_cnt = GROUPED ? p.s_rows * S_ROW : 0;

    auto load_a = [&](const Cursor &c, int st) {
        int4 *sA = smem + st * p.stage_i4;
        const int row0 = c.mc * 16 * MB;
        const int rows = p.m - row0; /* rows >= this are never loaded */
        const int4 *gA =
            p.A + (size_t)row0 * k_i4 + (c.kt * A_ROW + a_src0);
#pragma unroll
        for (int q = 0; q < A_PER; ++q) {
            /* A_RSTEP is 16, 8 or 4 rows: the swizzle repeats every 8
             * rows, and 4 rows further flips its bit 2 */
            const int dst = ((A_RSTEP % 8 != 0 && (q & 1)) ? (a_dst0 ^ 4)
                                                            : a_dst0) +
                            q * A_RSTEP * A_ROW;
            if (a_r0 + q * A_RSTEP < rows)
                cp_async16(sA + dst, gA + q * a_qstep);
        }
    };
    auto load_w = [&](const Cursor &c, int st) {
        int4 *sB = smem + st * p.stage_i4 + A_I4;
        int4 *sM = sB + B_I4;
        int4 *sS = sM + M_I4;
        const int4 *gB = p.B + (c.kt * b_tile + c.ns * OWNERS + b_src0);
#pragma unroll
        for (int q = 0; q < B_PER; ++q)
            cp_async16_policy(sB + tid + q * kThreads, gB + q * b_qstep, wpol);
        const int4 *gM = p.meta + (c.kt * m_tile + c.ns * (16 * NW) + m_src0);
#pragma unroll
        for (int q = 0; q < M_PER; ++q)
            if (M_I4 % kThreads == 0 || tid < M_I4)
                cp_async16_policy(sM + tid + q * kThreads, gM + q * m_qstep,
                                  wpol);
        if (GROUPED && tid < s_cnt)
            cp_async16_policy(sS + tid,
                              p.s + (c.g0 * nS + c.ns * S_ROW + s_src0), wpol);
    };

    /* ---- per-thread shared-memory read offsets ---------------------- */
    const int b_rd = (wk * KP * NW + wn) * 32 + lane;      /* int4 */
    const int m_rd = (wk * KP * NW + wn) * 64 + lane;      /* uint32 */
    /* ldmatrix: lane gives row (lane & 7) of matrix lane >> 3 (8 k each) */
    const int a_rd_row = (lane & 7) * A_ROW;
    const int a_x = lane & 7, a_q = lane >> 3;

    float acc[MB][4][2][4];
    auto zero_acc = [&]() {
#pragma unroll
        for (int a = 0; a < MB; ++a)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h)
#pragma unroll
                    for (int c = 0; c < 4; ++c) acc[a][j][h][c] = 0.f;
    };

    /* ---- one stage: the warp's KP k blocks -------------------------- */
    auto compute = [&](int st) {
        const int4 *sA = smem + st * p.stage_i4;
        const int4 *sB = sA + A_I4;
        const uint32_t *sM = reinterpret_cast<const uint32_t *>(sB + B_I4);
        const int4 *sS = sB + B_I4 + M_I4;
#pragma unroll
        for (int kp = 0; kp < KP; ++kp) {
            const int kb = wk * KP + kp; /* k block inside the stage */
            const int4 bq = sB[b_rd + kp * NW * 32];
            const uint32_t meta0 = sM[m_rd + kp * NW * 64];
            const uint32_t meta1 = sM[m_rd + kp * NW * 64 + 32];
            int4 sc = make_int4(0, 0, 0, 0);
            if (GROUPED) sc = sS[(kb >> p.s_shift) * S_ROW + 8 * wn + g];
            const uint32_t words[4] = {(uint32_t)bq.x, (uint32_t)bq.y,
                                       (uint32_t)bq.z, (uint32_t)bq.w};
            const uint32_t sw[4] = {(uint32_t)sc.x, (uint32_t)sc.y,
                                    (uint32_t)sc.z, (uint32_t)sc.w};
            uint32_t af[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                dequant2(words[j], af[j][0], af[j][2]);
                dequant2(words[j] >> 8, af[j][1], af[j][3]);
                if (GROUPED) {
                    /* half 2j of the scale int4 scales row g (feature
                     * 8g+j), half 2j+1 row g+8 (feature 8g+j+4) */
                    const __half2 s2 = bits_h2(sw[j]);
                    const __half2 s0 = __low2half2(s2);
                    const __half2 s1 = __high2half2(s2);
                    af[j][0] = h2_bits(__hmul2(bits_h2(af[j][0]), s0));
                    af[j][2] = h2_bits(__hmul2(bits_h2(af[j][2]), s0));
                    af[j][1] = h2_bits(__hmul2(bits_h2(af[j][1]), s1));
                    af[j][3] = h2_bits(__hmul2(bits_h2(af[j][3]), s1));
                }
            }
            /* activation chunk (4 kb + a_q) of row r sits at chunk
             * (4 kb + a_q) ^ (r & 7), and r & 7 == lane & 7 */
            const int a_off = a_rd_row + ((4 * kb + a_q) ^ a_x);
#pragma unroll
            for (int a = 0; a < MB; ++a) {
                uint32_t bf[2][4];
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    ldmatrix_x4(bf[h], sA + a_off + (16 * a + 8 * h) * A_ROW);
#pragma unroll
                for (int j = 0; j < 4; ++j)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const uint32_t e = j < 2 ? meta0 : meta1;
                        if (j & 1)
                            mma_sp<1>(acc[a][j][h], af[j], bf[h], e);
                        else
                            mma_sp<0>(acc[a][j][h], af[j], bf[h], e);
                    }
            }
        }
    };

    /* ---- end of a segment (this block's units inside one slice) ----- */
    /* 1. k-split warps: tree through shared memory in a fixed order, RJ
     *    subtiles of one 16-row block at a time (4 KB per subtile: one at a
     *    time with two blocks per SM, four otherwise); afterwards the wk == 0
     *    warps hold the block's sums */
    auto tree_reduce = [&]() {
        if (KW > 1) {
#pragma unroll
            for (int a = 0; a < MB; ++a)
#pragma unroll
                for (int j0 = 0; j0 < 4; j0 += RJ)
#pragma unroll
                    for (int off = KW / 2; off >= 1; off /= 2) {
                        if (wk >= off && wk < 2 * off) {
                            float4 *d = red +
                                        ((wk - off) * NW + wn) * (64 * RJ) +
                                        lane;
#pragma unroll
                            for (int jj = 0; jj < RJ; ++jj)
#pragma unroll
                                for (int h = 0; h < 2; ++h)
                                    d[(2 * jj + h) * 32] = make_float4(
                                        acc[a][j0 + jj][h][0],
                                        acc[a][j0 + jj][h][1],
                                        acc[a][j0 + jj][h][2],
                                        acc[a][j0 + jj][h][3]);
                        }
                        __syncthreads();
                        if (wk < off) {
                            const float4 *sr =
                                red + (wk * NW + wn) * (64 * RJ) + lane;
#pragma unroll
                            for (int jj = 0; jj < RJ; ++jj)
#pragma unroll
                                for (int h = 0; h < 2; ++h) {
                                    const float4 v = sr[(2 * jj + h) * 32];
                                    acc[a][j0 + jj][h][0] += v.x;
                                    acc[a][j0 + jj][h][1] += v.y;
                                    acc[a][j0 + jj][h][2] += v.z;
                                    acc[a][j0 + jj][h][3] += v.w;
                                }
                        }
                        __syncthreads();
                    }
        }
    };

    auto finish = [&](int u) {
        const int slice = u / p.ktiles;
        const int su0 = slice * p.ktiles;
        const int ns = slice / p.chunks;
        const int n0 = ns * NT;
        const int row0 = (slice - ns * p.chunks) * 16 * MB;
        const int rows = min(16 * MB, p.m - row0);
        tree_reduce();
        /* 2. whole slice in this block: straight to C */
        const int b_first = unit_owner(su0, T, nblk);
        const int b_last = unit_owner(su0 + p.ktiles - 1, T, nblk);
        if (b_first == b_last) {
            if (wk == 0) {
                float sv[8];
                const int col = n0 + 64 * wn + 8 * g;
                col_scales<GROUPED>(p.s, col, sv);
#pragma unroll
                for (int a = 0; a < MB; ++a)
#pragma unroll
                    for (int h = 0; h < 2; ++h)
#pragma unroll
                        for (int y = 0; y < 2; ++y) {
                            const int r = 16 * a + 8 * h + 2 * t4 + y;
                            if (r < rows) {
                                float v[4][4];
#pragma unroll
                                for (int j = 0; j < 4; ++j)
#pragma unroll
                                    for (int e = 0; e < 4; ++e)
                                        v[j][e] = acc[a][j][h][e];
                                store8(p.C, p.n, row0 + r, col, v, y, sv);
                            }
                        }
            }
            return;
        }
        /* 3. partial: publish (slot 0 when the block began inside this
         *    slice, i.e. it is the block's first segment), count, and the
         *    last block to arrive sums all parts in block order */
        const int my_slot = max(u_begin, su0) == u_begin ? 0 : 1;
        if (wk == 0) {
            float4 *dst = p.partials +
                          (size_t)(2 * blockIdx.x + my_slot) * (GROUPS * 4) +
                          wn * 32 + lane;
#pragma unroll
            for (int a = 0; a < MB; ++a)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    if (16 * a + 8 * h + 2 * t4 < rows)
#pragma unroll
                        for (int j = 0; j < 4; ++j)
                            __stcg(&dst[((2 * a + h) * 4 + j) * OWNERS],
                                   make_float4(acc[a][j][h][0], acc[a][j][h][1],
                                               acc[a][j][h][2],
                                               acc[a][j][h][3]));
        }
        /* publish before counting: every thread's part stores precede the
         * barrier; thread 0's release fence after it makes them visible at
         * GPU scope before the count (cumulativity: CUTLASS's arrive_inc
         * pattern), its acquire fence (when last) orders the other parts
         * before this block's reads, which the second barrier hands on.
         * One acq_rel fence in one thread, not an SC fence (MEMBAR.SC.GPU)
         * in all 256 (docs/perf.md, run 10). */
        __syncthreads();
        if (tid == 0) {
            asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
            const int before = atomicAdd(&p.counters[slice], 1);
            s_last = before == b_last - b_first;
            if (s_last) asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
        }
        __syncthreads();
        if (!s_last) return;
        /* Blocks after b_first begin inside the slice (slot 0); b_first
         * does only if it begins exactly at the slice's start. */
        const bool first_inside = unit_start(b_first, T, nblk) == su0;
        if (MB == 1)
            reduce_parts<MB, NW, GROUPED, 2>(p.partials, p.C, p.s, p.n, b_first,
                                             b_last, first_inside, rows, row0,
                                             n0);
        else
            reduce_parts_call<MB, NW, GROUPED>(p.partials, p.C, p.s, p.n,
                                               b_first, b_last, first_inside,
                                               rows, row0, n0);
        /* every part has arrived: reset the counter for the next launch */
        if (tid == 0) p.counters[slice] = 0;
    };

    /* ---- the cluster path's end (p.cluster_k = CS > 1, sm_90): the CS
     * blocks of a cluster hold one slice's k parts; after each block's
     * tree, (a, h, owner) quad q (4 float4: one thread's 8 features x 2
     * rows) goes to block q / CHQ of the cluster (CHQ = ceil(GROUPS / CS)),
     * into its receive area after `red` at [source rank][q % CHQ]; one
     * cluster barrier; then each block adds its quads over the sources in
     * rank order (deterministic) and writes C. Rows >= m are neither sent
     * nor stored. The dense kernel's finish_cluster_v2 has the why. */
    auto finish_cluster = [&](int u) {
        const int slice = u / p.ktiles;
        const int ns = slice / p.chunks;
        const int n0 = ns * NT;
        const int row0 = (slice - ns * p.chunks) * 16 * MB;
        const int rows = min(16 * MB, p.m - row0);
        constexpr int RED_F4 = KW > 1 ? (KW / 2) * NW * 64 * RJ : 0;
        float4 *const recv = red + RED_F4;
        const int cs = p.cluster_k;
        const int rank = (int)(blockIdx.x % (unsigned)cs);
        const int chq = (GROUPS + cs - 1) / cs;
        tree_reduce();
        cluster_wait(); /* phase 0: every block of the cluster has started */
        if (wk == 0) {
#pragma unroll
            for (int a = 0; a < MB; ++a)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    if (16 * a + 8 * h + 2 * t4 >= rows) continue;
                    const int q = (a * 2 + h) * OWNERS + wn * 32 + lane;
                    const int dst = q / chq;
                    float4 *at = recv + (size_t)(rank * chq + (q - dst * chq)) * 4;
#pragma unroll
                    for (int j = 0; j < 4; ++j)
                        st_cluster_f4(at + j, dst,
                                      make_float4(acc[a][j][h][0], acc[a][j][h][1],
                                                  acc[a][j][h][2], acc[a][j][h][3]));
                }
        }
        cluster_sync_acq_rel(); /* phase 1: every part has landed */
        const int q1 = min(GROUPS, (rank + 1) * chq);
        for (int q = rank * chq + tid; q < q1; q += kThreads) {
            const int ah = q / OWNERS, o = q % OWNERS;
            const int r = 16 * (ah >> 1) + 8 * (ah & 1) + 2 * (o & 3);
            if (r >= rows) continue;
            float v[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float4 x = recv[(size_t)(q - rank * chq) * 4 + j];
                v[j][0] = x.x;
                v[j][1] = x.y;
                v[j][2] = x.z;
                v[j][3] = x.w;
            }
            for (int src = 1; src < cs; ++src)
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float4 x = recv[(size_t)(src * chq + q - rank * chq) * 4 + j];
                    v[j][0] += x.x;
                    v[j][1] += x.y;
                    v[j][2] += x.z;
                    v[j][3] += x.w;
                }
            float sv[8];
            const int col = n0 + 64 * (o >> 5) + 8 * ((o & 31) >> 2);
            col_scales<GROUPED>(p.s, col, sv);
#pragma unroll
            for (int y = 0; y < 2; ++y)
                if (r + y < rows) store8(p.C, p.n, row0 + r + y, col, v, y, sv);
        }
    };

    /* ---- prologue ---------------------------------------------------- */
    /* Rows at or past m are never loaded: zero them once in every stage so
     * that no uninitialised value reaches the tensor cores (they only feed
     * output rows that are never stored). */
    for (int i = tid; i < p.stages * A_I4; i += kThreads) {
        const int st = i / A_I4;
        smem[st * p.stage_i4 + (i - st * A_I4)] = make_int4(0, 0, 0, 0);
    }
    __syncthreads();

    Cursor lc; /* next unit to load */
    lc.init(u_begin, p);
    const int pro = min(p.stages - 1, n_units);
    if (!p.pdl) {
        /* one cp.async group per stage: group s completes unit s */
        for (int s = 0; s < p.stages - 1; ++s) {
            if (s < pro) {
                load_w(lc, s);
                load_a(lc, s);
                lc.advance(p);
            }
            cp_async_commit();
        }
    } else {
        /* Programmatic dependent launch: the weights (never written by the
         * previous kernel of the stream: the caller's promise) are
         * requested first; activations, C and the workspace only after
         * griddepcontrol.wait, i.e. once that kernel has completed and its
         * writes are visible. Group 0 = all prologue weights + A of unit 0,
         * group s = A of unit s: group s still completes unit s. */
        for (int s = 0; s < pro; ++s) {
            load_w(lc, s);
            lc.advance(p);
        }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        asm volatile("griddepcontrol.wait;\n" ::: "memory");
        asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
        Cursor ac;
        ac.init(u_begin, p);
        for (int s = 0; s < p.stages - 1; ++s) {
            if (s < pro) {
                load_a(ac, s);
                ac.advance(p);
            }
            cp_async_commit();
        }
    }
    zero_acc();

    /* ---- main loop: stage i % stages holds unit u_begin + i ---------- */
    int st_read = 0, st_write = p.stages - 1;
    /* units left in the current segment (the block's units in one slice) */
    int seg_left = min(n_units, p.ktiles - (u_begin % p.ktiles));
#pragma unroll 1
    for (int i = 0; i < n_units; ++i) {
        cp_async_wait(p.stages - 2);
        /* unit i has landed for every thread, and every thread is done
         * with the stage computed in iteration i-1, refilled now */
        __syncthreads();
        if (i + p.stages - 1 < n_units) {
            load_w(lc, st_write);
            load_a(lc, st_write);
            lc.advance(p);
        }
        cp_async_commit();
        compute(st_read);
        st_read = st_read + 1 == p.stages ? 0 : st_read + 1;
        st_write = st_write + 1 == p.stages ? 0 : st_write + 1;
        if (--seg_left == 0) {
            if (CLUSTER)
                finish_cluster(u_begin + i);
            else
                finish(u_begin + i);
            zero_acc();
            seg_left = min(n_units - 1 - i, p.ktiles);
        }
    }
    cp_async_wait(0);
}

/* ------------------------------------------------------------ host side */

/* A tile configuration (marlin_gemm24_opts.config numbers them). */
struct Config {
    int id;
    int mb; /* 16-row blocks per chunk */
    int nw; /* warps along n */
    int kw; /* warps along k */
    int kp; /* k blocks per warp per stage */
};

typedef void (*KernelFn)(Params);

template <int MB, int NW, int KW, int KP>
KernelFn pick_grouped(bool grouped) {
    return grouped ? marlin24_kernel<MB, NW, KW, KP, true, false>
                   : marlin24_kernel<MB, NW, KW, KP, false, false>;
}
template <int NW, int KW, int KP>
KernelFn pick_grouped_cluster(bool grouped) {
    return grouped ? marlin24_kernel<1, NW, KW, KP, true, true>
                   : marlin24_kernel<1, NW, KW, KP, false, true>;
}

/* columns x dense k per stage, by id; ids 3-5 exist for 16 rows or fewer */
constexpr int kNumConfigs = 6;
const int kCfgShape[kNumConfigs + 1][3] = {
    /* nw, kw, kp */
    {0, 0, 0},
    {2, 4, 1}, /* 1: 128 x 128 (fits every shape) */
    {4, 2, 4}, /* 2: 256 x 256 */
    {2, 4, 2}, /* 3: 128 x 256 */
    {2, 4, 4}, /* 4: 128 x 512 */
    {1, 8, 2}, /* 5:  64 x 512 */
    {4, 2, 2}, /* 6: 256 x 128 */
};

Config make_config(int id, int mb) {
    Config c = {id, mb, kCfgShape[id][0], kCfgShape[id][1], kCfgShape[id][2]};
    return c;
}

/* The instantiated kernels (CI compiles them for four architectures on two
 * cores: keep the list short). */
KernelFn kernel_for(const Config &c, bool grouped) {
    switch (c.mb) {
    case 1:
        switch (c.id) {
        case 1: return pick_grouped<1, 2, 4, 1>(grouped);
        case 2: return pick_grouped<1, 4, 2, 4>(grouped);
        case 3: return pick_grouped<1, 2, 4, 2>(grouped);
        case 4: return pick_grouped<1, 2, 4, 4>(grouped);
        case 5: return pick_grouped<1, 1, 8, 2>(grouped);
        case 6: return pick_grouped<1, 4, 2, 2>(grouped);
        }
        break;
    case 2:
        if (c.id == 1) return pick_grouped<2, 2, 4, 1>(grouped);
        if (c.id == 2) return pick_grouped<2, 4, 2, 4>(grouped);
        if (c.id == 6) return pick_grouped<2, 4, 2, 2>(grouped);
        break;
    case 4:
        if (c.id == 1) return pick_grouped<4, 2, 4, 1>(grouped);
        if (c.id == 2) return pick_grouped<4, 4, 2, 4>(grouped);
        if (c.id == 6) return pick_grouped<4, 4, 2, 2>(grouped);
        break;
    }
    return nullptr;
}

/* The cluster path's kernels: 16-row chunks, configurations 3 (128 x 256)
 * and 4 (128 x 512), the narrow ones that give a slice per 128 columns. */
KernelFn cluster_kernel_for(const Config &c, bool grouped) {
    if (c.mb != 1) return nullptr;
    if (c.id == 3) return pick_grouped_cluster<2, 4, 2>(grouped);
    if (c.id == 4) return pick_grouped_cluster<2, 4, 4>(grouped);
    return nullptr;
}

/* Receive area of the cluster path: every (a, h, owner) quad of a 16-row
 * chunk once, 4 float4 each, + one quad of rounding slack per block. */
int cluster_recv_bytes(const Config &c) { return (2 * 32 * c.nw + 8) * 4 * 16; }

int k_tile(const Config &c) { return 32 * c.kw * c.kp; }
int n_tile(const Config &c) { return 64 * c.nw; }

/* Scale rows a stage needs: one when the group spans the k tile, else
 * k_tile / group. */
int scale_rows(const Config &c, bool grouped, int64_t group) {
    if (!grouped) return 0;
    return group < k_tile(c) ? (int)(k_tile(c) / group) : 1;
}
int stage_bytes(const Config &c, bool grouped, int64_t group) {
    const int kb = c.kw * c.kp;
    const int a = 16 * c.mb * 32 * kb * 2;
    const int s = scale_rows(c, grouped, group) * n_tile(c) * 2;
    return a + kb * c.nw * 512 + kb * c.nw * 256 + s;
}
/* k-split tree buffer: (KW/2) x NW x 64 float4 per subtile of a round
 * (kernel constant RJ: 1 subtile for one 16-row block, else 4) */
int red_bytes(const Config &c) {
    const int rj = c.mb == 1 ? 1 : 4;
    return c.kw > 1 ? (c.kw / 2) * c.nw * 64 * 16 * rj : 0;
}
size_t part_slot_bytes(const Config &c) {
    return (size_t)2 * c.mb * 4 * 32 * c.nw * 16;
}

int mb_for_rows(int64_t m) { return m <= 16 ? 1 : m <= 32 ? 2 : 4; }

bool config_exists(int id, int mb) {
    if (id < 1 || id > kNumConfigs) return false;
    return mb == 1 || id == 1 || id == 2 || id == 6;
}

/* A configuration fits when its tiles divide n and k and every stage lies
 * inside one group or holds whole groups (group 32, 64 or a multiple of
 * 128, checked by marlin_gemm24_check_shape). */
bool fits(const Config &c, int64_t n, int64_t k, int64_t group) {
    const int kt = k_tile(c);
    if (n % n_tile(c) != 0 || k % kt != 0) return false;
    if (group != -1 && group < k && group % kt != 0 && kt % group != 0)
        return false;
    return true;
}

/* Configurations to try for `m` rows, best first: the forced one
 * (marlin_gemm24_opts.config) when it exists for these rows, then the
 * automatic order; the launcher takes the first that fits the shape and
 * the device's shared memory. Automatic, from the H100 sweep in
 * docs/perf.md ("2:4 sparse kernel", run 3): for 16 rows or fewer the
 * 128 x 512 stage (config 4: the fewest and smallest fp32 parts per split
 * slice, so the shortest fix-up tail) when m <= 8 or the layer is small
 * (k * n <= 2^26), else 256 x 256 (config 2: half the activation bytes per
 * weight byte, which pays at 9-16 rows on large layers); within 0.5% of the
 * best configuration per layer on the Llama shapes. More rows: 256 x 256
 * (config 2: half the pipeline steps of 256 x 128 per weight byte, for a
 * loop that is latency-bound with 8 warps per SM), then 256 x 128, then
 * 128 x 128 (fits every shape). Returns the number of candidates. */
int config_candidates(int64_t m, int64_t n, int64_t k, int forced,
                      Config (&out)[8]) {
    const int mb = mb_for_rows(m);
    int cnt = 0;
    if (config_exists(forced, mb)) out[cnt++] = make_config(forced, mb);
    static const int small_1[] = {4, 2, 3, 6, 1};
    static const int large_1[] = {2, 4, 3, 6, 1};
    static const int order_n[] = {2, 6, 1};
    const int *order = order_n;
    int count = 3;
    if (mb == 1) {
        order = (m <= 8 || k * n <= ((int64_t)1 << 26)) ? small_1 : large_1;
        count = 5;
    }
    for (int i = 0; i < count; ++i) out[cnt++] = make_config(order[i], mb);
    return cnt;
}

size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* The automatic cluster-path choice (sm_90; the launcher checks): returns
 * the cluster size and sets *cfg (3 or 4), or 0 for stream-K. Fit to run
 * 12's sweep on the H100 (docs/perf.md: configurations 3 and 4 x cluster
 * sizes 2-6, 8 against every stream-K configuration, Llama-2-7B/13B,
 * Llama-3-8B, Llama-2-70B at m = 1 and 16): decode chunks (<= 16 rows),
 * 128 x 512 stages (configuration 4; 128 x 256 when k is not a multiple of
 * 512), and the cluster size that puts the grid nearest 1.45 blocks per SM
 * within [0.6, 2.0] per SM; the widest layers (gate_up: > 2 blocks per SM
 * even with 2 per cluster) keep stream-K. Over the 32 measured layer x m
 * pairs: 629 us against 657 us for the previous automatic choice (the best
 * per pair: 619 us). */
int auto_cluster24(int64_t rows, int64_t n, int64_t k, int64_t group, int sm_count, int *cfg) {
    static const int sizes[] = {2, 3, 4, 5, 6, 8};
    if (rows > 16) return 0;
    for (int id = 4; id >= 3; id--) {
        const Config c = make_config(id, 1);
        if (!fits(c, n, k, group)) continue;
        const int64_t slices = n / n_tile(c), kt = k / k_tile(c);
        double best = 1e30;
        int pick = 0;
        for (int i = 0; i < 6; i++) {
            if (sizes[i] > kt) break;
            const double per_sm = (double)(slices * sizes[i]) / sm_count;
            if (per_sm < 0.6 || per_sm > 2.0) continue;
            const double dd = per_sm > 1.45 ? per_sm - 1.45 : 1.45 - per_sm;
            if (dd < best) {
                best = dd;
                pick = sizes[i];
            }
        }
        if (pick) {
            *cfg = id;
            return pick;
        }
    }
    return 0;
}

/* Dynamic shared memory limit already raised per (device, kernel): the
 * attribute call costs host time on every launch otherwise. A race only
 * repeats the call. */
constexpr int kSmemCache = 64;
struct SmemSet {
    KernelFn fn;
    int dev;
    int bytes;
};
SmemSet g_smem_set[kSmemCache];

cudaError_t ensure_smem(KernelFn fn, int dev, int bytes) {
    int slot = -1;
    for (int i = 0; i < kSmemCache; ++i) {
        if (g_smem_set[i].fn == fn && g_smem_set[i].dev == dev) {
            if (g_smem_set[i].bytes >= bytes) return cudaSuccess;
            slot = i;
            break;
        }
        if (!g_smem_set[i].fn && slot < 0) slot = i;
    }
    cudaError_t ce = cudaFuncSetAttribute(
        (const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (ce == cudaSuccess && slot >= 0) {
        g_smem_set[slot].dev = dev;
        g_smem_set[slot].bytes = bytes;
        g_smem_set[slot].fn = fn;
    }
    return ce;
}

/* (kernel, device, cluster size, shared memory) combinations whose
 * residency cudaOccupancyMaxActiveClusters confirmed: it costs host time
 * on every launch otherwise. Guarded by a mutex (host threads may launch
 * concurrently); when the table is full, later launches query again. */
struct ClusterOk {
    KernelFn fn;
    int dev, cluster, smem;
};
ClusterOk g_cluster_ok[kSmemCache];
int g_cluster_ok_n = 0;
std::mutex g_cluster_ok_mu;

bool cluster_checked(KernelFn fn, int dev, int cluster, int smem) {
    std::lock_guard<std::mutex> lock(g_cluster_ok_mu);
    for (int i = 0; i < g_cluster_ok_n; ++i)
        if (g_cluster_ok[i].fn == fn && g_cluster_ok[i].dev == dev &&
            g_cluster_ok[i].cluster == cluster && g_cluster_ok[i].smem == smem)
            return true;
    return false;
}
void cluster_checked_set(KernelFn fn, int dev, int cluster, int smem) {
    std::lock_guard<std::mutex> lock(g_cluster_ok_mu);
    if (g_cluster_ok_n < kSmemCache)
        g_cluster_ok[g_cluster_ok_n++] = ClusterOk{fn, dev, cluster, smem};
}

/* Counters for kMaxChunks chunks of every n slice (n_tile >= 64). */
size_t counter_bytes(int64_t n) {
    return align256((size_t)kMaxChunks * (size_t)(n / 64) * sizeof(int));
}

/* The largest partial-sum slot and grid any configuration may use for m
 * rows (forced ones included), so one workspace size serves them all. */
size_t partial_bytes(int64_t m, int sms) {
    const int mb = mb_for_rows(m);
    size_t best = 0;
    for (int id = 1; id <= kNumConfigs; ++id)
        for (int b = 1; b <= mb; b *= 2) {
            if (!config_exists(id, b)) continue;
            const Config c = make_config(id, b);
            const size_t blocks = (size_t)sms * (b == 1 ? 2 : 1);
            const size_t bytes = 2 * blocks * part_slot_bytes(c);
            if (bytes > best) best = bytes;
        }
    return best;
}

/* The wgmma path's fp32 partial sums (kernels/marlin_dense_sm90a.cu): at
 * most one wave of resident blocks, 2 per SM of up to 64 x 256 floats or 1
 * per SM of 128 x 256, whatever tile width is forced. Only for more than
 * 16 rows (the automatic choice never takes it below; a forced call with
 * fewer rows uses a workspace sized for more). */
size_t wg_partial_bytes(int64_t m, int sms, int cc_major) {
#ifdef MARLIN_HAVE_SM90A
    if (cc_major == 9 && m > 16) return (size_t)2 * (size_t)sms * 64 * 256 * sizeof(float);
#else
    (void)m;
    (void)sms;
    (void)cc_major;
#endif
    return 0;
}

} /* namespace */

/* ================================================================ API */

#ifdef MARLIN_HAVE_SM90A
extern "C" int marlin_gemm24_wgmma_built(void) { return 1; }
#else
/* The build does not target sm_90: no wgmma kernels (the option says so). */
extern "C" int marlin_gemm24_wgmma_built(void) { return 0; }
extern "C" marlin_status mk_sparse_wgmma_launch(const mk_sparse_wg_args *a, int dev,
                                                const mk_device *d, marlin_error *err) {
    (void)a;
    (void)d;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "marlin_gemm24: the wgmma path is not in this build (device %d; build "
                       "with 90 in CMAKE_CUDA_ARCHITECTURES)",
                       dev);
}
#endif

extern "C" marlin_status marlin_gemm24_device(marlin24_device_info *info,
                                              marlin_error *err) {
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0)
        return marlin_fail(err, MARLIN_ERR_NO_DEVICE, "no CUDA device: %s",
                           ce != cudaSuccess ? cudaGetErrorString(ce)
                                             : "device count is 0");
    int dev = 0;
    const mk_device *d = NULL;
    marlin_status st = mk_current_device(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    if (info) {
        memset(info, 0, sizeof *info);
        info->device = dev;
        info->sm_count = d->sm_count;
        info->cc_major = d->cc_major;
        info->cc_minor = d->cc_minor;
        info->smem_optin = (int)d->smem_optin;
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
            strncpy(info->name, prop.name, sizeof info->name - 1);
    }
    if (d->cc_major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "device %d has compute capability %d.%d; the 2:4 "
                           "kernel needs 8.0+ (mma.sp, cp.async)",
                           dev, d->cc_major, d->cc_minor);
    return MARLIN_OK;
}

extern "C" marlin_status marlin_gemm24_workspace_size(int64_t m, int64_t n,
                                                      size_t *bytes,
                                                      marlin_error *err) {
    if (!bytes)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24_workspace_size: bytes is NULL");
    if (m < 0 || n <= 0 || n % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin_gemm24_workspace_size: m = %lld, n = %lld "
                           "(need m >= 0, n > 0, n %% 128 == 0)",
                           (long long)m, (long long)n);
    int dev;
    const mk_device *d = NULL;
    marlin_status st = mk_current_device(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    size_t parts = partial_bytes(m > 1024 ? 1024 : m, d->sm_count);
    const size_t wg = wg_partial_bytes(m, d->sm_count, d->cc_major);
    if (wg > parts) parts = wg;
    *bytes = counter_bytes(n) + parts;
    return MARLIN_OK;
}

extern "C" marlin_status marlin_gemm24(const void *A, const void *B,
                                       const void *meta, const void *s,
                                       void *C, int64_t m, int64_t n,
                                       int64_t k, int64_t group,
                                       void *workspace,
                                       size_t workspace_bytes, void *stream,
                                       marlin_error *err) {
    return marlin_gemm24_ex(A, B, meta, s, C, m, n, k, group, workspace,
                            workspace_bytes, stream, NULL, err);
}

extern "C" marlin_status marlin_gemm24_ex(
    const void *A, const void *B, const void *meta, const void *s, void *C,
    int64_t m, int64_t n, int64_t k, int64_t group, void *workspace,
    size_t workspace_bytes, void *stream, const marlin_gemm24_opts *opts,
    marlin_error *err) {
    marlin_status st = marlin_gemm24_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (m < 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE, "marlin_gemm24: m = %lld < 0",
                           (long long)m);
    if (m == 0) return MARLIN_OK;
    const void *ptrs[6] = {A, B, meta, s, C, workspace};
    const char *names[6] = {"A", "B", "meta", "s", "C", "workspace"};
    for (int i = 0; i < 6; ++i) {
        if (!ptrs[i] || ((uintptr_t)ptrs[i] & 15u) != 0)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "marlin_gemm24: %s is %s", names[i],
                               ptrs[i] ? "not 16-byte aligned" : "NULL");
    }
    /* int offsets inside the kernel: a B/meta int4 index, and 64 rows of
     * A (64 * k / 8 int4) */
    if ((k / 32) * (n / 2) > INT32_MAX / 2 || k > (1 << 24) ||
        n > INT32_MAX / 2)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin_gemm24: n = %lld, k = %lld too large",
                           (long long)n, (long long)k);
    const int loader = opts ? opts->loader : 0;
    if (loader != 0 && loader != 1)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "marlin_gemm24: loader %d; only per-thread cp.async "
                           "(0 or 1) exists (the bulk-copy loader was removed: "
                           "it was slower on H100)",
                           loader);
    const int bps_opt = opts ? opts->blocks_per_sm : 0;
    if (bps_opt < 0 || bps_opt > 2)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: blocks_per_sm %d outside [0, 2]",
                           bps_opt);
    int dev;
    const mk_device *d = NULL;
    st = mk_current_device(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    if (d->cc_major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "marlin_gemm24: device %d is sm_%d%d; need sm_80+",
                           dev, d->cc_major, d->cc_minor);
    size_t need = 0;
    st = marlin_gemm24_workspace_size(m, n, &need, err);
    if (st != MARLIN_OK) return st;
    if (workspace_bytes < need)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: workspace of %zu bytes, need %zu "
                           "(marlin_gemm24_workspace_size)",
                           workspace_bytes, need);

    const bool grouped = group != -1 && group < k;
    const int forced = opts ? opts->config : 0;
    int sms = d->sm_count;
    if (opts && opts->sms > 0 && opts->sms < sms) sms = opts->sms;
    const int pdl = opts && opts->pdl && d->cc_major >= 9;
    const int cluster_opt = opts ? opts->cluster_k : 0;
    if (cluster_opt < 0 || cluster_opt > 8 || (cluster_opt > 1 && d->cc_major < 9))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: cluster_k %d (2..8, sm_90+; device %d is "
                           "sm_%d%d)",
                           cluster_opt, dev, d->cc_major, d->cc_minor);

    /* The Hopper path (wgmma.mma_async.sp): forced, or the automatic rule */
    const int wg_opt = opts ? opts->wgmma : 0;
    const int wg_rows = opts ? opts->wg_rows : 0;
    const int wg_splits = opts ? opts->wg_splits : 0;
    if (wg_opt < 0 || wg_opt > 2 ||
        (wg_rows != 0 && wg_rows != 32 && wg_rows != 64 && wg_rows != 128) || wg_splits < 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: wgmma %d (0 auto, 1 never, 2 always), wg_rows %d "
                           "(0, 32, 64, 128), wg_splits %d (>= 0)",
                           wg_opt, wg_rows, wg_splits);
    bool use_wg = false;
    if (wg_opt == 2) {
        if (!marlin_gemm24_wgmma_built() || d->cc_major != 9)
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "marlin_gemm24: the wgmma path %s (device %d is sm_%d%d)",
                               marlin_gemm24_wgmma_built() ? "runs on sm_90 only"
                                                           : "is not in this build (build with "
                                                             "90 in CMAKE_CUDA_ARCHITECTURES)",
                               dev, d->cc_major, d->cc_minor);
        /* the rule's shape conditions (rows and GPU were checked above) */
        if (!marlin_gemm24_pick_wgmma(MARLIN_GEMM24_WGMMA_MIN_ROWS + 1, n, k, group, 9, 0))
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "marlin_gemm24: the wgmma path needs n %% 256 == 0 and a group "
                               "of -1 or a power of two (n = %lld, group %lld)",
                               (long long)n, (long long)group);
        use_wg = true;
    } else if (wg_opt == 0) {
        /* a caller who tunes the mma.sp kernels (configuration, occupancy,
         * depth, SMs, cluster) gets them */
        const bool mma_knobs = opts && (opts->config || opts->blocks_per_sm || opts->max_stages ||
                                        opts->sms || opts->cluster_k > 1);
        use_wg = !mma_knobs && marlin_gemm24_wgmma_built() &&
                 marlin_gemm24_pick_wgmma(m, n, k, group, d->cc_major, d->cc_minor);
    }
    if (use_wg) {
        mk_sparse_wg_args wa;
        memset(&wa, 0, sizeof wa);
        wa.A = A;
        wa.B = B;
        wa.meta = meta;
        wa.s = s;
        wa.C = C;
        wa.m = m;
        wa.n = n;
        wa.k = k;
        wa.group = group;
        /* the same counter area as the mma.sp kernels (zero at rest in
         * both), the partials after it */
        wa.counters = (int *)workspace;
        wa.counters_cap = counter_bytes(n) / sizeof(int);
        wa.partials = (char *)workspace + counter_bytes(n);
        wa.partials_cap = workspace_bytes - counter_bytes(n);
        wa.stream = stream;
        wa.pdl = pdl;
        wa.rows = wg_rows;
        wa.splits = wg_splits;
        return mk_sparse_wgmma_launch(&wa, dev, d, err);
    }

    int64_t done = 0;
    while (done < m) {
        /* one launch covers at most kMaxChunks chunks of 16*MB rows */
        const int64_t rest = m - done;
        Config cand[8];
        /* the cluster path: forced, or the automatic choice on sm_90
         * (configuration 3 first then) */
        int cluster = cluster_opt > 1 ? cluster_opt : 0;
        int first = forced;
        if (!cluster && cluster_opt == 0 && !forced && d->cc_major >= 9) {
            int cfg = 0;
            cluster = auto_cluster24(rest, n, k, group, d->sm_count, &cfg);
            if (cluster) first = cfg;
        }
        const int ncand = config_candidates(rest, n, k, first, cand);
        /* shared memory a block may have: the opt-in limit alone, or its
         * share of the SM (1 KB per block is reserved by the system); 256
         * bytes for the static variables */
        auto budget = [&](const Config &c, int b) -> int64_t {
            int64_t x = b == 1 ? d->smem_optin : d->smem_per_sm / b - 1024;
            if (x > d->smem_optin) x = d->smem_optin;
            return x - red_bytes(c) - 256;
        };
        Config c = cand[0];
        int bps = 1, stages = 0, ok = 0;
        for (int ci = 0; ci < ncand && !ok; ++ci) {
            c = cand[ci];
            if (!fits(c, n, k, group)) continue;
            const int sb = stage_bytes(c, grouped, group);
            /* blocks per SM: 2 for one 16-row block (the kernel is
             * compiled for it; faster in the sweep, even with a 2-stage
             * pipeline each) when each gets >= 2 stages */
            bps = c.mb == 1 ? 2 : 1;
            if (bps_opt > 0 && bps_opt < bps) bps = bps_opt;
            if (bps == 2 && budget(c, 2) / sb < 2) bps = 1;
            stages = (int)(budget(c, bps) / sb);
            if (stages > kMaxStages) stages = kMaxStages;
            if (opts && opts->max_stages > 0 && stages > opts->max_stages)
                stages = opts->max_stages;
            ok = stages >= 2;
        }
        if (!ok)
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "marlin_gemm24: no tile configuration for %lld "
                               "rows fits n = %lld, k = %lld, group %lld in "
                               "device %d's %lld bytes of shared memory",
                               (long long)rest, (long long)n, (long long)k,
                               (long long)group, dev,
                               (long long)d->smem_optin);
        const int sb = stage_bytes(c, grouped, group);
        const int rb = red_bytes(c);
        const int64_t chunk_rows = 16 * c.mb;
        int64_t rows = rest;
        if (rows > kMaxChunks * chunk_rows) rows = kMaxChunks * chunk_rows;
        KernelFn fn = cluster ? cluster_kernel_for(c, grouped) : kernel_for(c, grouped);
        if (!fn && cluster)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "marlin_gemm24: the cluster path runs 16-row chunks with "
                               "configuration 3 or 4 (this call: %lld rows, config %d)",
                               (long long)rest, c.id);
        if (!fn)
            return marlin_fail(err, MARLIN_ERR_INTERNAL,
                               "marlin_gemm24: no kernel for config %d, mb=%d",
                               c.id, c.mb);
        if (cluster && cluster > k / k_tile(c))
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "marlin_gemm24: cluster_k %d exceeds the %lld k tiles of a slice",
                               cluster, (long long)(k / k_tile(c)));
        if (cluster) {
            /* the receive area instead of a deeper pipeline */
            const int64_t room = (bps == 2 ? d->smem_per_sm / 2 - 1024 : d->smem_optin) - rb -
                                 256 - cluster_recv_bytes(c);
            if (room / sb < stages) stages = (int)(room / sb);
            if (stages < 2)
                return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                                   "marlin_gemm24: the cluster path's receive area leaves no "
                                   "room for 2 stages (config %d)",
                                   c.id);
        }
        const int smem = stages * sb + rb + (cluster ? cluster_recv_bytes(c) : 0);
        cudaError_t ce = ensure_smem(fn, dev, smem);
        if (ce != cudaSuccess)
            return marlin_fail(err, MARLIN_ERR_CUDA,
                               "cudaFuncSetAttribute(%d bytes): %s", smem,
                               cudaGetErrorString(ce));
        Params p;
        memset(&p, 0, sizeof p);
        p.A = (const int4 *)A + (size_t)done * (size_t)(k / 8);
        p.B = (const int4 *)B;
        p.meta = (const int4 *)meta;
        p.s = (const int4 *)s;
        p.C = (int4 *)C + (size_t)done * (size_t)(n / 8);
        p.counters = (int *)workspace;
        p.partials = (float4 *)((char *)workspace + counter_bytes(n));
        p.m = (int)rows;
        p.n = (int)n;
        p.k = (int)k;
        const int kt = k_tile(c);
        p.ktiles = (int)(k / kt);
        p.chunks = (int)((rows + chunk_rows - 1) / chunk_rows);
        const int64_t nslices = n / n_tile(c);
        const long long units = (long long)p.chunks * nslices * p.ktiles;
        long long grid = (long long)sms * bps;
        if (grid > units) grid = units;
        if (cluster) grid = (long long)p.chunks * nslices * cluster; /* a cluster per slice */
        if (units * grid >= INT32_MAX)
            return marlin_fail(err, MARLIN_ERR_SHAPE,
                               "marlin_gemm24: %lld units on %lld blocks "
                               "overflow the 32-bit unit arithmetic",
                               units, grid);
        p.units = (int)units;
        p.stages = stages;
        p.stage_i4 = sb / 16;
        p.s_rows = scale_rows(c, grouped, group);
        p.g_step = 1;
        p.g_every = 1;
        p.s_shift = 8; /* kb >> 8 == 0: one scale row per stage */
        if (grouped) {
            if (group < kt) {
                /* group 32, 64, 128 or 256 below the k tile (powers of 2) */
                int sh = 0;
                while ((32 << sh) < group) ++sh;
                p.s_shift = sh;
                p.g_step = (int)(kt / group);
            } else {
                p.g_every = (int)(group / kt);
            }
        }
        p.pdl = pdl;
        p.evict_first = p.chunks == 1;
        p.cluster_k = cluster;
        if (pdl || cluster) {
            /* Programmatic dependent launch: the kernel may start while
             * the previous kernel of the stream finishes; it waits for it
             * (all its writes visible) before touching A, C or the
             * workspace. */
            cudaLaunchConfig_t cfg;
            cudaLaunchAttribute attr[2];
            mk_launch_config(&cfg, attr, (unsigned)grid, kThreads, (size_t)smem, stream, pdl,
                             cluster);
            if (cluster && !cluster_checked(fn, dev, cluster, smem)) {
                st = mk_cluster_fits((const void *)fn, &cfg, cluster, dev, "marlin_gemm24",
                                     err);
                if (st != MARLIN_OK) return st;
                cluster_checked_set(fn, dev, cluster, smem);
            }
            ce = cudaLaunchKernelEx(&cfg, fn, p);
        } else {
            fn<<<(unsigned)grid, kThreads, smem, (cudaStream_t)stream>>>(p);
            ce = cudaGetLastError();
        }
        if (ce == cudaSuccess) ce = cudaGetLastError();
        if (ce != cudaSuccess)
            return marlin_fail(err, MARLIN_ERR_CUDA,
                               "marlin_gemm24 launch (config %d, %d stages, "
                               "%d per SM, grid %lld): %s",
                               c.id, stages, bps, grid,
                               cudaGetErrorString(ce));
        done += rows;
    }
    return MARLIN_OK;
}
