#!/bin/bash
# Compares YAML readers for the policy file: binary size (.text/.rodata over a baseline that
# only reads the file) and parse cost in instructions (callgrind, deterministic, so a loaded
# machine does not skew it). A standalone crate so none of this reaches the supervisor.
# Usage: bash benches/yaml-readers/run.sh   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --all-features --bins -q
bin=target/x86_64-unknown-linux-gnu/release
input=inputs/policy.yaml
printf '%-14s %10s %10s %14s\n' reader text rodata instructions
for b in baseline serde_saphyr granit_parser saphyr_parser yaml_rust2; do
    read -r text rodata < <(size -A "$bin/$b" | awk '$1==".text"{t=$2} $1==".rodata"{r=$2} END{print t, r}')
    ins=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin/$b" "$input" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    printf '%-14s %10s %10s %14s\n' "$b" "$text" "$rodata" "$ins"
done
echo "strictness of serde-saphyr at its strictest options:"
"$bin/saphyr_strict"
