# The VM image, sourced by images/build.sh after it staged the root filesystem (`vm` mode).
#
# Output directory (default target/openshell-vm):
#   vmlinux          the Debian kernel, uncompressed (booted directly via PVH: under TCG this
#                    saves the ~3.4 s of XZ decompression of the bzImage)
#   initramfs.cpio   the staged root filesystem, uncompressed newc cpio, plus /sbin/init (the
#                    supervisor), /dev/console, the kernel modules of images/vm/modules and
#                    their modules.dep; it is the VM's root filesystem (in RAM)
#   image.json       what sandboxctl --backend vm reads: files, kernel command line, the
#                    supervisor's flags, the default agent command, digests
#
# Only Debian packages: the kernel is fetched with `apt-get download` (never installed on
# the host) and unpacked with `dpkg-deb -x`; busybox's depmod and cpio do the rest.
# Env: VM_KERNEL_PACKAGE  e.g. linux-image-6.1.0-57-amd64 (default: what linux-image-amd64
#                         depends on). The generic kernel is used, not -cloud: the cloud
#                         kernel has no 9p, which the status share needs.
#      VM_CACHE           where downloaded .debs are kept (default target/vm-cache)

vm_die() {
    echo "images/build.sh vm: $*" >&2
    exit 1
}

# The kernel package's .deb, downloaded once per version into the cache.
vm_fetch_kernel() {
    local cache="$1" pkg="$2" version deb
    version="$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -1)"
    [[ -n "$version" ]] || vm_die "apt knows no package $pkg (run apt-get update?)"
    mkdir -p "$cache"
    deb="$cache/${pkg}_${version//:/%3a}_amd64.deb"
    if [[ ! -f "$deb" ]]; then
        echo "downloading $pkg $version" >&2
        (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" >&2) ||
            vm_die "apt-get download $pkg=$version failed"
    fi
    [[ -f "$deb" ]] || vm_die "apt-get download left no $deb"
    echo "$deb"
}

# The uncompressed vmlinux inside a bzImage: find the XZ stream's magic, decompress from
# there (the kernel's scripts/extract-vmlinux does the same).
vm_extract_vmlinux() {
    local bz="$1" out="$2" off
    command -v xz >/dev/null || vm_die "xz is missing: apt-get install xz-utils"
    off="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -1 | cut -d: -f1)"
    [[ -n "$off" ]] || vm_die "$bz has no XZ payload (only XZ-compressed kernels are handled)"
    # xz stops at the end of the stream and complains about what follows it: ignore that.
    tail -c +"$((off + 1))" "$bz" | xz -dc >"$out" 2>/dev/null || true
    [[ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" == '177ELF' ]] ||
        vm_die "could not extract an ELF vmlinux from $bz"
}

# Every module file `names` need (the names and their dependencies), one path per line,
# relative to the kernel's modules directory.
vm_module_closure() {
    local dep="$1"
    shift
    local -A seen=()
    local -a queue=() out=()
    local n line file
    for n in "$@"; do
        n="${n//-/_}"
        line="$(awk -v n="$n" -F: '{f=$1; sub(".*/","",f); sub("\\.ko$","",f); gsub("-","_",f); if (f==n) {print; exit}}' "$dep")"
        [[ -n "$line" ]] || vm_die "module $n is not in the kernel package's modules.dep"
        queue+=("${line%%:*}")
    done
    while ((${#queue[@]})); do
        file="${queue[0]}"
        queue=("${queue[@]:1}")
        [[ -n "${seen[$file]:-}" ]] && continue
        seen[$file]=1
        out+=("$file")
        line="$(grep -m1 "^${file}:" "$dep")"
        for n in ${line#*:}; do
            queue+=("$n")
        done
    done
    printf '%s\n' "${out[@]}"
}

build_vm_image() {
    local root="$1" out="$2"
    local cache="${VM_CACHE:-$repo/target/vm-cache}"
    local pkg="${VM_KERNEL_PACKAGE:-}"
    if [[ -z "$pkg" ]]; then
        pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)"
        [[ -n "$pkg" ]] || vm_die "cannot find the kernel package linux-image-amd64 depends on (apt-get update?)"
    fi
    local deb kdir krel mdir
    deb="$(vm_fetch_kernel "$cache" "$pkg")"
    # Unpacked once per package version: the vmlinux and the modules with their modules.dep
    # (the package has none: depmod runs at install time, so it is made here).
    kdir="${deb%.deb}.unpacked"
    if [[ ! -f "$kdir/vmlinux" ]]; then
        rm -rf "$kdir.tmp"
        dpkg-deb -x "$deb" "$kdir.tmp"
        krel="$(ls "$kdir.tmp/lib/modules")"
        [[ -n "$krel" && -f "$kdir.tmp/boot/vmlinuz-$krel" ]] || vm_die "$deb has no kernel image"
        vm_extract_vmlinux "$kdir.tmp/boot/vmlinuz-$krel" "$kdir.tmp/vmlinux"
        "$busybox" depmod -b "$kdir.tmp" "$krel"
        rm -rf "$kdir"
        mv "$kdir.tmp" "$kdir"
    fi
    krel="$(ls "$kdir/lib/modules")"
    cp "$kdir/vmlinux" "$work/vmlinux"
    mdir="lib/modules/$krel"

    # Modules: exactly those listed and what they depend on.
    local -a wanted
    mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/vm/modules")
    install -d -m 0755 -o 0 -g 0 "$root/lib/modules" "$root/$mdir"
    local f
    : >"$root/$mdir/modules.dep"
    while read -r f; do
        install -D -m 0644 -o 0 -g 0 "$kdir/$mdir/$f" "$root/$mdir/$f"
        grep -m1 "^${f}:" "$kdir/$mdir/modules.dep" >>"$root/$mdir/modules.dep"
    done < <(vm_module_closure "$kdir/$mdir/modules.dep" "${wanted[@]}")
    install -m 0644 -o 0 -g 0 "$kdir/$mdir/modules.builtin" "$root/$mdir/modules.builtin"
    install -m 0644 -o 0 -g 0 "$here/vm/modules" "$root/etc/openshell/modules"

    # The supervisor is the init; the kernel opens /dev/console for it before devtmpfs.
    install -d -m 0755 -o 0 -g 0 "$root/sbin"
    ln -s ../usr/bin/supervisor "$root/sbin/init"
    mknod -m 0600 "$root/dev/console" c 5 1

    # Deterministic archive: sorted names, mtime 0, owners as staged (cpio keeps numbers).
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) >"$work/initramfs.cpio"

    # The supervisor's flags are the image's (like a container image's ENTRYPOINT); the
    # kernel passes what follows `--` on its command line to init as its arguments. Per-VM
    # settings (hostname, command, environment) come from the host through fw_cfg.
    local cmdline='console=ttyS0 rdinit=/sbin/init panic=-1 quiet'
    local sha_k sha_i
    sha_k="$(sha256sum "$work/vmlinux" | cut -d' ' -f1)"
    sha_i="$(sha256sum "$work/initramfs.cpio" | cut -d' ' -f1)"
    cat >"$work/image.json" <<EOF
{
  "schema_version": 1,
  "kernel": "vmlinux",
  "initrd": "initramfs.cpio",
  "kernel_release": "$krel",
  "kernel_package": "$(basename "$deb")",
  "kernel_sha256": "$sha_k",
  "initrd_sha256": "$sha_i",
  "cmdline": "$cmdline",
  "init_args": ["--init", "--hook=/etc/openshell/boot.sh", "--policy=/etc/openshell/policy.yaml", "--status-dir=/run/openshell", "--workspace=/sandbox", "--grace=10s"],
  "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/sandbox"]
}
EOF
    # Replace the output's files by rename, so a sandbox that hardlinked the old ones keeps them.
    mkdir -p "$out"
    for f in vmlinux initramfs.cpio image.json; do
        cp "$work/$f" "$out/.$f.new"
        mv -f "$out/.$f.new" "$out/$f"
    done
    echo "VM image in $out (kernel $krel from $(basename "$deb"), initramfs $(du -h "$out/initramfs.cpio" | cut -f1))" >&2
    echo "$out"
}
