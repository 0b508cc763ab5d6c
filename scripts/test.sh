#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, builds with
# ASan + UBSan and -Werror, runs every suite, then runs each fuzz target for a
# short fixed time (clang + libFuzzer).
#   MARLIN_TEST_JOBS   parallel jobs (default: nproc)
#   MARLIN_FUZZ_SECONDS seconds per fuzz target (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
export PATH="/usr/local/cuda/bin:$PATH"
jobs=${MARLIN_TEST_JOBS:-$(nproc)}

# Python modules some tests use to cross-check our files (safetensors,
# numpy); tests skip with a message when they cannot be installed.
if ! python3 -c 'import safetensors, numpy' 2>/dev/null; then
  python3 -m pip install -q safetensors numpy 2>/dev/null ||
    python3 -m pip install -q --break-system-packages safetensors numpy 2>/dev/null ||
    echo "test: python safetensors/numpy unavailable; cross-check tests will skip" >&2
fi

# MARLIN_TRACE=ON: the tests build also compiles the kernels' timeline
# tracing (off in normal builds), so that code keeps compiling warning-free.
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DMARLIN_WERROR=ON \
  -DMARLIN_SANITIZE=ON -DMARLIN_TRACE=ON >/dev/null
cmake --build build-test -j"$jobs"
(cd build-test && ctest --output-on-failure -j"$jobs")

# Fuzzers: clang + libFuzzer with ASan/UBSan, each for a fixed time.
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMARLIN_WERROR=ON \
  -DMARLIN_CUDA=OFF -DMARLIN_FUZZ=ON -DMARLIN_TESTS=ON \
  -DMARLIN_FUZZ_SECONDS="${MARLIN_FUZZ_SECONDS:-30}" >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
cmake --build build-fuzz -j"$jobs" --target $targets
(cd build-fuzz && ctest --output-on-failure -R '^fuzz_')
echo "test: all suites passed"
