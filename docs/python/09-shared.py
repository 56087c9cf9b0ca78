"""09-shared.py: the Python twin of lessons/09-shared: a map whose input
and output live in shared memory (multiprocessing.shared_memory), the
workers claiming chunks from a shared counter, the results written in
place. Prints the list as lesson 03 did: [0, 1, 4, 9].

Python has no atomic fetch-and-add: the counter is a Value, and each claim
holds its lock. A worker killed while it holds that lock would leave it
locked for ever (the C program has no lock to lose).

Usage: python3 09-shared.py [-j WORKERS] [-c CHUNKSIZE] N
"""
import argparse
import multiprocessing as mp
import os
import sys
from multiprocessing import shared_memory


def sqr(x):
    return x * x


def worker(in_name, out_name, counter, n, chunksize):
    """Claim chunks until none is left; write each result in place."""
    ins = shared_memory.SharedMemory(name=in_name)      # by name, as any
    outs = shared_memory.SharedMemory(name=out_name)    # process could
    xs, out = ins.buf.cast("q"), outs.buf.cast("q")
    nchunks = (n + chunksize - 1) // chunksize
    while True:
        with counter.get_lock():
            c = counter.value
            counter.value += 1
        if c >= nchunks:
            break
        for i in range(c * chunksize, min((c + 1) * chunksize, n)):
            out[i] = sqr(xs[i])
    xs.release()
    out.release()
    ins.close()
    outs.close()


def shared_map(n, workers, chunksize):
    """[sqr(x) for x in range(n)], computed by `workers` processes."""
    size = max(n, 1) * 8            # SharedMemory refuses a size of 0
    ins = shared_memory.SharedMemory(create=True, size=size)
    outs = shared_memory.SharedMemory(create=True, size=size)
    try:
        xs = ins.buf.cast("q")
        for i in range(n):
            xs[i] = i               # range(n), written before the workers start
        xs.release()
        counter = mp.Value("l", 0)
        ps = [mp.Process(target=worker,
                         args=(ins.name, outs.name, counter, n, chunksize))
              for _ in range(workers)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        if any(p.exitcode != 0 for p in ps):
            sys.exit("09-shared.py: a worker failed")
        out = outs.buf.cast("q")
        result = out[:n].tolist()
        out.release()
        return result
    finally:
        ins.close()
        outs.close()
        ins.unlink()
        outs.unlink()


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
