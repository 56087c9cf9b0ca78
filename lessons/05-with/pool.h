/* SPDX-License-Identifier: MIT */
/*
 * pool.h: lesson 04's pool, made safe to leave on every path. pool_map()
 * maps a functor over x values, as p.map(Instance, xs); pool_starmap() maps
 * a function of three arguments over (x, y, z) tuples, as p.starmap(Multi,
 * tuples).
 *
 * New in lesson 05: no function here exits the program. Each one reports a
 * failure on stderr and returns -1, so that the caller can leave its scopes
 * and release what it holds. pool_join() is the normal way out (wait for the
 * workers), pool_terminate() the way out on an error (stop them now), and
 * pool_release() the destructor: safe on every path, any number of times,
 * and in a forked child.
 */
#ifndef POOL_H
#define POOL_H

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#include "functor.h"

#define POOL_MAX_WORKERS 256    /* each worker costs the parent 2 descriptors */
#define STAR_WIDTH 3            /* values in one starmap item: (x, y, z) */

/* A pool that holds nothing: what a pool is before pool_start() and after
 * pool_release(). Releasing it does nothing. */
#define POOL_INIT {.owner = 0}

/*
 * One record on a pipe, task or result (DO NOT CHANGE): this header, then
 * the values. A map task holds `count` x values, a starmap task `count`
 * tuples of STAR_WIDTH values; a result holds `count` results.
 */
struct record {
    struct functor f;           /* task: the functor, by value */
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
    pid_t owner;                /* the process that started it; 0: none */
    struct worker *workers;     /* nworkers of them */
    long nworkers;              /* how many were started */
    struct pollfd *pfds;        /* the poll() set, one entry per worker */
    struct record *task;        /* the parent's buffer for one task record */
    long task_cap;              /* how many values that buffer holds */
    long messages;              /* task records sent so far */
    struct sigaction old_sigpipe; /* SIGPIPE's action before pool_start() */
};

/* The program's name, for messages; the program defines it. */
extern const char progname[];

/* Print "PROGNAME: MESSAGE" (printf format) on stderr; return -1. */
int report(const char *fmt, ...);

/* Print "PROGNAME: WHAT: strerror(errno)" on stderr; return -1. */
int report_errno(const char *what);

/*
 * Python's default chunksize for map: ceil(n / (4 * nworkers)), and 0 for
 * an empty input. Requires n >= 0 and nworkers >= 1.
 */
long default_chunksize(long n, long nworkers);

/*
 * Start nworkers (1 to POOL_MAX_WORKERS) worker processes in *p, each
 * waiting for task records on its own pipe. The parent ignores SIGPIPE
 * until pool_release(), so that a worker gone away shows up as EPIPE from
 * write(), not as the parent's death. Returns 0; or -1 after a message, and
 * then *p holds the workers started so far: release it.
 */
int pool_start(struct pool *p, long nworkers);

/*
 * Map functor f over xs[0..n-1], Python's p.map(f, xs): afterwards
 * out[i] == functor_call(f, xs[i]) for every i. Returns 0; or -1 after a
 * message when a worker failed, and then the others may still be busy:
 * pool_terminate() or pool_release() stops them.
 */
int pool_map(struct pool *p, const struct functor *f, const long long *xs,
             long n, long long *out);

/*
 * Map fn over n tuples, Python's p.starmap(fn, tuples): tuple i is
 * args[3*i], args[3*i+1], args[3*i+2], and afterwards out[i] == fn(tuple
 * i). Returns 0, or -1 after a message, as pool_map().
 */
int pool_starmap(struct pool *p,
                 long long (*fn)(long long, long long, long long),
                 const long long *args, long n, long long *out);

/*
 * The normal way out, Python's p.close(); p.join(): tell every worker to
 * leave (end-of-file on its task pipe) and wait for each. Returns 0 when
 * every worker exited with status 0; -1 otherwise, each failure reported on
 * stderr. Afterwards no worker is left and the pool holds only memory.
 */
int pool_join(struct pool *p);

/*
 * The way out on an error, Python's p.terminate(): send SIGTERM to every
 * worker not yet reaped, then SIGCONT (a stopped worker acts on SIGTERM
 * only once continued), close the pipes and reap them all. Work in
 * progress is thrown away; nothing is reported but a failing system call.
 */
void pool_terminate(struct pool *p);

/*
 * The destructor: release everything *p holds, so that it holds nothing.
 * In the process that started the pool: terminate the workers still
 * running (a pool not joined is being left on an error path), restore
 * SIGPIPE's action, free the memory. In a forked child, which holds only
 * copies: close its copies of the pipes and free its copy of the memory,
 * but never signal or wait for the parent's workers. Does nothing when *p
 * holds nothing, so it may be called again and again.
 */
void pool_release(struct pool *p);

#endif
