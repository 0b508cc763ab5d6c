/*
 * marlin_cuda_internal.h - PRIVATE to the kernels/ .cu files: turning CUDA/cuBLAS
 * failures into marlin_status + one message line (style.md habit 13: the
 * call, file:line, device and cudaGetErrorString), and a per-device cache
 * of the properties every launch needs. Not installed.
 */
#ifndef MARLIN_CUDA_INTERNAL_H
#define MARLIN_CUDA_INTERNAL_H

#include <cuda_runtime.h>

#include "marlin_kernels.h"

/* Maps a failed CUDA runtime call to a status and fills err:
 * cudaErrorNoDevice / cudaErrorInsufficientDriver -> MARLIN_ERR_NO_DEVICE,
 * cudaErrorNoKernelImageForDevice / InvalidDeviceFunction ->
 * MARLIN_ERR_UNSUPPORTED (the build lacks code for this GPU), anything else
 * -> MARLIN_ERR_CUDA. Returns MARLIN_OK for cudaSuccess. */
marlin_status mk_cuda_status(cudaError_t ce, const char *what,
                             const char *file, int line, marlin_error *err);

/* st = MK_CUDA(err, cudaFoo(...)); if (st) goto out;  -- the macro only adds
 * the call text and position; control flow stays at the call site. */
#define MK_CUDA(err, call) mk_cuda_status((call), #call, __FILE__, __LINE__, (err))

/* Properties of one device, read once (cudaGetDeviceProperties is slow
 * enough to matter on a hot launch path). */
typedef struct mk_device {
    int sm_count;
    int cc_major, cc_minor;
    int64_t smem_optin; /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
    int64_t smem_per_sm; /* cudaDevAttrMaxSharedMemoryPerMultiprocessor */
} mk_device;

/* Current device's index and cached properties. */
marlin_status mk_current_device(int *device, const mk_device **props,
                                marlin_error *err);

/* A kernel launch configuration for cudaLaunchKernelEx with programmatic
 * dependent launch (pdl) and/or clusters of `cluster` blocks along x
 * (cluster > 1); attr must hold 2 entries and outlive the launch. */
void mk_launch_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute *attr, unsigned grid,
                      unsigned block, size_t smem, void *stream, int pdl, int cluster);

/* Whether at least one cluster of cfg's shape can be resident
 * (cudaOccupancyMaxActiveClusters): MARLIN_OK, MARLIN_ERR_INVALID_ARG
 * (naming `what`, the size and the device) when none can, or the CUDA
 * error. A launch that could never be resident would otherwise fail as a
 * CUDA error; callers treat this as a bad option. */
marlin_status mk_cluster_fits(const void *fn, const cudaLaunchConfig_t *cfg, int cluster,
                              int device, const char *what, marlin_error *err);

/* The Hopper wgmma path of the dense GEMM (marlin_dense_sm90a.cu, built
 * for sm_90a only, and only when the build targets sm_90; marlin_dense.cu
 * has the stand-ins otherwise). launch: validates the forced or chosen tile
 * *t against args *a (already shape- and pointer-checked) and enqueues the
 * kernel. */
#ifdef __cplusplus
extern "C" {
#endif
marlin_status mk_dense_wgmma_launch(const marlin_dense_args *a, const marlin_dense_tile *t,
                                    int dev, const mk_device *d, marlin_error *err);
/* The dense kernels' workspace layout (marlin_kernels.h): a call's tile
 * counters at the start, its fp32 partials at the end of the buffer, so
 * that a buffer sized for (max_m, n) keeps every call's partials clear of
 * the counters of any later call (the zeroing rule). Checks the size and
 * gives the partials' 256-aligned offset, or MARLIN_ERR_INVALID_ARG with
 * the sizes. */
marlin_status mk_dense_workspace_split(const marlin_dense_args *a, size_t counters_bytes,
                                       size_t partial_bytes, size_t *partial_off,
                                       marlin_error *err);

/* The same kernel for 2:4 sparse weights (wgmma.mma_async.sp), reached
 * through marlin_gemm24_ex on sm_90 (marlin24.cu has the stand-in for
 * builds without sm_90a). The 2:4 launcher has checked the GPU, shapes
 * (marlin_gemm24_pick_wgmma's conditions), pointers, options and the
 * workspace size; it hands over its workspace areas. */
typedef struct mk_sparse_wg_args {
    const void *A, *B, *meta, *s; /* as marlin_gemm24 */
    void *C;
    int64_t m, n, k, group;
    int *counters;       /* zero at rest (the 2:4 workspace's counter area) */
    size_t counters_cap; /* ints in it: tiles of one launch; more rows run
                            as further launches */
    void *partials;      /* fp32 partial sums, 16-byte aligned */
    size_t partials_cap; /* bytes */
    void *stream;
    int pdl;
    int rows;            /* tile rows 32, 64 or 128; 0: marlin_gemm24_wgmma_tile */
    int splits;          /* k pieces per tile; 0: marlin_gemm24_wgmma_tile */
} mk_sparse_wg_args;
marlin_status mk_sparse_wgmma_launch(const mk_sparse_wg_args *a, int dev, const mk_device *d,
                                     marlin_error *err);
#ifdef __cplusplus
}
#endif

#endif
