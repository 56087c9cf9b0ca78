/* SPDX-License-Identifier: MIT */
/*
 * pool.h: a pool of worker processes for C programs, the counterpart of
 * Python's multiprocessing.Pool. Lessons 02 to 07 in one small library.
 *
 *     #include "pool.h"
 *
 *     static int
 *     sqr(const void *args, const void *in, void *out)
 *     {
 *         const long long *x = in;
 *
 *         (void)args;
 *         *(long long *)out = *x * *x;
 *         return 0;                       // 0: this item succeeded
 *     }
 *
 *     long long xs[100], ys[100];         // ... fill xs ...
 *     struct pool_error err;
 *     struct pool *p = pool_create(&(struct pool_config){.workers = 4}, &err);
 *     if (p == NULL)
 *         ... err.message says why ...
 *     if (pool_map(p, &POOL_FUNC(sqr, long long, long long), xs, ys, 100,
 *                  0) == -1)
 *         ... pool_last_error(p)->message names the first failed item ...
 *     pool_close(p);                      // no more work: workers leave
 *     pool_join(p);                       // wait for them
 *     pool_destroy(&p);                   // free; p is NULL afterwards
 *
 * Items are plain bytes: an input item is in_size bytes, its result
 * out_size bytes, and a map runs over arrays of them, so an item can be a
 * number, a struct, a fixed-size string. The pool copies the input items of
 * each chunk into the worker and the results back, by value: never send a
 * pointer into memory that the parent changed or allocated after
 * pool_create() (the worker has a copy of the parent's memory as it was at
 * fork(); see pool_func below).
 *
 * Processes and threads. pool_create() forks every worker. Call it before
 * your program starts any thread: fork() copies only the thread that calls
 * it, so a lock held by another thread (in a logging library, say) stays
 * locked for ever in the worker. Replacing a worker (maxtasks, or after a
 * crash) forks again, from inside pool_map(): in a program with threads,
 * leave maxtasks at 0. All calls on one pool come from the process and the
 * thread that created it; none of them is async-signal-safe.
 *
 * No function here exits the program or prints: failures are described in
 * a struct pool_error. (A worker that meets a failure inside the library
 * itself, not in your function, prints one line on stderr as it exits.)
 *
 * What the pool does to the process that creates it, until the last pool
 * is destroyed: it ignores SIGPIPE, so that a worker that has gone away
 * shows up as an error (EPIPE) instead of killing the program. It waits for
 * its own workers only, by pid: never call wait() or waitpid(-1, ...) while
 * a pool exists, as that steals a worker's exit status. Its descriptors are
 * close-on-exec. A child you fork() yourself holds copies of the pool's
 * pipes until it exits or execs, and pool_join() waits for workers that
 * only see end-of-file once those copies are closed too: in such a child,
 * call pool_destroy() on the copy (it then only closes and frees).
 *
 * A timeline of the run: with POOL_TRACE=FILE in the environment when
 * pool_create() runs, the parent appends to FILE one line per chunk,
 * "task FIRST COUNT PID START_NS END_NS", and one per wait in poll(),
 * "wait PID START_NS END_NS" (CLOCK_MONOTONIC nanoseconds, one clock for
 * every process); `make trace L=08` draws them. If FILE cannot be opened,
 * pool_create() fails. Workers hold no descriptor of it.
 *
 * What a worker is: a child forked by pool_create(), that reads tasks from
 * a pipe of its own and writes results to another pipe of its own, so no
 * lock is shared between processes (a worker killed while holding one
 * would block the rest), and the parent always knows which items each
 * worker holds. A worker holds no descriptor of any other worker, nor the
 * parent's ends of any pool's pipes. Its stdin is /dev/null; it ignores
 * SIGINT (Ctrl-C goes to every process of the terminal's foreground group:
 * the parent decides, see cancel_fd); SIGTERM and SIGPIPE have their default
 * actions; so does every other signal the parent caught with a handler
 * (SIGWINCH, SIGUSR1, ...), while the signals it ignored stay ignored.
 * Signals are blocked across fork() until then, so no handler of the
 * parent ever runs in a worker. A worker ends when its task pipe gives
 * end-of-file (once it has finished the chunks it holds): after
 * pool_close(), and when it is recycled. When the parent dies, however it
 * dies, the worker dies with it at once on Linux (PR_SET_PDEATHSIG), even
 * in the middle of a task; elsewhere it leaves at end-of-file, once it has
 * finished its chunk. On Linux, strictly, a worker dies when the *thread*
 * that forked it exits: call the pool's functions from a thread that
 * outlives the pool (the main thread).
 */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>
#include <sys/types.h>

#define POOL_MAX_WORKERS 256    /* each worker costs the parent 2 descriptors */
#define POOL_GRACE_MS 1000      /* default time from SIGTERM to SIGKILL */
#define POOL_MESSAGE_MAX 200    /* bytes in pool_error.message, '\0' included */
#define POOL_DEPTH 8            /* most chunks a worker holds at depth 0 */
#define POOL_MAX_DEPTH 16       /* the most pool_config.depth may ask for */
#define POOL_MAX_TIMEOUT_MS 86400000 /* the most pool_config.timeout_ms: a day */

/* A pool of worker processes; pool_create() makes one. Opaque. */
struct pool;

/*
 * How to make a pool: give pool_create() one of these. Every field may be
 * left out (zero), which gives Python's defaults:
 *     pool_create(&(struct pool_config){.workers = 4, .maxtasks = 100}, &e)
 */
struct pool_config {
    long workers;               /* 0: one per online CPU, as Pool(); else
                                 * 1 to POOL_MAX_WORKERS */
    long maxtasks;              /* 0: workers live as long as the pool; N:
                                 * a worker that has done N tasks (chunks) is
                                 * replaced by a new one, as Python's
                                 * maxtasksperchild */
    int (*init)(void *arg);     /* NULL, or run once in each worker before its
                                 * first task, replacements included (Python's
                                 * initializer); returns 0, or anything else
                                 * to say it failed */
    void *init_arg;             /* passed to init (Python's initargs) */
    long grace_ms;              /* pool_terminate(): how long workers get
                                 * after SIGTERM before SIGKILL; 0: the
                                 * default, POOL_GRACE_MS */
    int cancel_fd;              /* 0: none. Else a descriptor above 2 that the
                                 * pool watches while it waits for results:
                                 * once it is readable, pool_map() and
                                 * pool_imap_unordered() return -1 with
                                 * POOL_ECANCELED at once. Make it the read
                                 * end of a pipe and write a byte to the other
                                 * end from your SIGINT handler (lesson 07).
                                 * The pool never reads it: it stays readable,
                                 * so later calls are cancelled too, until you
                                 * read the byte yourself. */
    long depth;                 /* chunks a worker may hold at once: the one
                                 * it runs and those queued in its task pipe
                                 * behind it, so that it goes on to the next
                                 * without waiting for the parent. 1 (one at
                                 * a time, as lesson 03) to POOL_MAX_DEPTH.
                                 * 0, the default, adapts: up to POOL_DEPTH
                                 * while a worker's chunks run shorter than
                                 * 1 ms, where the wait for the parent would
                                 * cost most; 1 after a longer one, so that
                                 * long chunks go to whichever worker is
                                 * free; 2 until its first chunk is done */
    long timeout_ms;            /* 0: none. Else a chunk that runs this long
                                 * on its worker fails: its items fail with
                                 * POOL_ETIMEOUT, the worker is killed
                                 * (SIGKILL) and replaced, and the chunks
                                 * queued behind it, never begun, are sent
                                 * again. A chunk's clock starts when it
                                 * begins to run, as far as the parent can
                                 * tell: when it is sent to an idle worker,
                                 * or when the result of the chunk before it
                                 * arrives. It times a chunk, not an item:
                                 * allow for chunksize items. Up to
                                 * POOL_MAX_TIMEOUT_MS. Python's Pool has no
                                 * counterpart: AsyncResult.get(timeout)
                                 * waits that long, then raises
                                 * TimeoutError, but the task runs on */
};

/*
 * The function to map, and its bound arguments: a functor (lesson 04).
 * In a worker, for each item, the pool calls
 *     call(args, in, out)
 * with `in` pointing at the item's in_size bytes and `out` at out_size
 * bytes for its result (zeroed), each aligned as in an array that malloc()
 * returned: right for a type whose sizeof is in_size (out_size). call
 * returns 0 when the item succeeded; any other value fails the item, and
 * that value is its error code (the pool's map does not stop: see
 * pool_map()). A failed item's result bytes are zero.
 *
 * `args` and `args_size` are the bound arguments, Python's Functor(2, 3):
 * the pool copies those args_size bytes into every task it sends, so the
 * worker sees them as they were when pool_map() was called, even when they
 * were made after pool_create(). Copied by value, a pointer inside them
 * still points into the worker's own copy of the memory as it was at
 * fork(). args may be NULL when args_size is 0; call then gets NULL.
 *
 * `call` must be a function of the program itself (or of a library loaded
 * before pool_create()): fork() copies the whole program, so its address
 * means the same function in every worker.
 *
 * Python's starmap(f, [(1, 2), (3, 4)]): in C a tuple of arguments is a
 * struct, so map over an array of structs, with in_size their size.
 */
struct pool_func {
    int (*call)(const void *args, const void *in, void *out);
    const void *args;           /* bound arguments, copied by value; or NULL */
    size_t args_size;           /* bytes at args */
    size_t in_size;             /* bytes in one input item, at least 1 */
    size_t out_size;            /* bytes in one result, 0 allowed */
};

/* A pool_func for a plain function from IN_TYPE items to OUT_TYPE results:
 *     pool_map(p, &POOL_FUNC(sqr, long long, long long), xs, ys, n, 0) */
#define POOL_FUNC(fn, in_type, out_type)                                    \
    ((struct pool_func){.call = (fn), .in_size = sizeof(in_type),           \
                        .out_size = sizeof(out_type)})

/* A pool_func with bound arguments, the lvalue ARGS (copied by value):
 *     struct multi_args yz = {2, 3};      // Python: Functor(2, 3)
 *     pool_map(p, &POOL_FUNCTOR(multi, yz, long long, long long), ...) */
#define POOL_FUNCTOR(fn, args_lvalue, in_type, out_type)                    \
    ((struct pool_func){.call = (fn), .args = &(args_lvalue),               \
                        .args_size = sizeof(args_lvalue),                   \
                        .in_size = sizeof(in_type),                         \
                        .out_size = sizeof(out_type)})

/* What went wrong: pool_error.kind. */
enum pool_failure {
    POOL_OK = 0,                /* nothing */
    POOL_ETASK,                 /* an item's function returned code != 0 */
    POOL_EWORKER,               /* a worker died; its items failed with it */
    POOL_EINIT,                 /* an initializer failed, or its worker died */
    POOL_ESTATE,                /* the pool is closed, terminated or broken;
                                 * or pool_join() on a running pool */
    POOL_EINVAL,                /* a bad argument or configuration */
    POOL_ECANCELED,             /* cancel_fd became readable */
    POOL_ESYS,                  /* a system call failed: code is its errno */
    POOL_ETIMEOUT               /* an item's chunk ran past timeout_ms: its
                                 * worker was killed */
};

/*
 * A failure, as Python's exception from map(): which item, what happened.
 * After a map, it describes the failed item with the lowest index (so the
 * same input gives the same report, whatever order the workers finish in),
 * and `failed` counts them all.
 */
struct pool_error {
    enum pool_failure kind;     /* POOL_OK when the call succeeded */
    long index;                 /* the failed item; -1 when not about one */
    long failed;                /* items that failed in the call */
    int code;                   /* ETASK, EINIT: the function's return value;
                                 * EWORKER, EINIT: exit status, when the worker
                                 * exited; ESYS: errno; ETIMEOUT: timeout_ms */
    int signal;                 /* EWORKER, EINIT: the signal that killed
                                 * the worker, or 0 */
    pid_t pid;                  /* the worker concerned, or 0 */
    char message[POOL_MESSAGE_MAX]; /* one line, no program name, e.g.
                                     * "item 7: task failed with code 3
                                     * (worker 4242)" */
};

/*
 * Make a pool: fork its workers and wait until each has run cfg->init.
 * cfg may be NULL (all defaults). Returns the pool; or NULL, with *err
 * filled in when err is not NULL: POOL_EINVAL for a bad cfg (workers < 0 or
 * > POOL_MAX_WORKERS, maxtasks < 0, grace_ms < 0, cancel_fd < 0 or 1 or 2,
 * depth < 0 or > POOL_MAX_DEPTH, timeout_ms < 0 or > POOL_MAX_TIMEOUT_MS),
 * POOL_EINIT when an initializer failed or its worker died (Python would
 * start it again, for ever), POOL_ESYS when a fork or a pipe failed. When
 * it fails, every worker it started has been stopped and reaped.
 */
struct pool *pool_create(const struct pool_config *cfg, struct pool_error *err);

/* How many workers the pool has. */
long pool_workers(const struct pool *p);

/* The pid of worker i (0 <= i < pool_workers(p)), or -1 when that worker
 * has been reaped and not replaced (after pool_join() or pool_terminate()). */
pid_t pool_worker_pid(const struct pool *p, long i);

/*
 * Python's default chunksize for map: ceil(n / (4 * workers)), and 0 for an
 * empty input. Requires n >= 0 and workers >= 1.
 */
long pool_default_chunksize(long n, long workers);

/*
 * Python's map(f, xs, chunksize): apply f to the n items at `in` and store
 * the results at `out`, in input order: result i at out + i * out_size.
 * The workers get the items in chunks of chunksize items (a chunk is one
 * task, one message each way); 0 means Python's default,
 * pool_default_chunksize(n, pool_workers(p)). `out` may be `in` when
 * in_size == out_size. An empty input (n == 0) returns 0 at once.
 *
 * Returns 0 when every item succeeded. Otherwise -1, and
 * pool_last_error(p) describes the failed item with the lowest index.
 * When items fail, the rest still run: the call returns only when every
 * item has succeeded or failed (Python's map, which raises only after all
 * chunks are done). A worker that dies (a crash, a signal, _exit()) fails
 * every item of the chunk it was running (POOL_EWORKER) and is replaced at
 * once by a new worker; the chunks queued behind it, which it never began,
 * are sent to a worker again, so each item still runs at most once and
 * is reported once. With cfg.timeout_ms, a chunk that runs that long fails
 * the same way (POOL_ETIMEOUT), its worker killed and replaced. The call
 * never waits for a result that cannot come. Other
 * failures: POOL_ESTATE (the pool is not running), POOL_EINVAL (f->call is
 * NULL, in_size is 0, n < 0, chunksize < 0, args_size > 0 with args NULL,
 * in or out NULL while there are items and bytes to read or write),
 * POOL_ECANCELED (see cancel_fd; the chunks in flight are abandoned and
 * their results discarded), POOL_ESYS (a system call failed in the parent:
 * the pool is then broken; only pool_terminate(), pool_join() and
 * pool_destroy() remain).
 */
int pool_map(struct pool *p, const struct pool_func *f, const void *in,
             void *out, long n, long chunksize);

/*
 * Python's imap_unordered(f, xs, chunksize): apply f to the n items at
 * `in`, and hand each result to the caller as soon as its chunk comes
 * back, in the order the workers finish:
 *     each(ctx, index, result)
 * is called in the parent, once for each item that succeeded, with the
 * item's index in the input and a pointer to its out_size result bytes
 * (valid until `each` returns). Items that failed are not passed to each;
 * they are reported as by pool_map(). chunksize 0 means 1, Python's
 * default for imap_unordered. With a single worker, the order is the input
 * order.
 *
 * each returns 0 to go on; any other value stops the call at once: no more
 * chunks are sent, the chunks in flight are abandoned (their results are
 * discarded when they come; pool_terminate() stops them now), and the call
 * returns 1. Returns 0 when every item succeeded and was handed over, 1
 * when each asked to stop, -1 as pool_map() does. Inside each, do not call
 * the pool's functions.
 */
int pool_imap_unordered(struct pool *p, const struct pool_func *f,
                        const void *in, long n, long chunksize,
                        int (*each)(void *ctx, long index, const void *result),
                        void *ctx);

/*
 * Python's close(): take no more work. Each worker reads end-of-file on its
 * task pipe once it has finished what it holds, and leaves. Later maps
 * fail with POOL_ESTATE. Returns 0; calling it again does nothing.
 */
int pool_close(struct pool *p);

/*
 * Python's join(): after pool_close() or pool_terminate(), wait until every
 * worker has ended, and reap it. Results of abandoned chunks are read and
 * discarded meanwhile, so join never waits on a full pipe. Returns 0 when
 * every worker ended cleanly (exit status 0, or stopped by
 * pool_terminate()); -1 otherwise, pool_last_error(p) describing one such
 * worker (POOL_EWORKER). On a running pool: -1, POOL_ESTATE, as Python.
 */
int pool_join(struct pool *p);

/*
 * Python's terminate(): stop every worker now, even in the middle of a
 * task: SIGTERM to all (and SIGCONT, so that a stopped worker gets it too),
 * then SIGKILL to those still there after grace_ms, then reap them all.
 * Work in flight is lost. Returns 0; or -1 when waitpid() failed
 * (POOL_ESYS).
 */
int pool_terminate(struct pool *p);

/*
 * The destructor: terminate the workers still running (as leaving Python's
 * `with Pool() as p:` does), free everything, and set *pp to NULL. Does
 * nothing when *pp is NULL, so it is safe on every path and may be called
 * twice. In a process forked from the pool's creator (not a worker), it
 * only closes that process's copies of the pipes and frees its copy of the
 * memory: it never signals or waits for the creator's workers.
 */
void pool_destroy(struct pool **pp);

/* The failure of the last call on p that failed, or kind POOL_OK after a
 * call that succeeded. Valid until the next call on p. */
const struct pool_error *pool_last_error(const struct pool *p);

/*
 * Python's `with Pool() as p:`, where the compiler supports it (GCC and
 * Clang's cleanup attribute): pool_destroy(&p) runs when p goes out of
 * scope, whichever way the block is left (return, break, goto; not exit()).
 *     {
 *         struct pool *p POOL_AUTO = pool_create(NULL, &err);
 *         ...
 *     }                                   // workers terminated, p freed
 * Portable C: call pool_destroy(&p) on every way out, a `goto out;` ladder.
 */
#if defined(__GNUC__) || defined(__clang__)
#define POOL_AUTO __attribute__((cleanup(pool_destroy)))
#endif

#endif
