#!/usr/bin/env bash
# Data-free pipeline throughput (issue 3): a generated checkpoint with
# Llama-2-7B-shaped layers, quantized with RTN (+ pack + write) on all
# cores; GB/s of FP16 input against memcpy measured in the same session, and
# peak RSS against the largest tensor.
#   scripts/bench-rtn.sh BUILD_DIR WORK_DIR [LAYERS]
set -euo pipefail
B=${1:?build dir}; W=${2:?work dir}; L=${3:-2}
mkdir -p "$W"
M=$W/llama2-7b-$L
[[ -d $M ]] || "$B"/marlin-synth "$M" --preset llama2-7b --layers "$L" -q
cat "$M"/*.safetensors >/dev/null   # page cache warm: we time the tool, not the disk
echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$B"/marlin-inspect "$M" | tail -3
echo "# memcpy (same session):"
"$B"/marlin-bench-io --runs 20 2>&1 | grep -i -E "memcpy" | head -4
for args in "--no-clip --format gptq" "--format gptq" "--no-clip --format all" "--format all"; do
  rm -rf "$W/q"
  /usr/bin/time -v "$B"/marlin-quantize "$M" "$W/q" $args 2>"$W/time.log" | tail -1
  echo "    [$args] $(grep -E 'Maximum resident' "$W/time.log" | sed 's/^\s*//'); user $(sed -n 's/^\s*User time (seconds): //p' "$W/time.log") s, sys $(sed -n 's/^\s*System time (seconds): //p' "$W/time.log") s, wall $(sed -n 's/^\s*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$W/time.log")"
done
python3 - "$M" <<'PY' 2>/dev/null || true
import json, struct, sys, glob
big = 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    b = open(f, "rb").read(8); n = struct.unpack("<Q", b)[0]
    h = json.loads(open(f, "rb").read(8 + n)[8:])
    for k, v in h.items():
        if k == "__metadata__": continue
        e = 1
        for d in v["shape"]: e *= d
        big = max(big, e)
print(f"    largest tensor: {big} elements = {big*2/1e6:.0f} MB fp16, {big*4/1e6:.0f} MB fp32")
PY
