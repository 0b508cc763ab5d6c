/*
 * marlin_nocuda.c - the GPU entry points of marlin_kernels.h in a build
 * without CUDA (MARLIN_HAVE_CUDA undefined): each one reports the disabled
 * feature as MARLIN_ERR_UNSUPPORTED "built without CUDA" and touches
 * nothing. A CUDA build compiles this file to nothing (the real definitions
 * live in the kernels/ .cu files), so a CPU-only library never references CUDA.
 */
#include "marlin_kernels.h"

#ifndef MARLIN_HAVE_CUDA

#include <string.h>

static marlin_status no_cuda(marlin_error *err, const char *what) {
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "%s: built without CUDA (rebuild with nvcc available and "
                       "-DMARLIN_CUDA=ON)",
                       what);
}

marlin_status marlin_gpu_probe(int device, marlin_gpu_info *info, marlin_error *err) {
    (void)device;
    if (info) memset(info, 0, sizeof *info);
    return no_cuda(err, "gpu probe");
}

marlin_status marlin_gpu_alloc(void **ptr, size_t bytes, marlin_error *err) {
    (void)bytes;
    if (ptr) *ptr = NULL;
    return no_cuda(err, "gpu alloc");
}

void marlin_gpu_free(void *ptr) { (void)ptr; }

marlin_status marlin_gpu_upload(void *dst, const void *src, size_t bytes, marlin_error *err) {
    (void)dst, (void)src, (void)bytes;
    return no_cuda(err, "gpu upload");
}

marlin_status marlin_gpu_download(void *dst, const void *src, size_t bytes,
                                  marlin_error *err) {
    (void)dst, (void)src, (void)bytes;
    return no_cuda(err, "gpu download");
}

marlin_status marlin_gpu_memset(void *dst, int byte, size_t bytes, marlin_error *err) {
    (void)dst, (void)byte, (void)bytes;
    return no_cuda(err, "gpu memset");
}

marlin_status marlin_gpu_sync(marlin_error *err) { return no_cuda(err, "gpu sync"); }

marlin_status marlin_gpu_stream_create(void **stream, marlin_error *err) {
    if (stream) *stream = NULL;
    return no_cuda(err, "gpu stream");
}

void marlin_gpu_stream_destroy(void *stream) { (void)stream; }

marlin_status marlin_gpu_stream_sync(void *stream, marlin_error *err) {
    (void)stream;
    return no_cuda(err, "gpu stream sync");
}

marlin_status marlin_gpu_fill(void *dst, marlin_fill_kind kind, size_t count, uint64_t seed,
                              float lo, float hi, void *stream, marlin_error *err) {
    (void)dst, (void)kind, (void)count, (void)seed, (void)lo, (void)hi, (void)stream;
    return no_cuda(err, "gpu fill");
}

marlin_status marlin_dense_gemm(const marlin_dense_args *args, marlin_error *err) {
    (void)args;
    return no_cuda(err, "dense gemm");
}

marlin_status marlin_gpu_time(marlin_gpu_launch_fn fn, void *user, void *stream, int warmup,
                              int batch, int samples, marlin_gpu_timing *out,
                              marlin_error *err) {
    (void)fn, (void)user, (void)stream, (void)warmup, (void)batch, (void)samples;
    if (out) memset(out, 0, sizeof *out);
    return no_cuda(err, "gpu timing");
}

marlin_status marlin_gpu_copy_bandwidth(size_t bytes, int samples, void *stream,
                                        double *bytes_per_s, marlin_error *err) {
    (void)bytes, (void)samples, (void)stream;
    if (bytes_per_s) *bytes_per_s = 0.0;
    return no_cuda(err, "copy bandwidth");
}

marlin_status marlin_stream_floor(const marlin_stream_floor_args *a, marlin_error *err) {
    (void)a;
    return no_cuda(err, "stream floor");
}

marlin_status marlin_cublas_create(marlin_cublas **h, void *stream, marlin_error *err) {
    (void)stream;
    if (h) *h = NULL;
    return no_cuda(err, "cuBLAS");
}

void marlin_cublas_free(marlin_cublas *h) { (void)h; }

marlin_status marlin_cublas_gemm_f16(marlin_cublas *h, const void *A, const void *Wt, void *C,
                                     int64_t m, int64_t n, int64_t k, marlin_error *err) {
    (void)h, (void)A, (void)Wt, (void)C, (void)m, (void)n, (void)k;
    return no_cuda(err, "cuBLAS");
}

int marlin_dense_trace_built(void) { return 0; }
int marlin_dense_wgmma_built(void) { return 0; }

#else
/* ISO C forbids an empty translation unit. */
typedef int marlin_nocuda_unused;
#endif
