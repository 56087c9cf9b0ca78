/* SPDX-License-Identifier: MIT */
/*
 * bench.c: the C side of `make bench` (tools/bench/run drives it), on the
 * capstone pool, lesson 08's library (solutions/08-pool/pool-*.c).
 *
 * Usage: bench CASE ARGS; each case prints "CASE SECONDS":
 *   overhead N [K]  N trivial tasks, chunksize 1: the cost of one task;
 *                   K: pool_config.depth, the chunks a worker holds at once
 *                   (0, the default, adapts)
 *   throughput N [K]  N trivial tasks, Python's default chunksize
 *   loop N          the same N trivial tasks in this process, a plain loop:
 *                   what no pool can beat
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

/* The chunks a worker holds at once (pool_config.depth): argv's, else 0,
 * the pool's default. */
static long depth;

/* Seconds to map fn over n items (each `item`) with `workers` workers. */
static double
timed_map(long workers, int (*fn)(const void *, const void *, void *),
          long long item, long n, long chunksize)
{
    struct pool_error err;
    struct pool *p = pool_create(&(struct pool_config){.workers = workers,
                                                       .depth = depth}, &err);
    long long *xs = malloc(sizeof *xs * (size_t)(n + 1));
    long long *ys = malloc(sizeof *ys * (size_t)(n + 1));
    struct pool_func f = POOL_FUNC(fn, long long, long long);
    double t;

    if (p == NULL || xs == NULL || ys == NULL) {
        fprintf(stderr, "bench: %s\n", p == NULL ? err.message : "out of memory");
        pool_destroy(&p);
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
    if (fn == trivial && n > 0 && ys[n - 1] != n) {
        fprintf(stderr, "bench: wrong result %lld\n", ys[n - 1]);
        pool_destroy(&p);
        exit(1);
    }
    pool_close(p);
    pool_join(p);
    pool_destroy(&p);
    free(xs);
    free(ys);
    return t;
failed:
    fprintf(stderr, "bench: %s\n", pool_last_error(p)->message);
    pool_destroy(&p);           /* its workers stopped and reaped first */
    exit(1);
}

/* Seconds to compute trivial() over n items in this process: the input
 * made and touched before the clock starts, as timed_map()'s is, the
 * output array fresh, as the map's is. */
static double
timed_loop(long n)
{
    long long *xs = malloc(sizeof *xs * (size_t)n);
    long long *ys = malloc(sizeof *ys * (size_t)n);
    double t;

    if (xs == NULL || ys == NULL)
        fprintf(stderr, "bench: out of memory\n"), exit(1);
    for (long i = 0; i < n; i++)
        xs[i] = i;
    t = seconds();
    for (long i = 0; i < n; i++)
        trivial(NULL, &xs[i], &ys[i]);
    t = seconds() - t;
    if (ys[n - 1] != n)
        fprintf(stderr, "bench: wrong result %lld\n", ys[n - 1]), exit(1);
    free(xs);
    free(ys);
    return t;
}

int
main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;

    if (argc == 4 && (strcmp(c, "overhead") == 0 ||
                      strcmp(c, "throughput") == 0))
        depth = atol(argv[3]);
    if (strcmp(c, "overhead") == 0 && n > 0)
        printf("%s %.6f\n", c, timed_map(2, trivial, -1, n, 1));
    else if (strcmp(c, "throughput") == 0 && n > 0)
        printf("%s %.6f\n", c, timed_map(2, trivial, -1, n, 0));
    else if (strcmp(c, "loop") == 0 && n > 0)
        printf("%s %.6f\n", c, timed_loop(n));
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
        fprintf(stderr, "bench: usage: bench overhead N [K] | throughput N "
                        "[K] | loop N | cpu TASKS UNITS WORKERS | floor N | "
                        "spawn CMD...\n");
        return 2;
    }
    return 0;
}
