"""07-shutdown.py: the Python twin of lessons/07-shutdown (shutdown.c): the
ways a pool ends. It prints sqr(x) for x in range(TASKS) as the results come
in (imap_unordered). Ctrl-C or SIGTERM leaves the `with`, which terminates
the pool; the program reports the tasks done and ends by the same signal
(status 130, 143). A reader that leaves (| head -1) ends it quietly, as
SIGPIPE would (141). -T terminates the pool after RESULTS results.

Usage: python3 07-shutdown.py [-r] [-j WORKERS] [-n TASKS] [-d MS]
                              [-T RESULTS]
Left out, for want of a faithful Python: -C (Python queues every task at
once, so a close() in the middle still runs them all, where shutdown.c stops
at the tasks its workers hold), -g and -S (terminate() sends SIGTERM and
waits, with no SIGKILL after a grace period: a worker that ignores SIGTERM
makes it wait for ever).
"""
import argparse
import functools
import multiprocessing as mp
import os
import signal
import sys
import time


class Stop(Exception):
    """A stop signal came: SIGINT or SIGTERM."""


def on_stop_signal(sig, frame):
    raise Stop(sig)  # in the main thread, wherever it is: out of the with


def worker_setup():
    """The initializer, in each new worker: the parent decides on Ctrl-C,
    and SIGTERM (terminate()) ends the worker. A forked worker would
    otherwise keep the parent's handlers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def slow_sqr(x, ms, read_stdin):
    if read_stdin:
        sys.stdin.read(1)  # multiprocessing opened it on os.devnull: EOF
    time.sleep(ms / 1000)
    return x, x * x


def exit_like_signal(sig):
    """End by sig, as if it had never been caught: the shell sees 128+sig."""
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def main():
    ap = argparse.ArgumentParser(prog="shutdown")  # usage errors: status 2
    ap.add_argument("-r", action="store_true")
    ap.add_argument("-j", type=int, default=4, metavar="WORKERS")
    ap.add_argument("-n", type=int, default=20, metavar="TASKS")
    ap.add_argument("-d", type=int, default=250, metavar="MS")
    ap.add_argument("-T", type=int, default=0, metavar="RESULTS")
    args = ap.parse_args()
    if not 1 <= args.j <= 256 or min(args.n, args.d, args.T) < 0:
        ap.error("-j must be 1 to 256; -n, -d and -T at least 0")
    for sig in signal.SIGINT, signal.SIGTERM:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a background job's
            signal.signal(sig, on_stop_signal)           # stays ignored

    task = functools.partial(slow_sqr, ms=args.d, read_stdin=args.r)
    done, why = 0, None
    try:
        with mp.Pool(args.j, initializer=worker_setup) as p:
            for x, y in p.imap_unordered(task, range(args.n)):
                print(f"sqr({x}) = {y}", flush=True)
                done += 1
                if done == args.T:
                    why = f"-T {args.T}"
                    break  # out of the with: p.terminate()
    except Stop as stop:
        why = signal.Signals(stop.args[0])
    except BrokenPipeError:  # the reader left: nothing to report
        exit_like_signal(signal.SIGPIPE)
    if why is not None:  # Python cannot say which tasks were in flight
        print(f"shutdown: {getattr(why, 'name', why)}: terminated: {done} of"
              f" {args.n} tasks done; {args.j} workers stopped",
              file=sys.stderr)
    if isinstance(why, signal.Signals):
        exit_like_signal(why)


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    main()
