/*
 * marlin_dense_sm90a.cu - the Hopper path of the dense Marlin GEMM
 * (pipeline MARLIN_DENSE_PIPE_WGMMA): the same contract as marlin_dense.cu
 * (marlin_kernels.h section 2), computed with wgmma.mma_async instead of
 * mma.sync. Built for sm_90a only (CMake compiles this file by itself with
 * -gencode arch=compute_90a,code=sm_90a when the build targets sm_90): wgmma
 * exists on sm_90 parts only, not on older GPUs and not on later ones.
 *
 * Why a second kernel for the same contract. At 32+ rows the mma.sync
 * kernels are bound by issue and latency, not by memory (docs/perf.md: 0.71x
 * of cuBLAS FP16 at m = 128 on Llama-2-7B): every weight tile is decoded
 * once per 64-row chunk, and 64 rows of accumulators fill 255 registers.
 * One wgmma m64nNk16 does the work of 8*N/8 mma.m16n8k16 per warpgroup
 * asynchronously, so the warps only decode weights and feed it.
 *
 * The trick that makes it cheap: compute C^T = W^T A^T. The weights become
 * wgmma's A operand, which may come from REGISTERS: a warp's rows of the
 * 64 x 16 A tile are an mma.m16n8k16 A fragment, and the Marlin layout gives
 * each lane, per 32-bit word, exactly the B fragments of two n8 tiles of a
 * 16-column group (marlin-format.md 1.4/1.5), i.e. word j of a lane's int4
 * in a 16 x 64 slab decodes to the A fragment of output columns
 * 16j..16j+15 of that slab (rows g, g+8 = the two n8 tiles; k lo/hi pairs).
 * No shared-memory round trip for decoded weights, no layout change of the
 * packed checkpoint. The activations (A, row-major, k contiguous) are
 * wgmma's B operand as they are: K-major, in shared memory with the 128-byte
 * swizzle the descriptor names.
 *
 * Block: 256 threads = 2 warpgroups, 256 output columns (4 slabs of 64), NB
 * batch rows (32, 64 or 128; more rows run more row tiles). Warp w of
 * warpgroup g reads the int4 of slab 2g + (w & 1) and decodes its words
 * 2*(w >> 1) and 2*(w >> 1) + 1 into two wgmma A tiles, so each k16 step is
 * two m64nNk16 per warpgroup and each int4 is read by two warps (64 bits
 * each).
 * Pipeline: every thread issues 16-byte cp.async for A, B and the grouped
 * scales of a stage (64 deep: 128-deep stages for 128-row tiles measured
 * 10-15% slower on every Llama-2-7B/70B layer, run 15, and were removed);
 * stages - 2 stages are in flight while one
 * is computed. A stage's A fragments are all decoded first, its 4 k16
 * groups issued, and all retired by one wait_group 0 at its end (why: the
 * comment at the stage loop). 32- and
 * 64-row tiles run two blocks per SM (128 registers), which hides that
 * drain; 128-row tiles one. Every thread's cp.async of a stage arrive on
 * the stage's "full" mbarrier as they land. The 64- and 128-row kernels
 * (PP, "ping-pong") also replace the stage's block-wide barrier by
 * mbarriers: every thread arrives on its "empty" barrier after the stage's
 * wait, so a warpgroup waits only for data and for the buffer it refills,
 * the two warpgroups drift apart, and one decodes while the other's wgmma
 * run (session 4: 8-14% at 128 rows, 3-8% at 64).
 * k split: the k range of a tile may be cut into `splits` pieces (host rule:
 * one wave of resident blocks); pieces write fp32 partials and count
 * themselves on the tile's counter. With 3-16 pieces in one wave every
 * piece then waits for the count and adds its share of the tile's 8-row
 * groups over all pieces; otherwise the last to arrive adds them all.
 * Either way in split order (deterministic, the same bits), and the
 * counter is left at 0 (the workspace's zeroing rule). (An opt-in variant
 * that made the pieces one thread-block cluster adding in distributed
 * shared memory, never faster, was removed in session 4: its receive area
 * overlapped the stage buffers and racecheck flagged the cp.async writes
 * against the remote stores.)
 * Epilogue: fp32 sums (x per-channel scale) -> fp16 in shared memory, then
 * coalesced 16-byte rows of C.
 *
 * The 2:4 form (SPARSE, marlin_gemm24 on sm_90): the same kernel on the
 * Sparse-Marlin layout with wgmma.mma_async.sp m64nNk32. Per 32-bit word a
 * lane holds the compressed 16 x 16 A fragment of a 16-feature subtile
 * (features 8g + j and 8g + j + 4 of its 64-column block, MF 4.4), which
 * per warp is the sparse wgmma's register A operand (PTX ISA: fragments
 * and metadata of the sparse wgmma are per warp those of mma.sp.m16n8k32).
 * A stage is 2 k32 steps: B = 2 rows of compressed words (half the dense
 * bytes) and their metadata (MF 4.5: a lane's word holds subtiles 0-1 or
 * 2-3; the sparsity selector is the subtile's parity). Decode, pieces and
 * epilogue are shared; only the columns a fragment row maps to (fcol) and
 * the scale permutation differ.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

#include <atomic>

#include "marlin_cuda_internal.h"
#include "marlin_dense_tiles.h"
#include "marlin_kernels.h"
#include "marlin_kernels24.h"
#include "marlin_pack.h"
#include "marlin_ptx.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MK_HAVE_WGMMA 1
#include "marlin_wgmma.cuh"
#else
#define MK_HAVE_WGMMA 0
#endif

namespace {

constexpr int WG_THREADS = 256;
constexpr int WG_TILE_N = 256; /* output columns per block */
/* k16 steps per stage: 64 deep, one 128-byte swizzle atom per A row. The
 * kernel is written for KS steps (the run-15 build also had KS = 8); the
 * code below is kept as the GPU validated it (runs 14-17). */
constexpr int KS = 4;
/* Shared memory of one stage: A (nb rows x KS/4 swizzle atoms of 128 bytes,
 * 1024-aligned), B (KS k16 rows x 256 columns x 4 bits), grouped scales (up
 * to KS/2 rows of 256 fp16: group 32 spans 2 rows of a stage). */
__host__ __device__ constexpr int wg_stage_bytes(int nb, bool grouped) {
    return MARLIN_DENSE_WG_STAGE_BYTES(nb, grouped);
}
static_assert(wg_stage_bytes(64, true) == 64 * 32 * KS + KS * 2048 + KS * 256,
              "marlin_dense_tiles.h's stage size is for 64-deep stages");
/* The epilogue's fp16 staging tile: nb rows of 256 + 8 halves (the pad
 * spreads the 4 batch columns a warp writes at once over distinct banks). */
constexpr int WG_CROW = WG_TILE_N + 8;

struct WgParams {
    const int4 *A;     /* fp16 [m][k]      as int4 [m][k/8] */
    const int4 *B;     /* int32 [k/16][2n] as int4 [k/16][n/2] */
    const __half *s;   /* fp16 [G][n] */
    __half *C;         /* fp16 [m][n] */
    int *counters;     /* [n_tiles * m_tiles], zero between launches */
    float4 *partials;  /* [blocks][nb/4][256] float4, splits > 1 only */
    int m, n, k;
    int n_tiles, m_tiles;
    int k_stages;      /* k / (16 KS) */
    int splits;        /* pieces of each tile's k range (1: no partials) */
    int scatter;       /* splits > 1: every piece adds a share of the tile
                        * instead of the last one all of it (the epilogue) */
    int group_shift;   /* grouped: log2(rows per group) */
    int stages;        /* pipeline depth, 4..8 */
    int pdl;
    /* 2:4 sparse kernels only (last, so that the dense kernels' parameter
     * offsets stay as validated): B is then I32 [k/32][2n] (compressed
     * values, MF 4.4) and this the metadata, I16 [k/32][2n] as int4
     * [k/32][n/4] (MF 4.5) */
    const int4 *meta;
};

#if MK_HAVE_WGMMA
/* Decodes one word of B into the wgmma A fragment of its 16 output columns
 * (rows) x 16 k: a0/a1 = column g, k pair lo; a2/a3 = column g+8, k lo;
 * a4/a5 = column g, k hi; a6/a7 = column g+8, k hi. Nibbles 0,4 / 1,5 are
 * column g (k lo / hi), 2,6 / 3,7 column g+8; the magic-number decode is the
 * one of dequant_word (marlin_ptx.cuh; v - 8 exactly), written out here in
 * the wgmma fragment order: this instruction order is the one the GPU runs
 * 14-17 validated (a call of dequant_word reorders the generated code, and
 * this session had no device time left to re-validate that). */
__device__ __forceinline__ void wg_decode(uint32_t q, uint32_t (&a)[4]) {
    const uint32_t LO = 0x000f000f, HI = 0x00f000f0, EXP = 0x64006400;
    const __half2 SUB = bits_h2(0x64086408u); /* 1032 */
    const __half2 MUL = bits_h2(0x2c002c00u); /* 1/16 */
    const __half2 ADD = bits_h2(0xd480d480u); /* -72 */
    const uint32_t lo0 = lop3_and_or(q, LO, EXP);
    const uint32_t hi0 = lop3_and_or(q, HI, EXP);
    q >>= 8;
    const uint32_t lo1 = lop3_and_or(q, LO, EXP);
    const uint32_t hi1 = lop3_and_or(q, HI, EXP);
    a[0] = h2_bits(__hsub2(bits_h2(lo0), SUB));
    a[1] = h2_bits(__hsub2(bits_h2(lo1), SUB));
    a[2] = h2_bits(__hfma2(bits_h2(hi0), MUL, ADD));
    a[3] = h2_bits(__hfma2(bits_h2(hi1), MUL, ADD));
}

/* The A fragments of one k16 step (its two words in w): decode, and in
 * grouped mode times the fp16 scales of this lane's 4 columns fcol[i][h]
 * (wg_fcol), which both scale permutations store contiguously, half t = 2 i
 * + h of s4: dense (marlin_pack_dense_scale_col, an 8 x 8 transpose per 64
 * columns) puts column 64 slab + 32 (w >> 1) + 16 i + 8 h + g at 64 slab +
 * 8 g + 4 (w >> 1) + 2 i + h, sparse (marlin_pack_24_scale_col, the 8-wide
 * permutation) column 64 slab + 8 g + 2 (w >> 1) + i + 4 h at the same
 * place; so one 8-byte load brings all four (session 8: 8 two-byte loads
 * and their addresses before). The multiply broadcasts the low or the
 * high half, an operand swizzle rather than an instruction. */
template <bool GROUPED>
__device__ __forceinline__ void wg_decode_step(uint2 w, uint32_t (&a)[2][4], uint2 s4) {
    wg_decode(w.x, a[0]);
    wg_decode(w.y, a[1]);
    if (GROUPED) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const __half2 sp = bits_h2(i ? s4.y : s4.x);
            const __half2 s0 = __low2half2(sp), s1 = __high2half2(sp);
            a[i][0] = h2_bits(__hmul2(bits_h2(a[i][0]), s0));
            a[i][1] = h2_bits(__hmul2(bits_h2(a[i][1]), s1));
            a[i][2] = h2_bits(__hmul2(bits_h2(a[i][2]), s0));
            a[i][3] = h2_bits(__hmul2(bits_h2(a[i][3]), s1));
        }
    }
}

/* wgmma.fence, with the A fragments of the two wgmma that follow as
 * operands: the compiler may not sink their decode past the fence (a
 * register defined between fence and wgmma makes ptxas serialize every
 * wgmma of the kernel, warning C7513). */
__device__ __forceinline__ void wg_fence(uint32_t (&a)[2][4]) {
    asm volatile("wgmma.fence.sync.aligned;\n"
                 : "+r"(a[0][0]), "+r"(a[0][1]), "+r"(a[0][2]), "+r"(a[0][3]), "+r"(a[1][0]),
                   "+r"(a[1][1]), "+r"(a[1][2]), "+r"(a[1][3])
                 :
                 : "memory");
}
/* The same for the sparse form: the metadata register is an operand of the
 * wgmma too (PTX: registers wgmma reads must be fenced like the A
 * fragments). */
__device__ __forceinline__ void wg_fence_sp(uint32_t (&a)[2][4], uint32_t &e) {
    asm volatile("wgmma.fence.sync.aligned;\n"
                 : "+r"(a[0][0]), "+r"(a[0][1]), "+r"(a[0][2]), "+r"(a[0][3]), "+r"(a[1][0]),
                   "+r"(a[1][1]), "+r"(a[1][2]), "+r"(a[1][3]), "+r"(e)
                 :
                 : "memory");
}
__device__ __forceinline__ void wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* wgmma.wait_group 0, with the stage's 4 k16 steps' A fragments as asm
 * inputs. What makes a stage safe is the wait itself (no wgmma in flight when the
 * next stage writes registers); the operands only keep the fragments live
 * in the front end up to that point - the template does not name them, so
 * ptxas sees no use. Kept because this exact code is what the GPU runs
 * 14-17 validated. (Inputs only: an asm output would be a new definition of
 * wgmma input registers, which makes ptxas serialize the wgmma, C7513.) */
__device__ __forceinline__ void wg_wait0_pin(const uint32_t (&a)[2][4], const uint32_t (&b)[2][4],
                                             const uint32_t (&c)[2][4],
                                             const uint32_t (&d)[2][4]) {
    asm volatile("wgmma.wait_group.sync.aligned 0;\n"
                 ::"r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                   "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]),
                   "r"(b[0][0]), "r"(b[0][1]), "r"(b[0][2]), "r"(b[0][3]),
                   "r"(b[1][0]), "r"(b[1][1]), "r"(b[1][2]), "r"(b[1][3]),
                   "r"(c[0][0]), "r"(c[0][1]), "r"(c[0][2]), "r"(c[0][3]),
                   "r"(c[1][0]), "r"(c[1][1]), "r"(c[1][2]), "r"(c[1][3]),
                   "r"(d[0][0]), "r"(d[0][1]), "r"(d[0][2]), "r"(d[0][3]),
                   "r"(d[1][0]), "r"(d[1][1]), "r"(d[1][2]), "r"(d[1][3])
                 : "memory");
}
/* The sparse stage's wait_group 0: its 2 k32 steps' fragments and metadata
 * kept live up to the wait, as wg_wait0_pin does for the dense stage. */
__device__ __forceinline__ void wg_wait0_pin_sp(const uint32_t (&a)[2][4],
                                                const uint32_t (&b)[2][4], uint32_t ea,
                                                uint32_t eb) {
    asm volatile("wgmma.wait_group.sync.aligned 0;\n"
                 ::"r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                   "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]),
                   "r"(b[0][0]), "r"(b[0][1]), "r"(b[0][2]), "r"(b[0][3]),
                   "r"(b[1][0]), "r"(b[1][1]), "r"(b[1][2]), "r"(b[1][3]), "r"(ea), "r"(eb)
                 : "memory");
}
/* Keeps the compiler from moving accumulator reads/writes across the
 * asynchronous wgmma (the register stays "in use" at this point). */
__device__ __forceinline__ void wg_fence_reg(float &r) { asm volatile("" : "+f"(r)::"memory"); }

/* Matrix descriptor of a K-major operand in 128-byte-swizzled shared memory:
 * start address >> 4, leading offset 1 (unused when swizzled), stride 1024
 * bytes between 8-row core-matrix groups, swizzle mode 1 (128 B). */
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) |
           ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
#endif

#if MK_HAVE_WGMMA
/* The output column of thread t's fragment i, row half h
 * (mk_dense_wg_fcol, marlin_dense_tiles.h) */
template <bool SPARSE>
__device__ __forceinline__ int wg_fcol(int t, int i, int h) {
    return mk_dense_wg_fcol(t, i, h, SPARSE);
}

/* v, through an asm the compiler cannot look into: the result is a value of
 * its own, kept in a register (or spilled) rather than recomputed at its
 * uses */
__device__ __forceinline__ uint32_t pin_u32(uint32_t v) {
    uint32_t r;
    asm volatile("mov.b32 %0, %1;\n" : "=r"(r) : "r"(v));
    return r;
}

/* The k split's counter, read with acquire ordering at GPU scope */
__device__ __forceinline__ int ld_acquire_gpu(const int *ptr) {
    int v;
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(ptr) : "memory");
    return v;
}
#endif

/* 32- and 64-row tiles fit 128 registers (no spills, ptxas) and their 4
 * stages 70 KB of shared memory: two blocks per SM; 128 rows one. */
template <int NB, bool GROUPED, bool SPARSE, bool PP>
__global__ void __launch_bounds__(WG_THREADS, MARLIN_DENSE_WG_BLOCKS_PER_SM(NB)) dense_wg_kernel(WgParams p) {
#if MK_HAVE_WGMMA
    extern __shared__ uint8_t smem_raw[];
    __shared__ int s_last;
    /* The swizzle atoms need 1024-byte alignment (the host adds the slack);
     * offset from smem_raw, so the compiler still knows the pointer is
     * shared memory (LDS, not generic loads: run 11's SASS). */
    const uint32_t raw_s = (uint32_t)__cvta_generic_to_shared(smem_raw);
    uint8_t *smem = smem_raw + (((raw_s + 1023u) & ~1023u) - raw_s);
    constexpr int SB = wg_stage_bytes(NB, GROUPED);
    constexpr int KB = KS / 4; /* 64-deep A sub-tiles (swizzle atoms per row) */
    constexpr int A_OFF = 0, B_OFF = NB * 128 * KB, S_OFF = B_OFF + KS * 2048;
    /* MMA steps per stage: k16 dense, k32 sparse (wgmma.sp is m64nNk32).
     * A sparse stage's B is NSTEP k32 rows of 256 columns (2 KB each, half
     * the dense stage's bytes), its metadata NSTEP rows of 1 KB after them;
     * the dense stage layout and size are kept (the offsets above). */
    constexpr int NSTEP = SPARSE ? KS / 2 : KS;
    constexpr int M_OFF = B_OFF + NSTEP * 2048;
    static_assert(!SPARSE || M_OFF + NSTEP * 1024 <= S_OFF, "sparse stage layout");

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, w = warp & 3;
    const int split = (int)(blockIdx.x % (unsigned)p.splits);
    const int tile = (int)(blockIdx.x / (unsigned)p.splits);
    /* row tiles of one column tile are neighbours: they share its weights
     * through L2 */
    const int mt = tile % p.m_tiles, nt = tile / p.m_tiles;
    const int st_begin = (int)(((long long)split * p.k_stages) / p.splits);
    const int st_end = (int)(((long long)(split + 1) * p.k_stages) / p.splits);
    const int n_st = st_end - st_begin;
    const int row0 = mt * NB;
    const int a_row_i4 = p.k / 8, b_row_i4 = p.n / 2;

    /* Per-thread copy plan. Sources are pointers stepped by a constant per
     * stage; shared-memory destinations are 32-bit addresses held per
     * thread and stepped per stage, never "base + stage offset"
     * (marlin_ptx.cuh says why). Every other copy of a thread sits at an
     * immediate distance from its first. (Session 5's SASS of the 64-row
     * kernel: ~100 of its 336 instructions per stage re-derived these
     * addresses at the 128-register cap.) */
    constexpr int AN = NB * 8 * KB / WG_THREADS; /* 16-byte A chunks per thread and stage */
    constexpr int BN = NSTEP * 128 / WG_THREADS; /* int4 of B per thread and stage */
    static_assert(KB == 1 && AN >= 1 && BN >= 1, "copy plan for 64-deep stages");
    const uint32_t smem_s = (uint32_t)__cvta_generic_to_shared(smem);
    /* B: int4 tid + 256 i of the stage is row (tid >> 7) + 2 i, int4
     * tid & 127 of the block's 128; destination B_OFF + 16 (tid + 256 i);
     * the scale row's 16 bytes (grouped: thread tid of rows tid >> 5) at
     * S_OFF + 16 tid, the sparse metadata at M_OFF + 16 tid */
    const int4 *l_b = p.B + (size_t)(NSTEP * st_begin) * b_row_i4 + (size_t)(tid >> 7) * b_row_i4 +
                      128 * nt + (tid & 127);
    const int b_istep = 2 * b_row_i4;
    /* A: chunk i of this thread is row r = tid / 8 + 32 i of the tile,
     * 16-byte column c = tid % 8; l_a is row r's source, a_dl[i] the
     * distance to chunk i's. Rows at or past m copy row m - 1 (clamped)
     * rather than zeros: an output row depends on its own A row only and
     * rows past m are never stored, so they need finite values, and a
     * plain copy needs no per-stage predicate (session 8). */
    const int a_r = tid >> 3, a_c = tid & 7;
    const int a_row_c = min(row0 + a_r, p.m - 1);
    const int4 *l_a = p.A + (size_t)a_row_c * a_row_i4 + a_c + (size_t)st_begin * 8 * KB;
    int a_dl[AN];
#pragma unroll
    for (int i = 0; i < AN; i++)
        a_dl[i] = (min(row0 + a_r + 32 * i, p.m - 1) - a_row_c) * a_row_i4;
    const uint32_t d_a0 = smem_s + A_OFF + a_r * 128 + ((a_c ^ (a_r & 7)) << 4);
    const uint32_t d_b0 = smem_s + B_OFF + tid * 16;
    /* grouped: scale rows per stage (2 for group 32) and this thread's row
     * and 16 bytes of it */
    constexpr int LOG_SK = KS == 8 ? 7 : 6; /* log2 of the stage depth */
    const int s_rows = p.group_shift < LOG_SK ? 1 << (LOG_SK - p.group_shift) : 1;
    const bool s_on = GROUPED && tid < s_rows * 32;
    const unsigned s_off = (unsigned)((tid >> 5) * p.n + WG_TILE_N * nt + 8 * (tid & 31));
    /* Stage st's scale rows start at row (st << LOG_SK) >> group_shift: a
     * source stepped per stage instead of that product per copy - s_rows
     * rows every stage below 64-row groups, one row every
     * 2^(group_shift - LOG_SK) stages from there */
    const __half *l_s =
        p.s + (size_t)((st_begin << LOG_SK) >> p.group_shift) * p.n + s_off;
    const int s_every = p.group_shift > LOG_SK ? (1 << (p.group_shift - LOG_SK)) - 1 : 0;
    const size_t s_step = (size_t)s_rows * p.n;
    /* sparse: threads 0..127 copy the stage's metadata, NSTEP rows of the
     * block's 256 columns (64 int4 each) */
    const unsigned m_row_i4 = (unsigned)(p.n / 4);
    const int4 *l_m = SPARSE ? p.meta + (size_t)(NSTEP * st_begin) * m_row_i4 +
                                   (size_t)((tid >> 6) * m_row_i4 + 64 * nt + (tid & 63))
                             : nullptr;

    /* B (+ metadata + scales) of k stage st into the buffer whose B
     * destination is w_b; steps l_b (and l_m) to the next stage */
    auto load_b = [&](int st, uint32_t w_b) {
#pragma unroll
        for (int i = 0; i < BN; i++) cp_async16_s(w_b + i * 4096, l_b + i * b_istep);
        l_b += (size_t)NSTEP * b_row_i4;
        if (SPARSE) {
            if (tid < NSTEP * 64) cp_async16_s(w_b + (M_OFF - B_OFF), l_m);
            l_m += (size_t)NSTEP * m_row_i4;
        }
        if constexpr (GROUPED) {
            if (s_on) cp_async16_s(w_b + (S_OFF - B_OFF), l_s);
            if (((st + 1) & s_every) == 0) l_s += s_step;
        }
    };
    /* A of the next stage into the buffer whose A destination is w_a */
    auto load_a = [&](uint32_t w_a) {
#pragma unroll
        for (int i = 0; i < AN; i++)
            cp_async16_s(w_a + i * 32 * 128, l_a + a_dl[i]);
        l_a += 8 * KB;
    };

    /* Prologue: stages - 2 stages in flight; with PDL the weights stream in
     * before griddepcontrol.wait, A (written by the previous kernel) after. */
    const int pro = p.stages - 2;
    /* Stage s's copies complete "full[s]" (every thread's noinc arrival
     * once its own copies landed) instead of a commit group: in PP no
     * thread waits for another's progress at a stage start, the two
     * warpgroups drift apart and one decodes while the other's wgmma run,
     * and "empty[s]" (every thread after its stage-end wait) guards the
     * refill; without PP the block-wide barrier does. The mbarriers sit
     * after the stage buffers in dynamic shared memory
     * (MARLIN_DENSE_WG_BAR_BYTES), addressed from the buffers' base, which
     * the loop keeps at hand: a static __shared__ array's address was
     * re-derived from the CTA id (S2UR, 3 ULEA) at every use in the loop
     * (session 8's SASS). */
    const uint32_t bar_full = smem_s + (uint32_t)p.stages * SB;
    const uint32_t bar_empty = bar_full + 8 * MARLIN_DENSE_MAX_STAGES;
    if (tid == 0)
        for (int i = 0; i < p.stages; i++) {
            mbar_init(bar_full + 8 * i, WG_THREADS);
            if constexpr (PP) mbar_init(bar_empty + 8 * i, WG_THREADS);
        }
    __syncthreads();
    {
        uint32_t w_b = d_b0;
        for (int s = 0; s < pro; s++, w_b += SB)
            if (s < n_st) load_b(st_begin + s, w_b);
    }
    if (p.pdl) asm volatile("griddepcontrol.wait;\n" ::: "memory");
    {
        uint32_t w_a = d_a0;
        for (int s = 0; s < pro; s++, w_a += SB) {
            if (s < n_st) {
                load_a(w_a);
                mbar_arrive_cp_async(bar_full + 8 * s);
            }
        }
    }
    /* The phase parity to wait on. Buffers are used round-robin, so every
     * buffer's parity is the round's: it flips when the buffer index wraps
     * (full: buf; PP's empty: wbuf, which has wrapped once when the first
     * refill waits, hence the start at 1). */
    uint32_t ph_full = 0, ph_empty = 1;

    /* This warp's slab and words (wg_fcol says which) */
    const int slab = 2 * wg + (w & 1);
    const int word0 = 2 * (w >> 1);
    const int q4 = lane & 3;
    /* the output columns (within the block's 256) of fragment i's rows g
     * (h = 0) and g + 8 (h = 1) */
    int fcol[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) fcol[i][h] = wg_fcol<SPARSE>(tid, i, h);
    /* grouped: where this lane's 4 scales start in a stored scale row
     * (column fcol[0][0]; wg_decode_step says why the other 3 follow) */
    const int soff = SPARSE ? (int)marlin_pack_24_scale_col(fcol[0][0], true)
                            : (int)marlin_pack_dense_scale_col(fcol[0][0], true);

    float acc[2][NB / 2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int r = 0; r < NB / 2; r++) acc[i][r] = 0.0f;

    int buf = 0, wbuf = pro;
    /* the next refill's destinations (buffer wbuf), stepped back to
     * buffer 0 after the last one */
    uint32_t w_a = d_a0 + (uint32_t)pro * SB, w_b = d_b0 + (uint32_t)pro * SB;
    const uint32_t wrap_back = (uint32_t)(p.stages - 1) * SB;
    /* the byte offset of the stage's second scale row (group 32) */
    const uint32_t s_hi = s_rows > 1 ? 512u : 0u;
    /* this lane's shared-memory reads in buffer 0: its B words, metadata
     * word and 4 scales (bytes). r_bw is pinned: at the 128-register cap
     * ptxas re-derived it from the thread index in every stage, ~10
     * instructions (a value an asm defines cannot be re-derived). */
    const uint32_t r_bw = pin_u32(smem_s + B_OFF + slab * 512 + lane * 16 + word0 * 4);
    const uint32_t r_mw = smem_s + M_OFF + slab * 256 + ((w >> 1) * 32 + lane) * 4;
    const uint32_t r_s4 = smem_s + S_OFF + 2 * soff;
    /* and of the stage's second scale row (s_hi: the first again unless
     * group 32), pinned as r_bw: one address per load, no select */
    const uint32_t r_s4b = pin_u32(r_s4 + s_hi);
    /* the descriptor of buffer 0's A; buffer b's is SB / 16 * b further
     * (the address field is bytes >> 4; no buffer crosses 256 KB) */
    const uint64_t desc_a0 = wg_desc(smem_s + A_OFF);
    /* One stage: decode all its A fragments (a decode between the wgmma of
     * one stage made ptxas serialize every wgmma, C7513), issue its 4 k16
     * groups, all in flight, then wait_group 0. wgmma reads its register
     * operand asynchronously; a fragment's register must not be rewritten
     * before the wait that retires its group. With 3 groups left in flight
     * per stage, run 12's SASS reused their registers for the next stage's
     * loads across the loop's back edge (wrong sums: ptxas does not guard
     * registers of in-flight wgmma across iterations), and keeping the
     * previous stage's fragments in a second register set made ptxas
     * serialize every wgmma; so no wgmma is in flight when a stage ends.
     * The drain this costs is hidden by the second block per SM at 32-64
     * rows. */
    /* Stage it + pro into buffer wbuf (its copies arrive on the buffer's
     * "full" barrier), then the next buffer's destinations; every stage
     * calls it once, whether or not a stage is left to load. */
    auto refill = [&](int it) {
        if (it + pro < n_st) {
            /* PP: once every thread has left the stage that used the buffer
             * (the block-wide barrier at the stage start does it otherwise) */
            if (PP && it + pro >= p.stages) mbar_wait(bar_empty + 8 * wbuf, ph_empty);
            load_b(st_begin + it + pro, w_b);
            load_a(w_a);
            mbar_arrive_cp_async(bar_full + 8 * wbuf);
        }
        if (++wbuf == p.stages) {
            wbuf = 0;
            ph_empty ^= 1u;
        }
        w_a = wbuf ? w_a + SB : w_a - wrap_back;
        w_b = wbuf ? w_b + SB : w_b - wrap_back;
    };
    auto stage = [&](int it, uint32_t (&cur)[NSTEP][2][4]) {
        /* PP refills first (its own barrier guards the buffer) and then
         * waits for this stage's data; without PP the refill comes after
         * the block-wide barrier that tells every thread left the buffer's
         * last stage. Both wait on the stage's "full" barrier (session 8:
         * the block-barrier form had a wait_group of runtime depth, a jump
         * table of ~10 instructions a stage). cp.async wrote through the
         * generic proxy, wgmma reads through the async proxy: the fence
         * (measured free: run 6 timed it removed, within 1-2%). */
        if constexpr (PP) refill(it);
        mbar_wait(bar_full + 8 * buf, ph_full);
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        if constexpr (!PP) {
            __syncthreads();
            refill(it);
        }

        const uint32_t sb = (uint32_t)buf * SB; /* this stage's buffer (bytes) */
        uint2 bw[NSTEP];
#pragma unroll
        for (int j = 0; j < NSTEP; j++) bw[j] = lds64_s(r_bw + sb + j * 2048);
        /* sparse: the metadata word of this lane for its two subtiles (MF
         * 4.5; the 2:4 kernel's meta0/meta1): words 0..31 of a 64-column
         * block's k32 row cover subtiles 0 and 1, words 32..63 subtiles 2
         * and 3; the sparsity selector is the subtile's parity, i */
        uint32_t mw[NSTEP];
#pragma unroll
        for (int j = 0; j < NSTEP; j++)
            mw[j] = SPARSE ? lds32_s(r_mw + sb + j * 1024) : 0u;
        const uint64_t desc0 = desc_a0 + (uint64_t)(sb >> 4);
        /* grouped: the scales of the stage's rows. Step j's row is j *
         * s_rows / NSTEP (rows split the stage evenly; s_rows is 1 or 2):
         * the first half of the steps row 0, the second row s_rows - 1,
         * both loaded (the same row twice when the group spans the stage)
         * rather than chosen per step (SELs, a branch). */
        static_assert(KS / 2 == 2, "at most two scale rows per stage");
        uint2 s4[2] = {make_uint2(0u, 0u), make_uint2(0u, 0u)};
        if (GROUPED) {
            s4[0] = lds64_s(r_s4 + sb);
            s4[1] = lds64_s(r_s4b + sb);
        }
#pragma unroll
        for (int j = 0; j < NSTEP; j++)
            wg_decode_step<GROUPED>(bw[j], cur[j], s4[2 * j >= NSTEP]);
        if constexpr (SPARSE) {
#pragma unroll
            for (int j = 0; j < NSTEP; j++) {
                wg_fence_sp(cur[j], mw[j]);
                /* k32 step j: bytes 64 j .. +63 of each 128-byte A row */
                const uint64_t d = desc0 + (uint64_t)(4 * j);
                mk_wgmma_sp_rs<NB, 0>(acc[0], cur[j][0], d, mw[j]);
                mk_wgmma_sp_rs<NB, 1>(acc[1], cur[j][1], d, mw[j]);
                wg_commit();
            }
            wg_wait0_pin_sp(cur[0], cur[1], mw[0], mw[1]);
        } else {
#pragma unroll
            for (int j = 0; j < KS; j++) {
                wg_fence(cur[j]);
                /* k16 step j: atom j / 4, bytes 32 (j % 4) .. +31 of each of
                 * its 128-byte rows: the descriptor's start address (>> 4)
                 * moves by the atom (NB * 128 bytes) and by 2 per step */
                const uint64_t d = desc0 + (uint64_t)((j / 4) * NB * 8 + 2 * (j % 4));
                mk_wgmma_rs<NB>(acc[0], cur[j][0], d);
                mk_wgmma_rs<NB>(acc[1], cur[j][1], d);
                wg_commit();
            }
            wg_wait0_pin(cur[0], cur[1], cur[2], cur[3]);
        }
        if constexpr (PP) mbar_arrive(bar_empty + 8 * buf);
        if (++buf == p.stages) {
            buf = 0;
            ph_full ^= 1u;
        }
    };
#pragma unroll 1
    for (int it = 0; it < n_st; it++) {
        uint32_t af[NSTEP][2][4];
        stage(it, af);
    }
    wg_wait<0>();
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int r = 0; r < NB / 2; r++) wg_fence_reg(acc[i][r]);
    /* PDL: release the next kernel only now. Triggered at the start, its
     * blocks took SMs that the second wave of a multi-wave launch needed
     * (run 3: Llama-2-70B at m = 128, 552 us with PDL vs 515 without). */
    if (p.pdl) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");

    /* ---- k split, workspace path: partials, counter, fixed-order sum by
     * every piece (scatter: each its share of 8-row groups, once all have
     * stored) or by the last piece */
    int u_lo = 0, u_hi = NB / 8; /* the 8-row groups of the tile this block writes */
    if (p.splits > 1) {
        float4 *mine = p.partials + (size_t)blockIdx.x * (NB / 4) * WG_THREADS;
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int r = 0; r < NB / 2; r += 4)
                __stcg(mine + (i * (NB / 8) + r / 4) * WG_THREADS + tid,
                       make_float4(acc[i][r], acc[i][r + 1], acc[i][r + 2], acc[i][r + 3]));
        __syncthreads();
        if (p.scatter) {
            /* this piece's share: 8-row groups [u_lo, u_hi) of the tile */
            u_lo = split * (NB / 8) / p.splits;
            u_hi = (split + 1) * (NB / 8) / p.splits;
            if (tid == 0) {
                /* release our partials and count; wait for every piece of
                 * the tile (they are resident together: the host keeps a
                 * split launch to one wave, and its pieces are neighbours
                 * in block order); count again on the way out, and the
                 * last piece out resets the counter (nobody reads it after
                 * its second count) */
                __threadfence();
                atomicAdd(&p.counters[tile], 1);
                while (ld_acquire_gpu(&p.counters[tile]) < p.splits) __nanosleep(32);
                if (atomicAdd(&p.counters[tile], 1) == 2 * p.splits - 1) p.counters[tile] = 0;
            }
            __syncthreads();
            if (u_lo == u_hi) return; /* more pieces than 8-row groups */
        } else {
            if (tid == 0) {
                /* release our partials, count; the last piece resets the
                 * counter (nothing else touches it in this launch) */
                __threadfence();
                const int old = atomicAdd(&p.counters[tile], 1);
                s_last = (old == p.splits - 1);
                if (s_last) {
                    p.counters[tile] = 0;
                    __threadfence();
                }
            }
            __syncthreads();
            if (!s_last) return;
        }
    }

    /* ---- epilogue: per-channel scales in fp32, fp16 tile in shared memory
     * (the stage buffers are free once every thread is past its last
     * stage: every copy issued was a stage the loop waited for), rows of
     * C */
    __syncthreads();
    __half *cs = (__half *)smem;
    float sc[2][2] = {{1.0f, 1.0f}, {1.0f, 1.0f}};
    if (!GROUPED) {
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                sc[i][h] = __half2float(
                    p.s[WG_TILE_N * nt +
                        (SPARSE ? fcol[i][h] : marlin_pack_dense_scale_col(fcol[i][h], false))]);
    }
    /* The fp32 sums of fragment i, rows b and b + 1 of its two columns, to
     * the fp16 tile (the float4 as a piece stored it) */
    auto cs_put = [&](const float4 &v, int i, int b) {
        const int c0 = fcol[i][0], c1 = fcol[i][1];
        cs[b * WG_CROW + c0] = __float2half_rn(v.x * sc[i][0]);
        cs[(b + 1) * WG_CROW + c0] = __float2half_rn(v.y * sc[i][0]);
        cs[b * WG_CROW + c1] = __float2half_rn(v.z * sc[i][1]);
        cs[(b + 1) * WG_CROW + c1] = __float2half_rn(v.w * sc[i][1]);
    };
    /* k split: this thread's float4 of every piece's partial tile */
    const float4 *base = p.partials + (size_t)tile * p.splits * (NB / 4) * WG_THREADS + tid;
    const size_t piece = (size_t)(NB / 4) * WG_THREADS;
    if (p.splits > 1 && p.scatter) {
        /* This piece's 8-row groups of the tile: fragment i's float4 u of
         * every piece (this thread's own, as it stored them), added in
         * split order - the order, and so the bits, of the last-piece sum
         * below. Each piece reads (NB / 8) / splits groups of all pieces,
         * the last piece alone all of them (Llama-2-7B down_proj at m = 64:
         * 16 pieces of 64 KB, 1 MB through one SM). */
        constexpr int MAXS = 16;
        const int u_end = min(u_hi, (p.m - row0 + 7) / 8); /* groups with rows < m */
#pragma unroll 1
        for (int u = u_lo; u < u_end; u++)
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const float4 *src = base + (size_t)(i * (NB / 8) + u) * WG_THREADS;
                float4 v[MAXS];
#pragma unroll
                for (int sp = 0; sp < MAXS; sp++)
                    if (sp < p.splits) v[sp] = __ldcg(src + sp * piece);
                float4 sum = v[0];
#pragma unroll
                for (int sp = 1; sp < MAXS; sp++)
                    if (sp < p.splits) {
                        sum.x += v[sp].x;
                        sum.y += v[sp].y;
                        sum.z += v[sp].z;
                        sum.w += v[sp].w;
                    }
                cs_put(sum, i, 8 * u + 2 * q4);
            }
    } else if (p.splits > 1) {
        /* The last piece: every piece, this one included, is in the
         * workspace; add them in split order straight into the fp16 tile.
         * The accumulators are dead here, so 16 float4 of one piece are in
         * flight per thread: run 7's sum into the live accumulators, 8
         * loads at a time, took ~1.9 us per 128-row piece (15 us of
         * Llama-2-7B o_proj's 25 at 8 pieces), and run 9's one float4 at a
         * time was slower still. */
        constexpr int FC = NB / 4 < 16 ? NB / 4 : 16;
#pragma unroll
        for (int f0 = 0; f0 < NB / 4; f0 += FC) {
            float4 sum[FC];
#pragma unroll
            for (int j = 0; j < FC; j++) sum[j] = __ldcg(base + (f0 + j) * WG_THREADS);
#pragma unroll 1
            for (int sp = 1; sp < p.splits; sp++) {
                float4 v[FC];
#pragma unroll
                for (int j = 0; j < FC; j++)
                    v[j] = __ldcg(base + sp * piece + (f0 + j) * WG_THREADS);
#pragma unroll
                for (int j = 0; j < FC; j++) {
                    sum[j].x += v[j].x;
                    sum[j].y += v[j].y;
                    sum[j].z += v[j].z;
                    sum[j].w += v[j].w;
                }
            }
#pragma unroll
            for (int j = 0; j < FC; j++) {
                const int f = f0 + j;
                cs_put(sum[j], f / (NB / 8), 8 * (f % (NB / 8)) + 2 * q4);
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int t = 0; t < NB / 8; t++) {
                const int b = 8 * t + 2 * q4;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int h = e >> 1, bb = b + (e & 1);
                    cs[bb * WG_CROW + fcol[i][h]] =
                        __float2half_rn(acc[i][4 * t + e] * sc[i][h]);
                }
            }
    }
    __syncthreads();
    const int r_lo = 8 * u_lo, r_hi = min(8 * u_hi, p.m - row0);
    for (int idx = tid + r_lo * (WG_TILE_N / 8); idx < r_hi * (WG_TILE_N / 8);
         idx += WG_THREADS) {
        const int b = idx >> 5, c = idx & 31;
        *(int4 *)(p.C + (size_t)(row0 + b) * p.n + WG_TILE_N * nt + 8 * c) =
            *(const int4 *)(cs + b * WG_CROW + 8 * c);
    }
#else
    (void)p;
#endif
}

typedef void (*wg_fn)(WgParams);
struct WgEntry {
    int nb;
    wg_fn fn[2][2]; /* [sparse][grouped] */
};
#define WG_FNS(NB, PP)                                                                    \
    {{dense_wg_kernel<NB, false, false, PP>, dense_wg_kernel<NB, true, false, PP>},       \
     {dense_wg_kernel<NB, false, true, PP>, dense_wg_kernel<NB, true, true, PP>}}
/* The stage pipeline per tile width (session 4, runs 6-7, same calls, with
 * PDL): the ping-pong pipeline for 128-row tiles (one block per SM:
 * Llama-2-7B at m = 128 154 us against 168 us, 2:4 130 vs 137 us, 8-14%
 * faster on every model at 128 and 256 rows) and 64-row tiles (dense 3-5%
 * at m = 64, 2:4 4-8% at 48-64 rows); the block-wide barrier for 32-row
 * tiles (2:4 at m = 32: the ping-pong pipeline 0-3% slower). */
const WgEntry kWg[] = {
    {32, WG_FNS(32, false)},
    {64, WG_FNS(64, true)},
    {128, WG_FNS(128, true)},
};
#undef WG_FNS
constexpr int kNumWg = sizeof kWg / sizeof kWg[0];
constexpr int kMaxDev = 16;
std::atomic<int> g_wg_smem_set[kMaxDev][kNumWg][2][2];

int wg_kernel_index(int nb) {
    for (int i = 0; i < kNumWg; i++)
        if (kWg[i].nb == nb) return i;
    return -1;
}

} // namespace

/* Dynamic shared memory of one launch: the stages or the epilogue's fp16
 * tile, whichever is larger, + 1 KB of alignment slack + the mbarriers. */
static size_t wg_smem(int nb, bool grouped, int stages) {
    static_assert(WG_CROW == 264, "marlin_dense_tiles.h's epilogue tile");
    return (size_t)MARLIN_DENSE_WG_SMEM_BYTES(nb, grouped, stages);
}

/* What both launchers share once the parameters are set: how the k pieces
 * add up, the dynamic shared memory limit (raised once per device, kernel
 * and scale mode to the largest size asked for), the launch configuration
 * (PDL) and the launch. */
static marlin_status wg_enqueue(const WgParams &p0, int ki, bool sparse, bool grouped, int blocks,
                                size_t smem, void *stream, int dev, const mk_device *d,
                                marlin_error *err) {
    WgParams p = p0;
    /* The pieces of a tile add it up together (each a share, once all have
     * stored) when there are 3 to 16 of them and the launch is one wave of
     * resident blocks (they wait for each other); otherwise the last piece
     * adds the tile. Session 7, runs 2-3, same binary, two rounds, with
     * PDL: Llama-2-7B down_proj (16 pieces at 32-64 rows, 8 at 128) 15-26%
     * faster, o_proj at m = 64 (8 pieces) 21%, qkv at m = 64 (5) 9%; at 2
     * pieces 2-5% slower (a finished piece waits instead of leaving its
     * SM to the next kernel), 3 neutral. One wave means every piece has
     * a slot of its own, so a waiting piece never keeps a sibling from
     * starting; only kernels of other streams that held SMs forever
     * could. */
    int resident = MARLIN_DENSE_WG_BLOCKS_PER_SM(kWg[ki].nb);
    while (resident > 1 &&
           (int64_t)resident * ((int64_t)smem + MARLIN_DENSE_STATIC_SMEM + 1024) > d->smem_per_sm)
        resident--;
    p.scatter = p.splits >= 3 && p.splits <= 16 /* the kernel's MAXS */ &&
                blocks <= resident * d->sm_count;
    wg_fn fn = kWg[ki].fn[sparse ? 1 : 0][grouped ? 1 : 0];
    std::atomic<int> *set =
        dev < kMaxDev ? &g_wg_smem_set[dev][ki][sparse ? 1 : 0][grouped ? 1 : 0] : NULL;
    marlin_status st;
    if (!set || set->load(std::memory_order_relaxed) < (int)smem) {
        st = MK_CUDA(err, cudaFuncSetAttribute((const void *)fn,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem));
        if (st) return st;
        if (set) set->store((int)smem, std::memory_order_relaxed);
    }
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    mk_launch_config(&cfg, attr, (unsigned)blocks, WG_THREADS, smem, stream, p.pdl, 0);
    st = MK_CUDA(err, cudaLaunchKernelEx(&cfg, fn, p));
    if (st) return st;
    return MK_CUDA(err, cudaGetLastError());
}

/* The kernel parameters of one launch of m rows (both launchers): A and C
 * already offset to the launch's first row, meta NULL for dense. */
static WgParams wg_params(const void *A, const void *B, const void *s, const void *meta, void *C,
                          int64_t m, int64_t n, int64_t k, bool grouped, int64_t group_size,
                          void *counters, void *partials, int64_t m_tiles, int splits,
                          int stages, int pdl) {
    WgParams p;
    memset(&p, 0, sizeof p);
    p.A = (const int4 *)A;
    p.B = (const int4 *)B;
    p.s = (const __half *)s;
    p.C = (__half *)C;
    p.counters = (int *)counters;
    p.partials = (float4 *)partials;
    p.m = (int)m;
    p.n = (int)n;
    p.k = (int)k;
    p.n_tiles = (int)(n / WG_TILE_N);
    p.m_tiles = (int)m_tiles;
    p.k_stages = (int)(k / (16 * KS));
    p.splits = splits;
    p.group_shift = 0;
    while (grouped && ((int64_t)1 << p.group_shift) < group_size) p.group_shift++;
    p.stages = stages;
    p.pdl = pdl ? 1 : 0;
    p.meta = (const int4 *)meta;
    return p;
}

extern "C" marlin_status mk_dense_wgmma_launch(const marlin_dense_args *a,
                                               const marlin_dense_tile *t, int dev,
                                               const mk_device *d, marlin_error *err) {
    if (d->cc_major != 9)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: the wgmma pipeline runs on sm_90 only (device %d is "
                           "sm_%d%d)",
                           dev, d->cc_major, d->cc_minor);
    const int ki = wg_kernel_index(16 * t->m_blocks);
    if (ki < 0 || t->n != WG_TILE_N || t->k != 16 * KS)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: no wgmma kernel for tile m_blocks=%d n=%d k=%d (m_blocks "
                           "2, 4 or 8, n 256, k 64)",
                           t->m_blocks, t->n, t->k);
    if (a->n % WG_TILE_N != 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: the wgmma pipeline needs n %% 256 == 0 (n = %lld)",
                           (long long)a->n);
    const int nb = kWg[ki].nb;
    const bool grouped = marlin_pack_scales_grouped(a->k, a->group_size);
    int stages = t->stages;
    if (stages == 0) stages = 4;
    if (stages < 4 || stages > MARLIN_DENSE_MAX_STAGES)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: the wgmma pipeline takes 4..%d stages, not %d",
                           MARLIN_DENSE_MAX_STAGES, stages);
    const int64_t m_tiles = (a->m + nb - 1) / nb;
    const int64_t n_tiles = a->n / WG_TILE_N;
    const int k_stages = (int)(a->k / (16 * KS));
    const int64_t tiles = m_tiles * n_tiles;
    if (t->cluster_k > 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: the wgmma pipeline has no cluster path (tile.cluster_k "
                           "= %d; its k pieces add through the workspace: tile.k_splits)",
                           t->cluster_k);
    /* tile.k_splits pieces (0: the rule) */
    int splits = t->k_splits > 0 ? t->k_splits
                                 : marlin_dense_wgmma_splits(a->m, a->n, a->k, t->m_blocks,
                                                             d->sm_count);
    if (splits > k_stages) splits = k_stages;
    if (splits < 1) splits = 1;
    if (tiles * splits > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_SHAPE, "dense gemm: problem too large (%lld tiles)",
                           (long long)tiles);
    const int blocks = (int)(tiles * splits);
    const size_t smem = wg_smem(nb, grouped, stages);
    if ((int64_t)smem + MARLIN_DENSE_STATIC_SMEM > d->smem_optin)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: %d wgmma stages need %zu bytes of shared memory, "
                           "device %d allows %lld",
                           stages, smem, dev, (long long)d->smem_optin);
    /* Workspace path: the pieces keep fp32 partials in the workspace's
     * partial area, which marlin_dense_workspace_bytes sizes for 2 blocks
     * per SM of up to 2 x 64 x 256 floats: at most 2 * sm_count pieces of
     * nb x 256. */
    const size_t counters_bytes = (size_t)tiles * 4;
    const size_t partial_bytes =
        splits > 1 ? (size_t)blocks * (size_t)nb * WG_TILE_N * sizeof(float) : 0;
    if (splits > 1 && blocks > 2 * d->sm_count)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "dense gemm: %d k splits x %lld tiles exceed 2 blocks per SM",
                           splits, (long long)tiles);
    size_t partial_off = 0;
    marlin_status st = mk_dense_workspace_split(a, counters_bytes, partial_bytes, &partial_off, err);
    if (st) return st;

    const WgParams p =
        wg_params(a->A, a->B, a->s, NULL, a->C, a->m, a->n, a->k, grouped, a->group_size,
                  a->workspace, (char *)a->workspace + partial_off, m_tiles, splits, stages, a->pdl);
    return wg_enqueue(p, ki, false, grouped, blocks, smem, a->stream, dev, d, err);
}

/* The 2:4 sparse form (marlin_gemm24 on sm_90): the same kernel with
 * wgmma.mma_async.sp, the workspace path only. Rows beyond what the
 * counter area holds run as further launches of whole row tiles. The
 * caller has checked the GPU (sm_90), the shape (n % 256, power-of-two
 * group: marlin_gemm24_pick_wgmma) and the option values. */
extern "C" marlin_status mk_sparse_wgmma_launch(const mk_sparse_wg_args *a, int dev,
                                                const mk_device *d, marlin_error *err) {
    /* the tile width for the whole call; the pieces per row chunk below */
    int nb = a->rows, splits_all = 1;
    marlin_gemm24_wgmma_tile(a->m, a->n, a->k, d->sm_count, &nb, &splits_all);
    const int ki = wg_kernel_index(nb);
    if (ki < 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: no wgmma kernel for %d-row tiles (32, 64 or 128)", nb);
    const bool grouped = marlin_pack_scales_grouped(a->k, a->group);
    /* The pipeline depth of the dense rule (MARLIN_DENSE_WG_STAGES): 6 for
     * 32-row tiles of deep pieces. Session 7 run 12, same binary, two
     * rounds, with PDL: Llama-2-7B at m = 17 / 32 56.4/56.5 -> 55.1/55.3
     * us and 57.6/57.8 -> 56.1/56.3 us (gate_up 20.5 -> 19.4 us),
     * Llama-3-8B 1-2%, Llama-2-13B and 70B 0-2%. */
    const int k_stages_all = (int)(a->k / (16 * KS));
    int stages = MARLIN_DENSE_WG_STAGES(nb, k_stages_all / (splits_all > 0 ? splits_all : 1));
    if ((int64_t)wg_smem(nb, grouped, stages) + MARLIN_DENSE_STATIC_SMEM > d->smem_optin)
        stages = 4;
    const size_t smem = wg_smem(nb, grouped, stages);
    if ((int64_t)smem + MARLIN_DENSE_STATIC_SMEM > d->smem_optin)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "marlin_gemm24: the wgmma path needs %zu bytes of shared memory, "
                           "device %d allows %lld",
                           smem, dev, (long long)d->smem_optin);
    const int64_t n_tiles = a->n / WG_TILE_N;
    const int k_stages = (int)(a->k / (16 * KS));
    const int64_t chunk_tiles = (int64_t)(a->counters_cap / (size_t)n_tiles);
    if (chunk_tiles < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24: the workspace's %zu counters hold less than one row "
                           "of %lld wgmma tiles",
                           a->counters_cap, (long long)n_tiles);
    int64_t done = 0;
    while (done < a->m) {
        int64_t rows = a->m - done;
        if (rows > chunk_tiles * nb) rows = chunk_tiles * nb;
        const int64_t m_tiles = (rows + nb - 1) / nb;
        const int64_t tiles = m_tiles * n_tiles;
        int splits = a->splits;
        if (splits <= 0) {
            /* the whole call in one launch: the rule's pieces for it (the
             * tile width may have come with its own piece count); a chunk:
             * the pieces for its rows at that width */
            int r = nb;
            if (rows == a->m)
                splits = splits_all;
            else
                marlin_gemm24_wgmma_tile(rows, a->n, a->k, d->sm_count, &r, &splits);
        }
        if (splits > k_stages) splits = k_stages;
        if (splits < 1) splits = 1;
        if (tiles * splits > INT32_MAX)
            return marlin_fail(err, MARLIN_ERR_SHAPE,
                               "marlin_gemm24: problem too large (%lld tiles)", (long long)tiles);
        const int blocks = (int)(tiles * splits);
        const size_t partial_bytes =
            splits > 1 ? (size_t)blocks * (size_t)nb * WG_TILE_N * sizeof(float) : 0;
        if (partial_bytes > a->partials_cap)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "marlin_gemm24: %d k pieces of %lld %d-row wgmma tiles need %zu "
                               "bytes of partial sums, the workspace has %zu "
                               "(marlin_gemm24_workspace_size for more rows)",
                               splits, (long long)tiles, nb, partial_bytes, a->partials_cap);
        const WgParams p = wg_params(
            (const int4 *)a->A + (size_t)done * (size_t)(a->k / 8), a->B, a->s, a->meta,
            (__half *)a->C + (size_t)done * (size_t)a->n, rows, a->n, a->k, grouped, a->group,
            a->counters, a->partials, m_tiles, splits, stages, a->pdl);
        marlin_status st = wg_enqueue(p, ki, true, grouped, blocks, smem, a->stream, dev, d, err);
        if (st) return st;
        done += rows;
    }
    return MARLIN_OK;
}
