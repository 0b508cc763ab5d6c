/*
 * half.c - IEEE binary16 and bfloat16 conversions.
 *
 * Widening (fp16/bf16 -> fp32) is exact. Narrowing rounds to nearest even,
 * like the hardware (F16C _cvtps_ph with _MM_FROUND_TO_NEAREST_INT) and like
 * PyTorch (bf16: NaN -> 0x7fc0). The scalar versions are the reference; the
 * bulk versions use F16C when the CPU has it and are tested against them on
 * all 65536 inputs.
 */
#include "marlin_common.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define MARLIN_HAVE_F16C_PATH 1
#endif

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float marlin_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf, or NaN made quiet (as F16C does), payload kept */
        return u2f(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u));
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: value = man * 2^-24, exact in fp32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t marlin_float_to_half(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, keep top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        /* result is subnormal (or zero): value / 2^-24, rounded to even */
        /* a < 2^-14. Use float arithmetic which is exact here: the product
         * by 2^24 is exact, and rint-like rounding is done via the magic
         * number 2^23 (round to nearest even in the default FP mode). */
        float v = u2f(a) * 16777216.0f; /* in [0, 1024) */
        float r = (v + 8388608.0f) - 8388608.0f;
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* normal: rebias exponent, round mantissa 23 -> 10 bits to even */
    uint32_t mant_odd = (a >> 13) & 1u;
    a += 0xfffu + mant_odd;          /* round to nearest even */
    a -= (uint32_t)(112u << 23);     /* rebias 127 -> 15 */
    return (uint16_t)(sign | (a >> 13));
}

float marlin_bf16_to_float(uint16_t b) { return u2f((uint32_t)b << 16); }

uint16_t marlin_float_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float marlin_round_to_half(float f) {
    return marlin_half_to_float(marlin_float_to_half(f));
}

#ifdef MARLIN_HAVE_F16C_PATH
__attribute__((target("f16c,avx")))
static void h2f_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = marlin_half_to_float(src[i]);
}
__attribute__((target("f16c,avx")))
static void f2h_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        __m128i h = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), h);
    }
    for (; i < n; i++) dst[i] = marlin_float_to_half(src[i]);
}
__attribute__((target("avx2")))
static void bf2f_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
    }
    for (; i < n; i++) dst[i] = marlin_bf16_to_float(src[i]);
}
/* __builtin_cpu_supports reads a table libgcc fills before main. clang 14
 * rejects the "f16c" feature name, so F16C comes from CPUID.1:ECX bit 29,
 * asked once: CPUID traps to the hypervisor in a VM (microseconds). */
static int have_f16c(void) {
    static int known = -1; /* -1 unknown; racing first callers agree */
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        unsigned a, b, c, d;
        /* bit 29 F16C, 28 AVX, 27 OSXSAVE (the OS saves YMM state) */
        v = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u) &&
            ((c >> 28) & 1u) && ((c >> 27) & 1u);
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

void marlin_half_to_float_n(const uint16_t *src, float *dst, size_t n) {
#ifdef MARLIN_HAVE_F16C_PATH
    if (have_f16c()) { h2f_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = marlin_half_to_float(src[i]);
}

void marlin_float_to_half_n(const float *src, uint16_t *dst, size_t n) {
#ifdef MARLIN_HAVE_F16C_PATH
    if (have_f16c()) { f2h_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = marlin_float_to_half(src[i]);
}

void marlin_bf16_to_float_n(const uint16_t *src, float *dst, size_t n) {
#ifdef MARLIN_HAVE_F16C_PATH
    if (__builtin_cpu_supports("avx2")) { bf2f_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = marlin_bf16_to_float(src[i]);
}
