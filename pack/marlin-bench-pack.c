/*
 * marlin-bench-pack.c - throughput of the pack/ packers and unpackers on
 * Llama-2-7B layer shapes, against memcpy of the same bytes in the same run.
 *
 * Method (design.md "Measuring performance"): random codes (never zeros;
 * 2:4-pruned codes for the 2:4 format), one warm-up run (which also faults
 * in every output page), then the median of --reps timed runs. Throughput is
 * counted as bytes of codes in (pack) or out (unpack): one byte per code,
 * n*k bytes per layer; "fp16-eq" is the rate in FP16 weights of the source
 * layer (2 bytes per code), the unit of the quantizer's >= 1 GB/s target.
 * The memcpy baseline copies n*k bytes with the same thread count, split
 * like the packers (marlin_parallel_for), so the ratio is the packer's
 * fraction of this machine's copy bandwidth.
 * The last two rows put the packer in context: RTN (quantize/, clipping
 * search off) on random N(0, 0.02) FP16 weights alone, and RTN followed by
 * the dense Marlin pack - the quantizer's hot path, whose target is
 * >= 1 GB/s of FP16 input on all cores ("fp16-eq" = real input bytes here).
 *
 * usage: marlin-bench-pack [--threads N] [--reps R] [--quick]
 *   --threads N  0 = all online CPUs (default: run 1 and all)
 *   --reps R     timed runs per measurement (default 9)
 *   --quick      one small shape, for a smoke test
 * Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#include "marlin_common.h"
#include "marlin_pack.h"
#include "marlin_quant.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU time in seconds (all threads). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shape {
    const char *name;
    int64_t n, k; /* nn.Linear.weight [n, k] */
} shape;

/* Llama-2-7B: q/k/v/o_proj, gate/up_proj, down_proj. */
static const shape SHAPES[] = {
    {"q_proj 4096x4096", 4096, 4096},
    {"up_proj 11008x4096", 11008, 4096},
    {"down_proj 4096x11008", 4096, 11008},
};
static const shape QUICK[] = {{"quick 1024x1024", 1024, 1024}};

typedef struct bufs {
    uint8_t *q, *q24, *back;
    uint16_t *w16; /* FP16 weights [n, k] for the RTN rows */
    uint16_t *s, *s_out, *meta;
    uint32_t *w, *z;
} bufs;

typedef struct copy_job {
    const uint8_t *src;
    uint8_t *dst;
} copy_job;

static void copy_range(void *arg, int64_t b, int64_t e, int t) {
    copy_job *j = arg;
    (void)t;
    memcpy(j->dst + b * 4096, j->src + b * 4096, (size_t)(e - b) * 4096);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum op {
    OP_MEMCPY, OP_GPTQ, OP_GPTQ_UN, OP_DENSE, OP_DENSE_UN, OP_24, OP_24_UN,
    OP_RTN, OP_RTN_DENSE
};
static const char *const OP_NAME[] = {
    "memcpy",        "gptq pack",     "gptq unpack",     "marlin pack",
    "marlin unpack", "marlin24 pack", "marlin24 unpack", "rtn (fp16 in)",
    "rtn+marlin"};

static marlin_status run_op(enum op op, const shape *sh, bufs *b, int threads,
                            marlin_error *err) {
    const int64_t n = sh->n, k = sh->k, g = 128;
    switch (op) {
    case OP_MEMCPY: {
        copy_job j = {b->q, b->back};
        /* n*k is a multiple of 4096 for every shape here */
        return marlin_parallel_for(n * k / 4096, 64, threads, copy_range, &j);
    }
    case OP_GPTQ:
        return marlin_pack_gptq(b->q, b->s, n, k, g, threads, b->w,
                                b->z, b->s_out, NULL, err);
    case OP_GPTQ_UN:
        return marlin_unpack_gptq(b->w, b->z, b->s_out,
                                  n, k, g, threads, b->back, b->s, err);
    case OP_DENSE:
        return marlin_pack_dense(b->q, b->s, n, k, g, threads, b->w, b->s_out,
                                 err);
    case OP_DENSE_UN:
        return marlin_unpack_dense(b->w, b->s_out, n, k, g, threads, b->back,
                                   b->s, err);
    case OP_24:
        return marlin_pack_24(b->q24, b->s, n, k, g, threads, b->w, b->meta,
                              b->s_out, err);
    case OP_24_UN:
        return marlin_unpack_24(b->w, b->meta, b->s_out, n, k, g, threads,
                                b->back, b->s, err);
    case OP_RTN:
    case OP_RTN_DENSE: {
        marlin_rtn_opts o = marlin_rtn_default_opts();
        o.group_size = g;
        o.clip = false;
        o.threads = threads;
        marlin_status st = marlin_rtn_quantize(b->w16, MARLIN_DT_F16, n, k, &o,
                                               b->back, b->s, err);
        if (st != MARLIN_OK || op == OP_RTN) return st;
        return marlin_pack_dense(b->back, b->s, n, k, g, threads, b->w,
                                 b->s_out, err);
    }
    }
    return MARLIN_ERR_INTERNAL;
}

static int usage(FILE *f) {
    fprintf(f, "usage: marlin-bench-pack [--threads N] [--reps R] [--quick]\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    int threads_arg = -1, reps = 9, quick = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout);
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_arg = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "marlin-bench-pack: unknown argument '%s'\n"
                            "Try '--help'\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > 1000 || threads_arg < -1) return usage(stderr);
    const shape *shapes = quick ? QUICK : SHAPES;
    size_t nshapes = quick ? 1 : sizeof SHAPES / sizeof SHAPES[0];
    int tlist[2] = {1, 0}, nt = 2;
    if (threads_arg >= 0) {
        tlist[0] = threads_arg;
        nt = 1;
    }
    printf("marlin-bench-pack: %d online CPUs, median of %d runs, group 128\n",
           marlin_cpu_count(), reps);
    printf("%-22s %-16s %7s %9s %8s %8s %8s %8s %8s\n", "shape", "op",
           "threads", "ms", "GB/s", "best", "cpu", "fp16-eq", "/memcpy");

    double *t = calloc((size_t)reps, sizeof *t);
    double *tc = calloc((size_t)reps, sizeof *tc);
    marlin_rng rng;
    marlin_rng_seed(&rng, 12345);
    for (size_t si = 0; si < nshapes && rc == 0; si++) {
        const shape *sh = &shapes[si];
        const int64_t n = sh->n, k = sh->k, codes = n * k, G = k / 128;
        bufs b = {0};
        b.q = malloc((size_t)codes);
        b.q24 = malloc((size_t)codes);
        b.back = malloc((size_t)codes);
        b.w16 = malloc((size_t)codes * 2);
        b.w = malloc((size_t)codes / 2);
        b.meta = malloc((size_t)codes / 8);
        b.z = malloc((size_t)(G * n / 8) * 4);
        b.s = malloc((size_t)(G * n) * 2);
        b.s_out = malloc((size_t)(G * n) * 2);
        if (!t || !tc || !b.q || !b.q24 || !b.back || !b.w16 || !b.w || !b.meta || !b.z ||
            !b.s || !b.s_out) {
            fprintf(stderr, "marlin-bench-pack: out of memory\n");
            rc = 1;
        }
        for (int64_t i = 0; rc == 0 && i < codes; i += 8) {
            uint64_t r = marlin_rng_u64(&rng);
            for (int j = 0; j < 8; j++) b.q[i + j] = (uint8_t)((r >> (4 * j)) & 15);
            /* 2:4: keep positions (r>>32)%4 and a second one, others 8 */
            for (int h = 0; h < 2; h++) {
                uint8_t *p = b.q24 + i + 4 * h;
                int a = (int)((r >> (32 + 4 * h)) & 3);
                int c = (a + 1 + (int)((r >> (34 + 4 * h)) % 3)) & 3;
                p[0] = p[1] = p[2] = p[3] = 8;
                p[a] = (uint8_t)((r >> (8 * h)) & 7);       /* 0..7 */
                p[c] = (uint8_t)(9 + ((r >> (8 * h + 3)) % 7)); /* 9..15 */
            }
        }
        for (int64_t i = 0; rc == 0 && i < codes; i++)
            b.w16[i] = marlin_float_to_half(0.02f * marlin_rng_normal(&rng));
        for (int64_t i = 0; rc == 0 && i < G * n; i++)
            b.s[i] = marlin_float_to_half(0.01f + 0.001f * (float)(i % 97));
        /* the 2:4 unpack and the gptq unpack need valid inputs: the pack of
         * the same format runs right before them */
        for (int ti = 0; ti < nt && rc == 0; ti++) {
            double memcpy_gbs = 0;
            for (int op = OP_MEMCPY; op <= OP_RTN_DENSE && rc == 0; op++) {
                marlin_error err = {0};
                marlin_status st = run_op((enum op)op, sh, &b, tlist[ti], &err);
                for (int r = 0; r < reps && st == MARLIN_OK; r++) {
                    double c0 = cpu_now(), t0 = marlin_now();
                    st = run_op((enum op)op, sh, &b, tlist[ti], &err);
                    t[r] = marlin_now() - t0;
                    tc[r] = cpu_now() - c0;
                }
                if (st != MARLIN_OK) {
                    fprintf(stderr, "marlin-bench-pack: %s %s: %s\n", sh->name,
                            OP_NAME[op], err.msg);
                    rc = 1;
                    break;
                }
                qsort(t, (size_t)reps, sizeof *t, cmp_double);
                qsort(tc, (size_t)reps, sizeof *tc, cmp_double);
                double med = t[reps / 2];
                double gbs = (double)codes / med * 1e-9;
                double best = (double)codes / t[0] * 1e-9;
                double cpu = (double)codes / tc[reps / 2] * 1e-9;
                if (op == OP_MEMCPY) memcpy_gbs = gbs;
                printf("%-22s %-16s %7d %9.3f %8.2f %8.2f %8.2f %8.2f %8.2f\n",
                       sh->name, OP_NAME[op],
                       tlist[ti] > 0 ? tlist[ti] : marlin_cpu_count(),
                       med * 1e3, gbs, best, cpu, 2 * gbs, gbs / memcpy_gbs);
            }
        }
        free(b.q);
        free(b.q24);
        free(b.back);
        free(b.w16);
        free(b.w);
        free(b.meta);
        free(b.z);
        free(b.s);
        free(b.s_out);
    }
    free(t);
    free(tc);
    return rc;
}
