#!/usr/bin/env bash
# Builds softkit and runs every test through ctest, on every ISA this machine
# has, then the AArch64 (NEON) build under QEMU. Exits non-zero on any failure.
# Installs the Debian packages it needs when they are missing.
#
# Usage: scripts/test.sh [--no-cross] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/test
cross=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-cross) cross=0 ;;
    --build-dir) build="$2"; shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

jobs=$(nproc)
groups=(build peers abi)
[[ $cross == 1 && $(uname -m) == x86_64 ]] && groups+=(cross)
scripts/deps.sh "${groups[@]}"

step() { printf '\n=== %s\n' "$*"; }

step "native build ($(uname -m)), Release"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSOFTKIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$jobs"
step "native tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
step "static libsoftkit (SOFTKIT_BUILD_SHARED=OFF): exported symbols, install, consumers"
cmake -S . -B "$build-static" -DCMAKE_BUILD_TYPE=Release -DSOFTKIT_BUILD_SHARED=OFF -DSOFTKIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build-static" -j "$jobs" --target softkit
ctest --test-dir "$build-static" --output-on-failure -j "$jobs" -L "abi|install"

if [[ $cross == 1 && $(uname -m) == x86_64 ]]; then
  step "aarch64 cross build, tests under qemu-aarch64 (neon, scalar)"
  cmake -S . -B "$build-aarch64" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
    -DSOFTKIT_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$build-aarch64" -j "$jobs"
  ctest --test-dir "$build-aarch64" --output-on-failure -j "$jobs"
fi
step "all tests passed"
