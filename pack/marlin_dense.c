/*
 * marlin_dense.c - dense Marlin packer and its inverse: codes (n, k) <->
 * B [k/16][2n] (IST-DASLab/marlin Layer.pack, bit-exact), natural scales <->
 * permuted scales. Spec: docs/reference/marlin-format.md 1.2-1.7; the index
 * map is marlin_pack_dense_loc() in marlin_pack.h.
 *
 * Fast path derivation (checked against marlin_pack_dense_loc element by
 * element in tests/test_pack.c). Fix one 16 x 64 tile (k rows 16kt.., 64
 * output columns 64*c64..). For local column c, form the 8 "pair bytes"
 *     u_c[i] = q[c][16kt + i] | q[c][16kt + i + 8] << 4,   i = 0..7
 * (nibble kk/8 of MF 1.4 says k offsets i and i+8 share a byte). With
 * c = 16j + cc (cc < 8) and a = 0..3, the word at tile offset 16cc + 4a + j
 * is, byte by byte,
 *     u_c[2a], u_{c+8}[2a], u_c[2a+1], u_{c+8}[2a+1]
 * since lane = 4cc + a, nib/2 = 2*(kk%2) + (nn/8) picks byte 2*(kk%2) for
 * column c and byte 2*(kk%2)+1 for column c+8, and kk%8 = 2a + kk%2. So one
 * tile costs 2 loads + 1 shift/or per column and one byte interleave per
 * word: no per-nibble work, no tables.
 *
 * Traversal: each thread owns whole 64-column slices (all of B's columns
 * 128*c64 .. 128*c64+127), and walks k in steps of 64 so that every input
 * row is read one full cache line at a time and every B row segment is
 * written as 512 contiguous bytes.
 */
#include "pack_internal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#define KT_STEP 4 /* 16-row tiles per step: 64 bytes = one cache line per row */

marlin_status marlin_pack_dense_check_shape(int64_t n, int64_t k,
                                            int64_t group, marlin_error *err) {
    if (n <= 0 || k <= 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin: shape n=%" PRId64 " k=%" PRId64
                           " must be positive",
                           n, k);
    if (k % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin: k = %" PRId64
                           " (in_features) is not a multiple of 128 "
                           "(rule: k %% 128 == 0, the kernel's k tile)",
                           k);
    if (n % 64 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin: n = %" PRId64
                           " (out_features) is not a multiple of 64 "
                           "(rule: n %% 64 == 0, one 16x64 tile per warp)",
                           n);
    return marlin_pack_check_group("marlin", k, group, 16, err);
}

void marlin_pack_dense_scales(const uint16_t *s, int64_t G, int64_t n,
                              bool grouped, uint16_t *s_out) {
    for (int64_t g = 0; g < G; g++) {
        const uint16_t *src = s + g * n;
        uint16_t *dst = s_out + g * n;
        for (int64_t x = 0; x < n; x++)
            dst[marlin_pack_dense_scale_col(x, grouped)] = src[x];
    }
}

void marlin_unpack_dense_scales(const uint16_t *s_perm, int64_t G, int64_t n,
                                bool grouped, uint16_t *s) {
    for (int64_t g = 0; g < G; g++) {
        const uint16_t *src = s_perm + g * n;
        uint16_t *dst = s + g * n;
        for (int64_t x = 0; x < n; x++)
            dst[x] = src[marlin_pack_dense_scale_col(x, grouped)];
    }
}

typedef struct dense_job {
    const uint8_t *q_in;  /* (n, k) codes read by pack */
    uint8_t *q_out;       /* (n, k) codes written by unpack */
    const uint32_t *B_in; /* [k/16][2n] read by unpack */
    uint32_t *B_out;      /* [k/16][2n] written by pack */
    int64_t n, k;
    atomic_int bad;       /* a code > 15 was seen (pack only) */
} dense_job;

/* Packs 64-column slices [c_begin, c_end). */
static void dense_pack_range(void *arg, int64_t c_begin, int64_t c_end,
                             int thread_index) {
    dense_job *job = arg;
    const int64_t n = job->n, k = job->k, ktiles = k / 16;
    uint64_t or_all = 0;
    (void)thread_index;
    for (int64_t c64 = c_begin; c64 < c_end; c64++) {
        const uint8_t *qs = job->q_in + c64 * 64 * k;
        for (int64_t kt0 = 0; kt0 < ktiles; kt0 += KT_STEP) {
            uint64_t u[KT_STEP][64];
            for (int c = 0; c < 64; c++) {
                const uint8_t *p = qs + (int64_t)c * k + 16 * kt0;
                for (int t = 0; t < KT_STEP; t++) {
                    uint64_t lo = marlin_ld64(p + 16 * t);
                    uint64_t hi = marlin_ld64(p + 16 * t + 8);
                    or_all |= lo | hi;
                    u[t][c] = marlin_pair16(lo, hi);
                }
            }
            for (int t = 0; t < KT_STEP; t++) {
                uint32_t *w = job->B_out + (kt0 + t) * 2 * n + 128 * c64;
                for (int cc = 0; cc < 8; cc++)
                    for (int a = 0; a < 4; a++)
                        for (int j = 0; j < 4; j++)
                            *w++ = marlin_interleave_word(
                                u[t][16 * j + cc], u[t][16 * j + cc + 8], a);
            }
        }
    }
    if (or_all & MARLIN_NIB_HI)
        atomic_store_explicit(&job->bad, 1, memory_order_relaxed);
}

static void dense_unpack_range(void *arg, int64_t c_begin, int64_t c_end,
                               int thread_index) {
    dense_job *job = arg;
    const int64_t n = job->n, k = job->k, ktiles = k / 16;
    (void)thread_index;
    for (int64_t c64 = c_begin; c64 < c_end; c64++) {
        uint8_t *qs = job->q_out + c64 * 64 * k;
        for (int64_t kt0 = 0; kt0 < ktiles; kt0 += KT_STEP) {
            uint64_t u[KT_STEP][64];
            for (int t = 0; t < KT_STEP; t++) {
                const uint32_t *w = job->B_in + (kt0 + t) * 2 * n + 128 * c64;
                for (int c = 0; c < 64; c++) u[t][c] = 0;
                for (int cc = 0; cc < 8; cc++)
                    for (int a = 0; a < 4; a++)
                        for (int j = 0; j < 4; j++) {
                            uint32_t word = *w++;
                            u[t][16 * j + cc] |= marlin_deinterleave_u(word)
                                                 << (16 * a);
                            u[t][16 * j + cc + 8] |=
                                marlin_deinterleave_v(word) << (16 * a);
                        }
            }
            for (int c = 0; c < 64; c++) {
                uint8_t *p = qs + (int64_t)c * k + 16 * kt0;
                for (int t = 0; t < KT_STEP; t++) {
                    marlin_st64(p + 16 * t, u[t][c] & MARLIN_NIB_LO);
                    marlin_st64(p + 16 * t + 8, (u[t][c] >> 4) & MARLIN_NIB_LO);
                }
            }
        }
    }
}

marlin_status marlin_pack_dense(const uint8_t *q, const uint16_t *s,
                                int64_t n, int64_t k, int64_t group,
                                int threads, uint32_t *B, uint16_t *s_out,
                                marlin_error *err) {
    marlin_status st = marlin_pack_dense_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!q || !B || (!s) != (!s_out))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin pack: NULL codes/B, or only one of s and "
                           "s_out given");
    dense_job job = {.q_in = q, .B_out = B, .n = n, .k = k};
    atomic_init(&job.bad, 0);
    /* A thread failing to start is not an error: its slices then run on the
     * caller (marlin_parallel_for), and the output is the same. */
    (void)marlin_parallel_for(n / 64, marlin_pack_grain(64 * k), threads,
                              dense_pack_range, &job);
    if (atomic_load(&job.bad))
        return marlin_pack_bad_code_error("marlin pack", q, n, k, err);
    if (s)
        marlin_pack_dense_scales(s, marlin_pack_groups(k, group), n,
                                 marlin_pack_scales_grouped(k, group), s_out);
    return MARLIN_OK;
}

marlin_status marlin_unpack_dense(const uint32_t *B, const uint16_t *s_perm,
                                  int64_t n, int64_t k, int64_t group,
                                  int threads, uint8_t *q, uint16_t *s,
                                  marlin_error *err) {
    marlin_status st = marlin_pack_dense_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!q || !B || (!s) != (!s_perm))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin unpack: NULL codes/B, or only one of "
                           "s_perm and s given");
    dense_job job = {.q_out = q, .B_in = B, .n = n, .k = k};
    atomic_init(&job.bad, 0);
    (void)marlin_parallel_for(n / 64, marlin_pack_grain(64 * k), threads,
                              dense_unpack_range, &job);
    if (s)
        marlin_unpack_dense_scales(s_perm, marlin_pack_groups(k, group), n,
                                   marlin_pack_scales_grouped(k, group), s);
    return MARLIN_OK;
}
