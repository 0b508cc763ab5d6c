/*
 * fuzz_unpack.c - the pack/ unpackers and g_idx analysis on arbitrary bytes
 * (they read tensors from untrusted checkpoints).
 *
 * Input: byte 0 picks the mode (GPTQ, dense Marlin, 2:4, g_idx), byte 1 the
 * shape, byte 2 the group size (valid and invalid ones), byte 3 flags; the
 * rest fills the packed tensors cyclically. Properties checked (abort on
 * violation): no crash / UB; statuses are only OK or the documented error
 * classes; every OK unpack yields codes 0..15 and re-packs to the same
 * tensors (GPTQ, dense: bijections) or to a canonical form that unpacks to
 * the same codes (2:4); an OK act-order g_idx yields a permutation that
 * sorts columns into contiguous groups.
 */
#include "marlin_pack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) abort();                                                    \
    } while (0)

static void fill(uint8_t *dst, size_t n, const uint8_t *src, size_t len) {
    for (size_t i = 0; i < n; i++) dst[i] = len ? src[i % len] : 0;
}

static const int64_t GROUPS[8] = {-1, 32, 64, 128, 16, 8, 0, 96};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const int mode = data[0] % 4, sh = data[1], flags = data[3];
    const int64_t group = GROUPS[data[2] % 8];
    const uint8_t *rest = data + 4;
    const size_t len = size - 4;
    marlin_error err = {0};
    int64_t n, k;
    if (mode == 0) {
        n = 8 * (1 + (sh & 3));
        k = 8 * (1 + ((sh >> 2) & 15));
    } else if (mode == 1) {
        n = 64 * (1 + (sh & 1));
        k = 128 * (1 + ((sh >> 1) & 1));
    } else {
        n = 128 * (1 + (sh & 1));
        k = 128 * (1 + ((sh >> 1) & 1));
    }
    const int64_t G = group > 0 && k % group == 0 ? k / group : 1;
    const int threads = 1 + (flags & 1);
    uint8_t *q = malloc((size_t)(n * k)), *q2 = malloc((size_t)(n * k));
    uint32_t *w = malloc((size_t)(n * k / 2)), *w2 = malloc((size_t)(n * k / 2));
    uint16_t *m = malloc((size_t)(n * k / 8)), *m2 = malloc((size_t)(n * k / 8));
    uint32_t *z = malloc((size_t)(G * n / 8 + 1) * 4);
    /* g_idx mode picks its own k <= 256 */
    int32_t *g_idx = malloc(256 * 4), *perm = malloc(256 * 4);
    CHECK(q && q2 && w && w2 && m && m2 && z && g_idx && perm);
    marlin_status st;

    switch (mode) {
    case 0: /* GPTQ */
        fill((uint8_t *)w, (size_t)(k / 8 * n) * 4, rest, len);
        for (int64_t i = 0; i < G * n / 8; i++)
            z[i] = (flags & 2) && i == 0 ? 0x88888888u : 0x77777777u;
        st = marlin_unpack_gptq(w, z, NULL, n, k, group, threads, q, NULL,
                                &err);
        CHECK(st == MARLIN_OK || st == MARLIN_ERR_SHAPE ||
              st == MARLIN_ERR_UNSUPPORTED);
        if (st == MARLIN_OK) {
            for (int64_t i = 0; i < n * k; i++) CHECK(q[i] < 16);
            CHECK(marlin_pack_gptq(q, NULL, n, k, group, 1, w2, NULL, NULL,
                                   NULL, &err) == MARLIN_OK);
            CHECK(memcmp(w, w2, (size_t)(k / 8 * n) * 4) == 0);
        }
        break;
    case 1: /* dense Marlin: every bit pattern is a valid B */
        fill((uint8_t *)w, (size_t)(n * k / 2), rest, len);
        st = marlin_unpack_dense(w, NULL, n, k, group, threads, q, NULL, &err);
        CHECK(st == MARLIN_OK || st == MARLIN_ERR_SHAPE);
        if (st == MARLIN_OK) {
            for (int64_t i = 0; i < n * k; i++) CHECK(q[i] < 16);
            CHECK(marlin_pack_dense(q, NULL, n, k, group, 1, w2, NULL, &err) ==
                  MARLIN_OK);
            CHECK(memcmp(w, w2, (size_t)(n * k / 2)) == 0);
        }
        break;
    case 2: /* 2:4: B any bits, meta validated */
        fill((uint8_t *)w, (size_t)(n * k / 4), rest, len);
        fill((uint8_t *)m, (size_t)(n * k / 8), len > 7 ? rest + 7 : rest,
             len > 7 ? len - 7 : len);
        st = marlin_unpack_24(w, m, NULL, n, k, group, threads, q, NULL, &err);
        CHECK(st == MARLIN_OK || st == MARLIN_ERR_SHAPE ||
              st == MARLIN_ERR_FORMAT);
        if (st == MARLIN_OK) {
            CHECK(marlin_pack_24(q, NULL, n, k, group, 1, w2, m2, NULL, &err) ==
                  MARLIN_OK);
            CHECK(marlin_unpack_24(w2, m2, NULL, n, k, group, 2, q2, NULL,
                                   &err) == MARLIN_OK);
            CHECK(memcmp(q, q2, (size_t)(n * k)) == 0);
        }
        break;
    default: { /* g_idx analysis: a shuffled valid g_idx, maybe corrupted */
        k = 8 * (1 + (sh & 31));
        const int64_t g = group > 0 && k % group == 0 ? group : k;
        for (int64_t i = 0; i < k; i++) perm[i] = (int32_t)i;
        for (int64_t i = k - 1; i > 0 && len; i--) {
            int64_t j = rest[(size_t)i % len] % (i + 1);
            int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int64_t j = 0; j < k; j++) g_idx[perm[j]] = (int32_t)(j / g);
        if ((flags & 6) && len) /* corrupt one entry */
            g_idx[rest[0] % k] = (int32_t)(int8_t)rest[len - 1];
        bool act = false;
        st = marlin_pack_gptq_g_idx(g_idx, k, group, perm, &act, &err);
        CHECK(st == MARLIN_OK || st == MARLIN_ERR_SHAPE ||
              st == MARLIN_ERR_FORMAT);
        if (st == MARLIN_OK) {
            uint8_t *seen = calloc((size_t)k, 1);
            CHECK(seen);
            for (int64_t r = 0; r < k; r++) {
                CHECK(perm[r] >= 0 && perm[r] < k && !seen[perm[r]]);
                seen[perm[r]] = 1;
                CHECK(g_idx[perm[r]] == r / (group == -1 ? k : group));
            }
            free(seen);
        }
        break;
    }
    }
    free(q);
    free(q2);
    free(w);
    free(w2);
    free(m);
    free(m2);
    free(z);
    free(g_idx);
    free(perm);
    return 0;
}
