"""05-with.py: the Python twin of lessons/05-with (with.c): every way out
releases what it holds. It reads one whole number x per line from INPUT,
maps the seed's Instance = Functor(2, 3) over them with a pool, and writes
each Instance(x) to OUTPUT, in input order, through a temporary file that is
renamed to OUTPUT only when complete: a failed run leaves no OUTPUT, and an
OUTPUT that was there before stays as it was.

Each `with` here is one of with.c's cleanup attributes (or a label of its
goto ladder): on any way out, an exception included, the file is closed,
the pool terminated. The temporary file is removed by hand, in an except.

Usage: python3 05-with.py [-j WORKERS] [-d MS] [-W LINES] INPUT OUTPUT
Left out: -F (a worker that leaves in its middle makes Pool.map wait for
ever: see 06-errors.py), -g and -R (Python has one style and no bare fork
inside a with), and FORKLINGS_FD_REPORT.
"""
import argparse
import errno
import multiprocessing as mp
import os
import sys
import tempfile
import time

LIMIT = 1000000  # |x| <= LIMIT, as in with.c


def Multi(x, y, z):
    return z * (x * z + y)


class Functor(object):
    """The seed's functor; ms slows each call down (-d), as real work."""

    def __init__(self, y, z, ms=0):
        self.y, self.z, self.ms = y, z, ms

    def __call__(self, x):
        time.sleep(self.ms / 1000)
        return Multi(x, self.y, self.z)


class Failure(Exception):
    """What went wrong, for one line on stderr; the program exits 1."""


class saying(object):
    """with saying("open x"): an OSError in the body becomes the Failure
    "open x: reason", the line with.c's report() prints. A context manager
    of our own, as the seed's `sample` class: __enter__ and __exit__."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, type, value, traceback):
        if isinstance(value, OSError):
            raise Failure(f"{self.what}: {value.strerror}") from None
        return False  # anything else goes on as it is


def read_numbers(path):
    """with open(path) as f: xs = [int(line) for line in f], checked."""
    xs = []
    with saying(f"open {path}"):
        f = open(path, newline="", errors="surrogateescape")  # bytes as C
    with f, saying(f"read {path}"):  # f is closed on every way out
        for lineno, line in enumerate(f, 1):
            text = line[:-1] if line.endswith("\n") else line
            try:
                x = int(line)  # blanks around it allowed, as in C
            except ValueError:
                x = LIMIT + 1
            if abs(x) > LIMIT:
                raise Failure(f"{path}:{lineno}: not a number from {-LIMIT}"
                              f" to {LIMIT}: '{text}'")
            xs.append(x)
    return xs


def write_output(path, ys, fail_after):
    """Write ys to a temporary file beside path, then os.replace() it to
    path in one step. With fail_after (-W), the disk is "full" after that
    many lines."""
    with saying(f"create {path}"):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".",
                                   prefix=os.path.basename(path) + ".")
    try:
        with saying(f"write {path}"), os.fdopen(fd, "w") as g:
            for i, y in enumerate(ys):
                if i == fail_after:
                    raise Failure(f"write {path}: {os.strerror(errno.ENOSPC)}"
                                  f" (-W {fail_after})")
                g.write(f"{y}\n")
            g.flush()
            os.fsync(g.fileno())
        with saying(f"rename {tmp} to {path}"):
            os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)  # output_discard(): no partial OUTPUT
        raise


def number(lo, hi):
    """An argparse type: a whole number from lo to hi."""
    def parse(s):
        if not lo <= int(s) <= hi:
            raise ValueError(s)
        return int(s)
    parse.__name__ = f"number from {lo} to {hi}"  # argparse's message
    return parse


def main():
    ap = argparse.ArgumentParser(prog="with")  # usage errors: status 2
    ap.add_argument("-j", type=number(1, 256), default=4, metavar="WORKERS")
    ap.add_argument("-d", type=number(0, 10000), default=0, metavar="MS")
    ap.add_argument("-W", type=number(0, 100000000), metavar="LINES")
    ap.add_argument("input", metavar="INPUT")
    ap.add_argument("output", metavar="OUTPUT")
    args = ap.parse_args()

    Instance = Functor(2, 3, args.d)  # pickled into each task, by value
    xs = read_numbers(args.input)
    with mp.Pool(args.j) as p:  # on an exception, __exit__ terminates
        ys = p.map(Instance, xs)
        p.close()  # the normal way out waits, as pool_join()
        p.join()
    write_output(args.output, ys, args.W)


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    try:
        main()
    except Failure as e:
        sys.exit(f"with: {e}")  # the line on stderr, status 1
