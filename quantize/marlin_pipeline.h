/*
 * marlin_pipeline.h - the quantization pipeline behind marlin-quantize:
 * read a checkpoint, choose the linears to quantize, quantize them (RTN or
 * GPTQ with calibration), pack the same integer codes for every requested
 * format and write complete checkpoint folders (weights, config.json with
 * quantization_config, tokenizer files), atomically.
 *
 * Also the reader of the checkpoints it writes (marlin_qckpt_*), used by
 * marlin-verify, marlin-eval and marlin-pack.
 *
 * Output formats (design.md "Formats"; layouts in pack/marlin_pack.h):
 *   gptq      <p>.qweight I32 [k/8, n], <p>.qzeros I32 [G, n/8] (0x77777777),
 *             <p>.scales F16 [G, n], <p>.g_idx I32 [k]; quant_method "gptq".
 *   marlin    <p>.B I32 [k/16, 2n], <p>.s F16 [G, n] (IST Layer.pack);
 *             quant_method "marlin" (vLLM's legacy MarlinConfig keys).
 *   marlin 2:4 (--sparse 2:4) <p>.B I32 [k/32, 2n], <p>.meta I16 [k/32, 2n],
 *             <p>.s F16 [G, n]; quant_method "gptq", checkpoint_format
 *             "marlin_24" (vLLM's legacy gptq_marlin_24 selection rule).
 * With --format all both are written, in OUT/gptq and OUT/marlin.
 */
#ifndef MARLIN_PIPELINE_H
#define MARLIN_PIPELINE_H

#include <signal.h>

#include "marlin_common.h"
#include "marlin_formats.h"
#include "marlin_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum marlin_method {
    MARLIN_METHOD_RTN = 0,
    MARLIN_METHOD_GPTQ = 1
} marlin_method;

typedef enum marlin_qformat {
    MARLIN_QFMT_GPTQ = 0,     /* GPTQ v1 */
    MARLIN_QFMT_MARLIN = 1,   /* dense Marlin tiles */
    MARLIN_QFMT_MARLIN24 = 2  /* Sparse-Marlin 2:4 tiles */
} marlin_qformat;

/* Bit set of formats to write. */
enum { MARLIN_WRITE_GPTQ = 1, MARLIN_WRITE_MARLIN = 2 };

typedef struct marlin_qrun_opts {
    const char *in;            /* .safetensors file or model folder */
    const char *out;           /* output folder (must not exist unless force) */
    marlin_method method;
    const char *calib;         /* calibration tokens (GPTQ) */
    int64_t group_size;        /* 128 (default), 64, 32, -1 */
    unsigned formats;          /* MARLIN_WRITE_* bits */
    bool sparse24;             /* 2:4 sparsity */
    marlin_prune prune;        /* with sparse24: MAGNITUDE or SPARSEGPT */
    bool act_order;            /* GPTQ: static-group act-order */
    double damp;               /* GPTQ relative damping (0.01) */
    bool clip;                 /* clipping search (default true) */
    int threads;               /* <= 0: all CPUs */
    bool force;                /* replace an existing output folder */
    bool skip_incompatible;    /* keep shape-incompatible linears in FP16 */
    bool quantize_lm_head;     /* also quantize lm_head.weight */
    uint64_t shard_limit;      /* bytes per output shard (5 GB) */
    int64_t calib_rows;        /* use the first N calibration rows (0: all) */
    bool compare_rtn;          /* GPTQ: also report RTN's output error */
    const char *cache_dir;     /* GPTQ: spill/resume cache */
    const char *save_hessians; /* GPTQ: store per-layer Hessians here */
    const char *hessians;      /* GPTQ: reuse stored Hessians (no forward) */
    marlin_progress progress;
    /* Messages worth showing while the run goes (memory estimate, resume,
     * GPTQ damping steps); NULL to drop them. */
    void (*log)(void *user, const char *msg);
    void *log_user;
    /* Set to non-zero (e.g. from a SIGINT handler) to stop at the next
     * tensor boundary: the run returns MARLIN_ERR_INTERRUPTED and nothing
     * is left at the output path. */
    volatile sig_atomic_t *cancel;
} marlin_qrun_opts;

/* Defaults: RTN, group 128, GPTQ format, clip on, damp 0.01, all CPUs,
 * 5 GB shards. */
marlin_qrun_opts marlin_qrun_default_opts(void);

typedef struct marlin_qlayer_report {
    char *name;            /* source tensor name (<p>.weight) */
    int64_t n, k;          /* out, in features */
    int64_t group_size;
    bool kept_fp16;        /* skipped as shape-incompatible (--skip-incompatible) */
    char *note;            /* why it was kept, or GPTQ damping notes; may be NULL */
    double rel_weight_err; /* ||W - Wq||_F / ||W||_F */
    double rel_out_err;    /* GPTQ: on the calibration inputs; -1 otherwise */
    double rtn_out_err;    /* GPTQ --compare-rtn: RTN's, same inputs; -1 */
    double loss;           /* GPTQ: sum (w-q)^2/d^2/2; -1 otherwise */
    double damp_rel;       /* GPTQ: relative damping used; -1 otherwise */
    bool fallback_rtn;     /* GPTQ: every factorisation failed, RTN codes */
    double seconds;        /* quantize + pack time of this layer */
} marlin_qlayer_report;

typedef struct marlin_qrun_report {
    marlin_qlayer_report *layers; /* in processing order */
    size_t n_layers;
    size_t n_copied;              /* tensors copied unchanged */
    char **notices;               /* things the user should know */
    size_t n_notices;
    uint64_t bytes_in;            /* bytes of the quantized source tensors */
    uint64_t bytes_out;           /* bytes written (all formats) */
    double seconds;               /* whole run */
    char method[16];
    char formats[32];
} marlin_qrun_report;

/* Runs the pipeline. On failure nothing is left at opts->out (a temporary
 * sibling folder is removed). The report is filled as far as the run got;
 * free it with marlin_qrun_report_free(). */
marlin_status marlin_quantize_run(const marlin_qrun_opts *opts,
                                  marlin_qrun_report *report,
                                  marlin_error *err);
void marlin_qrun_report_free(marlin_qrun_report *report);
/* Writes the report as JSON to path (atomically). */
marlin_status marlin_qrun_report_write_json(const marlin_qrun_report *report,
                                            const char *path,
                                            marlin_error *err);

/* Which tensors are quantized: a 2-D `<...>.layers.<i>.<q|k|v|o|qkv>_proj` /
 * `<gate|up|down|gate_up>_proj` weight when the model has a config; every
 * 2-D `*_proj.weight` when it has none; lm_head.weight only on request. */
bool marlin_is_quant_target(const char *name, int rank, bool have_config,
                            bool quantize_lm_head);

/* Repacks a GPTQ v1 checkpoint (any tool's) into a Marlin checkpoint at out
 * (B/s tiles, quant_method "marlin"; other tensors copied). Act-order layers
 * and group sizes the Marlin kernels do not take are refused before
 * anything is written. *layers_done counts the layers written. */
marlin_status marlin_repack_run(const char *in, const char *out, bool force,
                                int threads, uint64_t shard_limit,
                                const marlin_progress *progress,
                                size_t *layers_done, marlin_error *err);

/* ------------------------------------------------------------------------ */
/* Reading quantized checkpoints (ours, or GPTQ v1 from other tools)         */
/* ------------------------------------------------------------------------ */
typedef struct marlin_qckpt marlin_qckpt;

typedef struct marlin_qlayer {
    char *prefix;          /* "<p>" (the source was "<p>.weight") */
    marlin_qformat format;
    int64_t n, k, group_size;
    bool act_order;        /* GPTQ with a non-trivial g_idx */
} marlin_qlayer;

/* Opens a quantized checkpoint folder/file: reads quantization_config (or
 * quantize_config.json), finds every quantized layer by its tensor names and
 * checks their shapes and dtypes against the config. */
marlin_status marlin_qckpt_open(const char *path, marlin_qckpt **out,
                                marlin_error *err);
void marlin_qckpt_close(marlin_qckpt *c);
const marlin_model *marlin_qckpt_model(const marlin_qckpt *c);
size_t marlin_qckpt_count(const marlin_qckpt *c);
const marlin_qlayer *marlin_qckpt_layer(const marlin_qckpt *c, size_t i);
/* Index of the layer whose prefix is `prefix`, or -1. */
int64_t marlin_qckpt_find(const marlin_qckpt *c, const char *prefix);
/* quant_method as found ("gptq", "marlin"); checkpoint_format or "". */
const char *marlin_qckpt_method(const marlin_qckpt *c);
/* The quantizer recorded in meta.method ("rtn", "gptq"), or "" if unknown. */
const char *marlin_qckpt_algorithm(const marlin_qckpt *c);
/* True when the layers are 2:4 sparse (Sparse-Marlin tiles, or meta.sparsity
 * "2:4" recorded by marlin-quantize for the GPTQ form). */
bool marlin_qckpt_sparse24(const marlin_qckpt *c);
/* Decodes layer i into codes q (n, k) and natural-order scales (G, n);
 * GPTQ act-order layers are returned in the ORIGINAL column order. */
marlin_status marlin_qckpt_decode(const marlin_qckpt *c, size_t i, uint8_t *q,
                                  uint16_t *scales, int threads,
                                  marlin_error *err);
/* The group of every input column (k entries): g_idx as stored for GPTQ
 * layers (non-trivial with act-order), j / g otherwise. */
marlin_status marlin_qckpt_g_idx(const marlin_qckpt *c, size_t i,
                                 int32_t *g_idx, marlin_error *err);
/* Dequantized weights W (n, k) fp32: (q - 8) * s[g_idx[j]][r]. */
marlin_status marlin_qckpt_dequant(const marlin_qckpt *c, size_t i, float *W,
                                   int threads, marlin_error *err);
/* A model/ weight source (marlin_weight_source, model/marlin_model.h) that
 * serves "<p>.weight" of every quantized layer dequantized, and every other
 * tensor as stored. *state is released with free() after the source's last
 * use; c must outlive it. */
struct marlin_weight_source;
marlin_status marlin_qckpt_weight_source(const marlin_qckpt *c, int threads,
                                         struct marlin_weight_source *out,
                                         void **state, marlin_error *err);
/* Reads the raw packed tensors of layer i (Marlin/2:4 only): B (and meta)
 * and the permuted scales, as stored. Sizes: B k*n/2 bytes, meta k*n/8
 * bytes (2:4), s G*n*2 bytes. */
marlin_status marlin_qckpt_read_packed(const marlin_qckpt *c, size_t i,
                                       uint32_t *B, uint16_t *meta,
                                       uint16_t *s_perm, marlin_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_PIPELINE_H */
