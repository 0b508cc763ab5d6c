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
 * Work split: a persistent grid (one block per SM) walks the tiles
 * (m chunk, n slice, k tile) in k-fastest order, each block a contiguous
 * balanced range ("stream-K"). The cp.async pipeline runs across slice
 * boundaries. A block that covers a whole slice writes C directly; partial
 * slices are stored as fp32 to the workspace, and the last block to arrive
 * (atomic counter) sums all parts in block order (deterministic) and writes
 * C. Weights, meta and scales are streamed with an L2 evict-first policy
 * (read exactly once); activations use the default policy (re-read by every
 * n slice, so they should stay in L2).
 */
#include "marlin_kernels24.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

namespace {

constexpr int kThreads = 256; /* 8 warps: 2 per scheduler for latency hiding */
constexpr int kMaxStages = 16;
constexpr int kMaxChunks = 16; /* 64-row chunks per launch (<= 1024 rows) */

/* ------------------------------------------------------------------ PTX */

/* 16-byte async global->shared copy through L2 only (.cg); src_bytes 0
 * zero-fills the destination without reading (rows beyond m). */
__device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem,
                                                 bool valid) {
    uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s),
                 "l"(gmem), "r"(n));
}

/* Same with an L2 cache policy: weights are read exactly once, so they must
 * not evict the activations that every n slice re-reads. */
__device__ __forceinline__ void cp_async16_policy(void *smem, const void *gmem,
                                                  uint64_t policy) {
    uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile(
        "cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(
            s),
        "l"(gmem), "l"(policy));
}

__device__ __forceinline__ uint64_t evict_first_policy() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n"
                 : "=l"(p));
    return p;
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

/* wait_group needs an immediate; the pipeline depth is a run-time value
 * (it depends on the device's shared memory), hence the switch. */
__device__ __forceinline__ void cp_async_wait_pending(int n) {
    switch (n) {
    case 0: asm volatile("cp.async.wait_group 0;\n" ::); break;
    case 1: asm volatile("cp.async.wait_group 1;\n" ::); break;
    case 2: asm volatile("cp.async.wait_group 2;\n" ::); break;
    case 3: asm volatile("cp.async.wait_group 3;\n" ::); break;
    case 4: asm volatile("cp.async.wait_group 4;\n" ::); break;
    case 5: asm volatile("cp.async.wait_group 5;\n" ::); break;
    case 6: asm volatile("cp.async.wait_group 6;\n" ::); break;
    case 7: asm volatile("cp.async.wait_group 7;\n" ::); break;
    case 8: asm volatile("cp.async.wait_group 8;\n" ::); break;
    case 9: asm volatile("cp.async.wait_group 9;\n" ::); break;
    case 10: asm volatile("cp.async.wait_group 10;\n" ::); break;
    case 11: asm volatile("cp.async.wait_group 11;\n" ::); break;
    case 12: asm volatile("cp.async.wait_group 12;\n" ::); break;
    case 13: asm volatile("cp.async.wait_group 13;\n" ::); break;
    default: asm volatile("cp.async.wait_group 14;\n" ::); break;
    }
}

/* Four 8x8 b16 matrices from shared memory: lane 8i + r gives the address of
 * row r of matrix i; register i of lane L receives row L/4, elements
 * 2(L%4), 2(L%4)+1 of matrix i - the mma B fragment of 8 batch rows. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
    uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(p));
    asm volatile(
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
        : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
        : "r"(s));
}

/* (a & b) | c in one LOP3 (the compiler does not always find it). */
__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b,
                                                uint32_t c) {
    uint32_t d;
    asm volatile("lop3.b32 %0, %1, %2, %3, %4;\n"
                 : "=r"(d)
                 : "r"(a), "r"(b), "r"(c), "n"((0xf0 & 0xcc) | 0xaa));
    return d;
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) {
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ __forceinline__ __half2 bits_h2(uint32_t u) {
    return *reinterpret_cast<__half2 *>(&u);
}

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

/* ------------------------------------------------ Hopper bulk copies (TMA) */
/* Optional loader (marlin_gemm24_opts.loader = 2, sm_90+): the weights,
 * metadata and scales of a stage are moved by the tensor memory accelerator
 * (cp.async.bulk: a few large copies completing on an mbarrier) instead of
 * one 16-byte cp.async per thread. Added when the kernel's speed did not
 * change with pipeline depth; correct, but measured slower on an H100 (the
 * limit is the per-stage instruction latency, not the copies: docs/perf.md,
 * "2:4 sparse kernel"), so it is not the default. */

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MARLIN24_TMA 1
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(
                     smem_u32(bar)),
                 "r"(count));
}
/* One arrival that also announces `bytes` of incoming copies. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t *bar,
                                                      uint32_t bytes) {
    asm volatile(
        "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
            smem_u32(bar)),
        "r"(bytes)
        : "memory");
}
/* Waits for the phase of parity `parity` to complete. Bounded: a lost copy
 * traps (a launch error) instead of hanging the GPU. */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
    const uint32_t a = smem_u32(bar);
    for (uint32_t spins = 0;; ++spins) {
        uint32_t done;
        asm volatile(
            "{\n .reg .pred p;\n"
            " mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            " selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(a), "r"(parity)
            : "memory");
        if (done) return;
        if (spins > (1u << 26)) __trap();
    }
}
/* global -> shared bulk copy of `bytes` (multiple of 16, 16-byte aligned),
 * completing on `bar`, with an L2 policy. */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src,
                                          uint32_t bytes, uint64_t *bar,
                                          uint64_t policy) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes."
        "L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(smem_u32(dst)),
        "l"(src), "r"(bytes), "r"(smem_u32(bar)), "l"(policy)
        : "memory");
}
#endif

/* --------------------------------------------------------------- params */

struct Params {
    const int4 *A;     /* fp16 [m, k] row-major, this launch's first row */
    const int4 *B;     /* I32 [k/32, 2n] */
    const int4 *meta;  /* I16 [k/32, 2n] */
    const int4 *s;     /* F16 [G, n] */
    int4 *C;           /* fp16 [m, n] row-major, this launch's first row */
    int *counters;     /* [chunks * nslices], zero on entry and exit */
    float4 *partials;  /* [2 * gridDim.x][MB*8*NW*32] float4 */
    int m;             /* rows of this launch */
    int n, k;
    int group;         /* group size in k, or 0 for per-channel (G == 1) */
    int ktiles;        /* k / k_tile */
    int nslices;       /* n / n_tile */
    int chunks;        /* ceil(m / (16*MB)) */
    int tiles;         /* chunks * nslices * ktiles */
    int stages;
    int use_tma;       /* weights/meta/scales by bulk copy (sm_90+) */
};

/* Block b of G owns tiles [b*T/G, (b+1)*T/G) (the host keeps T * G below
 * 2^31, so 32-bit arithmetic is exact). */
__device__ __forceinline__ int tile_start(int b, int T, int G) {
    return (int)((unsigned)b * (unsigned)T / (unsigned)G);
}
/* The block whose range holds tile x (the largest b with start(b) <= x). */
__device__ __forceinline__ int tile_owner(int x, int T, int G) {
    return (int)(((unsigned)(x + 1) * (unsigned)G + (unsigned)T - 1) /
                 (unsigned)T) - 1;
}

/* Shared-memory sizes, all in bytes. */
template <int MB, int NW, int KW, int KP, bool GROUPED>
struct Layout {
    static constexpr int kBlocks = KW * KP;        /* 32-row k blocks */
    static constexpr int kTile = 32 * kBlocks;     /* dense k per stage */
    static constexpr int nTile = 64 * NW;          /* output features */
    static constexpr int aRowInt4 = kTile / 8;     /* int4 per A row */
    static constexpr int aBytes = 16 * MB * kTile * 2;
    static constexpr int bRowBytes = NW * 512;     /* one k block */
    static constexpr int bBytes = kBlocks * bRowBytes;
    static constexpr int metaRowBytes = NW * 256;
    static constexpr int metaBytes = kBlocks * metaRowBytes;
    /* grouped: up to one scale row per 32-row k block */
    static constexpr int sBytes = GROUPED ? kBlocks * nTile * 2 : 0;
    static constexpr int stageBytes = aBytes + bBytes + metaBytes + sBytes;
    static constexpr int partFloat4 = MB * 8 * NW * 32; /* per slot */
};

/*
 * Template parameters:
 *   MB      16-row batch blocks per chunk (1, 2 or 4)
 *   NW      warps along n; each owns 64 output features (n_tile = 64*NW)
 *   KW      warps along k (NW * KW = 8 warps)
 *   KP      32-row dense k blocks per warp per stage (k_tile = 32*KW*KP):
 *           more bytes per pipeline step, fewer barriers per byte
 *   GROUPED scales multiply the weights per k group (G > 1); otherwise one
 *           scale per column, applied to the fp32 sums in the epilogue
 */
template <int MB, int NW, int KW, int KP, bool GROUPED>
__global__ void __launch_bounds__(kThreads, 1) marlin24_kernel(Params p) {
    static_assert(NW * KW == kThreads / 32, "8 warps");
    using L = Layout<MB, NW, KW, KP, GROUPED>;
    extern __shared__ int4 smem[];
    __shared__ int last_flag;
#ifdef MARLIN24_TMA
    __shared__ __align__(8) uint64_t full_bar[kMaxStages];
#endif

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wn = warp % NW;  /* 64-column block of this warp */
    const int wk = warp / NW;  /* k blocks wk*KP .. wk*KP+KP-1 of a stage */
    const int g = lane >> 2;
    const int t4 = lane & 3;

    const int T = p.tiles;
    const int G = gridDim.x;
    const int t0 = tile_start(blockIdx.x, T, G);
    const int t1 = tile_start(blockIdx.x + 1, T, G);
    if (t0 >= t1) return;

    const int S = p.stages;
    const int n_int4_B = p.n / 2;    /* B row: 2n words */
    const int n_int4_meta = p.n / 4; /* meta row: 2n int16 */
    const int n_int4_s = p.n / 8;
    const int k_int4 = p.k / 8;
    const uint64_t policy = evict_first_policy();
    /* grouped: scale rows per stage, and the row of each k block */
    const int srows = GROUPED ? (p.group < L::kTile ? L::kTile / p.group : 1)
                              : 0;

    char *const base = reinterpret_cast<char *>(smem);
    float4 *const red =
        reinterpret_cast<float4 *>(base + (size_t)S * L::stageBytes);

    /* Activation rows beyond m are never loaded; zero them once in every
     * stage so that no uninitialised value reaches the tensor cores (they
     * only feed output rows that are not stored). */
    for (int i = tid; i < S * (L::aBytes / 16); i += kThreads) {
        const int st = i / (L::aBytes / 16);
        const int off = i % (L::aBytes / 16);
        reinterpret_cast<int4 *>(base + (size_t)st * L::stageBytes)[off] =
            make_int4(0, 0, 0, 0);
    }
#ifndef MARLIN24_TMA
    if (p.use_tma) __trap(); /* the host never asks for it below sm_90 */
#else
    if (p.use_tma && tid == 0) {
        for (int i = 0; i < S; ++i) mbar_init(&full_bar[i], 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
#endif
    __syncthreads();

    /* ---- fetch one tile into pipeline slot `slot` ------------------- */
    auto fetch = [&](int slot, int t) {
        const int sl = t / p.ktiles;
        const int kt = t - sl * p.ktiles;
        /* chunks of one n slice are adjacent in the tile order, so the
         * blocks that read the same weights for different rows run close
         * together in time (a chance for L2 hits) */
        const int ns = sl / p.chunks;
        const int chunk = sl - ns * p.chunks;
        const int n0 = ns * L::nTile;
        const int k0 = kt * L::kTile;
        const int row0 = chunk * 16 * MB;
        char *st = base + (size_t)slot * L::stageBytes;
        int4 *sA = reinterpret_cast<int4 *>(st);
        int4 *sB = reinterpret_cast<int4 *>(st + L::aBytes);
        int4 *sM = reinterpret_cast<int4 *>(st + L::aBytes + L::bBytes);
        int4 *sS = reinterpret_cast<int4 *>(st + L::aBytes + L::bBytes +
                                            L::metaBytes);
        /* activations: valid rows only, XOR-swizzled 16-byte chunks so
         * that ldmatrix (8 rows, same chunk) is conflict free */
        const int rows = min(16 * MB, p.m - row0);
        const int a_int4 = rows * L::aRowInt4;
        for (int e = tid; e < a_int4; e += kThreads) {
            const int r = e / L::aRowInt4;
            const int c = e % L::aRowInt4;
            cp_async16_zfill(&sA[r * L::aRowInt4 + (c ^ (r & 7))],
                             p.A + (size_t)(row0 + r) * k_int4 + k0 / 8 + c,
                             true);
        }
        const int grp0 = GROUPED ? k0 / p.group : 0;
#ifdef MARLIN24_TMA
        if (p.use_tma) {
            /* warp 0: lane 0 announces the bytes, then one bulk copy per
             * lane: a B row, a meta row or a scale row of this tile */
            if (warp == 0) {
                const uint32_t bytes =
                    L::bBytes + L::metaBytes +
                    (GROUPED ? srows * L::nTile * 2 : 0);
                if (lane == 0) {
                    /* the slot was last read through the generic proxy */
                    asm volatile("fence.proxy.async.shared::cta;\n" ::
                                     : "memory");
                    mbar_arrive_expect_tx(&full_bar[slot], bytes);
                }
                __syncwarp();
                const int c = lane;
                if (c < L::kBlocks) {
                    bulk_copy(reinterpret_cast<char *>(sB) + c * L::bRowBytes,
                              p.B + (size_t)(kt * L::kBlocks + c) * n_int4_B +
                                  (n0 / 64) * 32,
                              L::bRowBytes, &full_bar[slot], policy);
                } else if (c < 2 * L::kBlocks) {
                    const int kb = c - L::kBlocks;
                    bulk_copy(reinterpret_cast<char *>(sM) +
                                  kb * L::metaRowBytes,
                              p.meta + (size_t)(kt * L::kBlocks + kb) *
                                           n_int4_meta +
                                  (n0 / 64) * 16,
                              L::metaRowBytes, &full_bar[slot], policy);
                } else if (GROUPED && c < 2 * L::kBlocks + srows) {
                    const int r = c - 2 * L::kBlocks;
                    bulk_copy(reinterpret_cast<char *>(sS) + r * L::nTile * 2,
                              p.s + (size_t)(grp0 + r) * n_int4_s + n0 / 8,
                              L::nTile * 2, &full_bar[slot], policy);
                }
            }
            return;
        }
#endif
        /* weights: (kb, cb) blocks of 512 contiguous bytes */
#pragma unroll
        for (int i = 0; i < KP; ++i) {
            const int e = tid + i * kThreads;
            const int kb = e / (NW * 32);
            const int cb = (e / 32) % NW;
            const int4 *src = p.B + (size_t)(kt * L::kBlocks + kb) * n_int4_B +
                              (n0 / 64 + cb) * 32 + lane;
            cp_async16_policy(&sB[e], src, policy);
        }
        /* metadata: (kb, cb) blocks of 256 bytes */
        for (int e = tid; e < L::kBlocks * NW * 16; e += kThreads) {
            const int kb = e / (NW * 16);
            const int cb = (e / 16) % NW;
            const int i = e % 16;
            const int4 *src = p.meta +
                              (size_t)(kt * L::kBlocks + kb) * n_int4_meta +
                              (n0 / 64 + cb) * 16 + i;
            cp_async16_policy(&sM[e], src, policy);
        }
        if (GROUPED) {
            /* scale rows covering this k tile: one when the group spans the
             * tile, kTile/group otherwise */
            if (tid < srows * (L::nTile / 8)) {
                const int r = tid / (L::nTile / 8);
                const int c = tid % (L::nTile / 8);
                const int4 *src =
                    p.s + (size_t)(grp0 + r) * n_int4_s + n0 / 8 + c;
                cp_async16_policy(&sS[tid], src, policy);
            }
        }
    };

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

    /* ---- the warp's k blocks: 4 subtiles x MB x 2 batch halves each - */
    auto compute = [&](int slot) {
        const char *st = base + (size_t)slot * L::stageBytes;
        const int4 *sA = reinterpret_cast<const int4 *>(st);
        const int4 *sB = reinterpret_cast<const int4 *>(st + L::aBytes);
        const uint32_t *sM = reinterpret_cast<const uint32_t *>(
            st + L::aBytes + L::bBytes);
        const int4 *sS = reinterpret_cast<const int4 *>(
            st + L::aBytes + L::bBytes + L::metaBytes);
#pragma unroll
        for (int kp = 0; kp < KP; ++kp) {
            const int kb = wk * KP + kp; /* k block inside the stage */
            const int4 bq = sB[(kb * NW + wn) * 32 + lane];
            const uint32_t *mw = sM + (kb * NW + wn) * 64;
            const uint32_t meta0 = mw[lane];
            const uint32_t meta1 = mw[32 + lane];
            int4 sc = make_int4(0, 0, 0, 0);
            if (GROUPED) {
                const int srow = p.group < L::kTile ? (32 * kb) / p.group : 0;
                sc = sS[srow * (L::nTile / 8) + 8 * wn + g];
            }
            const uint32_t words[4] = {(uint32_t)bq.x, (uint32_t)bq.y,
                                       (uint32_t)bq.z, (uint32_t)bq.w};
            const uint32_t sw[4] = {(uint32_t)sc.x, (uint32_t)sc.y,
                                    (uint32_t)sc.z, (uint32_t)sc.w};
            /* the 4 subtiles' A operands first (16 registers), so that only
             * one 16-row block of activation fragments is live at a time */
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
#pragma unroll
            for (int a = 0; a < MB; ++a) {
                uint32_t bf[2][4];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int r = 16 * a + 8 * h + (lane & 7);
                    const int c = 4 * kb + (lane >> 3);
                    ldmatrix_x4(bf[h], &sA[r * L::aRowInt4 + (c ^ (r & 7))]);
                }
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

    /* ---- C store of the finished sums of (chunk, slice) ------------- */
    auto write_c = [&](int chunk, int n0) {
        float sv[8];
#pragma unroll
        for (int f = 0; f < 8; ++f) sv[f] = 1.f;
        const int col = n0 + 64 * wn + 8 * g; /* first of 8 features */
        if (!GROUPED) {
            const int4 raw = __ldg(p.s + col / 8);
            const __half *hs = reinterpret_cast<const __half *>(&raw);
#pragma unroll
            for (int f = 0; f < 8; ++f) sv[f] = __half2float(hs[f]);
        }
#pragma unroll
        for (int a = 0; a < MB; ++a)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int y = 0; y < 2; ++y) {
                    const int row = chunk * 16 * MB + 16 * a + 8 * h + 2 * t4 + y;
                    if (row < p.m) {
                        /* feature f = j + 4x lives in acc[a][j][h][2x+y] */
                        uint32_t o[4];
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            const int f0 = 2 * q, f1 = 2 * q + 1;
                            const float v0 =
                                acc[a][f0 & 3][h][2 * (f0 >> 2) + y] * sv[f0];
                            const float v1 =
                                acc[a][f1 & 3][h][2 * (f1 >> 2) + y] * sv[f1];
                            o[q] = h2_bits(__floats2half2_rn(v0, v1));
                        }
                        p.C[(size_t)row * (p.n / 8) + col / 8] =
                            make_int4((int)o[0], (int)o[1], (int)o[2],
                                      (int)o[3]);
                    }
                }
    };

    /* ---- end of a slice segment: reduce, then write or hand over ---- */
    auto finish = [&](int sl, bool block_first_segment) {
        const int ns = sl / p.chunks;
        const int chunk = sl - ns * p.chunks;
        const int n0 = ns * L::nTile;
        /* 1. k-split warps of this block: fixed order wk = 0, 1, ... */
        if (KW > 1) {
#pragma unroll
            for (int a = 0; a < MB; ++a) {
                if (wk > 0) {
#pragma unroll
                    for (int j = 0; j < 4; ++j)
#pragma unroll
                        for (int h = 0; h < 2; ++h)
                            red[((wk - 1) * NW + wn) * 256 + (j * 2 + h) * 32 +
                                lane] = make_float4(
                                acc[a][j][h][0], acc[a][j][h][1],
                                acc[a][j][h][2], acc[a][j][h][3]);
                }
                __syncthreads();
                if (wk == 0) {
#pragma unroll
                    for (int w = 1; w < KW; ++w)
#pragma unroll
                        for (int j = 0; j < 4; ++j)
#pragma unroll
                            for (int h = 0; h < 2; ++h) {
                                const float4 v =
                                    red[((w - 1) * NW + wn) * 256 +
                                        (j * 2 + h) * 32 + lane];
                                acc[a][j][h][0] += v.x;
                                acc[a][j][h][1] += v.y;
                                acc[a][j][h][2] += v.z;
                                acc[a][j][h][3] += v.w;
                            }
                }
                __syncthreads();
            }
        }
        /* 2. whole slice in this block: write; else fp32 fix-up */
        const int first_b = tile_owner(sl * p.ktiles, T, G);
        const int last_b = tile_owner(sl * p.ktiles + p.ktiles - 1, T, G);
        if (first_b == last_b) {
            if (wk == 0) write_c(chunk, n0);
            return;
        }
        const int my_slot = 2 * blockIdx.x + (block_first_segment ? 0 : 1);
        if (wk == 0) {
            float4 *dst = p.partials + (size_t)my_slot * L::partFloat4;
#pragma unroll
            for (int a = 0; a < MB; ++a)
#pragma unroll
                for (int j = 0; j < 4; ++j)
#pragma unroll
                    for (int h = 0; h < 2; ++h)
                        __stcg(&dst[((a * 8) + j * 2 + h) * NW * 32 + wn * 32 +
                                    lane],
                               make_float4(acc[a][j][h][0], acc[a][j][h][1],
                                           acc[a][j][h][2], acc[a][j][h][3]));
        }
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            const int nparts = (int)(last_b - first_b + 1);
            const int prev = atomicAdd(&p.counters[sl], 1);
            last_flag = prev == nparts - 1;
            if (last_flag) {
                /* every part has arrived: leave the counter zeroed for the
                 * next launch */
                p.counters[sl] = 0;
                __threadfence();
            }
        }
        __syncthreads();
        if (!last_flag) return;
        if (wk == 0) {
            zero_acc();
            for (int b = first_b; b <= last_b; ++b) {
                const int bs = tile_start(b, T, G);
                const int slot = 2 * b + (bs / p.ktiles == sl ? 0 : 1);
                const float4 *srcp = p.partials + (size_t)slot * L::partFloat4;
#pragma unroll
                for (int a = 0; a < MB; ++a)
#pragma unroll
                    for (int j = 0; j < 4; ++j)
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const float4 v = __ldcg(
                                &srcp[((a * 8) + j * 2 + h) * NW * 32 +
                                      wn * 32 + lane]);
                            acc[a][j][h][0] += v.x;
                            acc[a][j][h][1] += v.y;
                            acc[a][j][h][2] += v.z;
                            acc[a][j][h][3] += v.w;
                        }
            }
            write_c(chunk, n0);
        }
    };

    /* ---- main loop: one continuous pipeline over the block's tiles -- */
#pragma unroll 1
    for (int i = 0; i < S - 1; ++i) {
        if (t0 + i < t1) fetch(i, t0 + i);
        cp_async_commit();
    }
    zero_acc();
    const int first_slice = t0 / p.ktiles;
    int slot = 0;
    int fill = S - 1;
    uint32_t parity = 0; /* phase parity of `slot`'s barrier */
    (void)parity;
#pragma unroll 1
    for (int t = t0; t < t1; ++t) {
        cp_async_wait_pending(S - 2);
#ifdef MARLIN24_TMA
        if (p.use_tma) mbar_wait(&full_bar[slot], parity);
#endif
        __syncthreads();
        /* the slot computed last iteration is free for the newest tile */
        const int tn = t + S - 1;
        if (tn < t1) fetch(fill, tn);
        cp_async_commit();
        compute(slot);
        if (slot + 1 == S) {
            slot = 0;
            parity ^= 1u;
        } else {
            ++slot;
        }
        fill = fill + 1 == S ? 0 : fill + 1;
        const int sl = t / p.ktiles;
        if (t - sl * p.ktiles == p.ktiles - 1 || t == t1 - 1) {
            finish(sl, sl == first_slice);
            zero_acc();
        }
    }
    cp_async_wait_pending(0);
}

/* ------------------------------------------------------------ host side */

struct Config {
    int id; /* as in marlin_gemm24_opts.config */
    int mb; /* 16-row blocks per chunk */
    int nw; /* warps along n */
    int kw; /* warps along k */
    int kp; /* k blocks per warp per stage */
};

typedef void (*KernelFn)(Params);

template <int MB, int NW, int KW, int KP>
KernelFn pick_grouped(bool grouped) {
    return grouped ? marlin24_kernel<MB, NW, KW, KP, true>
                   : marlin24_kernel<MB, NW, KW, KP, false>;
}

/* The instantiated configurations (keep this list short: CI compiles it for
 * four architectures on two cores): 128 x 128 and 256 x 64 (columns x k per
 * stage) for 16, 32 and 64 rows; 128 x 256 and 256 x 128 for 16 rows. */
KernelFn kernel_for(const Config &c, bool grouped) {
    if (c.nw == 2 && c.kw == 4 && c.kp == 1) {
        switch (c.mb) {
        case 1: return pick_grouped<1, 2, 4, 1>(grouped);
        case 2: return pick_grouped<2, 2, 4, 1>(grouped);
        case 4: return pick_grouped<4, 2, 4, 1>(grouped);
        }
    } else if (c.nw == 4 && c.kw == 2 && c.kp == 1) {
        switch (c.mb) {
        case 1: return pick_grouped<1, 4, 2, 1>(grouped);
        case 2: return pick_grouped<2, 4, 2, 1>(grouped);
        case 4: return pick_grouped<4, 4, 2, 1>(grouped);
        }
    } else if (c.mb == 1 && c.kp == 2) {
        if (c.nw == 2 && c.kw == 4) return pick_grouped<1, 2, 4, 2>(grouped);
        if (c.nw == 4 && c.kw == 2) return pick_grouped<1, 4, 2, 2>(grouped);
    }
    return nullptr;
}

int k_tile(const Config &c) { return 32 * c.kw * c.kp; }
int stage_bytes(const Config &c, bool grouped) {
    const int kb = c.kw * c.kp;
    const int a = 16 * c.mb * 32 * kb * 2;
    const int s = grouped ? kb * 64 * c.nw * 2 : 0;
    return a + kb * c.nw * 512 + kb * c.nw * 256 + s;
}
int red_bytes(const Config &c) { return (c.kw - 1) * c.nw * 8 * 32 * 16; }
size_t part_slot_bytes(const Config &c) {
    return (size_t)c.mb * 8 * c.nw * 32 * 16;
}

int mb_for_rows(int64_t m) { return m <= 16 ? 1 : m <= 32 ? 2 : 4; }

/* A configuration fits when its tiles divide n and k and a group never
 * straddles a stage (groups of 32 or 64 rows, or a multiple of the k tile). */
bool fits(const Config &c, int64_t n, int64_t k, int64_t group) {
    const int kt = k_tile(c);
    if (n % (64 * c.nw) != 0 || k % kt != 0) return false;
    if (group != -1 && group < k && group > 64 && group % kt != 0 &&
        kt % group != 0)
        return false;
    return true;
}

/* Configuration for `m` rows (forced: marlin_gemm24_opts.config; a forced
 * configuration that does not fit falls back to the automatic choice).
 * Automatic, from the H100 sweep in docs/perf.md: 16 rows or fewer take the
 * 128 x 256 stage (the most bytes per pipeline step: fastest on every
 * Llama layer shape measured); more rows take 256-column tiles (every
 * weight fetched once feeds more MMAs), or 128 x 128 when n % 256 != 0. */
Config choose_config(int64_t m, int64_t n, int64_t k, int64_t group,
                     int forced) {
    const int mb = mb_for_rows(m);
    const Config c1 = {1, mb, 2, 4, 1}, c2 = {2, mb, 4, 2, 1};
    const Config c3 = {3, 1, 2, 4, 2}, c4 = {4, 1, 4, 2, 2};
    if (forced == 1) return c1;
    if (forced == 2 && fits(c2, n, k, group)) return c2;
    if (forced == 3 && mb == 1 && fits(c3, n, k, group)) return c3;
    if (forced == 4 && mb == 1 && fits(c4, n, k, group)) return c4;
    if (mb == 1) {
        if (fits(c3, n, k, group)) return c3;
        return c1;
    }
    if (fits(c2, n, k, group)) return c2;
    return c1;
}

struct DevCache {
    int valid;
    int sms, major, minor, smem_optin;
};
DevCache g_dev[64];

marlin_status device_facts(int *dev, DevCache *out, marlin_error *err) {
    cudaError_t ce = cudaGetDevice(dev);
    if (ce != cudaSuccess)
        return marlin_fail(err, MARLIN_ERR_NO_DEVICE, "cudaGetDevice: %s",
                           cudaGetErrorString(ce));
    if (*dev >= 0 && *dev < 64 && g_dev[*dev].valid) {
        *out = g_dev[*dev];
        return MARLIN_OK;
    }
    DevCache d = {1, 0, 0, 0, 0};
    if ((ce = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount,
                                     *dev)) != cudaSuccess ||
        (ce = cudaDeviceGetAttribute(&d.major,
                                     cudaDevAttrComputeCapabilityMajor,
                                     *dev)) != cudaSuccess ||
        (ce = cudaDeviceGetAttribute(&d.minor,
                                     cudaDevAttrComputeCapabilityMinor,
                                     *dev)) != cudaSuccess ||
        (ce = cudaDeviceGetAttribute(&d.smem_optin,
                                     cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                     *dev)) != cudaSuccess)
        return marlin_fail(err, MARLIN_ERR_CUDA,
                           "cudaDeviceGetAttribute(device %d): %s", *dev,
                           cudaGetErrorString(ce));
    if (*dev >= 0 && *dev < 64) g_dev[*dev] = d;
    *out = d;
    return MARLIN_OK;
}

size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* The bulk-copy loader exists only in the sm_90+ machine code of a kernel;
 * a build without sm_90 code running on a Hopper part must not ask for it.
 * Cached per kernel (a handful of entries; a race only repeats the query). */
struct BinCache {
    KernelFn fn;
    int version;
};
BinCache g_bin[64];

int binary_version(KernelFn fn) {
    for (int i = 0; i < 64; ++i) {
        if (g_bin[i].fn == fn) return g_bin[i].version;
        if (!g_bin[i].fn) {
            cudaFuncAttributes a;
            if (cudaFuncGetAttributes(&a, (const void *)fn) != cudaSuccess)
                return 0;
            g_bin[i].version = a.binaryVersion;
            g_bin[i].fn = fn;
            return a.binaryVersion;
        }
    }
    return 0;
}

/* Counters for kMaxChunks chunks of every n slice (n_tile >= 128). */
size_t counter_bytes(int64_t n) {
    return align256((size_t)kMaxChunks * (size_t)(n / 128) * sizeof(int));
}

} /* namespace */

/* ================================================================ API */

extern "C" marlin_status marlin_gemm24_device(marlin24_device_info *info,
                                              marlin_error *err) {
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0)
        return marlin_fail(err, MARLIN_ERR_NO_DEVICE, "no CUDA device: %s",
                           ce != cudaSuccess ? cudaGetErrorString(ce)
                                             : "device count is 0");
    int dev = 0;
    DevCache d;
    marlin_status st = device_facts(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    if (info) {
        memset(info, 0, sizeof *info);
        info->device = dev;
        info->sm_count = d.sms;
        info->cc_major = d.major;
        info->cc_minor = d.minor;
        info->smem_optin = d.smem_optin;
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
            strncpy(info->name, prop.name, sizeof info->name - 1);
        }
    }
    if (d.major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "device %d has compute capability %d.%d; the 2:4 "
                           "kernel needs 8.0+ (mma.sp, cp.async)",
                           dev, d.major, d.minor);
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
    DevCache d;
    marlin_status st = device_facts(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    /* the largest partial slot any configuration picks for <= m rows */
    const int mb = mb_for_rows(m > 1024 ? 1024 : m);
    const Config c1 = {1, mb, 2, 4, 1}, c2 = {2, mb, 4, 2, 1};
    size_t slot = part_slot_bytes(c1);
    if (part_slot_bytes(c2) > slot) slot = part_slot_bytes(c2);
    *bytes = counter_bytes(n) + 2 * (size_t)d.sms * slot;
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
    /* int offsets inside the kernel: the largest is a B/meta int4 index */
    if ((k / 32) * (n / 2) > INT32_MAX / 2 || k * 2 > INT32_MAX / 2 ||
        n > INT32_MAX / 2)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin_gemm24: n = %lld, k = %lld too large",
                           (long long)n, (long long)k);
    int dev;
    DevCache d;
    st = device_facts(&dev, &d, err);
    if (st != MARLIN_OK) return st;
    if (d.major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "marlin_gemm24: device %d is sm_%d%d; need sm_80+",
                           dev, d.major, d.minor);
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
    const int loader = opts ? opts->loader : 0;
    if (loader == 2 && d.major < 9)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "marlin_gemm24: bulk-copy loader needs sm_90+, "
                           "device %d is sm_%d%d",
                           dev, d.major, d.minor);
    /* Automatic loader: per-thread cp.async. The bulk-copy (TMA) loader is
     * correct but measured slower on an H100 in every configuration (see
     * docs/perf.md, "2:4 sparse kernel"), so it is opt-in. */
    const int use_tma = loader == 2;
    int sms = d.sms;
    if (opts && opts->sms > 0 && opts->sms < sms) sms = opts->sms;
    const int64_t G = grouped ? k / group : 1;
    (void)G;

    int64_t done = 0;
    while (done < m) {
        /* one launch covers at most kMaxChunks chunks of 16*MB rows */
        const int64_t rest = m - done;
        Config c = choose_config(rest, n, k, group, forced);
        const int64_t chunk_rows = 16 * c.mb;
        int64_t rows = rest;
        if (rows > kMaxChunks * chunk_rows) rows = kMaxChunks * chunk_rows;
        KernelFn fn = kernel_for(c, grouped);
        if (!fn)
            return marlin_fail(err, MARLIN_ERR_INTERNAL,
                               "marlin_gemm24: no kernel for mb=%d nw=%d kw=%d "
                               "kp=%d",
                               c.mb, c.nw, c.kw, c.kp);
        const int sb = stage_bytes(c, grouped);
        const int rb = red_bytes(c);
        /* 1 KiB left for the static shared variables */
        int stages = (d.smem_optin - rb - 1024) / sb;
        if (stages > kMaxStages) stages = kMaxStages;
        if (opts && opts->max_stages > 0 && stages > opts->max_stages)
            stages = opts->max_stages;
        if (stages < 2)
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "marlin_gemm24: tile config %d (%d rows) needs "
                               "%d bytes of shared memory, device %d allows %d",
                               c.id, (int)chunk_rows, 2 * sb + rb, dev,
                               d.smem_optin);
        const int smem = stages * sb + rb;
        cudaError_t ce = cudaFuncSetAttribute(
            (const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
            smem);
        if (ce != cudaSuccess)
            return marlin_fail(err, MARLIN_ERR_CUDA,
                               "cudaFuncSetAttribute(%d bytes): %s", smem,
                               cudaGetErrorString(ce));
        Params p;
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
        p.group = grouped ? (int)group : 0;
        p.ktiles = (int)(k / k_tile(c));
        p.nslices = (int)(n / (64 * c.nw));
        p.chunks = (int)((rows + chunk_rows - 1) / chunk_rows);
        const long long tiles = (long long)p.chunks * p.nslices * p.ktiles;
        long long grid = sms;
        if (grid > tiles) grid = tiles;
        if (tiles * grid >= INT32_MAX)
            return marlin_fail(err, MARLIN_ERR_SHAPE,
                               "marlin_gemm24: %lld tiles on %lld blocks "
                               "overflow the 32-bit tile arithmetic",
                               tiles, grid);
        p.tiles = (int)tiles;
        p.stages = stages;
        p.use_tma = use_tma && binary_version(fn) >= 90;
        if (loader == 2 && !p.use_tma)
            return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                               "marlin_gemm24: bulk-copy loader requested but "
                               "this build has no sm_90 code");
        fn<<<(unsigned)grid, kThreads, smem, (cudaStream_t)stream>>>(p);
        ce = cudaGetLastError();
        if (ce != cudaSuccess)
            return marlin_fail(err, MARLIN_ERR_CUDA,
                               "marlin_gemm24 launch (config %d, %d stages, "
                               "grid %lld): %s",
                               c.id, stages, grid, cudaGetErrorString(ce));
        done += rows;
    }
    return MARLIN_OK;
}
