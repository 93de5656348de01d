#!/usr/bin/env bash
# Install reap into a temporary prefix, then build a small consumer twice:
# with CMake's find_package(reap) and with pkg-config. Both must run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake -S "$top" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DREAP_TESTS=OFF \
	-DREAP_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" -j "$(nproc)" >/dev/null
cmake --install "$tmp/build" >/dev/null

mkdir -p "$tmp/app"
cat > "$tmp/app/app.c" <<'C'
#include <reap.h>
static int ran;
static void done(void *arg) { (void)arg; ran = 1; }
int main(void)
{
	reap_scope *s;
	if (reap_scope_open(NULL, &s) != 0 || reap_defer(s, done, NULL, NULL) != 0)
		return 1;
	return reap_scope_close(s) == 0 && ran && reap_ledger_count() == 0 ? 0 : 1;
}
C
cat > "$tmp/app/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(reap 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE reap::reap)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE reap::reap_static)
C
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app/build/app"
"$tmp/app/build/app_static"
echo "find_package(reap): shared and static consumers run"

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/app/app_pc" "$tmp/app/app.c" $(pkg-config --cflags --libs reap)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app/app_pc"
echo "pkg-config reap $(pkg-config --modversion reap): consumer runs"

# The shared library exports reap's API and nothing else.
bad=$(nm -D --defined-only "$tmp/prefix/lib/libreap.so" | awk '{print $3}' |
	grep -v -E '^(reap_|_init$|_fini$)' || true)
if [ -n "$bad" ]; then
	echo "libreap.so exports symbols outside reap_*: $bad" >&2
	exit 1
fi
readelf -d "$tmp/prefix/lib/libreap.so" | grep -q 'SONAME.*libreap.so.0' ||
	{ echo "libreap.so has no SONAME libreap.so.0" >&2; exit 1; }
echo "libreap.so: SONAME libreap.so.0, only reap_* exported"
