/* SPDX-License-Identifier: MIT */
/*
 * functor.c: the seed's second half in C. Pool.map takes functions of one
 * argument; to map Multi(x, y, z) over x, bind y and z into a functor, or
 * map Multi itself over (x, y, z) tuples with starmap.
 *
 * Python:  def Multi(x, y, z):
 *              return z * (x * z + y)
 *          Instance = Functor(2, 3)
 *          Instance(0)                          # 6
 *          Instance(1)                          # 15
 *          p = mp.Pool()
 *          p.map(Instance, [1, 2, 3, 4, 5])     # [15, 24, 33, 42, 51]
 * With no arguments the program prints those three facts, the list last.
 * With arguments it maps Functor(Y, Z) over the X values and prints the list.
 *
 * Usage: functor [-t] [-b] [-j WORKERS] [-d MS] [Y Z [X...]]
 *   -j WORKERS  worker processes (the number of CPUs, as mp.Pool())
 *   -d MS       each item first sleeps MS milliseconds, as real work would
 *   -t          starmap: map Multi over the tuples (X, Y, Z) instead
 *   -b          buggy: send the workers the functor's address, not the
 *               functor; they see their own stale copy, Functor(0, 0)
 * Every number must lie within -1000000..1000000, so that Multi fits in a
 * long long; -- before Y lets negative numbers follow.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "functor.h"
#include "pool.h"

#define MAX_VALUES 1000000L     /* X values on one command line, at most */
#define DEFAULT_WORKERS 4       /* where the CPUs cannot be counted */
#define MAX_DELAY_MS 10000      /* -d: at most 10 s an item */

struct options {
    long workers;               /* -j: worker processes */
    long delay_ms;              /* -d: sleep before each item */
    int star;                   /* -t: starmap instead of map */
    int buggy;                  /* -b: send the functor's address */
    int demo;                   /* no operands: the seed's example */
    long long y, z;             /* Y and Z, bound into the functor */
    long long *xs;              /* the X values */
    long n;                     /* how many */
};

const char progname[] = "functor";

/* -d, set before the pool starts, so that every worker has its own copy
 * (fork() copies the parent's memory). */
static long delay_ms;

/*
 * The functor the program maps: Python's module-level Instance. It is made
 * only after the pool has started, so the workers' copies of this variable
 * still hold Functor(0, 0): they must be sent the functor itself.
 */
static struct functor instance = {multi, 0, 0};

/* ---- the functor ------------------------------------------------------- */

long long
multi(long long x, long long y, long long z)
{
    /* TODO(04): the seed's Multi: z times (x times z, plus y). */
    (void)x;
    (void)y;
    (void)z;
    return 0;
}

struct functor
functor_make(long long (*fn)(long long, long long, long long),
             long long y, long long z)
{
    /* TODO(04): a functor that holds fn and the two bound values, by value,
     * as Functor.__init__ keeps self.y and self.z. */
    (void)y;
    (void)z;
    return (struct functor){.fn = fn};
}

long long
functor_call(const struct functor *f, long long x)
{
    /* TODO(04): what __call__ does: the function f holds, given x first,
     * then the values f bound. */
    (void)f;
    (void)x;
    return 0;
}

/*
 * Multi after a sleep of delay_ms (-d), as a real task would take time: the
 * function mapped when -d is given, so that a test can find every worker in
 * the middle of a task.
 */
static long long
slow_multi(long long x, long long y, long long z)
{
    struct timespec left = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        continue;
    return multi(x, y, z);
}

/* ---- the command line -------------------------------------------------- */

/* Print one line about bad usage and exit 2. */
static _Noreturn void
usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s '%s' (try -h)\n", progname, msg, arg);
    exit(2);
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
        char msg[100];

        snprintf(msg, sizeof msg, "%s must be a number from %lld to %lld, not",
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
 * Exit 1 with one message when what was written to stdout did not all
 * arrive (a full disk, a closed stdout): fflush() meets the failure now, or
 * an earlier printf() met it and left the stream's error flag set.
 */
static void
check_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == EOF || ferror(stdout))
        fail("stdout: %s", errno != 0 ? strerror(errno) : "write error");
}

static void
print_usage(void)
{
    printf("usage: %s [-t] [-b] [-j WORKERS] [-d MS] [Y Z [X...]]\n"
           "With no Y and Z, runs the seed's example: Instance = "
           "Functor(2, 3),\nInstance(0), Instance(1), "
           "p.map(Instance, [1, 2, 3, 4, 5]).\n"
           "Else maps Functor(Y, Z) over the X values, Multi(x, y, z) =\n"
           "z * (x * z + y), and prints the list. Numbers: -%lld..%lld.\n"
           "  -j WORKERS  worker processes (default: one per CPU)\n"
           "  -d MS       each item first sleeps MS milliseconds\n"
           "  -t          starmap Multi over the tuples (X, Y, Z) instead\n"
           "  -b          buggy: send the functor's address, not its value\n",
           progname, MULTI_LIMIT, MULTI_LIMIT);
}

/* Take Y, Z and the X values from argv[first..argc-1], or the seed's. */
static void
parse_operands(int argc, char **argv, int first, struct options *o)
{
    static long long seed_xs[] = {1, 2, 3, 4, 5};

    o->demo = first == argc;
    if (o->demo) {
        o->y = 2;
        o->z = 3;
        o->xs = seed_xs;
        o->n = 5;
        return;
    }
    if (argc - first < 2)
        usage_error("needs Y and Z, then the X values, as in",
                    "functor 2 3 1 2");
    if (argc - first - 2 > MAX_VALUES)
        usage_error("too many X values, at most", "1000000");
    o->y = parse_number(argv[first], -MULTI_LIMIT, MULTI_LIMIT, "Y");
    o->z = parse_number(argv[first + 1], -MULTI_LIMIT, MULTI_LIMIT, "Z");
    o->n = argc - first - 2;
    o->xs = malloc((size_t)(o->n > 0 ? o->n : 1) * sizeof *o->xs);
    if (o->xs == NULL)
        die("malloc");
    for (long i = 0; i < o->n; i++)
        o->xs[i] = parse_number(argv[first + 2 + i], -MULTI_LIMIT,
                                MULTI_LIMIT, "X");
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = cpu_count()};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":htbj:d:")) != -1) {
        switch (opt) {
        case 'h': print_usage(); check_stdout(); exit(0);
        case 't': o->star = 1; break;
        case 'b': o->buggy = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, POOL_MAX_WORKERS, "-j");
            break;
        case 'd':
            o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (o->star && o->buggy)
        usage_error("-b shows a bug of map; it does not go with", "-t");
    parse_operands(argc, argv, optind, o);
}

/* ---- the program ------------------------------------------------------- */

/*
 * Make sure that descriptors 0, 1 and 2 are open before the program opens
 * any: a closed one gets /dev/null (open() returns the lowest free
 * descriptor), read-only, so that a write to a stdout that was closed still
 * fails (EBADF) and is reported. Else a pipe() could take number 1, and
 * what the program prints would go down a worker's pipe. Exits 1 on
 * failure.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", O_RDONLY) == -1) {
            fprintf(stderr, "%s: open /dev/null: %s\n", progname,
                    strerror(errno));
            exit(1);
        }
}

/* The tuples (x, y, z) for starmap, one per X value: a new array. */
static long long *
make_tuples(const struct options *o)
{
    long long *args = calloc((size_t)(o->n > 0 ? o->n : 1) * STAR_WIDTH,
                             sizeof *args);

    if (args == NULL)
        die("calloc");
    /* TODO(04): one tuple per X value, STAR_WIDTH values each, in order:
     * (x, Y, Z), as Python's [(x, y, z) for x in xs]. */
    return args;
}

/* Print out[0..n-1] as Python prints a list: [15, 24, 33]. */
static void
print_list(const long long *out, long n)
{
    putchar('[');
    for (long i = 0; i < n; i++)
        printf(i == 0 ? "%lld" : ", %lld", out[i]);
    printf("]\n");
}

int
main(int argc, char **argv)
{
    struct options o;
    struct pool pool;
    long long *out;
    int result;

    open_standard_fds();
    parse_options(argc, argv, &o);
    delay_ms = o.delay_ms;
    out = calloc((size_t)(o.n > 0 ? o.n : 1), sizeof *out);
    if (out == NULL)
        die("calloc");

    pool_start(&pool, o.workers);       /* the workers fork here ... */
    pool.by_pointer = o.buggy;
    /* ... before this is made */
    instance = functor_make(o.delay_ms > 0 ? slow_multi : multi, o.y, o.z);
    if (o.demo) {
        printf("Instance(0) = %lld\n", functor_call(&instance, 0));
        printf("Instance(1) = %lld\n", functor_call(&instance, 1));
    }
    if (o.star) {
        long long *args = make_tuples(&o);

        pool_starmap(&pool, o.delay_ms > 0 ? slow_multi : multi, args, o.n,
                     out);
        free(args);
    } else {
        pool_map(&pool, &instance, o.xs, o.n, out);
    }
    result = pool_stop(&pool);

    print_list(out, o.n);
    check_stdout();
    if (!o.demo)
        free(o.xs);
    free(out);
    return result;
}
