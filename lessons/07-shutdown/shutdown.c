/* SPDX-License-Identifier: MIT */
/*
 * shutdown.c: the ways a pool ends. Python's close(), terminate() and
 * join(), and the signals that end a program from outside: Ctrl-C, SIGTERM,
 * a reader that goes away (| head -1), a parent killed outright.
 *
 * Python:  def slow_sqr(x, ms):
 *              time.sleep(ms / 1000)
 *              return x, x * x
 *          with mp.Pool(4, initializer=signal.signal,
 *                       initargs=(signal.SIGINT, signal.SIG_IGN)) as p:
 *              task = functools.partial(slow_sqr, ms=250)
 *              for x, y in p.imap_unordered(task, range(20)):
 *                  print(f"sqr({x}) = {y}", flush=True)
 * Here the parent prints each result as it comes in. Press Ctrl-C, or send
 * SIGTERM to the parent, and it stops its workers (SIGTERM, then SIGKILL
 * after a grace period), reaps them all, says how many tasks were done, and
 * ends by the same signal: status 130 for SIGINT, 143 for SIGTERM. When
 * stdout's reader leaves, it stops quietly with status 141, as SIGPIPE
 * would. -C and -T close or terminate the pool after some results.
 *
 * Usage: shutdown [-S] [-r] [-j WORKERS] [-n TASKS] [-d MS] [-g GRACE_MS]
 *                 [-C RESULTS | -T RESULTS]
 *   -j WORKERS   worker processes (4)
 *   -n TASKS     map over 0..TASKS-1 (20)
 *   -d MS        each task first sleeps MS milliseconds (250)
 *   -g GRACE_MS  from SIGTERM to SIGKILL when stopping workers (1000)
 *   -C RESULTS   close the pool after that many results (p.close())
 *   -T RESULTS   terminate the pool after that many results (p.terminate())
 *   -S           stubborn tasks: they ignore SIGTERM, so only SIGKILL works
 *   -r           each task first reads a byte of its stdin, as input() would
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "functor.h"
#include "pool.h"

#define MAX_TASKS 1000000L      /* one round trip per task: more is slow */
#define MAX_DELAY_MS 10000
#define MAX_GRACE_MS 60000

/* The cleanup attribute of lesson 05. */
#define AUTO(fn) __attribute__((cleanup(fn)))
#define AUTO_POOL AUTO(pool_release)
#define AUTO_FREE AUTO(numbers_free)

struct options {
    long workers;               /* -j: worker processes */
    long tasks;                 /* -n: map over 0..tasks-1 */
    long delay_ms;              /* -d: sleep at the start of each task */
    long grace_ms;              /* -g: from SIGTERM to SIGKILL */
    long close_after;           /* -C: close after this many results; 0 */
    long terminate_after;       /* -T: terminate after so many; 0 */
    int stubborn;               /* -S: tasks ignore SIGTERM */
    int read_stdin;             /* -r: tasks read their stdin */
};

/* One run of the map, as print_results() sees it. */
struct run {
    struct pool *pool;          /* the pool it runs on */
    const struct options *o;    /* what was asked */
    long printed;               /* results printed so far */
    int closed;                 /* -C: pool_close() was called */
    int terminating;            /* -T: the map was stopped to terminate */
    int reader_gone;            /* stdout's reader left (EPIPE) */
    int write_failed;           /* stdout failed otherwise */
};

const char progname[] = "shutdown";

/* What the tasks do besides their work, set before the pool starts so that
 * every worker has its own copy: fork() copies the parent's memory. */
static int stubborn;
static int read_stdin;

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

static void
print_usage(void)
{
    printf("usage: %s [-S] [-r] [-j WORKERS] [-n TASKS] [-d MS] "
           "[-g GRACE_MS]\n"
           "                [-C RESULTS | -T RESULTS]\n"
           "Maps sqr over 0..TASKS-1 with a pool of worker processes and\n"
           "prints each result as it comes in. Ctrl-C (SIGINT) or SIGTERM\n"
           "stops the workers, reports the tasks done, and ends with status\n"
           "130 or 143; a reader that leaves (| head -1) ends it quietly,\n"
           "with status 141.\n"
           "  -j WORKERS    worker processes (default 4)\n"
           "  -n TASKS      how many tasks (default 20)\n"
           "  -d MS         each task first sleeps MS milliseconds (250)\n"
           "  -g GRACE_MS   from SIGTERM to SIGKILL when stopping (1000)\n"
           "  -C RESULTS    close the pool after RESULTS results\n"
           "  -T RESULTS    terminate the pool after RESULTS results\n"
           "  -S            stubborn tasks ignore SIGTERM: SIGKILL needed\n"
           "  -r            each task reads its stdin first\n", progname);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = 4, .tasks = 20, .delay_ms = 250,
                          .grace_ms = POOL_GRACE_MS};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hSrj:n:d:g:C:T:")) != -1) {
        switch (opt) {
        case 'h':
            print_usage();
            if (fflush(stdout) == EOF) {
                report_errno("stdout");     /* -h >/dev/full, say */
                exit(1);
            }
            exit(0);
        case 'S': o->stubborn = 1; break;
        case 'r': o->read_stdin = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, POOL_MAX_WORKERS, "-j");
            break;
        case 'n': o->tasks = parse_number(optarg, 0, MAX_TASKS, "-n"); break;
        case 'd':
            o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case 'g':
            o->grace_ms = parse_number(optarg, 0, MAX_GRACE_MS, "-g");
            break;
        case 'C':
            o->close_after = parse_number(optarg, 1, MAX_TASKS, "-C");
            break;
        case 'T':
            o->terminate_after = parse_number(optarg, 1, MAX_TASKS, "-T");
            break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);
    if (o->close_after > 0 && o->terminate_after > 0)
        usage_error("-C and -T exclude each other: choose one of", "-C, -T");
}

/* ---- the task, in the workers ----------------------------------------- */

/* A task's fatal error: the message, then _exit(1), as in a worker. */
static _Noreturn void
task_failed(const char *what)
{
    fprintf(stderr, "%s: worker %ld: %s: %s\n", progname, (long)getpid(),
            what, strerror(errno));
    _exit(1);
}

/*
 * The function to map: x * x, after a sleep of ms milliseconds, as real
 * work takes a while; the functor binds ms, and z goes unused. With -S it
 * first makes its worker ignore SIGTERM, as a task stuck in some work that
 * must not be cut short would; with -r it first reads a byte of stdin, as
 * a task that calls input() would (from /dev/null: end-of-file at once).
 */
static long long
slow_sqr(long long x, long long ms, long long z)
{
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    (void)z;
    if (stubborn) {
        struct sigaction ignore;

        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        if (sigaction(SIGTERM, &ignore, NULL) == -1)
            task_failed("sigaction");
    }
    if (read_stdin) {
        char c;

        while (read(STDIN_FILENO, &c, 1) == -1)
            if (errno != EINTR)
                task_failed("read stdin");
    }
    while (nanosleep(&left, &left) == -1)
        if (errno != EINTR)
            task_failed("nanosleep");
    return x * x;
}

/* ---- output, in the parent -------------------------------------------- */

/*
 * Print one result line and flush it, so that it leaves now, in one
 * write(). Returns 0, or -1 when stdout failed: run->reader_gone when its
 * reader has left (EPIPE, quietly: nobody wants more), else
 * run->write_failed after a message.
 */
static int
print_line(struct run *run, long x, long long y)
{
    if (printf("sqr(%ld) = %lld\n", x, y) >= 0 && fflush(stdout) != EOF)
        return 0;
    if (errno == EPIPE) {       /* SIGPIPE is ignored while the pool runs */
        run->reader_gone = 1;
        return -1;
    }
    run->write_failed = report_errno("stdout");   /* a full disk, say */
    return -1;
}

/*
 * pool_map()'s on_result callback: print the results out[first ..
 * first+count-1], each as `sqr(X) = Y`; then close the pool (-C) or stop
 * the map to terminate it (-T) once enough results are printed. Returns 0
 * to go on, -1 to stop the map.
 */
static int
print_results(void *ctx, const long long *out, long first, long count)
{
    struct run *run = ctx;
    const struct options *o = run->o;

    for (long i = first; i < first + count; i++) {
        if (print_line(run, i, out[i]) == -1)
            return -1;
        run->printed++;
    }
    if (o->close_after > 0 && run->printed >= o->close_after && !run->closed) {
        pool_close(run->pool);  /* the workers finish what they hold */
        run->closed = 1;
    }
    if (o->terminate_after > 0 && run->printed >= o->terminate_after) {
        run->terminating = 1;
        return -1;
    }
    return 0;
}

/* ---- the end ------------------------------------------------------------ */

static const char *
signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal";
}

/*
 * Report an early end on stderr: why (a signal or an option), what became
 * of the pool, how many tasks were done, discarded in flight, never sent,
 * and how the workers ended.
 */
static void
report_end(const struct pool *p, const struct run *run, const char *why,
           int terminated)
{
    long n = run->o->tasks;

    if (terminated)
        report("%s: terminated: %ld of %ld tasks done, %ld discarded, "
               "%ld never sent; %ld workers stopped, %ld with SIGKILL", why,
               run->printed, n, p->sent - p->received, n - p->sent,
               p->nworkers, p->killed);
    else
        report("%s: closed: %ld of %ld tasks done, %ld discarded, "
               "%ld never sent; %ld workers joined", why, run->printed, n,
               p->sent - p->received, n - p->sent, p->nworkers);
}

/*
 * End the pool after pool_map() returned r: join it when the map ended
 * normally or was closed (-C); terminate it after a signal, -T, a failed
 * stdout or a failed task (*err). Reports an early end, or the failure.
 * Returns the exit status, 0 or 1; the caller then ends by the stop
 * signal, if one came.
 */
static int
finish(struct pool *p, struct run *run, int r, const struct pool_error *err)
{
    char why[POOL_REASON_MAX + 100];
    int sig;

    if (r == 0) {
        int status = pool_join(p) == -1;

        snprintf(why, sizeof why, "-C %ld", run->o->close_after);
        if ((sig = pool_stop_signal()) != 0)  /* came during the join */
            report_end(p, run, signal_name(sig), 0);
        else if (run->closed)
            report_end(p, run, why, 0);
        return status;
    }
    pool_terminate(p);          /* done already after a failed task */
    snprintf(why, sizeof why, "-T %ld", run->o->terminate_after);
    if (r == POOL_INTERRUPTED)
        report_end(p, run, signal_name(pool_stop_signal()), 1);
    else if (run->terminating)
        report_end(p, run, why, 1);
    else if (r == -1 && err->kind != POOL_BROKEN)   /* else reported */
        report("%s", pool_error_text(err, why, sizeof why));
    return r == -1 || run->write_failed;    /* reader_gone: quietly */
}

/* Free *xs and make it NULL: the cleanup function of AUTO_FREE. */
static void
numbers_free(long long **xs)
{
    free(*xs);
    *xs = NULL;
}

/*
 * Map slow_sqr, with -d's delay bound, over 0..tasks-1; print each result
 * as it comes in; end the pool as the run asks. Returns the exit status:
 * 0, or 1 after a message. Everything is released on the way out, the
 * signals' actions restored: main() may then end by a signal.
 */
static int
run_pool(const struct options *o, struct run *run)
{
    size_t size = (size_t)(o->tasks > 0 ? o->tasks : 1) * sizeof(long long);
    long long *xs AUTO_FREE = malloc(size);
    long long *out AUTO_FREE = calloc(1, size);
    struct pool pool AUTO_POOL = POOL_INIT;
    struct functor task = functor_make(slow_sqr, o->delay_ms, 0);
    struct pool_error err;
    int r;

    if (xs == NULL || out == NULL)
        return report_errno("malloc") == -1;    /* 1 */
    for (long i = 0; i < o->tasks; i++)
        xs[i] = i;              /* range(tasks) */
    if (pool_start(&pool, o->workers) == -1)
        return 1;
    pool.grace_ms = o->grace_ms;
    pool.on_result = print_results;
    pool.on_result_ctx = run;
    run->pool = &pool;
    r = pool_map(&pool, &task, xs, o->tasks, out, &err);
    return finish(&pool, run, r, &err);
}                               /* here pool_release(&pool) runs */

/*
 * End the program by signal sig, as if it had never been caught: restore
 * its default action, unblock it, and raise it. The shell then sees a
 * death by sig (status 128 + sig), and a shell running a script or a loop
 * stops too on SIGINT, as it would not for a plain exit(130). Everything
 * must be released first.
 */
static _Noreturn void
exit_like_signal(int sig)
{
    struct sigaction dfl;
    sigset_t set;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigemptyset(&set);
    sigaddset(&set, sig);
    if (sigaction(sig, &dfl, NULL) == -1 ||
        sigprocmask(SIG_UNBLOCK, &set, NULL) == -1)
        report_errno("sigaction");
    raise(sig);
    _exit(128 + sig);           /* not reached, unless the signal failed */
}

/*
 * Daemon hygiene: open /dev/null onto each of the descriptors 0, 1 and 2
 * that is closed (open() returns the lowest free number), so that no pipe
 * made later takes a standard descriptor's number: results printed into a
 * worker's task pipe, say. Read-only, so that a write to a closed stdout
 * still fails (EBADF) and is reported. Exits 1 when it cannot.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;           /* open */
        if (open("/dev/null", O_RDONLY) != fd) {   /* the lowest: fd */
            report_errno("open /dev/null");
            exit(1);
        }
    }
}

int
main(int argc, char **argv)
{
    struct options o;
    struct run run = {.o = &o};
    int status;

    open_standard_fds();
    parse_options(argc, argv, &o);
    stubborn = o.stubborn;
    read_stdin = o.read_stdin;
    status = run_pool(&o, &run);
    if (run.reader_gone)
        exit_like_signal(SIGPIPE);
    if (pool_stop_signal() != 0)
        exit_like_signal(pool_stop_signal());
    return status;
}
