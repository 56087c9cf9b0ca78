/* SPDX-License-Identifier: MIT */
/*
 * smap.c: the map in shared memory behind shared.c (see smap.h).
 *
 * One mapping, made before the first fork() and so shared by every
 * process: the head (counter, sizes, a record per chunk), then the input,
 * then the output. A worker claims chunks by an atomic fetch-and-add on the
 * counter, so a fast worker simply claims more of them; it writes each
 * result in place and sends the parent one byte per chunk done, down a pipe
 * of its own. The parent sleeps in poll() on those pipes, never spinning on
 * the memory; end-of-file on a pipe means that worker has ended. Once every
 * worker is reaped, the records say which chunks are not done: a dead
 * worker's, which the parent then runs itself.
 */
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS: not in POSIX.1-2008 (it is
                                 * in POSIX.1-2024); glibc hides it without */
#define _DARWIN_C_SOURCE        /* the same on macOS */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "smap.h"

/* ---- messages ---------------------------------------------------------- */

long smap_self = -1;

static struct smap *live_map;   /* the started map, for leave() */
static pid_t parent_pid;        /* the process that started it */

/*
 * Exit 1 after a fatal error, whose one line is already on stderr. In the
 * parent, first kill and reap every worker not yet reaped: no worker
 * outlives the program, no zombie is left. In a worker, just _exit(1).
 * SIMPLIFICATION: errors here are not checked, the program is failing
 * anyway; the mapping goes with the process (lesson 05 releases everything
 * on every way out).
 */
static _Noreturn void
leave(void)
{
    struct smap *m = live_map;

    if (m != NULL && getpid() != parent_pid)
        _exit(1);               /* a worker: flush no inherited buffer */
    live_map = NULL;
    for (long w = 0; m != NULL && w < m->nworkers; w++) {
        if (m->pids[w] <= 0)
            continue;           /* -1: reaped already (0 would be the group) */
        (void)kill(m->pids[w], SIGKILL);        /* ignored: maybe a zombie */
        while (waitpid(m->pids[w], NULL, 0) == -1 && errno == EINTR)
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

/* die() for a worker: the same message, then _exit(1), which flushes no
 * stdio buffer inherited from the parent. */
static _Noreturn void
die_child(const char *what)
{
    fprintf(stderr, "%s: worker %ld: %s: %s\n", progname, (long)getpid(),
            what, strerror(errno));
    _exit(1);
}

/* ---- the shared memory ------------------------------------------------ */

/*
 * Map `size` bytes of zeroed memory that this process and every process it
 * forks afterwards share, at m->sh (m->size: its size). Exits 1 on failure.
 */
static void
map_region(struct smap *m, size_t size)
{
    /* TODO(09) 1: map `size` bytes of memory, readable and writable, that
     * this process and every process it forks from now on share: a write
     * by one is seen by all, and no file is needed behind it. Store its
     * address in m->sh and `size` in m->size; on failure, die naming the
     * call. */
    (void)m;                    /* delete these lines when done */
    (void)size;
}

/*
 * Unmap the memory that map_region() mapped, if any; m->sh, m->xs and
 * m->out are NULL afterwards. Exits 1 on failure.
 */
static void
unmap_region(struct smap *m)
{
    /* TODO(09) 8: give back what map_region mapped, if anything (check the
     * call), so that nothing of the map is left mapped once it has ended;
     * afterwards m->sh, m->xs and m->out point nowhere (NULL). */
    (void)m;                    /* delete this line when done */
}

int
smap_all_claimed(const struct shared *sh)
{
    return atomic_load_explicit(&sh->next, memory_order_relaxed) >= sh->nchunks;
}

/* ---- the worker ------------------------------------------------------- */

/*
 * Claim the next chunk: return its number, or -1 when every chunk has been
 * claimed. Any number of processes may call it at once.
 */
static long
claim_chunk(struct shared *sh)
{
    /* TODO(09) 2: return the number of the next chunk, each chunk to
     * exactly one caller however many workers ask at the same instant, or
     * -1 once all are claimed (the counter may run past the last). Only
     * atomicity is needed: nothing is published through the counter (the
     * input was written before the workers were forked), so choose the
     * weakest memory order that gives it, and say why in a comment. */
    (void)sh;                   /* delete these lines when done */
    return -1;
}

/*
 * Run chunk c for worker w: out[i] = fn(xs[i]) for each of its items, the
 * record saying who holds it and, afterwards, that it is done. w is -1 when
 * the parent runs it again.
 */
static void
run_chunk(struct smap *m, long c, long w)
{
    /* TODO(09) 3: for each item of chunk c (the last chunk may be short),
     * store m->fn of the input item at the same index of m->out. First note
     * w in the chunk's record, unless w is -1 (the parent); last, mark the
     * record done, with an order that makes whoever sees it done see every
     * result of the chunk too. Say in a comment why each order suffices. */
    (void)m;                    /* delete these lines when done */
    (void)c;
    (void)w;
}

/*
 * The body of worker w: claim and run chunks until none is left, one byte
 * on fd (its progress pipe) for each chunk done. Never returns.
 */
static _Noreturn void
worker_main(struct smap *m, long w, int fd)
{
    /* TODO(09) 4: claim chunks and run them until none is left, telling
     * the parent of each one done with one byte on fd: the parent sleeps
     * until a byte or end-of-file comes. A signal may interrupt the write;
     * any other failure ends the worker with one line (die_child). Then
     * leave without flushing stdio buffers copied from the parent. */
    (void)m;                    /* delete these lines when done */
    (void)w;
    (void)fd;
    (void)claim_chunk;
    (void)run_chunk;
    _exit(0);
}

/* ---- starting the workers ---------------------------------------------- */

/*
 * Make sure descriptors 0, 1 and 2 are open before the map makes any of
 * its own: started with stdout closed, the program would get number 1 back
 * from pipe(), and its list would go down a pipe. Each closed one gets
 * /dev/null, read-only, so that a write to a closed stdout still fails.
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
 * In a new worker, first thing: on Linux the kernel sends it SIGKILL when
 * the parent dies (lesson 07). A parent that died before the call sends
 * nothing, so compare getppid() with the pid saved before fork().
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

/* Fork worker w with a progress pipe of its own: it writes, the parent
 * reads. */
static void
start_worker(struct smap *m, long w)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) == -1)
        die("pipe");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        die("fork");
    case 0:
        die_with_parent(parent_pid);
        smap_self = w;
        if (close(fds[0]) == -1)        /* only the parent reads */
            die_child("close");
        for (long i = 0; i < w; i++)    /* the older workers' read ends */
            if (close(m->fds[i]) == -1)
                die_child("close");
        worker_main(m, w, fds[1]);
    default:
        /* Closed here, the pipe gives end-of-file when the worker ends. */
        if (close(fds[1]) == -1)
            die("close");
        m->pids[w] = pid;
        m->fds[w] = fds[0];
        m->nworkers = w + 1;
    }
}

long
default_chunksize(long n, long nworkers)
{
    if (n == 0)
        return 0;               /* Python: an empty map sends nothing */
    return (n + 4 * nworkers - 1) / (4 * nworkers);     /* ceil(n / 4w) */
}

void
smap_start(struct smap *m, long long (*fn)(long long), long n, long nworkers,
           long chunksize)
{
    long nchunks = n > 0 ? (n + chunksize - 1) / chunksize : 0;
    size_t head = sizeof(struct shared) + (size_t)nchunks * sizeof(struct chunk);

    open_standard_fds();
    *m = (struct smap){.fn = fn};
    m->pids = calloc((size_t)nworkers, sizeof *m->pids);
    m->fds = calloc((size_t)nworkers, sizeof *m->fds);
    m->done_by = calloc((size_t)nworkers, sizeof *m->done_by);
    m->pfds = calloc((size_t)nworkers, sizeof *m->pfds);
    if (m->pids == NULL || m->fds == NULL || m->done_by == NULL ||
        m->pfds == NULL)
        die("calloc");
    map_region(m, head + 2 * (size_t)n * sizeof(long long));
    if (m->sh == NULL)
        fail("map_region() mapped nothing: m->sh is NULL");
    /* head is a multiple of 8 bytes: the arrays are aligned for long long */
    m->xs = (long long *)((char *)m->sh + head);
    m->out = m->xs + n;
    m->sh->n = n;
    m->sh->chunksize = chunksize;
    m->sh->nchunks = nchunks;
    atomic_init(&m->sh->next, 0);
    for (long c = 0; c < nchunks; c++) {
        atomic_init(&m->sh->chunks[c].worker, -1);
        atomic_init(&m->sh->chunks[c].done, 0);
    }
    for (long i = 0; i < n; i++)
        m->xs[i] = i;           /* range(n), written before any fork() */
    live_map = m;
    parent_pid = getpid();
    for (long w = 0; w < nworkers; w++)
        start_worker(m, w);
}

/* ---- the parent ------------------------------------------------------- */

/*
 * Say in one line on stderr how worker pid ended (status, from waitpid())
 * and which chunk it held (-1: none), which the parent will run again.
 */
static void
report_death(const struct smap *m, pid_t pid, int status, long c)
{
    char how[64], held[96] = ", holding no chunk";

    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    if (c >= 0) {
        long first = c * m->sh->chunksize, last = first + m->sh->chunksize - 1;

        if (last > m->sh->n - 1)
            last = m->sh->n - 1;
        snprintf(held, sizeof held, " while it held items %ld to %ld: the "
                 "parent runs them again", first, last);
    }
    fprintf(stderr, "%s: worker %ld %s%s\n", progname, (long)pid, how, held);
}

/*
 * Worker w's pipe is at end-of-file: the worker has ended or is ending.
 * Reap it, close its pipe, and report it in one line unless it exited with
 * status 0, naming the chunk it held.
 */
static void
bury_worker(struct smap *m, long w)
{
    /* TODO(09) 6: make certain worker w is dead, then reap it (never wait
     * for a process that may not end; a signal may interrupt the wait);
     * close its pipe, and forget both (-1). Unless it exited with status 0,
     * find the chunk its record says it held and had not finished (-1:
     * none), and let report_death word the one line about it. */
    (void)m;                    /* delete these lines when done */
    (void)w;
    (void)report_death;
}

/*
 * Wait for the workers' progress bytes, counting them in m->done_by, until
 * every worker has ended and been buried.
 */
static void
await_workers(struct smap *m)
{
    /* TODO(09) 5: sleep until a worker sends progress or ends, never by
     * looking at the shared memory in a loop, and go on until every worker
     * has ended (end-of-file on its pipe) and been buried. Count each byte
     * as a chunk done by that worker, in m->done_by. A signal may interrupt
     * the wait or a read; a read may bring several bytes, or fewer than
     * were sent. m->pfds has a slot for each worker. */
    (void)m;                    /* delete these lines when done */
    (void)bury_worker;
}

/*
 * Once every worker is reaped: run in this process every chunk that is not
 * done, counting them in m->rerun.
 */
static void
rerun_unfinished(struct smap *m)
{
    /* TODO(09) 7: every worker is reaped, so no other process writes the
     * memory now. Run here each chunk whose record does not say done,
     * counting them in m->rerun. Running a chunk twice is harmless: the
     * function is pure and each result has a place of its own. */
    (void)m;                    /* delete this line when done */
}

void
smap_wait(struct smap *m)
{
    await_workers(m);
    for (long w = 0; w < m->nworkers; w++)
        if (m->pids[w] != -1)
            fail("worker %ld (pid %ld) was never reaped: await_workers() must "
                 "bury every worker", w, (long)m->pids[w]);
    live_map = NULL;            /* no worker is left for leave() to stop */
    rerun_unfinished(m);
}

void
smap_end(struct smap *m)
{
    for (long w = 0; w < m->nworkers; w++)
        if (m->fds[w] != -1 && close(m->fds[w]) == -1)
            die("close");
    unmap_region(m);
    free(m->pids);
    free(m->fds);
    free(m->done_by);
    free(m->pfds);
    *m = (struct smap){.sh = NULL};
}
