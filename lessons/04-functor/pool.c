/* SPDX-License-Identifier: MIT */
/*
 * pool.c: lesson 03's pool, mapping functors. Workers take task records
 * from their own task pipe and send result records back on their own result
 * pipe; the parent drives them all from one poll() loop and stores each
 * result at the index its record names, so the list comes out in input
 * order. A task carries its functor by value: the workers were forked before
 * the functor was made, and see only what reaches them through the pipe.
 *
 * Why it cannot deadlock: a pipe holds 65536 bytes by default on Linux
 * (pipe(7)), and a write to a full pipe blocks. The parent sends a task only
 * to an idle worker, one chunk at a time, and reads every result as soon as
 * poll() says it is there. So the parent never blocks writing a task while
 * that worker blocks writing a result: see pool_map().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "pool.h"

/* Bytes in a record of `count` values, header included. */
#define RECORD_SIZE(count) (sizeof(struct record) + \
                            (size_t)(count) * sizeof(long long))

/* Values per item in a task record: a tuple for starmap, one x for map. */
#define ITEM_WIDTH(star) ((star) ? STAR_WIDTH : 1)

/* One map or starmap, as pool_map() and pool_starmap() hand it on. */
struct job {
    const struct functor *f;    /* what each item is given to */
    int star;                   /* 1: starmap over tuples; 0: map over x */
    const long long *items;     /* n items of ITEM_WIDTH(star) values each */
    long n;                     /* how many items */
    long chunksize;             /* items per task record */
};

/* ---- messages ---------------------------------------------------------- */

static struct pool *live_pool;  /* the started pool, for leave() */
static pid_t parent_pid;        /* the process that started it */

/*
 * Exit 1 after a fatal error. In the parent, first stop the pool: close its
 * pipes, send every worker SIGKILL and reap them all, so that no worker
 * outlives the program (not even one in the middle of a long task, or
 * stopped: a stopped process acts on no other signal until SIGCONT) and no
 * zombie is left. The work they hold is lost anyway, and the message before
 * this said what went wrong: nothing more is reported. In a worker, just
 * _exit(1).
 * SIMPLIFICATION: errors here are not checked, the program is failing
 * anyway; lesson 05 gives every exit path its own clean-up.
 */
static _Noreturn void
leave(void)
{
    struct pool *p = live_pool;

    if (p != NULL && getpid() != parent_pid)
        _exit(1);               /* a worker: flush no inherited buffer */
    live_pool = NULL;
    for (long w = 0; p != NULL && w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];

        if (wk->task_fd != -1) {
            (void)close(wk->task_fd);   /* ignored: see SIMPLIFICATION */
            (void)close(wk->result_fd);
        }
        if (wk->pid > 0)        /* -1: reaped already, never signal it */
            (void)kill(wk->pid, SIGKILL);   /* ignored: as close() */
    }
    for (long w = 0; p != NULL && w < p->nworkers; w++)
        while (p->workers[w].pid > 0 &&
               waitpid(p->workers[w].pid, NULL, 0) == -1 && errno == EINTR)
            continue;
    exit(1);
}

_Noreturn void
die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", progname, what, strerror(errno));
    leave();
}

_Noreturn void
fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    leave();
}

/*
 * die() for a worker: the same message, then _exit(1), which flushes no
 * stdio buffer inherited from the parent and runs no atexit() handler.
 */
static _Noreturn void
die_child(const char *what)
{
    fprintf(stderr, "%s: worker %ld: %s: %s\n", progname, (long)getpid(),
            what, errno != 0 ? strerror(errno) : "record cut short");
    _exit(1);
}

/* ---- whole reads and writes ------------------------------------------- */

/*
 * Read exactly n bytes from fd into buf, unless end-of-file comes first.
 * Retries reads interrupted by a signal. Returns n; or fewer, down to 0, when
 * end-of-file came first; or -1 with errno set on an error.
 */
static ssize_t
readn(int fd, void *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t got = read(fd, (char *)buf + done, n - done);

        if (got == 0)
            break;              /* end-of-file: every write end is closed */
        if (got == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)got;    /* a pipe may give fewer bytes than asked */
    }
    return (ssize_t)done;
}

/*
 * Write all n bytes of buf to fd. Retries writes interrupted by a signal and
 * carries on after short writes. Returns n, or -1 with errno set.
 */
static ssize_t
writen(int fd, const void *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t put = write(fd, (const char *)buf + done, n - done);

        if (put == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)put;
    }
    return (ssize_t)n;
}

/* ---- the worker ------------------------------------------------------- */

/*
 * Read one task record from fd into *rec, growing *rec (which holds *cap
 * values) when the record is bigger. Returns 1 for a record, 0 for
 * end-of-file before its first byte (no more work). A record cut short or a
 * read error ends the worker.
 */
static int
read_task(int fd, struct record **rec, long *cap)
{
    /* TODO(04): decode one task record into *rec: its fixed-size header
     * first, which says how many items follow (one value each for map, a
     * whole tuple each for starmap), then those values, right after the
     * header, in a buffer grown to hold them. End-of-file before the first
     * byte is the normal end (return 0); a record cut short, a count below
     * 1 or a failed read is not: the worker ends with one line. */
    (void)fd;
    (void)rec;
    (void)cap;
    return 0;
}

/*
 * Turn a task record into its result, in place: values[i] becomes the
 * result of item i. A map item is x, given to the functor (Python's
 * mapstar: f(x)); a starmap item is a tuple, unpacked into the function
 * (Python's starmapstar: fn(*t)). Item i's values sit at index i or later,
 * so writing values[i] never overwrites an item still to come.
 */
static void
apply_task(struct record *rec)
{
    /* TODO(04): replace each item by its result, in place: a map item is x,
     * given to the record's functor; a starmap item is a tuple, all three
     * of its values given to the functor's function (nothing bound). The
     * functor is the copy inside the record, unless the record names one
     * by its address (-b, the bug on purpose): then the one at that
     * address, whatever this worker's memory holds there. */
    (void)rec;
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * turn each into its result with apply_task(), and send that back on
 * result_fd. Never returns.
 */
static _Noreturn void
worker_main(int task_fd, int result_fd)
{
    struct record *rec = NULL;
    long cap = 0;

    /* TODO(04): serve task records until there are no more: turn each into
     * its result and send it back whole, as one record (first and count
     * unchanged: the parent checks them). A result that cannot be written
     * ends the worker with one line, the way a worker ends. */
    (void)task_fd;
    (void)result_fd;
    (void)cap;
    (void)read_task;
    (void)apply_task;
    (void)writen;
    free(rec);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/* ---- starting and stopping -------------------------------------------- */

/*
 * Close, in a new worker, the parent's ends of the pipes of the workers
 * started before it (0 .. w-1). A write end left open here would keep that
 * worker from ever seeing end-of-file on its task pipe.
 */
static void
close_siblings(const struct pool *p, long w)
{
    for (long i = 0; i < w; i++)
        if (close(p->workers[i].task_fd) == -1 ||
            close(p->workers[i].result_fd) == -1)
            die_child("close");
}

/*
 * In a new worker, right after fork(): make sure that it does not outlive
 * its parent, whose pid (saved before the fork) is `parent`. On Linux the
 * kernel sends the worker SIGKILL when the parent dies (PR_SET_PDEATHSIG:
 * strictly, when the parent *thread* that forked it ends; these programs
 * have one thread). A parent that died before the prctl() call sends
 * nothing, but then the worker has another parent already (getppid()):
 * it leaves at once. Elsewhere, macOS for one, there is no PDEATHSIG: the
 * worker learns of the death at its next read of the task pipe (end-of-file)
 * or write of a result (EPIPE), so it may outlive the parent by one task.
 */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL) == -1)
        die_child("prctl");
    if (getppid() != parent)
        _exit(1);               /* the parent is gone already */
#else
    (void)parent;
#endif
}

/* Fork worker number w with a task pipe and a result pipe of its own. */
static void
start_worker(struct pool *p, long w)
{
    int task[2], result[2];
    pid_t parent = getpid();    /* for die_with_parent(), in the worker */
    pid_t pid;

    if (pipe(task) == -1 || pipe(result) == -1)
        die("pipe");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        die("fork");
    case 0:
        die_with_parent(parent);
        if (close(task[1]) == -1 ||     /* only the parent writes tasks */
            close(result[0]) == -1)     /* only the parent reads results */
            die_child("close");
        close_siblings(p, w);
        /* SIGPIPE's old action back: should the parent go, die quietly */
        if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1)
            die_child("sigaction");
        worker_main(task[0], result[1]);
    default:
        if (close(task[0]) == -1 ||     /* only the worker reads tasks */
            close(result[1]) == -1)     /* closed here, the result pipe */
            die("close");               /* gives EOF when the worker dies */
        p->workers[w] = (struct worker){.pid = pid, .task_fd = task[1],
                                        .result_fd = result[0]};
        p->nworkers = w + 1;
    }
}

void
pool_start(struct pool *p, long nworkers)
{
    struct sigaction ignore;

    *p = (struct pool){.nworkers = 0};
    p->workers = calloc((size_t)nworkers, sizeof *p->workers);
    p->pfds = calloc((size_t)nworkers, sizeof *p->pfds);
    if (p->workers == NULL || p->pfds == NULL)
        die("calloc");
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, &p->old_sigpipe) == -1)
        die("sigaction");
    live_pool = p;
    parent_pid = getpid();
    for (long w = 0; w < nworkers; w++)
        start_worker(p, w);
}

/*
 * Report on stderr how worker pid ended, unless it exited with 0. Returns 1
 * when it did not exit with 0, else 0.
 */
static int
worker_failed(pid_t pid, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: worker %ld killed by signal %d\n", progname,
                (long)pid, WTERMSIG(status));
    else
        fprintf(stderr, "%s: worker %ld exited with status %d\n", progname,
                (long)pid, WEXITSTATUS(status));
    return 1;
}

int
pool_stop(struct pool *p)
{
    int result = 0, status;

    for (long w = 0; w < p->nworkers; w++) {    /* EOF: each one leaves */
        struct worker *wk = &p->workers[w];

        if (close(wk->task_fd) == -1 || close(wk->result_fd) == -1)
            die("close");
        wk->task_fd = wk->result_fd = -1;
    }
    for (long w = 0; w < p->nworkers; w++) {
        while (waitpid(p->workers[w].pid, &status, 0) == -1)
            if (errno != EINTR)
                die("waitpid");
        result |= worker_failed(p->workers[w].pid, status);
        p->workers[w].pid = -1;
    }
    live_pool = NULL;
    if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1)
        die("sigaction");
    free(p->workers);
    free(p->pfds);
    free(p->task);
    *p = (struct pool){.nworkers = 0};
    return result;
}

/* ---- map -------------------------------------------------------------- */

/*
 * Send worker w the items job->items[first .. first+count-1] as one task
 * record, with the job's functor, and note that w holds them. Returns
 * count. w must be idle: it is then blocked reading its task pipe, so this
 * write ends even when the record is bigger than the pipe.
 */
static long
send_chunk(struct pool *p, struct worker *w, const struct job *job,
           long first, long count)
{
    /* TODO(04): make sure p->task has room for count items of this job
     * (p->task_cap counts values; a starmap item is a whole tuple: see the
     * width macro at the top of the file). */
    /* TODO(04): encode the chunk as one task record in p->task: every byte
     * of the header set, padding too (no stray memory goes down a pipe);
     * the functor itself, by value (the worker was forked before it was
     * made); with -b (p->by_pointer) its address as well. Send the record
     * whole: a worker that cannot be written to has gone, end the program.
     * Then note w's chunk and count the message; return count. */
    (void)p;
    (void)w;
    (void)job;
    (void)first;
    (void)count;
    return 0;
}

/*
 * Worker w's result pipe met end-of-file before the chunk it holds came
 * back: the worker has exited or is exiting, as it holds the only write
 * end. End it for certain (SIGKILL changes nothing for a process that
 * exits: its status is set), reap it, and end the program with one line
 * that says how it ended and which items are lost.
 */
static _Noreturn void
fail_lost_chunk(struct worker *w)
{
    int status;
    pid_t pid = w->pid;

    (void)kill(pid, SIGKILL);   /* ignored: it may be a zombie already */
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            die("waitpid");
    w->pid = -1;                /* reaped: leave() must not wait for it */
    if (WIFSIGNALED(status))
        fail("worker %ld killed by signal %d before sending the results for items %ld to %ld",
             (long)pid, WTERMSIG(status), w->first, w->first + w->count - 1);
    fail("worker %ld exited with status %d before sending the results for items %ld to %ld",
         (long)pid, WEXITSTATUS(status), w->first, w->first + w->count - 1);
}

/*
 * Read worker w's result record, which poll() says has begun to arrive, and
 * store its values at out[first .. first+count-1]: the index the record
 * names, which must be the chunk w holds. Marks w idle; returns count.
 * SIMPLIFICATION: a worker that dies ends the program; lesson 06 reports
 * the task it held instead.
 */
static long
receive_result(struct worker *w, long long *out)
{
    struct record head;
    size_t size = (size_t)w->count * sizeof *out;
    ssize_t got = readn(w->result_fd, &head, sizeof head);

    if (got == -1)
        die("read result");
    if (got == 0)
        fail_lost_chunk(w);     /* end-of-file: the worker has gone */
    if (got != (ssize_t)sizeof head || head.first != w->first ||
        head.count != w->count)
        fail("worker %ld sent a broken result record", (long)w->pid);
    if (readn(w->result_fd, out + head.first, size) != (ssize_t)size)
        fail("worker %ld's result record was cut short", (long)w->pid);
    w->count = 0;
    return head.count;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive,
 * then receive every result that has. Returns how many items came back.
 */
static long
collect_results(struct pool *p, long long *out)
{
    long busy = 0, items = 0;

    for (long w = 0; w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];

        p->pfds[w].fd = wk->count > 0 ? wk->result_fd : -1; /* -1: skipped */
        p->pfds[w].events = POLLIN;
        busy += wk->count > 0;
    }
    if (busy == 0)              /* poll() would wait for ever */
        fail("no worker holds a chunk, yet results are missing");
    while (poll(p->pfds, (nfds_t)p->nworkers, -1) == -1)
        if (errno != EINTR)
            die("poll");
    for (long w = 0; w < p->nworkers; w++) {
        long got;

        if (p->pfds[w].revents == 0)
            continue;           /* POLLIN; or POLLHUP: the worker is gone */
        got = receive_result(&p->workers[w], out);
        if (got < 1)            /* else poll() reports the same record again */
            fail("no result read from worker %ld", (long)p->workers[w].pid);
        items += got;
    }
    return items;
}

long
default_chunksize(long n, long nworkers)
{
    if (n == 0)
        return 0;               /* Python: an empty map sends nothing */
    return (n + 4 * nworkers - 1) / (4 * nworkers);     /* ceil(n / 4w) */
}

/*
 * The loop that cannot deadlock, from lesson 03. Give every idle worker the
 * next chunk; then wait for results and store them. A worker holds at most
 * one chunk, and the parent reads its result before it sends the next one,
 * so neither side ever waits for the other to make room in a full pipe.
 */
static void
run_job(struct pool *p, const struct job *job, long long *out)
{
    long sent = 0, received = 0;

    while (received < job->n) {
        for (long w = 0; w < p->nworkers && sent < job->n; w++)
            if (p->workers[w].count == 0) {     /* idle */
                long left = job->n - sent;
                long count = left < job->chunksize ? left : job->chunksize;

                sent += send_chunk(p, &p->workers[w], job, sent, count);
            }
        received += collect_results(p, out);
    }
}

void
pool_map(struct pool *p, const struct functor *f, const long long *xs,
         long n, long long *out)
{
    /* TODO(04): hand lesson 03's loop (run_job, given above) the n x values
     * as one map job (struct job, at the top): its functor f, and Python's
     * default chunksize for n items on this pool. */
    (void)p;
    (void)f;
    (void)xs;
    (void)n;
    (void)out;
    (void)run_job;
}

void
pool_starmap(struct pool *p,
             long long (*fn)(long long, long long, long long),
             const long long *args, long n, long long *out)
{
    /* TODO(04): the same loop over n tuples as a starmap job. A job carries
     * a functor: here one that holds fn and binds nothing, since each tuple
     * brings all three arguments. */
    (void)p;
    (void)fn;
    (void)args;
    (void)n;
    (void)out;
}
