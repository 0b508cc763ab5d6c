/*
 * marlin_floor.cu - the launch floor of marlin-bench --mode floor
 * (marlin_kernels.h section 4): a kernel that moves exactly the bytes a
 * quantized layer must move (weights, scales, A read; C written) and
 * computes nothing, launched like the GEMM (same stream, graph, rotated
 * weights, optional programmatic dependent launch).
 *
 * Why: the decode targets ask for 85% of the copy bandwidth on layers of
 * 8-46 MB, i.e. launches of 3-16 us, where the copy bandwidth (1 GiB
 * memcpy) may not be reachable at all. The time of this kernel on the same
 * layer is what any kernel of that launch shape pays for the bytes alone;
 * our kernel's time over it is what the computation and the k split cost.
 *
 * Each block streams a contiguous share of every input with 8 independent
 * 16-byte loads in flight per thread (L1 bypassed), folds them with XOR
 * (so no load is dead) and writes its share of C from the fold.
 */
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

#include "marlin_cuda_internal.h"
#include "marlin_kernels.h"

namespace {

struct FloorParams {
    const int4 *in[MARLIN_FLOOR_INPUTS];
    size_t n_in[MARLIN_FLOOR_INPUTS]; /* int4 per input */
    int4 *C;
    size_t n_c;
    int pdl; /* 0, 1: everything after griddepcontrol.wait; 2: weights before;
              * 3: weights prefetched into L2 before it, then read after */
};

__device__ __forceinline__ int4 ld_stream(const int4 *p) {
    int4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ void fold(int4 &a, const int4 &v) {
    a.x ^= v.x;
    a.y ^= v.y;
    a.z ^= v.z;
    a.w ^= v.w;
}

/* This block's share [lo, hi) of n int4, 8 loads in flight per thread. */
__device__ __forceinline__ void stream_share(const int4 *p, size_t n, int4 &acc) {
    const size_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    const size_t T = blockDim.x;
    size_t i = lo + threadIdx.x;
    for (; i + 7 * T < hi; i += 8 * T) {
        int4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = ld_stream(p + i + u * T);
#pragma unroll
        for (int u = 0; u < 8; u++) fold(acc, v[u]);
    }
    for (; i < hi; i += T) fold(acc, ld_stream(p + i));
}

/* pdl 3: this block's share of n int4 at p into L2, 64 KB bulk prefetches
 * spread over the block's threads */
__device__ __forceinline__ void prefetch_share_l2(const int4 *p, size_t n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const size_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    constexpr size_t CH = 4096; /* int4 per prefetch: 64 KB */
    for (size_t i = lo + CH * threadIdx.x; i < hi; i += CH * blockDim.x) {
        const size_t len = (hi - i < CH ? hi - i : CH) * 16;
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p + i),
                     "r"((unsigned)len)
                     : "memory");
    }
#else
    (void)p, (void)n;
#endif
}

__global__ void floor_kernel(FloorParams p) {
    int4 acc = make_int4((int)threadIdx.x, (int)blockIdx.x, 0, 0);
    /* every input but the last is weights (independent of the previous
     * kernel); the last is A */
    constexpr int NW = MARLIN_FLOOR_INPUTS - 1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (p.pdl == 1) asm volatile("griddepcontrol.wait;\n" ::: "memory");
    if (p.pdl) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    if (p.pdl == 3) {
#pragma unroll 1
        for (int j = 0; j < NW; j++)
            if (p.in[j]) prefetch_share_l2(p.in[j], p.n_in[j]);
        asm volatile("griddepcontrol.wait;\n" ::: "memory");
    }
#endif
#pragma unroll 1
    for (int j = 0; j < NW; j++)
        if (p.in[j]) stream_share(p.in[j], p.n_in[j], acc);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (p.pdl == 2) asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
    if (p.in[MARLIN_FLOOR_INPUTS - 1])
        stream_share(p.in[MARLIN_FLOOR_INPUTS - 1], p.n_in[MARLIN_FLOOR_INPUTS - 1], acc);
    const size_t lo = p.n_c * blockIdx.x / gridDim.x, hi = p.n_c * (blockIdx.x + 1) / gridDim.x;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        int4 v = acc;
        v.x ^= (int)i;
        p.C[i] = v;
    }
}

} // namespace

extern "C" marlin_status marlin_stream_floor(const marlin_stream_floor_args *a,
                                             marlin_error *err) {
    if (!a || !a->C || a->blocks < 1 || a->threads < 32 || a->threads > 1024 ||
        a->threads % 32 || a->pdl < 0 || a->pdl > 3 || a->c_bytes % 16)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "stream floor: bad arguments");
    int dev = 0;
    const mk_device *d = NULL;
    marlin_status st = mk_current_device(&dev, &d, err);
    if (st) return st;
    if (a->pdl && d->cc_major < 9)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "stream floor: programmatic dependent launch needs sm_90 (device %d "
                           "is sm_%d%d)",
                           dev, d->cc_major, d->cc_minor);
    FloorParams p;
    memset(&p, 0, sizeof p);
    for (int j = 0; j < MARLIN_FLOOR_INPUTS; j++) {
        if (a->in_bytes[j] % 16 || (a->in_bytes[j] && !a->in[j]))
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "stream floor: input %d: %zu bytes (a multiple of 16, non-NULL)",
                               j, a->in_bytes[j]);
        p.in[j] = a->in_bytes[j] ? (const int4 *)a->in[j] : NULL;
        p.n_in[j] = a->in_bytes[j] / 16;
    }
    p.C = (int4 *)a->C;
    p.n_c = a->c_bytes / 16;
    p.pdl = a->pdl;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    mk_launch_config(&cfg, attr, (unsigned)a->blocks, (unsigned)a->threads, 0, a->stream,
                     a->pdl, 0);
    st = MK_CUDA(err, cudaLaunchKernelEx(&cfg, floor_kernel, p));
    if (st) return st;
    return MK_CUDA(err, cudaGetLastError());
}
