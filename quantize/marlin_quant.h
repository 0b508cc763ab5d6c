/*
 * marlin_quant.h - INT4 quantization algorithms of the marlin toolchain:
 * round-to-nearest (RTN) with a clipping search, Hessian accumulation, the
 * GPTQ solver, and 2:4 pruning (magnitude, and SparseGPT jointly with GPTQ).
 * This header is the contract; the algorithms live in quantize/rtn.c,
 * quantize/hessian.c, quantize/gptq.c and quantize/sparse24.c, the shared
 * per-group kernels in quantize/group.c (private: quant_internal.h).
 *
 * Specs followed: docs/design.md "Numerics"; docs/reference/landscape.md
 * section 2 (the reference GPTQ and SparseGPT, IST-DASLab/gptq `gptq.py`,
 * IST-DASLab/sparsegpt `sparsegpt.py`); docs/reference/marlin-format.md 1.1
 * (what a code means).
 *
 * ------------------------------------------------------------------------
 * Shared conventions (pack/ reads exactly these; keep them):
 *
 *   W       weights, row-major (n, k) like nn.Linear.weight: n = out rows,
 *           k = in columns. fp32, fp16 or bf16 (marlin_dtype).
 *   q       uint8_t q[n*k], row-major (n, k), codes 0..15; the value of a
 *           code is (q - 8) * s.
 *   scales  uint16_t (fp16 bits) s[G*n], row-major (G, n), natural column
 *           order; G = k / g, or G = 1 for per-channel (group size -1).
 *           Weight (r, c) uses scale s[(c / g) * n + r].
 *
 * The code rule (every algorithm here, bit for bit):
 *
 *   s  = the fp16 value of the group's scale (the scale is rounded to fp16
 *        BEFORE any code is computed, so what is stored is what was used)
 *   q  = clamp(round_half_even(w / s) + 8, 0, 15)       (w / s in fp32)
 *
 * Scales:
 *   - base scale s0 = fp16(2 * absmax / 15) per (row, group) (the reference's
 *     symmetric rule: the grid (-8..7) * s0 spans [-1.067, +0.933] * absmax);
 *   - an all-zero group gets s = fp16(2/15) (the reference's xmax = 1) and
 *     codes 8: no NaN, and the scale is harmless;
 *   - a scale whose fp16 rounding is 0 (absmax below ~4e-7) is raised to the
 *     smallest fp16 subnormal, 2^-24, so w / s is always finite;
 *   - a base scale that overflows fp16 (absmax > ~491,000) is an error
 *     (MARLIN_ERR_NUMERIC naming row and group): Marlin has no wider scale.
 * Inputs with NaN or Inf are rejected (MARLIN_ERR_NUMERIC naming the row and
 * column); the caller adds the tensor name with marlin_error_prefix().
 *
 * Clipping search (RTN; GPTQ with Hessian weights): the candidates are
 *   s_i = max(fp16(p_i * s0_exact), 2^-24),  p_i = (100 - i) / 100, i = 0..75
 * (IST-DASLab/marlin's grid: grid 100, maxshrink 0.75), where s0_exact =
 * 2 * absmax / 15 in fp32. Each candidate's loss is
 *   L(s) = sum_j c_j * (x_j - s * (q_j(s) - 8))^2
 * with c_j = 1 for RTN (plain squared error) and c_j = 1 / U_jj^2 for GPTQ
 * (see below). The first candidate with the least loss wins (ties keep the
 * larger scale). Candidate i = 0 is the no-clip scale, so with clipping the
 * loss is never larger than without (up to the fp32 rounding of the sums).
 * Losses are fp32 sums in 16 fixed lanes
 * with levels taken from x * (1/s) (the codes themselves always use x / s;
 * details in quant_internal.h), so the choice is the same on every CPU and
 * thread count.
 *
 * Threads: every function taking `threads` splits rows statically
 * (marlin_parallel_for); results are byte-identical for any value of
 * `threads`. Other OpenBLAS calls (the factorisations, ssyrk) use
 * OpenBLAS's own threads (OPENBLAS_NUM_THREADS); their results, and so the
 * GPTQ codes, may change with OpenBLAS's thread count or CPU kernel.
 * Numerics are fp32 (never tf32), accumulations of reported errors in double.
 */
#ifndef MARLIN_QUANT_H
#define MARLIN_QUANT_H

#include "marlin_common.h"
#include "marlin_formats.h" /* marlin_dtype */

#ifdef __cplusplus
extern "C" {
#endif

#define MARLIN_QUANT_ZERO 8       /* the implicit zero point (uint4b8) */
#define MARLIN_QUANT_MAXQ 15      /* largest code */
#define MARLIN_CLIP_GRID 100      /* p_i = (GRID - i) / GRID */
#define MARLIN_CLIP_STEPS 76      /* i = 0 .. 75 (maxshrink 0.75) */

/* 2:4 pruning mode. In every run of 4 consecutive input weights (columns
 * 4t .. 4t+3) of a row, 2 are set to exactly 0 (code 8), so k % 4 == 0 and,
 * with groups, g % 4 == 0. */
typedef enum marlin_prune {
    MARLIN_PRUNE_NONE = 0,
    /* keep the 2 largest |w| of the ORIGINAL weights (ties keep the lower
     * column); loss: none, the mask is fixed up front. */
    MARLIN_PRUNE_MAGNITUDE = 1,
    /* GPTQ only (needs H): SparseGPT's saliency w^2 / U_jj^2 on the current,
     * error-updated weights inside the blocked solve; see marlin_gptq_opts. */
    MARLIN_PRUNE_SPARSEGPT = 2
} marlin_prune;

/* Number of groups G for k columns and group size g (-1 = per channel).
 * MARLIN_ERR_INVALID_ARG unless g == -1 or (g > 0 and k % g == 0). */
marlin_status marlin_quant_num_groups(int64_t k, int64_t group_size,
                                      int64_t *groups, marlin_error *err);

/* ------------------------------------------------------------------------ */
/* RTN (issue 3)                                                              */
/* ------------------------------------------------------------------------ */
/*
 * Minimises, independently per (row, group), the squared weight error
 *     sum_j (w_j - s * (q_j - 8))^2   over the candidate scales above
 * (clip on), or uses the base scale s0 (clip off). For a fixed s, the codes of
 * the code rule are the exact minimisers (nearest grid point), so the only
 * search is over s. With MARLIN_PRUNE_MAGNITUDE, pruned weights are set to 0
 * first and the scale is fitted on the survivors.
 */
typedef struct marlin_rtn_opts {
    int64_t group_size;  /* -1 (per channel) or > 0 dividing k; default 128 */
    bool clip;           /* clipping search; default true */
    marlin_prune prune;  /* NONE or MAGNITUDE (SPARSEGPT needs GPTQ) */
    int threads;         /* <= 0: all online CPUs */
} marlin_rtn_opts;

/* {128, clip on, no pruning, all CPUs}. */
marlin_rtn_opts marlin_rtn_default_opts(void);

/* Quantizes W (n, k) of dtype F32, F16 or BF16 into q[n*k] and scales[G*n].
 * Errors: MARLIN_ERR_INVALID_ARG (bad shape/group/option/dtype),
 * MARLIN_ERR_NUMERIC (NaN/Inf in W: "row R, column C"; scale overflow:
 * "row R, group T"), MARLIN_ERR_NOMEM. On error the outputs are undefined. */
marlin_status marlin_rtn_quantize(const void *w, marlin_dtype dtype,
                                  int64_t n, int64_t k,
                                  const marlin_rtn_opts *opts, uint8_t *q,
                                  uint16_t *scales, marlin_error *err);

/* ------------------------------------------------------------------------ */
/* Codes and errors                                                           */
/* ------------------------------------------------------------------------ */

/* Dequantizes codes + scales into out (n, k) fp32: (q - 8) * s. */
marlin_status marlin_quant_dequant(const uint8_t *q, const uint16_t *scales,
                                   int64_t n, int64_t k, int64_t group_size,
                                   float *out, marlin_error *err);

/* Relative weight error ||W - Wq||_F / ||W||_F, Wq = dequant(q, scales),
 * accumulated in double (0 when W == 0 and Wq == 0). The per-layer number
 * the quantizer reports. */
marlin_status marlin_quant_weight_error(const void *w, marlin_dtype dtype,
                                        int64_t n, int64_t k,
                                        int64_t group_size, const uint8_t *q,
                                        const uint16_t *scales, int threads,
                                        double *rel, marlin_error *err);

/* Relative output error on the calibration inputs, from H alone:
 *
 *   ||X W^T - X Wq^T||_F / ||X W^T||_F
 *       = sqrt( trace(D H D^T) / trace(W H W^T) ),   D = W - Wq,
 *
 * because ||X M^T||_F^2 = trace(M X^T X M^T) and H = (2/N) X^T X (the
 * constant cancels). X is every calibration token stacked, (tokens, k).
 * trace(M H M^T) = <H, M^T M> is computed with cblas_ssyrk on row chunks
 * (k*k fp32 of scratch, n*k^2 flops per trace), reading only the upper
 * triangle of H (row-major, h[i*k + j] with j >= i). 0 when both traces are
 * 0; MARLIN_ERR_NUMERIC when trace(W H W^T) <= 0 < trace(D H D^T). */
marlin_status marlin_quant_output_error(const void *w, marlin_dtype dtype,
                                        int64_t n, int64_t k,
                                        int64_t group_size, const uint8_t *q,
                                        const uint16_t *scales,
                                        const float *h, double *rel,
                                        marlin_error *err);

/* ------------------------------------------------------------------------ */
/* Hessian (issue 4)                                                          */
/* ------------------------------------------------------------------------ */
/*
 * H = (2 / N) * sum_b X_b^T X_b, a running mean over SEQUENCES (landscape
 * 2.1): each marlin_hessian_add of b sequences does
 *     H <- H * N / (N + b);  N <- N + b;  H <- H + (2 / N) * X_b^T X_b
 * in one cblas_ssyrk (alpha = 2/N, beta = N_old/N). fp32.
 *
 * Storage: h is (k, k) row-major and only its UPPER triangle is maintained,
 * h[i*k + j] for j >= i (ssyrk's CblasUpper in row-major). Everything in
 * this header that takes H reads only that triangle. marlin_hessian_
 * symmetrize() copies it to the lower triangle for code that wants a full
 * matrix.
 */
typedef struct marlin_hessian {
    int64_t k;    /* in_features */
    int64_t nseq; /* N: sequences accumulated */
    float *h;     /* (k, k), upper triangle valid; owned */
} marlin_hessian;

/* Allocates a zero H for k columns (k*k*4 bytes). */
marlin_status marlin_hessian_init(marlin_hessian *H, int64_t k,
                                  marlin_error *err);
/* Frees h; accepts NULL and an already-freed H. */
void marlin_hessian_free(marlin_hessian *H);
/* Adds nseq >= 1 sequences whose tokens are the rows of x (tokens, k),
 * row-major (all sequences' tokens concatenated). NaN/Inf in x is
 * MARLIN_ERR_NUMERIC naming the token row and column; H is then unchanged. */
marlin_status marlin_hessian_add(marlin_hessian *H, const float *x,
                                 int64_t tokens, int64_t nseq,
                                 marlin_error *err);
/* Copies the upper triangle into the lower one. */
void marlin_hessian_symmetrize(marlin_hessian *H);

/* ------------------------------------------------------------------------ */
/* GPTQ (issue 4) and SparseGPT (issue 6)                                     */
/* ------------------------------------------------------------------------ */
/*
 * Minimises the layer's output error on the calibration inputs,
 *     || X W^T - X Q^T ||_F^2 = trace((W - Q) H (W - Q)^T) * N / 2,
 * greedily column by column (Optimal Brain Quantization, arXiv:2210.17323):
 * with U the upper Cholesky factor of H^-1 (H^-1 = U^T U), column j is
 * quantized, its error e = (w_j - q_j) / U_jj is the optimal compensation
 * step, and every later column m gets w_m -= e * U_jm. The per-element loss
 * (w_j - q_j)^2 / U_jj^2 is exact: W - Q = E U and U H U^T = I give
 *     trace((W - Q) H (W - Q)^T) = sum (w_j - q_j)^2 / U_jj^2 = 2 * loss.
 *
 * Steps (landscape 2.2-2.7 unless noted):
 *  1. Dead columns (H_jj == 0): H_jj = 1, W[:, j] = 0.
 *  2. Damping lambda = damp * mean(diag H); H += lambda I. U is computed as
 *     U = J inv(chol(J H J)) J (J reverses the index order), which equals
 *     chol(H^-1, upper) with one potrf + one trtri (2/3 k^3 flops) instead of
 *     potrf + potri + potrf (4/3 k^3). When a factorisation fails (or gives a
 *     non-finite U): damp += damp_step up to damp_max, each step logged;
 *     then a diagonal floor H_jj = max(H_jj, sum_{m != j} |H_jm|) + lambda
 *     (lambda at least 0.01 mean(diag H)), which makes H strictly
 *     diagonally dominant, hence SPD (Gershgorin);
 *     then RTN for the whole layer (fallback_rtn).
 *  3. Columns in blocks of B = blocksize (128), lazy batch updates: the
 *     column loop runs inside a block on each row, and one sgemm per block
 *     pushes the block's errors to all later columns:
 *     W[:, i2:] -= E1 * U[i1:i2, i2:]. Given U the rows are independent, so
 *     threads take fixed panels of rows through all blocks without
 *     barriers, each calling a single-threaded sgemm for its panel: during
 *     that phase the solver sets OpenBLAS to one thread
 *     (openblas_set_num_threads) and restores the previous count after, so
 *     do not run OpenBLAS work in other threads of the process meanwhile.
 *  4. Group scales are fitted at each group start on the error-updated
 *     weights, and B is chosen so that every group start is a block start
 *     (B = g * floor(128 / g) for g <= 128, the largest divisor of g up to
 *     128 otherwise): the fit sees every earlier update, so g = 32/64 are
 *     exact (no stale scales inside a block; landscape 2.5). Scales are
 *     rounded to fp16 before the codes. Per channel: one fit at column 0.
 *  5. clip (default on): Hessian-aware clipping search at each group start,
 *     minimising sum_j (x_j - s (q_j - 8))^2 / U_jj^2 over the candidates
 *     above: each element's OBS loss if the later columns compensate it.
 *     (The full quadratic form |dx U_g^-1|^2 of IST-DASLab/marlin costs
 *     76 * g^2 flops per row and group, ~5x the whole solve at g = 128.)
 *  6. act_order: columns in decreasing diag(H) order (stable), with STATIC
 *     groups: group t's scale is fitted before the solve on the original
 *     columns t*g .. t*g+g-1 (clip weights 1/U_jj^2 at their permuted
 *     positions), so the output keeps the natural group layout: desc_act
 *     false, g_idx[c] = c / g. Incompatible with 2:4 (MARLIN_ERR_INVALID_ARG):
 *     the 4-column runs are defined in the original order.
 *  7. prune (2:4, needs k % 4 == 0 and g % 4 == 0):
 *     MAGNITUDE: mask from the original |w| up front; pruned weights are
 *     quantized to exactly 0 (code 8) and their error is fed back.
 *     SPARSEGPT (landscape 2.10): the mask is chosen inside the solve on the
 *     current error-updated weights by saliency w_j^2 / U_jj^2 (the 2
 *     smallest of each 4 are pruned; ties prune the higher column). At each
 *     group start (column 0 per channel) the masks of the whole group are
 *     chosen on the group's current weights and the group's scale is fitted
 *     on those survivors. Then (masks, marlin_sparse_masks):
 *       ADAPTIVE (default): each run of 4 is chosen again when the loop
 *         reaches it, on the weights updated by the group's earlier columns
 *         (SparseGPT proper); the group-start masks only shaped the scale.
 *       GROUP_START: the group-start masks are final (the scale then sees
 *         exactly the survivors).
 *     Measured on correlated synthetic inputs (tests/test_quant.c, 3
 *     seeds), ADAPTIVE's output error is 0.100-0.106 at g = 128 against
 *     0.146-0.156 for GROUP_START, and 0.097-0.105 vs 0.105-0.120 at g = 32;
 *     on shakespeare-llama-13m (g = 128) 0.0836 vs 0.0972 on average, lower
 *     in 28 of 28 layers (docs/perf.md "quantize").
 *     Pruning and rounding errors are compensated jointly.
 */
/* When SparseGPT's 2:4 masks become final (see step 7 above). */
typedef enum marlin_sparse_masks {
    MARLIN_MASKS_ADAPTIVE = 0,
    MARLIN_MASKS_GROUP_START = 1
} marlin_sparse_masks;

typedef struct marlin_gptq_opts {
    int64_t group_size; /* -1 or > 0 dividing k; default 128 */
    double damp;        /* relative damping, default 0.01 (--damp) */
    double damp_step;   /* added per failed factorisation, default 0.01 */
    double damp_max;    /* last relative damping tried, default 0.10 */
    bool clip;          /* Hessian-aware clipping search; default true */
    bool act_order;     /* desc diag(H) order, static groups; default false */
    marlin_prune prune; /* default NONE */
    marlin_sparse_masks masks; /* SPARSEGPT only; default ADAPTIVE */
    int64_t blocksize;  /* upper bound on B; default 128 */
    bool output_error;  /* fill out_rel_err (one extra n*k^2 ssyrk); default true */
    int threads;        /* our row loops; <= 0: all CPUs */
} marlin_gptq_opts;

marlin_gptq_opts marlin_gptq_default_opts(void);

/* One entry of the damping log. */
typedef enum marlin_gptq_step_kind {
    MARLIN_GPTQ_STEP_DAMP = 0,  /* factorisation tried with H + lambda I */
    MARLIN_GPTQ_STEP_FLOOR = 1, /* tried with the diagonal floor */
    MARLIN_GPTQ_STEP_RTN = 2    /* gave up: RTN for the layer */
} marlin_gptq_step_kind;

typedef enum marlin_gptq_fail {
    MARLIN_GPTQ_OK = 0,         /* this attempt succeeded */
    MARLIN_GPTQ_FAIL_CHOL = 1,  /* potrf: not positive definite (info = pivot) */
    MARLIN_GPTQ_FAIL_TRTRI = 2, /* trtri: singular factor (info = column) */
    MARLIN_GPTQ_FAIL_NONFINITE = 3 /* U has a non-finite or non-positive diagonal */
} marlin_gptq_fail;

typedef struct marlin_gptq_step {
    marlin_gptq_step_kind kind;
    marlin_gptq_fail fail;
    double damp_rel;  /* relative damping of the attempt */
    double lambda;    /* absolute: damp_rel * mean(diag H) */
    int64_t column;   /* ORIGINAL column index where the factorisation
                       * broke down (potrf's pivot, trtri's zero), or -1 */
} marlin_gptq_step;

#define MARLIN_GPTQ_MAX_STEPS 64

typedef struct marlin_gptq_result {
    double loss;          /* sum (w - q)^2 / U_jj^2 / 2 (the reference's error) */
    double out_rel_err;   /* sqrt(trace(DHD^T)/trace(WHW^T)), D = W - Wq,
                           * with the caller's H; -1 if not computed. The
                           * numerator is 2 loss - lambda |D|^2 (the identity
                           * above with H + lambda I) when damping alone
                           * sufficed, else an explicit ssyrk of D; the
                           * denominator is always an ssyrk of W. */
    double damp_rel;      /* relative damping finally used */
    double lambda;        /* absolute damping finally used */
    bool floor_used;      /* the diagonal floor was needed */
    bool fallback_rtn;    /* every factorisation failed: codes are RTN */
    int64_t dead_cols;    /* columns with H_jj == 0 */
    int nsteps;           /* log entries (the last one is the outcome) */
    marlin_gptq_step steps[MARLIN_GPTQ_MAX_STEPS];
    /* timing (seconds) and counted flops, for benchmarks: t_rows is the
     * wall time of the row phase, t_columns and t_gemm its column loop and
     * block sgemm per thread (averaged over threads) */
    double t_factor, t_rows, t_columns, t_gemm, t_outerr, t_total;
    double flops_factor;  /* 2 * k^3 / 3 per successful attempt */
    double flops_update;  /* 2 n sum_b B_b (k - i2_b)  +  n sum_b B_b (B_b - 1) */
} marlin_gptq_result;

/* One line describing a log entry, e.g.
 * "damp 0.0200 (lambda 2.76): Cholesky of H failed at column 114". */
void marlin_gptq_step_describe(const marlin_gptq_step *s, char *buf,
                               size_t len);

/* GPTQ / SparseGPT solve. W (n, k) of dtype F32/F16/BF16 (not modified);
 * h (k, k) fp32, upper triangle read (not modified). Writes q[n*k],
 * scales[G*n] and *res (res may be NULL). Working memory: n*k + k*k + n*B
 * floats, plus n*k bytes with 2:4 and G*n floats with act_order, plus
 * O(threads * (k + 8B)). A factorisation failure is not an error (see steps);
 * errors: MARLIN_ERR_INVALID_ARG (shape, group, options, act_order with
 * 2:4), MARLIN_ERR_NUMERIC (NaN/Inf in W or H, scale overflow),
 * MARLIN_ERR_NOMEM. */
marlin_status marlin_gptq_quantize(const void *w, marlin_dtype dtype,
                                   int64_t n, int64_t k, const float *h,
                                   const marlin_gptq_opts *opts, uint8_t *q,
                                   uint16_t *scales, marlin_gptq_result *res,
                                   marlin_error *err);

/* 2:4 check: true when every run of 4 codes q[r*k + 4t .. 4t+3] holds at
 * least 2 codes equal to 8. k % 4 must be 0 (false otherwise). */
bool marlin_quant_is_24(const uint8_t *q, int64_t n, int64_t k);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_QUANT_H */
