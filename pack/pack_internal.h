/*
 * pack_internal.h - PRIVATE to pack/ (and tests/test_pack.c): little-endian
 * load/store helpers, the SWAR nibble kernels shared by the packers, and
 * the work-splitting helper. Not part of the public API; do not include it
 * from other stages.
 */
#ifndef MARLIN_PACK_INTERNAL_H
#define MARLIN_PACK_INTERNAL_H

#include "marlin_pack.h"

#include <string.h>

/* Every packed format is little-endian and the fast paths move whole
 * words: refuse to build where that would silently produce other bytes. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pack/ assumes a little-endian host"
#endif

#define MARLIN_NIB_LO 0x0f0f0f0f0f0f0f0full /* low nibble of every byte */
#define MARLIN_NIB_HI 0xf0f0f0f0f0f0f0f0ull /* bits that no code may set */

static inline uint64_t marlin_ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void marlin_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* 8 codes (bytes b0..b7, each < 16) -> one word b0 | b1<<4 | .. | b7<<28:
 * fold neighbouring bytes into nibble pairs, then pairs into words. */
static inline uint32_t marlin_nib_pack8(uint64_t x) {
    x = (x | (x >> 4)) & 0x00ff00ff00ff00ffull;
    x = (x | (x >> 8)) & 0x0000ffff0000ffffull;
    x = (x | (x >> 16)) & 0x00000000ffffffffull;
    return (uint32_t)x;
}
/* Inverse of marlin_nib_pack8: word -> 8 bytes, one code each. */
static inline uint64_t marlin_nib_unpack8(uint32_t w) {
    uint64_t x = w;
    x = (x | (x << 16)) & 0x0000ffff0000ffffull;
    x = (x | (x << 8)) & 0x00ff00ff00ff00ffull;
    x = (x | (x << 4)) & MARLIN_NIB_LO;
    return x;
}

/* 16 codes x[0..15] (two little-endian 8-byte halves lo, hi) -> "pair
 * bytes": byte i = x[i] | x[i+8] << 4. Both Marlin layouts put k-offsets i
 * and i+8 in neighbouring nibbles of one byte (MF 1.4 nib = .. + kk/8). */
static inline uint64_t marlin_pair16(uint64_t lo, uint64_t hi) {
    return lo | (hi << 4);
}

/* Bytes 2a, 2a+1 of u and of v -> word (u[2a], v[2a], u[2a+1], v[2a+1]):
 * the byte interleave that both Marlin layouts reduce to once pair bytes
 * are formed (see marlin_dense.c for the derivation). */
static inline uint32_t marlin_interleave_word(uint64_t u, uint64_t v, int a) {
    uint32_t u16 = (uint32_t)(u >> (16 * a)) & 0xffffu;
    uint32_t v16 = (uint32_t)(v >> (16 * a)) & 0xffffu;
    uint32_t us = (u16 & 0xffu) | ((u16 & 0xff00u) << 8);
    uint32_t vs = (v16 & 0xffu) | ((v16 & 0xff00u) << 8);
    return us | (vs << 8);
}
/* Inverse: the u part (bytes 0 and 2) and the v part (bytes 1 and 3) of a
 * word, as the 16-bit value to place at bits 16a of u / v. */
static inline uint64_t marlin_deinterleave_u(uint32_t w) {
    return (uint64_t)((w & 0xffu) | ((w >> 8) & 0xff00u));
}
static inline uint64_t marlin_deinterleave_v(uint32_t w) {
    return (uint64_t)(((w >> 8) & 0xffu) | ((w >> 16) & 0xff00u));
}

/* Minimum number of slice units per thread so that a thread gets at least
 * ~256 Ki codes: below that, thread start-up costs more than it saves. */
static inline int64_t marlin_pack_grain(int64_t codes_per_unit) {
    const int64_t min_codes = 256 * 1024;
    if (codes_per_unit <= 0) return 1;
    int64_t g = min_codes / codes_per_unit;
    return g < 1 ? 1 : g;
}

/* First code > 15 in q (n, k), row-major, as (row, col); false if none.
 * Only called after a fast pass found one, to report it deterministically. */
bool marlin_pack_find_bad_code(const uint8_t *q, int64_t n, int64_t k,
                               int64_t *row, int64_t *col);

/* Fills err with the "code > 15" message for q. */
marlin_status marlin_pack_bad_code_error(const char *what, const uint8_t *q,
                                         int64_t n, int64_t k,
                                         marlin_error *err);

#endif /* MARLIN_PACK_INTERNAL_H */
