"""09-shared.py: the Python twin of lessons/09-shared: a map whose input
and output live in shared memory, the workers claiming chunks from a shared
counter, the results written in place. Prints the list as lesson 03 did:
[0, 1, 4, 9].

The arrays are multiprocessing.Array(..., lock=False): shared memory that
the forked workers inherit, as the C program's mapping. SharedMemory(
create=True) would do as well, with a name other processes could open
(tools/bench/shared.py uses it), but it starts Python's resource tracker, a
process that outlives the program for a moment. Python has no atomic
fetch-and-add: the counter is a Value, and each claim holds its lock; a
worker killed while it holds it would leave it locked for ever (gh-96062
is that bug in Pool's own queue).

Usage: python3 09-shared.py [-j WORKERS] [-c CHUNKSIZE] N
"""
import argparse
import multiprocessing as mp
import os
import sys


def sqr(x):
    return x * x


def worker(xs, out, counter, n, chunksize):
    """Claim chunks until none is left; write each result in place."""
    nchunks = (n + chunksize - 1) // chunksize
    while True:
        with counter.get_lock():
            c = counter.value
            counter.value += 1
        if c >= nchunks:
            break
        for i in range(c * chunksize, min((c + 1) * chunksize, n)):
            out[i] = sqr(xs[i])


def shared_map(n, workers, chunksize):
    """[sqr(x) for x in range(n)], computed by `workers` processes."""
    xs = mp.Array("q", range(n), lock=False)   # written before the forks
    out = mp.Array("q", n, lock=False)
    counter = mp.Value("l", 0)
    ps = [mp.Process(target=worker, args=(xs, out, counter, n, chunksize))
          for _ in range(workers)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    if any(p.exitcode != 0 for p in ps):
        sys.exit("09-shared.py: a worker failed")
    return out[:]


def main():
    ap = argparse.ArgumentParser(prog="shared")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-c", type=int, default=0)
    ap.add_argument("n", type=int)
    a = ap.parse_args()
    if not 1 <= a.j <= 256 or a.c < 0 or not 0 <= a.n <= 10000000:
        ap.error("bad -j, -c or N")
    chunksize = a.c or (a.n + 4 * a.j - 1) // (4 * a.j) or 1
    print(shared_map(a.n, a.j, chunksize))


if __name__ == "__main__":
    # One write() a line, as the C programs do (see 03-map.py).
    sys.stdout.reconfigure(write_through=False)
    mp.set_start_method("fork")
    main()
