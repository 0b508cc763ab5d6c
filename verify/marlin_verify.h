/*
 * marlin_verify.h - checks that a quantized checkpoint is well formed and
 * computes what the original computed (marlin-verify).
 *
 * Per quantized layer:
 *  1. structure: every tensor present with the shape/dtype the
 *     quantization_config implies, qzeros/g_idx/2:4 metadata valid (decode);
 *  2. scales finite and positive;
 *  3. when a folder holds both formats (marlin-quantize --format all), the
 *     codes and scales decoded from GPTQ and from Marlin agree bit-exactly;
 *  4. with a reference checkpoint: the weight error against the original,
 *     measured in units of the 4-bit step (see verify.c for the bound and
 *     its derivation), and the relative output error of X W^T on random X;
 *  5. on a GPU (gpu = true): our Marlin kernel on random activations against
 *     the CPU reference of the same packed weights (fp16 rounding tolerance)
 *     and against cuBLAS FP16 on the original weights.
 * A layer failing any check fails the run (MARLIN_ERR_VERIFY).
 */
#ifndef MARLIN_VERIFY_H
#define MARLIN_VERIFY_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct marlin_verify_opts {
    const char *path;     /* quantized checkpoint (or folder with gptq/ + marlin/) */
    const char *ref;      /* original checkpoint, or NULL */
    bool gpu;             /* run the GPU checks */
    int64_t batch;        /* rows of random activations (default 16) */
    const char *calib;    /* GPU check: real activations of the reference
                             model on these tokens (first batch tokens of
                             the first sequence) instead of random rows */
    uint64_t seed;        /* activations seed (default 1) */
    int threads;
    marlin_progress progress;
} marlin_verify_opts;

marlin_verify_opts marlin_verify_default_opts(void);

typedef struct marlin_verify_layer {
    char *name;            /* prefix of the layer */
    char format[16];       /* gptq, marlin, marlin24 (first format checked) */
    int64_t n, k, group_size;
    bool cross_checked;    /* codes compared across two formats */
    double rel_weight_err; /* ||W - Wq|| / ||W|| (-1 without ref) */
    double step_err;       /* largest group RMS error in RTN steps (-1) */
    double step_err_mean;  /* the same over the whole layer (-1) */
    double step_mean_bound;/* its threshold */
    double step_bound;     /* its threshold */
    double rel_bound;      /* bound of rel_weight_err where it is the check
                              (GPTQ 2:4), else -1 */
    double rel_out_err;    /* ||X (W-Wq)^T|| / ||X W^T|| on random X (-1) */
    double gpu_vs_ref;     /* kernel vs CPU reference: mean rel abs err (-1) */
    double gpu_vs_fp16;    /* kernel vs cuBLAS FP16 on W: rel error (-1) */
    double gpu_bound;      /* threshold of gpu_vs_ref */
    bool calib_acts;       /* the GPU check used calibration activations */
    bool pass;
    char *why;             /* first failed check, NULL when passed */
} marlin_verify_layer;

typedef struct marlin_verify_report {
    marlin_verify_layer *layers;
    size_t n_layers;
    size_t n_failed;
    char formats[32];      /* what was found: "gptq", "gptq+marlin", ... */
    char algorithm[16];    /* meta.method of the checkpoint */
    char device[256];      /* GPU name when gpu */
    double seconds;
} marlin_verify_report;

/* Runs all checks. MARLIN_OK when every layer passed, MARLIN_ERR_VERIFY when
 * any failed (report says which), another status for runtime errors. */
marlin_status marlin_verify_run(const marlin_verify_opts *opts,
                                marlin_verify_report *report,
                                marlin_error *err);
void marlin_verify_report_free(marlin_verify_report *r);
marlin_status marlin_verify_report_write_json(const marlin_verify_report *r,
                                              const char *path,
                                              marlin_error *err);

#ifdef __cplusplus
}
#endif
#endif
