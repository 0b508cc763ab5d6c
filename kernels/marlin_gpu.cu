/*
 * marlin_gpu.cu - the GPU plumbing behind marlin_kernels.h sections 1 and 4:
 * device probe, device memory helpers, random fill, event/graph timing,
 * copy bandwidth and the cuBLAS FP16 baseline, plus the CUDA error mapping
 * shared by every kernels/ .cu file (marlin_cuda_internal.h).
 *
 * Measurement rules followed here are design.md "Measuring performance":
 * CUDA events, warm-up, median of many samples; callers rotate weights.
 */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "marlin_cuda_internal.h"
#include "marlin_kernels.h"

/* ------------------------------------------------------------------ errors */

marlin_status mk_cuda_status(cudaError_t ce, const char *what,
                             const char *file, int line, marlin_error *err) {
    if (ce == cudaSuccess) return MARLIN_OK;
    int dev = -1;
    /* Clear a sticky-free error so that the next call starts clean; a
     * sticky error (a kernel fault) stays and is reported again, which is
     * what the caller must see. */
    (void)cudaGetLastError();
    if (ce != cudaErrorNoDevice && ce != cudaErrorInsufficientDriver)
        (void)cudaGetDevice(&dev);
    marlin_status st = MARLIN_ERR_CUDA;
    if (ce == cudaErrorNoDevice || ce == cudaErrorInsufficientDriver)
        st = MARLIN_ERR_NO_DEVICE;
    else if (ce == cudaErrorNoKernelImageForDevice ||
             ce == cudaErrorInvalidDeviceFunction)
        st = MARLIN_ERR_UNSUPPORTED;
    return marlin_fail(err, st, "%s (%s:%d, device %d): %s: %s", what, file,
                       line, dev, cudaGetErrorName(ce), cudaGetErrorString(ce));
}

/* ----------------------------------------------------------- device cache */

namespace {
constexpr int kMaxDevices = 64;
std::atomic<int> g_dev_ready[kMaxDevices];
mk_device g_dev[kMaxDevices];
std::mutex g_dev_mutex;
} // namespace

marlin_status mk_current_device(int *device, const mk_device **props,
                                marlin_error *err) {
    int dev = 0;
    marlin_status st = MK_CUDA(err, cudaGetDevice(&dev));
    if (st) return st;
    if (dev < 0 || dev >= kMaxDevices)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "CUDA device %d: only devices 0..%d are supported",
                           dev, kMaxDevices - 1);
    if (!g_dev_ready[dev].load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(g_dev_mutex);
        if (!g_dev_ready[dev].load(std::memory_order_relaxed)) {
            mk_device d = {};
            int v = 0;
            st = MK_CUDA(err, cudaDeviceGetAttribute(
                                  &d.sm_count, cudaDevAttrMultiProcessorCount, dev));
            if (!st)
                st = MK_CUDA(err, cudaDeviceGetAttribute(
                                      &d.cc_major, cudaDevAttrComputeCapabilityMajor, dev));
            if (!st)
                st = MK_CUDA(err, cudaDeviceGetAttribute(
                                      &d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev));
            if (!st)
                st = MK_CUDA(err, cudaDeviceGetAttribute(
                                      &v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
            d.smem_optin = v;
            if (!st)
                st = MK_CUDA(err, cudaDeviceGetAttribute(
                                      &v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
            d.smem_per_sm = v;
            if (st) return st;
            g_dev[dev] = d;
            g_dev_ready[dev].store(1, std::memory_order_release);
        }
    }
    *device = dev;
    *props = &g_dev[dev];
    return MARLIN_OK;
}

void mk_launch_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute *attr, unsigned grid,
                      unsigned block, size_t smem, void *stream, int pdl, int cluster) {
    unsigned na = 0;
    memset(cfg, 0, sizeof *cfg);
    memset(attr, 0, 2 * sizeof *attr);
    if (pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    if (cluster > 1) {
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = (unsigned)cluster;
        attr[na].val.clusterDim.y = 1;
        attr[na].val.clusterDim.z = 1;
        na++;
    }
    cfg->gridDim = dim3(grid);
    cfg->blockDim = dim3(block);
    cfg->dynamicSmemBytes = smem;
    cfg->stream = (cudaStream_t)stream;
    cfg->attrs = attr;
    cfg->numAttrs = na;
}

marlin_status mk_cluster_fits(const void *fn, const cudaLaunchConfig_t *cfg, int cluster,
                              int device, const char *what, marlin_error *err) {
    int n_clusters = 0;
    marlin_status st = MK_CUDA(err, cudaOccupancyMaxActiveClusters(&n_clusters, fn, cfg));
    if (st) return st;
    if (n_clusters < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: a cluster of %d blocks with %zu bytes of shared memory each "
                           "cannot be resident on device %d",
                           what, cluster, cfg->dynamicSmemBytes, device);
    return MARLIN_OK;
}

/* ------------------------------------------------------------------- probe */

extern "C" marlin_status marlin_gpu_probe(int device, marlin_gpu_info *info,
                                          marlin_error *err) {
    if (!info) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "gpu probe: info is NULL");
    memset(info, 0, sizeof *info);
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return marlin_fail(err, MARLIN_ERR_NO_DEVICE, "no usable CUDA device: %s: %s",
                           cudaGetErrorName(ce), cudaGetErrorString(ce));
    }
    if (count == 0)
        return marlin_fail(err, MARLIN_ERR_NO_DEVICE, "no CUDA device present");
    marlin_status st;
    if (device < 0) {
        st = MK_CUDA(err, cudaGetDevice(&device));
        if (st) return st;
    }
    if (device >= count)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "CUDA device %d requested, %d present", device, count);
    st = MK_CUDA(err, cudaSetDevice(device));
    if (st) return st;
    cudaDeviceProp p;
    st = MK_CUDA(err, cudaGetDeviceProperties(&p, device));
    if (st) return st;
    int smem_optin = 0;
    st = MK_CUDA(err, cudaDeviceGetAttribute(&smem_optin,
                                             cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (st) return st;
    info->device = device;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->l2_bytes = p.l2CacheSize;
    info->smem_optin_bytes = smem_optin;
    info->global_mem_bytes = (int64_t)p.totalGlobalMem;
    (void)cudaDriverGetVersion(&info->driver_version);
    (void)cudaRuntimeGetVersion(&info->runtime_version);
    if (p.major < 8)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "%s is sm_%d%d; the Marlin kernels need sm_80 or newer "
                           "(cp.async, mma.sync.m16n8k16)",
                           p.name, p.major, p.minor);
    return MARLIN_OK;
}

/* ------------------------------------------------------------------ memory */

extern "C" marlin_status marlin_gpu_alloc(void **ptr, size_t bytes, marlin_error *err) {
    if (!ptr) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "gpu alloc: ptr is NULL");
    *ptr = NULL;
    marlin_status st = MK_CUDA(err, cudaMalloc(ptr, bytes ? bytes : 1));
    if (st == MARLIN_ERR_CUDA && err)
        marlin_error_prefix(err, "allocating %zu bytes on the GPU", bytes);
    return st;
}

extern "C" void marlin_gpu_free(void *ptr) {
    if (ptr) (void)cudaFree(ptr);
}

/* The copy helpers are for tools and tests, not hot paths, so they are
 * fully synchronous with the whole device: they start after all work
 * already enqueued on any stream has finished and are complete on return.
 * (Plain cudaMemcpy/cudaMemset run on the legacy default stream, which does
 * not order against non-blocking streams: a poison fill could otherwise land
 * after a kernel launched later on such a stream.) */
extern "C" marlin_status marlin_gpu_upload(void *dst, const void *src, size_t bytes,
                                           marlin_error *err) {
    marlin_status st = MK_CUDA(err, cudaDeviceSynchronize());
    if (!st) st = MK_CUDA(err, cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    if (!st) st = MK_CUDA(err, cudaDeviceSynchronize());
    return st;
}

extern "C" marlin_status marlin_gpu_download(void *dst, const void *src, size_t bytes,
                                             marlin_error *err) {
    marlin_status st = MK_CUDA(err, cudaDeviceSynchronize());
    if (!st) st = MK_CUDA(err, cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return st;
}

extern "C" marlin_status marlin_gpu_memset(void *dst, int byte, size_t bytes,
                                           marlin_error *err) {
    marlin_status st = MK_CUDA(err, cudaDeviceSynchronize());
    if (!st) st = MK_CUDA(err, cudaMemset(dst, byte, bytes));
    if (!st) st = MK_CUDA(err, cudaDeviceSynchronize());
    return st;
}

extern "C" marlin_status marlin_gpu_sync(marlin_error *err) {
    return MK_CUDA(err, cudaDeviceSynchronize());
}

extern "C" marlin_status marlin_gpu_stream_create(void **stream, marlin_error *err) {
    if (!stream) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "stream is NULL");
    cudaStream_t s = NULL;
    marlin_status st = MK_CUDA(err, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = st ? NULL : (void *)s;
    return st;
}

extern "C" void marlin_gpu_stream_destroy(void *stream) {
    if (stream) (void)cudaStreamDestroy((cudaStream_t)stream);
}

extern "C" marlin_status marlin_gpu_stream_sync(void *stream, marlin_error *err) {
    return MK_CUDA(err, cudaStreamSynchronize((cudaStream_t)stream));
}

/* -------------------------------------------------------------------- fill */

namespace {
/* splitmix64 finalizer: a good 64-bit mix of (seed, index), so each element
 * is independent of the launch geometry. */
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__global__ void fill_bits_kernel(uint32_t *dst, size_t count, uint64_t seed) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        dst[i] = (uint32_t)(mix64(seed ^ (i * 0xd1342543de82ef95ull)) >> 32);
}

__global__ void fill_f16_kernel(__half *dst, size_t count, uint64_t seed, float lo,
                                float hi) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        float u = (float)(mix64(seed ^ (i * 0xd1342543de82ef95ull)) >> 40) * (1.0f / 16777216.0f);
        dst[i] = __float2half_rn(lo + (hi - lo) * u);
    }
}
} // namespace

extern "C" marlin_status marlin_gpu_fill(void *dst, marlin_fill_kind kind, size_t count,
                                         uint64_t seed, float lo, float hi, void *stream,
                                         marlin_error *err) {
    if (!dst && count) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "gpu fill: NULL buffer");
    if (!count) return MARLIN_OK;
    int blocks = (int)std::min<size_t>((count + 255) / 256, 4096);
    cudaStream_t s = (cudaStream_t)stream;
    if (kind == MARLIN_FILL_BITS)
        fill_bits_kernel<<<blocks, 256, 0, s>>>((uint32_t *)dst, count, seed);
    else if (kind == MARLIN_FILL_F16_UNIFORM)
        fill_f16_kernel<<<blocks, 256, 0, s>>>((__half *)dst, count, seed, lo, hi);
    else
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "gpu fill: unknown kind %d", (int)kind);
    return MK_CUDA(err, cudaGetLastError());
}

/* ------------------------------------------------------------------ timing */

extern "C" marlin_status marlin_gpu_time(marlin_gpu_launch_fn fn, void *user, void *stream,
                                         int warmup, int batch, int samples,
                                         marlin_gpu_timing *out, marlin_error *err) {
    if (!fn || !out || !stream || batch < 1 || samples < 1 || warmup < 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gpu time: need fn, out, a non-default stream, batch >= 1, "
                           "samples >= 1");
    cudaStream_t s = (cudaStream_t)stream;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaEvent_t ev0 = NULL, ev1 = NULL;
    std::vector<float> ms;
    marlin_status st = MARLIN_OK;
    int use_graph = 1;

    /* One untimed direct launch first: surfaces launch errors with their
     * own message (inside a capture they would read as capture failures)
     * and does one-time set-up (kernel attributes, cuBLAS heuristics). */
    st = fn(user, 0, stream, err);
    if (st) goto out;
    st = MK_CUDA(err, cudaStreamSynchronize(s));
    if (st) goto out;

    /* Capture the batch as a graph: one replay launches `batch` kernels
     * back to back without host launch gaps, as inference runtimes do. */
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        (void)cudaGetLastError();
        use_graph = 0;
    } else {
        marlin_status cst = MARLIN_OK;
        for (int i = 0; i < batch && !cst; i++) cst = fn(user, i, stream, err);
        cudaError_t ce = cudaStreamEndCapture(s, &graph);
        if (cst || ce != cudaSuccess ||
            cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
            (void)cudaGetLastError();
            use_graph = 0;
            if (exec) { cudaGraphExecDestroy(exec); exec = NULL; }
            if (graph) { cudaGraphDestroy(graph); graph = NULL; }
            marlin_error_clear(err);
        }
    }

    st = MK_CUDA(err, cudaEventCreate(&ev0));
    if (!st) st = MK_CUDA(err, cudaEventCreate(&ev1));
    if (st) goto out;
    ms.resize((size_t)samples);
    for (int r = -warmup; r < samples; r++) {
        st = MK_CUDA(err, cudaEventRecord(ev0, s));
        if (st) goto out;
        if (use_graph) {
            st = MK_CUDA(err, cudaGraphLaunch(exec, s));
        } else {
            for (int i = 0; i < batch && !st; i++) st = fn(user, i, stream, err);
        }
        if (st) goto out;
        st = MK_CUDA(err, cudaEventRecord(ev1, s));
        if (!st) st = MK_CUDA(err, cudaEventSynchronize(ev1));
        if (st) goto out;
        if (r >= 0) {
            st = MK_CUDA(err, cudaEventElapsedTime(&ms[(size_t)r], ev0, ev1));
            if (st) goto out;
        }
    }
    std::sort(ms.begin(), ms.end());
    out->samples = samples;
    out->batch = batch;
    out->graph = use_graph;
    out->min_us = 1000.0 * ms.front() / batch;
    out->max_us = 1000.0 * ms.back() / batch;
    out->median_us = (samples % 2)
                         ? 1000.0 * ms[(size_t)samples / 2] / batch
                         : 500.0 * (ms[(size_t)samples / 2 - 1] + ms[(size_t)samples / 2]) / batch;
out:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (ev0) cudaEventDestroy(ev0);
    if (ev1) cudaEventDestroy(ev1);
    return st;
}

extern "C" marlin_status marlin_gpu_copy_bandwidth(size_t bytes, int samples, void *stream,
                                                   double *bytes_per_s, marlin_error *err) {
    if (!bytes_per_s || bytes < (1u << 20) || samples < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "copy bandwidth: need >= 1 MiB and >= 1 sample");
    cudaStream_t s = (cudaStream_t)stream;
    void *a = NULL, *b = NULL;
    cudaEvent_t ev0 = NULL, ev1 = NULL;
    std::vector<float> ms((size_t)samples);
    marlin_status st = MK_CUDA(err, cudaMalloc(&a, bytes));
    if (!st) st = MK_CUDA(err, cudaMalloc(&b, bytes));
    if (!st) st = MK_CUDA(err, cudaMemsetAsync(a, 0x5a, bytes, s));
    if (!st) st = MK_CUDA(err, cudaEventCreate(&ev0));
    if (!st) st = MK_CUDA(err, cudaEventCreate(&ev1));
    for (int r = -2; r < samples && !st; r++) {
        st = MK_CUDA(err, cudaEventRecord(ev0, s));
        if (!st) st = MK_CUDA(err, cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
        if (!st) st = MK_CUDA(err, cudaEventRecord(ev1, s));
        if (!st) st = MK_CUDA(err, cudaEventSynchronize(ev1));
        if (!st && r >= 0) st = MK_CUDA(err, cudaEventElapsedTime(&ms[(size_t)r], ev0, ev1));
    }
    if (!st) {
        std::sort(ms.begin(), ms.end());
        double med = ms[(size_t)samples / 2] * 1e-3;
        *bytes_per_s = 2.0 * (double)bytes / med; /* read + write */
    }
    if (ev0) cudaEventDestroy(ev0);
    if (ev1) cudaEventDestroy(ev1);
    if (a) cudaFree(a);
    if (b) cudaFree(b);
    return st;
}

/* ------------------------------------------------------------------ cuBLAS */

struct marlin_cublas {
    cublasHandle_t h;
    void *ws; /* explicit workspace: makes graph capture legal and allocation-free */
};

static marlin_status cublas_fail(cublasStatus_t cs, const char *what, marlin_error *err) {
    return marlin_fail(err, MARLIN_ERR_CUDA, "%s: %s (%s)", what, cublasGetStatusName(cs),
                       cublasGetStatusString(cs));
}

extern "C" marlin_status marlin_cublas_create(marlin_cublas **out, void *stream,
                                              marlin_error *err) {
    if (!out) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "cublas: out is NULL");
    *out = NULL;
    marlin_cublas *c = (marlin_cublas *)calloc(1, sizeof *c);
    if (!c) return marlin_fail(err, MARLIN_ERR_NOMEM, "cublas: out of host memory");
    const size_t ws_bytes = 32u << 20;
    marlin_status st = MARLIN_OK;
    cublasStatus_t cs = cublasCreate(&c->h);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        st = cublas_fail(cs, "cublasCreate", err);
        c->h = NULL;
        goto out;
    }
    cs = cublasSetStream(c->h, (cudaStream_t)stream);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetMathMode(c->h, CUBLAS_DEFAULT_MATH);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        st = cublas_fail(cs, "cublasSetStream/SetMathMode", err);
        goto out;
    }
    st = MK_CUDA(err, cudaMalloc(&c->ws, ws_bytes));
    if (st) goto out;
    cs = cublasSetWorkspace(c->h, c->ws, ws_bytes);
    if (cs != CUBLAS_STATUS_SUCCESS) st = cublas_fail(cs, "cublasSetWorkspace", err);
out:
    if (st) {
        marlin_cublas_free(c);
        return st;
    }
    *out = c;
    return MARLIN_OK;
}

extern "C" void marlin_cublas_free(marlin_cublas *c) {
    if (!c) return;
    if (c->h) cublasDestroy(c->h);
    if (c->ws) cudaFree(c->ws);
    free(c);
}

extern "C" marlin_status marlin_cublas_gemm_f16(marlin_cublas *c, const void *A, const void *Wt,
                                                void *C, int64_t m, int64_t n, int64_t k,
                                                marlin_error *err) {
    if (!c || !A || !Wt || !C || m < 1 || n < 1 || k < 1 || m > INT32_MAX || n > INT32_MAX ||
        k > INT32_MAX)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "cublas gemm: bad arguments");
    const float alpha = 1.0f, beta = 0.0f;
    /* Row-major C[m][n] = A[m][k] Wt[n][k]^T is, in cuBLAS's column-major
     * view, C^T (n x m) = op(Wt^T view)... i.e. OP_T on Wt (k x n col-major,
     * ld k) times A (k x m col-major, ld k). */
    cublasStatus_t cs = cublasGemmEx(c->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k,
                                     &alpha, Wt, CUDA_R_16F, (int)k, A, CUDA_R_16F, (int)k,
                                     &beta, C, CUDA_R_16F, (int)n, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS) return cublas_fail(cs, "cublasGemmEx(fp16, fp32 compute)", err);
    return MARLIN_OK;
}
