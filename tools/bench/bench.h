/* SPDX-License-Identifier: MIT */
/* bench.h: shared parts of the C side of `make bench` (floor.c, bench.c). */
#ifndef BENCH_H
#define BENCH_H

/* CLOCK_MONOTONIC now, in seconds. */
double seconds(void);

/* Print "bench: WHAT: strerror(errno)" and exit 1. */
_Noreturn void die(const char *what);

/* `units` steps of a linear congruential walk: CPU work, no memory. */
long long work(long long units);

/* Seconds for n round trips of 8 bytes between two processes over pipes. */
double floor_round_trips(long n);

/* Seconds to run argv as a whole process, stdout to /dev/null; exits 1 if
 * it fails. */
double spawn(char **argv);

#endif
