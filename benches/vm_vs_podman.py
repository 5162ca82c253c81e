#!/usr/bin/env python3
"""A sandbox as a QEMU VM against the same sandbox on podman, with the release sandboxctl:
start (boot to Ready), start --no-wait, stop, and host memory per running sandbox.

Rounds are interleaved (vm, podman, podman, vm, ...) so load drift on a shared machine
hits both alike. Medians are printed with the machine's load. Memory is the proportional
set size (Pss, /proc/PID/smaps_rollup) of every host process that makes up the running
sandbox once it is Ready: the VM's QEMU and its keeper; the container's conmon and every
process in it (supervisor, agent). Nothing here is a test: no thresholds.

Usage: python3 benches/vm_vs_podman.py [ROUNDS]     (as root; default 5 rounds)
Env:   VM_IMAGE (default target/openshell-vm-test, built by images/build.sh vm)
       PODMAN_IMAGE (default localhost/openshell-sandbox:dev, built by images/build.sh podman)
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTL = os.path.join(REPO, "target/x86_64-unknown-linux-gnu/release/sandboxctl")
VM_IMAGE = os.environ.get("VM_IMAGE", os.path.join(REPO, "target/openshell-vm-test"))
PODMAN_IMAGE = os.environ.get("PODMAN_IMAGE", "localhost/openshell-sandbox:dev")


def ctl(*args):
    t0 = time.monotonic()
    r = subprocess.run([CTL, *args], capture_output=True, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"sandboxctl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return dt


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def memory(root, name, backend):
    if backend == "vm":
        run = json.load(open(os.path.join(root, name, "vm", "run.json")))
        pids = [run["qemu_pid"], run["keeper_pid"]]
    else:
        r = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Pid}} {{.State.ConmonPid}}", f"openshell-{name}"],
            capture_output=True, text=True, check=True)
        pid, conmon = (int(x) for x in r.stdout.split())
        pids = descendants(pid) + [conmon]
    return sum(pss_kib(p) for p in pids)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = tempfile.mkdtemp(prefix="vm-vs-podman-")
    os.environ["OPENSHELL_STATE_ROOT"] = root
    names = {"vm": "bench-vm", "podman": "bench-podman"}
    ctl("create", names["vm"], "--backend", "vm", "--image", VM_IMAGE, "--no-start")
    ctl("create", names["podman"], "--backend", "podman", "--image", PODMAN_IMAGE, "--no-start")
    res = {b: {"start": [], "start_nowait": [], "stop": [], "pss": []} for b in names}
    load0 = os.getloadavg()
    try:
        for r in range(rounds):
            order = ["vm", "podman"] if r % 2 == 0 else ["podman", "vm"]
            for b in order:
                n = names[b]
                res[b]["start"].append(ctl("start", n, "--timeout", "300s"))
                time.sleep(1)
                res[b]["pss"].append(memory(root, n, b))
                res[b]["stop"].append(ctl("stop", n))
                res[b]["start_nowait"].append(ctl("start", n, "--no-wait"))
                ctl("start", n, "--timeout", "300s")
                ctl("stop", n)
    finally:
        subprocess.run([CTL, "delete", "--all"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()
    print(f"rounds: {rounds}; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}; "
          f"{os.cpu_count()} CPUs")
    print("| backend | start, to Ready (s) | start --no-wait (s) | stop (s) | host Pss per sandbox (MiB) |")
    print("|---|---|---|---|---|")
    for b in names:
        m = res[b]
        print(f"| {b} | {statistics.median(m['start']):.2f} | {statistics.median(m['start_nowait']):.2f} "
              f"| {statistics.median(m['stop']):.2f} | {statistics.median(m['pss']) / 1024:.0f} |")
    print("raw:", json.dumps(res))


if __name__ == "__main__":
    main()
