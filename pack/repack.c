/*
 * repack.c - GPTQ v1 checkpoint tensors -> dense Marlin tensors in one call
 * (marlin_pack_gptq_to_marlin), the per-layer step of marlin-pack. Follows
 * the load-time repack vLLM gptq_marlin performs (docs/reference/
 * marlin-format.md 5.2): unpack qweight, sort act-order columns by g_idx,
 * lay the codes out with the 1.4 map, permute scales per 1.6. Only composes
 * the primitives of gptq.c and marlin_dense.c.
 */
#include "pack_internal.h"

#include <stdlib.h>

marlin_status marlin_pack_gptq_to_marlin(const uint32_t *qweight,
                                         const uint32_t *qzeros,
                                         const uint16_t *scales,
                                         const int32_t *g_idx, int64_t n,
                                         int64_t k, int64_t group,
                                         int threads, uint32_t *B,
                                         uint16_t *s_out, int32_t *perm,
                                         bool *act_order, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    uint8_t *q = NULL, *sorted = NULL;
    int32_t *own_perm = NULL;
    if (!act_order || !scales || !s_out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "gptq->marlin: NULL act_order/scales/s_out");
    /* Both formats' gates up front, so nothing is allocated for a layer
     * that cannot be converted. */
    st = marlin_pack_gptq_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    st = marlin_pack_dense_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;

    *act_order = false;
    if (g_idx) {
        own_perm = malloc((size_t)k * sizeof *own_perm);
        if (!own_perm) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "gptq->marlin: malloc");
            goto out;
        }
        st = marlin_pack_gptq_g_idx(g_idx, k, group, own_perm, act_order, err);
        if (st != MARLIN_OK) goto out;
    }
    q = malloc((size_t)(n * k));
    if (!q) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "gptq->marlin: malloc codes");
        goto out;
    }
    st = marlin_unpack_gptq(qweight, qzeros, NULL, n, k, group, threads, q,
                            NULL, err);
    if (st != MARLIN_OK) goto out;
    if (*act_order) {
        sorted = malloc((size_t)(n * k));
        if (!sorted) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM,
                             "gptq->marlin: malloc sorted codes");
            goto out;
        }
        st = marlin_pack_permute_k(q, n, k, own_perm, threads, sorted, err);
        if (st != MARLIN_OK) goto out;
    }
    /* Scales stay in group order: after sorting, group grp is rows
     * [grp*g, (grp+1)*g), exactly the plain grouped layout. */
    st = marlin_pack_dense(sorted ? sorted : q, scales, n, k, group, threads,
                           B, s_out, err);
    if (st != MARLIN_OK) goto out;
    if (perm) {
        for (int64_t i = 0; i < k; i++)
            perm[i] = *act_order ? own_perm[i] : (int32_t)i;
    }
out:
    free(q);
    free(sorted);
    free(own_perm);
    return st;
}
