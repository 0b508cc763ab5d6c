/*
 * dtype.c - the 22 safetensors dtypes: header spelling, bits per element,
 * parsing of a header dtype string.
 *
 * Spec: huggingface/safetensors `safetensors/src/tensor.rs` enum `Dtype`
 * (names are case-sensitive; order = enum order, the writer's sort key);
 * our table is safetensors.md rule R11.
 */
#include "marlin_formats.h"

#include <string.h>

/* Indexed by marlin_dtype; the enum in marlin_formats.h follows the same
 * (reference) order, checked below. */
static const struct {
    const char *name;
    unsigned char len;
    unsigned char bits;
} dtype_table[MARLIN_DT_COUNT] = {
    [MARLIN_DT_BOOL] = {"BOOL", 4, 8},
    [MARLIN_DT_F4] = {"F4", 2, 4},
    [MARLIN_DT_F6_E2M3] = {"F6_E2M3", 7, 6},
    [MARLIN_DT_F6_E3M2] = {"F6_E3M2", 7, 6},
    [MARLIN_DT_U8] = {"U8", 2, 8},
    [MARLIN_DT_I8] = {"I8", 2, 8},
    [MARLIN_DT_F8_E5M2] = {"F8_E5M2", 7, 8},
    [MARLIN_DT_F8_E4M3] = {"F8_E4M3", 7, 8},
    [MARLIN_DT_F8_E8M0] = {"F8_E8M0", 7, 8},
    [MARLIN_DT_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 11, 8},
    [MARLIN_DT_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 11, 8},
    [MARLIN_DT_I16] = {"I16", 3, 16},
    [MARLIN_DT_U16] = {"U16", 3, 16},
    [MARLIN_DT_F16] = {"F16", 3, 16},
    [MARLIN_DT_BF16] = {"BF16", 4, 16},
    [MARLIN_DT_I32] = {"I32", 3, 32},
    [MARLIN_DT_U32] = {"U32", 3, 32},
    [MARLIN_DT_F32] = {"F32", 3, 32},
    [MARLIN_DT_C64] = {"C64", 3, 64},
    [MARLIN_DT_F64] = {"F64", 3, 64},
    [MARLIN_DT_I64] = {"I64", 3, 64},
    [MARLIN_DT_U64] = {"U64", 3, 64},
};

_Static_assert(MARLIN_DT_COUNT == 22, "safetensors has 22 dtypes (R11)");

const char *marlin_dtype_name(marlin_dtype dt) {
    if ((unsigned)dt >= MARLIN_DT_COUNT) return "?";
    return dtype_table[dt].name;
}

int marlin_dtype_bits(marlin_dtype dt) {
    if ((unsigned)dt >= MARLIN_DT_COUNT) return 0;
    return dtype_table[dt].bits;
}

bool marlin_dtype_parse(const char *s, size_t n, marlin_dtype *out) {
    /* 22 short candidates: the length filter leaves at most 11, so a linear
     * scan is as fast as a hash here (the header scanner calls this once
     * per tensor). */
    if (!s || n < 2 || n > 11) return false;
    for (int i = 0; i < MARLIN_DT_COUNT; i++) {
        if (dtype_table[i].len == n && memcmp(dtype_table[i].name, s, n) == 0) {
            if (out) *out = (marlin_dtype)i;
            return true;
        }
    }
    return false;
}
