"""CPython's side of bench/gc.c, row 3d: gc.collect() over the same shapes.

    python3 bench/py/gc.py N REPS

Prints, for each shape, one line "<id> <median ns per object>" on stdout
(3d1: N objects in 2-object garbage cycles; 3d2: N live objects in
2-object cycles, one of each pair held from a list). Only the
gc.collect() call is timed. Objects made before the benchmark are frozen
(gc.freeze), so a collection examines the benchmark's objects only, as
reap_gc_collect() does.
"""
import gc
import statistics
import sys
import time


class Node:
    __slots__ = ("other",)


def garbage(n):
    gc.collect()  # whatever earlier rounds left, untimed
    for _ in range(n // 2):
        a = Node()
        b = Node()
        a.other = b
        b.other = a
    del a, b
    t0 = time.perf_counter_ns()
    found = gc.collect()
    t = time.perf_counter_ns() - t0
    if found < n:
        sys.exit("gc.py: collected %d of %d" % (found, n))
    return t / n


def live(n):
    gc.collect()
    keep = []
    for _ in range(n // 2):
        a = Node()
        b = Node()
        a.other = b
        b.other = a
        keep.append(a)
    t0 = time.perf_counter_ns()
    found = gc.collect()
    t = time.perf_counter_ns() - t0
    if found != 0:
        sys.exit("gc.py: collected %d live objects" % found)
    del keep
    gc.collect()
    return t / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    gc.collect()
    gc.freeze()
    gc.disable()  # only the explicit collections run
    for ident, fn in (("3d1", garbage), ("3d2", live)):
        fn(n)  # warm-up
        times = [fn(n) for _ in range(reps)]
        print("%s %.2f %.2f %.2f" % (ident, statistics.median(times),
                                     min(times), max(times)), flush=True)


main()
