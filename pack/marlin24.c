/*
 * marlin24.c - Sparse-Marlin 2:4 packer and its inverse: 2:4 codes (n, k)
 * <-> B [k/32][2n] + meta [k/32][2n] (IST-DASLab/Sparse-Marlin as vLLM's
 * marlin_24 utilities compute it), natural <-> permuted scales.
 * Spec: docs/reference/marlin-format.md 4.2-4.7 and pitfall 7.1; the index
 * maps are marlin_pack_24_loc / _meta_pos / _meta_nibble in marlin_pack.h.
 *
 * One tile = 32 dense k rows (16 compressed rows) x 64 output columns. Per
 * column: 32 code bytes -> 8 groups of 4 -> 8 meta nibbles (two logical
 * meta int16) and 16 compressed codes. The non-zero flags come from the
 * SIGNED values (code != 8), so an index that falls on a pruned slot always
 * selects a 0, never a -8 (MF 7.1).
 *
 * Compressed codes go to B with the same pair-byte trick as dense Marlin
 * (see marlin_dense.c), only the partner column differs: with
 * u_c[i] = qc[i][c] | qc[i+8][c] << 4, the word at tile offset
 * 16*col + 4a + (c%4), col = 2*(c/16) + (c%16)/8, is
 *     u_c[2a], u_{c+4}[2a], u_c[2a+1], u_{c+4}[2a+1]     (c%8 < 4)
 * because MF 4.4 puts k offsets kk, kk+8 in one byte, (kk%8)/2 in the lane
 * and (nn%8)/4 in the byte parity.
 */
#include "pack_internal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

marlin_status marlin_pack_24_check_shape(int64_t n, int64_t k, int64_t group,
                                         marlin_error *err) {
    if (n <= 0 || k <= 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin24: shape n=%" PRId64 " k=%" PRId64
                           " must be positive",
                           n, k);
    if (k % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin24: k = %" PRId64
                           " (in_features) is not a multiple of 128 "
                           "(rule: k %% 128 == 0, the 2:4 kernel's k tile)",
                           k);
    if (n % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "marlin24: n = %" PRId64
                           " (out_features) is not a multiple of 128 "
                           "(rule: n %% 128 == 0, the 2:4 kernel's minimum "
                           "output tile)",
                           n);
    return marlin_pack_check_group("marlin24", k, group, 32, err);
}

void marlin_pack_24_scales(const uint16_t *s, int64_t G, int64_t n,
                           bool grouped, uint16_t *s_out) {
    for (int64_t g = 0; g < G; g++)
        for (int64_t x = 0; x < n; x++)
            s_out[g * n + marlin_pack_24_scale_col(x, grouped)] = s[g * n + x];
}

void marlin_unpack_24_scales(const uint16_t *s_perm, int64_t G, int64_t n,
                             bool grouped, uint16_t *s) {
    for (int64_t g = 0; g < G; g++)
        for (int64_t x = 0; x < n; x++)
            s[g * n + x] = s_perm[g * n + marlin_pack_24_scale_col(x, grouped)];
}

/* Bit 0 of every byte of d set iff that byte has any of its low 4 bits set
 * (d = codes ^ 0x08.., so "non-zero signed value"), gathered into 8 bits:
 * bit i = byte i. */
static inline unsigned nonzero_flags8(uint64_t x) {
    uint64_t d = x ^ 0x0808080808080808ull;
    d |= d >> 1;
    d |= d >> 2;
    d &= 0x0101010101010101ull;
    /* Multiply-gather: byte i's bit 0 lands in bit 56 + i. */
    return (unsigned)((d * 0x0102040810204080ull) >> 56);
}

/* Groups of 4 with three or four non-zero flags (bit f = flags value). */
#define MARLIN24_OVERFULL_MASK 0xe880u /* flags 7, 11, 13, 14, 15 */

typedef struct m24_job {
    const uint8_t *q_in;
    uint8_t *q_out;
    const uint32_t *B_in;
    uint32_t *B_out;
    const uint16_t *meta_in;
    uint16_t *meta_out;
    int64_t n, k;
    atomic_int bad_code; /* pack: a code > 15 */
    atomic_int bad_24;   /* pack: a group with > 2 non-zeros */
    atomic_int bad_meta; /* unpack: a nibble mma.sp rejects */
    const struct m24_lut *lut;
} m24_job;

/* Per 8 dense codes (two groups of 4), indexed by their 8 non-zero flags:
 * bits 0..7 = the two meta nibbles (group 0 low), bit 8 = a group holds
 * more than 2 non-zeros. Built once per call from
 * marlin_pack_24_meta_nibble (256 entries, negligible next to a layer) so
 * the single definition of the encoding stays in marlin_pack.h. */
typedef struct m24_lut {
    uint16_t enc[256];
} m24_lut;

static void m24_lut_build(m24_lut *l) {
    for (unsigned f = 0; f < 256; f++) {
        unsigned lo = f & 15u, hi = f >> 4;
        unsigned over = ((MARLIN24_OVERFULL_MASK >> lo) |
                         (MARLIN24_OVERFULL_MASK >> hi)) & 1u;
        l->enc[f] = (uint16_t)((unsigned)marlin_pack_24_meta_nibble(lo) |
                               (unsigned)marlin_pack_24_meta_nibble(hi) << 4 |
                               over << 8);
    }
}

static void m24_pack_range(void *arg, int64_t c_begin, int64_t c_end,
                           int thread_index) {
    m24_job *job = arg;
    const int64_t n = job->n, k = job->k, ktiles = k / 32;
    const uint16_t *enc = job->lut->enc;
    uint64_t or_all = 0;
    unsigned overfull = 0;
    (void)thread_index;
    for (int64_t c64 = c_begin; c64 < c_end; c64++) {
        const uint8_t *qs = job->q_in + c64 * 64 * k;
        for (int64_t kt = 0; kt < ktiles; kt++) {
            uint64_t u[64];
            uint16_t *meta = job->meta_out + kt * 2 * n + 128 * c64;
            for (int c = 0; c < 64; c++) {
                const uint8_t *p = qs + (int64_t)c * k + 32 * kt;
                uint64_t qc[2] = {0, 0}; /* 16 compressed codes, one a byte */
                unsigned m[2] = {0, 0};  /* the two logical meta int16 */
                for (int h = 0; h < 4; h++) { /* 8 dense bytes = 2 groups */
                    uint64_t x = marlin_ld64(p + 8 * h);
                    unsigned e = enc[nonzero_flags8(x)];
                    or_all |= x;
                    overfull |= e;
                    /* compressed rows 4h..4h+3 = the selected slots,
                     * read back as bytes (L1 loads are cheaper than
                     * variable shifts) */
                    const uint8_t *b8 = p + 8 * h;
                    uint64_t c4 = (uint64_t)(b8[e & 3u] & 0xfu) |
                                  (uint64_t)(b8[(e >> 2) & 3u] & 0xfu) << 8 |
                                  (uint64_t)(b8[4 + ((e >> 4) & 3u)] & 0xfu) << 16 |
                                  (uint64_t)(b8[4 + ((e >> 6) & 3u)] & 0xfu) << 24;
                    qc[h / 2] |= c4 << (32 * (h % 2));
                    m[h / 2] |= (e & 0xffu) << (8 * (h % 2));
                }
                u[c] = marlin_pair16(qc[0], qc[1]);
                int64_t R = marlin_pack_24_meta_row_perm(c);
                meta[4 * (R / 2) + R % 2] = (uint16_t)m[0];
                meta[4 * (R / 2) + 2 + R % 2] = (uint16_t)m[1];
            }
            uint32_t *w = job->B_out + kt * 2 * n + 128 * c64;
            for (int col = 0; col < 8; col++)
                for (int a = 0; a < 4; a++)
                    for (int w4 = 0; w4 < 4; w4++) {
                        int c = 16 * (col / 2) + 8 * (col % 2) + w4;
                        *w++ = marlin_interleave_word(u[c], u[c + 4], a);
                    }
        }
    }
    if (or_all & MARLIN_NIB_HI)
        atomic_store_explicit(&job->bad_code, 1, memory_order_relaxed);
    if (overfull & 0x100u)
        atomic_store_explicit(&job->bad_24, 1, memory_order_relaxed);
}

static void m24_unpack_range(void *arg, int64_t c_begin, int64_t c_end,
                             int thread_index) {
    m24_job *job = arg;
    const int64_t n = job->n, k = job->k, ktiles = k / 32;
    unsigned invalid = 0;
    (void)thread_index;
    for (int64_t c64 = c_begin; c64 < c_end; c64++) {
        uint8_t *qs = job->q_out + c64 * 64 * k;
        for (int64_t kt = 0; kt < ktiles; kt++) {
            uint64_t u[64] = {0};
            const uint32_t *w = job->B_in + kt * 2 * n + 128 * c64;
            const uint16_t *meta = job->meta_in + kt * 2 * n + 128 * c64;
            for (int col = 0; col < 8; col++)
                for (int a = 0; a < 4; a++)
                    for (int w4 = 0; w4 < 4; w4++) {
                        int c = 16 * (col / 2) + 8 * (col % 2) + w4;
                        uint32_t word = *w++;
                        u[c] |= marlin_deinterleave_u(word) << (16 * a);
                        u[c + 4] |= marlin_deinterleave_v(word) << (16 * a);
                    }
            for (int c = 0; c < 64; c++) {
                int64_t R = marlin_pack_24_meta_row_perm(c);
                unsigned m[2] = {meta[4 * (R / 2) + R % 2],
                                 meta[4 * (R / 2) + 2 + R % 2]};
                uint64_t qc[2] = {u[c] & MARLIN_NIB_LO,
                                  (u[c] >> 4) & MARLIN_NIB_LO};
                uint8_t *p = qs + (int64_t)c * k + 32 * kt;
                for (int h = 0; h < 4; h++) {
                    uint8_t *o = p + 8 * h;
                    /* pruned = code 8; then the two kept slots per group,
                     * as byte stores (cheaper than variable shifts) */
                    marlin_st64(o, 0x0808080808080808ull);
                    for (int s = 0; s < 2; s++) {
                        int grp = 2 * h + s;
                        int nib = (int)(m[grp / 4] >> (4 * (grp % 4))) & 0xf;
                        uint64_t pair = qc[grp / 4] >> (16 * (grp % 4));
                        invalid |= !marlin_pack_24_meta_nibble_valid(nib);
                        /* i1 last: wins if a bad nibble repeats an index */
                        o[4 * s + (nib & 3)] = (uint8_t)(pair & 0xf);
                        o[4 * s + (nib >> 2)] = (uint8_t)((pair >> 8) & 0xf);
                    }
                }
            }
        }
    }
    if (invalid)
        atomic_store_explicit(&job->bad_meta, 1, memory_order_relaxed);
}

/* First group (row-major (n, k) order) with more than 2 non-zero signed
 * values, for a deterministic message. */
static marlin_status report_overfull(const uint8_t *q, int64_t n, int64_t k,
                                     marlin_error *err) {
    for (int64_t r = 0; r < n; r++) {
        for (int64_t g = 0; g < k / 4; g++) {
            const uint8_t *b = q + r * k + 4 * g;
            int nz = (b[0] != 8) + (b[1] != 8) + (b[2] != 8) + (b[3] != 8);
            if (nz > 2)
                return marlin_fail(
                    err, MARLIN_ERR_INVALID_ARG,
                    "marlin24 pack: row %" PRId64 " (output feature), group "
                    "%" PRId64 " (k = %" PRId64 "..%" PRId64
                    ") has %d non-zero weights (codes %u %u %u %u): 2:4 "
                    "allows at most 2 per aligned group of 4 (pruned = code "
                    "8)",
                    r, g, 4 * g, 4 * g + 3, nz, (unsigned)b[0],
                    (unsigned)b[1], (unsigned)b[2], (unsigned)b[3]);
        }
    }
    return marlin_fail(err, MARLIN_ERR_INTERNAL,
                       "marlin24 pack: overfull group reported but not found");
}

/* First invalid meta nibble in logical (row, k) order. */
static marlin_status report_bad_meta(const uint16_t *meta, int64_t n,
                                     int64_t k, marlin_error *err) {
    for (int64_t r = 0; r < n; r++) {
        for (int64_t c = 0; c < k / 16; c++) {
            marlin_pack_pos p = marlin_pack_24_meta_pos(r, c);
            unsigned m = meta[p.row * 2 * n + p.col];
            for (int j = 0; j < 4; j++) {
                int nib = (int)(m >> (4 * j)) & 0xf;
                if (!marlin_pack_24_meta_nibble_valid(nib))
                    return marlin_fail(
                        err, MARLIN_ERR_FORMAT,
                        "marlin24: meta[%" PRId64 "][%" PRId64 "] = 0x%04x "
                        "(row %" PRId64 ", k = %" PRId64 "..%" PRId64
                        "): nibble 0x%x is not a valid 2:4 index pair "
                        "(idx0 < idx1: 0x4 0x8 0x9 0xc 0xd 0xe)",
                        p.row, p.col, m, r, 16 * c + 4 * j, 16 * c + 4 * j + 3,
                        (unsigned)nib);
            }
        }
    }
    return marlin_fail(err, MARLIN_ERR_INTERNAL,
                       "marlin24: bad meta reported but not found");
}

marlin_status marlin_pack_24(const uint8_t *q, const uint16_t *s, int64_t n,
                             int64_t k, int64_t group, int threads,
                             uint32_t *B, uint16_t *meta, uint16_t *s_out,
                             marlin_error *err) {
    marlin_status st = marlin_pack_24_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!q || !B || !meta || (!s) != (!s_out))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin24 pack: NULL codes/B/meta, or only one of "
                           "s and s_out given");
    m24_lut lut;
    m24_lut_build(&lut);
    m24_job job = {.q_in = q, .B_out = B, .meta_out = meta, .n = n, .k = k,
                   .lut = &lut};
    atomic_init(&job.bad_code, 0);
    atomic_init(&job.bad_24, 0);
    atomic_init(&job.bad_meta, 0);
    /* A thread that fails to start has its slices run on the caller. */
    (void)marlin_parallel_for(n / 64, marlin_pack_grain(64 * k), threads,
                              m24_pack_range, &job);
    if (atomic_load(&job.bad_code))
        return marlin_pack_bad_code_error("marlin24 pack", q, n, k, err);
    if (atomic_load(&job.bad_24)) return report_overfull(q, n, k, err);
    if (s)
        marlin_pack_24_scales(s, marlin_pack_groups(k, group), n,
                              marlin_pack_scales_grouped(k, group), s_out);
    return MARLIN_OK;
}

marlin_status marlin_unpack_24(const uint32_t *B, const uint16_t *meta,
                               const uint16_t *s_perm, int64_t n, int64_t k,
                               int64_t group, int threads, uint8_t *q,
                               uint16_t *s, marlin_error *err) {
    marlin_status st = marlin_pack_24_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (!q || !B || !meta || (!s) != (!s_perm))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin24 unpack: NULL codes/B/meta, or only one "
                           "of s_perm and s given");
    m24_job job = {.q_out = q, .B_in = B, .meta_in = meta, .n = n, .k = k};
    atomic_init(&job.bad_code, 0);
    atomic_init(&job.bad_24, 0);
    atomic_init(&job.bad_meta, 0);
    (void)marlin_parallel_for(n / 64, marlin_pack_grain(64 * k), threads,
                              m24_unpack_range, &job);
    if (atomic_load(&job.bad_meta)) return report_bad_meta(meta, n, k, err);
    if (s)
        marlin_unpack_24_scales(s_perm, marlin_pack_groups(k, group), n,
                                marlin_pack_scales_grouped(k, group), s);
    return MARLIN_OK;
}
