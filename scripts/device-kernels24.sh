#!/usr/bin/env bash
# device-kernels24.sh - one call on a lent GPU for the 2:4 sparse kernel:
# its test suite, the configuration sweep and the marlin-bench figures.
#
# Usage (here):  scripts/device-kernels24.sh pack DIR   copies the Release
#                  build (build-rel: -DCMAKE_BUILD_TYPE=Release
#                  -DCMAKE_CUDA_ARCHITECTURES=90 -DMARLIN_SHARED_LIB=ON),
#                  libcmocka and this script into DIR
#        (there): bash run.sh explore   full tests, sweep (tune), models,
#                                       peak, ncu on one layer
#                 bash run.sh final     the same plus compute-sanitizer
#                                       memcheck (with and without PDL) and
#                                       racecheck on a small subset
#                 TUNE_BATCH, BATCH, NCU_BATCH: batch lists of the sweep,
#                 the models run and the profiled launches
# Everything lands in $OUT/results.tgz (re-packed after every step, so a run
# stopped at its limit still returns what it has); summaries print last.
set -u
if [ "${1:-}" = pack ]; then
  dst=${2:?destination folder}
  src=$(cd "$(dirname "$0")/.." && pwd)
  mkdir -p "$dst/lib"
  cp "$src/build-rel/tests/test_kernels24" "$src/build-rel/marlin-bench" "$dst/"
  cp -L "$src/build-rel/libmarlinq.so" /usr/lib/x86_64-linux-gnu/libcmocka.so.0 "$dst/lib/"
  cp "$0" "$dst/run.sh"
  du -sh "$dst"
  exit 0
fi

cd "$(dirname "$0")"
mode=${1:-explore}
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
R=${OUT:-/tmp/out}/r
mkdir -p "$R"
log() { tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" . 2>/dev/null; echo "== $(date +%T) $*"; }

log probe
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,ecc.mode.current --format=csv | tee "$R/gpu.txt"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv -lms 500 > "$R/clocks.csv" 2>&1 &
smi=$!

log "test_kernels24 (full)"
timeout 80 ./test_kernels24 > "$R/test.log" 2>&1
echo "test_kernels24 rc=$?"

if [ "$mode" = final ]; then
  log memcheck
  MARLIN_K24_QUICK=2 timeout 40 compute-sanitizer --tool memcheck --leak-check no \
    ./test_kernels24 > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  log "memcheck with PDL"
  MARLIN_K24_QUICK=2 MARLIN_K24_PDL=1 timeout 40 compute-sanitizer --tool memcheck \
    --leak-check no ./test_kernels24 > "$R/memcheck_pdl.log" 2>&1
  echo "memcheck pdl rc=$?"
  log racecheck
  MARLIN_K24_QUICK=2 timeout 40 compute-sanitizer --tool racecheck \
    ./test_kernels24 > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
fi
log "bench tune"
timeout 45 ./marlin-bench --sparse --mode tune --batch "${TUNE_BATCH:-1,16,128}" --samples 8 \
  --csv "$R/tune.csv" > "$R/tune.txt" 2>&1
echo "tune rc=$?"

log "bench models"
timeout 45 ./marlin-bench --sparse --mode models -v --batch "${BATCH:-1,16,32,64,128}" \
  --samples 12 --csv "$R/models.csv" > "$R/models.txt" 2>&1
echo "models rc=$?"
log "bench peak"
timeout 30 ./marlin-bench --sparse --mode peak --batch 1,16,128 --samples 9 \
  --csv "$R/peak.csv" > "$R/peak.txt" 2>&1
echo "peak rc=$?"

log "ncu (Llama-2-7B qkv, m = ${NCU_BATCH:-16})"
for mb in ${NCU_BATCH:-16}; do
  timeout 30 ncu --kernel-name regex:marlin24_kernel --launch-skip 12 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section WarpStateStats --section LaunchStats --section InstructionStats \
    --section SchedulerStats \
    ./marlin-bench --sparse --mode models --model llama2-7b --batch $mb --samples 3 --no-pdl \
    > "$R/ncu_m$mb.txt" 2>&1
  echo "ncu m=$mb rc=$?"
done
kill $smi 2>/dev/null
log done

echo "------------------------------------------------------------ summaries"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|seed|FAIL" "$R/test.log" | head -30
grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck*.log "$R/racecheck.log" 2>/dev/null
grep -E "tune total|heuristic loses" "$R/tune.txt" 2>/dev/null | head -40
grep -v "^  " "$R/models.txt"
cat "$R/peak.txt"
grep -hE "marlin24_kernel|DRAM Throughput|Duration|Registers Per|Achieved Occupancy|Issued Warp|Executed Ipc|No Eligible|Executed Instructions  " "$R"/ncu_m*.txt 2>/dev/null | head -30
echo "TEST VERDICT: $(grep -cE '^\[  FAILED  \]' "$R/test.log") failed lines; sanitizers: $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$R"/memcheck*.log "$R/racecheck.log" 2>/dev/null | tr '\n' ' ')"
