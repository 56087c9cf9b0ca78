/* SPDX-License-Identifier: MIT */
/*
 * smap.h: a map whose input and output live in memory that the parent and
 * its workers share. Nothing is copied through a pipe: each worker claims
 * the next chunk with an atomic counter in the shared memory, writes the
 * chunk's results in place, and sends the parent one byte per chunk done.
 * A record per chunk says which worker claimed it and whether it is done,
 * so the parent can run again exactly the chunk that a dead worker held.
 *
 * Usage, in the parent:
 *     struct smap m;
 *     smap_start(&m, sqr, n, nworkers, chunksize);  maps, fills in, forks
 *     smap_wait(&m);            every chunk done, every worker reaped
 *     ... m.out[0 .. n-1] ...
 *     smap_end(&m);             nothing mapped any more
 */
#ifndef SMAP_H
#define SMAP_H

#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#define SMAP_MAX_WORKERS 256    /* each worker costs the parent 1 descriptor */

/*
 * Processes share these atomics, so they must be lock-free: a lock-free
 * atomic works on the memory itself, whichever process maps it (C11
 * 7.17.5); one that is not would use a lock private to each process.
 */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "atomic_long must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free");

/* One chunk's record, in the shared memory (DO NOT CHANGE). */
struct chunk {
    atomic_int worker;          /* the worker that claimed it; -1: none yet */
    atomic_int done;            /* 1 once all its results are in out[] */
};

/*
 * The head of the shared memory (DO NOT CHANGE): the counter, the sizes,
 * then one record per chunk. Everything but the atomics is written before
 * the first fork() and only read afterwards.
 */
struct shared {
    atomic_long next;           /* the next chunk to claim; runs past the
                                 * last one as workers find no more */
    long n;                     /* items */
    long chunksize;             /* items per chunk (the last may have fewer) */
    long nchunks;               /* ceil(n / chunksize) */
    struct chunk chunks[];      /* nchunks records */
};

/* A map in shared memory, as the parent sees it. */
struct smap {
    struct shared *sh;          /* the shared memory: head and records */
    long long *xs;              /* the input, n items, in the same mapping */
    long long *out;             /* the output, n items, in the same mapping */
    size_t size;                /* bytes mapped at sh */
    long long (*fn)(long long); /* the function to map */
    long nworkers;              /* workers forked */
    pid_t *pids;                /* each worker's pid; -1 once reaped */
    int *fds;                   /* read end of each worker's progress pipe;
                                 * -1 once closed */
    struct pollfd *pfds;        /* the parent's poll() set, one per worker */
    long *done_by;              /* chunks each worker reported done */
    long rerun;                 /* chunks the parent ran itself */
};

/* In a worker, its number (0 .. nworkers-1, in the order of the forks);
 * -1 in the parent. */
extern long smap_self;

/* The program's name, for messages; the program defines it. */
extern const char progname[];

/* Print "PROGNAME: WHAT: strerror(errno)" and exit 1, workers ended. */
_Noreturn void die(const char *what);

/* Print "PROGNAME: MESSAGE" (printf format) and exit 1, workers ended. */
_Noreturn void fail(const char *fmt, ...);

/*
 * Python's default chunksize for map: ceil(n / (4 * nworkers)), and 0 for
 * an empty input. Requires n >= 0 and nworkers >= 1.
 */
long default_chunksize(long n, long nworkers);

/*
 * Map shared memory for n items (n >= 0) in chunks of chunksize (>= 1 when
 * n > 0), fill the input with 0 .. n-1 (Python's range(n)), and fork
 * nworkers (1 to SMAP_MAX_WORKERS) workers that apply fn. First makes sure
 * descriptors 0, 1 and 2 are open; on Linux each worker dies with the
 * parent. Exits the program on failure, the workers started ended.
 */
void smap_start(struct smap *m, long long (*fn)(long long), long n,
                long nworkers, long chunksize);

/*
 * Wait until every worker has ended and been reaped, then run in the parent
 * every chunk that is not done (a dead worker's). Afterwards out[i] ==
 * fn(xs[i]) for every i. A worker that died is reported in one line.
 */
void smap_wait(struct smap *m);

/* Unmap the shared memory and free the rest. Exits 1 on failure. */
void smap_end(struct smap *m);

/*
 * 1 once every chunk has been claimed (the counter has reached the last
 * one), else 0. For -l, in a worker.
 */
int smap_all_claimed(const struct shared *sh);

#endif
