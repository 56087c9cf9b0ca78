/* SPDX-License-Identifier: MIT */
/*
 * trace.h: record a pool run for `make trace` (given code, not a TODO).
 *
 * With the environment variable POOL_TRACE=FILE set, each task appends one
 * line to FILE, "task INDEX COUNT PID START_NS END_NS", and the parent one
 * "wait PID START_NS END_NS" for the time it sat waiting for its workers.
 * tools/trace.c draws them. Without POOL_TRACE, every call does nothing.
 */
#ifndef TRACE_H
#define TRACE_H

/* Read POOL_TRACE and open its file; call once, before the first fork(),
 * so that every worker inherits the descriptor. Exits 1 if it cannot. */
void trace_open(const char *prog);

/* CLOCK_MONOTONIC now, in nanoseconds: one clock for every process. */
long long trace_now(void);

/* In a worker: it ran items first..first+count-1 from start to end. */
void trace_task(long long first, long long count, long long start,
                long long end);

/* In the parent: it waited from start to end. */
void trace_wait(long long start, long long end);

#endif
