/*
 * marlin-pack - repack an existing GPTQ checkpoint (from any tool) into
 * Marlin tiles. Thin main around marlin_repack_run().
 */
#include <stdio.h>
#include <string.h>

#include "marlin_cli.h"
#include "marlin_pipeline.h"

static const char *const TOOL = "marlin-pack";

static void usage(FILE *f) {
    fprintf(f,
"usage: marlin-pack IN OUT [--force] [--threads N] [--shard-size SIZE] [-q]\n"
"\n"
"Repacks a GPTQ v1 checkpoint IN (symmetric 4-bit, qweight/qzeros/scales/\n"
"g_idx, from AutoGPTQ, GPTQModel or marlin-quantize) into a Marlin checkpoint\n"
"OUT (B/s tiles laid out as IST-DASLab/marlin, quant_method \"marlin\"), the\n"
"transformation vLLM's gptq_marlin performs at load time. Other tensors are\n"
"copied; act-order (desc_act) checkpoints are refused.\n"
"\n"
"  --force           replace OUT if it exists\n"
"  --threads N       worker threads (default: all CPUs)\n"
"  --shard-size SIZE output shard limit (default 5GB)\n"
"  -q, --quiet       no progress\n"
"  -h, --help        this help;  -V, --version  version\n"
"\n"
"Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
}

static int bad_usage(const char *msg, const char *arg) {
    return marlin_cli_usage_error(TOOL, msg, arg);
}

int main(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int npos = 0, level = 1, threads = 0;
    bool force = false;
    uint64_t shard = 0;
    int64_t v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("%s %s\n", TOOL, MARLIN_VERSION_STRING);
            return 0;
        }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) level = 0;
        else if (!strcmp(a, "--force")) force = true;
        else if (!strcmp(a, "--threads")) {
            if (!val || !marlin_cli_int(val, 1, 4096, &v)) return bad_usage("--threads needs a positive integer", val);
            threads = (int)v;
            i++;
        }
        else if (!strcmp(a, "--shard-size")) {
            if (!val || !marlin_cli_size(val, &shard)) return bad_usage("--shard-size needs a size like 5GB", val);
            i++;
        }
        else if (a[0] == '-' && a[1]) return bad_usage("unknown option", a);
        else if (npos < 2) pos[npos++] = a;
        else return bad_usage("unexpected argument", a);
    }
    if (npos != 2) return bad_usage("need IN and OUT", NULL);
    marlin_cli_progress_state ps;
    marlin_cli_progress_init(&ps, TOOL, level);
    marlin_progress p = {marlin_cli_progress_fn, &ps};
    marlin_error err;
    marlin_error_clear(&err);
    size_t done = 0;
    marlin_status st = marlin_repack_run(pos[0], pos[1], force, threads, shard, &p, &done, &err);
    marlin_cli_progress_end(&ps);
    if (st != MARLIN_OK) {
        fprintf(stderr, "%s: %s\n", TOOL, err.msg[0] ? err.msg : marlin_status_str(st));
        return MARLIN_EXIT_RUNTIME;
    }
    if (level > 0) printf("%s: repacked %zu layers into %s\n", TOOL, done, pos[1]);
    return 0;
}
