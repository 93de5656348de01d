# The Python peer of bench/mgr_client.c: multiprocessing.Manager (the
# default context, fork on Linux) in the same roles as reap's manager.
#
# It does rounds on request, so that its rounds take turns with reap's:
# each line "MODE N" on stdin runs one round and answers "ok" on stdout
# once it is done; end of input ends it. The modes:
#
#   start   Manager() start + shutdown(), N times
#   dict    a dict proxy, one operation per round trip: N/2 sets
#           d[k] = i, then N/2 gets d[k]
#   batch   the same N operations with the sets 16 to a round trip,
#           d.update() of 16 items; a dict proxy has no call that gets
#           several named keys, so the gets stay d[k], one round trip
#           each (N a multiple of 32)
#   copy    as batch, but each 16 gets are one d.copy(): one round trip
#           that returns the whole dict, which here holds exactly the 16
#           keys (the most Python can do, and only for a dict this small)
#
# The keys are k0..k15, as on the C side. By hand:
#   echo "dict 10000" | python3 bench/py/mgr.py
import multiprocessing as mp
import sys

BATCH = 16
KEYS = [f"k{i}" for i in range(BATCH)]


def start(d, n):
    for _ in range(n):
        m = mp.Manager()
        m.shutdown()


def unbatched(d, n):
    sets = n // 2
    for i in range(sets):
        d[KEYS[i % BATCH]] = i
    for i in range(n - sets):
        if d[KEYS[i % BATCH]] is None:
            raise SystemExit("mgr.py: lost a value")


def batched(d, n, copy=False):
    sets = n // 2
    for i in range(0, sets, BATCH):
        d.update({KEYS[j]: i + j for j in range(BATCH)})
    for i in range(0, n - sets, BATCH):
        if copy:
            if len(d.copy()) != BATCH:
                raise SystemExit("mgr.py: lost a value")
        else:
            for k in KEYS:
                if d[k] is None:
                    raise SystemExit("mgr.py: lost a value")


MODES = {
    "start": start,
    "dict": unbatched,
    "batch": batched,
    "copy": lambda d, n: batched(d, n, copy=True),
}


def main():
    m = mp.Manager()
    d = m.dict({k: 0 for k in KEYS})
    for line in sys.stdin:
        mode, n = line.split()
        MODES[mode](d, int(n))
        print("ok", flush=True)
    m.shutdown()


main()
