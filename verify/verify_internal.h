/*
 * verify_internal.h - PRIVATE to verify/: the GPU half of marlin-verify
 * (verify_gpu.c), called by verify.c once per run and once per layer.
 */
#ifndef MARLIN_VERIFY_INTERNAL_H
#define MARLIN_VERIFY_INTERNAL_H

#include "marlin_pipeline.h"
#include "marlin_verify.h"

/* Real activations (verify_acts.c): the inputs of every linear of the
 * reference model on the first `rows` tokens of the first calibration
 * sequence. */
typedef struct verify_acts verify_acts;
marlin_status verify_acts_capture(const marlin_model *ref, const char *calib,
                                  int64_t rows, int threads, verify_acts **out,
                                  marlin_error *err);
/* The captured input of layer `prefix` (k columns), or NULL if none. */
const float *verify_acts_for(const verify_acts *a, const char *prefix, int64_t k,
                             int64_t *rows);
void verify_acts_free(verify_acts *a);

/* Probes the GPU, fills rep->device. MARLIN_ERR_NO_DEVICE without a GPU,
 * MARLIN_ERR_UNSUPPORTED in a build without CUDA or for a checkpoint
 * without Marlin tiles. */
marlin_status verify_gpu_begin(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, marlin_verify_report *rep,
                               marlin_error *err);
/* GPU checks of layer li of ck[0]. W: reference weights (n, k) or NULL;
 * Wq: dequantized weights (n, k). Records results/failures in L. */
marlin_status verify_layer_gpu(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, size_t li, const float *W,
                               const float *Wq, const verify_acts *acts,
                               marlin_verify_layer *L, marlin_error *err);
void verify_gpu_end(void);

/* Marks layer L failed with a reason (the first reason is kept). Returns
 * MARLIN_OK, or MARLIN_ERR_NOMEM if the reason could not be stored. */
marlin_status verify_layer_fail_msg(marlin_verify_layer *L, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
