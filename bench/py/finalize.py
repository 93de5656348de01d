# The Python peer of bench/obj.c (c): create an object, register one
# weakref.finalize on it, drop it (the finalizer runs at death).
# Prints the median ns per object of REPS rounds of N objects.
import statistics
import sys
import time
import weakref


class Thing:
    __slots__ = ("value", "__weakref__")


def fin(ctx):
    pass


def run(n):
    for _ in range(n):
        o = Thing()
        weakref.finalize(o, fin, None)
        del o


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    run(n // 10)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        run(n)
        times.append((time.perf_counter_ns() - t0) / n)
    print(f"{statistics.median(times):.1f}")


main()
