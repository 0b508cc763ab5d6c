/*
 * threads.c - a small blocking parallel-for on pthreads.
 *
 * Why not OpenMP: OpenBLAS in Debian is built with pthreads, and mixing it
 * with a GNU OpenMP runtime oversubscribes cores. Work is split statically so
 * results never depend on scheduling (determinism is a tested property).
 */
#include "marlin_common.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int marlin_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

double marlin_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct chunk_job {
    marlin_range_fn fn;
    void *arg;
    int64_t begin, end;
    int index;
} chunk_job;

static void *chunk_main(void *p) {
    chunk_job *j = p;
    j->fn(j->arg, j->begin, j->end, j->index);
    return NULL;
}

marlin_status marlin_parallel_for(int64_t n, int64_t grain, int threads,
                                  marlin_range_fn fn, void *arg) {
    if (n <= 0) return MARLIN_OK;
    if (grain < 1) grain = 1;
    if (threads <= 0) threads = marlin_cpu_count();
    int64_t max_chunks = (n + grain - 1) / grain;
    int nt = threads < max_chunks ? threads : (int)max_chunks;
    if (nt <= 1) {
        fn(arg, 0, n, 0);
        return MARLIN_OK;
    }
    chunk_job *jobs = calloc((size_t)nt, sizeof *jobs);
    pthread_t *tids = calloc((size_t)nt, sizeof *tids);
    marlin_status st = MARLIN_OK;
    if (!jobs || !tids) {
        free(jobs);
        free(tids);
        fn(arg, 0, n, 0);
        return MARLIN_ERR_NOMEM;
    }
    for (int i = 0; i < nt; i++) {
        jobs[i].fn = fn;
        jobs[i].arg = arg;
        jobs[i].begin = n * i / nt;
        jobs[i].end = n * (i + 1) / nt;
        jobs[i].index = i;
    }
    /* chunk 0 runs on the caller; a chunk whose thread cannot be created
     * also runs on the caller, so the work is always complete. */
    char *ok = calloc((size_t)nt, 1);
    for (int i = 1; i < nt; i++) {
        if (ok && pthread_create(&tids[i], NULL, chunk_main, &jobs[i]) == 0) {
            ok[i] = 1;
        }
    }
    chunk_main(&jobs[0]);
    for (int i = 1; i < nt; i++) {
        if (ok && ok[i]) pthread_join(tids[i], NULL);
        else {
            chunk_main(&jobs[i]);
            st = MARLIN_ERR_INTERNAL;
        }
    }
    free(ok);
    free(jobs);
    free(tids);
    return st;
}
