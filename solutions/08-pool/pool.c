/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the pool library of pool.h. Read pool.h first: it says what each
 * function promises. This file says how.
 *
 * The shape is lesson 03's: every worker has a task pipe and a result pipe
 * of its own, the parent drives them all from one poll() loop, and it reads
 * each result as soon as it begins to arrive. Unlike lesson 03, a worker
 * holds up to cfg.depth chunks: the one it runs, and more queued in its
 * task pipe, so that it goes from one chunk to the next without waiting for
 * the parent (see "the map engine" for why that still cannot deadlock). On
 * top of that:
 *   - records carry bytes of any size, and the functor's bound arguments by
 *     value (lesson 04);
 *   - no call exits the program; every failure is described in a struct
 *     pool_error, and pool_destroy() releases everything on any path
 *     (lesson 05);
 *   - a failed item names itself; a dead worker fails the chunk it held and
 *     is replaced, and no call waits for a result that cannot come
 *     (lesson 06);
 *   - close, join and terminate, signals blocked across fork(), and a
 *     descriptor the caller can make readable to cancel a call (lesson 07);
 *   - new here: an initializer and a handshake, worker recycling after
 *     maxtasks, imap_unordered's callback, several pools at once; and with
 *     POOL_TRACE=FILE in the environment, a timeline of the run in FILE
 *     for `make trace` (lesson 02's format, written by the parent alone).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* Linux's pipe sizes (fcntl(2), since 2.6.35), named by <fcntl.h> only
 * with _GNU_SOURCE: the numbers are the kernel's, F_LINUX_SPECIFIC_BASE
 * (1024) + 7 and + 8. Elsewhere they stay undefined, and pipes keep the
 * size the system gives them. */
#if defined(__linux__) && !defined(F_SETPIPE_SZ)
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif

#include "pool.h"

/* Above every signal number: 64 on Linux, 31 on macOS. worker_setup()
 * asks about each number below it; sigaction() refuses those that are no
 * signal. */
#define MAX_SIGNAL 129

/* A worker's first read of a record asks for up to this much: several
 * small records come in one read() (one wake-up), and the bytes it takes
 * of the next record are few to move to the front of the buffer. */
#define READ_AHEAD 16384

/* The parent reads a worker's results ahead by up to this much: one read()
 * takes every small result waiting in the pipe. */
#define RESULTS_AHEAD 16384

/* A pipe is grown (F_SETPIPE_SZ) for a record of at least PIPE_GROW_AT
 * times its size, to at most PIPE_GROW_MAX bytes. Measured on 2 CPUs, a
 * million items in chunks of 1 MB: 64 KiB pipes, 519 context switches and
 * 24 ms of CPU; grown to 256 KiB, 126 and 17 ms; to 1 MiB (Linux's
 * default pipe-max-size), 39 switches but the run took longer: the reader
 * then waits for the whole megabyte instead of copying out while the
 * writer copies in. A record of under 4 pipes takes few wake-ups anyway. */
#define PIPE_GROW_AT 4
#define PIPE_GROW_MAX (256 * 1024)

/* With depth 0, a chunk that ran longer than this gets no chunk queued
 * behind it (see may_take()): 1 ms is some 40 round trips of a pipe, so
 * queueing could save its worker a few per cent at most, and would hold
 * back a chunk that an idle worker could run. */
#define SHORT_CHUNK_NS 1000000LL

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
    unsigned char *ahead;       /* RESULTS_AHEAD bytes, or NULL: the slot's
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
 * ends of all of them: a write end of another pool's task pipe, left open
 * in this worker, would keep that pool's worker from ever seeing
 * end-of-file.
 */
static struct pool *all_pools;

/* SIGPIPE is ignored while sigpipe_holders > 0; sigpipe_before is its
 * action before the first pool, restored after the last. */
static int sigpipe_holders;
static struct sigaction sigpipe_before;

/* ---- errors ----------------------------------------------------------- */

/* Fill in *e: kind, index and message (printf format); the rest zero. */
static void
set_error(struct pool_error *e, enum pool_failure kind, long index,
          const char *fmt, ...)
{
    va_list ap;

    *e = (struct pool_error){.kind = kind, .index = index};
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* A system call failed in the parent: POOL_ESYS, code errno. Returns -1. */
static int
sys_error(struct pool_error *e, const char *what)
{
    int saved = errno;

    set_error(e, POOL_ESYS, -1, "%s: %s", what, strerror(saved));
    e->code = saved;
    return -1;
}

/* The pool can no longer be trusted to know its workers' state: only
 * terminate, join and destroy will do. Keeps p->error. Returns -1. */
static int
break_pool(struct pool *p)
{
    p->state = POOL_BROKEN;
    snprintf(p->broken_why, sizeof p->broken_why, "%s", p->error.message);
    return -1;
}

/*
 * How a worker ended, from its wait status, for a message: "exited with
 * status 3" or "was killed by signal 9 (Killed)". Sets e->code or
 * e->signal.
 */
static const char *
describe_end(int status, struct pool_error *e, char *buf, size_t size)
{
    if (WIFSIGNALED(status)) {
        e->signal = WTERMSIG(status);
        snprintf(buf, size, "was killed by signal %d (%s)", e->signal,
                 strsignal(e->signal));
    } else {
        e->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        snprintf(buf, size, "exited with status %d", e->code);
    }
    return buf;
}

/*
 * Record that items index .. index+count-1 failed. p->error keeps
 * describing the failed item with the lowest index; e is the description of
 * this one, used when it is the lowest so far.
 */
static void
note_failure(struct pool *p, const struct pool_error *e, long count)
{
    long failed = p->error.failed + count;

    if (p->error.kind == POOL_OK || e->index < p->error.index)
        p->error = *e;
    p->error.failed = failed;
}

/* ---- whole reads and writes, the clock -------------------------------- */

/*
 * Drop the first n bytes from the buffers iov[0 .. *iovcnt-1]: the buffers
 * they fill (and empty ones) go, the next one starts further on.
 */
static void
iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    for (; *iovcnt > 0 && n >= (*iov)->iov_len; (*iov)++, (*iovcnt)--)
        n -= (*iov)->iov_len;
    if (*iovcnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

/*
 * Fill iov[0], then iov[1], ... from fd, unless end-of-file comes first,
 * with as few read system calls as the pipe allows (one, when all the
 * bytes are there: a header and what follows it, at once). Retries reads
 * interrupted by a signal; a pipe may give fewer bytes than asked. Changes
 * iov. Returns the bytes read, fewer when end-of-file came first; or -1
 * with errno set on an error.
 */
static ssize_t
readvn(int fd, struct iovec *iov, int iovcnt)
{
    size_t done = 0;

    iov_advance(&iov, &iovcnt, 0);          /* no read for empty buffers */
    while (iovcnt > 0) {
        ssize_t got = readv(fd, iov, iovcnt);

        if (got == 0)
            break;              /* end-of-file: every write end is closed */
        if (got == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)got;
        iov_advance(&iov, &iovcnt, (size_t)got);
    }
    return (ssize_t)done;
}

/* readvn() into one buffer: exactly n bytes, unless end-of-file comes
 * first. */
static ssize_t
readn(int fd, void *buf, size_t n)
{
    struct iovec v = {.iov_base = buf, .iov_len = n};

    return readvn(fd, &v, 1);
}

/*
 * Write all the bytes of iov[0], iov[1], ... to fd, gathered into one
 * record: one system call when the pipe takes it all. Retries writes
 * interrupted by a signal and carries on after short writes. Changes iov.
 * Returns the bytes written, or -1 with errno set.
 */
static ssize_t
writevn(int fd, struct iovec *iov, int iovcnt)
{
    size_t done = 0;

    iov_advance(&iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t put = writev(fd, iov, iovcnt);

        if (put == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)put;
        iov_advance(&iov, &iovcnt, (size_t)put);
    }
    return (ssize_t)done;
}

/* writevn() from one buffer: all n bytes. */
static ssize_t
writen(int fd, const void *buf, size_t n)
{
    struct iovec v = {.iov_base = (void *)buf, .iov_len = n};

    return writevn(fd, &v, 1);
}

/* Grow *buf (of *cap bytes) to hold at least need bytes, and at least 1.
 * Returns 0, or -1 with errno set (and *buf as it was). */
static int
grow(unsigned char **buf, size_t *cap, size_t need)
{
    unsigned char *bigger;

    if (need == 0)
        need = 1;               /* never a NULL buffer to point into */
    if (need <= *cap)
        return 0;
    if ((bigger = realloc(*buf, need)) == NULL)
        return -1;
    *buf = bigger;
    *cap = need;
    return 0;
}

/* CLOCK_MONOTONIC now, in nanoseconds; 0 if the clock cannot be read. */
static long long
now_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        return 0;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep ms milliseconds, or less when a signal comes. */
static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- the worker ------------------------------------------------------- */

/* A worker's buffers: grown as records need, never shrunk. */
struct worker_buffers {
    unsigned char *task;        /* the current task record, whole, then the
                                 * first bytes of the next ones */
    size_t task_cap;
    size_t task_len;            /* bytes read into task */
    size_t task_used;           /* of those, the current record's */
    unsigned char *out;         /* a result_block, then the results */
    size_t out_cap;
    unsigned char *codes;       /* each item's code (ints), when one failed */
    size_t codes_cap;
};

/*
 * A worker's fatal error, in the library itself, not in a task: a message,
 * then _exit(1), which flushes no stdio buffer inherited from the parent
 * and runs no atexit() handler. The parent reports the exit status.
 */
static _Noreturn void
die_child(const char *what)
{
    fprintf(stderr, "pool worker %ld: %s: %s\n", (long)getpid(), what,
            errno != 0 ? strerror(errno) : "record cut short");
    _exit(1);
}

/*
 * Have the first `need` bytes of a task record in b->task, reading the
 * missing ones (exactly those) from fd. A record cut short ends the worker.
 */
static void
read_rest(int fd, struct worker_buffers *b, size_t need)
{
    errno = 0;
    if (b->task_len < need &&
        readn(fd, b->task + b->task_len, need - b->task_len) !=
            (ssize_t)(need - b->task_len))
        die_child("read task");
    if (b->task_len < need)
        b->task_len = need;
}

/*
 * Read the next task record from fd into the front of b->task: its header
 * into *h too. Returns 1 for a task, 0 for end-of-file before its first
 * byte (no more work). Anything else ends the worker.
 *
 * The parent may have queued several records in the pipe: the first read
 * asks for up to READ_AHEAD bytes and may take several small records in one
 * system call. Bytes past the current record stay in b->task for the next
 * call, which first moves them to the front.
 */
static int
read_task(int fd, struct task_head *h, struct worker_buffers *b)
{
    size_t size;

    if (b->task_used > 0) {             /* the record run last: drop it */
        b->task_len -= b->task_used;
        memmove(b->task, b->task + b->task_used, b->task_len);
        b->task_used = 0;
    }
    if (grow(&b->task, &b->task_cap, READ_AHEAD) == -1)
        die_child("realloc");
    if (b->task_len == 0) {
        ssize_t got;

        while ((got = read(fd, b->task, READ_AHEAD)) == -1 && errno == EINTR)
            continue;
        if (got == 0)
            return 0;
        if (got == -1)
            die_child("read task");
        b->task_len = (size_t)got;
    }
    read_rest(fd, b, sizeof(union task_block));
    memcpy(h, b->task, sizeof *h);
    if (h->count < 1)
        die_child("read task");
    size = sizeof(union task_block) + ARGS_ROOM(h->args_size) +
           (size_t)h->count * h->in_size;
    if (grow(&b->task, &b->task_cap, size) == -1 ||
        grow(&b->out, &b->out_cap, sizeof(union result_block) +
                                   (size_t)h->count * h->out_size) == -1 ||
        grow(&b->codes, &b->codes_cap, (size_t)h->count * sizeof(int)) == -1)
        die_child("realloc");
    read_rest(fd, b, size);
    b->task_used = size;
    return 1;
}

/*
 * Apply the task's function to each of its items, results into b->out after
 * the header, which it fills in. A failed item's code goes to b->codes
 * (zeroed at the first failure) and its result bytes are zeroed.
 */
static void
run_task(const struct task_head *h, struct worker_buffers *b)
{
    struct result_head *r = &((union result_block *)b->out)->h;
    unsigned char *results = b->out + sizeof(union result_block);
    const unsigned char *args = b->task + sizeof(union task_block);
    const unsigned char *in = args + ARGS_ROOM(h->args_size);
    int *codes = (int *)b->codes;

    memset(b->out, 0, sizeof(union result_block));  /* no uninitialised */
    r->first = h->first;                             /* padding sent */
    r->count = h->count;
    r->start_ns = now_ns();
    memset(results, 0, (size_t)h->count * h->out_size);    /* no stale or */
    for (long i = 0; i < h->count; i++) {                  /* unset bytes */
        unsigned char *out = results + (size_t)i * h->out_size;
        int code = h->call(h->args_size > 0 ? args : NULL,
                           in + (size_t)i * h->in_size, out);

        if (code == 0)
            continue;
        if (r->failed++ == 0)
            memset(codes, 0, (size_t)h->count * sizeof(int));
        codes[i] = code;
        memset(out, 0, h->out_size);
    }
    r->end_ns = now_ns();
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * run each, send each result back on result_fd, as one write (and a second
 * for the codes when an item failed). Never returns: a worker that
 * returned would go on running the caller's code as if it were the parent.
 */
static _Noreturn void
worker_main(int task_fd, int result_fd)
{
    struct worker_buffers b = {NULL, 0, 0, 0, NULL, 0, NULL, 0};
    struct task_head h;

    while (read_task(task_fd, &h, &b) == 1) {
        const struct result_head *r = &((union result_block *)b.out)->h;
        size_t size = sizeof(union result_block) +
                      (size_t)h.count * h.out_size;

        run_task(&h, &b);
        fflush(NULL);           /* what the task printed, out now */
        if (writen(result_fd, b.out, size) == -1 ||
            (r->failed > 0 &&
             writen(result_fd, b.codes, (size_t)h.count * sizeof(int)) == -1))
            die_child("write result");
    }
    free(b.task);
    free(b.out);
    free(b.codes);
    fflush(NULL);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/*
 * Close, in a new worker, the parent's ends of the pipes of every pool of
 * the process: this pool's other workers, and other pools' workers.
 */
static void
close_parent_ends(void)
{
    for (struct pool *p = all_pools; p != NULL; p = p->next) {
        if (p->trace_fd != -1 && close(p->trace_fd) == -1)
            die_child("close");
        p->trace_fd = -1;       /* the trace is the parent's to write */
        for (long i = 0; i < p->nworkers; i++) {
            struct worker *w = &p->workers[i];

            if ((w->task_fd != -1 && close(w->task_fd) == -1) ||
                (w->result_fd != -1 && close(w->result_fd) == -1))
                die_child("close");
            w->task_fd = w->result_fd = -1;
        }
    }
}

/*
 * In a new worker, the signals and stdin of pool.h: SIGINT ignored (the
 * parent decides), SIGTERM and SIGPIPE at their default actions, every
 * other signal the parent caught with a handler back to its default action
 * (a terminal resize sends SIGWINCH to the whole foreground group: the
 * parent's handler must not run in a worker), stdin from /dev/null. The
 * signals are still blocked here; old_mask is the mask to go back to.
 */
static void
worker_setup(const sigset_t *old_mask)
{
    struct sigaction sa, old;
    int fd;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGINT, &sa, NULL) == -1)
        die_child("sigaction");
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGTERM, &sa, NULL) == -1 ||
        sigaction(SIGPIPE, &sa, NULL) == -1)
        die_child("sigaction");
    for (int sig = 1; sig < MAX_SIGNAL; sig++) {
        if (sigaction(sig, NULL, &old) == -1)
            continue;           /* EINVAL: no such signal, or reserved */
        if (((old.sa_flags & SA_SIGINFO) != 0 ||
             (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) &&
            sigaction(sig, &sa, NULL) == -1)
            die_child("sigaction");
    }
    if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
        dup2(fd, STDIN_FILENO) == -1 || (fd != STDIN_FILENO && close(fd) == -1))
        die_child("/dev/null as stdin");
    if (sigprocmask(SIG_SETMASK, old_mask, NULL) == -1)
        die_child("sigprocmask");
}

/*
 * Everything a new worker does between fork() and its first task: close
 * what is not its own, set up its signals, run the initializer and say so
 * in its ready record. A failed initializer ends the worker.
 */
static _Noreturn void
worker_start(struct pool *p, int task[2], int result[2],
             const sigset_t *old_mask)
{
    union result_block ready;

    if (close(task[1]) == -1 ||     /* only the parent writes tasks */
        close(result[0]) == -1)     /* only the parent reads results */
        die_child("close");
    close_parent_ends();
    worker_setup(old_mask);
    memset(&ready, 0, sizeof ready);    /* no uninitialised padding sent */
    ready.h.first = -1;
    ready.h.start_ns = now_ns();
    ready.h.status = p->cfg.init != NULL ? p->cfg.init(p->cfg.init_arg) : 0;
    ready.h.end_ns = now_ns();
    fflush(NULL);
    if (writen(result[1], &ready, sizeof ready) == -1)
        die_child("write ready record");
    if (ready.h.status != 0)
        _exit(1);               /* the parent reports the initializer's code */
    worker_main(task[0], result[1]);
}

/* ---- starting, reaping and replacing workers -------------------------- */

/*
 * In a new worker, right after fork(): no worker outlives its parent by
 * more than a moment, even in the middle of a long task. On Linux the
 * kernel sends the worker SIGKILL when its parent dies (PR_SET_PDEATHSIG:
 * strictly, when the parent *thread* that forked it exits; these programs
 * fork from their only thread). A parent that died before the prctl()
 * call sends nothing: then the worker already has another parent, and
 * leaves at once. Elsewhere (macOS has no PDEATHSIG) a worker learns of
 * the death at its next read of the task pipe (end-of-file) or write of a
 * result (EPIPE): it may outlive its parent by the task it holds.
 */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
        die_child("prctl");
    if (getppid() != parent)
        _exit(1);               /* the parent is gone already */
#else
    (void)parent;               /* see above: the pipes tell, a task later */
#endif
}


/* pipe(), both ends close-on-exec, so that a program a worker or the
 * caller execs never holds them. Returns 0, or -1 with errno set. */
static int
make_pipe(int fds[2])
{
    if (pipe(fds) == -1)
        return -1;
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) == -1 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) == -1) {
        int saved = errno;

        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

/*
 * How many bytes the pipe of fd holds: Linux says (F_GETPIPE_SZ); elsewhere
 * count on PIPE_BUF alone, the bytes POSIX says one write() puts into a
 * pipe at once.
 */
static size_t
pipe_size(int fd)
{
#ifdef F_GETPIPE_SZ
    int size = fcntl(fd, F_GETPIPE_SZ);

    if (size > 0)
        return (size_t)size;
#else
    (void)fd;
#endif
    return PIPE_BUF;
}

/*
 * Grow the pipe of fd, which holds `size` bytes, for a record of `bytes`,
 * where the system allows (Linux: F_SETPIPE_SZ; see PIPE_GROW_AT): the
 * record then crosses in fewer write()s and read()s, fewer wake-ups of
 * each side. Returns what the pipe holds now. A refusal (EPERM: the user's
 * pipes hold too much already, pipe(7)) is no error: the pipe keeps its
 * size.
 */
static size_t
fit_pipe(int fd, size_t size, size_t bytes)
{
#ifdef F_SETPIPE_SZ
    int got;

    if (bytes / PIPE_GROW_AT < size || size >= PIPE_GROW_MAX)
        return size;
    got = fcntl(fd, F_SETPIPE_SZ, bytes < PIPE_GROW_MAX ? (int)bytes
                                                        : PIPE_GROW_MAX);
    if (got > 0)
        return (size_t)got;
#else
    (void)fd;
    (void)bytes;
#endif
    return size;
}

/* Close all four ends of two pipes, keeping errno. */
static void
close_four(int a[2], int b[2])
{
    int saved = errno;

    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    errno = saved;
}

/*
 * Fork a worker into empty slot i, with a task pipe and a result pipe of its
 * own. Every signal is blocked across fork(), so no handler of the parent
 * runs in the new worker before worker_setup() has reset it. Does not wait
 * for its ready record (see await_ready()). Returns 0, or -1 (POOL_ESYS).
 */
static int
start_worker(struct pool *p, long i)
{
    int task[2], result[2];
    sigset_t all, old_mask;
    pid_t pid, parent = getpid();

    if (make_pipe(task) == -1)
        return sys_error(&p->error, "pipe");
    if (make_pipe(result) == -1) {
        sys_error(&p->error, "pipe");
        close(task[0]);
        close(task[1]);
        return -1;
    }
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, &old_mask) == -1) {
        close_four(task, result);
        return sys_error(&p->error, "sigprocmask");
    }
    fflush(NULL);               /* else the worker inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        close_four(task, result);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return sys_error(&p->error, "fork");
    case 0:
        die_with_parent(parent);
        worker_start(p, task, result, &old_mask);
    default:
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        close(task[0]);         /* the worker's ends: closed here, so that */
        close(result[1]);       /* its death gives EOF and EPIPE at once */
        p->workers[i] = (struct worker){.pid = pid, .task_fd = task[1],
                                        .result_fd = result[0],
                                        .ran_ns = -1,
                                        .ahead = p->workers[i].ahead};
        p->workers[i].task_pipe = pipe_size(task[1]);
        p->workers[i].result_pipe = pipe_size(result[0]);
        /* A write to a worker that holds chunks must never wait: see
          * send_chunks(). */
        if (fcntl(task[1], F_SETFL, O_NONBLOCK) == -1) {
            sys_error(&p->error, "fcntl");
            kill(pid, SIGKILL);
            return -1;
        }
    }
    return 0;
}

/*
 * Close worker w's pipes (end-of-file on its task pipe: it leaves) and wait
 * for it to end; its wait status goes to *status. Then the slot is empty.
 * The worker must be on its way out: idle, closed, or sent SIGKILL.
 * Returns 0, or -1 (POOL_ESYS). A worker someone else reaped (ECHILD)
 * counts as having exited with status 0.
 */
static int
reap_worker(struct pool *p, struct worker *w, int *status)
{
    if (w->task_fd != -1)
        close(w->task_fd);
    if (w->result_fd != -1)
        close(w->result_fd);
    w->task_fd = w->result_fd = -1;
    w->ahead_from = w->ahead_to = 0;    /* what it sent is of no use now */
    *status = 0;
    while (waitpid(w->pid, status, 0) == -1) {
        if (errno == ECHILD)
            break;
        if (errno != EINTR)
            return sys_error(&p->error, "waitpid");
    }
    w->pid = -1;                /* its pid may be reused: never signal it */
    return 0;
}

/*
 * Wait for the ready record of the worker in slot i, which has just been
 * started. Returns 0 when its initializer succeeded. Otherwise reaps it and
 * returns -1 (POOL_EINIT: the initializer's code, or how the worker died;
 * or POOL_ESYS).
 */
static int
await_ready(struct pool *p, long i)
{
    struct worker *w = &p->workers[i];
    union result_block ready;
    struct pool_error e = {.kind = POOL_EINIT, .index = -1, .pid = w->pid};
    int status;
    char how[80];
    ssize_t got = readn(w->result_fd, &ready, sizeof ready);
    int said = got == (ssize_t)sizeof ready && ready.h.first == -1;

    if (said && ready.h.status == 0)
        return 0;
    if (got == -1)
        return sys_error(&p->error, "read ready record");
    if (!said)
        kill(e.pid, SIGKILL);   /* it died, or sent nonsense: make sure */
    if (reap_worker(p, w, &status) == -1)
        return -1;
    if (said) {
        e.code = ready.h.status;
        snprintf(e.message, sizeof e.message,
                 "worker %ld: initializer failed with code %d", (long)e.pid,
                 e.code);
    } else {
        snprintf(e.message, sizeof e.message, "worker %ld %s in its "
                 "initializer", (long)e.pid, describe_end(status, &e, how,
                                                          sizeof how));
    }
    p->error = e;
    return -1;
}

/*
 * Start a worker in empty slot i and wait until it is ready. Returns 0; or
 * -1, and then the pool is broken: it cannot keep its number of workers.
 */
static int
spawn_worker(struct pool *p, long i)
{
    if (start_worker(p, i) == -1 || await_ready(p, i) == -1)
        return break_pool(p);
    return 0;
}

/* ---- the life of a pool ----------------------------------------------- */

/* Check cfg and fill in its defaults. Returns 0, or -1 (POOL_EINVAL). */
static int
check_config(struct pool_config *c, struct pool_error *e)
{
    if (c->workers == 0) {
        long cpus = -1;
#ifdef _SC_NPROCESSORS_ONLN
        cpus = sysconf(_SC_NPROCESSORS_ONLN);   /* common, not POSIX */
#endif
        c->workers = cpus < 1 ? 1 : cpus > POOL_MAX_WORKERS ? POOL_MAX_WORKERS
                                                            : cpus;
    }
    if (c->grace_ms == 0)
        c->grace_ms = POOL_GRACE_MS;
    if (c->workers < 1 || c->workers > POOL_MAX_WORKERS)
        set_error(e, POOL_EINVAL, -1, "workers must be 0 (one per CPU) or "
                  "1 to %d, not %ld", POOL_MAX_WORKERS, c->workers);
    else if (c->maxtasks < 0)
        set_error(e, POOL_EINVAL, -1, "maxtasks must be 0 (no limit) or "
                  "more, not %ld", c->maxtasks);
    else if (c->grace_ms < 0)
        set_error(e, POOL_EINVAL, -1, "grace_ms must be 0 (the default) or "
                  "more, not %ld", c->grace_ms);
    else if (c->cancel_fd < 0 || (c->cancel_fd > 0 && c->cancel_fd < 3))
        set_error(e, POOL_EINVAL, -1, "cancel_fd must be 0 (none) or a "
                  "descriptor above 2, not %d", c->cancel_fd);
    else if (c->depth < 0 || c->depth > POOL_MAX_DEPTH)
        set_error(e, POOL_EINVAL, -1, "depth must be 0 (the default) or "
                  "1 to %d, not %ld", POOL_MAX_DEPTH, c->depth);
    else
        return 0;
    return -1;
}

/* Ignore SIGPIPE while a pool exists (see pool.h). Returns 0 or -1. */
static int
hold_sigpipe(void)
{
    struct sigaction ignore;

    if (sigpipe_holders > 0) {
        sigpipe_holders++;
        return 0;
    }
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, &sigpipe_before) == -1)
        return -1;
    sigpipe_holders = 1;
    return 0;
}

/* The last pool gone: SIGPIPE's action back to what it was. */
static void
release_sigpipe(void)
{
    if (sigpipe_holders > 0 && --sigpipe_holders == 0)
        sigaction(SIGPIPE, &sigpipe_before, NULL);
}

/*
 * With POOL_TRACE=FILE in the environment, open FILE to append the run's
 * timeline to it: "task FIRST COUNT PID START_NS END_NS" for each chunk a
 * worker ran, "wait PID START_NS END_NS" for each time the parent sat in
 * poll(). Only the parent writes it, one write() a line. Returns the
 * descriptor, -1 without POOL_TRACE, or -2 (POOL_ESYS in *e) when FILE
 * cannot be opened.
 */
static int
open_trace(struct pool_error *e)
{
    const char *path = getenv("POOL_TRACE");
    int fd;

    if (path == NULL || *path == '\0')
        return -1;
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                   0644)) == -1) {
        int saved = errno;

        set_error(e, POOL_ESYS, -1, "POOL_TRACE: open %.*s: %s", 100, path,
                  strerror(saved));
        e->code = saved;
        return -2;
    }
    return fd;
}

/* Append one line to the trace, if there is one. A trace is a picture,
 * not a result: a failed write loses a line and nothing else. */
static void
trace_line(const struct pool *p, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    int len;
    ssize_t put;

    if (p->trace_fd == -1)
        return;
    va_start(ap, fmt);
    len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len > 0 && (size_t)len < sizeof line) {
        put = write(p->trace_fd, line, (size_t)len);
        (void)put;              /* a lost line: see above */
    }
}

/* A new pool's memory, for c->workers empty slots, linked into all_pools.
 * Returns NULL (POOL_ESYS in *e) when memory, SIGPIPE or POOL_TRACE's file
 * fails. */
static struct pool *
new_pool(const struct pool_config *c, struct pool_error *e)
{
    struct pool *p = calloc(1, sizeof *p);

    if (p == NULL || (p->workers = calloc((size_t)c->workers,
                                          sizeof *p->workers)) == NULL ||
        (p->pfds = calloc((size_t)c->workers + 1, sizeof *p->pfds)) == NULL ||
        (p->redo = calloc((size_t)c->workers * POOL_MAX_DEPTH,
                          sizeof *p->redo)) == NULL ||
        (p->share = calloc((size_t)c->workers, sizeof *p->share)) == NULL ||
        hold_sigpipe() == -1) {
        sys_error(e, p == NULL || p->share == NULL ? "calloc" : "sigaction");
        goto fail;
    }
    if ((p->trace_fd = open_trace(e)) == -2) {
        release_sigpipe();
        goto fail;
    }
    p->owner = getpid();
    p->state = POOL_RUNNING;
    p->page = sysconf(_SC_PAGESIZE) > 0 ? (size_t)sysconf(_SC_PAGESIZE) : 4096;
    p->cfg = *c;
    p->nworkers = c->workers;
    for (long i = 0; i < p->nworkers; i++)
        p->workers[i] = (struct worker){.pid = -1, .task_fd = -1,
                                        .result_fd = -1};
    p->error.index = -1;
    p->next = all_pools;
    all_pools = p;
    return p;
fail:
    if (p != NULL) {
        free(p->workers);
        free(p->pfds);
        free(p->redo);
        free(p->share);
    }
    free(p);
    return NULL;
}

struct pool *
pool_create(const struct pool_config *cfg, struct pool_error *err)
{
    struct pool_config c = cfg != NULL ? *cfg : (struct pool_config){0};
    struct pool_error ignored;
    struct pool *p;

    if (err == NULL)
        err = &ignored;
    *err = (struct pool_error){.kind = POOL_OK, .index = -1};
    if (check_config(&c, err) == -1 || (p = new_pool(&c, err)) == NULL)
        return NULL;
    /* Fork them all first, then wait for each: the initializers run in
     * parallel. */
    for (long i = 0; i < p->nworkers; i++)
        if (start_worker(p, i) == -1)
            goto fail;
    for (long i = 0; i < p->nworkers; i++)
        if (await_ready(p, i) == -1)
            goto fail;
    return p;
fail:
    *err = p->error;
    pool_destroy(&p);           /* stops and reaps those already started */
    return NULL;
}

long
pool_workers(const struct pool *p)
{
    return p->nworkers;
}

pid_t
pool_worker_pid(const struct pool *p, long i)
{
    return i >= 0 && i < p->nworkers ? p->workers[i].pid : -1;
}

const struct pool_error *
pool_last_error(const struct pool *p)
{
    return &p->error;
}

long
pool_default_chunksize(long n, long workers)
{
    if (n == 0)
        return 0;               /* Python: an empty map sends nothing */
    return (n + 4 * workers - 1) / (4 * workers);      /* ceil(n / 4w) */
}

/*
 * Whether p may be used by this call: by its creator, and, when running is
 * set, only while it takes work. Else fills in p->error (POOL_ESTATE).
 */
static int
usable(struct pool *p, int running)
{
    static const char *const names[] = {"running", "closed", "terminated",
                                        "broken"};

    p->error = (struct pool_error){.kind = POOL_OK, .index = -1};
    if (p->owner != getpid())
        set_error(&p->error, POOL_ESTATE, -1, "the pool belongs to process "
                  "%ld, not to this one", (long)p->owner);
    else if (running && p->state == POOL_BROKEN)
        set_error(&p->error, POOL_ESTATE, -1, "the pool is broken: %s",
                  p->broken_why);
    else if (running && p->state != POOL_RUNNING)
        set_error(&p->error, POOL_ESTATE, -1, "the pool is %s: it takes no "
                  "more work", names[p->state]);
    else
        return 1;
    return 0;
}

int
pool_close(struct pool *p)
{
    if (!usable(p, 0))
        return -1;
    if (p->state == POOL_RUNNING || p->state == POOL_BROKEN)
        p->state = POOL_CLOSED;
    for (long i = 0; i < p->nworkers; i++)
        if (p->workers[i].task_fd != -1) {
            close(p->workers[i].task_fd);   /* end-of-file: it leaves once */
            p->workers[i].task_fd = -1;     /* it has finished its chunk */
        }
    return 0;
}

/* Read and discard what worker w still sends, until end-of-file. */
static void
drain(struct worker *w)
{
    unsigned char sink[4096];

    while (w->result_fd != -1 && readn(w->result_fd, sink, sizeof sink) ==
                                     (ssize_t)sizeof sink)
        continue;
}

int
pool_join(struct pool *p)
{
    int result = 0, status;
    char how[80];

    if (!usable(p, 0))
        return -1;
    if (p->state == POOL_RUNNING) {
        set_error(&p->error, POOL_ESTATE, -1, "the pool is still running: "
                  "call pool_close() or pool_terminate() first");
        return -1;
    }
    pool_close(p);
    for (long i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        struct pool_error e = {.kind = POOL_EWORKER, .index = -1,
                               .pid = w->pid};

        if (w->pid == -1)
            continue;
        drain(w);
        if (reap_worker(p, w, &status) == -1)
            return -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        snprintf(e.message, sizeof e.message, "worker %ld %s", (long)e.pid,
                 describe_end(status, &e, how, sizeof how));
        p->error = e;
        result = -1;
    }
    return result;
}

/* Reap, without waiting, the workers that have ended. Returns how many are
 * left. */
static long
reap_ended(struct pool *p)
{
    long left = 0;

    for (long i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        pid_t got;

        if (w->pid == -1)
            continue;
        while ((got = waitpid(w->pid, NULL, WNOHANG)) == -1 && errno == EINTR)
            continue;
        if (got == 0)
            left++;
        else
            w->pid = -1;        /* ended (or ECHILD: someone reaped it) */
    }
    return left;
}

/* Send sig to every worker not yet reaped. */
static void
signal_workers(struct pool *p, int sig)
{
    for (long i = 0; i < p->nworkers; i++)
        if (p->workers[i].pid != -1)
            kill(p->workers[i].pid, sig);
}

int
pool_terminate(struct pool *p)
{
    long long deadline;

    if (!usable(p, 0))
        return -1;
    p->state = POOL_TERMINATED;
    signal_workers(p, SIGTERM);     /* all at once: none waits for another */
    signal_workers(p, SIGCONT);     /* a stopped worker holds SIGTERM
                                     * pending until it is continued */
    for (long i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];

        if (w->task_fd != -1)
            close(w->task_fd);
        if (w->result_fd != -1)     /* a worker blocked writing a result */
            close(w->result_fd);    /* gets EPIPE, and dies of SIGPIPE */
        w->task_fd = w->result_fd = -1;
        w->nheld = 0;
        w->queued = 0;
    }
    deadline = now_ns() + p->cfg.grace_ms * 1000000LL;
    while (reap_ended(p) > 0 && now_ns() < deadline)
        nap_ms(2);
    signal_workers(p, SIGKILL);     /* cannot be caught, blocked or ignored */
    for (long i = 0; i < p->nworkers; i++) {
        int status;

        if (p->workers[i].pid != -1 &&
            reap_worker(p, &p->workers[i], &status) == -1)
            return -1;
    }
    return 0;
}

void
pool_destroy(struct pool **pp)
{
    struct pool *p = *pp;

    if (p == NULL)
        return;
    if (p->owner == getpid()) {
        for (long i = 0; i < p->nworkers; i++)
            if (p->workers[i].pid != -1) {
                pool_terminate(p);      /* as leaving `with Pool()` does */
                break;
            }
    } else {
        for (long i = 0; i < p->nworkers; i++) {    /* a forked child: */
            if (p->workers[i].task_fd != -1)        /* close its copies */
                close(p->workers[i].task_fd);       /* only */
            if (p->workers[i].result_fd != -1)
                close(p->workers[i].result_fd);
        }
    }
    for (struct pool **link = &all_pools; *link != NULL; link = &(*link)->next)
        if (*link == p) {
            *link = p->next;
            break;
        }
    if (p->trace_fd != -1)
        close(p->trace_fd);
    release_sigpipe();
    for (long i = 0; i < p->nworkers; i++)
        free(p->workers[i].ahead);
    free(p->workers);
    free(p->pfds);
    free(p->redo);
    free(p->share);
    free(p->scratch);
    free(p->codes);
    free(p);
    *pp = NULL;
}

/* ---- the map engine --------------------------------------------------- */

/*
 * Why the loop cannot deadlock, now that a worker holds up to cfg.depth
 * chunks. The parent blocks in three places only: poll(), which wakes for
 * any result and for cancel_fd; a read of a result record whose first
 * bytes are there, which its worker, busy writing it, completes (or dies:
 * end-of-file); and a write of a task record. A worker blocks in two: a
 * read of its task pipe, and a write of a result. A deadlock needs the
 * parent in a write to a worker that is itself in a write. That cannot
 * happen, because send_chunks() writes in two ways only:
 *   - to an idle worker (it holds no chunk), any size, waiting for room as
 *     long as it takes: an idle worker writes nothing, it reads until it
 *     has the whole record, so the wait ends;
 *   - behind chunks a worker holds, only when the record fits into what
 *     its task pipe has left, counting every record the worker may not
 *     have read yet (may_take()). Then the write does not wait at all,
 *     whatever the worker does, and the task pipe is O_NONBLOCK besides:
 *     should it be full after all, the write takes nothing (EAGAIN) and
 *     the chunk waits for a later turn.
 * So the parent is back in poll() at once, reading results, while the
 * workers have tasks queued: the bytes in flight towards a busy worker are
 * bounded below its pipe's capacity, and the pipe never fills in both
 * directions at once.
 *
 * How the count holds. On Linux a pipe is a ring of pages, and a write
 * takes at most ceil(bytes / page) of them (it tops up the last page only
 * with what fits there); each page in use holds a byte of a record not yet
 * read. So a record is counted as its size in whole pages, and the pages
 * of every chunk the worker holds, plus the new one, must fit the pipe
 * (F_GETPIPE_SZ). Elsewhere the pipe's size is unknown: it is taken as
 * PIPE_BUF, and a queued record is at most that, which POSIX writes
 * whole or not at all under O_NONBLOCK.
 */

/* Chunk k of those worker w holds, from 0, its oldest. */
static struct chunk *
held(struct worker *w, int k)
{
    return &w->held[(w->oldest + k) % POOL_MAX_DEPTH];
}

/*
 * Record the failures of a result whose item codes are in p->codes: each
 * item with a code other than 0 failed (POOL_ETASK).
 */
static void
note_task_failures(struct pool *p, const struct worker *w,
                   const struct result_head *h)
{
    const int *codes = (const int *)p->codes;

    for (long i = 0; i < h->count; i++) {
        struct pool_error e;

        if (codes[i] == 0)
            continue;
        set_error(&e, POOL_ETASK, h->first + i, "item %ld: task failed "
                  "with code %d (worker %ld)", h->first + i, codes[i],
                  (long)w->pid);
        e.code = codes[i];
        e.pid = w->pid;
        note_failure(p, &e, 1);
    }
}

/*
 * Worker w has died with wait status `status`: fail the items of the chunk
 * it was running, if that chunk is this call's (POOL_EWORKER), and count
 * them as done. The chunks queued behind it were never begun: a worker runs
 * its chunks in the order sent, and writes each result whole before it
 * reads the next task, so every chunk after the oldest unanswered one is
 * untouched. Those of this call go to p->redo, to be sent again. Then the
 * worker holds nothing.
 */
static void
lose_chunk(struct pool *p, struct job *job, struct worker *w, pid_t pid,
           int status)
{
    struct chunk *c = held(w, 0);
    struct pool_error e = {.kind = POOL_EWORKER, .index = c->first,
                           .pid = pid};
    char how[80], items[64];

    if (w->nheld > 0 && !c->abandoned) {
        if (c->count == 1)
            snprintf(items, sizeof items, "item %ld", c->first);
        else
            snprintf(items, sizeof items, "items %ld to %ld", c->first,
                     c->first + c->count - 1);
        snprintf(e.message, sizeof e.message, "%s: worker %ld %s", items,
                 (long)pid, describe_end(status, &e, how, sizeof how));
        note_failure(p, &e, c->count);
        job->done += c->count;
    }
    for (int k = 1; k < w->nheld; k++)
        if (!held(w, k)->abandoned)
            p->redo[p->nredo++] = *held(w, k);
    w->nheld = 0;
    w->queued = 0;
}

/* ---- new in this lesson: recycling, delivering, burying -------------- */

/*
 * Worker w has just finished a task. If it has done its cfg.maxtasks, close
 * its task pipe so that it leaves, reap it, and start a new worker in its
 * slot (Python's maxtasksperchild). Returns 0, or -1 when the pool is
 * broken.
 */
static int
recycle_if_spent(struct pool *p, struct worker *w)
{
    int status;

    if (p->cfg.maxtasks == 0 || w->tasks < p->cfg.maxtasks)
        return 0;
    if (reap_worker(p, w, &status) == -1)
        return break_pool(p);
    return spawn_worker(p, w - p->workers);
}

/*
 * imap_unordered: hand each item of result h that succeeded to the
 * caller's each(), with its index in the input and its result bytes (item
 * i's are at results + i * out_size). Failed items (h->failed > 0 and a
 * code other than 0 in p->codes) are skipped. When each returns non-zero,
 * set job->stopped and hand over nothing more.
 */
static void
deliver_unordered(struct pool *p, struct job *job,
                  const struct result_head *h, const unsigned char *results)
{
    const int *codes = (const int *)p->codes;

    for (long i = 0; i < h->count && !job->stopped; i++) {
        if (h->failed > 0 && codes[i] != 0)
            continue;
        if (job->each(job->ctx, h->first + i,
                      results + (size_t)i * job->f->out_size) != 0)
            job->stopped = 1;
    }
}

/*
 * Worker w has died, or broke the protocol (it closed its result pipe, or
 * sent a record cut short): it failed. Make sure it is dead, reap it, fail
 * the items of the chunk it was running (lose_chunk() sends those queued
 * behind it again), and put a new worker in its slot while the pool runs.
 * Returns 0, or -1 when the pool is broken.
 */
static int
bury_worker(struct pool *p, struct job *job, struct worker *w)
{
    pid_t pid = w->pid;         /* reap_worker() forgets it */
    int status;

    kill(pid, SIGKILL);         /* never wait for a process that may not end */
    if (reap_worker(p, w, &status) == -1)
        return break_pool(p);
    lose_chunk(p, job, w, pid, status);
    if (p->state == POOL_RUNNING)
        return spawn_worker(p, w - p->workers);
    return 0;
}

/*
 * Where the results of chunk c go, bytes of them: for a map, straight
 * into the caller's array; else into p->scratch. Sets *results. Returns 0,
 * or -1 when memory fails (POOL_ESYS).
 */
static int
results_place(struct pool *p, struct job *job, const struct chunk *c,
              size_t bytes, unsigned char **results)
{
    if (job->ordered && !c->abandoned && bytes > 0) {
        *results = job->out + (size_t)c->first * c->out_size;
        return 0;
    }
    if (grow(&p->scratch, &p->scratch_cap, bytes) == -1)
        return sys_error(&p->error, "realloc");
    *results = p->scratch;
    return 0;
}

/*
 * Take the next n bytes that worker w sent into dst: first those read
 * ahead, then from its result pipe, until they are all there (or
 * end-of-file). A small rest is read ahead: one read() asks for up to
 * RESULTS_AHEAD bytes, and takes as many of the results behind this one as
 * are there already; a big rest goes straight to dst. Call it only for a
 * record that has begun to arrive, so that the bytes are there or on
 * their way (a small record is written whole, PIPE_BUF: the worker writes
 * each record with one write). Returns n, fewer at end-of-file, or -1
 * with errno set.
 */
static ssize_t
take_results(struct worker *w, void *dst, size_t n)
{
    unsigned char *to = dst;
    size_t done = 0;

    while (done < n) {
        size_t have = w->ahead_to - w->ahead_from, part;
        ssize_t got;

        if (have > 0) {
            part = have < n - done ? have : n - done;
            memcpy(to + done, w->ahead + w->ahead_from, part);
            done += part;
            w->ahead_from += part;
            continue;
        }
        w->ahead_from = w->ahead_to = 0;
        if (n - done >= RESULTS_AHEAD || w->ahead == NULL) {
            if ((got = readn(w->result_fd, to + done, n - done)) == -1)
                return -1;
            return (ssize_t)(done + (size_t)got);
        }
        while ((got = read(w->result_fd, w->ahead, RESULTS_AHEAD)) == -1 &&
               errno == EINTR)
            continue;
        if (got <= 0)
            return got == 0 ? (ssize_t)done : -1;   /* 0: end-of-file */
        w->ahead_to = (size_t)got;
    }
    return (ssize_t)done;
}

/* Whether worker w has results read ahead, not yet taken. */
static int
has_ahead(const struct worker *w)
{
    return w->ahead_to > w->ahead_from;
}

/*
 * Read the item codes that follow a result whose header h says some items
 * failed, into p->codes. Returns 1 when they all came; 0 when the record
 * was cut short (the worker died while sending it); -1 on an error
 * (POOL_ESYS).
 */
static int
read_codes(struct pool *p, struct worker *w, const struct result_head *h)
{
    size_t code_bytes = (size_t)h->count * sizeof(int);
    ssize_t got;

    if (grow(&p->codes, &p->codes_cap, code_bytes) == -1)
        return sys_error(&p->error, "realloc");
    if ((got = take_results(w, p->codes, code_bytes)) !=
        (ssize_t)code_bytes)
        return got == -1 ? sys_error(&p->error, "read result") : 0;
    return 1;
}

/* Worker w has answered its oldest chunk, which ran ran_ns: it holds one
 * chunk fewer. */
static void
retire_oldest(struct worker *w, long long ran_ns)
{
    w->queued -= held(w, 0)->pipe_bytes;
    w->oldest = (w->oldest + 1) % POOL_MAX_DEPTH;
    w->nheld--;
    w->tasks++;
    w->ran_ns = ran_ns;
}

/*
 * Receive the result of worker w's oldest chunk, which poll() says has
 * begun to arrive (or the worker is gone), and hand it over: for a map the
 * results are already in place; imap_unordered calls each(); an abandoned
 * chunk's result is discarded. Then w holds one chunk fewer, or is
 * recycled. A worker that sent no whole, matching record is buried.
 * Returns 0, or -1 when the pool is broken.
 */
static int
receive(struct pool *p, struct job *job, struct worker *w)
{
    const struct chunk *c = held(w, 0);
    union result_block r;
    unsigned char *results;
    size_t bytes = (size_t)c->count * c->out_size;
    ssize_t got, body = 0;
    int codes;

    if (w->ahead == NULL)       /* if memory fails, it reads on without */
        w->ahead = malloc(RESULTS_AHEAD);
    if (results_place(p, job, c, bytes, &results) == -1)
        return break_pool(p);
    if ((got = take_results(w, &r, sizeof r)) == (ssize_t)sizeof r &&
        r.h.first == c->first && r.h.count == c->count)
        body = take_results(w, results, bytes);
    if (got == -1 || body == -1) {
        sys_error(&p->error, "read result");
        return break_pool(p);
    }
    if (got != (ssize_t)sizeof r || r.h.first != c->first ||
        r.h.count != c->count || body != (ssize_t)bytes ||
        r.h.failed < 0 || r.h.failed > r.h.count)
        return bury_worker(p, job, w);  /* cut short, or not its chunk */
    if (r.h.failed > 0 && (codes = read_codes(p, w, &r.h)) != 1)
        return codes == -1 ? break_pool(p) : bury_worker(p, job, w);
    /* When this chunk ran, by the one clock of every process. */
    trace_line(p, "task %ld %ld %ld %lld %lld\n", r.h.first, r.h.count,
               (long)w->pid, r.h.start_ns, r.h.end_ns);
    if (!c->abandoned) {
        if (r.h.failed > 0)
            note_task_failures(p, w, &r.h);
        if (!job->ordered)
            deliver_unordered(p, job, &r.h, results);
        job->done += r.h.count;
    }
    retire_oldest(w, r.h.end_ns - r.h.start_ns);
    if (w->task_fd == -1 && w->nheld == 0)
        return bury_worker(p, job, w);  /* its task pipe said it is gone */
    return recycle_if_spent(p, w);
}

/* The bytes a chunk of count items takes in its task pipe: its record's,
 * in whole pages where pipes are made of them (see above). */
static size_t
pipe_bytes(const struct pool *p, const struct job *job, long count)
{
    size_t bytes = sizeof(union task_block) + ARGS_ROOM(job->f->args_size) +
                   (size_t)count * job->f->in_size;

#ifdef F_GETPIPE_SZ
    return (bytes + p->page - 1) / p->page * p->page;
#else
    (void)p;
    return bytes;
#endif
}

/*
 * Whether worker w may be sent k more chunks of count items now: it has a
 * task pipe, would hold at most its depth, and would have been sent at
 * most cfg.maxtasks (it leaves after that many, so one more would be
 * lost). An idle worker takes one chunk of any size; one that holds chunks
 * takes more only when their records fit into its task pipe beside all it
 * holds, so that the write cannot wait. The depth is cfg.depth when given;
 * else it adapts to the worker's last chunk: POOL_DEPTH after one that ran
 * shorter than SHORT_CHUNK_NS, 1 after a longer one, 2 before the first.
 */
static int
may_take(const struct pool *p, const struct job *job, const struct worker *w,
         long k, long count)
{
    long depth = p->cfg.depth;

    if (depth == 0)             /* adaptive, see POOL_DEPTH */
        depth = w->ran_ns < 0 ? 2 : w->ran_ns < SHORT_CHUNK_NS ? POOL_DEPTH
                                                                : 1;
    if (w->task_fd == -1 || w->nheld + k > depth ||
        (p->cfg.maxtasks > 0 && w->given + k > p->cfg.maxtasks))
        return 0;
    if (w->nheld == 0)
        return k == 1;
    return w->queued + (size_t)k * pipe_bytes(p, job, count) <= w->task_pipe;
}

/* Whether worker w may be sent one more chunk of count items now. */
static int
has_room(const struct pool *p, const struct job *job, const struct worker *w,
         long count)
{
    return may_take(p, job, w, 1, count);
}

/* Wait until fd, a task pipe, has room (or its reader is gone). Returns 0,
 * or -1 with errno set. */
static int
await_room(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};

    while (poll(&pfd, 1, -1) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

/*
 * Write a task record to w's task pipe (O_NONBLOCK). When w holds chunks
 * already (`behind`) and the pipe takes nothing, returns 1: nothing is
 * sent. Otherwise writes it all, waiting for room as long as it takes
 * (safe for an idle worker, see above; behind chunks has_room() leaves
 * nothing to wait for). Returns 0 when written, or -1 with errno set
 * (EPIPE: the worker is gone). Changes iov.
 */
static int
write_task(struct worker *w, struct iovec *iov, int iovcnt, int behind)
{
    size_t done = 0;

    iov_advance(&iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t put = writev(w->task_fd, iov, iovcnt);

        if (put == -1 && errno == EINTR)
            continue;
        if (put == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (put == -1 && behind && done == 0)
            return 1;
        if (put == -1 && await_room(w->task_fd) == -1)
            return -1;
        if (put > 0) {
            done += (size_t)put;
            iov_advance(&iov, &iovcnt, (size_t)put);
        }
    }
    return 0;
}

/* Take the next chunk to send, into *c: one to send again first, else the
 * next count items of the input. */
static void
take_chunk(struct pool *p, struct job *job, struct chunk *c)
{
    if (p->nredo > 0) {
        *c = p->redo[--p->nredo];
        return;
    }
    c->first = job->sent;
    c->count = job->n - job->sent < job->chunksize ? job->n - job->sent
                                                   : job->chunksize;
    job->sent += c->count;
}

/* Put back chunk c, just taken and not sent. */
static void
untake_chunk(struct pool *p, struct job *job, const struct chunk *c)
{
    if (c->first + c->count == job->sent && p->nredo == 0)
        job->sent = c->first;
    else
        p->redo[p->nredo++] = *c;
}

/* The items of the next chunk to send, 0 when nothing is left to send. */
static long
next_count(const struct pool *p, const struct job *job)
{
    if (p->nredo > 0)
        return p->redo[p->nredo - 1].count;
    return job->n - job->sent < job->chunksize ? job->n - job->sent
                                               : job->chunksize;
}

/*
 * The task record of chunk c as four buffers, iov[0] to iov[3], gathered
 * from where its parts are (no copy): the header, filled into *head, the
 * bound arguments, their padding, the items.
 */
static void
gather_record(const struct job *job, const struct chunk *c,
              union task_block *head, struct iovec *iov)
{
    static const unsigned char padding[sizeof(max_align_t)];
    const struct pool_func *f = job->f;

    memset(head, 0, sizeof *head);      /* no uninitialised padding sent */
    head->h = (struct task_head){.call = f->call, .first = c->first,
                                 .count = c->count, .args_size = f->args_size,
                                 .in_size = f->in_size,
                                 .out_size = f->out_size};
    iov[0] = (struct iovec){head, sizeof *head};
    iov[1] = (struct iovec){(void *)f->args, f->args_size};
    iov[2] = (struct iovec){(void *)padding,
                            ARGS_ROOM(f->args_size) - f->args_size};
    iov[3] = (struct iovec){(void *)(job->in + (size_t)c->first * f->in_size),
                            (size_t)c->count * f->in_size};
}

/* Worker w has been sent chunk c: it holds it from now on. */
static void
hold_chunk(struct worker *w, const struct chunk *c)
{
    *held(w, w->nheld) = *c;
    w->nheld++;
    w->queued += c->pipe_bytes;
    w->given++;
}

/* Worker w's newest chunk was not sent after all: back it goes. */
static void
unhold_chunk(struct pool *p, struct job *job, struct worker *w)
{
    struct chunk *c = held(w, w->nheld - 1);

    w->nheld--;
    w->queued -= c->pipe_bytes;
    w->given--;
    untake_chunk(p, job, c);
}

/*
 * Send worker w the next `max` chunks of the job, or as many as it has room
 * for (has_room()), as one write of their task records: one system call
 * for many small chunks. An idle worker is sent one chunk alone, which may
 * be big (its pipes are grown first); the write waits for room as it must
 * (see above). A worker gone (EPIPE) while idle is buried: the chunk was
 * its oldest, and fails. One gone while it holds chunks keeps them until
 * its result pipe says it has ended (its last results may still be
 * there); these chunks go back. Returns the chunks sent, or -1 when the
 * pool is broken.
 */
static long
send_chunks(struct pool *p, struct job *job, struct worker *w, long max)
{
    union task_block heads[POOL_MAX_DEPTH];
    struct iovec iov[4 * POOL_MAX_DEPTH];
    int behind = w->nheld > 0, m = 0, rc;

    for (; m < max && next_count(p, job) > 0 && (m == 0 || behind) &&
           has_room(p, job, w, next_count(p, job)); m++) {
        struct chunk c;

        take_chunk(p, job, &c);
        c.out_size = job->f->out_size;
        c.pipe_bytes = pipe_bytes(p, job, c.count);
        c.abandoned = 0;
        hold_chunk(w, &c);      /* from now on: a failed write fails it */
        gather_record(job, &c, &heads[m], &iov[4 * m]);
    }
    if (m == 0)
        return 0;
    if (!behind) {
        const struct chunk *c = held(w, 0);

        w->task_pipe = fit_pipe(w->task_fd, w->task_pipe, c->pipe_bytes);
        w->result_pipe = fit_pipe(w->result_fd, w->result_pipe,
                                  sizeof(union result_block) +
                                  (size_t)c->count * c->out_size);
    }
    if ((rc = write_task(w, iov, 4 * m, behind)) == 0)
        return m;
    if (rc == -1 && errno != EPIPE) {
        sys_error(&p->error, "write task");
        return break_pool(p);
    }
    if (rc == -1 && !behind)    /* its only chunk: it fails */
        return bury_worker(p, job, w) == -1 ? -1 : 1;
    while (m-- > 0)
        unhold_chunk(p, job, w);
    if (rc == -1) {             /* gone: its result pipe says when */
        close(w->task_fd);
        w->task_fd = -1;
    }
    return 0;
}

/*
 * Keep every worker fed. First share out the chunks left as rounds would,
 * one chunk to each worker that has room, round after round, so that the
 * chunks spread over the workers before any queues; then send each worker
 * its share in one write. Returns 0, or -1 when the pool is broken.
 */
static int
feed_workers(struct pool *p, struct job *job)
{
    long sent;

    do {
        long left = p->nredo + (job->n - job->sent + job->chunksize - 1) /
                               job->chunksize;
        long count = next_count(p, job), more;

        for (long i = 0; i < p->nworkers; i++)
            p->share[i] = 0;
        do {                    /* the shares, as rounds would give them */
            more = 0;
            for (long i = 0; i < p->nworkers && left > 0; i++) {
                if (!may_take(p, job, &p->workers[i], p->share[i] + 1, count))
                    continue;
                p->share[i]++;
                left--;
                more++;
            }
        } while (more > 0 && left > 0);
        sent = 0;
        for (long i = 0; i < p->nworkers && next_count(p, job) > 0; i++) {
            long rc;

            if (p->share[i] == 0)
                continue;
            if ((rc = send_chunks(p, job, &p->workers[i], p->share[i])) == -1)
                return -1;
            sent += rc;
        }
    } while (sent > 0 && next_count(p, job) > 0);
    return 0;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive
 * (or the worker is gone), and receive each that has. Returns at once when
 * no worker is busy. Returns 0; 1 when cancel_fd became readable
 * (POOL_ECANCELED); -1 when the pool is broken.
 */
static int
wait_results(struct pool *p, struct job *job)
{
    nfds_t n = (nfds_t)p->nworkers;
    long busy = 0;
    long long waited;

    int timeout = -1;

    for (long i = 0; i < p->nworkers; i++) {
        busy += p->workers[i].nheld > 0;
        p->pfds[i].fd = p->workers[i].nheld > 0 ? p->workers[i].result_fd
                                                : -1;   /* -1: skipped */
        p->pfds[i].events = POLLIN;
        p->pfds[i].revents = 0;
        if (p->workers[i].nheld > 0 && has_ahead(&p->workers[i]))
            timeout = 0;        /* a result is here already: no waiting */
    }
    if (busy == 0 && next_count(p, job) > 0)
        for (long i = 0; i < p->nworkers; i++)
            if (has_room(p, job, &p->workers[i], next_count(p, job)))
                return 0;       /* a send failed: feed the new worker */
    if (busy == 0) {            /* cannot happen: no result can come */
        set_error(&p->error, POOL_ESYS, -1, "lost track of items %ld to %ld",
                  job->done, job->n - 1);
        return break_pool(p);
    }
    if (p->cfg.cancel_fd > 0)
        p->pfds[n++] = (struct pollfd){.fd = p->cfg.cancel_fd,
                                       .events = POLLIN};
    waited = p->trace_fd != -1 ? now_ns() : 0;
    while (poll(p->pfds, n, timeout) == -1)
        if (errno != EINTR) {
            sys_error(&p->error, "poll");
            return break_pool(p);
        }
    if (p->trace_fd != -1)      /* no system call for a trace not asked for */
        trace_line(p, "wait %ld %lld %lld\n", (long)p->owner, waited,
                   now_ns());
    if (n > (nfds_t)p->nworkers && p->pfds[p->nworkers].revents != 0) {
        set_error(&p->error, POOL_ECANCELED, -1, "cancelled: descriptor %d "
                  "became readable", p->cfg.cancel_fd);
        return 1;
    }
    for (long i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];

        if (p->pfds[i].revents == 0 && !has_ahead(w))
            continue;
        do {                    /* every result read ahead, then the next */
            if (w->nheld > 0 && receive(p, job, w) == -1)
                return -1;
        } while (w->nheld > 0 && has_ahead(w));
    }
    return 0;
}

/* The chunks the workers hold, queued ones too, belong to a call that is
 * returning: their results will be discarded when they come. Those still
 * to send again are forgotten. */
static void
abandon_in_flight(struct pool *p)
{
    for (long i = 0; i < p->nworkers; i++)
        for (int k = 0; k < p->workers[i].nheld; k++)
            held(&p->workers[i], k)->abandoned = 1;
    p->nredo = 0;
}

/*
 * Run a job: keep every worker fed with chunks, and receive results as
 * they come, until every item is done (or each asked to stop, or the call
 * was cancelled, or the pool broke). Returns what pool_map() and
 * pool_imap_unordered() return.
 */
static int
run_job(struct pool *p, struct job *job)
{
    int waited = 0;

    p->nredo = 0;
    while (job->done < job->n && !job->stopped && waited == 0) {
        if (feed_workers(p, job) == -1)
            waited = -1;        /* the pool is broken */
        else if (job->done < job->n)
            waited = wait_results(p, job);
    }
    abandon_in_flight(p);
    if (waited != 0)
        return -1;              /* cancelled, or the pool broke */
    if (job->stopped)
        return 1;
    return p->error.kind == POOL_OK ? 0 : -1;
}

/* Check a call's arguments. Returns 0, or -1 (POOL_EINVAL). */
static int
check_call(struct pool *p, const struct pool_func *f, const void *in,
           long n, long chunksize)
{
    const char *bad = NULL;

    if (f == NULL || f->call == NULL)
        bad = "the function is NULL";
    else if (f->in_size == 0)
        bad = "in_size is 0";
    else if (f->args_size > 0 && f->args == NULL)
        bad = "args is NULL, args_size is not 0";
    else if (n < 0 || chunksize < 0)
        bad = "n and chunksize must be 0 or more";
    else if (n > 0 && in == NULL)
        bad = "the input is NULL";
    else if ((size_t)n > SIZE_MAX / 2 / f->in_size ||
             (f->out_size > 0 && (size_t)n > SIZE_MAX / 2 / f->out_size))
        bad = "the input is too big";
    if (bad == NULL)
        return 0;
    set_error(&p->error, POOL_EINVAL, -1, "%s", bad);
    return -1;
}

int
pool_map(struct pool *p, const struct pool_func *f, const void *in,
         void *out, long n, long chunksize)
{
    struct job job = {.f = f, .in = in, .ordered = 1, .out = out, .n = n,
                      .chunksize = chunksize};

    if (!usable(p, 1) || check_call(p, f, in, n, chunksize) == -1)
        return -1;
    if (n > 0 && out == NULL && f->out_size > 0) {
        set_error(&p->error, POOL_EINVAL, -1, "the output is NULL");
        return -1;
    }
    if (n == 0)
        return 0;               /* nothing to send, nothing to wait for */
    if (job.chunksize == 0)
        job.chunksize = pool_default_chunksize(n, p->nworkers);
    return run_job(p, &job);
}

int
pool_imap_unordered(struct pool *p, const struct pool_func *f,
                    const void *in, long n, long chunksize,
                    int (*each)(void *ctx, long index, const void *result),
                    void *ctx)
{
    struct job job = {.f = f, .in = in, .each = each, .ctx = ctx, .n = n,
                      .chunksize = chunksize > 0 ? chunksize : 1};

    if (!usable(p, 1) || check_call(p, f, in, n, chunksize) == -1)
        return -1;
    if (each == NULL) {
        set_error(&p->error, POOL_EINVAL, -1, "the callback is NULL");
        return -1;
    }
    if (n == 0)
        return 0;
    return run_job(p, &job);
}
