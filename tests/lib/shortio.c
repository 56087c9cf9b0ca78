/* SPDX-License-Identifier: MIT */
/*
 * shortio.c: make a program meet the short reads, short writes and
 * interrupted calls that POSIX allows, for the injection stage of
 * `make test` (tests/lib/prove).
 *
 * Preloaded (LD_PRELOAD) into a program when FORKLINGS_SHORTIO is set, it
 * does two things in every process of the program:
 *
 * - Signals that interrupt slow calls. A timer sends the process SIGURG
 *   every 1 to 3 ms, caught by a handler installed with SA_RESTART, as a
 *   program's own handlers usually are: poll(), nanosleep() and the other
 *   calls that signal(7) says are never restarted fail with EINTR. The
 *   program's own read(), write(), readv() and writev() on a pipe or socket
 *   that would block fail with EINTR once after each tick, as they would
 *   under a handler without SA_RESTART; stdio's writes inside libc are not wrapped, so a
 *   printf() is not cut short where the program could not retry it. A
 *   forked child gets a timer of its own (timers are not inherited).
 *   SIGURG is ignored by default, so a program that resets every signal
 *   stops the ticks in that process, nothing more.
 * - Short transfers, every time they are allowed: read() and readv() of 2
 *   bytes or more on a pipe, FIFO or socket return a random part of what was
 *   asked, never all of it (POSIX: fewer bytes may come "if the read()
 *   request was interrupted by a signal, or if the file is a pipe or FIFO");
 *   write() and writev() of more than PIPE_BUF bytes to a pipe or socket
 *   write a random part (only writes of at most PIPE_BUF bytes are atomic).
 *   Writes of PIPE_BUF bytes or less, and regular files, are never cut. So a
 *   program that takes one call for a whole record fails for certain, not
 *   by chance.
 *
 * Correct code survives all of it: it loops until a record is whole and
 * retries a call that EINTR cut short.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_IOV 64              /* iovecs cut at most; longer lists pass */

static int active;              /* FORKLINGS_SHORTIO was set */
static unsigned int seed;       /* this process's random state */
static timer_t timer;           /* sends SIGURG to this process */
static volatile sig_atomic_t ticked; /* a SIGURG came since the last EINTR */

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_writev)(int, const struct iovec *, int);

/* The next definition of each wrapped call, found at its first use: another
 * library's start-up may read or write before this one's constructor. */
static void
find_real(void)
{
    *(void **)&real_read = dlsym(RTLD_NEXT, "read");
    *(void **)&real_write = dlsym(RTLD_NEXT, "write");
    *(void **)&real_readv = dlsym(RTLD_NEXT, "readv");
    *(void **)&real_writev = dlsym(RTLD_NEXT, "writev");
}
#define REAL(name) (real_##name != NULL ? real_##name : (find_real(), real_##name))

/* A number from 0 to n - 1 (n > 0). */
static size_t
pick(size_t n)
{
    return (size_t)rand_r(&seed) % n;
}

/* SIGURG: the next wrapped call on a pipe fails with EINTR. */
static void
on_tick(int sig)
{
    (void)sig;
    ticked = 1;
}

/* Arm a timer that sends this process SIGURG every 1 to 3 ms. */
static void
start_ticks(void)
{
    struct sigevent ev;
    struct itimerspec every;
    long ns = (1 + (long)pick(3)) * 1000000L;

    seed = (unsigned int)getpid() * 2654435761u;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGURG;
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer) == -1)
        return;                 /* no timer: short transfers only */
    every.it_value = every.it_interval = (struct timespec){0, ns};
    /* ignored: without the timer the program still meets short transfers */
    (void)timer_settime(timer, 0, &every, NULL);
}

/* In a forked child: a timer of its own. */
static void
child_ticks(void)
{
    int saved = errno;

    if (active)
        start_ticks();
    errno = saved;
}

__attribute__((constructor)) static void
shortio_start(void)
{
    int saved = errno;
    struct sigaction sa;

    if (getenv("FORKLINGS_SHORTIO") == NULL)
        goto out;
    active = 1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;   /* poll() and nanosleep() fail all the same */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGURG, &sa, NULL) == -1)
        goto out;
    /* ignored: without it a child meets short transfers only */
    (void)pthread_atfork(NULL, NULL, child_ticks);
    start_ticks();
out:
    errno = saved;
}

/* 1 when fd is a pipe, FIFO or socket: where transfers may come short. */
static int
is_stream(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* 1 when a call on fd for `events` (POLLIN, POLLOUT) would block now. */
static int
would_block(int fd, short events)
{
    struct pollfd p = {fd, events, 0};

    return poll(&p, 1, 0) == 0;
}

/* 1 when a wrapped call on fd is to fail with EINTR, as if the last tick
 * had interrupted it before it moved a byte. Only a call that would block
 * can be interrupted: a read with data waiting, or a write with room in the
 * pipe, completes at once (a handler's write to its self-pipe, say). */
static int
interrupted(int fd, short events)
{
    if (!active || !ticked || !is_stream(fd) || !would_block(fd, events))
        return 0;
    ticked = 0;
    errno = EINTR;
    return 1;
}

/* How much of a read of n bytes to ask for: 1 to n - 1, every time. */
static size_t
read_part(int fd, size_t n)
{
    if (!active || n < 2 || !is_stream(fd))
        return n;
    return 1 + pick(n - 1);
}

/* How much of a write of n bytes to make: 1 to n - 1, every time, unless
 * it must be atomic. */
static size_t
write_part(int fd, size_t n)
{
    if (!active || n <= PIPE_BUF || !is_stream(fd))
        return n;
    return 1 + pick(n - 1);
}

/* Copy iov into cut[], keeping only its first `limit` bytes; the count. */
static int
cut_iov(const struct iovec *iov, int n, size_t limit, struct iovec *cut)
{
    int k = 0;

    for (int i = 0; i < n && limit > 0; i++, k++) {
        cut[k] = iov[i];
        if (cut[k].iov_len > limit)
            cut[k].iov_len = limit;
        limit -= cut[k].iov_len;
    }
    return k;
}

/* The bytes an iovec list holds. */
static size_t
iov_total(const struct iovec *iov, int n)
{
    size_t total = 0;

    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return total;
}

ssize_t
read(int fd, void *buf, size_t n)
{
    if (interrupted(fd, POLLIN))
        return -1;
    return REAL(read)(fd, buf, read_part(fd, n));
}

ssize_t
write(int fd, const void *buf, size_t n)
{
    if (interrupted(fd, POLLOUT))
        return -1;
    return REAL(write)(fd, buf, write_part(fd, n));
}

/* readv() or writev() (call), cut to the part that part_of(fd, total)
 * allows, when the library is active and the vector is one it can cut. */
static ssize_t
vector_io(ssize_t (*call)(int, const struct iovec *, int),
          size_t (*part_of)(int, size_t), int fd, const struct iovec *iov, int n)
{
    struct iovec cut[MAX_IOV];
    size_t total, part;

    if (!active || n < 1 || n > MAX_IOV)
        return call(fd, iov, n);
    total = iov_total(iov, n);
    part = part_of(fd, total);
    if (part == total)
        return call(fd, iov, n);
    return call(fd, cut, cut_iov(iov, n, part, cut));
}

ssize_t
readv(int fd, const struct iovec *iov, int n)
{
    if (interrupted(fd, POLLIN))
        return -1;
    return vector_io(REAL(readv), read_part, fd, iov, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    if (interrupted(fd, POLLOUT))
        return -1;
    return vector_io(REAL(writev), write_part, fd, iov, n);
}
