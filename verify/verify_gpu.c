/*
 * verify_gpu.c - the GPU checks of marlin-verify.
 */
#include "verify_internal.h"

marlin_status verify_gpu_begin(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, marlin_verify_report *rep,
                               marlin_error *err) {
    (void)o; (void)ck; (void)nck; (void)rep;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "--gpu: GPU verification is not available in this build");
}

marlin_status verify_layer_gpu(const marlin_verify_opts *o, marlin_qckpt **ck,
                               int nck, size_t li, const float *W,
                               const float *Wq, marlin_verify_layer *L,
                               marlin_error *err) {
    (void)o; (void)ck; (void)nck; (void)li; (void)W; (void)Wq; (void)L;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED, "GPU verification unavailable");
}

void verify_gpu_end(void) {}
