/*
 * model_internal.h - PRIVATE to model/ and its tests; never installed.
 *
 * The marlin_llama object and the row kernels of the forward pass (RMSNorm,
 * RoPE, causal GQA attention, SwiGLU), exposed so tests/test_model.c can
 * check each one against a plain reference written in the test.
 */
#ifndef MARLIN_MODEL_INTERNAL_H
#define MARLIN_MODEL_INTERNAL_H

#include "marlin_model.h"

struct marlin_llama {
    marlin_config cfg;
    marlin_weight_source src;
    int threads; /* resolved (>= 1) */

    /* Sizes from cfg, checked positive and consistent by create. */
    int64_t hidden, inter, layers, heads, kv_heads, head_dim, vocab;
    int64_t q_dim, kv_dim; /* heads*head_dim, kv_heads*head_dim */
    float eps;             /* rms_norm_eps rounded to fp32 (as HF's
                              variance + eps is an fp32 add) */
    bool bias[MARLIN_LINEAR_COUNT];
    float *inv_freq; /* [head_dim/2] */

    float *embed;      /* [vocab, hidden] or NULL until loaded */
    float *final_norm; /* [hidden] or NULL */
    float *lm_head;    /* [vocab, hidden]; == embed when tied */

    float *ws;          /* block forward workspace, kept between calls */
    uint64_t ws_floats; /* its size */
};

/* Query rows per attention task: the score scratch is ATTN_QBLOCK x L per
 * thread, and causal blocks skip the keys after their last query. */
#define MARLIN_ATTN_QBLOCK 64

/* out[r, :] = w * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)), computed as
 * transformers' LlamaRMSNorm (fp32 variance + eps, then the scale, then the
 * weight). out may alias x. */
void marlin_rmsnorm_rows(const float *x, const float *w, float *out,
                         int64_t rows, int64_t dim, float eps);

/* cos/sin tables [seqlen, head_dim/2] for positions 0..seqlen-1: the angle is
 * the fp32 product inv_freq[j] * pos (as HF's fp32 matmul of inv_freq by the
 * positions), cos/sin evaluated in double and rounded to fp32. */
void marlin_rope_tables(const float *inv_freq, int64_t head_dim,
                        int64_t seqlen, float *cos_t, float *sin_t);

/* Rotates x [nseq*seqlen, nheads*head_dim] in place with HF's rotate_half:
 * for j < d/2, (a, b) = (x[j], x[j+d/2]) ->
 * (a*cos - b*sin, b*cos + a*sin) at the row's position (row % seqlen). */
void marlin_rope_apply(float *x, int64_t nseq, int64_t seqlen, int64_t nheads,
                       int64_t head_dim, const float *cos_t,
                       const float *sin_t);

/* Determinism across thread counts: OpenBLAS's own threading splits an
 * sgemm differently for 1, 2 or 4 threads, and the results differ in the
 * last bits (measured: 0.3.21, 4096x512x512, ~20% of outputs differ between
 * 1 and 2 threads). So every sgemm here runs single-threaded on a task whose
 * shape depends only on the problem (MARLIN_LINEAR_TILE tiles, attention
 * blocks), and our threads take whole tasks: the output is bit-identical
 * for any thread count. The public entry points bracket their work with
 * marlin_blas_single_begin/end. */
#define MARLIN_LINEAR_TILE 512

/* Sets OpenBLAS to one thread; returns the previous count for _end. */
int marlin_blas_single_begin(void);
void marlin_blas_single_end(int prev);

/* Causal attention with grouped KV heads. q [T, heads*hd], k and v
 * [T, kv_heads*hd], out [T, heads*hd], T = nseq*seqlen. Query head h uses kv
 * head h / (heads/kv_heads). Scores scaled by `scale`, softmax in fp32 with
 * the max subtracted. Runs on `threads` threads (>= 1); OpenBLAS must be at
 * one thread (marlin_blas_single_begin). scratch holds
 * threads * MARLIN_ATTN_QBLOCK * seqlen floats, or is NULL to allocate it
 * (MARLIN_ERR_NOMEM on failure). */
marlin_status marlin_attention(const float *q, const float *k, const float *v,
                               float *out, int64_t nseq, int64_t seqlen,
                               int64_t heads, int64_t kv_heads,
                               int64_t head_dim, float scale, int threads,
                               float *scratch);

/* y [rows, n] = x [rows, k] W^T (+ b), W [n, k] row-major: one
 * single-threaded sgemm per MARLIN_LINEAR_TILE^2 tile of y, tiles spread
 * over `threads` threads (OpenBLAS at one thread). */
void marlin_linear_fwd(const float *x, int64_t rows, int64_t k,
                       const float *w, const float *b, int64_t n, float *y,
                       int threads);

/* g[i] = silu(g[i]) * u[i] = g/(1+exp(-g)) * u, fp32. */
void marlin_swiglu(float *g, const float *u, int64_t n);

#endif /* MARLIN_MODEL_INTERNAL_H */
