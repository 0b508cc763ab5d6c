#!/usr/bin/env bash
# device-kernels.sh - one call on a lent GPU for kernels/: the GPU test
# suite, compute-sanitizer, and every marlin-bench mode, in one go.
#
# Usage (here):  scripts/device-kernels.sh pack DIR   copies the Release
#                  binaries (build-rel, built for the card's arch), the
#                  libraries the card's image lacks and this script into DIR
#                (there): bash run.sh [quick|full]      writes everything to
#                  $OUT/results.tgz and prints the summaries last.
#                  full = MARLIN_KERNEL_TEST_FULL sweep; RACECHECK=0 skips
#                  racecheck; SUSTAINED_SECONDS (default 60).
# Steps are individually time-limited so one call stays well under 10 min.
set -u
if [ "${1:-}" = pack ]; then
  dst=${2:?destination folder}
  src=$(cd "$(dirname "$0")/.." && pwd)
  mkdir -p "$dst/lib"
  cp "$src/build-rel/tests/test_kernels" "$src/build-rel/marlin-bench" "$dst/"
  cp -L /usr/lib/x86_64-linux-gnu/libcmocka.so.0 "$dst/lib/"
  cp "$0" "$dst/run.sh"
  du -sh "$dst"
  exit 0
fi

cd "$(dirname "$0")"
mode=${1:-full}
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
R=${OUT:-/tmp/out}/r
mkdir -p "$R"
# Re-pack after every step: a run stopped at its time limit still returns
# what it has (only a few files come back, so one archive).
log() { tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" . 2>/dev/null; echo "== $(date +%T) $*"; }

log probe
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,ecc.mode.current --format=csv | tee "$R/gpu.txt"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv -lms 500 > "$R/clocks.csv" 2>&1 &
smi=$!

log "tests ($mode)"
if [ "$mode" = full ]; then export MARLIN_KERNEL_TEST_FULL=1; fi
MARLIN_KERNEL_TEST_DUMP=$R timeout 300 ./test_kernels > "$R/test.log" 2>&1
echo "test_kernels rc=$?"
unset MARLIN_KERNEL_TEST_FULL

log memcheck
MARLIN_KERNEL_TEST_QUICK=1 timeout 200 compute-sanitizer --tool memcheck --leak-check no \
  ./test_kernels > "$R/memcheck.log" 2>&1
echo "memcheck rc=$?"
if [ "${RACECHECK:-1}" = 1 ]; then
  log racecheck
  MARLIN_KERNEL_TEST_QUICK=1 timeout 200 compute-sanitizer --tool racecheck \
    ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
fi

log "bench tune"
timeout 150 ./marlin-bench --mode tune --model llama2-7b,llama2-70b --samples 20 \
  --csv "$R/tune.csv" > "$R/tune.txt" 2>&1
echo "tune rc=$?"
log "bench models"
timeout 120 ./marlin-bench --mode models -v --csv "$R/models.csv" --plot "$R/models.png" \
  > "$R/models.txt" 2>&1
echo "models rc=$?"
log "bench peak"
timeout 90 ./marlin-bench --mode peak --csv "$R/peak.csv" --plot "$R/peak.png" > "$R/peak.txt" 2>&1
echo "peak rc=$?"
secs=${SUSTAINED_SECONDS:-60}
log "bench sustained ${secs}s"
timeout $((secs + 60)) ./marlin-bench --mode sustained --model llama2-7b --seconds "$secs" \
  --csv "$R/sustained.csv" --plot "$R/sustained.png" > "$R/sustained.txt" 2>&1
echo "sustained rc=$?"
log "ncu (decode m=16 and m=128 layers of Llama-2-7B)"
for mb in 16 128; do
  timeout 90 ncu --kernel-name regex:dense_kernel --launch-skip 40 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section WarpStateStats --section LaunchStats --section InstructionStats \
    --section SchedulerStats \
    ./marlin-bench --mode models --model llama2-7b --batch $mb --samples 3 --no-pdl \
    > "$R/ncu_m$mb.txt" 2>&1
  echo "ncu m=$mb rc=$?"
done
kill $smi 2>/dev/null
log done
tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" .

echo "------------------------------------------------------------ summaries"
grep -E "^(GPU:|FAIL|g -?[0-9]+:|\[  (PASSED|FAILED|SKIPPED)|seed=)" "$R/test.log" | head -30
grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$R/memcheck.log" "$R/racecheck.log" 2>/dev/null
grep -E "tune total" "$R/tune.txt" | head -12
grep -v "^  " "$R/models.txt"
cat "$R/peak.txt"
tail -4 "$R/sustained.txt"
grep -hE "dense_kernel|DRAM Throughput|Duration|Elapsed Cycles|SM Active Cycles|Issued Warp|Executed Instructions  " "$R"/ncu_m*.txt | head -30
echo "TEST VERDICT: $(grep -c '^FAIL' "$R/test.log") failing cases; $(grep -cE '^\[  FAILED' "$R/test.log") failed-suite lines; sanitizers: $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$R/memcheck.log" "$R/racecheck.log" 2>/dev/null | tr '\n' ' ')"
