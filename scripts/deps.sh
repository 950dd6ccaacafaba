#!/usr/bin/env bash
# Installs the Debian 12 packages softkit needs, only those that are missing.
# Usage: scripts/deps.sh [build] [peers] [cross] [sanitizers] [report]
set -euo pipefail

declare -A groups=(
  [build]="cmake g++ make pkg-config libxsimd-dev catch2 libbenchmark-dev"
  # oneDNN's CMake package requires OpenCL (Debian builds it with the OCL GPU runtime)
  # and only recommends ocl-icd-opencl-dev, which --no-install-recommends leaves out.
  [peers]="libdnnl-dev ocl-icd-opencl-dev libtorch-dev"
  [cross]="g++-aarch64-linux-gnu qemu-user"
  [sanitizers]="clang-14 libclang-rt-14-dev libomp-14-dev"
  [abi]="abigail-tools"
  [report]="gnuplot-nox python3"
)

want=()
for group in "${@:-build}"; do
  [[ -n "${groups[$group]:-}" ]] || { echo "deps.sh: unknown group '$group'" >&2; exit 2; }
  for pkg in ${groups[$group]}; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
  done
done

[[ ${#want[@]} -eq 0 ]] && exit 0
echo "deps.sh: installing ${want[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
