/* SPDX-License-Identifier: MIT */
/*
 * guard.c: run one lesson program under watch, for the test suites.
 *
 * A lesson program may hang, fork without end, leak workers or leave zombies.
 * guard runs it in a process group of its own, with fd 3 and above closed,
 * stdin from /dev/null, and every signal at its default. It enforces a
 * deadline and a cap on how many processes the program may hold, sends the
 * signals a test plans at the moment planned, and when the program has
 * exited it takes a census: children the program never reaped (zombies), and
 * processes that outlived it. Then it kills whatever is left, so that a test
 * never leaves a process behind.
 *
 * What it reports is observed, not sampled (see docs/internals.md):
 * - how many processes the program made and held at once comes from
 *   forkwatch (-P), a library preloaded into the program that counts every
 *   fork() and every reaping wait() as it happens;
 * - what is left when the program exits comes from the census: on Linux
 *   guard is a child subreaper (prctl(2)), so every process the program
 *   leaves behind is adopted by guard, alive or zombie, and stays until guard
 *   reaps it. Elsewhere it probes the process group with kill(-pgid, 0);
 * - a planned signal is sent when its time comes, not at the next look: the
 *   loop sleeps in poll() until the next event (a line, the program's exit,
 *   a signal's time, the deadline) and reads the clock again before acting.
 *   A signal that cannot be sent because the program has already ended is
 *   reported as such.
 *
 * Usage: guard [options] -- PROGRAM [ARG...]
 *   -t SECS     deadline; the whole group is killed when it passes (10)
 *   -p N        most processes the program may hold at once, itself included (64)
 *   -P LIB      the forkwatch library to preload (without it: census counts)
 *   -o FILE     program's stdout, through a pipe that guard drains
 *   -f          with -o: stdout is FILE itself, not a pipe
 *   -e FILE     program's stderr
 *   -i FILE     program's stdin (/dev/null)
 *   -H N        read N lines of stdout, then close the pipe, as `| head -N`
 *   -k SIG@WHEN send SIG to the program when WHEN is reached: seconds
 *               (0.5), a count of stdout lines (L3), `poll`: once the
 *               program's first process sleeps in poll() or select(), read
 *               from /proc/PID/wchan (Linux), or `busy`: once, besides, each
 *               process it forked (forkwatch's list) sleeps in nanosleep(),
 *               a task; -g sends to its group. wN/SIG@busy sends SIG to
 *               worker N alone (from 0, in the order forkwatch counted them).
 *               `stopped`: once a process the program forked is stopped
 *               (state T: a SIGSTOP has taken effect)
 *   -w SECS     after the program exits, wait this long for the processes it
 *               left to leave by themselves before counting them (0)
 *   -r FILE     write the report there (key=value lines)
 *   -E VAR=VAL  set VAR in the program's environment (not guard's own);
 *               LD_PRELOAD is added to, not replaced
 *   -c FD       close FD (0, 1 or 2) in the program, as `<&-` or `>&-` does
 *   -n N        the program may open at most N descriptors (RLIMIT_NOFILE,
 *               as `ulimit -n N`)
 *   -F N        with -P: fork() fails with EAGAIN in every process of the
 *               program once it has succeeded N times (a low `ulimit -u`)
 * Exit status: the program's, as the shell gives it (128 + signal when
 * killed); 126 when guard itself cannot run it or its options are wrong.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "forkwatch.h"

#define MAX_PROCS 8192 /* size of one census table */
#define MAX_KICKS 4    /* most -k options */
#define MAX_ENV 8      /* most -E options */
#define CENSUS_MS 20   /* how often the group is counted while it runs */

struct proc {
    pid_t pid;   /* process id */
    pid_t ppid;  /* parent's id */
    pid_t pgrp;  /* process group */
    char state;  /* R, S, D, Z, ... from /proc/PID/stat */
    char comm[32];  /* command name */
    char wchan[48]; /* kernel function it sleeps in, if readable */
    long reads;     /* read() calls it made (/proc/PID/io syscr), or -1 */
    int ours;    /* belongs to the program under watch */
};

struct kick {
    char name[16];  /* the signal's name, as given */
    int sig;        /* signal to send */
    double at;      /* seconds after start, or -1 */
    long lines;     /* stdout lines seen, or -1 */
    int on_poll;    /* send once the program sleeps in poll() or select() */
    int on_busy;    /* ... and each of its workers sleeps in a task */
    int on_stopped; /* send once a process it forked is stopped (state T) */
    int worker;     /* -1: to the program; N: to its worker N (wN/SIG@busy) */
    double sent;    /* when it was sent, seconds after start, or -1 */
};

/* What the command line asks for. */
struct options {
    double deadline;            /* -t */
    double linger;              /* -w */
    long cap;                   /* -p */
    long head;                  /* -H, or -1 */
    const char *out, *err, *in; /* -o, -e, -i */
    const char *report;         /* -r, or NULL */
    const char *shim;           /* -P, or NULL */
    int direct;                 /* -f */
    int close_fd[3];            /* -c: 1 for each of 0, 1, 2 to close */
    long nofile;                /* -n, or -1 */
    long fork_fails_after;      /* -F, or -1 */
    int group;                  /* -g */
    struct kick kicks[MAX_KICKS]; /* -k, in the order given */
    int nkicks;
    const char *env[MAX_ENV];   /* -E VAR=VALUE, for the program only */
    int nenv;
    char **argv;                /* the program and its arguments */
};

/* What guard sees of the program while it runs and after. */
struct run {
    double t0;                  /* when it was started (monotonic) */
    double ended;               /* when its exit was seen, after t0 */
    int status;                 /* its wait status */
    int out_pipe;               /* read end of its stdout, or -1 */
    int ofd;                    /* where its stdout is copied */
    long lines;                 /* stdout lines seen */
    int timed_out;              /* the deadline passed */
    int capped;                 /* it went past the process cap */
    int census_max;             /* most processes one census saw */
    double next_census;         /* when the next census is due */
    struct watch *watch;        /* forkwatch's counters, or NULL */
    char watch_path[PATH_MAX];  /* their file */
    int unreaped;               /* zombies it left; -1 unknown */
    int survivors;              /* processes alive after it (and -w) */
    char survivor_list[1024];   /* their pids */
    char stuck[2048];           /* at the deadline: pid:comm:state:wchan:reads ... */
};

static struct proc table[MAX_PROCS];
static int ntable;
static pid_t self;
static pid_t child;                   /* the program; also its group id */
static volatile sig_atomic_t stop_sig; /* guard itself was asked to stop */
static int wake_pipe[2] = {-1, -1};   /* written by the signal handlers */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Say what went wrong with guard itself and exit 126. */
static void
fail(const char *fmt, ...)
{
    va_list ap;

    fputs("guard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(126);
}

/* Seconds on the monotonic clock. */
static double
now(void)
{
    struct timespec ts;

    /* ignored: CLOCK_MONOTONIC cannot fail where it exists */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleep for ms milliseconds (a signal may cut it short: callers loop). */
static void
nap(long ms)
{
    /* ignored: EINTR only ends the nap early */
    (void)nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000L}, NULL);
}

/* SIGCHLD, or a signal asking guard to stop: wake the main loop. */
static void
on_signal(int sig)
{
    int saved = errno;

    if (sig != SIGCHLD)
        stop_sig = sig;
    /* ignored: a full pipe already holds a wake-up */
    (void)!write(wake_pipe[1], "", 1);
    errno = saved;
}

/* ---- options ------------------------------------------------------------ */

/* A count of seconds, 0 or more: the whole of s, or guard fails. */
static double
parse_seconds(const char *s, int opt)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        fail("-%c wants seconds (0 or more), not '%s'", opt, s);
    return v;
}

/* A whole number from min to LONG_MAX: the whole of s, or guard fails. */
static long
parse_count(const char *s, int opt, long min)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < min)
        fail("-%c wants a whole number of at least %ld, not '%s'", opt, min, s);
    return v;
}

/* The signal NAME (INT, SIGINT) or number names, or guard fails. */
static int
parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"KILL", SIGKILL},
        {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"SEGV", SIGSEGV},
        {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH},
        {"ALRM", SIGALRM},
    };
    const char *bare = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
    char *end;
    long n;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(bare, names[i].name) == 0)
            return names[i].sig;
    n = strtol(s, &end, 10);
    if (end == s || *end != '\0' || n < 1 || n >= NSIG)
        fail("-k: unknown signal '%s'", s);
    return (int)n;
}

/* -k SIG@SECS, SIG@LN, SIG@poll, SIG@busy or wN/SIG@busy. */
static void
parse_kick(struct kick *k, const char *arg)
{
    const char *at = strchr(arg, '@'), *whole = arg;

    k->worker = -1;
    if (arg[0] == 'w' && strchr(arg, '/') != NULL) {
        char *end;

        errno = 0;
        k->worker = (int)strtol(arg + 1, &end, 10);
        if (end == arg + 1 || *end != '/' || k->worker < 0 || k->worker >= WATCH_SLOTS)
            fail("-k wants wN/SIG@busy, N a worker's number from 0, not '%s'", whole);
        arg = end + 1;
    }

    if (at == NULL || at == arg || at - arg >= (long)sizeof k->name)
        fail("-k wants SIG@SECS or SIG@LN, not '%s'", arg);
    memcpy(k->name, arg, at - arg);
    k->name[at - arg] = '\0';
    k->sig = parse_signal(k->name);
    k->at = -1;
    k->lines = -1;
    k->sent = -1;
    if (strcmp(at + 1, "poll") == 0)
        k->on_poll = 1;
    else if (strcmp(at + 1, "busy") == 0)
        k->on_poll = k->on_busy = 1;
    else if (strcmp(at + 1, "stopped") == 0)
        k->on_stopped = 1;
    else if (at[1] == 'L')
        k->lines = parse_count(at + 2, 'k', 1);
    else
        k->at = parse_seconds(at + 1, 'k');
    if (k->worker >= 0 && !k->on_busy && !k->on_stopped)
        fail("-k %s: a worker's signal waits for @busy or @stopped, when the workers exist", whole);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.deadline = 10, .cap = 64, .head = -1,
                          .in = "/dev/null", .nofile = -1,
                          .fork_fails_after = -1};
    while ((opt = getopt(argc, argv, "+t:p:P:o:fe:i:H:k:gw:r:E:c:n:F:")) != -1) {
        switch (opt) {
        case 't': o->deadline = parse_seconds(optarg, opt); break;
        case 'p': o->cap = parse_count(optarg, opt, 1); break;
        case 'P': o->shim = optarg; break;
        case 'o': o->out = optarg; break;
        case 'f': o->direct = 1; break;
        case 'e': o->err = optarg; break;
        case 'i': o->in = optarg; break;
        case 'H': o->head = parse_count(optarg, opt, 1); break;
        case 'g': o->group = 1; break;
        case 'w': o->linger = parse_seconds(optarg, opt); break;
        case 'r': o->report = optarg; break;
        case 'c':
            if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '2')
                fail("-c wants 0, 1 or 2, not '%s'", optarg);
            o->close_fd[optarg[0] - '0'] = 1;
            break;
        case 'n': o->nofile = parse_count(optarg, opt, 0); break;
        case 'F': o->fork_fails_after = parse_count(optarg, opt, 0); break;
        case 'E':
            if (o->nenv == MAX_ENV)
                fail("at most %d -E options", MAX_ENV);
            if (strchr(optarg, '=') == NULL || optarg[0] == '=')
                fail("-E wants VAR=VALUE, not '%s'", optarg);
            o->env[o->nenv++] = optarg;
            break;
        case 'k':
            if (o->nkicks == MAX_KICKS)
                fail("at most %d -k options", MAX_KICKS);
            parse_kick(&o->kicks[o->nkicks++], optarg);
            break;
        default: fail("usage: guard [options] -- PROGRAM [ARG...]");
        }
    }
    if (optind >= argc)
        fail("usage: guard [options] -- PROGRAM [ARG...]");
    if (o->direct && o->out == NULL)
        fail("-f needs -o FILE");
    if (o->cap > WATCH_SLOTS)
        fail("-p: at most %d processes", WATCH_SLOTS);
    if (o->fork_fails_after >= 0 && o->shim == NULL)
        fail("-F needs -P LIB: forkwatch makes fork() fail");
    if (o->fork_fails_after > INT_MAX)
        fail("-F: at most %d", INT_MAX);
    o->argv = argv + optind;
}

/* ---- the census --------------------------------------------------------- */

/* Read a small file into buf; return its length, or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd == -1)
        return -1;
    n = read(fd, buf, size - 1);
    (void)close(fd);            /* ignored: a read-only file */
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* Parse /proc/NAME/stat into pr; 0 on success. */
static int
read_proc(const char *name, struct proc *pr)
{
    char path[300], buf[512], *p;

    snprintf(path, sizeof path, "/proc/%s/stat", name);
    if (slurp(path, buf, sizeof buf) <= 0 || (p = strrchr(buf, ')')) == NULL)
        return -1;
    memset(pr, 0, sizeof *pr);
    if (sscanf(buf, "%d", &pr->pid) != 1 ||
        sscanf(p + 2, "%c %d %d", &pr->state, &pr->ppid, &pr->pgrp) != 3)
        return -1;
    *p = '\0';
    snprintf(pr->comm, sizeof pr->comm, "%s", strchr(buf, '(') + 1);
    return 0;
}

/* Mark every descendant of a marked process as marked. */
static void
mark_descendants(void)
{
    int changed;

    do {
        changed = 0;
        for (int i = 0; i < ntable && ntable < 2048; i++)
            for (int j = 0; j < ntable && !table[i].ours; j++)
                if (table[j].ours && table[j].pid == table[i].ppid)
                    table[i].ours = changed = 1;
    } while (changed);
}

/*
 * Fill table[] with every process of the system (Linux /proc), and mark the
 * ones that belong to the program: its group, guard's adopted children, and
 * every descendant of those. When more than `cap` processes of the group are
 * seen, the group is killed at once, in the middle of the scan. Return how
 * many are marked, or -1 where there is no /proc.
 */
static int
census(long cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0, members = 0;

    if (d == NULL)
        return -1;
    ntable = 0;
    while ((e = readdir(d)) != NULL && ntable < MAX_PROCS) {
        struct proc *pr = &table[ntable];

        if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
            read_proc(e->d_name, pr) != 0 || pr->pid == self)
            continue;
        pr->ours = (child > 0 && pr->pgrp == child) || pr->ppid == self;
        if (pr->ours && ++members > cap && cap > 0 && child > 0)
            (void)kill(-child, SIGKILL); /* ignored: ESRCH, gone already */
        ntable++;
    }
    (void)closedir(d);          /* ignored: a directory read to its end */
    mark_descendants();
    for (int i = 0; i < ntable; i++)
        n += table[i].ours;
    return n;
}

/* The count of read() calls pid has made, from /proc/PID/io; -1 unknown. */
static long
read_calls(pid_t pid)
{
    char path[64], buf[512], *p;

    snprintf(path, sizeof path, "/proc/%d/io", pid);
    if (slurp(path, buf, sizeof buf) <= 0 || (p = strstr(buf, "syscr:")) == NULL)
        return -1;
    return strtol(p + 6, NULL, 10);
}

/* Note, for each marked process, the kernel function it sleeps in and how
 * many read() calls it has made (a loop on a read() that returns 0 makes
 * millions). */
static void
read_wchans(void)
{
    for (int i = 0; i < ntable; i++) {
        char path[64];

        if (!table[i].ours)
            continue;
        snprintf(path, sizeof path, "/proc/%d/wchan", table[i].pid);
        /* "0": the kernel says it sleeps nowhere, it runs (kept as 0) */
        if (slurp(path, table[i].wchan, sizeof table[i].wchan) <= 0)
            snprintf(table[i].wchan, sizeof table[i].wchan, "?");
        table[i].reads = read_calls(table[i].pid);
    }
}

/* Kill the program's group and every process the last census marked. */
static void
kill_all(void)
{
    /* ignored: ESRCH, a process already gone, is what we want */
    if (child > 0)
        (void)kill(-child, SIGKILL);
    for (int i = 0; i < ntable; i++)
        if (table[i].ours)
            (void)kill(table[i].pid, SIGKILL);
}

/* Reap every child of guard that has ended; return 1 if some are left. */
static int
reap_adopted(void)
{
    for (;;) {
        pid_t p = waitpid(-1, NULL, WNOHANG);

        if (p > 0)
            continue;
        return p == 0 || (p == -1 && errno == EINTR);
    }
}

/* ---- starting the program ----------------------------------------------- */

/* Make the file of forkwatch's counters; without -P there is none. */
static void
watch_create(struct run *r, const struct options *o)
{
    const char *dir = getenv("TMPDIR");
    int fd;
    void *p;

    if (o->shim == NULL)
        return;
    if (access(o->shim, R_OK) != 0)
        fail("-P %s: %s", o->shim, strerror(errno));
    snprintf(r->watch_path, sizeof r->watch_path, "%s/guard-watch.XXXXXX",
             dir != NULL && *dir != '\0' ? dir : "/tmp");
    if ((fd = mkstemp(r->watch_path)) == -1)
        fail("%s: %s", r->watch_path, strerror(errno));
    if (ftruncate(fd, sizeof *r->watch) == -1)
        fail("%s: %s", r->watch_path, strerror(errno));
    p = mmap(NULL, sizeof *r->watch, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        fail("mmap %s: %s", r->watch_path, strerror(errno));
    (void)close(fd);            /* ignored: the mapping holds the file */
    r->watch = p;
    r->watch->cap = (int)o->cap;
    r->watch->fork_fails_after = (int)o->fork_fails_after;
    r->watch->magic = WATCH_MAGIC;
}

/* Add VALUE to the list in environment variable NAME, SEP between. */
static void
env_append(const char *name, const char *value, const char *sep)
{
    const char *old = getenv(name);
    char buf[4096];

    if (old == NULL || *old == '\0')
        snprintf(buf, sizeof buf, "%s", value);
    else
        snprintf(buf, sizeof buf, "%s%s%s", old, sep, value);
    if (setenv(name, buf, 1) == -1)
        _exit(126);
}

/* Remove from the list in NAME (SEP between) every entry whose file name is
 * base: a guard run inside another guard's program (a test of the
 * learner's commands runs make check, which runs guards) watches its own
 * program alone. The outer forkwatch, left in, would wrap fork() first and
 * make the inner counts inexact; the program runs in a process group of
 * its own, which the outer guard does not count anyway. */
static void
env_remove(const char *name, const char *base, char sep)
{
    const char *old = getenv(name);
    char buf[4096], item[1024];
    size_t used = 0;

    if (old == NULL)
        return;
    buf[0] = '\0';
    while (*old != '\0') {
        size_t n = strcspn(old, (char[]){sep, '\0'});
        const char *slash;

        snprintf(item, sizeof item, "%.*s", (int)n, old);
        slash = strrchr(item, '/');
        if (n > 0 && strcmp(slash != NULL ? slash + 1 : item, base) != 0 &&
            used + n + 2 < sizeof buf) {
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s",
                                     used > 0 ? (char[]){sep, '\0'} : "", item);
        }
        old += n;
        if (*old == sep)
            old++;
    }
    if (setenv(name, buf, 1) == -1)
        _exit(126);
}

/* In the forked child: the -E variables, then forkwatch, if asked. */
static void
set_environment(const struct run *r, const struct options *o)
{
    const char *base;           /* forkwatch's file name */

    for (int i = 0; i < o->nenv; i++) {
        char name[256];
        const char *eq = strchr(o->env[i], '=');

        snprintf(name, sizeof name, "%.*s", (int)(eq - o->env[i]), o->env[i]);
        if (strcmp(name, "LD_PRELOAD") == 0)
            env_append(name, eq + 1, " ");
        else if (setenv(name, eq + 1, 1) == -1)
            _exit(126);
    }
    if (r->watch == NULL)
        return;
    if (setenv("FORKLINGS_WATCH", r->watch_path, 1) == -1)
        _exit(126);
    base = strrchr(o->shim, '/') != NULL ? strrchr(o->shim, '/') + 1 : o->shim;
#ifdef __APPLE__
    env_remove("DYLD_INSERT_LIBRARIES", base, ':');
    env_append("DYLD_INSERT_LIBRARIES", o->shim, ":");
#else
    env_remove("LD_PRELOAD", base, ' ');
    env_append("LD_PRELOAD", o->shim, " ");
    /* gcc's AddressSanitizer wants to be first: forkwatch only wraps
     * calls, which ASan's own wrappers then see as usual. */
    env_append("ASAN_OPTIONS", "verify_asan_link_order=0", ":");
#endif
}

/* In the forked child: set up the program's world, then exec it. */
static void
exec_program(const struct run *r, const struct options *o, int out_fd)
{
    struct sigaction sa;
    sigset_t none;
    int fd;

    /* ignored: the parent's setpgid() makes the group if this one lost */
    (void)setpgid(0, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &sa, NULL); /* ignored: EINVAL for KILL, STOP */
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL); /* ignored: cannot fail */
    if ((fd = open(o->in, O_RDONLY)) == -1 || dup2(fd, 0) == -1)
        _exit(126);
    if (out_fd != -1 && dup2(out_fd, 1) == -1)
        _exit(126);
    if (o->err != NULL) {
        fd = open(o->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd == -1 || dup2(fd, 2) == -1)
            _exit(126);
    }
    for (fd = 3; fd < 1024; fd++)   /* fd 3 is bats' own: never inherit it */
        (void)close(fd);            /* ignored: most are not open */
    for (fd = 0; fd < 3; fd++)
        if (o->close_fd[fd])
            (void)close(fd);        /* ignored: it is open, dup2() made it */
    if (o->nofile >= 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)o->nofile, .rlim_max = (rlim_t)o->nofile};

        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            _exit(126);
    }
    set_environment(r, o);
    execvp(o->argv[0], o->argv);
    dprintf(2, "guard: cannot run %s: %s\n", o->argv[0], strerror(errno));
    _exit(126);
}

/* Start the program in a group of its own, its stdout to r->ofd. */
static void
start_program(struct run *r, const struct options *o)
{
    int pipefd[2] = {-1, -1};

    r->out_pipe = -1;
    r->ofd = 1;
    if (o->out != NULL &&
        (r->ofd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
        fail("%s: %s", o->out, strerror(errno));
    if (!o->direct && pipe(pipefd) == -1)
        fail("pipe: %s", strerror(errno));
    r->t0 = now();
    switch (child = fork()) {
    case -1:
        fail("fork: %s", strerror(errno));
    case 0:
        if (pipefd[0] != -1)
            (void)close(pipefd[0]); /* ignored: the child's copy, unused */
        exec_program(r, o, o->direct ? r->ofd : pipefd[1]);
    }
    /* ignored: EACCES once it has exec'd means the child made it itself */
    (void)setpgid(child, child);
    if (r->watch != NULL)
        r->watch->pgid = child;
    if (pipefd[1] != -1)
        (void)close(pipefd[1]); /* only the program writes to it */
    r->out_pipe = pipefd[0];
    r->next_census = 0;
}

/* ---- watching it run ---------------------------------------------------- */

/* 1 when the program has exited (not yet reaped by guard). */
static int
program_has_ended(void)
{
    siginfo_t si = {0};

    return waitid(P_PID, child, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == child;
}

/* The next process the program forked and has not reaped, from slot *i of
 * forkwatch's list on (the order of their forks, while none has ended);
 * 0 at the end of the list. Start with *i = 0. */
static pid_t
next_worker(const struct watch *w, int *i)
{
    while (w != NULL && *i < WATCH_SLOTS) {
        pid_t pid = atomic_load(&w->pids[(*i)++]);

        if (pid != 0)
            return pid;
    }
    return 0;
}

/* The pid of worker n: the n-th process in forkwatch's list; 0 when there
 * is none. */
static pid_t
nth_worker(const struct watch *w, int n)
{
    int i = 0;
    pid_t pid;

    while ((pid = next_worker(w, &i)) != 0)
        if (n-- == 0)
            return pid;
    return 0;
}

/* Send kick k now, at t seconds, unless the program is already gone. */
static void
send_kick(struct kick *k, const struct run *r, const struct options *o, double t)
{
    pid_t to = o->group ? -child : child;

    if (k->sent >= 0 || program_has_ended())
        return;
    if (k->worker >= 0 && (to = nth_worker(r->watch, k->worker)) == 0)
        return;                 /* no such worker: it stays unsent */
    if (kill(to, k->sig) == 0)
        k->sent = t;
}

/* 1 when the program's first process sleeps in poll() or select(). */
static int
program_in_poll(void)
{
    char path[64], wchan[64];

    snprintf(path, sizeof path, "/proc/%d/wchan", child);
    return slurp(path, wchan, sizeof wchan) > 0 &&
           (strstr(wchan, "poll") != NULL || strstr(wchan, "select") != NULL);
}

/* 1 when pid sleeps in nanosleep() (or clock_nanosleep()). */
static int
sleeps_in_task(pid_t pid)
{
    char path[64], wchan[64];

    snprintf(path, sizeof path, "/proc/%d/wchan", pid);
    return slurp(path, wchan, sizeof wchan) > 0 &&
           (strstr(wchan, "nanosleep") != NULL || strstr(wchan, "hrtimer") != NULL);
}

/* 1 when every process the program forked and has not reaped sleeps in a
 * task, and there is at least one: forkwatch keeps their list. */
static int
workers_in_tasks(const struct watch *w)
{
    int seen = 0, i = 0;
    pid_t pid;

    if (w == NULL || atomic_load(&w->loaded) == 0)
        return 0;
    while ((pid = next_worker(w, &i)) != 0) {
        if (!sleeps_in_task(pid))
            return 0;
        seen++;
    }
    return seen > 0;
}

/* 1 when a process the program forked and has not reaped is stopped
 * (state T in /proc/PID/stat: SIGSTOP has taken effect, not just been
 * sent). */
static int
a_worker_is_stopped(const struct watch *w)
{
    char path[64], stat[512], *close_paren;
    int i = 0;
    pid_t pid;

    while ((pid = next_worker(w, &i)) != 0) {
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses */
        if (slurp(path, stat, sizeof stat) > 0 &&
            (close_paren = strrchr(stat, ')')) != NULL &&
            close_paren[1] == ' ' && close_paren[2] == 'T')
            return 1;
    }
    return 0;
}

/* 1 while a kick waits for a moment that the loop must look for: the
 * program asleep in poll(), or a worker stopped. */
static int
poll_kick_pending(const struct options *o)
{
    for (int i = 0; i < o->nkicks; i++)
        if ((o->kicks[i].on_poll || o->kicks[i].on_stopped) && o->kicks[i].sent < 0)
            return 1;
    return 0;
}

/* Send the kicks whose time or moment has come, at t seconds. */
static void
send_timed_kicks(const struct run *r, struct options *o, double t)
{
    int in_poll = poll_kick_pending(o) && program_in_poll();
    int busy = -1, stopped = -1; /* not looked at yet */

    for (int i = 0; i < o->nkicks; i++) {
        struct kick *k = &o->kicks[i];

        if (k->on_busy && in_poll && busy == -1)
            busy = workers_in_tasks(r->watch);
        if (k->on_stopped && k->sent < 0 && stopped == -1)
            stopped = a_worker_is_stopped(r->watch);
        if ((k->at >= 0 && t >= k->at) ||
            (k->on_poll && in_poll && (!k->on_busy || busy == 1)) ||
            (k->on_stopped && stopped == 1))
            send_kick(k, r, o, t);
    }
}

/* Milliseconds until the next timed event: a kick, the deadline, a census. */
static int
ms_until_next(const struct run *r, const struct options *o, double t)
{
    double next = r->timed_out ? t + 0.01 : o->deadline;

    if (r->next_census < next)
        next = r->next_census;
    for (int i = 0; i < o->nkicks; i++)
        if (o->kicks[i].at >= 0 && o->kicks[i].sent < 0 && o->kicks[i].at < next)
            next = o->kicks[i].at;
    if (poll_kick_pending(o) && next > t + 0.001)
        next = t + 0.001;       /* look at its wchan every millisecond */
    if (next <= t)
        return 0;
    return (int)ceil((next - t) * 1000);
}

/* Copy what the program wrote, counting lines; stop after -H lines. */
static void
drain_output(struct run *r, struct options *o)
{
    char buf[8192];
    ssize_t got = read(r->out_pipe, buf, sizeof buf), keep;

    if (got == -1 && errno == EINTR)
        return;
    if (got <= 0) {
        (void)close(r->out_pipe); /* ignored: a read end, at its end */
        r->out_pipe = -1;
        return;
    }
    keep = got;
    for (ssize_t i = 0; i < got; i++) {
        if (buf[i] != '\n')
            continue;
        r->lines++;
        for (int k = 0; k < o->nkicks; k++)  /* the moment it was printed */
            if (o->kicks[k].lines >= 0 && r->lines >= o->kicks[k].lines)
                send_kick(&o->kicks[k], r, o, now() - r->t0);
        if (r->lines == o->head) {
            keep = i + 1;
            break;
        }
    }
    if (write(r->ofd, buf, keep) != keep)
        fail("write output: %s", strerror(errno));
    if (r->lines == o->head) {      /* as `head` does: stop reading */
        (void)close(r->out_pipe); /* ignored: a read end we stop reading */
        r->out_pipe = -1;
    }
}

/* The deadline has passed: note who waits where, then kill them all. */
static void
on_deadline(struct run *r)
{
    int len = 0;

    r->timed_out = 1;
    census(0);
    read_wchans();
    for (int i = 0; i < ntable; i++)
        if (table[i].ours && len < (int)sizeof r->stuck - 100)
            len += snprintf(r->stuck + len, sizeof r->stuck - len,
                            "%s%d:%s:%c:%s:%ld", len ? " " : "", table[i].pid,
                            table[i].comm, table[i].state, table[i].wchan,
                            table[i].reads);
    kill_all();
}

/* Guard was asked to stop: kill everything, then die of the same signal. */
static void
stop_now(struct run *r)
{
    kill_all();
    /* ignored: the child is killed; any outcome of the wait will do */
    (void)waitpid(child, &r->status, 0);
    census(0);
    kill_all();
    while (reap_adopted())
        nap(1);
    if (r->watch != NULL)
        (void)unlink(r->watch_path); /* ignored: a temporary file */
    (void)signal(stop_sig, SIG_DFL); /* ignored: cannot fail for these */
    (void)raise(stop_sig);
    _exit(128 + stop_sig);
}

/* Count the group now and then: a fallback for the process cap where
 * forkwatch is absent, and the most seen at once where it cannot count. */
static void
census_tick(struct run *r, const struct options *o, double t)
{
    int n;

    if (t < r->next_census)
        return;
    r->next_census = t + CENSUS_MS / 1000.0;
    n = census(o->cap);
    if (n > r->census_max)
        r->census_max = n;
    if (n > o->cap) {
        r->capped = 1;
        kill_all();
    }
}

/* Wait for the program to exit, doing what falls due on the way. */
static void
watch_program(struct run *r, struct options *o)
{
    for (;;) {
        struct pollfd pfd[2] = {{wake_pipe[0], POLLIN, 0}, {r->out_pipe, POLLIN, 0}};
        double t = now() - r->t0;
        char drop[64];

        send_timed_kicks(r, o, t);
        if (waitpid(child, &r->status, WNOHANG) == child)
            break;
        if (t >= o->deadline && !r->timed_out)
            on_deadline(r);
        if (stop_sig)
            stop_now(r);
        census_tick(r, o, t);
        send_timed_kicks(r, o, now() - r->t0);  /* the census took time */
        if (poll(pfd, r->out_pipe != -1 ? 2 : 1, ms_until_next(r, o, now() - r->t0)) <= 0)
            continue;
        if (pfd[0].revents & POLLIN)
            while (read(wake_pipe[0], drop, sizeof drop) > 0)
                ;
        if (r->out_pipe != -1 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            drain_output(r, o);
    }
    r->ended = now() - r->t0;
}

/* ---- after the program ------------------------------------------------ */

/* List the census's marked living processes into r; return their count. */
static int
list_living(struct run *r)
{
    int alive = 0, len = 0;

    r->survivor_list[0] = '\0';
    for (int i = 0; i < ntable; i++)
        if (table[i].ours && table[i].state != 'Z') {
            alive++;
            if (len < (int)sizeof r->survivor_list - 40)
                len += snprintf(r->survivor_list + len,
                                sizeof r->survivor_list - len, "%s%d",
                                len ? " " : "", table[i].pid);
        }
    return alive;
}

/*
 * The census after the exit. Zombies now are children the program never
 * reaped: adopted by guard, they stay until guard reaps them. The living are
 * given -w seconds to leave; the first round reads the census taken as the
 * exit was seen, so a child that ends a moment later outlived it all the
 * same and cannot slip between two scans.
 */
static void
count_leftovers(struct run *r, const struct options *o)
{
    double until;

    if (census(0) < 0) {
        r->unreaped = -1;       /* unknown without /proc */
        r->survivors = kill(-child, 0) == 0;
        return;
    }
    for (int i = 0; i < ntable; i++)
        if (table[i].ours && table[i].state == 'Z' && table[i].ppid == self)
            r->unreaped++;
    until = now() + o->linger;
    while ((r->survivors = list_living(r)) > 0 && now() < until) {
        nap(10);
        census(0);
    }
    if (r->timed_out || r->capped) {
        r->survivors = 0;       /* guard killed them; not the program's fault */
        r->survivor_list[0] = '\0';
    }
}

/* Kill and reap whatever the program left, then copy its last output,
 * counting its lines as before: -H N still lets only N lines through. */
static void
leave_nothing(struct run *r, struct options *o)
{
    for (int tries = 0; tries < 500; tries++) {
        int n = census(0);

        kill_all();
        if (!reap_adopted() && n <= 0)
            break;
        nap(2);
    }
    while (r->out_pipe != -1)       /* every writer is gone: it ends */
        drain_output(r, o);
    if (r->watch != NULL)
        (void)unlink(r->watch_path); /* ignored: a temporary file */
}

/* The program's status as the shell gives it. */
static int
shell_status(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The planned signals: sent when, or why not (see docs/internals.md). */
static void
report_kicks(FILE *f, const struct run *r, const struct options *o)
{
    fputs("kicks=", f);
    for (int i = 0; i < o->nkicks; i++) {
        const struct kick *k = &o->kicks[i];

        fprintf(f, "%s", i ? " " : "");
        if (k->worker >= 0)
            fprintf(f, "w%d/", k->worker);
        fputs(k->name, f);
        if (k->on_busy)
            fputs("@busy", f);
        else if (k->on_stopped)
            fputs("@stopped", f);
        else if (k->on_poll)
            fputs("@poll", f);
        else if (k->at >= 0)
            fprintf(f, "@%.3f", k->at);
        else
            fprintf(f, "@L%ld", k->lines);
        if (k->sent >= 0)
            fprintf(f, ":sent@%.3f", k->sent);
        else
            fprintf(f, ":unsent@%.3f", r->ended);
    }
    fputc('\n', f);
}

/* How many processes at once, and from where: forkwatch, else the census. */
static void
report_counts(FILE *f, const struct run *r)
{
    const struct watch *w = r->watch;
    int exact = w != NULL && atomic_load(&w->loaded) > 0 &&
                atomic_load(&w->inexact) == WATCH_EXACT;

    fprintf(f, "exact=%d\n", exact);
    fprintf(f, "inexact=%d\n", w == NULL ? -1 : atomic_load(&w->inexact));
    fprintf(f, "forks=%d\n", exact ? atomic_load(&w->forks) : -1);
    fprintf(f, "maxprocs=%d\n", exact ? 1 + atomic_load(&w->peak) : r->census_max);
    fprintf(f, "seen=%d\n", r->census_max);
}

static void
write_report(const struct run *r, const struct options *o)
{
    FILE *f;
    int capped = r->capped || (r->watch != NULL && atomic_load(&r->watch->capped));

    if (o->report == NULL)
        return;
    if ((f = fopen(o->report, "w")) == NULL)
        fail("%s: %s", o->report, strerror(errno));
    fprintf(f, "pid=%d\n", (int)child);
    fprintf(f, "status=%d\n", shell_status(r->status));
    fprintf(f, "signal=%d\n", WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0);
    fprintf(f, "timeout=%d\nforkcap=%d\ncap=%ld\n", r->timed_out, capped, o->cap);
    report_counts(f, r);
    fprintf(f, "unreaped=%d\nsurvivors=%d\nsurvivor_pids=%s\n",
            r->unreaped, r->survivors, r->survivor_list);
    fprintf(f, "stuck=%s\nelapsed_ms=%ld\nlines=%ld\n", r->stuck,
            (long)(r->ended * 1000), r->lines);
    report_kicks(f, r, o);
    if (fclose(f) == EOF)
        fail("%s: %s", o->report, strerror(errno));
}

/* Become the one who adopts the program's orphans; wake on signals. */
static void
prepare_guard(void)
{
    struct sigaction sa;

    self = getpid();
#ifdef __linux__
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
        fail("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
#endif
    if (pipe(wake_pipe) == -1)
        fail("pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++)
        if (fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK) == -1 ||
            fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC) == -1)
            fail("fcntl: %s", strerror(errno));
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1 ||
        sigaction(SIGHUP, &sa, NULL) == -1 || sigaction(SIGCHLD, &sa, NULL) == -1)
        fail("sigaction: %s", strerror(errno));
    (void)signal(SIGPIPE, SIG_IGN); /* a closed -o pipe is an error, not a death */
}

int
main(int argc, char **argv)
{
    struct options o;
    struct run r = {0};

    parse_options(argc, argv, &o);
    prepare_guard();
    watch_create(&r, &o);
    start_program(&r, &o);
    watch_program(&r, &o);
    count_leftovers(&r, &o);
    leave_nothing(&r, &o);
    write_report(&r, &o);
    return shell_status(r.status);
}
