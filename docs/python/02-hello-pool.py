"""02-hello-pool.py: the Python twin of lessons/02-hello-pool, the seed's
program: a pool of 10 workers prints "hello for Nth time!" for 0..99.

Usage: python3 02-hello-pool.py [WORKERS [TASKS [START]]]
The seed's first program is: python3 02-hello-pool.py 10 9 1
"""
import multiprocessing as mp
import sys


def fx(x):
    # One line, one write, as the C version does. print(..., flush=True) is
    # not enough: it can hand the text and its newline to the pipe in two
    # writes, and another worker's line can land between them.
    sys.stdout.write("hello for " + str(x) + "th time!\n")
    sys.stdout.flush()


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    numbers = list(range(start, start + tasks))
    with mp.Pool(workers) as p:
        p.map(fx, numbers)
