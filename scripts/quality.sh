#!/usr/bin/env bash
# Quality table of docs/quality.md: quantizes the shared 13M Llama with
# every method and setting, verifies each result, and measures perplexity on
# the held-out windows with marlin-eval (the same forward that matches
# transformers' fp32 perplexity of the original).
#   scripts/quality.sh BUILD_DIR SHARED_DIR OUT_DIR [ROWS]
# Prints a markdown table; per-run reports (JSON) stay in OUT_DIR.
set -euo pipefail
B=${1:?build dir}; SH=${2:?shared dir}; O=${3:?out dir}; ROWS=${4:-0}
M=$SH/models/shakespeare-llama-13m
C=$SH/data/shakespeare/calib-128x256.safetensors
V=$SH/data/shakespeare/val-windows-256.safetensors
mkdir -p "$O"
rowsarg=(); [[ $ROWS != 0 ]] && rowsarg=(--rows "$ROWS")
ppl() { "$B"/marlin-eval "$1" --tokens "$V" "${rowsarg[@]}" -q | tail -1 | awk '{print $2}'; }
maxerr() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=[l[sys.argv[2]] for l in r["layers"] if l.get(sys.argv[2]) is not None]; print("%.4f" % (sum(v)/len(v)) if v else "-")' "$1" "$2"; }
printf '| run | quantizer | options | mean w-err | mean out-err (calib) | mean RTN out-err (calib) | perplexity | quantize s |\n'
printf '|---|---|---|---|---|---|---|---|\n'
printf '| fp16 | - | - | - | - | - | %s | - |\n' "$(ppl "$M")"
run() { # name, then marlin-quantize options
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$B"/marlin-quantize "$M" "$O/$name" --force -q --report "$O/$name.json" "$@"
  local t1=$(date +%s.%N)
  "$B"/marlin-verify "$O/$name" --ref "$M" -q >/dev/null
  local q="rtn"; [[ " $* " == *" --calib "* || " $* " == *" --hessians "* ]] && q="gptq"
  printf '| %s | %s | `%s` | %s | %s | %s | %s | %.1f |\n' "$name" "$q" "$*" \
    "$(maxerr "$O/$name.json" rel_weight_err)" "$(maxerr "$O/$name.json" rel_out_err)" \
    "$(maxerr "$O/$name.json" rtn_out_err)" "$(ppl "$O/$name")" "$(echo "$t1 - $t0" | bc)"
}
run rtn-g128 --group-size 128
run rtn-g128-noclip --group-size 128 --no-clip
run rtn-g64 --group-size 64
run rtn-g32 --group-size 32
run rtn-pc --group-size -1
run gptq-g128 --calib "$C" --group-size 128 --compare-rtn --save-hessians "$O/H"
run gptq-g128-noclip --hessians "$O/H" --group-size 128 --no-clip
run gptq-g128-act --hessians "$O/H" --group-size 128 --act-order
run gptq-g64 --hessians "$O/H" --group-size 64
run gptq-g32 --hessians "$O/H" --group-size 32
run gptq-pc --hessians "$O/H" --group-size -1
run gptq-pc-act --hessians "$O/H" --group-size -1 --act-order
run s24-magnitude-rtn --sparse 2:4 --prune magnitude
run s24-magnitude-gptq --calib "$C" --sparse 2:4 --prune magnitude --compare-rtn
run s24-sparsegpt --calib "$C" --sparse 2:4 --prune sparsegpt --compare-rtn
