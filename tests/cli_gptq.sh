#!/usr/bin/env bash
# GPTQ end to end on the shared 13M Llama with real calibration tokens
# (few rows, to stay fast): output error below RTN's on the same inputs,
# verify passes, stored Hessians reproduce the run exactly, a run killed
# (SIGKILL) after a layer resumes from the cache and writes a byte-identical
# checkpoint, marlin-eval reads the result; CLI usage errors.
set -euo pipefail
B=${MARLIN_BINARY_DIR:?}
SH=${MARLIN_SHARED_DIR:-/nonexistent}
M=$SH/models/shakespeare-llama-13m
C=$SH/data/shakespeare/calib-128x256.safetensors
V=$SH/data/shakespeare/val-windows-256.safetensors
if [[ ! -d "$M" || ! -f "$C" ]]; then echo "SKIP: shared model/data not found"; exit 77; fi
T=$(mktemp -d /tmp/marlin-cli-gptq-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
Q="$B/marlin-quantize $M"
ROWS="--calib-rows 8 --threads 2"

# 1. GPTQ g128, compared with RTN on the same calibration inputs
$Q "$T/g" --calib "$C" $ROWS --compare-rtn --report "$T/g.json" -q || fail "gptq"
"$B"/marlin-verify "$T/g" --ref "$M" -q >/dev/null || fail "verify gptq"
if python3 -c 'import json' 2>/dev/null; then
  python3 - "$T/g.json" <<'PY' || fail "GPTQ output error not below RTN's"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["method"] == "gptq" and len(r["layers"]) == 28
for l in r["layers"]:
    assert l["rel_out_err"] is not None and l["rtn_out_err"] is not None, l
    assert l["rel_out_err"] < l["rtn_out_err"], (l["name"], l["rel_out_err"], l["rtn_out_err"])
print("gptq < rtn output error on all 28 layers")
PY
fi

# 2. stored Hessians: the same settings give the same bytes without any
#    forward pass; other settings run from them too
$Q "$T/h1" --calib "$C" $ROWS --save-hessians "$T/H" -q || fail "save-hessians"
ls "$T/H" | grep -q 'layer0003-down.hess.zst' || fail "hessian files missing"
cmp "$T/g/model.safetensors" "$T/h1/model.safetensors" || fail "--save-hessians changed the output"
$Q "$T/h2" --hessians "$T/H" --threads 2 -q --report "$T/h2.json" || fail "--hessians"
if python3 -c 'import json' 2>/dev/null; then
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert all(l["rtn_out_err"] is None for l in r["layers"])' "$T/h2.json" ||
    fail "rtn_out_err reported without --compare-rtn"
fi
cmp "$T/h1/model.safetensors" "$T/h2/model.safetensors" || fail "stored Hessians do not reproduce the run"
$Q "$T/h3" --hessians "$T/H" --group-size 64 --act-order --threads 2 -q || fail "--hessians g64 act-order"
"$B"/marlin-verify "$T/h3" --ref "$M" -q >/dev/null || fail "verify h3"
$Q "$T/h4" --hessians "$T/H" --group-size 32 --threads 2 -q 2>/dev/null &&
  [[ -d $T/h4 ]] || fail "--hessians g32"

# 2b. SparseGPT 2:4 (joint pruning + GPTQ) in both formats verifies, and
#     its output error beats magnitude pruning + RTN on the same inputs
$Q "$T/s" --calib "$C" $ROWS --sparse 2:4 --format all --compare-rtn --report "$T/s.json" -q || fail "sparsegpt"
"$B"/marlin-verify "$T/s" --ref "$M" -q >/dev/null || fail "verify sparsegpt"
if python3 -c 'import json' 2>/dev/null; then
  python3 - "$T/s.json" <<'PY' || fail "SparseGPT not below magnitude+RTN"
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["layers"]:
    assert l["rel_out_err"] < l["rtn_out_err"], (l["name"], l["rel_out_err"], l["rtn_out_err"])
PY
fi

# 3. kill -9 after layer 1, then the same command resumes at layer 2
set +e
MARLIN_FAULT_KILL_AFTER_LAYER=1 $Q "$T/r" --calib "$C" $ROWS --cache "$T/cache" -q 2>/dev/null
rc=$?
set -e
[[ $rc == 137 ]] || fail "fault injection: exit $rc, want 137 (SIGKILL)"
[[ ! -e $T/r ]] || fail "killed run left an output folder"
$Q "$T/r" --calib "$C" $ROWS --cache "$T/cache" 2>"$T/log" >/dev/null || fail "resume"
grep -q "resuming from layer 2" "$T/log" || fail "did not resume: $(cat "$T/log")"
cmp "$T/g/model.safetensors" "$T/r/model.safetensors" || fail "resumed checkpoint differs"

# 4. the quantized checkpoint evaluates through the same forward
if [[ -f $V ]]; then
  "$B"/marlin-eval "$T/g" --tokens "$V" --rows 4 --threads 2 -q >"$T/ppl" || fail "eval"
  grep -Eq '^perplexity [0-9.]+ nll [0-9.]+ tokens 1020$' "$T/ppl" || fail "eval line: $(cat "$T/ppl")"
fi

# 5. usage
set +e
$Q "$T/u" --method gptq 2>/dev/null; [[ $? == 2 ]] || fail "gptq without --calib: want exit 2"
$Q "$T/u" --method rtn --calib "$C" 2>/dev/null; [[ $? == 2 ]] || fail "rtn with --calib: want exit 2"
$Q "$T/u" --calib "$C" --sparse 2:4 --act-order 2>/dev/null; [[ $? == 1 ]] || fail "2:4 + act-order: want exit 1"
set -e
[[ ! -e $T/u ]] || fail "usage errors wrote output"
echo "ok: gptq"
