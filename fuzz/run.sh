#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 30), seeded
# with the policy corpus (tests/policies) and fuzz/seeds. A crash, a leak or a timeout
# fails the run and leaves the input in fuzz/artifacts/<target>/.
# Usage: bash fuzz/run.sh            (tests/run.sh calls it)
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz needs nightly compiler flags (sanitizers). Prefer an installed nightly; on a
# machine with stable only, RUSTC_BOOTSTRAP=1 unlocks the same flags.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

corpus="${TMPDIR:-/tmp}/openshell-fuzz-corpus"
rm -rf "$corpus"
mkdir -p "$corpus/policy_reader" "$corpus/status_reader"
cp ../tests/policies/*.yaml ../tests/policies/invalid.txt "$corpus/policy_reader/"
cp seeds/status_reader/* "$corpus/status_reader/"

for target in ${FUZZ_TARGETS:-policy_reader status_reader}; do
    echo "fuzzing $target for ${seconds}s"
    log="$corpus/$target.log"
    rc=0
    "${fuzz[@]}" run -O "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(Done|SUMMARY|==[0-9]+==ERROR)|panicked' "$log" || true
    if [[ "$rc" != 0 ]]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $rc); inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
