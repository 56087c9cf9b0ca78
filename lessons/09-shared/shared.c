/* SPDX-License-Identifier: MIT */
/*
 * shared.c: a map whose input and output are in shared memory: nothing is
 * copied through a pipe, and the workers claim chunks for themselves.
 *
 * Python:  xs = Array('q', range(n), lock=False)   # shared, as here
 *          out = Array('q', n, lock=False)
 *          ... workers fill out[i] = sqr(xs[i]) in place ...
 *          print(list(out))
 * Here the parent maps the arrays before it forks the workers (smap.c),
 * each worker claims the next chunk with an atomic counter, and the parent
 * prints the list as Python prints it: [0, 1, 4, 9].
 *
 * Usage: shared [-lv] [-j WORKERS] [-c CHUNKSIZE] [-d MAXMS] [-s SEED] N
 *   -j WORKERS    worker processes (the number of CPUs, as mp.Pool())
 *   -c CHUNKSIZE  items per chunk (Python's default: ceil(N / 4j))
 *   -d MAXMS      each item first sleeps a random 0..MAXMS milliseconds
 *   -s SEED       seed for those sleeps (1)
 *   -l            worker 0 lags: it starts its first chunk only once every
 *                 chunk has been claimed, so the others must claim the rest
 *   -v            report on stderr: chunks, who did them, time
 * Exit status: 0, also when a worker died (its chunk is run again, and one
 * line says so); 1 when the program fails (one line); 2 for bad usage.
 * Environment: FORKLINGS_FD_REPORT=FILE appends to FILE, at exit, the
 * descriptors above 2 and the shared writable mappings still there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smap.h"

#define MAX_ITEMS 10000000L     /* more is surely a typo */
#define MAX_DELAY_MS 1000
#define MAX_SEED 2147483647L
#define DEFAULT_WORKERS 4       /* where the CPUs cannot be counted */
#define MAX_FDS_PROBED 1024     /* the report looks at descriptors below */

struct options {
    long workers;               /* -j: worker processes */
    long chunksize;             /* -c: items per chunk; 0: the default */
    long delay_ms;              /* -d: longest sleep before an item */
    long seed;                  /* -s: seed of the sleeps */
    int lag;                    /* -l: worker 0 waits for the others */
    int verbose;                /* -v: report on stderr */
    long n;                     /* N: map over 0..N-1 */
};

const char progname[] = "shared";

/* Set before the workers start, so every worker has its own copy. */
static long delay_max_ms;       /* -d */
static unsigned long long delay_seed;   /* -s */
static int lag;                 /* -l */
static struct smap map;         /* the map; -l reads its counter */
static pid_t main_pid;          /* the report is the parent's alone */

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
    return n < SMAP_MAX_WORKERS ? n : SMAP_MAX_WORKERS;
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
    printf("usage: %s [-lv] [-j WORKERS] [-c CHUNKSIZE] [-d MAXMS] [-s SEED] N\n"
           "Maps sqr over 0..N-1 in shared memory, the workers claiming\n"
           "chunks with an atomic counter, and prints the list in input\n"
           "order, as Python's print([x * x for x in range(N)]).\n"
           "  -j WORKERS    worker processes (default: one per CPU)\n"
           "  -c CHUNKSIZE  items per chunk (default: ceil(N / (4 * WORKERS)))\n"
           "  -d MAXMS      each item first sleeps a random 0..MAXMS ms\n"
           "  -s SEED       seed for those sleeps (default 1)\n"
           "  -l            worker 0 starts only once every chunk is claimed\n"
           "  -v            report chunks, who did them, and time on stderr\n",
           progname);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = cpu_count(), .seed = 1};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hlvj:c:d:s:")) != -1) {
        switch (opt) {
        case 'h': print_usage(); flush_stdout(); exit(0);
        case 'l': o->lag = 1; break;
        case 'v': o->verbose = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, SMAP_MAX_WORKERS, "-j");
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
        usage_error("missing the count N, as in", "shared 10");
    o->n = parse_number(argv[optind], 0, MAX_ITEMS, "N");
    if (optind + 1 < argc)
        usage_error("unexpected argument", argv[optind + 1]);
    if (o->lag && o->workers < 2)       /* worker 0 would wait for ever */
        usage_error("-l needs another worker to claim the chunks, as in",
                    "shared -l -j 2 10");
}

/* Sleep ms milliseconds, through signals. */
static void
sleep_ms(long ms)
{
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) == -1)
        if (errno != EINTR)
            die("nanosleep");
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
 * The function to map, as the Python sqr(x). With -d it first sleeps
 * 0..delay_max_ms milliseconds, a time that depends only on the seed and
 * x. With -l, worker 0's first call waits until every chunk is claimed:
 * SIMPLIFICATION: a test aid, it looks at the counter every millisecond.
 */
static long long
sqr(long long x)
{
    static int waited;          /* each worker's own copy */

    if (lag && smap_self == 0 && !waited) {
        while (!smap_all_claimed(map.sh))
            sleep_ms(1);
        waited = 1;
    }
    if (delay_max_ms > 0)
        sleep_ms((long)(mix(delay_seed ^ mix((unsigned long long)x)) %
                        (unsigned long long)(delay_max_ms + 1)));
    return x * x;
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

/* The -v line: who did how many chunks. */
static void
report(const struct smap *m, const struct options *o, long chunksize,
       double ms)
{
    fprintf(stderr, "%s: %ld items, %ld workers, chunksize %ld, %ld chunks; "
            "done by each worker:", progname, o->n, o->workers, chunksize,
            m->sh->nchunks);
    for (long w = 0; w < m->nworkers; w++)
        fprintf(stderr, " %ld", m->done_by[w]);
    fprintf(stderr, "; run again by the parent: %ld; time %.1f ms\n",
            m->rerun, ms);
}

/*
 * At exit, in the parent, append "PID: fds FD=WHAT...; shared maps [NAME]..."
 * to $FORKLINGS_FD_REPORT: the descriptors above 2 still open (fcntl() fails
 * with EBADF exactly on those that are not), and the writable shared
 * mappings in /proc/self/maps (Linux), "none" for each when there are none.
 * A teaching aid: it never fails the program.
 */
static void
report_resources(void)
{
    const char *path = getenv("FORKLINGS_FD_REPORT");
    char line[2048], row[512];
    int len, fd, found = 0;
    FILE *maps;

    if (path == NULL || *path == '\0' || getpid() != main_pid)
        return;
    len = snprintf(line, sizeof line, "%ld: fds", (long)getpid());
    for (fd = 3; fd < MAX_FDS_PROBED && len < 1000; fd++)
        if (fcntl(fd, F_GETFD) != -1) {
            char link[64], what[200];
            ssize_t n;

            /* Linux names it: a file's path, or pipe:[INODE] */
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            n = readlink(link, what, sizeof what - 1);
            what[n > 0 ? n : 0] = '\0';
            len += snprintf(line + len, sizeof line - (size_t)len,
                            n > 0 ? " %d=%s" : " %d", fd, what);
            found = 1;
        }
    len += snprintf(line + len, sizeof line - (size_t)len, "%s; shared maps",
                    found ? "" : " none");
    found = 0;
    if ((maps = fopen("/proc/self/maps", "r")) != NULL) {
        while (fgets(row, sizeof row, maps) != NULL && len < 1900) {
            char perms[8] = "", *name;

            /* "START-END PERMS OFFSET DEV INODE NAME": rw-s is shared */
            if (sscanf(row, "%*s %7s", perms) != 1 || strcmp(perms, "rw-s") != 0)
                continue;
            row[strcspn(row, "\n")] = '\0';
            name = strchr(row, '/');
            len += snprintf(line + len, sizeof line - (size_t)len, " [%s]",
                            name != NULL ? name : "anonymous");
            found = 1;
        }
        fclose(maps);
    }
    len += snprintf(line + len, sizeof line - (size_t)len, "%s\n",
                    found ? "" : " none");
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644)) == -1)
        return;
    if (write(fd, line, (size_t)len) != len)
        fprintf(stderr, "%s: cannot write the resource report\n", progname);
    close(fd);
}

int
main(int argc, char **argv)
{
    struct options o;
    long chunksize;
    double t0;

    parse_options(argc, argv, &o);
    delay_max_ms = o.delay_ms;
    delay_seed = (unsigned long long)o.seed;
    lag = o.lag;
    main_pid = getpid();
    if (atexit(report_resources) != 0)
        fail("atexit failed");
    chunksize = o.chunksize > 0 ? o.chunksize
                                : default_chunksize(o.n, o.workers);

    t0 = now_ms();
    smap_start(&map, sqr, o.n, o.workers, chunksize);
    smap_wait(&map);
    if (o.verbose)
        report(&map, &o, chunksize, now_ms() - t0);
    print_list(map.out, o.n);
    smap_end(&map);
    return 0;
}
