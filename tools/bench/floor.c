/* SPDX-License-Identifier: MIT */
/*
 * floor.c: the parts of `make bench` that need no pool (see tools/bench/run).
 *
 *   floor N        N round trips of an 8-byte message between two processes
 *                  over a pair of pipes: the least one task can cost
 *   spawn CMD...   run CMD as a whole process, its output to /dev/null,
 *                  and time it from fork to reaped
 *   work()         the CPU-bound unit of work the cpu case maps
 * Each case prints "CASE SECONDS".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double
seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

_Noreturn void
die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

long long
work(long long units)
{
    long long x = 1;

    for (long long i = 0; i < units; i++)
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF;
    return x;
}

/* Move exactly n bytes; 0 on success, -1 on error or end-of-file. */
static int
move(int fd, void *buf, size_t n, int out)
{
    char *p = buf;

    while (n > 0) {
        ssize_t k = out ? write(fd, p, n) : read(fd, p, n);

        if (k == -1 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

double
floor_round_trips(long n)
{
    int down[2], up[2];
    long long msg = 0;
    double t0;
    pid_t pid;

    if (pipe(down) == -1 || pipe(up) == -1)
        die("pipe");
    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        die("fork");
    case 0:
        close(down[1]);         /* the child reads down, writes up */
        close(up[0]);
        while (move(down[0], &msg, sizeof msg, 0) == 0) {
            msg++;
            if (move(up[1], &msg, sizeof msg, 1) == -1)
                break;
        }
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    t0 = seconds();
    for (long i = 0; i < n; i++)
        if (move(down[1], &msg, sizeof msg, 1) == -1 ||
            move(up[0], &msg, sizeof msg, 0) == -1)
            die("round trip");
    t0 = seconds() - t0;
    close(down[1]);             /* end-of-file: the child leaves */
    close(up[0]);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
        ;
    return t0;
}

double
spawn(char **argv)
{
    double t0 = seconds();
    int status;
    pid_t pid;

    fflush(NULL);
    switch (pid = fork()) {
    case -1:
        die("fork");
    case 0: {
        int null = open("/dev/null", O_WRONLY);

        if (null == -1 || dup2(null, 1) == -1)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "bench: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    }
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: %s failed\n", argv[0]);
        exit(1);
    }
    return seconds() - t0;
}
