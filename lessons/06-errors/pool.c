/* SPDX-License-Identifier: MIT */
/*
 * pool.c: lesson 05's pool, mapping functors. Workers take task records
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
        /* TODO(06): a function that failed (it said so through the
         * worker's task_failed and task_reason) ends the task here: the
         * record goes back as a failed result that names this item by its
         * index in the whole input and carries the reason, and no later
         * item of the task is run. */
        rec->values[i] = y;
    }
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * turn each into its result with apply_task(), and send that back on
 * result_fd. Never returns: a worker that returned would go on running the
 * parent's code, and leave the parent's scopes, as if it were the parent.
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

/* ---- starting and stopping -------------------------------------------- */

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
static int
start_worker(struct pool *p, long w)
{
    int task[2], result[2];
    pid_t parent = getpid();    /* for die_with_parent(), in the worker */
    pid_t pid;

    if (pipe(task) == -1)
        return report_errno("pipe");
    if (pipe(result) == -1) {
        report_errno("pipe");
        close(task[0]);
        close(task[1]);
        return -1;
    }
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        report_errno("fork");
        close(task[0]);
        close(task[1]);
        close(result[0]);
        close(result[1]);
        return -1;
    case 0:
        die_with_parent(parent);
        if (close(task[1]) == -1 ||     /* only the parent writes tasks */
            close(result[0]) == -1)     /* only the parent reads results */
            die_child("close");
        if (close_pipes(p, w) == -1)    /* an earlier worker's task pipe, */
            die_child("close");         /* left open here, would never EOF */
        if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1)
            die_child("sigaction");     /* parent gone: die quietly */
        worker_main(task[0], result[1]);
    default:
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
    p->workers = calloc((size_t)nworkers, sizeof *p->workers);
    p->pfds = calloc((size_t)nworkers, sizeof *p->pfds);
    if (p->workers == NULL || p->pfds == NULL)
        return report_errno("calloc");
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

int
pool_join(struct pool *p)
{
    int result = 0, status;

    if (close_pipes(p, p->nworkers) == -1)  /* EOF: each worker leaves */
        result = report_errno("close");
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

void
pool_terminate(struct pool *p)
{
    int status;

    /* All at once: none waits for another to be killed. SIGCONT after
     * SIGTERM: a stopped worker holds SIGTERM pending until it is
     * continued, and the wait below would never end. */
    for (long w = 0; w < p->nworkers; w++)
        if (p->workers[w].pid != -1 &&
            (kill(p->workers[w].pid, SIGTERM) == -1 ||
             kill(p->workers[w].pid, SIGCONT) == -1))
            report_errno("kill");
    if (close_pipes(p, p->nworkers) == -1)
        report_errno("close");
    /* SIMPLIFICATION: a worker that ignores SIGTERM is waited for forever;
     * lesson 07 escalates to SIGKILL. */
    for (long w = 0; w < p->nworkers; w++)
        if (p->workers[w].pid != -1 && reap(&p->workers[w], &status) == -1)
            report_errno("waitpid");
}

void
pool_release(struct pool *p)
{
    if (p->owner == 0)
        return;                 /* holds nothing: never started, or released */
    if (p->owner == getpid()) {
        pool_terminate(p);      /* nothing left to do after pool_join() */
        if (sigaction(SIGPIPE, &p->old_sigpipe, NULL) == -1)
            report_errno("sigaction");
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
    if (writen(w->task_fd, p->task, RECORD_SIZE(count * width)) == -1)
        return report("write task to worker %ld: %s", (long)w->pid,
                      strerror(errno));     /* EPIPE: it died while idle */
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
    /* TODO(06): the worker is dead or dying (its result pipe ended before
     * the result): wait for it, which cannot hang now, and say in *err
     * which task it held, which pid it had, and how it ended: killed by
     * which signal, or exited with which status (even 0: no result came).
     * A wait that fails leaves *err as it is, a broken pool. */
    (void)err;                  /* stays POOL_BROKEN: the message says all */
    return report("worker %ld died", (long)w->pid);
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
    /* TODO(06): a record that says its task failed ends the map, its
     * values meaning nothing (leave them unread): make it the caller's
     * error (a failed task: which one, the worker,
     * the reason) and return -1. The reason came through a pipe: never
     * trust it to end within its array. */
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
    /* TODO(06): the wait must end by the earliest deadline among the busy
     * workers' tasks (each counted from when the task was sent), and never
     * a moment before it: round up, and a deadline already past is no
     * wait at all. With no deadline set, or no worker busy, there is no
     * limit. */
    (void)p;
    return -1;
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
    /* TODO(06): the wait ended with nothing ready. A busy worker whose task
     * has run the whole deadline (the longest-running one) is slow, not
     * dead, and may never end: describe it in *err (a timeout: its task,
     * its pid, the deadline), end it in a way it cannot catch, block or
     * ignore, and reap it. No task late yet: return 0, and the map waits
     * again. */
    (void)p;
    (void)err;
    return 0;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive, or
 * its worker has died, or a task's deadline has passed; then receive every
 * result that has arrived. Returns how many items came back; or -1 with the
 * failure in *err (of failures seen at once, the one of the lowest task).
 */
static long
collect_results(struct pool *p, long long *out, struct pool_error *err)
{
    /* TODO(06): tell a slow worker from a dead one, and never wait for
     * ever: wait on the busy workers' result pipes no longer than the
     * earliest deadline (nothing ready then: a task is late). Receive from
     * every worker whose pipe is ready; a dead worker's pipe may report a
     * hang-up and nothing to read, and it is ready too. Of the failures of
     * one round keep the one that comes first. No busy worker: an error. */
    (void)p;
    (void)out;
    (void)receive_result;       /* the stub's: the code you write calls these */
    (void)poll_timeout;
    (void)comes_first;
    (void)expire_late_task;
    err->kind = POOL_BROKEN;
    return report("no result can arrive: collect_results is a stub (TODO 06)");
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
 * next chunk; then wait for results and store them. A worker holds at most
 * one chunk, and the parent reads its result before it sends the next one,
 * so neither side ever waits for the other to make room in a full pipe.
 * At the first failure, stop every worker (throwing away the tasks they
 * hold) and break the pool. Returns 0, or -1 with the failure in *err.
 */
static int
run_job(struct pool *p, const struct job *job, long long *out,
        struct pool_error *err)
{
    long sent = 0, received = 0, got;

    *err = (struct pool_error){.kind = POOL_BROKEN};
    if (p->broken)
        return report("the pool is broken: an earlier map failed");
    while (received < job->n) {
        for (long w = 0; w < p->nworkers && sent < job->n; w++)
            if (p->workers[w].count == 0) {     /* idle */
                long left = job->n - sent;
                long count = left < job->chunksize ? left : job->chunksize;

                if (send_chunk(p, &p->workers[w], job, sent, count) == -1)
                    return stop_map(p);
                sent += count;
            }
        if ((got = collect_results(p, out, err)) == -1)
            return stop_map(p);
        received += got;
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
