#!/usr/bin/env bash
# The test suite: ASan+UBSan with -Werror under gcc and clang (clang's
# also fuzzes the RESP decoders and the client's value decoder for 30 s
# each), every
# test again under TSan (the stress tests are labelled "concurrent"), a
# build with the ledger compiled out, the coroutine and loop tests built
# for AArch64 and run under qemu (the other context switch in assembly),
# and an install consumed through find_package and pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v gcc >/dev/null || need+=(gcc)
command -v clang >/dev/null || need+=(clang)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v nm >/dev/null || need+=(binutils)
# clang's sanitizer runtimes (ASan, UBSan, TSan)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.tsan-x86_64.a >/dev/null 2>&1 ||
	need+=(libclang-rt-14-dev)
# AArch64: a cross compiler and qemu's user-mode emulator
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
# the manager's conformance tests: redis-cli, redis-benchmark, redis-server, hiredis
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
pkg-config --exists hiredis 2>/dev/null || need+=(libhiredis-dev)
. scripts/need.sh
need_install "make test" ${need[@]+"${need[@]}"}

run_suite() { # name, ctest args, cmake args...
	local name=$1 args=$2; shift 2
	echo "== $name"
	cmake -S . -B "build-$name" -DREAP_WERROR=ON "$@" >/dev/null
	cmake --build "build-$name" -j "$jobs" >/dev/null
	# shellcheck disable=SC2086
	(cd "build-$name" && ctest -j "$jobs" --output-on-failure $args)
}

run_suite asan-gcc "" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Asan
run_suite asan-clang "" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Asan \
	-DREAP_FUZZ=ON
# The RESP decoders and the client's value decoder under libFuzzer for a
# bounded time each, from the committed corpus (new inputs go to a
# scratch copy). A crash leaves its input in build-asan-clang/fuzz-out/
# and fails the run: commit it to tests/fuzz/crashes_<name>/ with the fix.
fuzz() { # name [libFuzzer options...]
	local name=$1
	shift
	echo "== fuzz: $name, ${REAP_FUZZ_SECONDS:-30} s"
	rm -rf "build-asan-clang/fuzz-out-$name" "build-asan-clang/fuzz-corpus-$name"
	mkdir -p "build-asan-clang/fuzz-out-$name" "build-asan-clang/fuzz-corpus-$name"
	(cd "build-asan-clang/fuzz-out-$name" &&
		"../tests/fuzz_$name" -max_total_time="${REAP_FUZZ_SECONDS:-30}" \
		-print_final_stats=1 "$@" "../fuzz-corpus-$name" \
		"../../tests/fuzz/corpus_$name" 2>fuzz.log) ||
		{ tail -40 "build-asan-clang/fuzz-out-$name/fuzz.log"; exit 1; }
	grep -E "^stat::number_of_executed_units" "build-asan-clang/fuzz-out-$name/fuzz.log" || true
}
fuzz resp -dict=../../tests/fuzz/resp.dict
fuzz value
run_suite tsan "" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Tsan
run_suite noledger "-R ^test_scope\\." -DCMAKE_BUILD_TYPE=Release -DREAP_LEDGER=OFF
run_suite aarch64 "-R ^test_(ctx|loop)\\." -DCMAKE_BUILD_TYPE=Debug \
	-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
	-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc \
	-DCMAKE_ASM_COMPILER=aarch64-linux-gnu-gcc -DREAP_EXAMPLES=OFF \
	"-DCMAKE_CROSSCOMPILING_EMULATOR=qemu-aarch64;-L;/usr/aarch64-linux-gnu"

echo "== install: find_package and pkg-config"
./tests/install/check.sh
echo "== all suites passed"
