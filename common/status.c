/*
 * status.c - status names and the error context (marlin_error).
 */
#include "marlin_common.h"

#include <stdio.h>
#include <string.h>

const char *marlin_status_str(marlin_status st) {
    switch (st) {
    case MARLIN_OK: return "ok";
    case MARLIN_ERR_IO: return "I/O error";
    case MARLIN_ERR_FORMAT: return "format error";
    case MARLIN_ERR_INVALID_ARG: return "invalid argument";
    case MARLIN_ERR_NOMEM: return "out of memory";
    case MARLIN_ERR_SHAPE: return "unsupported shape";
    case MARLIN_ERR_UNSUPPORTED: return "unsupported";
    case MARLIN_ERR_NUMERIC: return "numerical error";
    case MARLIN_ERR_CUDA: return "CUDA error";
    case MARLIN_ERR_VERIFY: return "verification failed";
    case MARLIN_ERR_EXISTS: return "already exists";
    case MARLIN_ERR_INTERRUPTED: return "interrupted";
    case MARLIN_ERR_NO_DEVICE: return "no GPU";
    case MARLIN_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

marlin_status marlin_vfail(marlin_error *err, marlin_status code,
                           const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

marlin_status marlin_fail(marlin_error *err, marlin_status code,
                          const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    marlin_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

marlin_status marlin_error_prefix(marlin_error *err, const char *fmt, ...) {
    char prefix[MARLIN_ERRMSG_MAX];
    char old[MARLIN_ERRMSG_MAX];
    va_list ap;
    if (!err) return MARLIN_ERR_INTERNAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Build "prefix: old" piecewise; truncation at the buffer end is fine. */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 1) n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    size_t room = sizeof err->msg - 1 - n;
    const char *sep = ": ";
    size_t k = room < 2 ? room : 2;
    memcpy(err->msg + n, sep, k);
    n += k;
    room -= k;
    size_t o = strlen(old);
    if (o > room) o = room;
    memcpy(err->msg + n, old, o);
    err->msg[n + o] = '\0';
    return err->code;
}

void marlin_error_clear(marlin_error *err) {
    if (!err) return;
    err->code = MARLIN_OK;
    err->msg[0] = '\0';
}
