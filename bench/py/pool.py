# The Python peer of bench/pool.c (b): submit N empty jobs to a
# ThreadPoolExecutor of 2 workers, keeping every future, then wait for
# them all (f.result() on each, in order), as the C side does.
# Prints the median ns per job of REPS rounds of N jobs.
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def empty():
    return None


def run(ex, n):
    futures = [ex.submit(empty) for _ in range(n)]
    for f in futures:
        f.result()


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    with ThreadPoolExecutor(max_workers=2) as ex:
        run(ex, max(n // 10, 1))  # warm-up: starts both workers
        times = []
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            run(ex, n)
            times.append((time.perf_counter_ns() - t0) / n)
    print(f"{statistics.median(times):.1f}")


main()
