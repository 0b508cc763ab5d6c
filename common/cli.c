/*
 * cli.c - helpers for tool mains (see marlin_cli.h).
 */
#include "marlin_cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int marlin_cli_usage_error(const char *tool, const char *msg, const char *arg) {
    fprintf(stderr, "%s: %s%s%s\nTry '%s --help'\n", tool, msg, arg ? ": " : "",
            arg ? arg : "", tool);
    return MARLIN_EXIT_USAGE;
}

bool marlin_cli_int(const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end = NULL;
    if (!s || !*s || isspace((unsigned char)*s)) return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = (int64_t)v;
    return true;
}

bool marlin_cli_double(const char *s, double min, double max, double *out) {
    char *end = NULL;
    if (!s || !*s || isspace((unsigned char)*s)) return false;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return false;
    *out = v;
    return true;
}

int marlin_cli_int_list(const char *s, int64_t min, int64_t max, int64_t *out,
                        int cap) {
    char buf[1024];
    int n = 0;
    size_t len = s ? strlen(s) : 0;
    if (!s || len == 0 || len >= sizeof buf) return -1;
    /* strtok_r skips empty fields; an empty item is a user error here */
    if (s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,")) return -1;
    memcpy(buf, s, len + 1);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n >= cap || !marlin_cli_int(tok, min, max, &out[n])) return -1;
        n++;
    }
    return n > 0 ? n : -1;
}

bool marlin_cli_size(const char *s, uint64_t *out) {
    char *end = NULL;
    if (!s || !*s || !isdigit((unsigned char)*s)) return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    uint64_t mul = 1;
    if (!strcmp(end, "") || !strcasecmp(end, "B")) mul = 1;
    else if (!strcasecmp(end, "KB")) mul = 1000ull;
    else if (!strcasecmp(end, "MB")) mul = 1000000ull;
    else if (!strcasecmp(end, "GB")) mul = 1000000000ull;
    else if (!strcasecmp(end, "TB")) mul = 1000000000000ull;
    else return false;
    return marlin_mul_u64(v, mul, out) && *out > 0;
}

void marlin_cli_progress_init(marlin_cli_progress_state *st, const char *tool,
                              int level) {
    memset(st, 0, sizeof *st);
    st->tool = tool;
    st->level = level;
    st->tty = isatty(STDERR_FILENO);
    st->start = marlin_now();
}

void marlin_cli_progress_end(marlin_cli_progress_state *st) {
    if (st->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        st->drawn = 0;
    }
}

void marlin_cli_progress_fn(void *user, const char *what, int64_t done,
                            int64_t total) {
    marlin_cli_progress_state *st = user;
    if (!st || st->level <= 0) return;
    double now = marlin_now();
    bool new_stage = strncmp(st->last_what, what, sizeof st->last_what - 1) != 0;
    bool last = total > 0 && done >= total;
    if (st->level >= 2 && (new_stage || last) && !st->tty) {
        fprintf(stderr, "%s: %s %lld/%lld (%.1f s)\n", st->tool, what,
                (long long)done, (long long)total, now - st->start);
    }
    if (new_stage) snprintf(st->last_what, sizeof st->last_what, "%s", what);
    if (!st->tty) return;
    /* Redraw at most ~6 times a second (zstd's REFRESH_RATE), and always on
     * the last step so the bar ends full. */
    if (!last && !new_stage && now - st->last_draw < 1.0 / 6) return;
    st->last_draw = now;
    int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
    if (fill > width) fill = width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r\033[K%s: [%s] %lld/%lld %s (%.0f s)", st->tool, bar,
            (long long)done, (long long)total, what, now - st->start);
    fflush(stderr);
    st->drawn = 1;
}
