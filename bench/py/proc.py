# The Python peer of bench/proc.c (c): start and join N processes of
# multiprocessing's fork context, each running an empty function.
# Prints the median ns per process of REPS rounds.
import multiprocessing as mp
import statistics
import sys
import time


def noop():
    pass


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    ctx = mp.get_context("fork")
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            p = ctx.Process(target=noop)
            p.start()
            p.join()
        if r > 0:  # the first round warms up
            times.append((time.perf_counter_ns() - t0) / n)
    print(f"{statistics.median(times):.1f}")


main()
