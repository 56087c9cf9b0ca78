/* SPDX-License-Identifier: MIT */
/*
 * trace.c: record a pool run for `make trace` (given code; see trace.h).
 *
 * Each event is one write() of one short line to a file opened with
 * O_APPEND: every write lands at the end of the file as it is then, so the
 * lines of several workers never overwrite or split each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

static int trace_fd = -1;       /* the POOL_TRACE file, or -1: no tracing */

void
trace_open(const char *prog)
{
    const char *path = getenv("POOL_TRACE");

    if (path == NULL || *path == '\0')
        return;
    trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (trace_fd == -1) {
        fprintf(stderr, "%s: POOL_TRACE=%s: %s\n", prog, path, strerror(errno));
        exit(1);
    }
}

long long
trace_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Append one line; a failed write only loses that line of the trace. */
static void
trace_line(const char *line, int len)
{
    if (trace_fd != -1 && len > 0 && write(trace_fd, line, (size_t)len) != len)
        trace_fd = -1;
}

void
trace_task(long long first, long long count, long long start, long long end)
{
    char line[128];

    if (trace_fd != -1)
        trace_line(line, snprintf(line, sizeof line, "task %lld %lld %ld %lld %lld\n",
                                  first, count, (long)getpid(), start, end));
}

void
trace_wait(long long start, long long end)
{
    char line[96];

    if (trace_fd != -1)
        trace_line(line, snprintf(line, sizeof line, "wait %ld %lld %lld\n",
                                  (long)getpid(), start, end));
}
