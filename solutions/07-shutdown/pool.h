/* SPDX-License-Identifier: MIT */
/*
 * pool.h: lesson 06's pool, with every way to end it: Python's close(),
 * terminate() and join(), and the signals that end a program from outside.
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
 *
 * New in lesson 07: while a pool runs, its parent catches SIGINT and
 * SIGTERM. The handler only notes the signal and writes one byte to a
 * self-pipe, which the map watches beside the result pipes, so the map
 * returns POOL_INTERRUPTED at once and the caller decides what to do. The
 * workers ignore SIGINT (the parent decides for them), die of SIGTERM, and
 * read /dev/null, never the terminal. pool_close() lets them finish what
 * they hold; pool_terminate() escalates: SIGTERM, then SIGKILL after a
 * grace period. On Linux a worker dies with its parent, even in the middle
 * of a task (PR_SET_PDEATHSIG); elsewhere it leaves at its next read of the
 * task pipe (end-of-file) or write of a result (EPIPE).
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
#define POOL_GRACE_MS 1000      /* default time from SIGTERM to SIGKILL */

/* What pool_map() returns besides 0 and -1. */
#define POOL_INTERRUPTED (-2)   /* a stop signal came: pool_stop_signal() */
#define POOL_STOPPED (-3)       /* the on_result callback asked to stop */

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

/*
 * Called by the map after each result record is stored, with the items
 * out[first .. first+count-1] just filled in. Returns 0 to go on, or -1 to
 * stop the map, which then returns POOL_STOPPED.
 */
typedef int pool_result_fn(void *ctx, const long long *out, long first,
                           long count);

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
    struct pollfd *pfds;        /* the poll() set: workers, then self-pipe */
    struct record *task;        /* the parent's buffer for one task record */
    long task_cap;              /* how many values that buffer holds */
    long messages;              /* task records sent so far */
    long timeout_ms;            /* a task running longer fails; 0: no limit */
    int broken;                 /* a map failed: every worker is gone */
    long sent;                  /* items of this map handed to workers */
    long received;              /* items of this map whose results are in */
    int closed;                 /* pool_close() was called: no new tasks */
    long grace_ms;              /* pool_terminate(): SIGTERM, then SIGKILL */
    long killed;                /* workers pool_terminate() had to SIGKILL */
    pool_result_fn *on_result;  /* called for each result record, or NULL */
    void *on_result_ctx;        /* its first argument */
    struct sigaction old_sigpipe; /* SIGPIPE's action before pool_start() */
    struct sigaction old_sigint;  /* SIGINT's, restored by pool_release() */
    struct sigaction old_sigterm; /* SIGTERM's, likewise */
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
 * waiting for task records on its own pipe. Until pool_release(), the
 * parent ignores SIGPIPE (a worker gone away shows up as EPIPE from
 * write(), not as the parent's death) and catches SIGINT and SIGTERM,
 * unless they were ignored already. One pool at a time may run: the handler
 * reaches its self-pipe through a global. Returns 0; or -1 after a message,
 * and then *p holds the workers started so far: release it.
 */
int pool_start(struct pool *p, long nworkers);

/*
 * Map functor f over xs[0..n-1], Python's p.map(f, xs), one item per task:
 * afterwards out[i] == functor_call(f, xs[i]) for every i. Returns 0; or
 * -1 with the first failure in *err, once every worker is stopped and
 * reaped: the pool is broken then, and a later map fails at once. A task
 * that runs longer than p->timeout_ms (unless 0) fails; its worker is
 * killed.
 * Lesson 07: p->on_result, when set, is called for each result as it comes
 * in. The map also returns 0 when the pool was closed (pool_close()) and
 * the tasks handed out are done: p->received < n then. It returns
 * POOL_INTERRUPTED when a stop signal came (workers that it ended too,
 * sent to the whole process group, are then no failure), POOL_STOPPED when
 * on_result asked to stop; the workers may then still be busy:
 * pool_terminate() or pool_release() stops them. p->sent and p->received
 * count its items.
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
 * The signal (SIGINT or SIGTERM) that asked the program to stop since
 * pool_start(), or 0. The parent's handler sets it; it stays set.
 */
int pool_stop_signal(void);

/*
 * Python's p.close(): hand out no more tasks. Every worker gets end-of-file
 * on its task pipe, finishes the task it holds, sends the result and
 * leaves by itself; the map still collects those results. Call pool_join()
 * afterwards to reap the workers.
 */
void pool_close(struct pool *p);

/*
 * The normal way out, Python's p.close(); p.join(): tell every worker to
 * leave (end-of-file on its task pipe) and wait for each. Returns 0 when
 * every worker exited with status 0; -1 otherwise, each failure reported on
 * stderr. Afterwards no worker is left and the pool holds only memory.
 */
int pool_join(struct pool *p);

/*
 * The way out on an error or a signal, Python's p.terminate(), made robust:
 * send SIGTERM to every worker not yet reaped (and SIGCONT: a stopped
 * worker holds SIGTERM pending until it is continued) and close the pipes; give the
 * workers p->grace_ms milliseconds to end; send SIGKILL to the rest
 * (counted in p->killed); reap them all. Work in progress is thrown away.
 * A worker that ended otherwise than by SIGTERM, SIGKILL, SIGPIPE or exit
 * status 0 is reported on stderr.
 */
void pool_terminate(struct pool *p);

/*
 * The destructor: release everything *p holds, so that it holds nothing.
 * In the process that started the pool: terminate the workers still
 * running (a pool not joined is being left on an error path), restore the
 * actions of SIGPIPE, SIGINT and SIGTERM, close the self-pipe, free the
 * memory. In a forked child, which holds only
 * copies: close its copies of the pipes and free its copy of the memory,
 * but never signal or wait for the parent's workers. Does nothing when *p
 * holds nothing, so it may be called again and again.
 */
void pool_release(struct pool *p);

#endif
