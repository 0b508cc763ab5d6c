/*
 * source.c - the plain weight source: tensors of an open checkpoint
 * (formats/ marlin_model, F16/BF16/F32) converted to fp32 on request.
 *
 * Spec: marlin_model.h "weight source". Shapes are checked here, at the
 * boundary, so the forward can trust every array it is given.
 */
#include "model_internal.h"

#include <stdio.h>
#include <string.h>

static bool model_has(void *user, const char *name) {
    const marlin_st_file *shard = NULL;
    return marlin_model_find((const marlin_model *)user, name, &shard) != NULL;
}

/* "[a, b]" of a stored shape into buf. */
static void fmt_shape(char *buf, size_t n, int rank, const uint64_t *s64,
                      const int64_t *s) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < rank && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? ", " : "",
                              s64 ? (unsigned long long)s64[i]
                                  : (unsigned long long)s[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static marlin_status model_read(void *user, const char *name, int rank,
                                const int64_t *shape, float *dst,
                                marlin_error *err) {
    const marlin_model *m = user;
    const marlin_st_file *shard = NULL;
    const marlin_tensor *t = marlin_model_find(m, name, &shard);
    if (!t)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: tensor '%s' not found in the checkpoint",
                           marlin_model_dir(m), name);
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == (uint64_t)shape[i];
    if (!same) {
        char got[160], want[160];
        fmt_shape(got, sizeof got, t->rank, t->shape, NULL);
        fmt_shape(want, sizeof want, rank, NULL, shape);
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: tensor '%s' has shape %s, config.json implies "
                           "%s", marlin_st_label(shard), name, got, want);
    }
    return marlin_st_read_f32(shard, t, dst, err);
}

void marlin_weight_source_from_model(const marlin_model *m,
                                     marlin_weight_source *out) {
    out->has = model_has;
    out->read = model_read;
    /* The callbacks only read the model; the cast drops const for the
     * void* user slot. */
    out->user = (void *)(uintptr_t)m;
}
