#!/usr/bin/env bash
# device-verify.sh - one call on a lent GPU for the end-to-end check of
# issue 5/6: marlin-verify --gpu on real checkpoints (the shared 13M model
# quantized every way, and a Llama-2-7B-shaped checkpoint), i.e. our Marlin
# and Sparse-Marlin kernels on every packed layer against the CPU reference
# and cuBLAS FP16 on the original weights.
#
# Usage (here):  scripts/device-verify.sh pack DIR  copies the build-final
#                  tools (Release, sm_90, shared libmarlinq), the shared model
#                  and calibration tokens into DIR (git-ignored .devcarry/...)
#                (there): bash run.sh       prints a summary, JSON reports in $OUT
set -u
if [ "${1:-}" = pack ]; then
  dst=${2:?destination folder}
  src=$(cd "$(dirname "$0")/.." && pwd)
  sh=${MARLIN_SHARED_DIR:-$src/../shared}
  rm -rf "$dst"; mkdir -p "$dst/bin" "$dst/data"
  for t in marlin-quantize marlin-verify marlin-synth marlin-inspect marlin-bench; do
    cp "$src/build-final/$t" "$dst/bin/"
  done
  cp "$src/build-final/tests/test_kernels" "$src/build-final/tests/test_kernels24" "$dst/bin/"
  cp -L /usr/lib/x86_64-linux-gnu/libcmocka.so.0 "$dst/bin/"
  cp -L "$src/build-final/libmarlinq.so" "$dst/bin/"
  strip --strip-debug "$dst"/bin/* 2>/dev/null
  cp -r "$sh/models/shakespeare-llama-13m" "$dst/data/model"
  cp "$sh/data/shakespeare/calib-128x256.safetensors" "$dst/data/calib.safetensors"
  cp "$0" "$dst/run.sh"
  du -sh "$dst"
  exit 0
fi

cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
R=${OUT:-/tmp/out}; mkdir -p "$R"
B=bin; M=data/model; W=/tmp/mv; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,ecc.mode.current --format=csv
fails=0
# the merged kernels: quick GPU suites (the helpers ran the full ones)
MARLIN_KERNEL_TEST_QUICK=1 timeout 120 $B/test_kernels > $R/test_kernels.txt 2>&1; rc=$?
echo "test_kernels (quick): rc=$rc $(grep -E 'PASSED|FAILED' $R/test_kernels.txt | tail -1)"
[ $rc = 0 ] || fails=$((fails+1))
# SKIP24=1: the 2:4 suite ran in the same session's kernel call already
if [ -z "${SKIP24:-}" ]; then
  timeout 120 $B/test_kernels24 > $R/test_kernels24.txt 2>&1; rc=$?
  echo "test_kernels24: rc=$rc $(grep -E 'PASSED|FAILED' $R/test_kernels24.txt | tail -1)"
  [ $rc = 0 ] || fails=$((fails+1))
fi
check() { # name, quantize options...
  local name=$1; shift
  timeout 120 $B/marlin-quantize $M $W/$name --force -q "$@" || { echo "QUANTIZE FAIL $name"; fails=$((fails+1)); return; }
  timeout 120 $B/marlin-verify $W/$name --ref $M --gpu --json $R/verify-$name.json > $R/verify-$name.txt 2>&1
  local rc=$?
  echo "$name: rc=$rc $(tail -1 $R/verify-$name.txt)"
  [ $rc = 0 ] || { fails=$((fails+1)); tail -5 $R/verify-$name.txt; }
}
date +%T
check rtn-g128 --format all --group-size 128
check rtn-g64 --format marlin --group-size 64
check rtn-g32 --format marlin --group-size 32
check rtn-pc --format marlin --group-size -1
check gptq-g128 --format all --calib data/calib.safetensors --calib-rows 32
check gptq-act --format marlin --calib data/calib.safetensors --calib-rows 32 --act-order
check s24-magnitude --format all --sparse 2:4
check s24-sparsegpt --format marlin --sparse 2:4 --calib data/calib.safetensors --calib-rows 32
check s24-pc --format marlin --sparse 2:4 --group-size -1
# real activations of the original model (first 256 tokens of a calibration row)
for q in rtn-g128 gptq-g128 s24-sparsegpt; do
  timeout 120 $B/marlin-verify $W/$q --ref $M --gpu --calib data/calib.safetensors --batch 256 \
    --json $R/verify-$q-calib.json > $R/verify-$q-calib.txt 2>&1
  rc=$?
  echo "$q (calibration activations): rc=$rc $(tail -1 $R/verify-$q-calib.txt)"
  [ $rc = 0 ] || { fails=$((fails+1)); tail -5 $R/verify-$q-calib.txt; }
done
date +%T
# Llama-2-7B shapes (4096/11008), two decoder layers, batch 1, 16, 17, 32,
# 48, 64 and 128 (above 16 rows the Hopper wgmma path on sm_90, dense
# since session 6; the o_proj at 17-32 rows the cluster path)
timeout 120 $B/marlin-synth $W/l7 --preset llama2-7b --layers 2 -q --force
timeout 120 $B/marlin-quantize $W/l7 $W/l7q --format marlin -q --force --no-clip
timeout 120 $B/marlin-quantize $W/l7 $W/l7s --format marlin --sparse 2:4 -q --force --no-clip
for mb in 1 16 17 32 48 64 128; do
  for q in l7q l7s; do
    timeout 150 $B/marlin-verify $W/$q --ref $W/l7 --gpu --batch $mb --json $R/verify-$q-m$mb.json > $R/verify-$q-m$mb.txt 2>&1
    rc=$?
    echo "$q m=$mb: rc=$rc $(tail -1 $R/verify-$q-m$mb.txt)"
    [ $rc = 0 ] || { fails=$((fails+1)); tail -5 $R/verify-$q-m$mb.txt; }
  done
done
date +%T
# one same-run record of both kernels on Llama-2-7B shapes
timeout 90 $B/marlin-bench --mode models --model llama2-7b --batch 1,16,64,128 > $R/bench-dense.txt 2>&1
echo "bench dense rc=$?"; tail -12 $R/bench-dense.txt
timeout 90 $B/marlin-bench --mode models --model llama2-7b --batch 1,16,32,64,128 --sparse > $R/bench-24.txt 2>&1
echo "bench 2:4 rc=$?"; tail -12 $R/bench-24.txt
date +%T
tar czf $R/verify-all.tgz -C $R $(cd $R && ls verify-*.json verify-*.txt test_*.txt bench-*.txt) 2>/dev/null
rm -f $R/verify-*.json $R/verify-*.txt $R/test_*.txt $R/bench-*.txt
echo "device-verify: $fails failure(s)"
