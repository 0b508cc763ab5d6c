#!/usr/bin/env bash
# cli_marlin_bench.sh - marlin-bench's command line (dense kernel):
# --help/--version, usage errors (exit 2 with a "Try" line), and a clean
# runtime error (exit 1, one line) where no GPU is usable. Timing runs need
# a GPU and belong to scripts/device-kernels.sh, not to CTest; --sparse is
# covered by cli_bench24.sh.
set -u
bin="${MARLIN_BINARY_DIR:-.}/marlin-bench"
[ -x "$bin" ] || { echo "skipped: $bin not built"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

out=$("$bin" --help) || fail "--help exit $?"
grep -q "Usage: marlin-bench" <<<"$out" || fail "--help text: $out"
grep -q -- "--mode MODE" <<<"$out" || fail "--help lacks --mode"
grep -q -- "floor, a DIAGNOSTIC" <<<"$out" || fail "--help lacks the floor mode"
out=$("$bin" --version) || fail "--version exit $?"
grep -q "^marlin-bench [0-9]" <<<"$out" || fail "--version text: $out"

for args in "--mode bogus" "--batch 0" "--batch 1,x" "--model gpt2" "--group 16" \
            "--seconds 0" "--samples 1" "--bogus" "--csv" "--pipeline tma" \
            "--tile 16x128" "--tile 16x128x256/s2/b2/x" "--tile 8x128x256/s2/b2" \
            "--tile 16x128x256/s2/b2/c"; do
  # shellcheck disable=SC2086
  err=$("$bin" $args 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 2 ] || fail "'$args' gave exit $rc, expected 2 ($err)"
  grep -q "Try 'marlin-bench --help'" <<<"$err" || fail "'$args' stderr: $err"
done

# Without a usable GPU (CI, CPU-only builds) a run is a one-line runtime error.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  err=$("$bin" --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 1 ] || fail "run without GPU gave exit $rc, expected 1 ($err)"
  [ "$(wc -l <<<"$err")" -eq 1 ] || fail "expected one error line, got: $err"
  grep -q "^marlin-bench: " <<<"$err" || fail "error line: $err"
  # a well-formed forced tile (cluster path) parses; the run then needs a GPU
  err=$("$bin" --mode trace --tile 16x128x256/s2/b2/c6 --model llama2-7b --batch 1 2>&1 \
        >/dev/null); rc=$?
  [ "$rc" -eq 1 ] || fail "trace without GPU gave exit $rc, expected 1 ($err)"
  # the floor diagnostic parses, dense and 2:4; the run then needs a GPU
  for sp in "" --sparse; do
    # shellcheck disable=SC2086
    err=$("$bin" --mode floor $sp --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
    [ "$rc" -eq 1 ] || fail "--mode floor $sp without GPU gave exit $rc, expected 1 ($err)"
  done
  # every pipeline family name parses (wgmma: the Hopper path); with
  # --sparse auto, mma and wgmma
  for p in auto cpasync bulk mbar cpasync2 wgmma; do
    err=$("$bin" --mode tune --pipeline $p --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
    [ "$rc" -eq 1 ] || fail "--pipeline $p without GPU gave exit $rc, expected 1 ($err)"
  done
  for p in auto mma wgmma; do
    err=$("$bin" --sparse --pipeline $p --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
    [ "$rc" -eq 1 ] || fail "--sparse --pipeline $p without GPU gave exit $rc, expected 1 ($err)"
  done
fi
# family names that do not fit the kernel: usage errors, GPU or not
err=$("$bin" --pipeline mma --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] || fail "--pipeline mma (dense) gave exit $rc, expected 2 ($err)"
grep -q "is for --sparse" <<<"$err" || fail "--pipeline mma message: $err"
err=$("$bin" --sparse --pipeline cpasync2 --model llama2-7b --batch 1 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] || fail "--sparse --pipeline cpasync2 gave exit $rc, expected 2 ($err)"
echo "ok"
