/*
 * st_file.c - safetensors reader: images in memory (marlin_st_parse) and
 * files on disk (marlin_st_open), lookups, zero-copy views, positioned reads
 * and F16/BF16/F32 -> fp32 reads.
 *
 * Spec: safetensors.md R1-R3 / V1-V4 (length prefix), 6 (file-system cases
 * 82-84) and 8.2 (pread for the header; mmap for zero-copy views; pread for
 * copies so that a file truncated under us is an I/O error, never SIGBUS).
 * The header itself is scanned by st_header.c.
 */
#include "st_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The data buffer is little-endian (R17); the conversions below and the
 * zero-copy views hand those bytes out as host numbers. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors reader assumes a little-endian host"
#endif

/* Elements converted per chunk by marlin_st_read_f32: 64 KiB of input and
 * 128 KiB of output stay in L2 between the pread and the conversion. */
#define ST_F32_CHUNK 32768

static uint64_t le64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static marlin_status new_file(const char *label, marlin_st_file **out,
                              marlin_error *err) {
    marlin_st_file *f = calloc(1, sizeof *f);
    if (!f) return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory",
                               label);
    f->fd = -1;
    f->label = strdup(label);
    if (!f->label) {
        free(f);
        return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
    }
    *out = f;
    return MARLIN_OK;
}

/* V1-V4: the 8-byte length prefix against the image size. */
static marlin_status check_prefix(const char *label, uint64_t size, uint64_t n,
                                  marlin_error *err) {
    if (n > MARLIN_ST_MAX_HEADER)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: header length %llu exceeds the limit of %llu "
                           "bytes (not a safetensors file?)",
                           label, (unsigned long long)n,
                           (unsigned long long)MARLIN_ST_MAX_HEADER);
    if (n > size - 8)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: header length %llu exceeds the %llu bytes "
                           "that follow the length field (file truncated?)",
                           label, (unsigned long long)n,
                           (unsigned long long)(size - 8));
    if (n > SIZE_MAX)
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "%s: header too large for this host", label);
    return MARLIN_OK;
}

static marlin_status too_small(const char *label, uint64_t size,
                               marlin_error *err) {
    return marlin_fail(err, MARLIN_ERR_FORMAT,
                       "%s: file is %llu bytes, shorter than the 8-byte "
                       "header length field",
                       label, (unsigned long long)size);
}

marlin_status marlin_st_parse(const void *buf, size_t len, const char *label,
                              marlin_st_file **out, marlin_error *err) {
    marlin_st_file *f = NULL;
    marlin_status rc;
    const uint8_t *b = buf;
    if (!label) label = "<memory>";
    if (!out || (!buf && len))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: marlin_st_parse: NULL argument", label);
    *out = NULL;
    if ((rc = new_file(label, &f, err)) != MARLIN_OK) return rc;
    f->base = b;
    f->size = len;
    if (len < 8) {
        rc = too_small(label, len, err);
        goto fail;
    }
    uint64_t n = le64(b);
    if ((rc = check_prefix(label, len, n, err)) != MARLIN_OK) goto fail;
    f->data_off = 8 + n;
    rc = st_header_scan(f, b + 8, n, (uint64_t)len - 8 - n, err);
    if (rc != MARLIN_OK) goto fail;
    *out = f;
    return MARLIN_OK;
fail:
    marlin_st_close(f);
    return rc;
}

/* pread of exactly n bytes at off; a short count means the file ended. */
static marlin_status pread_full(int fd, void *dst, uint64_t n, uint64_t off,
                                uint64_t *got, int *err_no) {
    uint8_t *d = dst;
    uint64_t done = 0;
    *err_no = 0;
    while (done < n) {
        /* Linux caps one read at 0x7ffff000 bytes; ask for at most 1 GiB */
        size_t want = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
        ssize_t r = pread(fd, d + done, want, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            *err_no = errno;
            break;
        }
        if (r == 0) break;
        done += (uint64_t)r;
    }
    *got = done;
    return done == n ? MARLIN_OK : MARLIN_ERR_IO;
}

marlin_status marlin_st_open(const char *path, marlin_st_file **out,
                             marlin_error *err) {
    marlin_st_file *f = NULL;
    marlin_status rc;
    uint8_t *hdr = NULL;
    uint8_t pre[8];
    struct stat st;
    uint64_t got;
    int e;
    if (!path || !out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_st_open: NULL argument");
    *out = NULL;
    if ((rc = new_file(path, &f, err)) != MARLIN_OK) return rc;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer; it has no effect on the regular files we go on to read. */
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f->fd < 0) {
        rc = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot open: %s", path,
                         strerror(errno));
        goto fail;
    }
    if (fstat(f->fd, &st) != 0) {
        rc = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot stat: %s", path,
                         strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "not a regular file";
        rc = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                         "%s: is %s, not a regular safetensors file", path,
                         what);
        goto fail;
    }
    /* Everything below is validated against this size: a file that grows
     * later is never read past it (case 83). */
    f->size = (uint64_t)st.st_size;
    if (f->size < 8) {
        rc = too_small(path, f->size, err);
        goto fail;
    }
    if (pread_full(f->fd, pre, 8, 0, &got, &e) != MARLIN_OK) {
        rc = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot read: %s", path,
                         e ? strerror(e) : "file shrank while opening");
        goto fail;
    }
    uint64_t n = le64(pre);
    if ((rc = check_prefix(path, f->size, n, err)) != MARLIN_OK) goto fail;
    f->data_off = 8 + n;
    hdr = malloc(n ? (size_t)n : 1);
    if (!hdr) {
        rc = marlin_fail(err, MARLIN_ERR_NOMEM,
                         "%s: out of memory for a %llu-byte header", path,
                         (unsigned long long)n);
        goto fail;
    }
    if (pread_full(f->fd, hdr, n, 8, &got, &e) != MARLIN_OK) {
        rc = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot read the header: %s",
                         path, e ? strerror(e) : "file shrank while opening");
        goto fail;
    }
    rc = st_header_scan(f, hdr, n, f->size - 8 - n, err);
    if (rc != MARLIN_OK) goto fail;
    MARLIN_FREE(hdr);

    if (f->size > SIZE_MAX) {
        rc = marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                         "%s: file too large to map on this host", path);
        goto fail;
    }
    f->map_len = (size_t)f->size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot map: %s", path,
                         strerror(errno));
        goto fail;
    }
    f->base = f->map;
    *out = f;
    return MARLIN_OK;
fail:
    free(hdr);
    marlin_st_close(f);
    return rc;
}

void marlin_st_close(marlin_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    if (f->fd >= 0) close(f->fd);
    free(f->tensors);
    free(f->dims);
    free(f->meta);
    free(f->strings);
    free(f->warning);
    free(f->label);
    free(f);
}

/* ---------------------------------------------------------------- lookups */

const char *marlin_st_label(const marlin_st_file *f) {
    return f ? f->label : NULL;
}

size_t marlin_st_count(const marlin_st_file *f) { return f ? f->count : 0; }

const marlin_tensor *marlin_st_at(const marlin_st_file *f, size_t i) {
    if (!f || i >= f->count) return NULL;
    return &f->tensors[i];
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

const marlin_tensor *marlin_st_find(const marlin_st_file *f,
                                    const char *name) {
    if (!f || !name) return NULL;
    size_t n = strlen(name), lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const marlin_tensor *t = &f->tensors[mid];
        int c = key_cmp(name, n, t->name, t->name_len);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *marlin_st_warning(const marlin_st_file *f) {
    return f ? f->warning : NULL;
}

size_t marlin_st_metadata_count(const marlin_st_file *f) {
    return f ? f->meta_count : 0;
}

void marlin_st_metadata_at(const marlin_st_file *f, size_t i,
                           const char **key, const char **value) {
    const char *k = NULL, *v = NULL;
    if (f && i < f->meta_count) {
        k = f->meta[i].key;
        v = f->meta[i].value;
    }
    if (key) *key = k;
    if (value) *value = v;
}

const char *marlin_st_metadata_get(const marlin_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    size_t n = strlen(key), lo = 0, hi = f->meta_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(key, n, f->meta[mid].key, f->meta[mid].key_len);
        if (c == 0) return f->meta[mid].value;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------- data */

/* The tensor must be one of f's own entries (a pointer from another file
 * would index bytes this file never validated). */
static bool owns(const marlin_st_file *f, const marlin_tensor *t) {
    uintptr_t a = (uintptr_t)f->tensors, p = (uintptr_t)t;
    if (!f->count || p < a) return false;
    uintptr_t off = p - a;
    return off % sizeof *t == 0 && off / sizeof *t < f->count;
}

const void *marlin_st_data(const marlin_st_file *f, const marlin_tensor *t) {
    if (!f || !t || !owns(f, t)) return NULL;
    return f->base + f->data_off + t->begin;
}

static marlin_status bad_tensor(const marlin_st_file *f, const char *fn,
                                marlin_error *err) {
    return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                       "%s: %s: tensor is NULL or belongs to another file",
                       f ? f->label : "(null)", fn);
}

/* Copies n bytes at byte `off` of tensor t; bounds already checked. */
static marlin_status read_bytes(const marlin_st_file *f,
                                const marlin_tensor *t, uint64_t off,
                                uint64_t n, void *dst, marlin_error *err) {
    char nm[200];
    uint64_t got;
    int e;
    if (n == 0) return MARLIN_OK;
    if (f->fd < 0) {
        memcpy(dst, f->base + f->data_off + t->begin + off, (size_t)n);
        return MARLIN_OK;
    }
    uint64_t at = f->data_off + t->begin + off;
    if (pread_full(f->fd, dst, n, at, &got, &e) == MARLIN_OK) return MARLIN_OK;
    st_printable(t->name, t->name_len, nm, sizeof nm);
    if (e)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: tensor '%s': read failed: "
                                               "%s",
                           f->label, nm, strerror(e));
    return marlin_fail(err, MARLIN_ERR_IO,
                       "%s: tensor '%s': file ends at byte %llu, inside the "
                       "tensor's bytes [%llu, %llu) (truncated after it was "
                       "opened?)",
                       f->label, nm, (unsigned long long)(at + got),
                       (unsigned long long)(f->data_off + t->begin),
                       (unsigned long long)(f->data_off + t->end));
}

marlin_status marlin_st_read(const marlin_st_file *f, const marlin_tensor *t,
                             uint64_t off, uint64_t n, void *dst,
                             marlin_error *err) {
    char nm[200];
    uint64_t stop;
    if (!f || !t || !owns(f, t)) return bad_tensor(f, "marlin_st_read", err);
    if (!marlin_add_u64(off, n, &stop) || stop > t->nbytes)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: tensor '%s': read of %llu bytes at offset "
                           "%llu exceeds its %llu bytes",
                           f->label, st_printable(t->name, t->name_len, nm,
                                                  sizeof nm),
                           (unsigned long long)n, (unsigned long long)off,
                           (unsigned long long)t->nbytes);
    if (n > SIZE_MAX || (n && !dst))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: tensor '%s': marlin_st_read: bad destination",
                           f->label, st_printable(t->name, t->name_len, nm,
                                                  sizeof nm));
    return read_bytes(f, t, off, n, dst, err);
}

typedef void (*widen_fn)(const uint16_t *src, float *dst, size_t n);

marlin_status marlin_st_read_f32(const marlin_st_file *f,
                                 const marlin_tensor *t, float *dst,
                                 marlin_error *err) {
    char nm[200];
    marlin_status rc = MARLIN_OK;
    uint16_t *chunk = NULL;
    widen_fn widen;
    if (!f || !t || !owns(f, t))
        return bad_tensor(f, "marlin_st_read_f32", err);
    if (t->nbytes > SIZE_MAX || (t->numel && !dst))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%s: tensor '%s': marlin_st_read_f32: bad "
                           "destination",
                           f->label, st_printable(t->name, t->name_len, nm,
                                                  sizeof nm));
    switch (t->dtype) {
    case MARLIN_DT_F32:
        return read_bytes(f, t, 0, t->nbytes, dst, err);
    case MARLIN_DT_F16:
        widen = marlin_half_to_float_n;
        break;
    case MARLIN_DT_BF16:
        widen = marlin_bf16_to_float_n;
        break;
    default:
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "%s: tensor '%s': dtype %s cannot be read as fp32 "
                           "(F16, BF16 and F32 can)",
                           f->label, st_printable(t->name, t->name_len, nm,
                                                  sizeof nm),
                           marlin_dtype_name(t->dtype));
    }
    const uint8_t *src = f->base + f->data_off + t->begin;
    if (f->fd < 0 && ((uintptr_t)src & 1) == 0) {
        /* in-memory image, aligned: convert in place, no copy */
        widen((const uint16_t *)(const void *)src, dst, (size_t)t->numel);
        return MARLIN_OK;
    }
    /* From disk (pread, so truncation is an error, not SIGBUS) or from an
     * unaligned buffer: go through a cache-sized bounce buffer. */
    size_t cap = t->numel < ST_F32_CHUNK ? (size_t)t->numel : ST_F32_CHUNK;
    chunk = malloc((cap ? cap : 1) * sizeof *chunk);
    if (!chunk)
        return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory",
                           f->label);
    for (uint64_t i = 0; i < t->numel; i += cap) {
        size_t k = t->numel - i < cap ? (size_t)(t->numel - i) : cap;
        rc = read_bytes(f, t, i * 2, (uint64_t)k * 2, chunk, err);
        if (rc != MARLIN_OK) break;
        widen(chunk, dst + i, k);
    }
    free(chunk);
    return rc;
}
