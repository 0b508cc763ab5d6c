/*
 * model.c - a checkpoint on disk (marlin_model_*): one .safetensors file,
 * a folder with model.safetensors, a sharded folder with
 * model.safetensors.index.json, or a Hugging Face hub cache entry
 * (models--org--name/snapshots/<rev>/ whose files link into ../../blobs/).
 *
 * Spec: safetensors.md section 4 ("How loaders find shards", "Rules for our
 * reader") and the folder cases of section 6:
 *  84  every shard must be a regular file (after following links);
 *  85  a symlink may not resolve outside the model's repository root: the
 *      folder itself, or for a hub snapshot the models--org--name folder
 *      that holds blobs/;
 *  86-91 index rules (model_index.c), plus: every listed shard exists,
 *      every index tensor is in its shard, every shard tensor is in the
 *      index under that shard (so no tensor is in two shards), total_size
 *      disagreeing with the headers is a warning;
 *  92  model.safetensors beside an index is an ERROR here (transformers
 *      would load the single file, vLLM the shards: we cannot know which
 *      one the user means); a stray *.safetensors the index does not list
 *      is a warning (never opened, never used);
 *  93  config.json with NaN/Infinity loads (config.c).
 * Opening is all-or-nothing: any error closes what was opened.
 */
#include "formats_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger index or config files are not plausible (the biggest real
 * indexes are a few MB); refusing them bounds memory on hostile input. */
#define MODEL_MAX_JSON (256u << 20)

typedef struct model_tensor {
    const marlin_tensor *t;
    const marlin_st_file *f;
} model_tensor;

struct marlin_model {
    char *dir;           /* folder holding the checkpoint */
    char *root;          /* realpath of the repository root (case 85) */
    marlin_config cfg;
    char *config_text;   /* config.json as read (NULL: none) */
    size_t config_len;
    marlin_st_file **files;
    size_t nfiles;
    model_tensor *all;   /* every tensor of every file, sorted by name */
    size_t count;
    char **warn;
    size_t nwarn;
};

/* --------------------------------------------------------- accessors */
const marlin_config *marlin_model_config(const marlin_model *m) {
    return m ? &m->cfg : NULL;
}
const char *marlin_model_dir(const marlin_model *m) { return m ? m->dir : NULL; }
size_t marlin_model_count(const marlin_model *m) { return m ? m->count : 0; }

const marlin_tensor *marlin_model_at(const marlin_model *m, size_t i,
                                     const marlin_st_file **shard) {
    if (!m || i >= m->count) {
        if (shard) *shard = NULL;
        return NULL;
    }
    if (shard) *shard = m->all[i].f;
    return m->all[i].t;
}

/* Byte order of (name, name_len), as the reader sorts. */
static int name_cmp(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

const marlin_tensor *marlin_model_find(const marlin_model *m, const char *name,
                                       const marlin_st_file **shard) {
    if (shard) *shard = NULL;
    if (!m || !name) return NULL;
    size_t nl = strlen(name), lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const marlin_tensor *t = m->all[mid].t;
        int c = name_cmp(t->name, t->name_len, name, nl);
        if (c == 0) {
            if (shard) *shard = m->all[mid].f;
            return t;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t marlin_model_warning_count(const marlin_model *m) {
    return m ? m->nwarn : 0;
}
const char *marlin_model_warning(const marlin_model *m, size_t i) {
    return m && i < m->nwarn ? m->warn[i] : NULL;
}
size_t marlin_model_shard_count(const marlin_model *m) {
    return m ? m->nfiles : 0;
}
const marlin_st_file *marlin_model_shard(const marlin_model *m, size_t i) {
    return m && i < m->nfiles ? m->files[i] : NULL;
}

void marlin_model_close(marlin_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nfiles; i++) marlin_st_close(m->files[i]);
    for (size_t i = 0; i < m->nwarn; i++) free(m->warn[i]);
    free(m->files);
    free(m->all);
    free(m->warn);
    free(m->config_text);
    free(m->root);
    free(m->dir);
    free(m);
}

/* ------------------------------------------------------------ helpers */
static marlin_status warn(marlin_model *m, marlin_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static marlin_status warn(marlin_model *m, marlin_error *err, const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **nw = realloc(m->warn, (m->nwarn + 1) * sizeof *nw);
    if (!nw) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    m->warn = nw;
    if (!(nw[m->nwarn] = strdup(buf)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    m->nwarn++;
    return MARLIN_OK;
}

static bool ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* The repository root that links may resolve into: the folder itself, or
 * for a hub snapshot (<repo>/snapshots/<rev>) the repo folder holding
 * blobs/. `real` is the folder's realpath. */
static char *repo_root(const char *real) {
    char *parent = mf_dirname(real);
    if (!parent) return NULL;
    if (strcmp(mf_basename(parent), "snapshots") == 0) {
        char *repo = mf_dirname(parent);
        free(parent);
        return repo;
    }
    free(parent);
    return strdup(real);
}

/* Case 85: `path` (a file in the model folder, maybe a link) must resolve
 * inside m->root. */
static marlin_status check_inside(const marlin_model *m, const char *path,
                                  marlin_error *err) {
    char real[PATH_MAX];
    if (!realpath(path, real))
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot resolve: %s", path,
                           strerror(errno));
    size_t rl = strlen(m->root);
    if (strncmp(real, m->root, rl) == 0 &&
        (real[rl] == '/' || real[rl] == '\0' || strcmp(m->root, "/") == 0))
        return MARLIN_OK;
    return marlin_fail(err, MARLIN_ERR_FORMAT,
                       "%s: symlink resolves to %s, outside the model folder %s "
                       "(refused: links may only point inside the model's own "
                       "folder or hub repository)",
                       path, real, m->root);
}

/* Opens dir/name as a shard: exists, regular after links, inside root. */
static marlin_status open_shard(marlin_model *m, const char *name,
                                const char *why_listed, marlin_st_file **out,
                                marlin_error *err) {
    marlin_status st;
    struct stat sb;
    char *p = mf_path_join(m->dir, name);
    *out = NULL;
    if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (lstat(p, &sb) != 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: %s, but the file %s", p,
                         why_listed, errno == ENOENT ? "does not exist"
                                                     : strerror(errno));
        goto out;
    }
    if (stat(p, &sb) != 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: broken symlink (%s)", p,
                         strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: not a regular file", p);
        goto out;
    }
    if ((st = check_inside(m, p, err))) goto out;
    st = marlin_st_open(p, out, err);
out:
    free(p);
    return st;
}

/* A tensor name as one printable line (names may hold any bytes). */
#define PNAME(t, buf) mf_printable((t)->name, (t)->name_len, buf, sizeof buf)

static int cmp_mt(const void *a, const void *b) {
    const marlin_tensor *x = ((const model_tensor *)a)->t;
    const marlin_tensor *y = ((const model_tensor *)b)->t;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Collects every tensor of every file, sorted, and refuses a name held by
 * two files (a single-file model cannot have one). */
static marlin_status merge_tensors(marlin_model *m, marlin_error *err) {
    size_t n = 0;
    for (size_t i = 0; i < m->nfiles; i++) n += marlin_st_count(m->files[i]);
    m->all = malloc((n ? n : 1) * sizeof *m->all);
    if (!m->all) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nfiles; i++)
        for (size_t k = 0; k < marlin_st_count(m->files[i]); k++) {
            m->all[m->count].t = marlin_st_at(m->files[i], k);
            m->all[m->count++].f = m->files[i];
        }
    qsort(m->all, m->count, sizeof *m->all, cmp_mt);
    char pn[256];
    for (size_t i = 1; i < m->count; i++)
        if (cmp_mt(&m->all[i - 1], &m->all[i]) == 0)
            return marlin_fail(err, MARLIN_ERR_FORMAT,
                               "tensor '%s' appears in two shards, %s and %s",
                               PNAME(m->all[i].t, pn),
                               marlin_st_label(m->all[i - 1].f),
                               marlin_st_label(m->all[i].f));
    return MARLIN_OK;
}

static marlin_status add_file(marlin_model *m, marlin_st_file *f,
                              marlin_error *err) {
    marlin_st_file **nf = realloc(m->files, (m->nfiles + 1) * sizeof *nf);
    if (!nf) {
        marlin_st_close(f);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    }
    m->files = nf;
    nf[m->nfiles++] = f;
    const char *w = marlin_st_warning(f);
    return w ? warn(m, err, "%s", w) : MARLIN_OK;
}

/* ------------------------------------------------------------- sharded */
static marlin_status open_index(marlin_model *m, const char *index_name,
                                marlin_error *err) {
    marlin_status st;
    marlin_index *ix = NULL;
    char *text = NULL;
    size_t len = 0;
    char *ip = mf_path_join(m->dir, index_name);
    DIR *d = NULL;
    if (!ip) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if ((st = check_inside(m, ip, err))) goto out;
    if ((st = mf_read_file(ip, ip, MODEL_MAX_JSON, &text, &len, err))) goto out;
    if ((st = marlin_index_parse(text, len, ip, &ix, err))) goto out;
    for (size_t i = 0; i < marlin_index_warning_count(ix); i++)
        if ((st = warn(m, err, "%s", marlin_index_warning(ix, i)))) goto out;
    char why[512];
    snprintf(why, sizeof why, "listed in %s", index_name);
    for (size_t s = 0; s < marlin_index_shard_count(ix); s++) {
        marlin_st_file *f = NULL;
        const char *sname = marlin_index_shard(ix, s);
        if ((st = open_shard(m, sname, why, &f, err))) goto out;
        if ((st = add_file(m, f, err))) goto out;
        /* Case 88/89: every tensor of this shard is in the index, and
         * under this shard. */
        for (size_t k = 0; k < marlin_st_count(f); k++) {
            const marlin_tensor *t = marlin_st_at(f, k);
            const char *want = memchr(t->name, '\0', t->name_len)
                                   ? NULL : marlin_index_find(ix, t->name);
            char pn[256];
            if (!want) {
                st = marlin_fail(err, MARLIN_ERR_FORMAT,
                                 "%s: tensor '%s' is not listed in %s",
                                 marlin_st_label(f), PNAME(t, pn), index_name);
                goto out;
            }
            if (strcmp(want, sname) != 0) {
                st = marlin_fail(err, MARLIN_ERR_FORMAT,
                                 "%s: tensor '%s' is here but %s maps it "
                                 "to %s (a tensor may live in one shard only)",
                                 marlin_st_label(f), PNAME(t, pn), index_name, want);
                goto out;
            }
        }
    }
    /* Case 88: every tensor of the index is in its shard. */
    for (size_t i = 0; i < marlin_index_count(ix); i++) {
        const char *name = marlin_index_tensor(ix, i);
        const char *sname = marlin_index_tensor_shard(ix, i);
        size_t s = 0;
        while (strcmp(marlin_index_shard(ix, s), sname) != 0) s++;
        if (!marlin_st_find(m->files[s], name)) {
            char pn[256];
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: tensor '%s' is listed for %s but that file "
                             "does not hold it",
                             ip, mf_printable(name, strlen(name), pn, sizeof pn),
                             sname);
            goto out;
        }
    }
    if ((st = merge_tensors(m, err))) goto out;
    uint64_t total = 0, want_total;
    for (size_t i = 0; i < m->count; i++) total += m->all[i].t->nbytes;
    if (marlin_index_total_size(ix, &want_total) && want_total != total &&
        (st = warn(m, err,
                   "%s: metadata.total_size is %llu but the shards hold %llu "
                   "tensor bytes",
                   ip, (unsigned long long)want_total, (unsigned long long)total)))
        goto out;
    /* Case 92: stray weight files are reported, never used. */
    if (!(d = opendir(m->dir))) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot list: %s", m->dir,
                         strerror(errno));
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".safetensors")) continue;
        bool listed = false;
        for (size_t s = 0; s < marlin_index_shard_count(ix) && !listed; s++)
            listed = strcmp(marlin_index_shard(ix, s), e->d_name) == 0;
        char pn[256];
        if (!listed &&
            (st = warn(m, err, "%s/%s: not listed in %s; ignored", m->dir,
                       mf_printable(e->d_name, strlen(e->d_name), pn, sizeof pn),
                       index_name)))
            goto out;
    }
out:
    if (d) closedir(d);
    marlin_index_free(ix);
    free(text);
    free(ip);
    return st;
}

/* --------------------------------------------------------------- config */
static marlin_status load_config(marlin_model *m, marlin_error *err) {
    marlin_status st;
    struct stat sb;
    char *p = mf_path_join(m->dir, "config.json");
    if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (lstat(p, &sb) != 0) { /* optional */
        free(p);
        return MARLIN_OK;
    }
    if ((st = check_inside(m, p, err))) goto out;
    if ((st = mf_read_file(p, p, MODEL_MAX_JSON, &m->config_text, &m->config_len,
                           err)))
        goto out;
    st = marlin_config_parse(m->config_text, m->config_len, p, &m->cfg, err);
out:
    free(p);
    return st;
}

/* ----------------------------------------------------------------- open */
/* A hub repo folder (models--org--name, holding snapshots/): the snapshot
 * refs/main names, or the only one. NULL when `dir` is not such a folder
 * (err untouched) or on error (err filled, *failed set). */
static char *hub_snapshot(const char *dir, bool *failed, marlin_error *err) {
    char *snaps = mf_path_join(dir, "snapshots"), *ref = NULL, *res = NULL;
    char *rev = NULL;
    size_t len = 0;
    struct stat sb;
    DIR *d = NULL;
    *failed = false;
    if (!snaps || stat(snaps, &sb) != 0 || !S_ISDIR(sb.st_mode)) goto out;
    if (!(ref = mf_path_join(dir, "refs/main"))) goto oom;
    marlin_error ignore;
    if (mf_read_file(ref, ref, 4096, &rev, &len, &ignore) == MARLIN_OK) {
        while (len && (rev[len - 1] == '\n' || rev[len - 1] == '\r' ||
                       rev[len - 1] == ' '))
            rev[--len] = '\0';
        if (len && !strchr(rev, '/') && strcmp(rev, "..") && strcmp(rev, ".")) {
            res = mf_path_join(snaps, rev);
            if (!res) goto oom;
            if (stat(res, &sb) == 0 && S_ISDIR(sb.st_mode)) goto out;
            MARLIN_FREE(res);
        }
    }
    if (!(d = opendir(snaps))) goto out;
    struct dirent *e;
    size_t found = 0;
    char *only = NULL;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        found++;
        free(only);
        only = strdup(e->d_name);
        if (!only) goto oom;
    }
    if (found == 1) {
        res = mf_path_join(snaps, only);
        if (!res) { free(only); goto oom; }
    } else {
        *failed = true;
        marlin_fail(err, MARLIN_ERR_FORMAT,
                    "%s: hub cache folder with %zu snapshots and no usable "
                    "refs/main; give snapshots/<revision>",
                    dir, found);
    }
    free(only);
    goto out;
oom:
    *failed = true;
    marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    MARLIN_FREE(res);
out:
    if (d) closedir(d);
    free(rev);
    free(ref);
    free(snaps);
    return res;
}

static bool exists(const char *dir, const char *name) {
    struct stat sb;
    char *p = mf_path_join(dir, name);
    bool r = p && lstat(p, &sb) == 0;
    free(p);
    return r;
}

/* A folder: index, single file, or an explanation of what is missing. */
static marlin_status open_folder(marlin_model *m, marlin_error *err) {
    marlin_status st;
    bool has_index = exists(m->dir, "model.safetensors.index.json");
    bool has_single = exists(m->dir, "model.safetensors");
    if (has_index && has_single)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: holds both model.safetensors and "
                           "model.safetensors.index.json (transformers would "
                           "load the single file, vLLM the shards); remove the "
                           "stale one",
                           m->dir);
    if (has_index) return open_index(m, "model.safetensors.index.json", err);
    if (has_single) {
        marlin_st_file *f = NULL;
        if ((st = open_shard(m, "model.safetensors", "expected", &f, err)))
            return st;
        if ((st = add_file(m, f, err))) return st;
        return merge_tensors(m, err);
    }
    /* Nothing we load by convention: say what is there instead. */
    DIR *d = opendir(m->dir);
    if (!d)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot list: %s", m->dir,
                           strerror(errno));
    char found[256] = "";
    bool bin = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ends_with(e->d_name, ".safetensors") && !found[0])
            snprintf(found, sizeof found, "%s", e->d_name);
        if (ends_with(e->d_name, ".bin") || ends_with(e->d_name, ".pt") ||
            ends_with(e->d_name, ".pth"))
            bin = true;
    }
    closedir(d);
    if (found[0])
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: no model.safetensors or "
                           "model.safetensors.index.json (there is %s: give its "
                           "path to open that file alone)",
                           m->dir, found);
    return marlin_fail(err, MARLIN_ERR_FORMAT,
                       "%s: no safetensors weights found%s", m->dir,
                       bin ? " (only PyTorch pickle weights, which are not "
                             "read: convert them to safetensors)"
                           : "");
}

marlin_status marlin_model_open(const char *path, marlin_model **out,
                                marlin_error *err) {
    marlin_status st = MARLIN_OK;
    struct stat sb;
    char real[PATH_MAX];
    marlin_model *m = NULL;
    if (!path || !out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "model: NULL argument");
    *out = NULL;
    if (stat(path, &sb) != 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: %s", path, strerror(errno));
    if (!(m = calloc(1, sizeof *m)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (S_ISDIR(sb.st_mode)) {
        bool failed = false;
        /* A folder with its own weights is the model, even if it happens
         * to hold a snapshots/ folder too. */
        if (!exists(path, "model.safetensors") &&
            !exists(path, "model.safetensors.index.json"))
            m->dir = hub_snapshot(path, &failed, err);
        if (failed) { st = err ? err->code : MARLIN_ERR_FORMAT; goto out; }
        if (!m->dir && !(m->dir = strdup(path))) goto oom;
    } else if (S_ISREG(sb.st_mode)) {
        if (!(m->dir = mf_dirname(path))) goto oom;
    } else {
        st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                         "%s: not a file or folder", path);
        goto out;
    }
    if (!realpath(m->dir, real)) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: %s", m->dir, strerror(errno));
        goto out;
    }
    if (!(m->root = repo_root(real))) goto oom;
    if (S_ISDIR(sb.st_mode)) {
        st = open_folder(m, err);
    } else if (ends_with(path, ".index.json")) {
        st = open_index(m, mf_basename(path), err);
    } else {
        /* A file named explicitly: the user chose it, links included. */
        marlin_st_file *f = NULL;
        if ((st = marlin_st_open(path, &f, err))) goto out;
        if ((st = add_file(m, f, err))) goto out;
        st = merge_tensors(m, err);
        if (!st && strstr(mf_basename(path), "-of-") &&
            exists(m->dir, "model.safetensors.index.json"))
            st = warn(m, err, "%s: one shard of a sharded checkpoint; open the "
                              "folder for the whole model", path);
    }
    if (st) goto out;
    st = load_config(m, err);
    if (st) goto out;
    *out = m;
    m = NULL;
    goto out;
oom:
    st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
out:
    marlin_model_close(m);
    return st;
}

/* ------------------------------------------------------- write_config */
static const char minimal_config[] =
    "{\n  \"dtype\": \"float16\",\n  \"torch_dtype\": \"float16\"\n}\n";

marlin_status marlin_model_write_config(const marlin_model *m,
                                        const char *out_dir,
                                        const char *quantization_config_json,
                                        marlin_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (!m || !out_dir || !quantization_config_json)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "write config: NULL argument");
    const char *src = m->config_text ? m->config_text : minimal_config;
    size_t sl = m->config_text ? m->config_len : sizeof minimal_config - 1;
    marlin_status st = marlin_config_rewrite(src, sl, "config.json",
                                             quantization_config_json, &text,
                                             &len, err);
    if (st) return st;
    st = marlin_write_file_atomic(out_dir, "config.json", text, len, err);
    free(text);
    return st;
}

/* For model_aux.c: the containment rule and the raw config text. */
marlin_status mf_model_check_inside(const marlin_model *m, const char *path,
                                    marlin_error *err) {
    return check_inside(m, path, err);
}

const char *mf_model_config_text(const marlin_model *m, size_t *len) {
    if (len) *len = m->config_len;
    return m->config_text;
}
