/*
 * marlin-synth - writes a deterministic synthetic Llama-family checkpoint
 * (config.json, generation_config.json, model.safetensors or shards +
 * index) with random weights of realistic scale, so the demo, the tests and
 * the benchmarks need no download: linear and embedding weights
 * N(0, 0.02^2) (Llama's initializer_range), RMSNorm weights 1 + N(0, 0.02^2).
 *
 * Shapes follow the presets' Hugging Face configs (LlamaConfig): tensor
 * names and declaration order as transformers' state_dict, so shards split
 * where transformers would split them. The bytes depend only on (preset,
 * layers, seed, dtype): every tensor is generated in fixed 64 Ki-element
 * chunks, each from its own RNG stream seeded by (seed, tensor, chunk), so
 * the thread count changes the speed, never the output.
 *
 * Normals come from a 128-layer ziggurat (Marsaglia & Tsang, "The Ziggurat
 * Method for Generating Random Variables", JSS 2000): one 64-bit draw and a
 * compare for ~99% of samples, about 10x cheaper than Box-Muller, which
 * matters at 6.7 G samples for a llama2-7b.
 */
#include "marlin_cli.h"
#include "marlin_formats.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tool = "marlin-synth";

/* ------------------------------------------------------------- presets */
typedef struct preset {
    const char *name;
    int64_t hidden, inter, heads, kv, head_dim, layers, vocab, max_pos;
    const char *eps;   /* as written in config.json (Python float repr) */
    const char *theta;
    bool llama3;       /* Llama 3.1 rope scaling */
    bool tie;
    const char *about;
} preset;

static const preset presets[] = {
    /* Marlin-friendly small shapes: k multiple of 128, n of 256/128. */
    {"tiny", 256, 768, 4, 2, 64, 2, 256, 512, "1e-05", "10000.0", false, false,
     "2 layers, hidden 256 (the demo)"},
    {"shakespeare", 512, 1536, 8, 4, 64, 4, 256, 512, "1e-05", "10000.0", false,
     false, "shapes of ../shared/models/shakespeare-llama-13m"},
    {"llama2-7b", 4096, 11008, 32, 32, 128, 32, 32000, 4096, "1e-05", "10000.0",
     false, false, "Llama-2-7b shapes"},
    {"llama3-8b", 4096, 14336, 32, 8, 128, 32, 128256, 131072, "1e-05", "500000.0",
     true, false, "Llama-3.1-8B shapes, llama3 rope scaling"},
};

/* --------------------------------------------------------- ziggurat */
#define ZIG_R 3.442619855899
static uint32_t zk[128];
static double zw[128], zf[128];

static void zig_init(void) {
    const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
    double dn = ZIG_R, tn = dn;
    double q = vn / exp(-.5 * dn * dn);
    zk[0] = (uint32_t)((dn / q) * m1);
    zk[1] = 0;
    zw[0] = q / m1;
    zw[127] = dn / m1;
    zf[0] = 1.0;
    zf[127] = exp(-.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2. * log(vn / dn + exp(-.5 * dn * dn)));
        zk[i + 1] = (uint32_t)((dn / tn) * m1);
        tn = dn;
        zf[i] = exp(-.5 * dn * dn);
        zw[i] = dn / m1;
    }
}

/* Uniform in (0, 1), never 0 (its log is taken). */
static double zig_uni(marlin_rng *r) {
    return ((double)(marlin_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}

static float zig_normal(marlin_rng *r) {
    for (;;) {
        uint64_t u = marlin_rng_u64(r);
        /* sign+magnitude from the high half, layer from the low bits: the
         * original shares bits between the two, a known small bias */
        int32_t hz = (int32_t)(uint32_t)(u >> 32);
        int iz = (int)(u & 127);
        uint32_t ahz = hz < 0 ? (uint32_t)(-(int64_t)hz) : (uint32_t)hz;
        double x = hz * zw[iz];
        if (ahz < zk[iz]) return (float)x;
        if (iz == 0) { /* the tail beyond R */
            double t, y;
            do {
                t = -log(zig_uni(r)) / ZIG_R;
                y = -log(zig_uni(r));
            } while (y + y < t * t);
            return (float)(hz > 0 ? ZIG_R + t : -ZIG_R - t);
        }
        if (zf[iz] + zig_uni(r) * (zf[iz - 1] - zf[iz]) < exp(-.5 * x * x))
            return (float)x;
    }
}

/* ---------------------------------------------------------- generation */
#define CHUNK 65536                 /* elements per RNG stream */
#define PIECE (256 * (int64_t)CHUNK) /* elements per write: 32 MiB of fp16 */

typedef struct gen_job {
    uint64_t seed;      /* per tensor */
    int64_t first;      /* element index of piece start */
    int64_t count;      /* elements in this piece */
    float mean, std;
    bool bf16;
    uint16_t *out;
    float **scratch;    /* one CHUNK buffer per thread */
} gen_job;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void gen_chunks(void *arg, int64_t b, int64_t e, int thread) {
    gen_job *j = arg;
    float *f = j->scratch[thread];
    for (int64_t c = b; c < e; c++) {
        int64_t lo = c * CHUNK, hi = lo + CHUNK < j->count ? lo + CHUNK : j->count;
        marlin_rng r;
        marlin_rng_seed(&r, mix64(j->seed ^ mix64((uint64_t)((j->first + lo) / CHUNK))));
        for (int64_t i = lo; i < hi; i++)
            f[i - lo] = j->mean + j->std * zig_normal(&r);
        if (j->bf16)
            for (int64_t i = lo; i < hi; i++) j->out[i] = marlin_float_to_bf16(f[i - lo]);
        else
            marlin_float_to_half_n(f, j->out + lo, (size_t)(hi - lo));
    }
}

/* One piece being written while the next is generated: disk and RNG
 * overlap (writing dominates on a disk at ~100-200 MB/s). */
typedef struct put_job {
    marlin_writer *w;
    const char *name;
    const uint16_t *data;
    uint64_t nbytes;
    marlin_status st;
    marlin_error err;
} put_job;

static void *put_main(void *arg) {
    put_job *p = arg;
    p->st = marlin_writer_put_part(p->w, p->name, p->data, p->nbytes, &p->err);
    return NULL;
}

/* ------------------------------------------------------------------ CLI */
static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { (void)sig; interrupted = 1; }

static void usage(FILE *f) {
    fprintf(f,
            "Usage: %s OUT --preset NAME [options]\n"
            "Write a synthetic Llama-family checkpoint folder OUT (config.json,\n"
            "generation_config.json, safetensors weights) with deterministic random\n"
            "weights: linears and embeddings N(0, 0.02^2), norms 1 + N(0, 0.02^2).\n"
            "\n"
            "  --preset NAME     ",
            tool);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        fprintf(f, "%s%s", i ? ", " : "", presets[i].name);
    fprintf(f, "\n");
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        fprintf(f, "                      %-12s %s\n", presets[i].name, presets[i].about);
    fprintf(f,
            "  --layers N        number of decoder layers (default: the preset's)\n"
            "  --seed S          RNG seed (default 0); same inputs, same bytes\n"
            "  --dtype f16|bf16  weight dtype (default f16)\n"
            "  --shard-size SIZE split into shards of at most SIZE (decimal units:\n"
            "                    500MB, 5GB; default 5GB)\n"
            "  --threads N       generation threads (default: all CPUs)\n"
            "  --force           replace an existing OUT (a checkpoint folder)\n"
            "  -q, --quiet       no progress or summary\n"
            "  -h, --help        this help;  -V, --version\n"
            "\n"
            "OUT is written under a temporary name beside it and renamed at the end.\n"
            "Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
}

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", tool);
    return MARLIN_EXIT_USAGE;
}

typedef struct tdecl {
    char name[96];
    int rank;
    uint64_t shape[2];
    bool norm;
} tdecl;

/* transformers' LlamaForCausalLM state_dict order. */
static size_t declare(const preset *p, int64_t layers, tdecl *t) {
    size_t n = 0;
    uint64_t h = (uint64_t)p->hidden, q = (uint64_t)(p->heads * p->head_dim);
    uint64_t kv = (uint64_t)(p->kv * p->head_dim), in = (uint64_t)p->inter;
#define T2(nm, a, b) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); \
        t[n].rank = 2; t[n].shape[0] = a; t[n].shape[1] = b; t[n].norm = false; n++; } while (0)
#define T1(nm, a) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); \
        t[n].rank = 1; t[n].shape[0] = a; t[n].norm = true; n++; } while (0)
    T2("model.embed_tokens.weight", (uint64_t)p->vocab, h);
    for (int64_t l = 0; l < layers; l++) {
        char b[96];
#define L(sfx) (snprintf(b, sizeof b, "model.layers.%" PRId64 ".%s", l, sfx), b)
        T2(L("self_attn.q_proj.weight"), q, h);
        T2(L("self_attn.k_proj.weight"), kv, h);
        T2(L("self_attn.v_proj.weight"), kv, h);
        T2(L("self_attn.o_proj.weight"), h, q);
        T2(L("mlp.gate_proj.weight"), in, h);
        T2(L("mlp.up_proj.weight"), in, h);
        T2(L("mlp.down_proj.weight"), h, in);
        T1(L("input_layernorm.weight"), h);
        T1(L("post_attention_layernorm.weight"), h);
#undef L
    }
    T1("model.norm.weight", h);
    if (!p->tie) T2("lm_head.weight", (uint64_t)p->vocab, h);
#undef T1
#undef T2
    return n;
}

/* config.json as transformers 5 writes it: sorted keys, indent 2. */
static char *config_text(const preset *p, int64_t layers, bool bf16) {
    const char *dt = bf16 ? "bfloat16" : "float16";
    char rope[512];
    if (p->llama3)
        snprintf(rope, sizeof rope,
                 "{\n    \"factor\": 8.0,\n    \"high_freq_factor\": 4.0,\n"
                 "    \"low_freq_factor\": 1.0,\n"
                 "    \"original_max_position_embeddings\": 8192,\n"
                 "    \"rope_theta\": %s,\n    \"rope_type\": \"llama3\"\n  }",
                 p->theta);
    else
        snprintf(rope, sizeof rope,
                 "{\n    \"rope_theta\": %s,\n    \"rope_type\": \"default\"\n  }",
                 p->theta);
    size_t cap = 4096;
    char *s = malloc(cap);
    if (!s) return NULL;
    snprintf(s, cap,
             "{\n"
             "  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
             "  \"attention_bias\": false,\n"
             "  \"attention_dropout\": 0.0,\n"
             "  \"bos_token_id\": 1,\n"
             "  \"dtype\": \"%s\",\n"
             "  \"eos_token_id\": 2,\n"
             "  \"head_dim\": %" PRId64 ",\n"
             "  \"hidden_act\": \"silu\",\n"
             "  \"hidden_size\": %" PRId64 ",\n"
             "  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %" PRId64 ",\n"
             "  \"max_position_embeddings\": %" PRId64 ",\n"
             "  \"mlp_bias\": false,\n"
             "  \"model_type\": \"llama\",\n"
             "  \"num_attention_heads\": %" PRId64 ",\n"
             "  \"num_hidden_layers\": %" PRId64 ",\n"
             "  \"num_key_value_heads\": %" PRId64 ",\n"
             "  \"pretraining_tp\": 1,\n"
             "  \"rms_norm_eps\": %s,\n"
             "  \"rope_parameters\": %s,\n"
             "  \"tie_word_embeddings\": %s,\n"
             "  \"torch_dtype\": \"%s\",\n"
             "  \"use_cache\": true,\n"
             "  \"vocab_size\": %" PRId64 "\n"
             "}\n",
             dt, p->head_dim, p->hidden, p->inter, p->max_pos, p->heads, layers,
             p->kv, p->eps, rope, p->tie ? "true" : "false", dt, p->vocab);
    return s;
}

static const char gen_config[] =
    "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": 1,\n"
    "  \"eos_token_id\": 2\n}\n";

int main(int argc, char **argv) {
    const char *out = NULL, *preset_name = NULL;
    int64_t layers = -1, threads = 0;
    uint64_t seed = 0, shard = MARLIN_DEFAULT_SHARD_LIMIT;
    bool bf16 = false, force = false, quiet = false, opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || !a[1]) {
            if (out) return usage_error("unexpected argument '%s' (one OUT folder)", a);
            out = a;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("%s %s\n", tool, MARLIN_VERSION_STRING);
            return 0;
        }
        if (!strcmp(a, "--")) { opts_done = true; continue; }
        if (!strcmp(a, "--force")) { force = true; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = true; continue; }
        /* options with a value: --opt V or --opt=V */
        static const char *const with_value[] = {"--preset", "--layers", "--seed",
                                                 "--dtype", "--shard-size",
                                                 "--threads"};
        const char *v = NULL, *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        int which = -1;
        for (int k = 0; k < 6; k++)
            if (strlen(with_value[k]) == nl && !strncmp(a, with_value[k], nl)) which = k;
        if (which < 0) return usage_error("unknown option '%s'", a);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else return usage_error("option '%s' needs a value", a);
        int64_t x;
        switch (which) {
        case 0: preset_name = v; break;
        case 1:
            if (!marlin_cli_int(v, 1, 1000, &x))
                return usage_error("--layers: '%s' is not an integer in [1, 1000]", v);
            layers = x;
            break;
        case 2:
            if (!marlin_cli_int(v, 0, INT64_MAX, &x))
                return usage_error("--seed: '%s' is not a non-negative integer", v);
            seed = (uint64_t)x;
            break;
        case 3:
            if (!strcmp(v, "f16")) bf16 = false;
            else if (!strcmp(v, "bf16")) bf16 = true;
            else return usage_error("--dtype: '%s' is not f16 or bf16", v);
            break;
        case 4:
            if (!marlin_cli_size(v, &shard))
                return usage_error("--shard-size: '%s' is not a size (500MB, 5GB, bytes)", v);
            break;
        case 5:
            if (!marlin_cli_int(v, 1, 4096, &x))
                return usage_error("--threads: '%s' is not an integer in [1, 4096]", v);
            threads = x;
            break;
        }
    }
    if (!out) return usage_error("missing OUT folder");
    if (!preset_name) return usage_error("missing --preset");
    const preset *p = NULL;
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++)
        if (!strcmp(presets[k].name, preset_name)) p = &presets[k];
    if (!p) return usage_error("--preset: unknown preset '%s'", preset_name);
    if (layers < 0) layers = p->layers;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = MARLIN_EXIT_RUNTIME;
    marlin_error err = {0};
    marlin_writer *w = NULL;
    char *tmp = NULL, *cfg = NULL;
    tdecl *t = NULL;
    uint16_t *buf[2] = {NULL, NULL};
    float **scratch = NULL;
    int nthreads = threads > 0 ? (int)threads : marlin_cpu_count();
    marlin_cli_progress_state prog;
    marlin_cli_progress_init(&prog, tool, quiet ? 0 : 1);
    double t0 = marlin_now();

    zig_init();
    size_t cap = 3 + 9 * (size_t)layers;
    t = calloc(cap, sizeof *t);
    buf[0] = malloc((size_t)PIECE * sizeof *buf[0]);
    buf[1] = malloc((size_t)PIECE * sizeof *buf[1]);
    scratch = calloc((size_t)nthreads, sizeof *scratch);
    if (!t || !buf[0] || !buf[1] || !scratch) goto oom;
    for (int k = 0; k < nthreads; k++)
        if (!(scratch[k] = malloc(CHUNK * sizeof(float)))) goto oom;
    size_t nt = declare(p, layers, t);

    if (marlin_outdir_begin(out, force, &tmp, &err)) goto fail;
    if (marlin_writer_create(tmp, shard, &w, &err)) goto fail;
    marlin_dtype dt = bf16 ? MARLIN_DT_BF16 : MARLIN_DT_F16;
    uint64_t total_el = 0;
    for (size_t i = 0; i < nt; i++) {
        if (marlin_writer_add(w, t[i].name, dt, t[i].rank, t[i].shape, &err)) goto fail;
        total_el += t[i].shape[0] * (t[i].rank == 2 ? t[i].shape[1] : 1);
    }
    char meta[64];
    snprintf(meta, sizeof meta, "marlin-synth %s", MARLIN_VERSION_STRING);
    if (marlin_writer_set_metadata(w, "producer", meta, &err)) goto fail;
    if (marlin_writer_begin(w, &err)) goto fail;
    uint64_t done_el = 0;
    put_job pj = {0};
    pthread_t writer_thread;
    bool writing = false;
    int cur = 0;
    for (size_t i = 0; i < nt; i++) {
        int64_t n = (int64_t)(t[i].shape[0] * (t[i].rank == 2 ? t[i].shape[1] : 1));
        for (int64_t first = 0; first < n; first += PIECE) {
            if (interrupted) {
                marlin_fail(&err, MARLIN_ERR_INTERRUPTED, "interrupted; %s not written", out);
                goto join_fail;
            }
            gen_job j = {
                .seed = mix64(seed ^ mix64(0x5eed0000ull + i)),
                .first = first,
                .count = n - first < PIECE ? n - first : PIECE,
                .mean = t[i].norm ? 1.0f : 0.0f,
                .std = 0.02f,
                .bf16 = bf16,
                .out = buf[cur],
                .scratch = scratch,
            };
            int64_t chunks = (j.count + CHUNK - 1) / CHUNK;
            marlin_parallel_for(chunks, 1, nthreads, gen_chunks, &j);
            if (writing) {
                pthread_join(writer_thread, NULL);
                writing = false;
                if (pj.st) {
                    err = pj.err;
                    goto fail;
                }
            }
            pj = (put_job){w, t[i].name, buf[cur], (uint64_t)j.count * sizeof *buf[cur],
                           MARLIN_OK, {0}};
            if (pthread_create(&writer_thread, NULL, put_main, &pj) == 0) {
                writing = true;
            } else {
                put_main(&pj); /* no thread: write inline */
                if (pj.st) {
                    err = pj.err;
                    goto fail;
                }
            }
            cur ^= 1;
            done_el += (uint64_t)j.count;
            marlin_progress_report(&(marlin_progress){marlin_cli_progress_fn, &prog},
                                   "weights", (int64_t)done_el, (int64_t)total_el);
        }
    }
join_fail:
    if (writing) {
        pthread_join(writer_thread, NULL);
        writing = false;
        if (pj.st && !err.msg[0]) err = pj.err;
    }
    if (interrupted && !err.msg[0])
        marlin_fail(&err, MARLIN_ERR_INTERRUPTED, "interrupted; %s not written", out);
    if (pj.st || interrupted) goto fail;
    if (marlin_writer_finish(w, &err)) goto fail;
    size_t shards = marlin_writer_shard_count(w);
    if (!(cfg = config_text(p, layers, bf16))) goto oom;
    if (marlin_write_file_atomic(tmp, "config.json", cfg, strlen(cfg), &err)) goto fail;
    if (marlin_write_file_atomic(tmp, "generation_config.json", gen_config,
                                 sizeof gen_config - 1, &err))
        goto fail;
    if (marlin_outdir_commit(tmp, out, force, &err)) goto fail;
    MARLIN_FREE(tmp);
    marlin_cli_progress_end(&prog);
    if (!quiet) {
        double s = marlin_now() - t0;
        double gb = (double)total_el * 2 / 1e9;
        printf("%s: wrote %s (preset %s, %" PRId64 " layers, %s, %.3g G parameters, "
               "%.3f GB in %zu file%s) in %.2f s (%.2f GB/s, %d threads)\n",
               tool, out, p->name, layers, bf16 ? "bf16" : "f16",
               (double)total_el / 1e9, gb, shards, shards == 1 ? "" : "s", s,
               gb / s, nthreads);
    }
    rc = MARLIN_EXIT_OK;
    goto done;
oom:
    marlin_fail(&err, MARLIN_ERR_NOMEM, "out of memory");
fail:
    marlin_cli_progress_end(&prog);
    fprintf(stderr, "%s: %s\n", tool, err.msg);
done:
    marlin_writer_free(w);
    if (tmp) marlin_outdir_abort(tmp);
    free(tmp);
    free(cfg);
    for (int k = 0; scratch && k < nthreads; k++) free(scratch[k]);
    free(scratch);
    free(buf[0]);
    free(buf[1]);
    free(t);
    return rc;
}
