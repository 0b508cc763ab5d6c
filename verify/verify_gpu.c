/*
 * verify_gpu.c - the GPU checks of marlin-verify: for every layer of a
 * Marlin (or Sparse-Marlin) checkpoint, our kernel runs on random fp16
 * activations A [batch, k] and its output is compared with
 *  (a) the CPU reference of the same packed tensors (kernels/: decode
 *      through pack/, fp32 sgemm): the kernel must compute exactly what the
 *      layout means, up to fp16 rounding;
 *  (b) cuBLAS FP16 on the ORIGINAL weights (with --ref): the difference
 *      must be the quantization error and nothing more.
 *
 * Tolerances:
 *  (a) mean|C - Cref| / mean|Cref| < 1e-3 (dense) or 2e-3 (2:4), the
 *      upstream acceptance rule (marlin-format.md 7.4, IST test.py and
 *      test_2_4.py). Where it comes from: the kernel rounds C to fp16 once
 *      (relative 2^-11 = 4.9e-4 at most, ~2.4e-4 on average) and accumulates
 *      in fp32 in another order than the reference (~1e-6 relative); a
 *      wrong tile, scale or nibble gives errors of order 1. NaN or Inf in C
 *      where the reference is finite always fails.
 *  (b) with e = ||A W^T - A Wq^T|| / ||A W^T|| computed in fp32 on the CPU
 *      for the same A, the GPU-vs-cuBLAS relative error must stay within
 *      e + 2e-3: both GPU results are fp16-rounded (2 x 4.9e-4 relative at
 *      most per element, so <= ~1e-3 on the norm), the rest is margin.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "marlin_kernels.h"
#include "marlin_pack.h"
#include "verify_internal.h"

#define DENSE_MEAN_REL_TOL 1e-3
#define SPARSE_MEAN_REL_TOL 2e-3
#define FP16_MARGIN 2e-3

static struct {
    bool on;
    marlin_gpu_info info;
    void *stream;
    marlin_cublas *blas;
    void *dA, *dB, *dM, *dS, *dC, *dW, *dWs;
    size_t capA, capB, capM, capS, capC, capW, capWs;
} G;

static marlin_status grow(void **p, size_t *cap, size_t n, marlin_error *err) {
    if (*cap >= n) return MARLIN_OK;
    marlin_gpu_free(*p);
    *p = NULL;
    *cap = 0;
    marlin_status st = marlin_gpu_alloc(p, n, err);
    if (st == MARLIN_OK) *cap = n;
    return st;
}

marlin_status verify_gpu_begin(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, marlin_verify_report *rep,
                               marlin_error *err) {
    (void)o;
    (void)nck;
    const marlin_qlayer *l0 = marlin_qckpt_layer(ck[0], 0);
    if (l0->format == MARLIN_QFMT_GPTQ)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "%s: --gpu runs the Marlin kernels, which need Marlin "
                           "tiles: quantize with --format marlin or all, or repack "
                           "this GPTQ checkpoint with marlin-pack",
                           marlin_model_dir(marlin_qckpt_model(ck[0])));
    marlin_status st = marlin_gpu_probe(0, &G.info, err);
    if (st) return st;
    snprintf(rep->device, sizeof rep->device, "%s", G.info.name);
    if ((st = marlin_gpu_stream_create(&G.stream, err))) return st;
    if ((st = marlin_cublas_create(&G.blas, G.stream, err))) return st;
    G.on = true;
    return MARLIN_OK;
}

void verify_gpu_end(void) {
    if (!G.on) return;
    marlin_cublas_free(G.blas);
    marlin_gpu_free(G.dA);
    marlin_gpu_free(G.dB);
    marlin_gpu_free(G.dM);
    marlin_gpu_free(G.dS);
    marlin_gpu_free(G.dC);
    marlin_gpu_free(G.dW);
    marlin_gpu_free(G.dWs);
    marlin_gpu_stream_destroy(G.stream);
    memset(&G, 0, sizeof G);
}

static double rel_norm(const float *x, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}

marlin_status verify_layer_gpu(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, size_t li, const float *W,
                               const float *Wq, const verify_acts *acts,
                               marlin_verify_layer *L, marlin_error *err) {
    (void)nck;
    const marlin_qlayer *ql = marlin_qckpt_layer(ck[0], li);
    int64_t acts_rows = 0;
    const float *real = verify_acts_for(acts, ql->prefix, ql->k, &acts_rows);
    const int64_t m = real ? acts_rows : o->batch, n = ql->n, k = ql->k, g = ql->group_size;
    const int64_t G_ = marlin_pack_groups(k, g);
    const bool sparse = ql->format == MARLIN_QFMT_MARLIN24;
    const size_t bbytes = (size_t)(n * k / (sparse ? 4 : 2));
    const size_t mbytes = sparse ? (size_t)(n * k / 8) : 0;
    const size_t sbytes = (size_t)(G_ * n) * 2;
    marlin_status st = MARLIN_OK;
    uint32_t *B = malloc(bbytes);
    uint16_t *meta = sparse ? malloc(mbytes) : NULL;
    uint16_t *s = malloc(sbytes);
    uint16_t *A = malloc((size_t)(m * k) * 2), *Ch = malloc((size_t)(m * n) * 2);
    float *Af = malloc((size_t)(m * k) * 4), *Cref = malloc((size_t)(m * n) * 4);
    float *Cg = malloc((size_t)(m * n) * 4), *Y = malloc((size_t)(m * n) * 4);
    float *Yq = malloc((size_t)(m * n) * 4);
    uint16_t *Wh = W ? malloc((size_t)(n * k) * 2) : NULL;
    if (!B || (sparse && !meta) || !s || !A || !Ch || !Af || !Cref || !Cg || !Y ||
        !Yq || (W && !Wh)) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = marlin_qckpt_read_packed(ck[0], li, B, meta, s, err))) goto out;

    /* activations: the layer's real inputs (--calib), else N(0,1); both
     * rounded to fp16, as the kernel takes them; a fresh seed per layer */
    marlin_rng rng;
    marlin_rng_seed(&rng, o->seed * 0x9e3779b97f4a7c15ull + li + 1);
    L->calib_acts = real != NULL;
    for (int64_t i = 0; i < m * k; i++) {
        A[i] = marlin_float_to_half(real ? real[i] : marlin_rng_normal(&rng));
        Af[i] = marlin_half_to_float(A[i]);
    }

    size_t ws = 0;
    if (sparse) st = marlin_gemm24_workspace_size(m, n, &ws, err);
    else ws = marlin_dense_workspace_bytes(m, n, G.info.sm_count);
    if (!st && ws == 0) st = marlin_fail(err, MARLIN_ERR_INTERNAL, "workspace size 0");
    if (!st) st = grow(&G.dA, &G.capA, (size_t)(m * k) * 2, err);
    if (!st) st = grow(&G.dB, &G.capB, bbytes, err);
    if (!st && sparse) st = grow(&G.dM, &G.capM, mbytes, err);
    if (!st) st = grow(&G.dS, &G.capS, sbytes, err);
    if (!st) st = grow(&G.dC, &G.capC, (size_t)(m * n) * 2, err);
    if (!st) st = grow(&G.dWs, &G.capWs, ws, err);
    if (!st) st = marlin_gpu_upload(G.dA, A, (size_t)(m * k) * 2, err);
    if (!st) st = marlin_gpu_upload(G.dB, B, bbytes, err);
    if (!st && sparse) st = marlin_gpu_upload(G.dM, meta, mbytes, err);
    if (!st) st = marlin_gpu_upload(G.dS, s, sbytes, err);
    /* zeroed workspace (counters) and a poisoned output (fp16 NaN) */
    if (!st) st = marlin_gpu_memset(G.dWs, 0, ws, err);
    if (!st) st = marlin_gpu_memset(G.dC, 0xff, (size_t)(m * n) * 2, err);
    if (st) goto out;
    if (sparse) {
        st = marlin_gemm24(G.dA, G.dB, G.dM, G.dS, G.dC, m, n, k, g, G.dWs, ws,
                           G.stream, err);
    } else {
        marlin_dense_args a;
        memset(&a, 0, sizeof a);
        a.A = G.dA;
        a.B = G.dB;
        a.s = G.dS;
        a.C = G.dC;
        a.m = m;
        a.n = n;
        a.k = k;
        a.group_size = (int32_t)g;
        a.workspace = G.dWs;
        a.workspace_bytes = ws;
        a.stream = G.stream;
        st = marlin_dense_gemm(&a, err);
    }
    if (!st) st = marlin_gpu_stream_sync(G.stream, err);
    if (!st) st = marlin_gpu_download(Ch, G.dC, (size_t)(m * n) * 2, err);
    if (st) goto out;
    marlin_half_to_float_n(Ch, Cg, (size_t)(m * n));

    /* (a) against the CPU reference of the same packed tensors */
    if (sparse)
        st = marlin_gemm24_ref(A, B, meta, s, m, n, k, g, o->threads, Cref, err);
    else
        st = marlin_dense_gemm_ref(A, B, s, Cref, m, n, k, (int32_t)g, err);
    if (st) goto out;
    double sum_d = 0, sum_r = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < m * n; i++) {
        if (!isfinite(Cg[i]) && isfinite(Cref[i]) && bad < 0) bad = i;
        sum_d += fabs((double)Cg[i] - (double)Cref[i]);
        sum_r += fabs((double)Cref[i]);
    }
    L->gpu_bound = sparse ? SPARSE_MEAN_REL_TOL : DENSE_MEAN_REL_TOL;
    L->gpu_vs_ref = sum_r > 0 ? sum_d / sum_r : sum_d;
    if (bad >= 0) {
        st = verify_layer_fail_msg(L, "GPU output [%lld, %lld] is %g where the reference is %g",
                                   (long long)(bad / n), (long long)(bad % n),
                                   (double)Cg[bad], (double)Cref[bad]);
        goto out;
    }
    if (!(L->gpu_vs_ref < L->gpu_bound)) {
        st = verify_layer_fail_msg(L, "GPU kernel vs CPU reference: mean relative error "
                                   "%.3g exceeds %.1g", L->gpu_vs_ref, L->gpu_bound);
        goto out;
    }

    /* (b) against cuBLAS FP16 on the original weights */
    if (W) {
        float *Ah = Af; /* the fp16 activations, as floats */
        marlin_float_to_half_n(W, Wh, (size_t)(n * k));
        if ((st = grow(&G.dW, &G.capW, (size_t)(n * k) * 2, err))) goto out;
        if ((st = marlin_gpu_upload(G.dW, Wh, (size_t)(n * k) * 2, err))) goto out;
        if ((st = marlin_gpu_memset(G.dC, 0xff, (size_t)(m * n) * 2, err))) goto out;
        if ((st = marlin_cublas_gemm_f16(G.blas, G.dA, G.dW, G.dC, m, n, k, err))) goto out;
        if ((st = marlin_gpu_stream_sync(G.stream, err))) goto out;
        if ((st = marlin_gpu_download(Ch, G.dC, (size_t)(m * n) * 2, err))) goto out;
        float *Cb = Cref; /* reuse: cuBLAS result as floats */
        marlin_half_to_float_n(Ch, Cb, (size_t)(m * n));
        L->gpu_vs_fp16 = rel_norm(Cg, Cb, m * n);
        /* the same comparison on the CPU in fp32: the quantization error */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k,
                    1.0f, Ah, (int)k, W, (int)k, 0.0f, Y, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k,
                    1.0f, Ah, (int)k, Wq, (int)k, 0.0f, Yq, (int)n);
        double expect = rel_norm(Yq, Y, m * n);
        if (!(L->gpu_vs_fp16 <= expect + FP16_MARGIN)) {
            st = verify_layer_fail_msg(L, "GPU kernel vs cuBLAS FP16 on the original: relative "
                                       "error %.4f, the quantization accounts for %.4f",
                                       L->gpu_vs_fp16, expect);
            goto out;
        }
    }
out:
    free(B);
    free(meta);
    free(s);
    free(A);
    free(Ch);
    free(Af);
    free(Cref);
    free(Cg);
    free(Y);
    free(Yq);
    free(Wh);
    return st;
}
