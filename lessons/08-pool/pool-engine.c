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
    /* TODO(08): a worker that has done cfg.maxtasks tasks (0: no limit)
     * leaves, and a fresh worker takes its slot. It must be reaped before
     * the slot is filled (closing its pipes is the whole goodbye: it reads
     * end-of-file and exits), and a reap or a start that fails leaves the
     * pool broken. */
    (void)p;                    /* delete these lines when done */
    (void)w;
    return 0;
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
    /* TODO(08): hand each item that did not fail to the caller, with its
     * index in the whole input and its own result bytes. An item's code
     * may be read only when the header says some failed (before the first
     * failure there are no codes at all). Once the callback asks to stop,
     * hand over nothing more, not even the rest of this chunk. */
    (void)p;                    /* delete these lines when done */
    (void)job;
    (void)h;
    (void)results;
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
    /* TODO(08): the worker is gone or going: make sure it is dead and
     * reaped before anything else (never wait for a process that may not
     * end), fail exactly the items of the chunk it was running (those
     * queued behind it go again), and keep the pool at full strength while
     * it is running. The pid must be kept: reaping forgets it. */
    (void)job;                  /* delete these lines when done */
    set_error(&p->error, POOL_EWORKER, -1, "worker %ld has died, and "
              "bury_worker() is a stub: the pool gives up", (long)w->pid);
    return break_pool(p);
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
    /* TODO(08): with cfg.timeout_ms (0: none), each worker whose running
     * chunk has run that long since w->began_ns is late: stop it for certain
     * (it may be stuck anywhere) and reap it, fail that chunk as a timeout
     * while its queued chunks go again, and fill its slot while the pool
     * runs. A chunk whose result has arrived is never late: the results
     * are received before this is called. */
    (void)job;                  /* delete these lines when done */
    if (p->cfg.timeout_ms == 0)
        return 0;
    set_error(&p->error, POOL_ESYS, -1, "expire_late() is a stub: "
              "timeout_ms is not supported yet");
    return break_pool(p);
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
    /* TODO(08): take the header, then the results into their place; a
     * failed read breaks the pool. A record cut short or not this chunk's
     * (or claiming more failures than items) buries the worker, and so does
     * a cut in the item codes that follow when some failed. Unless the
     * chunk is abandoned: its failures noted, its items handed over (for
     * imap_unordered) and counted done. Each chunk received is a task
     * line of the trace (pool.h's POOL_TRACE: its first item, count, the
     * worker's pid, its start and end). Then retire it, start the clock of
     * the worker's next chunk, and bury the worker if its task pipe is
     * gone and it holds nothing more, else recycle it if spent. The
     * read-ahead buffer w->ahead is made here on first use (none: read on
     * without). */
    (void)job;                  /* delete these lines when done */
    (void)w;
    set_error(&p->error, POOL_ESYS, -1, "receive() is a stub: a result "
              "came and was not read");
    return break_pool(p);
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
    /* TODO(08): take up to max chunks while the worker has room for the
     * next, holding each before it is written (a failed write must fail
     * or return it, never lose it), and write all their records at once.
     * An idle worker gets one chunk alone, its pipes fitted to it, and the
     * chunk's clock starts once written (its task pipe fitted to the
     * chunk, its result pipe to the header and results). EPIPE: an idle worker is
     * buried and that counts as 1 sent, so the caller feeds its successor;
     * a busy one gives back what was not sent and loses its task pipe. */
    (void)job;                  /* delete these lines when done */
    (void)w;
    (void)max;
    set_error(&p->error, POOL_ESYS, -1, "send_chunks() is a stub: no "
              "chunk was sent");
    return break_pool(p);
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
    /* TODO(08): one wait for every busy worker and cancel_fd, that ends
     * by the earliest deadline; a signal returns 0, to wait again. With no
     * worker busy, never wait: return to feed a worker with room, or break
     * the pool (items lost track of). A readable cancel_fd is
     * POOL_ECANCELED. Then receive every result that has begun to arrive,
     * those read ahead too, and only after that fail the late chunks. With
     * a trace, each wait is a wait line (the parent's pid, start, end). */
    (void)job;                  /* delete these lines when done */
    set_error(&p->error, POOL_ESYS, -1, "wait_results() is a stub: no "
              "result was awaited");
    return break_pool(p);
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
    /* TODO(08): until every item is done, the callback asked to stop, or a
     * step failed: feed the workers, then wait for results while items are
     * outstanding (empty the redo list first: a job starts with none).
     * However the loop ends, no chunk the workers hold may reach a later
     * call. Return -1 for a cancel or a broken pool, 1 for a stop, and
     * otherwise 0 only when no item failed. */
    (void)job;                  /* delete these lines when done */
    set_error(&p->error, POOL_ESYS, -1, "run_job() is a stub: the map "
              "engine is yours to write (pool-engine.c)");
    return -1;
}
