/*
 * calib_run.c - GPTQ with calibration data: layer-by-layer forward passes,
 * Hessians, sequential quantization (issue 4).
 */
#include "pipeline_internal.h"

marlin_status qrun_gptq(qrun *r, marlin_error *err) {
    (void)r;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "--method gptq: the calibration pipeline is not "
                       "available in this build yet (use --method rtn)");
}
