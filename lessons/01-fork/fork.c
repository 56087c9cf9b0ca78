/* SPDX-License-Identifier: MIT */
/*
 * fork.c: one fork(). Both processes run on from the same line; the child
 * says who it is and leaves with _exit(); the parent waits for it and
 * reports how it ended.
 *
 * Python:  p = mp.Process(target=child); p.start(); p.join(); p.exitcode
 * and the `if __name__ == "__main__":` guard, which keeps a child from
 * running the parent's part of the program.
 *
 * It also shows the classic bug: a line printed before fork() but still in
 * the stdio buffer is copied into the child, and both print it. `-b` leaves
 * out the fix, so that `fork -b | cat` shows the line twice. And why a child
 * leaves with _exit(), not exit(): the parent registers an atexit() handler,
 * which a child's exit() would run a second time, in the child. A full disk
 * or a closed stdout is an error: the last atexit() handler checks stdout.
 *
 * Usage: fork [-b] [-s STATUS]
 *   -s STATUS  the child's exit status, 0 to 255 (3)
 *   -b         buggy: do not flush stdio before fork()
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "fork"

/* Print "fork: WHAT: reason" and exit 1. */
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

/*
 * Registered with atexit() first, so that it runs last, after every other
 * handler has printed: flush stdout, and when any write to it failed (a
 * full disk, `fork >&-`), say so in one line and leave with status 1.
 * _exit(), as exit() must not be called again from an atexit() handler.
 */
static void
check_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return;
    fprintf(stderr, "%s: stdout: %s\n", PROG,
            strerror(errno != 0 ? errno : EIO));    /* 0: an earlier write */
    _exit(1);
}

/* Registered with atexit() by the parent: runs when the parent exit()s. */
static void
say_goodbye(void)
{
    printf("parent %ld: atexit handler says goodbye\n", (long)getpid());
}

/* The child's side: say who it is, then leave with `status`. */
static _Noreturn void
child_main(int status)
{
    /* TODO(01): this is the child, a copy of the parent. Print the line
     * "child PID: my parent is PPID" (its own pid, then its parent's), then
     * end the child with _exit(status): it must never return into the
     * parent's code, nor run the parent's atexit() handlers (exit() would).
     * _exit() writes out no stdio buffer: the line must be out before it. */
    (void)status;
    _exit(0);
}

/*
 * Fork one child, which runs child_main(status) and never returns here.
 * Unless `buggy`, flush stdio first. Returns the child's pid, in the parent.
 */
static pid_t
spawn_child(int status, int buggy)
{
    pid_t pid = 0;

    /* TODO(01): make the child with fork(). Both processes run on from
     * that line: the child goes into child_main(), which never comes back;
     * the parent returns the child's pid. No child made is an error to
     * report. Unless `buggy`, no stdio buffer may hold unwritten text at
     * the fork: the child would get a copy of it and print it again. */
    (void)status;
    (void)buggy;
    (void)child_main;           /* delete these three lines when done */
    return pid;
}

/* Wait for the child `pid` and print how it ended. */
static void
reap_child(pid_t pid)
{
    int status = 0;

    /* TODO(01): wait with waitpid() until this child has ended, and leave
     * how it ended in `status`. An ended child nobody waited for is a
     * zombie: the kernel keeps it, and its status, for the parent to
     * collect. A signal that cuts the wait short is no error (wait again);
     * any other failure is: report it. */
    (void)die;                  /* delete this line when done */
    if (WIFEXITED(status))
        printf("parent %ld: child %ld exited with status %d\n",
               (long)getpid(), (long)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("parent %ld: child %ld was killed by signal %d (%s)\n",
               (long)getpid(), (long)pid, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
}

int
main(int argc, char **argv)
{
    int opt, buggy = 0, status = 3;
    char *end;
    long v;
    pid_t pid;

    if (atexit(check_stdout) != 0)
        die("atexit");
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hbs:")) != -1) {
        switch (opt) {
        case 'h':
            printf("usage: %s [-b] [-s STATUS]\n"
                   "Forks one child, which exits with STATUS (default 3);\n"
                   "the parent waits for it and reports the status.\n"
                   "  -b  buggy: no fflush() before fork(); try `%s -b | cat`\n",
                   PROG, PROG);
            return 0;
        case 'b':
            buggy = 1;
            break;
        case 's':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 0 || v > 255)
                usage_error("-s must be a number from 0 to 255, not", optarg);
            status = (int)v;
            break;
        case ':':
            usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (optind < argc)
        usage_error("unexpected argument", argv[optind]);

    if (atexit(say_goodbye) != 0)
        die("atexit");
    printf("parent %ld: about to fork\n", (long)getpid());
    pid = spawn_child(status, buggy);
    printf("parent %ld: forked child %ld\n", (long)getpid(), (long)pid);
    reap_child(pid);
    return 0;
}
