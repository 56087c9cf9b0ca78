/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the pool behind map.c. Workers take task records from their own
 * task pipe and send result records back on their own result pipe; the
 * parent drives them all from one poll() loop and stores each result at the
 * index its record names, so the list comes out in input order.
 *
 * Why it cannot deadlock: a pipe holds 65536 bytes by default on Linux
 * (pipe(7)), and a write to a full pipe blocks. The parent sends a task only
 * to an idle worker, one chunk at a time, and reads every result as soon as
 * poll() says it is there. So the parent never blocks writing a task while
 * that worker blocks writing a result: see pool_map().
 */
#include <errno.h>
#include <fcntl.h>
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
#include "trace.h"

/* Bytes in a record of `count` values, header included. */
#define RECORD_SIZE(count) (sizeof(struct record) + \
                            (size_t)(count) * sizeof(long long))

/* ---- messages ---------------------------------------------------------- */

static struct pool *live_pool;  /* the started pool, for leave() */
static pid_t parent_pid;        /* the process that started it */

/*
 * Exit 1 after a fatal error, whose one line is already on stderr. In the
 * parent, first end every worker not yet reaped and reap it: no worker
 * outlives the program, no zombie is left. SIGKILL, since the program
 * fails anyway and a worker's chunk is lost with it: a worker stopped by
 * SIGSTOP would see neither end-of-file nor SIGTERM until continued, and
 * SIGKILL ends a stopped process too. In a worker, just _exit(1).
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
        if (wk->pid <= 0)
            continue;           /* -1: reaped already (0 would be the group) */
        (void)kill(wk->pid, SIGKILL);   /* ignored: it may be a zombie */
        while (waitpid(wk->pid, NULL, 0) == -1 && errno == EINTR)
            continue;
    }
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
    /* TODO(03): fill all n bytes of buf from fd, however the pipe splits
     * them: a read may return fewer bytes than asked at any time, and a
     * signal may interrupt it before any arrive (try again then). End-of-file
     * before n bytes is no error: return the count read so far (0 if none),
     * so the caller can tell "no more records" from "a record cut short".
     * Any other error: -1, errno as the failed call left it. */
    (void)fd;
    (void)buf;
    (void)n;
    errno = ENOSYS;             /* a stub: "Function not implemented" */
    return -1;
}

/*
 * Write all n bytes of buf to fd. Retries writes interrupted by a signal and
 * carries on after short writes. Returns n, or -1 with errno set.
 */
static ssize_t
writen(int fd, const void *buf, size_t n)
{
    /* TODO(03): put all n bytes of buf into fd: a write to a pipe may take
     * only part of them (a signal arriving mid-way), or be interrupted before
     * taking any (try again then). Return n once every byte is written, or
     * -1 on an error (EPIPE: no reader is left), errno as the call left it. */
    (void)fd;
    (void)buf;
    (void)n;
    errno = ENOSYS;             /* a stub: "Function not implemented" */
    return -1;
}

/* ---- the worker ------------------------------------------------------- */

/* The chunk a worker has in hand, for make trace (see trace.h). */
static long chunk_first;        /* its first item */
static long chunk_count;        /* how many items; 0 before the first */
static long long chunk_start;   /* when its task record had been read */

/*
 * Read one task record from fd into *rec, growing *rec (which holds *cap
 * values) when the record is bigger. Returns 1 for a record, 0 for
 * end-of-file before its first byte (no more work). A record cut short or a
 * read error ends the worker. For make trace, it also records the chunk the
 * worker had in hand: a worker asks for the next task only once it has sent
 * the last result, so that chunk's work ends here.
 */
static int
read_task(int fd, struct record **rec, long *cap)
{
    struct record head;
    ssize_t got;

    if (chunk_count > 0)
        trace_task(chunk_first, chunk_count, chunk_start, trace_now());
    errno = 0;
    got = readn(fd, &head, sizeof head);
    if (got == 0)
        return 0;
    if (got != (ssize_t)sizeof head || head.count < 1)
        die_child("read task");
    if (head.count > *cap) {
        struct record *bigger = realloc(*rec, RECORD_SIZE(head.count));

        if (bigger == NULL)
            die_child("realloc");
        *rec = bigger;
        *cap = head.count;
    }
    **rec = head;
    errno = 0;
    got = readn(fd, (*rec)->values, (size_t)head.count * sizeof(long long));
    if (got != (ssize_t)((size_t)head.count * sizeof(long long)))
        die_child("read task");
    chunk_first = head.first;
    chunk_count = head.count;
    chunk_start = trace_now();
    return 1;
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * apply each record's function to its values, and send the record back on
 * result_fd as the result. Never returns.
 */
static _Noreturn void
worker_main(int task_fd, int result_fd)
{
    struct record *rec = NULL;
    long cap = 0;

    /* TODO(03): serve task records until there are no more (end-of-file:
     * the parent closed the task pipe). Each result is the task's record
     * with every value replaced by the record's function of it and no
     * function (NULL), sent back whole in one piece: the parent reads a
     * result only as a whole record. A result that cannot be written ends
     * the worker with one line, the way a worker ends (see above). */
    (void)task_fd;
    (void)result_fd;
    (void)cap;
    (void)read_task;
    free(rec);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/* ---- starting and stopping -------------------------------------------- */

/*
 * Make sure descriptors 0, 1 and 2 are open before the pool makes any of
 * its own (daemon hygiene): started with one closed (`map 5 >&-`), the
 * program would get that number back from pipe() or open(), and its list
 * would go into a pipe or the POOL_TRACE file. Each closed one gets
 * /dev/null, read-only (open() returns the lowest free number, so fd
 * itself), and a write to a stdout that was closed still fails (EBADF).
 * Exits 1 on failure.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", O_RDONLY) == -1)
            die("/dev/null");
}

/*
 * In a new worker, right after fork() (lesson 07 explains it): make sure
 * it does not outlive the parent, which it would by the rest of its task.
 * On Linux the kernel sends it SIGKILL when the parent dies; mind that
 * PR_SET_PDEATHSIG fires when the parent *thread* that forked exits (this
 * program has one). A parent that died before the call sends nothing, so
 * the worker compares getppid() with `parent`, the pid saved before
 * fork(), and leaves at once if they differ. macOS has no PDEATHSIG: there
 * a worker learns of it at its next pipe read (end-of-file) or write
 * (EPIPE), and may outlive the parent by up to one task.
 */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
    /* ignored: it fails only for a signal number that is not valid */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
#else
    (void)parent;
#endif
}

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

/* Fork worker number w with a task pipe and a result pipe of its own. */
static void
start_worker(struct pool *p, long w)
{
    int task[2], result[2];
    pid_t pid;

    if (pipe(task) == -1 || pipe(result) == -1)
        die("pipe");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        die("fork");
    case 0:
        die_with_parent(parent_pid);
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

    open_standard_fds();
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
    trace_open(progname);       /* before the forks: every worker inherits it */
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
 * Send worker w the chunk xs[first .. first+count-1] as one task record, and
 * note that w holds it. Returns count. w must be idle: it is then blocked
 * reading its task pipe, so this write ends even when the record is bigger
 * than the pipe.
 */
static long
send_chunk(struct pool *p, struct worker *w, long long (*fn)(long long),
           const long long *xs, long first, long count)
{
    if (count > p->task_cap) {
        struct record *bigger = realloc(p->task, RECORD_SIZE(count));

        if (bigger == NULL)
            die("realloc");
        p->task = bigger;
        p->task_cap = count;
    }
    /* fn means the same in every worker: fork() copied the program whole,
     * every function at the same address (lesson 04 says more). */
    /* TODO(03): send w one task record in p->task (it has room for count
     * values): the function, where the chunk starts in the whole input, how
     * many items, then the items themselves. A worker that cannot be
     * written to has gone: end the program with one line. Then note what w
     * now holds (its first item and count: a busy worker), and count the
     * record in p->messages, for -v. Return how many items were sent. */
    (void)w;
    (void)fn;
    (void)xs;
    (void)first;
    (void)writen;
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
    /* TODO(03): read w's whole result record and store its values at the
     * index it names, out[first] onwards, whatever order records come in.
     * End-of-file before the header: w has gone (the lost-chunk report
     * above ends the program). A header that is not the chunk w holds, or
     * values cut short: end the program with one line naming w. Then w is
     * idle again. Return how many values were stored. */
    (void)w;
    (void)out;
    (void)fail_lost_chunk;
    return 0;
}

/*
 * Whether busy worker w holds a chunk that comes after the chunk of another
 * busy worker: if its result arrives now, it overtakes an earlier one. For -v.
 */
static int
overtakes(const struct pool *p, const struct worker *w)
{
    for (long i = 0; i < p->nworkers; i++)
        if (p->workers[i].count > 0 && p->workers[i].first < w->first)
            return 1;
    return 0;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive,
 * then receive every result that has. Returns how many items came back.
 */
static long
collect_results(struct pool *p, long long *out)
{
    /* TODO(03): sleep until a result from at least one busy worker, any of
     * them, begins to arrive, then receive every result that has. Idle
     * workers are left out; with none busy the wait never ends: fail. A
     * signal may cut the wait short. Record the wait for make trace
     * (trace.h); for -v, count in p->early the results that overtake an
     * earlier chunk (the helper above tells). Return the items that came. */
    (void)p;
    (void)out;
    (void)receive_result;
    (void)overtakes;
    return 0;
}

long
default_chunksize(long n, long nworkers)
{
    /* TODO(03): Python's rule: n / (4 * nworkers) rounded up, in whole
     * numbers (no floating point), and 0 for an empty input. */
    (void)nworkers;
    return n > 0 ? 1 : 0;
}

/*
 * The loop that cannot deadlock. Give every idle worker the next chunk;
 * then wait for results and store them. A worker holds at most one chunk,
 * and the parent reads its result before it sends the next one, so neither
 * side ever waits for the other to make room in a full pipe.
 */
void
pool_map(struct pool *p, long long (*fn)(long long), const long long *xs,
         long n, long long *out, long chunksize)
{
    /* TODO(03): until every item's result is stored, give each idle worker
     * the next chunk (chunksize items, fewer at the end), then collect what
     * comes back. A worker never holds two chunks: while it blocks writing a
     * result into a full pipe, a second task written to it could fill its
     * task pipe too, and both sides would wait for ever. */
    (void)p;
    (void)fn;
    (void)xs;
    (void)n;
    (void)out;
    (void)chunksize;
    (void)send_chunk;
    (void)collect_results;
}
