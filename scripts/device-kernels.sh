#!/usr/bin/env bash
# device-kernels.sh - one call on a lent GPU for kernels/: the GPU test
# suite, compute-sanitizer, and every marlin-bench mode, in one go.
#
# Usage (here):  scripts/device-kernels.sh pack DIR   copies the Release
#                  binaries (build-rel, built for the card's arch), the
#                  libraries the card's image lacks and this script into DIR
#                (there): bash run.sh [quick|full|explore]   writes everything
#                  to $OUT/results.tgz and prints the summaries last.
#                  full = MARLIN_KERNEL_TEST_FULL sweep; RACECHECK=0 skips
#                  racecheck; SUSTAINED_SECONDS (default 60); COMPARE_PIPES
#                  (default "bulk mbar") are timed beside the automatic
#                  choice; TUNE_PIPE (default cpasync) is swept by --mode
#                  tune; NCU_KERNEL (default dense_kernel) is profiled.
#                  explore = a development pass: default test sweep, models
#                  for both shared-memory pipelines (bulk, cpasync), a short
#                  tune of the bulk pipeline, ncu at m=16; no sanitizers, no
#                  peak and no sustained run.
#                  v2 = the one call of the v2 main loop (kopt2): smoke, the
#                  default sweep (automatic choice = v2 where it has tiles,
#                  every family forced on the tile sweep), models for the
#                  automatic choice and for the original kernel (cpasync),
#                  a tune of the v2 shapes, peak for both, memcheck and
#                  racecheck of the v2 kernels; every step time-limited.
#                  v2confirm = the confirmation of the final heuristic:
#                  smoke, default sweep, models (auto and cpasync) at
#                  m = 1..128 incl. 8 and 48, peak for both, ncu of the v2
#                  kernel on Llama-2-7B qkv at m = 16.
#                  trace = the launch-overhead study (session 2): smoke,
#                  marlin-bench --mode trace (per-block timelines; needs a
#                  -DMARLIN_TRACE=ON build) and models at m = 1, 16 (the
#                  session-2 experiment knobs it also swept are gone).
#                  (run 9's r2 mode, for a since reverted experiment, is
#                  gone; the modes below pack the BASE build with BASE=tree
#                  and time it in the same call.)
#                  r3 = the cluster-path round: both GPU suites (cluster test
#                  included), tune of the v2 shapes with cluster sizes on
#                  all four models at m = 1, 16, traces of the cluster
#                  path, models dense and 2:4 for this build and BASE,
#                  sanitizers on the cluster test.
#                  r4 / final = the automatic cluster choice: both GPU
#                  suites, traces with phase breakdown, models dense (this
#                  build and BASE) at every batch of the issue, 2:4 models,
#                  peak; final adds sustained (SUSTAINED_SECONDS, default
#                  30) and sanitizers.
#                  r5 = the 2:4 cluster path: its GPU suite, a 2:4 tune with
#                  cluster sizes at m = 1, 16, 2:4 models for this build and
#                  BASE.
# BUILD (pack): the build folder to take the binaries from (default build-rel).
# Steps are individually time-limited so one call stays well under 10 min.
set -u
if [ "${1:-}" = pack ]; then
  dst=${2:?destination folder}
  src=$(cd "$(dirname "$0")/.." && pwd)
  mkdir -p "$dst/lib"
  b=$src/${BUILD:-build-rel}
  cp "$b/tests/test_kernels" "$b/marlin-bench" "$dst/"
  # A MARLIN_SHARED_LIB build: found through LD_LIBRARY_PATH (lib/) there.
  if [ -f "$b/libmarlinq.so" ]; then cp "$b/libmarlinq.so" "$dst/lib/"; fi
  if [ -f "$b/tests/test_kernels24" ]; then cp "$b/tests/test_kernels24" "$dst/"; fi
  # BASE: a second tree's build-rel (the baseline), timed in the same call
  if [ -n "${BASE:-}" ]; then
    mkdir -p "$dst/base/lib"
    cp "$BASE/build-rel/marlin-bench" "$dst/base/"
    cp "$BASE/build-rel/libmarlinq.so" "$dst/base/lib/"
  fi
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
# bench_build WHO NAME TIMEOUT ARGS...: marlin-bench of this build (new) or
# of the BASE build packed beside it (base) with ARGS, into $R/NAME.csv and
# $R/NAME.txt; skipped when there is no such build.
bench_build() {
  local who=$1 name=$2 t=$3 bin=./marlin-bench lp=$PWD/lib
  shift 3
  if [ "$who" = base ]; then bin=./base/marlin-bench; lp=$PWD/base/lib; fi
  [ -x "$bin" ] || return 0
  log "$name"
  LD_LIBRARY_PATH=$lp:$LD_LIBRARY_PATH timeout "$t" "$bin" "$@" --csv "$R/$name.csv" \
    > "$R/$name.txt" 2>&1
  echo "$name rc=$?"
}

log probe
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,ecc.mode.current --format=csv | tee "$R/gpu.txt"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv -lms 500 > "$R/clocks.csv" 2>&1 &
smi=$!
# The end of every mode: stop the clock sampler, pack, then the summaries.
finish() {
  kill $smi 2>/dev/null
  log done
  echo "------------------------------------------------------------ summaries"
}
# model_summaries NAME...: the model totals of $R/NAME.txt (not the per-layer lines)
model_summaries() {
  local f
  for f in "$@"; do
    [ -f "$R/$f.txt" ] || continue
    echo "## $f"; grep -v '^#' "$R/$f.txt" | grep -v '^  '
  done
}

# suites T T24: both GPU suites (default sweeps), test_kernels for T
# seconds into test.log, test_kernels24 for T24 into test24.log.
suites() {
  log "test_kernels (default sweep)"
  timeout "$1" ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  log "test_kernels24"
  timeout "$2" ./test_kernels24 > "$R/test24.log" 2>&1
  echo "test_kernels24 rc=$?"
}
# suites_summary: the verdict lines of suites and of the sanitizer logs.
suites_summary() {
  grep -hE "^(GPU:|FAIL|g -?[0-9]+:|\[  (PASSED|FAILED|SKIPPED))|runs ok|cluster path|wgmma path|seed=" \
    "$R/test.log" "$R/test24.log" | head -40
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck_*.log "$R"/racecheck_*.log
}
# ab_rounds PREFIX BOTH ARGS...: marlin-bench --mode models -v ARGS for this
# build and BASE, two rounds, interleaved (PREFIX_{new,base}_r{1,2}); BOTH=1
# times the 2:4 kernel right after each (PREFIX24_...).
ab_rounds() {
  local pre=$1 both=$2 r who
  shift 2
  for r in 1 2; do
    for who in new base; do
      bench_build $who ${pre}_${who}_r$r 100 --mode models -v "$@"
      if [ "$both" = 1 ]; then
        bench_build $who ${pre}24_${who}_r$r 100 --mode models -v --sparse "$@"
      fi
    done
  done
}
# wg_checks SUFFIX DENSE_ONLY [VAR=VALUE]: the dense wgmma test (and the 2:4
# one unless DENSE_ONLY is 1), memcheck of their quick subsets and, with
# RACE_T > 0, racecheck of the quick dense subset for RACE_T seconds, each
# with VAR=VALUE in the environment (an A/B switch) when given; logs
# test_wg$SUFFIX, test24_wg$SUFFIX, memcheck_wg$SUFFIX, memcheck_wg24$SUFFIX
# (.log) and racecheck_wg.log.
wg_checks() {
  local sfx=$1 dense_only=$2 e=${3:-}
  log "test_kernels wgmma $e"
  # shellcheck disable=SC2086
  env $e MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
    timeout 150 ./test_kernels > "$R/test_wg$sfx.log" 2>&1
  echo "test_kernels wgmma rc=$?"
  if [ "$dense_only" != 1 ]; then
    # shellcheck disable=SC2086
    env $e MARLIN_TEST_FILTER='*wgmma*' timeout 100 ./test_kernels24 \
      > "$R/test24_wg$sfx.log" 2>&1
    echo "test_kernels24 wgmma rc=$?"
  fi
  log "memcheck $e"
  # shellcheck disable=SC2086
  env $e MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma \
    MARLIN_TEST_FILTER='*wgmma*' timeout 90 compute-sanitizer --tool memcheck --print-limit 20 \
    ./test_kernels > "$R/memcheck_wg$sfx.log" 2>&1
  echo "memcheck wgmma rc=$?"
  if [ "$dense_only" != 1 ]; then
    # shellcheck disable=SC2086
    env $e MARLIN_K24_QUICK=1 MARLIN_TEST_FILTER='*wgmma*' timeout 60 \
      compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels24 \
      > "$R/memcheck_wg24$sfx.log" 2>&1
    echo "memcheck wgmma24 rc=$?"
  fi
  if [ "${RACE_T:-0}" -gt 0 ]; then
    log "racecheck $e"
    # shellcheck disable=SC2086
    env $e MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma \
      MARLIN_TEST_FILTER='*wgmma*' timeout "$RACE_T" compute-sanitizer --tool racecheck \
      --print-limit 20 ./test_kernels > "$R/racecheck_wg.log" 2>&1
    echo "racecheck wgmma rc=$?"
  fi
}

if [ "$mode" = trace ]; then
  log "smoke (quick subset)"
  MARLIN_KERNEL_TEST_QUICK=1 timeout 30 ./test_kernels > "$R/smoke.log" 2>&1
  echo "smoke rc=$?"
  B="--model llama2-7b --batch 1,16"
  log "trace"
  timeout 30 ./marlin-bench --mode trace $B --csv "$R/trace.csv" > "$R/trace.txt" 2>&1
  echo "trace rc=$?"
  for tl in 16x128x256/s4/b1 16x128x128/s4/b1 16x128x256/s2/b2; do
    timeout 30 ./marlin-bench --mode trace $B --tile $tl >> "$R/trace.txt" 2>&1
  done
  log "models"
  timeout 40 ./marlin-bench --mode models -v --model llama2-7b,llama2-70b --batch 1,16 \
    --samples 15 --pipeline cpasync2 --csv "$R/models.csv" > "$R/models.txt" 2>&1
  echo "models rc=$?"
  finish
  grep -E "^(FAIL|\[  (PASSED|FAILED))" "$R/smoke.log" | head
  grep -v '^#' "$R/trace.txt"
  model_summaries models
  exit 0
fi

if [ "$mode" = s3final ]; then
  # session 3's confirmation: the whole dense GPU suite (every pipeline,
  # the wgmma tests in full), compute-sanitizer on the wgmma family, models
  # for the automatic choice at the issue's batch sizes (+ plot) and the v2
  # family at 64/128 (the previous automatic choice there), peak.
  log "tests (default sweep)"
  timeout 150 ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  log memcheck
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma timeout 80 compute-sanitizer \
    --tool memcheck --leak-check no ./test_kernels > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  log racecheck
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma timeout 80 compute-sanitizer \
    --tool racecheck ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  bench_build new models_auto 60 --mode models -v --samples 15 --plot "$R/models_auto.png"
  bench_build new models_v2 40 --mode models -v --samples 15 --batch 64,128 --pipeline cpasync2
  log peak
  timeout 40 ./marlin-bench --mode peak --samples 15 --csv "$R/peak.csv" --plot "$R/peak.png" \
    > "$R/peak.txt" 2>&1
  echo "peak rc=$?"
  finish
  grep -E "^(FAIL|\[  (PASSED|FAILED))|seed=|wgmma path|cluster path" "$R/test.log" | head -20
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|wgmma path" "$R"/memcheck.log "$R"/racecheck.log 2>/dev/null
  model_summaries models_auto models_v2 peak
  exit 0
fi

if [ "$mode" = wgncu ]; then
  # session 3: where the wgmma kernel's cycles go (Llama-2-7B at m = NCU_M)
  log "ncu wgmma"
  timeout 300 ncu --kernel-name regex:dense_wg --launch-skip 8 --launch-count 1 \
    --section ComputeWorkloadAnalysis --section WarpStateStats --section SourceCounters \
    --section InstructionStats --section SchedulerStats --section SpeedOfLight \
    ./marlin-bench --mode models --model llama2-7b --batch ${NCU_M:-64} --samples 3 --no-pdl \
    > "$R/ncu_wg.txt" 2>&1
  echo "ncu rc=$?"
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null | awk '/Function : .*dense_wg_kernelILi64ELb1/{p=1} p{print} /EXIT/{if(p) c++} c>=4{exit}' > "$R/sass64.txt"
  kill $smi 2>/dev/null
  log done
  grep -vE "^\s*$|----" "$R/ncu_wg.txt" | grep -vE "^==PROF==" | sed -n 1,200p
  exit 0
fi

if [ "$mode" = wg1 ]; then
  # session 3: the Hopper wgmma path. Correctness first (its own test, then
  # the quick suite), then models for the automatic choice (wgmma above 32
  # rows), the v2 family (the previous automatic choice at m > 32) and
  # wgmma forced at every m, and a tune of wgmma on 7B/70B.
  log "test wgmma"
  MARLIN_KERNEL_TEST_PIPE=wgmma timeout 150 ./test_kernels > "$R/test_wg.log" 2>&1
  echo "test_kernels (wgmma family) rc=$?"
  grep -E "wgmma|FAIL|^\[  (PASSED|FAILED)" "$R/test_wg.log" | head -40
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch ${WG_BATCH:-16,32,48,64,128,256} --samples 12"
  for p in ${WG_PIPES:-auto cpasync2 wgmma}; do bench_build new models_$p 90 --mode models -v $B --pipeline $p; done
  log "tune wgmma"
  timeout 150 ./marlin-bench --mode tune --pipeline wgmma --model llama2-7b,llama2-70b \
    --batch ${WG_TUNE_BATCH:-32,64,128} --samples 8 --csv "$R/tune_wg.csv" > "$R/tune_wg.txt" 2>&1
  echo "tune rc=$?"
  if [ -n "${NCU_WG:-}" ]; then
    log "ncu wgmma"
    timeout 120 ncu --kernel-name regex:dense_wg --launch-skip 20 --launch-count 2 \
      --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
      ./marlin-bench --mode models --model llama2-7b --batch $NCU_WG --samples 3 --no-pdl \
      > "$R/ncu_wg.txt" 2>&1
    echo "ncu rc=$?"
  fi
  finish
  grep -E "wgmma path|^FAIL|^\[  (PASSED|FAILED)" "$R/test_wg.log" | head -20
  model_summaries $(cd "$R" && ls models_*.txt | sed 's/\.txt$//')
  grep -v '^#' "$R/tune_wg.txt" | tail -30
  [ -f "$R/ncu_wg.txt" ] && grep -E "dense_wg|Duration|Throughput|Issued Ipc|No Eligible|Stall|Registers|Achieved Occ|Warp Cycles|One or More" "$R/ncu_wg.txt" | head -60
  exit 0
fi

if [ "$mode" = s4sp ]; then
  # session 4: 2:4 on the wgmma kernel (wgmma.mma_async.sp). The 2:4 GPU
  # suite (its wgmma test, and the automatic choice = wgmma above 48 rows
  # on n % 256 layers), models for both 2:4 families at the batches around
  # the switch-over, a tune of the wgmma widths x pieces, memcheck.
  log "tests 2:4"
  timeout ${T24:-200} ./test_kernels24 > "$R/test24.log" 2>&1
  echo "test_kernels24 rc=$?"
  grep -E "wgmma|FAIL|ERROR|^\[  (PASSED|FAILED)" "$R/test24.log" | head -30
  if [ -n "${DENSE_WG:-}" ]; then
    log "test dense wgmma"
    MARLIN_KERNEL_TEST_PIPE=wgmma timeout 150 ./test_kernels > "$R/test_wg.log" 2>&1
    echo "test_kernels (wgmma family) rc=$?"
    grep -E "wgmma|FAIL|^\[  (PASSED|FAILED)" "$R/test_wg.log" | head -20
  fi
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch ${SP_BATCH:-32,48,64,128} --samples 12"
  for p in ${SP_PIPES:-mma wgmma}; do bench_build new models24_$p 100 --sparse --mode models -v $B --pipeline $p; done
  log "tune 2:4 wgmma"
  timeout ${TTUNE:-120} ./marlin-bench --sparse --mode tune --model ${SP_TUNE_MODELS:-llama2-7b} \
    --batch ${SP_TUNE_BATCH:-64,128} --samples 8 --csv "$R/tune24.csv" > "$R/tune24.txt" 2>&1
  echo "tune24 rc=$?"
  if [ -n "${MEMCHECK:-}" ]; then
    MARLIN_K24_QUICK=1 MARLIN_K24_PDL=1 timeout 90 compute-sanitizer --tool memcheck \
      --leak-check no ./test_kernels24 > "$R/memcheck24.log" 2>&1
    echo "memcheck24 rc=$?"
  fi
  finish
  grep -E "wgmma path|FAIL|^\[  (PASSED|FAILED)" "$R/test24.log" | head -20
  model_summaries $(cd "$R" && ls models24_*.txt | sed 's/\.txt$//')
  grep -v '^#' "$R/tune24.txt" | tail -20
  [ -f "$R/memcheck24.log" ] && tail -3 "$R/memcheck24.log"
  exit 0
fi

if [ "$mode" = s4b ]; then
  # session 4, round 2: the 2:4 suite (wgmma now from 17 rows), both
  # families' models at the issues' batch sizes (automatic choice), a dense
  # wgmma tune at 64/128 rows (the new piece rules beside the old choices,
  # same call), peak layers, memcheck of the 2:4 wgmma path.
  log "tests 2:4"
  timeout 200 ./test_kernels24 > "$R/test24.log" 2>&1
  echo "test_kernels24 rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch 1,2,4,8,16,32,64,128 --samples 15"
  bench_build new models 120 --mode models -v $B --plot "$R/models.png"
  bench_build new models24 120 --sparse --mode models -v $B --plot "$R/models24.png"
  bench_build new peak 90 --mode peak --batch 1,16,32,64,128 --samples 12
  bench_build new peak24 90 --sparse --mode peak --batch 1,16,32,64,128 --samples 12
  log "tune dense wgmma"
  timeout ${TTUNE:-170} ./marlin-bench --mode tune --pipeline wgmma --model ${TUNE_MODELS:-llama2-7b,llama3-8b} \
    --batch 64,128 --samples 8 --csv "$R/tune_wg.csv" > "$R/tune_wg.txt" 2>&1
  echo "tune rc=$?"
  MARLIN_K24_QUICK=1 MARLIN_K24_PDL=1 timeout 100 compute-sanitizer --tool memcheck \
    --leak-check no ./test_kernels24 > "$R/memcheck24.log" 2>&1
  echo "memcheck24 rc=$?"
  finish
  grep -E "wgmma path|FAIL|^\[  (PASSED|FAILED)" "$R/test24.log" | head -20
  model_summaries models models24 peak peak24
  grep -v '^#' "$R/tune_wg.txt" | grep -E 'heuristic|total' | head -30
  tail -3 "$R/memcheck24.log"
  exit 0
fi

# s5b3 = session 5, this build against BASE in one call: the cluster test,
# models at m = 1, 16 (two rounds) and the v2 tune (cluster sizes x
# stages) for both (run 3: three blocks per SM for the 16-row cluster
# kernels, since reverted).
if [ "$mode" = s5b3 ]; then
  log "smoke: cluster test"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_TEST_FILTER='*cluster*' timeout 120 ./test_kernels \
    > "$R/test_cluster.log" 2>&1
  echo "test_cluster rc=$?"
  ab_rounds models 0 --batch 1,16 --samples 15
  for who in new base; do
    bench_build $who tune_$who 200 --mode tune --pipeline cpasync2 --batch ${TB:-1,16} --samples 8
  done
  finish
  grep -hE "^(FAIL|\[  (PASSED|FAILED)|cluster path)" "$R/test_cluster.log" | head
  model_summaries models_new_r1 models_base_r1 models_new_r2 models_base_r2
  for who in new base; do echo "## tune $who"; grep -E "tune total" "$R/tune_$who.txt"; done
  exit 0
fi

# s5ncu = session 5: where the cycles go on the current tree, Llama-2-7B
# qkv (the first layer timed): the wgmma kernel at m = 64 and 32 and the
# v2 decode kernel at m = 1 (ncu at its base clocks: for the breakdown,
# not for times).
if [ "$mode" = s5ncu ]; then
  for cfg in ${NCU_CFGS:-wg:64 wg:32 v2:1}; do
    k=dense_${cfg%%:*}; mm=${cfg##*:}
    log "ncu $k m=$mm"
    timeout 150 ncu --kernel-name regex:$k --launch-skip 8 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats \
      --section InstructionStats --section SourceCounters \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__pipe_.*(tensor|gmma|alu|fma|fp16|shared).*cycles_active\.avg\.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active" \
      ./marlin-bench --mode models --model llama2-7b --batch $mm --samples 3 --no-pdl \
      > "$R/ncu_${k}_m$mm.txt" 2>&1
    echo "ncu $k m=$mm rc=$?"
  done
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null | awk '/Function : .*dense_wg_kernelILi64ELb1ELb0ELb1E/{p=1} p{print} p&&/EXIT/{c++} c>=3{exit}' > "$R/sass_wg64.txt"
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null | awk '/Function : .*dense_v2_kernelILi1ELi8ELi16ELb1ELb1E/{p=1} p{print} p&&/EXIT/{c++} c>=3{exit}' > "$R/sass_v2_1.txt"
  finish
  for f in "$R"/ncu_*.txt; do
    echo "## $(basename $f)"
    grep -E "dense_|Duration|DRAM Throughput|Memory Throughput|L2 Hit|L1/TEX Hit|Issued Ipc|Issue Slots Busy|No Eligible|Active Warps Per|Eligible Warps|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Executed Instructions  |Block Limit" "$f" | head -30
    grep -E "stalled|pipe" "$f" | awk '$NF+0 > 0.05' | head -60
  done
  exit 0
fi

# s6a = session 6, this build against BASE in one call: the v2 family's
# GPU suite (every v2 tile, the cluster path), memcheck of the quick v2 and
# cluster subsets, models (all four, m = 1, 16; two rounds) for both, and
# the SASS of the 16-row decode kernels (cluster and stream-K) of both.
if [ "$mode" = s6a ]; then
  log "test_kernels (v2 family)"
  MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 200 ./test_kernels > "$R/test_v2.log" 2>&1
  echo "test_v2 rc=$?"
  log "memcheck (quick v2 + cluster)"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 120 \
    compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15"
  ab_rounds models 0 $B --batch 1,16
  for who in new base; do
    lib=lib/libmarlinq.so; [ $who = base ] && lib=base/lib/libmarlinq.so
    for kn in 'ILi1ELi8ELi16ELb1ELb1E' 'ILi1ELi8ELi16ELb1ELb0E'; do
      cuobjdump -sass $lib 2>/dev/null | awk "/Function : .*dense_v2_kernel$kn/{p=1} p{print} p&&/EXIT/{c++} c>=3{exit}" \
        | gzip > "$R/sass_${who}_$kn.txt.gz"
    done
  done
  finish
  grep -E "^(GPU:|FAIL|\[  (PASSED|FAILED|SKIPPED))|runs ok|cluster path|seed=" "$R/test_v2.log" | head -30
  grep -hE "ERROR SUMMARY" "$R/memcheck.log"
  model_summaries models_new_r1 models_base_r1 models_new_r2 models_base_r2
  exit 0
fi

# s6b = session 6, the wgmma kernels' copy plan against BASE in one call:
# the dense wgmma test (full) and the 2:4 one, memcheck of the quick dense
# wgmma subset, models dense and 2:4 at m = 32, 64, 128 (two rounds) for
# both, the v2 kernels forced at 64/128 rows (their 64-row tiles: the
# automatic choice off Hopper), and the SASS of the 64-row dense kernel.
if [ "$mode" = s6b ]; then
  log "test_kernels (wgmma)"
  MARLIN_TEST_FILTER='*wgmma*' timeout 200 ./test_kernels > "$R/test_wg.log" 2>&1
  echo "test_wg rc=$?"
  log "test_kernels24 (wgmma)"
  MARLIN_TEST_FILTER='*wgmma*' timeout 150 ./test_kernels24 > "$R/test24_wg.log" 2>&1
  echo "test24_wg rc=$?"
  log "memcheck (quick wgmma)"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
    timeout 120 compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels \
    > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15"
  ab_rounds models 1 $B --batch 32,64,128
  for who in new base; do
    bench_build $who v2_${who} 100 --mode models -v --model llama2-7b,llama2-70b --samples 12 \
      --batch 64,128 --pipeline cpasync2
  done
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null | awk '/Function : .*dense_wg_kernelILi64ELb1ELb0ELb1E/{p=1} p{print} p&&/EXIT/{c++} c>=3{exit}' | gzip > "$R/sass_wg64_new.txt.gz"
  finish
  grep -hE "^(FAIL|\[  (PASSED|FAILED|SKIPPED))|runs ok|wgmma path|seed=" "$R/test_wg.log" "$R/test24_wg.log" | head -30
  grep -hE "ERROR SUMMARY" "$R/memcheck.log"
  model_summaries models_new_r1 models_base_r1 models_new_r2 models_base_r2 \
    models24_new_r1 models24_base_r1 models24_new_r2 models24_base_r2 v2_new v2_base
  exit 0
fi

# s6c = session 6: where the wgmma kernels should start (dense): models
# at 17-48 rows for the automatic choice and for the wgmma path forced,
# two rounds.
if [ "$mode" = s6c ]; then
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15 --batch 17,24,32,40,48"
  for r in 1 2; do
    bench_build new auto_r$r 100 --mode models -v $B
    bench_build new wg_r$r 100 --mode models -v $B --pipeline wgmma
  done
  finish
  model_summaries auto_r1 wg_r1 auto_r2 wg_r2
  exit 0
fi

# s6t = session 6, the suites on the final tree: both GPU suites (default
# sweeps), memcheck and racecheck of the quick dense wgmma subset and of
# the quick 2:4 wgmma test, memcheck of the quick cluster test.
if [ "$mode" = s6t ]; then
  suites 300 200
  log "sanitizers"
  for tool in memcheck racecheck; do
    MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
      timeout 120 compute-sanitizer --tool $tool --print-limit 20 ./test_kernels \
      > "$R/${tool}_wg.log" 2>&1
    echo "$tool wgmma rc=$?"
    MARLIN_K24_QUICK=1 MARLIN_TEST_FILTER='*wgmma*' timeout 120 \
      compute-sanitizer --tool $tool --print-limit 20 ./test_kernels24 > "$R/${tool}_wg24.log" 2>&1
    echo "$tool wgmma24 rc=$?"
  done
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_TEST_FILTER='*gpu_cluster*' timeout 90 \
    compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels > "$R/memcheck_cluster.log" 2>&1
  echo "memcheck cluster rc=$?"
  finish
  suites_summary
  exit 0
fi

# s7a = session 7, an A/B of one switch of the wgmma kernels in the same
# binary: AB=NAME (an environment variable, default MARLIN_WG_SCATTER) set
# to 1 for the dense and 2:4 wgmma tests and memcheck (racecheck too with
# RACE_T seconds), then models dense and 2:4 at 17-128 rows with NAME=0 and
# NAME=1, two rounds, and the SASS of the 64-row dense kernels. (Run 1 of
# session 7 was this mode for MARLIN_WG_TMA, the reverted TMA pipeline.)
if [ "$mode" = s7a ]; then
  AB=${AB:-MARLIN_WG_SCATTER}
  wg_checks _ab 0 "$AB=1"
  grep -hE "^(GPU:|FAIL|\[  (PASSED|FAILED|SKIPPED))|runs ok|wgmma path|seed=" \
    "$R/test_wg_ab.log" "$R/test24_wg_ab.log" | head -30
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck_*.log "$R"/racecheck_*.log
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15 --batch 17,32,64,128"
  for r in 1 2; do
    for t in 0 1; do
      export "$AB=$t"
      bench_build new models_ab${t}_r$r 100 --mode models -v $B
      bench_build new models24_ab${t}_r$r 100 --mode models -v --sparse $B
    done
  done
  log sass
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null |
    awk '/Function :/ { p = ($0 ~ /dense_wg_kernelILi64ELb1ELb0ELb1E/) } p' > "$R/sass_wg64.txt"
  echo "sass lines $(wc -l < "$R/sass_wg64.txt")"
  finish
  model_summaries models_ab0_r1 models_ab1_r1 models_ab0_r2 models_ab1_r2 \
    models24_ab0_r1 models24_ab1_r1 models24_ab0_r2 models24_ab1_r2
  exit 0
fi

# s7t = session 7, the k-piece rules after the shared sum: --mode tune of
# the dense wgmma path (widths x stages x pieces) and of the 2:4 kernels
# (configurations, wgmma widths x pieces) on the four models at 17-128 rows.
if [ "$mode" = s7t ]; then
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch 17,32,64,128 --samples 8"
  bench_build new tune_wg 280 --mode tune --pipeline wgmma $B
  bench_build new tune24 200 --mode tune --sparse $B
  finish
  for f in tune_wg tune24; do echo "## $f"; grep -E "tune total|heuristic loses" "$R/$f.txt"; done
  exit 0
fi

# s7v = session 7, correctness of the final tree in one call: both GPU
# suites (default sweeps), memcheck of the quick dense and 2:4 wgmma
# subsets, racecheck of the quick 2:4 wgmma test and (time permitting) the
# quick dense wgmma subset.
if [ "$mode" = s7v ]; then
  suites 240 120
  log "sanitizers"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
    timeout 50 compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels \
    > "$R/memcheck_wg.log" 2>&1
  echo "memcheck wgmma rc=$?"
  MARLIN_K24_QUICK=1 MARLIN_TEST_FILTER='*wgmma*' timeout 50 \
    compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels24 > "$R/memcheck_wg24.log" 2>&1
  echo "memcheck wgmma24 rc=$?"
  MARLIN_K24_QUICK=1 MARLIN_TEST_FILTER='*wgmma*' timeout 50 \
    compute-sanitizer --tool racecheck --print-limit 20 ./test_kernels24 > "$R/racecheck_wg24.log" 2>&1
  echo "racecheck wgmma24 rc=$?"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
    timeout 60 compute-sanitizer --tool racecheck --print-limit 20 ./test_kernels \
    > "$R/racecheck_wg.log" 2>&1
  echo "racecheck wgmma rc=$?"
  finish
  suites_summary
  exit 0
fi

# s7n = session 7: ncu of the wgmma kernel on the final tree (Llama-2-7B
# qkv, the first layer timed) at m = 64 and 32, as session 5's s5ncu (ncu at
# its base clocks: for the breakdown, not for times).
if [ "$mode" = s7n ]; then
  for mm in ${NCU_M:-64 32}; do
    log "ncu dense_wg m=$mm"
    timeout 150 ncu --kernel-name regex:dense_wg --launch-skip 8 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats \
      --section InstructionStats --section SourceCounters \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__pipe_.*(tensor|gmma|alu|fma|fp16|shared).*cycles_active\.avg\.pct_of_peak_sustained_active,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active,sm__cycles_active.avg,sm__cycles_elapsed.avg" \
      ./marlin-bench --mode models --model llama2-7b --batch $mm --samples 3 --no-pdl \
      > "$R/ncu_wg_m$mm.txt" 2>&1
    echo "ncu m=$mm rc=$?"
  done
  finish
  for f in "$R"/ncu_*.txt; do
    echo "## $(basename $f)"
    grep -E "dense_|Duration|DRAM Throughput|Issued Ipc|No Eligible|Active Warps Per|Achieved Occupancy|Warp Cycles Per Issued|Executed Instructions  |sm__cycles" "$f" | head -20
    grep -E "stalled|pipe" "$f" | awk '$NF+0 > 0.2' | head -40
  done
  exit 0
fi

# s7p = session 7: PDL off for multi-wave tile-per-block wgmma launches
# (MARLIN_WG_PDL_WAVES=1, a switch of the build of run 9, not kept) against
# on, same binary, two rounds, dense and 2:4 at 128-512 rows.
if [ "$mode" = s7p ]; then
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15 --batch 128,256,512"
  for r in 1 2; do
    for t in 0 1; do
      export MARLIN_WG_PDL_WAVES=$t
      bench_build new models_pw${t}_r$r 100 --mode models -v $B
      bench_build new models24_pw${t}_r$r 100 --mode models -v --sparse $B
    done
  done
  finish
  model_summaries models_pw0_r1 models_pw1_r1 models_pw0_r2 models_pw1_r2 \
    models24_pw0_r1 models24_pw1_r1 models24_pw0_r2 models24_pw1_r2
  exit 0
fi

# s8a = session 8, an A/B of one switch of the dense wgmma kernels in the
# same binary (AB=NAME, default MARLIN_WG_SS): the floor kernel's GPU test,
# the dense wgmma test and memcheck of its quick subset with NAME=1, models
# dense at 17-128 rows with NAME=0 and NAME=1, two rounds, the SASS of the
# 64-row kernel in both forms.
if [ "$mode" = s8a ]; then
  AB=${AB:-MARLIN_WG_SS}
  log "test_kernels floor"
  MARLIN_TEST_FILTER='*floor*' timeout 60 ./test_kernels > "$R/test_floor.log" 2>&1
  echo "test_kernels floor rc=$?"
  wg_checks _ab 1 "$AB=1"
  grep -hE "^(GPU:|FAIL|\[  (PASSED|FAILED|SKIPPED))|runs ok|wgmma path|seed=" \
    "$R/test_floor.log" "$R/test_wg_ab.log" | head -30
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck_*.log "$R"/racecheck_*.log
  B="--model ${AB_MODELS:-llama2-7b,llama2-13b,llama3-8b,llama2-70b} --samples 15 --batch ${AB_BATCH:-17,32,64,128}"
  for r in 1 2; do
    for t in 0 1; do
      export "$AB=$t"
      bench_build new models_ab${t}_r$r 100 --mode models -v $B
    done
  done
  unset "$AB"
  log sass
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null |
    awk '/Function :/ { p = ($0 ~ /dense_wg_kernelILi64ELb1ELb0ELb1ELb[01]E/) } p' > "$R/sass_wg64.txt"
  echo "sass lines $(wc -l < "$R/sass_wg64.txt")"
  gzip -f "$R/sass_wg64.txt"
  finish
  model_summaries models_ab0_r1 models_ab1_r1 models_ab0_r2 models_ab1_r2
  exit 0
fi

# s8b = session 8, a kernel change against BASE: the floor test, the dense
# and 2:4 wgmma tests, memcheck of their quick subsets (racecheck too with
# RACE_T seconds), then models dense and 2:4 at 17-128 rows for this build
# and BASE, two rounds (SAMPLES, default 12), and the SASS of the 64-row
# grouped dense kernel.
if [ "$mode" = s8b ]; then
  log "test_kernels floor"
  MARLIN_TEST_FILTER='*floor*' timeout 60 ./test_kernels > "$R/test_floor.log" 2>&1
  echo "test_kernels floor rc=$?"
  wg_checks "" 0
  grep -hE "^(GPU:|FAIL|\[  (PASSED|FAILED|SKIPPED))|runs ok|wgmma path|seed=" \
    "$R/test_floor.log" "$R/test_wg.log" "$R/test24_wg.log" | head -30
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck_*.log "$R"/racecheck_*.log
  B="--model ${AB_MODELS:-llama2-7b,llama2-13b,llama3-8b,llama2-70b} --samples ${SAMPLES:-12}"
  B="$B --batch ${AB_BATCH:-17,32,64,128}"
  ab_rounds models 1 $B
  log sass
  cuobjdump -sass lib/libmarlinq.so 2>/dev/null |
    awk '/Function :/ { p = ($0 ~ /dense_wg_kernelILi64ELb1ELb0ELb1E/) } p' > "$R/sass_wg64.txt"
  echo "sass lines $(wc -l < "$R/sass_wg64.txt")"
  gzip -f "$R/sass_wg64.txt"
  finish
  model_summaries models_new_r1 models_base_r1 models_new_r2 models_base_r2 \
    models24_new_r1 models24_base_r1 models24_new_r2 models24_base_r2
  exit 0
fi

# s8c = session 8, where the wgmma path now stands against the automatic
# choice at 1-32 rows: models dense and 2:4, automatic and --pipeline wgmma
# forced, per layer (-v), at m = 1, 8, 16, 17, 24, 32, two rounds.
if [ "$mode" = s8c ]; then
  B="--model ${AB_MODELS:-llama2-7b,llama2-13b,llama3-8b,llama2-70b} --samples 12"
  B="$B --batch ${AB_BATCH:-1,8,16,17,24,32}"
  for r in 1 2; do
    bench_build new models_auto_r$r 100 --mode models -v $B
    bench_build new models_wg_r$r 100 --mode models -v --pipeline wgmma $B
    bench_build new models24_auto_r$r 100 --mode models -v --sparse $B
    bench_build new models24_wg_r$r 100 --mode models -v --sparse --pipeline wgmma $B
  done
  finish
  model_summaries models_auto_r1 models_wg_r1 models24_auto_r1 models24_wg_r1
  exit 0
fi

# s8v = session 8, the final tree: racecheck of the quick dense wgmma subset
# (RACE_T seconds, default 280), then the peak layer dense and 2:4.
if [ "$mode" = s8v ]; then
  log "racecheck wgmma"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
    timeout "${RACE_T:-280}" compute-sanitizer --tool racecheck --print-limit 20 ./test_kernels \
    > "$R/racecheck_wg.log" 2>&1
  echo "racecheck wgmma rc=$?"
  bench_build new peak 120 --mode peak --samples 8 --plot "$R/peak.png"
  bench_build new peak24 120 --mode peak --sparse --samples 8 --plot "$R/peak24.png"
  finish
  grep -hE "RACECHECK SUMMARY|runs ok|PASSED|FAILED" "$R/racecheck_wg.log"
  cat "$R/peak.txt" "$R/peak24.txt"
  exit 0
fi
# s8m = session 8, the final table: models dense and 2:4 at every batch of
# the issues with plots, four models.
if [ "$mode" = s8m ]; then
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15 --batch 1,2,4,8,16,32,64,128"
  bench_build new models 200 --mode models -v $B --plot "$R/speedup-dense.png"
  bench_build new models24 200 --mode models -v --sparse $B --plot "$R/speedup-24.png"
  finish
  model_summaries models models24
  exit 0
fi

# s8f = session 8: the launch floor - marlin-bench --mode floor (our
# kernel against a kernel that only moves the layer's bytes, launched the
# same way, best of four grids, without PDL / with PDL / with every weight
# before griddepcontrol.wait / with them prefetched into L2 before it),
# dense on all four models at m = 1, 16, 32, 64, 128, 2:4 on Llama-2-7B
# and 70B at m = 1, 16, 64, 128; Llama-2-7B dense again with
# --l2-resident (what the launch costs with DRAM out of the way).
if [ "$mode" = s8f ]; then
  bench_build new floor_dense 300 --mode floor --samples 10 --batch 1,16,32,64,128
  bench_build new floor_24 150 --mode floor --sparse --samples 10 --batch 1,16,64,128 \
    --model llama2-7b,llama2-70b
  bench_build new floor_l2 60 --mode floor --samples 10 --batch 1,16 --model llama2-7b \
    --l2-resident
  finish
  for f in floor_dense floor_24 floor_l2; do echo "## $f"; cat "$R/$f.txt"; done
  exit 0
fi

# s7l = session 7: how fast the kernels run with DRAM out of the way -
# models (dense, 2:4) for Llama-2-7B at m = 1-128 with rotated weights and
# with --l2-resident (one copy: L2 hits where a layer fits), two rounds.
if [ "$mode" = s7l ]; then
  B="--model llama2-7b --samples 15 --batch 1,16,32,64,128"
  for r in 1 2; do
    bench_build new models_rot_r$r 60 --mode models -v $B
    bench_build new models_l2_r$r 60 --mode models -v --l2-resident $B
    bench_build new models24_rot_r$r 60 --mode models -v --sparse $B
    bench_build new models24_l2_r$r 60 --mode models -v --sparse --l2-resident $B
  done
  finish
  for f in models_rot_r1 models_l2_r1 models_rot_r2 models_l2_r2 models24_rot_r1 models24_l2_r1 \
    models24_rot_r2 models24_l2_r2; do
    echo "## $f"; grep -v '^#' "$R/$f.txt"
  done
  exit 0
fi

# s6m = session 6, the models on the final tree: dense and 2:4 against
# BASE at 17-128 rows (two rounds), then every batch of the issues with
# plots for this build.
if [ "$mode" = s6m ]; then
  # RACE_T > 0: first racecheck the quick dense wgmma subset for that many
  # seconds (it outran s6t's 120)
  if [ "${RACE_T:-0}" -gt 0 ]; then
    log "racecheck wgmma"
    MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma MARLIN_TEST_FILTER='*wgmma*' \
      timeout "$RACE_T" compute-sanitizer --tool racecheck --print-limit 20 ./test_kernels \
      > "$R/racecheck_wg.log" 2>&1
    echo "racecheck wgmma rc=$?"
    grep -hE "RACECHECK SUMMARY|PASSED|FAILED" "$R/racecheck_wg.log"
  fi
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15"
  ab_rounds models 1 $B --batch 17,32,64,128
  bench_build new models 150 --mode models -v $B --batch 1,2,4,8,16,32,64,128 \
    --plot "$R/speedup-dense.png"
  bench_build new models24 150 --mode models -v --sparse $B --batch 1,2,4,8,16,32,64,128 \
    --plot "$R/speedup-24.png"
  finish
  model_summaries models models24
  exit 0
fi

# s6f = session 6, last call: the peak layer (dense and 2:4) on the final
# tree, and the v2 kernels forced at 17-48 rows (the automatic choice off
# Hopper there) against BASE, two rounds.
if [ "$mode" = s6f ]; then
  bench_build new peak 120 --mode peak --batch 1,16,64,128 --samples 12
  bench_build new peak24 120 --mode peak --sparse --batch 1,16,64,128 --samples 12
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 12 --batch 17,32,48 --pipeline cpasync2"
  ab_rounds v2 0 $B
  finish
  for f in peak peak24; do echo "## $f"; grep -v '^#' "$R/$f.txt" | head -12; done
  model_summaries v2_new_r1 v2_base_r1 v2_new_r2 v2_base_r2
  exit 0
fi

# s5final = session 5's last call: the dense GPU suite (default sweep),
# memcheck and racecheck of the quick cluster test, models dense at every
# batch of the issue against BASE at m = 1, 16 (two rounds), 2:4 models
# (kernels unchanged this session) with plots.
if [ "$mode" = s5final ]; then
  log "test_kernels (default sweep)"
  timeout 330 ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  log "sanitizers (quick cluster test)"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_TEST_FILTER='*gpu_cluster*' timeout 90 \
    compute-sanitizer --tool memcheck --print-limit 20 ./test_kernels > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_TEST_FILTER='*gpu_cluster*' timeout 120 \
    compute-sanitizer --tool racecheck --print-limit 20 ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --samples 15"
  bench_build new models 150 --mode models -v $B --batch 1,2,4,8,16,32,64,128 --plot "$R/speedup-dense.png"
  for r in 1 2; do
    bench_build new models_new_r$r 100 --mode models -v $B --batch 1,16
    bench_build base models_base_r$r 100 --mode models -v $B --batch 1,16
  done
  bench_build new models24 150 --mode models -v --sparse $B --batch 1,2,4,8,16,32,64,128 \
    --plot "$R/speedup-24.png"
  finish
  grep -E "^(GPU:|FAIL|g -?[0-9]+:|\[  (PASSED|FAILED|SKIPPED))|runs ok|cluster path|wgmma path|seed=" "$R/test.log" | head -30
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R/memcheck.log" "$R/racecheck.log"
  model_summaries models models_new_r1 models_base_r1 models_new_r2 models_base_r2 models24
  exit 0
fi

if [ "$mode" = s4final ]; then
  # session 4, final: both GPU suites in full, dense and 2:4 models at the
  # issues' batch sizes with plots, both peak layers, racecheck on the
  # wgmma family (dense quick subset, PP pipeline) and the quick 2:4 suite.
  log "test_kernels"
  timeout ${TK:-300} ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  timeout 200 ./test_kernels24 > "$R/test24.log" 2>&1
  echo "test_kernels24 rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch 1,2,4,8,16,32,64,128 --samples 15"
  bench_build new models 120 --mode models -v $B --plot "$R/models.png"
  bench_build new models24 120 --sparse --mode models -v $B --plot "$R/models24.png"
  if [ -z "${NOPEAK:-}" ]; then
    bench_build new peak 90 --mode peak --batch 1,16,32,64,128 --samples 12
    bench_build new peak24 90 --sparse --mode peak --batch 1,16,32,64,128 --samples 12
  fi
  log "racecheck"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=wgmma timeout ${TRACE:-120} \
    compute-sanitizer --tool racecheck ./test_kernels > "$R/racecheck_wg.log" 2>&1
  echo "racecheck wgmma rc=$?"
  MARLIN_K24_QUICK=1 timeout ${TRACE:-120} compute-sanitizer --tool racecheck \
    ./test_kernels24 > "$R/racecheck24.log" 2>&1
  echo "racecheck24 rc=$?"
  finish
  grep -E "runs ok|wgmma path|FAIL|^\[  (PASSED|FAILED)" "$R/test.log" "$R/test24.log" | head -20
  model_summaries models models24 peak peak24
  for f in racecheck_wg racecheck24; do
    echo "## $f"; grep -E "RACECHECK SUMMARY|runs ok|PASSED|FAILED" "$R/$f.log" | tail -4
  done
  exit 0
fi

# (s4pp, session 4 runs 6-7, timed the ping-pong pipeline against the stage
# barrier through an environment switch that went once it was the default:
# the mode is in the history, commit e0eb610 and before.)

if [ "$mode" = r5 ]; then
  log "tests 2:4"
  timeout 100 ./test_kernels24 > "$R/test24.log" 2>&1
  echo "test_kernels24 rc=$?"
  log "tune 2:4"
  timeout 200 ./marlin-bench --sparse --mode tune --batch 1,16 --samples 12 \
    --csv "$R/tune24.csv" > "$R/tune24.txt" 2>&1
  echo "tune24 rc=$?"
  B="--model llama2-7b,llama2-13b,llama3-8b,llama2-70b --batch 1,16,64 --samples 12"
  for who in new base; do bench_build $who models24_$who 60 --sparse --mode models -v $B; done
  MARLIN_K24_QUICK=1 MARLIN_K24_PDL=1 timeout 60 compute-sanitizer --tool memcheck \
    --leak-check no ./test_kernels24 > "$R/memcheck24.log" 2>&1
  echo "memcheck24 rc=$?"
  finish
  grep -E "^(FAIL|\[  (PASSED|FAILED))|seed=|cluster path|ERROR|Failure" "$R/test24.log" | head -20
  grep -hE "ERROR SUMMARY" "$R"/memcheck24.log
  grep -E "tune total|m +(1|16) " "$R/tune24.txt" | head -40
  for f in models24_new models24_base; do
    echo "## $f"; grep -v '^#' "$R/$f.txt" | grep -v '^  '
  done
  exit 0
fi

if [ "$mode" = r4 ] || [ "$mode" = final ]; then
  suites 120 80
  log trace
  timeout 40 ./marlin-bench --mode trace --model llama2-7b --batch 1,16 --csv "$R/trace.csv" \
    > "$R/trace.txt" 2>&1
  echo "trace rc=$?"
  for who in new base; do
    bench_build $who models_$who 90 --mode models -v --samples 15 --plot "$R/models_$who.png"
  done
  log "models 2:4"
  timeout 90 ./marlin-bench --sparse --mode models -v --samples 15 --csv "$R/models24.csv" \
    --plot "$R/models24.png" > "$R/models24.txt" 2>&1
  echo "models24 rc=$?"
  bench_build base models24_base 90 --sparse --mode models -v --samples 15
  log peak
  timeout 40 ./marlin-bench --mode peak --samples 15 --csv "$R/peak.csv" --plot "$R/peak.png" \
    > "$R/peak.txt" 2>&1
  echo "peak rc=$?"
  timeout 40 ./marlin-bench --sparse --mode peak --samples 15 --csv "$R/peak24.csv" \
    --plot "$R/peak24.png" > "$R/peak24.txt" 2>&1
  echo "peak24 rc=$?"
  if [ "$mode" = final ]; then
    log sustained
    timeout $(( ${SUSTAINED_SECONDS:-30} + 40 )) ./marlin-bench --mode sustained \
      --model llama2-7b --seconds ${SUSTAINED_SECONDS:-30} --csv "$R/sustained.csv" \
      --plot "$R/sustained.png" > "$R/sustained.txt" 2>&1
    echo "sustained rc=$?"
    log sanitizers
    MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 60 compute-sanitizer \
      --tool memcheck --leak-check no ./test_kernels > "$R/memcheck.log" 2>&1
    echo "memcheck rc=$?"
    MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 120 compute-sanitizer \
      --tool racecheck ./test_kernels > "$R/racecheck.log" 2>&1
    echo "racecheck rc=$?"
    MARLIN_K24_QUICK=1 MARLIN_K24_PDL=1 timeout 60 compute-sanitizer --tool memcheck \
      --leak-check no ./test_kernels24 > "$R/memcheck24.log" 2>&1
    echo "memcheck24 rc=$?"
    MARLIN_K24_QUICK=2 timeout 60 compute-sanitizer --tool racecheck ./test_kernels24 \
      > "$R/racecheck24.log" 2>&1
    echo "racecheck24 rc=$?"
  fi
  finish
  grep -E "^(FAIL|\[  (PASSED|FAILED))|seed=|cluster path" "$R/test.log" "$R/test24.log" | head -20
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck*.log "$R"/racecheck*.log 2>/dev/null
  grep -v '^#' "$R/trace.txt"
  model_summaries models_new models_base models24 models24_base peak peak24
  [ -f "$R/sustained.txt" ] && tail -4 "$R/sustained.txt"
  exit 0
fi

if [ "$mode" = r3 ]; then
  suites 120 80
  log "tune v2 + cluster"
  timeout 150 ./marlin-bench --mode tune --pipeline cpasync2 --batch 1,16 --samples 12 \
    --csv "$R/tune.csv" > "$R/tune.txt" 2>&1
  echo "tune rc=$?"
  log trace
  for tl in 16x128x128/s2/b2/c8 16x128x256/s2/b2/c4 16x256x128/s2/b2/c3; do
    timeout 30 ./marlin-bench --mode trace --model llama2-7b --batch 1 --tile $tl \
      --csv "$R/trace_${tl//\//_}.csv" >> "$R/trace.txt" 2>&1
  done
  echo "trace rc=$?"
  B="--model llama2-7b,llama2-70b --batch 1,16,64,128 --samples 12"
  for who in new base; do
    bench_build $who models_$who 60 --mode models -v $B
    bench_build $who models24_$who 60 --sparse --mode models -v $B
  done
  log sanitizers
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 60 compute-sanitizer \
    --tool memcheck --leak-check no ./test_kernels > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 60 compute-sanitizer \
    --tool racecheck ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  MARLIN_K24_QUICK=2 MARLIN_K24_PDL=1 timeout 40 compute-sanitizer --tool memcheck --leak-check no \
    ./test_kernels24 > "$R/memcheck24.log" 2>&1
  echo "memcheck24 rc=$?"
  finish
  grep -E "^(FAIL|\[  (PASSED|FAILED))|seed=|cluster path" "$R/test.log" "$R/test24.log" | head -20
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$R"/memcheck*.log "$R"/racecheck*.log
  grep -E "tune total|m +(1|16) " "$R/tune.txt" | head -40
  grep -v '^#' "$R/trace.txt"
  model_summaries models_new models_base models24_new models24_base
  exit 0
fi

if [ "$mode" = v2confirm ]; then
  log "smoke (quick subset)"
  MARLIN_KERNEL_TEST_QUICK=1 timeout 30 ./test_kernels > "$R/smoke.log" 2>&1
  rc=$?
  echo "smoke rc=$rc"
  if [ $rc -eq 124 ]; then kill $smi 2>/dev/null; log "abandoned: smoke timed out"; exit 1; fi
  log "tests (default sweep)"
  MARLIN_KERNEL_TEST_DUMP=$R timeout 60 ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  B="--batch 1,8,16,32,48,64,128 --samples 15"
  for pipe in auto cpasync; do
    log "bench models ($pipe)"
    timeout 30 ./marlin-bench --mode models -v $B --pipeline $pipe --csv "$R/models_$pipe.csv" \
      > "$R/models_$pipe.txt" 2>&1
    echo "models $pipe rc=$?"
  done
  for pipe in auto cpasync; do
    log "bench peak ($pipe)"
    timeout 20 ./marlin-bench --mode peak --batch 1,16,128 --samples 12 --pipeline $pipe \
      --csv "$R/peak_$pipe.csv" > "$R/peak_$pipe.txt" 2>&1
    echo "peak $pipe rc=$?"
  done
  log "ncu (v2, Llama-2-7B qkv m=16)"
  timeout 30 ncu --kernel-name regex:dense_v2_kernel --launch-skip 40 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
    --section InstructionStats --section SchedulerStats \
    ./marlin-bench --mode models --model llama2-7b --batch 16 --samples 3 --no-pdl \
    > "$R/ncu_m16.txt" 2>&1
  echo "ncu rc=$?"
  kill $smi 2>/dev/null
  log done
  tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" .
  echo "------------------------------------------------------------ summaries"
  grep -E "^(GPU:|FAIL|g -?[0-9]+:|\[  (PASSED|FAILED|SKIPPED)|seed=)" "$R/test.log" | head -20
  for pipe in auto cpasync; do echo "# $pipe"; grep -v "^  " "$R/models_$pipe.txt" | grep -v '^#'; done
  cat "$R/peak_auto.txt" "$R/peak_cpasync.txt" 2>/dev/null | grep -v '^#'
  grep -hE "dense_v2|Duration|DRAM Throughput|SM Active Cycles|Issued Warp|Executed Instructions  |No Eligible|Registers Per|Achieved Occupancy" "$R/ncu_m16.txt" | head -14
  echo "TEST VERDICT: smoke $(grep -cE '^\[  FAILED' "$R/smoke.log") / full $(grep -c '^FAIL' "$R/test.log") failing cases, $(grep -cE '^\[  FAILED' "$R/test.log") failed-suite lines"
  exit 0
fi

if [ "$mode" = v2 ]; then
  log "smoke (quick subset)"
  MARLIN_KERNEL_TEST_QUICK=1 timeout 40 ./test_kernels > "$R/smoke.log" 2>&1
  rc=$?
  echo "smoke rc=$rc"
  if [ $rc -eq 124 ]; then
    kill $smi 2>/dev/null
    tail -20 "$R/smoke.log"
    log "abandoned: smoke run timed out"
    exit 1
  fi
  log "tests (default sweep)"
  MARLIN_KERNEL_TEST_DUMP=$R timeout 80 ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  B="--batch 1,16,32,64,128 --samples 12"
  log "bench models (auto = v2)"
  timeout 40 ./marlin-bench --mode models -v $B --csv "$R/models_auto.csv" > "$R/models_auto.txt" 2>&1
  echo "models auto rc=$?"
  log "bench models (cpasync = original kernel and heuristic)"
  timeout 40 ./marlin-bench --mode models -v $B --pipeline cpasync --csv "$R/models_cpasync.csv" \
    > "$R/models_cpasync.txt" 2>&1
  echo "models cpasync rc=$?"
  log "bench tune (v2 shapes)"
  timeout 60 ./marlin-bench --mode tune --model llama2-7b,llama2-70b --batch 1,16,32,64,128 \
    --samples 8 --pipeline cpasync2 --csv "$R/tune_v2.csv" > "$R/tune_v2.txt" 2>&1
  echo "tune rc=$?"
  for pipe in auto cpasync; do
    log "bench peak ($pipe)"
    timeout 20 ./marlin-bench --mode peak --batch 1,16,128 --samples 12 --pipeline $pipe \
      --csv "$R/peak_$pipe.csv" > "$R/peak_$pipe.txt" 2>&1
    echo "peak $pipe rc=$?"
  done
  log "memcheck (v2)"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 35 compute-sanitizer \
    --tool memcheck --leak-check no ./test_kernels > "$R/memcheck.log" 2>&1
  echo "memcheck rc=$?"
  log "racecheck (v2)"
  MARLIN_KERNEL_TEST_QUICK=1 MARLIN_KERNEL_TEST_PIPE=cpasync2 timeout 40 compute-sanitizer \
    --tool racecheck ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
  kill $smi 2>/dev/null
  log done
  tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" .
  echo "------------------------------------------------------------ summaries"
  grep -E "^(GPU:|FAIL|g -?[0-9]+:|\[  (PASSED|FAILED|SKIPPED)|seed=)" "$R/test.log" | head -30
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Race reported|hazard" "$R/memcheck.log" "$R/racecheck.log" 2>/dev/null | head -8
  tail -3 "$R/racecheck.log"
  for f in models_auto models_cpasync; do echo "# $f"; grep -v "^  " "$R/$f.txt" | grep -v '^#'; done
  grep -E "tune total|loses" "$R/tune_v2.txt" | head -30
  cat "$R/peak_auto.txt" "$R/peak_cpasync.txt" 2>/dev/null | grep -v '^#'
  echo "TEST VERDICT: smoke $(grep -cE '^\[  FAILED' "$R/smoke.log") / full $(grep -c '^FAIL' "$R/test.log") failing cases, $(grep -cE '^\[  FAILED' "$R/test.log") failed-suite lines"
  exit 0
fi

if [ "$mode" = explore ]; then
  # A hung kernel must not eat the whole call: a short smoke run first.
  log "smoke (quick subset)"
  MARLIN_KERNEL_TEST_QUICK=1 timeout 40 ./test_kernels > "$R/smoke.log" 2>&1
  rc=$?
  echo "smoke rc=$rc"
  if [ $rc -eq 124 ]; then
    kill $smi 2>/dev/null
    tail -20 "$R/smoke.log"
    log "abandoned: smoke run timed out"
    exit 1
  fi
  log "tests (default sweep)"
  MARLIN_KERNEL_TEST_DUMP=$R timeout 90 ./test_kernels > "$R/test.log" 2>&1
  echo "test_kernels rc=$?"
  for pipe in bulk cpasync; do
    log "bench models ($pipe)"
    timeout 100 ./marlin-bench --mode models -v --model llama2-7b,llama2-70b \
      --batch 1,16,32,64,128 --samples 15 --pipeline $pipe --csv "$R/models_$pipe.csv" \
      > "$R/models_$pipe.txt" 2>&1
    echo "models $pipe rc=$?"
  done
  log "bench tune (bulk)"
  timeout 100 ./marlin-bench --mode tune --model llama2-7b --batch 1,16,64,128 --samples 10 \
    --pipeline bulk --csv "$R/tune.csv" > "$R/tune.txt" 2>&1
  echo "tune rc=$?"
  log "ncu (bulk, Llama-2-7B m=16)"
  for mb in 16; do
    timeout 60 ncu --kernel-name regex:dense_bulk_kernel --launch-skip 40 --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats \
      --section LaunchStats --section InstructionStats --section SchedulerStats \
      ./marlin-bench --mode models --model llama2-7b --batch $mb --samples 3 --no-pdl \
      > "$R/ncu_m$mb.txt" 2>&1
    echo "ncu m=$mb rc=$?"
  done
  kill $smi 2>/dev/null
  log done
  tar czf "${OUT:-/tmp/out}/results.tgz" -C "$R" .
  echo "------------------------------------------------------------ summaries"
  grep -E "^(GPU:|FAIL|g -?[0-9]+:|k +[0-9]+ n|\[  (PASSED|FAILED|SKIPPED)|seed=)" "$R/test.log" | head -40
  for pipe in bulk cpasync; do echo "# $pipe"; grep -v "^  " "$R/models_$pipe.txt"; done
  grep -E "tune total|loses" "$R/tune.txt" | head -20
  grep -hE "dense_bulk|Duration|DRAM Throughput|SM Active Cycles|Elapsed Cycles|Executed Ipc A|Issued Warp|Executed Instructions  |No Eligible|Registers Per" "$R"/ncu_m*.txt | head -40
  echo "TEST VERDICT: $(grep -c '^FAIL' "$R/test.log") failing cases; $(grep -cE '^\[  FAILED' "$R/test.log") failed-suite lines"
  exit 0
fi

# quick|full: the confirmation pass. Ordered by importance, each step
# time-limited, so a call cut short keeps the results that matter most.
log "smoke (quick subset)"
MARLIN_KERNEL_TEST_QUICK=1 timeout 40 ./test_kernels > "$R/smoke.log" 2>&1
rc=$?
echo "smoke rc=$rc"
if [ $rc -eq 124 ]; then
  kill $smi 2>/dev/null
  tail -20 "$R/smoke.log"
  log "abandoned: smoke run timed out"
  exit 1
fi
log "tests ($mode)"
if [ "$mode" = full ]; then export MARLIN_KERNEL_TEST_FULL=1; fi
MARLIN_KERNEL_TEST_DUMP=$R timeout 150 ./test_kernels > "$R/test.log" 2>&1
echo "test_kernels rc=$?"
unset MARLIN_KERNEL_TEST_FULL

log "bench models (auto)"
timeout 90 ./marlin-bench --mode models -v --samples 20 --csv "$R/models.csv" \
  --plot "$R/models.png" > "$R/models.txt" 2>&1
echo "models rc=$?"
# The other pipelines on the same card, same call: the baseline and the
# alternatives the automatic choice was made against.
for pipe in ${COMPARE_PIPES:-bulk mbar}; do
  log "bench models ($pipe)"
  timeout 45 ./marlin-bench --mode models -v --model llama2-7b,llama2-70b \
    --batch 1,16,32,64,128 --samples 15 --pipeline $pipe --csv "$R/models_$pipe.csv" \
    > "$R/models_$pipe.txt" 2>&1
  echo "models $pipe rc=$?"
done
log "bench tune"
timeout 60 ./marlin-bench --mode tune --model llama2-7b,llama2-70b --batch 1,16,64,128 \
  --samples 10 --pipeline ${TUNE_PIPE:-cpasync} --csv "$R/tune.csv" > "$R/tune.txt" 2>&1
echo "tune rc=$?"
log "bench peak"
timeout 40 ./marlin-bench --mode peak --samples 15 --csv "$R/peak.csv" --plot "$R/peak.png" \
  > "$R/peak.txt" 2>&1
echo "peak rc=$?"
secs=${SUSTAINED_SECONDS:-60}
log "bench sustained ${secs}s"
timeout $((secs + 30)) ./marlin-bench --mode sustained --model llama2-7b --seconds "$secs" \
  --csv "$R/sustained.csv" --plot "$R/sustained.png" > "$R/sustained.txt" 2>&1
echo "sustained rc=$?"

log memcheck
MARLIN_KERNEL_TEST_QUICK=1 timeout 60 compute-sanitizer --tool memcheck --leak-check no \
  ./test_kernels > "$R/memcheck.log" 2>&1
echo "memcheck rc=$?"
if [ "${RACECHECK:-1}" = 1 ]; then
  log racecheck
  MARLIN_KERNEL_TEST_QUICK=1 timeout 90 compute-sanitizer --tool racecheck \
    ./test_kernels > "$R/racecheck.log" 2>&1
  echo "racecheck rc=$?"
fi

log "ncu (Llama-2-7B qkv, m=16 and m=128)"
for mb in 16 128; do
  timeout 40 ncu --kernel-name "regex:${NCU_KERNEL:-dense_kernel}" --launch-skip 40 \
    --launch-count 1 --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section LaunchStats --section InstructionStats --section SchedulerStats \
    --print-details all \
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
grep -v "^  " "$R/models.txt"
for pipe in ${COMPARE_PIPES:-bulk mbar}; do
  echo "# $pipe"; grep -v "^  " "$R/models_$pipe.txt" | grep -v '^#'
done
grep -E "tune total|loses" "$R/tune.txt" | head -24
cat "$R/peak.txt"
tail -3 "$R/sustained.txt"
grep -hE "dense_|DRAM Throughput|Duration|SM Active Cycles|Issued Warp|Executed Instructions  |No Eligible" "$R"/ncu_m*.txt | head -24
echo "TEST VERDICT: $(grep -c '^FAIL' "$R/test.log") failing cases; $(grep -cE '^\[  FAILED' "$R/test.log") failed-suite lines; sanitizers: $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$R/memcheck.log" "$R/racecheck.log" 2>/dev/null | tr '\n' ' ')"
