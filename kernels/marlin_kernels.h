/*
 * marlin_kernels.h - GPU kernels of the marlin toolchain behind a plain C API,
 * and the CPU reference of every kernel.
 *
 * Contents
 *   1. GPU availability probe and small device-memory helpers, so that tools
 *      and tests written in C never include a CUDA header.
 *   2. Dense Marlin FP16 x INT4 GEMM (our own implementation of the contract
 *      in docs/reference/marlin-format.md sections 1-2):
 *          C[m][n] (fp16) = A[m][k] (fp16) @ W[k][n],  W = (q - 8) * s
 *      reading B and s exactly as pack/ writes them (IST-DASLab/marlin
 *      Layer.pack layout), with its workspace rule.
 *   3. CPU references (suffix _ref): always built, CPU-only builds included.
 *   4. Benchmark support: event timing of a launch callback (CUDA graphs),
 *      device-to-device copy bandwidth, cuBLAS FP16 baseline.
 *
 * Build modes. With CUDA (MARLIN_HAVE_CUDA) the GPU entry points run on the
 * current CUDA device of the calling thread. Without CUDA every GPU entry
 * point returns MARLIN_ERR_UNSUPPORTED with the message "built without
 * CUDA" (a disabled feature, never a fake result); the _ref functions and
 * the pure helpers (shape check, workspace size) work in both modes.
 *
 * Statuses used by the GPU entry points (stable, tools and tests compare):
 *   MARLIN_ERR_INVALID_ARG  NULL or misaligned pointer, workspace too small,
 *                           a forced tile that has no instantiated kernel or
 *                           a pipeline the GPU cannot run
 *   MARLIN_ERR_SHAPE        shape outside the contract (see
 *                           marlin_dense_check_shape)
 *   MARLIN_ERR_UNSUPPORTED  built without CUDA; GPU older than sm_80; or no
 *                           kernel image for this GPU in the build
 *   MARLIN_ERR_NO_DEVICE    no usable CUDA device / driver (message carries
 *                           the CUDA error string)
 *   MARLIN_ERR_CUDA         any other CUDA runtime or cuBLAS failure; the
 *                           message names the call, file:line, the device and
 *                           cudaGetErrorString
 * Nothing here prints, exits or aborts.
 */
#ifndef MARLIN_KERNELS_H
#define MARLIN_KERNELS_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* 1. GPU probe and device memory                                           */
/* ======================================================================== */

typedef struct marlin_gpu_info {
    int device;               /* CUDA device index */
    char name[256];           /* e.g. "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor;   /* compute capability */
    int sm_count;             /* streaming multiprocessors */
    int64_t l2_bytes;         /* L2 cache size */
    int64_t smem_optin_bytes; /* max dynamic shared memory per block (opt-in) */
    int64_t global_mem_bytes; /* device memory */
    int driver_version;       /* cudaDriverGetVersion, e.g. 13000 */
    int runtime_version;      /* cudaRuntimeGetVersion */
} marlin_gpu_info;

/* Fills *info for CUDA device `device` (-1: the current device) and makes it
 * the current device of the calling thread.
 * @return MARLIN_OK; MARLIN_ERR_NO_DEVICE when cudaGetDeviceCount fails or
 *   finds no device (the message carries the CUDA error); MARLIN_ERR_INVALID_ARG
 *   for an index out of range; MARLIN_ERR_UNSUPPORTED when built without CUDA
 *   or when the device is older than sm_80 (*info is still filled then). */
marlin_status marlin_gpu_probe(int device, marlin_gpu_info *info,
                               marlin_error *err);

/* Device memory on the current device. marlin_gpu_free(NULL) is a no-op.
 * upload/download/memset are synchronous with the whole device: they start
 * after all work already enqueued on any stream has finished and are
 * complete when they return (convenient and race-free for tools and tests;
 * not meant for hot paths). */
marlin_status marlin_gpu_alloc(void **ptr, size_t bytes, marlin_error *err);
void marlin_gpu_free(void *ptr);
marlin_status marlin_gpu_upload(void *dst_dev, const void *src_host,
                                size_t bytes, marlin_error *err);
marlin_status marlin_gpu_download(void *dst_host, const void *src_dev,
                                  size_t bytes, marlin_error *err);
marlin_status marlin_gpu_memset(void *dst_dev, int byte, size_t bytes,
                                marlin_error *err);
/* cudaDeviceSynchronize; reports asynchronous kernel faults. */
marlin_status marlin_gpu_sync(marlin_error *err);
/* Non-blocking stream (cudaStreamNonBlocking); destroy accepts NULL. */
marlin_status marlin_gpu_stream_create(void **stream, marlin_error *err);
void marlin_gpu_stream_destroy(void *stream);
marlin_status marlin_gpu_stream_sync(void *stream, marlin_error *err);

/* Fills device memory with pseudo-random data from a counter-based hash of
 * (seed, index), on `stream` (NULL: default stream). For benchmarks, where
 * uploading hundreds of MB from the host would dominate. */
typedef enum marlin_fill_kind {
    MARLIN_FILL_BITS = 0,    /* `count` uniformly random 32-bit words */
    MARLIN_FILL_F16_UNIFORM  /* `count` fp16 values uniform in [lo, hi) */
} marlin_fill_kind;
marlin_status marlin_gpu_fill(void *dst_dev, marlin_fill_kind kind,
                              size_t count, uint64_t seed, float lo, float hi,
                              void *stream, marlin_error *err);

/* ======================================================================== */
/* 2. Dense Marlin GEMM                                                     */
/* ======================================================================== */
/*
 * Operands (all device pointers, 16-byte aligned, densely packed rows):
 *   A  fp16 [m][k] row-major (row stride exactly k)
 *   B  int32 [k/16][2n]: 4-bit codes q in Marlin tiles; element (k, n) in
 *      word 128*(n/64) + 4*lane + (n%64)/16 of row k/16 with
 *      lane = 4*(n%8) + (k%8)/2, nibble 4*(k%2) + 2*((n%16)/8) + (k%16)/8
 *      (marlin-format.md 1.4; pack/ holds the one definition)
 *   s  fp16 [G][n], G = k/group_size when grouped, else 1. Grouped scales
 *      (group_size != -1 and group_size < k) are permuted by the 8x8
 *      transpose per 64 columns, per-channel scales (group_size == -1, or
 *      group_size == k) by the 32-column shuffle (marlin-format.md 1.6).
 *   C  fp16 [m][n] row-major, fully overwritten (need not be initialised).
 * Shapes: m >= 1 (m == 0 is accepted and does nothing), k % 128 == 0,
 *   n % 64 == 0, group_size in {32, 64, 128, -1}; m < 2^31, n and k at
 *   most 2^24, k * n < 2^40.
 * Numerics: W is dequantized to fp16 exactly ((q-8) is exact, times the fp16
 *   scale rounded to fp16 in grouped mode), products accumulate in fp32 on
 *   the tensor cores, partial sums of blocks that split k meet in an fp32
 *   workspace and are added in a fixed order (the result does not depend on
 *   block timing), per-channel scales are applied in fp32, and C is rounded
 *   to fp16 once (round to nearest). |C| > 65504 becomes +-inf.
 * Needs sm_80 or newer (cp.async, ldmatrix, mma.sync.m16n8k16).
 */

/* How a dense kernel moves weights and activations into shared memory. */
typedef enum marlin_dense_pipeline {
    MARLIN_DENSE_PIPE_AUTO = 0,    /* the best measured one per shape
                                      (docs/perf.md) */
    MARLIN_DENSE_PIPE_CPASYNC = 1, /* every thread issues 16-byte cp.async,
                                      a block barrier per stage (sm_80+) */
    MARLIN_DENSE_PIPE_BULK = 2,    /* mbarrier stages refilled by the last
                                      warp done with them; B by
                                      cp.async.bulk (sm_90+) */
    MARLIN_DENSE_PIPE_MBAR = 3,    /* the same, all copies by cp.async
                                      (sm_90+) */
    MARLIN_DENSE_PIPE_CPASYNC2 = 4, /* cp.async with the v2 main loop (the
                                      2:4 kernel's structure: a warp's whole
                                      k range per stage unrolled, fragments
                                      double-buffered in registers, stages
                                      up to 256 deep, one-thread
                                      release/acquire fix-up; sm_80+). Its
                                      own tile shapes (marlin_dense_tiles) */
    MARLIN_DENSE_PIPE_WGMMA = 5    /* Hopper (sm_90 exactly; kernels built
                                      for sm_90a, see
                                      marlin_dense_wgmma_built): C^T = W^T
                                      A^T on wgmma with the decoded weights
                                      as the register operand; cp.async
                                      stages 64 deep, k split over blocks
                                      with fixed-order fp32 partials. Tiles:
                                      m_blocks 2, 4 or 8 (32, 64, 128 rows;
                                      more rows run more row tiles), n 256,
                                      k 64, stages 4..8; n % 256 == 0.
                                      Automatic above
                                      16 rows (marlin_dense_pick_wgmma) */
} marlin_dense_pipeline;
/* Forcing an sm_90+ pipeline on an older GPU is MARLIN_ERR_INVALID_ARG;
 * so is forcing WGMMA on a GPU other than sm_90. */

/* One threadblock tile of the dense kernel. Only combinations with an
 * instantiated kernel are accepted (marlin_dense_tiles lists them). */
typedef struct marlin_dense_tile {
    int m_blocks;      /* rows per tile / 16: 1..4 (m > 64 runs 64-row chunks;
                          WGMMA: 2, 4 or 8) */
    int n;             /* columns per tile: 64, 128 or 256 */
    int k;             /* reduction depth per pipeline stage: 128 (or 256
                          for CPASYNC2 tiles, 64 for WGMMA; must divide the
                          problem k) */
    int stages;        /* pipeline depth: 2..8 (0: largest that fits) */
    int blocks_per_sm; /* resident blocks per SM wanted: 1 or 2 (0: auto;
                          WGMMA ignores it: its 32/64-row kernels run 2,
                          the 128-row one 1) */
    int pipeline;      /* marlin_dense_pipeline (0: automatic) */
    int cluster_k;     /* CPASYNC2 on sm_90+ only: 2..8 = the blocks of a
                          thread-block cluster of this size split each
                          slice's k range evenly and add their parts in
                          distributed shared memory (no workspace partials,
                          no counters); needs cluster_k <= k / tile k.
                          0 or 1: stream-K (any GPU) */
    int k_splits;      /* WGMMA only: pieces each output tile's k range is
                          cut into (0: marlin_dense_wgmma_splits), adding
                          their fp32 partials through the workspace; more
                          than one needs tiles x pieces <= 2 x SMs. WGMMA
                          has no cluster path: cluster_k > 1 with it is
                          MARLIN_ERR_INVALID_ARG */
} marlin_dense_tile;

/* Instantiated tile shapes: writes up to `cap` entries (stages and
 * blocks_per_sm 0) and returns the total count. Entries with pipeline 0
 * exist for the CPASYNC, BULK and MBAR pipelines; entries with pipeline
 * CPASYNC2 exist for that pipeline only (and must be forced with it). */
int marlin_dense_tiles(marlin_dense_tile *out, int cap);

/* The tile the automatic heuristic picks for this problem on a GPU with
 * `sm_count` SMs and `smem_optin` bytes of shared memory per block. The
 * returned tile's pipeline is AUTO or the one that heuristic chose (a
 * CPASYNC2 shape always comes with pipeline CPASYNC2). */
marlin_status marlin_dense_pick_tile(int64_t m, int64_t n, int64_t k,
                                     int32_t group_size, int sm_count,
                                     int64_t smem_optin,
                                     marlin_dense_tile *tile,
                                     marlin_error *err);

/* The best tile of one pipeline family by its own heuristic (benchmarks
 * compare families with it): CPASYNC, BULK or MBAR give the original
 * kernel's heuristic with that pipeline set, CPASYNC2 the v2 kernel's
 * (falling back to CPASYNC for shapes it has no tile for: n not a multiple
 * of 128), WGMMA the Hopper path's tile at any m (the returned pipeline is
 * CPASYNC2's or CPASYNC's where n is not a multiple of 256: callers see
 * which in tile->pipeline), AUTO the same as marlin_dense_pick_tile. */
marlin_status marlin_dense_pick_tile_pipe(int64_t m, int64_t n, int64_t k,
                                          int32_t group_size, int sm_count,
                                          int64_t smem_optin, int pipeline,
                                          marlin_dense_tile *tile,
                                          marlin_error *err);

/* The automatic choice of the cluster path (tile.cluster_k) on sm_90+
 * GPUs, made by marlin_dense_gemm on top of marlin_dense_pick_tile when
 * the caller forces no tile: returns 1 and writes *tile when the cluster
 * path is chosen for this problem (decode batches: m <= 16 on layers of
 * up to ~40 MB of weights, 17-32 rows on layers of up to ~10 MB; the rule
 * and its measurement are in
 * kernels/marlin_dense_host.c and docs/perf.md), else 0 and leaves *tile
 * alone. Pure function; the caller checks the compute capability. */
int marlin_dense_pick_cluster(int64_t m, int64_t n, int64_t k,
                              int32_t group_size, int sm_count,
                              int64_t smem_optin, marlin_dense_tile *tile);

/* The Hopper path (MARLIN_DENSE_PIPE_WGMMA). marlin_dense_wgmma_built: 1
 * when this build holds the sm_90a kernels (CMake builds them whenever
 * CMAKE_CUDA_ARCHITECTURES names 90), else 0; forcing the pipeline then is
 * MARLIN_ERR_UNSUPPORTED. marlin_dense_pick_wgmma: the automatic choice of
 * that path, made by marlin_dense_gemm on sm_90 GPUs when the caller forces
 * no tile: returns 1 and writes *tile when it is chosen for this problem
 * (the rule and its measurement: kernels/marlin_dense_host.c), else 0 and
 * leaves *tile alone. marlin_dense_wgmma_splits: the k pieces per output
 * tile that rule uses for tiles of m_blocks x 16 rows (0: the rule's width
 * for m): as many as keep the launch to one wave of resident blocks, each
 * piece at least 512 deep, at most 16. Pure functions. */
int marlin_dense_wgmma_built(void);
int marlin_dense_pick_wgmma(int64_t m, int64_t n, int64_t k, int32_t group_size,
                            int sm_count, int64_t smem_optin,
                            marlin_dense_tile *tile);
int marlin_dense_wgmma_splits(int64_t m, int64_t n, int64_t k, int m_blocks, int sm_count);

/* Checks a problem against the contract above (pure function).
 * @return MARLIN_OK or MARLIN_ERR_SHAPE naming the broken rule. */
marlin_status marlin_dense_check_shape(int64_t m, int64_t n, int64_t k,
                                       int32_t group_size, marlin_error *err);

/*
 * Workspace. One device buffer per stream, of at least
 * marlin_dense_workspace_bytes(max_m, n_max, sm_count) bytes, serves every
 * call with m <= max_m and n <= n_max (sm_count: marlin_gpu_info.sm_count).
 * Layout: bytes [0, marlin_dense_workspace_counter_bytes(max_m, n_max)) hold
 * one 32-bit counter per output tile; fp32 partial sums of blocks that
 * split k use the END of the buffer and need no initialisation.
 * Zeroing rule: the counters must be zero before a call, and every call
 * leaves them zero again when it completes. So cudaMemset the whole buffer
 * to 0 once after allocation (marlin_gpu_memset) and reuse it for any number
 * of calls on one stream. Never let two calls that may run concurrently
 * (two streams) share it. After a call failed with MARLIN_ERR_CUDA (a
 * kernel may have stopped half-way), zero it again.
 * Both sizes are 0 for arguments outside the contract (m < 1, n < 64, ...).
 */
size_t marlin_dense_workspace_bytes(int64_t max_m, int64_t n, int sm_count);
size_t marlin_dense_workspace_counter_bytes(int64_t max_m, int64_t n);

typedef struct marlin_dense_args {
    const void *A;          /* fp16 [m][k] */
    const void *B;          /* int32 [k/16][2n] */
    const void *s;          /* fp16 [G][n] */
    void *C;                /* fp16 [m][n] */
    int64_t m, n, k;
    int32_t group_size;     /* 32, 64, 128, or -1 (per output channel) */
    void *workspace;        /* see marlin_dense_workspace_bytes */
    size_t workspace_bytes;
    void *stream;           /* cudaStream_t, or NULL for the default stream */
    const marlin_dense_tile *tile; /* NULL: automatic choice (normal use);
                                      set by benchmarks to force a tile */
    int pdl;                /* 1: programmatic dependent launch on sm_90+
                               (ignored on older GPUs): the kernel may start
                               while the previous kernel on the stream is
                               still running and prefetch B and s meanwhile;
                               it waits for that kernel to complete before
                               it touches A, C or the workspace. Only set it
                               when the immediately preceding kernel(s) on
                               the stream do not write B or s (true for
                               static weights). 0: plain stream order. */
    void *trace;            /* diagnostics, normally NULL; only in builds with
                               -DMARLIN_TRACE=ON (marlin_dense_trace_built):
                               a device buffer of
                               MARLIN_DENSE_TRACE_SLOTS 64-bit words per
                               block (2 * sm_count blocks at most; on the
                               cluster path n/tile_n * row chunks *
                               cluster_k); the v2
                               kernels (pipeline CPASYNC2) write per block:
                               SM id, %globaltimer ns at entry, after the PDL
                               wait, first stage ready, last segment end
                               start, exit, its unit count, then (last
                               segment end) after the block's k-split tree,
                               after the cross-block step (cluster barrier,
                               or the count of a split slice; 0 if none),
                               and before the final cp.async wait
                               (marlin-bench --mode trace). Other pipelines
                               ignore it. */
} marlin_dense_args;

#define MARLIN_DENSE_TRACE_SLOTS 12

/* 1 when the kernels were built with the timeline tracing (CMake
 * -DMARLIN_TRACE=ON); otherwise marlin_dense_args.trace is ignored. 0
 * without CUDA. */
int marlin_dense_trace_built(void);

/* Enqueues C = A @ dequant(B, s) on args->stream; returns after the launch
 * (asynchronous like any CUDA launch; fault reports come from a later sync).
 * Validates everything before launching; on any error nothing is launched
 * (except MARLIN_ERR_CUDA from the launch itself). */
marlin_status marlin_dense_gemm(const marlin_dense_args *args,
                                marlin_error *err);

/* ======================================================================== */
/* 3. CPU references                                                        */
/* ======================================================================== */

/* W[k][n] (fp32, row-major) = (q - 8) * s decoded from Marlin tiles B and
 * permuted scales s (host memory), through pack/'s layout functions. The
 * values are exact: (q-8) * fp16 needs at most 15 significant bits. */
marlin_status marlin_dense_dequant_ref(const uint32_t *B, const uint16_t *s,
                                       int64_t n, int64_t k,
                                       int32_t group_size, float *W,
                                       marlin_error *err);

/* C[m][n] (fp32) = A[m][k] (fp16 bits) @ W with W from
 * marlin_dense_dequant_ref; fp32 OpenBLAS sgemm (no fp16 rounding of the
 * output, so callers see the exact-as-possible reference). Host memory. */
marlin_status marlin_dense_gemm_ref(const uint16_t *A, const uint32_t *B,
                                    const uint16_t *s, float *C, int64_t m,
                                    int64_t n, int64_t k, int32_t group_size,
                                    marlin_error *err);

/* ======================================================================== */
/* 4. Benchmark support                                                     */
/* ======================================================================== */

/* One launch of the code under test; `iter` counts launches inside a timed
 * batch (0, 1, ...) so the callback can rotate through weight copies. It
 * must enqueue its work on `stream` and must not synchronize. */
typedef marlin_status (*marlin_gpu_launch_fn)(void *user, int64_t iter,
                                              void *stream,
                                              marlin_error *err);

typedef struct marlin_gpu_timing {
    double median_us;  /* per launch: median over samples of batch time/batch */
    double min_us, max_us;
    int samples;       /* timed samples */
    int batch;         /* launches per sample */
    int graph;         /* 1: each sample replayed a captured CUDA graph */
} marlin_gpu_timing;

/* Times `fn`: captures `batch` consecutive launches (iter 0..batch-1) into a
 * CUDA graph (falls back to plain launches if capture fails), replays it
 * `warmup` times, then `samples` times between CUDA events; reports the
 * per-launch median. `stream` must be a non-default stream
 * (marlin_gpu_stream_create). */
marlin_status marlin_gpu_time(marlin_gpu_launch_fn fn, void *user,
                              void *stream, int warmup, int batch,
                              int samples, marlin_gpu_timing *out,
                              marlin_error *err);

/* Device-to-device copy bandwidth: bytes read + bytes written per second
 * for a cudaMemcpyAsync of `bytes` (median of `samples`), the denominator of
 * the bench's "fraction of the bandwidth limit". */
marlin_status marlin_gpu_copy_bandwidth(size_t bytes, int samples,
                                        void *stream, double *bytes_per_s,
                                        marlin_error *err);

/* The launch floor (marlin-bench --mode floor, a diagnostic): one launch of
 * a kernel that only moves a layer's bytes - reads in[0..3] (weights,
 * 2:4 metadata and scales, then A; a NULL / 0-byte input is skipped),
 * writes c_bytes of C - and computes nothing, with `blocks` x `threads`
 * (8 independent 16-byte loads in flight per thread). pdl: 0 none; 1 the
 * whole kernel after griddepcontrol.wait (as a GEMM whose weights wait for
 * the previous kernel); 2 the weights before it, A and C after (every
 * weight prefetched while the previous kernel drains: a bound no GEMM
 * reaches, since it cannot hold a whole layer); 3 the weights prefetched
 * into L2 (cp.async.bulk.prefetch.L2) before it, then everything read
 * after it (the cross-launch prefetch a GEMM could do). Byte counts
 * multiples of 16. */
#define MARLIN_FLOOR_INPUTS 4
typedef struct marlin_stream_floor_args {
    const void *in[MARLIN_FLOOR_INPUTS];
    size_t in_bytes[MARLIN_FLOOR_INPUTS];
    void *C;
    size_t c_bytes;
    int blocks, threads;
    int pdl;
    void *stream;
} marlin_stream_floor_args;
marlin_status marlin_stream_floor(const marlin_stream_floor_args *a,
                                  marlin_error *err);

/* cuBLAS FP16 baseline: C[m][n] = A[m][k] @ Wt[n][k]^T (what
 * torch.nn.functional.linear runs), fp16 in/out, fp32 compute
 * (CUBLAS_COMPUTE_32F, no TF32), default algorithm. */
typedef struct marlin_cublas marlin_cublas;
marlin_status marlin_cublas_create(marlin_cublas **h, void *stream,
                                   marlin_error *err);
void marlin_cublas_free(marlin_cublas *h); /* NULL: no-op */
marlin_status marlin_cublas_gemm_f16(marlin_cublas *h, const void *A,
                                     const void *Wt, void *C, int64_t m,
                                     int64_t n, int64_t k, marlin_error *err);

#ifdef __cplusplus
}
#endif

/* ======================================================================== */
/* 5. 2:4 sparse GEMM (Sparse-Marlin layout, mma.sp), its CPU reference and */
/*    benchmark helpers: a separate header, owned by the 2:4 kernel.        */
/* ======================================================================== */
#include "marlin_kernels24.h"

#endif /* MARLIN_KERNELS_H */
