#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30), seeded
# with the policy corpus (tests/policies) and fuzz/seeds. A crash, a leak or a timeout
# fails the run and leaves the input in fuzz/artifacts/<target>/.
# Usage: bash fuzz/run.sh            (tests/run.sh calls it)
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"

# The targets are built the way `cargo fuzz build -s none` builds them: libFuzzer with
# SanitizerCoverage instrumentation, which stable rustc supports, so CI needs neither a
# nightly toolchain nor a cargo-fuzz install (minutes on a fresh machine). AddressSanitizer
# is left out: the readers are safe Rust, and ASan needs nightly. `cargo +nightly fuzz run
# TARGET` still works for a longer session with ASan.
triple=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc-macros.
cargo build --release --quiet --target "$triple" --bins
bin="target/$triple/release"

corpus="${TMPDIR:-/tmp}/openshell-fuzz-corpus"
rm -rf "$corpus"
mkdir -p "$corpus/policy_reader" "$corpus/status_reader"
cp ../tests/policies/*.yaml ../tests/policies/invalid.txt "$corpus/policy_reader/"
cp seeds/status_reader/* "$corpus/status_reader/"

for target in ${FUZZ_TARGETS:-policy_reader status_reader}; do
    echo "fuzzing $target for ${seconds}s"
    log="$corpus/$target.log"
    rc=0
    mkdir -p "artifacts/$target"
    "$bin/$target" "$corpus/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(Done|SUMMARY|==[0-9]+==ERROR)|panicked' "$log" || true
    if [[ "$rc" != 0 ]]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $rc); inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
