#!/usr/bin/env bash
# Benchmarks softkit against oneDNN, libtorch, a naive C++ softmax and the memory
# floors, on the shapes of issue 3, and writes tables, CSV, JSON and a plot.
#
# Usage: scripts/bench.sh [options] [-- extra softkit_bench / Google Benchmark flags]
#   --quick            a handful of cases (3 shapes, forward ops, best ISA), under a minute
#   --filter REGEX     only the benchmarks whose name matches, e.g. '^softmax/' or '1x50257x1$'
#                      (names: <op>/<impl>/<isa>/t<threads>/<outer>x<n>x<inner>)
#   --isa LIST         softkit ISAs, e.g. avx2,avx512 (default: all this CPU has)
#   --threads LIST     thread counts, e.g. 1 or 1,2 or all (default: 1 and all cores)
#   --out DIR          results folder (default: build/bench-results)
#   --build-dir DIR    CMake build folder (default: build)
#   --repetitions N    rounds, the best run of each case is kept (default 3; 2 with --quick).
#                      A round runs every case once, softkit's process and the peers' in turn,
#                      so that each one's best comes from the whole run, not from minutes of its own
#   --min-time SEC     Google Benchmark's minimum time per run (default 0.05; 0.03 with --quick)
#   --no-deps          do not install missing Debian packages
#   --no-build         use the softkit_bench already built in the build folder
#   -h, --help
# One case again: build/bench/softkit_bench --benchmark_filter='^softmax/softkit/avx512/t1/1x50257x1$'
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/build/bench-results"
build="$root/build"
quick=0 filter="" isa="" threads="" min_time="" reps="" deps=1 do_build=1
extra=()

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "bench.sh: $1 needs a value" >&2; exit 2; }; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --filter) need "$@"; filter="$2"; shift ;;
    --filter=*) filter="${1#*=}" ;;
    --isa) need "$@"; isa="$2"; shift ;;
    --isa=*) isa="${1#*=}" ;;
    --threads) need "$@"; threads="$2"; shift ;;
    --threads=*) threads="${1#*=}" ;;
    --out) need "$@"; out="$2"; shift ;;
    --out=*) out="${1#*=}" ;;
    --build-dir) need "$@"; build="$2"; shift ;;
    --build-dir=*) build="${1#*=}" ;;
    --repetitions) need "$@"; reps="$2"; shift ;;
    --repetitions=*) reps="${1#*=}" ;;
    --min-time) need "$@"; min_time="$2"; shift ;;
    --min-time=*) min_time="${1#*=}" ;;
    --no-deps) deps=0 ;;
    --no-build) do_build=0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/bench.log"
: >"$log"
say() { echo "bench.sh: $*" | tee -a "$log"; }
t0=$SECONDS

# 1. Packages: the build tools, the peers (optional), gnuplot and python3 for the report.
if [[ $deps -eq 1 ]]; then
  say "[1/4] checking packages (scripts/deps.sh build peers report)"
  if ! "$root/scripts/deps.sh" build peers report; then
    say "could not install every package; going on: missing peers are skipped, the report says which"
  fi
else
  say "[1/4] packages: not checked (--no-deps)"
fi

# 2. Build softkit_bench (Release). Peers that are not installed are left out by CMake.
bin="$build/bench/softkit_bench"
if [[ $do_build -eq 1 ]]; then
  say "[2/4] building softkit_bench in $build"
  jobs=$(nproc 2>/dev/null || echo 2)
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSOFTKIT_BUILD_BENCHMARKS=ON >>"$log" 2>&1 ||
    { tail -n 30 "$log"; say "configure failed (log: $log)"; exit 1; }
  grep -E "softkit bench:" "$log" | sed 's/^-- /  /' || true
  cmake --build "$build" --target softkit_bench -j "$jobs" >>"$log" 2>&1 ||
    { tail -n 40 "$log"; say "build failed (log: $log)"; exit 1; }
else
  say "[2/4] build: skipped (--no-build)"
fi
[[ -x "$bin" ]] || { say "no $bin (build it, or drop --no-build)"; exit 1; }

# 3. Run. softkit, libtorch and the floors in one process; oneDNN in processes of
#    its own: with libtorch in the same process oneDNN measured slower (1.4 against
#    2.0 G/s, back to back), and ONEDNN_MAX_CPU_ISA (the AVX2 run) is read once,
#    at oneDNN's first use.
args=(--benchmark_out_format=json)
[[ $quick -eq 1 ]] && args+=(--sk_quick)
[[ -n "$filter" ]] && args+=("--benchmark_filter=$filter")
[[ -n "$isa" ]] && args+=("--sk_isa=$isa")
[[ -n "$threads" ]] && args+=("--sk_threads=$threads")
if [[ $quick -eq 1 ]]; then : "${min_time:=0.03}" "${reps:=2}"; else : "${min_time:=0.05}" "${reps:=3}"; fi
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --repetitions needs a positive integer, not '$reps'" >&2; exit 2; }
args+=("--benchmark_min_time=$min_time")
args+=("${extra[@]}")

# Two cores shared with a build measure the build: say so before starting.
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  say "warning: load average $load: other work is running; multi-thread numbers will suffer (best of $reps runs is kept)"
fi

# oneDNN held to AVX2, as the peer of softkit's avx2 path: when avx2 is among the
# ISAs asked for (all of them by default, only the best with --quick) and the CPU has it.
want_avx2=0
if [[ -n "$isa" ]]; then [[ ",$isa," == *",avx2,"* ]] && want_avx2=1
elif [[ $quick -eq 0 ]]; then want_avx2=1; fi
grep -qw avx2 /proc/cpuinfo 2>/dev/null || want_avx2=0

# The machine's speed drifts (on shared VMs by a third within minutes): each
# process runs every case once per round, in turn, and the report keeps each
# case's best round, so a ratio compares runs spread over the same minutes.
rm -f "$out"/run_*.json
runs=()
# One peer process of a round: run_peer NAME LABEL [VAR=VALUE ...]; a failure
# drops that peer from the later rounds.
declare -A peer_ok=([onednn]=1 [onednn_avx2]=$want_avx2)
run_peer() {
  local name=$1 label=$2
  shift 2
  [[ ${peer_ok[$name]} -eq 1 ]] || return 0
  say "[3/4] round $round of $reps: $label"
  if env "$@" "$bin" "${args[@]}" --sk_impls=onednn --benchmark_out="$out/run_${name}_$round.json" 2>&1 |
      tee -a "$log"; then
    runs+=("$out/run_${name}_$round.json")
  else
    say "the $label run failed; going on without it"
    peer_ok[$name]=0
  fi
}
for ((round = 1; round <= reps; round++)); do
  say "[3/4] round $round of $reps: softkit, libtorch and the floors (progress: [case/of cases]; log: $log)"
  if ! "$bin" "${args[@]}" --sk_impls=softkit,torch,naive,memcpy,readsum,add \
      --benchmark_out="$out/run_main_$round.json" 2>&1 | tee -a "$log"; then
    say "softkit_bench failed (log: $log)"
    exit 1
  fi
  runs+=("$out/run_main_$round.json")
  run_peer onednn oneDNN
  run_peer onednn_avx2 "oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)" ONEDNN_MAX_CPU_ISA=AVX2
done

# 4. Report: tables on stdout; CSV, JSON, Markdown and PNG in $out.
say "[4/4] report"
rel_bin="$bin"
[[ "$bin" == "$root/"* ]] && rel_bin="${bin#"$root"/}"
python3 "$root/bench/report.py" --out "$out" --bin "$rel_bin" "${runs[@]}" | tee -a "$log"
say "done in $((SECONDS - t0)) s; results in $out"
