/*
 * marlin_kernels24.h - the 2:4 sparse INT4 GEMM (our own Sparse-Marlin
 * kernel, mma.sp) behind a plain C API, and its CPU reference.
 *
 * This is the sparse section of the kernels/ public API: included by
 * kernels/marlin_kernels.h (section 5), and usable alone.
 *
 * Spec: ../shared/docs/reference/marlin-format.md section 4 (written "MF 4.x")
 * and pack/marlin_pack.h section 3, which defines the packed layout once.
 *
 * What it computes (fp16 in/out, fp32 accumulation):
 *
 *     C[m x n] = A[m x k] @ W,   W[k][n] = (q[n][k] - 8) * s[k / g][n]
 *
 * where q are the 2:4 codes (every aligned group of 4 consecutive k of one
 * output column n holds at most 2 non-zero values q - 8) packed by
 * marlin_pack_24() into
 *   B     I32 [k/32, 2n]   compressed values (MF 4.4)
 *   meta  I16 [k/32, 2n]   CUTLASS-interleaved metadata (MF 4.5)
 *   s     F16 [G, n]       scales, 8-wide permutation when G > 1 (MF 4.6)
 * and A is row-major [m, k] fp16, C row-major [m, n] fp16 (fully
 * overwritten; it need not be initialised).
 *
 * Numerics: grouped scales (G > 1) multiply the fp16 weights before the
 * tensor core (fp16 product, as IST Sparse-Marlin); per-channel scales
 * (G == 1) multiply the fp32 sums in the epilogue (unlike IST, which scales
 * in fp16 after rounding, MF 7.3, so no overflow at |sum| > 65504). Partial
 * sums of thread blocks that share output columns are reduced in fp32 in a
 * fixed order, so results are bit-for-bit deterministic for a given device
 * SM count.
 *
 * Shapes accepted (marlin_gemm24_check_shape): n % 128 == 0, k % 128 == 0,
 * group -1, 32, 64 or a multiple of 128 dividing k (g == k counts as
 * per-channel, as in pack/), any m >= 0 (m == 0 is a no-op); the GPU kernel
 * also needs k <= 2^24. All pointers 16-byte aligned.
 * Architecture: compute capability 8.0 or newer (mma.sp, cp.async); on 9.0
 * builds that target sm_90 also a wgmma.mma_async.sp path (opts.wgmma).
 */
#ifndef MARLIN_KERNELS24_H
#define MARLIN_KERNELS24_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks n, k and the group size against what the kernel supports.
 * MARLIN_ERR_SHAPE naming the broken rule otherwise. CPU-only, always
 * available. */
marlin_status marlin_gemm24_check_shape(int64_t n, int64_t k, int64_t group,
                                        marlin_error *err);

/* ---------------------------------------------------------------------- */
/* CPU reference (always built)                                            */
/* ---------------------------------------------------------------------- */

/* C_ref[m x n] (fp32) = A @ dequant(B, meta, s), computed by unpacking the
 * packed tensors through pack/ (marlin_unpack_24: the one definition of the
 * layout), dequantizing W = (q - 8) * s in fp32 and multiplying in fp32
 * with fp32 accumulation (OpenBLAS sgemm). A is fp16 bits [m, k]; B, meta,
 * s as described above, in host memory. `threads` as in pack/ (<= 0: all
 * CPUs). Errors: the unpacker's (bad meta nibble, shape), MARLIN_ERR_NOMEM. */
marlin_status marlin_gemm24_ref(const uint16_t *A, const uint32_t *B,
                                const uint16_t *meta, const uint16_t *s,
                                int64_t m, int64_t n, int64_t k,
                                int64_t group, int threads, float *C,
                                marlin_error *err);

/* ---------------------------------------------------------------------- */
/* GPU kernel                                                              */
/* ---------------------------------------------------------------------- */
/* Without CUDA (MARLIN_HAVE_CUDA undefined) every function of this block
 * returns MARLIN_ERR_UNSUPPORTED ("built without CUDA"). */

/* Device facts the launcher uses; filled by marlin_gemm24_device(). */
typedef struct marlin24_device_info {
    int device;         /* CUDA device ordinal */
    int sm_count;       /* multiprocessors */
    int cc_major, cc_minor;
    int smem_optin;     /* max dynamic shared memory per block (bytes) */
    char name[128];
} marlin24_device_info;

/* Probes the current CUDA device: MARLIN_ERR_NO_DEVICE (with the CUDA
 * message) when there is none, MARLIN_ERR_UNSUPPORTED below sm_80. */
marlin_status marlin_gemm24_device(marlin24_device_info *info,
                                   marlin_error *err);

/* Bytes of device workspace marlin_gemm24() needs for m rows and n output
 * columns on the current device. Rule: the workspace must be zeroed once
 * (cudaMemset) before its first use; every completed launch leaves it
 * zeroed again (the first bytes are per-column-slice counters that the
 * last thread block of each slice resets). It may be reused by later
 * launches on the same stream, but never by two launches that can run
 * concurrently. A workspace sized for m also serves any smaller m. */
marlin_status marlin_gemm24_workspace_size(int64_t m, int64_t n,
                                           size_t *bytes, marlin_error *err);

/* Tuning knobs for benchmarks; zero-initialise for the automatic choice. */
typedef struct marlin_gemm24_opts {
    int config;     /* 0 auto; else columns x dense k per pipeline stage:
                       1: 128 x 128 (any rows), 6: 256 x 128 (any rows),
                       and for 16 rows or fewer only 2: 256 x 256,
                       3: 128 x 256, 4: 128 x 512, 5: 64 x 512. A
                       configuration that does not exist for the rows or
                       does not fit the shape falls back to auto. */
    int loader;     /* 0 or 1: per-thread cp.async (the only loader; 2, the
                       former bulk-copy loader, is refused with
                       MARLIN_ERR_UNSUPPORTED) */
    int max_stages; /* 0 auto; else cap on the cp.async pipeline depth */
    int sms;        /* 0 all; else SMs to spread the work over */
    int blocks_per_sm; /* 0 auto; 1 or 2 resident blocks per SM (2 only
                          takes effect for 16 rows or fewer) */
    int cluster_k;  /* 0 auto; 1 never; 2..8: the cluster path (sm_90+):
                       the blocks of a thread-block cluster of this size
                       split each slice's k range and add their parts in
                       distributed shared memory (no workspace partials);
                       16-row chunks with configuration 3 or 4 only, at most
                       k / (dense k per stage) blocks. Auto: chosen on sm_90
                       for decode chunks (<= 16 rows) where the grid fits
                       2 blocks per SM (kernels/marlin24.cu has the rule) */
    int pdl;        /* 1: programmatic dependent launch (sm_90+; ignored
                       below): the kernel starts while the previous kernel
                       of the stream drains and prefetches its weights then,
                       so that kernel must not write B, meta or s. It waits
                       for it before reading A or touching C/workspace. */
    int wgmma;      /* the Hopper path (sm_90 only, builds that target
                       sm_90: marlin_gemm24_wgmma_built): the same GEMM on
                       wgmma.mma_async.sp with the decoded weights as its
                       register operand (kernels/marlin_dense_sm90a.cu).
                       0 auto (marlin_gemm24_pick_wgmma), 1 never, 2 always
                       (MARLIN_ERR_UNSUPPORTED where it cannot run: other
                       GPUs, not built, n % 256 != 0 or a group size that is
                       not a power of two). config, blocks_per_sm,
                       max_stages, sms and cluster_k > 1 tune the mma.sp
                       kernels only; with any of them set, auto means the
                       mma.sp kernels. */
    int wg_rows;    /* wgmma path: batch rows per tile, 32, 64 or 128; 0:
                       marlin_gemm24_wgmma_tile */
    int wg_splits;  /* wgmma path: pieces each tile's k range is cut into,
                       adding fp32 partials through the workspace in a fixed
                       order; 0: marlin_gemm24_wgmma_tile */
} marlin_gemm24_opts;

/* 1 when this build has the wgmma kernels (CMAKE_CUDA_ARCHITECTURES names
 * 90), else 0. */
int marlin_gemm24_wgmma_built(void);

/* The automatic choice of the wgmma path for a call (pure rule, CPU-only;
 * the launcher also needs the kernels built): 1 on compute capability 9.0
 * for more than MARLIN_GEMM24_WGMMA_MIN_ROWS rows when n % 256 == 0 and the
 * group is -1, k, or a power of two. 16: from 24 rows up it ties or beats
 * the mma.sp kernels on every Llama model of marlin-bench, at 16 and below
 * they are 1.4-1.6x faster (session 4, run 2, H100; docs/perf.md). */
#define MARLIN_GEMM24_WGMMA_MIN_ROWS 16
int marlin_gemm24_pick_wgmma(int64_t m, int64_t n, int64_t k, int64_t group, int cc_major,
                             int cc_minor);

/* The wgmma path's tile for m rows on sm_count SMs (pure rule, CPU-only):
 * *rows (32, 64 or 128: the narrowest that holds m; 64 with one piece per
 * SM where 128-row tiles would cut k into pieces shallower than 768) and
 * *splits (k pieces per tile: one wave of resident blocks, each piece at
 * least 512 deep, at most 16). A forced rows (> 0 on entry) is kept and
 * only splits chosen. */
void marlin_gemm24_wgmma_tile(int64_t m, int64_t n, int64_t k, int sm_count, int *rows,
                              int *splits);

/* C = A @ W on the GPU (all pointers device memory, see the top comment).
 * `stream` is a cudaStream_t (NULL = the default stream). The call is
 * asynchronous; errors of the launch itself are reported (CUDA error string
 * in err), errors during execution surface at the next synchronisation.
 * Errors: MARLIN_ERR_SHAPE (n, k, group), MARLIN_ERR_INVALID_ARG (NULL or
 * misaligned pointer, workspace too small, blocks_per_sm outside 0..2,
 * wgmma outside 0..2, wg_rows not 0/32/64/128, wg_splits < 0),
 * MARLIN_ERR_UNSUPPORTED (arch, loader 2, or no configuration fits the
 * device's shared memory), MARLIN_ERR_CUDA. */
marlin_status marlin_gemm24(const void *A, const void *B, const void *meta,
                            const void *s, void *C, int64_t m, int64_t n,
                            int64_t k, int64_t group, void *workspace,
                            size_t workspace_bytes, void *stream,
                            marlin_error *err);

/* Same with tuning options (opts may be NULL). */
marlin_status marlin_gemm24_ex(const void *A, const void *B, const void *meta,
                               const void *s, void *C, int64_t m, int64_t n,
                               int64_t k, int64_t group, void *workspace,
                               size_t workspace_bytes, void *stream,
                               const marlin_gemm24_opts *opts,
                               marlin_error *err);

/* ---------------------------------------------------------------------- */
/* Benchmark helpers (marlin-bench --sparse)                               */
/* ---------------------------------------------------------------------- */

typedef struct marlin24_bench_result {
    double sec_sparse;    /* median seconds per call, 2:4 kernel */
    double sec_cublas;    /* same for cublasGemmEx fp16 (fp32 compute) */
    double bytes_sparse;  /* B + meta + s + A + C bytes of one call */
    double bytes_cublas;  /* fp16 W + A + C */
    int rotated_copies;   /* weight copies cycled through (beyond L2) */
} marlin24_bench_result;

/* Fills `bytes` (multiple of 4) of device memory with random VALID 2:4
 * metadata (every nibble one of the six ordered index pairs mma.sp accepts;
 * random words would not be), deterministically from `seed`, on `stream`
 * (a cudaStream_t, NULL = default). For benchmarks on random weights. */
marlin_status marlin_bench24_fill_meta(void *meta, size_t bytes, uint64_t seed,
                                       void *stream, marlin_error *err);

/* Device-to-device copy bandwidth (bytes read + written per second / 1e9),
 * median of 10 copies of 1 GiB after 2 warm-ups. */
marlin_status marlin_bench24_copy_bandwidth(double *gbps, marlin_error *err);

/* Times one layer shape: `batches` timed batches of `calls` back-to-back
 * calls each (after a warm-up), cycling through enough random weight
 * copies (>= 256 MiB in all) that no weight is read from L2; per-call
 * median over the batches. use_graph: the batch is captured once in a CUDA
 * graph and replayed (no host launch overhead), else launched from the
 * host. with_cublas: also times cublasGemmEx on fp16 weights of the same
 * shape. Needs the free memory for the copies. */
marlin_status marlin_bench24_layer(int64_t m, int64_t n, int64_t k,
                                   int64_t group,
                                   const marlin_gemm24_opts *opts,
                                   int batches, int calls, int use_graph,
                                   int with_cublas,
                                   marlin24_bench_result *res,
                                   marlin_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_KERNELS24_H */
