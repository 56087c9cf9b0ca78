/* SPDX-License-Identifier: MIT */
/*
 * bench.c: the C side of `make bench` (tools/bench/run drives it), on the
 * capstone pool, lesson 08's solution (solutions/08-pool/pool.c).
 *
 * Usage: bench CASE ARGS; each case prints "CASE SECONDS":
 *   overhead N      N trivial tasks, chunksize 1: the cost of one task
 *   throughput N    N trivial tasks, Python's default chunksize
 *   cpu T W J       T tasks of W units of work on J workers, chunksize 1;
 *                   J = 0 runs them in this process, no pool
 *   floor N         N pipe round trips between two processes (floor.c)
 *   spawn CMD...    CMD as a whole process, start to exit (floor.c)
 * As on the Python side, the pool is started and warm before the clock
 * starts: the cases time the work, not the start-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"            /* lesson 08's, from the tree make bench times (-I) */
#include "bench.h"

static int
trivial(const void *args, const void *in, void *out)
{
    (void)args;
    *(long long *)out = *(const long long *)in + 1;
    return 0;
}

static int
cpu(const void *args, const void *in, void *out)
{
    (void)args;
    *(long long *)out = work(*(const long long *)in);
    return 0;
}

/* Seconds to map fn over n items (each `item`) with `workers` workers. */
static double
timed_map(long workers, int (*fn)(const void *, const void *, void *),
          long long item, long n, long chunksize)
{
    struct pool_error err;
    struct pool *p = pool_create(&(struct pool_config){.workers = workers}, &err);
    long long *xs = malloc(sizeof *xs * (size_t)(n + 1));
    long long *ys = malloc(sizeof *ys * (size_t)(n + 1));
    struct pool_func f = POOL_FUNC(fn, long long, long long);
    double t;

    if (p == NULL || xs == NULL || ys == NULL) {
        fprintf(stderr, "bench: %s\n", p == NULL ? err.message : "out of memory");
        exit(1);
    }
    for (long i = 0; i < n; i++)
        xs[i] = item < 0 ? i : item;
    if (pool_map(p, &POOL_FUNC(trivial, long long, long long), xs, ys,
                 workers * 4 < n ? workers * 4 : n, 1) == -1)
        goto failed;            /* every worker up and warm */
    t = seconds();
    if (pool_map(p, &f, xs, ys, n, chunksize) == -1)
        goto failed;
    t = seconds() - t;
    if (fn == trivial && n > 0 && ys[n - 1] != n)
        fprintf(stderr, "bench: wrong result %lld\n", ys[n - 1]), exit(1);
    pool_close(p);
    pool_join(p);
    pool_destroy(&p);
    free(xs);
    free(ys);
    return t;
failed:
    fprintf(stderr, "bench: %s\n", pool_last_error(p)->message);
    exit(1);
}

int
main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;

    if (strcmp(c, "overhead") == 0 && n > 0)
        printf("%s %.6f\n", c, timed_map(2, trivial, -1, n, 1));
    else if (strcmp(c, "throughput") == 0 && n > 0)
        printf("%s %.6f\n", c, timed_map(2, trivial, -1, n, 0));
    else if (strcmp(c, "cpu") == 0 && argc == 5) {
        long long units = atoll(argv[3]);
        long workers = atol(argv[4]);
        double t = seconds();
        volatile long long sink = 0;

        if (workers == 0) {
            for (long i = 0; i < n; i++)
                sink += work(units);
            t = seconds() - t;
        } else {
            t = timed_map(workers, cpu, units, n, 1);
        }
        printf("%s %.6f\n", c, t);
    } else if (strcmp(c, "floor") == 0 && n > 0)
        printf("%s %.6f\n", c, floor_round_trips(n));
    else if (strcmp(c, "spawn") == 0 && argc > 2)
        printf("%s %.6f\n", c, spawn(argv + 2));
    else {
        fprintf(stderr, "bench: usage: bench overhead N | throughput N | "
                        "cpu TASKS UNITS WORKERS | floor N | spawn CMD...\n");
        return 2;
    }
    return 0;
}
