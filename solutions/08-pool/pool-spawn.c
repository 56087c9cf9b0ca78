/* SPDX-License-Identifier: MIT */
/*
 * pool-spawn.c: starting, reaping and replacing the pool's workers. A
 * worker is forked into a slot with two pipes of its own; the parent waits
 * for its ready record (the initializer's answer); a worker on its way out
 * is reaped by pid, and its slot forgets that pid at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "pool-internal.h"

/* A pipe is grown (F_SETPIPE_SZ) for a record of at least PIPE_GROW_AT
 * times its size, to at most PIPE_GROW_MAX bytes. Measured on 2 CPUs, a
 * million items in chunks of 1 MB: 64 KiB pipes, 519 context switches and
 * 24 ms of CPU; grown to 256 KiB, 126 and 17 ms; to 1 MiB (Linux's
 * default pipe-max-size), 39 switches but the run took longer: the reader
 * then waits for the whole megabyte instead of copying out while the
 * writer copies in. A record of under 4 pipes takes few wake-ups anyway. */
#define PIPE_GROW_AT 4
#define PIPE_GROW_MAX (256 * 1024)

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
size_t
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
int
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
int
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
int
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
int
spawn_worker(struct pool *p, long i)
{
    if (start_worker(p, i) == -1 || await_ready(p, i) == -1)
        return break_pool(p);
    return 0;
}
