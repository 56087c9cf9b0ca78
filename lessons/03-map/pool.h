/* SPDX-License-Identifier: MIT */
/*
 * pool.h: a pool of worker processes whose map returns the results in input
 * order, as Python's Pool.map does.
 *
 * Each worker has a task pipe and a result pipe of its own. A record on
 * either pipe is a struct record: a header, then `count` values. Every
 * result record carries the index of its first item, and the parent stores
 * the values at that index, whatever order the records arrive in.
 */
#ifndef POOL_H
#define POOL_H

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#define POOL_MAX_WORKERS 256    /* each worker costs the parent 2 descriptors */

/*
 * One record on a pipe, task or result (DO NOT CHANGE): this header, then
 * `count` values. A task holds the items, a result the function's values
 * for them, in the same order.
 */
struct record {
    long long (*fn)(long long); /* task: the function to apply; result: NULL */
    long first;                 /* index in the whole input of values[0] */
    long count;                 /* how many values follow the header */
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
    struct pollfd *pfds;        /* pool_map's poll() set, one per worker */
    struct record *task;        /* the parent's buffer for one task record */
    long task_cap;              /* how many values that buffer holds */
    long messages;              /* task records sent so far, for -v */
    long early;                 /* results that overtook an earlier chunk */
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
 * task records on its own pipe. First it makes sure descriptors 0, 1 and
 * 2 are open (/dev/null where one is closed), so that no pipe takes their
 * numbers. The parent ignores SIGPIPE until pool_stop(), so that a worker
 * gone away shows up as EPIPE from write(), not as the parent's death. On
 * Linux a worker dies with the parent, even in the middle of a task. With
 * POOL_TRACE set, the pool records its run for make trace (trace.h). Exits
 * the program on failure, the workers already started ended and reaped.
 */
void pool_start(struct pool *p, long nworkers);

/*
 * Map fn over xs[0..n-1] with the pool, chunksize items per task record
 * (chunksize >= 1 when n > 0): afterwards out[i] == fn(xs[i]) for every i.
 * When a worker dies, exits the program with one line that says how it
 * ended and which items it held; every other worker is ended and reaped.
 */
void pool_map(struct pool *p, long long (*fn)(long long), const long long *xs,
              long n, long long *out, long chunksize);

/*
 * Tell every worker to leave (end-of-file on its task pipe), reap them all,
 * restore SIGPIPE's action and free the pool. Returns 0 when every worker
 * exited with status 0, 1 otherwise (each failure reported on stderr).
 */
int pool_stop(struct pool *p);

#endif
