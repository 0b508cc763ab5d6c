#!/usr/bin/env bash
# The demo command (README): installs what the build needs, builds the tools,
# generates a small Llama-shaped demo checkpoint (random weights, made by
# marlin-synth: no download), quantizes it to INT4 in both GPTQ and Marlin
# layouts, and verifies the result (on the GPU too when one is present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
B=build
D=${MARLIN_DEMO_DIR:-out/demo}
mkdir -p "$D"
echo "== 1. demo checkpoint ($D/model)"
"$B"/marlin-synth "$D/model" --preset tiny --seed 1 --force
"$B"/marlin-inspect "$D/model"
echo "== 2. quantize (RTN, group 128, GPTQ + Marlin formats)"
rm -rf "$D/q"
"$B"/marlin-quantize "$D/model" "$D/q" --format all --report "$D/report.json"
echo "== 3. verify on the CPU against the original"
"$B"/marlin-verify "$D/q" --ref "$D/model" --cpu
if "$B"/marlin-verify --gpu-available >/dev/null 2>&1; then
  echo "== 4. verify on the GPU with our Marlin kernel"
  "$B"/marlin-verify "$D/q/marlin" --ref "$D/model" --gpu
else
  echo "== 4. (no GPU here: GPU verification skipped)"
fi
echo "demo: done; outputs in $D"
