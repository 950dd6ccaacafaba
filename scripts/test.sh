#!/usr/bin/env bash
# Builds softkit and runs every test through ctest, on every ISA this machine
# has, then the AArch64 (NEON) build under QEMU. Exits non-zero on any failure.
# Installs the Debian packages it needs when they are missing.
#
# Then (issue 8, with clang-14) the unit tests under AddressSanitizer +
# UndefinedBehaviorSanitizer, the threading tests under ThreadSanitizer, each on
# every ISA here, and the libFuzzer harnesses from their seed corpora.
#
# The fuzzing is repeatable by default: mutations from a fixed seed for a fixed
# number of inputs (--fuzz-runs), so that what a run tries depends neither on
# the machine's speed nor on chance (only libFuzzer's order among seed files of
# equal size may differ between checkouts). --fuzz-seconds N explores instead:
# a random seed for N seconds per harness, to run for a while before a commit;
# each input it finds a bug with goes into tests/fuzz/corpus.
#
# Usage: scripts/test.sh [--no-cross] [--no-sanitizers] [--fuzz-runs N | --fuzz-seconds N] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/test
cross=1
sanitizers=1
fuzz_runs=2000
fuzz_seconds=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-cross) cross=0 ;;
    --no-sanitizers) sanitizers=0 ;;
    --fuzz-runs) fuzz_runs="$2"; fuzz_seconds=; shift ;;
    --fuzz-seconds) fuzz_seconds="$2"; shift ;;
    --build-dir) build="$2"; shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

jobs=$(nproc)
groups=(build peers abi)
[[ $cross == 1 && $(uname -m) == x86_64 ]] && groups+=(cross)
[[ $sanitizers == 1 ]] && groups+=(sanitizers)
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
if [[ $sanitizers == 1 ]]; then
  # clang-14 with its libomp (libgomp is not instrumented for TSan); static
  # library, no benchmarks, no libtorch (not sanitized). Findings are fatal.
  san_cmake=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOFTKIT_BUILD_SHARED=OFF -DSOFTKIT_BUILD_BENCHMARKS=OFF
             -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"

  step "AddressSanitizer + UndefinedBehaviorSanitizer (clang-14): unit tests on every ISA, fuzz corpora"
  cmake -S . -B "$build-asan" "${san_cmake[@]}" -DSOFTKIT_SANITIZE=address,undefined -DSOFTKIT_BUILD_FUZZERS=ON >/dev/null
  cmake --build "$build-asan" -j "$jobs" --target softkit_tests softkit_internal_tests \
    fuzz_softmax fuzz_logsumexp fuzz_cross_entropy fuzz_backward
  # The exp sweep takes every 7th float here (every float natively); the CPU
  # tunings' suites on AVX-512 only (the paths they pick are the driver's).
  SOFTKIT_TEST_EXP_STRIDE=7 ctest --test-dir "$build-asan" --output-on-failure -j "$jobs" \
    -R '^(softkit_tests|softkit_internal_tests)\.[a-z0-9]+$|^softkit_tests\.avx512\.|^fuzz\.'

  step "ThreadSanitizer (clang-14, libomp): threading and stress tests on every ISA"
  cmake -S . -B "$build-tsan" "${san_cmake[@]}" -DSOFTKIT_SANITIZE=thread >/dev/null
  cmake --build "$build-tsan" -j "$jobs" --target softkit_tests
  # Archer (LLVM's OpenMP TSan annotations) comes with libomp-14-dev.
  archer=$(ls /usr/lib/llvm-14/lib/libarcher.so 2>/dev/null || true)
  for isa in scalar avx2 avx512 neon; do
    rc=0
    SOFTKIT_TEST_ISA=$isa OMP_TOOL_LIBRARIES=$archer "$build-tsan/tests/softkit_tests" '[threads]' || rc=$?
    if [[ $rc == 77 ]]; then echo "($isa: not on this machine)"; elif [[ $rc != 0 ]]; then exit $rc; fi
  done

  if [[ -n $fuzz_seconds ]]; then
    fuzz_limit=(-max_total_time="$fuzz_seconds")
    step "libFuzzer: ${fuzz_seconds}s per harness, random seed, from tests/fuzz/corpus on every ISA it picks"
  else
    fuzz_limit=(-seed=1 -runs="$fuzz_runs")
    step "libFuzzer: $fuzz_runs inputs per harness, seed 1, from tests/fuzz/corpus on every ISA it picks"
  fi
  # The harnesses run side by side; what each one tries depends on its seed and
  # count alone (with --fuzz-seconds they share the cores for those seconds).
  fuzzers=(fuzz_softmax fuzz_logsumexp fuzz_cross_entropy fuzz_backward)
  declare -A fuzz_work fuzz_pid
  for fuzzer in "${fuzzers[@]}"; do
    work=$(mktemp -d)
    fuzz_work[$fuzzer]=$work
    mkdir "$work/corpus" "$work/found"
    # New inputs go to a scratch copy; the committed seed corpus is not touched.
    cp tests/fuzz/corpus/$fuzzer/* "$work/corpus/"
    "$build-asan/tests/fuzz/$fuzzer" "${fuzz_limit[@]}" -rss_limit_mb=2048 -max_len=512 -timeout=60 \
      -print_final_stats=1 -artifact_prefix="$work/found/" "$work/corpus" >"$work/log" 2>&1 &
    fuzz_pid[$fuzzer]=$!
  done
  fuzz_failed=0
  for fuzzer in "${fuzzers[@]}"; do
    work=${fuzz_work[$fuzzer]}
    rc=0
    wait "${fuzz_pid[$fuzzer]}" || rc=$?
    if [[ $rc != 0 ]]; then
      grep -v '^#' "$work/log" | tail -40 >&2
      cp "$work"/found/* "$build-asan/" 2>/dev/null || true
      echo "$fuzzer failed; reproducer in $build-asan/ (run: $build-asan/tests/fuzz/$fuzzer <file>)" >&2
      fuzz_failed=1
      continue
    fi
    echo "$fuzzer: $(grep -E '^stat::number_of_executed_units' "$work/log" | awk '{print $2}') inputs, no failure"
    rm -rf "$work"
  done
  [[ $fuzz_failed == 0 ]] || exit 1
fi
step "all tests passed"
