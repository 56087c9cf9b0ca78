"""01-fork.py: the Python twin of lessons/01-fork (fork.c).

One child process: it says who it is and leaves with status 3; the parent
waits for it (join) and reports the exit code. The parent registers an
atexit handler, which runs once, in the parent only.

Usage: python3 01-fork.py [STATUS]
"""
import atexit
import multiprocessing as mp
import os
import sys


def child(status):
    print(f"child {os.getpid()}: my parent is {os.getppid()}", flush=True)
    sys.exit(status)


def goodbye():
    print(f"parent {os.getpid()}: atexit handler says goodbye")


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    status = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    mp.set_start_method("fork")  # as C's fork(): the child is a copy
    atexit.register(goodbye)
    print(f"parent {os.getpid()}: about to fork", flush=True)
    p = mp.Process(target=child, args=(status,))
    p.start()
    print(f"parent {os.getpid()}: forked child {p.pid}")
    p.join()
    print(f"parent {os.getpid()}: child {p.pid} exited with status {p.exitcode}")
