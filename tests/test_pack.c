/*
 * test_pack.c - pack/: GPTQ v1, dense Marlin and Sparse-Marlin 2:4 packers
 * and their inverses.
 *
 * References used here are written independently of pack/'s fast paths,
 * from docs/reference/marlin-format.md ("MF"):
 *  - the _get_perms / _get_perms_2_4 CONSTRUCTION steps of MF 1.3 / 4.4
 *    (tile transpose, 1024-entry gather, 8 values per word), not the
 *    closed forms;
 *  - the scale_perm / scale_perm_single / scale_perm_2_4 construction
 *    loops of MF 1.6 / 4.6;
 *  - the meta nibble table of MF 4.3 as printed (flag strings), and the
 *    CUTLASS meta reorder of MF 4.5 written in its arithmetic form
 *    (row regrouping, 2x2 swizzle, interleaved column-major offset);
 *  - per-element packers through the public index helpers, to pin the
 *    fast SWAR paths to the single definition in marlin_pack.h.
 * Randomized tests use marlin_test_seed() and print the seed on failure.
 */
#include "testutil.h"

#include "marlin_pack.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_DEFAULT 0x5eed0fac4u

/* ------------------------------------------------------------------ utils */

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    assert_non_null(p);
    return p;
}

static void random_codes(marlin_rng *r, uint8_t *q, int64_t count) {
    for (int64_t i = 0; i < count; i++) q[i] = (uint8_t)(marlin_rng_u64(r) & 15);
}

/* Positive, finite fp16 scales with varied exponents. */
static void random_scales(marlin_rng *r, uint16_t *s, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        float v = (float)(0.0005 + marlin_rng_uniform(r) * 0.05);
        s[i] = marlin_float_to_half(v);
    }
}

/* 2:4 codes: every aligned group of 4 gets 0, 1 or 2 kept weights at random
 * positions, with random non-zero signed values (code 0 = -8 included);
 * pruned slots hold code 8. */
static void random_codes_24(marlin_rng *r, uint8_t *q, int64_t n, int64_t k) {
    for (int64_t i = 0; i < n * k; i += 4) {
        int keep = (int)(marlin_rng_u64(r) % 8);
        keep = keep == 0 ? 0 : keep == 1 ? 1 : 2; /* mostly 2, as pruning */
        for (int t = 0; t < 4; t++) q[i + t] = 8;
        int placed = 0;
        while (placed < keep) {
            int pos = (int)(marlin_rng_u64(r) % 4);
            if (q[i + pos] != 8) continue;
            uint8_t v = (uint8_t)(marlin_rng_u64(r) % 15);
            q[i + pos] = v >= 8 ? (uint8_t)(v + 1) : v; /* never 8 */
            placed++;
        }
    }
}

/* Per-element packers through the public index helpers. */
static void loc_pack_dense(const uint8_t *q, int64_t n, int64_t k,
                           uint32_t *B) {
    memset(B, 0, (size_t)(k / 16 * 2 * n) * 4);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) {
            marlin_pack_loc l = marlin_pack_dense_loc(c, r);
            B[l.row * 2 * n + l.word] |= (uint32_t)q[r * k + c] << (4 * l.nib);
        }
}

/* The MF 1.3 / 4.4 construction: the 1024-entry permutation as
 * _get_perms (two24 = 0) or _get_perms_2_4 (two24 = 1) builds it. */
static void build_perm(int two24, int perm[1024]) {
    static const int interleave[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    int raw[1024], m = 0;
    for (int i = 0; i < 32; i++) {
        int perm1[8], p = 0, col = i / 4;
        int rows[4] = {2 * (i % 4), 2 * (i % 4) + 1, 2 * (i % 4) + 8,
                       2 * (i % 4) + 9};
        for (int block = 0; block < 2; block++)
            for (int t = 0; t < 4; t++) {
                if (!two24)
                    perm1[p++] = 16 * rows[t] + col + 8 * block;
                else
                    perm1[p++] = 16 * rows[t] + 256 * (col / 2) +
                                 8 * (col % 2) + 4 * block;
            }
        for (int j = 0; j < 4; j++)
            for (int t = 0; t < 8; t++)
                raw[m++] = perm1[t] + (two24 ? j : 256 * j);
    }
    assert_int_equal(m, 1024);
    for (int g = 0; g < 128; g++)
        for (int t = 0; t < 8; t++) perm[8 * g + t] = raw[8 * g + interleave[t]];
}

/* MF 1.3 steps 3-5 on a logical (K, N) matrix W[kk][nn] (K % 16, N % 64):
 * tile transpose, gather through perm per 1024 chunk, 8 nibbles a word. */
static void construction_pack(const uint8_t *W, int64_t K, int64_t N,
                              const int perm[1024], uint32_t *B) {
    uint8_t *row = xcalloc((size_t)(16 * N), 1);
    uint8_t *out = xcalloc((size_t)(16 * N), 1);
    for (int64_t kt = 0; kt < K / 16; kt++) {
        for (int64_t nt = 0; nt < N / 16; nt++)
            for (int kk = 0; kk < 16; kk++)
                for (int nn = 0; nn < 16; nn++)
                    row[nt * 256 + kk * 16 + nn] =
                        W[(16 * kt + kk) * N + 16 * nt + nn];
        for (int64_t c = 0; c < 16 * N / 1024; c++)
            for (int p = 0; p < 1024; p++)
                out[c * 1024 + p] = row[c * 1024 + perm[p]];
        for (int64_t w = 0; w < 2 * N; w++) {
            uint32_t word = 0;
            for (int t = 0; t < 8; t++) word |= (uint32_t)out[8 * w + t] << (4 * t);
            B[kt * 2 * N + w] = word;
        }
    }
    free(row);
    free(out);
}

/* MF 4.3 table as printed: flags "f0 f1 f2 f3" -> nibble. */
static const struct {
    const char *flags;
    int nib;
} META_TABLE[16] = {
    {"0000", 0xE}, {"0001", 0xE}, {"0010", 0xE}, {"0011", 0xE},
    {"0100", 0x9}, {"0110", 0x9}, {"0101", 0xD}, {"0111", 0xD},
    {"1000", 0x8}, {"1010", 0x8}, {"1001", 0xC}, {"1011", 0xC},
    {"1100", 0x4}, {"1101", 0x4}, {"1110", 0x4}, {"1111", 0x4},
};

static int table_nibble(unsigned flags) {
    for (int i = 0; i < 16; i++) {
        unsigned f = 0;
        for (int t = 0; t < 4; t++)
            if (META_TABLE[i].flags[t] == '1') f |= 1u << t;
        if (f == flags) return META_TABLE[i].nib;
    }
    fail_msg("flags %u not in table", flags);
    return -1;
}

/* MF 4.5 in the arithmetic form of the CUTLASS reorder: returns the flat
 * int16 offset of logical meta (r, c) for n rows. */
static int64_t meta_offset_ref(int64_t r, int64_t c, int64_t n) {
    int64_t R = r / 64 * 64 + (r % 2) * 2 + (r % 8) / 4 +
                ((r % 32) % 4) / 2 * 32 + ((r % 64) / 8) * 4;
    int64_t topright = (R % 2 == 0) && (c % 2 == 1);
    int64_t bottomleft = (R % 2 == 1) && (c % 2 == 0);
    R += topright - bottomleft;
    c -= topright - bottomleft;
    return (c / 2) * n * 2 + R * 2 + c % 2;
}

/* Reference 2:4 compression (MF 4.3 + 4.5 + 4.4) into B, meta. */
static void ref_pack_24(const uint8_t *q, int64_t n, int64_t k, uint32_t *B,
                        uint16_t *meta) {
    uint8_t *Wc = xcalloc((size_t)(k / 2 * n), 1); /* (k/2, n) */
    uint16_t *lm = xcalloc((size_t)(n * k / 16), 2); /* logical (n, k/16) */
    int perm[1024];
    for (int64_t r = 0; r < n; r++)
        for (int64_t g = 0; g < k / 4; g++) {
            const uint8_t *b = q + r * k + 4 * g;
            unsigned f = 0;
            for (int t = 0; t < 4; t++)
                if ((int)b[t] - 8 != 0) f |= 1u << t;
            int nib = table_nibble(f);
            Wc[(2 * g) * n + r] = b[nib & 3];
            Wc[(2 * g + 1) * n + r] = b[nib >> 2];
            lm[r * (k / 16) + g / 4] |= (uint16_t)(nib << (4 * (g % 4)));
        }
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k / 16; c++)
            meta[meta_offset_ref(r, c, n)] = lm[r * (k / 16) + c];
    build_perm(1, perm);
    construction_pack(Wc, k / 2, n, perm, B);
    free(Wc);
    free(lm);
}

/* C-side dequantization from codes + natural scales: W[r][c] as float. */
static void dequant_codes(const uint8_t *q, const uint16_t *s,
                          const int32_t *g_idx, int64_t n, int64_t k,
                          int64_t group, float *W) {
    int64_t g = group == -1 ? k : group;
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) {
            int64_t grp = g_idx ? g_idx[c] : c / g;
            W[r * k + c] = (float)((int)q[r * k + c] - 8) *
                           marlin_half_to_float(s[grp * n + r]);
        }
}

/* ===================================================== dense: index maps */

static void test_pack_dense_loc_vectors(void **state) {
    (void)state;
    static const int64_t v[][5] = {
        {0, 0, 0, 0, 0},      {1, 0, 0, 0, 4},     {8, 0, 0, 0, 1},
        {9, 0, 0, 0, 5},      {0, 8, 0, 0, 2},     {0, 1, 0, 16, 0},
        {2, 0, 0, 4, 0},      {0, 16, 0, 1, 0},    {0, 64, 0, 128, 0},
        {16, 0, 1, 0, 0},     {15, 63, 0, 127, 7}, {37, 200, 2, 392, 6},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        marlin_pack_loc l = marlin_pack_dense_loc(v[i][0], v[i][1]);
        if (l.row != v[i][2] || l.word != v[i][3] || l.nib != v[i][4])
            fail_msg("(%" PRId64 ",%" PRId64 ") -> (%" PRId64 ",%" PRId64
                     ",%d), expected (%" PRId64 ",%" PRId64 ",%" PRId64 ")",
                     v[i][0], v[i][1], l.row, l.word, l.nib, v[i][2], v[i][3],
                     v[i][4]);
    }
}

/* MF 1.4 checksum: q[k][n] = (k + 2n + n/16) mod 16 on a 16 x 64 tile. Our
 * packer needs k % 128, so pack 128 rows; B row 0 only sees k < 16. */
static void test_pack_dense_checksum_vector(void **state) {
    (void)state;
    const int64_t n = 64, k = 128;
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint32_t *B = xcalloc((size_t)(k / 16 * 2 * n), 4);
    marlin_error err = {0};
    for (int64_t kk = 0; kk < k; kk++)
        for (int64_t nn = 0; nn < n; nn++)
            q[nn * k + kk] = (uint8_t)((kk + 2 * nn + nn / 16) % 16);
    assert_int_equal(marlin_pack_dense(q, NULL, n, k, -1, 1, B, NULL, &err),
                     MARLIN_OK);
    static const uint32_t first[8] = {0x91918080, 0xa2a29191, 0xb3b3a2a2,
                                      0xc4c4b3b3, 0xb3b3a2a2, 0xc4c4b3b3,
                                      0xd5d5c4c4, 0xe6e6d5d5};
    static const uint32_t last[4] = {0xd5d5c4c4, 0xe6e6d5d5, 0xf7f7e6e6,
                                     0x0808f7f7};
    for (int i = 0; i < 8; i++) assert_int_equal(B[i], first[i]);
    for (int i = 0; i < 4; i++) assert_int_equal(B[124 + i], last[i]);
    free(q);
    free(B);
}

/* The construction of MF 1.3 gives the printed first 16 entries, and every
 * entry p maps element perm[p] of a 16 x 64 tile to word p/8, nibble p%8,
 * which is what the closed form says (all 1024 entries). */
static void test_pack_dense_perm_construction(void **state) {
    (void)state;
    static const int first16[16] = {0,   128, 8,   136, 16,  144, 24,  152,
                                    256, 384, 264, 392, 272, 400, 280, 408};
    int perm[1024];
    build_perm(0, perm);
    for (int i = 0; i < 16; i++) assert_int_equal(perm[i], first16[i]);
    int seen[1024] = {0};
    for (int p = 0; p < 1024; p++) {
        int e = perm[p];
        assert_true(e >= 0 && e < 1024 && !seen[e]);
        seen[e] = 1;
        /* e = nt*256 + kk*16 + nn inside the tile (step 3 of MF 1.3) */
        int64_t kk = (e % 256) / 16, n = 16 * (e / 256) + e % 16;
        marlin_pack_loc l = marlin_pack_dense_loc(kk, n);
        assert_int_equal(l.row, 0);
        assert_int_equal(l.word, p / 8);
        assert_int_equal(l.nib, p % 8);
    }
}

/* Whole-matrix equality: fast packer == construction packer == per-element
 * closed form, several shapes including multi-chunk rows. */
static void test_pack_dense_matches_construction(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    static const int64_t shapes[][2] = {{64, 128}, {192, 256}, {128, 384}};
    int perm[1024];
    build_perm(0, perm);
    for (size_t si = 0; si < 3; si++) {
        int64_t n = shapes[si][0], k = shapes[si][1];
        uint8_t *q = xcalloc((size_t)(n * k), 1);
        uint8_t *W = xcalloc((size_t)(n * k), 1);
        uint32_t *B = xcalloc((size_t)(n * k / 8), 4);
        uint32_t *Bc = xcalloc((size_t)(n * k / 8), 4);
        uint32_t *Bl = xcalloc((size_t)(n * k / 8), 4);
        marlin_error err = {0};
        random_codes(&rng, q, n * k);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < k; c++) W[c * n + r] = q[r * k + c];
        assert_int_equal(marlin_pack_dense(q, NULL, n, k, 128, 2, B, NULL, &err),
                         MARLIN_OK);
        construction_pack(W, k, n, perm, Bc);
        loc_pack_dense(q, n, k, Bl);
        MT_ASSERT(seed, memcmp(B, Bc, (size_t)(n * k / 2)) == 0,
                  "dense pack != construction for n=%" PRId64 " k=%" PRId64, n,
                  k);
        MT_ASSERT(seed, memcmp(B, Bl, (size_t)(n * k / 2)) == 0,
                  "dense pack != closed form for n=%" PRId64 " k=%" PRId64, n,
                  k);
        free(q);
        free(W);
        free(B);
        free(Bc);
        free(Bl);
    }
}

/* ================================================== scale permutations */

static void test_pack_scale_perms(void **state) {
    (void)state;
    /* MF 1.6: scale_perm = [i + 8j for i in 0..7 for j in 0..7];
     * scale_perm_single = [2i + j for i in 0..3 for j in (0,1,8,9,16,17,24,25)];
     * MF 4.6: scale_perm_2_4 = [8i + j for i in 0..7 for j in (0,4,1,5,2,6,3,7)]
     * with out[chunk + p] = in[chunk + perm[p]]. */
    int sp[64], sps[32], sp24[64], m = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) sp[m++] = i + 8 * j;
    static const int js[8] = {0, 1, 8, 9, 16, 17, 24, 25};
    m = 0;
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 8; t++) sps[m++] = 2 * i + js[t];
    static const int j24[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    m = 0;
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 8; t++) sp24[m++] = 8 * i + j24[t];

    const int64_t G = 3, n = 256;
    uint16_t in[3 * 256], out[3 * 256], back[3 * 256];
    for (int64_t i = 0; i < G * n; i++) in[i] = (uint16_t)(i * 7 + 1);
    for (int grouped = 0; grouped < 2; grouped++) {
        /* dense */
        marlin_pack_dense_scales(in, G, n, grouped, out);
        int len = grouped ? 64 : 32;
        const int *perm = grouped ? sp : sps;
        for (int64_t i = 0; i < G * n; i++) {
            int64_t chunk = i / len * len;
            assert_int_equal(out[i], in[chunk + perm[i % len]]);
        }
        marlin_unpack_dense_scales(out, G, n, grouped, back);
        assert_memory_equal(back, in, sizeof in);
        /* 2:4 */
        marlin_pack_24_scales(in, G, n, grouped, out);
        for (int64_t i = 0; i < G * n; i++) {
            int64_t want = grouped ? in[i / 64 * 64 + sp24[i % 64]] : in[i];
            assert_int_equal(out[i], want);
        }
        marlin_unpack_24_scales(out, G, n, grouped, back);
        assert_memory_equal(back, in, sizeof in);
    }
    /* The rule for choosing: grouped iff g < k and g != -1. */
    assert_true(marlin_pack_scales_grouped(4096, 128));
    assert_false(marlin_pack_scales_grouped(4096, -1));
    assert_false(marlin_pack_scales_grouped(4096, 4096));
}

/* ===================================================== 2:4: index maps */

static void test_pack_24_perm_construction(void **state) {
    (void)state;
    static const int first16[16] = {0,  128, 4,  132, 16, 144, 20, 148,
                                    1,  129, 5,  133, 17, 145, 21, 149};
    int perm[1024];
    build_perm(1, perm);
    for (int i = 0; i < 16; i++) assert_int_equal(perm[i], first16[i]);
    int seen[1024] = {0};
    for (int p = 0; p < 1024; p++) {
        int e = perm[p];
        assert_true(e >= 0 && e < 1024 && !seen[e]);
        seen[e] = 1;
        int64_t kk = (e % 256) / 16, n = 16 * (e / 256) + e % 16;
        marlin_pack_loc l = marlin_pack_24_loc(kk, n);
        assert_int_equal(l.row, 0);
        assert_int_equal(l.word, p / 8);
        assert_int_equal(l.nib, p % 8);
    }
}

static void test_pack_24_meta_nibble_table(void **state) {
    (void)state;
    int valid = 0;
    for (int i = 0; i < 16; i++) {
        unsigned f = 0;
        for (int t = 0; t < 4; t++)
            if (META_TABLE[i].flags[t] == '1') f |= 1u << t;
        assert_int_equal(marlin_pack_24_meta_nibble(f), META_TABLE[i].nib);
        /* every nibble the encoder emits is one mma.sp accepts */
        assert_true(marlin_pack_24_meta_nibble_valid(META_TABLE[i].nib));
    }
    for (int nib = 0; nib < 16; nib++)
        valid += marlin_pack_24_meta_nibble_valid(nib);
    assert_int_equal(valid, 6);
}

static void test_pack_24_meta_reorder(void **state) {
    (void)state;
    static const int64_t r16[16] = {0, 2,  32, 34, 1, 3,  33, 35,
                                    4, 6,  36, 38, 5, 7,  37, 39};
    for (int r = 0; r < 16; r++)
        assert_int_equal(marlin_pack_24_meta_row_perm(r), r16[r]);
    /* Closed form of the swizzled interleaved offset == the arithmetic
     * reference, and a bijection onto the (k/32, 2n) view. */
    const int64_t n = 256, k = 512, cols = k / 16;
    uint8_t *hit = xcalloc((size_t)(n * cols), 1);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < cols; c++) {
            marlin_pack_pos p = marlin_pack_24_meta_pos(r, c);
            int64_t off = meta_offset_ref(r, c, n);
            assert_int_equal(p.row * 2 * n + p.col, off);
            assert_true(p.col >= 0 && p.col < 2 * n && p.row < k / 32);
            assert_int_equal(hit[off], 0);
            hit[off] = 1;
        }
    free(hit);
}

/* Whole-matrix equality of the fast 2:4 packer with the reference
 * compression + construction packer. */
static void test_pack_24_matches_reference(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    static const int64_t shapes[][2] = {{128, 128}, {256, 384}, {384, 256}};
    for (size_t si = 0; si < 3; si++) {
        int64_t n = shapes[si][0], k = shapes[si][1];
        uint8_t *q = xcalloc((size_t)(n * k), 1);
        uint32_t *B = xcalloc((size_t)(n * k / 16), 4);
        uint32_t *Br = xcalloc((size_t)(n * k / 16), 4);
        uint16_t *meta = xcalloc((size_t)(n * k / 16), 2);
        uint16_t *metar = xcalloc((size_t)(n * k / 16), 2);
        marlin_error err = {0};
        random_codes_24(&rng, q, n, k);
        assert_int_equal(
            marlin_pack_24(q, NULL, n, k, 128, 2, B, meta, NULL, &err),
            MARLIN_OK);
        ref_pack_24(q, n, k, Br, metar);
        MT_ASSERT(seed, memcmp(B, Br, (size_t)(n * k / 4)) == 0,
                  "2:4 B != reference for n=%" PRId64 " k=%" PRId64, n, k);
        MT_ASSERT(seed, memcmp(meta, metar, (size_t)(n * k / 8)) == 0,
                  "2:4 meta != reference for n=%" PRId64 " k=%" PRId64, n, k);
        free(q);
        free(B);
        free(Br);
        free(meta);
        free(metar);
    }
}

/* Pitfall 7.1: a kept weight with code 0 (value -8) next to pruned slots.
 * The meta must select slots whose values are 0, so the dequantized group is
 * exactly (-8s, 0, 0, 0) etc. Decoded here straight from B and meta through
 * the index helpers (not through the unpacker). */
static void test_pack_24_meta_from_signed_values(void **state) {
    (void)state;
    const int64_t n = 128, k = 128;
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint8_t *back = xcalloc((size_t)(n * k), 1);
    uint32_t *B = xcalloc((size_t)(n * k / 16), 4);
    uint16_t *meta = xcalloc((size_t)(n * k / 16), 2);
    marlin_error err = {0};
    memset(q, 8, (size_t)(n * k));
    /* row 5: groups with a single -8, at each position, and a -8 pair */
    static const uint8_t groups[6][4] = {{0, 8, 8, 8}, {8, 0, 8, 8},
                                         {8, 8, 0, 8}, {8, 8, 8, 0},
                                         {0, 8, 8, 0}, {8, 8, 8, 8}};
    for (int g = 0; g < 6; g++) memcpy(q + 5 * k + 4 * g, groups[g], 4);
    assert_int_equal(marlin_pack_24(q, NULL, n, k, -1, 1, B, meta, NULL, &err),
                     MARLIN_OK);
    for (int g = 0; g < 6; g++) {
        /* decode group g of row 5 from the packed tensors */
        int64_t c = (4 * g) / 16, j = g % 4;
        marlin_pack_pos mp = marlin_pack_24_meta_pos(5, c);
        int nib = (meta[mp.row * 2 * n + mp.col] >> (4 * j)) & 0xf;
        assert_true(marlin_pack_24_meta_nibble_valid(nib));
        int dense[4] = {0, 0, 0, 0};
        for (int h = 0; h < 2; h++) {
            marlin_pack_loc l = marlin_pack_24_loc(2 * g + h, 5);
            int code = (int)(B[l.row * 2 * n + l.word] >> (4 * l.nib)) & 0xf;
            int idx = h == 0 ? (nib & 3) : (nib >> 2);
            dense[idx] += code - 8;
        }
        for (int t = 0; t < 4; t++)
            assert_int_equal(dense[t], (int)groups[g][t] - 8);
    }
    assert_int_equal(marlin_unpack_24(B, meta, NULL, n, k, -1, 1, back, NULL,
                                      &err),
                     MARLIN_OK);
    assert_memory_equal(back, q, (size_t)(n * k));
    free(q);
    free(back);
    free(B);
    free(meta);
}

static void test_pack_24_rejects_non_24(void **state) {
    (void)state;
    const int64_t n = 128, k = 256;
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint32_t *B = xcalloc((size_t)(n * k / 16), 4);
    uint16_t *meta = xcalloc((size_t)(n * k / 16), 2);
    marlin_error err = {0};
    memset(q, 8, (size_t)(n * k));
    /* row 77, group 13: three non-zeros; a later row also bad */
    q[77 * k + 52] = 3;
    q[77 * k + 53] = 0;
    q[77 * k + 55] = 15;
    q[100 * k + 0] = 1;
    q[100 * k + 1] = 1;
    q[100 * k + 2] = 1;
    q[100 * k + 3] = 1;
    for (int threads = 1; threads <= 4; threads += 3) {
        err.msg[0] = 0;
        assert_int_equal(
            marlin_pack_24(q, NULL, n, k, -1, threads, B, meta, NULL, &err),
            MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "row 77"));
        assert_non_null(strstr(err.msg, "group 13"));
        assert_non_null(strstr(err.msg, "3 non-zero"));
    }
    free(q);
    free(B);
    free(meta);
}

static void test_pack_24_unpack_rejects_bad_meta(void **state) {
    (void)state;
    const int64_t n = 128, k = 128;
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint32_t *B = xcalloc((size_t)(n * k / 16), 4);
    uint16_t *meta = xcalloc((size_t)(n * k / 16), 2);
    marlin_error err = {0};
    memset(q, 8, (size_t)(n * k));
    assert_int_equal(marlin_pack_24(q, NULL, n, k, -1, 1, B, meta, NULL, &err),
                     MARLIN_OK);
    /* logical (row 9, chunk 3), group j = 2 gets nibble 0x5 (idx 1, 1) */
    marlin_pack_pos p = marlin_pack_24_meta_pos(9, 3);
    uint16_t *m = &meta[p.row * 2 * n + p.col];
    *m = (uint16_t)((*m & ~0x0f00u) | 0x0500u);
    assert_int_equal(marlin_unpack_24(B, meta, NULL, n, k, -1, 2, q, NULL, &err),
                     MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 9"));
    assert_non_null(strstr(err.msg, "nibble 0x5"));
    free(q);
    free(B);
    free(meta);
}

/* ============================================================ GPTQ v1 */

/* Hand-built: n = 8, k = 16, q[c][kk] = (kk + c) % 16, group 8. */
static void test_pack_gptq_hand_example(void **state) {
    (void)state;
    const int64_t n = 8, k = 16, group = 8;
    uint8_t q[8 * 16];
    uint16_t s[2 * 8], scales[2 * 8];
    uint32_t qweight[2 * 8], qzeros[2 * 1];
    int32_t g_idx[16];
    marlin_error err = {0};
    for (int c = 0; c < n; c++)
        for (int kk = 0; kk < k; kk++) q[c * k + kk] = (uint8_t)((kk + c) % 16);
    for (int i = 0; i < 16; i++) s[i] = (uint16_t)(0x2000 + i);
    assert_int_equal(marlin_pack_gptq(q, s, n, k, group, 1, qweight, qzeros,
                                      scales, g_idx, &err),
                     MARLIN_OK);
    /* word (r, c): nibble t = q[c][8r + t], lowest k lowest */
    assert_int_equal(qweight[0 * 8 + 0], 0x76543210u);
    assert_int_equal(qweight[1 * 8 + 0], 0xfedcba98u);
    assert_int_equal(qweight[0 * 8 + 1], 0x87654321u);
    assert_int_equal(qweight[1 * 8 + 1], 0x0fedcba9u);
    assert_int_equal(qweight[1 * 8 + 7], 0x6543210fu);
    assert_int_equal(qzeros[0], 0x77777777u);
    assert_int_equal(qzeros[1], 0x77777777u);
    assert_memory_equal(scales, s, sizeof s);
    for (int i = 0; i < 16; i++) assert_int_equal(g_idx[i], i / 8);
    /* per-channel: one scale row, g_idx all 0 */
    assert_int_equal(marlin_pack_gptq(q, s, n, k, -1, 1, qweight, qzeros,
                                      scales, g_idx, &err),
                     MARLIN_OK);
    for (int i = 0; i < 16; i++) assert_int_equal(g_idx[i], 0);
}

static void test_pack_gptq_unpack_rejects_zeros(void **state) {
    (void)state;
    const int64_t n = 16, k = 32;
    uint8_t q[16 * 32];
    uint32_t qweight[4 * 16], qzeros[2 * 2];
    marlin_error err = {0};
    memset(q, 3, sizeof q);
    assert_int_equal(marlin_pack_gptq(q, NULL, n, k, 16, 1, qweight, qzeros,
                                      NULL, NULL, &err),
                     MARLIN_OK);
    qzeros[3] = 0x88888888u;
    assert_int_equal(marlin_unpack_gptq(qweight, qzeros, NULL, n, k, 16, 1, q,
                                        NULL, &err),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "qzeros[1][1] = 0x88888888"));
    assert_non_null(strstr(err.msg, "v2"));
    qzeros[3] = 0x77757777u;
    assert_int_equal(marlin_unpack_gptq(qweight, qzeros, NULL, n, k, 16, 1, q,
                                        NULL, &err),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "asymmetric"));
}

/* An act-order (desc_act) checkpoint: g_idx[c] = invperm[c] / g for a
 * random column permutation. The analysis returns a perm that sorts
 * columns into contiguous groups; Marlin tiles of the sorted codes, with
 * the activation gather A[:, perm], give the same weights. */
static void test_pack_gptq_act_order(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 128, k = 512, group = 128, G = k / group;
    uint8_t *q = xcalloc((size_t)(n * k), 1), *q2 = xcalloc((size_t)(n * k), 1);
    uint8_t *qs = xcalloc((size_t)(n * k), 1), *qm = xcalloc((size_t)(n * k), 1);
    uint16_t *s = xcalloc((size_t)(G * n), 2), *sm = xcalloc((size_t)(G * n), 2);
    uint16_t *s2 = xcalloc((size_t)(G * n), 2);
    uint32_t *qweight = xcalloc((size_t)(k / 8 * n), 4);
    uint32_t *qzeros = xcalloc((size_t)(G * n / 8), 4);
    uint32_t *B = xcalloc((size_t)(n * k / 8), 4);
    int32_t *g_idx = xcalloc((size_t)k, 4), *perm = xcalloc((size_t)k, 4);
    int32_t *order = xcalloc((size_t)k, 4);
    marlin_error err = {0};
    bool act = true;

    random_codes(&rng, q, n * k);
    random_scales(&rng, s, G * n);
    assert_int_equal(marlin_pack_gptq(q, s, n, k, group, 1, qweight, qzeros,
                                      NULL, g_idx, &err),
                     MARLIN_OK);
    /* trivial g_idx */
    assert_int_equal(marlin_pack_gptq_g_idx(g_idx, k, group, perm, &act, &err),
                     MARLIN_OK);
    assert_false(act);
    for (int64_t i = 0; i < k; i++) assert_int_equal(perm[i], i);

    /* act-order: column order[j] is quantized j-th, so it is in group j/g */
    for (int64_t i = 0; i < k; i++) order[i] = (int32_t)i;
    for (int64_t i = k - 1; i > 0; i--) {
        int64_t j = (int64_t)(marlin_rng_u64(&rng) % (uint64_t)(i + 1));
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int64_t j = 0; j < k; j++) g_idx[order[j]] = (int32_t)(j / group);
    assert_int_equal(marlin_pack_gptq_g_idx(g_idx, k, group, perm, &act, &err),
                     MARLIN_OK);
    assert_true(act);
    for (int64_t r = 0; r < k; r++) {
        MT_ASSERT(seed, g_idx[perm[r]] == r / group, "sorted row %" PRId64
                  " not in group %" PRId64, r, r / group);
        if (r > 0 && g_idx[perm[r]] == g_idx[perm[r - 1]])
            MT_ASSERT(seed, perm[r] > perm[r - 1], "sort not stable");
    }
    /* unpack -> sort columns -> Marlin -> unpack -> gather back */
    assert_int_equal(marlin_unpack_gptq(qweight, qzeros, s, n, k, group, 2,
                                        q2, s2, &err),
                     MARLIN_OK);
    assert_memory_equal(q2, q, (size_t)(n * k));
    assert_int_equal(marlin_pack_permute_k(q2, n, k, perm, 2, qs, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_pack_dense(qs, s2, n, k, group, 2, B, sm, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_unpack_dense(B, sm, n, k, group, 2, qm, s2, &err),
                     MARLIN_OK);
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < k; j++) {
            /* Marlin weight (sorted row j) = GPTQ weight (column perm[j]) */
            float wm = (float)(qm[r * k + j] - 8) *
                       marlin_half_to_float(s2[(j / group) * n + r]);
            float wg = (float)(q[r * k + perm[j]] - 8) *
                       marlin_half_to_float(s[g_idx[perm[j]] * n + r]);
            MT_ASSERT(seed, wm == wg, "weight (%" PRId64 ",%" PRId64 ")", r, j);
        }

    /* malformed g_idx */
    g_idx[order[0]] = 1; /* group 0 now has g-1 columns */
    assert_int_equal(marlin_pack_gptq_g_idx(g_idx, k, group, perm, &act, &err),
                     MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "group 0 has 127 columns"));
    g_idx[order[0]] = (int32_t)G;
    assert_int_equal(marlin_pack_gptq_g_idx(g_idx, k, group, perm, &act, &err),
                     MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "outside [0, 4)"));
    /* per-channel must be all zero */
    memset(g_idx, 0, (size_t)k * 4);
    g_idx[3] = 1;
    assert_int_equal(marlin_pack_gptq_g_idx(g_idx, k, -1, perm, &act, &err),
                     MARLIN_ERR_FORMAT);
    /* permute_k validates its permutation */
    perm[1] = perm[0];
    assert_int_equal(marlin_pack_permute_k(q, n, k, perm, 1, qs, &err),
                     MARLIN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "repeat"));

    free(q); free(q2); free(qs); free(qm); free(s); free(sm); free(s2);
    free(qweight); free(qzeros); free(B); free(g_idx); free(perm); free(order);
}

/* marlin_pack_gptq_to_marlin == the primitives composed by hand, for a
 * trivial and an act-order g_idx, and its errors come from the right gate. */
static void test_pack_gptq_to_marlin(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    const int64_t n = 192, k = 384, group = 128, G = k / group;
    uint8_t *q = xcalloc((size_t)(n * k), 1), *qs = xcalloc((size_t)(n * k), 1);
    uint16_t *s = xcalloc((size_t)(G * n), 2);
    uint16_t *s1 = xcalloc((size_t)(G * n), 2), *s2 = xcalloc((size_t)(G * n), 2);
    uint32_t *qweight = xcalloc((size_t)(k / 8 * n), 4);
    uint32_t *qzeros = xcalloc((size_t)(G * n / 8), 4);
    uint32_t *B1 = xcalloc((size_t)(n * k / 8), 4), *B2 = xcalloc((size_t)(n * k / 8), 4);
    int32_t *g_idx = xcalloc((size_t)k, 4), *perm = xcalloc((size_t)k, 4);
    marlin_error err = {0};
    bool act = true;
    random_codes(&rng, q, n * k);
    random_scales(&rng, s, G * n);
    assert_int_equal(marlin_pack_gptq(q, s, n, k, group, 1, qweight, qzeros,
                                      NULL, g_idx, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_pack_dense(q, s, n, k, group, 1, B1, s1, &err),
                     MARLIN_OK);
    for (int with_gidx = 0; with_gidx < 2; with_gidx++) {
        memset(B2, 0, (size_t)(n * k / 2));
        assert_int_equal(marlin_pack_gptq_to_marlin(
                             qweight, qzeros, s, with_gidx ? g_idx : NULL, n, k,
                             group, 2, B2, s2, perm, &act, &err),
                         MARLIN_OK);
        assert_false(act);
        assert_memory_equal(B1, B2, (size_t)(n * k / 2));
        assert_memory_equal(s1, s2, (size_t)(G * n) * 2);
        for (int64_t i = 0; i < k; i++) assert_int_equal(perm[i], i);
    }
    /* act-order: reversed column order inside a rotation of the groups */
    for (int64_t j = 0; j < k; j++) g_idx[k - 1 - j] = (int32_t)((j / group + 1) % G);
    assert_int_equal(marlin_pack_gptq_to_marlin(qweight, qzeros, s, g_idx, n, k,
                                                group, 2, B2, s2, perm, &act,
                                                &err),
                     MARLIN_OK);
    assert_true(act);
    assert_int_equal(marlin_pack_permute_k(q, n, k, perm, 1, qs, &err),
                     MARLIN_OK);
    assert_int_equal(marlin_pack_dense(qs, s, n, k, group, 1, B1, s1, &err),
                     MARLIN_OK);
    MT_ASSERT(seed, memcmp(B1, B2, (size_t)(n * k / 2)) == 0,
              "act-order repack differs from the composed primitives");
    for (int64_t r = 0; r < k; r++) assert_int_equal(g_idx[perm[r]], r / group);
    /* errors */
    qzeros[0] = 0x88888888u;
    assert_int_equal(marlin_pack_gptq_to_marlin(qweight, qzeros, s, NULL, n, k,
                                                group, 1, B2, s2, NULL, &act,
                                                &err),
                     MARLIN_ERR_UNSUPPORTED);
    qzeros[0] = 0x77777777u;
    assert_int_equal(marlin_pack_gptq_to_marlin(qweight, qzeros, s, NULL, 8, k,
                                                group, 1, B2, s2, NULL, &act,
                                                &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n % 64"));
    g_idx[0] = -1;
    assert_int_equal(marlin_pack_gptq_to_marlin(qweight, qzeros, s, g_idx, n, k,
                                                group, 1, B2, s2, NULL, &act,
                                                &err),
                     MARLIN_ERR_FORMAT);
    free(q); free(qs); free(s); free(s1); free(s2); free(qweight);
    free(qzeros); free(B1); free(B2); free(g_idx); free(perm);
}

/* ============================================== round trips, all formats */

typedef enum { FMT_GPTQ, FMT_DENSE, FMT_24 } fmt_t;
static const char *const FMT_NAME[3] = {"gptq", "marlin", "marlin24"};

typedef struct packed {
    uint32_t *w;    /* qweight or B */
    uint32_t *z;    /* qzeros */
    uint16_t *meta; /* 2:4 meta */
    uint16_t *s;    /* scales as stored */
    int32_t *g_idx;
    size_t w_bytes, z_bytes, meta_bytes, s_bytes;
} packed;

static void packed_free(packed *p) {
    free(p->w);
    free(p->z);
    free(p->meta);
    free(p->s);
    free(p->g_idx);
    memset(p, 0, sizeof *p);
}

static marlin_status do_pack(fmt_t f, const uint8_t *q, const uint16_t *s,
                             int64_t n, int64_t k, int64_t group, int threads,
                             packed *p, marlin_error *err) {
    int64_t G = marlin_pack_groups(k, group);
    memset(p, 0, sizeof *p);
    p->s_bytes = (size_t)(G * n) * 2;
    p->s = xcalloc((size_t)(G * n), 2);
    switch (f) {
    case FMT_GPTQ:
        p->w_bytes = (size_t)(k / 8 * n) * 4;
        p->z_bytes = (size_t)(G * n / 8) * 4;
        p->w = xcalloc(p->w_bytes, 1);
        p->z = xcalloc(p->z_bytes, 1);
        p->g_idx = xcalloc((size_t)k, 4);
        return marlin_pack_gptq(q, s, n, k, group, threads, p->w, p->z, p->s,
                                p->g_idx, err);
    case FMT_DENSE:
        p->w_bytes = (size_t)(k / 16 * 2 * n) * 4;
        p->w = xcalloc(p->w_bytes, 1);
        return marlin_pack_dense(q, s, n, k, group, threads, p->w, p->s, err);
    case FMT_24:
        p->w_bytes = (size_t)(k / 32 * 2 * n) * 4;
        p->meta_bytes = (size_t)(k / 32 * 2 * n) * 2;
        p->w = xcalloc(p->w_bytes, 1);
        p->meta = xcalloc(p->meta_bytes, 1);
        return marlin_pack_24(q, s, n, k, group, threads, p->w, p->meta, p->s,
                              err);
    }
    return MARLIN_ERR_INTERNAL;
}

static marlin_status do_unpack(fmt_t f, const packed *p, int64_t n, int64_t k,
                               int64_t group, int threads, uint8_t *q,
                               uint16_t *s, marlin_error *err) {
    switch (f) {
    case FMT_GPTQ:
        return marlin_unpack_gptq(p->w, p->z, p->s, n, k, group, threads, q, s,
                                  err);
    case FMT_DENSE:
        return marlin_unpack_dense(p->w, p->s, n, k, group, threads, q, s, err);
    case FMT_24:
        return marlin_unpack_24(p->w, p->meta, p->s, n, k, group, threads, q, s,
                                err);
    }
    return MARLIN_ERR_INTERNAL;
}

/* Random shapes (multiples of each format's gates) x every group size the
 * format accepts among {32, 64, 128, -1, k, other divisors}: pack -> unpack
 * is bit-exact for codes and scales; dense/GPTQ also match the per-element
 * closed form. */
static void test_pack_round_trip_all_formats(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    for (int f = 0; f < 3; f++) {
        for (int trial = 0; trial < 6; trial++) {
            int64_t nstep = f == FMT_GPTQ ? 8 : f == FMT_DENSE ? 64 : 128;
            int64_t kstep = f == FMT_GPTQ ? 8 : 128;
            int64_t n = nstep * (1 + (int64_t)(marlin_rng_u64(&rng) % 4));
            int64_t k = kstep * (1 + (int64_t)(marlin_rng_u64(&rng) % 4));
            if (f == FMT_GPTQ && trial == 0) { n = 24; k = 40; }
            const int64_t groups[] = {32, 64, 128, -1, k, 16, 8, 96};
            for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
                int64_t group = groups[gi];
                int64_t mult = f == FMT_GPTQ ? 1 : f == FMT_DENSE ? 16 : 32;
                bool ok = group == -1 ||
                          (k % group == 0 && group % mult == 0);
                int64_t G = ok ? marlin_pack_groups(k, group) : 1;
                uint8_t *q = xcalloc((size_t)(n * k), 1);
                uint8_t *q2 = xcalloc((size_t)(n * k), 1);
                uint16_t *s = xcalloc((size_t)(G * n), 2);
                uint16_t *s2 = xcalloc((size_t)(G * n), 2);
                packed p;
                marlin_error err = {0};
                if (f == FMT_24) random_codes_24(&rng, q, n, k);
                else random_codes(&rng, q, n * k);
                random_scales(&rng, s, G * n);
                int threads = 1 + (int)(marlin_rng_u64(&rng) % 3);
                marlin_status st =
                    do_pack((fmt_t)f, q, s, n, k, group, threads, &p, &err);
                if (!ok) {
                    MT_ASSERT(seed, st == MARLIN_ERR_SHAPE,
                              "%s accepted group %" PRId64 " for k=%" PRId64,
                              FMT_NAME[f], group, k);
                    MT_ASSERT(seed, strstr(err.msg, "rule") != NULL,
                              "message names no rule: %s", err.msg);
                } else {
                    MT_ASSERT(seed, st == MARLIN_OK, "%s pack n=%" PRId64
                              " k=%" PRId64 " g=%" PRId64 ": %s",
                              FMT_NAME[f], n, k, group, err.msg);
                    st = do_unpack((fmt_t)f, &p, n, k, group, threads, q2, s2,
                                   &err);
                    MT_ASSERT(seed, st == MARLIN_OK, "%s unpack: %s",
                              FMT_NAME[f], err.msg);
                    MT_ASSERT(seed, memcmp(q, q2, (size_t)(n * k)) == 0,
                              "%s codes differ n=%" PRId64 " k=%" PRId64
                              " g=%" PRId64,
                              FMT_NAME[f], n, k, group);
                    MT_ASSERT(seed, memcmp(s, s2, (size_t)(G * n) * 2) == 0,
                              "%s scales differ g=%" PRId64, FMT_NAME[f],
                              group);
                    if (f == FMT_DENSE) {
                        uint32_t *Bl = xcalloc(p.w_bytes, 1);
                        loc_pack_dense(q, n, k, Bl);
                        MT_ASSERT(seed, memcmp(Bl, p.w, p.w_bytes) == 0,
                                  "dense != closed form");
                        free(Bl);
                    }
                    if (f == FMT_GPTQ) {
                        for (int64_t c = 0; c < n; c++)
                            for (int64_t kk = 0; kk < k; kk++) {
                                uint32_t w = p.w[(kk / 8) * n + c];
                                MT_ASSERT(seed,
                                          ((w >> (4 * (kk % 8))) & 15) ==
                                              q[c * k + kk],
                                          "qweight (%" PRId64 ",%" PRId64 ")",
                                          kk, c);
                            }
                    }
                }
                packed_free(&p);
                free(q);
                free(q2);
                free(s);
                free(s2);
            }
        }
    }
}

/* Output bytes do not depend on the thread count (1 vs 4, and "all"). */
static void test_pack_threads_identical(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    /* 1 Mi codes: large enough that 4 threads really split the work
     * (grain 256 Ki codes per thread). */
    const int64_t n = 1024, k = 1024, group = 128, G = k / group;
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint8_t *q24 = xcalloc((size_t)(n * k), 1);
    uint8_t *back1 = xcalloc((size_t)(n * k), 1);
    uint8_t *back4 = xcalloc((size_t)(n * k), 1);
    uint16_t *s = xcalloc((size_t)(G * n), 2);
    random_codes(&rng, q, n * k);
    random_codes_24(&rng, q24, n, k);
    random_scales(&rng, s, G * n);
    for (int f = 0; f < 3; f++) {
        const uint8_t *in = f == FMT_24 ? q24 : q;
        packed p1, p4, pall;
        marlin_error err = {0};
        assert_int_equal(do_pack((fmt_t)f, in, s, n, k, group, 1, &p1, &err),
                         MARLIN_OK);
        assert_int_equal(do_pack((fmt_t)f, in, s, n, k, group, 4, &p4, &err),
                         MARLIN_OK);
        assert_int_equal(do_pack((fmt_t)f, in, s, n, k, group, 0, &pall, &err),
                         MARLIN_OK);
        MT_ASSERT(seed, memcmp(p1.w, p4.w, p1.w_bytes) == 0,
                  "%s: 1 vs 4 threads differ", FMT_NAME[f]);
        MT_ASSERT(seed, memcmp(p1.w, pall.w, p1.w_bytes) == 0,
                  "%s: 1 vs all threads differ", FMT_NAME[f]);
        if (p1.meta)
            MT_ASSERT(seed, memcmp(p1.meta, p4.meta, p1.meta_bytes) == 0,
                      "%s: meta differs", FMT_NAME[f]);
        assert_int_equal(do_unpack((fmt_t)f, &p1, n, k, group, 1, back1, NULL,
                                   &err),
                         MARLIN_ERR_INVALID_ARG); /* s_perm given, s not */
        p1.s_bytes = 0;
        {
            uint16_t *keep = p1.s;
            p1.s = NULL;
            assert_int_equal(do_unpack((fmt_t)f, &p1, n, k, group, 1, back1,
                                       NULL, &err),
                             MARLIN_OK);
            assert_int_equal(do_unpack((fmt_t)f, &p1, n, k, group, 4, back4,
                                       NULL, &err),
                             MARLIN_OK);
            p1.s = keep;
        }
        MT_ASSERT(seed, memcmp(back1, back4, (size_t)(n * k)) == 0,
                  "%s: unpack 1 vs 4 threads differ", FMT_NAME[f]);
        MT_ASSERT(seed, memcmp(back1, in, (size_t)(n * k)) == 0,
                  "%s: round trip", FMT_NAME[f]);
        packed_free(&p1);
        packed_free(&p4);
        packed_free(&pall);
    }
    free(q);
    free(q24);
    free(back1);
    free(back4);
    free(s);
}

/* Shape gates and invalid codes give specific statuses and name the rule or
 * the element. */
static void test_pack_gates_and_bad_codes(void **state) {
    (void)state;
    marlin_error err = {0};
    uint8_t *q = xcalloc(256 * 256, 1);
    uint32_t *B = xcalloc(256 * 256, 4);
    uint16_t *meta = xcalloc(256 * 256, 2);
    memset(q, 8, 256 * 256);
    assert_int_equal(marlin_pack_dense_check_shape(64, 192, 64, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "k % 128"));
    assert_int_equal(marlin_pack_dense_check_shape(96, 128, 64, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n % 64"));
    assert_int_equal(marlin_pack_dense_check_shape(64, 384, 256, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "k % g"));
    assert_int_equal(marlin_pack_dense_check_shape(64, 384, 24, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "g % 16"));
    assert_int_equal(marlin_pack_dense_check_shape(64, 128, 0, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_pack_dense_check_shape(64, 128, -2, &err),
                     MARLIN_ERR_SHAPE);
    assert_int_equal(marlin_pack_24_check_shape(64, 128, 128, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n % 128"));
    assert_int_equal(marlin_pack_24_check_shape(128, 256, 16, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "g % 32"));
    assert_int_equal(marlin_pack_24_check_shape(128, 256, 64, &err), MARLIN_OK);
    assert_int_equal(marlin_pack_gptq_check_shape(12, 16, -1, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "n % 8"));
    assert_int_equal(marlin_pack_gptq_check_shape(16, 12, -1, &err),
                     MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "k % 8"));
    /* a code > 15 is reported at its first position, whatever the threads */
    q[130 * 256 + 17] = 16;
    q[200 * 256 + 3] = 200;
    for (int threads = 1; threads <= 4; threads += 3) {
        assert_int_equal(
            marlin_pack_dense(q, NULL, 256, 256, -1, threads, B, NULL, &err),
            MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "q[130][17] = 16"));
        assert_int_equal(marlin_pack_24(q, NULL, 256, 256, -1, threads, B,
                                        meta, NULL, &err),
                         MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "q[130][17] = 16"));
        assert_int_equal(marlin_pack_gptq(q, NULL, 256, 256, -1, threads, B,
                                          NULL, NULL, NULL, &err),
                         MARLIN_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "q[130][17] = 16"));
    }
    free(q);
    free(B);
    free(meta);
}

/* ======================================== independent Python dequantizer */

static void write_or_fail(const char *dir, const char *name, const char *ext,
                          const void *data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.bin", dir, name, ext);
    assert_int_equal(marlin_write_file(path, data, bytes), 0);
}

/* One layer for the Python cross-check: codes + natural scales, packed in
 * the formats listed in `fmts` (bit f = format f) under the same name, so
 * the Python side can also compare the formats with each other. */
typedef struct py_case {
    const char *name;
    int64_t n, k, group;
    int fmts;      /* bit mask of fmt_t */
    int sparse24;  /* 2:4-pruned codes */
    int act_order; /* GPTQ g_idx from a shuffled column order */
} py_case;

static void py_write_case(const char *dir, FILE *man, const py_case *pc,
                          marlin_rng *rng) {
    const int64_t n = pc->n, k = pc->k, group = pc->group;
    const int64_t G = marlin_pack_groups(k, group);
    uint8_t *q = xcalloc((size_t)(n * k), 1);
    uint16_t *s = xcalloc((size_t)(G * n), 2);
    float *W = xcalloc((size_t)(n * k), 4);
    if (pc->sparse24) random_codes_24(rng, q, n, k);
    else random_codes(rng, q, n * k);
    random_scales(rng, s, G * n);
    for (int f = 0; f < 3; f++) {
        if (!(pc->fmts & (1 << f))) continue;
        packed p;
        marlin_error err = {0};
        char name[128];
        assert_int_equal(do_pack((fmt_t)f, q, s, n, k, group, 2, &p, &err),
                         MARLIN_OK);
        const int32_t *g_idx = NULL;
        if (f == FMT_GPTQ && pc->act_order) {
            /* column order[j] is quantized j-th, so it is in group j/g */
            int32_t *order = xcalloc((size_t)k, 4);
            for (int64_t i = 0; i < k; i++) order[i] = (int32_t)i;
            for (int64_t i = k - 1; i > 0; i--) {
                int64_t j = (int64_t)(marlin_rng_u64(rng) % (uint64_t)(i + 1));
                int32_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int64_t j = 0; j < k; j++)
                p.g_idx[order[j]] = (int32_t)(j / group);
            g_idx = p.g_idx;
            free(order);
        }
        dequant_codes(q, s, g_idx, n, k, group, W);
        snprintf(name, sizeof name, "%s_%s", FMT_NAME[f], pc->name);
        fprintf(man, "%s %s %" PRId64 " %" PRId64 " %" PRId64 "\n",
                FMT_NAME[f], pc->name, n, k, group);
        write_or_fail(dir, name, "ref", W, (size_t)(n * k) * 4);
        write_or_fail(dir, name, f == FMT_GPTQ ? "qweight" : "B", p.w,
                      p.w_bytes);
        write_or_fail(dir, name, f == FMT_GPTQ ? "scales" : "s", p.s,
                      p.s_bytes);
        if (f == FMT_GPTQ) {
            write_or_fail(dir, name, "qzeros", p.z, p.z_bytes);
            write_or_fail(dir, name, "g_idx", p.g_idx, (size_t)k * 4);
        }
        if (f == FMT_24) write_or_fail(dir, name, "meta", p.meta, p.meta_bytes);
        packed_free(&p);
    }
    free(q);
    free(s);
    free(W);
}

/* C packs random codes (every format, every group size, one act-order GPTQ
 * layer, one odd GPTQ shape), writes the packed tensors plus the C-side
 * dequantized W [n, k] (float32, from codes and natural scales) as raw
 * little-endian files; tests/py/marlin_dequant.py, written from the format
 * facts only, dequantizes the packed tensors and asserts exact equality.
 * With the safetensors module it also writes one checkpoint per format and
 * checks its `compare` (same codes in GPTQ / Marlin / 2:4 dequantize to
 * identical weights) and `show --ref` paths. */
static void test_pack_python_dequant_cross_check(void **state) {
    (void)state;
    if (!marlin_have_python_modules("numpy")) {
        print_message("skipped: python3 with numpy not available\n");
        skip();
    }
    uint64_t seed = marlin_test_seed(SEED_DEFAULT);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    char *dir = marlin_test_tmpdir("pack-py");
    assert_non_null(dir);
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/manifest.txt", dir);
    FILE *man = fopen(mpath, "w");
    assert_non_null(man);
    const int all = 7, gd = (1 << FMT_GPTQ) | (1 << FMT_DENSE);
    const py_case cases[] = {
        {"s24_g128", 256, 512, 128, all, 1, 0},
        {"s24_gm1", 256, 512, -1, all, 1, 0},
        {"s24_g64", 256, 512, 64, all, 1, 0},
        {"s24_g32", 256, 512, 32, all, 1, 0},
        {"full_g128", 192, 384, 128, gd, 0, 0},
        {"full_gm1", 192, 384, -1, gd, 0, 0},
        {"full_g16", 64, 256, 16, gd, 0, 0},
        {"act_g128", 128, 512, 128, 1 << FMT_GPTQ, 0, 1},
        {"small_g32", 40, 96, 32, 1 << FMT_GPTQ, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        py_write_case(dir, man, &cases[i], &rng);
    fclose(man);
    int rc = marlin_test_system("python3 '%s' selftest '%s'",
                                marlin_source_path("tests/py/marlin_dequant.py"),
                                dir);
    marlin_rmtree(dir);
    free(dir);
    MT_ASSERT(seed, rc == 0, "python dequantizer disagrees (rc=%d)", rc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_dense_loc_vectors),
        cmocka_unit_test(test_pack_dense_checksum_vector),
        cmocka_unit_test(test_pack_dense_perm_construction),
        cmocka_unit_test(test_pack_dense_matches_construction),
        cmocka_unit_test(test_pack_scale_perms),
        cmocka_unit_test(test_pack_24_perm_construction),
        cmocka_unit_test(test_pack_24_meta_nibble_table),
        cmocka_unit_test(test_pack_24_meta_reorder),
        cmocka_unit_test(test_pack_24_matches_reference),
        cmocka_unit_test(test_pack_24_meta_from_signed_values),
        cmocka_unit_test(test_pack_24_rejects_non_24),
        cmocka_unit_test(test_pack_24_unpack_rejects_bad_meta),
        cmocka_unit_test(test_pack_gptq_hand_example),
        cmocka_unit_test(test_pack_gptq_unpack_rejects_zeros),
        cmocka_unit_test(test_pack_gptq_act_order),
        cmocka_unit_test(test_pack_gptq_to_marlin),
        cmocka_unit_test(test_pack_round_trip_all_formats),
        cmocka_unit_test(test_pack_threads_identical),
        cmocka_unit_test(test_pack_gates_and_bad_codes),
        cmocka_unit_test(test_pack_python_dequant_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
