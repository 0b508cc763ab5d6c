/*
 * marlin-verify - checks a quantized checkpoint (see marlin_verify.h).
 * Thin main: arguments, marlin_verify_run(), per-layer table, exit code
 * (0 every layer passed, 1 runtime error, 2 usage, 3 verification failed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_cli.h"
#include "marlin_kernels.h"
#include "marlin_verify.h"

static const char *const TOOL = "marlin-verify";

static void usage(FILE *f) {
    fprintf(f,
"usage: marlin-verify OUT [--ref IN] [--cpu | --gpu] [options]\n"
"\n"
"Checks every quantized layer of the checkpoint OUT (a GPTQ, Marlin or\n"
"Sparse-Marlin folder, or a marlin-quantize --format all folder holding\n"
"gptq/ and marlin/, whose codes must then agree bit for bit).\n"
"\n"
"  --ref IN          the original checkpoint: compare weights and outputs\n"
"  --cpu             checks on the CPU only (default)\n"
"  --gpu             also run our Marlin kernel on each layer and compare with\n"
"                    the CPU reference and with cuBLAS FP16 on the original\n"
"  --batch M         rows of random activations (default 16)\n"
"  --calib FILE      GPU check on real activations: the inputs each layer of\n"
"                    the original (--ref) sees on the first M tokens of the\n"
"                    first sequence of FILE (input_ids I32/I64 [N, L])\n"
"  --seed S          seed of the random activations (default 1)\n"
"  --threads N       worker threads (default: all CPUs)\n"
"  --json FILE       write the per-layer report as JSON\n"
"  --gpu-available   exit 0 if a usable GPU is present, 1 otherwise\n"
"  -q, --quiet       no table, only the verdict line\n"
"  -h, --help        this help\n"
"  -V, --version     version\n"
"\n"
"Exit codes: 0 every layer passed, 1 runtime error, 2 usage error,\n"
"3 verification failed (the failing layers are named).\n");
}

static int bad_usage(const char *msg, const char *arg) {
    return marlin_cli_usage_error(TOOL, msg, arg);
}

/* "-" for values not measured; digits: fixed (d >= 0) or exponent (d < 0). */
static void fmt_num(char *buf, size_t n, double v, int digits) {
    if (v < 0) snprintf(buf, n, "-");
    else if (digits >= 0) snprintf(buf, n, "%.*f", digits, v);
    else snprintf(buf, n, "%.2e", v);
}

static void print_table(const marlin_verify_report *r) {
    printf("%-46s %-8s %12s %8s %8s %8s %9s %9s  %s\n", "layer", "format",
           "shape [n,k]", "w-err", "steps", "out-err", "gpu-ref", "gpu-fp16",
           "result");
    for (size_t i = 0; i < r->n_layers; i++) {
        const marlin_verify_layer *l = &r->layers[i];
        char shape[32], a[16], b[16], c[16], d[16], e[16];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)l->n, (long long)l->k);
        fmt_num(a, sizeof a, l->rel_weight_err, 4);
        fmt_num(b, sizeof b, l->step_err, 3);
        fmt_num(c, sizeof c, l->rel_out_err, 4);
        fmt_num(d, sizeof d, l->gpu_vs_ref, -1);
        fmt_num(e, sizeof e, l->gpu_vs_fp16, 4);
        printf("%-46s %-8s %12s %8s %8s %8s %9s %9s  %s%s%s\n",
               l->name ? l->name : "?", l->format, shape, a, b, c, d, e,
               l->pass ? "ok" : "FAIL", l->why ? ": " : "", l->why ? l->why : "");
    }
}

int main(int argc, char **argv) {
    marlin_verify_opts o = marlin_verify_default_opts();
    const char *json_path = NULL, *path = NULL;
    int level = 1;
    int64_t v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!val) return bad_usage("missing value for", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("%s %s\n", TOOL, MARLIN_VERSION_STRING);
            return 0;
        }
        else if (!strcmp(a, "--gpu-available")) {
            marlin_error err;
            marlin_gpu_info info;
            marlin_error_clear(&err);
            marlin_status st = marlin_gpu_probe(0, &info, &err);
            if (st != MARLIN_OK) {
                fprintf(stderr, "%s: %s\n", TOOL, err.msg);
                return MARLIN_EXIT_RUNTIME;
            }
            printf("%s\n", info.name);
            return 0;
        }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) level = 0;
        else if (!strcmp(a, "--ref")) { NEED_VALUE(); o.ref = val; }
        else if (!strcmp(a, "--cpu")) o.gpu = false;
        else if (!strcmp(a, "--gpu")) o.gpu = true;
        else if (!strcmp(a, "--batch")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, 1, 65536, &o.batch))
                return bad_usage("--batch needs an integer in [1, 65536]", val);
        }
        else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, 0, INT64_MAX, &v)) return bad_usage("--seed needs a non-negative integer", val);
            o.seed = (uint64_t)v;
        }
        else if (!strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, 1, 4096, &v)) return bad_usage("--threads needs a positive integer", val);
            o.threads = (int)v;
        }
        else if (!strcmp(a, "--json")) { NEED_VALUE(); json_path = val; }
        else if (!strcmp(a, "--calib")) { NEED_VALUE(); o.calib = val; }
        else if (a[0] == '-' && a[1]) return bad_usage("unknown option", a);
        else {
            if (path) return bad_usage("unexpected argument", a);
            path = a;
        }
#undef NEED_VALUE
    }
    if (!path) return bad_usage("need the checkpoint OUT to verify", NULL);
    o.path = path;
    marlin_cli_progress_state ps;
    marlin_cli_progress_init(&ps, TOOL, level);
    o.progress.fn = marlin_cli_progress_fn;
    o.progress.user = &ps;

    marlin_verify_report rep;
    marlin_error err;
    marlin_error_clear(&err);
    marlin_status st = marlin_verify_run(&o, &rep, &err);
    marlin_cli_progress_end(&ps);
    int rc = 0;
    if (rep.n_layers && level > 0) print_table(&rep);
    if (st == MARLIN_OK) {
        printf("%s: PASS: %zu layers [format %s; quantizer %s]%s%s%s\n", TOOL,
               rep.n_layers, rep.formats, rep.algorithm[0] ? rep.algorithm : "unknown",
               o.ref ? " against the reference" : "", o.gpu ? " on " : "",
               o.gpu ? rep.device : "");
    } else if (st == MARLIN_ERR_VERIFY) {
        for (size_t i = 0; i < rep.n_layers; i++)
            if (!rep.layers[i].pass)
                fprintf(stderr, "%s: FAIL %s: %s\n", TOOL, rep.layers[i].name,
                        rep.layers[i].why ? rep.layers[i].why : "?");
        fprintf(stderr, "%s: %s\n", TOOL, err.msg);
        rc = MARLIN_EXIT_VERIFY;
    } else {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg[0] ? err.msg : marlin_status_str(st));
        rc = MARLIN_EXIT_RUNTIME;
    }
    if (json_path && (st == MARLIN_OK || st == MARLIN_ERR_VERIFY)) {
        marlin_error_clear(&err);
        if (marlin_verify_report_write_json(&rep, json_path, &err) != MARLIN_OK) {
            fprintf(stderr, "%s: %s\n", TOOL, err.msg);
            if (rc == 0) rc = MARLIN_EXIT_RUNTIME;
        }
    }
    marlin_verify_report_free(&rep);
    return rc;
}
