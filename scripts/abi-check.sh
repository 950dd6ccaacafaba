#!/usr/bin/env bash
# Compares the ABI of a built libsoftkit.so with the baseline in abi/ (libabigail).
#
#   scripts/abi-check.sh LIB            check; exit 1 on an incompatible change
#   scripts/abi-check.sh --update LIB   write the baseline abi/<SONAME>.abi
#
# LIB is the shared libsoftkit of a build with SOFTKIT_ABI_DEBUG_INFO=ON (the
# default), so that abidw sees the C API's types. Only what the public headers
# (include/softkit) declare counts. Passes when the ABI is unchanged or only
# grew as abi/README.md allows (added functions, added enumerators, option
# structs grown at the end); fails on removed or changed functions, changed
# types, values or layouts. Needs abidw and abidiff (scripts/deps.sh abi).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

update=0
baseline=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --update) update=1 ;;
    --baseline) baseline="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "abi-check.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
[[ $# -eq 1 ]] || { echo "usage: abi-check.sh [--update] [--baseline FILE] LIB" >&2; exit 2; }
lib="$1"
[[ -f "$lib" ]] || { echo "abi-check.sh: no library $lib" >&2; exit 2; }
for tool in abidw abidiff; do
  command -v "$tool" >/dev/null || { echo "abi-check.sh: $tool not found (scripts/deps.sh abi)" >&2; exit 2; }
done

soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[[ -n "$soname" ]] || { echo "abi-check.sh: $lib has no SONAME" >&2; exit 2; }
[[ -n "$baseline" ]] || baseline="$root/abi/$soname.abi"

if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "abi-check.sh: $lib has no debug information; build with SOFTKIT_ABI_DEBUG_INFO=ON" >&2
  exit 2
fi

# The same options for the baseline and the check. No paths, locations or
# compilation folders: the dump depends on the sources only, not on the clone.
dump() {
  abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
    --headers-dir "$root/include/softkit" --drop-private-types \
    --type-id-style hash "$1"
}

if [[ $update == 1 ]]; then
  dump "$lib" >"$baseline.tmp"
  mv "$baseline.tmp" "$baseline"
  echo "abi-check.sh: wrote ${baseline#$root/} from $lib"
  exit 0
fi

[[ -f "$baseline" ]] || {
  echo "abi-check.sh: no baseline ${baseline#$root/} for $soname; a new major version needs" \
    "'scripts/abi-check.sh --update $lib' (see abi/README.md)" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dump "$lib" >"$tmp/dump.abi"
# Option structs grown at the end are cut back to the baseline layout first.
perl "$root/abi/normalize-options.pl" "$baseline" "$tmp/dump.abi" >"$tmp/current.abi"
current="$tmp/current.abi"
report="$tmp/report.txt"

# abidiff's exit status is a bit field: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change. It only calls removals incompatible; a changed
# struct layout or parameter type is "4". So: 0 passes; anything with 1, 2 or 8
# fails; a 4 passes only when it is all additions, that is when the same diff
# without added symbols is empty.
status=0
abidiff "$baseline" "$current" >"$report" 2>&1 || status=$?
if [[ $status == 0 ]]; then
  echo "abi-check.sh: $soname matches ${baseline#$root/}"
  exit 0
fi
if (( status & 3 )); then
  cat "$report" >&2
  echo "abi-check.sh: abidiff failed (status $status)" >&2
  exit 2
fi
if (( status & 8 )); then
  cat "$report"
  echo "abi-check.sh: INCOMPATIBLE ABI change against ${baseline#$root/} (abidiff status $status)" >&2
  exit 1
fi
rest=0
abidiff --no-added-syms "$baseline" "$current" >/dev/null 2>&1 || rest=$?
cat "$report"
if [[ $rest != 0 ]]; then
  echo "abi-check.sh: ABI change against ${baseline#$root/} that is not an addition (abidiff status $status)" >&2
  exit 1
fi
echo "abi-check.sh: $soname only adds to ${baseline#$root/}: compatible (update the baseline when releasing)"
