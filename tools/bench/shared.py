"""shared.py: the Python side of lesson 09's rows in `make bench`;
tools/bench/shared.c is the C side.

Prints one line, "CASE SECONDS", for one repetition, as bench.py does.

Usage: python3 shared.py map N WORKERS | loop N
  map N WORKERS   x + 1 over N items, input and output in
                  multiprocessing.shared_memory.SharedMemory, chunks
                  (Python's default size) claimed under a shared counter's
                  lock (Python has no atomic fetch-and-add); timed from the
                  first worker started to the last one joined, as the C side
  loop N          the same items in one process, a plain loop
"""
import multiprocessing as mp
import sys
import time
from multiprocessing import resource_tracker, shared_memory


def worker(in_name, out_name, counter, n, chunksize):
    ins = shared_memory.SharedMemory(name=in_name)
    outs = shared_memory.SharedMemory(name=out_name)
    xs, out = ins.buf.cast("q"), outs.buf.cast("q")
    nchunks = (n + chunksize - 1) // chunksize
    while True:
        with counter.get_lock():
            c = counter.value
            counter.value += 1
        if c >= nchunks:
            break
        for i in range(c * chunksize, min((c + 1) * chunksize, n)):
            out[i] = xs[i] + 1
    xs.release()
    out.release()
    ins.close()
    outs.close()


def case_map(n, workers):
    size = max(n, 1) * 8
    ins = shared_memory.SharedMemory(create=True, size=size)
    outs = shared_memory.SharedMemory(create=True, size=size)
    try:
        xs, out = ins.buf.cast("q"), outs.buf.cast("q")
        for i in range(n):
            xs[i] = i
            out[i] = 0
        counter = mp.Value("l", 0)
        chunksize = (n + 4 * workers - 1) // (4 * workers)
        t0 = time.perf_counter()
        ps = [mp.Process(target=worker, args=(ins.name, outs.name, counter, n, chunksize))
              for _ in range(workers)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        t = time.perf_counter() - t0
        if n > 0 and out[n - 1] != n:
            sys.exit("shared.py: map: wrong result")
        xs.release()
        out.release()
        return t
    finally:
        ins.close()
        outs.close()
        ins.unlink()
        outs.unlink()


def stop_resource_tracker():
    """End and reap the resource tracker that SharedMemory(create=True)
    started: left alone, it outlives this process for a moment (end-of-file
    on its pipe is its cue to go), and nobody reaps it. _stop() is what
    Python's own tests call; an interpreter without it leaves the tracker
    as before."""
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()


def case_loop(n):
    xs = list(range(n))
    out = [0] * n
    t0 = time.perf_counter()
    for i in range(n):
        out[i] = xs[i] + 1
    return time.perf_counter() - t0


def main(argv):
    case = argv[1] if len(argv) > 1 else ""
    if case == "map" and len(argv) == 4:
        print(case, case_map(int(argv[2]), int(argv[3])))
        stop_resource_tracker()
    elif case == "loop" and len(argv) == 3:
        print(case, case_loop(int(argv[2])))
    else:
        sys.exit("shared.py: usage: shared.py map N WORKERS | loop N")


if __name__ == "__main__":
    mp.set_start_method("fork")
    main(sys.argv)
