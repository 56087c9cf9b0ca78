/* SPDX-License-Identifier: MIT */
/*
 * hello-pool.c: a pool of worker processes, the seed's first programs in C.
 *
 * Python:  with mp.Pool(10) as p:
 *              p.map(fx, range(100))
 * Here the parent forks WORKERS children; each worker runs fx() on its share
 * of the tasks and leaves with _exit(); the parent then reaps every worker.
 * The workers run at the same time, so the lines come out in whatever order
 * the workers reach them, as in Python. A greeting that cannot be written
 * (a full disk, a closed stdout) ends its worker with WORKER_CANNOT_WRITE,
 * and the parent reports it once, for all the workers.
 *
 * Usage: hello-pool [-j WORKERS] [-n TASKS] [-s START] [-d MS] [-w]
 *   -j WORKERS  worker processes (10, as mp.Pool(10))
 *   -n TASKS    how many tasks (100)
 *   -s START    number of the first task (0); -s 1 -n 9 is the seed's first
 *               program, p.map(fx, [1, 2, ..., 9])
 *   -d MS       each task first sleeps MS milliseconds, as real work would
 *   -w          tag each line with the pid of the worker that printed it
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "trace.h"

#define PROG "hello-pool"
#define MAX_WORKERS 1024    /* more is surely a typo */
#define MAX_TASKS 100000000L
#define MAX_DELAY_MS 10000
#define WORKER_CANNOT_WRITE 74  /* worker's status: stdout failed (EX_IOERR) */

struct options {
    long workers;   /* -j: how many worker processes */
    long tasks;     /* -n: how many tasks */
    long start;     /* -s: number of the first task */
    long delay_ms;  /* -d: sleep before each task */
    int tag;        /* -w: append the worker's pid to each line */
};

static pid_t parent_pid;        /* the parent's pid, saved before the forks */
static long write_failures;     /* workers that exited WORKER_CANNOT_WRITE */

/* Print "hello-pool: WHAT: reason" and exit 1. */
static _Noreturn void
die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(errno));
    exit(1);
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

/*
 * Make sure descriptors 0, 1 and 2 are open before the program opens one
 * of its own (daemon hygiene): started with one closed (`hello-pool >&-`),
 * it would get that number back from open(), and the greetings would go
 * into the POOL_TRACE file. Each closed one gets /dev/null, read-only
 * (open() returns the lowest free number, so fd itself), and a write to a
 * stdout that was closed still fails (EBADF). Exits 1 on failure.
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
 * In a new worker, right after fork() (given code; lesson 07 explains it):
 * make sure it does not outlive the parent, which it would by all its
 * tasks. On Linux the kernel sends it SIGKILL when the parent dies; mind
 * that PR_SET_PDEATHSIG fires when the parent *thread* that forked exits
 * (this program has one). A parent that died before the call sends
 * nothing, so the worker compares getppid() with `parent`, the pid saved
 * before fork(), and leaves at once if they differ. macOS has no
 * PDEATHSIG: there a worker runs its tasks to the end, printing each.
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

/* Print one line about bad usage and exit 2. */
static _Noreturn void
usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s '%s' (try -h)\n", PROG, msg, arg);
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

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = 10, .tasks = 100};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hj:n:s:d:w")) != -1) {
        switch (opt) {
        case 'h':
            printf("usage: %s [-j WORKERS] [-n TASKS] [-s START] [-d MS] [-w]\n"
                   "Prints 'hello for Nth time!' for tasks START..START+TASKS-1\n"
                   "from a pool of WORKERS processes (default: 10 workers,\n"
                   "tasks 0..99; -s 1 -n 9 is the seed's first program).\n"
                   "  -d MS  each task sleeps MS milliseconds first\n"
                   "  -w     tag each line with the worker's pid\n", PROG);
            flush_stdout();
            exit(0);
        case 'j': o->workers = parse_number(optarg, 1, MAX_WORKERS, "-j"); break;
        case 'n': o->tasks = parse_number(optarg, 0, MAX_TASKS, "-n"); break;
        case 's': o->start = parse_number(optarg, -MAX_TASKS, MAX_TASKS, "-s"); break;
        case 'd': o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d"); break;
        case 'w': o->tag = 1; break;
        case ':': usage_error("option needs a value:", argv[optind - 1]); break;
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);
}

/* The task, as the seed's fx(x): print one greeting. */
static void
fx(long x, const struct options *o)
{
    long long start = trace_now();

    if (o->delay_ms > 0)        /* ignored: a signal only cuts it short */
        (void)nanosleep(&(struct timespec){o->delay_ms / 1000,
                                           (o->delay_ms % 1000) * 1000000L},
                        NULL);
    if (o->tag)
        printf("hello for %ldth time! (worker %ld)\n", x, (long)getpid());
    else
        printf("hello for %ldth time!\n", x);
    /* One line, one write(): a line of at most PIPE_BUF bytes reaches a
     * pipe whole, never torn by another worker's line. A failed write is
     * said once, by the parent (judge_worker()), not by every worker. */
    if (fflush(stdout) == EOF)
        _exit(WORKER_CANNOT_WRITE);
    trace_task(x, 1, start, trace_now());   /* for make trace; see trace.h */
}

/*
 * The body of worker number `w`: run every task whose position i (counted
 * from 0) has i % workers == w, then leave. Never returns.
 * SIMPLIFICATION: tasks are dealt out in a fixed pattern, decided before the
 * fork; lesson 03 hands them out one message at a time, as a real pool does.
 */
static _Noreturn void
worker_main(long w, const struct options *o)
{
    die_with_parent(parent_pid);
    /* TODO(02): run fx() on every task of this worker's share, as the
     * contract above says (position i is task number o->start + i), so that
     * the workers together run each task exactly once. Then leave with
     * _exit(0): a worker that returned would go on round the parent's fork
     * loop and fork workers of its own. */
    (void)w;
    (void)o;
    (void)fx;                   /* delete these three lines when done */
    _exit(0);
}

/*
 * Fork o->workers workers, each running worker_main(). Returns how many
 * were started; when fork() fails, stops there and returns the count so
 * far, with errno still saying why (main() reports it).
 */
static long
start_workers(const struct options *o)
{
    long started = 0;

    /* TODO(02): fork the o->workers workers, all of them before any is
     * waited for, so that they run at the same time. Child number w (from 0)
     * runs worker_main() as worker w and never comes back here; the parent
     * counts it in `started`. If a fork fails, return at once: errno
     * still says why, for main() to report. As in lesson 01, no stdio buffer
     * may hold unwritten text at a fork. */
    (void)o;
    (void)worker_main;          /* delete these two lines when done */
    return started;
}

/*
 * Judge one reaped worker and return the program's result so far, updated.
 * A clean exit changes nothing. A worker killed by SIGPIPE (its reader went
 * away, as in `hello-pool | head -3`) makes it 128 + SIGPIPE, quietly, as the
 * shell reports a process killed by that signal. A worker that could not
 * write makes it 1, quietly too: main() says it once for all of them. Any
 * other end is reported on stderr and makes it 1.
 */
static int
judge_worker(pid_t pid, int status, int result)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return result;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
        return result == 0 ? 128 + SIGPIPE : result;
    if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_CANNOT_WRITE) {
        write_failures++;
        return 1;
    }
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: worker %ld killed by signal %d\n", PROG,
                (long)pid, WTERMSIG(status));
    else
        fprintf(stderr, "%s: worker %ld exited with status %d\n", PROG,
                (long)pid, WEXITSTATUS(status));
    return 1;
}

/*
 * Wait for every child until none is left, judging each. Returns the
 * program's result: 0 when every worker exited with status 0.
 */
static int
reap_workers(void)
{
    int result = 0;

    /* TODO(02): reap every child, in whatever order they end, and pass
     * each one's pid and status to judge_worker(), keeping the result it
     * returns. A child not reaped stays a zombie for as long as the parent
     * runs. Only "no child left" (ECHILD) ends the waiting normally; a
     * signal that cuts a wait() short is no error; any other is fatal. */
    (void)judge_worker;         /* delete these two lines when done */
    (void)die;
    return result;
}

int
main(int argc, char **argv)
{
    struct options o;
    long started, wanted;
    long long waited;
    int result;

    open_standard_fds();
    parse_options(argc, argv, &o);
    if (o.workers > o.tasks && o.tasks > 0)
        o.workers = o.tasks;    /* a worker with no task is pointless */
    wanted = o.tasks > 0 ? o.workers : 0;
    trace_open(PROG);
    parent_pid = getpid();
    errno = 0;                  /* a fork() that fails sets it */
    started = wanted > 0 ? start_workers(&o) : 0;
    /* SIMPLIFICATION: when fork() fails, the workers already started run
     * their shares to the end, so only some greetings come out; lesson 03's
     * workers wait for their tasks, and a pool that cannot start ends them
     * before any work is done. */
    if (started < wanted && errno == 0) /* no fork() failed: it stopped early */
        fprintf(stderr, "%s: start_workers() started %ld of %ld workers, yet no fork() failed\n",
                PROG, started, wanted);
    else if (started < wanted)
        fprintf(stderr,
                "%s: fork: %s: started %ld of %ld workers, so only their greetings come out\n",
                PROG, strerror(errno), started, wanted);
    waited = trace_now();
    result = reap_workers();
    trace_wait(waited, trace_now());
    if (write_failures > 0)
        fprintf(stderr,
                "%s: stdout: write error: %ld of %ld workers could not write their greetings\n",
                PROG, write_failures, started);
    if (started < wanted)
        return 1;               /* fork failed: some tasks never ran */
    return result;
}
