/*
 * pack_common.c - group-size rules and error helpers shared by the packers
 * of pack/ (see marlin_pack.h; spec: docs/reference/marlin-format.md).
 */
#include "pack_internal.h"

#include <inttypes.h>

marlin_status marlin_pack_check_group(const char *what, int64_t k,
                                      int64_t group, int64_t multiple_of,
                                      marlin_error *err) {
    if (group == -1) return MARLIN_OK;
    if (group < 1)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "%s: group size %" PRId64
                           " is invalid: use -1 (per-channel) or a positive "
                           "divisor of k = %" PRId64,
                           what, group, k);
    if (k % group != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "%s: group size %" PRId64
                           " does not divide k = %" PRId64
                           " (rule: k %% g == 0)",
                           what, group, k);
    if (multiple_of > 1 && group % multiple_of != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "%s: group size %" PRId64
                           " is not a multiple of %" PRId64
                           " (rule: g %% %" PRId64 " == 0)",
                           what, group, multiple_of, multiple_of);
    return MARLIN_OK;
}

bool marlin_pack_find_bad_code(const uint8_t *q, int64_t n, int64_t k,
                               int64_t *row, int64_t *col) {
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *p = q + r * k;
        for (int64_t c = 0; c < k; c++) {
            if (p[c] > 15) {
                *row = r;
                *col = c;
                return true;
            }
        }
    }
    return false;
}

marlin_status marlin_pack_bad_code_error(const char *what, const uint8_t *q,
                                         int64_t n, int64_t k,
                                         marlin_error *err) {
    int64_t r = 0, c = 0;
    if (!marlin_pack_find_bad_code(q, n, k, &r, &c))
        return marlin_fail(err, MARLIN_ERR_INTERNAL,
                           "%s: bad code reported but not found", what);
    return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                       "%s: code q[%" PRId64 "][%" PRId64 "] = %u is not "
                       "a 4-bit code (must be 0..15)",
                       what, r, c, (unsigned)q[r * k + c]);
}
