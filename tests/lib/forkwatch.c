/* SPDX-License-Identifier: MIT */
/*
 * forkwatch.c: count a program's processes exactly, for the guard.
 *
 * The guard preloads this library into the program it runs (LD_PRELOAD on
 * Linux, DYLD_INSERT_LIBRARIES on macOS) and names, in FORKLINGS_WATCH, a
 * file that holds one struct watch. Every process of the program maps that
 * file when it starts, and the library wraps the calls that make and end
 * processes:
 *
 *   fork()                  one more process, counted before the kernel makes
 *                           it, so that a child that forks at once can never
 *                           be counted ahead of itself;
 *   wait(), waitpid(),      one fewer, when the call reaped a child that
 *   wait3(), wait4(),       fork() made (not when it only reported a stop,
 *   waitid()                or looked with WNOWAIT).
 *
 * So `live` is the number of processes the program made that the kernel
 * still holds (running or zombie: what RLIMIT_NPROC counts), and `peak` its
 * highest value. Nothing is sampled: a worker that lives for a microsecond
 * is counted all the same. When a fork() would take the program past `cap`
 * processes, the library kills the program's process group at once: a fork
 * bomb gets no time to grow. And a test may make fork() fail: once
 * `fork_fails_after` forks have succeeded, each later one returns -1 with
 * errno EAGAIN, what a low `ulimit -u` gives, even to root.
 *
 * What it cannot see, it says: `inexact` is set when fork() is not the one
 * the program calls (another library interposes it first), when SIGCHLD is
 * ignored (the kernel then reaps without a wait() call), or when more than
 * WATCH_SLOTS processes live at once. Processes made by other means than
 * fork() (vfork, posix_spawn, clone) are not counted; the guard's /proc
 * census still sees them.
 *
 * The library opens no descriptor that outlives its start (the file is
 * mapped, then closed), changes no errno a caller can see, and does nothing
 * at all when FORKLINGS_WATCH is not set.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkwatch.h"

static struct watch *w;          /* the shared counters, or NULL */

#ifdef __APPLE__
/* On macOS an interposing library calls the real functions by name. */
#define REAL(name) name
#else
/* Elsewhere the real function is the next definition after this library. */
static pid_t (*real_fork)(void);
static pid_t (*real_wait)(int *);
static pid_t (*real_waitpid)(pid_t, int *, int);
static pid_t (*real_wait3)(int *, int, struct rusage *);
static pid_t (*real_wait4)(pid_t, int *, int, struct rusage *);
static int (*real_waitid)(idtype_t, id_t, siginfo_t *, int);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static void (*(*real_signal)(int, void (*)(int)))(int);
#define REAL(name) (real_##name != NULL ? real_##name : (find_real(), real_##name))
static void find_real(void);
/* This library's own fork(), whatever the name `fork` resolves to. */
extern pid_t this_fork(void) __attribute__((alias("fork"), visibility("hidden"), nothrow));
#endif

/* Note that the counts may be wrong, and why (the first reason wins). */
static void
mark_inexact(int why)
{
    int none = 0;

    atomic_compare_exchange_strong(&w->inexact, &none, why);
}

/* Remember a child that fork() made. */
static void
note_child(pid_t pid)
{
    for (int i = 0; i < WATCH_SLOTS; i++) {
        int free_slot = 0;

        if (atomic_compare_exchange_strong(&w->pids[i], &free_slot, pid))
            return;
    }
    mark_inexact(WATCH_FULL);
}

/* A child ended and was reaped: count it out, if fork() counted it in. */
static void
note_reaped(pid_t pid)
{
    if (w == NULL || pid <= 0)
        return;
    for (int i = 0; i < WATCH_SLOTS; i++) {
        int want = pid;

        if (atomic_compare_exchange_strong(&w->pids[i], &want, 0)) {
            atomic_fetch_sub(&w->live, 1);
            return;
        }
    }
}

/* One more process is about to exist: count it, and stop a fork bomb. */
static void
note_forking(void)
{
    int now = atomic_fetch_add(&w->live, 1) + 1;
    int peak = atomic_load(&w->peak);

    while (now > peak && !atomic_compare_exchange_weak(&w->peak, &peak, now))
        ;
    if (now + 1 > w->cap) {     /* the program itself is one more */
        atomic_store(&w->capped, 1);
        (void)kill(-w->pgid, SIGKILL); /* ignored: it kills its caller too */
    }
}

#ifndef __APPLE__
/* Find the next definition of each wrapped call. A sanitizer's start-up
 * may call one before this library's constructor has run: REAL() asks. */
static void
find_real(void)
{
    *(void **)&real_fork = dlsym(RTLD_NEXT, "fork");
    *(void **)&real_wait = dlsym(RTLD_NEXT, "wait");
    *(void **)&real_waitpid = dlsym(RTLD_NEXT, "waitpid");
    *(void **)&real_wait3 = dlsym(RTLD_NEXT, "wait3");
    *(void **)&real_wait4 = dlsym(RTLD_NEXT, "wait4");
    *(void **)&real_waitid = dlsym(RTLD_NEXT, "waitid");
    *(void **)&real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    *(void **)&real_signal = dlsym(RTLD_NEXT, "signal");
}
#endif

/* At the program's start: map the counters the guard named. */
__attribute__((constructor)) static void
watch_start(void)
{
    int saved = errno, fd;
    const char *path = getenv("FORKLINGS_WATCH");
    void *p;

#ifndef __APPLE__
    find_real();
#endif
    if (path == NULL || (fd = open(path, O_RDWR | O_CLOEXEC)) == -1)
        goto out;
    p = mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    (void)close(fd);            /* the mapping stays; no descriptor does */
    if (p == MAP_FAILED)
        goto out;
    if (((struct watch *)p)->magic != WATCH_MAGIC) {
        (void)munmap(p, sizeof *w); /* ignored: not ours, left alone */
        goto out;
    }
    w = p;
#ifndef __APPLE__
    /* The program's fork() must be this one, or nothing is counted. */
    {
        pid_t (*first)(void);

        *(void **)&first = dlsym(RTLD_DEFAULT, "fork");
        if (first != this_fork)
            mark_inexact(WATCH_NOT_FIRST);
    }
#endif
    atomic_fetch_add(&w->loaded, 1);
out:
    errno = saved;
}

/* A status from the wait family means the child is gone (not stopped). */
static int
status_is_end(int status)
{
    return WIFEXITED(status) || WIFSIGNALED(status);
}

#ifdef __APPLE__
#define WRAP(name) watch_##name
#else
#define WRAP(name) name
#endif

pid_t
WRAP(fork)(void)
{
    pid_t pid;
    int saved;

    if (w == NULL)
        return REAL(fork)();
    if (w->fork_fails_after >= 0 && atomic_load(&w->forks) >= w->fork_fails_after) {
        errno = EAGAIN;         /* what fork(2) says at RLIMIT_NPROC */
        return -1;
    }
    note_forking();
    pid = REAL(fork)();
    saved = errno;
    if (pid > 0) {
        note_child(pid);
        atomic_fetch_add(&w->forks, 1);
    } else if (pid == -1) {
        atomic_fetch_sub(&w->live, 1);  /* it was never made */
    }
    errno = saved;
    return pid;
}

/* What every wait-family wrapper does after the real call returned got with
 * status st: count a reaped child out, hand the status on, keep errno. */
static pid_t
after_wait(pid_t got, int st, int *status, int saved_errno)
{
    if (got > 0 && status_is_end(st))
        note_reaped(got);
    if (got > 0 && status != NULL)
        *status = st;
    errno = saved_errno;
    return got;
}

pid_t
WRAP(waitpid)(pid_t pid, int *status, int options)
{
    int st = 0;
    pid_t got = REAL(waitpid)(pid, &st, options);

    return after_wait(got, st, status, errno);
}

pid_t
WRAP(wait)(int *status)
{
    int st = 0;
    pid_t got = REAL(wait)(&st);

    return after_wait(got, st, status, errno);
}

pid_t
WRAP(wait3)(int *status, int options, struct rusage *ru)
{
    int st = 0;
    pid_t got = REAL(wait3)(&st, options, ru);

    return after_wait(got, st, status, errno);
}

pid_t
WRAP(wait4)(pid_t pid, int *status, int options, struct rusage *ru)
{
    int st = 0;
    pid_t got = REAL(wait4)(pid, &st, options, ru);

    return after_wait(got, st, status, errno);
}

int
WRAP(waitid)(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    int r = REAL(waitid)(idtype, id, info, options), saved = errno;

    if (r == 0 && info != NULL && info->si_pid > 0 && !(options & WNOWAIT) &&
        (info->si_code == CLD_EXITED || info->si_code == CLD_KILLED ||
         info->si_code == CLD_DUMPED))
        note_reaped(info->si_pid);
    errno = saved;
    return r;
}

int
WRAP(sigaction)(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (w != NULL && sig == SIGCHLD && act != NULL &&
        (act->sa_handler == SIG_IGN || (act->sa_flags & SA_NOCLDWAIT)))
        mark_inexact(WATCH_AUTOREAP);
    return REAL(sigaction)(sig, act, old);
}

void (*WRAP(signal)(int sig, void (*handler)(int)))(int)
{
    if (w != NULL && sig == SIGCHLD && handler == SIG_IGN)
        mark_inexact(WATCH_AUTOREAP);
    return REAL(signal)(sig, handler);
}

#ifdef __APPLE__
/* dyld's interposing table: each pair is (replacement, replaced). */
#define INTERPOSE(name)                                                     \
    __attribute__((used, section("__DATA,__interpose"))) static struct {   \
        const void *with, *what;                                            \
    } interpose_##name = {(const void *)watch_##name, (const void *)name}
INTERPOSE(fork);
INTERPOSE(waitpid);
INTERPOSE(wait);
INTERPOSE(wait3);
INTERPOSE(wait4);
INTERPOSE(waitid);
INTERPOSE(sigaction);
INTERPOSE(signal);
#endif
