/* SPDX-License-Identifier: MIT */
/*
 * forkwatch.h: the counters that forkwatch.c keeps for the guard, in a file
 * that the guard creates and every process of the program maps (shared).
 */
#ifndef FORKWATCH_H
#define FORKWATCH_H

#include <stdatomic.h>

#define WATCH_MAGIC 0x666b7731  /* "fkw1": the file is one of ours */
#define WATCH_SLOTS 4096        /* most processes tracked at once */

/* Why the counts may be wrong (struct watch's inexact). */
enum {
    WATCH_EXACT = 0,            /* they are exact */
    WATCH_NOT_FIRST = 1,        /* the program's fork() is not ours */
    WATCH_AUTOREAP = 2,         /* SIGCHLD ignored: reaped without wait() */
    WATCH_FULL = 3,             /* more than WATCH_SLOTS at once */
};

struct watch {
    int magic;                  /* WATCH_MAGIC, written by the guard */
    int pgid;                   /* the program's process group */
    int cap;                    /* most processes at once, program included */
    int fork_fails_after;       /* fork() fails (EAGAIN) once this many
                                 * succeeded, as under a low ulimit -u; -1:
                                 * never */
    atomic_int loaded;          /* processes that started with the library */
    atomic_int live;            /* made by fork(), not yet reaped */
    atomic_int peak;            /* the most that `live` ever was */
    atomic_int forks;           /* fork() calls that made a process */
    atomic_int capped;          /* a fork() went past cap: group killed */
    atomic_int inexact;         /* WATCH_EXACT, or why not */
    atomic_int pids[WATCH_SLOTS]; /* children counted in `live`; 0 is free */
};

#endif
