/* SPDX-License-Identifier: MIT */
/*
 * pool-internal.h: what the files of the pool library share, and no
 * program sees: the records on the pipes, the parent's state (struct pool,
 * struct worker, struct chunk, struct job), and the functions one file of
 * the library calls in another. Read pool.h first: it says what the library
 * promises. The files, by concern:
 *
 *   pool-io.c      errors as values; whole reads and writes; the clock
 *   pool-worker.c  the worker: what a child does from fork() to _exit()
 *   pool-spawn.c   starting, reaping and replacing workers
 *   pool-life.c    the life of a pool: create, close, join, terminate,
 *                  destroy, the trace, and the entry points pool_map() and
 *                  pool_imap_unordered()
 *   pool-chunks.c  the engine's bookkeeping: which chunks each worker
 *                  holds, what fits into its task pipe, results read ahead
 *   pool-engine.c  the map engine: sending, waiting, receiving, recycling,
 *                  delivering, burying, timing out (lesson 08's task)
 *
 * The shape is lesson 03's: every worker has a task pipe and a result pipe
 * of its own, the parent drives them all from one poll() loop, and it reads
 * each result as soon as it begins to arrive. Unlike lesson 03, a worker
 * holds up to cfg.depth chunks: the one it runs, and more queued in its
 * task pipe, so that it goes from one chunk to the next without waiting for
 * the parent (pool-engine.c says why that still cannot deadlock). On top
 * of that:
 *   - records carry bytes of any size, and the functor's bound arguments by
 *     value (lesson 04);
 *   - no call exits the program; every failure is described in a struct
 *     pool_error, and pool_destroy() releases everything on any path
 *     (lesson 05);
 *   - a failed item names itself; a dead worker fails the chunk it held and
 *     is replaced, a chunk that runs past cfg.timeout_ms fails and its
 *     worker is killed, and no call waits for a result that cannot come
 *     (lesson 06);
 *   - close, join and terminate, signals blocked across fork(), and a
 *     descriptor the caller can make readable to cancel a call (lesson 07);
 *   - new here: an initializer and a handshake, worker recycling after
 *     maxtasks, imap_unordered's callback, several pools at once; and with
 *     POOL_TRACE=FILE in the environment, a timeline of the run in FILE
 *     for `make trace` (lesson 02's format, written by the parent alone).
 *
 * The names below have external linkage, so that the library's files can
 * call each other; a program that links the library must not define a
 * function of the same name.
 */
#ifndef POOL_INTERNAL_H
#define POOL_INTERNAL_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "pool.h"

/* Linux's pipe sizes (fcntl(2), since 2.6.35), named by <fcntl.h> only
 * with _GNU_SOURCE: the numbers are the kernel's, F_LINUX_SPECIFIC_BASE
 * (1024) + 7 and + 8. Elsewhere they stay undefined, and pipes keep the
 * size the system gives them. */
#if defined(__linux__) && !defined(F_SETPIPE_SZ)
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif

/* The parent reads a worker's results ahead by up to this much: one read()
 * takes every small result waiting in the pipe. */
#define RESULTS_AHEAD 16384

/* ---- records on the pipes --------------------------------------------- */

/*
 * A task record: this header (in a union, so that what follows is aligned
 * for any type), then args_size bytes of bound arguments, padded to
 * ARGS_ROOM(args_size) so that the items after them are aligned too, then
 * count input items of in_size bytes. One writev() from the parent.
 */
struct task_head {
    int (*call)(const void *args, const void *in, void *out); /* the function */
    long first;                 /* index in the input of the first item */
    long count;                 /* items in the record, at least 1 */
    size_t args_size;           /* bytes of bound arguments that follow */
    size_t in_size;             /* bytes in one input item */
    size_t out_size;            /* bytes in one result */
};

union task_block {
    struct task_head h;         /* the header */
    max_align_t align;          /* makes sizeof a multiple of any alignment */
};

/* The bytes the bound arguments take in a task record, padding included. */
#define ARGS_ROOM(n) \
    (((n) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t))

/*
 * A result record: this header, then count results of out_size bytes; and
 * when failed > 0, then count ints, each item's code (0: it succeeded).
 * The first record of every worker is its "ready" record: first -1, count
 * 0, status the initializer's return value. The times are CLOCK_MONOTONIC
 * nanoseconds, one clock for every process, for a timeline of the run.
 */
struct result_head {
    long first;                 /* the task's first; -1: the ready record */
    long count;                 /* the task's count; 0: the ready record */
    long failed;                /* items whose function returned non-zero */
    int status;                 /* ready record: what the initializer said */
    long long start_ns;         /* when the worker began the chunk */
    long long end_ns;           /* when it finished it */
};

union result_block {
    struct result_head h;       /* the header */
    max_align_t align;          /* makes sizeof a multiple of any alignment */
};

/* ---- the parent's state ----------------------------------------------- */

enum pool_state {
    POOL_RUNNING,               /* takes work */
    POOL_CLOSED,                /* pool_close(): workers leave when done */
    POOL_TERMINATED,            /* pool_terminate(): workers stopped */
    POOL_BROKEN                 /* a system call failed: see broken_why */
};

/* A chunk sent to a worker and not yet answered. */
struct chunk {
    long first;                 /* index in the input of its first item */
    long count;                 /* its items, at least 1 */
    size_t out_size;            /* bytes in one result of it */
    size_t pipe_bytes;          /* what its task record takes in the pipe */
    int abandoned;              /* its call has returned: discard its result */
};

/* The parent's view of one worker. */
struct worker {
    pid_t pid;                  /* its process id; -1: reaped (none) */
    int task_fd;                /* write end of its task pipe (O_NONBLOCK);
                                 * -1: closed */
    int result_fd;              /* read end of its result pipe; -1: closed */
    struct chunk held[POOL_MAX_DEPTH]; /* the chunks it holds, a ring in the
                                 * order sent: it answers them in that order */
    int oldest;                 /* held[oldest]: the one it runs, or will */
    int nheld;                  /* chunks it holds; 0: it is idle */
    size_t queued;              /* pipe_bytes of all it holds */
    size_t task_pipe;           /* bytes its task pipe holds */
    size_t result_pipe;         /* bytes its result pipe holds */
    long tasks;                 /* chunks it has finished, for maxtasks */
    long given;                 /* chunks sent to it, at most maxtasks */
    long long ran_ns;           /* how long its last chunk ran; -1: none yet */
    long long began_ns;         /* when its oldest chunk began to run, as far
                                 * as the parent can tell (now_ns()): sent
                                 * to it idle, or the result before it taken */
    unsigned char *ahead;       /* RESULTS_AHEAD bytes (receive() makes
                                 * them on first use), or NULL: the slot's
                                 * results read ahead of the one taken */
    size_t ahead_from;          /* ahead[ahead_from .. ahead_to - 1] are */
    size_t ahead_to;            /* bytes read and not yet taken */
};

struct pool {
    struct pool *next;          /* the other pools of this process */
    pid_t owner;                /* the process that created the pool */
    enum pool_state state;      /* what it accepts */
    struct pool_config cfg;     /* as given, defaults filled in */
    long nworkers;              /* slots in workers[] */
    struct worker *workers;     /* one per slot */
    struct pollfd *pfds;        /* the poll() set: a slot each, + cancel_fd */
    unsigned char *scratch;     /* buffer for results not stored in place */
    size_t scratch_cap;         /* its size in bytes */
    unsigned char *codes;       /* buffer for a result's item codes (ints) */
    size_t codes_cap;           /* its size in bytes */
    struct pool_error error;    /* the last call's failure */
    struct chunk *redo;         /* chunks of the call to send again: queued
                                 * at a worker that died before it began
                                 * them; room for nworkers * depth */
    long nredo;                 /* chunks in redo */
    long *share;                /* feed_workers(): chunks for each slot */
    size_t page;                /* the memory page: a pipe's unit */
    int trace_fd;               /* POOL_TRACE's file, or -1 */
    char broken_why[POOL_MESSAGE_MAX]; /* POOL_BROKEN: what broke it */
};

/* One call of pool_map() or pool_imap_unordered(), while it runs. */
struct job {
    const struct pool_func *f;  /* what to apply */
    const unsigned char *in;    /* the input items */
    int ordered;                /* 1: pool_map; 0: pool_imap_unordered */
    unsigned char *out;         /* pool_map: where the results go */
    int (*each)(void *ctx, long index, const void *result); /* unordered */
    void *ctx;                  /* each's first argument */
    long n;                     /* items in the input */
    long chunksize;             /* items per task */
    long sent;                  /* items sent to workers so far */
    long done;                  /* items that succeeded or failed so far */
    int stopped;                /* each asked to stop */
};

/*
 * Every pool of this process, so that a new worker can close the parent's
 * ends of all of them (pool-life.c keeps the list, pool-worker.c uses it).
 */
extern struct pool *all_pools;

/* ---- pool-io.c: errors, whole reads and writes, the clock ------------- */

void set_error(struct pool_error *e, enum pool_failure kind, long index,
               const char *fmt, ...);
int sys_error(struct pool_error *e, const char *what);
int break_pool(struct pool *p);
const char *describe_end(int status, struct pool_error *e, char *buf,
                         size_t size);
void note_failure(struct pool *p, const struct pool_error *e, long count);
void iov_advance(struct iovec **iov, int *iovcnt, size_t n);
ssize_t readn(int fd, void *buf, size_t n);
ssize_t writen(int fd, const void *buf, size_t n);
int grow(unsigned char **buf, size_t *cap, size_t need);
long long now_ns(void);
void nap_ms(long ms);

/* ---- pool-worker.c: the worker ---------------------------------------- */

_Noreturn void die_child(const char *what);
_Noreturn void worker_start(struct pool *p, int task[2], int result[2],
                            const sigset_t *old_mask);

/* ---- pool-spawn.c: starting, reaping and replacing workers ------------ */

int start_worker(struct pool *p, long i);
int await_ready(struct pool *p, long i);
int spawn_worker(struct pool *p, long i);
int reap_worker(struct pool *p, struct worker *w, int *status);
size_t fit_pipe(int fd, size_t size, size_t bytes);

/* ---- pool-life.c: the life of a pool ---------------------------------- */

void trace_line(const struct pool *p, const char *fmt, ...);

/* ---- pool-chunks.c: the engine's bookkeeping -------------------------- */

struct chunk *held(struct worker *w, int k);
void note_task_failures(struct pool *p, const struct worker *w,
                        const struct result_head *h);
void lose_chunk(struct pool *p, struct job *job, struct worker *w, pid_t pid,
                int status);
void lose_late_chunk(struct pool *p, struct job *job, struct worker *w,
                     pid_t pid);
int results_place(struct pool *p, struct job *job, const struct chunk *c,
                  size_t bytes, unsigned char **results);
ssize_t take_results(struct worker *w, void *dst, size_t n);
int has_ahead(const struct worker *w);
int read_codes(struct pool *p, struct worker *w, const struct result_head *h);
void retire_oldest(struct worker *w, long long ran_ns);
size_t pipe_bytes(const struct pool *p, const struct job *job, long count);
int has_room(const struct pool *p, const struct job *job,
             const struct worker *w, long count);
int write_task(struct worker *w, struct iovec *iov, int iovcnt, int behind);
void take_chunk(struct pool *p, struct job *job, struct chunk *c);
long next_count(const struct pool *p, const struct job *job);
void gather_record(const struct job *job, const struct chunk *c,
                   union task_block *head, struct iovec *iov);
void hold_chunk(struct worker *w, const struct chunk *c);
void unhold_chunk(struct pool *p, struct job *job, struct worker *w);
int feed_workers(struct pool *p, struct job *job);
int watch_set(struct pool *p, nfds_t *n, int *timeout);
void abandon_in_flight(struct pool *p);

/* ---- pool-engine.c: the map engine ------------------------------------ */

int recycle_if_spent(struct pool *p, struct worker *w);
void deliver_unordered(struct pool *p, struct job *job,
                       const struct result_head *h,
                       const unsigned char *results);
int bury_worker(struct pool *p, struct job *job, struct worker *w);
int expire_late(struct pool *p, struct job *job);
int receive(struct pool *p, struct job *job, struct worker *w);
long send_chunks(struct pool *p, struct job *job, struct worker *w, long max);
int wait_results(struct pool *p, struct job *job);
int run_job(struct pool *p, struct job *job);

#endif
