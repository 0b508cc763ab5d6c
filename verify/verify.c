/*
 * verify.c - marlin_verify_run(): the checks listed in marlin_verify.h.
 *
 * Thresholds (style.md habit 17: derived, not guessed):
 *
 * Step error. For each group (one output row, g consecutive inputs) of a
 * layer with reference weights W and decoded weights Wq,
 *     E = sqrt( mean over the group of ((w - wq) / s1)^2 ),
 * where s1 = 2 * max|w| / 15 is the plain (unclipped) RTN step of the
 * element's own group in the REFERENCE weights. Why this unit: it is what a
 * correct 4-bit code can be judged against whatever the scales stored.
 *  - RTN: with scale s1 every element rounds to within s1/2 (the grid
 *    (q-8)*s1, q = 0..15, spans [-8 s1, 7 s1] and |w| <= 7.5 s1, the clamp
 *    of +7.5 to +7 costs exactly s1/2). Storing the scale in fp16 changes it
 *    by a factor (1 + d), |d| <= 2^-11, which moves the worst element by at
 *    most 7.5 |d| s1 < 0.004 s1. The clipping search keeps another scale only
 *    if its squared error over the group is not larger than that of s1, so
 *    the group's mean squared error stays <= (0.504 s1)^2. Bound: E <= 0.504;
 *    we accept E <= RTN_STEP_BOUND = 0.51. Every layout or decode bug we can
 *    think of breaks it by a wide margin: a zero point off by one adds a full
 *    step to every element (E >= 1), scrambled codes or scales give errors of
 *    the size of the weights themselves (E ~ 3-4 for Gaussian weights, whose
 *    group max is ~3 sigma, i.e. sigma ~ 2.5 s1).
 *  - GPTQ: error feedback deliberately moves codes away from the nearest
 *    level to compensate earlier columns, so no per-element bound exists.
 *    Measured on the shared 13M model (128x256 calibration, g128): layer
 *    means 0.42-0.50, the worst group 1.78 (a down_proj). The checks keep
 *    the failures that matter detectable: a zero point off by one adds a
 *    full step to every element (layer mean >= 1.1 on top of GPTQ's own),
 *    scrambled codes/scales give ~3-4 everywhere, a corrupted group scale
 *    (x2) gives ~2.5-4 in that group. Bounds: layer mean <=
 *    GPTQ_MEAN_BOUND = 1.0, worst group <= GPTQ_STEP_BOUND = 3.0.
 *  - 2:4: positions whose decoded value is 0 are pruned or rounded to zero,
 *    and every run of 4 along k must decode to at least two zeros (this
 *    alone catches a wrong zero point: pruned code 8 would decode to +-s).
 *    RTN: the bounds above hold for the survivors (their scale comes from
 *    the survivors, <= s1). GPTQ/SparseGPT: the error feedback moves the
 *    survivors to make up for the pruned half, by several steps (measured
 *    on the shared model: layer means 0.8-2.3, worst group 12.6 steps), so
 *    only the layer's relative error is bounded: rel_weight_err <=
 *    GPTQ24_REL_BOUND = 1.0 (measured 0.43-0.72; magnitude pruning alone
 *    ~0.37; unrelated weights of the same spread give ~1.3-1.4).
 *
 * Output error on random X (N(0,1), `batch` rows): E||X D^T||^2 = batch *
 * ||D||_F^2 for D = W - Wq, so rel_out_err estimates rel_weight_err; it is
 * reported, the weight checks above carry the verdict on the CPU.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "marlin_formats.h"
#include "marlin_pack.h"
#include "marlin_pipeline.h"
#include "marlin_verify.h"
#include "verify_internal.h"

#define RTN_STEP_BOUND 0.51  /* worst group and layer mean, RTN */
#define GPTQ_STEP_BOUND 3.0  /* worst group, GPTQ (and unknown quantizers) */
#define GPTQ_MEAN_BOUND 1.0  /* layer mean, GPTQ */
#define GPTQ24_REL_BOUND 1.0 /* relative weight error, GPTQ/SparseGPT 2:4 */

marlin_verify_opts marlin_verify_default_opts(void) {
    marlin_verify_opts o;
    memset(&o, 0, sizeof o);
    o.batch = 16;
    o.seed = 1;
    return o;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static const char *fmt_name(marlin_qformat f) {
    return f == MARLIN_QFMT_GPTQ ? "gptq" : f == MARLIN_QFMT_MARLIN ? "marlin" : "marlin24";
}

marlin_status verify_layer_fail_msg(marlin_verify_layer *L, const char *fmt, ...) {
    if (L->why) return MARLIN_OK; /* keep the first reason */
    va_list ap;
    char buf[512];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    L->pass = false;
    L->why = strdup(buf);
    return L->why ? MARLIN_OK : MARLIN_ERR_NOMEM;
}

/* Scales must be finite and positive (fp16 bit patterns). */
static int64_t first_bad_scale(const uint16_t *s, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        uint16_t h = s[i];
        if ((h & 0x8000u) || (h & 0x7c00u) == 0x7c00u || (h & 0x7fffu) == 0) return i;
    }
    return -1;
}

/* Step error (see the file comment), per (row, group): the RMS of
 * (w - wq) / s1 over the group's elements (survivors only for 2:4). Returns
 * the largest group value (the verdict: the RTN bound holds for every group
 * since the clipping search works group by group, and a single corrupted
 * scale or tile shows there) and the layer-wide RMS in *mean. */
static double step_error(const float *W, const float *Wq, int64_t n, int64_t k,
                         int64_t group, bool survivors_only, double *mean,
                         bool *zero_group_bad) {
    int64_t g = group == -1 ? k : group;
    double total = 0, worst = 0;
    int64_t cnt_total = 0;
    *zero_group_bad = false;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t c0 = 0; c0 < k; c0 += g) {
            const float *w = W + r * k + c0, *wq = Wq + r * k + c0;
            float amax = 0;
            for (int64_t j = 0; j < g; j++) amax = fmaxf(amax, fabsf(w[j]));
            double s1 = 2.0 * amax / 15.0, sum = 0;
            int64_t cnt = 0;
            for (int64_t j = 0; j < g; j++) {
                if (survivors_only && wq[j] == 0.0f) continue;
                double d = (double)w[j] - (double)wq[j];
                if (s1 == 0) {
                    if (d != 0) *zero_group_bad = true;
                    continue;
                }
                sum += (d / s1) * (d / s1);
                cnt++;
            }
            if (cnt) {
                double e = sqrt(sum / (double)cnt);
                if (e > worst || isnan(e)) worst = e;
                total += sum;
                cnt_total += cnt;
            }
        }
    }
    *mean = cnt_total ? sqrt(total / (double)cnt_total) : 0.0;
    return worst;
}

/* Relative Frobenius error, and the output error on random X. */
static void weight_output_error(const float *W, const float *Wq, int64_t n,
                                int64_t k, int64_t m, uint64_t seed,
                                double *rel_w, double *rel_out, float *X,
                                float *Y, float *Yq) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n * k; i++) {
        double d = (double)W[i] - (double)Wq[i];
        num += d * d;
        den += (double)W[i] * (double)W[i];
    }
    *rel_w = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
    marlin_rng rng;
    marlin_rng_seed(&rng, seed);
    for (int64_t i = 0; i < m * k; i++) X[i] = marlin_rng_normal(&rng);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k,
                1.0f, X, (int)k, W, (int)k, 0.0f, Y, (int)n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k,
                1.0f, X, (int)k, Wq, (int)k, 0.0f, Yq, (int)n);
    num = den = 0;
    for (int64_t i = 0; i < m * n; i++) {
        double d = (double)Y[i] - (double)Yq[i];
        num += d * d;
        den += (double)Y[i] * (double)Y[i];
    }
    *rel_out = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}

typedef struct vctx {
    const marlin_verify_opts *o;
    marlin_qckpt *ck[2];
    int nck;
    marlin_model *ref;
    marlin_verify_report *rep;
    bool sparse;
    double bound, mean_bound;
    double rel_bound;  /* > 0: only the relative weight error is bounded */
    verify_acts *acts; /* --calib: real activations for the GPU check */
} vctx;

static marlin_status verify_layer(vctx *v, size_t li, marlin_verify_layer *L,
                                  marlin_error *err) {
    const marlin_qlayer *ql = marlin_qckpt_layer(v->ck[0], li);
    const int64_t n = ql->n, k = ql->k, g = ql->group_size;
    const int64_t G = marlin_pack_groups(k, g), m = v->o->batch;
    marlin_status st = MARLIN_OK;
    uint8_t *q[2] = {NULL, NULL};
    uint16_t *s[2] = {NULL, NULL};
    float *W = NULL, *Wq = NULL, *X = NULL, *Y = NULL, *Yq = NULL;

    L->name = strdup(ql->prefix);
    if (!L->name) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    snprintf(L->format, sizeof L->format, "%s", fmt_name(ql->format));
    L->n = n;
    L->k = k;
    L->group_size = g;
    L->pass = true;
    L->rel_weight_err = L->step_err = L->step_err_mean = L->rel_out_err = -1;
    L->gpu_vs_ref = L->gpu_vs_fp16 = L->gpu_bound = -1;
    L->step_bound = v->bound;
    L->step_mean_bound = v->mean_bound;
    L->rel_bound = v->rel_bound > 0 ? v->rel_bound : -1;

    for (int c = 0; c < v->nck; c++) {
        int64_t idx = c == 0 ? (int64_t)li : marlin_qckpt_find(v->ck[c], ql->prefix);
        if (idx < 0) {
            st = verify_layer_fail_msg(L, "missing from %s", marlin_model_dir(marlin_qckpt_model(v->ck[c])));
            goto out;
        }
        const marlin_qlayer *o = marlin_qckpt_layer(v->ck[c], (size_t)idx);
        if (o->n != n || o->k != k || o->group_size != g) {
            st = verify_layer_fail_msg(L, "shape/group differ between formats ([%lld,%lld] g%lld vs [%lld,%lld] g%lld)",
                            (long long)n, (long long)k, (long long)g,
                            (long long)o->n, (long long)o->k, (long long)o->group_size);
            goto out;
        }
        q[c] = malloc((size_t)(n * k));
        s[c] = malloc((size_t)(G * n) * 2);
        if (!q[c] || !s[c]) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        marlin_error derr;
        marlin_error_clear(&derr);
        marlin_status ds = marlin_qckpt_decode(v->ck[c], (size_t)idx, q[c], s[c], v->o->threads, &derr);
        if (ds == MARLIN_ERR_NOMEM || ds == MARLIN_ERR_IO) { *err = derr; st = ds; goto out; }
        if (ds) { st = verify_layer_fail_msg(L, "%s", derr.msg); goto out; }
        int64_t bad = first_bad_scale(s[c], G * n);
        if (bad >= 0) {
            st = verify_layer_fail_msg(L, "%s: scale [%lld, %lld] = 0x%04x is not a finite positive fp16",
                            fmt_name(o->format), (long long)(bad / n), (long long)(bad % n), s[c][bad]);
            goto out;
        }
    }
    if (v->nck == 2) {
        L->cross_checked = true;
        if (memcmp(q[0], q[1], (size_t)(n * k)) != 0) {
            int64_t i = 0;
            while (q[0][i] == q[1][i]) i++;
            st = verify_layer_fail_msg(L, "codes differ between formats at [%lld, %lld] (%d vs %d)",
                            (long long)(i / k), (long long)(i % k), q[0][i], q[1][i]);
            goto out;
        }
        if (memcmp(s[0], s[1], (size_t)(G * n) * 2) != 0) {
            st = verify_layer_fail_msg(L, "scales differ between formats");
            goto out;
        }
    }
    if (!(Wq = malloc((size_t)(n * k) * 4))) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    if ((st = marlin_qckpt_dequant(v->ck[0], li, Wq, v->o->threads, err))) goto out;
    if (v->sparse) {
        for (int64_t i = 0; i < n * k; i += 4) {
            int zeros = (Wq[i] == 0) + (Wq[i + 1] == 0) + (Wq[i + 2] == 0) + (Wq[i + 3] == 0);
            if (zeros < 2) {
                st = verify_layer_fail_msg(L, "not 2:4 sparse: row %lld columns %lld..%lld hold %d non-zeros",
                                (long long)(i / k), (long long)(i % k), (long long)(i % k + 3), 4 - zeros);
                goto out;
            }
        }
    }
    if (v->ref) {
        char name[1100];
        const marlin_st_file *sh = NULL;
        snprintf(name, sizeof name, "%s.weight", ql->prefix);
        const marlin_tensor *t = marlin_model_find(v->ref, name, &sh);
        if (!t) {
            st = verify_layer_fail_msg(L, "reference has no tensor '%s'", name);
            goto out;
        }
        if (t->rank != 2 || (int64_t)t->shape[0] != n || (int64_t)t->shape[1] != k) {
            st = verify_layer_fail_msg(L, "reference '%s' is not [%lld, %lld]", name, (long long)n, (long long)k);
            goto out;
        }
        W = malloc((size_t)(n * k) * 4);
        X = malloc((size_t)(m * k) * 4);
        Y = malloc((size_t)(m * n) * 4);
        Yq = malloc((size_t)(m * n) * 4);
        if (!W || !X || !Y || !Yq) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        if ((st = marlin_st_read_f32(sh, t, W, err))) goto out;
        bool zbad = false;
        L->step_err = step_error(W, Wq, n, k, g, v->sparse, &L->step_err_mean, &zbad);
        weight_output_error(W, Wq, n, k, m, v->o->seed + li, &L->rel_weight_err,
                            &L->rel_out_err, X, Y, Yq);
        if (zbad) st = verify_layer_fail_msg(L, "an all-zero reference group decodes to non-zero weights");
        else if (v->rel_bound > 0) {
            if (!(L->rel_weight_err <= v->rel_bound))
                st = verify_layer_fail_msg(L, "relative weight error %.3f exceeds the bound %.2f",
                                           L->rel_weight_err, v->rel_bound);
        }
        else if (!(L->step_err_mean <= L->step_mean_bound))
            st = verify_layer_fail_msg(L, "weight error %.3f steps (layer mean) exceeds the bound %.2f "
                            "(rel %.4f)", L->step_err_mean, L->step_mean_bound, L->rel_weight_err);
        else if (!(L->step_err <= L->step_bound))
            st = verify_layer_fail_msg(L, "weight error of a group %.3f steps exceeds the bound %.2f "
                            "(layer mean %.3f, rel %.4f)",
                            L->step_err, L->step_bound, L->step_err_mean, L->rel_weight_err);
        if (st) goto out;
    }
    if (v->o->gpu) st = verify_layer_gpu(v->o, v->ck, v->nck, li, W, Wq, v->acts, L, err);
out:
    for (int c = 0; c < 2; c++) {
        free(q[c]);
        free(s[c]);
    }
    free(W);
    free(Wq);
    free(X);
    free(Y);
    free(Yq);
    return st;
}

marlin_status marlin_verify_run(const marlin_verify_opts *opts,
                                marlin_verify_report *rep, marlin_error *err) {
    vctx v;
    marlin_status st = MARLIN_OK;
    char *paths[2] = {NULL, NULL};
    memset(&v, 0, sizeof v);
    memset(rep, 0, sizeof *rep);
    v.o = opts;
    v.rep = rep;
    double t0 = marlin_now();
    if (!opts->path) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "no checkpoint given");
    if (opts->batch < 1 || opts->batch > 65536)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "batch %lld: must be in [1, 65536]",
                           (long long)opts->batch);

    /* --format all writes OUT/gptq and OUT/marlin: check both, and that they
     * agree. The GPU checks need Marlin tiles, so Marlin goes first. */
    char *g = join(opts->path, "gptq"), *mm = join(opts->path, "marlin");
    if (!g || !mm) { free(g); free(mm); return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); }
    char *cfg_here = join(opts->path, "config.json");
    struct stat sb;
    bool here = cfg_here && stat(cfg_here, &sb) == 0;
    free(cfg_here);
    if (!here && is_dir(mm)) paths[v.nck++] = mm; else free(mm);
    if (!here && is_dir(g)) paths[v.nck++] = g; else free(g);
    if (v.nck == 0) {
        paths[0] = strdup(opts->path);
        if (!paths[0]) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        v.nck = 1;
    }
    for (int c = 0; c < v.nck; c++)
        if ((st = marlin_qckpt_open(paths[c], &v.ck[c], err))) goto out;
    if (v.nck == 2 && marlin_qckpt_count(v.ck[0]) != marlin_qckpt_count(v.ck[1])) {
        st = marlin_fail(err, MARLIN_ERR_VERIFY, "%s and %s hold %zu and %zu quantized layers",
                         paths[0], paths[1], marlin_qckpt_count(v.ck[0]), marlin_qckpt_count(v.ck[1]));
        goto out;
    }
    for (int c = 0; c < v.nck; c++) {
        const marlin_qlayer *l0 = marlin_qckpt_layer(v.ck[c], 0);
        size_t len = strlen(rep->formats);
        snprintf(rep->formats + len, sizeof rep->formats - len, "%s%s", c ? "+" : "",
                 fmt_name(l0->format));
    }
    snprintf(rep->algorithm, sizeof rep->algorithm, "%s", marlin_qckpt_algorithm(v.ck[0]));
    v.sparse = marlin_qckpt_sparse24(v.ck[0]);
    bool rtn = !strcmp(rep->algorithm, "rtn");
    v.bound = rtn ? RTN_STEP_BOUND : GPTQ_STEP_BOUND;
    v.mean_bound = rtn ? RTN_STEP_BOUND : GPTQ_MEAN_BOUND;
    if (v.sparse && !rtn) {
        v.rel_bound = GPTQ24_REL_BOUND;
        v.bound = v.mean_bound = -1; /* not applicable (reported as null) */
    }
    if (opts->ref && (st = marlin_model_open(opts->ref, &v.ref, err))) goto out;
    if (opts->gpu) {
        if ((st = verify_gpu_begin(opts, v.ck, v.nck, rep, err))) goto out;
    }
    if (opts->calib) {
        if (!opts->gpu || !v.ref) {
            st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                             "--calib is used by the GPU check and needs --gpu and --ref");
            goto out;
        }
        if ((st = verify_acts_capture(v.ref, opts->calib, opts->batch, opts->threads,
                                      &v.acts, err)))
            goto out;
    }

    size_t nl = marlin_qckpt_count(v.ck[0]);
    rep->layers = calloc(nl, sizeof *rep->layers);
    if (!rep->layers) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < nl; i++) {
        marlin_progress_report(&opts->progress, "layers", (int64_t)i, (int64_t)nl);
        rep->n_layers = i + 1;
        if ((st = verify_layer(&v, i, &rep->layers[i], err))) goto out;
        if (!rep->layers[i].pass) rep->n_failed++;
    }
    marlin_progress_report(&opts->progress, "layers", (int64_t)nl, (int64_t)nl);
    if (rep->n_failed)
        st = marlin_fail(err, MARLIN_ERR_VERIFY, "%zu of %zu layers failed verification",
                         rep->n_failed, rep->n_layers);
out:
    if (opts->gpu) verify_gpu_end();
    for (int c = 0; c < 2; c++) {
        marlin_qckpt_close(v.ck[c]);
        free(paths[c]);
    }
    marlin_model_close(v.ref);
    verify_acts_free(v.acts);
    rep->seconds = marlin_now() - t0;
    return st;
}

void marlin_verify_report_free(marlin_verify_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_layers; i++) {
        free(r->layers[i].name);
        free(r->layers[i].why);
    }
    free(r->layers);
    memset(r, 0, sizeof *r);
}
