/* SPDX-License-Identifier: MIT */
/*
 * map.c: Pool.map in C. The workers finish in any order, yet the list comes
 * back in the order of the input.
 *
 * Python:  def sqr(x):
 *              return x * x
 *          with mp.Pool(4) as p:
 *              print(p.map(sqr, range(n)))
 * Here the parent starts a pool (pool.c), maps sqr over 0..N-1 in chunks,
 * and prints the list as Python prints it: [0, 1, 4, 9].
 *
 * Usage: map [-v] [-j WORKERS] [-c CHUNKSIZE] [-d MAXMS] [-s SEED] N
 *   -j WORKERS    worker processes (the number of CPUs, as mp.Pool())
 *   -c CHUNKSIZE  items per task record (Python's default: ceil(N / 4j))
 *   -d MAXMS      each item first sleeps a random 0..MAXMS milliseconds
 *   -s SEED       seed for those delays (1)
 *   -v            report on stderr: chunksize, task records sent, time
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define MAX_ITEMS 10000000L     /* more is surely a typo */
#define MAX_DELAY_MS 1000
#define MAX_SEED 2147483647L
#define DEFAULT_WORKERS 4       /* where the CPUs cannot be counted */

struct options {
    long workers;               /* -j: worker processes */
    long chunksize;             /* -c: items per task record; 0: default */
    long delay_ms;              /* -d: longest sleep before an item */
    long seed;                  /* -s: seed of the sleeps */
    int verbose;                /* -v: report on stderr */
    long n;                     /* N: map over 0..N-1 */
};

const char progname[] = "map";

/*
 * The delays of -d. Set before the pool starts, so every worker has its own
 * copy of them: fork() copies the parent's memory (lesson 04).
 */
static long delay_max_ms;
static unsigned long long delay_seed;

/* Print one line about bad usage and exit 2. */
static _Noreturn void
usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s '%s' (try -h)\n", progname, msg, arg);
    exit(2);
}

/* Parse a whole decimal number in [min, max]; exit 2 on anything else. */
static long
parse_number(const char *s, long min, long max, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        char msg[100];

        snprintf(msg, sizeof msg, "%s must be a number from %ld to %ld, not",
                 what, min, max);
        usage_error(msg, s);
    }
    return v;
}

/* How many CPUs are online, as Python's os.cpu_count(); at least 1. */
static long
cpu_count(void)
{
    long n = DEFAULT_WORKERS;

#ifdef _SC_NPROCESSORS_ONLN
    n = sysconf(_SC_NPROCESSORS_ONLN);  /* common, though not POSIX */
#endif
    if (n < 1)
        n = DEFAULT_WORKERS;
    return n < POOL_MAX_WORKERS ? n : POOL_MAX_WORKERS;
}

/*
 * Flush stdout; when a write to it failed (a full disk, a closed stdout),
 * say so in one line and exit 1.
 */
static void
flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return;
    if (errno == 0)
        errno = EIO;            /* an earlier write failed, its errno lost */
    die("stdout");
}

static void
print_usage(void)
{
    printf("usage: %s [-v] [-j WORKERS] [-c CHUNKSIZE] [-d MAXMS] [-s SEED] N\n"
           "Maps sqr over 0..N-1 with a pool of worker processes and prints\n"
           "the list in input order, as Python's p.map(sqr, range(N)).\n"
           "  -j WORKERS    worker processes (default: one per CPU)\n"
           "  -c CHUNKSIZE  items per task record (default: ceil(N / (4 *"
           " WORKERS)))\n"
           "  -d MAXMS      each item first sleeps a random 0..MAXMS ms\n"
           "  -s SEED       seed for those sleeps (default 1)\n"
           "  -v            report chunksize, records and time on stderr\n",
           progname);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = cpu_count(), .seed = 1};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hvj:c:d:s:")) != -1) {
        switch (opt) {
        case 'h': print_usage(); flush_stdout(); exit(0);
        case 'v': o->verbose = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, POOL_MAX_WORKERS, "-j");
            break;
        case 'c':
            o->chunksize = parse_number(optarg, 1, MAX_ITEMS, "-c");
            break;
        case 'd':
            o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case 's': o->seed = parse_number(optarg, 0, MAX_SEED, "-s"); break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (optind == argc)
        usage_error("missing the count N, as in", "map 10");
    o->n = parse_number(argv[optind], 0, MAX_ITEMS, "N");
    if (optind + 1 < argc)
        usage_error("unexpected argument", argv[optind + 1]);
}

/* The function to map, as the Python sqr(x). */
static long long
sqr(long long x)
{
    return x * x;
}

/* Mix the bits of v (splitmix64's finaliser): a reproducible "random". */
static unsigned long long
mix(unsigned long long v)
{
    v += 0x9e3779b97f4a7c15ULL;
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
    return v ^ (v >> 31);
}

/*
 * sqr, after a sleep of 0..delay_max_ms milliseconds that depends only on
 * the seed and x: the same run gives the same delays, whichever worker
 * gets x, and the workers finish in a shuffled order.
 */
static long long
slow_sqr(long long x)
{
    long ms = (long)(mix(delay_seed ^ mix((unsigned long long)x)) %
                     (unsigned long long)(delay_max_ms + 1));
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) == -1)
        if (errno != EINTR)
            die("nanosleep");
    return sqr(x);
}

/* Print out[0..n-1] as Python prints a list: [0, 1, 4]. */
static void
print_list(const long long *out, long n)
{
    putchar('[');
    for (long i = 0; i < n; i++)
        printf(i == 0 ? "%lld" : ", %lld", out[i]);
    printf("]\n");
    flush_stdout();
}

/* Milliseconds since an arbitrary start, for -v. */
static double
now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
    struct options o;
    struct pool pool;
    long long *xs, *out;
    long chunksize;
    double t0, ms;
    int result;

    parse_options(argc, argv, &o);
    delay_max_ms = o.delay_ms;
    delay_seed = (unsigned long long)o.seed;
    xs = malloc((size_t)(o.n > 0 ? o.n : 1) * sizeof *xs);
    out = calloc((size_t)(o.n > 0 ? o.n : 1), sizeof *out);
    if (xs == NULL || out == NULL)
        die("malloc");
    for (long i = 0; i < o.n; i++)
        xs[i] = i;              /* range(n) */
    chunksize = o.chunksize > 0 ? o.chunksize
                                : default_chunksize(o.n, o.workers);

    pool_start(&pool, o.workers);
    t0 = now_ms();
    pool_map(&pool, o.delay_ms > 0 ? slow_sqr : sqr, xs, o.n, out, chunksize);
    ms = now_ms() - t0;
    if (o.verbose)
        fprintf(stderr, "%s: %ld items, %ld workers, chunksize %ld, "
                "task records %ld, early results %ld, time %.1f ms\n",
                progname, o.n, o.workers, chunksize, pool.messages,
                pool.early, ms);
    result = pool_stop(&pool);

    print_list(out, o.n);
    free(xs);
    free(out);
    return result;
}
