# The Python peer of bench/shm.c: increments of a shared 64-bit value.
#   locked:  Value('q', lock=True), `with v.get_lock(): v.value += 1`
#   unlocked: Value('q', lock=False) guarded by its own multiprocessing.Lock
# from 1 process (this one) and from 2 processes (fork context) sharing
# N increments. Prints four medians in ns per increment, of REPS rounds:
# locked-1 locked-2 own-lock-1 own-lock-2.
import multiprocessing as mp
import statistics
import sys
import time

ctx = mp.get_context("fork")


def locked(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def own_lock(v, lock, n):
    for _ in range(n):
        with lock:
            v.value += 1


def round_of(procs, n, make):
    v, args = make()
    t0 = time.perf_counter_ns()
    if procs == 1:
        args[0](*args[1:], n)
    else:
        ps = [ctx.Process(target=args[0], args=(*args[1:], n // procs))
              for _ in range(procs)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
    dt = time.perf_counter_ns() - t0
    if v.value != n // procs * procs:
        sys.exit(f"lost increments: {v.value} of {n}")
    return dt / n


def make_locked():
    v = ctx.Value("q", 0, lock=True)
    return v, (locked, v)


def make_own():
    v = ctx.Value("q", 0, lock=False)
    return v, (own_lock, v, ctx.Lock())


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    out = []
    for make in (make_locked, make_own):
        for procs in (1, 2):
            round_of(procs, max(n // 10, 2), make)  # warm-up
            out.append(statistics.median(round_of(procs, n, make)
                                         for _ in range(reps)))
    print(" ".join(f"{x:.1f}" for x in out))


main()
