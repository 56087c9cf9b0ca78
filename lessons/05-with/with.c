/* SPDX-License-Identifier: MIT */
/*
 * with.c: Python's `with` in C. Every way out of the program releases what
 * it holds: files, memory, pipes and worker processes.
 *
 * Python:  Instance = Functor(2, 3)         # the seed's functor, lesson 04
 *          with open(INPUT) as f:
 *              xs = [int(line) for line in f]
 *          with mp.Pool(4) as p:
 *              ys = p.map(Instance, xs)
 *          ... write ys to a temporary file, then os.replace() it to OUTPUT
 * Here the program is written twice, in two styles that do the same thing:
 * run_with() declares each resource with a cleanup attribute (GCC and Clang
 * run a function when the variable goes out of scope); run_goto() (-g)
 * unwinds by hand with a ladder of goto labels, as portable C does.
 *
 * The output is written to a temporary file beside OUTPUT and renamed to
 * OUTPUT only when everything worked, so a failed run never leaves a
 * partial OUTPUT behind, and an OUTPUT that was there before stays as it
 * was.
 *
 * Usage: with [-g] [-R] [-j WORKERS] [-d MS] [-F NUMBER] [-W LINES]
 *             INPUT OUTPUT
 *   INPUT       one whole number x per line, |x| <= 1000000
 *   OUTPUT      gets Instance(x) = Multi(x, 2, 3) = 3 * (3x + 2) of each x,
 *               one per line, in input order
 *   -j WORKERS  worker processes (4)
 *   -d MS       each item first sleeps MS milliseconds, as real work would
 *   -F NUMBER   failure in the map: a worker that meets NUMBER gives up
 *   -W LINES    failure in the output: the disk is "full" after LINES lines
 *   -g          use run_goto(), the portable goto ladder
 *   -R          after the pool starts, fork a child that returns out of the
 *               scopes that hold it (a demonstration: see the README)
 * Environment: FORKLINGS_FD_REPORT=FILE appends to FILE, as each process
 * exits, the line "PID: FD FD ..." of its descriptors above 2 still open,
 * or "PID: none".
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

#include "functor.h"
#include "pool.h"

#define MAX_NUMBER 1000000L     /* MULTI_LIMIT: Multi never overflows */
#define MAX_DELAY_MS 10000
#define MAX_LINES 100000000L    /* for -W: more is surely a typo */
#define MAX_FDS_PROBED 4096     /* how far the descriptor report looks */

/*
 * The cleanup attribute (GCC and Clang): `T x AUTO(fn) = ...;` calls
 * fn(&x) whenever x goes out of scope, by return, break, goto or the end of
 * its block; later variables are cleaned up first. It is not standard C:
 * the macro keeps the extension in one place, and run_goto() shows the
 * portable form. Note that exit() and _exit() leave no scope: no cleanup
 * function runs then.
 */
#if defined(__GNUC__) || defined(__clang__)
#define AUTO(fn) __attribute__((cleanup(fn)))
#else
#error "the cleanup attribute needs GCC or Clang: see run_goto() instead"
#endif

#define AUTO_FCLOSE AUTO(file_close)        /* FILE *f AUTO_FCLOSE = fopen() */
#define AUTO_FREE AUTO(string_free)         /* char *s AUTO_FREE = NULL */
#define AUTO_NUMBERS AUTO(numbers_free)     /* struct numbers */
#define AUTO_OUTPUT AUTO(output_discard)    /* struct output */
#define AUTO_POOL AUTO(pool_release)        /* struct pool */

/* An output that holds nothing: releasing it does nothing. */
#define OUTPUT_INIT {.path = NULL}

struct options {
    long workers;               /* -j: worker processes */
    long delay_ms;              /* -d: sleep before each item */
    long fail_number;           /* -F: the number a worker gives up on */
    int fail_map;               /* -F was given */
    long fail_write;            /* -W: lines written before the failure; -1 */
    int use_goto;               /* -g: run_goto() instead of run_with() */
    int child_returns;          /* -R: fork a child that returns */
    const char *input;          /* INPUT */
    const char *output;         /* OUTPUT */
};

/* A growable array of numbers. */
struct numbers {
    long long *v;               /* the numbers; NULL when none allocated */
    long n;                     /* how many */
    long cap;                   /* room for how many */
};

/* The output file while it is being written: a temporary file beside it. */
struct output {
    const char *path;           /* OUTPUT, the name it gets when complete */
    char *tmp;                  /* the temporary file's name; NULL: none */
    FILE *f;                    /* open on tmp; NULL once closed */
};

static long long slow_multi(long long x, long long y, long long z);

const char progname[] = "with";

/* What the mapped function needs, set before the pool starts so that every
 * worker has its own copy: fork() copies the parent's memory. */
static long delay_ms;
static int fail_map;
static long long fail_number;

/* The functor to map, the seed's Instance = Functor(2, 3), with Multi slowed
 * down and made to fail by -d and -F. It travels to the workers in each
 * task record, by value (lesson 04). */
static const struct functor instance = {.fn = slow_multi, .y = 2, .z = 3};

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

/*
 * Flush stdout and check that all that was written to it arrived (a full
 * disk or a closed stdout fails a write): fflush() meets the failure now,
 * or an earlier printf() met it and left the stream's error flag set.
 * Returns 0, or -1 after one message.
 */
static int
flush_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == EOF || ferror(stdout))
        return report("stdout: %s",
                      errno != 0 ? strerror(errno) : "write error");
    return 0;
}

static void
print_usage(void)
{
    printf("usage: %s [-g] [-R] [-j WORKERS] [-d MS] [-F NUMBER] [-W LINES]"
           " INPUT OUTPUT\n"
           "Reads one whole number x per line from INPUT (|x| <= %ld), maps\n"
           "the seed's Instance = Functor(2, 3) over them with a pool of\n"
           "worker processes, and writes each Multi(x, 2, 3) to OUTPUT, in\n"
           "input order. OUTPUT appears only when everything worked.\n"
           "  -j WORKERS  worker processes (default 4)\n"
           "  -d MS       each item first sleeps MS milliseconds\n"
           "  -F NUMBER   make the map fail: a worker gives up on NUMBER\n"
           "  -W LINES    make the output fail after LINES lines (disk full)\n"
           "  -g          clean up with the goto ladder (run_goto)\n"
           "  -R          fork a child that returns out of the pool's scope\n",
           progname, MAX_NUMBER);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    int opt;

    *o = (struct options){.workers = 4, .fail_write = -1};
    opterr = 0;                 /* our own message, one line */
    while ((opt = getopt(argc, argv, ":hgRj:d:F:W:")) != -1) {
        switch (opt) {
        case 'h': print_usage(); exit(flush_stdout() == 0 ? 0 : 1);
        case 'g': o->use_goto = 1; break;
        case 'R': o->child_returns = 1; break;
        case 'j':
            o->workers = parse_number(optarg, 1, POOL_MAX_WORKERS, "-j");
            break;
        case 'd':
            o->delay_ms = parse_number(optarg, 0, MAX_DELAY_MS, "-d");
            break;
        case 'F':
            o->fail_number = parse_number(optarg, -MAX_NUMBER, MAX_NUMBER,
                                          "-F");
            o->fail_map = 1;
            break;
        case 'W':
            o->fail_write = parse_number(optarg, 0, MAX_LINES, "-W");
            break;
        case ':': usage_error("option needs a value:", argv[optind - 1]);
        default: {
            char bad[3] = {'-', (char)optopt, '\0'};

            usage_error("unknown option", bad);
        }
        }
    }
    if (argc - optind < 2)
        usage_error("needs INPUT and OUTPUT, as in", "with in.txt out.txt");
    if (argc - optind > 2)
        usage_error("unexpected argument", argv[optind + 2]);
    o->input = argv[optind];
    o->output = argv[optind + 1];
}

/* ---- cleanup functions: each takes a pointer to the variable --------- */

/* Close *fp unless it is NULL, and make it NULL: a second call does nothing. */
static void
file_close(FILE **fp)
{
    /* TODO(05): the cleanup function of AUTO_FCLOSE. It gets a pointer to
     * the variable: close the stream the variable holds, if it holds one,
     * and leave it holding none, so that a second call, or a call on a
     * variable that never got a stream, does no harm. */
    (void)fp;
}

/* Free *sp and make it NULL. */
static void
string_free(char **sp)
{
    free(*sp);
    *sp = NULL;
}

/* Free the numbers and make *xs empty. */
static void
numbers_free(struct numbers *xs)
{
    free(xs->v);
    *xs = (struct numbers){.v = NULL};
}

/* ---- input ------------------------------------------------------------ */

/* Make room in *xs for n numbers in all. Returns 0, or -1 after a message. */
static int
numbers_reserve(struct numbers *xs, long n)
{
    long long *bigger;

    if (n <= xs->cap)
        return 0;
    bigger = realloc(xs->v, (size_t)n * sizeof *bigger);
    if (bigger == NULL)
        return report_errno("realloc");
    xs->v = bigger;
    xs->cap = n;
    return 0;
}

/*
 * Parse one input line (its newline removed) as Python's int() would: a
 * whole number, blanks around it allowed. Returns 0 and the number in *x,
 * or -1 when the line is no such number in range.
 */
static int
parse_line(const char *line, long long *x)
{
    char *end;

    errno = 0;
    *x = strtoll(line, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r')
        end++;
    if (errno != 0 || end == line || *end != '\0' ||
        *x < -MAX_NUMBER || *x > MAX_NUMBER)
        return -1;
    return 0;
}

/*
 * Python's  with open(path) as f: xs = [int(line) for line in f].
 * Appends the numbers of file `path` to *xs. Returns 0, or -1 after a
 * message; *xs may then hold some numbers, which its owner releases.
 */
static int
read_numbers(const char *path, struct numbers *xs)
{
    FILE *f AUTO_FCLOSE = fopen(path, "r");
    char *line AUTO_FREE = NULL;
    size_t size = 0;
    ssize_t len;
    long lineno = 0;

    if (f == NULL)
        return report("open %s: %s", path, strerror(errno));
    while ((len = getline(&line, &size, f)) != -1) {
        long long x;

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (parse_line(line, &x) == -1)
            return report("%s:%ld: not a number from %ld to %ld: '%s'",
                          path, lineno, -MAX_NUMBER, MAX_NUMBER, line);
        if (xs->n == xs->cap && numbers_reserve(xs, 2 * xs->cap + 16) == -1)
            return -1;
        xs->v[xs->n++] = x;
    }
    if (ferror(f))
        return report("read %s: %s", path, strerror(errno));
    return 0;                   /* here line is freed, then f closed */
}

/* ---- output: a temporary file, renamed when complete ----------------- */

/*
 * Create a temporary file beside `path` (same directory, so that rename()
 * can replace `path` in one step) and open it for writing in *out, which
 * must hold nothing (OUTPUT_INIT). Returns 0, or -1 after a message; *out
 * may then hold something: release it with output_discard().
 * SIMPLIFICATION: mkstemp() makes the file readable by its owner only
 * (mode 0600), and so OUTPUT is too; a real tool would fchmod() it.
 */
static int
output_open(struct output *out, const char *path)
{
    static const char suffix[] = ".XXXXXX";
    int fd;

    out->path = path;
    out->tmp = malloc(strlen(path) + sizeof suffix);
    if (out->tmp == NULL)
        return report_errno("malloc");
    strcpy(out->tmp, path);
    strcat(out->tmp, suffix);
    if ((fd = mkstemp(out->tmp)) == -1) {
        report("create %s: %s", path, strerror(errno));
        string_free(&out->tmp); /* nothing created: nothing to remove */
        return -1;
    }
    if ((out->f = fdopen(fd, "w")) == NULL) {
        report("fdopen %s: %s", out->tmp, strerror(errno));
        close(fd);
        return -1;
    }
    return 0;
}

/*
 * Write ys to the output, one number a line. When fail_after >= 0, fail as
 * a full disk would once that many lines are written. Returns 0, or -1
 * after a message.
 */
static int
output_write(struct output *out, const struct numbers *ys, long fail_after)
{
    for (long i = 0; i < ys->n; i++) {
        if (i == fail_after)
            return report("write %s: %s (-W %ld)", out->path,
                          strerror(ENOSPC), fail_after);
        if (fprintf(out->f, "%lld\n", ys->v[i]) < 0)
            return report("write %s: %s", out->path, strerror(errno));
    }
    return 0;
}

/*
 * Python's os.replace(tmp, path): flush the temporary file to the disk,
 * close it and rename it to its real name, which replaces any old file of
 * that name in one step. Returns 0, or -1 after a message (the temporary
 * file is then still there, for output_discard() to remove).
 */
static int
output_commit(struct output *out)
{
    /* TODO(05): OUTPUT appears whole or not at all: every byte reaches the
     * disk and the stream is closed, each failure seen, before the one step
     * that puts the file in OUTPUT's place. A failed step says so in one
     * message of its own (the last one's: "rename TMP to OUTPUT: REASON")
     * and returns -1, with *out left so
     * that output_discard still removes the file and never closes the
     * stream a second time. Once renamed, there is nothing to remove. */
    (void)out;
    return 0;
}

/*
 * The destructor of an output: close the temporary file and remove it,
 * unless output_commit() has renamed it. Does nothing on an output that
 * holds nothing, so it may be called again.
 */
static void
output_discard(struct output *out)
{
    /* TODO(05): a failed run leaves no trace: the stream closed and the
     * temporary file removed, whichever of them *out still holds; a removal
     * that fails is said in one line ("remove TMP: REASON") and the way out
     * goes on. Then *out holds nothing (OUTPUT_INIT), so that a second call
     * does nothing. */
    (void)out;
}

/* ---- the mapped function ---------------------------------------------- */

/*
 * The seed's Multi(x, y, z), after a sleep of delay_ms. With -F, a worker
 * that meets fail_number gives up: it says so and leaves with _exit(1), so
 * that the map fails in its middle, other workers still busy.
 */
static long long
slow_multi(long long x, long long y, long long z)
{
    struct timespec left = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        continue;
    if (fail_map && x == fail_number) {
        fprintf(stderr, "%s: worker %ld: giving up on %lld (-F)\n", progname,
                (long)getpid(), x);
        _exit(1);
    }
    return multi(x, y, z);
}

/* ---- the program, twice: cleanup attribute, then goto ladder --------- */

/*
 * For -R: fork a child and return 1 in it, 0 in the parent, which first
 * waits for the child to end. The child returns out of every scope of
 * run_with() or run_goto(), so that each cleanup runs in the child too:
 * they must leave the parent's pool and files alone.
 */
static int
child_returns(void)
{
    int status;
    pid_t pid;

    fflush(NULL);               /* else the child inherits unflushed output */
    switch (pid = fork()) {
    case -1:
        return report_errno("fork");
    case 0:
        return 1;               /* the child: on out of the scopes */
    default:
        while (waitpid(pid, &status, 0) == -1)
            if (errno != EINTR)
                return report_errno("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return report("the child of -R failed (status %d)", status);
        return 0;
    }
}

/*
 * The program with cleanup attributes: each resource is released when its
 * variable goes out of scope, in reverse order, on every return. Returns
 * the exit status: 0, or 1 after a message.
 */
static int
run_with(const struct options *o)
{
    /* TODO(05): the program of run_goto below, with no goto and no call
     * that releases: each resource (xs, ys, the pool, the output) is a
     * variable declared with its AUTO_ macro where it is acquired, so that
     * every return releases what is held, newest first. The pool's scope
     * ends before the output is made: joined on the normal way, terminated
     * on every other. With -R, the child returns 0 out of every scope. */
    (void)o;
    (void)numbers_free;         /* the stub's: used once you write the code */
    (void)output_discard;
    return 1;
}

/*
 * The same program in portable C: one label per resource, in reverse order
 * of acquisition; a failure jumps to the label of the last resource it
 * holds, and falls through the rest. Returns the exit status.
 */
static int
run_goto(const struct options *o)
{
    struct numbers xs = {.v = NULL}, ys = {.v = NULL};
    struct pool pool = POOL_INIT;
    struct output out = OUTPUT_INIT;
    int status = 1, r;

    if (read_numbers(o->input, &xs) == -1)
        goto free_xs;           /* it may hold some numbers */
    if (numbers_reserve(&ys, xs.n) == -1)
        goto free_ys;
    ys.n = xs.n;
    if (pool_start(&pool, o->workers) == -1)
        goto release_pool;      /* the workers started so far */
    if (o->child_returns && (r = child_returns()) != 0) {
        status = r == 1 ? 0 : 1;        /* the child returns 0 */
        goto release_pool;
    }
    if (pool_map(&pool, &instance, xs.v, xs.n, ys.v) == -1)
        goto release_pool;      /* an error: pool_release() terminates */
    if (pool_join(&pool) == -1)
        goto release_pool;      /* the normal way: wait for the workers */
    if (output_open(&out, o->output) == -1 ||
        output_write(&out, &ys, o->fail_write) == -1 ||
        output_commit(&out) == -1)
        goto discard_output;
    status = 0;

discard_output:
    /* TODO(05): under each label, release the resource it names, so that
     * a jump to a label releases that one and, falling through, every one
     * acquired before it, and the success path releases them all. Each
     * release must be harmless on a resource that holds nothing. */
release_pool:
free_ys:
free_xs:
    return status;
}

/* ---- the descriptor report (a teaching aid) -------------------------- */

/*
 * Append " FD", or " FD=WHAT" where the system says what FD is open on, to
 * line[*len..size-1]. Linux names it in /proc/self/fd: a file's path, or
 * pipe:[INODE].
 */
static void
describe_fd(char *line, size_t size, int *len, int fd)
{
    char link[64], what[200];
    ssize_t n;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, what, sizeof what - 1);
    what[n > 0 ? n : 0] = '\0';
    *len += snprintf(line + *len, size - (size_t)*len, n > 0 ? " %d=%s" : " %d",
                     fd, what);
}

/*
 * At exit, append "PID: FD FD ...\n" (or "PID: none\n"), the descriptors
 * above 2 this process still has open, to the file $FORKLINGS_FD_REPORT.
 * fcntl(F_GETFD) fails with EBADF exactly on descriptors that are not open.
 */
static void
report_descriptors(void)
{
    const char *path = getenv("FORKLINGS_FD_REPORT");
    char line[1024];
    int len, found = 0, fd;
    long max = sysconf(_SC_OPEN_MAX);

    if (path == NULL || *path == '\0')
        return;
    if (max < 0 || max > MAX_FDS_PROBED)
        max = MAX_FDS_PROBED;
    len = snprintf(line, sizeof line, "%ld:", (long)getpid());
    for (fd = 3; fd < max && len < (int)sizeof line - 250; fd++)
        if (fcntl(fd, F_GETFD) != -1) {
            describe_fd(line, sizeof line, &len, fd);
            found = 1;
        }
    len += snprintf(line + len, sizeof line - (size_t)len, "%s\n",
                    found ? "" : " none");
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644)) == -1)
        return;                 /* a teaching aid: never fail the program */
    if (write(fd, line, (size_t)len) != len)
        fprintf(stderr, "%s: cannot write the descriptor report\n", progname);
    close(fd);
}

/*
 * Make sure that descriptors 0, 1 and 2 are open before the program opens
 * any: a closed one gets /dev/null (open() returns the lowest free
 * descriptor), read-only, so that a write to a stdout that was closed still
 * fails (EBADF) and is reported. Else a pipe() could take number 1 or 2,
 * and what the program prints would go down a worker's pipe. Exits 1 on
 * failure.
 */
static void
open_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", O_RDONLY) == -1) {
            report_errno("open /dev/null");
            exit(1);
        }
}

int
main(int argc, char **argv)
{
    struct options o;

    open_standard_fds();
    if (atexit(report_descriptors) != 0)
        return 1;
    parse_options(argc, argv, &o);
    delay_ms = o.delay_ms;
    fail_map = o.fail_map;
    fail_number = o.fail_number;
    return o.use_goto ? run_goto(&o) : run_with(&o);
}
