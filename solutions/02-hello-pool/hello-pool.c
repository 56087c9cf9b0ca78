/* SPDX-License-Identifier: MIT */
/*
 * hello-pool.c: a pool of worker processes, the seed's first programs in C.
 *
 * Python:  with mp.Pool(10) as p:
 *              p.map(fx, range(100))
 * Here the parent forks WORKERS children; each worker runs fx() on its share
 * of the tasks and leaves with _exit(); the parent then reaps every worker.
 * The workers run at the same time, so the lines come out in whatever order
 * the workers reach them, as in Python.
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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

#define PROG "hello-pool"
#define MAX_WORKERS 1024    /* more is surely a typo */
#define MAX_TASKS 100000000L
#define MAX_DELAY_MS 10000

struct options {
    long workers;   /* -j: how many worker processes */
    long tasks;     /* -n: how many tasks */
    long start;     /* -s: number of the first task */
    long delay_ms;  /* -d: sleep before each task */
    int tag;        /* -w: append the worker's pid to each line */
};

/* Print "hello-pool: WHAT: reason" and exit 1. */
static _Noreturn void
die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(errno));
    exit(1);
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

    if (o->delay_ms > 0)
        nanosleep(&(struct timespec){o->delay_ms / 1000,
                                     (o->delay_ms % 1000) * 1000000L}, NULL);
    if (o->tag)
        printf("hello for %ldth time! (worker %ld)\n", x, (long)getpid());
    else
        printf("hello for %ldth time!\n", x);
    /* One line, one write(): a line of at most PIPE_BUF bytes reaches a
     * pipe whole, never torn by another worker's line. */
    if (fflush(stdout) == EOF)
        _exit(1);
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
    for (long i = w; i < o->tasks; i += o->workers)
        fx(o->start + i, o);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/*
 * Fork o->workers workers, each running worker_main(). Returns how many
 * were started; when fork() fails, stops there and returns the count so far.
 */
static long
start_workers(const struct options *o)
{
    long started = 0;

    for (long w = 0; w < o->workers; w++) {
        fflush(NULL);           /* else each child inherits unflushed output */
        switch (fork()) {
        case -1:
            perror(PROG ": fork");
            return started;
        case 0:
            worker_main(w, o);  /* never returns */
        default:
            started++;
        }
    }
    return started;
}

/*
 * Judge one reaped worker and return the program's result so far, updated.
 * A clean exit changes nothing. A worker killed by SIGPIPE (its reader went
 * away, as in `hello-pool | head -3`) makes it 128 + SIGPIPE, quietly, as the
 * shell reports a process killed by that signal. Any other end is reported
 * on stderr and makes it 1.
 */
static int
judge_worker(pid_t pid, int status, int result)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return result;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
        return result == 0 ? 128 + SIGPIPE : result;
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
    int result = 0, status;
    pid_t pid;

    while ((pid = wait(&status)) != -1 || errno == EINTR)
        if (pid != -1)          /* -1 here is EINTR: wait again */
            result = judge_worker(pid, status, result);
    if (errno != ECHILD)        /* ECHILD: no child left, the normal end */
        die("wait");
    return result;
}

int
main(int argc, char **argv)
{
    struct options o;
    long started;
    long long waited;
    int result;

    parse_options(argc, argv, &o);
    if (o.workers > o.tasks && o.tasks > 0)
        o.workers = o.tasks;    /* a worker with no task is pointless */
    trace_open(PROG);
    started = o.tasks > 0 ? start_workers(&o) : 0;
    waited = trace_now();
    result = reap_workers();
    trace_wait(waited, trace_now());
    if (started < (o.tasks > 0 ? o.workers : 0))
        return 1;               /* fork failed: some tasks never ran */
    return result;
}
