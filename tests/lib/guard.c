/* SPDX-License-Identifier: MIT */
/*
 * guard.c: run one lesson program under watch, for the test suites.
 *
 * A lesson program may hang, fork without end, leak workers or leave zombies.
 * guard runs it in a process group of its own, with fd 3 and above closed,
 * stdin from /dev/null, and every signal at its default. It enforces a
 * deadline and a cap on how many processes the program may hold, and when the
 * program has exited it takes a census: children the program never reaped
 * (zombies), and processes that outlived it. Then it kills whatever is left,
 * so that a test never leaves a process behind.
 *
 * On Linux guard makes itself a child subreaper (prctl(2)), so every process
 * the program leaves behind is adopted by guard and can be counted and
 * reaped. Elsewhere it probes the process group with kill(-pgid, 0).
 *
 * Usage: guard [options] -- PROGRAM [ARG...]
 *   -t SECS     deadline; the whole group is killed when it passes (10)
 *   -p N        most processes the program may hold at once, itself included (64)
 *   -o FILE     program's stdout, through a pipe that guard drains
 *   -f          with -o: stdout is FILE itself, not a pipe
 *   -e FILE     program's stderr
 *   -i FILE     program's stdin (/dev/null)
 *   -H N        read N lines of stdout, then close the pipe, as `| head -N`
 *   -k SIG@WHEN send SIG to the program when WHEN is reached: seconds
 *               (0.5) or a count of stdout lines (L3); -g sends to its group
 *   -w SECS     after the program exits, wait this long for the processes it
 *               left to leave by themselves before counting them (0)
 *   -r FILE     write the report there (key=value lines)
 * Exit status: the program's, as the shell gives it (128 + signal when
 * killed); 126 when guard itself cannot run it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define MAX_PROCS 8192 /* size of one census table */
#define MAX_KICKS 4    /* most -k options */
#define TICK_MS 2      /* how often the group is counted */

struct proc {
    pid_t pid;   /* process id */
    pid_t ppid;  /* parent's id */
    pid_t pgrp;  /* process group */
    char state;  /* R, S, D, Z, ... from /proc/PID/stat */
    char comm[32];  /* command name */
    char wchan[48]; /* kernel function it sleeps in, if readable */
    int ours;    /* belongs to the program under watch */
};

struct kick {
    int sig;        /* signal to send */
    double at;      /* seconds after start, or -1 */
    long lines;     /* stdout lines seen, or -1 */
    int group;      /* send to the whole group */
    int done;       /* already sent */
};

static struct proc table[MAX_PROCS];
static int ntable;
static pid_t self;
static pid_t child;                   /* the program; also its group id */
static volatile sig_atomic_t stop_sig; /* guard itself was asked to stop */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

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

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_stop(int sig)
{
    stop_sig = sig;
}

/* Read a small file into buf; return its length, or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd == -1)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/*
 * Fill table[] with every process of the system (Linux /proc), and mark the
 * ones that belong to the program: its group, guard's adopted children, and
 * every descendant of those. When more than `cap` processes of the group are
 * seen, the group is killed at once, in the middle of the scan: a fork bomb
 * must not get the time a whole scan takes. Return how many are marked, or -1
 * where there is no /proc.
 */
static int
census(long cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int changed, n = 0, members = 0;

    if (d == NULL)
        return -1;
    ntable = 0;
    while ((e = readdir(d)) != NULL && ntable < MAX_PROCS) {
        char path[300], buf[512], *p;
        struct proc *pr = &table[ntable];

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        if (slurp(path, buf, sizeof buf) <= 0 || (p = strrchr(buf, ')')) == NULL)
            continue;
        memset(pr, 0, sizeof *pr);
        if (sscanf(buf, "%d", &pr->pid) != 1 ||
            sscanf(p + 2, "%c %d %d", &pr->state, &pr->ppid, &pr->pgrp) != 3)
            continue;
        *p = '\0';
        snprintf(pr->comm, sizeof pr->comm, "%s", strchr(buf, '(') + 1);
        if (pr->pid == self)
            continue;
        pr->ours = (child > 0 && pr->pgrp == child) || pr->ppid == self;
        if (pr->ours && ++members > cap && cap > 0 && child > 0)
            kill(-child, SIGKILL);
        ntable++;
    }
    closedir(d);
    do {                        /* descendants of ours are ours */
        changed = 0;
        for (int i = 0; i < ntable && ntable < 2048; i++)
            for (int j = 0; j < ntable && !table[i].ours; j++)
                if (table[j].ours && table[j].pid == table[i].ppid)
                    table[i].ours = changed = 1;
    } while (changed);
    for (int i = 0; i < ntable; i++)
        n += table[i].ours;
    return n;
}

/* Note, for each marked process, the kernel function it sleeps in. */
static void
read_wchans(void)
{
    for (int i = 0; i < ntable; i++) {
        char path[64];

        if (!table[i].ours)
            continue;
        snprintf(path, sizeof path, "/proc/%d/wchan", table[i].pid);
        if (slurp(path, table[i].wchan, sizeof table[i].wchan) <= 0 ||
            strcmp(table[i].wchan, "0") == 0)
            snprintf(table[i].wchan, sizeof table[i].wchan, "?");
    }
}

/* Kill the program's group and every process census(0) marked. */
static void
kill_all(void)
{
    if (child > 0)
        kill(-child, SIGKILL);
    for (int i = 0; i < ntable; i++)
        if (table[i].ours)
            kill(table[i].pid, SIGKILL);
}

/* Reap every child of guard that has ended; return how many are left. */
static int
reap_adopted(void)
{
    int left = 0;

    for (;;) {
        pid_t p = waitpid(-1, NULL, WNOHANG);

        if (p > 0)
            continue;
        if (p == 0)
            left = 1;
        break;                  /* -1: ECHILD, none left */
    }
    return left;
}

static int
parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"KILL", SIGKILL},
        {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"PIPE", SIGPIPE}, {"SEGV", SIGSEGV}, {"STOP", SIGSTOP},
        {"CONT", SIGCONT},
    };

    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].sig;
    return atoi(s);
}

static void
parse_kick(struct kick *k, const char *arg, int group)
{
    char name[16];
    const char *at = strchr(arg, '@');

    if (at == NULL || at - arg >= (long)sizeof name)
        fail("-k wants SIG@SECS or SIG@LN, not '%s'", arg);
    memcpy(name, arg, at - arg);
    name[at - arg] = '\0';
    k->sig = parse_signal(name);
    if (k->sig <= 0)
        fail("unknown signal '%s'", name);
    k->at = -1;
    k->lines = -1;
    if (at[1] == 'L')
        k->lines = atol(at + 2);
    else
        k->at = atof(at + 1);
    k->group = group;
}

/* In the forked child: set up the program's world, then exec it. */
static void
start_program(char **argv, const char *in, int out_fd, const char *err)
{
    struct sigaction sa;
    sigset_t none;
    int fd;

    setpgid(0, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);    /* undo SIG_IGN inherited from the shell */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if ((fd = open(in, O_RDONLY)) == -1 || dup2(fd, 0) == -1)
        _exit(126);
    if (out_fd != -1 && dup2(out_fd, 1) == -1)
        _exit(126);
    if (err != NULL) {
        fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd == -1 || dup2(fd, 2) == -1)
            _exit(126);
    }
    for (fd = 3; fd < 1024; fd++)   /* fd 3 is bats' own: never inherit it */
        close(fd);
    execvp(argv[0], argv);
    dprintf(2, "guard: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(126);
}

int
main(int argc, char **argv)
{
    double deadline = 10, linger = 0, t0;
    long cap = 64, head = -1, lines = 0;
    const char *out = NULL, *err = NULL, *in = "/dev/null", *report = NULL;
    struct kick kicks[MAX_KICKS];
    int nkicks = 0, group = 0, direct = 0, opt, pipefd[2] = {-1, -1};
    int status = 0, timed_out = 0, capped = 0, maxprocs = 0, ofd = -1;
    int unreaped = 0, survivors = 0, have_proc;
    char survivor_list[1024] = "", stuck[2048] = "";
    struct sigaction sa;

    while ((opt = getopt(argc, argv, "+t:p:o:fe:i:H:k:gw:r:")) != -1) {
        switch (opt) {
        case 't': deadline = atof(optarg); break;
        case 'p': cap = atol(optarg); break;
        case 'o': out = optarg; break;
        case 'f': direct = 1; break;
        case 'e': err = optarg; break;
        case 'i': in = optarg; break;
        case 'H': head = atol(optarg); break;
        case 'g': group = 1; break;
        case 'w': linger = atof(optarg); break;
        case 'r': report = optarg; break;
        case 'k':
            if (nkicks == MAX_KICKS)
                fail("at most %d -k options", MAX_KICKS);
            parse_kick(&kicks[nkicks++], optarg, 0);
            break;
        default: fail("usage: guard [options] -- PROGRAM [ARG...]");
        }
    }
    if (optind >= argc)
        fail("usage: guard [options] -- PROGRAM [ARG...]");
    for (int i = 0; i < nkicks; i++)
        kicks[i].group = group;

    self = getpid();
#ifdef __linux__
    prctl(PR_SET_CHILD_SUBREAPER, 1);   /* adopt whatever the program leaves */
#endif
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (out != NULL && (ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
        fail("%s: %s", out, strerror(errno));
    if (!direct && pipe(pipefd) == -1)
        fail("pipe: %s", strerror(errno));
    if (direct && ofd == -1)
        fail("-f needs -o FILE");

    t0 = now();
    switch (child = fork()) {
    case -1:
        fail("fork: %s", strerror(errno));
    case 0:
        if (pipefd[0] != -1)
            close(pipefd[0]);
        start_program(argv + optind, in, direct ? ofd : pipefd[1], err);
    }
    setpgid(child, child);      /* also here: no race with the first kill */
    if (pipefd[1] != -1)
        close(pipefd[1]);       /* only the program writes to it */
    if (ofd == -1)
        ofd = 1;

    for (;;) {                  /* until the program has exited */
        struct pollfd pfd = {pipefd[0], POLLIN, 0};
        double t = now() - t0;
        pid_t w;
        int n;

        if (pipefd[0] != -1 && poll(&pfd, 1, TICK_MS) > 0) {
            char buf[8192];
            ssize_t got = read(pipefd[0], buf, sizeof buf);

            if (got <= 0) {
                close(pipefd[0]);
                pipefd[0] = -1;
            } else {
                ssize_t keep = got;

                for (ssize_t i = 0; i < got; i++)
                    if (buf[i] == '\n' && ++lines == head) {
                        keep = i + 1;
                        break;
                    }
                if (write(ofd, buf, keep) != keep)
                    fail("write output: %s", strerror(errno));
                if (lines == head) {    /* as `head` does: stop reading */
                    close(pipefd[0]);
                    pipefd[0] = -1;
                }
            }
        } else if (pipefd[0] == -1) {
            nanosleep(&(struct timespec){0, TICK_MS * 1000000L}, NULL);
        }

        w = waitpid(child, &status, WNOHANG);
        if (w == child)
            break;
        for (int i = 0; i < nkicks; i++) {
            struct kick *k = &kicks[i];

            if (!k->done && ((k->at >= 0 && t >= k->at) ||
                             (k->lines >= 0 && lines >= k->lines))) {
                kill(k->group ? -child : child, k->sig);
                k->done = 1;
            }
        }
        n = census(cap);
        if (n > maxprocs)
            maxprocs = n;
        if (n > cap) {
            capped = 1;
            kill_all();
        }
        if (t > deadline && !timed_out) {
            timed_out = 1;
            read_wchans();
            for (int i = 0, len = 0; i < ntable; i++)
                if (table[i].ours && len < (int)sizeof stuck - 100)
                    len += snprintf(stuck + len, sizeof stuck - len,
                                    "%s%d:%s:%c:%s", len ? " " : "",
                                    table[i].pid, table[i].comm,
                                    table[i].state, table[i].wchan);
            kill_all();
        }
        if (stop_sig) {
            kill_all();
            waitpid(child, &status, 0);
            census(0);
            kill_all();
            while (reap_adopted())
                nanosleep(&(struct timespec){0, 1000000L}, NULL);
            signal(stop_sig, SIG_DFL);
            raise(stop_sig);
            _exit(128 + stop_sig);
        }
    }

    /* The census: zombies now are children the program never reaped. */
    have_proc = census(0) >= 0;
    for (int i = 0; i < ntable; i++)
        if (table[i].ours && table[i].state == 'Z' && table[i].ppid == self)
            unreaped++;
    if (have_proc) {
        double until = now() + linger;

        for (;;) {              /* the living: give them `linger` to leave */
            int alive = 0, len = 0;

            /* The first round reads the census taken as the program's exit
             * was seen: a child that ends a moment later outlived it all
             * the same, and must not slip between two scans. */
            survivor_list[0] = '\0';
            for (int i = 0; i < ntable; i++)
                if (table[i].ours && table[i].state != 'Z') {
                    alive++;
                    if (len < (int)sizeof survivor_list - 40)
                        len += snprintf(survivor_list + len,
                                        sizeof survivor_list - len, "%s%d",
                                        len ? " " : "", table[i].pid);
                }
            survivors = alive;
            if (alive == 0 || now() >= until)
                break;
            nanosleep(&(struct timespec){0, 10000000L}, NULL);
            census(0);
        }
    } else {
        unreaped = -1;          /* unknown without /proc */
        survivors = kill(-child, 0) == 0 ? 1 : 0;
    }
    if (timed_out || capped) {
        survivors = 0;          /* guard killed them; not the program's fault */
        survivor_list[0] = '\0';
    }

    /* Leave nothing behind, then drain what is left of the output. */
    for (int tries = 0; tries < 500; tries++) {
        int n = census(0);

        kill_all();
        if (!reap_adopted() && n <= 0)
            break;
        nanosleep(&(struct timespec){0, 2000000L}, NULL);
    }
    while (pipefd[0] != -1) {
        char buf[8192];
        ssize_t got = read(pipefd[0], buf, sizeof buf);

        if (got <= 0)
            break;
        if (head < 0 || lines < head)
            if (write(ofd, buf, got) != got)
                break;
    }

    if (report != NULL) {
        FILE *r = fopen(report, "w");
        int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);

        if (r == NULL)
            fail("%s: %s", report, strerror(errno));
        fprintf(r, "status=%d\n", code);
        fprintf(r, "signal=%d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        fprintf(r, "timeout=%d\nforkcap=%d\ncap=%ld\nmaxprocs=%d\n",
                timed_out, capped, cap, maxprocs);
        fprintf(r, "unreaped=%d\nsurvivors=%d\nsurvivor_pids=%s\n",
                unreaped, survivors, survivor_list);
        fprintf(r, "stuck=%s\nelapsed_ms=%ld\nlines=%ld\n", stuck,
                (long)((now() - t0) * 1000), lines);
        fclose(r);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
