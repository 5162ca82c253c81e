#!/usr/bin/env python3
"""Interleaved A/B restart latency of two (or more) supervisor builds: crash -> next exec.

Each round runs every binary once (order rotated each round, so load drift hits all alike)
with `--restart always --backoff-initial 0 --max-restarts N --no-hook`, the status dir on
/dev/shm, and benches/helpers/crashy.c as the child (it prints CLOCK_MONOTONIC first thing
in main and just before it exits 1). Latency = start(g+1) - crash(g).

    gcc -O2 -static -o /tmp/crashy benches/helpers/crashy.c
    python3 benches/ab_restart.py --crashy /tmp/crashy 10 50 OLD_BIN NEW_BIN -- --no-policy
    python3 benches/ab_restart.py --crashy /tmp/crashy 10 50 OLD_BIN NEW_BIN -- --policy benches/policy.yaml

Everything after `--` is passed to every supervisor. Run as root (the policy drops to nobody).
"""
import argparse
import statistics
import subprocess
import tempfile


def main():
    argv = __import__("sys").argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crashy", required=True, help="the compiled benches/helpers/crashy.c")
    ap.add_argument("rounds", type=int)
    ap.add_argument("restarts", type=int, help="restarts per run")
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args(argv)
    lat = {b: [] for b in a.bins}
    status = tempfile.mkdtemp(dir="/dev/shm")
    for r in range(a.rounds):
        k = r % len(a.bins)
        for b in a.bins[k:] + a.bins[:k]:
            cmd = [b, "--restart", "always", "--backoff-initial", "0",
                   "--max-restarts", str(a.restarts), "--restart-window", "1h",
                   "--no-hook", "--status-dir", status, *extra, "--", a.crashy]
            p = subprocess.run(cmd, cwd="/tmp", capture_output=True, text=True)
            ev = [line.split() for line in p.stdout.splitlines() if line.strip()]
            got = [(int(v2) - int(v1)) / 1e3
                   for (k1, v1), (k2, v2) in zip(ev, ev[1:]) if k1 == "crash" and k2 == "start"]
            if p.returncode != 84 or len(got) != a.restarts:
                raise SystemExit(f"{b}: exit {p.returncode}, {len(got)} restarts: {p.stderr[-500:]}")
            lat[b] += got
    for b in a.bins:
        v = sorted(lat[b])
        print(f"{b}: median {statistics.median(v):.1f} us  p10 {v[len(v) // 10]:.1f}  "
              f"p90 {v[len(v) * 9 // 10]:.1f}  n={len(v)}")


if __name__ == "__main__":
    main()
