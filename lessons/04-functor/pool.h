/* SPDX-License-Identifier: MIT */
/*
 * pool.h: lesson 03's pool, now mapping functors. pool_map() maps a functor
 * over x values, as p.map(Instance, xs); pool_starmap() maps a function of
 * three arguments over (x, y, z) tuples, as p.starmap(Multi, tuples). Both
 * run on the same workers, the same records and the same poll() loop.
 */
#ifndef POOL_H
#define POOL_H

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#include "functor.h"

#define POOL_MAX_WORKERS 256    /* each worker costs the parent 2 descriptors */
#define STAR_WIDTH 3            /* values in one starmap item: (x, y, z) */

/*
 * One record on a pipe, task or result (DO NOT CHANGE): this header, then
 * the values. A map task holds `count` x values, a starmap task `count`
 * tuples of STAR_WIDTH values; a result holds `count` results.
 */
struct record {
    struct functor f;           /* task: the functor, by value */
    const struct functor *ref;  /* task with -b: its address instead (a bug) */
    int star;                   /* task: 1 for starmap, 0 for map */
    long first;                 /* index in the whole input of the 1st item */
    long count;                 /* how many items the record holds */
    long long values[];         /* the items, or their results */
};

/* The parent's view of one worker. */
struct worker {
    pid_t pid;                  /* its process id; -1 once reaped */
    int task_fd;                /* write end of its task pipe; -1: closed */
    int result_fd;              /* read end of its result pipe; -1: closed */
    long first;                 /* first item of the chunk it holds */
    long count;                 /* items in that chunk; 0 when it is idle */
};

/* A pool of worker processes: pool_start() fills it in. */
struct pool {
    struct worker *workers;     /* nworkers of them */
    long nworkers;              /* how many were started */
    struct pollfd *pfds;        /* the poll() set, one entry per worker */
    struct record *task;        /* the parent's buffer for one task record */
    long task_cap;              /* how many values that buffer holds */
    long messages;              /* task records sent so far */
    int by_pointer;             /* -b: send the functor's address (a bug) */
    struct sigaction old_sigpipe; /* SIGPIPE's action before pool_start() */
};

/* The program's name, for messages; the program defines it. */
extern const char progname[];

/* Print "PROGNAME: WHAT: strerror(errno)" and exit 1. */
_Noreturn void die(const char *what);

/* Print "PROGNAME: MESSAGE" (printf format) and exit 1. */
_Noreturn void fail(const char *fmt, ...);

/*
 * Python's default chunksize for map: ceil(n / (4 * nworkers)), and 0 for
 * an empty input. Requires n >= 0 and nworkers >= 1.
 */
long default_chunksize(long n, long nworkers);

/*
 * Start nworkers (1 to POOL_MAX_WORKERS) worker processes, each waiting for
 * task records on its own pipe. The parent ignores SIGPIPE until
 * pool_stop(). Exits the program on failure.
 */
void pool_start(struct pool *p, long nworkers);

/*
 * Map functor f over xs[0..n-1], Python's p.map(f, xs): afterwards
 * out[i] == functor_call(f, xs[i]) for every i. Exits the program when a
 * worker fails.
 */
void pool_map(struct pool *p, const struct functor *f, const long long *xs,
              long n, long long *out);

/*
 * Map fn over n tuples, Python's p.starmap(fn, tuples): tuple i is
 * args[3*i], args[3*i+1], args[3*i+2], and afterwards out[i] == fn(tuple
 * i). Exits the program when a worker fails.
 */
void pool_starmap(struct pool *p,
                  long long (*fn)(long long, long long, long long),
                  const long long *args, long n, long long *out);

/*
 * Tell every worker to leave (end-of-file on its task pipe), reap them all,
 * restore SIGPIPE's action and free the pool. Returns 0 when every worker
 * exited with status 0, 1 otherwise (each failure reported on stderr).
 */
int pool_stop(struct pool *p);

#endif
