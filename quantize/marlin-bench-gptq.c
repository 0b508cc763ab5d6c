/*
 * marlin-bench-gptq.c - benchmark of the quantize/ algorithms on the CPU:
 * the GPTQ solve on Llama-sized layers against OpenBLAS's sgemm peak
 * measured in the same run, and RTN throughput in GB/s of fp16 input.
 *
 * Method (docs/design.md "Measuring performance"): random data (never
 * zeros); H = (2/N) X^T X from random X of T tokens (default 2048: rank
 * min(T, k), and H + 0.01 mean(diag H) I is SPD; the solve's time does not
 * depend on H's values);
 * the GPTQ solve runs --reps times, each between two square sgemm probes
 * (the machine may be shared: each solve is compared with the peak measured
 * around it, and the median rep is reported); RTN timings are the best of
 * --reps after a warm-up. Flops counted
 * for the solve (marlin_quant.h, marlin_gptq_result):
 *     2/3 k^3                           spotrf + strtri on the reversed H
 *   + 2 n sum_b B_b (k - i2_b)          the lazy block updates (sgemm)
 *   + n sum_b B_b (B_b - 1)             the column loop inside the blocks
 * and the fraction of peak = flops / seconds / (sgemm flops per second),
 * sgemm measured as a square 2048^3 product. "CPU share" is the process's
 * CPU time over wall time times the CPU count: below 100% the machine was
 * busy with other work, and the wall-clock fraction is then unreliable;
 * "per CPU-second" compares GFLOP per CPU-second of the solve with the
 * probes' (robust to time sharing, not to cache or SMT contention).
 */
#include "marlin_quant.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: marlin-bench-gptq [--shape NxK]... [--group G] [--tokens T]\n"
            "                         [--threads N] [--reps R] [--no-clip]\n"
            "                         [--no-outerr] [--act-order] [--sparse]\n"
            "                         [--gptq-only | --rtn-only] [--quick]\n"
            "Times the GPTQ solve (default shapes 4096x4096 and 4096x11008:\n"
            "n = out rows, k = in columns) against OpenBLAS sgemm peak measured\n"
            "in the same run, and RTN throughput (GB/s of fp16 input).\n"
            "  --tokens T   random tokens behind H (default 2048; with T < k, H\n"
            "               has rank T and the 1%% damping makes it definite)\n"
            "  --quick      small shapes (512x1024), one rep: a smoke test\n"
            "Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
}

static int parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static void fill_normal(marlin_rng *rng, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = marlin_rng_normal(rng) * scale;
}

/* Process CPU seconds (user + system, all threads). */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* GFLOP/s of a square m^3 sgemm (the peak we compare against): one
 * untimed call to wake OpenBLAS's threads, then the best of two; *per_cpu
 * gets GFLOP per CPU-second of the process (all threads) for that call.
 * The operands are allocated and filled once. */
static double sgemm_peak(int64_t m, marlin_rng *rng, double *per_cpu) {
    static float *a, *b, *c;
    static int64_t have;
    size_t sz = (size_t)m * (size_t)m;
    if (have != m) {
        free(a);
        free(b);
        free(c);
        a = malloc(sz * sizeof(float));
        b = malloc(sz * sizeof(float));
        c = malloc(sz * sizeof(float));
        if (!a || !b || !c) return -1;
        fill_normal(rng, a, sz, 1.0f);
        fill_normal(rng, b, sz, 1.0f);
        have = m;
    }
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < 3; r++) {
        double c0 = cpu_seconds(), t = marlin_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)m,
                    (int)m, 1.0f, a, (int)m, b, (int)m, 0.0f, c, (int)m);
        t = marlin_now() - t;
        double cpu = cpu_seconds() - c0;
        if (r > 0 && t < best) best = t;
        if (r > 0 && cpu < best_cpu) best_cpu = cpu;
    }
    double fl = 2.0 * (double)m * (double)m * (double)m;
    *per_cpu = fl / best_cpu / 1e9;
    return fl / best / 1e9;
}

typedef struct bench_cfg {
    int64_t group, tokens, probe;
    int threads, reps;
    bool clip, outerr, act_order, sparse, gptq, rtn;
} bench_cfg;

static int bench_gptq(const bench_cfg *C, int64_t n, int64_t k,
                      marlin_rng *rng) {
    int64_t T = C->tokens > 0 ? C->tokens : 2048;
    int64_t G = C->group == -1 ? 1 : k / C->group;
    float *x = malloc((size_t)T * (size_t)k * sizeof(float));
    float *w = malloc((size_t)n * (size_t)k * sizeof(float));
    uint8_t *q = malloc((size_t)n * (size_t)k);
    uint16_t *s = malloc((size_t)G * (size_t)n * sizeof(uint16_t));
    marlin_hessian H = {0, 0, NULL};
    marlin_error err = {0};
    int rc = 1;
    if (!x || !w || !q || !s) {
        fprintf(stderr, "marlin-bench-gptq: out of memory\n");
        goto done;
    }
    fill_normal(rng, x, (size_t)T * (size_t)k, 1.0f);
    fill_normal(rng, w, (size_t)n * (size_t)k, 0.02f);
    if (marlin_hessian_init(&H, k, &err) != MARLIN_OK) goto fail;
    /* H from T tokens in sequences of 512 (the running mean over them) */
    double th = marlin_now();
    for (int64_t t0 = 0; t0 < T; t0 += 512) {
        int64_t rows = T - t0 < 512 ? T - t0 : 512;
        if (marlin_hessian_add(&H, x + (size_t)t0 * (size_t)k, rows, 1,
                               &err) != MARLIN_OK)
            goto fail;
    }
    th = marlin_now() - th;
    printf("gptq n=%lld k=%lld: H from %lld tokens in %.3f s (ssyrk %.1f "
           "GFLOP/s)\n",
           (long long)n, (long long)k, (long long)T, th,
           (double)T * (double)k * (double)(k + 1) / th / 1e9);
    marlin_gptq_opts o = marlin_gptq_default_opts();
    o.group_size = C->group;
    o.clip = C->clip;
    o.output_error = C->outerr;
    o.act_order = C->act_order;
    o.prune = C->sparse ? MARLIN_PRUNE_SPARSEGPT : MARLIN_PRUNE_NONE;
    o.threads = C->threads;
    /* reps solves, each between two sgemm probes: the machine may be
     * shared, so each solve is compared with the peak measured around it,
     * and the median rep is reported */
    marlin_gptq_result res[16];
    double frac[16], peaks[16], share[16], cfrac[16];
    int reps = C->reps < 1 ? 1 : (C->reps > 16 ? 16 : C->reps);
    for (int rep = 0; rep < reps; rep++) {
        double pc0, pc1;
        double p0 = sgemm_peak(C->probe, rng, &pc0);
        double c0 = cpu_seconds(), w0 = marlin_now();
        if (marlin_gptq_quantize(w, MARLIN_DT_F32, n, k, H.h, &o, q, s,
                                 &res[rep], &err) != MARLIN_OK)
            goto fail;
        double wall = marlin_now() - w0, cpu = cpu_seconds() - c0;
        double p1 = sgemm_peak(C->probe, rng, &pc1);
        peaks[rep] = (p0 + p1) / 2;
        double fl = res[rep].flops_factor + res[rep].flops_update;
        double sv = res[rep].t_total - res[rep].t_outerr;
        frac[rep] = fl / sv / 1e9 / peaks[rep];
        share[rep] = cpu / wall / marlin_cpu_count();
        /* per CPU-second: robust to other processes taking the CPUs (the
         * output error's share of the CPU time is removed pro rata) */
        double cpu_solve = cpu * sv / res[rep].t_total;
        cfrac[rep] = fl / cpu_solve / 1e9 / ((pc0 + pc1) / 2);
        printf("  rep %d: solve %.3f s (factor %.3f, rows %.3f) = %.1f "
               "GFLOP/s, %.0f%% of the sgemm peak around it (%.1f, %.1f "
               "GFLOP/s); CPU share %.0f%%; per CPU-second %.0f%% of "
               "sgemm's\n",
               rep, sv, res[rep].t_factor, res[rep].t_rows, fl / sv / 1e9,
               100 * frac[rep], p0, p1, 100 * share[rep], 100 * cfrac[rep]);
    }
    int med = 0; /* the median rep by fraction of peak */
    for (int a = 0; a < reps; a++) {
        int below = 0, above = 0;
        for (int b = 0; b < reps; b++) {
            below += frac[b] < frac[a];
            above += frac[b] > frac[a];
        }
        if (below <= reps / 2 && above <= reps / 2) med = a;
    }
    marlin_gptq_result best = res[med];
    double peak_med = peaks[med];
    double flops = best.flops_factor + best.flops_update;
    double solve = best.t_total - best.t_outerr;
    printf("  median rep %d: solve %.3f s: factor %.3f, row phase %.3f (per "
           "thread: column loop %.3f, block sgemm %.3f), other %.3f; output "
           "error %.3f s\n",
           med, solve, best.t_factor, best.t_rows, best.t_columns, best.t_gemm,
           solve - best.t_factor - best.t_rows, best.t_outerr);
    printf("  %.1f GFLOP counted (factor %.1f, updates %.1f): %.1f GFLOP/s = "
           "%.0f%% of sgemm peak (%.1f GFLOP/s)\n",
           flops / 1e9, best.flops_factor / 1e9, best.flops_update / 1e9,
           flops / solve / 1e9, 100.0 * flops / solve / 1e9 / peak_med,
           peak_med);
    if (C->outerr)
        printf("  with the output error: %.3f s, %.1f GFLOP (+ssyrk n k^2) = "
               "%.0f%% of sgemm peak\n",
               best.t_total, (flops + (double)n * k * k) / 1e9,
               100.0 * (flops + (double)n * k * k) / best.t_total / 1e9 /
                   peak_med);
    printf("  loss %.6g, damp %.3f, output rel. error %.5f, steps %d%s\n",
           best.loss, best.damp_rel, best.out_rel_err, best.nsteps,
           best.fallback_rtn ? " (RTN fallback)" : "");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "marlin-bench-gptq: %s\n", err.msg);
done:
    marlin_hessian_free(&H);
    free(x);
    free(w);
    free(q);
    free(s);
    return rc;
}

static int bench_rtn(const bench_cfg *C, int64_t n, int64_t k,
                     marlin_rng *rng) {
    int64_t G = C->group == -1 ? 1 : k / C->group;
    size_t nk = (size_t)n * (size_t)k;
    float *w = malloc(nk * sizeof(float));
    uint16_t *h = malloc(nk * sizeof(uint16_t));
    uint8_t *q = malloc(nk);
    uint16_t *s = malloc((size_t)G * (size_t)n * sizeof(uint16_t));
    marlin_error err = {0};
    int rc = 1;
    if (!w || !h || !q || !s) {
        fprintf(stderr, "marlin-bench-gptq: out of memory\n");
        goto done;
    }
    fill_normal(rng, w, nk, 0.02f);
    marlin_float_to_half_n(w, h, nk);
    /* memcpy of the same bytes: the bandwidth yardstick of this machine */
    double tm = 1e30;
    for (int rep = 0; rep <= C->reps; rep++) {
        double t = marlin_now();
        memcpy(w, h, nk * sizeof(uint16_t));
        t = marlin_now() - t;
        if (rep > 0 && t < tm) tm = t;
    }
    for (int clip = 0; clip < 2; clip++) {
        marlin_rtn_opts o = marlin_rtn_default_opts();
        o.group_size = C->group;
        o.clip = clip;
        o.threads = C->threads;
        o.prune = C->sparse ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
        double best = 1e30, best_cpu = 1e30;
        for (int rep = 0; rep <= C->reps; rep++) {
            double c0 = cpu_seconds(), t = marlin_now();
            if (marlin_rtn_quantize(h, MARLIN_DT_F16, n, k, &o, q, s, &err) !=
                MARLIN_OK) {
                fprintf(stderr, "marlin-bench-gptq: %s\n", err.msg);
                goto done;
            }
            t = marlin_now() - t;
            double cpu = cpu_seconds() - c0;
            if ((rep > 0 || C->reps == 0) && t < best) best = t;
            if ((rep > 0 || C->reps == 0) && cpu < best_cpu) best_cpu = cpu;
        }
        printf("rtn n=%lld k=%lld clip %s: %.4f s, %.2f GB/s of fp16 input "
               "(memcpy of the same bytes: %.2f GB/s); %.2f GB/s per "
               "CPU-second\n",
               (long long)n, (long long)k, clip ? "on " : "off", best,
               (double)nk * 2 / best / 1e9, (double)nk * 2 / tm / 1e9,
               (double)nk * 2 / best_cpu / 1e9);
    }
    rc = 0;
done:
    free(w);
    free(h);
    free(q);
    free(s);
    return rc;
}

int main(int argc, char **argv) {
    bench_cfg C = {128, 0, 2048, 0, 3, true, true, false, false, true, true};
    int64_t shapes[8][2];
    int nshapes = 0;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--shape") && i + 1 < argc) {
            long long nn, kk;
            char tail;
            if (nshapes == 8 ||
                sscanf(argv[++i], "%lldx%lld%c", &nn, &kk, &tail) != 2 ||
                nn <= 0 || kk <= 0) {
                fprintf(stderr, "marlin-bench-gptq: bad --shape '%s'\n"
                                "Try '--help'\n", argv[i]);
                return 2;
            }
            shapes[nshapes][0] = nn;
            shapes[nshapes++][1] = kk;
        } else if ((!strcmp(a, "--group") || !strcmp(a, "--tokens") ||
                    !strcmp(a, "--threads") || !strcmp(a, "--reps")) &&
                   i + 1 < argc) {
            if (parse_i64(argv[++i], &v) != 0) {
                fprintf(stderr, "marlin-bench-gptq: bad %s '%s'\nTry '--help'\n",
                        a, argv[i]);
                return 2;
            }
            if (!strcmp(a, "--group")) C.group = v;
            else if (!strcmp(a, "--tokens")) C.tokens = v;
            else if (!strcmp(a, "--threads")) C.threads = (int)v;
            else C.reps = (int)v;
        } else if (!strcmp(a, "--no-clip")) {
            C.clip = false;
        } else if (!strcmp(a, "--no-outerr")) {
            C.outerr = false;
        } else if (!strcmp(a, "--act-order")) {
            C.act_order = true;
        } else if (!strcmp(a, "--sparse")) {
            C.sparse = true;
        } else if (!strcmp(a, "--gptq-only")) {
            C.rtn = false;
        } else if (!strcmp(a, "--rtn-only")) {
            C.gptq = false;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else {
            fprintf(stderr, "marlin-bench-gptq: unknown argument '%s'\n"
                            "Try '--help'\n", a);
            return 2;
        }
    }
    if (quick) {
        C.reps = 1;
        if (nshapes == 0) {
            shapes[0][0] = 512;
            shapes[0][1] = 1024;
            nshapes = 1;
        }
    }
    if (nshapes == 0) {
        shapes[0][0] = 4096;
        shapes[0][1] = 4096;
        shapes[1][0] = 4096;
        shapes[1][1] = 11008;
        nshapes = 2;
    }
    marlin_rng rng;
    marlin_rng_seed(&rng, 1234);
    printf("marlin-bench-gptq: %d CPUs online, OpenBLAS %d threads, our "
           "threads %d; group %lld, clip %s%s%s\n",
           marlin_cpu_count(), openblas_get_num_threads(),
           C.threads > 0 ? C.threads : marlin_cpu_count(), (long long)C.group,
           C.clip ? "on" : "off", C.act_order ? ", act-order" : "",
           C.sparse ? ", 2:4" : "");
    if (quick) C.probe = 512;
    if (C.gptq)
        printf("sgemm peak probes: square %lld^3, one before and one after "
               "each solve\n", (long long)C.probe);
    for (int i = 0; i < nshapes; i++) {
        if (C.group != -1 && (C.group <= 0 || shapes[i][1] % C.group != 0)) {
            fprintf(stderr, "marlin-bench-gptq: group %lld does not divide "
                            "k = %lld\n", (long long)C.group,
                    (long long)shapes[i][1]);
            return 2;
        }
        if (C.gptq && bench_gptq(&C, shapes[i][0], shapes[i][1], &rng))
            return 1;
        if (C.rtn && bench_rtn(&C, shapes[i][0], shapes[i][1], &rng)) return 1;
    }
    return 0;
}
