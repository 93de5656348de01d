# The Python peer of bench/loop.c, rows 5a and 5b, with asyncio.
#   spawn N REPS: create_task of a trivial coroutine, then await it, N
#                 times in a row inside one event loop (row 5a).
#   yield N REPS: two coroutines awaiting asyncio.sleep(0), N times in
#                 all (N / 2 each), run together (row 5b): per switch.
# Prints the median ns per operation of REPS rounds (after one warm-up
# round), each round run by run_until_complete on the same loop.
import asyncio
import statistics
import sys
import time

count = 0


async def trivial():
    global count
    count += 1


async def spawn(n):
    for _ in range(n):
        t = asyncio.create_task(trivial())
        await t


async def yielder(k):
    global count
    for _ in range(k):
        await asyncio.sleep(0)
        count += 1


async def pingpong(n):
    await asyncio.gather(yielder(n // 2), yielder(n - n // 2))


def main():
    what, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    job = {"spawn": spawn, "yield": pingpong}[what]
    global count
    loop = asyncio.new_event_loop()
    try:
        times = []
        for r in range(-1, reps):
            count = 0
            t0 = time.perf_counter_ns()
            loop.run_until_complete(job(n))
            t = time.perf_counter_ns() - t0
            if count != n:
                sys.exit(f"loop.py: {what} did {count} of {n}")
            if r >= 0:
                times.append(t / n)
    finally:
        loop.close()
    print(f"{statistics.median(times):.1f}")


main()
