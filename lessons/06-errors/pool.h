/* SPDX-License-Identifier: MIT */
/*
 * pool.h: lesson 05's pool, whose map never hangs on a failed task.
 * pool_map() maps a functor over x values, as p.map(Instance, xs);
 * pool_starmap() maps a function of three arguments over (x, y, z) tuples,
 * as p.starmap(Multi, tuples).
 *
 * From lesson 05: no function here exits the program; pool_join() is the
 * normal way out, pool_terminate() the way out on an error, pool_release()
 * the destructor.
 *
 * New in lesson 06: a map that fails returns a struct pool_error that names
 * the task and what went wrong: the function reported an error
 * (pool_task_error()), the worker died (a signal, or exit() in the middle of
 * the task), or the task ran past its deadline. The map stops at the first
 * failure: it stops and reaps every worker before it returns.
 */
#ifndef POOL_H
#define POOL_H

#include <poll.h>
#include <signal.h>
#include <sys/types.h>

#include "functor.h"

#define POOL_MAX_WORKERS 256    /* each worker costs the parent 2 descriptors */
#define STAR_WIDTH 3            /* values in one starmap item: (x, y, z) */
#define POOL_REASON_MAX 120     /* bytes of a failed task's reason, with NUL */

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
    long failed;                /* result: the index of the item whose
                                   function reported an error; -1: none */
    char reason[POOL_REASON_MAX]; /* result: that error, in words */
    long long values[];         /* the items, or their results */
};

/* How a task failed. */
enum pool_failure {
    POOL_FAILED,                /* its function reported an error */
    POOL_KILLED,                /* its worker was killed by a signal */
    POOL_EXITED,                /* its worker exited in the middle of it */
    POOL_TIMED_OUT,             /* it ran past the deadline; worker killed */
    POOL_BROKEN                 /* no task's fault: a system call failed,
                                   reported on stderr already */
};

/* A failed map, as pool_map() hands it to the caller: what Python's map
 * re-raises in the caller. */
struct pool_error {
    enum pool_failure kind;     /* what went wrong */
    long task;                  /* the index of the failed task */
    pid_t pid;                  /* the worker that ran it */
    int code;                   /* POOL_KILLED: the signal; POOL_EXITED: the
                                   status; POOL_TIMED_OUT: the deadline, ms */
    char reason[POOL_REASON_MAX]; /* POOL_FAILED: the function's words */
};

/* The parent's view of one worker. */
struct worker {
    pid_t pid;                  /* its process id; -1 once reaped */
    int task_fd;                /* write end of its task pipe; -1: closed */
    int result_fd;              /* read end of its result pipe; -1: closed */
    long first;                 /* first item of the chunk it holds */
    long count;                 /* items in that chunk; 0 when it is idle */
    double sent_ms;             /* when it got that chunk: now_ms() */
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
    long timeout_ms;            /* a task running longer fails; 0: no limit */
    int broken;                 /* a map failed: every worker is gone */
    struct sigaction old_sigpipe; /* SIGPIPE's action before pool_start() */
};

/* The program's name, for messages; the program defines it. */
extern const char progname[];

/* Print "PROGNAME: MESSAGE" (printf format) on stderr; return -1. */
int report(const char *fmt, ...);

/* Print "PROGNAME: WHAT: strerror(errno)" on stderr; return -1. */
int report_errno(const char *what);

/* Milliseconds on the CLOCK_MONOTONIC clock, which never jumps. */
double now_ms(void);

/*
 * Called by a mapped function, in a worker, to fail the item it is working
 * on, with a reason (printf format; cut to POOL_REASON_MAX - 1 bytes), as a
 * Python function raises an exception. The function then returns; its
 * value is ignored.
 */
void pool_task_error(const char *fmt, ...);

/* Describe *e in buf[0..size-1], as "task 7: worker 4242 killed by signal
 * 11 (Segmentation fault)". Returns buf. */
char *pool_error_text(const struct pool_error *e, char *buf, size_t size);

/*
 * Start nworkers (1 to POOL_MAX_WORKERS) worker processes in *p, each
 * waiting for task records on its own pipe. The parent ignores SIGPIPE
 * until pool_release(), so that a worker gone away shows up as EPIPE from
 * write(), not as the parent's death. Returns 0; or -1 after a message, and
 * then *p holds the workers started so far: release it.
 */
int pool_start(struct pool *p, long nworkers);

/*
 * Map functor f over xs[0..n-1], Python's p.map(f, xs), one item per task:
 * afterwards out[i] == functor_call(f, xs[i]) for every i. Returns 0; or
 * -1 with the first failure in *err, once every worker is stopped and
 * reaped: the pool is broken then, and a later map fails at once. A task
 * that runs longer than p->timeout_ms (unless 0) fails; its worker is
 * killed.
 */
int pool_map(struct pool *p, const struct functor *f, const long long *xs,
             long n, long long *out, struct pool_error *err);

/*
 * Map fn over n tuples, Python's p.starmap(fn, tuples): tuple i is
 * args[3*i], args[3*i+1], args[3*i+2], and afterwards out[i] == fn(tuple
 * i). Returns 0, or -1 with the failure in *err, as pool_map().
 */
int pool_starmap(struct pool *p,
                 long long (*fn)(long long, long long, long long),
                 const long long *args, long n, long long *out,
                 struct pool_error *err);

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
