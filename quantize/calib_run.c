/*
 * calib_run.c - GPTQ with calibration data (issue 4): the reference's
 * layer pipeline (IST-DASLab/gptq llama.py llama_sequential; landscape.md
 * 2.9) on the CPU.
 *
 *   X = embed(calibration ids)                      [N*L, hidden] fp32
 *   for each decoder layer i:
 *     load the block's weights (fp32)
 *     for each group in (q,k,v) -> o -> (gate,up) -> down   (true-sequential)
 *       H = 2/N sum x x^T of the group's input, over every calibration
 *           sequence, with the block running on the ALREADY QUANTIZED
 *           earlier groups (their dequantized weights were written back)
 *       GPTQ each linear of the group with that H; pack + write it; write
 *           its dequantized weights back into the block
 *     X = block(X)   (the inputs of layer i+1 come from quantized layer i)
 *
 * Memory: X, one block's fp32 weights, one H (k^2 floats) and one batch of
 * activations; the estimate is logged before anything runs. With --cache
 * DIR, X lives in DIR (zstd, one file per batch) instead of RAM, and each
 * finished layer is checkpointed there: its codes and scales (a safetensors
 * file) and the next layer's inputs. A killed run restarted with the same
 * command finds them under the same fingerprint (model + calibration +
 * options), re-emits the finished layers from the cache and goes on from
 * the first unfinished one; the forward is bit-reproducible (model/ runs
 * fixed tiles whatever the thread count), so the checkpoint is identical.
 *
 * --save-hessians DIR stores every (layer, group) H; --hessians DIR reuses
 * them and skips the forward passes entirely (no calibration file needed),
 * so other settings (group size, act-order, damping) cost only the solves.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>

#include "marlin_model.h"
#include "marlin_pack.h"
#include "pipeline_internal.h"
#include "zfile.h"

#define HESS_MAGIC "MHESS01"
#define XACT_MAGIC "MXACT01"
#define BATCH_TOKENS 4096

enum { GRP_QKV, GRP_O, GRP_GATE_UP, GRP_DOWN, GRP_COUNT };
static const char *const grp_name[GRP_COUNT] = {"qkv", "o", "gate_up", "down"};
static const marlin_tap_point grp_tap[GRP_COUNT] = {
    MARLIN_TAP_QKV, MARLIN_TAP_O, MARLIN_TAP_GATE_UP, MARLIN_TAP_DOWN};
static int grp_of(marlin_linear l) {
    switch (l) {
    case MARLIN_Q_PROJ: case MARLIN_K_PROJ: case MARLIN_V_PROJ: return GRP_QKV;
    case MARLIN_O_PROJ: return GRP_O;
    case MARLIN_GATE_PROJ: case MARLIN_UP_PROJ: return GRP_GATE_UP;
    default: return GRP_DOWN;
    }
}

typedef struct gctx {
    qrun *r;
    const marlin_qrun_opts *o;
    marlin_llama *llama;
    marlin_weight_source src;
    int64_t layers;
    qtarget **map;        /* [layers * MARLIN_LINEAR_COUNT] -> target or NULL */
    marlin_tokens tok;
    bool have_tok;
    int64_t nseq, seqlen, hidden;
    int64_t batch_seqs, nbatch;
    float *X;             /* in-memory activations [nseq*L, hidden], or NULL */
    float *xb;            /* one batch of activations (disk mode) */
    float *cap;           /* captured tap input for one batch */
    int64_t cap_rows, cap_cols;
    uint64_t fp;          /* fingerprint (cache key) */
    uint64_t model_fp;    /* fingerprint of the model alone (Hessian files) */
    char *cache;          /* <cache_dir>/<fp hex>, or NULL */
    int64_t resume_from;  /* first layer to compute */
} gctx;

static void logmsg(const gctx *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logmsg(const gctx *g, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g->o->log) g->o->log(g->o->log_user, buf);
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...) {
    va_list ap;
    char buf[4096];
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) return NULL;
    return strdup(buf);
}

static marlin_status mkdir_p(const char *path, marlin_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot create: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return MARLIN_OK;
}

/* ------------------------------------------------------------ targets */

/* Every quantization target must be one of the forward's linears; anything
 * else (lm_head) gets RTN, fused projections are refused. */
static marlin_status map_targets(gctx *g, marlin_error *err) {
    qrun *r = g->r;
    g->map = calloc((size_t)(g->layers * MARLIN_LINEAR_COUNT), sizeof *g->map);
    if (!g->map) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->n_targets; i++) {
        qtarget *t = &r->targets[i];
        if (!t->quant) continue;
        bool found = false;
        for (int64_t L = 0; L < g->layers && !found; L++)
            for (int l = 0; l < MARLIN_LINEAR_COUNT && !found; l++) {
                char name[256];
                snprintf(name, sizeof name, "model.layers.%lld.%s.weight",
                         (long long)L, marlin_linear_name((marlin_linear)l));
                if (!strcmp(name, t->t->name)) {
                    g->map[L * MARLIN_LINEAR_COUNT + l] = t;
                    found = true;
                }
            }
        if (found) continue;
        if (strstr(t->t->name, "lm_head")) continue; /* RTN at the end */
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "tensor '%s': GPTQ calibration runs the standard Llama "
                           "layout (model.layers.<i>.self_attn.{q,k,v,o}_proj, "
                           "mlp.{gate,up,down}_proj); this tensor is not one of its "
                           "linears (use --method rtn)", t->t->name);
    }
    return MARLIN_OK;
}

/* ------------------------------------------------------------ fingerprint */

static marlin_status fingerprint(gctx *g, marlin_error *err) {
    qrun *r = g->r;
    const marlin_qrun_opts *o = g->o;
    static const char tag[] = "marlin-gptq-cache-1 " MARLIN_VERSION_STRING;
    uint64_t h = marlin_fnv1a(0, tag, sizeof tag - 1);
    uint8_t sample[4096];
    for (size_t i = 0; i < r->n_targets; i++) {
        const qtarget *t = &r->targets[i];
        h = marlin_fnv1a(h, t->t->name, t->t->name_len);
        h = marlin_fnv1a(h, &t->t->dtype, sizeof t->t->dtype);
        h = marlin_fnv1a(h, t->t->shape, (size_t)t->t->rank * 8);
        /* data samples: the first and last 4 KiB of every tensor (hashing
         * whole 10+ GB models would cost more than a layer's work) */
        uint64_t n = t->t->nbytes < sizeof sample ? t->t->nbytes : sizeof sample;
        marlin_status st = marlin_st_read(t->shard, t->t, 0, n, sample, err);
        if (!st) h = marlin_fnv1a(h, sample, (size_t)n);
        if (!st) st = marlin_st_read(t->shard, t->t, t->t->nbytes - n, n, sample, err);
        if (st) return st;
        h = marlin_fnv1a(h, sample, (size_t)n);
    }
    g->model_fp = h;
    if (g->have_tok)
        h = marlin_fnv1a(h, g->tok.ids, (size_t)(g->nseq * g->seqlen) * 4);
    struct { int64_t group, nseq, L; double damp; int clip, act, sparse, prune, lm; } k;
    memset(&k, 0, sizeof k);
    k.group = o->group_size;
    k.nseq = g->nseq;
    k.L = g->seqlen;
    k.damp = o->damp;
    k.clip = o->clip;
    k.act = o->act_order;
    k.sparse = o->sparse24;
    k.prune = (int)o->prune;
    k.lm = o->quantize_lm_head;
    g->fp = marlin_fnv1a(h, &k, sizeof k);
    return MARLIN_OK;
}

/* ------------------------------------------------------------ activations */

static int64_t batch_rows(const gctx *g, int64_t b) {
    int64_t s0 = b * g->batch_seqs;
    int64_t ns = g->nseq - s0 < g->batch_seqs ? g->nseq - s0 : g->batch_seqs;
    return ns * g->seqlen;
}

static char *xfile(const gctx *g, int64_t layer, int64_t b) {
    return pathf("%s/x-%04lld/b%05lld.zst", g->cache, (long long)layer, (long long)b);
}

/* Pointer to batch b's activations (input of `layer`), loading it from the
 * cache in disk mode. */
static marlin_status x_get(gctx *g, int64_t layer, int64_t b, float **x,
                           marlin_error *err) {
    if (g->X) {
        *x = g->X + b * g->batch_seqs * g->seqlen * g->hidden;
        return MARLIN_OK;
    }
    char *p = xfile(g, layer, b);
    if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = marlin_zfile_read(p, XACT_MAGIC, g->fp, g->xb,
                                         (size_t)(batch_rows(g, b) * g->hidden) * 4, err);
    free(p);
    *x = g->xb;
    return st;
}

/* Stores batch b as the input of `layer` (disk mode; in memory the forward
 * already updated it in place). */
static marlin_status x_put(gctx *g, int64_t layer, int64_t b, const float *x,
                           marlin_error *err) {
    if (!g->cache) return MARLIN_OK; /* in RAM the forward updated X in place */
    char *dir = pathf("%s/x-%04lld", g->cache, (long long)layer), *p = xfile(g, layer, b);
    marlin_status st = (!dir || !p) ? marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory")
                                    : mkdir_p(dir, err);
    if (!st) st = marlin_zfile_write(p, XACT_MAGIC, g->fp, x,
                                     (size_t)(batch_rows(g, b) * g->hidden) * 4, 1, err);
    free(dir);
    free(p);
    return st;
}

static void x_drop(gctx *g, int64_t layer) {
    if (!g->cache) return;
    char *dir = pathf("%s/x-%04lld", g->cache, (long long)layer);
    if (!dir) return;
    for (int64_t b = 0; b < g->nbatch; b++) {
        char *p = xfile(g, layer, b);
        if (p) unlink(p);
        free(p);
    }
    rmdir(dir);
    free(dir);
}

/* ------------------------------------------------------------ taps */

static marlin_status capture(void *user, int64_t layer, marlin_tap_point where,
                             const float *x, int64_t rows, int64_t cols,
                             marlin_error *err) {
    gctx *g = user;
    (void)layer;
    (void)where;
    (void)err;
    /* Copy out and accumulate after the forward returns: model/ runs BLAS
     * single-threaded while inside a forward, the Hessian's ssyrk wants all
     * cores. */
    memcpy(g->cap, x, (size_t)(rows * cols) * 4);
    g->cap_rows = rows;
    g->cap_cols = cols;
    return MARLIN_OK;
}

/* ------------------------------------------------------------ Hessians */

static char *hess_file(const char *dir, int64_t layer, int grp) {
    return pathf("%s/layer%04lld-%s.hess.zst", dir, (long long)layer, grp_name[grp]);
}

static marlin_status group_hessian(gctx *g, int64_t layer, int grp,
                                   const marlin_block_weights *w, int64_t k,
                                   marlin_hessian *H, marlin_error *err) {
    marlin_status st = marlin_hessian_init(H, k, err);
    if (st) return st;
    if (g->o->hessians) {
        char *p = hess_file(g->o->hessians, layer, grp);
        if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        st = marlin_zfile_read(p, HESS_MAGIC, g->model_fp ^ (uint64_t)k, H->h,
                               (size_t)(k * k) * 4, err);
        free(p);
        H->nseq = 1;
        return st;
    }
    marlin_taps taps = {capture, g, true, grp_tap[grp]};
    for (int64_t b = 0; b < g->nbatch && st == MARLIN_OK; b++) {
        float *x = NULL;
        int64_t rows = batch_rows(g, b);
        if (qrun_cancelled(g->r))
            return marlin_fail(err, MARLIN_ERR_INTERRUPTED, "interrupted");
        st = x_get(g, layer, b, &x, err);
        g->cap_rows = 0;
        if (!st) st = marlin_llama_block_forward(g->llama, layer, w, x, rows / g->seqlen,
                                                 g->seqlen, &taps, err);
        if (!st && (g->cap_rows != rows || g->cap_cols != k))
            st = marlin_fail(err, MARLIN_ERR_INTERNAL, "layer %lld: tap %s gave [%lld, %lld]",
                             (long long)layer, grp_name[grp], (long long)g->cap_rows,
                             (long long)g->cap_cols);
        if (!st) st = marlin_hessian_add(H, g->cap, rows, rows / g->seqlen, err);
    }
    if (!st && g->o->save_hessians) {
        char *p = hess_file(g->o->save_hessians, layer, grp);
        if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        st = marlin_zfile_write(p, HESS_MAGIC, g->model_fp ^ (uint64_t)k, H->h,
                                (size_t)(k * k) * 4, 3, err);
        free(p);
    }
    return st;
}

/* ------------------------------------------------------------ resume cache */

static char *layer_file(const gctx *g, int64_t layer) {
    return pathf("%s/layer-%04lld.safetensors", g->cache, (long long)layer);
}

typedef struct layer_rec {
    qtarget *t;
    uint8_t *q;
    uint16_t *s;
    marlin_qlayer_report rep; /* fields of the report entry being built */
} layer_rec;

/* Saves the quantized linears of one layer: codes, scales and the report
 * entries reps[i] of recs[i]. */
static marlin_status save_layer(gctx *g, int64_t layer, const layer_rec *recs,
                                const marlin_qlayer_report *reps, int nrec,
                                marlin_error *err) {
    marlin_writer *w = NULL;
    char *tmpdir = pathf("%s/tmp-layer", g->cache), *dst = layer_file(g, layer), *src = NULL;
    marlin_status st = MARLIN_OK;
    if (!tmpdir || !dst) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    if ((st = mkdir_p(tmpdir, err))) goto out;
    if (!(src = pathf("%s/model.safetensors", tmpdir))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    unlink(src); /* left by a run killed while saving */
    if ((st = marlin_writer_create(tmpdir, 0, &w, err))) goto out;
    for (int i = 0; i < nrec && !st; i++) {
        const qtarget *t = recs[i].t;
        int64_t G = marlin_pack_groups(t->k, g->o->group_size);
        char name[1100], val[256];
        uint64_t qs[2] = {(uint64_t)t->n, (uint64_t)t->k}, ss[2] = {(uint64_t)G, (uint64_t)t->n};
        snprintf(name, sizeof name, "%s.q", t->prefix);
        st = marlin_writer_add(w, name, MARLIN_DT_U8, 2, qs, err);
        snprintf(name, sizeof name, "%s.s", t->prefix);
        if (!st) st = marlin_writer_add(w, name, MARLIN_DT_F16, 2, ss, err);
        const marlin_qlayer_report *p = &reps[i];
        snprintf(val, sizeof val, "%.17g %.17g %.17g %.17g %d %.17g %.17g", p->rel_weight_err,
                 p->rel_out_err, p->loss, p->damp_rel, (int)p->fallback_rtn, p->seconds,
                 p->rtn_out_err);
        if (!st) st = marlin_writer_set_metadata(w, t->prefix, val, err);
        if (!st && p->note) {
            snprintf(name, sizeof name, "%s.note", t->prefix);
            st = marlin_writer_set_metadata(w, name, p->note, err);
        }
    }
    if (!st) st = marlin_writer_begin(w, err);
    for (int i = 0; i < nrec && !st; i++) {
        const qtarget *t = recs[i].t;
        int64_t G = marlin_pack_groups(t->k, g->o->group_size);
        char name[1100];
        snprintf(name, sizeof name, "%s.q", t->prefix);
        st = marlin_writer_put(w, name, recs[i].q, (uint64_t)(t->n * t->k), err);
        snprintf(name, sizeof name, "%s.s", t->prefix);
        if (!st) st = marlin_writer_put(w, name, recs[i].s, (uint64_t)(G * t->n) * 2, err);
    }
    if (!st) st = marlin_writer_finish(w, err);
    /* the rename makes the layer count as done (after its activations) */
    if (!st && rename(src, dst) != 0)
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: rename: %s", dst, strerror(errno));
out:
    marlin_writer_free(w);
    free(tmpdir);
    free(dst);
    free(src);
    return st;
}

/* Re-emits a finished layer from the cache: writes its packed tensors into
 * the outputs and its entries into the report. */
static marlin_status replay_layer(gctx *g, int64_t layer, marlin_error *err) {
    char *p = layer_file(g, layer);
    marlin_st_file *f = NULL;
    marlin_status st = p ? marlin_st_open(p, &f, err)
                         : marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    for (int l = 0; l < MARLIN_LINEAR_COUNT && !st; l++) {
        qtarget *t = g->map[layer * MARLIN_LINEAR_COUNT + l];
        if (!t) continue;
        char name[1100];
        snprintf(name, sizeof name, "%s.q", t->prefix);
        const marlin_tensor *tq = marlin_st_find(f, name);
        snprintf(name, sizeof name, "%s.s", t->prefix);
        const marlin_tensor *ts = marlin_st_find(f, name);
        const char *rep = marlin_st_metadata_get(f, t->prefix);
        int64_t G = marlin_pack_groups(t->k, g->o->group_size);
        if (!tq || !ts || !rep || tq->nbytes != (uint64_t)(t->n * t->k) ||
            ts->nbytes != (uint64_t)(G * t->n) * 2) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: no valid entry for '%s'", p, t->t->name);
            break;
        }
        uint8_t *q = malloc((size_t)tq->nbytes);
        uint16_t *s = malloc((size_t)ts->nbytes);
        marlin_qlayer_report *L = NULL;
        if (!q || !s) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        if (!st) st = marlin_st_read(f, tq, 0, tq->nbytes, q, err);
        if (!st) st = marlin_st_read(f, ts, 0, ts->nbytes, s, err);
        if (!st) st = qrun_emit(g->r, t, q, s, err);
        if (!st && qrun_add_layer(g->r, t, &L)) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        if (!st) {
            int fb = 0;
            if (sscanf(rep, "%lg %lg %lg %lg %d %lg %lg", &L->rel_weight_err, &L->rel_out_err,
                       &L->loss, &L->damp_rel, &fb, &L->seconds, &L->rtn_out_err) != 7)
                st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: bad report entry for '%s'", p, t->t->name);
            L->fallback_rtn = fb != 0;
            snprintf(name, sizeof name, "%s.note", t->prefix);
            const char *note = marlin_st_metadata_get(f, name);
            if (note && !(L->note = strdup(note))) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        }
        g->r->rep->bytes_in += t->t->nbytes;
        free(q);
        free(s);
    }
    marlin_st_close(f);
    free(p);
    return st;
}

/* The first layer not finished by an earlier run with the same fingerprint. */
static int64_t find_resume(gctx *g) {
    int64_t done = 0;
    while (done < g->layers) {
        char *p = layer_file(g, done);
        struct stat sb;
        bool ok = p && stat(p, &sb) == 0;
        free(p);
        if (!ok) break;
        done++;
    }
    /* the activations of the first unfinished layer must be there too */
    while (done > 0) {
        bool ok = true;
        for (int64_t b = 0; b < g->nbatch && ok; b++) {
            char *p = xfile(g, done, b);
            struct stat sb;
            ok = p && stat(p, &sb) == 0;
            free(p);
        }
        if (ok || done == g->layers) break;
        done--;
    }
    return done;
}

/* ------------------------------------------------------------ one layer */

static marlin_status quantize_layer(gctx *g, int64_t layer, marlin_error *err) {
    const marlin_qrun_opts *o = g->o;
    marlin_block *blk = NULL;
    marlin_hessian H;
    layer_rec recs[MARLIN_LINEAR_COUNT];
    int nrec = 0;
    marlin_status st;
    memset(&H, 0, sizeof H);
    memset(recs, 0, sizeof recs);
    if ((st = marlin_block_load(g->llama, layer, &blk, err))) return st;
    marlin_block_weights w = marlin_block_view(blk);
    marlin_gptq_opts go = marlin_gptq_default_opts();
    go.group_size = o->group_size;
    go.damp = o->damp;
    go.clip = o->clip;
    go.act_order = o->act_order;
    go.prune = o->sparse24 ? o->prune : MARLIN_PRUNE_NONE;
    go.threads = o->threads;

    for (int grp = 0; grp < GRP_COUNT && !st; grp++) {
        int64_t n = 0, k = 0;
        bool any = false;
        for (int l = 0; l < MARLIN_LINEAR_COUNT; l++)
            if (grp_of((marlin_linear)l) == grp && g->map[layer * MARLIN_LINEAR_COUNT + l]) {
                any = true;
                marlin_linear_shape(g->llama, (marlin_linear)l, &n, &k);
            }
        if (!any) continue;
        char what[64];
        snprintf(what, sizeof what, "layer %lld/%lld %s", (long long)layer + 1,
                 (long long)g->layers, grp_name[grp]);
        marlin_progress_report(&o->progress, what, layer * GRP_COUNT + grp,
                               g->layers * GRP_COUNT);
        if ((st = group_hessian(g, layer, grp, &w, k, &H, err))) break;
        for (int l = 0; l < MARLIN_LINEAR_COUNT && !st; l++) {
            qtarget *t = g->map[layer * MARLIN_LINEAR_COUNT + l];
            if (!t || grp_of((marlin_linear)l) != grp) continue;
            double t0 = marlin_now();
            int64_t G = marlin_pack_groups(t->k, o->group_size);
            layer_rec *rc = &recs[nrec++];
            marlin_gptq_result res;
            rc->t = t;
            rc->q = malloc((size_t)(t->n * t->k));
            rc->s = malloc((size_t)(G * t->n) * 2);
            if (!rc->q || !rc->s) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); break; }
            st = marlin_gptq_quantize(blk->w[l], MARLIN_DT_F32, t->n, t->k, H.h, &go,
                                      rc->q, rc->s, &res, err);
            if (st) { marlin_error_prefix(err, "tensor '%s'", t->t->name); break; }
            marlin_qlayer_report *p = &rc->rep;
            p->rtn_out_err = -1; /* unless --compare-rtn measures it */
            st = marlin_quant_weight_error(blk->w[l], MARLIN_DT_F32, t->n, t->k,
                                           o->group_size, rc->q, rc->s, o->threads,
                                           &p->rel_weight_err, err);
            if (st) break;
            p->rel_out_err = res.out_rel_err;
            if (o->compare_rtn) {
                /* RTN of the same weights, judged on the same inputs */
                marlin_rtn_opts ro = marlin_rtn_default_opts();
                ro.group_size = o->group_size;
                ro.clip = o->clip;
                ro.prune = o->sparse24 ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
                ro.threads = o->threads;
                uint8_t *rq = malloc((size_t)(t->n * t->k));
                uint16_t *rs = malloc((size_t)(G * t->n) * 2);
                if (!rq || !rs) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
                if (!st) st = marlin_rtn_quantize(blk->w[l], MARLIN_DT_F32, t->n, t->k, &ro, rq, rs, err);
                if (!st) st = marlin_quant_output_error(blk->w[l], MARLIN_DT_F32, t->n, t->k,
                                                        o->group_size, rq, rs, H.h,
                                                        &p->rtn_out_err, err);
                free(rq);
                free(rs);
                if (st) break;
            }
            p->loss = res.loss;
            p->damp_rel = res.damp_rel;
            p->fallback_rtn = res.fallback_rtn;
            if (res.nsteps > 1 || res.fallback_rtn || res.dead_cols) {
                char note[512] = "", line[160];
                size_t used = 0;
                if (res.dead_cols)
                    used += (size_t)snprintf(note + used, sizeof note - used,
                                             "%lld dead columns; ", (long long)res.dead_cols);
                for (int s = 0; s < res.nsteps && used < sizeof note - 1; s++) {
                    marlin_gptq_step_describe(&res.steps[s], line, sizeof line);
                    used += (size_t)snprintf(note + used, sizeof note - used, "%s%s", s ? "; " : "", line);
                }
                p->note = strdup(note);
                logmsg(g, "%s: %s", t->t->name, note);
            }
            /* later groups and the next layer see the quantized weights */
            if (!st) st = marlin_quant_dequant(rc->q, rc->s, t->n, t->k, o->group_size,
                                               blk->w[l], err);
            if (!st) st = qrun_emit(g->r, t, rc->q, rc->s, err);
            p->seconds = marlin_now() - t0;
            g->r->rep->bytes_in += t->t->nbytes;
        }
        marlin_hessian_free(&H);
    }

    /* the layer's outputs become the next layer's inputs */
    if (!st && !o->hessians && layer + 1 < g->layers) {
        for (int64_t b = 0; b < g->nbatch && !st; b++) {
            float *x = NULL;
            if (qrun_cancelled(g->r)) { st = marlin_fail(err, MARLIN_ERR_INTERRUPTED, "interrupted"); break; }
            st = x_get(g, layer, b, &x, err);
            if (!st) st = marlin_llama_block_forward(g->llama, layer, &w, x,
                                                     batch_rows(g, b) / g->seqlen, g->seqlen,
                                                     NULL, err);
            if (!st) st = x_put(g, layer + 1, b, x, err);
        }
    }
    /* report entries (the note moves into the report), then the resume
     * checkpoint, saved from the report entries */
    size_t first = g->r->rep->n_layers;
    for (int i = 0; i < nrec && !st; i++) {
        marlin_qlayer_report *L = NULL;
        if (qrun_add_layer(g->r, recs[i].t, &L)) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); break; }
        const marlin_qlayer_report *p = &recs[i].rep;
        L->rel_weight_err = p->rel_weight_err;
        L->rel_out_err = p->rel_out_err;
        L->rtn_out_err = p->rtn_out_err;
        L->loss = p->loss;
        L->damp_rel = p->damp_rel;
        L->fallback_rtn = p->fallback_rtn;
        L->seconds = p->seconds;
        if (!L->note) {
            L->note = recs[i].rep.note;
            recs[i].rep.note = NULL;
        }
    }
    if (!st && g->cache && !o->hessians) {
        st = save_layer(g, layer, recs, g->r->rep->layers + first, nrec, err);
        if (!st) x_drop(g, layer);
        /* Fault injection for the resume test: die like kill -9 right
         * after layer N is checkpointed. */
        const char *kill_after = getenv("MARLIN_FAULT_KILL_AFTER_LAYER");
        if (!st && kill_after && atoll(kill_after) == layer) raise(SIGKILL);
    }
    for (int i = 0; i < nrec; i++) {
        free(recs[i].q);
        free(recs[i].s);
        free(recs[i].rep.note);
    }
    marlin_hessian_free(&H);
    marlin_block_free(blk);
    return st;
}

/* ------------------------------------------------------------ driver */

static marlin_status rtn_leftovers(gctx *g, marlin_error *err) {
    /* targets outside the decoder blocks (lm_head): no calibration inputs
     * are captured for them, so RTN; said in the report */
    qrun *r = g->r;
    marlin_status st = MARLIN_OK;
    marlin_rtn_opts ro = marlin_rtn_default_opts();
    ro.group_size = g->o->group_size;
    ro.clip = g->o->clip;
    ro.prune = g->o->sparse24 ? MARLIN_PRUNE_MAGNITUDE : MARLIN_PRUNE_NONE;
    ro.threads = g->o->threads;
    for (size_t i = 0; i < r->n_targets && !st; i++) {
        qtarget *t = &r->targets[i];
        bool mapped = false;
        for (int64_t j = 0; j < g->layers * MARLIN_LINEAR_COUNT; j++)
            if (g->map[j] == t) mapped = true;
        if (!t->quant || mapped) continue;
        int64_t G = marlin_pack_groups(t->k, g->o->group_size);
        void *raw = malloc((size_t)t->t->nbytes);
        uint8_t *q = malloc((size_t)(t->n * t->k));
        uint16_t *s = malloc((size_t)(G * t->n) * 2);
        marlin_qlayer_report *L = NULL;
        double t0 = marlin_now();
        if (!raw || !q || !s) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        if (!st) st = marlin_st_read(t->shard, t->t, 0, t->t->nbytes, raw, err);
        if (!st) st = marlin_rtn_quantize(raw, t->t->dtype, t->n, t->k, &ro, q, s, err);
        if (!st && qrun_add_layer(r, t, &L)) st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        if (!st) st = marlin_quant_weight_error(raw, t->t->dtype, t->n, t->k, g->o->group_size,
                                                q, s, g->o->threads, &L->rel_weight_err, err);
        if (!st) st = qrun_emit(r, t, q, s, err);
        if (!st && !(L->note = strdup("RTN: no calibration inputs outside the decoder layers")))
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        if (L) L->seconds = marlin_now() - t0;
        r->rep->bytes_in += t->t->nbytes;
        free(raw);
        free(q);
        free(s);
    }
    return st;
}

marlin_status qrun_gptq(qrun *r, marlin_error *err) {
    const marlin_qrun_opts *o = r->o;
    gctx g;
    marlin_status st = MARLIN_OK;
    memset(&g, 0, sizeof g);
    g.r = r;
    g.o = o;
    if (!r->cfg || !r->cfg->present)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: GPTQ needs the model's config.json (the calibration "
                           "forward runs the architecture)", o->in);
    marlin_weight_source_from_model(r->m, &g.src);
    if ((st = marlin_llama_create(r->cfg, &g.src, &g.llama, err))) goto out;
    marlin_llama_set_threads(g.llama, o->threads);
    g.layers = r->cfg->num_hidden_layers;
    g.hidden = r->cfg->hidden_size;
    if ((st = map_targets(&g, err))) goto out;

    /* copies first: independent of the calibration */
    for (size_t i = 0; i < r->n_targets && !st; i++)
        if (!r->targets[i].quant) {
            if (r->targets[i].kept) {
                marlin_qlayer_report *L = NULL;
                if (qrun_add_layer(r, &r->targets[i], &L))
                    st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            }
            r->rep->n_copied++;
            if (!st) st = qrun_copy(r, &r->targets[i], err);
        }
    if (st) goto out;

    if (!o->hessians) {
        if ((st = marlin_tokens_load(o->calib, &g.tok, err))) goto out;
        g.have_tok = true;
        if ((st = marlin_tokens_check(&g.tok, r->cfg->vocab_size, o->calib, err))) goto out;
        g.nseq = g.tok.nseq;
        if (o->calib_rows > 0 && o->calib_rows < g.nseq) g.nseq = o->calib_rows;
        g.seqlen = g.tok.seqlen;
        g.batch_seqs = BATCH_TOKENS / g.seqlen > 0 ? BATCH_TOKENS / g.seqlen : 1;
        if (g.batch_seqs > g.nseq) g.batch_seqs = g.nseq;
        g.nbatch = (g.nseq + g.batch_seqs - 1) / g.batch_seqs;
    }
    if ((st = fingerprint(&g, err))) goto out;

    /* memory, said up front */
    int64_t kmax = g.hidden;
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        int64_t ln, lk;
        marlin_linear_shape(g.llama, (marlin_linear)l, &ln, &lk);
        if (lk > kmax) kmax = lk;
    }
    double x_bytes = (double)g.nseq * (double)g.seqlen * (double)g.hidden * 4;
    double batch_bytes = (double)g.batch_seqs * (double)g.seqlen * (double)kmax * 4 * 2;
    double est = (o->cache_dir ? 0 : x_bytes) + batch_bytes +
                 (double)marlin_block_bytes(g.llama) + (double)kmax * (double)kmax * 4 * 2;
    if (o->hessians)
        logmsg(&g, "GPTQ from stored Hessians in %s: no forward passes; about %.2f GB of RAM",
               o->hessians, est / 1e9);
    else
        logmsg(&g, "GPTQ calibration: %lld x %lld tokens; activations %.2f GB (%s); "
               "about %.2f GB of RAM in all", (long long)g.nseq, (long long)g.seqlen,
               x_bytes / 1e9, o->cache_dir ? "spilled to the cache, zstd" : "in RAM", est / 1e9);

    if (o->save_hessians && (st = mkdir_p(o->save_hessians, err))) goto out;
    if (o->cache_dir && !o->hessians) {
        if (!(g.cache = pathf("%s/%016llx", o->cache_dir, (unsigned long long)g.fp))) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
            goto out;
        }
        if ((st = mkdir_p(g.cache, err))) goto out;
        g.resume_from = find_resume(&g);
        if (g.resume_from > 0)
            logmsg(&g, "resuming from layer %lld: layers 0..%lld are in the cache %s",
                   (long long)g.resume_from, (long long)g.resume_from - 1, g.cache);
    }

    if (!o->hessians) {
        size_t cap = (size_t)(g.batch_seqs * g.seqlen * kmax);
        if (!(g.cap = malloc(cap * 4))) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
        if (g.cache) {
            if (!(g.xb = malloc((size_t)(g.batch_seqs * g.seqlen * g.hidden) * 4))) {
                st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
                goto out;
            }
        } else {
            g.X = malloc((size_t)(g.nseq * g.seqlen * g.hidden) * 4);
            if (!g.X) {
                st = marlin_fail(err, MARLIN_ERR_NOMEM,
                                 "out of memory for the calibration activations (%.2f GB): "
                                 "use --cache DIR to keep them on disk, or --calib-rows",
                                 x_bytes / 1e9);
                goto out;
            }
        }
        if (g.resume_from == 0) {
            if ((st = marlin_llama_load_embed(g.llama, err))) goto out;
            for (int64_t b = 0; b < g.nbatch && !st; b++) {
                float *x = g.X ? g.X + b * g.batch_seqs * g.seqlen * g.hidden : g.xb;
                st = marlin_llama_embed(g.llama, g.tok.ids + b * g.batch_seqs * g.seqlen,
                                        batch_rows(&g, b), x, err);
                if (!st) st = x_put(&g, 0, b, x, err);
            }
        }
        if (st) goto out;
    }

    for (int64_t L = 0; L < g.resume_from && !st; L++) st = replay_layer(&g, L, err);
    for (int64_t L = g.resume_from; L < g.layers && !st; L++) {
        if (qrun_cancelled(r)) { st = marlin_fail(err, MARLIN_ERR_INTERRUPTED, "interrupted"); break; }
        st = quantize_layer(&g, L, err);
    }
    if (!st) st = rtn_leftovers(&g, err);
    if (!st) marlin_progress_report(&o->progress, "layers", g.layers * GRP_COUNT, g.layers * GRP_COUNT);
out:
    free(g.map);
    free(g.X);
    free(g.xb);
    free(g.cap);
    free(g.cache);
    if (g.have_tok) marlin_tokens_free(&g.tok);
    marlin_llama_free(g.llama);
    return st;
}
