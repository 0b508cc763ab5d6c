/*
 * marlin_ptx.cuh - PRIVATE to kernels/: the PTX wrappers both Marlin kernels
 * (marlin_dense.cu, marlin24.cu) use. One definition each; every wrapper
 * says why it exists. Fragment layouts: PTX ISA, "Matrix Fragments for
 * mma.m16n8k16" (https://docs.nvidia.com/cuda/parallel-thread-execution/).
 * Needs sm_80+ (cp.async, ldmatrix); compiled into each including file.
 */
#ifndef MARLIN_PTX_CUH
#define MARLIN_PTX_CUH

#include <cuda_fp16.h>
#include <stdint.h>

/* Shared memory by 32-bit addresses (`__cvta_generic_to_shared` of a
 * buffer plus byte offsets), the forms the main loops use: a per-thread
 * address held across the loop costs nothing per access, where a generic
 * pointer into a stage chosen at run time cost an IMAD + LEA per access
 * (SASS of session 5). One rule for cp.async destinations: hold them per
 * thread and step them, never write "base + stage offset" at the copy -
 * ptxas then folds the warp-uniform offset into a uniform register, and
 * the cp.async with an L2 policy it emitted for that form faulted as an
 * illegal instruction on the H100 (CUDA 13.0, session 6 run 1). */

/* 16-byte async global->shared copy through L2 only (.cg: the data is used
 * once per block, L1 would only be polluted). */
static __device__ __forceinline__ void cp_async16_s(uint32_t dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
static __device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    cp_async16_s((uint32_t)__cvta_generic_to_shared(dst), src);
}

/* Same, with an L2 cache policy (evict_first for the read-once weights, so
 * they do not push the activations out of L2). */
static __device__ __forceinline__ void cp_async16_policy_s(uint32_t dst, const void *src,
                                                           uint64_t pol) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(dst),
                 "l"(src), "l"(pol)
                 : "memory");
}
static __device__ __forceinline__ void cp_async16_policy(void *dst, const void *src,
                                                         uint64_t pol) {
    cp_async16_policy_s((uint32_t)__cvta_generic_to_shared(dst), src, pol);
}

/* An L2 policy for cp_async16_policy. */
static __device__ __forceinline__ uint64_t make_policy(bool evict_first) {
    uint64_t p;
    if (evict_first)
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
    else
        asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;\n" : "=l"(p));
    return p;
}

static __device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most n groups are pending; wait_group takes an immediate,
 * the pipeline depth is a run-time value (it depends on the device's shared
 * memory), hence the switch (a uniform branch). */
static __device__ __forceinline__ void cp_async_wait(int n) {
    switch (n) {
    case 0: asm volatile("cp.async.wait_group 0;\n" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;\n" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;\n" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;\n" ::: "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;\n" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;\n" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 6;\n" ::: "memory"); break;
    }
}

/* Four 8x8 b16 matrices from shared memory in one instruction: lane 8i + r
 * gives the address of row r of matrix i; register i of lane L receives row
 * L/4, elements 2(L%4), 2(L%4)+1 of matrix i (an mma A or B fragment). */
static __device__ __forceinline__ void ldmatrix_x4_s(uint32_t (&r)[4], uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
static __device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
    ldmatrix_x4_s(r, (uint32_t)__cvta_generic_to_shared(p));
}

/* 16, 8 and 4 bytes from shared memory at a 32-bit address (the v2
 * kernel's B and scale int4, the wgmma kernel's B words, metadata and
 * scales). */
static __device__ __forceinline__ int4 lds128_s(uint32_t addr) {
    int4 v;
    asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(addr)
                 : "memory");
    return v;
}
static __device__ __forceinline__ uint2 lds64_s(uint32_t addr) {
    uint2 v;
    asm volatile("ld.shared.v2.b32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(addr) : "memory");
    return v;
}
static __device__ __forceinline__ uint32_t lds32_s(uint32_t addr) {
    uint32_t v;
    asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

/* (a & b) | c in one LOP3 (LUT 0xEA = (0xF0 & 0xCC) | 0xAA); the compiler
 * does not always find it. */
static __device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

static __device__ __forceinline__ uint32_t h2_bits(__half2 h) {
    return *reinterpret_cast<uint32_t *>(&h);
}
static __device__ __forceinline__ __half2 bits_h2(uint32_t u) {
    return *reinterpret_cast<__half2 *>(&u);
}

/* Decodes one 32-bit word of B into the B fragments of two n8 tiles
 * (marlin-format.md 1.4/1.5), used by both dense kernels. Nibbles 0,4 hold rows r0, r0+1 and nibbles
 * 1,5 rows r0+8, r0+9 of column c0; nibbles 2,6 / 3,7 the same rows of
 * column c0+8. OR-ing a nibble v into the mantissa of fp16 1024 (0x6400)
 * gives exactly 1024+v (low position) or 1024+16v (bits 4..7); subtracting
 * 1032, resp. multiplying by 1/16 and adding -72, leaves v - 8 exactly:
 * the symmetric zero point is folded into the constants. */
static __device__ __forceinline__ void dequant_word(uint32_t q, uint32_t &t0b0, uint32_t &t0b1,
                                             uint32_t &t1b0, uint32_t &t1b1) {
    const uint32_t LO = 0x000f000f, HI = 0x00f000f0, EXP = 0x64006400;
    const __half2 SUB = bits_h2(0x64086408u); /* 1032 */
    const __half2 MUL = bits_h2(0x2c002c00u); /* 1/16 */
    const __half2 ADD = bits_h2(0xd480d480u); /* -72 */
    uint32_t lo0 = lop3_and_or(q, LO, EXP);
    uint32_t hi0 = lop3_and_or(q, HI, EXP);
    q >>= 8;
    uint32_t lo1 = lop3_and_or(q, LO, EXP);
    uint32_t hi1 = lop3_and_or(q, HI, EXP);
    t0b0 = h2_bits(__hsub2(bits_h2(lo0), SUB));
    t0b1 = h2_bits(__hfma2(bits_h2(hi0), MUL, ADD));
    t1b0 = h2_bits(__hsub2(bits_h2(lo1), SUB));
    t1b1 = h2_bits(__hfma2(bits_h2(hi1), MUL, ADD));
}

/* Thread-block clusters (sm_90; no-ops when compiled for older GPUs, where
 * the launchers never choose a cluster path). The dense v2 and the 2:4
 * kernels' cluster paths: a relaxed arrival at the kernel's start, waited
 * on before the first remote store (every block of the cluster runs), then
 * one release/acquire barrier after the stores into the other blocks'
 * shared memory (st.shared::cluster to the address mapa gives). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MK_HAVE_CLUSTER 1
#else
#define MK_HAVE_CLUSTER 0
#endif

static __device__ __forceinline__ void cluster_arrive_relaxed() {
#if MK_HAVE_CLUSTER
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void cluster_wait() {
#if MK_HAVE_CLUSTER
    asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void cluster_sync_acq_rel() {
#if MK_HAVE_CLUSTER
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}
/* The cluster path's work partition: block r of cluster c (blocks of a
 * cluster are consecutive, `cs` of them) takes k tiles [r*kt/cs,
 * (r+1)*kt/cs) of slice c, whose units are numbered from c*kt; the host
 * keeps cs <= kt so every block has at least one. Arrives on the cluster
 * barrier's phase 0, which the block waits on before its first remote
 * store. */
static __device__ __forceinline__ void cluster_unit_range(int cs, int kt, int &u_begin,
                                                          int &u_end) {
    const int slice = (int)(blockIdx.x / (unsigned)cs), r = (int)(blockIdx.x % (unsigned)cs);
    u_begin = slice * kt + (r * kt) / cs;
    u_end = slice * kt + ((r + 1) * kt) / cs;
    cluster_arrive_relaxed();
}
/* mbarriers in shared memory (sm_90 device code only: the dense mbarrier
 * pipelines and the wgmma kernel's ping-pong pipeline); `bar` is the
 * barrier's shared-memory address (__cvta_generic_to_shared). */
#if MK_HAVE_CLUSTER
static __device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

/* One arrival (counted in the barrier's init count: .noinc) once every
 * cp.async this thread issued so far has landed. */
static __device__ __forceinline__ void mbar_arrive_cp_async(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

/* One arrival of this thread (release: its earlier shared-memory accesses
 * happen before the phase completes). */
static __device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

/* Waits until the phase of parity `parity` has completed (acquire). */
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n"
                     ".reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n"
                     "}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
#endif

/* v to the shared-memory address of `local` in block `rank` of the cluster */
static __device__ __forceinline__ void st_cluster_f4(float4 *local, int rank, const float4 &v) {
#if MK_HAVE_CLUSTER
    const uint32_t la = (uint32_t)__cvta_generic_to_shared(local);
    uint32_t ra;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(ra) : "r"(la), "r"(rank));
    asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(ra), "f"(v.x),
                 "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
#else
    (void)local;
    (void)rank;
    (void)v;
#endif
}


#endif
