/*
 * marlin_cli.h - small helpers shared by the tool mains: strict number
 * parsing, comma lists, and a progress renderer for stderr.
 *
 * Tool conventions (style.md habit 22): --help to stdout + exit 0; a bad
 * argument prints one line plus "Try '<tool> --help'" to stderr and exits 2;
 * runtime errors print "<tool>: <message>" and exit 1; verification failures
 * exit 3. Progress goes to stderr: a bar redrawn at most ~6 times a second
 * when stderr is a terminal, nothing otherwise (unless verbose).
 */
#ifndef MARLIN_CLI_H
#define MARLIN_CLI_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { MARLIN_EXIT_OK = 0, MARLIN_EXIT_RUNTIME = 1, MARLIN_EXIT_USAGE = 2,
       MARLIN_EXIT_VERIFY = 3 };

/* Prints "<tool>: <msg>[: <arg>]" and "Try '<tool> --help'" to stderr and
 * returns MARLIN_EXIT_USAGE (arg may be NULL). */
int marlin_cli_usage_error(const char *tool, const char *msg, const char *arg);

/* Parses a whole decimal integer in [min, max]; false on junk/overflow. */
bool marlin_cli_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parses a whole finite decimal number in [min, max]. */
bool marlin_cli_double(const char *s, double min, double max, double *out);
/* Parses "a,b,c" integers in [min, max] into out (capacity cap); returns the
 * count, or -1 on error. */
int marlin_cli_int_list(const char *s, int64_t min, int64_t max, int64_t *out,
                        int cap);
/* Parses a size like "5GB", "500MB", "123" (decimal units, as huggingface_hub). */
bool marlin_cli_size(const char *s, uint64_t *out);

/* Progress renderer: pass &state as marlin_progress.user with
 * marlin_cli_progress_fn as .fn. level: 0 quiet, 1 normal (bar on a tty),
 * 2 verbose (one line per stage). */
typedef struct marlin_cli_progress_state {
    const char *tool;
    int level;
    int tty;
    double last_draw;
    double start;
    char last_what[64];
    int drawn;
} marlin_cli_progress_state;

void marlin_cli_progress_init(marlin_cli_progress_state *st, const char *tool,
                              int level);
void marlin_cli_progress_fn(void *user, const char *what, int64_t done,
                            int64_t total);
/* Clears a drawn bar (call before printing other lines to stderr). */
void marlin_cli_progress_end(marlin_cli_progress_state *st);

#ifdef __cplusplus
}
#endif
#endif
