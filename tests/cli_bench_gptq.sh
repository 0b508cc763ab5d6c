#!/usr/bin/env bash
# marlin-bench-gptq: a smoke run on a small shape (--quick) reports every
# number it promises, and bad arguments exit 2 (usage error).
set -u
bin="${MARLIN_BINARY_DIR:-.}/marlin-bench-gptq"
if [ ! -x "$bin" ]; then
  echo "SKIP: $bin not built"; exit 77
fi
out=$("$bin" --quick 2>&1) || { echo "FAIL: --quick exited $?"; echo "$out"; exit 1; }
for want in "sgemm peak probes" "GFLOP counted" "of sgemm peak" \
            "output rel. error" "rtn n=512 k=1024 clip off" "rtn n=512 k=1024 clip on"; do
  grep -q -- "$want" <<<"$out" || { echo "FAIL: no '$want' in:"; echo "$out"; exit 1; }
done
"$bin" --help | grep -q "usage: marlin-bench-gptq" || { echo "FAIL: --help"; exit 1; }
for bad in "--bogus" "--shape 12" "--group x" "--shape 64x100 --group 128 --quick"; do
  # shellcheck disable=SC2086
  "$bin" $bad >/dev/null 2>&1
  rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: '$bad' exited $rc, want 2"; exit 1; }
done
echo "ok"
