#!/usr/bin/env python3
"""Side-by-side benchmark of the supervisor against tini, tini-static, dumb-init and catatonit.

Runs every measurement in one go and writes results.json, report.md and chart.svg into
--out. `benches/run.sh` installs the tools, builds the release supervisor and calls this;
see README.md ("Benchmarks") for what each number means. Standard library only.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402  (benches/report.py)

OURS = "supervisor"
BASELINE = "tini-static"

# Full run and the cheap one used by the smoke test.
PROFILES = {
    "full": dict(
        # Many short rounds, each running every command: background bursts on a shared
        # machine then hit all commands alike instead of one command's whole block.
        start_runs=600, start_rounds=10, start_warmup=10,
        mem_runs=3, mem_settle=1.5,
        storm_orphans=10000, storm_runs=5,
        sig_runs=200, sig_rounds=10, sig_settle_ms=20,
        restart_count=200,
        # Many short runs: on a shared machine some run undisturbed, which the p10 shows.
        sc_rounds=100, sc_iters=20000, sc_load_runs=2,
    ),
    "smoke": dict(
        start_runs=10, start_rounds=1, start_warmup=2,
        mem_runs=1, mem_settle=0.3,
        storm_orphans=300, storm_runs=1,
        sig_runs=3, sig_rounds=1, sig_settle_ms=20,
        restart_count=3,
        sc_rounds=1, sc_iters=2000, sc_load_runs=2,
    ),
}

HELPERS = ["storm", "sigchild", "sigdrive", "crashy"]


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def sh(argv, **kw):
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw).stdout


def build_helpers(bindir):
    """Compiles the C helpers statically, so their start-up is not dynamic loading."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name in HELPERS:
        src = HERE / "helpers" / f"{name}.c"
        out = bindir / name
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o", str(out), str(src)],
            check=True,
        )
    return {name: str(bindir / name) for name in HELPERS}


class Inits:
    """Argument prefixes for each init: everything before the child command.

    `host` forms run the init as an ordinary process (a child subreaper where the tool can
    be one: ours and catatonit do it on their own, tini needs -s, dumb-init has no such
    mode); `pid1` forms run it as PID 1 of a new PID namespace."""

    def __init__(self, supervisor, status_shm, status_disk):
        self.sup = supervisor
        self.status = {"shm": status_shm, "disk": status_disk}

    def ours(self, where="shm", policy=None):
        enforce = ["--policy", policy] if policy else ["--no-policy"]
        return [self.sup, "--restart", "never", "--no-hook", *enforce,
                "--status-dir", self.status[where], "--"]

    def host(self):
        return {
            OURS: self.ours("shm"),
            "tini": ["/usr/bin/tini", "-s", "--"],
            "tini-static": ["/usr/bin/tini-static", "-s", "--"],
            "dumb-init": ["/usr/bin/dumb-init"],
            "catatonit": ["/usr/bin/catatonit", "--"],
        }

    def pid1(self):
        return {
            OURS: self.ours("shm"),
            "tini": ["/usr/bin/tini", "--"],
            "tini-static": ["/usr/bin/tini-static", "--"],
            "dumb-init": ["/usr/bin/dumb-init"],
            "catatonit": ["/usr/bin/catatonit", "--"],
        }


def cmdline(argv):
    return " ".join(shlex.quote(a) for a in argv)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ----- 1 and 6: start-to-exit ---------------------------------------------------------


def probe_policy(inits, policy, cwd):
    """Runs the enforced variant once. Returns None when it works, else why not."""
    argv = inits.ours("shm", policy) + ["/bin/true"]
    p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if p.returncode == 0:
        return None
    why = ""
    for line in p.stderr.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("level") == "error":
            why = ev.get("error") or ev.get("msg") or ""
            break
    return f"supervisor exited {p.returncode}: {why}".strip()


def start_to_exit(inits, cfg, out, policy, cwd):
    cmds = [("/bin/true (bare)", ["/bin/true"])]
    for name, pre in inits.host().items():
        label = f"{name} (status on /dev/shm)" if name == OURS else name
        cmds.append((label, pre + ["/bin/true"]))
    policy_error = probe_policy(inits, policy, cwd)
    if policy_error is None:
        cmds.append((f"{OURS} --policy (status on /dev/shm)", inits.ours("shm", policy) + ["/bin/true"]))
    else:
        log(f"enforcement row not available on this build: {policy_error}")
    # The disk variant runs in rounds of its own, after the comparison: its fsyncs leave
    # the journal busy for a while, which would slow whichever command ran next.
    disk = [(f"{OURS} (status on disk)", inits.ours("disk") + ["/bin/true"])]

    times = {label: [] for label, _ in cmds + disk}
    runs = max(1, cfg["start_runs"] // cfg["start_rounds"])
    hf_cmds = []
    for group, tag in ((cmds, "cmp"), (disk, "disk")):
        for r in range(cfg["start_rounds"]):
            jf = out / f"hyperfine-{tag}-{r}.json"
            argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(cfg["start_warmup"]),
                    "--runs", str(runs), "--export-json", str(jf)]
            # Each round starts one command later, so no command always runs first or
            # always follows the same neighbour.
            k = r % len(group)
            for label, cmd in group[k:] + group[:k]:
                argv += ["--command-name", label, cmdline(cmd)]
            hf_cmds.append(argv)
            log(f"start-to-exit ({tag}) round {r + 1}/{cfg['start_rounds']} ({runs} runs per command)")
            subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
            for res in json.loads(jf.read_text())["results"]:
                times[res["command"]] += res["times"]
    cmds += disk

    rows = []
    for label, cmd in cmds:
        t = times[label]
        rows.append(dict(
            name=label, command=cmdline(cmd), runs=len(t),
            median_ms=statistics.median(t) * 1e3, mean_ms=statistics.fmean(t) * 1e3,
            stdev_ms=statistics.pstdev(t) * 1e3, p90_ms=pct(t, 90) * 1e3, min_ms=min(t) * 1e3,
        ))
    return dict(rows=rows, hyperfine=[cmdline(a) for a in hf_cmds],
                policy_error=policy_error, policy_file=str(policy))


# ----- 2: memory ----------------------------------------------------------------------


def proc_status(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                vals[k] = int(v.split()[0])
    return vals


def smaps_rollup(pid):
    """Proportional set size: each shared page counted as 1/N of the processes mapping it,
    so a static binary's file pages are not charged whole to every init."""
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Pss_Anon", "Pss_File"):
                vals[k] = int(v.split()[0])
    return vals


def children_of(pid):
    kids = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
            kids.append(int(e))
    return kids


def elf_is_static(path):
    """True when the ELF has no PT_INTERP (no dynamic loader)."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        phoff, = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if struct.unpack("<I", f.read(4))[0] == 3:
                return False
    return True


def memory(inits, cfg, cwd):
    rows = []
    for name, pre in inits.host().items():
        argv = pre + ["sleep", "60"]
        samples = []
        for _ in range(cfg["mem_runs"]):
            p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(cfg["mem_settle"])
                if not children_of(p.pid):
                    raise RuntimeError(f"{name}: no child after {cfg['mem_settle']} s")
                samples.append(proc_status(p.pid) | smaps_rollup(p.pid))
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        binary = pre[0]
        with tempfile.TemporaryDirectory() as td:
            stripped = Path(td) / "bin"
            subprocess.run(["strip", "-o", str(stripped), binary], check=True)
            stripped_size = stripped.stat().st_size
        rows.append(dict(
            name=name, command=cmdline(argv),
            **{k: statistics.median(s[k] for s in samples) for k in samples[0]},
            binary=binary, size=os.path.getsize(binary), stripped_size=stripped_size,
            static=elf_is_static(binary),
        ))
    return dict(rows=rows, settle_s=cfg["mem_settle"], runs=cfg["mem_runs"])


# ----- 3: zombie storm ----------------------------------------------------------------


def storm(inits, cfg, helpers, cwd):
    n = cfg["storm_orphans"]
    runs = {name: [] for name in inits.pid1()}
    cmds = {}
    for r in range(cfg["storm_runs"]):
        for name, pre in inits.pid1().items():
            argv = ["unshare", "--pid", "--fork", "--mount-proc", *pre, helpers["storm"], str(n), "60"]
            cmds[name] = cmdline(argv)
            t0 = time.monotonic_ns()
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            wall = time.monotonic_ns() - t0
            line = next((l for l in p.stdout.splitlines() if l.startswith("{\"orphans\"")), None)
            if line is None:
                raise RuntimeError(f"storm under {name} printed nothing (exit {p.returncode}): {p.stderr[-2000:]}")
            d = json.loads(line)
            runs[name].append(dict(
                rc=p.returncode, wall_ms=wall / 1e6,
                total_ms=(d["t_reaped"] - d["t_start"]) / 1e6,
                fork_ms=(d["t_forked"] - d["t_start"]) / 1e6,
                tail_ms=(d["t_reaped"] - d["t_exited"]) / 1e6,
                pending=d["pending_at_exit"], left=d["left"], init_cpu_ms=d["init_cpu_ns"] / 1e6,
            ))
            log(f"storm {r + 1}/{cfg['storm_runs']} {name}: total {runs[name][-1]['total_ms']:.0f} ms, "
                f"tail {runs[name][-1]['tail_ms']:.2f} ms, left {d['left']}")
    rows = []
    for name, rs in runs.items():
        med = lambda k: statistics.median(x[k] for x in rs)  # noqa: E731
        rows.append(dict(
            name=name, command=cmds[name], runs=len(rs), orphans=n,
            total_ms=med("total_ms"), fork_ms=med("fork_ms"), tail_ms=med("tail_ms"),
            wall_ms=med("wall_ms"), pending=med("pending"), init_cpu_ms=med("init_cpu_ms"),
            left_max=max(x["left"] for x in rs), bad_exit=sum(x["rc"] != 0 for x in rs),
        ))
    return dict(rows=rows, orphans=n)


# ----- 4: signal latency ---------------------------------------------------------------


def signal_latency(inits, cfg, helpers, cwd):
    variants = list(inits.host().items())
    variants[0] = (f"{OURS} (status on /dev/shm)", variants[0][1])
    variants.append((f"{OURS} (status on disk)", inits.ours("disk")))
    lat = {name: [] for name, _ in variants}
    failed = {name: 0 for name, _ in variants}
    cmds = {}
    per_round = max(1, cfg["sig_runs"] // cfg["sig_rounds"])
    # Rotated order per round; the disk variant (fsync'd Stopping/Stopped writes) last.
    cmp, disk = variants[:-1], variants[-1:]
    for r in range(cfg["sig_rounds"]):
        k = r % len(cmp)
        for name, pre in cmp[k:] + cmp[:k] + disk:
            argv = [helpers["sigdrive"], str(per_round), str(cfg["sig_settle_ms"]), "--",
                    *pre, helpers["sigchild"]]
            cmds[name] = cmdline(argv)
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            d = json.loads(p.stdout)
            lat[name] += d["latency_ns"]
            failed[name] += d["failed"]
        log(f"signal latency round {r + 1}/{cfg['sig_rounds']}")
    rows = []
    for name, _ in variants:
        us = [x / 1e3 for x in lat[name]]
        rows.append(dict(
            name=name, command=cmds[name], runs=len(us), failed=failed[name],
            median_us=statistics.median(us) if us else None,
            p90_us=pct(us, 90), min_us=min(us) if us else None,
        ))
    return dict(rows=rows, settle_ms=cfg["sig_settle_ms"])


# ----- 5: restart latency ---------------------------------------------------------------


# The enforcement policy of section 6, plus the helpers' directory so `crashy` may run.
RESTART_POLICY = """version: 1
filesystem_policy:
  include_workdir: false
  read_only: [/usr, /etc, /proc, {bindir}]
  read_write: [/tmp, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: nobody
  run_as_group: nogroup
"""


def restart_latency(inits, cfg, helpers, cwd, out):
    rows = []
    n = cfg["restart_count"]
    policy = out / "restart-policy.yaml"
    policy.write_text(RESTART_POLICY.format(bindir=Path(helpers["crashy"]).parent))
    variants = [("shm", None), ("disk", None), ("shm", str(policy))]
    for where, pol in variants:
        enforce = ["--policy", pol] if pol else ["--no-policy"]
        argv = [inits.sup, "--restart", "always", "--backoff-initial", "0",
                "--max-restarts", str(n), "--restart-window", "1h",
                "--no-hook", *enforce, "--status-dir", inits.status[where], "--", helpers["crashy"]]
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        events = [l.split() for l in p.stdout.splitlines() if l.strip()]
        lat = []
        for (k1, v1), (k2, v2) in zip(events, events[1:]):
            if k1 == "crash" and k2 == "start":
                lat.append((int(v2) - int(v1)) / 1e3)
        if p.returncode != 84 or len(lat) != n:
            raise RuntimeError(
                f"restart run: expected exit 84 (crash loop) after {n} restarts, got exit "
                f"{p.returncode} and {len(lat)} restarts: {p.stderr[-2000:]}")
        rows.append(dict(
            name=f"{OURS}{' --policy' if pol else ''} (status on {'/dev/shm' if where == 'shm' else 'disk'})",
            command=cmdline(argv), restarts=len(lat), policy=pol is not None,
            median_us=statistics.median(lat), p90_us=pct(lat, 90), min_us=min(lat),
        ))
    return dict(rows=rows)


# ----- 7: seccomp cost in the agent --------------------------------------------------------


def docker_program(out):
    """Docker's default profile (benches/docker-default-seccomp.json, derived from
    moby/profiles) compiled by libseccomp as runc compiles it. python3-seccomp lives in
    Debian's own interpreter, which need not be the python3 running this script."""
    bpf = out / "docker-default.bpf"
    p = subprocess.run(["/usr/bin/python3", str(HERE / "docker_seccomp.py"), "compile",
                        str(HERE / "docker-default-seccomp.json"), str(bpf)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("cannot compile Docker's default seccomp profile (is python3-seccomp "
                           f"installed? benches/run.sh installs it): {p.stderr[-2000:]}")
    return bpf, json.loads(p.stdout)


def seccomp_cost(cfg, out, probe, cwd):
    """sandbox-probe enters each program itself, the way the supervisor's child does
    (no_new_privs, one seccomp(2)), then times getppid, ioctl and a denied call; runs of
    the variants interleave round by round, and the load time is taken in fresh forked
    children in the same rounds."""
    docker_bpf, docker_info = docker_program(out)
    variants = [("no filter", None), (OURS, "ours"), ("docker default", str(docker_bpf))]
    keys = ("getppid_ns", "ioctl_ns", "denied_ns")
    runs = {name: {k: [] for k in keys} for name, _ in variants}
    loads = {name: [] for name, src in variants if src}
    info = {}
    for r in range(cfg["sc_rounds"]):
        k = r % len(variants)
        for name, src in variants[k:] + variants[:k]:
            argv = [probe] + ([f"seccomp:{src}"] if src else []) + [f"bench:{cfg['sc_iters']}"]
            lines = [json.loads(l) for l in sh(argv, cwd=cwd).splitlines()]
            bench = next(l for l in lines if l["op"] == "bench")
            for key in keys:
                runs[name][key].append(bench[key])
            info[name] = dict(command=cmdline(argv), denied_errno=bench["denied_errno"])
            if src:
                argv = [probe, f"seccomp-load:{src}:{cfg['sc_load_runs']}"]
                ld = json.loads(sh(argv, cwd=cwd).splitlines()[-1])
                loads[name].append(ld["median_ns"])
                info[name].update(instructions=ld["instructions"], load_command=cmdline(argv))
        if (r + 1) % 10 == 0 or r + 1 == cfg["sc_rounds"]:
            log(f"seccomp cost round {r + 1}/{cfg['sc_rounds']}")
    base = {key: statistics.median(runs["no filter"][key]) for key in keys}
    base10 = {key: pct(runs["no filter"][key], 10) for key in keys}
    rows = []
    for name, src in variants:
        med = {key: statistics.median(runs[name][key]) for key in keys}
        p10 = {key: pct(runs[name][key], 10) for key in keys}
        rows.append(dict(
            name=name, source=src, runs=len(runs[name]["getppid_ns"]), **info[name], **med,
            **{key.replace("_ns", "_delta_ns"): med[key] - base[key] for key in keys},
            **{key.replace("_ns", "_p10_ns"): p10[key] for key in keys},
            **{key.replace("_ns", "_p10_delta_ns"): p10[key] - base10[key] for key in keys},
            **({"load_us": statistics.median(loads[name]) / 1e3,
                "load_runs": len(loads[name]) * cfg["sc_load_runs"]} if src else {}),
        ))
    return dict(rows=rows, iterations=cfg["sc_iters"], rounds=cfg["sc_rounds"],
                docker=dict(source=json.loads((HERE / "docker-default-seccomp.json").read_text())["source"],
                            **docker_info))


# ----- machine ----------------------------------------------------------------------------


def machine(supervisor):
    def first(path, key, sep=":"):
        try:
            for line in open(path):
                if line.startswith(key):
                    return line.split(sep, 1)[1].strip()
        except OSError:
            pass
        return "?"

    def version(pkg):
        try:
            return sh(["dpkg-query", "-W", "-f", "${Version}", pkg])
        except (subprocess.CalledProcessError, FileNotFoundError):
            return "?"

    def fstype(path):
        try:
            return sh(["stat", "-f", "-c", "%T", path]).strip()
        except subprocess.CalledProcessError:
            return "?"

    try:
        commit = sh(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"]).strip()
        if sh(["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"]).strip():
            commit += " (with uncommitted changes)"
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "?"
    return dict(
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        kernel=platform.release(),
        cpu=first("/proc/cpuinfo", "model name"),
        cores=os.cpu_count(),
        memory=first("/proc/meminfo", "MemTotal"),
        os=first("/etc/os-release", "PRETTY_NAME=", "=").strip('"'),
        load_start=os.getloadavg(),
        rustc=sh(["rustc", "-V"]).strip() if shutil.which("rustc") else "?",
        commit=commit,
        supervisor=supervisor,
        versions={p: version(p) for p in ("tini", "dumb-init", "catatonit", "hyperfine", "libseccomp2")},
    ), fstype


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--supervisor", required=True, help="supervisor binary to measure")
    ap.add_argument("--out", required=True, help="directory for results.json, report.md, chart.svg")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--policy", default=str(HERE / "policy.yaml"))
    ap.add_argument("--status-disk", help="status dir on disk (default OUT/status)")
    ap.add_argument("--probe", help="sandbox-probe binary (default: next to --supervisor)")
    args = ap.parse_args()

    cfg = PROFILES[args.profile]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    supervisor = str(Path(args.supervisor).resolve())
    probe = str(Path(args.probe or Path(supervisor).parent / "sandbox-probe").resolve())
    shm = Path("/dev/shm") / f"openshell-bench-{os.getpid()}"
    disk = Path(args.status_disk or out / "status").resolve()
    for d in (shm, disk):
        d.mkdir(parents=True, exist_ok=True)
    # A neutral start directory: every init and child starts here.
    cwd = "/tmp"

    info, fstype = machine(supervisor)
    info["status_shm"] = f"{shm} ({fstype(str(shm))})"
    info["status_disk"] = f"{disk} ({fstype(str(disk))})"
    info["profile"] = args.profile
    log(f"building helpers into {out / 'bin'}")
    helpers = build_helpers(out / "bin")
    inits = Inits(supervisor, str(shm), str(disk))

    results = dict(machine=info, config=cfg)
    try:
        results["start"] = start_to_exit(inits, cfg, out, args.policy, cwd)
        log("memory")
        results["memory"] = memory(inits, cfg, cwd)
        results["storm"] = storm(inits, cfg, helpers, cwd)
        results["signal"] = signal_latency(inits, cfg, helpers, cwd)
        log("restart latency")
        results["restart"] = restart_latency(inits, cfg, helpers, cwd, out)
        results["seccomp"] = seccomp_cost(cfg, out, probe, cwd)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    info["load_end"] = os.getloadavg()
    info["argv"] = cmdline([sys.executable, *sys.argv])

    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(report.markdown(results))
    (out / "chart.svg").write_text(report.svg(results))
    log(f"wrote {out / 'report.md'} and {out / 'chart.svg'}")


if __name__ == "__main__":
    main()
