#!/usr/bin/env bash
# make bench: build every benchmark program of bench/ (listed in
# bench/CMakeLists.txt) with its peers, run them, collect their ROW and
# NOTE lines (format in bench/bench.h), print the table and write
# docs/benchmarks.md and docs/benchmarks.png.
#
# Environment: BENCH_N objects per round (default 1000000), BENCH_REPS
# counted rounds (default 11), BENCH_BUILD build directory (build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_N=${BENCH_N:-1000000}
export BENCH_REPS=${BENCH_REPS:-11}
build=${BENCH_BUILD:-build-bench}
jobs=$(nproc 2>/dev/null || echo 2)
md=docs/benchmarks.md
png=docs/benchmarks.png

# --- what the benchmarks need ----------------------------------------
installed() { # Debian package
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
have_lib() { # pkg-config module, Debian package
	if command -v pkg-config >/dev/null; then
		pkg-config --exists "$1"
	else
		installed "$2"
	fi
}
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v gcc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
have_lib talloc libtalloc-dev || need+=(libtalloc-dev)
have_lib apr-1 libapr1-dev || need+=(libapr1-dev)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v g++ >/dev/null || need+=(g++)
have_lib gobject-2.0 libglib2.0-dev || need+=(libglib2.0-dev)
have_lib libuv libuv1-dev || need+=(libuv1-dev)
[ -x /usr/bin/python3 ] || need+=(python3) # Debian's, for the Python peers
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
. scripts/need.sh
need_install "make bench" ${need[@]+"${need[@]}"}

# --- build --------------------------------------------------------------
# -O2 for reap as for the bench programs: the peers come from Debian,
# built with -O2.
echo "== building in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DREAP_BENCH=ON \
	-DREAP_TESTS=OFF -DREAP_EXAMPLES=OFF -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
	>/dev/null
cmake --build "$build" -j "$jobs" >/dev/null

# --- run ----------------------------------------------------------------
out=$build/bench/out
rm -rf "$out"
mkdir -p "$out"
: >"$out/rows.tsv"
: >"$out/notes.txt"
while IFS= read -r prog; do
	[ -n "$prog" ] || continue
	name=$(basename "$prog")
	echo "== $name (BENCH_N=$BENCH_N BENCH_REPS=$BENCH_REPS)"
	# The defaults of reap (ledger on) are what is measured.
	env -u REAP_DEBUG -u REAP_FAULT_ALLOC "$prog" >"$out/$name.out"
	grep '^ROW	' "$out/$name.out" | cut -f2- >>"$out/rows.tsv" || true
	grep '^NOTE	' "$out/$name.out" | cut -f2- >>"$out/notes.txt" || true
done <"$build/bench/programs.txt"
if [ ! -s "$out/rows.tsv" ]; then
	echo "make bench: no program printed a ROW line" >&2
	exit 1
fi

# --- the table on the terminal -------------------------------------------
echo
awk -F'\t' '
BEGIN { printf "%-4s %10s  %-16s %10s %7s %7s  %s\n", "row", "reap ns", "peer",
	"peer ns", "ratio", "target", "met?" }
{ printf "%-4s %10s  %-16s %10s %7s %7s  %s\n", $1, $3, $4, $5, $6, $7, $8 }
' "$out/rows.tsv"
met=$(awk -F'\t' '$8 == "met"' "$out/rows.tsv" | wc -l)
total=$(wc -l <"$out/rows.tsv")
echo "targets met: $met of $total"

# --- docs/benchmarks.md ---------------------------------------------------
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
ncpu=$(grep -c '^processor' /proc/cpuinfo)
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
mkdir -p docs
{
	cat <<EOF
# Benchmarks

\`make bench\` builds the programs of \`bench/\` and runs them in one go: each
does the same work with reap and with a peer (talloc, APR, GLib, libuv, C++, CPython), and
prints one row per comparison. A row is the median of $BENCH_REPS rounds of
$BENCH_N operations each, after one warm-up round that is not counted; the
contenders take turns inside every round (reap, peer, reap, peer, ...) so
that noise on the machine falls on all of them alike. Times are in
nanoseconds per operation (per object). **ratio = peer / reap**: above 1
means reap is faster. The target is a bound on that ratio.

EOF
	if [ -s "$out/notes.txt" ]; then
		sed 's/^/- /' "$out/notes.txt"
		echo
	fi
	cat <<EOF
To reproduce: \`make bench\` (as root it installs what is missing:
libtalloc-dev, libapr1-dev, libglib2.0-dev, libuv1-dev, g++, python3, gnuplot-nox,
pkg-config). \`BENCH_N\` and
\`BENCH_REPS\` change the size of a round and the number of rounds.

The machines these numbers come from are shared and noisy: quote the
ratios, not the absolute times.

| row | what | reap ns/op | peer | peer ns/op | ratio | target | met? |
|---|---|---:|---|---:|---:|---|---|
EOF
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
		$1, $2, $3, $4, $5, $6, $7, $8 }' "$out/rows.tsv"
	cat <<EOF

Targets met: $met of $total.

![ratio per row](benchmarks.png)

## Machine

- command: \`make bench\` (BENCH_N=$BENCH_N, BENCH_REPS=$BENCH_REPS)
- CPU: $cpu
- cores: $ncpu logical CPUs, $(nproc) available to the run
- kernel: $(uname -srm)
- compiler: $("$cc" --version | head -n 1 | sed 's/^cc /gcc /') ($cc), reap and the benchmarks at -O2
- peers: talloc $(pkg-config --modversion talloc), APR $(pkg-config --modversion apr-1), libuv $(pkg-config --modversion libuv) (Debian packages)
- reap: $commit
- date: $(date -u '+%Y-%m-%d %H:%M UTC')
EOF
	if [ -f bench/notes.md ]; then
		echo
		cat bench/notes.md
	fi
} >"$md"

# --- docs/benchmarks.png ---------------------------------------------------
awk -F'\t' '{ printf "%d\t%s %s (%s)\t%s\t%s\t%d\n", NR - 1, $1, $4, $7,
	$6, substr($7, 3), $8 == "met" }' "$out/rows.tsv" >"$out/chart.tsv"
ymax=$(awk -F'\t' '{ m = $3 > m ? $3 : m; m = $4 > m ? $4 : m }
	END { printf "%.2f", m * 1.2 }' "$out/chart.tsv")
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
	term='pngcairo size 1100,560 font "sans,11"'
else
	term='png size 1100,560'
fi
gnuplot <<EOF
set terminal $term
set output '$png'
set datafile separator "\t"
set title "reap against its peers: ratio per row (peer / reap; row c: ledger on / off)"
set ylabel "ratio (above 1: reap faster)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set xrange [-0.6:$total - 0.4]
set yrange [0:$ymax]
set grid ytics
set key outside right top vertical samplen 2
plot '$out/chart.tsv' using 1:3:(\$5 > 0 ? 0x2ca02c : 0xd62728):xtic(2) \
	with boxes lc rgb variable notitle, \
     NaN with boxes lc rgb '#2ca02c' title 'met', \
     NaN with boxes lc rgb '#d62728' title 'missed', \
     '' using 1:4:(0.38) with xerrorbars pt 0 lw 3 lc rgb 'black' title 'target', \
     '' using 1:3:(sprintf("%.2f", \$3)) with labels offset 0,0.8 notitle, \
     1 with lines dt 2 lc rgb 'gray40' title 'parity'
EOF
echo "wrote $md and $png"
