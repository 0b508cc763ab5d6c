/*
 * zfile.h - PRIVATE to quantize/: zstd cache files and a hash for cache keys
 * (see zfile.c for the file layout).
 */
#ifndef MARLIN_ZFILE_H
#define MARLIN_ZFILE_H

#include "marlin_common.h"

/* Writes data (n bytes) compressed at zstd `level`, atomically. */
marlin_status marlin_zfile_write(const char *path, const char magic[8],
                                 uint64_t tag, const void *data, size_t n,
                                 int level, marlin_error *err);
/* Reads a file written with the same magic and tag holding exactly n bytes;
 * anything else is MARLIN_ERR_FORMAT naming the file. */
marlin_status marlin_zfile_read(const char *path, const char magic[8],
                                uint64_t tag, void *data, size_t n,
                                marlin_error *err);
/* 64-bit FNV-1a, chainable: h = marlin_fnv1a(h, ...), start with 0. */
uint64_t marlin_fnv1a(uint64_t h, const void *data, size_t n);

#endif
