/* SPDX-License-Identifier: MIT */
/*
 * pool-worker.c: what a worker of the pool library does, from fork() to
 * _exit(): close what is not its own, set up its signals and stdin, run
 * the initializer, then read task records, run them and write the results
 * back, until its task pipe gives end-of-file. Everything here runs in the
 * child; nothing returns to the caller's code.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool-internal.h"

/* Above every signal number: 64 on Linux, 31 on macOS. worker_setup()
 * asks about each number below it; sigaction() refuses those that are no
 * signal. */
#define MAX_SIGNAL 129

/* A worker's first read of a record asks for up to this much: several
 * small records come in one read() (one wake-up), and the bytes it takes
 * of the next record are few to move to the front of the buffer. */
#define READ_AHEAD 16384

/* A worker's buffers: grown as records need, never shrunk. */
struct worker_buffers {
    unsigned char *task;        /* the current task record, whole, then the
                                 * first bytes of the next ones */
    size_t task_cap;
    size_t task_len;            /* bytes read into task */
    size_t task_used;           /* of those, the current record's */
    unsigned char *out;         /* a result_block, then the results */
    size_t out_cap;
    unsigned char *codes;       /* each item's code (ints), when one failed */
    size_t codes_cap;
};

/*
 * A worker's fatal error, in the library itself, not in a task: a message,
 * then _exit(1), which flushes no stdio buffer inherited from the parent
 * and runs no atexit() handler. The parent reports the exit status.
 */
_Noreturn void
die_child(const char *what)
{
    fprintf(stderr, "pool worker %ld: %s: %s\n", (long)getpid(), what,
            errno != 0 ? strerror(errno) : "record cut short");
    _exit(1);
}

/*
 * Have the first `need` bytes of a task record in b->task, reading the
 * missing ones (exactly those) from fd. A record cut short ends the worker.
 */
static void
read_rest(int fd, struct worker_buffers *b, size_t need)
{
    errno = 0;
    if (b->task_len < need &&
        readn(fd, b->task + b->task_len, need - b->task_len) !=
            (ssize_t)(need - b->task_len))
        die_child("read task");
    if (b->task_len < need)
        b->task_len = need;
}

/*
 * Read the next task record from fd into the front of b->task: its header
 * into *h too. Returns 1 for a task, 0 for end-of-file before its first
 * byte (no more work). Anything else ends the worker.
 *
 * The parent may have queued several records in the pipe: the first read
 * asks for up to READ_AHEAD bytes and may take several small records in one
 * system call. Bytes past the current record stay in b->task for the next
 * call, which first moves them to the front.
 */
static int
read_task(int fd, struct task_head *h, struct worker_buffers *b)
{
    size_t size;

    if (b->task_used > 0) {             /* the record run last: drop it */
        b->task_len -= b->task_used;
        memmove(b->task, b->task + b->task_used, b->task_len);
        b->task_used = 0;
    }
    if (grow(&b->task, &b->task_cap, READ_AHEAD) == -1)
        die_child("realloc");
    if (b->task_len == 0) {
        ssize_t got;

        while ((got = read(fd, b->task, READ_AHEAD)) == -1 && errno == EINTR)
            continue;
        if (got == 0)
            return 0;
        if (got == -1)
            die_child("read task");
        b->task_len = (size_t)got;
    }
    read_rest(fd, b, sizeof(union task_block));
    memcpy(h, b->task, sizeof *h);
    if (h->count < 1)
        die_child("read task");
    size = sizeof(union task_block) + ARGS_ROOM(h->args_size) +
           (size_t)h->count * h->in_size;
    if (grow(&b->task, &b->task_cap, size) == -1 ||
        grow(&b->out, &b->out_cap, sizeof(union result_block) +
                                   (size_t)h->count * h->out_size) == -1 ||
        grow(&b->codes, &b->codes_cap, (size_t)h->count * sizeof(int)) == -1)
        die_child("realloc");
    read_rest(fd, b, size);
    b->task_used = size;
    return 1;
}

/*
 * Apply the task's function to each of its items, results into b->out after
 * the header, which it fills in. A failed item's code goes to b->codes
 * (zeroed at the first failure) and its result bytes are zeroed.
 */
static void
run_task(const struct task_head *h, struct worker_buffers *b)
{
    struct result_head *r = &((union result_block *)b->out)->h;
    unsigned char *results = b->out + sizeof(union result_block);
    const unsigned char *args = b->task + sizeof(union task_block);
    const unsigned char *in = args + ARGS_ROOM(h->args_size);
    int *codes = (int *)b->codes;

    memset(b->out, 0, sizeof(union result_block));  /* no uninitialised */
    r->first = h->first;                             /* padding sent */
    r->count = h->count;
    r->start_ns = now_ns();
    memset(results, 0, (size_t)h->count * h->out_size);    /* no stale or */
    for (long i = 0; i < h->count; i++) {                  /* unset bytes */
        unsigned char *out = results + (size_t)i * h->out_size;
        int code = h->call(h->args_size > 0 ? args : NULL,
                           in + (size_t)i * h->in_size, out);

        if (code == 0)
            continue;
        if (r->failed++ == 0)
            memset(codes, 0, (size_t)h->count * sizeof(int));
        codes[i] = code;
        memset(out, 0, h->out_size);
    }
    r->end_ns = now_ns();
}

/*
 * The body of a worker: take task records from task_fd until end-of-file,
 * run each, send each result back on result_fd, as one write (and a second
 * for the codes when an item failed). Never returns: a worker that
 * returned would go on running the caller's code as if it were the parent.
 */
static _Noreturn void
worker_main(int task_fd, int result_fd)
{
    struct worker_buffers b = {NULL, 0, 0, 0, NULL, 0, NULL, 0};
    struct task_head h;

    while (read_task(task_fd, &h, &b) == 1) {
        const struct result_head *r = &((union result_block *)b.out)->h;
        size_t size = sizeof(union result_block) +
                      (size_t)h.count * h.out_size;

        run_task(&h, &b);
        fflush(NULL);           /* what the task printed, out now */
        if (writen(result_fd, b.out, size) == -1 ||
            (r->failed > 0 &&
             writen(result_fd, b.codes, (size_t)h.count * sizeof(int)) == -1))
            die_child("write result");
    }
    free(b.task);
    free(b.out);
    free(b.codes);
    fflush(NULL);
    _exit(0);                   /* not exit(): see lesson 01 */
}

/*
 * Close, in a new worker, the parent's ends of the pipes of every pool of
 * the process: this pool's other workers, and other pools' workers.
 */
static void
close_parent_ends(void)
{
    for (struct pool *p = all_pools; p != NULL; p = p->next) {
        if (p->trace_fd != -1 && close(p->trace_fd) == -1)
            die_child("close");
        p->trace_fd = -1;       /* the trace is the parent's to write */
        for (long i = 0; i < p->nworkers; i++) {
            struct worker *w = &p->workers[i];

            if ((w->task_fd != -1 && close(w->task_fd) == -1) ||
                (w->result_fd != -1 && close(w->result_fd) == -1))
                die_child("close");
            w->task_fd = w->result_fd = -1;
        }
    }
}

/*
 * In a new worker, the signals and stdin of pool.h: SIGINT ignored (the
 * parent decides), SIGTERM and SIGPIPE at their default actions, every
 * other signal the parent caught with a handler back to its default action
 * (a terminal resize sends SIGWINCH to the whole foreground group: the
 * parent's handler must not run in a worker), stdin from /dev/null. The
 * signals are still blocked here; old_mask is the mask to go back to.
 */
static void
worker_setup(const sigset_t *old_mask)
{
    struct sigaction sa, old;
    int fd;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGINT, &sa, NULL) == -1)
        die_child("sigaction");
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGTERM, &sa, NULL) == -1 ||
        sigaction(SIGPIPE, &sa, NULL) == -1)
        die_child("sigaction");
    for (int sig = 1; sig < MAX_SIGNAL; sig++) {
        if (sigaction(sig, NULL, &old) == -1)
            continue;           /* EINVAL: no such signal, or reserved */
        if (((old.sa_flags & SA_SIGINFO) != 0 ||
             (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) &&
            sigaction(sig, &sa, NULL) == -1)
            die_child("sigaction");
    }
    if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
        dup2(fd, STDIN_FILENO) == -1 || (fd != STDIN_FILENO && close(fd) == -1))
        die_child("/dev/null as stdin");
    if (sigprocmask(SIG_SETMASK, old_mask, NULL) == -1)
        die_child("sigprocmask");
}

/*
 * Everything a new worker does between fork() and its first task: close
 * what is not its own, set up its signals, run the initializer and say so
 * in its ready record. A failed initializer ends the worker.
 */
_Noreturn void
worker_start(struct pool *p, int task[2], int result[2],
             const sigset_t *old_mask)
{
    union result_block ready;

    if (close(task[1]) == -1 ||     /* only the parent writes tasks */
        close(result[0]) == -1)     /* only the parent reads results */
        die_child("close");
    close_parent_ends();
    worker_setup(old_mask);
    memset(&ready, 0, sizeof ready);    /* no uninitialised padding sent */
    ready.h.first = -1;
    ready.h.start_ns = now_ns();
    ready.h.status = p->cfg.init != NULL ? p->cfg.init(p->cfg.init_arg) : 0;
    ready.h.end_ns = now_ns();
    fflush(NULL);
    if (writen(result[1], &ready, sizeof ready) == -1)
        die_child("write ready record");
    if (ready.h.status != 0)
        _exit(1);               /* the parent reports the initializer's code */
    worker_main(task[0], result[1]);
}
