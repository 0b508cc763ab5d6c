/*
 * marlin-bench - our Marlin kernels against cuBLAS FP16 on real layer
 * shapes, in the form of the Marlin paper's figures (IST-DASLab/marlin
 * README: models, peak, sustained; marlin-format.md section 6).
 *
 * Method (design.md "Measuring performance"): CUDA events around CUDA-graph
 * replays of a batch of back-to-back launches, warm-up, median of many
 * samples; every launch of a batch uses the next of R copies of the
 * weights, with R copies > 3x the L2 size, so weights are never L2 hits
 * (--l2-resident, a diagnostic, keeps one copy: how fast with DRAM out of
 * the way);
 * random data (never zeros); cuBLAS FP16 (fp32 compute) on the same shapes
 * and the device-to-device copy bandwidth measured in the same run.
 * Fraction of the bandwidth limit = (int4 weights + fp16 scales + fp16 A +
 * fp16 C bytes) / copy bandwidth / measured time.
 *
 * Modes:
 *   models     per model and batch m: time summed over the layer types
 *              (fused qkv, o, fused gate+up, down), speedup, bw fraction
 *   peak       one large layer ideal for the card (k = 1024*SMs,
 *              n = 256*SMs, as IST's bench.py), m = 1..128
 *   sustained  the models sweep repeated for --seconds; speedup over time at
 *              whatever clocks the card runs (clocks are never changed)
 *   tune       every instantiated tile x pipeline depth x occupancy on the
 *              model shapes: which wins, against the automatic choice
 *
 * --sparse times the 2:4 kernel (kernels/marlin_kernels24.h) instead, on
 * random compressed weights with valid random metadata; its bytes are
 * B + meta + scales + A + C (0.39 bytes per weight at group 128). Every
 * mode; tune sweeps its tile configurations x blocks per SM.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_cli.h"
#include "marlin_common.h"
#include "marlin_kernels.h"

static const char *TOOL = "marlin-bench";

/* --sparse: every layer, launch and byte count below is the 2:4 kernel's. */
static int g_sparse;
/* --l2-resident (a diagnostic): one copy of every layer's weights, so
 * they stay in L2 where they fit; its times are no speedups. */
static int g_l2_resident;
/* --sparse: marlin_gemm24_opts.wgmma of the untuned launches (--pipeline
 * auto 0, mma 1, wgmma 2). */
static int g_wg24;
/* --pipeline: forced on every dense launch (0: the library's choice). */
static int g_pipeline;

/* ------------------------------------------------------------ layer tables */

typedef struct layer_shape {
    const char *name;
    int64_t k, n; /* in_features, out_features (fused where the model fuses) */
} layer_shape;

typedef struct model_def {
    const char *name;
    layer_shape layers[4];
} model_def;

/* Llama-2 7B/13B/70B and Llama-3 8B from their config.json (hidden,
 * intermediate, heads, kv heads): qkv = hidden + 2 * kv_heads * head_dim. */
static const model_def k_models[] = {
    {"llama2-7b",
     {{"qkv", 4096, 12288}, {"o", 4096, 4096}, {"gate_up", 4096, 22016}, {"down", 11008, 4096}}},
    {"llama2-13b",
     {{"qkv", 5120, 15360}, {"o", 5120, 5120}, {"gate_up", 5120, 27648}, {"down", 13824, 5120}}},
    {"llama3-8b",
     {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096}}},
    {"llama2-70b",
     {{"qkv", 8192, 10240}, {"o", 8192, 8192}, {"gate_up", 8192, 57344}, {"down", 28672, 8192}}},
};
#define N_MODELS ((int)(sizeof k_models / sizeof k_models[0]))

/* ----------------------------------------------------------------- options */

typedef enum {
    MODE_MODELS,
    MODE_PEAK,
    MODE_SUSTAINED,
    MODE_TUNE,
    MODE_TRACE,
    MODE_FLOOR
} bench_mode;

typedef struct options {
    bench_mode mode;
    int models[N_MODELS];
    int n_models;
    int64_t batch[32];
    int n_batch;
    int32_t group;
    int sparse;
    const char *csv;
    const char *plot;
    double seconds;
    int samples;
    int device;
    int verbose;
    int no_pdl;
    int pipeline; /* marlin_dense_pipeline forced on every dense launch */
    int pipeline_mma; /* --pipeline mma (--sparse only: the mma.sp kernels) */
    int have_tile; /* --tile given (trace mode) */
    marlin_dense_tile tile;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "Usage: %s [options]\n"
            "Times our Marlin FP16xINT4 kernel against cuBLAS FP16 on real layer shapes.\n"
            "\n"
            "  --mode MODE       models (default), peak, sustained, tune, trace or floor\n"
            "                    (trace: per-block timeline of the v2 dense kernel over\n"
            "                    back-to-back launches; --csv gets one row per block;\n"
            "                    floor, a DIAGNOSTIC: per layer, our kernel against a\n"
            "                    kernel that only moves the layer's bytes, launched the\n"
            "                    same way - what the launch shape alone costs)\n"
            "  --model LIST      comma list of llama2-7b, llama2-13b, llama3-8b, llama2-70b\n"
            "                    (default: all)\n"
            "  --batch LIST      batch sizes m (default 1,2,4,8,16,32,64,128)\n"
            "  --group G         group size 128 (default), 64, 32 or -1\n"
            "  --sparse          time the 2:4 sparse kernel instead of the dense one\n"
            "  --csv FILE        write every measurement as CSV\n"
            "  --plot FILE.png   plot speedup (gnuplot); without gnuplot, writes\n"
            "                    FILE.png.gp to render elsewhere\n"
            "  --seconds N       duration of --mode sustained (default 60)\n"
            "  --samples N       timed samples per measurement (default 30)\n"
            "  --device N        CUDA device (default 0)\n"
            "  --no-pdl          never use programmatic dependent launch (sm_90+: by\n"
            "                    default models mode times both, other modes use it)\n"
            "  --l2-resident     DIAGNOSTIC: one copy of the weights (not rotated), so\n"
            "                    they stay in L2 where they fit: how fast a kernel runs\n"
            "                    when DRAM is out of the way; never a valid speedup\n"
            "  --pipeline P      auto (default), cpasync, bulk, mbar, cpasync2 or wgmma:\n"
            "                    the dense kernel family (bulk, mbar: sm_90+; cpasync2:\n"
            "                    the v2 main loop; wgmma: the Hopper path, sm_90 only),\n"
            "                    each with its own tile heuristic; with --sparse: auto,\n"
            "                    mma (the mma.sp kernels) or wgmma (sm_90 only)\n"
            "  --tile T          trace mode: force tile MxNxK/sS/bB[/cC] (v2 shapes, e.g.\n"
            "                    16x128x256/s4/b1; /cC: the cluster path, C blocks)\n"
            "  -v, --verbose     per-layer lines\n"
            "  -h, --help        this help;  -V, --version  the version\n"
            "\n"
            "Exit codes: 0 ok, 1 runtime error (no GPU, CUDA error), 2 usage error.\n",
            TOOL);
}

static int usage_error(const char *fmt, const char *arg)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 0)))
#endif
    ;
static int usage_error(const char *fmt, const char *arg) {
    char msg[512];
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
    snprintf(msg, sizeof msg, fmt, arg);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    fprintf(stderr, "%s: %s\nTry '%s --help'\n", TOOL, msg, TOOL);
    return MARLIN_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, options *o, int *exit_code) {
    memset(o, 0, sizeof *o);
    o->mode = MODE_MODELS;
    o->group = 128;
    o->seconds = 60;
    o->samples = 30;
    const int64_t dflt_batch[] = {1, 2, 4, 8, 16, 32, 64, 128};
    memcpy(o->batch, dflt_batch, sizeof dflt_batch);
    o->n_batch = 8;
    for (int i = 0; i < N_MODELS; i++) o->models[i] = i;
    o->n_models = N_MODELS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        int64_t x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            *exit_code = MARLIN_EXIT_OK;
            return 1;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("%s %s\n", TOOL, MARLIN_VERSION_STRING);
            *exit_code = MARLIN_EXIT_OK;
            return 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--no-pdl")) {
            o->no_pdl = 1;
        } else if (!strcmp(a, "--l2-resident")) {
            g_l2_resident = 1;
        } else if (!strcmp(a, "--sparse")) {
            o->sparse = 1;
        } else if (!v) {
            *exit_code = usage_error("option '%s' needs a value or is unknown", a);
            return 1;
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "models")) o->mode = MODE_MODELS;
            else if (!strcmp(v, "peak")) o->mode = MODE_PEAK;
            else if (!strcmp(v, "sustained")) o->mode = MODE_SUSTAINED;
            else if (!strcmp(v, "tune")) o->mode = MODE_TUNE;
            else if (!strcmp(v, "floor")) o->mode = MODE_FLOOR;
            else if (!strcmp(v, "trace")) o->mode = MODE_TRACE;
            else {
                *exit_code = usage_error(
                    "unknown mode '%s' (models, peak, sustained, tune, trace, floor)", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "--model")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            o->n_models = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int found = -1;
                for (int m = 0; m < N_MODELS; m++)
                    if (!strcmp(tok, k_models[m].name)) found = m;
                if (found < 0 || o->n_models >= N_MODELS) {
                    *exit_code = usage_error("unknown or repeated model '%s' (llama2-7b, "
                                             "llama2-13b, llama3-8b, llama2-70b)",
                                             tok);
                    return 1;
                }
                o->models[o->n_models++] = found;
            }
            if (!o->n_models) {
                *exit_code = usage_error("empty model list '%s'", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "--batch")) {
            int n = marlin_cli_int_list(v, 1, 65536, o->batch, 32);
            if (n <= 0) {
                *exit_code = usage_error("bad batch list '%s' (integers 1..65536)", v);
                return 1;
            }
            o->n_batch = n;
            i++;
        } else if (!strcmp(a, "--group")) {
            if (!marlin_cli_int(v, -1, 128, &x) || (x != -1 && x != 32 && x != 64 && x != 128)) {
                *exit_code = usage_error("bad group size '%s' (128, 64, 32 or -1)", v);
                return 1;
            }
            o->group = (int32_t)x;
            i++;
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
            i++;
        } else if (!strcmp(a, "--plot")) {
            o->plot = v;
            i++;
        } else if (!strcmp(a, "--seconds")) {
            if (!marlin_cli_double(v, 1, 86400, &o->seconds)) {
                *exit_code = usage_error("bad duration '%s' (1..86400 seconds)", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "--samples")) {
            if (!marlin_cli_int(v, 3, 10000, &x)) {
                *exit_code = usage_error("bad sample count '%s' (3..10000)", v);
                return 1;
            }
            o->samples = (int)x;
            i++;
        } else if (!strcmp(a, "--pipeline")) {
            if (!strcmp(v, "auto"))
                o->pipeline = MARLIN_DENSE_PIPE_AUTO;
            else if (!strcmp(v, "cpasync"))
                o->pipeline = MARLIN_DENSE_PIPE_CPASYNC;
            else if (!strcmp(v, "bulk"))
                o->pipeline = MARLIN_DENSE_PIPE_BULK;
            else if (!strcmp(v, "mbar"))
                o->pipeline = MARLIN_DENSE_PIPE_MBAR;
            else if (!strcmp(v, "cpasync2"))
                o->pipeline = MARLIN_DENSE_PIPE_CPASYNC2;
            else if (!strcmp(v, "wgmma"))
                o->pipeline = MARLIN_DENSE_PIPE_WGMMA;
            else if (!strcmp(v, "mma"))
                o->pipeline_mma = 1;
            else {
                *exit_code = usage_error(
                    "unknown pipeline '%s' (auto, cpasync, bulk, mbar, cpasync2, wgmma, mma)", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "--tile")) {
            marlin_dense_tile t;
            int tm = 0, chars = 0;
            memset(&t, 0, sizeof t);
            int cl_chars = 0;
            if (sscanf(v, "%dx%dx%d/s%d/b%d%n", &tm, &t.n, &t.k, &t.stages, &t.blocks_per_sm,
                       &chars) != 5 ||
                (v[chars] != '\0' &&
                 (sscanf(v + chars, "/c%d%n", &t.cluster_k, &cl_chars) != 1 ||
                  v[chars + cl_chars] != '\0')) ||
                tm < 16 || tm > 64 || tm % 16) {
                *exit_code = usage_error("bad tile '%s' (MxNxK/sS/bB[/cC], e.g. 16x128x256/s4/b1 "
                                         "or 16x128x128/s3/b2/c8)",
                                         v);
                return 1;
            }
            t.m_blocks = tm / 16;
            t.pipeline = MARLIN_DENSE_PIPE_CPASYNC2;
            o->tile = t;
            o->have_tile = 1;
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!marlin_cli_int(v, 0, 1023, &x)) {
                *exit_code = usage_error("bad device '%s'", v);
                return 1;
            }
            o->device = (int)x;
            i++;
        } else {
            *exit_code = usage_error("unknown option '%s'", a);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ GPU buffers */

typedef struct bench_ctx {
    marlin_gpu_info info;
    void *stream;
    marlin_cublas *cublas;
    double copy_bw;  /* bytes/s, read + write */
    int pdl_ok;      /* sm_90+: programmatic dependent launch available */
    void *ws;        /* dense workspace */
    size_t ws_bytes;
    void *A, *C;     /* activations / outputs, sized for the largest case */
    size_t A_bytes, C_bytes;
    int64_t max_m, max_n, max_k;
    FILE *csv;
} bench_ctx;

/* One layer on the GPU: R rotated copies of the quantized weights and of
 * the fp16 weights for cuBLAS. */
typedef struct gpu_layer {
    int64_t k, n;
    int32_t group;
    int R4, R16;
    void **B, **s, **W16;
    void **meta; /* --sparse: 2:4 metadata per copy */
} gpu_layer;

static void gpu_layer_free(gpu_layer *L) {
    for (int i = 0; i < L->R4; i++) {
        marlin_gpu_free(L->B ? L->B[i] : NULL);
        marlin_gpu_free(L->s ? L->s[i] : NULL);
        marlin_gpu_free(L->meta ? L->meta[i] : NULL);
    }
    free(L->meta);
    for (int i = 0; i < L->R16; i++) marlin_gpu_free(L->W16 ? L->W16[i] : NULL);
    free(L->B);
    free(L->s);
    free(L->W16);
    memset(L, 0, sizeof *L);
}

static int rotations(size_t bytes, int64_t l2) {
    /* Enough copies that one pass over them is > 3x L2: a copy is evicted
     * long before it comes round again. At least 2. */
    if (g_l2_resident) return 1;
    int64_t r = (3 * l2 + (int64_t)bytes - 1) / (int64_t)bytes;
    if (r < 2) r = 2;
    if (r > 64) r = 64;
    return (int)r;
}

static marlin_status gpu_layer_make(bench_ctx *c, gpu_layer *L, int64_t k, int64_t n,
                                    int32_t group, int with_fp16, uint64_t seed,
                                    marlin_error *err) {
    marlin_status st = MARLIN_OK;
    memset(L, 0, sizeof *L);
    L->k = k;
    L->n = n;
    L->group = group;
    const int64_t G = group == -1 ? 1 : k / group;
    /* --sparse: B [k/32, 2n] I32 and meta [k/32, 2n] I16 */
    const size_t bB = (size_t)(g_sparse ? k * n / 4 : k * n / 2), bs = (size_t)(G * n * 2),
                 bW = (size_t)(k * n * 2), bM = (size_t)(g_sparse ? k * n / 8 : 0);
    L->R4 = rotations(bB + bM + bs, c->info.l2_bytes);
    L->R16 = with_fp16 ? rotations(bW, c->info.l2_bytes) : 0;
    L->B = calloc((size_t)L->R4, sizeof *L->B);
    L->s = calloc((size_t)L->R4, sizeof *L->s);
    L->W16 = calloc((size_t)(L->R16 ? L->R16 : 1), sizeof *L->W16);
    L->meta = g_sparse ? calloc((size_t)L->R4, sizeof *L->meta) : NULL;
    if (!L->B || !L->s || !L->W16 || (g_sparse && !L->meta)) {
        gpu_layer_free(L);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of host memory");
    }
    for (int i = 0; i < L->R4 && !st; i++) {
        st = marlin_gpu_alloc(&L->B[i], bB, err);
        if (!st) st = marlin_gpu_alloc(&L->s[i], bs, err);
        /* Random codes; scales uniform in [0.001, 0.02] (real INT4 range). */
        if (!st)
            st = marlin_gpu_fill(L->B[i], MARLIN_FILL_BITS, bB / 4, seed + 2 * (uint64_t)i, 0, 0,
                                 c->stream, err);
        if (!st)
            st = marlin_gpu_fill(L->s[i], MARLIN_FILL_F16_UNIFORM, bs / 2,
                                 seed + 2 * (uint64_t)i + 1, 0.001f, 0.02f, c->stream, err);
        if (!st && g_sparse) st = marlin_gpu_alloc(&L->meta[i], bM, err);
        if (!st && g_sparse)
            st = marlin_bench24_fill_meta(L->meta[i], bM, seed + 7919 * (uint64_t)i, c->stream,
                                          err);
    }
    for (int i = 0; i < L->R16 && !st; i++) {
        st = marlin_gpu_alloc(&L->W16[i], bW, err);
        if (!st)
            st = marlin_gpu_fill(L->W16[i], MARLIN_FILL_F16_UNIFORM, bW / 2, seed + 1000 + (uint64_t)i,
                                 -0.1f, 0.1f, c->stream, err);
    }
    if (!st) st = marlin_gpu_stream_sync(c->stream, err);
    if (st) {
        marlin_error_prefix(err, "layer k=%lld n=%lld (%d + %d weight copies)", (long long)k,
                            (long long)n, L->R4, L->R16);
        gpu_layer_free(L);
    }
    return st;
}

/* --------------------------------------------------------------- launches */

typedef struct dense_launch {
    bench_ctx *c;
    gpu_layer *L;
    int64_t m;
    const marlin_dense_tile *tile;
    int pdl;
    const marlin_gemm24_opts *sopts; /* --sparse: forced configuration */
    unsigned long long *trace;       /* trace mode: per-launch timeline buffers */
    size_t trace_stride;             /* 64-bit words per launch */
} dense_launch;

static marlin_status dense_fn(void *user, int64_t iter, void *stream, marlin_error *err) {
    dense_launch *d = user;
    const int r = (int)(iter % d->L->R4);
    if (g_sparse) {
        marlin_gemm24_opts o;
        memset(&o, 0, sizeof o);
        if (d->sopts)
            o = *d->sopts;
        else
            o.wgmma = g_wg24;
        o.pdl = d->pdl;
        return marlin_gemm24_ex(d->c->A, d->L->B[r], d->L->meta[r], d->L->s[r], d->c->C, d->m,
                                d->L->n, d->L->k, d->L->group, d->c->ws, d->c->ws_bytes, stream,
                                &o, err);
    }
    marlin_dense_args a;
    memset(&a, 0, sizeof a);
    a.A = d->c->A;
    a.B = d->L->B[r];
    a.s = d->L->s[r];
    a.C = d->c->C;
    a.m = d->m;
    a.n = d->L->n;
    a.k = d->L->k;
    a.group_size = d->L->group;
    a.workspace = d->c->ws;
    a.workspace_bytes = d->c->ws_bytes;
    a.stream = stream;
    a.tile = d->tile;
    a.pdl = d->pdl;
    a.trace = d->trace ? d->trace + (size_t)iter * d->trace_stride : NULL;
    return marlin_dense_gemm(&a, err);
}

static marlin_status cublas_fn(void *user, int64_t iter, void *stream, marlin_error *err) {
    dense_launch *d = user;
    (void)stream; /* the handle is bound to the bench stream */
    const int r = (int)(iter % d->L->R16);
    return marlin_cublas_gemm_f16(d->c->cublas, d->c->A, d->L->W16[r], d->c->C, d->m, d->L->n,
                                  d->L->k, err);
}

/* Batch = a multiple of the rotation count, at least 8 launches. */
static int batch_for(int R) { return R * ((8 + R - 1) / R); }

static marlin_status time_dense(bench_ctx *c, gpu_layer *L, int64_t m,
                                const marlin_dense_tile *tile, int pdl, int samples, double *us,
                                marlin_error *err) {
    marlin_dense_tile forced;
    if (!g_sparse && g_pipeline != MARLIN_DENSE_PIPE_AUTO) {
        if (tile) {
            forced = *tile;
        } else { /* the forced family's own heuristic */
            marlin_status s0 = marlin_dense_pick_tile_pipe(m, L->n, L->k, L->group,
                                                           c->info.sm_count,
                                                           c->info.smem_optin_bytes, g_pipeline,
                                                           &forced, err);
            if (s0) return s0;
        }
        if (forced.pipeline == MARLIN_DENSE_PIPE_AUTO) forced.pipeline = g_pipeline;
        tile = &forced;
    }
    dense_launch d = {c, L, m, tile, pdl, NULL, NULL, 0};
    marlin_gpu_timing t;
    marlin_status st = marlin_gpu_time(dense_fn, &d, c->stream, 3, batch_for(L->R4), samples, &t, err);
    if (!st) *us = t.median_us;
    return st;
}

static marlin_status time_cublas(bench_ctx *c, gpu_layer *L, int64_t m, int samples, double *us,
                                 marlin_error *err) {
    dense_launch d = {c, L, m, NULL, 0, NULL, NULL, 0};
    marlin_gpu_timing t;
    marlin_status st =
        marlin_gpu_time(cublas_fn, &d, c->stream, 3, batch_for(L->R16), samples, &t, err);
    if (!st) *us = t.median_us;
    return st;
}

/* The tile an automatic launch (no forced tile) runs under the forced
 * pipeline family g_pipeline: the family's heuristic, and with AUTO on
 * sm_90+ the cluster path's choice on top, as marlin_dense_gemm does. */
static marlin_status shown_tile(const bench_ctx *c, int64_t m, int64_t n, int64_t k,
                                int32_t group, marlin_dense_tile *t, marlin_error *err) {
    marlin_status st = marlin_dense_pick_tile_pipe(m, n, k, group, c->info.sm_count,
                                                   c->info.smem_optin_bytes, g_pipeline, t, err);
    if (!st && g_pipeline == MARLIN_DENSE_PIPE_AUTO && c->info.cc_major >= 9)
        (void)marlin_dense_pick_cluster(m, n, k, group, c->info.sm_count,
                                        c->info.smem_optin_bytes, t);
    if (!st && g_pipeline == MARLIN_DENSE_PIPE_AUTO && c->info.cc_major == 9 &&
        marlin_dense_wgmma_built())
        (void)marlin_dense_pick_wgmma(m, n, k, group, c->info.sm_count,
                                      c->info.smem_optin_bytes, t);
    return st;
}

/* Bytes the quantized GEMM must move at least: int4 weights, fp16 scales,
 * fp16 A and C. */
static double min_bytes(int64_t m, int64_t k, int64_t n, int32_t group) {
    const int64_t G = group == -1 ? 1 : k / group;
    if (g_sparse) /* 2:4: compressed values k*n/4 + metadata k*n/8 */
        return (double)k * n / 4 + (double)k * n / 8 + 2.0 * G * n + 2.0 * m * k + 2.0 * m * n;
    return (double)k * n / 2 + 2.0 * G * n + 2.0 * m * k + 2.0 * m * n;
}

/* ------------------------------------------------------------- modes */

static void csv_header(bench_ctx *c) {
    if (c->csv)
        fprintf(c->csv, "mode,elapsed_s,model,layer,k,n,m,group,tile,pdl,kernel_us,cublas_us,speedup,"
                        "min_bytes,bw_limit_us,bw_fraction,copy_gbps,gpu\n");
}

static void csv_row(bench_ctx *c, const char *mode, double elapsed, const char *model,
                    const char *layer, int64_t k, int64_t n, int64_t m, int32_t group,
                    const char *tile, int pdl, double kus, double cus, double bytes) {
    if (!c->csv) return;
    const double lim_us = bytes / c->copy_bw * 1e6;
    fprintf(c->csv,
            "%s,%.3f,%s,%s,%lld,%lld,%lld,%d,%s,%d,%.3f,%.3f,%.4f,%.0f,%.3f,%.4f,%.1f,\"%s\"\n",
            mode, elapsed, model, layer, (long long)k, (long long)n, (long long)m, group, tile, pdl,
            kus, cus, cus > 0 ? cus / kus : 0.0, bytes, lim_us, lim_us / kus, c->copy_bw / 1e9,
            c->info.name);
}

/* --sparse: which 2:4 kernel family the (untuned) launches of m rows run;
 * the launcher picks the configuration itself */
static void sparse_tile_str(const bench_ctx *c, int64_t m, int64_t n, int64_t k, int32_t group,
                            char *buf, size_t cap) {
    const int wg = g_wg24 == 2 || (g_wg24 == 0 && marlin_gemm24_wgmma_built() &&
                                    marlin_gemm24_pick_wgmma(m, n, k, group, c->info.cc_major,
                                                             c->info.cc_minor));
    snprintf(buf, cap, "2:4-%s", wg ? "wgmma" : "mma");
}

static void tile_str(const marlin_dense_tile *t, char *buf, size_t cap) {
    const int pipe = t->pipeline ? t->pipeline : g_pipeline;
    char cl[16] = "";
    if (t->cluster_k > 1) snprintf(cl, sizeof cl, "/c%d", t->cluster_k);
    if (pipe == MARLIN_DENSE_PIPE_WGMMA && t->k_splits > 0)
        snprintf(cl, sizeof cl, "/k%d", t->k_splits);
    snprintf(buf, cap, "%dx%dx%d/s%d/b%d%s/%s", 16 * t->m_blocks, t->n, t->k, t->stages,
             t->blocks_per_sm, cl,
             pipe == MARLIN_DENSE_PIPE_BULK       ? "bulk"
             : pipe == MARLIN_DENSE_PIPE_MBAR     ? "mbar"
             : pipe == MARLIN_DENSE_PIPE_CPASYNC  ? "cpasync"
             : pipe == MARLIN_DENSE_PIPE_CPASYNC2 ? "cpasync2"
             : pipe == MARLIN_DENSE_PIPE_WGMMA    ? "wgmma"
                                                  : "auto");
}

/* Result of one model at one batch size. */
typedef struct model_result {
    double kus, kus_pdl, cus, bytes; /* kus_pdl: with programmatic dependent launch */
} model_result;

static marlin_status run_model(bench_ctx *c, const options *o, const model_def *md,
                               const int64_t *batch, int n_batch, model_result *res,
                               const char *mode, double elapsed, int samples, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    for (int b = 0; b < n_batch; b++) res[b] = (model_result){0, 0, 0, 0};
    for (int li = 0; li < 4 && !st; li++) {
        const layer_shape *ls = &md->layers[li];
        gpu_layer L;
        st = gpu_layer_make(c, &L, ls->k, ls->n, o->group, 1, 0x5eed0000u + (uint64_t)li, err);
        if (st) break;
        for (int b = 0; b < n_batch && !st; b++) {
            double kus = 0, kpdl = 0, cus = 0;
            marlin_dense_tile t;
            char ts[64];
            memset(&t, 0, sizeof t);
            if (!g_sparse) st = shown_tile(c, batch[b], ls->n, ls->k, o->group, &t, err);
            if (!st) st = time_dense(c, &L, batch[b], NULL, 0, samples, &kus, err);
            if (!st && c->pdl_ok) st = time_dense(c, &L, batch[b], NULL, 1, samples, &kpdl, err);
            if (!st) st = time_cublas(c, &L, batch[b], samples, &cus, err);
            if (st) break;
            if (!c->pdl_ok) kpdl = kus;
            const double bytes = min_bytes(batch[b], ls->k, ls->n, o->group);
            if (g_sparse)
                sparse_tile_str(c, batch[b], ls->n, ls->k, o->group, ts, sizeof ts);
            else
                tile_str(&t, ts, sizeof ts);
            csv_row(c, mode, elapsed, md->name, ls->name, ls->k, ls->n, batch[b], o->group, ts, 0,
                    kus, cus, bytes);
            if (c->pdl_ok)
                csv_row(c, mode, elapsed, md->name, ls->name, ls->k, ls->n, batch[b], o->group, ts,
                        1, kpdl, cus, bytes);
            if (o->verbose)
                printf("  %-10s %-8s k %6lld n %6lld m %4lld  marlin %8.2f us (pdl %8.2f)  cublas "
                       "%8.2f us  %5.2fx (%5.2fx)  bw %3.0f%% (%3.0f%%)  %s\n",
                       md->name, ls->name, (long long)ls->k, (long long)ls->n, (long long)batch[b],
                       kus, kpdl, cus, cus / kus, cus / kpdl,
                       100.0 * bytes / c->copy_bw * 1e6 / kus,
                       100.0 * bytes / c->copy_bw * 1e6 / kpdl, ts);
            res[b].kus += kus;
            res[b].kus_pdl += kpdl;
            res[b].cus += cus;
            res[b].bytes += bytes;
        }
        gpu_layer_free(&L);
    }
    return st;
}

static void print_model_row(bench_ctx *c, const char *model, int64_t m, const model_result *r) {
    printf("%-10s m %4lld  marlin %8.2f us, with PDL %8.2f us  cublas %8.2f us  speedup %5.2fx, "
           "with PDL %5.2fx  bw limit %5.1f%%, with PDL %5.1f%%\n",
           model, (long long)m, r->kus, r->kus_pdl, r->cus, r->cus / r->kus, r->cus / r->kus_pdl,
           100.0 * r->bytes / c->copy_bw * 1e6 / r->kus,
           100.0 * r->bytes / c->copy_bw * 1e6 / r->kus_pdl);
}

/* gnuplot script with the data inline (a datablock), so one file renders
 * anywhere; run here when gnuplot exists. */
static FILE *plot_open(const options *o, char *gp_path, size_t cap) {
    snprintf(gp_path, cap, "%s.gp", o->plot);
    FILE *f = fopen(gp_path, "w");
    if (!f) fprintf(stderr, "%s: %s: cannot write the plot script\n", TOOL, gp_path);
    return f;
}

static void plot_finish(const options *o, const char *gp_path) {
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "gnuplot '%s'", gp_path);
        if (system(cmd) == 0) {
            fprintf(stderr, "%s: plot written to %s\n", TOOL, o->plot);
            return;
        }
        fprintf(stderr, "%s: gnuplot failed on %s\n", TOOL, gp_path);
        return;
    }
    fprintf(stderr, "%s: gnuplot not found; wrote %s (render with: gnuplot %s)\n", TOOL, gp_path,
            gp_path);
}

static marlin_status mode_models(bench_ctx *c, const options *o, marlin_error *err) {
    model_result res[N_MODELS][32];
    marlin_status st = MARLIN_OK;
    printf("# models: group %d, time summed over qkv, o, gate_up, down; copy bandwidth %.0f GB/s\n",
           o->group, c->copy_bw / 1e9);
    for (int mi = 0; mi < o->n_models && !st; mi++) {
        const model_def *md = &k_models[o->models[mi]];
        st = run_model(c, o, md, o->batch, o->n_batch, res[mi], "models", 0, o->samples, err);
        for (int b = 0; b < o->n_batch && !st; b++) {
            print_model_row(c, md->name, o->batch[b], &res[mi][b]);
            csv_row(c, "models", 0, md->name, "total", 0, 0, o->batch[b], o->group, "auto", 0,
                    res[mi][b].kus, res[mi][b].cus, res[mi][b].bytes);
            if (c->pdl_ok)
                csv_row(c, "models", 0, md->name, "total", 0, 0, o->batch[b], o->group, "auto", 1,
                        res[mi][b].kus_pdl, res[mi][b].cus, res[mi][b].bytes);
        }
    }
    if (st || !o->plot) return st;
    char gp[4096];
    FILE *f = plot_open(o, gp, sizeof gp);
    if (!f) return MARLIN_OK;
    for (int mi = 0; mi < o->n_models; mi++) {
        fprintf(f, "$m%d << EOD\n", mi);
        for (int b = 0; b < o->n_batch; b++)
            fprintf(f, "%lld %.4f %.4f %.4f\n", (long long)o->batch[b],
                    res[mi][b].cus / res[mi][b].kus, res[mi][b].cus / res[mi][b].kus_pdl,
                    res[mi][b].bytes / c->copy_bw * 1e6 / res[mi][b].kus_pdl);
        fprintf(f, "EOD\n");
    }
    fprintf(f,
            "set terminal pngcairo size 900,560 font ',11'\nset output '%s'\n"
            "set title \"%s (ours) vs cuBLAS FP16, layer time summed per model, group %d\\n%s\"\n"
            "set xlabel 'batch size m'\nset ylabel 'speedup over cuBLAS FP16'\n"
            "set logscale x 2\nset grid\nset key top right\nset yrange [0:*]\n"
            "plot ",
            o->plot, g_sparse ? "Sparse-Marlin 2:4 INT4" : "Marlin INT4", o->group,
            c->info.name);
    for (int mi = 0; mi < o->n_models; mi++) {
        fprintf(f, "%s$m%d using 1:3 with linespoints lw 2 lc %d title '%s%s'", mi ? ", " : "", mi,
                mi + 1, k_models[o->models[mi]].name, c->pdl_ok ? " (PDL)" : "");
        if (c->pdl_ok)
            fprintf(f, ", $m%d using 1:2 with linespoints lw 1 dt 2 lc %d title '%s (no PDL)'", mi,
                    mi + 1, k_models[o->models[mi]].name);
    }
    /* bytes-only ideal at group 128: 16 / (4 + 16/128) dense (MF 3),
     * 16 / (2 + 1 + 0.125) for 2:4 (MF 4.8) */
    if (g_sparse)
        fprintf(f, ", 5.12 with lines dt 2 lc 'gray' title 'ideal 5.12x (2:4, g128)'\n");
    else
        fprintf(f, ", 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'\n");
    fclose(f);
    plot_finish(o, gp);
    return MARLIN_OK;
}

static marlin_status mode_peak(bench_ctx *c, const options *o, marlin_error *err) {
    const int64_t k = 1024 * (int64_t)c->info.sm_count, n = 256 * (int64_t)c->info.sm_count;
    gpu_layer L;
    double kus[32], cus[32], bytes[32];
    printf("# peak: one layer k %lld x n %lld (1024*SMs x 256*SMs), group %d\n", (long long)k,
           (long long)n, o->group);
    marlin_status st = gpu_layer_make(c, &L, k, n, o->group, 1, 0x9ea4u, err);
    if (st) return st;
    for (int b = 0; b < o->n_batch && !st; b++) {
        marlin_dense_tile t;
        char ts[64];
        memset(&t, 0, sizeof t);
        if (!g_sparse) st = shown_tile(c, o->batch[b], n, k, o->group, &t, err);
        if (!st)
            st = time_dense(c, &L, o->batch[b], NULL, c->pdl_ok, o->samples / 3 + 3, &kus[b], err);
        if (!st) st = time_cublas(c, &L, o->batch[b], o->samples / 3 + 3, &cus[b], err);
        if (st) break;
        bytes[b] = min_bytes(o->batch[b], k, n, o->group);
        if (g_sparse)
            sparse_tile_str(c, o->batch[b], n, k, o->group, ts, sizeof ts);
        else
            tile_str(&t, ts, sizeof ts);
        printf("peak m %4lld  marlin %10.2f us  cublas %10.2f us  speedup %5.2fx  bw limit %5.1f%%  "
               "%s\n",
               (long long)o->batch[b], kus[b], cus[b], cus[b] / kus[b],
               100.0 * bytes[b] / c->copy_bw * 1e6 / kus[b], ts);
        csv_row(c, "peak", 0, "ideal", "ideal", k, n, o->batch[b], o->group, ts, c->pdl_ok, kus[b],
                cus[b], bytes[b]);
    }
    gpu_layer_free(&L);
    if (st || !o->plot) return st;
    char gp[4096];
    FILE *f = plot_open(o, gp, sizeof gp);
    if (!f) return MARLIN_OK;
    fprintf(f, "$d << EOD\n");
    for (int b = 0; b < o->n_batch; b++)
        fprintf(f, "%lld %.4f %.4f\n", (long long)o->batch[b], cus[b] / kus[b],
                bytes[b] / c->copy_bw * 1e6 / kus[b]);
    fprintf(f,
            "EOD\nset terminal pngcairo size 900,560 font ',11'\nset output '%s'\n"
            "set title \"Peak: k %lld x n %lld, group %d\\n%s\"\nset xlabel 'batch size m'\n"
            "set ylabel 'speedup over cuBLAS FP16'\nset y2label 'fraction of bandwidth limit'\n"
            "set logscale x 2\nset grid\nset yrange [0:*]\nset y2range [0:1.05]\nset y2tics\n"
            "plot $d using 1:2 with linespoints lw 2 title 'speedup', "
            "$d using 1:3 axes x1y2 with linespoints lw 2 title 'bandwidth fraction', "
            "3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x'\n",
            o->plot, (long long)k, (long long)n, o->group, c->info.name);
    fclose(f);
    plot_finish(o, gp);
    return MARLIN_OK;
}

static marlin_status mode_sustained(bench_ctx *c, const options *o, marlin_error *err) {
    /* Keep every layer resident (allocating between sweeps would idle the
     * card): one sweep = all layers of the chosen models x batches. */
    const int max_points = 4096;
    double *tpts = calloc((size_t)max_points, sizeof *tpts);
    double *spd = calloc((size_t)max_points * 32, sizeof *spd);
    marlin_status st = MARLIN_OK;
    int npts = 0;
    if (!tpts || !spd) {
        free(tpts);
        free(spd);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of host memory");
    }
    printf("# sustained: %s x %d batch sizes for %.0f s, group %d\n",
           k_models[o->models[0]].name, o->n_batch, o->seconds, o->group);
    const model_def *md = &k_models[o->models[0]];
    gpu_layer L[4];
    memset(L, 0, sizeof L);
    for (int li = 0; li < 4 && !st; li++)
        st = gpu_layer_make(c, &L[li], md->layers[li].k, md->layers[li].n, o->group, 1,
                            0x5005u + (uint64_t)li, err);
    const double t0 = marlin_now();
    while (!st && marlin_now() - t0 < o->seconds && npts < max_points) {
        const double el = marlin_now() - t0;
        for (int b = 0; b < o->n_batch && !st; b++) {
            double kt = 0, ct = 0, by = 0;
            for (int li = 0; li < 4 && !st; li++) {
                double kus = 0, cus = 0;
                st = time_dense(c, &L[li], o->batch[b], NULL, c->pdl_ok, 5, &kus, err);
                if (!st) st = time_cublas(c, &L[li], o->batch[b], 5, &cus, err);
                kt += kus;
                ct += cus;
                by += min_bytes(o->batch[b], md->layers[li].k, md->layers[li].n, o->group);
            }
            if (st) break;
            spd[npts * 32 + b] = ct / kt;
            csv_row(c, "sustained", el, md->name, "total", 0, 0, o->batch[b], o->group, "auto",
                    c->pdl_ok, kt, ct, by);
        }
        if (st) break;
        tpts[npts++] = el;
        printf("t %6.1f s:", el);
        for (int b = 0; b < o->n_batch; b++)
            printf("  m%lld %.2fx", (long long)o->batch[b], spd[(npts - 1) * 32 + b]);
        printf("\n");
        fflush(stdout);
    }
    for (int li = 0; li < 4; li++) gpu_layer_free(&L[li]);
    if (!st && o->plot) {
        char gp[4096];
        FILE *f = plot_open(o, gp, sizeof gp);
        if (f) {
            fprintf(f, "$d << EOD\n");
            for (int i = 0; i < npts; i++) {
                fprintf(f, "%.2f", tpts[i]);
                for (int b = 0; b < o->n_batch; b++) fprintf(f, " %.4f", spd[i * 32 + b]);
                fprintf(f, "\n");
            }
            fprintf(f,
                    "EOD\nset terminal pngcairo size 900,560 font ',11'\nset output '%s'\n"
                    "set title \"Sustained: %s, speedup over cuBLAS FP16 at the card's own "
                    "clocks\\n%s\"\nset xlabel 'time (s)'\nset ylabel 'speedup'\nset grid\n"
                    "set yrange [0:*]\nset key outside right\nplot ",
                    o->plot, md->name, c->info.name);
            for (int b = 0; b < o->n_batch; b++)
                fprintf(f, "%s$d using 1:%d with lines lw 2 title 'm=%lld'", b ? ", " : "", b + 2,
                        (long long)o->batch[b]);
            fprintf(f, "\n");
            fclose(f);
            plot_finish(o, gp);
        }
    }
    free(tpts);
    free(spd);
    return st;
}

/* Every instantiated tile of the forced family (--pipeline cpasync2: the v2
 * shapes x {2, 3, 4, max} stages; otherwise the original shapes x {3, 4, 6,
 * max}) x {1, 2} blocks/SM per model
 * layer and batch; prints the winner and the automatic choice. */
/* The last lines of both tune modes: per batch size, the automatic choice
 * and the best configuration summed over the swept layers. */
static void print_tune_totals(const options *o, const double *auto_sum, const double *best_sum) {
    for (int b = 0; b < o->n_batch; b++)
        printf("tune total m %4lld: auto %9.2f us, best %9.2f us (%.1f%% left on the table)\n",
               (long long)o->batch[b], auto_sum[b], best_sum[b],
               100.0 * (auto_sum[b] - best_sum[b]) / auto_sum[b]);
}

/* One forced configuration of --mode tune: timed with PDL where available,
 * a CSV row, and the best so far updated. A configuration that does not
 * fit (MARLIN_ERR_INVALID_ARG) is skipped. */
static marlin_status tune_one(bench_ctx *c, const options *o, const model_def *md,
                              const layer_shape *ls, gpu_layer *L, int64_t m,
                              const marlin_dense_tile *t, double *best, char *best_s,
                              size_t best_cap, marlin_error *err) {
    double us = 0;
    char ts[64];
    marlin_error e2 = {0};
    marlin_status s2 = time_dense(c, L, m, t, c->pdl_ok, o->samples / 2 + 3, &us, &e2);
    if (s2 == MARLIN_ERR_INVALID_ARG) return MARLIN_OK; /* does not fit */
    if (s2) {
        *err = e2;
        return s2;
    }
    tile_str(t, ts, sizeof ts);
    csv_row(c, "tune", 0, md->name, ls->name, ls->k, ls->n, m, o->group, ts, c->pdl_ok, us, 0,
            min_bytes(m, ls->k, ls->n, o->group));
    if (us < *best) {
        *best = us;
        snprintf(best_s, best_cap, "%s", ts);
    }
    return MARLIN_OK;
}

static marlin_status mode_tune(bench_ctx *c, const options *o, marlin_error *err) {
    marlin_dense_tile tiles[64];
    const int nt = marlin_dense_tiles(tiles, 64);
    const int stages[] = {3, 4, 6, 0};
    /* v2 stages are up to 2x larger: 2 stages is what fits two 256 x 256
     * decode blocks per SM */
    const int stages_v2[] = {2, 3, 4, 0};
    const int v2 = (g_pipeline == MARLIN_DENSE_PIPE_CPASYNC2);
    const int wg = (g_pipeline == MARLIN_DENSE_PIPE_WGMMA);
    marlin_status st = MARLIN_OK;
    double auto_sum[32] = {0}, best_sum[32] = {0};
    printf("# tune: group %d, %s tiles\n", o->group,
           wg ? "wgmma" : v2 ? "cpasync2" : "original");
    for (int mi = 0; mi < o->n_models && !st; mi++) {
        const model_def *md = &k_models[o->models[mi]];
        for (int li = 0; li < 4 && !st; li++) {
            const layer_shape *ls = &md->layers[li];
            gpu_layer L;
            st = gpu_layer_make(c, &L, ls->k, ls->n, o->group, 0, 0x7u + (uint64_t)li, err);
            for (int b = 0; b < o->n_batch && !st; b++) {
                const int64_t m = o->batch[b];
                const int mb = m <= 64 ? (int)((m + 15) / 16) : 4;
                double auto_us = 0, best = 1e30;
                char best_s[64] = "", auto_s[64];
                marlin_dense_tile at;
                st = marlin_dense_pick_tile_pipe(m, ls->n, ls->k, o->group, c->info.sm_count,
                                                 c->info.smem_optin_bytes, g_pipeline, &at, err);
                if (!st)
                    st = time_dense(c, &L, m, NULL, c->pdl_ok, o->samples / 2 + 3, &auto_us, err);
                if (st) break;
                tile_str(&at, auto_s, sizeof auto_s);
                csv_row(c, "tune", 0, md->name, ls->name, ls->k, ls->n, m, o->group, "auto",
                        c->pdl_ok, auto_us, 0, min_bytes(m, ls->k, ls->n, o->group));
                /* wgmma: batch widths of at most two row tiles x stages x
                 * k pieces (0 = its rule) */
                const int wnb[] = {32, 64, 128}, wst[] = {4, 6, 8},
                          wsp[] = {0, 1, 2, 3, 4, 6, 8, 12, 16};
                for (int ni = 0; ni < 3 && wg && !st; ni++) {
                    const int nbi = wnb[ni];
                    if (2 * nbi < m && nbi != 128) continue;
                    for (int si = 0; si < 3 && !st; si++)
                        for (int ki = 0; ki < 9 && !st; ki++) {
                            marlin_dense_tile t;
                            memset(&t, 0, sizeof t);
                            t.m_blocks = nbi / 16;
                            t.n = 256;
                            t.k = 64;
                            t.stages = wst[si];
                            t.blocks_per_sm = nbi <= 64 ? 2 : 1; /* (the kernel's) */
                            t.pipeline = MARLIN_DENSE_PIPE_WGMMA;
                            t.k_splits = wsp[ki];
                            st = tune_one(c, o, md, ls, &L, m, &t, &best, best_s, sizeof best_s,
                                          err);
                        }
                }
                for (int ti = 0; ti < nt && !st && !wg; ti++) {
                    /* 16-row tiles (two row chunks) are swept up to 32 rows too */
                    const int tmb = tiles[ti].m_blocks;
                    if ((tmb != mb && !(tmb == 1 && m <= 32)) || ls->n % tiles[ti].n ||
                        ls->k % tiles[ti].k)
                        continue;
                    /* the forced family's shapes: CPASYNC2 ones for cpasync2,
                     * the original ones otherwise */
                    if ((tiles[ti].pipeline == MARLIN_DENSE_PIPE_CPASYNC2) != v2) continue;
                    for (int si = 0; si < 4 && !st; si++)
                        for (int bps = 1; bps <= (tmb == 1 ? 2 : 1) && !st; bps++) {
                            marlin_dense_tile t = tiles[ti];
                            t.stages = v2 ? stages_v2[si] : stages[si];
                            t.blocks_per_sm = bps;
                            st = tune_one(c, o, md, ls, &L, m, &t, &best, best_s, sizeof best_s,
                                          err);
                        }
                    /* the cluster path (sm_90, 16-row v2 tiles): cluster
                     * sizes x stages; the grid is one cluster per slice */
                    const int csz[] = {2, 3, 4, 5, 6, 8};
                    for (int ci = 0; ci < 6 && !st && v2 && tmb == 1 && c->info.cc_major >= 9; ci++)
                        for (int si = 0; si < 3 && !st; si++) {
                            marlin_dense_tile t = tiles[ti];
                            t.stages = stages_v2[si];
                            t.blocks_per_sm = 2;
                            t.cluster_k = csz[ci];
                            st = tune_one(c, o, md, ls, &L, m, &t, &best, best_s, sizeof best_s,
                                          err);
                        }
                }
                if (st) break;
                auto_sum[b] += auto_us;
                best_sum[b] += best;
                printf("%-10s %-8s m %4lld  auto %8.2f us (%s)  best %8.2f us (%s)%s\n", md->name,
                       ls->name, (long long)m, auto_us, auto_s, best, best_s,
                       best < 0.97 * auto_us ? "  <-- heuristic loses >3%" : "");
                fflush(stdout);
            }
            gpu_layer_free(&L);
        }
    }
    if (!st) print_tune_totals(o, auto_sum, best_sum);
    return st;
}

/* --mode trace: the v2 dense kernel's per-block timeline (marlin_dense_args
 * .trace) over one graph replay of back-to-back launches, as timed in
 * models mode (PDL where available). Per layer it prints medians over the
 * launches after the first of: period (last exit to last exit), how long
 * blocks were resident before the previous kernel released them (lead), the
 * release after the previous kernel's last block exit (gap), the first
 * stage ready after the release, compute done, and the tail after the last
 * compute (segment ends, fix-up, exit). Times in microseconds. */
static int cmp_dbl(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static marlin_status mode_trace(bench_ctx *c, const options *o, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    if (g_sparse) return marlin_fail(err, MARLIN_ERR_UNSUPPORTED, "trace: dense kernel only");
    if (!marlin_dense_trace_built())
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "trace: this build has no kernel tracing (configure with "
                           "-DMARLIN_TRACE=ON; it is off by default because it slows the "
                           "kernels)");
    if (c->csv)
        fprintf(c->csv, "model,layer,k,n,m,tile,pdl,launch,block,smid,entry_ns,wait_ns,first_ns,"
                        "lastseg_ns,exit_ns,units,tree_ns,xblock_ns,stored_ns\n");
    printf("# trace: medians over launches 2..R (us): period | lead = resident before release | "
           "gap = release after prev last exit | first stage ready | compute done | tail after "
           "last compute | exit spread\n");
    for (int mi = 0; mi < o->n_models && !st; mi++) {
        const model_def *md = &k_models[o->models[mi]];
        for (int li = 0; li < 4 && !st; li++) {
            const layer_shape *ls = &md->layers[li];
            gpu_layer L;
            st = gpu_layer_make(c, &L, ls->k, ls->n, o->group, 0, 0x7aceu + (uint64_t)li, err);
            for (int b = 0; b < o->n_batch && !st; b++) {
                const int64_t m = o->batch[b];
                marlin_dense_tile t;
                if (o->have_tile) {
                    t = o->tile;
                } else {
                    st = shown_tile(c, m, ls->n, ls->k, o->group, &t, err);
                    if (st) break;
                }
                const int R = batch_for(L.R4);
                /* blocks of one launch: 2 per SM at most on the stream-K
                 * path, one cluster per slice on the cluster path */
                int64_t max_blocks = 2 * (int64_t)c->info.sm_count;
                if (t.cluster_k > 1) {
                    const int64_t mc = (m + 16 * t.m_blocks - 1) / (16 * t.m_blocks);
                    const int64_t nb = ls->n / t.n * mc * t.cluster_k;
                    if (nb > max_blocks) max_blocks = nb;
                }
                const size_t stride = (size_t)max_blocks * MARLIN_DENSE_TRACE_SLOTS;
                unsigned long long *dbuf = NULL, *hbuf = NULL;
                const size_t words = stride * (size_t)R;
                st = marlin_gpu_alloc((void **)&dbuf, words * 8, err);
                hbuf = calloc(words, 8);
                if (!st && !hbuf) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of host memory");
                if (!st) st = marlin_gpu_memset(dbuf, 0, words * 8, err);
                dense_launch d = {c, &L, m, &t, c->pdl_ok, NULL, dbuf, stride};
                marlin_gpu_timing tm;
                if (!st) st = marlin_gpu_time(dense_fn, &d, c->stream, 1, R, 3, &tm, err);
                if (!st) st = marlin_gpu_stream_sync(c->stream, err);
                if (!st) st = marlin_gpu_download(hbuf, dbuf, words * 8, err);
                if (!st) {
                    char ts[64];
                    tile_str(&t, ts, sizeof ts);
                    double *v[7], *ph[4];
                    const size_t cap = (size_t)R * (size_t)max_blocks;
                    int nph[4] = {0, 0, 0, 0};
                    for (int q = 0; q < 7; q++) v[q] = calloc((size_t)R, sizeof(double));
                    for (int q = 0; q < 4; q++) ph[q] = calloc(cap, sizeof(double));
                    unsigned long long t0 = ~0ull;
                    for (size_t w = 0; w < words; w += MARLIN_DENSE_TRACE_SLOTS)
                        if (hbuf[w + 1] && hbuf[w + 1] < t0) t0 = hbuf[w + 1];
                    double prev_x1 = 0;
                    int nv = 0;
                    for (int r = 0; r < R && v[6]; r++) {
                        double e0 = 1e30, w0 = 1e30, f1 = 0, l1 = 0, x0 = 1e30, x1 = 0;
                        int nb = 0;
                        for (int64_t bl = 0; bl < max_blocks; bl++) {
                            const unsigned long long *q =
                                hbuf + stride * (size_t)r + (size_t)bl * MARLIN_DENSE_TRACE_SLOTS;
                            if (!q[1] || !q[5]) continue;
                            nb++;
                            const double en = (double)(q[1] - t0) / 1e3,
                                         wt = (double)(q[2] - t0) / 1e3,
                                         fi = (double)(q[3] - t0) / 1e3,
                                         ls4 = (double)(q[4] - t0) / 1e3,
                                         ex = (double)(q[5] - t0) / 1e3;
                            if (c->csv)
                                fprintf(c->csv,
                                        "%s,%s,%lld,%lld,%lld,%s,%d,%d,%d,%llu,%.0f,%.0f,%.0f,%.0f,"
                                        "%.0f,%llu,%.0f,%.0f,%.0f\n",
                                        md->name, ls->name, (long long)ls->k, (long long)ls->n,
                                        (long long)m, ts, c->pdl_ok, r, (int)bl, q[0], en * 1e3,
                                        wt * 1e3, fi * 1e3, ls4 * 1e3, ex * 1e3, q[6],
                                        q[7] ? (double)(q[7] - t0) : 0.0,
                                        q[8] ? (double)(q[8] - t0) : 0.0,
                                        q[9] ? (double)(q[9] - t0) : 0.0);
                            /* phases of the block's last segment end: tree,
                             * cross-block step (when it happened after the
                             * tree: a split slice or a cluster), stores and
                             * reduction, final wait and exit */
                            if (r > 0 && q[7] >= q[4] && q[9] >= q[7] && ph[0]) {
                                const int xb = q[8] > q[7] && q[8] <= q[9];
                                ph[0][nph[0]++] = (double)(q[7] - q[4]) / 1e3;
                                if (xb) ph[1][nph[1]++] = (double)(q[8] - q[7]) / 1e3;
                                ph[2][nph[2]++] = (double)(q[9] - (xb ? q[8] : q[7])) / 1e3;
                                ph[3][nph[3]++] = (double)(q[5] - q[9]) / 1e3;
                            }
                            if (en < e0) e0 = en;
                            if (wt < w0) w0 = wt;
                            if (fi > f1) f1 = fi;
                            if (ls4 > l1) l1 = ls4;
                            if (ex < x0) x0 = ex;
                            if (ex > x1) x1 = ex;
                        }
                        if (nb && r > 0) {
                            v[0][nv] = x1 - prev_x1;
                            v[1][nv] = w0 - e0;
                            v[2][nv] = w0 - prev_x1;
                            v[3][nv] = f1 - w0;
                            v[4][nv] = l1 - w0;
                            v[5][nv] = x1 - l1;
                            v[6][nv] = x1 - x0;
                            nv++;
                        }
                        if (nb) prev_x1 = x1;
                    }
                    if (v[6] && nv)
                        printf("%-10s %-8s m %4lld %-22s timed %7.2f | period %6.2f lead %6.2f gap "
                               "%5.2f first %5.2f compute %6.2f tail %5.2f spread %5.2f\n",
                               md->name, ls->name, (long long)m, ts, tm.median_us,
                               median_of(v[0], nv), median_of(v[1], nv), median_of(v[2], nv),
                               median_of(v[3], nv), median_of(v[4], nv), median_of(v[5], nv),
                               median_of(v[6], nv));
                    else
                        printf("%-10s %-8s m %4lld %-22s no trace recorded (not a v2 tile?)\n",
                               md->name, ls->name, (long long)m, ts);
                    if (ph[3] && nph[0])
                        printf("%-10s %-8s m %4lld   last segment end, block medians (us): tree "
                               "%5.2f | cross-block %5.2f (%d of %d blocks) | stores/reduce %5.2f "
                               "| final wait + exit %5.2f\n",
                               md->name, ls->name, (long long)m, median_of(ph[0], nph[0]),
                               median_of(ph[1], nph[1]), nph[1], nph[0], median_of(ph[2], nph[2]),
                               median_of(ph[3], nph[3]));
                    fflush(stdout);
                    for (int q = 0; q < 7; q++) free(v[q]);
                    for (int q = 0; q < 4; q++) free(ph[q]);
                }
                free(hbuf);
                marlin_gpu_free(dbuf);
            }
            gpu_layer_free(&L);
        }
    }
    return st;
}

/* ------------------------------------------------------------ floor */

/* One launch of the byte-moving floor kernel on the layer's copy iter % R4:
 * the same bytes as the GEMM (min_bytes) from the same rotated buffers. */
typedef struct floor_launch {
    bench_ctx *c;
    gpu_layer *L;
    int64_t m;
    int blocks, threads, pdl;
} floor_launch;

static marlin_status floor_fn(void *user, int64_t iter, void *stream, marlin_error *err) {
    floor_launch *f = user;
    const gpu_layer *L = f->L;
    const int r = (int)(iter % L->R4);
    const int64_t G = L->group == -1 ? 1 : L->k / L->group;
    marlin_stream_floor_args a;
    memset(&a, 0, sizeof a);
    a.in[0] = L->B[r];
    a.in_bytes[0] = (size_t)(g_sparse ? L->k * L->n / 4 : L->k * L->n / 2);
    a.in[1] = g_sparse ? L->meta[r] : NULL;
    a.in_bytes[1] = (size_t)(g_sparse ? L->k * L->n / 8 : 0);
    a.in[2] = L->s[r];
    a.in_bytes[2] = (size_t)(G * L->n * 2);
    a.in[3] = f->c->A;
    a.in_bytes[3] = (size_t)(f->m * L->k * 2);
    a.C = f->c->C;
    a.c_bytes = (size_t)(f->m * L->n * 2);
    a.blocks = f->blocks;
    a.threads = f->threads;
    a.pdl = f->pdl;
    a.stream = stream;
    return marlin_stream_floor(&a, err);
}

/* --mode floor (a diagnostic): per layer and batch, our kernel (automatic
 * choice, with PDL where available) against the fastest of the floor
 * kernel's grids (1, 2, 4 blocks of 256 threads per SM, 1 of 1024, 2 of
 * 512, 2 of 1024)
 * (a) with PDL, everything after griddepcontrol.wait (the bound for a
 * kernel whose first weight load waits for the previous kernel), (b) with
 * PDL, every weight before it (the bound for one that could hold all its
 * weights on chip while the previous kernel drains), (c) without PDL, (d)
 * with PDL, the weights prefetched into L2 before the wait and read after
 * it (a cross-launch prefetch a GEMM can do). */
static marlin_status mode_floor(bench_ctx *c, const options *o, marlin_error *err) {
    static const int grids[][2] = {{1, 256}, {2, 256}, {4, 256}, {1, 1024}, {2, 512}, {2, 1024}};
    const int n_grids = (int)(sizeof grids / sizeof grids[0]);
    marlin_status st = MARLIN_OK;
    printf("# floor (DIAGNOSTIC): our kernel vs a kernel that only moves the same bytes, "
           "best of %d grids; bw = bytes / copy bandwidth (%.0f GB/s) / time\n",
           n_grids, c->copy_bw / 1e9);
    printf("# %-10s %-8s %5s | %9s %4s | %9s %4s %-9s | %9s %4s %-9s | %9s %4s %-9s | %9s %4s "
           "%-9s\n",
           "model", "layer", "m", "ours us", "bw", "pdl-wait", "bw", "grid", "pdl-pre", "bw",
           "grid", "no-pdl", "bw", "grid", "pdl-L2", "bw", "grid");
    for (int mi = 0; mi < o->n_models && !st; mi++) {
        const model_def *md = &k_models[o->models[mi]];
        double tot[32][5];
        memset(tot, 0, sizeof tot);
        double tbytes[32];
        memset(tbytes, 0, sizeof tbytes);
        for (int li = 0; li < 4 && !st; li++) {
            const layer_shape *ls = &md->layers[li];
            gpu_layer L;
            st = gpu_layer_make(c, &L, ls->k, ls->n, o->group, 0, 0x5eed0000u + (uint64_t)li,
                                err);
            if (st) break;
            for (int b = 0; b < o->n_batch && !st; b++) {
                const int64_t m = o->batch[b];
                const double bytes = min_bytes(m, ls->k, ls->n, o->group);
                double ours = 0;
                st = time_dense(c, &L, m, NULL, c->pdl_ok, o->samples, &ours, err);
                if (st) break;
                csv_row(c, "floor", 0, md->name, ls->name, ls->k, ls->n, m, o->group, "ours",
                        c->pdl_ok, ours, 0, bytes);
                /* best over grids for pdl 1, 2, 0 and 3 */
                static const int pdl_of[4] = {1, 2, 0, 3};
                double best[4] = {1e30, 1e30, 1e30, 1e30};
                int bg[4] = {0, 0, 0, 0};
                for (int pv = 0; pv < 4 && !st; pv++) {
                    const int pdl = pdl_of[pv];
                    if (pdl && !c->pdl_ok) continue;
                    for (int g = 0; g < n_grids && !st; g++) {
                        floor_launch f = {c, &L, m, grids[g][0] * c->info.sm_count, grids[g][1],
                                          pdl};
                        marlin_gpu_timing t;
                        st = marlin_gpu_time(floor_fn, &f, c->stream, 3, batch_for(L.R4),
                                             o->samples, &t, err);
                        if (st) break;
                        char ts[48];
                        snprintf(ts, sizeof ts, "floor/%dx%d/p%d", grids[g][0], grids[g][1], pdl);
                        csv_row(c, "floor", 0, md->name, ls->name, ls->k, ls->n, m, o->group, ts,
                                pdl != 0, t.median_us, 0, bytes);
                        if (t.median_us < best[pv]) {
                            best[pv] = t.median_us;
                            bg[pv] = g;
                        }
                    }
                }
                if (st) break;
                const double lim = bytes / c->copy_bw * 1e6;
                char gs[4][16];
                for (int pv = 0; pv < 4; pv++) {
                    if (best[pv] > 1e29) {
                        best[pv] = 0;
                        snprintf(gs[pv], sizeof gs[pv], "-");
                    } else {
                        snprintf(gs[pv], sizeof gs[pv], "%dx%d", grids[bg[pv]][0],
                                 grids[bg[pv]][1]);
                    }
                }
                printf("  %-10s %-8s %5lld | %9.2f %3.0f%% | %9.2f %3.0f%% %-9s | %9.2f %3.0f%% "
                       "%-9s | %9.2f %3.0f%% %-9s | %9.2f %3.0f%% %-9s\n",
                       md->name, ls->name, (long long)m, ours, 100 * lim / ours, best[0],
                       best[0] > 0 ? 100 * lim / best[0] : 0, gs[0], best[1],
                       best[1] > 0 ? 100 * lim / best[1] : 0, gs[1], best[2],
                       100 * lim / best[2], gs[2], best[3],
                       best[3] > 0 ? 100 * lim / best[3] : 0, gs[3]);
                tot[b][0] += ours;
                for (int pv = 0; pv < 4; pv++) tot[b][pv + 1] += best[pv];
                tbytes[b] += bytes;
            }
            gpu_layer_free(&L);
        }
        for (int b = 0; b < o->n_batch && !st; b++) {
            const double lim = tbytes[b] / c->copy_bw * 1e6;
            printf("  %-10s %-8s %5lld | %9.2f %3.0f%% | %9.2f %3.0f%% %-9s | %9.2f %3.0f%% "
                   "%-9s | %9.2f %3.0f%% %-9s | %9.2f %3.0f%%\n",
                   md->name, "total", (long long)o->batch[b], tot[b][0], 100 * lim / tot[b][0],
                   tot[b][1], tot[b][1] > 0 ? 100 * lim / tot[b][1] : 0, "", tot[b][2],
                   tot[b][2] > 0 ? 100 * lim / tot[b][2] : 0, "", tot[b][3],
                   100 * lim / tot[b][3], "", tot[b][4], tot[b][4] > 0 ? 100 * lim / tot[b][4] : 0);
            csv_row(c, "floor", 0, md->name, "total", 0, 0, o->batch[b], o->group, "ours",
                    c->pdl_ok, tot[b][0], 0, tbytes[b]);
            csv_row(c, "floor", 0, md->name, "total", 0, 0, o->batch[b], o->group,
                    "floor-best/p1", 1, tot[b][1], 0, tbytes[b]);
            csv_row(c, "floor", 0, md->name, "total", 0, 0, o->batch[b], o->group,
                    "floor-best/p2", 1, tot[b][2], 0, tbytes[b]);
            csv_row(c, "floor", 0, md->name, "total", 0, 0, o->batch[b], o->group,
                    "floor-best/p0", 0, tot[b][3], 0, tbytes[b]);
            if (tot[b][4] > 0)
                csv_row(c, "floor", 0, md->name, "total", 0, 0, o->batch[b], o->group,
                        "floor-best/p3", 1, tot[b][4], 0, tbytes[b]);
        }
    }
    return st;
}

/* --sparse --mode tune: every 2:4 tile configuration x 1/2 blocks per SM
 * (two only for m <= 16) on the model layers, with PDL where available;
 * prints the winner and the automatic choice per layer and batch. */
static marlin_status time_sparse(bench_ctx *c, gpu_layer *L, int64_t m,
                                 const marlin_gemm24_opts *so, int samples, double *us,
                                 marlin_error *err) {
    dense_launch d = {c, L, m, NULL, c->pdl_ok, so, NULL, 0};
    marlin_gpu_timing t;
    marlin_status st = marlin_gpu_time(dense_fn, &d, c->stream, 3, batch_for(L->R4), samples, &t, err);
    if (!st) *us = t.median_us;
    return st;
}

/* One forced 2:4 configuration of --mode tune --sparse (as tune_one): a
 * CSV row and the best so far; one that does not fit is skipped. */
static marlin_status tune_sparse_one(bench_ctx *c, const options *o, const model_def *md,
                                     const layer_shape *ls, gpu_layer *L, int64_t m,
                                     const marlin_gemm24_opts *so, const char *label,
                                     double *best, char *best_s, size_t best_cap,
                                     marlin_error *err) {
    double us = 0;
    marlin_error e2 = {0};
    marlin_status s2 = time_sparse(c, L, m, so, o->samples / 2 + 3, &us, &e2);
    if (s2 == MARLIN_ERR_INVALID_ARG) return MARLIN_OK; /* does not fit */
    if (s2) {
        *err = e2;
        return s2;
    }
    csv_row(c, "tune", 0, md->name, ls->name, ls->k, ls->n, m, o->group, label, c->pdl_ok, us, 0,
            min_bytes(m, ls->k, ls->n, o->group));
    if (us < *best) {
        *best = us;
        snprintf(best_s, best_cap, "%s", label);
    }
    return MARLIN_OK;
}

static marlin_status mode_tune_sparse(bench_ctx *c, const options *o, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    double auto_sum[32] = {0}, best_sum[32] = {0};
    printf("# tune (2:4): group %d, pdl %d\n", o->group, c->pdl_ok);
    for (int mi = 0; mi < o->n_models && !st; mi++) {
        const model_def *md = &k_models[o->models[mi]];
        for (int li = 0; li < 4 && !st; li++) {
            const layer_shape *ls = &md->layers[li];
            gpu_layer L;
            st = gpu_layer_make(c, &L, ls->k, ls->n, o->group, 0, 0x7u + (uint64_t)li, err);
            for (int b = 0; b < o->n_batch && !st; b++) {
                const int64_t m = o->batch[b];
                double auto_us = 0, best = 1e30;
                char best_s[64] = "auto";
                st = time_sparse(c, &L, m, NULL, o->samples / 2 + 3, &auto_us, err);
                if (st) break;
                csv_row(c, "tune", 0, md->name, ls->name, ls->k, ls->n, m, o->group, "auto",
                        c->pdl_ok, auto_us, 0, min_bytes(m, ls->k, ls->n, o->group));
                best = auto_us;
                for (int cfg = 1; cfg <= 6 && !st; cfg++) {
                    /* configurations 3-5 exist for m <= 16 only */
                    if (m > 16 && cfg >= 3 && cfg <= 5) continue;
                    for (int bps = 1; bps <= (m <= 16 ? 2 : 1) && !st; bps++) {
                        marlin_gemm24_opts so;
                        memset(&so, 0, sizeof so);
                        so.config = cfg;
                        so.blocks_per_sm = bps;
                        char ts[64];
                        snprintf(ts, sizeof ts, "cfg%d/b%d", cfg, bps);
                        st = tune_sparse_one(c, o, md, ls, &L, m, &so, ts, &best, best_s,
                                             sizeof best_s, err);
                    }
                }
                /* the wgmma path (sm_90, built): tile widths that hold
                 * m or fewer rows x k pieces (0: the rule) */
                const int wrows[] = {32, 64, 128}, wpieces[] = {0, 1, 2, 3, 4, 6, 8, 12, 16};
                for (int ri = 0; ri < 3 && !st && m > 16 && marlin_gemm24_wgmma_built() &&
                                 c->info.cc_major == 9;
                     ri++) {
                    if (ri > 0 && wrows[ri - 1] >= m) break;
                    for (int pi = 0; pi < 9 && !st; pi++) {
                        marlin_gemm24_opts so;
                        memset(&so, 0, sizeof so);
                        so.wgmma = 2;
                        so.wg_rows = wrows[ri];
                        so.wg_splits = wpieces[pi];
                        char ts[64];
                        snprintf(ts, sizeof ts, "wg%d/k%d", wrows[ri], wpieces[pi]);
                        st = tune_sparse_one(c, o, md, ls, &L, m, &so, ts, &best, best_s,
                                             sizeof best_s, err);
                    }
                }
                /* the cluster path (sm_90, <= 16 rows, configurations 3, 4) */
                const int csz[] = {2, 3, 4, 5, 6, 8};
                for (int cfg = 3; cfg <= 4 && !st && m <= 16 && c->info.cc_major >= 9; cfg++)
                    for (int ci = 0; ci < 6 && !st; ci++) {
                        marlin_gemm24_opts so;
                        memset(&so, 0, sizeof so);
                        so.config = cfg;
                        so.cluster_k = csz[ci];
                        char ts[64];
                        snprintf(ts, sizeof ts, "cfg%d/c%d", cfg, csz[ci]);
                        st = tune_sparse_one(c, o, md, ls, &L, m, &so, ts, &best, best_s,
                                             sizeof best_s, err);
                    }
                if (st) break;
                auto_sum[b] += auto_us;
                best_sum[b] += best;
                printf("%-10s %-8s m %4lld  auto %8.2f us  best %8.2f us (%s)%s\n", md->name,
                       ls->name, (long long)m, auto_us, best, best_s,
                       best < 0.97 * auto_us ? "  <-- heuristic loses >3%" : "");
                fflush(stdout);
            }
            gpu_layer_free(&L);
        }
    }
    if (!st) print_tune_totals(o, auto_sum, best_sum);
    return st;
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    options o;
    int code = 0;
    if (parse_args(argc, argv, &o, &code)) return code;
    g_sparse = o.sparse;
    g_pipeline = o.pipeline;
    if (g_sparse) {
        /* the 2:4 launcher: auto, or one of its two kernel families */
        if (o.pipeline != MARLIN_DENSE_PIPE_AUTO && o.pipeline != MARLIN_DENSE_PIPE_WGMMA)
            return usage_error("--sparse takes --pipeline auto, mma or wgmma%s", "");
        g_wg24 = o.pipeline == MARLIN_DENSE_PIPE_WGMMA ? 2 : o.pipeline_mma ? 1 : 0;
        g_pipeline = MARLIN_DENSE_PIPE_AUTO;
    } else if (o.pipeline_mma) {
        return usage_error("--pipeline mma is for --sparse (the dense families: cpasync, bulk, "
                           "mbar, cpasync2, wgmma)%s",
                           "");
    }
    marlin_error err = {0};
    bench_ctx c;
    memset(&c, 0, sizeof c);
    marlin_status st = marlin_gpu_probe(o.device, &c.info, &err);
    if (st) {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg);
        return MARLIN_EXIT_RUNTIME;
    }
    /* Programmatic dependent launch: both kernels have it (sm_90+). */
    c.pdl_ok = c.info.cc_major >= 9 && !o.no_pdl;
    /* Buffer sizes: the largest m and layer of this run. */
    c.max_m = 0;
    for (int b = 0; b < o.n_batch; b++)
        if (o.batch[b] > c.max_m) c.max_m = o.batch[b];
    c.max_k = 28672;
    c.max_n = 57344;
    if (o.mode == MODE_PEAK) {
        c.max_k = 1024 * (int64_t)c.info.sm_count;
        c.max_n = 256 * (int64_t)c.info.sm_count;
    }
    c.A_bytes = (size_t)(c.max_m * c.max_k * 2);
    c.C_bytes = (size_t)(c.max_m * c.max_n * 2);
    c.ws_bytes = marlin_dense_workspace_bytes(c.max_m, c.max_n, c.info.sm_count);
    if (g_sparse) {
        /* sized for at least 17 rows: the wgmma path's partial sums, which
         * forced (--pipeline wgmma, tune) runs of fewer rows use too */
        st = marlin_gemm24_workspace_size(c.max_m < 17 ? 17 : c.max_m, c.max_n, &c.ws_bytes,
                                          &err);
        if (st) {
            fprintf(stderr, "%s: %s\n", TOOL, err.msg);
            return MARLIN_EXIT_RUNTIME;
        }
    }
    if (o.csv) {
        c.csv = fopen(o.csv, "w");
        if (!c.csv) {
            fprintf(stderr, "%s: %s: cannot open for writing\n", TOOL, o.csv);
            return MARLIN_EXIT_RUNTIME;
        }
    }
    st = marlin_gpu_stream_create(&c.stream, &err);
    if (!st) st = marlin_cublas_create(&c.cublas, c.stream, &err);
    if (!st) st = marlin_gpu_alloc(&c.A, c.A_bytes, &err);
    if (!st) st = marlin_gpu_alloc(&c.C, c.C_bytes, &err);
    if (!st) st = marlin_gpu_alloc(&c.ws, c.ws_bytes, &err);
    if (!st) st = marlin_gpu_memset(c.ws, 0, c.ws_bytes, &err);
    if (!st)
        st = marlin_gpu_fill(c.A, MARLIN_FILL_F16_UNIFORM, c.A_bytes / 2, 0xa11ce, -1.0f, 1.0f,
                             c.stream, &err);
    if (!st) st = marlin_gpu_copy_bandwidth((size_t)1 << 30, 20, c.stream, &c.copy_bw, &err);
    if (!st) {
        printf("# %s: sm_%d%d, %d SMs, L2 %lld MiB, driver %d, runtime %d\n", c.info.name,
               c.info.cc_major, c.info.cc_minor, c.info.sm_count,
               (long long)(c.info.l2_bytes >> 20), c.info.driver_version, c.info.runtime_version);
        printf("# device-to-device copy: %.0f GB/s (read + write, 1 GiB, median of 20)\n",
               c.copy_bw / 1e9);
        if (g_l2_resident)
            printf("# DIAGNOSTIC --l2-resident: weights not rotated (L2 hits where they fit); "
                   "these times are not speedups\n");
        if (o.mode != MODE_TRACE) csv_header(&c);
        switch (o.mode) {
        case MODE_TRACE: st = mode_trace(&c, &o, &err); break;
        case MODE_FLOOR: st = mode_floor(&c, &o, &err); break;
        case MODE_MODELS: st = mode_models(&c, &o, &err); break;
        case MODE_PEAK: st = mode_peak(&c, &o, &err); break;
        case MODE_SUSTAINED: st = mode_sustained(&c, &o, &err); break;
        case MODE_TUNE: st = g_sparse ? mode_tune_sparse(&c, &o, &err) : mode_tune(&c, &o, &err); break;
        }
    }
    if (c.csv && fclose(c.csv) != 0 && !st)
        st = marlin_fail(&err, MARLIN_ERR_IO, "%s: write failed", o.csv);
    marlin_gpu_free(c.A);
    marlin_gpu_free(c.C);
    marlin_gpu_free(c.ws);
    marlin_cublas_free(c.cublas);
    marlin_gpu_stream_destroy(c.stream);
    if (st) {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg);
        return MARLIN_EXIT_RUNTIME;
    }
    return MARLIN_EXIT_OK;
}
