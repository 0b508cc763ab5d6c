/*
 * testutil.c - helpers shared by the cmocka suites (see testutil.h).
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

uint64_t marlin_test_seed(uint64_t dflt) {
    const char *s = getenv("MARLIN_TEST_SEED");
    if (s && *s) return strtoull(s, NULL, 0);
    return dflt;
}

static const char *join(const char *env, const char *fallback,
                        const char *rel, int must_exist) {
    static char buf[4096];
    const char *base = getenv(env);
    struct stat st;
    if (!base || !*base) base = fallback;
    if (!base) return NULL;
    snprintf(buf, sizeof buf, "%s/%s", base, rel);
    if (must_exist && stat(buf, &st) != 0) return NULL;
    return buf;
}

const char *marlin_shared_path(const char *rel) {
    return join("MARLIN_SHARED_DIR", NULL, rel, 1);
}
const char *marlin_source_path(const char *rel) {
    return join("MARLIN_SOURCE_DIR", ".", rel, 0);
}
const char *marlin_binary_path(const char *rel) {
    return join("MARLIN_BINARY_DIR", ".", rel, 0);
}

char *marlin_test_tmpdir(const char *tag) {
    const char *t = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/marlin-test-%s-XXXXXX", t && *t ? t : "/tmp",
             tag);
    if (!mkdtemp(buf)) return NULL;
    return strdup(buf);
}

void marlin_rmtree(const char *path) {
    const char *t = getenv("TMPDIR");
    if (!path) return;
    if (strncmp(path, "/tmp/", 5) != 0 &&
        !(t && *t && strncmp(path, t, strlen(t)) == 0))
        return;
    marlin_test_system("rm -rf '%s'", path);
}

int marlin_test_system(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int rc = system(cmd);
    if (rc == -1) return -1;
    if (WIFEXITED(rc)) return WEXITSTATUS(rc);
    return -1;
}

int marlin_have_python_modules(const char *modules) {
    return marlin_test_system("python3 -c 'import %s' >/dev/null 2>&1",
                              modules) == 0;
}

int marlin_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    if (fclose(f) != 0 || w != n) return -1;
    return 0;
}
