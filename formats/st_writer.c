/*
 * st_writer.c - safetensors writer (marlin_writer_*): one file or a sharded
 * set plus model.safetensors.index.json, byte-identical to what Python's
 * safetensors (crate tensor.rs `prepare`/`serialize`) writes for the same
 * tensors, and sharded the way huggingface_hub's
 * split_state_dict_into_shards_factory does.
 *
 * Spec: ../shared/docs/reference/safetensors.md section 2 (W1-W6: order,
 * compact JSON, serde escaping, space padding, refusals, temp + rename),
 * section 4 (shard names, index format, splitting algorithm, writer rules)
 * and 8.3 (preallocate, large writes, fsync, rename, fsync the folder).
 *
 * Why tensors are declared up front: every output shape is known before any
 * data exists, so headers and offsets are fixed at begin() and each tensor
 * is then pwrite()n at its planned offset whenever the producer (the
 * quantizer, streaming layer by layer) has it. Memory stays bounded by one
 * tensor, and the layout does not depend on the production order.
 */
#include "formats_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* safetensors.md R2/W5: the reference refuses larger headers on write. */
#define WT_MAX_HEADER MARLIN_ST_MAX_HEADER
/* Pieces at least this large get their writeback started at once. */
#define WT_WRITEBACK_MIN (4u << 20)
/* The 5-digit shard counter of the hub's file-name pattern. */
#define WT_MAX_SHARDS 99999u

typedef struct wt_tensor {
    char *name;
    size_t name_len;
    marlin_dtype dtype;
    int rank;
    uint64_t *shape;
    uint64_t nbytes;
    uint32_t shard;   /* assigned by begin() */
    uint64_t begin;   /* relative to the shard's data buffer */
    uint64_t written; /* bytes put so far (put_part appends) */
} wt_tensor;

typedef struct wt_shard {
    char *name;      /* final file name inside dir */
    char *tmp_path;  /* temporary path while writing; NULL once renamed */
    int fd;
    uint64_t data_off; /* 8 + N: where the data buffer starts */
    uint64_t data_bytes;
    bool renamed;    /* the final name exists (for cleanup on failure) */
} wt_shard;

typedef struct wt_meta {
    char *key, *value;
} wt_meta;

enum { WT_DECLARING, WT_WRITING, WT_FINISHED, WT_BROKEN };

struct marlin_writer {
    char *dir;
    uint64_t limit;
    int state;
    wt_tensor *t;
    size_t n, cap;
    size_t *slots; /* open-addressed name table: index + 1, 0 = empty */
    size_t nslots;
    wt_meta *meta;
    size_t nmeta;
    wt_shard *shards;
    size_t nshards;
    bool index_written;
};

/* ------------------------------------------------------------ name table */
static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static size_t *slot_for(const marlin_writer *w, const char *s, size_t n) {
    size_t mask = w->nslots - 1;
    size_t i = (size_t)name_hash(s, n) & mask;
    for (;;) {
        size_t v = w->slots[i];
        if (v == 0) return &w->slots[i];
        const wt_tensor *t = &w->t[v - 1];
        if (t->name_len == n && memcmp(t->name, s, n) == 0) return &w->slots[i];
        i = (i + 1) & mask;
    }
}

static bool table_grow(marlin_writer *w) {
    size_t ns = w->nslots ? w->nslots * 2 : 64;
    size_t *old = w->slots, oldn = w->nslots;
    w->slots = calloc(ns, sizeof *w->slots);
    if (!w->slots) { w->slots = old; return false; }
    w->nslots = ns;
    for (size_t i = 0; i < oldn; i++) {
        if (!old[i]) continue;
        const wt_tensor *t = &w->t[old[i] - 1];
        *slot_for(w, t->name, t->name_len) = old[i];
    }
    free(old);
    return true;
}

static wt_tensor *find(const marlin_writer *w, const char *name) {
    if (!w->nslots) return NULL;
    size_t v = *slot_for(w, name, strlen(name));
    return v ? &w->t[v - 1] : NULL;
}

/* --------------------------------------------------------------- create */
marlin_status marlin_writer_create(const char *dir, uint64_t shard_limit,
                                   marlin_writer **out, marlin_error *err) {
    struct stat sb;
    *out = NULL;
    if (!dir || !*dir)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: no folder given");
    if (stat(dir, &sb) != 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "%s: not a folder", dir);
    marlin_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
    }
    w->limit = shard_limit ? shard_limit : MARLIN_DEFAULT_SHARD_LIMIT;
    *out = w;
    return MARLIN_OK;
}

/* ------------------------------------------------------------------ add */
marlin_status marlin_writer_add(marlin_writer *w, const char *name,
                                marlin_dtype dt, int rank,
                                const uint64_t *shape, marlin_error *err) {
    if (!w || !name)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: NULL argument");
    if (w->state != WT_DECLARING)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': declared after marlin_writer_begin()",
                           name);
    size_t nl = strlen(name);
    /* W5 / safetensors#849: the reference writes this name and produces a
     * file nobody can read, because the key is reserved for metadata. */
    if (strcmp(name, "__metadata__") == 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '__metadata__': the name is reserved for "
                           "the header metadata");
    /* Python names are str, hence valid UTF-8; a C caller could pass
     * anything, and a header with broken UTF-8 is unreadable (R4). */
    if (!mf_utf8_valid(name, nl))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': name is not valid UTF-8", name);
    if ((unsigned)dt >= MARLIN_DT_COUNT)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': unknown dtype %d", name, (int)dt);
    if (rank < 0 || rank > MARLIN_ST_MAX_RANK || (rank > 0 && !shape))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': rank %d outside [0, %d]", name, rank,
                           MARLIN_ST_MAX_RANK);
    uint64_t numel = 1, bits;
    for (int i = 0; i < rank; i++)
        if (!marlin_mul_u64(numel, shape[i], &numel))
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "tensor '%s': element count overflows 64 bits",
                               name);
    if (!marlin_mul_u64(numel, (uint64_t)marlin_dtype_bits(dt), &bits))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': byte size overflows 64 bits", name);
    if (bits % 8)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': %llu elements of %s are not a whole "
                           "number of bytes",
                           name, (unsigned long long)numel,
                           marlin_dtype_name(dt));
    if (w->nslots == 0 || (w->n + 1) * 2 > w->nslots)
        if (!table_grow(w)) goto oom;
    size_t *slot = slot_for(w, name, nl);
    if (*slot)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': declared twice", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        wt_tensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) goto oom;
        w->t = nt;
        w->cap = nc;
    }
    wt_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->shape = malloc((size_t)(rank ? rank : 1) * sizeof *t->shape);
    if (!t->name || !t->shape) {
        free(t->name);
        free(t->shape);
        goto oom;
    }
    t->name_len = nl;
    t->dtype = dt;
    t->rank = rank;
    if (rank) memcpy(t->shape, shape, (size_t)rank * sizeof *shape);
    t->nbytes = bits / 8;
    w->n++;
    *slot = w->n;
    return MARLIN_OK;
oom:
    return marlin_fail(err, MARLIN_ERR_NOMEM, "tensor '%s': out of memory", name);
}

marlin_status marlin_writer_set_metadata(marlin_writer *w, const char *key,
                                         const char *value, marlin_error *err) {
    if (!w || !key || !value)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: NULL argument");
    if (w->state != WT_DECLARING)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "metadata '%s': set after marlin_writer_begin()", key);
    /* transformers refuses files whose format is not pt/tf/flax/mlx. */
    if (strcmp(key, "format") == 0)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "metadata 'format' is always \"pt\"");
    if (!mf_utf8_valid(key, strlen(key)) || !mf_utf8_valid(value, strlen(value)))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "metadata '%s': not valid UTF-8", key);
    for (size_t i = 0; i < w->nmeta; i++) {
        if (strcmp(w->meta[i].key, key) != 0) continue;
        char *v = strdup(value);
        if (!v) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        free(w->meta[i].value);
        w->meta[i].value = v;
        return MARLIN_OK;
    }
    wt_meta *nm = realloc(w->meta, (w->nmeta + 1) * sizeof *nm);
    if (!nm) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    w->meta = nm;
    nm[w->nmeta].key = strdup(key);
    nm[w->nmeta].value = strdup(value);
    if (!nm[w->nmeta].key || !nm[w->nmeta].value) {
        free(nm[w->nmeta].key);
        free(nm[w->nmeta].value);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    }
    w->nmeta++;
    return MARLIN_OK;
}

/* ---------------------------------------------------------------- begin */
/* W1: descending dtype, then ascending name bytes. */
static int cmp_file_order(const void *a, const void *b) {
    const wt_tensor *x = *(wt_tensor *const *)a, *y = *(wt_tensor *const *)b;
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const wt_meta *)a)->key, ((const wt_meta *)b)->key);
}

/* huggingface_hub split_state_dict_into_shards_factory, in declaration
 * order: a tensor larger than the limit gets a shard of its own, appended at
 * once (ahead of the shard being filled); otherwise a new shard starts when
 * the next tensor would push the current one over the limit. Shards are
 * numbered in the order the hub appends them to its list. Returns the shard
 * count, or 0 when out of memory. */
static size_t plan_shards(marlin_writer *w) {
    /* ids in opening order first, then renumbered by append order */
    uint32_t *rank = malloc((w->n + 1) * sizeof *rank);
    if (!rank) return 0;
    uint32_t opened = 0, appended = 0, cur = 0;
    bool open = false;
    uint64_t cur_size = 0;
    for (size_t i = 0; i < w->n; i++) {
        wt_tensor *t = &w->t[i];
        if (t->nbytes > w->limit) {
            t->shard = opened++;
            rank[t->shard] = appended++;
            continue;
        }
        if (open && cur_size + t->nbytes > w->limit) {
            rank[cur] = appended++;
            open = false;
        }
        if (!open) {
            cur = opened++;
            cur_size = 0;
            open = true;
        }
        t->shard = cur;
        cur_size += t->nbytes;
    }
    if (open) rank[cur] = appended++;
    for (size_t i = 0; i < w->n; i++) w->t[i].shard = rank[w->t[i].shard];
    free(rank);
    return appended ? appended : 1; /* no tensors: one header-only file */
}

/* The header of one shard: compact JSON (W2), serde escaping (W3), spaces
 * to a multiple of 8 (W4). Assigns each tensor's begin offset. */
static marlin_status build_header(marlin_writer *w, wt_tensor **order,
                                  size_t count, mf_buf *h, uint64_t *data_bytes,
                                  const char *label, marlin_error *err) {
    uint64_t off = 0;
    mf_buf_puts(h, "{\"__metadata__\":{");
    /* "format" sorts among the caller's keys. */
    bool fmt_done = false;
    for (size_t i = 0; i <= w->nmeta; i++) {
        bool last = i == w->nmeta;
        if (!fmt_done && (last || strcmp("format", w->meta[i].key) < 0)) {
            if (i) mf_buf_putc(h, ',');
            mf_buf_puts(h, "\"format\":\"pt\"");
            fmt_done = true;
        }
        if (last) break;
        mf_buf_putc(h, ',');
        mf_json_str_serde(h, w->meta[i].key, strlen(w->meta[i].key));
        mf_buf_putc(h, ':');
        mf_json_str_serde(h, w->meta[i].value, strlen(w->meta[i].value));
    }
    mf_buf_putc(h, '}');
    for (size_t i = 0; i < count; i++) {
        wt_tensor *t = order[i];
        mf_buf_putc(h, ',');
        mf_json_str_serde(h, t->name, t->name_len);
        mf_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[",
                      marlin_dtype_name(t->dtype));
        for (int d = 0; d < t->rank; d++)
            mf_buf_printf(h, d ? ",%llu" : "%llu",
                          (unsigned long long)t->shape[d]);
        t->begin = off;
        off += t->nbytes;
        mf_buf_printf(h, "],\"data_offsets\":[%llu,%llu]}",
                      (unsigned long long)t->begin, (unsigned long long)off);
    }
    mf_buf_putc(h, '}');
    while (h->len % 8) mf_buf_putc(h, ' ');
    if (h->oom) return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
    if (h->len > WT_MAX_HEADER)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: header of %zu bytes exceeds the %llu-byte "
                           "safetensors limit (too many tensors in one shard)",
                           label, h->len, (unsigned long long)WT_MAX_HEADER);
    *data_bytes = off;
    return MARLIN_OK;
}

/* safetensors.md 4 "Rules for our writer" 4 and case 92: refuse a folder
 * that already holds weights or an index, which loaders could pick up
 * instead of (or mixed with) what we write. */
static marlin_status check_no_weights(const char *dir, marlin_error *err) {
    DIR *d = opendir(dir);
    if (!d)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot list: %s", dir,
                           strerror(errno));
    struct dirent *e;
    marlin_status st = MARLIN_OK;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.') continue; /* our own temporaries */
        if ((l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0) ||
            strcmp(e->d_name, "model.safetensors.index.json") == 0) {
            st = marlin_fail(err, MARLIN_ERR_EXISTS,
                             "%s: already holds %s; refusing to mix a new "
                             "checkpoint with old weight files",
                             dir, e->d_name);
            break;
        }
    }
    closedir(d);
    return st;
}

/* Reserves the blocks up front so a full disk fails here, not halfway;
 * fallocate (not posix_fallocate, which glibc emulates by writing every
 * block) with ftruncate where the file system cannot. */
static marlin_status preallocate(int fd, uint64_t size, const char *label,
                                 marlin_error *err) {
    if (size == 0) return MARLIN_OK;
    if (fallocate(fd, 0, 0, (off_t)size) == 0) return MARLIN_OK;
    if (errno == ENOSPC || errno == EFBIG)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot reserve %llu bytes: %s",
                           label, (unsigned long long)size, strerror(errno));
    if (ftruncate(fd, (off_t)size) != 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot size to %llu bytes: %s",
                           label, (unsigned long long)size, strerror(errno));
    return MARLIN_OK;
}

marlin_status marlin_writer_begin(marlin_writer *w, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    wt_tensor **order = NULL;
    mf_buf h = {0};
    if (!w) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: NULL");
    if (w->state != WT_DECLARING)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: marlin_writer_begin() called twice", w->dir);
    w->state = WT_BROKEN; /* until everything below succeeds */
    st = check_no_weights(w->dir, err);
    if (st) return st;
    if (w->nmeta) qsort(w->meta, w->nmeta, sizeof *w->meta, cmp_meta);
    size_t ns = plan_shards(w);
    if (ns == 0) return marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
    if (ns > WT_MAX_SHARDS)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: %zu shards exceed the %u the file-name pattern "
                           "allows; raise the shard size",
                           w->dir, ns, WT_MAX_SHARDS);
    w->shards = calloc(ns, sizeof *w->shards);
    order = malloc((w->n ? w->n : 1) * sizeof *order);
    if (!w->shards || !order) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
        goto out;
    }
    w->nshards = ns;
    for (size_t s = 0; s < ns; s++) w->shards[s].fd = -1;
    for (size_t s = 0; s < ns; s++) {
        wt_shard *sh = &w->shards[s];
        char name[64];
        if (ns == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors",
                      s + 1, ns);
        if (!(sh->name = strdup(name))) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
            goto out;
        }
        size_t cnt = 0;
        for (size_t i = 0; i < w->n; i++)
            if (w->t[i].shard == s) order[cnt++] = &w->t[i];
        qsort(order, cnt, sizeof *order, cmp_file_order);
        h.len = 0;
        st = build_header(w, order, cnt, &h, &sh->data_bytes, name, err);
        if (st) goto out;
        sh->data_off = 8 + (uint64_t)h.len;
        st = mf_create_temp(w->dir, name, &sh->fd, &sh->tmp_path, err);
        if (st) goto out;
        st = preallocate(sh->fd, sh->data_off + sh->data_bytes, sh->tmp_path, err);
        if (st) goto out;
        unsigned char n8[8];
        for (int b = 0; b < 8; b++) n8[b] = (unsigned char)((uint64_t)h.len >> (8 * b));
        st = mf_pwrite_all(sh->fd, n8, 8, 0, sh->tmp_path, err);
        if (!st) st = mf_pwrite_all(sh->fd, h.p, h.len, 8, sh->tmp_path, err);
        if (st) goto out;
    }
    w->state = WT_WRITING;
out:
    mf_buf_free(&h);
    free(order);
    return st;
}

/* ------------------------------------------------------------------ put */
static marlin_status put_bytes(marlin_writer *w, const char *name,
                               const void *data, uint64_t nbytes, bool whole,
                               marlin_error *err) {
    if (!w || !name || (!data && nbytes))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: NULL argument");
    if (w->state != WT_WRITING)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': writer is not between begin and finish",
                           name);
    wt_tensor *t = find(w, name);
    if (!t)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': was not declared", name);
    if (whole && t->written)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': written twice", name);
    if (whole ? nbytes != t->nbytes : nbytes > t->nbytes - t->written)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': %llu bytes given, %llu expected", name,
                           (unsigned long long)nbytes,
                           (unsigned long long)(t->nbytes - t->written));
    wt_shard *sh = &w->shards[t->shard];
    marlin_status st = mf_pwrite_all(sh->fd, data, nbytes,
                                     sh->data_off + t->begin + t->written,
                                     sh->tmp_path, err);
    if (st) {
        marlin_error_prefix(err, "tensor '%s'", name);
        return st;
    }
    /* Start writeback of large pieces now (asynchronously): dirty pages
     * then never pile up into writer throttling and one long fsync at the
     * end. Advisory: a failure here changes nothing but speed. */
    if (nbytes >= WT_WRITEBACK_MIN)
        (void)sync_file_range(sh->fd, (off_t)(sh->data_off + t->begin + t->written),
                              (off_t)nbytes, SYNC_FILE_RANGE_WRITE);
    t->written += nbytes;
    return MARLIN_OK;
}

marlin_status marlin_writer_put(marlin_writer *w, const char *name,
                                const void *data, uint64_t nbytes,
                                marlin_error *err) {
    return put_bytes(w, name, data, nbytes, true, err);
}

marlin_status marlin_writer_put_part(marlin_writer *w, const char *name,
                                     const void *data, uint64_t nbytes,
                                     marlin_error *err) {
    return put_bytes(w, name, data, nbytes, false, err);
}

/* --------------------------------------------------------------- finish */
/* Renames without replacing: a file that appeared under the final name
 * since begin() is someone else's, not ours to clobber. */
static marlin_status rename_noreplace(const char *from, const char *to,
                                      marlin_error *err) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return MARLIN_OK;
    if (errno == EEXIST)
        return marlin_fail(err, MARLIN_ERR_EXISTS,
                           "%s: appeared while writing; not replaced", to);
    if (errno != EINVAL && errno != ENOSYS)
        return marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", from, to,
                           strerror(errno));
    /* File system without RENAME_NOREPLACE: link() fails on an existing
     * name, which gives the same guarantee. */
    if (link(from, to) != 0)
        return marlin_fail(err, errno == EEXIST ? MARLIN_ERR_EXISTS : MARLIN_ERR_IO,
                           "rename %s -> %s: %s", from, to, strerror(errno));
    unlink(from);
    return MARLIN_OK;
}

static int cmp_name(const void *a, const void *b) {
    const wt_tensor *x = *(wt_tensor *const *)a, *y = *(wt_tensor *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* json.dumps({"metadata": {"total_size": N}, "weight_map": {...}},
 * indent=2, sort_keys=True) + "\n", as huggingface_hub and transformers
 * write it. Python sorts str keys by code point, which is UTF-8 byte order,
 * and escapes non-ASCII (ensure_ascii). */
static char *build_index(const marlin_writer *w, uint64_t total, size_t *len) {
    mf_buf b = {0};
    wt_tensor **byname = malloc((w->n ? w->n : 1) * sizeof *byname);
    if (!byname) return NULL;
    for (size_t i = 0; i < w->n; i++) byname[i] = &w->t[i];
    qsort(byname, w->n, sizeof *byname, cmp_name);
    mf_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
                      "  \"weight_map\": {",
                  (unsigned long long)total);
    for (size_t i = 0; i < w->n; i++) {
        mf_buf_puts(&b, i ? ",\n    " : "\n    ");
        mf_json_str_ascii(&b, byname[i]->name, byname[i]->name_len);
        mf_buf_puts(&b, ": ");
        const char *f = w->shards[byname[i]->shard].name;
        mf_json_str_ascii(&b, f, strlen(f));
    }
    mf_buf_puts(&b, w->n ? "\n  }\n}\n" : "}\n}\n");
    free(byname);
    return mf_buf_take(&b, len);
}

static void unlink_finals(marlin_writer *w) {
    for (size_t s = 0; s < w->nshards; s++) {
        if (!w->shards[s].renamed) continue;
        char *p = mf_path_join(w->dir, w->shards[s].name);
        if (p) unlink(p);
        free(p);
        w->shards[s].renamed = false;
    }
}

marlin_status marlin_writer_finish(marlin_writer *w, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char *final = NULL, *index = NULL;
    if (!w) return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "writer: NULL");
    if (w->state != WT_WRITING)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: marlin_writer_finish() without a successful "
                           "begin", w->dir);
    size_t missing = 0;
    const wt_tensor *first = NULL;
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        total += w->t[i].nbytes;
        if (w->t[i].written == w->t[i].nbytes) continue;
        if (!first) first = &w->t[i];
        missing++;
    }
    if (missing)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "tensor '%s': only %llu of %llu bytes written "
                           "(%zu tensor(s) incomplete)",
                           first->name, (unsigned long long)first->written,
                           (unsigned long long)first->nbytes, missing);
    w->state = WT_BROKEN;
    /* Data first, names second: fsync every file before any rename, so a
     * crash can never expose a final name over unwritten blocks. */
    for (size_t s = 0; s < w->nshards; s++) {
        wt_shard *sh = &w->shards[s];
        if (fsync(sh->fd) != 0) {
            st = marlin_fail(err, MARLIN_ERR_IO, "%s: fsync: %s", sh->tmp_path,
                             strerror(errno));
            goto out;
        }
        int rc = close(sh->fd);
        sh->fd = -1;
        if (rc != 0) {
            st = marlin_fail(err, MARLIN_ERR_IO, "%s: close: %s", sh->tmp_path,
                             strerror(errno));
            goto out;
        }
    }
    for (size_t s = 0; s < w->nshards; s++) {
        wt_shard *sh = &w->shards[s];
        final = mf_path_join(w->dir, sh->name);
        if (!final) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
            goto out;
        }
        st = rename_noreplace(sh->tmp_path, final, err);
        if (st) goto out;
        sh->renamed = true;
        MARLIN_FREE(sh->tmp_path);
        MARLIN_FREE(final);
    }
    if (w->nshards > 1) {
        size_t len = 0;
        index = build_index(w, total, &len);
        if (!index) {
            st = marlin_fail(err, MARLIN_ERR_NOMEM, "writer: out of memory");
            goto out;
        }
        st = marlin_write_file_atomic(w->dir, "model.safetensors.index.json",
                                      index, len, err);
        if (st) goto out;
        w->index_written = true;
    }
    st = mf_fsync_dir(w->dir, err);
    if (st) goto out;
    w->state = WT_FINISHED;
out:
    if (st) {
        unlink_finals(w);
        if (w->index_written) {
            char *p = mf_path_join(w->dir, "model.safetensors.index.json");
            if (p) unlink(p);
            free(p);
            w->index_written = false;
        }
    }
    free(final);
    free(index);
    return st;
}

size_t marlin_writer_shard_count(const marlin_writer *w) {
    return w && w->state != WT_DECLARING ? w->nshards : 0;
}

void marlin_writer_free(marlin_writer *w) {
    if (!w) return;
    for (size_t s = 0; s < w->nshards; s++) {
        wt_shard *sh = &w->shards[s];
        if (sh->fd >= 0) close(sh->fd);
        if (sh->tmp_path) unlink(sh->tmp_path);
        free(sh->tmp_path);
        free(sh->name);
    }
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].shape);
    }
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w->shards);
    free(w->t);
    free(w->slots);
    free(w->dir);
    free(w);
}

/* ------------------------------------------------- atomic whole-file write */
marlin_status marlin_write_file_atomic(const char *dir, const char *name,
                                       const void *data, size_t len,
                                       marlin_error *err) {
    int fd = -1;
    char *tmp = NULL, *final = NULL;
    marlin_status st;
    if (!dir || !name || strchr(name, '/') || (!data && len))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "write file: bad folder or name");
    st = mf_create_temp(dir, name, &fd, &tmp, err);
    if (st) return st;
    st = mf_pwrite_all(fd, data, len, 0, tmp, err);
    if (st) goto out;
    if (fsync(fd) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    final = mf_path_join(dir, name);
    if (!final) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Replacing is intended here (config.json rewritten in an output
     * folder); rename() is atomic for readers of the old file. */
    if (rename(tmp, final) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", tmp, final,
                         strerror(errno));
        goto out;
    }
    MARLIN_FREE(tmp);
    st = mf_fsync_dir(dir, err);
out:
    if (fd >= 0) close(fd);
    if (tmp) unlink(tmp);
    free(tmp);
    free(final);
    return st;
}

marlin_status marlin_write_path_atomic(const char *path, const void *data,
                                       size_t len, marlin_error *err) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!path || !*path)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "empty output path");
    if (!slash) return marlin_write_file_atomic(".", path, data, len, err);
    if (!slash[1])
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "%s: not a file name", path);
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(dl + 1);
    if (!dir) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    marlin_status st = marlin_write_file_atomic(dir, slash + 1, data, len, err);
    free(dir);
    return st;
}
