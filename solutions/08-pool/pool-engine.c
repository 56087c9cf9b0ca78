/* SPDX-License-Identifier: MIT */
/*
 * pool-engine.c: the map engine of the pool library, lesson 08's task.
 * run_job() runs one call of pool_map() or pool_imap_unordered(): it keeps
 * every worker fed with chunks (send_chunks()), waits for results
 * (wait_results()) and receives each (receive()), which hands it over
 * (deliver_unordered()), recycles a spent worker (recycle_if_spent()),
 * buries a dead one (bury_worker()), and fails a chunk that runs past its
 * time (expire_late()). The bookkeeping it leans on is in pool-chunks.c;
 * the structs are in pool-internal.h.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pool-internal.h"

/*
 * Why the loop cannot deadlock, now that a worker holds up to cfg.depth
 * chunks. The parent blocks in three places only: poll(), which wakes for
 * any result and for cancel_fd; a read of a result record whose first
 * bytes are there, which its worker, busy writing it, completes (or dies:
 * end-of-file); and a write of a task record. A worker blocks in two: a
 * read of its task pipe, and a write of a result. A deadlock needs the
 * parent in a write to a worker that is itself in a write. That cannot
 * happen, because send_chunks() writes in two ways only:
 *   - to an idle worker (it holds no chunk), any size, waiting for room as
 *     long as it takes: an idle worker writes nothing, it reads until it
 *     has the whole record, so the wait ends;
 *   - behind chunks a worker holds, only when the record fits into what
 *     its task pipe has left, counting every record the worker may not
 *     have read yet (may_take()). Then the write does not wait at all,
 *     whatever the worker does, and the task pipe is O_NONBLOCK besides:
 *     should it be full after all, the write takes nothing (EAGAIN) and
 *     the chunk waits for a later turn.
 * So the parent is back in poll() at once, reading results, while the
 * workers have tasks queued: the bytes in flight towards a busy worker are
 * bounded below its pipe's capacity, and the pipe never fills in both
 * directions at once.
 *
 * How the count holds. On Linux a pipe is a ring of pages, and a write
 * takes at most ceil(bytes / page) of them (it tops up the last page only
 * with what fits there); each page in use holds a byte of a record not yet
 * read. So a record is counted as its size in whole pages, and the pages
 * of every chunk the worker holds, plus the new one, must fit the pipe
 * (F_GETPIPE_SZ). Elsewhere the pipe's size is unknown: it is taken as
 * PIPE_BUF, and a queued record is at most that, which POSIX writes
 * whole or not at all under O_NONBLOCK.
 */

/*
 * Worker w has just finished a task. If it has done its cfg.maxtasks, close
 * its task pipe so that it leaves, reap it, and start a new worker in its
 * slot (Python's maxtasksperchild). Returns 0, or -1 when the pool is
 * broken.
 */
int
recycle_if_spent(struct pool *p, struct worker *w)
{
    int status;

    if (p->cfg.maxtasks == 0 || w->tasks < p->cfg.maxtasks)
        return 0;
    if (reap_worker(p, w, &status) == -1)
        return break_pool(p);
    return spawn_worker(p, w - p->workers);
}

/*
 * imap_unordered: hand each item of result h that succeeded to the
 * caller's each(), with its index in the input and its result bytes (item
 * i's are at results + i * out_size). Failed items (h->failed > 0 and a
 * code other than 0 in p->codes) are skipped. When each returns non-zero,
 * set job->stopped and hand over nothing more.
 */
void
deliver_unordered(struct pool *p, struct job *job,
                  const struct result_head *h, const unsigned char *results)
{
    const int *codes = (const int *)p->codes;

    for (long i = 0; i < h->count && !job->stopped; i++) {
        if (h->failed > 0 && codes[i] != 0)
            continue;
        if (job->each(job->ctx, h->first + i,
                      results + (size_t)i * job->f->out_size) != 0)
            job->stopped = 1;
    }
}

/*
 * Worker w has died, or broke the protocol (it closed its result pipe, or
 * sent a record cut short): it failed. Make sure it is dead, reap it, fail
 * the items of the chunk it was running (lose_chunk() sends those queued
 * behind it again), and put a new worker in its slot while the pool runs.
 * Returns 0, or -1 when the pool is broken.
 */
int
bury_worker(struct pool *p, struct job *job, struct worker *w)
{
    pid_t pid = w->pid;         /* reap_worker() forgets it */
    int status;

    kill(pid, SIGKILL);         /* never wait for a process that may not end */
    if (reap_worker(p, w, &status) == -1)
        return break_pool(p);
    lose_chunk(p, job, w, pid, status);
    if (p->state == POOL_RUNNING)
        return spawn_worker(p, w - p->workers);
    return 0;
}

/*
 * With cfg.timeout_ms: every worker whose running chunk has run that long
 * (since w->began_ns) is killed and reaped, that chunk fails with
 * POOL_ETIMEOUT and the chunks queued behind it are sent again
 * (lose_late_chunk()), and a new worker takes the slot while the pool
 * runs. Call it after the results that have arrived are received: a chunk
 * whose result is there is not late. Returns 0, or -1 when the pool is
 * broken.
 */
int
expire_late(struct pool *p, struct job *job)
{
    long long now = now_ns(), limit = p->cfg.timeout_ms * 1000000LL;

    for (long i = 0; p->cfg.timeout_ms > 0 && i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        pid_t pid = w->pid;     /* reap_worker() forgets it */
        int status;

        if (w->nheld == 0 || now - w->began_ns < limit)
            continue;
        kill(pid, SIGKILL);     /* it may be stuck anywhere */
        if (reap_worker(p, w, &status) == -1)
            return break_pool(p);
        lose_late_chunk(p, job, w, pid);
        if (p->state == POOL_RUNNING && spawn_worker(p, i) == -1)
            return -1;
    }
    return 0;
}

/*
 * Receive the result of worker w's oldest chunk, which poll() says has
 * begun to arrive (or the worker is gone), and hand it over: for a map the
 * results are already in place; imap_unordered calls each(); an abandoned
 * chunk's result is discarded. Then w holds one chunk fewer (the next one
 * it holds begins to run now: its clock starts), or is recycled. A worker
 * that sent no whole, matching record is buried. Returns 0, or -1 when the
 * pool is broken.
 */
int
receive(struct pool *p, struct job *job, struct worker *w)
{
    const struct chunk *c = held(w, 0);
    union result_block r;
    unsigned char *results;
    size_t bytes = (size_t)c->count * c->out_size;
    ssize_t got, body = 0;
    int codes;

    if (w->ahead == NULL)       /* if memory fails, it reads on without */
        w->ahead = malloc(RESULTS_AHEAD);
    if (results_place(p, job, c, bytes, &results) == -1)
        return break_pool(p);
    if ((got = take_results(w, &r, sizeof r)) == (ssize_t)sizeof r &&
        r.h.first == c->first && r.h.count == c->count)
        body = take_results(w, results, bytes);
    if (got == -1 || body == -1) {
        sys_error(&p->error, "read result");
        return break_pool(p);
    }
    if (got != (ssize_t)sizeof r || r.h.first != c->first ||
        r.h.count != c->count || body != (ssize_t)bytes ||
        r.h.failed < 0 || r.h.failed > r.h.count)
        return bury_worker(p, job, w);  /* cut short, or not its chunk */
    if (r.h.failed > 0 && (codes = read_codes(p, w, &r.h)) != 1)
        return codes == -1 ? break_pool(p) : bury_worker(p, job, w);
    /* When this chunk ran, by the one clock of every process. */
    trace_line(p, "task %ld %ld %ld %lld %lld\n", r.h.first, r.h.count,
               (long)w->pid, r.h.start_ns, r.h.end_ns);
    if (!c->abandoned) {
        if (r.h.failed > 0)
            note_task_failures(p, w, &r.h);
        if (!job->ordered)
            deliver_unordered(p, job, &r.h, results);
        job->done += r.h.count;
    }
    retire_oldest(w, r.h.end_ns - r.h.start_ns);
    w->began_ns = now_ns();     /* the next chunk it holds runs from now */
    if (w->task_fd == -1 && w->nheld == 0)
        return bury_worker(p, job, w);  /* its task pipe said it is gone */
    return recycle_if_spent(p, w);
}

/*
 * Send worker w the next `max` chunks of the job, or as many as it has room
 * for (has_room()), as one write of their task records: one system call
 * for many small chunks. An idle worker is sent one chunk alone, which may
 * be big (its pipes are grown first); the write waits for room as it must
 * (see above), and the chunk's clock starts once it is written. A worker
 * gone (EPIPE) while idle is buried: the chunk was its oldest, and fails.
 * One gone while it holds chunks keeps them until its result pipe says it
 * has ended (its last results may still be there); these chunks go back.
 * Returns the chunks sent, or -1 when the pool is broken.
 */
long
send_chunks(struct pool *p, struct job *job, struct worker *w, long max)
{
    union task_block heads[POOL_MAX_DEPTH];
    struct iovec iov[4 * POOL_MAX_DEPTH];
    int behind = w->nheld > 0, m = 0, rc;

    for (; m < max && next_count(p, job) > 0 && (m == 0 || behind) &&
           has_room(p, job, w, next_count(p, job)); m++) {
        struct chunk c;

        take_chunk(p, job, &c);
        c.out_size = job->f->out_size;
        c.pipe_bytes = pipe_bytes(p, job, c.count);
        c.abandoned = 0;
        hold_chunk(w, &c);      /* from now on: a failed write fails it */
        gather_record(job, &c, &heads[m], &iov[4 * m]);
    }
    if (m == 0)
        return 0;
    if (!behind) {
        const struct chunk *c = held(w, 0);

        w->task_pipe = fit_pipe(w->task_fd, w->task_pipe, c->pipe_bytes);
        w->result_pipe = fit_pipe(w->result_fd, w->result_pipe,
                                  sizeof(union result_block) +
                                  (size_t)c->count * c->out_size);
    }
    if ((rc = write_task(w, iov, 4 * m, behind)) == 0) {
        if (!behind)
            w->began_ns = now_ns();     /* it runs from now */
        return m;
    }
    if (rc == -1 && errno != EPIPE) {
        sys_error(&p->error, "write task");
        return break_pool(p);
    }
    if (rc == -1 && !behind)    /* its only chunk: it fails */
        return bury_worker(p, job, w) == -1 ? -1 : 1;
    while (m-- > 0)
        unhold_chunk(p, job, w);
    if (rc == -1) {             /* gone: its result pipe says when */
        close(w->task_fd);
        w->task_fd = -1;
    }
    return 0;
}

/*
 * Wait until the result of at least one busy worker has begun to arrive
 * (or the worker is gone), or the earliest deadline of a running chunk
 * (cfg.timeout_ms) has passed; receive each result that has begun to
 * arrive, then fail the chunks that are late (expire_late()). Returns at
 * once when no worker is busy, and when a signal interrupts the wait (the
 * caller waits again, with a timeout from the time left: a wait restarted
 * whole after each signal might never reach its deadline). Returns 0; 1
 * when cancel_fd became readable (POOL_ECANCELED); -1 when the pool is
 * broken.
 */
int
wait_results(struct pool *p, struct job *job)
{
    nfds_t n;
    int timeout, busy = watch_set(p, &n, &timeout);
    long long waited;

    if (busy == 0 && next_count(p, job) > 0)
        for (long i = 0; i < p->nworkers; i++)
            if (has_room(p, job, &p->workers[i], next_count(p, job)))
                return 0;       /* a send failed: feed the new worker */
    if (busy == 0) {            /* cannot happen: no result can come */
        set_error(&p->error, POOL_ESYS, -1, "lost track of items %ld to %ld",
                  job->done, job->n - 1);
        return break_pool(p);
    }
    waited = p->trace_fd != -1 ? now_ns() : 0;
    if (poll(p->pfds, n, timeout) == -1) {
        if (errno == EINTR)
            return 0;           /* run_job() waits again, for the time left */
        sys_error(&p->error, "poll");
        return break_pool(p);
    }
    if (p->trace_fd != -1)      /* no system call for a trace not asked for */
        trace_line(p, "wait %ld %lld %lld\n", (long)p->owner, waited,
                   now_ns());
    if (n > (nfds_t)p->nworkers && p->pfds[p->nworkers].revents != 0) {
        set_error(&p->error, POOL_ECANCELED, -1, "cancelled: descriptor %d "
                  "became readable", p->cfg.cancel_fd);
        return 1;
    }
    for (long i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];

        if (p->pfds[i].revents == 0 && !has_ahead(w))
            continue;
        do {                    /* every result read ahead, then the next */
            if (w->nheld > 0 && receive(p, job, w) == -1)
                return -1;
        } while (w->nheld > 0 && has_ahead(w));
    }
    return expire_late(p, job);
}

/*
 * Run a job: keep every worker fed with chunks, and receive results as
 * they come, until every item is done (or each asked to stop, or the call
 * was cancelled, or the pool broke). Returns what pool_map() and
 * pool_imap_unordered() return.
 */
int
run_job(struct pool *p, struct job *job)
{
    int waited = 0;

    p->nredo = 0;
    while (job->done < job->n && !job->stopped && waited == 0) {
        if (feed_workers(p, job) == -1)
            waited = -1;        /* the pool is broken */
        else if (job->done < job->n)
            waited = wait_results(p, job);
    }
    abandon_in_flight(p);
    if (waited != 0)
        return -1;              /* cancelled, or the pool broke */
    if (job->stopped)
        return 1;
    return p->error.kind == POOL_OK ? 0 : -1;
}
