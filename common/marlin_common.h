/*
 * marlin_common.h - status codes, error context and small shared utilities
 * used by every stage of the marlin toolchain (libmarlinq).
 *
 * Conventions (see docs/style in the README):
 *  - Every library function that can fail returns a marlin_status and, on
 *    failure, fills a caller-provided marlin_error with one human-readable
 *    line naming the object (file, tensor) and the broken rule.
 *  - The library never prints, exits or aborts on bad input; tools print
 *    marlin_error.msg and map the status to an exit code.
 *  - Counts and byte offsets are int64_t/uint64_t/size_t.
 */
#ifndef MARLIN_COMMON_H
#define MARLIN_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MARLIN_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes. Values are stable: tools and tests compare against them.  */
/* ------------------------------------------------------------------------ */
typedef enum marlin_status {
    MARLIN_OK = 0,
    MARLIN_ERR_IO = 1,          /* open/read/write/mmap/rename failed */
    MARLIN_ERR_FORMAT = 2,      /* malformed input file or folder */
    MARLIN_ERR_INVALID_ARG = 3, /* bad argument from the caller / user */
    MARLIN_ERR_NOMEM = 4,       /* allocation failed */
    MARLIN_ERR_SHAPE = 5,       /* shape not supported by a format/kernel */
    MARLIN_ERR_UNSUPPORTED = 6, /* feature/arch/dtype not supported */
    MARLIN_ERR_NUMERIC = 7,     /* NaN/Inf input, factorization failure */
    MARLIN_ERR_CUDA = 8,        /* CUDA runtime/driver/cuBLAS error */
    MARLIN_ERR_VERIFY = 9,      /* verification found a mismatch */
    MARLIN_ERR_EXISTS = 10,     /* output exists and overwrite not allowed */
    MARLIN_ERR_INTERRUPTED = 11,/* cancelled (SIGINT) */
    MARLIN_ERR_NO_DEVICE = 12,  /* no usable GPU present */
    MARLIN_ERR_INTERNAL = 13    /* broken internal invariant (a bug) */
} marlin_status;

/* Short constant name of a status ("format error", ...). Never NULL. */
const char *marlin_status_str(marlin_status st);

/* Error context: one line of detail for the last failure. */
#define MARLIN_ERRMSG_MAX 1024
typedef struct marlin_error {
    marlin_status code;
    char msg[MARLIN_ERRMSG_MAX];
} marlin_error;

/* Records `code` and a printf-style message into `err` (if non-NULL) and
 * returns `code`, so that failure paths read
 *     return marlin_fail(err, MARLIN_ERR_FORMAT, "%s: ...", path);
 * The message is truncated to MARLIN_ERRMSG_MAX-1 bytes. */
marlin_status marlin_fail(marlin_error *err, marlin_status code,
                          const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
marlin_status marlin_vfail(marlin_error *err, marlin_status code,
                           const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 0)))
#endif
    ;

/* Prefixes err->msg with "prefix: " (used to add a file or tensor name when
 * an error crosses a layer boundary). Returns err->code. */
marlin_status marlin_error_prefix(marlin_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void marlin_error_clear(marlin_error *err);

/* ------------------------------------------------------------------------ */
/* fp16 / bf16 <-> fp32 (exact widening, round-to-nearest-even narrowing)   */
/* ------------------------------------------------------------------------ */
float marlin_half_to_float(uint16_t h);
/* Round to nearest even; overflow -> +-inf; NaN -> quiet NaN (0x7e00|sign). */
uint16_t marlin_float_to_half(float f);
float marlin_bf16_to_float(uint16_t b);
/* Round to nearest even; NaN -> 0x7fc0 (as PyTorch). */
uint16_t marlin_float_to_bf16(float f);
/* fp16 rounding of an fp32 value, as float (the value fp16 storage keeps). */
float marlin_round_to_half(float f);

/* Bulk conversions (use F16C when the CPU has it). n elements. */
void marlin_half_to_float_n(const uint16_t *src, float *dst, size_t n);
void marlin_float_to_half_n(const float *src, uint16_t *dst, size_t n);
void marlin_bf16_to_float_n(const uint16_t *src, float *dst, size_t n);

/* ------------------------------------------------------------------------ */
/* Deterministic RNG with explicit state (splitmix64 seeding + xoshiro256**) */
/* ------------------------------------------------------------------------ */
typedef struct marlin_rng {
    uint64_t s[4];
} marlin_rng;

void marlin_rng_seed(marlin_rng *r, uint64_t seed);
uint64_t marlin_rng_u64(marlin_rng *r);
/* Uniform in [0, 1). */
double marlin_rng_uniform(marlin_rng *r);
/* Standard normal (Box-Muller). */
float marlin_rng_normal(marlin_rng *r);

/* ------------------------------------------------------------------------ */
/* Threads: a blocking parallel-for over [0, n) split in contiguous chunks.  */
/* ------------------------------------------------------------------------ */
/* fn(arg, begin, end, thread_index) processes items [begin, end). */
typedef void (*marlin_range_fn)(void *arg, int64_t begin, int64_t end,
                                int thread_index);
/* Runs fn over [0, n) on up to `threads` threads (<= 0: all online CPUs).
 * `grain` is the minimum chunk size. Work assignment is static and
 * deterministic: chunk i always covers the same items. Returns MARLIN_OK or
 * MARLIN_ERR_NOMEM / MARLIN_ERR_INTERNAL if threads could not be created
 * (in which case the work is done on the calling thread). */
marlin_status marlin_parallel_for(int64_t n, int64_t grain, int threads,
                                  marlin_range_fn fn, void *arg);
/* Number of online CPUs (>= 1). */
int marlin_cpu_count(void);

/* ------------------------------------------------------------------------ */
/* Misc                                                                      */
/* ------------------------------------------------------------------------ */
/* Monotonic clock in seconds. */
double marlin_now(void);

/* Checked unsigned 64-bit arithmetic: return false on overflow. */
static inline bool marlin_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool marlin_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Progress reporting: stages report through an optional callback; tools
 * render it (a bar on a terminal). `done` of `total` units of `what`. */
typedef void (*marlin_progress_fn)(void *user, const char *what, int64_t done,
                                   int64_t total);
typedef struct marlin_progress {
    marlin_progress_fn fn;
    void *user;
} marlin_progress;

static inline void marlin_progress_report(const marlin_progress *p,
                                          const char *what, int64_t done,
                                          int64_t total) {
    if (p && p->fn) p->fn(p->user, what, done, total);
}

/* Free and NULL in one step. */
#define MARLIN_FREE(p) do { free(p); (p) = NULL; } while (0)

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_COMMON_H */
