/*
 * marlin_model.h - Llama-family decoder forward pass on the CPU in fp32
 * (OpenBLAS), built for layer-by-layer GPTQ calibration and for perplexity
 * evaluation.
 *
 * The math follows Hugging Face transformers' LlamaForCausalLM (modeling_llama
 * .py) exactly, stage by stage:
 *
 *   x0      = embed_tokens[ids]                                   [T, hidden]
 *   per decoder block i (T = nseq * L rows, sequences independent):
 *     xn    = RMSNorm(x; input_layernorm)      x*rsqrt(mean(x^2)+eps)*w
 *     q,k,v = xn Wq^T (+bq), xn Wk^T (+bk), xn Wv^T (+bv)
 *     q,k   = RoPE(q,k) at positions 0..L-1, rotate_half convention (the
 *             pairs are (j, j + head_dim/2), not interleaved)
 *     a     = softmax(q k^T / sqrt(head_dim) + causal mask) v, per head;
 *             query head h reads kv head h / (heads / kv_heads) (GQA)
 *     h     = x + a Wo^T (+bo)
 *     hn    = RMSNorm(h; post_attention_layernorm)
 *     x'    = h + (silu(hn Wg^T) * (hn Wu^T)) Wd^T      (+ biases if mlp_bias)
 *   logits  = RMSNorm(x_last; model.norm) lm_head^T   (embed_tokens if tied)
 *
 * Memory: the caller decides how much is resident. A block is converted to
 * fp32 from the checkpoint on demand (marlin_block_load), so a calibration
 * run holds one block's weights plus its activations; nothing here loads the
 * whole model.
 *
 * Threads: every sgemm runs single-threaded on a task whose shape depends
 * only on the problem (512x512 output tiles of a projection; one
 * (sequence, head, 64-query block) of attention), and marlin_parallel_for
 * spreads the tasks. Results are therefore bit-identical for any thread
 * count, which OpenBLAS's own threading does not give. OpenBLAS is set to
 * one thread during each call and restored after (openblas_set_num_threads
 * is process-global: do not run BLAS elsewhere in the process meanwhile).
 *
 * Layer-by-layer GPTQ calibration with this API (true-sequential, as
 * IST-DASLab/gptq llama.py; landscape.md 2.9):
 *
 *   marlin_llama_create(cfg, &src, &m); marlin_llama_load_embed(m, ..);
 *   X = marlin_llama_embed(calibration ids)        [N*L, hidden], all rows
 *   for each layer i:
 *     marlin_block_load(m, i, &b);  w = marlin_block_view(b);
 *     for group in QKV, O, GATE_UP, DOWN:
 *       for each batch of sequences in X:
 *         marlin_llama_block_forward(m, i, &w, X_batch, nb, L,
 *             &(marlin_taps){accumulate_H, h, .stop_early = true,
 *                            .stop_after = group});
 *         (X_batch is left unchanged by an early stop)
 *       quantize the group's linears; write their dequantized values
 *       into b->w[...] so the next group sees the quantized layer
 *     for each batch: marlin_llama_block_forward(m, i, &w, X_batch, ...)
 *       (no taps: X becomes the input of layer i+1)
 *     marlin_block_free(b);
 *
 * Taps are called synchronously on the calling thread, in the order QKV,
 * O, ATTN_OUT, GATE_UP, DOWN, MLP_OUT.
 *
 * Tensor names read from the weight source are the Hugging Face ones:
 *   model.embed_tokens.weight, model.norm.weight, lm_head.weight,
 *   model.layers.<i>.{input_layernorm,post_attention_layernorm}.weight,
 *   model.layers.<i>.self_attn.{q,k,v,o}_proj.{weight,bias},
 *   model.layers.<i>.mlp.{gate,up,down}_proj.{weight,bias}.
 */
#ifndef MARLIN_MODEL_H
#define MARLIN_MODEL_H

#include "marlin_common.h"
#include "marlin_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ weight source */
/* Where fp32 weights come from. The forward never reads a checkpoint
 * directly: marlin_block_load and marlin_llama_load_* ask a source for
 * tensors by their Hugging Face name, so a quantized checkpoint (GPTQ v1 or
 * Marlin tensors, dequantized through pack/'s unpack functions) plugs in by
 * answering "<prefix>.weight" for each linear with the dequantized matrix.
 *
 * has:  true when the tensor `name` can be produced.
 * read: writes the tensor as fp32 into dst (row-major, product(shape)
 *       floats). The source must check that the stored tensor has exactly
 *       `rank` dims equal to `shape` and fail with MARLIN_ERR_FORMAT naming
 *       the tensor otherwise; a missing tensor is MARLIN_ERR_FORMAT too.
 * Both may be called from one thread at a time only. */
typedef struct marlin_weight_source {
    bool (*has)(void *user, const char *name);
    marlin_status (*read)(void *user, const char *name, int rank,
                          const int64_t *shape, float *dst,
                          marlin_error *err);
    void *user;
} marlin_weight_source;

/* The plain source: tensors of an open checkpoint (F16, BF16 or F32)
 * converted to fp32. `m` must outlive every use of *out. */
void marlin_weight_source_from_model(const marlin_model *m,
                                     marlin_weight_source *out);

/* ------------------------------------------------------------ the model */
typedef struct marlin_llama marlin_llama; /* opaque */

/* Validates the configuration for this forward pass and computes the RoPE
 * frequencies. `cfg` and `src` are copied (the source's user pointer must
 * outlive the model). Fails with MARLIN_ERR_UNSUPPORTED for dynamic or yarn
 * RoPE scaling, and MARLIN_ERR_FORMAT for inconsistent sizes (heads not a
 * multiple of kv heads, odd head_dim, non-positive sizes, eps < 0...).
 * Threads default to all online CPUs. *out is freed by marlin_llama_free. */
marlin_status marlin_llama_create(const marlin_config *cfg,
                                  const marlin_weight_source *src,
                                  marlin_llama **out, marlin_error *err);
/* Accepts NULL. Frees the loaded embedding/head too. */
void marlin_llama_free(marlin_llama *m);

/* Threads for sgemm and for the parallel parts (<= 0: all online CPUs). */
void marlin_llama_set_threads(marlin_llama *m, int threads);
const marlin_config *marlin_llama_config(const marlin_llama *m);

/* RoPE inverse frequencies inv_freq[j], j < head_dim/2, exactly as
 * transformers' ROPE_INIT_FUNCTIONS compute them in fp32: default
 * 1/theta^(2j/d); linear: default/factor; llama3: _compute_llama3_parameters
 * (wavelength bands by low/high_freq_factor and original_max_position
 * _embeddings, smooth interpolation in the middle band). Dynamic and yarn
 * give MARLIN_ERR_UNSUPPORTED. */
marlin_status marlin_rope_inv_freq(const marlin_config *cfg, float *inv_freq,
                                   marlin_error *err);

/* ------------------------------------------------------------ linears */
typedef enum marlin_linear {
    MARLIN_Q_PROJ = 0,
    MARLIN_K_PROJ,
    MARLIN_V_PROJ,
    MARLIN_O_PROJ,
    MARLIN_GATE_PROJ,
    MARLIN_UP_PROJ,
    MARLIN_DOWN_PROJ,
    MARLIN_LINEAR_COUNT
} marlin_linear;

/* "self_attn.q_proj", ..., "mlp.down_proj" (the name inside a layer). */
const char *marlin_linear_name(marlin_linear l);
/* Output features n and input features k of a linear (weight is [n, k]). */
void marlin_linear_shape(const marlin_llama *m, marlin_linear l, int64_t *n,
                         int64_t *k);
/* Whether the architecture gives this linear a bias (llama attention_bias:
 * q/k/v/o; qwen2: q/k/v only; mlp_bias: gate/up/down). */
bool marlin_linear_has_bias(const marlin_llama *m, marlin_linear l);

/* ------------------------------------------------------------ blocks */
/* A read-only view of one decoder block's fp32 weights. The pointers may
 * come from anywhere (a loaded marlin_block, dequantized GPTQ output...):
 * the forward only reads them. */
typedef struct marlin_block_weights {
    const float *input_norm;             /* [hidden] input_layernorm */
    const float *post_norm;              /* [hidden] post_attention_layernorm */
    const float *w[MARLIN_LINEAR_COUNT]; /* [n, k] row-major (nn.Linear) */
    const float *b[MARLIN_LINEAR_COUNT]; /* [n], NULL when no bias */
} marlin_block_weights;

/* One block converted to fp32 and owned by the caller. The arrays are
 * writable so a quantizer can overwrite w[l] in place with its dequantized
 * result before re-running the block (true-sequential GPTQ). */
typedef struct marlin_block {
    int64_t layer;
    float *input_norm;             /* [hidden] */
    float *post_norm;              /* [hidden] */
    float *w[MARLIN_LINEAR_COUNT]; /* [n, k] */
    float *b[MARLIN_LINEAR_COUNT]; /* [n] or NULL */
} marlin_block;

/* Reads layer `layer` (0-based) from the model's weight source. *out is
 * freed by marlin_block_free. Fails with the source's status (missing tensor
 * or wrong shape: MARLIN_ERR_FORMAT, naming the tensor). */
marlin_status marlin_block_load(const marlin_llama *m, int64_t layer,
                                marlin_block **out, marlin_error *err);
void marlin_block_free(marlin_block *b); /* accepts NULL */
/* fp32 bytes a loaded block holds (weights + norms + biases). */
uint64_t marlin_block_bytes(const marlin_llama *m);
/* A view of a loaded block (pointers into b). */
marlin_block_weights marlin_block_view(const marlin_block *b);

/* ------------------------------------------------------------ taps */
/* Points where the block forward hands a matrix to the caller. The first
 * four are the INPUTS of the linear groups (what a GPTQ Hessian needs); the
 * last two are outputs, for testing against a reference implementation. */
typedef enum marlin_tap_point {
    MARLIN_TAP_QKV = 0,  /* normed x: input of q/k/v     [T, hidden] */
    MARLIN_TAP_O,        /* attention before o_proj      [T, heads*head_dim] */
    MARLIN_TAP_GATE_UP,  /* normed h: input of gate/up   [T, hidden] */
    MARLIN_TAP_DOWN,     /* silu(gate) * up              [T, intermediate] */
    MARLIN_TAP_ATTN_OUT, /* o_proj output (no residual)  [T, hidden] */
    MARLIN_TAP_MLP_OUT,  /* down_proj output (no residual) [T, hidden] */
    MARLIN_TAP_COUNT
} marlin_tap_point;

/* Receives x = [rows, cols] row-major, valid during the call only; rows =
 * nseq * L in sequence order. A non-OK return aborts the forward with that
 * status (hidden is then left unchanged). */
typedef marlin_status (*marlin_tap_fn)(void *user, int64_t layer,
                                       marlin_tap_point where, const float *x,
                                       int64_t rows, int64_t cols,
                                       marlin_error *err);

typedef struct marlin_taps {
    marlin_tap_fn fn; /* NULL: no taps */
    void *user;
    /* When stop_early is set, the forward returns right after delivering
     * tap `stop_after`, skipping the rest of the block; hidden is left
     * unchanged. True-sequential GPTQ uses it to capture o's input with the
     * quantized q/k/v without paying for the MLP. */
    bool stop_early;
    marlin_tap_point stop_after;
} marlin_taps;

/* Runs decoder block `layer` (for error messages and taps) with weights `w`
 * over nseq independent sequences of seqlen tokens each, positions 0..L-1:
 * hidden [nseq*seqlen, hidden_size] row-major is replaced by the block's
 * output. taps may be NULL. Activations live in a workspace the model keeps
 * between calls (so repeated calls do not fault fresh pages in), grown to
 *   T*(2*hidden + 2*q_dim + 2*kv_dim + 2*intermediate) + L*head_dim
 *   + threads*64*L floats
 * and freed by marlin_llama_free; hence the non-const model: one forward at
 * a time per model. Fails with MARLIN_ERR_INVALID_ARG on a NULL weight or a
 * missing required bias, MARLIN_ERR_NOMEM, or the tap's status. */
marlin_status marlin_llama_block_forward(marlin_llama *m, int64_t layer,
                                         const marlin_block_weights *w,
                                         float *hidden, int64_t nseq,
                                         int64_t seqlen,
                                         const marlin_taps *taps,
                                         marlin_error *err);

/* ------------------------------------------------------------ ends */
/* Loads model.embed_tokens.weight as fp32 into the model (vocab*hidden
 * floats). Needed by marlin_llama_embed and, when tie_word_embeddings, by
 * the head. Idempotent. */
marlin_status marlin_llama_load_embed(marlin_llama *m, marlin_error *err);
/* Loads model.norm.weight and lm_head.weight (or shares the embedding when
 * tie_word_embeddings, loading it if needed). Idempotent. */
marlin_status marlin_llama_load_head(marlin_llama *m, marlin_error *err);

/* out[i, :] = embed_tokens[ids[i], :] for i < n. Token ids outside
 * [0, vocab) give MARLIN_ERR_INVALID_ARG naming the position; the embedding
 * must be loaded (else MARLIN_ERR_INVALID_ARG). */
marlin_status marlin_llama_embed(const marlin_llama *m, const int32_t *ids,
                                 int64_t n, float *out, marlin_error *err);

/* Final norm and lm_head for `rows` rows of hidden: logits [rows, vocab];
 * normed [rows, hidden] receives model.norm's output when non-NULL. */
marlin_status marlin_llama_logits(const marlin_llama *m, const float *hidden,
                                  int64_t rows, float *logits, float *normed,
                                  marlin_error *err);

/* Next-token negative log-likelihood of nseq sequences whose last-block
 * output is `hidden` [nseq*seqlen, hidden_size] and whose tokens are `ids`
 * [nseq*seqlen]: for every sequence and t in 0..seqlen-2, adds
 * -log softmax(logits[t])[ids[t+1]] (log-softmax in double, max-shifted) to
 * *nll_sum and 1 to *count (both accumulate: the caller zeroes them).
 * Logits are computed in chunks of rows, never all at once. */
marlin_status marlin_llama_nll(const marlin_llama *m, const float *hidden,
                               const int32_t *ids, int64_t nseq,
                               int64_t seqlen, double *nll_sum,
                               int64_t *count, marlin_error *err);

/* ------------------------------------------------------------ tokens */
/* Calibration / evaluation token ids: a safetensors file with one tensor
 * `input_ids`, I32 or I64, shape [N, L] (design.md "Formats"). */
typedef struct marlin_tokens {
    int64_t nseq;   /* N */
    int64_t seqlen; /* L */
    int32_t *ids;   /* [N, L], malloc'ed */
} marlin_tokens;

/* Loads the file's `input_ids` (other tensors are ignored). A missing
 * input_ids, another dtype, a rank other than 2, an empty dimension or an id
 * outside [0, 2^31) gives MARLIN_ERR_FORMAT naming the file (and the
 * position). Free with marlin_tokens_free. */
marlin_status marlin_tokens_load(const char *path, marlin_tokens *out,
                                 marlin_error *err);
/* MARLIN_ERR_FORMAT naming the first (row, column) whose id >= vocab. */
marlin_status marlin_tokens_check(const marlin_tokens *t, int64_t vocab,
                                  const char *label, marlin_error *err);
void marlin_tokens_free(marlin_tokens *t); /* accepts NULL, zeroes *t */

/* ------------------------------------------------------------ perplexity */
typedef struct marlin_eval_opts {
    int64_t rows;         /* evaluate the first `rows` windows; 0 = all */
    int64_t batch_tokens; /* tokens per forward batch (>= one window);
                             0 = 4096 */
    uint64_t cache_bytes; /* keep every converted block resident when they
                             all fit under this many bytes, else reload each
                             block per batch; 0 = 2 GiB */
    marlin_progress progress; /* "windows" done / total */
} marlin_eval_opts;

typedef struct marlin_eval_result {
    double nll;          /* mean next-token NLL (nats) */
    double perplexity;   /* exp(nll) */
    int64_t tokens;      /* predicted positions: rows * (L - 1) */
    int64_t rows;        /* windows evaluated */
    double seconds;      /* wall time of the forward passes */
    double block_seconds;/* of which in decoder blocks */
} marlin_eval_result;

/* Perplexity = exp(mean next-token NLL over positions 1..L-1 of every
 * window), as IST-DASLab/gptq's llama_eval. Token ids are checked against
 * the vocabulary before anything runs. Loads the embedding and head. */
marlin_status marlin_llama_perplexity(marlin_llama *m,
                                      const marlin_tokens *tokens,
                                      const marlin_eval_opts *opts,
                                      marlin_eval_result *res,
                                      marlin_error *err);

/* ------------------------------------------------------------ measuring */
/* Floating-point operations of one decoder block forward over nseq
 * sequences of seqlen tokens: 2*n*k per token per linear, plus the useful
 * causal attention work 4*head_dim per (query, key <= query) pair per head
 * (QK^T and PV). Softmax, norms and RoPE are not counted. */
double marlin_llama_block_flops(const marlin_llama *m, int64_t nseq,
                                int64_t seqlen);

/* sgemm throughput measured now for y[rows, n] = x[rows, k] W^T on
 * `threads` threads, through the same tiled path as the forward's
 * projections and through OpenBLAS's own threading. Random data; each path
 * repeats until min_seconds have passed (at least 3 timed runs after one
 * warm-up). Wall rates keep the best run; CPU rates divide all timed flops
 * by the process CPU time they took, which stays meaningful on a machine
 * shared with other work (where wall time measures the neighbours). */
typedef struct marlin_sgemm_rate {
    double tiled, openblas;         /* GFLOP/s, best wall-clock run */
    double tiled_cpu, openblas_cpu; /* GFLOP per CPU-second */
} marlin_sgemm_rate;

marlin_status marlin_sgemm_gflops(int64_t rows, int64_t n, int64_t k,
                                  int threads, double min_seconds,
                                  marlin_sgemm_rate *rate, marlin_error *err);

/* Process CPU time in seconds (all threads). */
double marlin_cpu_seconds(void);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_MODEL_H */
