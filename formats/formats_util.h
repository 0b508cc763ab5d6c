/*
 * formats_util.h - PRIVATE helpers of formats/ (writer, model folder,
 * config, index): a growable text buffer, JSON string escaping in the two
 * dialects we must reproduce byte for byte (serde_json for safetensors
 * headers, Python json.dumps(ensure_ascii=True) for index files), the
 * NaN/Infinity pre-pass for config.json, and durable file operations
 * (positioned writes, atomic replace, fsync of folders, tree removal).
 *
 * Not installed, not part of the public API: include only from the .c files
 * (and the formats tests/fuzzers).
 */
#ifndef MARLIN_FORMATS_UTIL_H
#define MARLIN_FORMATS_UTIL_H

#include "marlin_formats.h"

#include <stdio.h>

#include <jansson.h>

/* ------------------------------------------------------------ text buffer */
/* A NUL-terminated growable byte buffer. `oom` latches the first allocation
 * failure so callers check once at the end instead of after every append. */
typedef struct mf_buf {
    char *p;
    size_t len, cap;
    bool oom;
} mf_buf;

void mf_buf_free(mf_buf *b);
void mf_buf_put(mf_buf *b, const void *data, size_t n);
void mf_buf_puts(mf_buf *b, const char *s);
void mf_buf_putc(mf_buf *b, char c);
void mf_buf_printf(mf_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Takes ownership of the bytes (NULL if oom); the buffer is left empty. */
char *mf_buf_take(mf_buf *b, size_t *len);

/* --------------------------------------------------------- JSON escaping */
/* serde_json's escaping (safetensors.md W3): '"' '\\' and \b \f \n \r \t
 * short forms, other C0 controls as \u00xx (lowercase hex), everything else
 * (DEL, '/', non-ASCII) raw. Writes the quotes too. */
void mf_json_str_serde(mf_buf *b, const char *s, size_t n);
/* Python json.dumps(ensure_ascii=True): like serde for C0, but every byte
 * outside 0x20..0x7e becomes \uxxxx (UTF-8 decoded; astral characters as a
 * surrogate pair). `s` must be valid UTF-8. Writes the quotes too. */
void mf_json_str_ascii(mf_buf *b, const char *s, size_t n);
/* The shortest decimal that reads back as `v` (Python repr style:
 * 1e-05, 10000.0, 0.02). Non-finite values are written as null. */
void mf_json_double(mf_buf *b, double v);

/* True when s[0..n) is valid UTF-8 (no overlong forms, no surrogates, no
 * code points above U+10FFFF). */
bool mf_utf8_valid(const char *s, size_t n);

/* Renders untrusted bytes for a one-line message: control bytes as \xNN,
 * cut with "..." to fit cap (>= 16) bytes. Returns buf. */
const char *mf_printable(const char *s, size_t n, char *buf, size_t cap);

/* ------------------------------------------------- lenient config parsing */
/* Rewrites bare NaN, Infinity and -Infinity tokens outside JSON strings as
 * the strings "\u0000NaN", "\u0000Infinity", "\u0000-Infinity" (an embedded
 * NUL no real value has), so jansson can parse the text while readers of a
 * numeric field can still tell "NaN" from a missing key. Returns a malloc'ed
 * NUL-terminated copy (NULL when out of memory). */
char *mf_nan_prepass(const char *text, size_t len, size_t *out_len);
/* If `v` is a pre-pass sentinel, its token ("NaN", ...); else NULL. */
const char *mf_nan_sentinel(const json_t *v);

/* json_loadb with our flags; a parse failure becomes MARLIN_ERR_FORMAT
 * "<label>: invalid JSON at line L column C: <jansson text>". */
marlin_status mf_json_parse(const char *text, size_t len, const char *label,
                            size_t flags, json_t **out, marlin_error *err);

/* ---------------------------------------------------------- file helpers */
/* "<a>/<b>" (malloc'ed, NULL on OOM). */
char *mf_path_join(const char *a, const char *b);
/* The last path component (pointer into `path`). */
const char *mf_basename(const char *path);
/* malloc'ed copy of the folder part ("." when there is none). */
char *mf_dirname(const char *path);

/* pwrite/pread of exactly n bytes (retries on EINTR and short transfers). */
marlin_status mf_pwrite_all(int fd, const void *data, uint64_t n, uint64_t off,
                            const char *label, marlin_error *err);
/* Reads a whole regular file of at most `max` bytes (NUL-terminated). */
marlin_status mf_read_file(const char *path, const char *label, size_t max,
                           char **out, size_t *len, marlin_error *err);
/* fsync of a folder, so the names created or renamed in it are durable. */
marlin_status mf_fsync_dir(const char *dir, marlin_error *err);
/* Creates <dir>/.<name>.tmp-<unique> with O_EXCL (mode 0666 & ~umask).
 * Returns the fd and the malloc'ed temporary path. */
marlin_status mf_create_temp(const char *dir, const char *name, int *fd,
                             char **tmp_path, marlin_error *err);
/* Removes a tree without following symlinks (nftw, depth first). Returns 0
 * on success. */
int mf_rmtree(const char *path);

/* ------------------------------------------- model folder internals */
/* Case 85 for a file of the model folder (model.c). */
marlin_status mf_model_check_inside(const marlin_model *m, const char *path,
                                    marlin_error *err);
/* config.json as read (NULL when the checkpoint has none). */
const char *mf_model_config_text(const marlin_model *m, size_t *len);

#endif /* MARLIN_FORMATS_UTIL_H */
