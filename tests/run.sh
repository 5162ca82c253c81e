#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, starts what must
# run (dockerd), runs format, lint and every test, and stops what it started.
# Usage: bash tests/run.sh        (as root; CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

started=$SECONDS
log() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

log "installing test dependencies"
# podman + runc (crun cannot run here), docker.io (dockerd 20.10), busybox-static and
# binutils (readelf) for images/build.sh.
apt_pkgs=(busybox-static util-linux procps binutils podman runc docker.io)
# tests/bench_smoke.rs runs the benchmark harness once against every init it compares;
# tests/attacks.rs builds ELF hooks with a chosen PT_INTERP with gcc.
# python3-seccomp (libseccomp for Debian's python3) compiles Docker's default seccomp profile.
apt_pkgs+=(tini dumb-init catatonit hyperfine gcc libc6-dev python3 python3-seccomp)
# tests/egress.rs builds its test hosts in network namespaces (ip netns, veth); the egress
# benchmark can shape their link (tc).
apt_pkgs+=(iproute2)
# tests/sandboxctl_vm.rs: Debian 12's QEMU, e2fsprogs for the workspace disk (mke2fs,
# e2fsck, debugfs) and xz-utils for images/build.sh vm (the kernel's vmlinux); the kernel
# package itself is fetched by build.sh with apt-get download, never installed.
apt_pkgs+=(qemu-system-x86 e2fsprogs xz-utils)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# qemu-system-x86 replaces the machine's newer backported qemu-utils; bring back Debian 12's
# (qemu-img) so nothing else that uses it breaks.
if ! command -v qemu-img >/dev/null; then
    apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
fi

log "kubernetes-validate"
# tests/kube_manifests.rs validates every rendered Kubernetes object offline against the
# bundled schemas of several Kubernetes versions (no cluster can run here).
if ! kubernetes-validate --version 2>/dev/null | grep -qx '1.37.0'; then
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

log "container engines"
# podman on these machines needs runc and explicit rlimits (no CAP_SYS_RESOURCE): a drop-in
# that adds to the configuration chain (CONTAINERS_CONF would replace it).
conf=/etc/containers/containers.conf.d/50-openshell.conf
want='[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"'
if [[ "$(cat "$conf" 2>/dev/null)" != "$want" ]]; then
    mkdir -p "$(dirname "$conf")"
    printf '%s\n' "$want" >"$conf"
fi
podman info >/dev/null

dockerd_pid=
dockerd_log="${TMPDIR:-/tmp}/openshell-tests-dockerd.log"
stop_dockerd() {
    if [[ -n "$dockerd_pid" ]]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
}
trap stop_dockerd EXIT
if ! docker info >/dev/null 2>&1; then
    # No bridge or iptables on these machines: sandboxes need no network to be tested.
    dockerd --iptables=false --ip-forward=false --bridge=none >"$dockerd_log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not come up; its log ($dockerd_log):" >&2
        tail -n 30 "$dockerd_log" >&2
        exit 1
    fi
fi

log "cargo fmt --check"
cargo fmt --check
log "cargo clippy"
cargo clippy --all-targets -- -D warnings
log "cargo build --release"
# The sandboxctl tests build their image (images/build.sh) from this release supervisor.
cargo build --release
log "cargo test (three groups at once, each line prefixed with its group)"
# The engine and VM suites spend most of their time waiting on podman, docker and QEMU, so
# they run beside the rest: the soak (tests/sandboxctl.rs) alone takes ~6 minutes.
cargo test --no-run --quiet
heavy=(sandboxctl sandboxctl_vm sandboxctl_kube kube_play)
rest=(--lib --bins)
for f in tests/*.rs; do
    t=$(basename "$f" .rs)
    [[ " ${heavy[*]} " == *" $t "* ]] || rest+=(--test "$t")
done
groups_dir=$(mktemp -d /tmp/openshell-tests.XXXXXX)
# A group that hangs is killed after this long, so CI reports which one instead of running
# out its own clock. The longest group took ~18.5 min on a clean clone here (after ~10 min
# of builds), so this leaves room for a slower machine and still ends inside CI's 90 min.
group_timeout=${OPENSHELL_TEST_GROUP_TIMEOUT:-40m}
group() {
    local name=$1
    shift
    local rc=0
    { timeout --kill-after=30s "$group_timeout" "$@" 2>&1 || rc=$?; echo "$rc" >"$groups_dir/$name.rc"; } |
        sed -u "s/^/[$name] /"
}
group engines cargo test --test sandboxctl &
pids=($!)
group vms_and_kube cargo test --test sandboxctl_vm --test sandboxctl_kube --test kube_play &
pids+=($!)
# Fuzzing the policy and status.json readers for a bounded time, with stable rustc
# (libFuzzer + SanitizerCoverage, no cargo-fuzz needed).
group rest_and_fuzz sh -c 'cargo test "$@" && cargo test --doc && bash fuzz/run.sh' sh "${rest[@]}" &
pids+=($!)
# Wait for the groups only: a bare `wait` would also wait for the dockerd started above.
wait "${pids[@]}"
failed=()
for name in rest_and_fuzz vms_and_kube engines; do
    rc=$(cat "$groups_dir/$name.rc" 2>/dev/null || echo lost)
    note=
    [[ "$rc" == 124 || "$rc" == 137 ]] && note=" (timed out after $group_timeout)"
    log "test group $name: exit $rc$note"
    [[ "$rc" == 0 ]] || failed+=("$name")
done
rm -rf "$groups_dir"
if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}"
    exit 1
fi
log "all tests passed"
