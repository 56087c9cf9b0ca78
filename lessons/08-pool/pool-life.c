/* SPDX-License-Identifier: MIT */
/*
 * pool-life.c: the life of a pool, the public functions of pool.h around
 * the map engine: pool_create() checks the configuration and starts the
 * workers, pool_map() and pool_imap_unordered() check their arguments and
 * hand the call to run_job() (pool-engine.c), and close, join, terminate
 * and destroy end it. Also what a pool does to its process while it
 * exists (SIGPIPE ignored), and the POOL_TRACE timeline.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool-internal.h"

struct pool *all_pools;

/* SIGPIPE is ignored while sigpipe_holders > 0; sigpipe_before is its
 * action before the first pool, restored after the last. */
static int sigpipe_holders;
static struct sigaction sigpipe_before;

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
    else if (c->timeout_ms < 0 || c->timeout_ms > POOL_MAX_TIMEOUT_MS)
        set_error(e, POOL_EINVAL, -1, "timeout_ms must be 0 (none) or 1 to "
                  "%d, not %ld", POOL_MAX_TIMEOUT_MS, c->timeout_ms);
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
void
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
