#!/bin/sh
# Installs the build into a scratch prefix, then builds a user program
# against it twice: with pkg-config and with CMake's find_package, and runs
# it under the installed poolalloc command.
set -eu
build=$1
work=$2
rm -rf "$work"
mkdir -p "$work/consumer"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cat > "$work/consumer/main.c" <<'C'
#include <poolalloc.h>
#include <string.h>
int main(void) {
  char *p = pa_malloc(15);
  strcpy(p, "pools");
  int ok = pa_usable_size(p) == 16 && strcmp(p, "pools") == 0;
  pa_free(p);
  return ok ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
${CC:-cc} "$work/consumer/main.c" -o "$work/consumer/with-pkg-config" \
  $(pkg-config --cflags --libs poolalloc) -Wl,-rpath,"$work/prefix/lib"
"$work/consumer/with-pkg-config"
cat > "$work/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(poolalloc REQUIRED)
add_executable(with-find-package main.c)
target_link_libraries(with-find-package PRIVATE poolalloc::poolalloc)
CM
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer/build" >/dev/null
"$work/consumer/build/with-find-package"
# The installed command finds the installed override library by itself.
"$work/prefix/bin/poolalloc" run --stats -- "$work/consumer/build/with-find-package" 2>"$work/stats.txt"
grep -q "Small block threshold" "$work/stats.txt"
echo "install: pkg-config and find_package consumers built and ran; poolalloc run works from the prefix"
