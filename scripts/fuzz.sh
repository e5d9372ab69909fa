#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders and the config loader with
# libFuzzer, on stable Rust (no cargo-fuzz, no nightly: the flags cargo-fuzz
# passes for `--sanitizer none` are all stable codegen options).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all) for SECONDS (default 15) from the
# committed seed corpus fuzz/corpus/<target>/ (new finds go to a scratch
# copy under fuzz/target/, the committed corpus is not touched) and fails on
# any crash, panic, failed assertion or timeout. A crash input is saved as
# fuzz/artifacts/<target>/crash-*; reproduce it with
#   fuzz/target/<triple>/release/<target> fuzz/artifacts/<target>/crash-…
# Targets are listed in fuzz/Cargo.toml; see docs/TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-15}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sse json_scan requests responses streams pii config)
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
# What `cargo fuzz build -s none` passes, minus nothing that needs nightly.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
# `--target` keeps the instrumentation off build scripts and proc macros.
echo "== building fuzz targets (${targets[*]})"
cargo build --release --locked -q --manifest-path fuzz/Cargo.toml \
  --target "$triple" $(printf -- '--bin %s ' "${targets[@]}")

bin="fuzz/target/$triple/release"
status=0
for t in "${targets[@]}"; do
  work="fuzz/target/corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  if [ -d "fuzz/corpus/$t" ]; then cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true; fi
  dict=()
  if [ -f "fuzz/dict/$t.dict" ]; then dict=(-dict="fuzz/dict/$t.dict"); fi
  log="fuzz/target/$t.log"
  echo "== fuzz $t for ${secs}s"
  # A fixed seed (FUZZ_SEED, default 1) makes a CI run explore the same
  # inputs in the same order: a failure is reproducible, not luck of the run.
  if nice -n 19 "$bin/$t" "$work" "${dict[@]}" -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" \
      -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    echo "   $t: ${execs:-?} executions, 0 crashes"
  else
    status=1
    echo "   $t: CRASH (log: $log)"
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 || true
  fi
done
exit $status
