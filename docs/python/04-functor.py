"""04-functor.py: the Python twin of lessons/04-functor, the seed's second
half: Multi(x, y, z) = z * (x * z + y) mapped through a functor.

Usage: python3 04-functor.py               the seed's example
       python3 04-functor.py Y Z X...      map Functor(Y, Z) over the Xs
       python3 04-functor.py -t Y Z X...   starmap Multi over (X, Y, Z)
"""
import multiprocessing as mp
import sys


def Multi(x, y, z):
    return z * (x * z + y)


class Functor(object):
    def __init__(self, y, z):
        self.y = y
        self.z = z

    def __call__(self, x):
        return Multi(x, self.y, self.z)


if __name__ == "__main__":
    # One write() a line, as the C programs do, even under python3 -u or
    # PYTHONUNBUFFERED=1, which would write a line's text and its newline
    # apart, so that the lines of two processes could tear each other.
    sys.stdout.reconfigure(write_through=False)
    sys.stderr.reconfigure(write_through=False, line_buffering=True)
    args = sys.argv[1:]
    star = args[:1] == ["-t"]
    if star:
        args = args[1:]
    if not args:
        Instance = Functor(2, 3)  # instance of the functor
        print("Instance(0) =", Instance(0))
        print("Instance(1) =", Instance(1))
        with mp.Pool() as p:
            print(p.map(Instance, [1, 2, 3, 4, 5]))
    else:
        try:
            if len(args) < 2:
                raise ValueError
            y, z, xs = int(args[0]), int(args[1]), [int(a) for a in args[2:]]
        except ValueError:
            # As the C program: one line, status 2. (Its -b, a pointer sent
            # through the pipe, has no twin: pickling sends the value.)
            sys.stderr.write("04-functor.py: needs Y and Z, then the X values, "
                             "as in '04-functor.py 2 3 1 2'; -t is the only option\n")
            sys.exit(2)
        with mp.Pool() as p:
            if star:
                print(p.starmap(Multi, [(x, y, z) for x in xs]))
            else:
                print(p.map(Functor(y, z), xs))
