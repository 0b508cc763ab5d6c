/*
 * test_pipeline.c - quantize/ pipeline (marlin_quantize_run) and verify/
 * (marlin_verify_run) end to end on small generated checkpoints: formats,
 * group sizes, evil inputs (k not divisible by the group, NaN weights, a
 * truncated shard, an existing output folder), --skip-incompatible,
 * config-less inputs, cancellation, determinism, corruption detection.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "marlin_formats.h"
#include "marlin_pipeline.h"
#include "marlin_verify.h"
#include "marlin_model.h"
#include "verify_internal.h"

typedef struct spec {
    const char *name;
    int64_t rows, cols;  /* cols = 0: 1-D */
    float nan_at;        /* > 0: put a NaN at this flat index */
} spec;

static const char *CONFIG =
    "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 512,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"vocab_size\": 64, \"rms_norm_eps\": 1e-5,"
    " \"rope_theta\": 10000.0, \"torch_dtype\": \"float16\"}\n";

/* Writes a checkpoint folder with F16 tensors N(0, 0.02) (seeded) and, when
 * config is non-NULL, a config.json. */
static void make_ckpt(const char *dir, const spec *sp, int n, const char *config,
                      uint64_t seed) {
    marlin_error err;
    marlin_writer *w = NULL;
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(marlin_writer_create(dir, 0, &w, &err), MARLIN_OK);
    for (int i = 0; i < n; i++) {
        uint64_t shape[2] = {(uint64_t)sp[i].rows, (uint64_t)sp[i].cols};
        assert_int_equal(marlin_writer_add(w, sp[i].name, MARLIN_DT_F16,
                                           sp[i].cols ? 2 : 1, shape, &err),
                         MARLIN_OK);
    }
    assert_int_equal(marlin_writer_begin(w, &err), MARLIN_OK);
    for (int i = 0; i < n; i++) {
        int64_t cnt = sp[i].rows * (sp[i].cols ? sp[i].cols : 1);
        uint16_t *h = malloc((size_t)cnt * 2);
        assert_non_null(h);
        for (int64_t j = 0; j < cnt; j++)
            h[j] = marlin_float_to_half(sp[i].cols ? 0.02f * marlin_rng_normal(&rng) : 1.0f);
        if (sp[i].nan_at > 0) h[(int64_t)sp[i].nan_at] = 0x7e00;
        assert_int_equal(marlin_writer_put(w, sp[i].name, h, (uint64_t)cnt * 2, &err), MARLIN_OK);
        free(h);
    }
    assert_int_equal(marlin_writer_finish(w, &err), MARLIN_OK);
    marlin_writer_free(w);
    if (config) {
        char p[4096];
        snprintf(p, sizeof p, "%s/config.json", dir);
        assert_int_equal(marlin_write_file(p, config, strlen(config)), 0);
    }
}

static const spec LLAMA1[] = {
    {"model.embed_tokens.weight", 64, 256, 0},
    {"model.layers.0.input_layernorm.weight", 256, 0, 0},
    {"model.layers.0.post_attention_layernorm.weight", 256, 0, 0},
    {"model.layers.0.self_attn.q_proj.weight", 256, 256, 0},
    {"model.layers.0.self_attn.k_proj.weight", 128, 256, 0},
    {"model.layers.0.self_attn.v_proj.weight", 128, 256, 0},
    {"model.layers.0.self_attn.o_proj.weight", 256, 256, 0},
    {"model.layers.0.mlp.gate_proj.weight", 512, 256, 0},
    {"model.layers.0.mlp.up_proj.weight", 512, 256, 0},
    {"model.layers.0.mlp.down_proj.weight", 256, 512, 0},
    {"model.norm.weight", 256, 0, 0},
    {"lm_head.weight", 64, 256, 0},
};
#define NLLAMA1 ((int)(sizeof LLAMA1 / sizeof LLAMA1[0]))

static char *path2(const char *a, const char *b) {
    char *s = malloc(strlen(a) + strlen(b) + 2);
    sprintf(s, "%s/%s", a, b);
    return s;
}

static bool exists(const char *p) {
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* Nothing but the given entries in dir (no leftover temporary folders). */
static int count_entries(const char *dir) {
    char cmd[4200];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static marlin_status quantize(const char *in, const char *out, int64_t group,
                              unsigned formats, bool sparse, marlin_qrun_report *rep,
                              marlin_error *err) {
    marlin_qrun_opts o = marlin_qrun_default_opts();
    o.in = in;
    o.out = out;
    o.group_size = group;
    o.formats = formats;
    o.threads = 2;
    if (sparse) {
        o.sparse24 = true;
        o.prune = MARLIN_PRUNE_MAGNITUDE;
    }
    marlin_error_clear(err);
    return marlin_quantize_run(&o, rep, err);
}

static marlin_status verify(const char *out, const char *ref,
                            marlin_verify_report *rep, marlin_error *err) {
    marlin_verify_opts o = marlin_verify_default_opts();
    o.path = out;
    o.ref = ref;
    o.threads = 2;
    marlin_error_clear(err);
    return marlin_verify_run(&o, rep, err);
}

static void test_pipeline_formats_and_groups(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("pipe");
    char *in = path2(tmp, "in");
    make_ckpt(in, LLAMA1, NLLAMA1, CONFIG, 11);
    const int64_t groups[] = {128, 64, 32, -1};
    for (int gi = 0; gi < 4; gi++) {
        for (int f = 1; f <= 3; f++) {
            char name[64];
            snprintf(name, sizeof name, "out_%d_%d", gi, f);
            char *out = path2(tmp, name);
            marlin_qrun_report rep;
            marlin_verify_report vr;
            marlin_error err;
            marlin_status st = quantize(in, out, groups[gi], (unsigned)f, false, &rep, &err);
            if (st) fail_msg("quantize g%lld f%d: %s", (long long)groups[gi], f, err.msg);
            assert_int_equal(rep.n_layers, 7); /* q k v o gate up down */
            assert_int_equal(rep.n_copied, NLLAMA1 - 7);
            for (size_t i = 0; i < rep.n_layers; i++)
                assert_true(rep.layers[i].rel_weight_err > 0.02 &&
                            rep.layers[i].rel_weight_err < 0.2);
            marlin_qrun_report_free(&rep);
            st = verify(out, in, &vr, &err);
            if (st) fail_msg("verify g%lld f%d: %s", (long long)groups[gi], f, err.msg);
            assert_int_equal(vr.n_layers, 7);
            assert_int_equal(vr.n_failed, 0);
            for (size_t i = 0; i < vr.n_layers; i++) {
                assert_true(vr.layers[i].step_err_mean > 0.1 &&
                            vr.layers[i].step_err_mean <= vr.layers[i].step_err &&
                            vr.layers[i].step_err <= 0.51);
                assert_int_equal(vr.layers[i].cross_checked, f == 3);
            }
            marlin_verify_report_free(&vr);
            /* the layout of the output folder */
            if (f == 3) {
                char *g = path2(out, "gptq/config.json"), *m = path2(out, "marlin/config.json");
                assert_true(exists(g) && exists(m));
                free(g);
                free(m);
            } else {
                char *c = path2(out, "config.json"), *q = path2(out, "quantize_config.json");
                assert_true(exists(c));
                assert_int_equal(exists(q), f == 1);
                free(c);
                free(q);
            }
            free(out);
        }
    }
    assert_int_equal(count_entries(tmp), 13); /* in + 12 outputs, no temporaries */
    marlin_rmtree(tmp);
    free(in);
    free(tmp);
}

static void test_pipeline_sparse24(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("pipe24");
    char *in = path2(tmp, "in"), *out = path2(tmp, "out");
    make_ckpt(in, LLAMA1, NLLAMA1, CONFIG, 12);
    marlin_qrun_report rep;
    marlin_verify_report vr;
    marlin_error err;
    marlin_status st = quantize(in, out, 128, MARLIN_WRITE_GPTQ | MARLIN_WRITE_MARLIN, true, &rep, &err);
    if (st) fail_msg("quantize: %s", err.msg);
    /* 2:4 pruning removes half the weights: the error is large, but finite */
    for (size_t i = 0; i < rep.n_layers; i++)
        assert_true(rep.layers[i].rel_weight_err > 0.3 && rep.layers[i].rel_weight_err < 0.8);
    marlin_qrun_report_free(&rep);
    st = verify(out, in, &vr, &err);
    if (st) fail_msg("verify: %s", err.msg);
    assert_string_equal(vr.formats, "marlin24+gptq");
    assert_int_equal(vr.n_failed, 0);
    marlin_verify_report_free(&vr);
    marlin_rmtree(tmp);
    free(in);
    free(out);
    free(tmp);
}

static void test_pipeline_evil_inputs(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("evil");
    marlin_qrun_report rep;
    marlin_error err;
    marlin_status st;

    /* k = 96 is not a multiple of group 64 (nor of Marlin's 128) */
    spec bad_k[] = {{"model.layers.0.mlp.down_proj.weight", 64, 96, 0}};
    char *in1 = path2(tmp, "badk"), *out1 = path2(tmp, "badk_out");
    make_ckpt(in1, bad_k, 1, CONFIG, 1);
    st = quantize(in1, out1, 64, MARLIN_WRITE_GPTQ, false, &rep, &err);
    assert_int_equal(st, MARLIN_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "model.layers.0.mlp.down_proj.weight"));
    assert_non_null(strstr(err.msg, "--skip-incompatible"));
    assert_false(exists(out1));
    marlin_qrun_report_free(&rep);

    /* --skip-incompatible keeps it FP16 (but there must be something to do) */
    spec mixed[] = {{"model.layers.0.mlp.down_proj.weight", 64, 96, 0},
                    {"model.layers.0.mlp.up_proj.weight", 96, 128, 0}};
    char *in2 = path2(tmp, "mixed"), *out2 = path2(tmp, "mixed_out");
    make_ckpt(in2, mixed, 2, CONFIG, 2);
    marlin_qrun_opts o = marlin_qrun_default_opts();
    o.in = in2;
    o.out = out2;
    o.group_size = 64;
    o.skip_incompatible = true;
    st = marlin_quantize_run(&o, &rep, &err);
    if (st) fail_msg("skip-incompatible: %s", err.msg);
    assert_int_equal(rep.n_layers, 2);
    int kept = 0;
    for (size_t i = 0; i < rep.n_layers; i++)
        if (rep.layers[i].kept_fp16) {
            kept++;
            assert_string_equal(rep.layers[i].name, "model.layers.0.mlp.down_proj.weight");
            assert_non_null(rep.layers[i].note);
        }
    assert_int_equal(kept, 1);
    marlin_qrun_report_free(&rep);
    marlin_model *m = NULL;
    char *out2_w = path2(out2, "model.safetensors");
    assert_int_equal(marlin_model_open(out2, &m, &err), MARLIN_OK);
    assert_non_null(marlin_model_find(m, "model.layers.0.mlp.down_proj.weight", NULL));
    assert_non_null(marlin_model_find(m, "model.layers.0.mlp.up_proj.qweight", NULL));
    assert_null(marlin_model_find(m, "model.layers.0.mlp.up_proj.weight", NULL));
    marlin_model_close(m);
    free(out2_w);

    /* NaN weights: rejected with the tensor's name, nothing written */
    spec nan[] = {{"model.layers.0.self_attn.q_proj.weight", 128, 128, 777}};
    char *in3 = path2(tmp, "nan"), *out3 = path2(tmp, "nan_out");
    make_ckpt(in3, nan, 1, CONFIG, 3);
    st = quantize(in3, out3, 128, MARLIN_WRITE_GPTQ, false, &rep, &err);
    assert_int_equal(st, MARLIN_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "model.layers.0.self_attn.q_proj.weight"));
    assert_false(exists(out3));
    marlin_qrun_report_free(&rep);

    /* a truncated shard: one line naming the file, nothing written */
    char *in4 = path2(tmp, "trunc"), *out4 = path2(tmp, "trunc_out");
    make_ckpt(in4, LLAMA1, NLLAMA1, CONFIG, 4);
    char *shard = path2(in4, "model.safetensors");
    struct stat sb;
    assert_int_equal(stat(shard, &sb), 0);
    assert_int_equal(truncate(shard, sb.st_size - 1000), 0);
    st = quantize(in4, out4, 128, MARLIN_WRITE_GPTQ, false, &rep, &err);
    assert_int_equal(st, MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.safetensors"));
    assert_null(strchr(err.msg, '\n'));
    assert_false(exists(out4));
    marlin_qrun_report_free(&rep);

    /* an existing output folder is never touched without force */
    char *in5 = path2(tmp, "ok"), *out5 = path2(tmp, "exists");
    make_ckpt(in5, LLAMA1, NLLAMA1, CONFIG, 5);
    assert_int_equal(mkdir(out5, 0777), 0);
    char *marker = path2(out5, "marker");
    assert_int_equal(marlin_write_file(marker, "x", 1), 0);
    st = quantize(in5, out5, 128, MARLIN_WRITE_GPTQ, false, &rep, &err);
    assert_int_equal(st, MARLIN_ERR_EXISTS);
    assert_true(exists(marker));
    marlin_qrun_report_free(&rep);

    /* cancellation: stops, removes its temporary folder, leaves no output */
    char *out6 = path2(tmp, "cancel");
    volatile sig_atomic_t cancel = 1;
    o = marlin_qrun_default_opts();
    o.in = in5;
    o.out = out6;
    o.cancel = &cancel;
    st = marlin_quantize_run(&o, &rep, &err);
    assert_int_equal(st, MARLIN_ERR_INTERRUPTED);
    assert_false(exists(out6));
    marlin_qrun_report_free(&rep);

    /* exactly the folders made above: no temporary leftovers */
    assert_int_equal(count_entries(tmp), 7);
    marlin_rmtree(tmp);
    free(in1); free(out1); free(in2); free(out2); free(in3); free(out3);
    free(in4); free(out4); free(shard); free(in5); free(out5); free(marker);
    free(out6); free(tmp);
}

static void test_pipeline_no_config(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("nocfg");
    char *in = path2(tmp, "in"), *out = path2(tmp, "out");
    spec sp[] = {{"blocks.0.attn.q_proj.weight", 128, 256, 0},
                 {"blocks.0.attn.norm.weight", 256, 0, 0},
                 {"blocks.0.mlp.fc_proj.weight", 256, 128, 0},
                 {"head.weight", 64, 128, 0}};
    make_ckpt(in, sp, 4, NULL, 7);
    char *file = path2(in, "model.safetensors");
    marlin_qrun_report rep;
    marlin_error err;
    marlin_status st = quantize(file, out, 128, MARLIN_WRITE_GPTQ, false, &rep, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(rep.n_layers, 2);
    assert_int_equal(rep.n_copied, 2);
    bool said = false;
    for (size_t i = 0; i < rep.n_notices; i++)
        if (strstr(rep.notices[i], "_proj.weight")) said = true;
    assert_true(said);
    marlin_qrun_report_free(&rep);
    marlin_verify_report vr;
    st = verify(out, file, &vr, &err);
    if (st) fail_msg("%s", err.msg);
    marlin_verify_report_free(&vr);
    marlin_rmtree(tmp);
    free(in); free(out); free(file); free(tmp);
}

/* Same input, same options: byte-identical output, for 1 and many threads. */
static void test_pipeline_deterministic(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("det");
    char *in = path2(tmp, "in");
    make_ckpt(in, LLAMA1, NLLAMA1, CONFIG, 21);
    const int threads[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "o%d", i);
        char *out = path2(tmp, name);
        marlin_qrun_opts o = marlin_qrun_default_opts();
        o.in = in;
        o.out = out;
        o.formats = MARLIN_WRITE_GPTQ | MARLIN_WRITE_MARLIN;
        o.threads = threads[i];
        marlin_qrun_report rep;
        marlin_error err;
        if (marlin_quantize_run(&o, &rep, &err)) fail_msg("%s", err.msg);
        marlin_qrun_report_free(&rep);
        free(out);
    }
    assert_int_equal(marlin_test_system("cd '%s' && cmp o0/gptq/model.safetensors o1/gptq/model.safetensors"
                                        " && cmp o0/marlin/model.safetensors o1/marlin/model.safetensors"
                                        " && cmp o0/gptq/config.json o1/gptq/config.json", tmp), 0);
    marlin_rmtree(tmp);
    free(in);
    free(tmp);
}

/* Flips bytes in a packed tensor of a written checkpoint. */
static void corrupt(const char *file, const char *tensor, uint64_t at, uint8_t xor_mask) {
    marlin_st_file *f = NULL;
    marlin_error err;
    assert_int_equal(marlin_st_open(file, &f, &err), MARLIN_OK);
    const marlin_tensor *t = marlin_st_find(f, tensor);
    assert_non_null(t);
    /* file offset = 8 + N + begin, N read from the file's first 8 bytes */
    FILE *fp = fopen(file, "r+b");
    assert_non_null(fp);
    uint8_t nb[8];
    assert_int_equal(fread(nb, 1, 8, fp), 8);
    uint64_t N = 0;
    for (int i = 7; i >= 0; i--) N = N << 8 | nb[i];
    long pos = (long)(8 + N + t->begin + at);
    marlin_st_close(f);
    assert_int_equal(fseek(fp, pos, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, pos, SEEK_SET), 0);
    fputc(c ^ xor_mask, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_pipeline_verify_detects_corruption(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("corrupt");
    char *in = path2(tmp, "in"), *out = path2(tmp, "out");
    make_ckpt(in, LLAMA1, NLLAMA1, CONFIG, 31);
    marlin_qrun_report rep;
    marlin_verify_report vr;
    marlin_error err;
    if (quantize(in, out, 128, MARLIN_WRITE_GPTQ | MARLIN_WRITE_MARLIN, false, &rep, &err))
        fail_msg("%s", err.msg);
    marlin_qrun_report_free(&rep);
    char *mfile = path2(out, "marlin/model.safetensors");
    char *gfile = path2(out, "gptq/model.safetensors");

    /* one nibble of the Marlin tiles: the cross-format comparison fails */
    corrupt(mfile, "model.layers.0.mlp.up_proj.B", 1000, 0x10);
    assert_int_equal(verify(out, in, &vr, &err), MARLIN_ERR_VERIFY);
    assert_int_equal(vr.n_failed, 1);
    for (size_t i = 0; i < vr.n_layers; i++)
        if (!vr.layers[i].pass) {
            assert_string_equal(vr.layers[i].name, "model.layers.0.mlp.up_proj");
            assert_non_null(strstr(vr.layers[i].why, "codes differ"));
        }
    marlin_verify_report_free(&vr);
    corrupt(mfile, "model.layers.0.mlp.up_proj.B", 1000, 0x10); /* undo */
    assert_int_equal(verify(out, in, &vr, &err), MARLIN_OK);
    marlin_verify_report_free(&vr);

    /* a qzeros word that is not 0x77777777 (GPTQ v2 / asymmetric) */
    corrupt(gfile, "model.layers.0.self_attn.k_proj.qzeros", 0, 0x0f);
    assert_int_equal(verify(out, in, &vr, &err), MARLIN_ERR_VERIFY);
    assert_int_equal(vr.n_failed, 1);
    marlin_verify_report_free(&vr);
    corrupt(gfile, "model.layers.0.self_attn.k_proj.qzeros", 0, 0x0f);

    /* the GPTQ checkpoint alone against the reference: a scale scaled by ~2
     * (exponent bit) breaks the step bound even though the format is valid */
    char *gdir = path2(out, "gptq");
    corrupt(gfile, "model.layers.0.self_attn.o_proj.scales", 1, 0x04);
    assert_int_equal(verify(gdir, in, &vr, &err), MARLIN_ERR_VERIFY);
    assert_int_equal(vr.n_failed, 1);
    for (size_t i = 0; i < vr.n_layers; i++)
        if (!vr.layers[i].pass) assert_non_null(strstr(vr.layers[i].why, "steps exceeds"));
    marlin_verify_report_free(&vr);
    /* without the reference the same checkpoint is well formed */
    assert_int_equal(verify(gdir, NULL, &vr, &err), MARLIN_OK);
    marlin_verify_report_free(&vr);

    marlin_rmtree(tmp);
    free(in); free(out); free(mfile); free(gfile); free(gdir); free(tmp);
}

/* An act-order GPTQ checkpoint (g_idx permuted between two groups, every
 * group still of size g): verify decodes it with its g_idx, marlin-pack
 * refuses it because the Marlin format cannot carry the permutation. */
static void test_pipeline_act_order_gidx(void **state) {
    (void)state;
    char *tmp = marlin_test_tmpdir("actorder");
    char *in = path2(tmp, "in"), *out = path2(tmp, "out"), *rp = path2(tmp, "rp");
    make_ckpt(in, LLAMA1, NLLAMA1, CONFIG, 41);
    marlin_qrun_report rep;
    marlin_error err;
    if (quantize(in, out, 128, MARLIN_WRITE_GPTQ, false, &rep, &err)) fail_msg("%s", err.msg);
    marlin_qrun_report_free(&rep);
    char *file = path2(out, "model.safetensors");
    /* g_idx[0] = 0 <-> g_idx[128] = 1: little-endian int32, low bytes */
    corrupt(file, "model.layers.0.mlp.up_proj.g_idx", 0, 0x01);
    corrupt(file, "model.layers.0.mlp.up_proj.g_idx", 128 * 4, 0x01);
    marlin_qckpt *c = NULL;
    assert_int_equal(marlin_qckpt_open(out, &c, &err), MARLIN_OK);
    int64_t li = marlin_qckpt_find(c, "model.layers.0.mlp.up_proj");
    assert_true(li >= 0);
    assert_true(marlin_qckpt_layer(c, (size_t)li)->act_order);
    marlin_qckpt_close(c);
    size_t done = 0;
    assert_int_equal(marlin_repack_run(out, rp, false, 2, 0, NULL, &done, &err),
                     MARLIN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "act-order"));
    assert_false(exists(rp));
    /* a g_idx that is not a valid grouping at all is a format error */
    corrupt(file, "model.layers.0.mlp.up_proj.g_idx", 4, 0x40);
    assert_int_equal(marlin_qckpt_open(out, &c, &err), MARLIN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "g_idx"));
    marlin_rmtree(tmp);
    free(in); free(out); free(rp); free(file); free(tmp);
}

/* marlin-verify --calib: the captured inputs are the reference model's own
 * (q/k/v share one input; layer 0's is RMSNorm(embed) with the norm weight;
 * every layer's shape matches its linear). */
static void test_verify_calib_activations(void **state) {
    (void)state;
    const char *mp = marlin_shared_path("models/shakespeare-llama-13m");
    if (!mp) { print_message("SKIP: shared model not found\n"); skip(); }
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", mp);
    const char *cp = marlin_shared_path("data/shakespeare/calib-128x256.safetensors");
    if (!cp) { print_message("SKIP: calibration tokens not found\n"); skip(); }
    char calib[4096];
    snprintf(calib, sizeof calib, "%s", cp);
    marlin_model *m = NULL;
    marlin_error err;
    verify_acts *a = NULL;
    assert_int_equal(marlin_model_open(model_path, &m, &err), MARLIN_OK);
    assert_int_equal(verify_acts_capture(m, calib, 12, 2, &a, &err), MARLIN_OK);
    int64_t rows = 0, r2 = 0;
    const float *q = verify_acts_for(a, "model.layers.0.self_attn.q_proj", 512, &rows);
    const float *v = verify_acts_for(a, "model.layers.0.self_attn.v_proj", 512, &r2);
    assert_non_null(q);
    assert_ptr_equal(q, v);
    assert_int_equal(rows, 12);
    assert_non_null(verify_acts_for(a, "model.layers.3.mlp.down_proj", 1536, &rows));
    assert_non_null(verify_acts_for(a, "model.layers.2.self_attn.o_proj", 512, &rows));
    assert_null(verify_acts_for(a, "model.layers.2.self_attn.o_proj", 256, &rows));
    assert_null(verify_acts_for(a, "model.layers.9.mlp.up_proj", 512, &rows));
    assert_null(verify_acts_for(a, "lm_head", 512, &rows));
    /* layer 0 input = RMSNorm(embed[ids]) * w, computed here from the file */
    marlin_tokens tok;
    assert_int_equal(marlin_tokens_load(calib, &tok, &err), MARLIN_OK);
    const marlin_st_file *sh = NULL;
    const marlin_tensor *te = marlin_model_find(m, "model.embed_tokens.weight", &sh);
    const marlin_st_file *sh2 = NULL;
    const marlin_tensor *tn = marlin_model_find(m, "model.layers.0.input_layernorm.weight", &sh2);
    float *E = malloc((size_t)te->numel * 4), *nw = malloc(512 * 4);
    assert_int_equal(marlin_st_read_f32(sh, te, E, &err), MARLIN_OK);
    assert_int_equal(marlin_st_read_f32(sh2, tn, nw, &err), MARLIN_OK);
    double worst = 0;
    for (int t = 0; t < 12; t++) {
        const float *e = E + (int64_t)tok.ids[t] * 512;
        double ss = 0;
        for (int j = 0; j < 512; j++) ss += (double)e[j] * e[j];
        double inv = 1.0 / sqrt(ss / 512 + marlin_model_config(m)->rms_norm_eps);
        for (int j = 0; j < 512; j++) {
            double want = e[j] * inv * nw[j];
            double d = fabs(want - q[t * 512 + j]) / (fabs(want) + 1e-3);
            if (d > worst) worst = d;
        }
    }
    assert_true(worst < 1e-4);
    free(E);
    free(nw);
    marlin_tokens_free(&tok);
    verify_acts_free(a);
    marlin_model_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_formats_and_groups),
        cmocka_unit_test(test_pipeline_sparse24),
        cmocka_unit_test(test_pipeline_evil_inputs),
        cmocka_unit_test(test_pipeline_no_config),
        cmocka_unit_test(test_pipeline_deterministic),
        cmocka_unit_test(test_pipeline_verify_detects_corruption),
        cmocka_unit_test(test_pipeline_act_order_gidx),
        cmocka_unit_test(test_verify_calib_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
