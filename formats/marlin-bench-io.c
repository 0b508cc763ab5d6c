/*
 * marlin-bench-io.c - benchmarks of the safetensors reader (issue 2):
 *
 *  1. header parse + full validation of synthetic MoE-style headers
 *     (model.layers.L.mlp.experts.K.{gate,up,down}_proj.weight, BF16,
 *     realistic shapes and offsets), 700 and 10,000 tensors, as
 *     marlin_st_parse on a mapped image and as marlin_st_open (open, fstat,
 *     pread of the header, scan, mmap). The data buffers are sparse files,
 *     so multi-GB checkpoints cost no disk and no page faults: only header
 *     bytes are ever read.
 *  2. F16 -> fp32 and BF16 -> fp32 conversion throughput (GB/s of fp32
 *     output) against memcpy of the same number of output bytes measured in
 *     the same run, at a cache-resident and a DRAM-sized length; plus
 *     marlin_st_read_f32 from a file in the page cache (pread + convert).
 *
 * Timing: marlin_now() (monotonic), warm-up run first, median (and min) of
 * many runs; the machine is shared, so medians are what to compare.
 * Usage: marlin-bench-io [--runs N] [--dir DIR] [--keep]
 */
#include "marlin_cli.h"
#include "marlin_formats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *TOOL = "marlin-bench-io";

/* CPU time of this thread: on a shared machine it leaves out the time the
 * scheduler gave to others, which the wall clock includes. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double median, min;
} stats;

static stats summarize(double *t, int n) {
    stats s;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    s.min = t[0];
    s.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    return s;
}

/* ------------------------------------------------------- synthetic header */

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static int t_add(text *t, const char *s, size_t k) {
    if (t->n + k + 1 > t->cap) {
        size_t c = t->cap ? t->cap * 2 : 1 << 16;
        while (c < t->n + k + 1) c *= 2;
        char *q = realloc(t->p, c);
        if (!q) return -1;
        t->p = q;
        t->cap = c;
    }
    memcpy(t->p + t->n, s, k);
    t->n += k;
    t->p[t->n] = 0;
    return 0;
}

/* Writes a sparse safetensors file with `count` BF16 expert tensors laid
 * out like the reference writer would (compact JSON, __metadata__ first,
 * header padded to 8). Returns the header length, 0 on error. */
static uint64_t write_synthetic(const char *path, int count, uint64_t *size) {
    static const char *proj[3] = {"gate_proj", "up_proj", "down_proj"};
    const int experts = 64, hidden = 2048, inter = 1408;
    text t = {0};
    char e[512];
    uint64_t off = 0, n = 0;
    int fd = -1;
    if (t_add(&t, "{\"__metadata__\":{\"format\":\"pt\"}", 31)) goto out;
    for (int i = 0; i < count; i++) {
        int layer = i / (experts * 3), k = (i / 3) % experts, p = i % 3;
        uint64_t r = p == 2 ? (uint64_t)hidden : (uint64_t)inter;
        uint64_t c = p == 2 ? (uint64_t)inter : (uint64_t)hidden;
        uint64_t nb = r * c * 2;
        int len = snprintf(e, sizeof e,
                           ",\"model.layers.%d.mlp.experts.%d.%s.weight\":"
                           "{\"dtype\":\"BF16\",\"shape\":[%llu,%llu],"
                           "\"data_offsets\":[%llu,%llu]}",
                           layer, k, proj[p], (unsigned long long)r,
                           (unsigned long long)c, (unsigned long long)off,
                           (unsigned long long)(off + nb));
        if (t_add(&t, e, (size_t)len)) goto out;
        off += nb;
    }
    if (t_add(&t, "}", 1)) goto out;
    while (t.n % 8) t_add(&t, " ", 1);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto out;
    uint8_t pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (uint8_t)((uint64_t)t.n >> (8 * i));
    if (write(fd, pre, 8) != 8 || write(fd, t.p, t.n) != (ssize_t)t.n) goto out;
    *size = 8 + t.n + off;
    if (ftruncate(fd, (off_t)*size) != 0) goto out; /* sparse data buffer */
    n = t.n;
out:
    if (fd >= 0 && close(fd) != 0) n = 0;
    free(t.p);
    return n;
}

static int bench_header(const char *dir, int count, int runs, bool keep) {
    char path[4096];
    uint64_t size = 0;
    snprintf(path, sizeof path, "%s/bench-io-%d.safetensors", dir, count);
    uint64_t n = write_synthetic(path, count, &size);
    if (!n) {
        fprintf(stderr, "%s: %s: cannot write: %s\n", TOOL, path,
                strerror(errno));
        return 1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", TOOL, path, strerror(errno));
        return 1;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "%s: %s: mmap: %s\n", TOOL, path, strerror(errno));
        return 1;
    }
    double *tp = malloc((size_t)runs * sizeof *tp);
    double *to = malloc((size_t)runs * sizeof *to);
    double *tc = malloc((size_t)runs * sizeof *tc);
    if (!tp || !to || !tc) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        return 1;
    }
    marlin_error err;
    int rc = 0;
    for (int r = -1; r < runs && !rc; r++) { /* r = -1: warm-up */
        marlin_st_file *f = NULL;
        double c0 = cpu_now();
        double t0 = marlin_now();
        if (marlin_st_parse(map, (size_t)size, path, &f, &err) != MARLIN_OK) {
            fprintf(stderr, "%s: %s\n", TOOL, err.msg);
            rc = 1;
            break;
        }
        double t1 = marlin_now();
        double c1 = cpu_now();
        if (marlin_st_count(f) != (size_t)count) rc = 1;
        marlin_st_close(f);
        f = NULL;
        double t2 = marlin_now();
        if (marlin_st_open(path, &f, &err) != MARLIN_OK) {
            fprintf(stderr, "%s: %s\n", TOOL, err.msg);
            rc = 1;
            break;
        }
        double t3 = marlin_now();
        marlin_st_close(f);
        if (r >= 0) {
            tp[r] = t1 - t0;
            tc[r] = c1 - c0;
            to[r] = t3 - t2;
        }
    }
    munmap(map, (size_t)size);
    if (!rc) {
        stats sp = summarize(tp, runs), so = summarize(to, runs);
        stats sc = summarize(tc, runs);
        printf("header %5d tensors, %7llu header bytes, %4.1f GB data "
               "(sparse): parse+validate median %.3f ms wall (min %.3f; "
               "%.0f MB/s), %.3f ms CPU; open median %.3f ms (min %.3f)  "
               "[%d runs]\n",
               count, (unsigned long long)n, (double)(size - 8 - n) / 1e9,
               sp.median * 1e3, sp.min * 1e3, (double)n / sp.median / 1e6,
               sc.median * 1e3, so.median * 1e3, so.min * 1e3, runs);
    }
    if (keep) printf("  kept %s\n", path);
    else unlink(path);
    free(tp);
    free(to);
    free(tc);
    return rc;
}

/* ------------------------------------------------------------ conversions */

typedef void (*conv_fn)(const uint16_t *, float *, size_t);

static double time_conv(conv_fn fn, const uint16_t *src, float *dst,
                        size_t n, int runs, double *tmin) {
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) return -1;
    fn(src, dst, n); /* warm-up, faults the pages in */
    for (int r = 0; r < runs; r++) {
        double t0 = marlin_now();
        fn(src, dst, n);
        t[r] = marlin_now() - t0;
    }
    stats s = summarize(t, runs);
    free(t);
    *tmin = s.min;
    return s.median;
}

static double time_memcpy(void *dst, const void *src, size_t bytes, int runs,
                          double *tmin) {
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) return -1;
    memcpy(dst, src, bytes);
    for (int r = 0; r < runs; r++) {
        double t0 = marlin_now();
        memcpy(dst, src, bytes);
        /* keep the copy observable so it is not elided */
        __asm__ __volatile__("" : : "r"(dst) : "memory");
        t[r] = marlin_now() - t0;
    }
    stats s = summarize(t, runs);
    free(t);
    *tmin = s.min;
    return s.median;
}

static int bench_convert(size_t n, int runs) {
    uint16_t *h = malloc(n * sizeof *h);
    float *out = malloc(n * sizeof *out);
    float *src32 = malloc(n * sizeof *src32);
    if (!h || !out || !src32) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        return 1;
    }
    marlin_rng r;
    marlin_rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++) {
        /* random finite values: never zeros */
        float v = marlin_rng_normal(&r);
        h[i] = marlin_float_to_half(v);
        src32[i] = v;
    }
    double bytes = (double)n * 4, mn_c, mn_f, mn_b;
    double tc = time_memcpy(out, src32, n * 4, runs, &mn_c);
    double tf = time_conv(marlin_half_to_float_n, h, out, n, runs, &mn_f);
    double tb = time_conv(marlin_bf16_to_float_n, h, out, n, runs, &mn_b);
    printf("convert %9zu elements (%7.2f MiB fp32 out): memcpy %.2f GB/s | "
           "F16->F32 %.2f GB/s (%.0f%% of memcpy) | BF16->F32 %.2f GB/s "
           "(%.0f%%)  [median of %d; best: memcpy %.2f, F16 %.2f, BF16 %.2f]"
           "\n",
           n, bytes / 1048576.0, bytes / tc / 1e9, bytes / tf / 1e9,
           100.0 * tc / tf, bytes / tb / 1e9, 100.0 * tc / tb, runs,
           bytes / mn_c / 1e9, bytes / mn_f / 1e9, bytes / mn_b / 1e9);
    free(h);
    free(out);
    free(src32);
    return 0;
}

/* marlin_st_read_f32 of one F16 tensor from a file in the page cache. */
static int bench_read_f32(const char *dir, size_t n, int runs, bool keep) {
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-io-f16.safetensors", dir);
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr,
                     "{\"w\":{\"dtype\":\"F16\",\"shape\":[%zu],"
                     "\"data_offsets\":[0,%zu]}}",
                     n, 2 * n);
    while (k % 8) hdr[k++] = ' ';
    uint16_t *h = malloc(n * 2);
    float *out = malloc(n * 4), *tmp = malloc(n * 4);
    double *t = malloc((size_t)runs * sizeof *t);
    if (!h || !out || !tmp || !t) return 1;
    marlin_rng r;
    marlin_rng_seed(&r, 2);
    for (size_t i = 0; i < n; i++)
        h[i] = marlin_float_to_half(marlin_rng_normal(&r));
    FILE *fp = fopen(path, "wb");
    uint8_t pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (uint8_t)((uint64_t)k >> (8 * i));
    if (!fp || fwrite(pre, 1, 8, fp) != 8 ||
        fwrite(hdr, 1, (size_t)k, fp) != (size_t)k ||
        fwrite(h, 2, n, fp) != n || fclose(fp) != 0) {
        fprintf(stderr, "%s: %s: cannot write\n", TOOL, path);
        return 1;
    }
    marlin_st_file *f = NULL;
    marlin_error err;
    if (marlin_st_open(path, &f, &err) != MARLIN_OK) {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg);
        return 1;
    }
    const marlin_tensor *w = marlin_st_find(f, "w");
    int rc = 0;
    for (int i = -1; i < runs; i++) {
        double t0 = marlin_now();
        if (marlin_st_read_f32(f, w, out, &err) != MARLIN_OK) {
            fprintf(stderr, "%s: %s\n", TOOL, err.msg);
            rc = 1;
            break;
        }
        if (i >= 0) t[i] = marlin_now() - t0;
    }
    /* memcpy of the same output size, same run */
    double mn_c, tc = time_memcpy(tmp, out, n * 4, runs, &mn_c);
    if (!rc) {
        stats s = summarize(t, runs);
        double bytes = (double)n * 4;
        printf("read_f32 F16 file (page cache) %zu elements: %.2f GB/s fp32 "
               "out (%.0f%% of memcpy %.2f GB/s)  [median of %d; best %.2f]\n",
               n, bytes / s.median / 1e9, 100.0 * tc / s.median,
               bytes / tc / 1e9, runs, bytes / s.min / 1e9);
    }
    marlin_st_close(f);
    if (!keep) unlink(path);
    free(h);
    free(out);
    free(tmp);
    free(t);
    return rc;
}

static void usage(FILE *o) {
    fprintf(o,
            "Usage: %s [--runs N] [--dir DIR] [--keep]\n"
            "Benchmarks the safetensors reader: header parse+validation of\n"
            "synthetic 700- and 10,000-tensor BF16 headers (sparse files), and\n"
            "F16/BF16 -> fp32 conversion against memcpy measured in the same run.\n"
            "  --runs N  timed runs per measurement (default 200; 10k headers\n"
            "            and DRAM-sized conversions use N/10, at least 5)\n"
            "  --dir DIR where the temporary files go (default $TMPDIR or /tmp)\n"
            "  --keep    keep the generated files (to time other readers on them)\n",
            TOOL);
}

int main(int argc, char **argv) {
    int64_t runs = 200;
    const char *dir = getenv("TMPDIR");
    bool keep = false;
    if (!dir || !*dir) dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return MARLIN_EXIT_OK;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            if (!marlin_cli_int(argv[++i], 1, 1000000, &runs)) {
                fprintf(stderr, "%s: --runs: expected an integer in [1, "
                                "1000000], got '%s'\nTry '%s --help'\n",
                        TOOL, argv[i], TOOL);
                return MARLIN_EXIT_USAGE;
            }
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--keep")) {
            keep = true;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\nTry '%s --help'\n",
                    TOOL, argv[i], TOOL);
            return MARLIN_EXIT_USAGE;
        }
    }
    int few = runs / 10 < 5 ? 5 : (int)(runs / 10);
    if (bench_header(dir, 700, (int)runs, keep)) return MARLIN_EXIT_RUNTIME;
    if (bench_header(dir, 10000, few < 30 ? (int)runs < 30 ? (int)runs : 30 : few,
                     keep))
        return MARLIN_EXIT_RUNTIME;
    /* 128 Ki elements: 512 KiB out, cache-resident; 16 Mi: 64 MiB, DRAM */
    if (bench_convert((size_t)1 << 17, (int)runs)) return MARLIN_EXIT_RUNTIME;
    if (bench_convert((size_t)1 << 24, few)) return MARLIN_EXIT_RUNTIME;
    if (bench_read_f32(dir, (size_t)1 << 24, few, keep))
        return MARLIN_EXIT_RUNTIME;
    return MARLIN_EXIT_OK;
}
