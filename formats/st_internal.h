/*
 * st_internal.h - PRIVATE to formats/ (never installed, never included from
 * another stage): the layout of marlin_st_file and the header scanner that
 * st_header.c implements for st_file.c.
 *
 * Spec: safetensors.md sections 1 (rules R1-R16) and 3 (checks V1-V14).
 */
#ifndef MARLIN_ST_INTERNAL_H
#define MARLIN_ST_INTERNAL_H

#include "marlin_formats.h"

/* One __metadata__ entry; both strings live in the file's string arena and
 * are NUL-terminated (lengths are authoritative: \u0000 is legal JSON). */
typedef struct st_meta {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} st_meta;

struct marlin_st_file {
    char *label;          /* names the file in every error message */
    const uint8_t *base;  /* image: the caller's buffer or our mapping */
    uint64_t size;        /* image size (for files: fstat at open time) */
    uint64_t data_off;    /* 8 + N: file offset of the data buffer */
    int fd;               /* -1 for images parsed from memory */
    void *map;            /* mmap of the file (NULL for parsed buffers) */
    size_t map_len;

    marlin_tensor *tensors; /* sorted by name (byte order), count entries */
    size_t count;
    uint64_t *dims;         /* every tensor's shape, back to back */
    st_meta *meta;          /* __metadata__ sorted by key */
    size_t meta_count;
    char *strings;          /* arena: names, metadata keys and values */
    char *warning;          /* NULL, or one line (unknown entry fields) */
};

/* Scans and validates the n header bytes `hdr` (the bytes after the 8-byte
 * length) against a data buffer of data_len bytes, and fills f's tables
 * (tensors, dims, meta, strings, warning). On failure f's tables are left
 * NULL and err names f->label, the tensor when there is one, and the rule.
 * The caller has already checked n <= MARLIN_ST_MAX_HEADER. */
marlin_status st_header_scan(marlin_st_file *f, const uint8_t *hdr,
                             uint64_t n, uint64_t data_len,
                             marlin_error *err);

/* Writes a printable, length-capped rendering of a (possibly binary) name
 * into buf: control bytes and NUL as \xNN, long names cut with "...". */
const char *st_printable(const char *s, size_t n, char *buf, size_t cap);

#endif /* MARLIN_ST_INTERNAL_H */
