#!/usr/bin/env bash
# cli_bench_pack.sh - marlin-bench-pack: --help, usage errors, and a quick
# run that packs/unpacks every format (the tool exits 1 if any op fails).
set -u
bin="${MARLIN_BINARY_DIR:-.}/marlin-bench-pack"
[ -x "$bin" ] || { echo "skipped: $bin not built"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

out=$("$bin" --help) || fail "--help exit $?"
grep -q "usage: marlin-bench-pack" <<<"$out" || fail "--help text: $out"

"$bin" --bogus >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || fail "unknown argument gave exit $rc, expected 2"

out=$("$bin" --quick --reps 1 --threads 2) || fail "quick run exit $?"
for op in memcpy "gptq pack" "gptq unpack" "marlin pack" "marlin unpack" \
          "marlin24 pack" "marlin24 unpack"; do
  grep -q "quick 1024x1024 *$op " <<<"$out" || fail "no '$op' line in: $out"
done
echo "ok"
