/*
 * marlin-quantize - FP16/BF16 checkpoint -> INT4 checkpoint (GPTQ v1 and/or
 * Marlin tiles). Thin main: parse arguments, run marlin_quantize_run(),
 * print the summary, map the status to an exit code.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marlin_cli.h"
#include "marlin_pipeline.h"

static const char *const TOOL = "marlin-quantize";

static void usage(FILE *f) {
    fprintf(f,
"usage: marlin-quantize IN OUT [options]\n"
"\n"
"Quantizes the decoder linears of a Hugging Face checkpoint to symmetric INT4\n"
"and writes a complete checkpoint folder OUT (weights, config.json with\n"
"quantization_config, tokenizer files). IN is a .safetensors file (with or\n"
"without a config.json beside it) or a model folder (sharded or not).\n"
"\n"
"  --method rtn|gptq       quantizer (default: gptq with --calib, else rtn)\n"
"  --calib FILE            calibration tokens: safetensors with input_ids\n"
"                          I32/I64 [N, L] (GPTQ)\n"
"  --calib-rows N          use only the first N calibration rows\n"
"  --compare-rtn           GPTQ: also report RTN's output error on the same\n"
"                          calibration inputs (a column of the summary)\n"
"  --group-size G          128 (default), 64, 32 or -1 (per channel)\n"
"  --format F              gptq (default; what vLLM/transformers/TGI load),\n"
"                          marlin (IST Marlin tiles), all (both, in OUT/gptq\n"
"                          and OUT/marlin)\n"
"  --sparse 2:4            2:4 sparsity along k (Sparse-Marlin tiles with\n"
"                          --format marlin/all)\n"
"  --prune magnitude|sparsegpt  2:4 mask (default: sparsegpt with --calib)\n"
"  --act-order             GPTQ: columns in decreasing diag(H) order, static\n"
"                          groups (checkpoint keeps desc_act false)\n"
"  --damp X                GPTQ relative damping (default 0.01)\n"
"  --no-clip               no clipping search (plain absmax scales)\n"
"  --skip-incompatible     keep layers whose shape a format cannot take in\n"
"                          FP16 (listed in the report) instead of failing\n"
"  --quantize-lm-head      also quantize lm_head.weight\n"
"  --shard-size SIZE       output shard limit (default 5GB; decimal units)\n"
"  --cache DIR             GPTQ: spill activations to DIR and resume an\n"
"                          interrupted run from its last finished layer\n"
"  --save-hessians DIR     GPTQ: store per-layer Hessians in DIR\n"
"  --hessians DIR          GPTQ: reuse Hessians from DIR (no forward passes)\n"
"  --threads N             worker threads (default: all CPUs)\n"
"  --report FILE           write the per-layer report as JSON\n"
"  --force                 replace OUT if it exists\n"
"  -q, --quiet             no progress, no summary table\n"
"  -v, --verbose           progress lines also when stderr is not a terminal\n"
"  -h, --help              this help\n"
"  -V, --version           version\n"
"\n"
"Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
}

static int bad_usage(const char *msg, const char *arg) {
    return marlin_cli_usage_error(TOOL, msg, arg);
}

static volatile sig_atomic_t g_cancel;
static void on_signal(int sig) {
    (void)sig;
    g_cancel = 1;
}

typedef struct log_ctx {
    marlin_cli_progress_state *ps;
    int level;
} log_ctx;

static void on_log(void *user, const char *msg) {
    log_ctx *l = user;
    if (l->level <= 0) return;
    marlin_cli_progress_end(l->ps);
    fprintf(stderr, "%s: %s\n", TOOL, msg);
}

static void print_summary(const marlin_qrun_report *rep) {
    bool rtn_col = false;
    for (size_t i = 0; i < rep->n_layers; i++)
        if (rep->layers[i].rtn_out_err >= 0) rtn_col = true;
    printf("%-52s %13s %6s %10s %10s %s%8s\n", "layer", "shape [n,k]", "group",
           "w-err", "out-err", rtn_col ? "  rtn-out " : "", "time s");
    for (size_t i = 0; i < rep->n_layers; i++) {
        const marlin_qlayer_report *l = &rep->layers[i];
        char shape[32], werr[16], oerr[16];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)l->n, (long long)l->k);
        if (l->kept_fp16) snprintf(werr, sizeof werr, "FP16");
        else snprintf(werr, sizeof werr, "%.4f", l->rel_weight_err);
        if (l->rel_out_err >= 0) snprintf(oerr, sizeof oerr, "%.4f", l->rel_out_err);
        else snprintf(oerr, sizeof oerr, "-");
        char rerr[16] = "";
        if (rtn_col) snprintf(rerr, sizeof rerr, " %9.4f", l->rtn_out_err);
        printf("%-52s %13s %6lld %10s %10s%s %8.3f%s%s\n", l->name, shape,
               (long long)l->group_size, werr, oerr, rerr, l->seconds,
               l->note ? "  " : "", l->note ? l->note : "");
    }
    double gb = (double)rep->bytes_in / 1e9, layer_s = 0;
    for (size_t i = 0; i < rep->n_layers; i++) layer_s += rep->layers[i].seconds;
    printf("quantized %zu layers (%.3f GB in), copied %zu tensors, wrote %.3f GB "
           "[%s, %s] in %.2f s (%.2f GB/s of input); the layers' quantize + pack "
           "took %.2f s (%.2f GB/s), the rest is reading, copying, writing and "
           "fsync\n",
           rep->n_layers, gb, rep->n_copied, (double)rep->bytes_out / 1e9,
           rep->method, rep->formats, rep->seconds,
           rep->seconds > 0 ? gb / rep->seconds : 0.0, layer_s,
           layer_s > 0 ? gb / layer_s : 0.0);
}

int main(int argc, char **argv) {
    marlin_qrun_opts o = marlin_qrun_default_opts();
    const char *report_path = NULL, *method = NULL, *prune = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0, level = 1;
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
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) level = 0;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) level = 2;
        else if (!strcmp(a, "--method")) { NEED_VALUE(); method = val; }
        else if (!strcmp(a, "--calib")) { NEED_VALUE(); o.calib = val; }
        else if (!strcmp(a, "--calib-rows")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, 1, INT64_MAX, &o.calib_rows))
                return bad_usage("--calib-rows needs a positive integer", val);
        }
        else if (!strcmp(a, "--group-size")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, -1, 1 << 20, &v) || v == 0 || v < -1)
                return bad_usage("--group-size needs -1 or a positive integer", val);
            o.group_size = v;
        }
        else if (!strcmp(a, "--format")) {
            NEED_VALUE();
            if (!strcmp(val, "gptq")) o.formats = MARLIN_WRITE_GPTQ;
            else if (!strcmp(val, "marlin")) o.formats = MARLIN_WRITE_MARLIN;
            else if (!strcmp(val, "all")) o.formats = MARLIN_WRITE_GPTQ | MARLIN_WRITE_MARLIN;
            else return bad_usage("--format must be gptq, marlin or all", val);
        }
        else if (!strcmp(a, "--sparse")) {
            NEED_VALUE();
            if (strcmp(val, "2:4")) return bad_usage("--sparse supports 2:4 only", val);
            o.sparse24 = true;
        }
        else if (!strcmp(a, "--prune")) { NEED_VALUE(); prune = val; }
        else if (!strcmp(a, "--act-order")) o.act_order = true;
        else if (!strcmp(a, "--compare-rtn")) o.compare_rtn = true;
        else if (!strcmp(a, "--damp")) {
            NEED_VALUE();
            if (!marlin_cli_double(val, 1e-9, 0.999999, &o.damp))
                return bad_usage("--damp needs a number in (0, 1)", val);
        }
        else if (!strcmp(a, "--no-clip")) o.clip = false;
        else if (!strcmp(a, "--skip-incompatible")) o.skip_incompatible = true;
        else if (!strcmp(a, "--quantize-lm-head")) o.quantize_lm_head = true;
        else if (!strcmp(a, "--shard-size")) {
            NEED_VALUE();
            if (!marlin_cli_size(val, &o.shard_limit))
                return bad_usage("--shard-size needs a size like 5GB or 500MB", val);
        }
        else if (!strcmp(a, "--cache")) { NEED_VALUE(); o.cache_dir = val; }
        else if (!strcmp(a, "--save-hessians")) { NEED_VALUE(); o.save_hessians = val; }
        else if (!strcmp(a, "--hessians")) { NEED_VALUE(); o.hessians = val; }
        else if (!strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!marlin_cli_int(val, 1, 4096, &v))
                return bad_usage("--threads needs a positive integer", val);
            o.threads = (int)v;
        }
        else if (!strcmp(a, "--report")) { NEED_VALUE(); report_path = val; }
        else if (!strcmp(a, "--force")) o.force = true;
        else if (a[0] == '-' && a[1]) return bad_usage("unknown option", a);
        else {
            if (npos >= 2) return bad_usage("unexpected argument", a);
            pos[npos++] = a;
        }
#undef NEED_VALUE
    }
    if (npos != 2) return bad_usage("need IN and OUT", NULL);
    o.in = pos[0];
    o.out = pos[1];
    if (!method) o.method = (o.calib || o.hessians) ? MARLIN_METHOD_GPTQ : MARLIN_METHOD_RTN;
    else if (!strcmp(method, "rtn")) o.method = MARLIN_METHOD_RTN;
    else if (!strcmp(method, "gptq")) o.method = MARLIN_METHOD_GPTQ;
    else return bad_usage("--method must be rtn or gptq", method);
    if (o.method == MARLIN_METHOD_GPTQ && !o.calib && !o.hessians)
        return bad_usage("--method gptq needs --calib FILE or --hessians DIR", NULL);
    if (o.method == MARLIN_METHOD_RTN &&
        (o.calib || o.hessians || o.save_hessians || o.cache_dir || o.compare_rtn))
        return bad_usage("--calib, --hessians, --save-hessians, --cache and "
                         "--compare-rtn need GPTQ", NULL);
    if (prune && !o.sparse24) return bad_usage("--prune needs --sparse 2:4", prune);
    if (o.sparse24) {
        if (!prune) o.prune = o.method == MARLIN_METHOD_GPTQ ? MARLIN_PRUNE_SPARSEGPT : MARLIN_PRUNE_MAGNITUDE;
        else if (!strcmp(prune, "magnitude")) o.prune = MARLIN_PRUNE_MAGNITUDE;
        else if (!strcmp(prune, "sparsegpt")) o.prune = MARLIN_PRUNE_SPARSEGPT;
        else return bad_usage("--prune must be magnitude or sparsegpt", prune);
    }

    marlin_cli_progress_state ps;
    marlin_cli_progress_init(&ps, TOOL, level);
    o.progress.fn = marlin_cli_progress_fn;
    o.progress.user = &ps;
    o.cancel = &g_cancel;
    log_ctx lc = {&ps, level};
    o.log = on_log;
    o.log_user = &lc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    marlin_qrun_report rep;
    marlin_error err;
    marlin_error_clear(&err);
    marlin_status st = marlin_quantize_run(&o, &rep, &err);
    marlin_cli_progress_end(&ps);
    for (size_t i = 0; i < rep.n_notices && level > 0; i++)
        fprintf(stderr, "%s: note: %s\n", TOOL, rep.notices[i]);
    int rc = 0;
    if (st != MARLIN_OK) {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg[0] ? err.msg : marlin_status_str(st));
        rc = st == MARLIN_ERR_INTERRUPTED ? 130 : MARLIN_EXIT_RUNTIME;
    } else {
        if (level > 0) print_summary(&rep);
        if (report_path) {
            marlin_error_clear(&err);
            if (marlin_qrun_report_write_json(&rep, report_path, &err) != MARLIN_OK) {
                fprintf(stderr, "%s: %s\n", TOOL, err.msg);
                rc = MARLIN_EXIT_RUNTIME;
            }
        }
    }
    marlin_qrun_report_free(&rep);
    return rc;
}
