"""bench.py: the Python side of `make bench`; tools/bench/bench.c is the C side.

Each case prints one line, "CASE SECONDS", for one repetition; the driver
(tools/bench/run) repeats the cases and takes medians. The pool is started
before the clock starts, as the C side's is: the cases time the work, not
the start-up (case `seed` times whole processes instead, from the driver).

Usage: python3 bench.py overhead N | throughput N | loop N | cpu TASKS WORK WORKERS
  overhead N       N trivial tasks, chunksize 1: the cost of one task
  throughput N     N trivial tasks, Python's default chunksize
  loop N           the same N trivial tasks in this process, no pool
  cpu T W J        T tasks of W units of real work on J workers; J = 0
                   runs them in this process, no pool
"""
import multiprocessing as mp
import sys
import time


def trivial(x):
    return x + 1


def work(units):
    # The same arithmetic as bench.c's work(): a linear congruential walk.
    x = 1
    for _ in range(units):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def timed_map(workers, fn, xs, chunksize=None):
    with mp.Pool(workers) as p:
        p.map(trivial, range(workers * 4))    # every worker up and warm
        t0 = time.perf_counter()
        p.map(fn, xs, chunksize)
        return time.perf_counter() - t0


def main(argv):
    case = argv[1]
    if case == "overhead":
        print(case, timed_map(2, trivial, range(int(argv[2])), 1))
    elif case == "throughput":
        print(case, timed_map(2, trivial, range(int(argv[2]))))
    elif case == "loop":
        xs = list(range(int(argv[2])))
        t0 = time.perf_counter()
        ys = [trivial(x) for x in xs]
        print(case, time.perf_counter() - t0)
        del ys
    elif case == "cpu":
        tasks, units, workers = int(argv[2]), int(argv[3]), int(argv[4])
        if workers == 0:
            t0 = time.perf_counter()
            for _ in range(tasks):
                work(units)
            print(case, time.perf_counter() - t0)
        else:
            print(case, timed_map(workers, work, [units] * tasks, 1))
    else:
        sys.exit("bench.py: unknown case " + case)


if __name__ == "__main__":
    mp.set_start_method("fork")
    main(sys.argv)
