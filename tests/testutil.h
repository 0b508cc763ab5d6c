/*
 * testutil.h - helpers shared by the cmocka suites.
 *
 * Seeds: every randomized test takes its seed from marlin_test_seed(), which
 * is MARLIN_TEST_SEED from the environment or a fixed default, and prints it
 * on failure through MT_ASSERT* so any failure can be replayed.
 */
#ifndef MARLIN_TESTUTIL_H
#define MARLIN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "marlin_common.h"

/* Seed for randomized tests: $MARLIN_TEST_SEED or `dflt`. */
uint64_t marlin_test_seed(uint64_t dflt);

/* Path under ../shared ($MARLIN_SHARED_DIR); NULL when the folder is absent.
 * Returned string is static storage (one at a time). */
const char *marlin_shared_path(const char *rel);
/* Path under the source tree / build tree (static storage). */
const char *marlin_source_path(const char *rel);
const char *marlin_binary_path(const char *rel);

/* Creates a fresh temporary directory (removed by marlin_rmtree). Returns a
 * malloc'ed path. */
char *marlin_test_tmpdir(const char *tag);
/* rm -rf (only paths under /tmp or $TMPDIR are accepted). */
void marlin_rmtree(const char *path);

/* Runs a shell command, returns its exit status (or -1). Output goes to the
 * test's stdout/stderr. */
int marlin_test_system(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* True when `python3 -c "import <modules>"` works. */
int marlin_have_python_modules(const char *modules);

/* Writes a whole file; returns 0 on success. */
int marlin_write_file(const char *path, const void *data, size_t n);

/* Fails the current test with a message that includes the seed. */
#define MT_FAILF(seed, ...)                                                   \
    do {                                                                      \
        print_error("seed=%llu: ", (unsigned long long)(seed));               \
        print_error(__VA_ARGS__);                                             \
        print_error("\n");                                                    \
        fail();                                                               \
    } while (0)

#define MT_ASSERT(seed, cond, ...)                                            \
    do {                                                                      \
        if (!(cond)) MT_FAILF(seed, __VA_ARGS__);                             \
    } while (0)

#endif
