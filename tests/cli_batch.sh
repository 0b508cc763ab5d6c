#!/usr/bin/env bash
# cli_batch: marlin-batch in local mode (issue 7) with the real tools:
#   1. manifest errors name their line (exit 2, nothing written);
#   2. --dry-run prints the plan and writes nothing;
#   3. a 3-model batch (two good synthetic models, one broken input): exit 1,
#      DONE.json (sha256 of every output) for the good ones only, summary on
#      stdout and in batch.json;
#   4. a rerun skips the done models (no new marlin-quantize run);
#   5. --retry K: the broken model is tried K+1 times; a quantizer killed by
#      SIGKILL (what the OOM killer does) succeeds on its retry;
#   6. a changed output file is noticed and the model converted again;
#   7. Ctrl-C (SIGINT) during verification: exit 130, the whole process
#      tree is gone, no DONE.json; the rerun resumes (verifies the existing
#      quantized output without quantizing again).
# Steps 5 and 7 put a wrapper before the real tool (MARLIN_BIN_DIR) to make
# the failure or the delay happen at a known point; the work is the real
# tools' in every case.
set -euo pipefail
B=${MARLIN_BINARY_DIR:?run through ctest}
name=cli_batch
for t in marlin-batch marlin-quantize marlin-verify marlin-synth; do
  if [[ ! -x "$B/$t" ]]; then
    echo "$name: SKIP: $B/$t is not built" >&2
    exit 77
  fi
done
command -v python3 >/dev/null || { echo "$name: SKIP: no python3" >&2; exit 77; }

T=$(mktemp -d /tmp/marlin-batch.XXXXXX)
BG=()
cleanup() {
  local p
  for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "$name: FAIL: $*" >&2
  exit 1
}
MB=$B/marlin-batch
# run EXPECTED_RC TAG ARGS...: runs marlin-batch, keeps stdout/stderr in
# $T/TAG.out / $T/TAG.err, fails unless the exit code is EXPECTED_RC.
run() {
  local want=$1 tag=$2 rc=0
  shift 2
  "$MB" "$@" >"$T/$tag.out" 2>"$T/$tag.err" || rc=$?
  if [[ $rc -ne $want ]]; then
    cat "$T/$tag.out" "$T/$tag.err" >&2
    fail "$tag: marlin-batch $* exited $rc, expected $want"
  fi
}
# status TAG ID: the model's status in the summary table of run TAG.
status() { awk -v id="$2" '$1 == id {print $2; exit}' "$T/$1.out"; }
expect_status() {
  local s
  s=$(status "$1" "$2")
  [[ $s == "$3" ]] || { cat "$T/$1.out" >&2; fail "$1: $2 is '$s', expected '$3'"; }
}
# quantize runs logged for a model so far.
nquant() { grep -c '\$ .*marlin-quantize ' "$1" || true; }

# ---------------------------------------------------------------- inputs
mkdir -p "$T/m"
"$B/marlin-synth" "$T/m/alpha" --preset tiny --seed 1 >/dev/null
"$B/marlin-synth" "$T/m/beta" --preset tiny --seed 2 --dtype bf16 >/dev/null
cp -r "$T/m/alpha" "$T/m/broken"
shard=$(ls "$T/m/broken"/*.safetensors | head -n 1)
truncate -s $(($(stat -c %s "$shard") - 4096)) "$shard"
M=$T/manifest.tsv
printf '# id\tinput\toptions\n\nalpha\tm/alpha\t--method rtn\n  # indented comment\nbeta\tm/beta\t--method rtn --group-size 64  # trailing comment\nbroken\tm/broken\n' >"$M"

# ------------------------------------------------------- 1. manifest errors
bad() {  # bad LINE_NO TEXT: a manifest whose line LINE_NO is wrong
  local want=$1 i=$((${#BADN[@]} + 1))
  printf "$2" >"$T/bad$i.tsv"
  run 2 "bad$i" "$T/bad$i.tsv" "$T/never"
  grep -q "bad$i.tsv:$want: " "$T/bad$i.err" || { cat "$T/bad$i.err" >&2; fail "bad$i: error does not name line $want"; }
  BADN+=("$i")
}
BADN=()
bad 2 'a\tm/alpha\nno tab here\n'
bad 3 '# c\n\n-x\tm/alpha\n'
bad 2 'a\tm/alpha\nA\tm/beta\n'
bad 1 'a\tm/alpha\t--bogus 1\n'
bad 1 'a\tm/alpha\t--report r.json\n'
bad 1 "a\tm/alpha\t--format 'all\n"
bad 1 'a\tm/alpha\t--group-size big\n'
bad 1 'a\tm/alpha\tstray\n'
bad 1 'logs\tm/alpha\n'
bad 1 'a\t\n'
bad 1 'a.tmp-x1\tm/alpha\n'
grep -q "already used on line 1" "$T/bad3.err" || fail "duplicate ID error does not name the first line"
printf '# nothing\n\n' >"$T/empty.tsv"
run 2 empty "$T/empty.tsv" "$T/never"
run 2 usage "$M" "$T/never" --jobs 0
run 2 usage2 "$M" "$T/never" --submit
[[ ! -e "$T/never" ]] || fail "a rejected batch created OUTROOT"

# ------------------------------------------------------------ 2. dry run
O=$T/out
run 0 dry "$M" "$O" --dry-run
[[ ! -e "$O" ]] || fail "--dry-run wrote $O"
[[ $(grep -c ': convert (no DONE.json)' "$T/dry.out") -eq 3 ]] || { cat "$T/dry.out" >&2; fail "dry run does not plan 3 conversions"; }
grep -q "$B/marlin-quantize $T/m/alpha $O/alpha --method rtn" "$T/dry.out" || fail "dry run does not show alpha's command"
grep -q 'memory estimate' "$T/dry.out" || fail "dry run shows no memory estimate"
# The estimate grows with GPTQ and with the calibration set (N x L tokens,
# read from the tokens file's header: written here by hand, I32 [N, L]).
mkcalib() {
  python3 - "$1" "$2" "$3" <<'EOF'
import json, struct, sys
path, n, l = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = json.dumps({"input_ids": {"dtype": "I32", "shape": [n, l], "data_offsets": [0, 4 * n * l]}}).encode()
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + bytes(4 * n * l))
EOF
}
mkcalib "$T/c-small.safetensors" 4 64
mkcalib "$T/c-big.safetensors" 256 512
printf 'r\tm/alpha\t--method rtn\ns\tm/alpha\t--calib c-small.safetensors\nb\tm/alpha\t--calib c-big.safetensors\n' >"$T/est.tsv"
run 0 est "$T/est.tsv" "$T/never" --dry-run
python3 - "$T/est.out" <<'EOF' || { cat "$T/est.out" >&2; fail "estimates do not grow RTN < GPTQ < GPTQ with more tokens"; }
import re, sys
unit = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
est = {m[0]: float(m[1]) * unit[m[2]] for m in
       re.findall(r"^  (\w+): convert .*memory estimate ([0-9.]+) (\w+)", open(sys.argv[1]).read(), re.M)}
assert 0 < est["r"] < est["s"] < est["b"], est
EOF

# ------------------------------------------------------ 3. the 3-model batch
run 1 run1 "$M" "$O" --jobs 2
expect_status run1 alpha ok
expect_status run1 beta ok
expect_status run1 broken failed
# The error line carries marlin-quantize's own one-line message.
grep -q '^broken: marlin-quantize failed (exit 1: runtime error): marlin-quantize: .*broken' "$T/run1.out" ||
  { cat "$T/run1.out" >&2; fail "no error line with the tool's message for broken"; }
[[ ! -e "$O/broken/DONE.json" ]] || fail "the broken model has a DONE.json"
python3 - "$O" <<'EOF'
import hashlib, json, os, sys
out = sys.argv[1]
b = json.load(open(os.path.join(out, "batch.json")))
assert b["format"] == "marlin-batch/1" and b["mode"] == "local" and b["ok"] is False, b
st = {m["id"]: m for m in b["models"]}
assert [m["id"] for m in b["models"]] == ["alpha", "beta", "broken"], b["models"]
assert st["broken"]["status"] == "failed" and st["broken"]["attempts"] == 1, st["broken"]
for mid in ("alpha", "beta"):
    d = json.load(open(os.path.join(out, mid, "DONE.json")))
    m = st[mid]
    assert m["status"] == "ok" and m["attempts"] == 1, m
    assert d["format"] == "marlin-batch-done/1" and d["id"] == mid and d["verify"]["cpu"] == "pass", d
    assert d["options"][:2] == ["--method", "rtn"], d["options"]
    assert d["input"]["bytes"] == m["input_bytes"] > 0
    assert d["output_bytes"] == m["output_bytes"] == sum(o["size"] for o in d["outputs"]) > 0
    assert 0 < d["max_rel_weight_err"] == m["max_rel_weight_err"] < 0.5, d["max_rel_weight_err"]
    for o in d["outputs"]:
        p = os.path.join(out, mid, o["name"])
        assert os.path.getsize(p) == o["size"], p
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == o["sha256"], p
    assert {"quantize-report.json", "config.json"} <= {o["name"] for o in d["outputs"]}
beta = json.load(open(os.path.join(out, "beta", "DONE.json")))
assert beta["options"] == ["--method", "rtn", "--group-size", "64"], beta["options"]
EOF

# --------------------------------------------------------------- 4. rerun
na=$(nquant "$O/logs/alpha.log")
run 1 run2 "$M" "$O"
expect_status run2 alpha skipped
expect_status run2 beta skipped
expect_status run2 broken failed
[[ $(nquant "$O/logs/alpha.log") -eq $na ]] || fail "the rerun quantized alpha again"
run 1 summary "$M" "$O" --summary
expect_status summary alpha ok
expect_status summary broken failed

# ------------------------------------------------------------ 5. retries
nb=$(nquant "$O/logs/broken.log")
run 1 retry "$M" "$O" --retry 2
expect_status retry broken failed
[[ $(nquant "$O/logs/broken.log") -eq $((nb + 3)) ]] || fail "--retry 2 did not try broken 3 times"
python3 -c 'import json,sys; m={x["id"]:x for x in json.load(open(sys.argv[1]))["models"]}; assert m["broken"]["attempts"]==3, m["broken"]' "$O/batch.json"

# A quantizer that is SIGKILLed on its first call (per model), as the OOM
# killer would, then runs normally.
W=$T/wrap
mkdir -p "$W"
ln -s "$B/marlin-verify" "$W/marlin-verify"
cat >"$W/marlin-quantize" <<EOF
#!/bin/bash
if [[ "\$1" != --version && ! -e "$T/killed-once" ]]; then
  touch "$T/killed-once"
  kill -9 \$\$
fi
exec "$B/marlin-quantize" "\$@"
EOF
chmod +x "$W/marlin-quantize"
printf 'gamma\tm/alpha\t--method rtn\n' >"$T/one.tsv"
MARLIN_BIN_DIR=$W run 1 kill0 "$T/one.tsv" "$T/out2"
expect_status kill0 gamma failed
grep -q 'killed by SIGKILL' "$T/kill0.out" || fail "SIGKILL not reported"
rm -f "$T/killed-once"
# What a marlin-quantize killed while writing leaves: its temporary folder.
mkdir -p "$T/out2/gamma.tmp-Ab12Cd" "$T/out2/gammaX.tmp-Ab12Cd"
MARLIN_BIN_DIR=$W run 0 kill1 "$T/one.tsv" "$T/out2" --retry 1
[[ ! -e "$T/out2/gamma.tmp-Ab12Cd" ]] || fail "the killed quantizer's temporary folder is still there"
[[ -d "$T/out2/gammaX.tmp-Ab12Cd" ]] || fail "another model's temporary folder was removed"
expect_status kill1 gamma ok
[[ $(awk '$1 == "gamma" {print $3}' "$T/kill1.out") == 2 ]] || fail "gamma did not take 2 tries"
[[ -s "$T/out2/gamma/DONE.json" ]] || fail "gamma has no DONE.json"

# ------------------------------------------------ 6. a changed output file
f=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"][0]["name"])' "$O/alpha/DONE.json")
printf 'x' >>"$O/alpha/$f"
grep -v '^broken' "$M" >"$T/good.tsv"
run 0 tamper "$T/good.tsv" "$O"
expect_status tamper alpha ok
expect_status tamper beta skipped
[[ $(nquant "$O/logs/alpha.log") -eq $((na + 1)) ]] || fail "the changed alpha was not quantized again"

# ------------------------------------- 7. Ctrl-C during verify, then resume
# A verify that takes long enough to be interrupted (and records its pid).
W2=$T/wrap2
mkdir -p "$W2"
ln -s "$B/marlin-quantize" "$W2/marlin-quantize"
cat >"$W2/marlin-verify" <<EOF
#!/bin/bash
case "\$1" in --version|--gpu-available) exec "$B/marlin-verify" "\$@";; esac
echo \$\$ >>"$T/verify.pid"
sleep 300 &
echo \$! >>"$T/sleep.pid"
wait
exec "$B/marlin-verify" "\$@"
EOF
chmod +x "$W2/marlin-verify"
MARLIN_BIN_DIR=$W2 "$MB" "$T/good.tsv" "$T/out3" >"$T/int.out" 2>"$T/int.err" &
bpid=$!
BG+=("$bpid")
for _ in $(seq 600); do [[ -s "$T/sleep.pid" ]] && break; sleep 0.1; done
[[ -s "$T/sleep.pid" ]] || { cat "$T/int.err" >&2; fail "verification never started"; }
# A second batch on the same OUTROOT meanwhile is refused (the lock).
run 1 second "$T/good.tsv" "$T/out3"
grep -q 'another marlin-batch is running on' "$T/second.err" || { cat "$T/second.err" >&2; fail "a second batch was not refused"; }
kill -INT "$bpid"
rc=0
wait "$bpid" || rc=$?
[[ $rc -eq 130 ]] || { cat "$T/int.out" "$T/int.err" >&2; fail "Ctrl-C: exit $rc, expected 130"; }
# A zombie has ended (it waits for its new parent to reap it).
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }
for p in $(cat "$T/verify.pid" "$T/sleep.pid"); do
  ! alive "$p" || fail "process $p survived Ctrl-C: $(ps -o pid=,stat=,args= -p "$p")"
done
left=$(pgrep -f "$T/out3" || true)
[[ -z "$left" ]] || fail "processes left after Ctrl-C: $left"
for id in alpha beta; do
  [[ ! -e "$T/out3/$id/DONE.json" ]] || fail "$id got a DONE.json although interrupted"
done
grep -Eq '^(alpha|beta) +interrupted ' "$T/int.out" || { cat "$T/int.out" >&2; fail "no model marked interrupted"; }
run 0 resume "$T/good.tsv" "$T/out3"
for id in alpha beta; do
  [[ -s "$T/out3/$id/DONE.json" ]] || fail "$id not done after the resumed run"
  expect_status resume "$id" ok
done
# A model whose quantization had finished is verified, not quantized again.
resumed=0
for id in alpha beta; do
  if grep -q '^.*resume: quantized output' "$T/out3/logs/$id.log"; then
    resumed=$((resumed + 1))
    [[ $(nquant "$T/out3/logs/$id.log") -eq 1 ]] || fail "$id was resumed but quantized twice"
  fi
done
((resumed >= 1)) || fail "no model resumed from its quantized output"
echo "$name: PASS"
