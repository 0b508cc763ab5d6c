/*
 * marlin-eval - perplexity of a checkpoint on windows of token ids.
 *
 *   marlin-eval MODEL --tokens FILE [--rows N] [--threads N] [--json FILE]
 *               [--batch-tokens N] [--cache-mb N] [--bench] [-q|-v]
 *
 * Perplexity = exp(mean next-token NLL over positions 1..L-1 of every
 * window), as IST-DASLab/gptq's llama_eval; the forward is model/'s fp32
 * CPU Llama (marlin_model.h). stdout ends with exactly one line
 *   perplexity <ppl> nll <mean nll> tokens <count>
 * Exit codes (design.md "Tools"): 0 ok, 1 runtime error, 2 usage error.
 * Manual: verify/marlin-eval.md.
 *
 * This file only parses arguments, calls the library and maps statuses to
 * exit codes and messages.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "marlin_cli.h"
#include "marlin_common.h"
#include "marlin_formats.h"
#include "marlin_model.h"
#include "marlin_pipeline.h"

#define TOOL "marlin-eval"

static void usage(FILE *f) {
    fprintf(f,
        "Usage: " TOOL " MODEL --tokens FILE [options]\n"
        "Perplexity of a checkpoint: exp(mean next-token NLL over positions\n"
        "1..L-1 of every window) with an fp32 CPU forward.\n"
        "\n"
        "  MODEL               .safetensors file (with config.json beside it)\n"
        "                      or a model folder (sharded or not)\n"
        "  --tokens FILE       safetensors with input_ids I32/I64 [N, L]\n"
        "  --rows N            evaluate the first N windows (default: all)\n"
        "  --threads N         threads (default: all online CPUs)\n"
        "  --json FILE         also write the result as JSON\n"
        "  --batch-tokens N    tokens per forward batch (default 4096)\n"
        "  --cache-mb N        keep fp32 blocks resident when they all fit\n"
        "                      in N MiB, else reconvert per batch (default\n"
        "                      2048)\n"
        "  --bench             also report tokens/s and the fraction of the\n"
        "                      sgemm peak measured in the same run (stderr)\n"
        "  -q, --quiet         only the result line\n"
        "  -v, --verbose       more detail on stderr\n"
        "  -h, --help          this help\n"
        "  -V, --version       print the version (-qV: the bare number)\n"
        "\n"
        "stdout ends with: perplexity <ppl> nll <mean nll> tokens <count>\n"
        "Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
}

/* One line naming the problem, then the hint; exit code 2. */
static int usage_error(const char *what, const char *arg) {
    if (arg)
        fprintf(stderr, TOOL ": %s '%s'\n", what, arg);
    else
        fprintf(stderr, TOOL ": %s\n", what);
    fprintf(stderr, "Try '" TOOL " --help' for more information.\n");
    return MARLIN_EXIT_USAGE;
}

/* ------------------------------------------------------------ weights */
/* The weight-source hook. Plain F16/BF16/F32 checkpoints are read by
 * marlin_weight_source_from_model. A quantized checkpoint stores each linear
 * as <p>.qweight/.scales (GPTQ v1) or <p>.B/.s (Marlin) instead of
 * <p>.weight; it plugs in here as a marlin_weight_source whose read()
 * dequantizes those through pack/'s unpack functions for the names
 * "<p>.weight" and passes every other name to the plain source. */
/* The weights of MODEL: as stored, or, for a quantized checkpoint (GPTQ v1,
 * Marlin, Sparse-Marlin), the quantized linears dequantized on the CPU
 * through pack/'s unpackers (quantize/qckpt_source.c). */
static marlin_status open_weights(const marlin_model *m, const char *path,
                                  marlin_qckpt **qc, void **qstate,
                                  marlin_weight_source *src,
                                  marlin_error *err) {
    const marlin_config *cfg = marlin_model_config(m);
    *qc = NULL;
    *qstate = NULL;
    if (!cfg || !cfg->quant.present) {
        marlin_weight_source_from_model(m, src);
        return MARLIN_OK;
    }
    marlin_status st = marlin_qckpt_open(path, qc, err);
    if (st == MARLIN_OK) st = marlin_qckpt_weight_source(*qc, 0, src, qstate, err);
    return st;
}

/* ------------------------------------------------------------ output */
static int write_json(const char *path, const char *model, const char *tokens,
                      const marlin_tokens *t, const marlin_eval_result *r,
                      int threads, marlin_error *err) {
    char tmp[4096];
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:f, s:i}", "tool", TOOL,
        "model", model, "tokens_file", tokens, "perplexity", r->perplexity,
        "nll", r->nll, "tokens", (json_int_t)r->tokens, "rows",
        (json_int_t)r->rows, "seqlen", (json_int_t)t->seqlen, "seconds",
        r->seconds, "threads", threads);
    if (!o) {
        marlin_fail(err, MARLIN_ERR_NOMEM, "%s: cannot build JSON", path);
        return -1;
    }
    json_object_set_new(o, "version", json_string(MARLIN_VERSION_STRING));
    /* temporary name + rename: a reader never sees half a file */
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    int rc = json_dump_file(o, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (rc != 0 || rename(tmp, path) != 0) {
        marlin_fail(err, MARLIN_ERR_IO, "%s: cannot write: %s", path,
                    strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *tokens_path = NULL, *json_path = NULL;
    int64_t rows = 0, threads = 0, batch_tokens = 0, cache_mb = 0;
    int verbosity = 1;
    bool bench = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (a[0] == '-' && a[1] != '-' && a[1] != '\0' &&
            strspn(a + 1, "hqvV") == strlen(a + 1)) {
            /* bundled short flags, applied left to right: -qV, -vv */
            for (const char *c = a + 1; *c; c++) {
                if (*c == 'q') verbosity--;
                else if (*c == 'v') verbosity++;
                else if (*c == 'h') {
                    usage(stdout);
                    return MARLIN_EXIT_OK;
                } else { /* V: -qV prints the bare version */
                    printf(verbosity < 1 ? "%s\n" : TOOL " %s\n",
                           MARLIN_VERSION_STRING);
                    return MARLIN_EXIT_OK;
                }
            }
        } else if (!strcmp(a, "--help")) {
            usage(stdout);
            return MARLIN_EXIT_OK;
        } else if (!strcmp(a, "--version")) {
            printf(verbosity < 1 ? "%s\n" : TOOL " %s\n", MARLIN_VERSION_STRING);
            return MARLIN_EXIT_OK;
        } else if (!strcmp(a, "--quiet")) {
            verbosity--;
        } else if (!strcmp(a, "--verbose")) {
            verbosity++;
        } else if (!strcmp(a, "--bench")) {
            bench = true;
        } else if (!strcmp(a, "--tokens") || !strcmp(a, "--json") ||
                   !strcmp(a, "--rows") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--batch-tokens") || !strcmp(a, "--cache-mb")) {
            if (!has_val) return usage_error("a value is needed after", a);
            const char *v = argv[++i];
            bool ok = true;
            if (!strcmp(a, "--tokens")) tokens_path = v;
            else if (!strcmp(a, "--json")) json_path = v;
            else if (!strcmp(a, "--rows")) ok = marlin_cli_int(v, 1, INT64_MAX, &rows);
            else if (!strcmp(a, "--threads"))
                ok = marlin_cli_int(v, 1, 4096, &threads);
            else if (!strcmp(a, "--batch-tokens"))
                ok = marlin_cli_int(v, 1, INT32_MAX, &batch_tokens);
            else ok = marlin_cli_int(v, 1, INT64_MAX / (1 << 20), &cache_mb);
            if (!ok) {
                fprintf(stderr, TOOL ": invalid value '%s' for %s\n", v, a);
                fprintf(stderr, "Try '" TOOL " --help' for more information.\n");
                return MARLIN_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            return usage_error("unexpected argument", a);
        }
    }
    if (!model_path) return usage_error("missing MODEL", NULL);
    if (!tokens_path) return usage_error("missing --tokens FILE", NULL);

    int rc = MARLIN_EXIT_RUNTIME;
    marlin_error err = {0};
    marlin_model *model = NULL;
    marlin_llama *llama = NULL;
    marlin_tokens tok = {0};
    marlin_weight_source src;
    marlin_qckpt *qck = NULL;
    void *qstate = NULL;
    marlin_eval_result res;
    marlin_cli_progress_state prog;

    marlin_status st = marlin_model_open(model_path, &model, &err);
    if (st != MARLIN_OK) goto fail;
    if (verbosity >= 2)
        for (size_t i = 0; i < marlin_model_warning_count(model); i++)
            fprintf(stderr, TOOL ": warning: %s\n",
                    marlin_model_warning(model, i));
    st = marlin_tokens_load(tokens_path, &tok, &err);
    if (st != MARLIN_OK) goto fail;
    st = open_weights(model, model_path, &qck, &qstate, &src, &err);
    if (st != MARLIN_OK) goto fail;
    st = marlin_llama_create(marlin_model_config(model), &src, &llama, &err);
    if (st != MARLIN_OK) {
        marlin_error_prefix(&err, "%s", model_path);
        goto fail;
    }
    marlin_llama_set_threads(llama, (int)threads);
    int nthreads = threads > 0 ? (int)threads : marlin_cpu_count();
    /* check ids before any weight is converted: a bad token file is a
     * one-line error, not a minute of work first */
    st = marlin_tokens_check(&tok, marlin_model_config(model)->vocab_size,
                             tokens_path, &err);
    if (st != MARLIN_OK) goto fail;

    marlin_eval_opts opts = {0};
    opts.rows = rows;
    opts.batch_tokens = batch_tokens;
    opts.cache_bytes = (uint64_t)cache_mb << 20;
    marlin_cli_progress_init(&prog, TOOL, verbosity);
    opts.progress.fn = marlin_cli_progress_fn;
    opts.progress.user = &prog;
    double cpu0 = marlin_cpu_seconds();
    st = marlin_llama_perplexity(llama, &tok, &opts, &res, &err);
    double cpu_eval = marlin_cpu_seconds() - cpu0;
    marlin_cli_progress_end(&prog);
    if (st != MARLIN_OK) goto fail;

    if (verbosity >= 1)
        fprintf(stderr,
                TOOL ": %" PRId64 " windows x %" PRId64 " tokens, %d threads, "
                "%.2f s (%.0f tokens/s)\n", res.rows, tok.seqlen, nthreads,
                res.seconds, (double)(res.rows * tok.seqlen) / res.seconds);
    if (bench) {
        /* the largest projection shape of a batch, measured now */
        const marlin_config *c = marlin_model_config(model);
        int64_t bt = batch_tokens > 0 ? batch_tokens : 4096;
        int64_t bseq = bt / tok.seqlen < 1 ? 1 : bt / tok.seqlen;
        if (bseq > res.rows) bseq = res.rows;
        marlin_sgemm_rate r;
        st = marlin_sgemm_gflops(bseq * tok.seqlen, c->intermediate_size,
                                 c->hidden_size, nthreads, 2.0, &r, &err);
        if (st != MARLIN_OK) goto fail;
        double peak = r.tiled > r.openblas ? r.tiled : r.openblas;
        double peak_cpu = r.tiled_cpu > r.openblas_cpu ? r.tiled_cpu
                                                       : r.openblas_cpu;
        double fl = marlin_llama_block_flops(llama, res.rows, tok.seqlen) *
                    (double)c->num_hidden_layers;
        /* the whole run: blocks + lm_head (2*hidden*vocab per token) */
        double fl_all = fl + 2.0 * (double)c->hidden_size *
                                 (double)c->vocab_size *
                                 (double)(res.rows * tok.seqlen);
        double gf = fl / res.block_seconds * 1e-9;
        fprintf(stderr,
                TOOL ": bench: blocks %.3f s wall = %.0f tokens/s, %.1f "
                "GFLOP/s; sgemm %lldx%lldx%lld on %d threads: tiled %.1f, "
                "OpenBLAS-threaded %.1f GFLOP/s; blocks at %.0f%% of the "
                "sgemm peak (wall)\n",
                res.block_seconds,
                (double)(res.rows * tok.seqlen) / res.block_seconds, gf,
                (long long)(bseq * tok.seqlen),
                (long long)c->intermediate_size, (long long)c->hidden_size,
                nthreads, r.tiled, r.openblas, 100.0 * gf / peak);
        fprintf(stderr,
                TOOL ": bench: per CPU-second: eval %.1f GFLOP (%.0f "
                "tokens), sgemm tiled %.1f, OpenBLAS-threaded %.1f GFLOP; "
                "eval at %.0f%% of the sgemm peak (CPU time %.2f s for "
                "%.2f s wall)\n",
                fl_all / cpu_eval * 1e-9,
                (double)(res.rows * tok.seqlen) / cpu_eval, r.tiled_cpu,
                r.openblas_cpu, 100.0 * fl_all / cpu_eval * 1e-9 / peak_cpu,
                cpu_eval, res.seconds);
    }
    if (json_path &&
        write_json(json_path, model_path, tokens_path, &tok, &res, nthreads,
                   &err) != 0)
        goto fail;
    printf("perplexity %.6f nll %.6f tokens %" PRId64 "\n", res.perplexity,
           res.nll, res.tokens);
    if (fflush(stdout) != 0) {
        marlin_fail(&err, MARLIN_ERR_IO, "stdout: %s", strerror(errno));
        goto fail;
    }
    rc = MARLIN_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, TOOL ": %s\n", err.msg[0] ? err.msg : marlin_status_str(st));
out:
    marlin_llama_free(llama);
    free(qstate);
    marlin_qckpt_close(qck);
    marlin_tokens_free(&tok);
    marlin_model_close(model);
    return rc;
}
