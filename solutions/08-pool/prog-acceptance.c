/* SPDX-License-Identifier: MIT */
/*
 * prog-acceptance.c: the pool library's acceptance suite, one case per run.
 *
 * The cases are the behaviours CPython checks of its own Pool
 * (Lib/test/_test_multiprocessing.py) and the crash cases of
 * concurrent.futures' tests, expressed for the C API of pool.h: map and
 * starmap equal a plain loop, empty input returns at once, a crash during a
 * task, before its receipt or while its result is sent ends in an error and
 * never in a hang, and so on. tests/08-pool.bats runs each case under the
 * guard, with a deadline and a census of the processes left, so a case that
 * hangs or leaks a worker fails even when it thinks it passed.
 *
 * Usage: acceptance [-st] CASE    run one case; prints "ok CASE", exit 0, or
 *                                 "not ok CASE: line N: why" on stderr, exit 1
 *        acceptance -l            list the cases
 *        acceptance -h            this usage, on stdout
 *   -s  small: fewer forks in the cases that recycle workers (valgrind)
 *   -t  also check times (left out when sanitizers or valgrind slow things)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define MAX_POOLS 8             /* pools one case holds at once */
#define BLOB_SIZE (100 * 1024)  /* an item bigger than a pipe (64 KiB) */

/* Stop the case when COND is false, saying why (printf arguments). */
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            flunk(__LINE__, __VA_ARGS__);                                   \
            return -1;                                                      \
        }                                                                   \
    } while (0)

/* What a test task does besides its arithmetic (struct order.action). */
enum action {
    JUST_COMPUTE,               /* x * x */
    FAIL,                       /* return arg as the item's error code */
    SLEEP,                      /* sleep arg milliseconds, then x * x */
    CRASH,                      /* raise(SIGKILL) */
    EXIT,                       /* _exit(arg) */
    DIE_SENDING,                /* sleep 300 ms, arm a timer that kills the
                                 * worker arg ms later, while it sends its
                                 * (big) result, and say so on sending_pipe */
    CLOSE_AND_HANG,             /* close the worker's result pipe, then
                                 * sleep arg ms: alive, but mute */
    GATE_CRASH                  /* wait until gate_pipe is readable, then
                                 * raise(SIGKILL) */
};

/* A test item: a number and what to do with it. */
struct order {
    long long x;                /* the number */
    int action;                 /* enum action */
    int arg;                    /* the action's argument */
};

/* A test result: x * x, and the worker that computed it. */
struct answer {
    long long value;            /* x * x */
    long pid;                   /* getpid() of the worker */
    long inits;                 /* how often the initializer ran there */
    long init_pid;              /* the pid the initializer saw */
};

/* Two numbers to multiply: starmap's tuple. */
struct pair {
    long long a;
    long long b;
};

/* The seed's Functor(y, z). */
struct multi_args {
    long long y;
    long long z;
};

/* A blob bigger than a pipe. */
struct blob {
    unsigned char bytes[BLOB_SIZE];
};

struct acceptance_case {
    const char *name;           /* what tests/08-pool.bats asks for */
    int (*run)(void);           /* 0: passed; -1: failed, after a message */
};

static const char *case_name;   /* the case running, for messages */
static int check_times;         /* -t */
static int small;               /* -s */
static struct pool *held[MAX_POOLS]; /* destroyed however the case ends */

/* In a worker: set by the initializer. */
static long inits;              /* times it ran in this process */
static long init_pid;           /* getpid() when it ran */

/* The self-pipe that a SIGALRM handler writes to (cancel case). */
static int alarm_pipe[2] = {-1, -1};

/* A worker about to send a result it will not finish writes a byte here
 * (crash-while-sending case); the workers inherit it. */
static int sending_pipe[2] = {-1, -1};

/* The parent makes this readable to let a GATE_CRASH task go on; the
 * workers inherit it (crash-with-queued case). */
static int gate_pipe[2] = {-1, -1};

/* When open, every run of obey() writes its item's x here, as an int, so
 * the parent can count the runs of each item; the workers inherit it. */
static int ran_pipe[2] = {-1, -1};

/* The parent's SIGINT handler ran (group-sigint case). */
static volatile sig_atomic_t got_sigint;

/* A handler of the parent's ran in this process (worker-signals case). */
static volatile sig_atomic_t handler_ran;

/* ---- helpers ---------------------------------------------------------- */

static void
flunk(int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "not ok %s: line %d: ", case_name, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* pool_create(), remembered in held[] so that a failed case still destroys
 * it. Reports a failure; returns NULL then. */
static struct pool *
make_pool(struct pool_config cfg)
{
    struct pool_error err;
    struct pool *p = pool_create(&cfg, &err);

    if (p == NULL) {
        flunk(__LINE__, "pool_create failed: %s", err.message);
        return NULL;
    }
    for (int i = 0; i < MAX_POOLS; i++)
        if (held[i] == NULL) {
            held[i] = p;
            break;
        }
    return p;
}

/* Destroy p (terminating its workers) and forget it. */
static void
drop_pool(struct pool **pp)
{
    for (int i = 0; i < MAX_POOLS; i++)
        if (held[i] == *pp)
            held[i] = NULL;
    pool_destroy(pp);
}

/* Close and join p, then destroy it. Returns pool_join()'s result, or -1
 * when close failed. */
static int
finish_pool(struct pool **pp)
{
    int rc = pool_close(*pp) == 0 ? pool_join(*pp) : -1;

    if (rc != 0)
        flunk(__LINE__, "close and join: %s", pool_last_error(*pp)->message);
    drop_pool(pp);
    return rc;
}

/* The name of a failure kind, as pool.h spells it. */
static const char *
kind_name(enum pool_failure kind)
{
    static const char *const names[] = {
        [POOL_OK] = "POOL_OK",         [POOL_ETASK] = "POOL_ETASK",
        [POOL_EWORKER] = "POOL_EWORKER", [POOL_EINIT] = "POOL_EINIT",
        [POOL_ESTATE] = "POOL_ESTATE", [POOL_EINVAL] = "POOL_EINVAL",
        [POOL_ECANCELED] = "POOL_ECANCELED", [POOL_ESYS] = "POOL_ESYS",
        [POOL_ETIMEOUT] = "POOL_ETIMEOUT",
    };

    if ((unsigned)kind < sizeof names / sizeof names[0] && names[kind] != NULL)
        return names[kind];
    return "an unknown kind";
}

/* Whether p's last call failed with kind. Says what happened when not. */
static int
failed_with(struct pool *p, enum pool_failure kind)
{
    const struct pool_error *e = pool_last_error(p);

    if (e->kind == kind)
        return 1;
    fprintf(stderr, "  (expected %s; the last error: %s, index %ld, failed %ld, "
            "code %d, signal %d: %s)\n", kind_name(kind), kind_name(e->kind),
            e->index, e->failed, e->code, e->signal, e->message);
    return 0;
}

/* Seconds on a clock that never jumps. */
static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        continue;
}

/* Wait up to ms for fd to be readable, again after a signal (make test's
 * injection interrupts poll() every few ms). 1: readable; 0: not in time. */
static int
wait_readable(int fd, long ms)
{
    double until = now() + ms / 1000.0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n;

    while ((n = poll(&pfd, 1, (int)((until - now()) * 1000) + 1)) == -1 &&
           errno == EINTR && now() < until)
        continue;
    return n == 1;
}

/* read() of one byte, again after a signal: 1, 0 at end-of-file, or -1. */
static ssize_t
read_byte(int fd, char *c)
{
    ssize_t got;

    while ((got = read(fd, c, 1)) == -1 && errno == EINTR)
        continue;
    return got;
}

/* Whether process pid is gone: not running, and no longer our child. */
static int
is_gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* ---- the tasks: they run in the workers ------------------------------- */

static int
sqr(const void *args, const void *in, void *out)
{
    long long x = *(const long long *)in;

    (void)args;
    *(long long *)out = x * x;
    return 0;
}

static int
mul(const void *args, const void *in, void *out)
{
    const struct pair *t = in;

    (void)args;
    *(long long *)out = t->a * t->b;
    return 0;
}

/* The seed's Multi(x, y, z) = z * (x * z + y), y and z bound. */
static int
multi(const void *args, const void *in, void *out)
{
    const struct multi_args *yz = args;
    long long x = *(const long long *)in;

    *(long long *)out = yz->z * (x * yz->z + yz->y);
    return 0;
}

/* SIGALRM in a worker (DIE_SENDING): die as a crash does. */
static void
die_now(int sig)
{
    (void)sig;
    raise(SIGKILL);
}

/* Arm a timer that kills this worker ms milliseconds from now. */
static void
die_in_ms(int ms)
{
    struct sigaction sa;
    struct itimerval t = {{0, 0}, {ms / 1000, (ms % 1000) * 1000L}};

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = die_now;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &t, NULL);
}

/* Close this worker's result pipe: the pipe it holds for writing. */
static void
close_result_pipe(void)
{
    struct stat st;

    for (int fd = 3; fd < 1024; fd++)
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
            (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY)
            close(fd);
}

/* The test task: an order in, an answer out. */
static int
obey(const void *args, const void *in, void *out)
{
    const struct order *o = in;
    struct answer *a = out;

    (void)args;
    if (ran_pipe[1] != -1) {
        int x = (int)o->x;
        ssize_t put;

        /* One int, under PIPE_BUF: written whole, or not at all. */
        while ((put = write(ran_pipe[1], &x, sizeof x)) == -1 &&
               errno == EINTR)
            continue;
        if (put != (ssize_t)sizeof x)
            return 1;           /* the count shows it too */
    }
    switch (o->action) {
    case FAIL: return o->arg;
    case SLEEP: sleep_ms(o->arg); break;
    case CRASH: raise(SIGKILL); break;
    case EXIT: _exit(o->arg);
    case DIE_SENDING:
        sleep_ms(300);
        die_in_ms(o->arg);
        if (write(sending_pipe[1], "s", 1) != 1)
            return 1;
        break;
    case CLOSE_AND_HANG: close_result_pipe(); sleep_ms(o->arg); break;
    case GATE_CRASH:
        (void)wait_readable(gate_pipe[0], 20000);   /* then die anyway */
        raise(SIGKILL);
        break;
    }
    a->value = o->x * o->x;
    a->pid = (long)getpid();
    a->inits = inits;
    a->init_pid = init_pid;
    return 0;
}

/* A blob's result: each byte plus one. */
static int
bump_blob(const void *args, const void *in, void *out)
{
    const struct blob *b = in;
    struct blob *r = out;

    (void)args;
    for (size_t i = 0; i < sizeof b->bytes; i++)
        r->bytes[i] = (unsigned char)(b->bytes[i] + 1);
    return 0;
}

/* How many descriptors above 2 this process has open. */
static int
count_fds(const void *args, const void *in, void *out)
{
    long max = sysconf(_SC_OPEN_MAX), n = 0;

    (void)args;
    (void)in;
    if (max < 0 || max > 4096)
        max = 4096;             /* enough: descriptors are given lowest first */
    for (int fd = 3; fd < max; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    *(long *)out = n;
    return 0;
}

/* Initializers. */
static int
count_init(void *arg)
{
    inits++;
    init_pid = (long)getpid();
    return *(const int *)arg == 42 ? 0 : 99;    /* init_arg arrives */
}

static int
failing_init(void *arg)
{
    (void)arg;
    return 7;
}

static int
crashing_init(void *arg)
{
    (void)arg;
    raise(SIGKILL);
    return 0;
}

static int
ignore_sigterm(void *arg)
{
    (void)arg;
    signal(SIGTERM, SIG_IGN);
    return 0;
}

/* ---- inputs and checks ------------------------------------------------ */

/* orders[i] = {x = i, JUST_COMPUTE}, for i < n. */
static void
plain_orders(struct order *orders, long n)
{
    for (long i = 0; i < n; i++)
        orders[i] = (struct order){.x = i, .action = JUST_COMPUTE};
}

/* Whether answers[i].value == i * i for every i < n but those in skip
 * (a -1-terminated list), which must be 0. Says which is wrong. */
static int
squares_ok(const struct answer *answers, long n, const long *skip)
{
    for (long i = 0; i < n; i++) {
        int skipped = 0;

        for (const long *s = skip; s != NULL && *s != -1; s++)
            skipped |= *s == i;
        if (answers[i].value != (skipped ? 0 : i * i)) {
            fprintf(stderr, "  result %ld is %lld, expected %lld\n", i,
                    answers[i].value, skipped ? 0 : (long long)i * i);
            return 0;
        }
    }
    return 1;
}

/* Map sqr over 0..n-1 with chunksize cs, and compare with a loop. */
static int
map_sqr_ok(struct pool *p, long n, long cs)
{
    long long *xs = malloc((size_t)n * sizeof *xs + 1);
    long long *ys = calloc((size_t)n + 1, sizeof *ys);
    int ok = xs != NULL && ys != NULL;

    for (long i = 0; ok && i < n; i++)
        xs[i] = i;
    if (ok && pool_map(p, &POOL_FUNC(sqr, long long, long long), xs, ys, n,
                       cs) != 0) {
        fprintf(stderr, "  map of %ld items, chunksize %ld: %s\n", n, cs,
                pool_last_error(p)->message);
        ok = 0;
    }
    for (long i = 0; ok && i < n; i++)
        if (ys[i] != xs[i] * xs[i]) {
            fprintf(stderr, "  map of %ld items, chunksize %ld: item %ld is "
                    "%lld, expected %lld\n", n, cs, i, ys[i], xs[i] * xs[i]);
            ok = 0;
        }
    free(xs);
    free(ys);
    return ok;
}

/* imap_unordered's bookkeeping for a test. */
struct seen {
    long n;                     /* items in the input */
    long calls;                 /* times each() was called */
    long stop_after;            /* each() returns 1 on this call; 0: never */
    long in_order;              /* 1 while every index came in order */
    long sleep_ms;              /* each() sleeps this long at its first call */
    int wait_fd;                /* and first waits until this is readable */
    unsigned char *count;       /* times each index was handed over */
    long long *values;          /* the values handed over */
};

static int
note_seen(void *ctx, long index, const void *result)
{
    struct seen *s = ctx;

    if (index >= 0 && index < s->n) {
        s->count[index]++;
        s->values[index] = *(const long long *)result;
    }
    s->in_order &= index == s->calls;
    if (s->calls++ == 0 && s->wait_fd > 0)
        (void)wait_readable(s->wait_fd, 20000); /* ignored: a timeout moves on */
    if (s->calls == 1 && s->sleep_ms > 0)
        sleep_ms(s->sleep_ms);
    return s->stop_after > 0 && s->calls == s->stop_after;
}

/* ---- the cases: CPython's Pool tests ---------------------------------- */

/* test_map: map(sqr, range(10)) and 100 items with chunksize 20. */
static int
map_equals_loop(void)
{
    struct pool *p = make_pool((struct pool_config){.workers = 4});
    struct pool *one = make_pool((struct pool_config){.workers = 1});

    CHECK(p != NULL && one != NULL, "no pool");
    CHECK(map_sqr_ok(p, 10, 0), "map(sqr, range(10)) differs from a loop");
    CHECK(map_sqr_ok(p, 100, 20), "100 items, chunksize 20, differ");
    CHECK(map_sqr_ok(one, 100, 0), "100 items on 1 worker differ");
    CHECK(pool_default_chunksize(10, 4) == 1 &&
          pool_default_chunksize(100, 4) == 7 &&
          pool_default_chunksize(1000, 4) == 63 &&
          pool_default_chunksize(0, 4) == 0,
          "default chunksizes are not Python's (1, 7, 63, 0)");
    CHECK(finish_pool(&p) == 0 && finish_pool(&one) == 0, "join failed");
    return 0;
}

/* concurrent.futures' test_map_chunksize, and more. */
static int
map_chunksizes(void)
{
    static const long sizes[] = {1, 2, 3, 6, 7, 40, 50, 99, 100, 101, 1000, 0};
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK(map_sqr_ok(p, 100, sizes[i]), "chunksize %ld differs",
              sizes[i]);
    CHECK(map_sqr_ok(p, 1000, 63), "1000 items, chunksize 63, differ");
    CHECK(map_sqr_ok(p, 1, 0), "1 item differs");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_starmap: starmap(mul, zip(range(10), range(9, -1, -1))), and 100
 * tuples with chunksize 20. */
static int
starmap_equals_loop(void)
{
    struct pair pairs[100];
    long long out[100];
    struct pool *p = make_pool((struct pool_config){.workers = 4});

    CHECK(p != NULL, "no pool");
    for (long n = 10, cs = 0; n <= 100; n += 90, cs = 20) {
        for (long i = 0; i < n; i++)
            pairs[i] = (struct pair){i, n - 1 - i};
        memset(out, 0, sizeof out);
        CHECK(pool_map(p, &POOL_FUNC(mul, struct pair, long long), pairs, out,
                       n, cs) == 0, "starmap failed: %s",
              pool_last_error(p)->message);
        for (long i = 0; i < n; i++)
            CHECK(out[i] == i * (n - 1 - i), "starmap of %ld tuples: item "
                  "%ld is %lld, expected %ld", n, i, out[i], i * (n - 1 - i));
    }
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* The seed's p.map(Functor(2, 3), [1, 2, 3, 4, 5]); bound arguments made
 * after the pool, and changed between maps, arrive by value. */
static int
functor_by_value(void)
{
    static const long long want[] = {15, 24, 33, 42, 51};
    long long xs[] = {1, 2, 3, 4, 5}, ys[5];
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    struct multi_args yz = {2, 3};      /* made after the fork */

    CHECK(p != NULL, "no pool");
    CHECK(pool_map(p, &POOL_FUNCTOR(multi, yz, long long, long long), xs, ys,
                   5, 0) == 0, "map failed: %s", pool_last_error(p)->message);
    for (int i = 0; i < 5; i++)
        CHECK(ys[i] == want[i], "Functor(2, 3)(%lld) is %lld, expected %lld",
              xs[i], ys[i], want[i]);
    yz = (struct multi_args){0, 1};     /* Functor(0, 1): x */
    CHECK(pool_map(p, &POOL_FUNCTOR(multi, yz, long long, long long), xs, ys,
                   5, 1) == 0, "map failed: %s", pool_last_error(p)->message);
    for (int i = 0; i < 5; i++)
        CHECK(ys[i] == xs[i], "Functor(0, 1)(%lld) is %lld: the workers saw "
              "old bound arguments", xs[i], ys[i]);
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_map_chunksize, test_empty_iterable: empty input returns at once. */
static int
empty_input(void)
{
    struct seen s = {.n = 0};
    double t0;
    struct pool *p = make_pool((struct pool_config){.workers = 1});

    CHECK(p != NULL, "no pool");
    t0 = now();
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), NULL, NULL, 0,
                   0) == 0, "map of nothing failed");
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), NULL, NULL, 0,
                   1) == 0, "map of nothing, chunksize 1, failed");
    CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long), NULL,
                              0, 0, note_seen, &s) == 0,
          "imap_unordered of nothing failed");
    CHECK(s.calls == 0, "the callback was called %ld times for no item",
          s.calls);
    CHECK(!check_times || now() - t0 < 0.5, "empty maps took %.2f s",
          now() - t0);
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_imap_unordered: each result exactly once. */
static int
unordered_once(void)
{
    static unsigned char count[1000];
    static long long values[1000];
    long long xs[1000];
    struct pool *p = make_pool((struct pool_config){.workers = 4});

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 1000; i++)
        xs[i] = i;
    for (long n = 10, cs = 0; n <= 1000; n += 990, cs = 100) {
        struct seen s = {.n = n, .in_order = 1, .count = count,
                         .values = values};

        memset(count, 0, sizeof count);
        CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long),
                                  xs, n, cs, note_seen, &s) == 0,
              "imap_unordered failed: %s", pool_last_error(p)->message);
        CHECK(s.calls == n, "%ld results for %ld items", s.calls, n);
        for (long i = 0; i < n; i++)
            CHECK(count[i] == 1 && values[i] == i * i, "item %ld: handed "
                  "over %d times, value %lld", i, count[i], values[i]);
    }
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_imap_unordered_handle_iterable_exception, as C has it: failed items
 * are not handed over, every other item is, once; the call reports the
 * failure with the lowest index. */
static int
unordered_errors(void)
{
    static unsigned char count[40];
    static long long values[40];
    struct order orders[40];
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    for (long cs = 1; cs <= 4; cs += 3) {
        struct seen s = {.n = 40, .count = count, .values = values};
        const struct pool_error *e;

        plain_orders(orders, 40);
        orders[21] = (struct order){21, FAIL, 21};
        orders[6] = (struct order){6, FAIL, 6};
        memset(count, 0, sizeof count);
        CHECK(pool_imap_unordered(p, &POOL_FUNC(obey, struct order,
                                                struct answer),
                                  orders, 40, cs, note_seen, &s) == -1,
              "imap_unordered did not fail");
        CHECK(failed_with(p, POOL_ETASK), "not POOL_ETASK");
        e = pool_last_error(p);
        CHECK(e->index == 6 && e->code == 6 && e->failed == 2, "chunksize "
              "%ld: index %ld, code %d, failed %ld; expected 6, 6, 2", cs,
              e->index, e->code, e->failed);
        for (long i = 0; i < 40; i++)
            CHECK(count[i] == (i == 6 || i == 21 ? 0 : 1) &&
                  (count[i] == 0 || values[i] == i * i), "chunksize %ld: "
                  "item %ld handed over %d times, value %lld", cs, i,
                  count[i], values[i]);
    }
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* Python's docs: with one worker, imap_unordered's order is the input's. */
static int
unordered_one_worker(void)
{
    static unsigned char count[50];
    static long long values[50];
    long long xs[50];
    struct pool *p = make_pool((struct pool_config){.workers = 1});

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 50; i++)
        xs[i] = i;
    for (long cs = 1; cs <= 7; cs += 6) {
        struct seen s = {.n = 50, .in_order = 1, .count = count,
                         .values = values};

        CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long),
                                  xs, 50, cs, note_seen, &s) == 0,
              "imap_unordered failed: %s", pool_last_error(p)->message);
        CHECK(s.calls == 50 && s.in_order, "chunksize %ld: %ld results, "
              "%s", cs, s.calls, s.in_order ? "in order" : "out of order");
    }
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* The callback stops the call; abandoned results never leak into the next
 * call. */
static int
unordered_stop(void)
{
    static unsigned char count[100];
    static long long values[100];
    struct order orders[100];
    struct pool *p = make_pool((struct pool_config){.workers = 3});
    struct seen s = {.n = 100, .stop_after = 5, .count = count,
                     .values = values};
    int rc;

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 100; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 10};
    rc = pool_imap_unordered(p, &POOL_FUNC(obey, struct order, struct answer),
                             orders, 100, 1, note_seen, &s);
    CHECK(rc == 1, "imap_unordered returned %d, expected 1 (stopped)", rc);
    CHECK(s.calls == 5, "the callback was called %ld times after it said "
          "stop at the 5th", s.calls);
    CHECK(map_sqr_ok(p, 100, 1), "the map after a stop differs");
    CHECK(map_sqr_ok(p, 10, 0), "a second map after a stop differs");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_make_pool, test_pool_maxtasksperchild_invalid, and bad calls. */
static int
worker_count_validation(void)
{
    static const struct pool_config bad[] = {
        {.workers = -1}, {.workers = POOL_MAX_WORKERS + 1}, {.maxtasks = -1},
        {.workers = 1, .grace_ms = -5}, {.workers = 1, .cancel_fd = 1},
        {.workers = 1, .cancel_fd = -1}, {.workers = 1, .timeout_ms = -1},
        {.workers = 1, .timeout_ms = POOL_MAX_TIMEOUT_MS + 1L}};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct pool_error err;
    struct pool *p;
    long long x = 3, y;
    struct seen s = {.n = 1};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(pool_create(&bad[i], &err) == NULL, "bad config %zu accepted",
              i);
        CHECK(err.kind == POOL_EINVAL, "bad config %zu: %s, not "
              "POOL_EINVAL: %s", i, kind_name(err.kind), err.message);
    }
    CHECK((p = make_pool((struct pool_config){.workers = 0})) != NULL,
          "no pool");
    CHECK(pool_workers(p) == (cpus < 1 ? 1 : cpus > POOL_MAX_WORKERS
                                                  ? POOL_MAX_WORKERS : cpus),
          "workers 0 gave %ld workers, CPUs online: %ld", pool_workers(p),
          cpus);
    CHECK(finish_pool(&p) == 0, "join failed");
    CHECK((p = make_pool((struct pool_config){.workers = 3})) != NULL,
          "no pool");
    CHECK(pool_workers(p) == 3, "Pool(3) has %ld workers", pool_workers(p));
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), &x, &y, 1, -1) ==
          -1 && failed_with(p, POOL_EINVAL), "chunksize -1 accepted");
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), &x, &y, -1, 0) ==
          -1 && failed_with(p, POOL_EINVAL), "n -1 accepted");
    CHECK(pool_map(p, &(struct pool_func){.in_size = 8, .out_size = 8}, &x,
                   &y, 1, 0) == -1 && failed_with(p, POOL_EINVAL),
          "a NULL function accepted");
    CHECK(pool_map(p, &(struct pool_func){.call = sqr, .out_size = 8}, &x, &y,
                   1, 0) == -1 && failed_with(p, POOL_EINVAL),
          "in_size 0 accepted");
    CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long), &x, 1,
                              0, NULL, &s) == -1 &&
          failed_with(p, POOL_EINVAL), "a NULL callback accepted");
    CHECK(map_sqr_ok(p, 10, 0), "the pool is not usable after bad calls");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_terminate: terminate returns promptly while long tasks run; and
 * also when the workers ignore SIGTERM (SIGKILL after the grace period). */
static int
terminate_prompt(void)
{
    static struct order orders[10000];
    static unsigned char count[10000];
    static long long values[10000];

    for (int ignoring = 0; ignoring <= 1; ignoring++) {
        struct pool *p = make_pool((struct pool_config){
            .workers = 3, .grace_ms = 300,
            .init = ignoring ? ignore_sigterm : NULL});
        struct seen s = {.n = 10000, .stop_after = 1, .count = count,
                         .values = values};
        double t0;
        int rc;

        CHECK(p != NULL, "no pool");
        for (long i = 0; i < 10000; i++)
            orders[i] = (struct order){.x = i, .action = SLEEP,
                                       .arg = i == 0 ? 0 : 60000};
        rc = pool_imap_unordered(p, &POOL_FUNC(obey, struct order,
                                               struct answer),
                                 orders, 10000, 1, note_seen, &s);
        CHECK(rc == 1, "imap_unordered returned %d, not 1 (stopped)", rc);
        t0 = now();
        CHECK(pool_terminate(p) == 0, "terminate failed: %s",
              pool_last_error(p)->message);
        CHECK(pool_join(p) == 0, "join after terminate failed: %s",
              pool_last_error(p)->message);
        CHECK(!check_times || now() - t0 < 2.0, "terminate and join took "
              "%.2f s while tasks of 60 s ran%s", now() - t0,
              ignoring ? " (workers ignoring SIGTERM)" : "");
        for (long i = 0; i < pool_workers(p); i++)
            CHECK(pool_worker_pid(p, i) == -1, "worker %ld not reaped", i);
        drop_pool(&p);
    }
    return 0;
}

/* test_context, test_enter: a pool after close or terminate takes no work;
 * join of a running pool is an error too. */
static int
use_after_close(void)
{
    long long x = 2, y;
    struct seen s = {.n = 1};
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    struct pool *q = make_pool((struct pool_config){.workers = 2});

    CHECK(p != NULL && q != NULL, "no pool");
    CHECK(pool_join(p) == -1 && failed_with(p, POOL_ESTATE),
          "join of a running pool did not fail");
    CHECK(map_sqr_ok(p, 10, 0), "map failed");
    CHECK(pool_close(p) == 0, "close failed");
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), &x, &y, 1, 0) ==
          -1 && failed_with(p, POOL_ESTATE), "map after close did not fail");
    CHECK(strstr(pool_last_error(p)->message, "closed") != NULL,
          "the message does not say closed: %s", pool_last_error(p)->message);
    CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long), &x, 1,
                              0, note_seen, &s) == -1 &&
          failed_with(p, POOL_ESTATE), "imap after close did not fail");
    CHECK(pool_close(p) == 0, "a second close failed");
    CHECK(pool_join(p) == 0, "join failed: %s", pool_last_error(p)->message);
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), &x, &y, 1, 0) ==
          -1 && failed_with(p, POOL_ESTATE), "map after join did not fail");
    CHECK(pool_terminate(q) == 0, "terminate failed");
    CHECK(pool_map(q, &POOL_FUNC(sqr, long long, long long), &x, &y, 1, 0) ==
          -1 && failed_with(q, POOL_ESTATE), "map after terminate worked");
    CHECK(pool_join(q) == 0, "join after terminate failed");
    drop_pool(&p);
    pool_destroy(&p);           /* NULL now: nothing */
    drop_pool(&q);
    CHECK(p == NULL && q == NULL, "pool_destroy left the pointer");
    return 0;
}

/* test_map_no_failfast, test_traceback: a failed item names itself, the
 * other items still run, the lowest failed index is reported. */
static int
task_error(void)
{
    static const long bad[] = {3, 7, -1};
    struct order orders[10];
    struct answer out[10];
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    for (long cs = 1; cs <= 5; cs += 4) {
        const struct pool_error *e;

        plain_orders(orders, 10);
        orders[7] = (struct order){7, FAIL, 77};    /* arrives first, maybe */
        orders[3] = (struct order){3, FAIL, 33};
        memset(out, 0xff, sizeof out);
        CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer),
                       orders, out, 10, cs) == -1, "map did not fail");
        CHECK(failed_with(p, POOL_ETASK), "not POOL_ETASK");
        e = pool_last_error(p);
        CHECK(e->index == 3 && e->code == 33 && e->failed == 2,
              "chunksize %ld: index %ld, code %d, failed %ld; expected 3, 33, "
              "2", cs, e->index, e->code, e->failed);
        CHECK(strstr(e->message, "item 3") != NULL &&
              strstr(e->message, "33") != NULL,
              "the message does not name item 3 and code 33: %s", e->message);
        CHECK(squares_ok(out, 10, bad), "chunksize %ld: the other items did "
              "not all finish", cs);
    }
    CHECK(map_sqr_ok(p, 20, 0), "the pool is not usable after task errors");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* How many different pids answers[0..n-1] name, and the most answers one
 * pid gave. */
static long
distinct_pids(const struct answer *answers, long n, long *most)
{
    long distinct = 0;

    *most = 0;
    for (long i = 0; i < n; i++) {
        long same = 0, earlier = 0;

        for (long j = 0; j < n; j++) {
            same += answers[j].pid == answers[i].pid;
            earlier += j < i && answers[j].pid == answers[i].pid;
        }
        distinct += earlier == 0;
        *most = same > *most ? same : *most;
    }
    return distinct;
}

/* test_pool_worker_lifetime: maxtasks 10 and 1 recycle the workers. */
static int
worker_recycling(void)
{
    struct order orders[100];
    struct answer out[100];
    long most;

    plain_orders(orders, 100);
    for (long maxtasks = 10; maxtasks >= 1; maxtasks -= 9) {
        long n = (maxtasks == 10 ? 100 : 30) / (small ? 3 : 1), distinct;
        long changed;
        struct pool *p = make_pool((struct pool_config){
            .workers = 3, .maxtasks = maxtasks});
        pid_t first[3];

        CHECK(p != NULL, "no pool");
        for (long i = 0; i < 3; i++)
            first[i] = pool_worker_pid(p, i);
        CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer),
                       orders, out, n, 1) == 0, "map failed: %s",
              pool_last_error(p)->message);
        CHECK(squares_ok(out, n, NULL), "maxtasks %ld: wrong results",
              maxtasks);
        distinct = distinct_pids(out, n, &most);
        CHECK(distinct >= (n + maxtasks - 1) / maxtasks && most <= maxtasks,
              "maxtasks %ld, %ld tasks: %ld different worker pids, one did "
              "%ld tasks; expected at least %ld pids, none over %ld tasks",
              maxtasks, n, distinct, most, (n + maxtasks - 1) / maxtasks,
              maxtasks);
        changed = 0;            /* CPython: the set of pids has changed */
        for (long i = 0; i < 3; i++) {
            CHECK(pool_worker_pid(p, i) > 0, "maxtasks %ld: slot %ld has no "
                  "worker", maxtasks, i);
            changed += pool_worker_pid(p, i) != first[i];
        }
        CHECK(changed > 0, "maxtasks %ld: the workers still have their first "
              "pids %ld, %ld, %ld", maxtasks, (long)first[0], (long)first[1],
              (long)first[2]);
        CHECK(finish_pool(&p) == 0, "join failed");
    }
    return 0;
}

/* test_pool_worker_lifetime_early_close: maxtasks 1, close and join right
 * after; no hang, every result right. */
static int
recycling_early_close(void)
{
    struct order orders[6];
    struct answer out[6];
    struct pool *p = make_pool((struct pool_config){.workers = 3,
                                                    .maxtasks = 1});

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 6; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 100};
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 6, 1) == 0, "map failed: %s",
          pool_last_error(p)->message);
    CHECK(squares_ok(out, 6, NULL), "wrong results");
    CHECK(finish_pool(&p) == 0, "close and join failed");
    return 0;
}

/* ---- the cases: workers that die ------------------------------------- */

/* A map with one deadly item, on 3 workers, chunksize cs. */
static int
crash_case(enum action action, int arg, long cs, long first, long count)
{
    static const long skip[][5] = {{5, -1}, {4, 5, 6, 7, -1}};
    struct order orders[20];
    struct answer out[20];
    const struct pool_error *e;
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    plain_orders(orders, 20);
    orders[5] = (struct order){5, action, arg};
    memset(out, 0, sizeof out);
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 20, cs) == -1, "map did not fail");
    CHECK(failed_with(p, POOL_EWORKER), "not POOL_EWORKER");
    e = pool_last_error(p);
    CHECK(e->index == first && e->failed == count, "chunksize %ld: index %ld,"
          " failed %ld; expected %ld, %ld (the pool said: %s)", cs, e->index,
          e->failed, first, count, e->message);
    CHECK(action == CRASH ? e->signal == SIGKILL : e->code == arg,
          "signal %d, code %d: not what killed the worker", e->signal,
          e->code);
    CHECK(squares_ok(out, 20, skip[count > 1]), "the other items differ");
    for (long i = 0; i < pool_workers(p); i++)
        CHECK(pool_worker_pid(p, i) > 0 && !is_gone(pool_worker_pid(p, i)),
              "worker %ld was not replaced", i);
    CHECK(map_sqr_ok(p, 30, 0), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_crash_during_func_exec_on_worker: SIGKILL in the middle of a task. */
static int
crash_during_task(void)
{
    if (crash_case(CRASH, 0, 1, 5, 1) == -1)
        return -1;
    return crash_case(CRASH, 0, 4, 4, 4);
}

/* test_exit_during_func_exec_on_worker: _exit(3) in a task. */
static int
exit_during_task(void)
{
    return crash_case(EXIT, 3, 1, 5, 1);
}

/* test_crash_at_task_unpickle, as C has it: the worker is dead before it
 * reads its task. The task fails, the worker is replaced, no hang; join
 * later does not report the buried worker again. */
static int
crash_before_receipt(void)
{
    struct answer out[10];
    struct order orders[10];
    const struct pool_error *e;
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    pid_t victim;

    CHECK(p != NULL, "no pool");
    victim = pool_worker_pid(p, 0);
    CHECK(kill(victim, SIGKILL) == 0, "kill: %s", strerror(errno));
    sleep_ms(50);               /* dead, or nearly: either way must work */
    plain_orders(orders, 10);
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 10, 1) == -1, "map did not fail");
    CHECK(failed_with(p, POOL_EWORKER), "not POOL_EWORKER");
    e = pool_last_error(p);
    CHECK(e->index == 0 && e->failed == 1 && e->signal == SIGKILL &&
          e->pid == victim, "index %ld, failed %ld, signal %d, pid %ld; "
          "expected 0, 1, 9, %ld (the pool said: %s)", e->index, e->failed,
          e->signal, (long)e->pid, (long)victim, e->message);
    for (long i = 1; i < 10; i++)
        CHECK(out[i].value == i * i, "item %ld is %lld", i, out[i].value);
    CHECK(pool_worker_pid(p, 0) != victim, "the dead worker was not replaced");
    CHECK(map_sqr_ok(p, 10, 1), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* test_crash_during_result_pickle_on_worker, as C has it: a worker dies
 * half-way through sending a result bigger than the pipe. Item 0 comes
 * back first; in its callback the parent waits until the worker of item 1
 * says it is about to send, then stays away a second: the pipe fills, the
 * worker blocks in write(), and its timer kills it there. */
static int
crash_while_sending(void)
{
    struct blob_order {
        struct order o;
        unsigned char pad[BLOB_SIZE];
    };
    static struct blob_order orders[2];
    static unsigned char count[2];
    static long long values[2];
    struct seen s = {.n = 2, .sleep_ms = 1000, .count = count,
                     .values = values};
    const struct pool_error *e;
    struct pool *p;

    CHECK(pipe(sending_pipe) == 0, "pipe: %s", strerror(errno));
    s.wait_fd = sending_pipe[0];
    p = make_pool((struct pool_config){.workers = 2});
    CHECK(p != NULL, "no pool");
    orders[0].o = (struct order){0, JUST_COMPUTE, 0};
    orders[1].o = (struct order){1, DIE_SENDING, 200};
    CHECK(pool_imap_unordered(p, &(struct pool_func){
                                  .call = obey, .in_size = sizeof orders[0],
                                  .out_size = sizeof orders[0]},
                              orders, 2, 1, note_seen, &s) == -1,
          "imap_unordered did not fail");
    CHECK(failed_with(p, POOL_EWORKER), "not POOL_EWORKER");
    e = pool_last_error(p);
    CHECK(e->index == 1 && e->failed == 1 && e->signal == SIGKILL,
          "index %ld, failed %ld, signal %d; expected 1, 1, 9 (the pool "
          "said: %s)", e->index, e->failed, e->signal, e->message);
    CHECK(s.calls == 1 && count[0] == 1, "item 0 was handed over %d times",
          count[0]);
    CHECK(map_sqr_ok(p, 10, 0), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* A worker that closes its result pipe and runs on: the parent sees
 * end-of-file, and must kill it before it waits for it. */
static int
mute_worker(void)
{
    struct order orders[10];
    struct answer out[10];
    const struct pool_error *e;
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    double t0 = now();

    CHECK(p != NULL, "no pool");
    plain_orders(orders, 10);
    orders[2] = (struct order){2, CLOSE_AND_HANG, 60000};
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 10, 1) == -1, "map did not fail");
    CHECK(failed_with(p, POOL_EWORKER), "not POOL_EWORKER");
    e = pool_last_error(p);
    CHECK(e->index == 2 && e->failed == 1 && e->signal == SIGKILL,
          "index %ld, failed %ld, signal %d; expected 2, 1, 9 (the pool "
          "said: %s)", e->index, e->failed, e->signal, e->message);
    CHECK(!check_times || now() - t0 < 2.0, "the map took %.2f s: did it "
          "wait for the mute worker's 60 s?", now() - t0);
    CHECK(map_sqr_ok(p, 10, 0), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* Output the caller buffered before the pool forked comes out once: the
 * pool flushes stdio before every fork(), replacements included. */
static int
no_repeated_output(void)
{
    struct pool *p;

    printf("printed before the pool\n");  /* through a pipe: buffered */
    p = make_pool((struct pool_config){.workers = 2, .maxtasks = 1});
    CHECK(p != NULL, "no pool");
    CHECK(map_sqr_ok(p, 6, 1), "map failed");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* A worker that dies while idle, with nothing to do: join says so. */
static int
join_reports_death(void)
{
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    pid_t victim;

    CHECK(p != NULL, "no pool");
    victim = pool_worker_pid(p, 1);
    CHECK(kill(victim, SIGKILL) == 0, "kill: %s", strerror(errno));
    CHECK(pool_close(p) == 0, "close failed");
    CHECK(pool_join(p) == -1 && failed_with(p, POOL_EWORKER),
          "join did not report the killed worker");
    CHECK(pool_last_error(p)->pid == victim &&
          pool_last_error(p)->signal == SIGKILL, "join reported pid %ld, "
          "signal %d", (long)pool_last_error(p)->pid,
          pool_last_error(p)->signal);
    drop_pool(&p);
    return 0;
}

/* ---- the cases: chunks queued behind the one a worker runs ----------- */

/* The callback of crash_with_queued: note the result, and at the first
 * one open the gate, so that the worker waiting there dies. */
static int
note_and_open_gate(void *ctx, long index, const void *result)
{
    struct seen *s = ctx;

    if (s->calls == 0 && write(gate_pipe[1], "g", 1) != 1)
        return 1;               /* stops the call: the case fails */
    return note_seen(ctx, index, result);
}

/* Read what the tasks wrote to ran_pipe, until it is empty: runs[x]
 * counts the runs of item x < n. A read may be short or interrupted (make
 * test's injection): the bytes are gathered, whole ints counted. Returns
 * the number of runs of items out of range (a cut int counts as one), or
 * -1. */
static long
count_runs(unsigned char *runs, long n)
{
    unsigned char buf[4096];
    size_t have = 0;
    long wrong = 0;

    memset(runs, 0, (size_t)n);
    if (fcntl(ran_pipe[0], F_SETFL, O_NONBLOCK) == -1)
        return -1;
    for (;;) {
        ssize_t got = read(ran_pipe[0], buf + have, sizeof buf - have);
        size_t at = 0;

        if (got == -1 && errno == EINTR)
            continue;
        if (got <= 0)
            break;              /* EAGAIN: all of it read */
        have += (size_t)got;
        for (; have - at >= sizeof(int); at += sizeof(int)) {
            int x;

            memcpy(&x, buf + at, sizeof x);
            if (x >= 0 && x < n)
                runs[x]++;
            else
                wrong++;
        }
        memmove(buf, buf + at, have - at);
        have -= at;
    }
    return wrong + (have > 0);
}

/*
 * A worker dies running its first chunk while its other chunks wait in its
 * task pipe: depth 4, 2 workers, chunksize cs. Before the parent waits for
 * any result, it has sent every worker 4 chunks, round by round: worker 0
 * holds chunks 0, 2, 4 and 6. Chunk 0 waits at a gate, which the callback
 * opens at the first result (from worker 1): worker 0 dies with chunks 2,
 * 4 and 6 queued. Exactly the items of chunk 0 fail, once; the queued
 * chunks, never begun, run elsewhere, each item exactly once.
 */
static int
crash_queued_case(long cs)
{
    static unsigned char count[40], runs[40];
    static long long values[40];
    struct order orders[40];
    struct seen s = {.n = 40, .count = count, .values = values};
    const struct pool_error *e;
    struct pool *p = make_pool((struct pool_config){.workers = 2,
                                                    .depth = 4});
    pid_t victim;

    CHECK(p != NULL, "no pool");
    victim = pool_worker_pid(p, 0);
    plain_orders(orders, 40);
    orders[0].action = GATE_CRASH;
    memset(count, 0, sizeof count);
    CHECK(pool_imap_unordered(p, &POOL_FUNC(obey, struct order,
                                            struct answer),
                              orders, 40, cs, note_and_open_gate, &s) == -1,
          "imap_unordered did not fail");
    CHECK(failed_with(p, POOL_EWORKER), "not POOL_EWORKER");
    e = pool_last_error(p);
    CHECK(e->index == 0 && e->failed == cs && e->signal == SIGKILL &&
          e->pid == victim, "chunksize %ld: index %ld, failed %ld, signal %d, "
          "pid %ld; expected 0, %ld, 9, %ld (the pool said: %s)", cs,
          e->index, e->failed, e->signal, (long)e->pid, cs, (long)victim,
          e->message);
    CHECK(count_runs(runs, 40) == 0, "runs of items that do not exist");
    for (long i = 0; i < 40; i++) {
        CHECK(count[i] == (i < cs ? 0 : 1) && (i < cs || values[i] == i * i),
              "chunksize %ld: item %ld handed over %d times, value %lld: a "
              "queued chunk of the dead worker was lost, failed or sent "
              "twice", cs, i, count[i], values[i]);
        CHECK(runs[i] == (i == 0 || i >= cs), "chunksize %ld: item %ld ran "
              "%d times, expected %s", cs, i, runs[i],
              i == 0 || i >= cs ? "once" : "never (its chunk's worker died "
              "before it)");
    }
    CHECK(pool_worker_pid(p, 0) != victim && pool_worker_pid(p, 0) > 0,
          "the dead worker was not replaced");
    CHECK(map_sqr_ok(p, 30, 0), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

static int
crash_with_queued(void)
{
    CHECK(pipe(gate_pipe) == 0 && pipe(ran_pipe) == 0, "pipe: %s",
          strerror(errno));
    for (long cs = 1; cs <= 3; cs += 2) {
        char c;

        if (crash_queued_case(cs) == -1)
            return -1;
        while (wait_readable(gate_pipe[0], 0))  /* close the gate again */
            CHECK(read_byte(gate_pipe[0], &c) == 1, "read gate");
    }
    return 0;
}

/*
 * each() stops the call while every worker has chunks queued (depth 4, 2
 * workers, tasks of 20 ms: at the first result the other chunks are all
 * sent). Nothing is handed over after the stop; the abandoned results
 * reach no later call: the next imap_unordered hands over exactly its own
 * items, once each, and a map after it is right.
 */
static int
stop_with_queued(void)
{
    static unsigned char count[50];
    static long long values[50];
    struct order orders[40];
    long long xs[50];
    struct pool *p = make_pool((struct pool_config){.workers = 2,
                                                    .depth = 4});
    struct seen s = {.n = 40, .stop_after = 1, .count = count,
                     .values = values};
    struct seen t = {.n = 50, .count = count, .values = values};

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 40; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 20};
    CHECK(pool_imap_unordered(p, &POOL_FUNC(obey, struct order,
                                            struct answer),
                              orders, 40, 1, note_seen, &s) == 1,
          "imap_unordered did not stop: %s", pool_last_error(p)->message);
    CHECK(s.calls == 1, "the callback was called %ld times; it said stop at "
          "the first", s.calls);
    for (long i = 0; i < 50; i++)
        xs[i] = 1000 + i;
    memset(count, 0, sizeof count);
    CHECK(pool_imap_unordered(p, &POOL_FUNC(sqr, long long, long long), xs,
                              50, 1, note_seen, &t) == 0,
          "the call after the stop failed: %s", pool_last_error(p)->message);
    CHECK(s.calls == 1, "the stopped call's callback ran again");
    for (long i = 0; i < 50; i++)
        CHECK(count[i] == 1 && values[i] == xs[i] * xs[i], "item %ld of the "
              "next call: handed over %d times, value %lld, expected %lld: "
              "an abandoned result leaked into it", i, count[i], values[i],
              xs[i] * xs[i]);
    CHECK(t.calls == 50, "%ld results for 50 items", t.calls);
    CHECK(map_sqr_ok(p, 100, 1), "the map after a stop differs");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/*
 * maxtasks 3 with depth 4: a worker is sent at most the chunks it has
 * left, and is replaced once it has done them. 30 chunks, 2 workers: at
 * least 10 pids, none with more than 3 tasks, so exactly 3 each. A depth
 * out of range is refused.
 */
static int
recycling_with_queued(void)
{
    struct order orders[30];
    struct answer out[30];
    long most, distinct;
    struct pool_error err;
    struct pool *p;

    CHECK(pool_create(&(struct pool_config){.depth = -1}, &err) == NULL &&
          err.kind == POOL_EINVAL && pool_create(&(struct pool_config){
              .depth = POOL_MAX_DEPTH + 1}, &err) == NULL &&
          err.kind == POOL_EINVAL, "depth -1 or POOL_MAX_DEPTH + 1 accepted");
    p = make_pool((struct pool_config){.workers = 2, .maxtasks = 3,
                                       .depth = 4});
    CHECK(p != NULL, "no pool");
    plain_orders(orders, 30);
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 30, 1) == 0, "map failed: %s",
          pool_last_error(p)->message);
    CHECK(squares_ok(out, 30, NULL), "wrong results");
    distinct = distinct_pids(out, 30, &most);
    CHECK(distinct >= 10 && most <= 3, "maxtasks 3, depth 4, 30 tasks: %ld "
          "worker pids, one did %ld tasks; expected at least 10 pids, none "
          "over 3 tasks", distinct, most);
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* ---- the cases: initializers ------------------------------------------ */

/* test_pool_initializer: once in each worker, replacements included, with
 * its argument. */
static int
initializer_once(void)
{
    static int answer = 42;
    struct order orders[20];
    struct answer out[20];
    long n = small ? 8 : 20;
    struct pool *p = make_pool((struct pool_config){
        .workers = 3, .maxtasks = 2, .init = count_init,
        .init_arg = &answer});

    CHECK(p != NULL, "no pool");
    plain_orders(orders, n);
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, n, 1) == 0, "map failed: %s",
          pool_last_error(p)->message);
    for (long i = 0; i < n; i++)
        CHECK(out[i].inits == 1 && out[i].init_pid == out[i].pid,
              "item %ld: the initializer ran %ld times in worker %ld (pid it "
              "saw: %ld)", i, out[i].inits, out[i].pid, out[i].init_pid);
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* gh-87472: Python respawns a failing initializer for ever. Here create
 * fails, at once, and leaves no process. */
static int
initializer_fails(void)
{
    static int (*const inits_[])(void *) = {failing_init, crashing_init};
    struct pool_error err;
    int status;

    for (int i = 0; i < 2; i++) {
        double t0 = now();

        CHECK(pool_create(&(struct pool_config){.workers = 4,
                                                .init = inits_[i]},
                          &err) == NULL, "create succeeded");
        CHECK(err.kind == POOL_EINIT, "%s, not POOL_EINIT: %s",
              kind_name(err.kind), err.message);
        CHECK(i == 0 ? err.code == 7 && strstr(err.message, "code 7")
                     : err.signal == SIGKILL,
              "code %d, signal %d: %s", err.code, err.signal, err.message);
        CHECK(waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD,
              "a worker is left after the failed create");
        CHECK(!check_times || now() - t0 < 5.0, "create took %.2f s to fail",
              now() - t0);
    }
    return 0;
}

/* ---- the cases: many workers, big records, descriptors ---------------- */

/* gh-89240: a pool of 200 workers maps 1000 items; 20 under valgrind. */
static int
large_pool(long workers)
{
    long long xs[1000], ys[1000], sum = 0;
    struct pool *p = make_pool((struct pool_config){.workers = workers});

    CHECK(p != NULL, "no pool");
    CHECK(pool_workers(p) == workers, "%ld workers", pool_workers(p));
    for (long i = 0; i < 1000; i++)
        xs[i] = i;
    CHECK(pool_map(p, &POOL_FUNC(sqr, long long, long long), xs, ys, 1000,
                   0) == 0, "map failed: %s", pool_last_error(p)->message);
    for (long i = 0; i < 1000; i++)
        sum += ys[i];
    CHECK(sum == 332833500, "sum(map(f, range(1000))) is %lld, not "
          "332833500", sum);
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

static int
large_pool_200(void)
{
    return large_pool(200);
}

static int
large_pool_20(void)
{
    return large_pool(20);
}

/* Records bigger than a pipe, both ways; and 200000 small items. */
static int
big_records(void)
{
    static struct blob in[40], out[40];
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 40; i++)
        memset(in[i].bytes, (int)i, sizeof in[i].bytes);
    CHECK(pool_map(p, &POOL_FUNC(bump_blob, struct blob, struct blob), in,
                   out, 40, 7) == 0, "map failed: %s",
          pool_last_error(p)->message);
    for (long i = 0; i < 40; i++)
        for (size_t j = 0; j < BLOB_SIZE; j += 4093)
            CHECK(out[i].bytes[j] == (unsigned char)(i + 1), "blob %ld, byte "
                  "%zu is %d", i, j, out[i].bytes[j]);
    CHECK(map_sqr_ok(p, 200000, 0), "200000 items differ");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/*
 * How many descriptors above 2 a child forked now holds, before any pool
 * exists: what a worker holds besides its two pipe ends. (Under valgrind a
 * forked child holds one more than its parent: valgrind's own log file.)
 */
static long
child_fds(void)
{
    pid_t pid;
    int status;

    fflush(NULL);
    if ((pid = fork()) == 0) {
        long n;

        count_fds(NULL, NULL, &n);
        _exit((int)(n < 100 ? n : 100));
    }
    if (pid == -1 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Every worker holds exactly its own two pipe ends, whatever other
 * workers and pools exist, replacements included. */
static int
fd_isolation(void)
{
    long base = child_fds(), counts[16];
    long long ignored[16] = {0};
    struct pool *a = make_pool((struct pool_config){.workers = 4,
                                                    .maxtasks = 2});
    struct pool *b;

    CHECK(base >= 0, "cannot count a child's descriptors");
    CHECK(a != NULL, "no pool");
    CHECK((b = make_pool((struct pool_config){.workers = 3})) != NULL,
          "no pool");
    for (struct pool *p = a; p != NULL; p = p == a ? b : NULL) {
        CHECK(pool_map(p, &POOL_FUNC(count_fds, long long, long), ignored,
                       counts, 16, 1) == 0, "map failed: %s",
              pool_last_error(p)->message);
        for (long i = 0; i < 16; i++)
            CHECK(counts[i] == base + 2, "pool %c: a worker holds %ld "
                  "descriptors above 2, expected %ld (its task and result "
                  "pipes)", p == a ? 'a' : 'b', counts[i], base + 2);
    }
    CHECK(finish_pool(&b) == 0 && finish_pool(&a) == 0, "join failed");
    return 0;
}

/* Two pools at once: closing one ends its workers while the other lives
 * (no worker of b holds a's task pipes). */
static int
two_pools(void)
{
    struct pool *a = make_pool((struct pool_config){.workers = 2});
    struct pool *b = make_pool((struct pool_config){.workers = 2});

    CHECK(a != NULL && b != NULL, "no pool");
    CHECK(map_sqr_ok(a, 50, 0) && map_sqr_ok(b, 50, 0), "maps differ");
    CHECK(finish_pool(&a) == 0, "closing pool a failed");
    CHECK(map_sqr_ok(b, 50, 3), "pool b is not usable after a has gone");
    CHECK(finish_pool(&b) == 0, "closing pool b failed");
    return 0;
}

/* Python's `with Pool() as p:` (test_context): leaving the scope
 * terminates and reaps the workers; the pointer is NULL. */
static int
scoped(pid_t *pids)
{
#ifdef POOL_AUTO
    struct pool *p POOL_AUTO = pool_create(&(struct pool_config){
        .workers = 3}, NULL);
#else
    struct pool *p = pool_create(&(struct pool_config){.workers = 3}, NULL);
#endif

    if (p == NULL)
        return -1;
    for (long i = 0; i < 3; i++)
        pids[i] = pool_worker_pid(p, i);
    if (!map_sqr_ok(p, 10, 0))
        pids[0] = -1;
#ifndef POOL_AUTO
    pool_destroy(&p);           /* the portable form: on every way out */
#endif
    return 0;                   /* POOL_AUTO: pool_destroy(&p) runs here */
}

static int
scope_exit(void)
{
    pid_t pids[3] = {0, 0, 0};

    CHECK(scoped(pids) == 0 && pids[0] > 0, "the scoped pool failed");
    for (int i = 0; i < 3; i++)
        CHECK(is_gone(pids[i]) && waitpid(pids[i], NULL, WNOHANG) == -1,
              "worker %ld is still there after the scope", (long)pids[i]);
    return 0;
}

/* A child forked by the caller destroys its copy: only its copies go; the
 * parent's workers stay (pool.h, pool_destroy). */
static int
destroy_in_child(void)
{
    struct pool *p = make_pool((struct pool_config){.workers = 2});
    pid_t child;
    int status;

    CHECK(p != NULL, "no pool");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (child = fork()) {
    case -1:
        CHECK(0, "fork: %s", strerror(errno));
        break;
    case 0:
        pool_destroy(&p);
        _exit(p == NULL ? 0 : 1);
    default:
        break;
    }
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0, "the child's pool_destroy failed");
    CHECK(map_sqr_ok(p, 20, 0), "the workers did not survive the child's "
          "pool_destroy");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

/* SIGALRM: one byte into the self-pipe. */
static void
on_alarm(int sig)
{
    int saved = errno;

    (void)sig;
    if (write(alarm_pipe[1], "!", 1) == -1) {
        /* full: the pool has been told already */
    }
    errno = saved;
}

/* A handler's self-pipe as cancel_fd stops a long map at once. */
static int
cancel_long_map(void)
{
    struct order orders[4];
    struct answer out[4];
    struct itimerval t = {{0, 0}, {0, 200000}};
    struct sigaction sa;
    struct pool *p;
    double t0;

    CHECK(pipe(alarm_pipe) == 0, "pipe: %s", strerror(errno));
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    p = make_pool((struct pool_config){.workers = 2,
                                       .cancel_fd = alarm_pipe[0]});
    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 4; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 60000};
    t0 = now();
    CHECK(setitimer(ITIMER_REAL, &t, NULL) == 0, "setitimer");
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 4, 1) == -1 && failed_with(p, POOL_ECANCELED),
          "the map was not cancelled");
    CHECK(pool_terminate(p) == 0 && pool_join(p) == 0, "terminate failed");
    CHECK(!check_times || now() - t0 < 2.5, "cancel and terminate took "
          "%.2f s", now() - t0);
    drop_pool(&p);
    return 0;
}

/* SIGALRM: Ctrl-C, as the terminal sends it, to the whole group. */
static void
interrupt_group(int sig)
{
    int saved = errno;

    (void)sig;
    kill(0, SIGINT);
    errno = saved;
}

static void
note_sigint(int sig)
{
    (void)sig;
    got_sigint = 1;
}

/* Ctrl-C reaches the workers too (the whole foreground group); they ignore
 * it and the parent decides. This parent only notes it: the map finishes. */
static int
group_sigint(void)
{
    struct order orders[6];
    struct answer out[6];
    struct itimerval t = {{0, 0}, {0, 150000}};
    struct sigaction sa;
    struct pool *p = make_pool((struct pool_config){.workers = 3});

    CHECK(p != NULL, "no pool");
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = note_sigint;
    CHECK(sigaction(SIGINT, &sa, NULL) == 0, "sigaction");
    sa.sa_handler = interrupt_group;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    for (long i = 0; i < 6; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 400};
    CHECK(setitimer(ITIMER_REAL, &t, NULL) == 0, "setitimer");
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   out, 6, 1) == 0, "the map failed after SIGINT to the "
          "group: %s", pool_last_error(p)->message);
    CHECK(got_sigint, "SIGINT never came");
    CHECK(squares_ok(out, 6, NULL), "wrong results");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

static void
note_handler(int sig)
{
    (void)sig;
    handler_ran = 1;
}

static void
note_handler_info(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    (void)context;
    handler_ran = 1;
}

/* In a worker: raise SIGWINCH and SIGCONT, whose default actions leave the
 * process running, and fail the item (code 1) if the parent's handler of
 * either ran here. */
static int
raise_signals(const void *args, const void *in, void *out)
{
    (void)args;
    (void)in;
    (void)out;
    handler_ran = 0;
    (void)raise(SIGWINCH);      /* fails only for a bad signal number */
    (void)raise(SIGCONT);
    return handler_ran;
}

/* Set sig's action to handler (plain, or SA_SIGINFO's three-argument
 * kind), or to SIG_DFL when both are NULL. Returns sigaction()'s result. */
static int
set_action(int sig, void (*handler)(int),
           void (*info_handler)(int, siginfo_t *, void *))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (info_handler != NULL) {
        sa.sa_sigaction = info_handler;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = handler != NULL ? handler : SIG_DFL;
    }
    return sigaction(sig, &sa, NULL);
}

/* A terminal resize sends SIGWINCH to the whole foreground group: a
 * handler the parent set (here for SIGWINCH, and an SA_SIGINFO one for
 * SIGCONT) must not run in its workers, replacements included. */
static int
worker_signals(void)
{
    struct answer out[8];
    long long xs[8] = {0};
    struct pool *p;
    int rc;

    CHECK(set_action(SIGWINCH, note_handler, NULL) == 0 &&
          set_action(SIGCONT, NULL, note_handler_info) == 0, "sigaction");
    (void)raise(SIGWINCH);      /* the check below says if it failed */
    CHECK(handler_ran, "the parent's own SIGWINCH handler did not run");
    p = make_pool((struct pool_config){.workers = 2, .maxtasks = 2});
    CHECK(p != NULL, "no pool");
    rc = pool_map(p, &POOL_FUNC(raise_signals, long long, struct answer),
                  xs, out, 8, 1);
    CHECK(rc == 0, "a handler of the parent ran in a worker: %s (the "
          "worker must reset every signal the parent catches)",
          pool_last_error(p)->message);
    CHECK(finish_pool(&p) == 0, "join failed");
    CHECK(set_action(SIGWINCH, NULL, NULL) == 0 &&
          set_action(SIGCONT, NULL, NULL) == 0, "sigaction");
    return 0;
}

/* The lifeline: workers leave when their parent dies, even by SIGKILL,
 * because their task pipes give end-of-file. */
static int
parent_killed(void)
{
    int lifeline[2], ready[2];
    pid_t boss;
    char c;

    CHECK(pipe(lifeline) == 0 && pipe(ready) == 0, "pipe");
    fflush(NULL);
    if ((boss = fork()) == 0) {     /* the pool's parent, to be killed */
        struct pool *p;

        close(lifeline[0]);
        close(ready[0]);
        p = pool_create(&(struct pool_config){.workers = 3}, NULL);
        close(lifeline[1]);         /* now only the workers hold it */
        if (p == NULL || write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    CHECK(boss != -1, "fork: %s", strerror(errno));
    close(lifeline[1]);
    close(ready[1]);
    CHECK(read_byte(ready[0], &c) == 1, "the pool did not start");
    CHECK(kill(boss, SIGKILL) == 0 && waitpid(boss, NULL, 0) == boss,
          "could not kill the pool's parent");
    CHECK(wait_readable(lifeline[0], 8000) && read_byte(lifeline[0], &c) == 0,
          "the workers did not leave within 8 s of their parent's death");
    return 0;
}

/* ---- main ------------------------------------------------------------- */

/* The timeout of the timeout cases: far above the time any chunk that
 * ends takes, however slow the machine (valgrind, a loaded CPU), and far
 * below the chunk that never ends. */
#define TIMEOUT_MS 2000

/*
 * A chunk that never ends, with chunks queued behind it: 2 workers, depth
 * 4, timeout_ms. Before the parent waits for any result, worker 0 holds
 * chunk 0 (it sleeps for ten minutes) and three more chunks queued behind
 * it. Exactly the items of chunk 0 fail, with POOL_ETIMEOUT; worker 0 is
 * killed and replaced; its queued chunks, never begun, run elsewhere, each
 * item exactly once, and every other result is exact.
 */
static int
timeout_case(long cs)
{
    static unsigned char runs[40];
    static struct answer answers[40];
    struct order orders[40];
    long skip[4] = {-1, -1, -1, -1};
    const struct pool_error *e;
    struct pool *p = make_pool((struct pool_config){.workers = 2, .depth = 4,
                                                    .timeout_ms = TIMEOUT_MS});
    pid_t victim;

    CHECK(p != NULL, "no pool");
    victim = pool_worker_pid(p, 0);
    plain_orders(orders, 40);
    orders[0] = (struct order){.x = 0, .action = SLEEP, .arg = 600000};
    for (long i = 0; i < cs; i++)
        skip[i] = i;
    memset(answers, 0, sizeof answers);
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   answers, 40, cs) == -1, "map did not fail: the chunk that "
          "never ends was not timed out");
    CHECK(failed_with(p, POOL_ETIMEOUT), "not POOL_ETIMEOUT");
    e = pool_last_error(p);
    CHECK(e->index == 0 && e->failed == cs && e->pid == victim &&
          e->code == TIMEOUT_MS, "chunksize %ld: index %ld, failed %ld, pid "
          "%ld, code %d; expected 0, %ld, %ld, %d (the pool said: %s)", cs,
          e->index, e->failed, (long)e->pid, e->code, cs, (long)victim,
          TIMEOUT_MS, e->message);
    CHECK(squares_ok(answers, 40, skip), "chunksize %ld: wrong results", cs);
    CHECK(count_runs(runs, 40) == 0, "runs of items that do not exist");
    for (long i = 0; i < 40; i++)
        CHECK(runs[i] == (i == 0 || i >= cs), "chunksize %ld: item %ld ran %d "
              "times, expected %s", cs, i, runs[i], i == 0 || i >= cs ? "once"
              : "never (the chunk before it in its task never ended)");
    CHECK(pool_worker_pid(p, 0) != victim && pool_worker_pid(p, 0) > 0,
          "the worker of the late chunk was not replaced");
    CHECK(map_sqr_ok(p, 30, 0), "the pool is not usable afterwards");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

static int
timeout_late_chunk(void)
{
    CHECK(pipe(ran_pipe) == 0, "pipe: %s", strerror(errno));
    for (long cs = 1; cs <= 3; cs += 2)
        if (timeout_case(cs) == -1)
            return -1;
    return 0;
}

/*
 * A chunk's clock starts when it begins to run, not when it is queued: one
 * worker, depth 8, ten chunks of one item that each sleeps 250 ms, sent
 * eight at once. The whole map takes at least 2.5 s, longer than
 * timeout_ms; each chunk takes 250 ms and a little. Nothing times out, and
 * every result is exact.
 */
static int
timeout_clock_per_chunk(void)
{
    struct answer answers[10];
    struct order orders[10];
    struct pool *p = make_pool((struct pool_config){.workers = 1, .depth = 8,
                                                    .timeout_ms = TIMEOUT_MS});

    CHECK(p != NULL, "no pool");
    for (long i = 0; i < 10; i++)
        orders[i] = (struct order){.x = i, .action = SLEEP, .arg = 250};
    CHECK(pool_map(p, &POOL_FUNC(obey, struct order, struct answer), orders,
                   answers, 10, 1) == 0, "a map of ten chunks of 250 ms "
          "failed with timeout_ms %d: %s", TIMEOUT_MS,
          pool_last_error(p)->message);
    CHECK(squares_ok(answers, 10, NULL), "wrong results");
    CHECK(finish_pool(&p) == 0, "join failed");
    return 0;
}

static const struct acceptance_case cases[] = {
    {"map-equals-loop", map_equals_loop},
    {"map-chunksizes", map_chunksizes},
    {"starmap-equals-loop", starmap_equals_loop},
    {"functor-by-value", functor_by_value},
    {"empty-input", empty_input},
    {"unordered-once", unordered_once},
    {"unordered-errors", unordered_errors},
    {"unordered-one-worker", unordered_one_worker},
    {"unordered-stop", unordered_stop},
    {"worker-count-validation", worker_count_validation},
    {"terminate-prompt", terminate_prompt},
    {"use-after-close", use_after_close},
    {"task-error", task_error},
    {"worker-recycling", worker_recycling},
    {"recycling-early-close", recycling_early_close},
    {"crash-during-task", crash_during_task},
    {"exit-during-task", exit_during_task},
    {"crash-before-receipt", crash_before_receipt},
    {"crash-while-sending", crash_while_sending},
    {"join-reports-death", join_reports_death},
    {"crash-with-queued", crash_with_queued},
    {"stop-with-queued", stop_with_queued},
    {"recycling-with-queued", recycling_with_queued},
    {"mute-worker", mute_worker},
    {"no-repeated-output", no_repeated_output},
    {"initializer-once", initializer_once},
    {"initializer-fails", initializer_fails},
    {"large-pool-200", large_pool_200},
    {"large-pool-20", large_pool_20},
    {"big-records", big_records},
    {"fd-isolation", fd_isolation},
    {"two-pools", two_pools},
    {"scope-exit", scope_exit},
    {"destroy-in-child", destroy_in_child},
    {"cancel-long-map", cancel_long_map},
    {"group-sigint", group_sigint},
    {"worker-signals", worker_signals},
    {"parent-killed", parent_killed},
    {"timeout-late-chunk", timeout_late_chunk},
    {"timeout-clock-per-chunk", timeout_clock_per_chunk},
};

/* Flush stdout; on failure (a full disk, a closed stdout) say so in one
 * line. Returns 0, or 1 after the message. */
static int
flush_stdout(void)
{
    if (fflush(stdout) != EOF)
        return 0;
    fprintf(stderr, "acceptance: stdout: %s\n", strerror(errno));
    return 1;
}

int
main(int argc, char **argv)
{
    int opt, rc = 2;

    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, "hlst")) != -1) {
        switch (opt) {
        case 'h':
            printf("usage: acceptance [-st] CASE | -l | -h\n"
                   "Runs one case of the pool's acceptance suite: prints "
                   "\"ok CASE\" and exits 0,\nor says on stderr what failed "
                   "and exits 1.\n"
                   "  -l  list the cases\n"
                   "  -s  small: fewer forks where workers are recycled\n"
                   "  -t  check times too\n");
            return flush_stdout();
        case 'l':
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                printf("%s\n", cases[i].name);
            return flush_stdout();
        case 's': small = 1; break;
        case 't': check_times = 1; break;
        default:
            fprintf(stderr, "acceptance: unknown option '-%c' (try -h)\n",
                    optopt);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "acceptance: give one CASE, or -l to list them "
                "(try -h)\n");
        return 2;
    }
    case_name = argv[optind];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(cases[i].name, case_name) == 0)
            rc = cases[i].run();
    if (rc == 2)
        fprintf(stderr, "acceptance: no case '%s' (try -l)\n", case_name);
    else if (rc == 0)
        printf("ok %s\n", case_name);
    for (int i = 0; i < MAX_POOLS; i++)
        pool_destroy(&held[i]);     /* a failed case: stop its workers */
    if (flush_stdout() != 0)
        return 1;
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}
