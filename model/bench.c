/*
 * bench.c - measurement helpers for docs/perf.md "model forward": the
 * forward's flop count and the sgemm throughput of this machine measured in
 * the same run (design.md "Measuring performance": CPU stages report the
 * fraction of OpenBLAS sgemm peak measured in the same run).
 */
#include "model_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>

double marlin_llama_block_flops(const marlin_llama *m, int64_t nseq,
                                int64_t seqlen) {
    double per_token = 0.0;
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        int64_t n, k;
        marlin_linear_shape(m, (marlin_linear)l, &n, &k);
        per_token += 2.0 * (double)n * (double)k;
    }
    /* query p attends to p+1 keys: sum over p < L is L(L+1)/2 pairs */
    double pairs = (double)seqlen * (double)(seqlen + 1) / 2.0;
    double attn = 4.0 * (double)m->head_dim * (double)m->heads * pairs;
    return (double)nseq * ((double)seqlen * per_token + attn);
}

double marlin_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

marlin_status marlin_sgemm_gflops(int64_t rows, int64_t n, int64_t k,
                                  int threads, double min_seconds,
                                  marlin_sgemm_rate *rate, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    if (threads < 1) threads = marlin_cpu_count();
    if (rows < 1 || n < 1 || k < 1 || rows > (1 << 20) || n > (1 << 20) ||
        k > (1 << 20))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "sgemm shape %lld x %lld x %lld out of range",
                           (long long)rows, (long long)n, (long long)k);
    float *x = malloc((size_t)(rows * k) * sizeof(float));
    float *w = malloc((size_t)(n * k) * sizeof(float));
    float *y = malloc((size_t)(rows * n) * sizeof(float));
    if (!x || !w || !y) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "sgemm benchmark buffers");
        goto out;
    }
    marlin_rng g;
    marlin_rng_seed(&g, 12345);
    for (int64_t i = 0; i < rows * k; i++) x[i] = marlin_rng_normal(&g);
    for (int64_t i = 0; i < n * k; i++) w[i] = marlin_rng_normal(&g);
    double flops = 2.0 * (double)rows * (double)n * (double)k;
    int prev = openblas_get_num_threads();
    for (int path = 0; path < 2; path++) {
        double best = 1e30, spent = 0.0, cpu = 0.0;
        int reps = 0;
        openblas_set_num_threads(path == 0 ? 1 : threads);
        /* one warm-up call, then at least 3 timed runs */
        while (reps < 4 || spent < min_seconds) {
            double t0 = marlin_now(), c0 = marlin_cpu_seconds();
            if (path == 0)
                marlin_linear_fwd(x, rows, k, w, NULL, n, y, threads);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows,
                            (int)n, (int)k, 1.0f, x, (int)k, w, (int)k, 0.0f,
                            y, (int)n);
            double dt = marlin_now() - t0, dc = marlin_cpu_seconds() - c0;
            if (reps > 0) {
                spent += dt;
                cpu += dc;
                if (dt < best) best = dt;
            }
            reps++;
        }
        double wall = flops / best * 1e-9;
        double per_cpu = flops * (double)(reps - 1) / cpu * 1e-9;
        if (path == 0) {
            rate->tiled = wall;
            rate->tiled_cpu = per_cpu;
        } else {
            rate->openblas = wall;
            rate->openblas_cpu = per_cpu;
        }
    }
    openblas_set_num_threads(prev);
out:
    free(x);
    free(w);
    free(y);
    return st;
}
