#!/usr/bin/env bash
# marlin-quantize + marlin-verify on the shared 13M Llama (real HF shards):
# every group size and format, verify passes; the written checkpoints are
# accepted by Python's safetensors package and an independent Python
# dequantizer (tests/py/marlin_dequant.py, written from the format facts)
# agrees with our verify numbers; CLI contract (exit codes, one-line errors,
# nothing written on failure).
set -euo pipefail
B=${MARLIN_BINARY_DIR:?}
S=${MARLIN_SOURCE_DIR:?}
M=${MARLIN_SHARED_DIR:-/nonexistent}/models/shakespeare-llama-13m
if [[ ! -d "$M" ]]; then echo "SKIP: $M not found (needs ../shared)"; exit 77; fi
T=$(mktemp -d /tmp/marlin-cli-quantize-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

have_py=0
if python3 -c 'import safetensors, numpy' 2>/dev/null; then have_py=1
else echo "note: python safetensors/numpy missing: cross-checks skipped"; fi

check_py() { # $1 = quantized folder (one format), $2 = verify json
  [[ $have_py == 1 ]] || return 0
  python3 - "$1" "$2" "$M" "$S/tests/py" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[4])
import marlin_dequant as md
from safetensors.numpy import load_file
import glob
out, vjson, ref = sys.argv[1:4]
for f in glob.glob(out + "/*.safetensors"):
    load_file(f)  # the reference reader accepts our file
ours = {l["name"]: l["rel_weight_err"] for l in json.load(open(vjson))["layers"]}
ck, rc = md.Checkpoint(out), md.Checkpoint(ref)
n = 0
for p, fmt, W, rel, maxabs in md.layer_errors(ck, rc):
    assert p in ours, p
    assert abs(rel - ours[p]) <= 1e-6 * max(1.0, rel), (p, rel, ours[p])
    n += 1
assert n == len(ours) and n > 0, (n, len(ours))
print(f"python cross-check: {n} layers agree")
PY
}

for g in 128 64 32 -1; do
  fmts="all"; [[ $g == 128 ]] && fmts="gptq marlin all"
  for f in $fmts; do
    o=$T/q_${g}_$f
    "$B"/marlin-quantize "$M" "$o" --group-size "$g" --format "$f" -q --threads 2 \
      --report "$T/r.json" || fail "quantize g=$g f=$f"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["layers"])==28 and r["method"]=="rtn"' "$T/r.json" 2>/dev/null ||
      [[ $have_py == 0 ]] || fail "report g=$g f=$f"
    "$B"/marlin-verify "$o" --ref "$M" -q --json "$T/v.json" >/dev/null || fail "verify g=$g f=$f"
    if [[ $f == all ]]; then
      check_py "$o/gptq" "$T/v.json"
      [[ $have_py == 0 ]] || python3 "$S/tests/py/marlin_dequant.py" compare "$o/gptq" "$o/marlin" >/dev/null ||
        fail "python: gptq and marlin exports differ (g=$g)"
    else
      check_py "$o" "$T/v.json"
    fi
  done
done
echo "ok: all group sizes and formats quantize and verify"

# marlin-pack: repacking our GPTQ export gives the very bytes of our Marlin
# export (same codes, one layout definition), and it verifies
for g in 128 -1; do
  "$B"/marlin-pack "$T/q_${g}_all/gptq" "$T/rp_$g" -q --threads 2 || fail "marlin-pack g=$g"
  cmp "$T/rp_$g/model.safetensors" "$T/q_${g}_all/marlin/model.safetensors" || fail "repack differs g=$g"
done
"$B"/marlin-verify "$T/rp_128" --ref "$M" -q >/dev/null || fail "verify repacked"
set +e
"$B"/marlin-pack "$T/q_128_marlin" "$T/rp_x" 2>"$T/err"; rc=$?
set -e
[[ $rc == 1 && ! -e $T/rp_x ]] && grep -q "not a GPTQ checkpoint" "$T/err" || fail "marlin-pack of a Marlin folder: exit $rc: $(cat "$T/err")"

# 2:4 (magnitude pruning, RTN) in both formats
"$B"/marlin-quantize "$M" "$T/s24" --sparse 2:4 --format all -q --threads 2 || fail "2:4 quantize"
"$B"/marlin-verify "$T/s24" --ref "$M" -q >/dev/null || fail "2:4 verify"

# CLI contract
"$B"/marlin-quantize --help | grep -q "usage: marlin-quantize" || fail "--help"
set +e
"$B"/marlin-quantize "$M" 2>"$T/err"; rc=$?
[[ $rc == 2 ]] || fail "missing OUT: exit $rc, want 2"
"$B"/marlin-quantize "$M" "$T/x" --group-size 0 2>"$T/err"; rc=$?
[[ $rc == 2 && ! -e $T/x ]] || fail "bad group: exit $rc, want 2"
"$B"/marlin-quantize "$M" "$T/q_128_gptq" -q 2>"$T/err"; rc=$?
[[ $rc == 1 ]] || fail "existing output: exit $rc, want 1"
[[ $(wc -l <"$T/err") == 1 ]] && grep -q "already exists" "$T/err" || fail "existing output message: $(cat "$T/err")"
"$B"/marlin-quantize "$M" "$T/y" --format marlin --group-size 256 -q 2>"$T/err"; rc=$?
[[ $rc == 1 && ! -e $T/y ]] || fail "group 256 vs k=512 marlin: exit $rc"
"$B"/marlin-verify "$T/nonexistent" 2>"$T/err"; rc=$?
[[ $rc == 1 && $(wc -l <"$T/err") == 1 ]] || fail "verify missing folder: exit $rc"
# verification failure -> exit 3: one scale of a copy doubled (fp16
# exponent bit) is still a well-formed checkpoint, but wrong
if [[ $have_py == 1 ]]; then
  cp -r "$T/q_128_gptq" "$T/bad"
  python3 - "$T/bad/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h["model.layers.2.mlp.up_proj.scales"]["data_offsets"][0]
b[off + 1] ^= 0x04
open(p, "wb").write(b)
PY
  "$B"/marlin-verify "$T/bad" --ref "$M" >"$T/out" 2>"$T/err"; rc=$?
  [[ $rc == 3 ]] || fail "corrupted scale: exit $rc, want 3"
  grep -q "FAIL model.layers.2.mlp.up_proj" "$T/err" || fail "failing layer not named: $(cat "$T/err")"
fi
set -e
ls "$T" | grep -q tmp- && fail "temporary folder left behind"
echo "ok: CLI contract"
