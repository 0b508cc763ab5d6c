/*
 * test_common.c - common/: fp16/bf16 conversions (exhaustive), RNG, threads,
 * error context.
 */
#include "testutil.h"
#include "marlin_cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Independent fp16 decoder from the definition: (-1)^s * 2^(e-15) * 1.m. */
static double half_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

static void test_common_half_to_float_all(void **state) {
    (void)state;
    float bulk[65536];
    uint16_t all[65536];
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    marlin_half_to_float_n(all, bulk, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = marlin_half_to_float((uint16_t)h);
        int e = (h >> 10) & 31;
        if (e == 31) {
            if (h & 1023) assert_true(isnan(f));
            else assert_true(isinf(f) && ((h >> 15) ? f < 0 : f > 0));
        } else {
            assert_true((double)f == half_value((uint16_t)h));
            assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
        }
        /* bulk (F16C where available) agrees bit for bit */
        assert_int_equal(f2u(bulk[h]), f2u(f));
        /* round trip is the identity except NaN payload quieting */
        uint16_t back = marlin_float_to_half(f);
        if (e == 31 && (h & 1023)) assert_true((back & 0x7e00) == 0x7e00);
        else assert_int_equal(back, h);
    }
}

/* Narrowing: compare the scalar reference against a decision made from the
 * exact decoded values of the two neighbouring halves. */
static uint16_t half_rne_oracle(float f) {
    if (isnan(f)) return 0x7e00;
    double x = (double)f;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs(x);
    if (a >= 65520.0) return sign | 0x7c00;
    /* binary search the largest finite half magnitude <= a */
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (half_value(mid) <= a) lo = mid; else hi = (uint16_t)(mid - 1);
    }
    double vlo = half_value(lo);
    if (vlo == a) return sign | lo;
    double vhi = lo == 0x7bff ? 65536.0 : half_value((uint16_t)(lo + 1));
    uint16_t pick;
    if (a - vlo < vhi - a) pick = lo;
    else if (a - vlo > vhi - a) pick = (uint16_t)(lo + 1);
    else pick = (lo & 1) ? (uint16_t)(lo + 1) : lo;
    if (pick > 0x7bff) return sign | 0x7c00;
    return sign | pick;
}

static void test_common_float_to_half_rounding(void **state) {
    (void)state;
    uint64_t seed = marlin_test_seed(12345);
    marlin_rng r;
    marlin_rng_seed(&r, seed);
    enum { N = 200000 };
    float *src = malloc(N * sizeof *src);
    uint16_t *bulk = malloc(N * sizeof *bulk);
    assert_non_null(src);
    assert_non_null(bulk);
    for (int i = 0; i < N; i++) {
        uint32_t u;
        if (i < 65536) {
            /* every half and the exact midpoints around it */
            float v = marlin_half_to_float((uint16_t)i);
            u = f2u(v) + (uint32_t)((i & 3) == 0 ? 0 : (i & 3) == 1 ? 0x1000 : (i & 3) == 2 ? 0xfff : 0x1001);
            if (isnan(v) || isinf(v)) u = f2u(v);
        } else {
            /* random exponents in and around the half range */
            u = (uint32_t)marlin_rng_u64(&r);
            uint32_t e = 100 + (uint32_t)(marlin_rng_u64(&r) % 50);
            u = (u & 0x807fffffu) | (e << 23);
        }
        src[i] = u2f(u);
    }
    marlin_float_to_half_n(src, bulk, N);
    for (int i = 0; i < N; i++) {
        uint16_t got = marlin_float_to_half(src[i]);
        uint16_t want = half_rne_oracle(src[i]);
        if (isnan(src[i])) {
            MT_ASSERT(seed, (got & 0x7e00) == 0x7e00, "NaN not kept");
            continue;
        }
        MT_ASSERT(seed, got == want, "float 0x%08x -> half 0x%04x, want 0x%04x",
                  f2u(src[i]), got, want);
        MT_ASSERT(seed, bulk[i] == got, "bulk 0x%04x != scalar 0x%04x for 0x%08x",
                  bulk[i], got, f2u(src[i]));
    }
    free(src);
    free(bulk);
}

static void test_common_bf16(void **state) {
    (void)state;
    static float bulk[65536];
    static uint16_t all[65536];
    for (uint32_t b = 0; b < 65536; b++) all[b] = (uint16_t)b;
    marlin_bf16_to_float_n(all, bulk, 65536);
    for (uint32_t b = 0; b < 65536; b++) {
        float f = marlin_bf16_to_float((uint16_t)b);
        assert_int_equal(f2u(f), b << 16);
        assert_int_equal(f2u(bulk[b]), b << 16);
        if (!isnan(f)) assert_int_equal(marlin_float_to_bf16(f), b);
        else assert_int_equal(marlin_float_to_bf16(f), 0x7fc0);
    }
    /* ties to even: 1 + 2^-8 lies halfway between bf16 1.0 and 1.0078125 */
    assert_int_equal(marlin_float_to_bf16(u2f(0x3f808000u)), 0x3f80);
    assert_int_equal(marlin_float_to_bf16(u2f(0x3f818000u)), 0x3f82);
}

static void test_common_rng_deterministic(void **state) {
    (void)state;
    marlin_rng a, b;
    marlin_rng_seed(&a, 42);
    marlin_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(marlin_rng_u64(&a) == marlin_rng_u64(&b));
    marlin_rng_seed(&b, 43);
    assert_true(marlin_rng_u64(&a) != marlin_rng_u64(&b));
    /* normal samples: mean ~0, variance ~1 over 1e5 draws (5 sigma bounds) */
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double x = marlin_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / 1e5) < 5.0 / sqrt(1e5));
    assert_true(fabs(s2 / 1e5 - 1.0) < 5.0 * sqrt(2.0 / 1e5));
}

typedef struct pf_arg { int *hits; } pf_arg;
static void pf_fn(void *arg, int64_t b, int64_t e, int t) {
    pf_arg *a = arg;
    (void)t;
    for (int64_t i = b; i < e; i++) a->hits[i]++;
}

static void test_common_parallel_for_covers_once(void **state) {
    (void)state;
    for (int threads = 1; threads <= 9; threads += 4) {
        for (int64_t n = 0; n < 300; n += 37) {
            int *hits = calloc((size_t)n + 1, sizeof *hits);
            pf_arg a = {hits};
            assert_int_equal(marlin_parallel_for(n, 3, threads, pf_fn, &a), MARLIN_OK);
            for (int64_t i = 0; i < n; i++) assert_int_equal(hits[i], 1);
            free(hits);
        }
    }
}

static void test_common_error_context(void **state) {
    (void)state;
    marlin_error e;
    marlin_error_clear(&e);
    assert_int_equal(marlin_fail(&e, MARLIN_ERR_FORMAT, "tensor '%s': bad", "x"),
                     MARLIN_ERR_FORMAT);
    assert_string_equal(e.msg, "tensor 'x': bad");
    marlin_error_prefix(&e, "%s", "file.safetensors");
    assert_string_equal(e.msg, "file.safetensors: tensor 'x': bad");
    assert_int_equal(e.code, MARLIN_ERR_FORMAT);
    assert_int_equal(marlin_fail(NULL, MARLIN_ERR_IO, "ignored"), MARLIN_ERR_IO);
    for (int s = 0; s <= MARLIN_ERR_INTERNAL; s++)
        assert_non_null(marlin_status_str((marlin_status)s));
}

static void test_common_cli_parsers(void **state) {
    (void)state;
    int64_t v;
    double d;
    uint64_t sz;
    int64_t list[8];
    assert_true(marlin_cli_int("128", 1, 1000, &v) && v == 128);
    assert_true(marlin_cli_int("-1", -1, 1000, &v) && v == -1);
    assert_false(marlin_cli_int("12x", 1, 1000, &v));
    assert_false(marlin_cli_int("", 1, 1000, &v));
    assert_false(marlin_cli_int(" 1", 1, 1000, &v));
    assert_false(marlin_cli_int("1001", 1, 1000, &v));
    assert_false(marlin_cli_int("99999999999999999999", 1, 1000, &v));
    assert_true(marlin_cli_double("0.01", 0, 1, &d) && d == 0.01);
    assert_false(marlin_cli_double("nan", 0, 1, &d));
    assert_false(marlin_cli_double("2", 0, 1, &d));
    assert_int_equal(marlin_cli_int_list("1,2,4,8", 1, 4096, list, 8), 4);
    assert_true(list[3] == 8);
    assert_int_equal(marlin_cli_int_list("1,,2", 1, 4096, list, 8), -1);
    assert_int_equal(marlin_cli_int_list("1,2,3", 1, 4096, list, 2), -1);
    assert_true(marlin_cli_size("5GB", &sz) && sz == 5000000000ull);
    assert_true(marlin_cli_size("300mb", &sz) && sz == 300000000ull);
    assert_true(marlin_cli_size("4096", &sz) && sz == 4096);
    assert_false(marlin_cli_size("5GiB", &sz));
    assert_false(marlin_cli_size("0", &sz));
    assert_false(marlin_cli_size("-5GB", &sz));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_half_to_float_all),
        cmocka_unit_test(test_common_float_to_half_rounding),
        cmocka_unit_test(test_common_bf16),
        cmocka_unit_test(test_common_rng_deterministic),
        cmocka_unit_test(test_common_parallel_for_covers_once),
        cmocka_unit_test(test_common_error_context),
        cmocka_unit_test(test_common_cli_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
