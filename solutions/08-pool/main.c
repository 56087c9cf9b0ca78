/* SPDX-License-Identifier: MIT */
/*
 * main.c: `pool`, the library at work. It maps the seed's functions over
 * numbers and prints the results as Python prints them.
 *
 * Python:  with mp.Pool() as p:
 *              print(p.map(Functor(2, 3), [1, 2, 3, 4, 5]))
 *          [15, 24, 33, 42, 51]
 * Here:    pool -F 2,3 1 2 3 4 5
 *
 * Usage: pool [-uv] [-j WORKERS] [-c CHUNKSIZE] [-m MAXTASKS] [-F Y,Z]
 *             [-d MS] [-e X] [-k X] (-n N | [--] X...)
 *   -j WORKERS    worker processes (default: one per CPU, as mp.Pool())
 *   -c CHUNKSIZE  items per task (default: Python's for map, 1 for -u)
 *   -m MAXTASKS   replace each worker after MAXTASKS tasks
 *   -F Y,Z        map the seed's Functor(Y, Z), z * (x * z + y); else sqr
 *   -u            imap_unordered: print each result as it comes, one a line
 *   -d MS         each item first sleeps MS milliseconds
 *   -e X          the task for X fails (its function returns 1)
 *   -k X          the task for X kills its own worker (SIGKILL)
 *   -n N          map over 0..N-1, Python's range(N); else over the X given
 *   -v            report on stderr: items, workers, chunksize, processes, time
 * Exit status: 0; 1 when an item failed or the pool did, or stdout failed
 * (a full disk: one line says so); 2 for bad usage; 130 after Ctrl-C
 * (SIGINT), which cancels the map and stops the workers. A reader that
 * leaves (| head -1) stops it quietly, status 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define MAX_ITEMS 10000000L     /* more is surely a typo */
#define MAX_X 1000000000LL      /* |x| <= 10^9: x * x fits in a long long */
#define MAX_YZ 1000LL           /* |y|, |z| <= 1000: so does z * (x*z + y) */
#define MAX_DELAY_MS 100000L

/* The seed's Functor(y, z): the bound arguments, sent by value. */
struct multi_args {
    long long y;                /* as self.y */
    long long z;                /* as self.z */
};

/* What each task computes for one x: the value, and who computed it. */
struct answer {
    long long value;            /* f(x) */
    long pid;                   /* the worker process that ran it, for -v */
};

struct options {
    struct pool_config cfg;     /* -j, -m, cancel_fd */
    long chunksize;             /* -c; 0: the default */
    int functor;                /* -F given */
    struct multi_args yz;       /* -F Y,Z */
    int unordered;              /* -u */
    int verbose;                /* -v */
    long n;                     /* items */
    long long *xs;              /* the items: -n N, or the X arguments */
};

static const char progname[] = "pool";

/* What a task does besides computing: set before the pool starts, so every
 * worker has its copy. */
static long delay_ms;           /* -d */
static int fail_set, kill_set;  /* -e, -k given */
static long long fail_x, kill_x; /* -e X, -k X */
static long worker_pid;         /* in a worker, its pid: see remember_pid() */

/* The self-pipe of Ctrl-C: the handler writes a byte into [1], the pool
 * watches [0] (cfg.cancel_fd). */
static int interrupt_pipe[2] = {-1, -1};
static struct sigaction sigint_before;  /* SIGINT's action before */

/* The errno of the first failed write to stdout, or 0. */
static int stdout_errno;

/* Print one line about bad usage and exit 2. */
static _Noreturn void
usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s '%s' (try -h)\n", progname, msg, arg);
    exit(2);
}

/* Print "pool: WHAT: strerror(errno)" and exit 1. */
static _Noreturn void
die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", progname, what, strerror(errno));
    exit(1);
}

/*
 * Daemon hygiene: open /dev/null onto each of the descriptors 0, 1 and 2
 * that is closed (open() returns the lowest free number), so that no pipe
 * made later can take a standard descriptor's number: a self-pipe on 0
 * would read as "no cancel_fd", one on 2 would receive the error messages.
 * Read-only, so that a write to a closed stdout still fails (EBADF) and is
 * reported.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= STDERR_FILENO; fd++) {
        int got;

        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;           /* open */
        if ((got = open("/dev/null", O_RDONLY)) == -1)
            die("/dev/null");
        if (got != fd) {        /* cannot happen: fd was the lowest free */
            errno = EBADF;
            die("/dev/null");
        }
    }
}

/* Parse a whole decimal number in [min, max]; exit 2 on anything else. */
static long long
parse_number(const char *s, long long min, long long max, const char *what)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        char msg[120];

        snprintf(msg, sizeof msg, "%s must be a number from %lld to %lld, "
                 "not", what, min, max);
        usage_error(msg, s);
    }
    return v;
}

/* Parse -F's "Y,Z" into o->yz. */
static void
parse_yz(char *arg, struct options *o)
{
    char *comma = strchr(arg, ',');
    char copy[64];

    if (comma == NULL || strlen(arg) >= sizeof copy)
        usage_error("-F needs two numbers, as in -F 2,3, not", arg);
    strcpy(copy, arg);
    copy[comma - arg] = '\0';
    o->yz.y = parse_number(copy, -MAX_YZ, MAX_YZ, "-F's Y");
    o->yz.z = parse_number(comma + 1, -MAX_YZ, MAX_YZ, "-F's Z");
    o->functor = 1;
}

static void
print_usage(void)
{
    printf("usage: %s [-uv] [-j WORKERS] [-c CHUNKSIZE] [-m MAXTASKS] "
           "[-F Y,Z]\n"
           "            [-d MS] [-e X] [-k X] (-n N | [--] X...)\n"
           "Maps a function over numbers with a pool of worker processes "
           "and prints the\nresults as Python prints a list.\n"
           "  -j WORKERS    worker processes (default: one per CPU)\n"
           "  -c CHUNKSIZE  items per task (default: Python's; 1 with -u)\n"
           "  -m MAXTASKS   replace each worker after MAXTASKS tasks\n"
           "  -F Y,Z        map the seed's Functor(Y, Z): z * (x * z + y) "
           "(default: x * x)\n"
           "  -u            print each result as it comes, one a line "
           "(imap_unordered)\n"
           "  -d MS         each item first sleeps MS milliseconds\n"
           "  -e X          the task for X fails\n"
           "  -k X          the task for X kills its worker (SIGKILL)\n"
           "  -n N          map over 0..N-1; else over the numbers X given\n"
           "  -v            report items, workers, chunksize, processes and "
           "time on stderr\n", progname);
}

/* Fill o->xs and o->n from -n N or from the arguments left. */
static void
parse_items(int argc, char **argv, long n, struct options *o)
{
    if (n >= 0 && optind < argc)
        usage_error("give -n N or numbers, not both:", argv[optind]);
    if (n < 0 && optind == argc)
        usage_error("nothing to map: give -n N or numbers, as in",
                    "pool 1 2 3");
    o->n = n >= 0 ? n : argc - optind;
    if ((o->xs = malloc((size_t)(o->n > 0 ? o->n : 1) * sizeof *o->xs)) == NULL)
        die("malloc");
    for (long i = 0; i < o->n; i++)
        o->xs[i] = n >= 0 ? i : parse_number(argv[optind + i], -MAX_X, MAX_X,
                                             "X");
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    long n = -1;
    int opt;

    *o = (struct options){.chunksize = 0};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":huvj:c:m:F:d:e:k:n:")) != -1) {
        switch (opt) {
        case 'h':
            print_usage();
            if (fflush(stdout) == EOF)
                die("stdout");
            exit(0);
        case 'u': o->unordered = 1; break;
        case 'v': o->verbose = 1; break;
        case 'j':
            o->cfg.workers = (long)parse_number(optarg, 1, POOL_MAX_WORKERS,
                                                "-j");
            break;
        case 'c': o->chunksize = (long)parse_number(optarg, 1, MAX_ITEMS, "-c");
            break;
        case 'm': o->cfg.maxtasks = (long)parse_number(optarg, 1, MAX_ITEMS,
                                                       "-m");
            break;
        case 'F': parse_yz(optarg, o); break;
        case 'd': delay_ms = (long)parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case 'e': fail_x = parse_number(optarg, -MAX_X, MAX_X, "-e");
            fail_set = 1;
            break;
        case 'k': kill_x = parse_number(optarg, -MAX_X, MAX_X, "-k");
            kill_set = 1;
            break;
        case 'n': n = (long)parse_number(optarg, 0, MAX_ITEMS, "-n"); break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    parse_items(argc, argv, n, o);
}

/* ---- the tasks: they run in the workers ------------------------------- */

/*
 * What every task does before its function: the delay of -d, the failure
 * of -e, the crash of -k. Returns 0, or 1 when the task is to fail.
 */
static int
task_prelude(long long x)
{
    struct timespec left = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};

    while (delay_ms > 0 && nanosleep(&left, &left) == -1 && errno == EINTR)
        continue;
    if (kill_set && x == kill_x)
        raise(SIGKILL);         /* a crash: the pool reports it, no hang */
    return fail_set && x == fail_x;
}

/*
 * The pool's initializer: runs once in each worker, before its first task.
 * getpid() is a system call; asked once here, not once per item. The
 * self-pipe of Ctrl-C is the parent's: a worker closes its copies.
 */
static int
worker_init(void *arg)
{
    (void)arg;
    worker_pid = (long)getpid();
    if (close(interrupt_pipe[0]) == -1 || close(interrupt_pipe[1]) == -1)
        return 1;               /* the pool reports the initializer failed */
    interrupt_pipe[0] = interrupt_pipe[1] = -1;
    return 0;
}

/* Python's sqr(x): x * x. */
static int
sqr(const void *args, const void *in, void *out)
{
    long long x = *(const long long *)in;
    struct answer *a = out;

    (void)args;
    if (task_prelude(x) != 0)
        return 1;
    a->value = x * x;
    a->pid = worker_pid;
    return 0;
}

/* The seed's Multi(x, y, z) = z * (x * z + y), with y and z bound: calling
 * it is Instance(x) of Instance = Functor(y, z). */
static int
multi(const void *args, const void *in, void *out)
{
    const struct multi_args *yz = args;
    long long x = *(const long long *)in;
    struct answer *a = out;

    if (task_prelude(x) != 0)
        return 1;
    a->value = yz->z * (x * yz->z + yz->y);
    a->pid = worker_pid;
    return 0;
}

/* ---- the parent ------------------------------------------------------- */

/* SIGINT: only write a byte to the self-pipe, which the pool watches. */
static void
on_interrupt(int sig)
{
    int saved = errno;

    (void)sig;
    if (write(interrupt_pipe[1], "!", 1) == -1) {
        /* full already: the pool has been told */
    }
    errno = saved;
}

/* Make the self-pipe and catch SIGINT with it; cfg->cancel_fd watches it. */
static void
catch_interrupt(struct pool_config *cfg)
{
    struct sigaction sa;

    if (pipe(interrupt_pipe) == -1)
        die("pipe");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &sigint_before) == -1)
        die("sigaction");
    cfg->cancel_fd = interrupt_pipe[0];
}

/* Undo catch_interrupt(): SIGINT's action back first, so that the handler
 * never writes to a closed descriptor (or to one reused since); then the
 * self-pipe closed. Failures only print: the program is ending. */
static void
release_interrupt(void)
{
    if (sigaction(SIGINT, &sigint_before, NULL) == -1)
        fprintf(stderr, "%s: sigaction: %s\n", progname, strerror(errno));
    if (close(interrupt_pipe[0]) == -1 || close(interrupt_pipe[1]) == -1)
        fprintf(stderr, "%s: close: %s\n", progname, strerror(errno));
    interrupt_pipe[0] = interrupt_pipe[1] = -1;
}

/* imap_unordered's callback: print one result, as it comes. Returns 1,
 * which stops the map, when stdout has failed: its reader has gone
 * (EPIPE), or the disk is full; stdout_errno says which. */
static int
print_one(void *ctx, long index, const void *result)
{
    const struct answer *a = result;
    long *pids = ctx;

    pids[index] = a->pid;
    if (printf("%lld\n", a->value) >= 0 && fflush(stdout) != EOF)
        return 0;
    stdout_errno = errno;
    return 1;
}

/* Print the results as Python prints a list: [0, 1, 4]. */
static void
print_list(const struct answer *out, long n)
{
    putchar('[');
    for (long i = 0; i < n; i++)
        printf(i == 0 ? "%lld" : ", %lld", out[i].value);
    printf("]\n");
}

/* How many different values pids[0..n-1] holds, ignoring 0; sorts pids. */
static int
compare_longs(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

static long
count_distinct(long *pids, long n)
{
    long distinct = 0;

    qsort(pids, (size_t)n, sizeof *pids, compare_longs);
    for (long i = 0; i < n; i++)
        distinct += pids[i] != 0 && (i == 0 || pids[i] != pids[i - 1]);
    return distinct;
}

/* Milliseconds since an arbitrary start, for -v. */
static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Say on stderr what made the map fail. Returns the exit status. */
static int
report_failure(const struct pool_error *e, long n)
{
    if (e->kind == POOL_ECANCELED) {
        fprintf(stderr, "%s: interrupted: stopping the workers\n", progname);
        return 130;             /* 128 + SIGINT, as a shell reports it */
    }
    fprintf(stderr, "%s: %s\n", progname, e->message);
    if (e->failed > 1)
        fprintf(stderr, "%s: %ld of %ld items failed\n", progname,
                e->failed, n);
    return 1;
}

/*
 * Run the map (or imap_unordered) on a pool made from o, print what it
 * gives. Returns the exit status.
 */
static int
run(struct options *o, struct answer *out, long *pids)
{
    struct pool_func f = o->functor
        ? POOL_FUNCTOR(multi, o->yz, long long, struct answer)
        : POOL_FUNC(sqr, long long, struct answer);
    struct pool_error err;
    struct pool *p = pool_create(&o->cfg, &err);
    double t0 = now_ms(), ms;
    int rc, stopped;

    if (p == NULL) {
        fprintf(stderr, "%s: %s\n", progname, err.message);
        return 1;
    }
    if (o->unordered)
        rc = pool_imap_unordered(p, &f, o->xs, o->n, o->chunksize, print_one,
                                 pids);
    else
        rc = pool_map(p, &f, o->xs, out, o->n, o->chunksize);
    ms = now_ms() - t0;
    if (rc == 0 && !o->unordered)
        print_list(out, o->n);
    for (long i = 0; i < o->n && !o->unordered; i++)
        pids[i] = out[i].pid;   /* 0 for a failed item */
    stopped = rc == 1;          /* imap_unordered: stdout failed */
    if (stopped)
        rc = 0;                 /* main() reports it, unless EPIPE */
    if (o->verbose)
        fprintf(stderr, "%s: %ld items, %ld workers, chunksize %ld, "
                "%ld worker processes used, %.1f ms\n", progname, o->n,
                pool_workers(p), o->chunksize > 0 ? o->chunksize
                : o->unordered ? 1 : pool_default_chunksize(o->n,
                                                            pool_workers(p)),
                count_distinct(pids, o->n), ms);
    if (rc == -1)
        rc = report_failure(pool_last_error(p), o->n);
    /* Nobody wants the chunks still in flight after a stop: pool_destroy()
     * terminates their workers rather than wait for them. */
    if (rc == 0 && !stopped && pool_close(p) == 0 && pool_join(p) == -1) {
        fprintf(stderr, "%s: %s\n", progname, pool_last_error(p)->message);
        rc = 1;
    }
    pool_destroy(&p);           /* after an error: terminates the workers */
    return rc;
}

int
main(int argc, char **argv)
{
    struct options o;
    struct answer *out;
    long *pids;
    int rc;

    open_standard_fds();
    parse_options(argc, argv, &o);
    o.cfg.init = worker_init;
    catch_interrupt(&o.cfg);
    out = calloc((size_t)(o.n > 0 ? o.n : 1), sizeof *out);
    pids = calloc((size_t)(o.n > 0 ? o.n : 1), sizeof *pids);
    if (out == NULL || pids == NULL)
        die("calloc");
    rc = run(&o, out, pids);
    release_interrupt();
    if (stdout_errno == 0 && fflush(stdout) == EOF)
        stdout_errno = errno;
    if (stdout_errno != 0 && stdout_errno != EPIPE) {
        fprintf(stderr, "%s: stdout: %s\n", progname, strerror(stdout_errno));
        rc = 1;
    }                           /* EPIPE: the reader left, as | head does */
    free(o.xs);
    free(out);
    free(pids);
    return rc;
}
