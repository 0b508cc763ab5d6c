/*
 * marlin24_bench.cu - timing of the 2:4 sparse kernel against cuBLAS FP16 on
 * one layer shape, and the device-to-device copy bandwidth, following
 * docs/design.md "Measuring performance": CUDA events, warm-up, median of
 * many batches, weights rotated through enough copies that they never sit
 * in L2, random data (never zeros), cuBLAS (fp16 in/out, fp32 compute) and
 * the copy bandwidth measured in the same process.
 *
 * Used by marlin-bench --sparse; API in marlin_kernels24.h.
 */
#include "marlin_kernels24.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdint.h>
#include <string.h>
#include <vector>

namespace {

__device__ __forceinline__ uint32_t mix32(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* kind 0: random words; 1: fp16 pairs uniform in [-1, 1); 2: valid 2:4
 * metadata (every nibble one of the six ordered index pairs); 3: fp16
 * scales in [0.001, 0.01) */
__global__ void fill_kernel(uint32_t *p, size_t words, uint64_t seed,
                            int kind) {
    static const uint32_t nibs[8] = {0x4, 0x8, 0x9, 0xC, 0xD, 0xE, 0x4, 0xE};
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words;
         i += (size_t)gridDim.x * blockDim.x) {
        const uint32_t r = mix32(seed * 0x9e3779b97f4a7c15ull + i);
        uint32_t v = r;
        if (kind == 1 || kind == 3) {
            const float lo = kind == 1 ? -1.f : 0.001f;
            const float span = kind == 1 ? 2.f : 0.009f;
            const float a = lo + span * (float)(r & 0xffff) / 65536.f;
            const float b = lo + span * (float)(r >> 16) / 65536.f;
            __half2 h = __floats2half2_rn(a, b);
            v = *reinterpret_cast<uint32_t *>(&h);
        } else if (kind == 2) {
            v = 0;
            for (int t = 0; t < 8; ++t) v |= nibs[(r >> (3 * t)) & 7] << (4 * t);
        }
        p[i] = v;
    }
}

cudaError_t fill(void *p, size_t bytes, uint64_t seed, int kind,
                 cudaStream_t st) {
    fill_kernel<<<1024, 256, 0, st>>>((uint32_t *)p, bytes / 4, seed, kind);
    return cudaGetLastError();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CK(call, what)                                                      \
    do {                                                                    \
        cudaError_t ce_ = (call);                                           \
        if (ce_ != cudaSuccess) {                                           \
            st = marlin_fail(err, MARLIN_ERR_CUDA, "bench: %s: %s", what,   \
                             cudaGetErrorString(ce_));                      \
            goto out;                                                       \
        }                                                                   \
    } while (0)

/* Rotation: enough copies that the rotated set exceeds `floor_bytes`. */
int copies_for(size_t bytes, size_t floor_bytes) {
    size_t c = (floor_bytes + bytes - 1) / bytes;
    if (c < 2) c = 2;
    if (c > 64) c = 64;
    return (int)c;
}

} /* namespace */

extern "C" marlin_status marlin_bench24_fill_meta(void *meta, size_t bytes,
                                                  uint64_t seed, void *stream,
                                                  marlin_error *err) {
    if (!meta || bytes % 4 != 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_bench24_fill_meta: NULL or %zu bytes (need "
                           "a multiple of 4)",
                           bytes);
    cudaError_t ce = fill(meta, bytes, seed, 2, (cudaStream_t)stream);
    if (ce != cudaSuccess)
        return marlin_fail(err, MARLIN_ERR_CUDA,
                           "marlin_bench24_fill_meta: %s",
                           cudaGetErrorString(ce));
    return MARLIN_OK;
}

extern "C" marlin_status marlin_bench24_copy_bandwidth(double *gbps,
                                                       marlin_error *err) {
    marlin_status st = MARLIN_OK;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    const size_t bytes = (size_t)1 << 30; /* 1 GiB each way */
    std::vector<double> t;
    CK(cudaMalloc(&a, bytes), "cudaMalloc");
    CK(cudaMalloc(&b, bytes), "cudaMalloc");
    CK(fill(a, bytes, 1, 0, 0), "fill");
    CK(cudaEventCreate(&e0), "event");
    CK(cudaEventCreate(&e1), "event");
    for (int i = 0; i < 12; ++i) {
        CK(cudaEventRecord(e0, 0), "record");
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0), "copy");
        CK(cudaEventRecord(e1, 0), "record");
        CK(cudaEventSynchronize(e1), "sync");
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        if (i >= 2) t.push_back(ms * 1e-3);
    }
    /* bytes read + bytes written */
    *gbps = 2.0 * (double)bytes / median(t) / 1e9;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return st;
}

extern "C" marlin_status marlin_bench24_layer(int64_t m, int64_t n, int64_t k,
                                              int64_t group,
                                              const marlin_gemm24_opts *opts,
                                              int batches, int calls,
                                              int use_graph, int with_cublas,
                                              marlin24_bench_result *res,
                                              marlin_error *err) {
    marlin_status st = marlin_gemm24_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!res || m <= 0 || batches < 1 || calls < 1)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "bench: bad arguments (m = %lld)", (long long)m);
    memset(res, 0, sizeof *res);
    const int64_t G = group == -1 ? 1 : k / group;
    const size_t b_bytes = (size_t)(k / 32) * 2 * n * 4;
    const size_t m_bytes = (size_t)(k / 32) * 2 * n * 2;
    const size_t s_bytes = (size_t)G * n * 2;
    const size_t w24 = b_bytes + m_bytes + s_bytes;
    const size_t w16 = (size_t)n * k * 2;
    const size_t l2_floor = (size_t)256 << 20; /* > 2x any L2 today */
    const int nc24 = copies_for(w24, l2_floor);
    const int nc16 = copies_for(w16, l2_floor);
    std::vector<void *> wB(nc24, nullptr), wM(nc24, nullptr),
        wS(nc24, nullptr), wH(with_cublas ? nc16 : 0, nullptr);
    void *A = NULL, *C = NULL, *ws = NULL;
    size_t wsb = 0;
    cudaStream_t stream = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cublasHandle_t h = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    std::vector<double> t24, t16;

    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    CK(cudaEventCreate(&e0), "event");
    CK(cudaEventCreate(&e1), "event");
    CK(cudaMalloc(&A, (size_t)m * k * 2), "cudaMalloc A");
    CK(cudaMalloc(&C, (size_t)m * n * 2), "cudaMalloc C");
    CK(fill(A, (size_t)m * k * 2, 7, 1, stream), "fill A");
    st = marlin_gemm24_workspace_size(m, n, &wsb, err);
    if (st != MARLIN_OK) goto out;
    CK(cudaMalloc(&ws, wsb), "cudaMalloc workspace");
    CK(cudaMemsetAsync(ws, 0, wsb, stream), "memset workspace");
    for (int i = 0; i < nc24; ++i) {
        CK(cudaMalloc(&wB[i], b_bytes), "cudaMalloc B");
        CK(cudaMalloc(&wM[i], m_bytes), "cudaMalloc meta");
        CK(cudaMalloc(&wS[i], s_bytes), "cudaMalloc s");
        CK(fill(wB[i], b_bytes, 100 + i, 0, stream), "fill B");
        CK(fill(wM[i], m_bytes, 200 + i, 2, stream), "fill meta");
        CK(fill(wS[i], s_bytes, 300 + i, 3, stream), "fill s");
    }
    for (int i = 0; i < (int)wH.size(); ++i) {
        CK(cudaMalloc(&wH[i], w16), "cudaMalloc fp16 weights");
        CK(fill(wH[i], w16, 400 + i, 1, stream), "fill fp16 weights");
    }
    if (with_cublas) {
        if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS ||
            cublasSetStream(h, stream) != CUBLAS_STATUS_SUCCESS) {
            st = marlin_fail(err, MARLIN_ERR_CUDA, "bench: cublasCreate");
            goto out;
        }
    }
    CK(cudaStreamSynchronize(stream), "sync");

    /* two timed bodies: `calls` back-to-back launches over rotated weights */
    for (int which = 0; which < (with_cublas ? 2 : 1); ++which) {
        std::vector<double> &t = which == 0 ? t24 : t16;
        int rot = 0;
        auto launch = [&](int ncalls) -> marlin_status {
            for (int c = 0; c < ncalls; ++c) {
                if (which == 0) {
                    const int i = rot++ % nc24;
                    marlin_status s2 = marlin_gemm24_ex(
                        A, wB[i], wM[i], wS[i], C, m, n, k, group, ws, wsb,
                        stream, opts, err);
                    if (s2 != MARLIN_OK) return s2;
                } else {
                    const int i = rot++ % nc16;
                    const float onef = 1.f, zerof = 0.f;
                    cublasStatus_t cs = cublasGemmEx(
                        h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k,
                        &onef, wH[i], CUDA_R_16F, (int)k, A, CUDA_R_16F,
                        (int)k, &zerof, C, CUDA_R_16F, (int)n,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                    if (cs != CUBLAS_STATUS_SUCCESS)
                        return marlin_fail(err, MARLIN_ERR_CUDA,
                                           "bench: cublasGemmEx status %d",
                                           (int)cs);
                }
            }
            return MARLIN_OK;
        };
        /* warm-up (module load, cuBLAS heuristics, clocks) */
        st = launch(2 * (which == 0 ? nc24 : nc16));
        if (st != MARLIN_OK) goto out;
        CK(cudaStreamSynchronize(stream), "sync");
        if (use_graph) {
            CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed),
               "begin capture");
            st = launch(calls);
            cudaError_t ce = cudaStreamEndCapture(stream, &graph);
            if (st != MARLIN_OK) goto out;
            CK(ce, "end capture");
            CK(cudaGraphInstantiate(&exec, graph, 0), "graph instantiate");
            CK(cudaGraphLaunch(exec, stream), "graph launch");
            CK(cudaStreamSynchronize(stream), "sync");
        }
        for (int b = 0; b < batches; ++b) {
            CK(cudaEventRecord(e0, stream), "record");
            if (use_graph) {
                CK(cudaGraphLaunch(exec, stream), "graph launch");
            } else {
                st = launch(calls);
                if (st != MARLIN_OK) goto out;
            }
            CK(cudaEventRecord(e1, stream), "record");
            CK(cudaEventSynchronize(e1), "sync");
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
            t.push_back(ms * 1e-3 / calls);
        }
        if (exec) {
            cudaGraphExecDestroy(exec);
            exec = NULL;
        }
        if (graph) {
            cudaGraphDestroy(graph);
            graph = NULL;
        }
    }
    res->sec_sparse = median(t24);
    res->sec_cublas = with_cublas ? median(t16) : 0;
    res->bytes_sparse =
        (double)w24 + 2.0 * (double)m * k + 2.0 * (double)m * n;
    res->bytes_cublas = (double)w16 + 2.0 * (double)m * k + 2.0 * (double)m * n;
    res->rotated_copies = nc24;
out:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (h) cublasDestroy(h);
    for (void *p : wB) cudaFree(p);
    for (void *p : wM) cudaFree(p);
    for (void *p : wS) cudaFree(p);
    for (void *p : wH) cudaFree(p);
    cudaFree(A);
    cudaFree(C);
    cudaFree(ws);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (stream) cudaStreamDestroy(stream);
    return st;
}
