#!/usr/bin/env bash
# Installs the Debian 12 packages the build and the tests need, if missing.
# Usage: scripts/deps.sh [--test]   (--test adds the test-only packages)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev libzstd-dev libjansson-dev)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev python3 python3-pip python3-venv)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# CUDA is optional: the kernels build when nvcc is found (CUDA toolkit at
# /usr/local/cuda on our machines).
if [[ -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  echo "deps: CUDA found at /usr/local/cuda (add /usr/local/cuda/bin to PATH to use it by default)" >&2
fi
