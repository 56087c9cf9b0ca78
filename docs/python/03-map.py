"""03-map.py: the Python twin of lessons/03-map: p.map(sqr, range(N)) with a
pool, printed as Python prints a list. The results come back in input order
though the workers finish in any order.

Usage: python3 03-map.py [WORKERS [CHUNKSIZE]] N
"""
import multiprocessing as mp
import sys


def sqr(x):
    return x * x


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    args = [int(a) for a in sys.argv[1:]]
    n = args[-1] if args else 10
    workers = args[0] if len(args) > 1 else None   # None: one per CPU
    chunksize = args[1] if len(args) > 2 else None  # None: Python's default
    with mp.Pool(workers) as p:
        print(p.map(sqr, range(n), chunksize))
