#!/usr/bin/env bash
# pkgconfig.sh CC PKG_CONFIG PCDIR VERSION SOURCE OUT
# Builds SOURCE as strict C99 against the installed softkit found through
# pkg-config (PKG_CONFIG_PATH=PCDIR only) and runs it.
set -euo pipefail
cc=$1 pkg_config=$2 pcdir=$3 version=$4 source=$5 out=$6
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_LIBDIR="$pcdir"  # nothing from the system

"$pkg_config" --exists --print-errors "softkit >= $version"
got=$("$pkg_config" --modversion softkit)
[[ $got == "$version" ]] || { echo "pkg-config says softkit $got, expected $version" >&2; exit 1; }
libdir=$("$pkg_config" --variable=libdir softkit)
static=()
[[ -e $libdir/libsoftkit.so ]] || static=(--static)
cflags=$("$pkg_config" --cflags softkit)
libs=$("$pkg_config" "${static[@]}" --libs softkit)
echo "pkg-config: cflags: $cflags; libs: $libs"
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086 # word splitting of the flags is wanted
"$cc" -std=c99 -pedantic -Werror -Wall -Wextra $cflags "$source" -o "$out" $libs
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$out"
