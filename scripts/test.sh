#!/usr/bin/env bash
# The test suite: ASan+UBSan with -Werror under gcc and clang, every
# test again under TSan (the stress tests are labelled "concurrent"), a
# build with the ledger compiled out, and
# an install consumed through find_package and pkg-config.
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
run_suite asan-clang "" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Asan
run_suite tsan "" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Tsan
run_suite noledger "-R ^test_scope\\." -DCMAKE_BUILD_TYPE=Release -DREAP_LEDGER=OFF

echo "== install: find_package and pkg-config"
./tests/install/check.sh
echo "== all suites passed"
