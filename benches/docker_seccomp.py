#!/usr/bin/env python3
"""Docker's default seccomp profile as a BPF program, for the per-syscall benchmark.

    docker_seccomp.py derive DEFAULT_JSON COMMIT > benches/docker-default-seccomp.json
        Development time: resolves moby/profiles' seccomp/default.json the way Docker does
        for an amd64 container with Docker's default capabilities on a kernel >= 4.8, and
        writes the result as a compact table (with its attribution).
    /usr/bin/python3 docker_seccomp.py compile TABLE OUT
        Bench time (no network): compiles the table with libseccomp (Debian's
        python3-seccomp, which lives in the system interpreter) the way runc does, and
        writes the raw program (struct sock_filter array) to OUT for `sandbox-probe
        seccomp:OUT`. Prints {"instructions": N}.

runc also puts a short stub of its own in front (ENOSYS for syscalls newer than the
profile, by arch); it is not included, so the Docker row slightly flatters Docker.
"""

import json
import sys

# Docker's default capability set (moby/moby, oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}
ARCH = "amd64"
# Every minKernel in the profile is at most this; the table is for kernels at least as new.
KERNEL = (4, 8)

OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
       "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def _kernel_ok(v):
    return tuple(int(x) for x in v.split(".")[:2]) <= KERNEL


def derive(profile, commit):
    """The filtering of moby/profiles' setupSeccomp (seccomp_linux.go) for ARCH and the
    default capabilities."""
    arches = next([m["architecture"], *(m["subArchitectures"] or [])]
                  for m in profile["archMap"] if m["architecture"] == "SCMP_ARCH_X86_64")
    rules = []
    for call in profile["syscalls"]:
        exc, inc = call.get("excludes") or {}, call.get("includes") or {}
        if ARCH in exc.get("arches", []) or DOCKER_DEFAULT_CAPS & set(exc.get("caps", [])):
            continue
        if exc.get("minKernel") and _kernel_ok(exc["minKernel"]):
            continue
        if inc.get("arches") and ARCH not in inc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= DOCKER_DEFAULT_CAPS:
            continue
        if inc.get("minKernel") and not _kernel_ok(inc["minKernel"]):
            continue
        action = {"SCMP_ACT_ALLOW": "allow", "SCMP_ACT_ERRNO": "errno"}[call["action"]]
        rule = {"action": action, "names": call["names"]}
        if action == "errno":
            rule["errno"] = call.get("errnoRet", profile.get("defaultErrnoRet", 1))
        if call.get("args"):
            rule["args"] = [[a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0)]
                            for a in call["args"]]
        rules.append(rule)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    return {
        "source": f"moby/profiles seccomp/default.json at commit {commit}",
        "license": "Apache-2.0 (see docker-default-seccomp.LICENSE); Copyright the Moby project authors",
        "changes": (f"derived by benches/docker_seccomp.py: only the entries Docker applies to an "
                    f"{ARCH} container with its default capabilities on Linux >= "
                    f"{KERNEL[0]}.{KERNEL[1]}, in a compact form"),
        "default_errno": profile.get("defaultErrnoRet", 1),
        "architectures": arches,
        "rules": rules,
    }


def compile_table(table, out):
    """runc's InitSeccomp: the filter with the default action, the extra architectures,
    the binary tree (runc sets it for more than 32 syscalls), one rule per name, names
    libseccomp does not know skipped; when two conditions share an argument, one rule per
    condition (libseccomp cannot AND them)."""
    import seccomp  # python3-seccomp, in Debian's /usr/bin/python3

    f = seccomp.SyscallFilter(seccomp.ERRNO(table["default_errno"]))
    for a in table["architectures"]:
        arch = getattr(seccomp.Arch, a.removeprefix("SCMP_ARCH_"))
        if not f.exist_arch(arch):
            f.add_arch(arch)
    f.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    skipped = []
    for rule in table["rules"]:
        action = seccomp.ALLOW if rule["action"] == "allow" else seccomp.ERRNO(rule["errno"])
        args = [seccomp.Arg(i, getattr(seccomp, op), a, b) for i, op, a, b in rule.get("args", [])]
        shared = len({a[0] for a in rule.get("args", [])}) < len(args)
        for name in rule["names"]:
            # __NR_SCMP_ERROR: a name this libseccomp does not know (runc skips it too).
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1:
                skipped.append(name)
                continue
            for group in ([[a] for a in args] if shared else [args]):
                f.add_rule(action, name, *group)
    with open(out, "wb") as fh:
        f.export_bpf(fh)
    with open(out, "rb") as fh:
        n = len(fh.read()) // 8
    print(json.dumps({"instructions": n, "unknown_to_libseccomp": sorted(set(skipped))}))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "derive":
        with open(sys.argv[2]) as fh:
            table = derive(json.load(fh), sys.argv[3])
        # One line per key and per rule: compact, and diffs stay readable.
        rules = table.pop("rules")
        lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in table.items()]
        lines.append(' "rules": [')
        lines.append(",\n".join(f"  {json.dumps(r)}" for r in rules))
        sys.stdout.write("{\n" + "\n".join(lines) + "\n ]\n}\n")
    elif len(sys.argv) == 4 and sys.argv[1] == "compile":
        with open(sys.argv[2]) as fh:
            compile_table(json.load(fh), sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
