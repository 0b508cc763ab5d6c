/*
 * pipeline_internal.h - PRIVATE to quantize/: state shared by the pipeline
 * driver (pipeline.c), the calibration/GPTQ driver (calib_run.c) and the
 * report writer. Not installed, not for other stages.
 */
#ifndef MARLIN_PIPELINE_INTERNAL_H
#define MARLIN_PIPELINE_INTERNAL_H

#include <string.h>

#include "marlin_pipeline.h"

static inline bool qrun_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* One source tensor and what happens to it. */
typedef struct qtarget {
    const marlin_tensor *t;
    const marlin_st_file *shard;
    bool quant;     /* quantized (else copied unchanged) */
    bool kept;      /* a target kept FP16 by --skip-incompatible */
    char *note;     /* why it was kept */
    char *prefix;   /* "<p>" of "<p>.weight" (quantized targets) */
    int64_t n, k;   /* out, in features (quantized targets) */
} qtarget;

/* One output folder. */
typedef struct qout {
    marlin_qformat fmt;
    char *dir;
    marlin_writer *w;
} qout;

typedef struct qrun {
    const marlin_qrun_opts *o;
    marlin_model *m;
    const marlin_config *cfg;
    qtarget *targets; /* in the model's (name) order */
    size_t n_targets;
    qout outs[2];
    int n_outs;
    marlin_qrun_report *rep;
    /* reusable buffers (grown as needed, kept across tensors) */
    void *buf_raw;      size_t cap_raw;
    uint8_t *buf_q;     size_t cap_q;
    uint16_t *buf_s;    size_t cap_s;
    void *buf_packed;   size_t cap_packed;
    void *buf_aux;      size_t cap_aux;
    void *buf_scales;   size_t cap_scales;
} qrun;

/* Packs codes q (n, k) + scales s (G, n) of target t for every output and
 * writes them. */
marlin_status qrun_emit(qrun *r, const qtarget *t, const uint8_t *q,
                        const uint16_t *s, marlin_error *err);
/* Copies target t unchanged into every output. */
marlin_status qrun_copy(qrun *r, const qtarget *t, marlin_error *err);
/* Appends a layer entry to the report. */
marlin_status qrun_add_layer(qrun *r, const qtarget *t,
                             marlin_qlayer_report **out);
marlin_status qrun_notice(qrun *r, const char *msg);
bool qrun_cancelled(const qrun *r);

/* GPTQ with calibration (calib_run.c): processes every target of r. */
marlin_status qrun_gptq(qrun *r, marlin_error *err);

#endif
