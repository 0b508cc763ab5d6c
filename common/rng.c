/*
 * rng.c - explicit-state deterministic RNG (xoshiro256**, seeded through
 * splitmix64). No global state: tests print their seed and can replay it.
 */
#include "marlin_common.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void marlin_rng_seed(marlin_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t marlin_rng_u64(marlin_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double marlin_rng_uniform(marlin_rng *r) {
    return (double)(marlin_rng_u64(r) >> 11) * 0x1.0p-53;
}

float marlin_rng_normal(marlin_rng *r) {
    /* Box-Muller; u1 in (0, 1] so log() is finite. */
    double u1 = 1.0 - marlin_rng_uniform(r);
    double u2 = marlin_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
