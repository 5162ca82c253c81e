#!/usr/bin/env bash
# The whole benchmark in one run: installs the inits and tools from Debian, builds the
# release supervisor and the C helpers, measures, and writes target/bench/report.md,
# target/bench/chart.svg and target/bench/results.json.
#
# Usage: bash benches/run.sh            (as root; takes a few minutes)
#        bash benches/run.sh --profile smoke   (seconds; checks that the harness works)
# Run it on a quiet machine: the numbers are only as good as the load (see the report).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

log() { printf '\n==> %s\n' "$*" >&2; }

# tini ships tini-static; util-linux has unshare; binutils has strip; python3-seccomp is
# libseccomp for Debian's python3, which compiles Docker's default seccomp profile.
pkgs=(tini dumb-init catatonit hyperfine util-linux binutils gcc libc6-dev python3 python3-seccomp)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "cargo build --release"
cargo build --release
sup=target/x86_64-unknown-linux-gnu/release/supervisor

log "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
python3 benches/bench.py --supervisor "$sup" --out target/bench "$@"
log "report: target/bench/report.md, chart: target/bench/chart.svg"
