"""08-pool.py: the Python twin of lessons/08-pool's demo (main.c), the
capstone library at work: a pool's map or imap_unordered of sqr, or of the
seed's Functor(Y, Z), over range(N) or the numbers given.

    python3 08-pool.py -F 2,3 1 2 3 4 5     prints [15, 24, 33, 42, 51]

Usage: python3 08-pool.py [-u] [-j WORKERS] [-c CHUNKSIZE] [-m MAXTASKS]
                          [-F Y,Z] [-d MS] [-e X] (-n N | [--] X...)
Exit status: 0; 1 when a task failed; 2 for bad usage; 130 after Ctrl-C.
When the task for X fails (-e), map waits for every other task, then raises
the exception in the parent, as pool_map() reports the failure after the
other items; with -u, the loop over imap_unordered ends at the failure,
where pool_imap_unordered() hands over every other result first.
Left out: -k (a killed worker makes Pool.map wait for ever, where the
library fails the items it held and goes on: see 06-errors.py), -v.
"""
import argparse
import multiprocessing as mp
import signal
import sys
import time


def Multi(x, y, z):
    return z * (x * z + y)


class TaskFailed(Exception):
    """What the task for -e's X raises."""


class Task(object):
    """What each task does before its function: the delay of -d, the
    failure of -e. Sent by value with each chunk, as a functor's fields."""

    def __init__(self, ms, fail_x):
        self.ms, self.fail_x = ms, fail_x

    def prelude(self, x):
        time.sleep(self.ms / 1000)
        if x == self.fail_x:
            raise TaskFailed(f"the task for {x} failed (-e)")


class Sqr(Task):
    def __call__(self, x):
        self.prelude(x)
        return x * x


class Functor(Task):
    """The seed's Functor(y, z): calling it is Multi(x, y, z)."""

    def __init__(self, y, z, ms, fail_x):
        super().__init__(ms, fail_x)
        self.y, self.z = y, z

    def __call__(self, x):
        self.prelude(x)
        return Multi(x, self.y, self.z)


def main():
    ap = argparse.ArgumentParser(prog="pool")  # usage errors: status 2
    ap.add_argument("-u", action="store_true")
    ap.add_argument("-j", type=int, metavar="WORKERS")  # None: CPUs
    ap.add_argument("-c", type=int, metavar="CHUNKSIZE")
    ap.add_argument("-m", type=int, metavar="MAXTASKS")
    ap.add_argument("-F", type=lambda s: [int(v) for v in s.split(",")],
                    metavar="Y,Z")
    ap.add_argument("-d", type=int, default=0, metavar="MS")
    ap.add_argument("-e", type=int, metavar="X")
    ap.add_argument("-n", type=int, metavar="N")
    ap.add_argument("xs", type=int, nargs="*", metavar="X")
    args = ap.parse_args()
    if (args.n is None) == (not args.xs):
        ap.error("give -n N or numbers X, not both")
    if args.F and len(args.F) != 2 or min(args.d, args.n or 0) < 0 or any(
            v is not None and v < 1 for v in (args.j, args.c, args.m)):
        ap.error("-F needs Y,Z; -j, -c, -m at least 1; -d, -n at least 0")
    xs = range(args.n) if args.n is not None else args.xs
    f = Functor(*args.F, args.d, args.e) if args.F else Sqr(args.d, args.e)

    try:  # the workers ignore SIGINT: Ctrl-C is the parent's to handle
        with mp.Pool(args.j, maxtasksperchild=args.m,
                     initializer=signal.signal,
                     initargs=(signal.SIGINT, signal.SIG_IGN)) as p:
            if args.u:
                for y in p.imap_unordered(f, xs, args.c or 1):
                    print(y, flush=True)
            else:
                print(p.map(f, xs, args.c))
    except TaskFailed as e:
        sys.exit(f"pool: {e}")
    except KeyboardInterrupt:  # leaving the with terminated the workers
        print("pool: interrupted: stopping the workers", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, as main.c returns it


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    main()
