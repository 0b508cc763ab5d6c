#!/usr/bin/env bash
# cli_inspect.sh - the marlin-inspect command line: --help, usage errors
# (exit 2, one line + "Try"), valid checkpoints (table and --json, checked
# with python -m json.tool), and malformed files and folders: each must give
# exit 1, nothing on stdout, and exactly one stderr line
# "marlin-inspect: <message>" naming the file.
set -u
B=${MARLIN_BINARY_DIR:-build}
INSPECT=$B/marlin-inspect
SYNTH=$B/marlin-synth
SHARED=${MARLIN_SHARED_DIR:-}
for t in "$INSPECT" "$SYNTH"; do
  if [ ! -x "$t" ]; then echo "skip: $t not built"; exit 77; fi
done
T=$(mktemp -d /tmp/marlin-cli-inspect-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run ARGS...: sets rc, out, errtxt
run() {
  "$INSPECT" "$@" >"$T/out" 2>"$T/err"
  rc=$?
  out=$(cat "$T/out")
  errtxt=$(cat "$T/err")
}

# expect_fail WHAT NEEDLE ARGS...: exit 1, no stdout, one stderr line
# starting with "marlin-inspect: " and containing NEEDLE.
expect_fail() {
  local what=$1 needle=$2
  shift 2
  run "$@"
  local lines
  lines=$(wc -l <"$T/err")
  if [ "$rc" -ne 1 ]; then bad "$what: exit $rc, want 1 ($errtxt)"; return; fi
  if [ -n "$out" ]; then bad "$what: stdout not empty"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$what: $lines stderr lines: $errtxt"; return; fi
  case $errtxt in
    "marlin-inspect: "*"$needle"*) ok ;;
    *) bad "$what: stderr '$errtxt' lacks '$needle'" ;;
  esac
}

# ---------------------------------------------------------------- usage
run --help
if [ "$rc" -eq 0 ] && [[ $out == Usage:* ]] && [ -z "$errtxt" ]; then ok; else bad "--help"; fi
run --version
if [ "$rc" -eq 0 ] && [[ $out == "marlin-inspect "* ]]; then ok; else bad "--version"; fi
for args in "" "--bogus x" "a b" "--json"; do
  # shellcheck disable=SC2086
  run $args
  if [ "$rc" -eq 2 ] && [ -z "$out" ] && [ "$(wc -l <"$T/err")" -eq 2 ] &&
     [[ $errtxt == *"Try 'marlin-inspect --help'"* ]]; then ok
  else bad "usage error for '$args': rc $rc, stderr: $errtxt"; fi
done

# ------------------------------------------------------ valid checkpoints
"$SYNTH" "$T/tiny" --preset tiny --seed 3 -q || { bad "synth tiny"; exit 1; }
run "$T/tiny"
if [ "$rc" -eq 0 ] && [[ $out == *"total: 21 tensors"* ]] &&
   [[ $out == *"model.layers.1.mlp.down_proj.weight"*"F16"*"[256, 768]"*"393216"*"model.safetensors"* ]] &&
   [[ $out == *"config: model_type llama, hidden 256"* ]] && [ -z "$errtxt" ]; then ok
else bad "tiny table: rc $rc: $out $errtxt"; fi
run "$T/tiny/model.safetensors"
if [ "$rc" -eq 0 ] && [[ $out == *"total: 21 tensors"* ]]; then ok; else bad "file path"; fi
run "$T/tiny" --json
if [ "$rc" -eq 0 ]; then ok; else bad "--json rc $rc"; fi
if command -v python3 >/dev/null; then
  if python3 -m json.tool "$T/out" >/dev/null; then ok; else bad "--json is not valid JSON"; fi
  n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["tensor_count"], len(d["tensors"]), d["config"]["hidden_size"], d["total_bytes"] == sum(t["bytes"] for t in d["tensors"]))' "$T/out")
  if [ "$n" = "21 21 256 True" ]; then ok; else bad "--json content: $n"; fi
else
  echo "note: python3 missing; --json validity not checked"
fi
"$SYNTH" "$T/sh" --preset shakespeare --shard-size 10MB -q || bad "synth sharded"
run "$T/sh"
if [ "$rc" -eq 0 ] && [[ $out == *"39 tensors in 3 files"* ]]; then ok; else bad "sharded: $out"; fi
run "$T/sh/model.safetensors.index.json"
if [ "$rc" -eq 0 ] && [[ $out == *"39 tensors in 3 files"* ]]; then ok; else bad "index path"; fi
if [ -n "$SHARED" ] && [ -d "$SHARED/models/shakespeare-llama-13m" ]; then
  run "$SHARED/models/shakespeare-llama-13m"
  if [ "$rc" -eq 0 ] && [[ $out == *"39 tensors in 3 files, 25699328 bytes"* ]]; then ok
  else bad "shared model: $out $errtxt"; fi
else
  echo "note: shared model absent; skipped that case"
fi

# ---------------------------------------------------------- warnings
cp -r "$T/sh" "$T/stray"
cp "$T/tiny/model.safetensors" "$T/stray/old-copy.safetensors"
run "$T/stray"
if [ "$rc" -eq 0 ] && [[ $errtxt == "marlin-inspect: warning: "*"old-copy.safetensors"*"ignored"* ]]; then ok
else bad "stray shard warning: rc $rc $errtxt"; fi

# ------------------------------------------------------ bad inputs
expect_fail "missing path" "$T/nope" "$T/nope"
: >"$T/empty.safetensors"
expect_fail "empty file" "empty.safetensors" "$T/empty.safetensors"
head -c 1000 "$T/tiny/model.safetensors" >"$T/trunc.safetensors"
expect_fail "truncated file" "trunc.safetensors" "$T/trunc.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}         ' >"$T/garbage.safetensors"
expect_fail "bad header" "garbage.safetensors" "$T/garbage.safetensors"
mkdir "$T/noweights"
expect_fail "folder without weights" "no safetensors weights" "$T/noweights"

mk_sharded() { rm -rf "$T/$1"; cp -r "$T/sh" "$T/$1"; }
mk_sharded missing
rm "$T/missing/model-00002-of-00003.safetensors"
expect_fail "missing shard" "model-00002-of-00003.safetensors" "$T/missing"
mk_sharded brokenidx
printf '{"metadata": {}, "weight_map": {' >"$T/brokenidx/model.safetensors.index.json"
expect_fail "broken index JSON" "model.safetensors.index.json" "$T/brokenidx"
mk_sharded dotdot
sed -i 's/"model-00001-of-00003.safetensors"/"..\/model-00001-of-00003.safetensors"/' \
  "$T/dotdot/model.safetensors.index.json"
expect_fail "index path traversal" "../model-00001-of-00003.safetensors' is a path" "$T/dotdot"
mk_sharded stale
cp "$T/tiny/model.safetensors" "$T/stale/model.safetensors"
expect_fail "stale single file beside index" "remove the stale one" "$T/stale"
mk_sharded escape
mkdir -p "$T/elsewhere"
mv "$T/escape/model-00003-of-00003.safetensors" "$T/elsewhere/"
ln -s ../elsewhere/model-00003-of-00003.safetensors "$T/escape/model-00003-of-00003.safetensors"
expect_fail "symlink out of the folder" "outside the model folder" "$T/escape"
mk_sharded badcfg
printf '{"model_type": "llama", "hidden_size": 512,}' >"$T/badcfg/config.json"
expect_fail "broken config.json" "config.json" "$T/badcfg"
mk_sharded kvcfg
sed -i 's/"num_key_value_heads": 4/"num_key_value_heads": 3/' "$T/kvcfg/config.json"
expect_fail "inconsistent config" "num_key_value_heads 3 does not divide" "$T/kvcfg"
mk_sharded extra
python3 - "$T/extra/model.safetensors.index.json" <<'EOF' 2>/dev/null || sed -i 's/"weight_map": {/"weight_map": {\n    "ghost.weight": "model-00001-of-00003.safetensors",/' "$T/extra/model.safetensors.index.json"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["weight_map"]["ghost.weight"] = "model-00001-of-00003.safetensors"
json.dump(d, open(p, "w"), indent=2, sort_keys=True)
EOF
expect_fail "index lists a tensor its shard lacks" "ghost.weight" "$T/extra"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
