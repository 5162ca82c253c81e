#!/usr/bin/env bash
# Builds the openshell sandbox image FROM scratch for podman or docker (no registry pulls),
# or the VM image (a Debian kernel and an initramfs with the supervisor as /sbin/init).
#
# Usage: images/build.sh podman|docker [TAG]          (default TAG: localhost/openshell-sandbox:dev)
#        images/build.sh vm [DIR]                     (default DIR: target/openshell-vm; see images/vm/build.sh)
# Env:   SUPERVISOR_BIN  the static supervisor to ship (default: cargo build --release, then
#                        target/x86_64-unknown-linux-gnu/release/supervisor)
#        BUSYBOX_BIN     a static busybox (default: /bin/busybox from Debian's busybox-static)
#        OCI_ARCHIVE     where the image is also written as an archive for clusters without a
#                        registry (default: target/images/openshell-sandbox.<engine>.tar; empty:
#                        none). podman writes an OCI archive (`podman save --format
#                        oci-archive`), docker a docker archive (`docker save`); kind, k3s and
#                        containerd's `ctr images import` load either (README "## Kubernetes").
#
# The rootfs is assembled in a staging directory with exact owners and modes and packed into
# rootfs.tar, which the Containerfile ADDs (ADD keeps owners and modes; COPY would not).
set -euo pipefail

engine="${1:-}"
tag="${2:-localhost/openshell-sandbox:dev}"
case "$engine" in
podman | docker) ;;
vm) tag="${2:-}" ;;
*)
    echo "usage: $0 podman|docker [TAG] | vm [DIR]" >&2
    exit 64
    ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
die() {
    echo "images/build.sh: $*" >&2
    exit 1
}

[[ "$engine" == vm ]] || command -v "$engine" >/dev/null || die "$engine is not installed (not on PATH)"

supervisor="${SUPERVISOR_BIN:-}"
if [[ -z "$supervisor" ]]; then
    (cd "$repo" && cargo build --release --quiet --bin supervisor)
    supervisor="$repo/target/x86_64-unknown-linux-gnu/release/supervisor"
fi
busybox="${BUSYBOX_BIN:-/bin/busybox}"
[[ -x "$supervisor" ]] || die "supervisor binary $supervisor is missing or not executable"
[[ -x "$busybox" ]] || die "$busybox is missing: apt-get install busybox-static"
# Nothing but these two binaries goes into the image, so both must be static.
command -v readelf >/dev/null || die "readelf is missing: apt-get install binutils"
for bin in "$supervisor" "$busybox"; do
    if LC_ALL=C readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
        die "$bin is dynamically linked; the image has no libc (use busybox-static and the release supervisor)"
    fi
done

work="$(mktemp -d /tmp/openshell-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

# Directories: name, mode, owner.
mkdir -p "$root"
while read -r dir mode owner; do
    install -d -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$root/$dir"
done <<'EOF'
bin           0755 0:0
usr           0755 0:0
usr/bin       0755 0:0
lib           0755 0:0
etc           0755 0:0
etc/openshell 0755 0:0
run           0755 0:0
run/openshell 0755 0:0
proc          0555 0:0
dev           0755 0:0
sys           0555 0:0
tmp           1777 0:0
opt           0755 0:0
opt/openshell 0755 0:0
sandbox       0755 1000:1000
EOF

# The seed tree (images/seed/): the supervisor copies it into a fresh workspace (a new
# volume, PVC or VM disk) before the boot hook, keeping these owners and modes. /sandbox
# itself stays an empty mount point; the seed root's owner and mode become the workspace
# root's.
stage_seed() {
    install -d -m 0755 -o 1000 -g 1000 "$1"
    cp -R --no-preserve=ownership "$here/seed/." "$1/"
    chown -R 1000:1000 "$1"
    chmod -R u=rwX,go=rX "$1"
}
stage_seed "$root/opt/openshell/seed"

install -m 0755 -o 0 -g 0 "$supervisor" "$root/usr/bin/supervisor"
install -m 0755 -o 0 -g 0 "$busybox" "$root/bin/busybox"
# Applet links: every applet this busybox has, so the hook, the agent and operators' `exec`
# find the usual tools on PATH (the agent could call `busybox X` anyway).
for applet in $("$busybox" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
done

# The boot hook runs unsandboxed as root: it must be root-owned and not group/world-writable,
# in a root-owned directory, or the supervisor refuses it.
install -m 0755 -o 0 -g 0 "$repo/hooks/boot.sh" "$root/etc/openshell/boot.sh"
install -m 0644 -o 0 -g 0 "$here/policy.yaml" "$root/etc/openshell/policy.yaml"

# Users are read from these files directly (a static glibc binary cannot use NSS).
install -m 0644 -o 0 -g 0 /dev/stdin "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:openshell sandbox:/sandbox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
install -m 0644 -o 0 -g 0 /dev/stdin "$root/etc/group" <<'EOF'
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
EOF

if [[ "$engine" == vm ]]; then
    # The same root filesystem becomes the VM's initramfs, with a kernel beside it.
    # shellcheck source=images/vm/build.sh
    source "$here/vm/build.sh"
    build_vm_image "$root" "${tag:-$repo/target/openshell-vm}"
    exit 0
fi

# Deterministic archive: sorted names, fixed mtime, numeric owners exactly as staged.
tar --sort=name --mtime=@0 --numeric-owner --format=gnu -C "$root" -cf "$work/rootfs.tar" .
cp "$here/Containerfile" "$work/Containerfile"

echo "building $tag with $engine (supervisor: $supervisor)" >&2
case "$engine" in
# podman's default OCI format drops HEALTHCHECK.
podman) podman build --quiet --format docker -f "$work/Containerfile" -t "$tag" "$work" ;;
docker) docker build --quiet -f "$work/Containerfile" -t "$tag" "$work" ;;
esac

archive="${OCI_ARCHIVE-$repo/target/images/openshell-sandbox.$engine.tar}"
if [[ -n "$archive" ]]; then
    mkdir -p "$(dirname "$archive")"
    rm -f "$archive"
    case "$engine" in
    podman) podman save --quiet --format oci-archive -o "$archive" "$tag" ;;
    docker) docker save -o "$archive" "$tag" ;;
    esac
    echo "wrote $archive" >&2
fi
echo "$tag"
