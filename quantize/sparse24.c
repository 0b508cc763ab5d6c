/*
 * sparse24.c - 2:4 pruning masks (issue 6): magnitude (keep the 2 largest
 * |w| of every 4 consecutive input weights of a row) and SparseGPT's
 * saliency w^2 / U_jj^2 (IST-DASLab/sparsegpt `sparsegpt.py`, prunen 2,
 * prunem 4; docs/reference/landscape.md 2.10), plus the 2:4 check.
 *
 * Only the mask choice lives here. Where it is applied: rtn.c (magnitude,
 * then RTN on the survivors) and gptq.c (both masks inside the blocked
 * solve, with the pruned weights' error fed back like rounding error).
 *
 * Why these keys: magnitude minimises the pruned weights' own squared error
 * sum w^2 over each run of 4 (the weight-space loss of zeroing them).
 * SparseGPT's w_j^2 / U_jj^2 is the OBS loss of zeroing w_j when every later
 * column compensates optimally (the same expression as GPTQ's per-element
 * loss with q = 0), so pruning the 2 smallest is the greedy loss minimiser.
 */
#include "quant_internal.h"

void mq_prune_magnitude_row(float *x, int64_t k) {
    for (int64_t j = 0; j + 4 <= k; j += 4) {
        float key[4];
        uint8_t keep[4];
        for (int i = 0; i < 4; i++) key[i] = fabsf(x[j + i]);
        mq_keep2of4(key, keep);
        for (int i = 0; i < 4; i++)
            if (!keep[i]) x[j + i] = 0.0f;
    }
}

void mq_sparsegpt_mask(const float *x, const float *dinv2, int64_t len,
                       uint8_t *keep) {
    for (int64_t j = 0; j + 4 <= len; j += 4) {
        float key[4];
        for (int i = 0; i < 4; i++)
            key[i] = (x[j + i] * x[j + i]) * dinv2[j + i];
        mq_keep2of4(key, keep + j);
    }
}

bool marlin_quant_is_24(const uint8_t *q, int64_t n, int64_t k) {
    if (k % 4 != 0) return false;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *qr = q + (size_t)r * (size_t)k;
        for (int64_t j = 0; j < k; j += 4) {
            int zeros = (qr[j] == MARLIN_QUANT_ZERO) +
                        (qr[j + 1] == MARLIN_QUANT_ZERO) +
                        (qr[j + 2] == MARLIN_QUANT_ZERO) +
                        (qr[j + 3] == MARLIN_QUANT_ZERO);
            if (zeros < 2) return false;
        }
    }
    return true;
}
