#!/usr/bin/env bash
# cli_bench24.sh - marlin-bench --sparse (the 2:4 kernel): usage errors
# always; without a GPU (or a CUDA build) a clean runtime error naming the
# cause; with a GPU a one-layer-set run whose rows carry a speedup.
set -u
bin="${MARLIN_BINARY_DIR:-.}/marlin-bench"
[ -x "$bin" ] || { echo "skipped: $bin not built"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

"$bin" --sparse --mode bogus >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || fail "--sparse --mode bogus gave exit $rc, expected 2 (usage)"

out=$("$bin" --sparse --model llama2-7b --batch 1,16 --samples 3 2>&1); rc=$?
if [ "$rc" -eq 1 ]; then
  grep -qiE "cuda|gpu|device" <<<"$out" || fail "runtime error without a cause: $out"
  echo "no GPU here ($out): usage checks passed, timing skipped"
  exit 0
fi
[ "$rc" -eq 0 ] || fail "exit $rc: $out"
for m in 1 16; do
  grep -qE "^llama2-7b +m +$m .*speedup +[0-9.]+x" <<<"$out" || fail "no m=$m row in: $out"
done
echo "ok"
