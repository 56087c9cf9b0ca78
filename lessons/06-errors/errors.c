/* SPDX-License-Identifier: MIT */
/*
 * errors.c: a failed task is an error, never a hang.
 *
 * Python:  Instance = Functor(2, 3)
 *          with mp.Pool(4) as p:
 *              print(p.map(Instance, range(N)))
 * When Instance raises, Python's map re-raises the exception in the caller;
 * but when a worker process dies in the middle of a task (a signal, or
 * exit()), Pool.map waits for ever. Here every failure of a task reaches
 * the caller as an error that names the task: the program prints it on
 * stderr, prints no list, and exits with status 1. The map stops at the
 * first failure, and stops every worker before it returns.
 *
 * Options choose tasks that go wrong, each in its own way, so that every
 * kind of failure can be tried at any place in the map.
 *
 * Usage: errors [-v] [-j WORKERS] [-d MS] [-t MS] [-f TASKS] [-s TASKS]
 *               [-k TASKS] [-x TASKS] [-H TASKS] N
 *   N           map Instance over 0..N-1: task i computes Instance(i)
 *   -j WORKERS  worker processes (4)
 *   -d MS       each task first sleeps MS milliseconds, as real work would
 *   -t MS       a task that runs longer fails; its worker is killed (no limit)
 *   -f TASKS    these tasks fail: the function reports an error
 *   -s TASKS    these tasks crash: their worker dies of SIGSEGV
 *   -k TASKS    these tasks' workers are killed: SIGKILL
 *   -x TASKS    these tasks call exit(3) in their middle
 *   -H TASKS    these tasks hang, until -t ends them
 *   -v          on stderr, with the time since the start: each failure made
 *               on purpose, and the end of the map
 * TASKS: task numbers and ranges, separated by commas, as 3,7 or 0-9.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "functor.h"
#include "pool.h"

#define MAX_TASKS 1000000L      /* one round trip per task: more is slow */
#define MAX_DELAY_MS 10000
#define MAX_TIMEOUT_MS 3600000L
#define EXIT_STATUS 3           /* what -x tasks pass to exit() */

/* The cleanup attribute of lesson 05 (GCC and Clang). */
#if defined(__GNUC__) || defined(__clang__)
#define AUTO(fn) __attribute__((cleanup(fn)))
#else
#error "the cleanup attribute needs GCC or Clang: see lesson 05"
#endif
#define AUTO_POOL AUTO(pool_release)
#define AUTO_FREE AUTO(numbers_free)

/* What the options make a task do, besides its work: one letter per kind,
 * the option's letter; 0 for nothing. */
static const char failure_kinds[] = "fskxH";

struct options {
    long workers;               /* -j: worker processes */
    long delay_ms;              /* -d: sleep before each task */
    long timeout_ms;            /* -t: a task's deadline; 0: none */
    int verbose;                /* -v: timings on stderr */
    const char *lists[sizeof failure_kinds - 1]; /* -f, -s, ...: TASKS */
    long n;                     /* N: the number of tasks */
};

static long long faulty_multi(long long x, long long y, long long z);

const char progname[] = "errors";

/*
 * Set before the pool starts, so that every worker has its own copy (fork()
 * copies the parent's memory): what each task does (plan[i] is 0 or a
 * letter of failure_kinds), the delay, -v, and the time of the start.
 */
static char *plan;
static long delay_ms;
static int verbose;
static double start_ms;

/* The functor to map, the seed's Instance = Functor(2, 3), with Multi made
 * to fail as the plan says. */
static const struct functor instance = {.fn = faulty_multi, .y = 2, .z = 3};

/* ---- command line ---------------------------------------------------- */

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

/*
 * Flush stdout and check that all that was written to it arrived (a full
 * disk or a closed stdout fails a write): fflush() meets the failure now,
 * or an earlier printf() met it and left the stream's error flag set.
 * Returns 0, or -1 after one message.
 */
static int
flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == EOF || ferror(stdout))
        return report("stdout: %s",
                      errno != 0 ? strerror(errno) : "write error");
    return 0;
}

static void
print_usage(void)
{
    printf("usage: %s [-v] [-j WORKERS] [-d MS] [-t MS] [-f TASKS] [-s TASKS]"
           "\n              [-k TASKS] [-x TASKS] [-H TASKS] N\n"
           "Maps the seed's Instance = Functor(2, 3) over 0..N-1 with a pool"
           " of\nworker processes and prints the list, unless a task fails:"
           " then it\nnames the task and how it failed, and exits with"
           " status 1.\n"
           "  -j WORKERS  worker processes (default 4)\n"
           "  -d MS       each task first sleeps MS milliseconds\n"
           "  -t MS       a task running longer fails; its worker is killed\n"
           "  -f TASKS    these tasks fail: the function reports an error\n"
           "  -s TASKS    these tasks crash: SIGSEGV\n"
           "  -k TASKS    these tasks' workers are killed: SIGKILL\n"
           "  -x TASKS    these tasks call exit(%d)\n"
           "  -H TASKS    these tasks hang (until -t ends them)\n"
           "  -v          report timings on stderr\n"
           "TASKS: numbers and ranges with commas, as 3,7 or 0-9.\n",
           progname, EXIT_STATUS);
}

/*
 * Mark in plan[0..n-1] the tasks of list s ("3,7" or "0-9") with kind.
 * Exits 2 on a malformed list, a task out of range, or a task that another
 * list names already.
 */
static void
mark_tasks(const char *s, char kind, long n)
{
    char item[64];

    for (const char *p = s, *comma; p != NULL; p = comma ? comma + 1 : NULL) {
        size_t len = (comma = strchr(p, ',')) ? (size_t)(comma - p) : strlen(p);
        char *dash;
        long from, to;

        if (len >= sizeof item)
            usage_error("a task list item is too long:", p);
        memcpy(item, p, len);
        item[len] = '\0';
        if ((dash = strchr(item + (len > 0), '-')) != NULL)
            *dash = '\0';      /* a range; item + 1: a sign is no dash */
        from = parse_number(item, 0, n - 1, "a task");
        to = dash ? parse_number(dash + 1, from, n - 1, "a task") : from;
        for (long i = from; i <= to; i++) {
            if (plan[i] != 0 && plan[i] != kind) {
                snprintf(item, sizeof item, "%ld", i);
                usage_error("a task in two lists: task", item);
            }
            plan[i] = kind;
        }
    }
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = 4};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hvj:d:t:f:s:k:x:H:")) != -1) {
        switch (opt) {
        case 'h': print_usage(); exit(flush_stdout() == 0 ? 0 : 1);
        case 'v': o->verbose = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, POOL_MAX_WORKERS, "-j");
            break;
        case 'd':
            o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case 't':
            o->timeout_ms = parse_number(optarg, 1, MAX_TIMEOUT_MS, "-t");
            break;
        case 'f': case 's': case 'k': case 'x': case 'H':
            o->lists[strchr(failure_kinds, opt) - failure_kinds] = optarg;
            break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (optind == argc)
        usage_error("missing the number of tasks N, as in", "errors 10");
    o->n = parse_number(argv[optind], 0, MAX_TASKS, "N");
    if (optind + 1 < argc)
        usage_error("unexpected argument", argv[optind + 1]);
}

/* Fill plan[] from the lists of the options. Exits 2 on a bad list. */
static void
make_plan(const struct options *o)
{
    plan = calloc((size_t)(o->n > 0 ? o->n : 1), 1);
    if (plan == NULL) {
        perror("errors: calloc");
        exit(1);
    }
    for (size_t k = 0; k < sizeof o->lists / sizeof o->lists[0]; k++)
        if (o->lists[k] != NULL)
            mark_tasks(o->lists[k], failure_kinds[k], o->n);
}

/* ---- the mapped function ---------------------------------------------- */

/* Milliseconds since the program started, for -v. */
static double
since_start(void)
{
    return now_ms() - start_ms;
}

/*
 * Do what the plan says for task x (a chosen failure), after the delay of
 * -d; then, if still here, return Multi(x, y, z). Here x is the task's
 * index, since the program maps over 0..N-1.
 */
static long long
faulty_multi(long long x, long long y, long long z)
{
    struct timespec left = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    char how = plan[x];

    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        continue;
    if (how != 0 && verbose)
        fprintf(stderr, "%s: -v: %.1f ms: worker %ld fails task %lld (-%c)\n",
                progname, since_start(), (long)getpid(), x, how);
    switch (how) {
    case 'f':                   /* as a Python function raises */
        pool_task_error("the function failed on x = %lld (-f)", x);
        return 0;
    case 's':
        setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* no core file */
        signal(SIGSEGV, SIG_DFL);   /* a sanitizer's handler would catch it */
        raise(SIGSEGV);
        break;
    case 'k':
        raise(SIGKILL);
        break;
    case 'x':
        exit(EXIT_STATUS);      /* not _exit(): as a careless library would */
    case 'H':
        for (;;)
            pause();            /* until a signal kills it */
    }
    return multi(x, y, z);
}

/* ---- the program ------------------------------------------------------ */

/* Free *xs and make it NULL: the cleanup function of AUTO_FREE. */
static void
numbers_free(long long **xs)
{
    free(*xs);
    *xs = NULL;
}

/* Print out[0..n-1] as Python prints a list: [6, 15, 24]. */
static int
print_list(const long long *out, long n)
{
    putchar('[');
    for (long i = 0; i < n; i++)
        printf(i == 0 ? "%lld" : ", %lld", out[i]);
    printf("]\n");
    return flush_stdout();
}

/*
 * Map Instance over 0..n-1 and print the list; on a failed task, print the
 * error instead. Returns the exit status: 0; or 1 after a message.
 */
static int
run(const struct options *o)
{
    size_t size = (size_t)(o->n > 0 ? o->n : 1) * sizeof(long long);
    long long *xs AUTO_FREE = malloc(size);
    long long *out AUTO_FREE = calloc(1, size);
    struct pool pool AUTO_POOL = POOL_INIT;
    struct pool_error err;
    int status = 1;

    if (xs == NULL || out == NULL)
        return report_errno("malloc") == -1;    /* 1 */
    for (long i = 0; i < o->n; i++)
        xs[i] = i;              /* range(n) */
    if (pool_start(&pool, o->workers) == -1)
        return 1;
    pool.timeout_ms = o->timeout_ms;
    if (pool_map(&pool, &instance, xs, o->n, out, &err) == -1) {
        char text[POOL_REASON_MAX + 100];

        if (err.kind != POOL_BROKEN)    /* else reported already */
            report("%s", pool_error_text(&err, text, sizeof text));
    } else if (pool_join(&pool) == 0 && print_list(out, o->n) == 0) {
        status = 0;
    }
    if (o->verbose)
        fprintf(stderr, "%s: -v: %.1f ms: the map is over, every worker "
                "reaped\n", progname, since_start());
    return status;
}

/*
 * Make sure that descriptors 0, 1 and 2 are open before the program opens
 * any: a closed one gets /dev/null (open() returns the lowest free
 * descriptor), read-only, so that a write to a stdout that was closed still
 * fails (EBADF) and is reported. Else a pipe() could take number 1 or 2,
 * and what the program prints would go down a worker's pipe. Exits 1 on
 * failure.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", O_RDONLY) == -1) {
            report_errno("open /dev/null");
            exit(1);
        }
}

int
main(int argc, char **argv)
{
    struct options o;
    int status;

    start_ms = now_ms();
    open_standard_fds();
    parse_options(argc, argv, &o);
    make_plan(&o);
    delay_ms = o.delay_ms;
    verbose = o.verbose;
    status = run(&o);
    free(plan);
    return status;
}
