/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the pool of lessons 03 to 06, mapping functors. Workers take
 * task records from their own task pipe and send result records back on
 * their own result pipe; the parent drives them all from one poll() loop
 * and stores each result at the index its record names, so the list comes
 * out in input order. A task carries its functor by value: the workers
 * were forked before the functor was made, and see only what reaches them
 * through the pipe.
 *
 * Why it cannot deadlock: a pipe holds 65536 bytes by default on Linux
 * (pipe(7)), and a write to a full pipe blocks. The parent sends a task only
 * to an idle worker, one chunk at a time, and reads every result as soon as
 * poll() says it is there. So the parent never blocks writing a task while
 * that worker blocks writing a result: see pool_map().
 *
 * From lesson 05: no function of the parent's side exits the program, and
 * the pool has three ways out: pool_join() (wait), pool_terminate() (stop
 * now) and pool_release() (the destructor).
 *
 * New in lesson 06: a failed task becomes a struct pool_error for the
 * caller, never a hang. The parent knows which task each worker holds, so
 * when a worker's result pipe reaches end-of-file before the result (the
 * worker died), waitpid() tells how it died and the error names that task.
 * poll() waits no longer than the earliest task deadline. At the first
 * failure the map stops every worker and returns.
 *
 * New in lesson 07: the signals. The parent's handler for SIGINT and
 * SIGTERM only notes the signal and writes a byte to a self-pipe; the map
 * polls that pipe beside the result pipes, so a signal wakes it at once,
 * without a race. Workers ignore SIGINT, die of SIGTERM and read /dev/null.
 * pool_close() lets the workers finish what they hold; pool_terminate()
 * stops them: SIGTERM, then SIGKILL after a grace period.
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
#include <time.h>
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

#define REAP_TICK_MS 5          /* how often pool_terminate() looks again */

/* One map or starmap, as pool_map() and pool_starmap() hand it on. */
struct job {
    const struct functor *f;    /* what each item is given to */
    int star;                   /* 1: starmap over tuples; 0: map over x */
    const long long *items;     /* n items of ITEM_WIDTH(star) values each */
    long n;                     /* how many items */
    long chunksize;             /* items per task record */
};

/* The error pool_task_error() set for the item being worked on. Used in
 * workers only: the mapped function sets it, apply_task() reads it. */
static char task_reason[POOL_REASON_MAX];
static int task_failed;

/*
 * What the signal handler reaches: a handler gets only the signal number,
 * so these are globals, and one pool at a time may catch signals.
 */
static volatile sig_atomic_t stop_signal;  /* SIGINT or SIGTERM seen, or 0 */
static int wake_pipe[2] = {-1, -1};         /* the self-pipe: read, write */

/* ---- messages ---------------------------------------------------------- */

int
report(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

int
report_errno(const char *what)
{
    return report("%s: %s", what, strerror(errno));
}

double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);    /* cannot fail with these */
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *
pool_error_text(const struct pool_error *e, char *buf, size_t size)
{
    switch (e->kind) {
    case POOL_FAILED:
        snprintf(buf, size, "task %ld: %s", e->task, e->reason);
        break;
    case POOL_KILLED:
        snprintf(buf, size, "task %ld: worker %ld killed by signal %d (%s)",
                 e->task, (long)e->pid, e->code, strsignal(e->code));
        break;
    case POOL_EXITED:
        snprintf(buf, size, "task %ld: worker %ld exited with status %d",
                 e->task, (long)e->pid, e->code);
        break;
    case POOL_TIMED_OUT:
        snprintf(buf, size, "task %ld: worker %ld timed out after %d ms "
                 "and was killed", e->task, (long)e->pid, e->code);
        break;
    default:
        snprintf(buf, size, "the pool failed (see above)");
    }
    return buf;
}

/*
 * A worker's fatal error: the message, then _exit(1), which flushes no
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
    struct record head;
    long nvalues;
    ssize_t got;

    errno = 0;
    got = readn(fd, &head, sizeof head);
    if (got == 0)
        return 0;
    if (got != (ssize_t)sizeof head || head.count < 1)
        die_child("read task");
    nvalues = head.count * ITEM_WIDTH(head.star);
    if (nvalues > *cap) {
        struct record *bigger = realloc(*rec, RECORD_SIZE(nvalues));

        if (bigger == NULL)
            die_child("realloc");
        *rec = bigger;
        *cap = nvalues;
    }
    **rec = head;
    errno = 0;
    got = readn(fd, (*rec)->values, (size_t)nvalues * sizeof(long long));
    if (got != (ssize_t)((size_t)nvalues * sizeof(long long)))
        die_child("read task");
    return 1;
}

void
pool_task_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(task_reason, sizeof task_reason, fmt, ap);
    va_end(ap);
    task_failed = 1;
}

/*
 * Turn a task record into its result, in place: values[i] becomes the
 * result of item i. A map item is x, given to the functor (Python's
 * mapstar: f(x)); a starmap item is a tuple, unpacked into the function
 * (Python's starmapstar: fn(*t)). Item i's values sit at index i or later,
 * so writing values[i] never overwrites an item still to come. When the
 * function calls pool_task_error() on an item, the record becomes a failed
 * result: `failed` names the item, `reason` says why, and the items after
 * it are not run (Python's mapstar stops at the first exception too).
 */
static void
apply_task(struct record *rec)
{
    const struct functor *f = &rec->f;

    rec->failed = -1;
    for (long i = 0; i < rec->count; i++) {
        long long y;

        task_failed = 0;
        if (rec->star) {
            const long long *t = &rec->values[i * STAR_WIDTH];

            y = f->fn(t[0], t[1], t[2]);
        } else {
            y = functor_call(f, rec->values[i]);
        }
        if (task_failed) {
            rec->failed = rec->first + i;
            memcpy(rec->reason, task_reason, sizeof rec->reason);
            return;
        }
        rec->values[i] = y;
    }
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * turn each into its result with apply_task(), and send that back on
 * result_fd. Never returns: a worker that returned would go on running the
 * parent's code, and leave the parent's scopes, as if it were the parent.
 * End-of-file also comes when the parent dies, even of SIGKILL: the kernel
 * closes its descriptors, so an orphaned worker leaves by itself (on Linux
 * at once, in the middle of a task too: see die_with_parent()).
 */
static _Noreturn void
worker_main(int task_fd, int result_fd)
{
    struct record *rec = NULL;
    long cap = 0;

    while (read_task(task_fd, &rec, &cap) == 1) {
        apply_task(rec);        /* a result record: first and count stay */
        if (writen(result_fd, rec, RECORD_SIZE(rec->count)) == -1)
            die_child("write result");
    }
    free(rec);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/* ---- signals ----------------------------------------------------------- */

/*
 * The parent's handler for SIGINT and SIGTERM. It may call only
 * async-signal-safe functions (signal-safety(7)): it notes the signal and
 * writes one byte to the self-pipe, which wakes the map's poll(). It saves
 * and restores errno, which write() may change under the feet of the code
 * it interrupted.
 */
static void
on_stop_signal(int sig)
{
    /* TODO(07): leave a trace of sig that the map cannot miss: note it in
     * stop_signal, and put one byte (the signal number) into the self-pipe,
     * so that a poll that has not even begun yet still wakes. Call only
     * async-signal-safe functions (man 7 signal-safety); never block (a
     * full pipe wakes poll all the same); and hand errno back as you found
     * it: the code you interrupted may be about to read it. */
    (void)sig;                  /* delete this line when done */
}

int
pool_stop_signal(void)
{
    return stop_signal;
}

/* Make fd's reads and writes non-blocking. Returns 0, or -1 with errno set. */
static int
set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags == -1)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/*
 * Catch sig with on_stop_signal(), saving its action in *old; but leave it
 * ignored if it was: a shell starts the background jobs of a script with
 * SIGINT ignored, so that Ctrl-C stops only the foreground. Returns 0, or
 * -1 after a message.
 */
static int
catch_signal(int sig, struct sigaction *old)
{
    /* TODO(07): from here on, sig runs on_stop_signal in this process, and
     * *old holds the action it replaced (pool_release puts it back). A
     * signal found ignored stays ignored, *old filled in all the same. The
     * reads, writes and waits the handler interrupts must carry on by
     * themselves, never fail with EINTR; poll is never restarted (man 7
     * signal), and collect_results is ready for that. */
    (void)sig;                  /* delete these lines when done */
    (void)old;
    (void)on_stop_signal;
    return 0;
}

/*
 * Create the self-pipe, non-blocking at both ends, and catch SIGINT and
 * SIGTERM. Returns 0, or -1 after a message.
 */
static int
catch_stop_signals(struct pool *p)
{
    stop_signal = 0;
    if (pipe(wake_pipe) == -1) {
        wake_pipe[0] = wake_pipe[1] = -1;
        return report_errno("pipe");
    }
    if (set_nonblocking(wake_pipe[0]) == -1 ||
        set_nonblocking(wake_pipe[1]) == -1)
        return report_errno("fcntl");
    if (catch_signal(SIGINT, &p->old_sigint) == -1 ||
        catch_signal(SIGTERM, &p->old_sigterm) == -1)
        return -1;
    return 0;
}

/* Empty the self-pipe: its bytes have done their job, waking poll(). */
static void
drain_wake_pipe(void)
{
    unsigned char buf[64];

    while (read(wake_pipe[0], buf, sizeof buf) > 0)
        continue;               /* until EAGAIN: empty */
}

/* Close both ends of the self-pipe, if open. Returns 0, or -1 with errno
 * set when a close failed (the other end is closed all the same). */
static int
close_wake_pipe(void)
{
    int result = 0;

    for (int i = 0; i < 2; i++)
        if (wake_pipe[i] != -1) {
            if (close(wake_pipe[i]) == -1)
                result = -1;
            wake_pipe[i] = -1;
        }
    return result;
}

/*
 * In a new worker, before its first task: its signals and its stdin.
 * Ctrl-C is the parent's business: the terminal sends SIGINT to the whole
 * foreground process group, workers included, so they ignore it and the
 * parent stops them. SIGTERM must end a worker (pool_terminate() relies on
 * it): back to its default action. The self-pipe is the parent's. And stdin
 * is /dev/null: a worker that reads stdin gets end-of-file, never the keys
 * typed for the parent.
 */
static void
worker_setup(void)
{
    /* TODO(07): make the new worker what the comment above says, whatever
     * it inherited from the parent: SIGINT ignored, SIGTERM back to its
     * default action (death), no descriptor of the self-pipe, and
     * descriptor 0 reading /dev/null, with no spare descriptor left open.
     * A worker that cannot get there must not run tasks: any failure ends
     * it with die_child(), naming the call that failed. */
}

/* ---- starting and stopping -------------------------------------------- */

/*
 * In a new worker, right after fork(): make sure it does not outlive its
 * parent by more than a moment, even in the middle of a long task. On
 * Linux the kernel can send the worker SIGKILL when the parent dies
 * (PR_SET_PDEATHSIG). Mind two limits: it fires when the parent *thread*
 * that forked exits, not the process (this program has one thread); and a
 * parent that died before the call sends nothing, so the worker then looks
 * whether its parent is still `parent`. macOS has no PDEATHSIG: there the
 * worker learns of the death at its next read of the task pipe
 * (end-of-file) or write of a result (EPIPE), so it may outlive its parent
 * by up to one task.
 */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
        die_child("prctl");
    if (getppid() != parent)
        _exit(1);               /* the parent died before the prctl() */
#else
    (void)parent;               /* the pipes tell, a task later */
#endif
}

/*
 * Close the pipe ends the pool holds for workers 0 .. n-1 (the parent's
 * ends), and mark them closed. Returns 0, or -1 with errno set when a close
 * failed (the others are still closed).
 */
static int
close_pipes(struct pool *p, long n)
{
    int result = 0;

    for (long w = 0; w < n; w++) {
        struct worker *wk = &p->workers[w];

        if (wk->task_fd != -1 && close(wk->task_fd) == -1)
            result = -1;
        if (wk->result_fd != -1 && close(wk->result_fd) == -1)
            result = -1;
        wk->task_fd = wk->result_fd = -1;
    }
    return result;
}

/* In a new worker: everything between fork() and its first task. */
static _Noreturn void
worker_start(struct pool *p, long w, int task[2], int result[2],
             const sigset_t *old_mask)
{
    if (close(task[1]) == -1 ||     /* only the parent writes tasks */
        close(result[0]) == -1)     /* only the parent reads results */
        die_child("close");
    if (close_pipes(p, w) == -1)    /* an earlier worker's task pipe, */
        die_child("close");         /* left open here, would never EOF */
    if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1)
        die_child("sigaction");     /* parent gone: die quietly */
    worker_setup();
    if (sigprocmask(SIG_SETMASK, old_mask, NULL) == -1)
        die_child("sigprocmask");   /* from here on, SIGTERM may come */
    worker_main(task[0], result[1]);
}

/*
 * Fork worker number w with a task pipe and a result pipe of its own.
 * SIGINT and SIGTERM are blocked across fork(): one that came between
 * fork() and worker_setup() would run the parent's handler in the worker.
 * Blocked, it waits; once the worker ignores SIGINT, a pending SIGINT is
 * discarded, and a pending SIGTERM kills it, as it should.
 */
static int
start_worker(struct pool *p, long w)
{
    int task[2], result[2];
    sigset_t stops, old_mask;
    pid_t pid, parent = getpid();   /* for the child: see die_with_parent() */

    if (pipe(task) == -1)
        return report_errno("pipe");
    if (pipe(result) == -1) {
        report_errno("pipe");
        close(task[0]);
        close(task[1]);
        return -1;
    }
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stops, &old_mask) == -1)
        return report_errno("sigprocmask");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        report_errno("fork");
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        close(task[0]);
        close(task[1]);
        close(result[0]);
        close(result[1]);
        return -1;
    case 0:
        die_with_parent(parent);
        worker_start(p, w, task, result, &old_mask);    /* never returns */
    default:
        if (sigprocmask(SIG_SETMASK, &old_mask, NULL) == -1)
            report_errno("sigprocmask");
        p->workers[w] = (struct worker){.pid = pid, .task_fd = task[1],
                                        .result_fd = result[0]};
        p->nworkers = w + 1;
        if (close(task[0]) == -1 ||     /* only the worker reads tasks */
            close(result[1]) == -1)     /* closed here, the result pipe */
            return report_errno("close");   /* gives EOF if it dies */
    }
    return 0;
}

int
pool_start(struct pool *p, long nworkers)
{
    struct sigaction ignore;

    *p = (struct pool)POOL_INIT;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, &p->old_sigpipe) == -1)
        return report_errno("sigaction");
    p->owner = getpid();        /* from here on, pool_release() undoes it */
    p->grace_ms = POOL_GRACE_MS;
    p->workers = calloc((size_t)nworkers, sizeof *p->workers);
    p->pfds = calloc((size_t)nworkers + 1, sizeof *p->pfds);
    if (p->workers == NULL || p->pfds == NULL)
        return report_errno("calloc");
    if (catch_stop_signals(p) == -1)
        return -1;
    for (long w = 0; w < nworkers; w++)
        if (start_worker(p, w) == -1)
            return -1;
    return 0;
}

/* Reap worker w, retrying when a signal interrupts the wait; then mark it
 * reaped. Returns 0 and its status in *status, or -1 with errno set. */
static int
reap(struct worker *wk, int *status)
{
    while (waitpid(wk->pid, status, 0) == -1)
        if (errno != EINTR)
            return -1;
    wk->pid = -1;               /* its pid may now be reused: never signal it */
    return 0;
}

/* Report on stderr how worker pid ended, unless it exited with 0. */
static int
worker_failed(pid_t pid, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        report("worker %ld killed by signal %d", (long)pid, WTERMSIG(status));
    else
        report("worker %ld exited with status %d", (long)pid,
               WEXITSTATUS(status));
    return 1;
}

void
pool_close(struct pool *p)
{
    /* TODO(07): Python's close: no new tasks, yet the tasks handed out
     * still finish and their results still come back. So give each worker
     * end-of-file on its task pipe, and nothing more: its result pipe stays
     * open. Mark each end closed (nothing may close it twice) and the pool
     * closed (the map sends nothing more). A failed close is reported on
     * stderr; it is no reason to stop. */
    (void)p;                    /* delete this line when done */
}

int
pool_join(struct pool *p)
{
    int result = 0, status;

    if (close_pipes(p, p->nworkers) == -1)  /* EOF: each worker leaves */
        result = report_errno("close");
    p->closed = 1;
    for (long w = 0; w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];
        pid_t pid = wk->pid;

        if (pid == -1)
            continue;           /* reaped already */
        if (reap(wk, &status) == -1)
            result = report_errno("waitpid");
        else if (worker_failed(pid, status))
            result = -1;
    }
    return result;
}

/*
 * Send sig to every worker not yet reaped. Returns how many it was sent to.
 * A worker that has ended but is not yet reaped is a zombie: kill() still
 * finds it, and its pid cannot be reused until waitpid().
 */
static long
signal_workers(struct pool *p, int sig)
{
    long sent = 0;

    for (long w = 0; w < p->nworkers; w++)
        if (p->workers[w].pid != -1) {
            if (kill(p->workers[w].pid, sig) == -1)
                report_errno("kill");
            else
                sent++;
        }
    return sent;
}

/*
 * Whether a worker's end is one that pool_terminate() brings about: killed
 * by SIGTERM or SIGKILL; by SIGPIPE, writing a result to the pipe the
 * parent closed; or exited with status 0, at end-of-file on its task pipe.
 */
static int
ended_as_told(int status)
{
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL ||
               WTERMSIG(status) == SIGPIPE;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * Reap every worker that has ended, without waiting (WNOHANG), until none
 * is left or the clock passes until_ms (now_ms()); look again every
 * REAP_TICK_MS. A worker that ended otherwise than ended_as_told() is
 * reported. Returns how many workers are still running.
 */
static long
reap_until(struct pool *p, double until_ms)
{
    /* TODO(07): the wait with a deadline that terminate needs. Each look
     * reaps, without ever blocking, every worker that has ended, and marks
     * it reaped (its pid may be reused: it must never be signalled again).
     * Return as soon as none is left, so that no grace period is waited out
     * for nothing; at until_ms, whatever is left. A worker still running,
     * or a look a signal interrupted, counts as left; a look that fails
     * otherwise is reported, and that worker marked reaped. */
    (void)until_ms;             /* delete these lines when done */
    (void)ended_as_told;
    return p->nworkers;         /* as if no worker had ended */
}

void
pool_terminate(struct pool *p)
{
    /* TODO(07): stop every worker now, whatever it is doing, and reap each
     * one: no orphan, no zombie, and no wait that may never end. Ask first,
     * all at once, with SIGTERM (a stopped worker acts on it only once
     * continued), and close the pool's pipe ends (end-of-file, for a worker
     * that catches SIGTERM); allow p->grace_ms; then SIGKILL whoever is
     * left, added to p->killed (terminate may run more than once), and wait
     * for those: nothing can catch SIGKILL. The pool is closed afterwards. */
    (void)p;                    /* delete these lines when done */
    (void)signal_workers;
    (void)reap_until;
}

void
pool_release(struct pool *p)
{
    if (p->owner == 0)
        return;                 /* holds nothing: never started, or released */
    if (p->owner == getpid()) {
        pool_terminate(p);      /* nothing left to do after pool_join() */
        if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1 ||
            sigaction(SIGINT, &p->old_sigint, NULL) == -1 ||
            sigaction(SIGTERM, &p->old_sigterm, NULL) == -1)
            report_errno("sigaction");
        if (close_wake_pipe() == -1)
            report_errno("close");
    } else if (close_pipes(p, p->nworkers) == -1) {
        report_errno("close");  /* a forked child: its own copies only */
    }
    free(p->workers);
    free(p->pfds);
    free(p->task);
    *p = (struct pool)POOL_INIT;
}

/* ---- map -------------------------------------------------------------- */

/*
 * Send worker w the items job->items[first .. first+count-1] as one task
 * record, with the job's functor, and note that w holds them. Returns
 * count, or -1 after a message. w must be idle: it is then blocked reading
 * its task pipe, so this write ends even when the record is bigger than the
 * pipe.
 */
static long
send_chunk(struct pool *p, struct worker *w, const struct job *job,
           long first, long count)
{
    long width = ITEM_WIDTH(job->star);

    if (count * width > p->task_cap) {
        struct record *bigger = realloc(p->task, RECORD_SIZE(count * width));

        if (bigger == NULL)
            return report_errno("realloc");
        p->task = bigger;
        p->task_cap = count * width;
    }
    memset(p->task, 0, sizeof *p->task);  /* no stray bytes in the padding */
    /* The worker was forked before this functor was made: its own memory
     * holds no copy of it. So the functor travels inside the record, by
     * value: its function pointer (valid in every worker, which runs the
     * same program) and its bound arguments. */
    p->task->f = *job->f;
    p->task->star = job->star;
    p->task->first = first;
    p->task->count = count;
    memcpy(p->task->values, job->items + first * width,
           (size_t)(count * width) * sizeof(long long));
    if (writen(w->task_fd, p->task, RECORD_SIZE(count * width)) == -1) {
        if (stop_signal != 0)   /* it got the signal too: no one's fault */
            return -1;
        return report("write task to worker %ld: %s", (long)w->pid,
                      strerror(errno));     /* EPIPE: it died while idle */
    }
    w->first = first;
    w->count = count;
    w->sent_ms = now_ms();      /* its deadline counts from here */
    p->messages++;
    return count;
}

/*
 * Worker w died holding a task: its result pipe reached end-of-file before
 * the result. Reap it and describe in *err how it died. Returns -1.
 */
static int
worker_died(struct worker *w, struct pool_error *err)
{
    int status;
    pid_t pid = w->pid;

    if (reap(w, &status) == -1)
        return report_errno("waitpid");     /* *err: POOL_BROKEN */
    *err = (struct pool_error){.task = w->first, .pid = pid};
    if (WIFSIGNALED(status)) {
        err->kind = POOL_KILLED;
        err->code = WTERMSIG(status);
    } else {
        err->kind = POOL_EXITED;    /* even with status 0: no result came */
        err->code = WEXITSTATUS(status);
    }
    return -1;
}

/*
 * Read worker w's result record, which poll() says has begun to arrive (or
 * end-of-file, when w died), and store its values at out[first ..
 * first+count-1]: the index the record names, which must be the chunk w
 * holds. Marks w idle; returns count. Returns -1 with *err filled in when
 * the task failed, its worker died, or the record is broken.
 */
static long
receive_result(struct worker *w, long long *out, struct pool_error *err)
{
    struct record head;
    size_t size = (size_t)w->count * sizeof *out;
    ssize_t got = readn(w->result_fd, &head, sizeof head);

    *err = (struct pool_error){.kind = POOL_BROKEN};  /* till we know more */
    if (got == 0)
        return worker_died(w, err);
    if (got == -1)
        return report_errno("read result");
    if (got != (ssize_t)sizeof head || head.first != w->first ||
        head.count != w->count)
        return report("worker %ld sent a broken result record", (long)w->pid);
    if (head.failed >= 0) {     /* the function reported an error */
        *err = (struct pool_error){.kind = POOL_FAILED, .task = head.failed,
                                   .pid = w->pid};
        memcpy(err->reason, head.reason, sizeof err->reason);
        err->reason[sizeof err->reason - 1] = '\0';
        return -1;
    }
    if (readn(w->result_fd, out + head.first, size) != (ssize_t)size)
        return report("worker %ld's result record was cut short",
                      (long)w->pid);
    w->count = 0;
    return head.count;
}

/*
 * How long poll() may wait, in milliseconds: until the earliest deadline of
 * a busy worker's task, or for ever (-1) when tasks have no deadline.
 */
static int
poll_timeout(const struct pool *p)
{
    double now = now_ms(), wait = -1;

    if (p->timeout_ms == 0)
        return -1;
    for (long w = 0; w < p->nworkers; w++) {
        const struct worker *wk = &p->workers[w];
        double left = wk->sent_ms + (double)p->timeout_ms - now;

        if (wk->count > 0 && (wait < 0 || left < wait))
            wait = left > 0 ? left : 0;
    }
    return wait < 0 ? -1 : (int)wait + 1;   /* + 1: never wake up too soon */
}

/* Whether failure a is the one to report rather than b: a task's failure
 * rather than a broken pool, and of two tasks the one that comes first. */
static int
comes_first(const struct pool_error *a, const struct pool_error *b)
{
    return a->kind != POOL_BROKEN &&
           (b->kind == POOL_BROKEN || a->task < b->task);
}

/*
 * Kill (SIGKILL: it may be stuck anywhere) and reap the busy worker whose
 * task has run longest, when that is past the deadline, and describe it in
 * *err. Returns -1 when it did, 0 when no task is late yet.
 */
static int
expire_late_task(struct pool *p, struct pool_error *err)
{
    struct worker *late = NULL;
    double now = now_ms();
    int status;

    for (long w = 0; w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];

        if (wk->count > 0 && now - wk->sent_ms >= (double)p->timeout_ms &&
            (late == NULL || wk->sent_ms < late->sent_ms))
            late = wk;
    }
    if (late == NULL)
        return 0;
    *err = (struct pool_error){.kind = POOL_TIMED_OUT, .task = late->first,
                               .pid = late->pid, .code = (int)p->timeout_ms};
    if (kill(late->pid, SIGKILL) == -1 || reap(late, &status) == -1) {
        err->kind = POOL_BROKEN;
        return report_errno("kill or waitpid");
    }
    return -1;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive, or
 * its worker has died, or a task's deadline has passed, or a stop signal
 * has come; then receive every result that has arrived, adding them to
 * p->received and handing each to p->on_result. Returns how many items
 * came back; -1 with the failure in *err (of failures seen at once, the one
 * of the lowest task); POOL_INTERRUPTED; or POOL_STOPPED.
 * The flag is read before poll(), the self-pipe watched during it: a
 * signal that comes between the two still wakes poll().
 */
static long
collect_results(struct pool *p, long long *out, struct pool_error *err)
{
    long busy = 0, items = 0, got;
    int ready, failed = 0;
    struct pool_error e;
    struct pollfd *wake = &p->pfds[p->nworkers];

    for (long w = 0; w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];

        p->pfds[w].fd = wk->count > 0 ? wk->result_fd : -1; /* -1: skipped */
        p->pfds[w].events = POLLIN;
        busy += wk->count > 0;
    }
    err->kind = POOL_BROKEN;
    if (busy == 0)              /* poll() would wait for a signal only */
        return report("no worker holds a chunk, yet results are missing");
    *wake = (struct pollfd){.fd = -1, .events = POLLIN};    /* -1: skipped */
    /* TODO(07): let a stop signal wake this wait: the self-pipe goes into
     * the poll set, beside the result pipes (the code after poll stops the
     * map when its byte is there). A stop noted already needs no wait (its
     * byte may be gone, read by an earlier wait): return POOL_INTERRUPTED.
     * Test that last thing before poll: a signal after the test still
     * leaves its byte for poll to find. */
    while ((ready = poll(p->pfds, (nfds_t)p->nworkers + 1,
                         poll_timeout(p))) == -1)
        if (errno != EINTR)     /* EINTR: the handler ran; the pipe says so */
            return report_errno("poll");
    if (wake->revents != 0) {
        drain_wake_pipe();
        return POOL_INTERRUPTED;
    }
    if (ready == 0)             /* a deadline passed */
        return expire_late_task(p, err);
    for (long w = 0; w < p->nworkers; w++) {
        struct worker *wk = &p->workers[w];
        long first = wk->first;

        if (p->pfds[w].revents == 0)
            continue;           /* POLLIN; or POLLHUP: the worker is gone */
        if ((got = receive_result(wk, out, &e)) == -1) {
            if (!failed++ || comes_first(&e, err))
                *err = e;
            continue;
        }
        items += got;
        p->received += got;
        if (p->on_result != NULL &&
            p->on_result(p->on_result_ctx, out, first, got) == -1)
            return POOL_STOPPED;
    }
    if (failed && stop_signal != 0)     /* a signal to the whole group */
        return POOL_INTERRUPTED;        /* ended workers: not a failure */
    return failed ? -1 : items;
}

/* Stop every worker and mark the pool broken, after a failed map. Returns
 * -1. */
static int
stop_map(struct pool *p)
{
    pool_terminate(p);
    p->broken = 1;
    return -1;
}

/*
 * The loop that cannot deadlock, from lesson 03. Give every idle worker the
 * next chunk, unless the pool is closed; then wait for results and store
 * them. A worker holds at most one chunk, and the parent reads its result
 * before it sends the next one, so neither side ever waits for the other to
 * make room in a full pipe. At the first failure, stop every worker
 * (throwing away the tasks they hold) and break the pool. Returns 0, or -1
 * with the failure in *err; or, the workers left as they are, what
 * collect_results() returned: POOL_INTERRUPTED or POOL_STOPPED.
 */
static int
run_job(struct pool *p, const struct job *job, long long *out,
        struct pool_error *err)
{
    long got;

    *err = (struct pool_error){.kind = POOL_BROKEN};
    p->sent = p->received = 0;
    if (p->broken)
        return report("the pool is broken: an earlier map failed");
    while (p->received < p->sent || (p->sent < job->n && !p->closed)) {
        for (long w = 0; w < p->nworkers && p->sent < job->n && !p->closed;
             w++)
            if (p->workers[w].count == 0) {     /* idle */
                long left = job->n - p->sent;
                long count = left < job->chunksize ? left : job->chunksize;

                if (send_chunk(p, &p->workers[w], job, p->sent, count) == -1)
                    return stop_signal != 0 ? POOL_INTERRUPTED : stop_map(p);
                p->sent += count;
            }
        if ((got = collect_results(p, out, err)) == -1)
            return stop_map(p);
        if (got < 0)
            return (int)got;    /* the caller decides what comes next */
    }
    return 0;
}

int
pool_map(struct pool *p, const struct functor *f, const long long *xs,
         long n, long long *out, struct pool_error *err)
{
    /* One item per task, as ProcessPoolExecutor.map by default: a worker
     * that dies then takes exactly one task with it, the one to name. */
    struct job job = {.f = f, .star = 0, .items = xs, .n = n,
                      .chunksize = 1};

    return run_job(p, &job, out, err);
}

int
pool_starmap(struct pool *p,
             long long (*fn)(long long, long long, long long),
             const long long *args, long n, long long *out,
             struct pool_error *err)
{
    /* starmap's function takes all its arguments from the tuples: a functor
     * with nothing bound (the bound slots go unused). */
    struct functor bare = functor_make(fn, 0, 0);
    struct job job = {.f = &bare, .star = 1, .items = args, .n = n,
                      .chunksize = 1};

    return run_job(p, &job, out, err);
}
