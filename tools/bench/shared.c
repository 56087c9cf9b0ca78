/* SPDX-License-Identifier: MIT */
/*
 * shared.c: the shared-memory side of `make bench` (lesson 09). Each case
 * prints one line, "CASE SECONDS", for one repetition; tools/bench/run
 * repeats them and takes medians.
 *
 *   map N WORKERS     x + 1 over N items, input and output in MAP_SHARED
 *                     memory, chunks (Python's default size) claimed with an
 *                     atomic fetch-and-add, one byte per chunk down a pipe
 *                     per worker; the workers started before the clock and
 *                     still there after it, as the capstone's pool is in
 *                     the other rows
 *   map-cold N WORKERS  the same, timed from the first fork() to the last
 *                     worker reaped, as lesson 09's program runs
 *   loop N            the same items in one process, a plain loop: the
 *                     limit, since the work is memory-bound (16 MB for 10^6)
 *   adjacent ITERS    two processes each add 1 to a counter of their own
 *                     ITERS times: the two counters on one cache line;
 *                     prints "adjacent WALL cpu CPU", CPU the seconds the
 *                     two loops used together (steadier on a busy machine)
 *   padded ITERS      the same, the counters 128 bytes apart (two lines, and
 *                     no pair of lines that the hardware fetches together)
 *
 * Both arrays are written once before the clock starts, so that neither
 * case pays for the first touch of its pages. Build: -O2.
 */
#define _DEFAULT_SOURCE         /* MAP_ANONYMOUS (see lessons/09-shared/smap.c) */
#define _DARWIN_C_SOURCE
#ifdef __linux__
#define _GNU_SOURCE             /* sched_setaffinity() */
#include <sched.h>
#endif
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64

/* Where case loop's output escapes to: the compiler must then assume
 * anyone may read it, and keep every store. */
static long long *volatile escape;

/* The head of the shared memory: the chunk counter. */
struct head {
    atomic_long next;           /* the next chunk to claim */
};

static _Noreturn void
die(const char *what)
{
    fprintf(stderr, "bench shared: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double
now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* size bytes of memory shared with the processes forked afterwards. */
static void *
map_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        die("mmap");
    return p;
}

/* Reap every child; 0 when each exited with 0. */
static int
reap_all(const pid_t *pids, long n)
{
    int bad = 0, status;

    for (long w = 0; w < n; w++) {
        while (waitpid(pids[w], &status, 0) == -1)
            if (errno != EINTR)
                die("waitpid");
        bad |= !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    return bad;
}

/* Touch one word of every page of xs and out, so that this process's page
 * tables hold them: a process that maps shared memory still takes a fault
 * at its first touch of each page. */
static void
touch_pages(const long long *xs, long long *out, long n)
{
    long step = sysconf(_SC_PAGESIZE) / (long)sizeof(long long);
    volatile long long sink = 0;

    for (long i = 0; i < n; i += step) {
        sink += xs[i];
        out[i] = 0;
    }
    (void)sink;
}

/* Read one byte from fd, through signals; 0 at end-of-file. */
static int
read_byte(int fd)
{
    char b;
    ssize_t got;

    while ((got = read(fd, &b, 1)) == -1)
        if (errno != EINTR)
            die("read");
    return (int)got;
}

/*
 * A worker of case map: when warm, first touch every page and say so (a
 * byte), then wait for the start (end-of-file on go); then claim chunks
 * until none is left, a byte per chunk; when warm, then wait for the
 * release (end-of-file on done) before it exits.
 *
 * Why a warm worker waits to exit: its exit unmaps the 16 MB it touched,
 * 4,096 pages, in the kernel. On a 2-CPU machine the two workers' exits
 * held both CPUs just when the parent, woken by the last byte, needed one:
 * the byte reached it 490 to 950 µs late in up to half the runs, inside
 * the clock (docs/pool-design.md). A pool's workers do not exit after a
 * map (they wait for the next one), so the case does not either.
 */
static _Noreturn void
map_worker(struct head *h, const long long *xs, long long *out, long n,
           long chunksize, int fd, int go, int done)
{
    long nchunks = (n + chunksize - 1) / chunksize, c;

    if (go != -1) {
        touch_pages(xs, out, n);
        if (write(fd, "", 1) != 1 || read_byte(go) != 0)
            _exit(1);
    }
    while ((c = atomic_fetch_add_explicit(&h->next, 1, memory_order_relaxed)) < nchunks) {
        long end = (c + 1) * chunksize < n ? (c + 1) * chunksize : n;

        for (long i = c * chunksize; i < end; i++)
            out[i] = xs[i] + 1;
        while (write(fd, "", 1) == -1)
            if (errno != EINTR)
                _exit(1);
    }
    if (done != -1 && read_byte(done) != 0)
        _exit(1);
    _exit(0);
}

/*
 * Case map (warm) and map-cold. Cold times it all, as lesson 09's program
 * runs: the forks, each worker's first touch of the pages, the work, the
 * reaping. Warm times the work alone, as the capstone's rows do (its pool
 * is started before the clock and ended after it): the workers are forked
 * and have touched every page first, the clock runs from the start signal
 * to the last chunk's byte, and only then are the workers released to
 * exit.
 */
static double
case_map(long n, long workers, int warm)
{
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(long long);
    struct head *h = map_shared(sizeof *h);
    long long *xs = map_shared(bytes), *out = map_shared(bytes);
    long chunksize = n > 0 ? (n + 4 * workers - 1) / (4 * workers) : 1;
    long nchunks = (n + chunksize - 1) / chunksize, done = 0, left = workers;
    pid_t pids[MAX_WORKERS];
    struct pollfd pfds[MAX_WORKERS];
    int go[2] = {-1, -1}, done_pipe[2] = {-1, -1};
    double t0 = 0, t = -1;

    for (long i = 0; i < n; i++) {
        xs[i] = i;
        out[i] = 0;             /* first touch, before the clock */
    }
    atomic_init(&h->next, 0);
    if (warm && (pipe(go) == -1 || pipe(done_pipe) == -1))
        die("pipe");
    if (!warm)
        t0 = now();
    for (long w = 0; w < workers; w++) {
        int fds[2];

        if (pipe(fds) == -1)
            die("pipe");
        switch (pids[w] = fork()) {
        case -1:
            die("fork");
        case 0:
            close(fds[0]);
            if (warm) {
                close(go[1]);
                close(done_pipe[1]);
            }
            for (long i = 0; i < w; i++)
                close(pfds[i].fd);
            map_worker(h, xs, out, n, chunksize, fds[1], go[0], done_pipe[0]);
        default:
            close(fds[1]);
            pfds[w] = (struct pollfd){.fd = fds[0], .events = POLLIN};
        }
    }
    if (warm) {
        close(go[0]);
        close(done_pipe[0]);
        for (long w = 0; w < workers; w++)      /* every page touched */
            if (read_byte(pfds[w].fd) != 1)
                die("a worker did not start");
        t0 = now();
        close(go[1]);           /* end-of-file: every worker starts */
    }
    while (left > 0) {
        /* Release the workers once the last chunk is in (at once for no
         * chunks), or once any has ended without it (it failed: the others
         * must not wait for a chunk that never comes). */
        if (done_pipe[1] != -1 && (done == nchunks || left < workers)) {
            close(done_pipe[1]);        /* end-of-file: the workers exit */
            done_pipe[1] = -1;
        }
        if (poll(pfds, (nfds_t)workers, -1) == -1) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (long w = 0; w < workers; w++) {
            char bytes_in[64];
            ssize_t got;

            if (pfds[w].revents == 0)
                continue;
            if ((got = read(pfds[w].fd, bytes_in, sizeof bytes_in)) == 0) {
                close(pfds[w].fd);
                pfds[w].fd = -1;
                left--;
            } else if (got == -1 && errno != EINTR) {
                die("read");
            } else if (got > 0 && (done += got) == nchunks && warm) {
                t = now() - t0;         /* the last chunk is in */
            }
        }
    }
    if (reap_all(pids, workers) != 0)
        fprintf(stderr, "bench shared: map: a worker failed\n"), exit(1);
    if (!warm || t < 0)
        t = now() - t0;
    for (long i = 0; i < n; i++) {      /* after the clock: every item */
        if (out[i] != i + 1) {
            fprintf(stderr, "bench shared: map: out[%ld] is %lld, not %ld\n", i,
                    out[i], i + 1);
            exit(1);
        }
    }
    if (munmap(h, sizeof *h) == -1 || munmap(xs, bytes) == -1 ||
        munmap(out, bytes) == -1)
        die("munmap");
    return t;
}

static double
case_loop(long n)
{
    long long *xs = malloc((size_t)n * sizeof *xs);
    long long *out = malloc((size_t)n * sizeof *out);
    double t0;

    if (xs == NULL || out == NULL)
        die("malloc");
    /* First touch, before the clock; -1, not 0, or the compiler may make
     * malloc() and a loop of zeros into calloc(), which touches nothing. */
    for (long i = 0; i < n; i++) {
        xs[i] = i;
        out[i] = -1;
    }
    escape = out;               /* and keep those stores */
    t0 = now();
    for (long i = 0; i < n; i++)
        out[i] = xs[i] + 1;
    t0 = now() - t0;
    if (n > 0 && out[n - 1] != n)
        fprintf(stderr, "bench shared: loop: wrong result\n"), exit(1);
    free(xs);
    free(out);
    return t0;
}

/* CPU seconds this process has used so far. */
static double
cpu_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Keep this process on CPU `cpu` (Linux): left alone, the scheduler of a
 * busy machine may run both counting processes on one CPU, one cache, where
 * no line moves. Elsewhere a no-op. SIMPLIFICATION: a CPU that cannot be
 * had is ignored; the counts stay right, the times say less.
 */
static void
pin_to_cpu(int cpu)
{
#ifdef __linux__
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);   /* ignored: see above */
#else
    (void)cpu;
#endif
}

/*
 * Two processes, each adding 1 to its own counter iters times, the second
 * counter `gap` bytes after the first, each on a CPU of its own. They
 * start their loops together (each waits until both are ready). Returns the wall time, and in *cpu the
 * CPU seconds the two loops took together: on a busy machine the two run
 * at the same moment only part of the time, and only then do they fight
 * over a cache line, but the CPU time shows what each write cost.
 */
static double
case_counters(long iters, size_t gap, double *cpu)
{
    char *mem = map_shared(4096);
    atomic_int *ready = (atomic_int *)(void *)(mem + 2048);
    double *used = (double *)(void *)(mem + 3072);  /* one per worker */
    pid_t pids[2];
    double t0;

    atomic_init(ready, 0);
    t0 = now();
    for (int w = 0; w < 2; w++) {
        atomic_long *mine = (atomic_long *)(void *)(mem + (size_t)w * gap);

        switch (pids[w] = fork()) {
        case -1:
            die("fork");
        case 0: {
            double c0;

            pin_to_cpu(w);
            atomic_fetch_add(ready, 1);
            while (atomic_load(ready) < 2)
                continue;       /* both start at once */
            c0 = cpu_now();
            for (long i = 0; i < iters; i++)
                atomic_fetch_add_explicit(mine, 1, memory_order_relaxed);
            used[w] = cpu_now() - c0;
            _exit(0);
        }
        default:
            break;
        }
    }
    if (reap_all(pids, 2) != 0)
        die("worker");
    t0 = now() - t0;
    *cpu = used[0] + used[1];
    if (atomic_load((atomic_long *)(void *)mem) != iters ||
        atomic_load((atomic_long *)(void *)(mem + gap)) != iters)
        fprintf(stderr, "bench shared: counters: wrong count\n"), exit(1);
    if (munmap(mem, 4096) == -1)
        die("munmap");
    return t0;
}

int
main(int argc, char **argv)
{
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : -1;
    long j = argc > 3 ? strtol(argv[3], NULL, 10) : -1;
    const char *c = argc > 1 ? argv[1] : "";

    if ((strcmp(c, "map") == 0 || strcmp(c, "map-cold") == 0) && n >= 0 &&
        j >= 1 && j <= MAX_WORKERS)
        printf("%s %.6f\n", c, case_map(n, j, strcmp(c, "map") == 0));
    else if (strcmp(c, "loop") == 0 && n >= 0)
        printf("%s %.6f\n", c, case_loop(n));
    else if ((strcmp(c, "adjacent") == 0 || strcmp(c, "padded") == 0) && n > 0) {
        double cpu, wall = case_counters(n, c[0] == 'a' ? sizeof(atomic_long) : 128,
                                         &cpu);

        printf("%s %.6f cpu %.6f\n", c, wall, cpu);
    }
    else {
        fprintf(stderr, "bench shared: usage: shared map N WORKERS | map-cold N "
                "WORKERS | loop N | "
                "adjacent ITERS | padded ITERS\n");
        return 2;
    }
    return 0;
}
