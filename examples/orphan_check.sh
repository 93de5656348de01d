#!/bin/sh
# The orphan guarantee: a reap child dies with its parent, even when the
# parent is killed with SIGKILL and runs no cleanup at all.
#
# Python's multiprocessing cannot promise this: a daemon Process is
# terminated by the parent's atexit handler, which SIGKILL never runs, so
# its children live on as orphans.
#
#     orphan_check.sh path/to/example-supervisor
#     orphan_check.sh path/to/example-mgr_job
#
# Starts `PROGRAM --hold` (idle workers, their pids printed as "worker
# PID", directories they must remove as "dir PATH", then "ready"),
# SIGKILLs it, and checks that every worker is gone (no /proc/<pid>, or a
# zombie / dead entry waiting for init) and every directory removed
# within 1 s. Exits 0 on success; 1 with a message otherwise, after
# killing any survivor.
set -u

sup=${1:?usage: orphan_check.sh path/to/example-supervisor}
tmp=$(mktemp -d) || exit 1
pids=""
spid=""

fail() {
	echo "orphan_check: FAIL: $*" >&2
	for p in $pids $spid; do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$tmp"
	exit 1
}

# Alive: /proc/<pid> exists and its state is neither Z (zombie) nor X.
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	# The state is the field after the command name, which is in ( ).
	state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

"$sup" --hold >"$tmp/out" 2>"$tmp/err" &
spid=$!

# Wait (at most 10 s) for "ready".
i=0
until grep -q '^ready$' "$tmp/out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -le 1000 ] || fail "no 'ready' from $sup --hold in 10 s: $(cat "$tmp/err")"
	kill -0 "$spid" 2>/dev/null ||
		fail "$sup --hold exited early: $(cat "$tmp/err")"
	sleep 0.01
done
pids=$(sed -n 's/^worker \([0-9][0-9]*\)$/\1/p' "$tmp/out")
n=$(echo "$pids" | wc -w)
[ "$n" -ge 1 ] || fail "no worker pids: $(cat "$tmp/out")"
dirs=$(sed -n 's/^dir \(.*\)$/\1/p' "$tmp/out")
for p in $pids; do
	alive "$p" || fail "worker $p is not running before the kill"
done
echo "parent $spid, workers: $(echo "$pids" | tr '\n' ' ')"

kill -9 "$spid"
wait "$spid" 2>/dev/null
t0=$(now_ms)
echo "parent killed with SIGKILL; its workers must follow within 1 s"

for p in $pids; do
	while alive "$p"; do
		[ $(($(now_ms) - t0)) -lt 1000 ] ||
			fail "worker $p outlived its supervisor by 1 s (an orphan)"
		sleep 0.005
	done
done
for d in $dirs; do
	while [ -e "$d" ]; do
		[ $(($(now_ms) - t0)) -lt 1000 ] ||
			fail "$d still exists 1 s after the kill"
		sleep 0.005
	done
done
echo "all $n workers gone after $(($(now_ms) - t0)) ms: no orphan${dirs:+, and $dirs removed}"
rm -rf "$tmp"
exit 0
