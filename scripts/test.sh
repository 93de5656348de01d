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
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.asan-x86_64.a ] ||
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.asan-*.a >/dev/null 2>&1 ||
	need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "== installing: ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "make test needs: ${need[*]} (as root: apt-get install ${need[*]})" >&2
		exit 1
	fi
fi

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
