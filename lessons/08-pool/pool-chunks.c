/* SPDX-License-Identifier: MIT */
/*
 * pool-chunks.c: the map engine's bookkeeping, given (pool-engine.c makes
 * the decisions). Which chunks each worker holds, a ring in the order
 * sent; what a chunk takes in a task pipe, and whether another fits behind
 * those a worker holds; task records gathered from where their parts are;
 * results read ahead; the failures a result or a dead worker reports; and
 * the sharing of the chunks left between the workers.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pool-internal.h"

/* With depth 0, a chunk that ran longer than this gets no chunk queued
 * behind it (see may_take()): 1 ms is some 40 round trips of a pipe, so
 * queueing could save its worker a few per cent at most, and would hold
 * back a chunk that an idle worker could run. */
#define SHORT_CHUNK_NS 1000000LL

/* Chunk k of those worker w holds, from 0, its oldest. */
struct chunk *
held(struct worker *w, int k)
{
    return &w->held[(w->oldest + k) % POOL_MAX_DEPTH];
}

/*
 * Record the failures of a result whose item codes are in p->codes: each
 * item with a code other than 0 failed (POOL_ETASK).
 */
void
note_task_failures(struct pool *p, const struct worker *w,
                   const struct result_head *h)
{
    const int *codes = (const int *)p->codes;

    for (long i = 0; i < h->count; i++) {
        struct pool_error e;

        if (codes[i] == 0)
            continue;
        set_error(&e, POOL_ETASK, h->first + i, "item %ld: task failed "
                  "with code %d (worker %ld)", h->first + i, codes[i],
                  (long)w->pid);
        e.code = codes[i];
        e.pid = w->pid;
        note_failure(p, &e, 1);
    }
}

/*
 * Worker w has gone with the chunks it held: fail the items of the one it
 * was running, if that chunk is this call's, as *e describes (its index
 * and message filled in here from its items and `why`), and count them as
 * done. The chunks queued behind it were never begun: a worker runs its
 * chunks in the order sent, and writes each result whole before it reads
 * the next task, so every chunk after the oldest unanswered one is
 * untouched. Those of this call go to p->redo, to be sent again. Then the
 * worker holds nothing.
 */
static void
lose_held(struct pool *p, struct job *job, struct worker *w,
          struct pool_error *e, const char *why)
{
    struct chunk *c = held(w, 0);
    char items[64];

    if (w->nheld > 0 && !c->abandoned) {
        if (c->count == 1)
            snprintf(items, sizeof items, "item %ld", c->first);
        else
            snprintf(items, sizeof items, "items %ld to %ld", c->first,
                     c->first + c->count - 1);
        e->index = c->first;
        snprintf(e->message, sizeof e->message, "%s: %s", items, why);
        note_failure(p, e, c->count);
        job->done += c->count;
    }
    for (int k = 1; k < w->nheld; k++)
        if (!held(w, k)->abandoned)
            p->redo[p->nredo++] = *held(w, k);
    w->nheld = 0;
    w->queued = 0;
}

/*
 * Worker w (pid) has died with wait status `status`: fail the chunk it was
 * running (POOL_EWORKER, saying how it died) and send those queued behind
 * it again (see lose_held()).
 */
void
lose_chunk(struct pool *p, struct job *job, struct worker *w, pid_t pid,
           int status)
{
    struct pool_error e = {.kind = POOL_EWORKER, .pid = pid};
    char how[80], why[120];

    describe_end(status, &e, how, sizeof how);
    snprintf(why, sizeof why, "worker %ld %s", (long)pid, how);
    lose_held(p, job, w, &e, why);
}

/*
 * Worker w (pid) has been killed because the chunk it was running had run
 * cfg.timeout_ms: fail that chunk (POOL_ETIMEOUT, code the timeout in
 * milliseconds) and send those queued behind it again (see lose_held()).
 */
void
lose_late_chunk(struct pool *p, struct job *job, struct worker *w, pid_t pid)
{
    struct pool_error e = {.kind = POOL_ETIMEOUT, .pid = pid,
                           .code = (int)p->cfg.timeout_ms};
    char why[120];

    snprintf(why, sizeof why, "timed out after %ld ms (worker %ld killed)",
             p->cfg.timeout_ms, (long)pid);
    lose_held(p, job, w, &e, why);
}

/*
 * Where the results of chunk c go, bytes of them: for a map, straight
 * into the caller's array; else into p->scratch. Sets *results. Returns 0,
 * or -1 when memory fails (POOL_ESYS).
 */
int
results_place(struct pool *p, struct job *job, const struct chunk *c,
              size_t bytes, unsigned char **results)
{
    if (job->ordered && !c->abandoned && bytes > 0) {
        *results = job->out + (size_t)c->first * c->out_size;
        return 0;
    }
    if (grow(&p->scratch, &p->scratch_cap, bytes) == -1)
        return sys_error(&p->error, "realloc");
    *results = p->scratch;
    return 0;
}

/*
 * Take the next n bytes that worker w sent into dst: first those read
 * ahead, then from its result pipe, until they are all there (or
 * end-of-file). A small rest is read ahead: one read() asks for up to
 * RESULTS_AHEAD bytes, and takes as many of the results behind this one as
 * are there already; a big rest goes straight to dst. Call it only for a
 * record that has begun to arrive, so that the bytes are there or on
 * their way (a small record is written whole, PIPE_BUF: the worker writes
 * each record with one write). Returns n, fewer at end-of-file, or -1
 * with errno set.
 */
ssize_t
take_results(struct worker *w, void *dst, size_t n)
{
    unsigned char *to = dst;
    size_t done = 0;

    while (done < n) {
        size_t have = w->ahead_to - w->ahead_from, part;
        ssize_t got;

        if (have > 0) {
            part = have < n - done ? have : n - done;
            memcpy(to + done, w->ahead + w->ahead_from, part);
            done += part;
            w->ahead_from += part;
            continue;
        }
        w->ahead_from = w->ahead_to = 0;
        if (n - done >= RESULTS_AHEAD || w->ahead == NULL) {
            if ((got = readn(w->result_fd, to + done, n - done)) == -1)
                return -1;
            return (ssize_t)(done + (size_t)got);
        }
        while ((got = read(w->result_fd, w->ahead, RESULTS_AHEAD)) == -1 &&
               errno == EINTR)
            continue;
        if (got <= 0)
            return got == 0 ? (ssize_t)done : -1;   /* 0: end-of-file */
        w->ahead_to = (size_t)got;
    }
    return (ssize_t)done;
}

/* Whether worker w has results read ahead, not yet taken. */
int
has_ahead(const struct worker *w)
{
    return w->ahead_to > w->ahead_from;
}

/*
 * Read the item codes that follow a result whose header h says some items
 * failed, into p->codes. Returns 1 when they all came; 0 when the record
 * was cut short (the worker died while sending it); -1 on an error
 * (POOL_ESYS).
 */
int
read_codes(struct pool *p, struct worker *w, const struct result_head *h)
{
    size_t code_bytes = (size_t)h->count * sizeof(int);
    ssize_t got;

    if (grow(&p->codes, &p->codes_cap, code_bytes) == -1)
        return sys_error(&p->error, "realloc");
    if ((got = take_results(w, p->codes, code_bytes)) !=
        (ssize_t)code_bytes)
        return got == -1 ? sys_error(&p->error, "read result") : 0;
    return 1;
}

/* Worker w has answered its oldest chunk, which ran ran_ns: it holds one
 * chunk fewer. */
void
retire_oldest(struct worker *w, long long ran_ns)
{
    w->queued -= held(w, 0)->pipe_bytes;
    w->oldest = (w->oldest + 1) % POOL_MAX_DEPTH;
    w->nheld--;
    w->tasks++;
    w->ran_ns = ran_ns;
}

/* The bytes a chunk of count items takes in its task pipe: its record's,
 * in whole pages where pipes are made of them (see above). */
size_t
pipe_bytes(const struct pool *p, const struct job *job, long count)
{
    size_t bytes = sizeof(union task_block) + ARGS_ROOM(job->f->args_size) +
                   (size_t)count * job->f->in_size;

#ifdef F_GETPIPE_SZ
    return (bytes + p->page - 1) / p->page * p->page;
#else
    (void)p;
    return bytes;
#endif
}

/*
 * Whether worker w may be sent k more chunks of count items now: it has a
 * task pipe, would hold at most its depth, and would have been sent at
 * most cfg.maxtasks (it leaves after that many, so one more would be
 * lost). An idle worker takes one chunk of any size; one that holds chunks
 * takes more only when their records fit into its task pipe beside all it
 * holds, so that the write cannot wait. The depth is cfg.depth when given;
 * else it adapts to the worker's last chunk: POOL_DEPTH after one that ran
 * shorter than SHORT_CHUNK_NS, 1 after a longer one, 2 before the first.
 */
static int
may_take(const struct pool *p, const struct job *job, const struct worker *w,
         long k, long count)
{
    long depth = p->cfg.depth;

    if (depth == 0)             /* adaptive, see POOL_DEPTH */
        depth = w->ran_ns < 0 ? 2 : w->ran_ns < SHORT_CHUNK_NS ? POOL_DEPTH
                                                                : 1;
    if (w->task_fd == -1 || w->nheld + k > depth ||
        (p->cfg.maxtasks > 0 && w->given + k > p->cfg.maxtasks))
        return 0;
    if (w->nheld == 0)
        return k == 1;
    return w->queued + (size_t)k * pipe_bytes(p, job, count) <= w->task_pipe;
}

/* Whether worker w may be sent one more chunk of count items now. */
int
has_room(const struct pool *p, const struct job *job, const struct worker *w,
         long count)
{
    return may_take(p, job, w, 1, count);
}

/* Wait until fd, a task pipe, has room (or its reader is gone). Returns 0,
 * or -1 with errno set. */
static int
await_room(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};

    while (poll(&pfd, 1, -1) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

/*
 * Write a task record to w's task pipe (O_NONBLOCK). When w holds chunks
 * already (`behind`) and the pipe takes nothing, returns 1: nothing is
 * sent. Otherwise writes it all, waiting for room as long as it takes
 * (safe for an idle worker, see above; behind chunks has_room() leaves
 * nothing to wait for). Returns 0 when written, or -1 with errno set
 * (EPIPE: the worker is gone). Changes iov.
 */
int
write_task(struct worker *w, struct iovec *iov, int iovcnt, int behind)
{
    size_t done = 0;

    iov_advance(&iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t put = writev(w->task_fd, iov, iovcnt);

        if (put == -1 && errno == EINTR)
            continue;
        if (put == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (put == -1 && behind && done == 0)
            return 1;
        if (put == -1 && await_room(w->task_fd) == -1)
            return -1;
        if (put > 0) {
            done += (size_t)put;
            iov_advance(&iov, &iovcnt, (size_t)put);
        }
    }
    return 0;
}

/* Take the next chunk to send, into *c: one to send again first, else the
 * next count items of the input. */
void
take_chunk(struct pool *p, struct job *job, struct chunk *c)
{
    if (p->nredo > 0) {
        *c = p->redo[--p->nredo];
        return;
    }
    c->first = job->sent;
    c->count = job->n - job->sent < job->chunksize ? job->n - job->sent
                                                   : job->chunksize;
    job->sent += c->count;
}

/* Put back chunk c, just taken and not sent. */
static void
untake_chunk(struct pool *p, struct job *job, const struct chunk *c)
{
    if (c->first + c->count == job->sent && p->nredo == 0)
        job->sent = c->first;
    else
        p->redo[p->nredo++] = *c;
}

/* The items of the next chunk to send, 0 when nothing is left to send. */
long
next_count(const struct pool *p, const struct job *job)
{
    if (p->nredo > 0)
        return p->redo[p->nredo - 1].count;
    return job->n - job->sent < job->chunksize ? job->n - job->sent
                                               : job->chunksize;
}

/*
 * The task record of chunk c as four buffers, iov[0] to iov[3], gathered
 * from where its parts are (no copy): the header, filled into *head, the
 * bound arguments, their padding, the items.
 */
void
gather_record(const struct job *job, const struct chunk *c,
              union task_block *head, struct iovec *iov)
{
    static const unsigned char padding[sizeof(max_align_t)];
    const struct pool_func *f = job->f;

    memset(head, 0, sizeof *head);      /* no uninitialised padding sent */
    head->h = (struct task_head){.call = f->call, .first = c->first,
                                 .count = c->count, .args_size = f->args_size,
                                 .in_size = f->in_size,
                                 .out_size = f->out_size};
    iov[0] = (struct iovec){head, sizeof *head};
    iov[1] = (struct iovec){(void *)f->args, f->args_size};
    iov[2] = (struct iovec){(void *)padding,
                            ARGS_ROOM(f->args_size) - f->args_size};
    iov[3] = (struct iovec){(void *)(job->in + (size_t)c->first * f->in_size),
                            (size_t)c->count * f->in_size};
}

/* Worker w has been sent chunk c: it holds it from now on. */
void
hold_chunk(struct worker *w, const struct chunk *c)
{
    *held(w, w->nheld) = *c;
    w->nheld++;
    w->queued += c->pipe_bytes;
    w->given++;
}

/* Worker w's newest chunk was not sent after all: back it goes. */
void
unhold_chunk(struct pool *p, struct job *job, struct worker *w)
{
    struct chunk *c = held(w, w->nheld - 1);

    w->nheld--;
    w->queued -= c->pipe_bytes;
    w->given--;
    untake_chunk(p, job, c);
}

/*
 * Keep every worker fed. First share out the chunks left as rounds would,
 * one chunk to each worker that has room, round after round, so that the
 * chunks spread over the workers before any queues; then send each worker
 * its share in one write. Returns 0, or -1 when the pool is broken.
 */
int
feed_workers(struct pool *p, struct job *job)
{
    long sent;

    do {
        long left = p->nredo + (job->n - job->sent + job->chunksize - 1) /
                               job->chunksize;
        long count = next_count(p, job), more;

        for (long i = 0; i < p->nworkers; i++)
            p->share[i] = 0;
        do {                    /* the shares, as rounds would give them */
            more = 0;
            for (long i = 0; i < p->nworkers && left > 0; i++) {
                if (!may_take(p, job, &p->workers[i], p->share[i] + 1, count))
                    continue;
                p->share[i]++;
                left--;
                more++;
            }
        } while (more > 0 && left > 0);
        sent = 0;
        for (long i = 0; i < p->nworkers && next_count(p, job) > 0; i++) {
            long rc;

            if (p->share[i] == 0)
                continue;
            if ((rc = send_chunks(p, job, &p->workers[i], p->share[i])) == -1)
                return -1;
            sent += rc;
        }
    } while (sent > 0 && next_count(p, job) > 0);
    return 0;
}

/*
 * Fill in the poll() set for wait_results(): the result pipe of each
 * worker that holds chunks (-1 for the others: poll() skips them), and
 * cancel_fd last when there is one; *n is the number of entries. *timeout
 * is poll()'s timeout in milliseconds: 0 when a busy worker has results
 * read ahead already; else, with cfg.timeout_ms, the time until the
 * earliest deadline of a running chunk (at least 1: never wake too soon);
 * else -1, for ever. Returns how many workers hold chunks.
 */
int
watch_set(struct pool *p, nfds_t *n, int *timeout)
{
    long long now = p->cfg.timeout_ms > 0 ? now_ns() : 0, wait = -1;
    int busy = 0;

    for (long i = 0; i < p->nworkers; i++) {
        const struct worker *w = &p->workers[i];
        long long left;

        p->pfds[i] = (struct pollfd){.fd = w->nheld > 0 ? w->result_fd : -1,
                                     .events = POLLIN};
        if (w->nheld == 0)
            continue;
        busy++;
        if (has_ahead(w))
            left = 0;           /* a result is here already: no waiting */
        else if (p->cfg.timeout_ms > 0)
            left = w->began_ns + p->cfg.timeout_ms * 1000000LL - now;
        else
            continue;
        if (left < 0)
            left = 0;
        if (wait < 0 || left < wait)
            wait = left;
    }
    *n = (nfds_t)p->nworkers;
    if (p->cfg.cancel_fd > 0)
        p->pfds[(*n)++] = (struct pollfd){.fd = p->cfg.cancel_fd,
                                          .events = POLLIN};
    wait = wait > 0 ? (wait + 999999) / 1000000 : wait;  /* ms, rounded up */
    *timeout = wait > INT_MAX ? INT_MAX : (int)wait;
    return busy;
}

/* The chunks the workers hold, queued ones too, belong to a call that is
 * returning: their results will be discarded when they come. Those still
 * to send again are forgotten. */
void
abandon_in_flight(struct pool *p)
{
    for (long i = 0; i < p->nworkers; i++)
        for (int k = 0; k < p->workers[i].nheld; k++)
            held(&p->workers[i], k)->abandoned = 1;
    p->nredo = 0;
}
