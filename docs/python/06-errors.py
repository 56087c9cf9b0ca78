"""06-errors.py: the Python twin of lessons/06-errors (errors.c): a failed
task reaches the caller. It maps Instance = Functor(2, 3) over range(N) and
prints the list; when a task raises (-f), map re-raises the exception in
the parent, which prints it on one line, prints no list and exits 1.
Python's exception does not say which task raised it: errors.c's does.

The lesson's other half has no Python twin. A worker that dies in the
middle of a task, by a signal or sys.exit(), takes the task with it; the
pool starts a new worker, and Pool.map waits for the lost result for ever
(CPython issue gh-66587):

    def Multi(x, y, z):
        if x == 8:
            os.kill(os.getpid(), signal.SIGKILL)
        return z * (x * z + y)
    with mp.Pool(4) as p:
        p.map(Functor(2, 3), range(10))     # never returns

-s, -k and -x show it, and only with -w SECONDS: map_async().get(SECONDS),
the one deadline Python's pool offers, for the whole map.

Usage: python3 06-errors.py [-j WORKERS] [-d MS] [-f TASKS] N
       python3 06-errors.py -w SECONDS [-s TASKS] [-k TASKS] [-x TASKS] N
TASKS: task numbers and ranges, separated by commas, as 3,7 or 0-9.
Left out: -t and -H (no deadline per task in Python's pool), -v.
"""
import argparse
import multiprocessing as mp
import os
import resource
import signal
import sys
import time


def Multi(x, y, z):
    return z * (x * z + y)


class TaskFailed(Exception):
    """What a task raises on purpose (-f)."""


class Functor(object):
    """The seed's Instance = Functor(2, 3), made to go wrong: plan maps a
    task to its option letter (x is the task's number: a map over
    range(N)); ms slows each call down (-d), as real work."""

    def __init__(self, y, z, ms, plan):
        self.y, self.z, self.ms, self.plan = y, z, ms, plan

    def __call__(self, x):
        time.sleep(self.ms / 1000)
        how = self.plan.get(x)
        if how == "f":
            raise TaskFailed(f"the function failed on x = {x} (-f)")
        if how == "s":
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "k":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "x":
            sys.exit(3)  # SystemExit is no Exception: the worker leaves
        return Multi(x, self.y, self.z)


def task_list(s):
    """TASKS, as 3,7 or 0-9: the list of task numbers."""
    tasks = []
    for item in s.split(","):
        first, _, last = item.partition("-")
        tasks += range(int(first), int(last or first) + 1)
    return tasks


def make_plan(ap, args):
    """{task: letter} from -f, -s, -k, -x; a usage error on a bad list."""
    plan = {}
    for how in "fskx":
        for x in getattr(args, how) or []:
            if not 0 <= x < args.n or plan.get(x, how) != how:
                ap.error(f"-{how}: task {x} is out of range or in two lists")
            plan[x] = how
    if args.w is None and set(plan.values()) - {"f"}:
        ap.error("-s, -k and -x make Pool.map wait for ever: add -w SECONDS")
    return plan


def main():
    ap = argparse.ArgumentParser(prog="errors")  # usage errors: status 2
    ap.add_argument("-j", type=int, default=4, metavar="WORKERS")
    ap.add_argument("-d", type=int, default=0, metavar="MS")
    for how in "fskx":
        ap.add_argument("-" + how, type=task_list, metavar="TASKS")
    ap.add_argument("-w", type=float, metavar="SECONDS")
    ap.add_argument("n", type=int, metavar="N")
    args = ap.parse_args()
    if not 1 <= args.j <= 256 or args.d < 0 or args.n < 0:
        ap.error("-j must be 1 to 256; -d and N at least 0")
    Instance = Functor(2, 3, args.d, make_plan(ap, args))

    with mp.Pool(args.j) as p:  # a way out by exception: terminate()
        try:
            if args.w is None:
                print(p.map(Instance, range(args.n)))
            else:
                print(p.map_async(Instance, range(args.n)).get(args.w))
        except TaskFailed as e:  # re-raised here, from the worker
            sys.exit(f"errors: {e}")  # uncaught: a traceback, status 1 too
        except mp.TimeoutError:
            sys.exit(f"errors: no list after {args.w:g} s (-w): a task is"
                     " late, or lost with a dead worker")


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    main()
