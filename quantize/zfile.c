/*
 * zfile.c - whole-buffer zstd files for the GPTQ caches (activations
 * between layers, stored Hessians): written to a temporary name, fsynced and
 * renamed, so a run killed mid-write never leaves a truncated file under the
 * final name; read back with an exact size check.
 *
 * File layout: 32-byte header, then one zstd frame.
 *   [0, 8)   magic (8 bytes, caller's, e.g. "MHESS01\0")
 *   [8, 16)  uncompressed size, u64 LE
 *   [16, 24) tag, u64 LE (caller's: e.g. a fingerprint)
 *   [24, 32) reserved, 0
 */
#include "zfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static marlin_status write_all(int fd, const void *buf, size_t n,
                               const char *path, marlin_error *err) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return marlin_fail(err, MARLIN_ERR_IO, "%s: write: %s", path,
                               w < 0 ? strerror(errno) : "short write");
        p += w;
        n -= (size_t)w;
    }
    return MARLIN_OK;
}

marlin_status marlin_zfile_write(const char *path, const char magic[8],
                                 uint64_t tag, const void *data, size_t n,
                                 int level, marlin_error *err) {
    size_t cap = ZSTD_compressBound(n);
    uint8_t *buf = malloc(32 + cap);
    char *tmp = malloc(strlen(path) + 16);
    marlin_status st = MARLIN_OK;
    int fd = -1;
    if (!buf || !tmp) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    memcpy(buf, magic, 8);
    put_u64(buf + 8, n);
    put_u64(buf + 16, tag);
    put_u64(buf + 24, 0);
    size_t z = ZSTD_compress(buf + 32, cap, data, n, level);
    if (ZSTD_isError(z)) {
        st = marlin_fail(err, MARLIN_ERR_INTERNAL, "%s: zstd: %s", path, ZSTD_getErrorName(z));
        goto out;
    }
    sprintf(tmp, "%s.tmp%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { st = marlin_fail(err, MARLIN_ERR_IO, "%s: %s", tmp, strerror(errno)); goto out; }
    if ((st = write_all(fd, buf, 32 + z, tmp, err))) goto out;
    if (fsync(fd) != 0) { st = marlin_fail(err, MARLIN_ERR_IO, "%s: fsync: %s", tmp, strerror(errno)); goto out; }
    if (close(fd) != 0) { fd = -1; st = marlin_fail(err, MARLIN_ERR_IO, "%s: close: %s", tmp, strerror(errno)); goto out; }
    fd = -1;
    if (rename(tmp, path) != 0) { st = marlin_fail(err, MARLIN_ERR_IO, "%s: rename: %s", path, strerror(errno)); goto out; }
out:
    if (fd >= 0) close(fd);
    if (st != MARLIN_OK && tmp) unlink(tmp);
    free(tmp);
    free(buf);
    return st;
}

marlin_status marlin_zfile_read(const char *path, const char magic[8],
                                uint64_t tag, void *data, size_t n,
                                marlin_error *err) {
    FILE *f = fopen(path, "rb");
    uint8_t hdr[32];
    uint8_t *z = NULL;
    marlin_status st = MARLIN_OK;
    if (!f) return marlin_fail(err, MARLIN_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 32 || fread(hdr, 1, 32, f) != 32) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: not a cache file (too short)", path);
        goto out;
    }
    if (memcmp(hdr, magic, 8) != 0) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: not a %.7s file", path, magic);
        goto out;
    }
    if (get_u64(hdr + 8) != n || get_u64(hdr + 16) != tag) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: holds %llu bytes with tag %016llx, expected %zu bytes with "
                         "tag %016llx (made for another model, input or shape)",
                         path, (unsigned long long)get_u64(hdr + 8),
                         (unsigned long long)get_u64(hdr + 16), n, (unsigned long long)tag);
        goto out;
    }
    size_t zn = (size_t)sb.st_size - 32;
    if (!(z = malloc(zn ? zn : 1))) { st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory"); goto out; }
    if (fread(z, 1, zn, f) != zn) { st = marlin_fail(err, MARLIN_ERR_IO, "%s: short read", path); goto out; }
    size_t got = ZSTD_decompress(data, n, z, zn);
    if (ZSTD_isError(got) || got != n)
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: corrupt zstd data (%s)", path,
                         ZSTD_isError(got) ? ZSTD_getErrorName(got) : "size mismatch");
out:
    free(z);
    fclose(f);
    return st;
}

uint64_t marlin_fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    if (h == 0) h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
