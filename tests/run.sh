#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, starts what must
# run (dockerd), runs format, lint and every test, and stops what it started.
# Usage: bash tests/run.sh        (as root; CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

log() { printf '\n==> %s\n' "$*"; }

log "installing test dependencies"
apt_pkgs=(busybox-static util-linux procps)
# tests/bench_smoke.rs runs the benchmark harness once against every init it compares.
apt_pkgs+=(tini dumb-init catatonit hyperfine gcc libc6-dev binutils python3)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "cargo fmt --check"
cargo fmt --check
log "cargo clippy"
cargo clippy --all-targets -- -D warnings
log "cargo build --release"
cargo build --release
log "cargo test"
cargo test --all-targets
