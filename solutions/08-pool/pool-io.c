/* SPDX-License-Identifier: MIT */
/*
 * pool-io.c: the pool library's plumbing (see pool-internal.h for the map
 * of its files). Errors as values: a failure is described in a struct
 * pool_error, never printed, never an exit. Whole reads and writes: a pipe
 * may move fewer bytes than asked, and a signal may interrupt a call, so
 * every record crosses in a loop. And the clock that times chunks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool-internal.h"

/* ---- errors ----------------------------------------------------------- */

/* Fill in *e: kind, index and message (printf format); the rest zero. */
void
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
int
sys_error(struct pool_error *e, const char *what)
{
    int saved = errno;

    set_error(e, POOL_ESYS, -1, "%s: %s", what, strerror(saved));
    e->code = saved;
    return -1;
}

/* The pool can no longer be trusted to know its workers' state: only
 * terminate, join and destroy will do. Keeps p->error. Returns -1. */
int
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
const char *
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
void
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
void
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
ssize_t
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
ssize_t
writen(int fd, const void *buf, size_t n)
{
    struct iovec v = {.iov_base = (void *)buf, .iov_len = n};

    return writevn(fd, &v, 1);
}

/* Grow *buf (of *cap bytes) to hold at least need bytes, and at least 1.
 * Returns 0, or -1 with errno set (and *buf as it was). */
int
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
long long
now_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        return 0;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep ms milliseconds, or less when a signal comes. */
void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}
