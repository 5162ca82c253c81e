"""Turns bench.py's results into report.md (tables) and chart.svg (hand-written SVG bars).

Can also be run on its own to re-render: python3 benches/report.py target/bench/results.json
"""

import html
import json
import sys
from pathlib import Path

OURS = "supervisor"
BASELINE = "tini-static"


def _f(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ratio(x, base):
    if x is None or not base:
        return "n/a"
    return f"{x / base:.2f}"


def _find(rows, name):
    return next((r for r in rows if r["name"] == name), None)


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _commands(rows):
    return "\n".join(f"- {r['name']}: `{r['command']}`" for r in rows) + "\n"


def markdown(res):
    m = res["machine"]
    cfg = res["config"]
    md = ["# openshell-supervisor: init benchmark\n"]
    md.append(
        f"- date: {m['date']}\n- machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM; "
        f"{m['os']}; kernel {m['kernel']}\n"
        f"- load average (1/5/15 min) at start: {' / '.join(f'{x:.2f}' for x in m['load_start'])}; "
        f"at end: {' / '.join(f'{x:.2f}' for x in m.get('load_end', (0, 0, 0)))}\n"
        f"- supervisor: `{m['supervisor']}` (commit {m['commit']}, {m['rustc']})\n"
        f"- tools (Debian): " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "\n"
        f"- status dirs: tmpfs `{m['status_shm']}`, disk `{m['status_disk']}`\n"
        f"- profile `{m['profile']}`; run as `{m.get('argv', '?')}`\n"
    )

    # 1 + 6
    st = res["start"]
    rows = st["rows"]
    bare = _find(rows, "/bin/true (bare)")["median_ms"]
    base = _find(rows, BASELINE)["median_ms"]
    md.append("\n## 1. Start-to-exit: `INIT -- /bin/true`\n\n")
    md.append(
        f"hyperfine `-N` (no shell), {rows[0]['runs']} runs per command split over "
        f"{cfg['start_rounds']} rounds that each run every command ({cfg['start_warmup']} warm-up "
        "runs per command and round) in an order rotated by one each round, so load drift and "
        "position effects hit every command alike. The status-on-disk variant runs in rounds of "
        "its own afterwards (its fsyncs keep the journal busy and would slow the next command). "
        f"Overhead = median − bare `/bin/true` median; ratio = median / {BASELINE} median.\n\n")
    md.append(_table(
        ["init", "median ms", "mean ± sd ms", "p90 ms", "overhead ms", f"ratio to {BASELINE}"],
        [[r["name"], _f(r["median_ms"], 3), f"{_f(r['mean_ms'], 3)} ± {_f(r['stdev_ms'], 3)}",
          _f(r["p90_ms"], 3), _f(r["median_ms"] - bare, 3), _ratio(r["median_ms"], base)]
         for r in rows]))
    md.append("\nCommands:\n" + _commands(rows))
    # One invocation per group is enough to reproduce; later rounds only rotate the order.
    firsts = [c for c in st["hyperfine"] if "-0.json" in c]
    md.append("\nhyperfine invocations (round 1; later rounds rotate the command order):\n"
              + "".join(f"- `{c}`\n" for c in firsts))

    md.append("\n## 6. Enforcement cost: `--policy` vs `--no-policy`\n\n")
    nopol = _find(rows, f"{OURS} (status on /dev/shm)")
    pol = _find(rows, f"{OURS} --policy (status on /dev/shm)")
    if pol is None:
        md.append(
            f"**Not available on this build**: the enforced run with `{st['policy_file']}` failed: "
            f"{st['policy_error']}. The row is measured automatically once `Sandbox::prepare` "
            "accepts the policy.\n\n")
        md.append(_table(["variant", "median ms", "ratio to --no-policy"],
                         [["--no-policy", _f(nopol["median_ms"], 3), "1.00"],
                          [f"--policy {Path(st['policy_file']).name}", "not available on this build", "n/a"]]))
    else:
        md.append(_table(["variant", "median ms", "ratio to --no-policy"],
                         [["--no-policy", _f(nopol["median_ms"], 3), "1.00"],
                          [f"--policy {Path(st['policy_file']).name}", _f(pol["median_ms"], 3),
                           _ratio(pol["median_ms"], nopol["median_ms"])]]))

    # 2
    mem = res["memory"]
    mb = _find(mem["rows"], BASELINE)
    md.append("\n## 2. Memory while supervising `sleep`\n\n")
    md.append(
        f"/proc/PID/status and /proc/PID/smaps_rollup of the init, {mem['settle_s']} s after start "
        f"(median of {mem['runs']}); sizes of the binary as installed and after `strip`. VmRSS "
        "counts every resident page the init maps, shared or not (a dynamic binary's includes the "
        "libc pages it maps); RssAnon is its private heap, stack and data; PSS divides each "
        "shared page by the number of processes mapping it, so it is what this init adds to the "
        f"machine. Ratios are to {BASELINE}.\n\n")
    md.append(_table(
        ["init", "VmRSS KiB", "ratio", "RssAnon KiB", "ratio", "PSS KiB", "ratio", "Pss_Anon KiB",
         "Pss_File KiB", "VmHWM KiB", "RssFile KiB", "binary bytes", "stripped bytes", "linkage"],
        [[r["name"], r["VmRSS"], _ratio(r["VmRSS"], mb["VmRSS"]),
          r.get("RssAnon", "?"), _ratio(r.get("RssAnon"), mb.get("RssAnon")),
          r.get("Pss", "?"), _ratio(r.get("Pss"), mb.get("Pss")),
          r.get("Pss_Anon", "?"), r.get("Pss_File", "?"), r["VmHWM"], r.get("RssFile", "?"),
          r["size"], r["stripped_size"], "static" if r["static"] else "dynamic"]
         for r in mem["rows"]]))
    md.append("\nCommands:\n" + _commands(mem["rows"]))

    # 3
    sto = res["storm"]
    md.append(f"\n## 3. Zombie storm: {sto['orphans']} double-forked orphans\n\n")
    md.append(
        "Each init runs as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`). "
        "The storm child forks the orphans (each exits at once and is re-parented to PID 1), "
        "waits until every orphan has exited (EOF on a pipe they all hold), then polls the "
        "namespace's /proc until only PID 1 and itself are left, i.e. until the init has reaped "
        "every one, and only then exits. Total = first fork → all reaped; reap tail = last "
        "orphan exited → all reaped; pending = zombies still unreaped when the last orphan "
        "exited; left = zombies still there after 60 s (must be 0); init CPU = time the init "
        "spent on a CPU during the storm (/proc/1/schedstat), i.e. what reaping cost it. "
        "Total is dominated by the storm child's own forks, which are the same for every "
        "init. Medians over "
        f"{sto['rows'][0]['runs']} runs.\n\n")
    tbase = _find(sto["rows"], "tini")
    md.append(_table(
        ["init", "total ms", "ratio to tini", "init CPU ms", "fork phase ms", "reap tail ms",
         "pending at last exit", "zombies left (max)", "wall ms", "bad exits"],
        [[r["name"], _f(r["total_ms"], 1), _ratio(r["total_ms"], tbase["total_ms"]), _f(r["init_cpu_ms"], 1),
          _f(r["fork_ms"], 1), _f(r["tail_ms"], 3), r["pending"], r["left_max"], _f(r["wall_ms"], 1),
          r["bad_exit"]]
         for r in sto["rows"]]))
    md.append("\nCommands:\n" + _commands(sto["rows"]))

    # 4
    sig = res["signal"]
    sbase = _find(sig["rows"], BASELINE)["median_us"]
    md.append("\n## 4. Signal latency: SIGTERM to the init → child's handler runs\n\n")
    md.append(
        "The driver waits for the child's `ready` line, lets the init settle for "
        f"{sig['settle_ms']} ms, reads CLOCK_MONOTONIC and sends SIGTERM to the init; the child's "
        "handler writes its own CLOCK_MONOTONIC reading to stdout. Latency = handler time − send "
        "time.\n\n")
    md.append(_table(
        ["init", "median µs", "p90 µs", "min µs", f"ratio to {BASELINE}", "runs", "failed"],
        [[r["name"], _f(r["median_us"], 1), _f(r["p90_us"], 1), _f(r["min_us"], 1),
          _ratio(r["median_us"], sbase), r["runs"], r["failed"]] for r in sig["rows"]]))
    md.append("\nCommands:\n" + _commands(sig["rows"]))

    # 5
    rs = res["restart"]
    md.append("\n## 5. Restart latency (ours only, `--backoff-initial 0`)\n\n")
    md.append(
        "The child prints CLOCK_MONOTONIC first thing in `main` and again just before it exits 1; "
        "latency = next generation's start − previous generation's crash. The run ends by itself "
        "as a crash loop (`--max-restarts`, exit 84). The `--policy` row confines every "
        "generation (section 6's policy plus the helpers' directory): the child's set-up, "
        "seccomp load included, is then on this path.\n\n")
    md.append(_table(["variant", "median µs", "p90 µs", "min µs", "restarts"],
                     [[r["name"], _f(r["median_us"], 1), _f(r["p90_us"], 1), _f(r["min_us"], 1), r["restarts"]]
                      for r in rs["rows"]]))
    md.append("\nCommands:\n" + _commands(rs["rows"]))

    # 7
    sc = res.get("seccomp")
    if sc:
        md.append("\n## 7. seccomp cost in the agent, per syscall\n\n")
        md.append(
            "`sandbox-probe` enters each program itself the way the supervisor's child does "
            "(`no_new_privs`, one `seccomp(2)`), then times "
            f"{sc['iterations']:,} calls of each kind: `getppid` (allowed whatever its arguments: "
            "the kernel's action cache answers without running the program), `ioctl(FIONREAD)` "
            "on a pipe (ours inspects ioctl's request; Docker's allows ioctl outright) and "
            "`bpf` with an unknown command (denied by both; without a filter the kernel refuses "
            f"the command). {sc['rounds']} short runs of each variant, the order rotated each "
            "round; each cell is the median over the runs and, in brackets, the 10th percentile "
            "(on a shared machine the runs nobody disturbed); Δ = minus the no-filter value of the "
            "same statistic. Load = the `seccomp(2)` call "
            "itself, timed in fresh forked children (median). Docker's program is "
            f"{sc['docker']['source']} resolved for amd64 with Docker's default capabilities and "
            "compiled by libseccomp as runc compiles it (x86-64, x86 and x32, binary tree; "
            "runc's own ENOSYS stub in front is not included).\n\n")
        md.append(_table(
            ["filter", "instructions", "load µs", "getppid ns", "Δ", "ioctl ns", "Δ",
             "denied call ns", "Δ", "denied errno"],
            [[r["name"], r.get("instructions", "–"), _f(r.get("load_us"), 1)]
             + [c for k in ("getppid", "ioctl", "denied")
                for c in (f"{_f(r[k + '_ns'], 1)} ({_f(r.get(k + '_p10_ns'), 1)})",
                          f"{r[k + '_delta_ns']:+.1f} ({r.get(k + '_p10_delta_ns', 0):+.1f})")]
             + [r["denied_errno"]]
             for r in sc["rows"]]))
        md.append("\nCommands:\n" + "".join(
            f"- {r['name']}: `{r['command']}`" + (f"; load: `{r['load_command']}`" if r.get("load_command") else "")
            + "\n" for r in sc["rows"]))
    return "".join(md)


# ----- chart ------------------------------------------------------------------------------


def _num(v):
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _panel(y, title, unit, bars, width=760):
    """One horizontal bar panel; returns (svg fragments, height)."""
    label_w, value_w, bar_h, gap = 250, 90, 18, 6
    top = 26
    max_v = max((v for _, v in bars if v is not None), default=1) or 1
    plot_w = width - label_w - value_w - 20
    parts = [f'<text x="10" y="{y + 17}" class="t">{html.escape(title)}</text>']
    for i, (name, v) in enumerate(bars):
        by = y + top + i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 8}" y="{by + 13}" class="l" text-anchor="end">{html.escape(name)}</text>')
        if v is None:
            parts.append(f'<text x="{label_w}" y="{by + 13}" class="l">not available on this build</text>')
            continue
        w = max(1.0, plot_w * v / max_v)
        cls = "o" if name.startswith(OURS) else ("b" if name == BASELINE else "x")
        parts.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h}" class="{cls}"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{by + 13}" class="l">{_num(v)} {unit}</text>')
    return parts, top + len(bars) * (bar_h + gap) + 14


def svg(res):
    width = 760
    panels = []
    rows = res["start"]["rows"]
    bare = _find(rows, "/bin/true (bare)")["median_ms"]
    start_bars = [(r["name"], r["median_ms"] - bare) for r in rows if r["name"] != "/bin/true (bare)"]
    if res["start"]["policy_error"]:
        start_bars.append((f"{OURS} --policy", None))
    panels.append(("Start-to-exit overhead over bare /bin/true (median)", "ms", start_bars))
    panels.append(("Signal latency: SIGTERM to init → child handler (median)", "µs",
                   [(r["name"], r["median_us"]) for r in res["signal"]["rows"]]))
    panels.append((f"Zombie storm: {res['storm']['orphans']} orphans, first fork → all reaped (median)", "ms",
                   [(r["name"], r["total_ms"]) for r in res["storm"]["rows"]]))
    panels.append(("Zombie storm: init CPU time spent reaping (median)", "ms",
                   [(r["name"], r["init_cpu_ms"]) for r in res["storm"]["rows"]]))
    panels.append(("VmRSS while supervising sleep", "KiB",
                   [(r["name"], r["VmRSS"]) for r in res["memory"]["rows"]]))
    panels.append(("RssAnon (private memory) while supervising sleep", "KiB",
                   [(r["name"], r.get("RssAnon")) for r in res["memory"]["rows"]]))
    panels.append(("PSS (shared pages divided among their users) while supervising sleep", "KiB",
                   [(r["name"], r.get("Pss")) for r in res["memory"]["rows"]]))
    panels.append(("Stripped binary size (dynamic ones need libc besides)", "KiB",
                   [(r["name"] + ("" if r["static"] else " (dynamic)"), r["stripped_size"] / 1024)
                    for r in res["memory"]["rows"]]))
    panels.append(("Restart latency, crash → next start (median)", "µs",
                   [(r["name"], r["median_us"]) for r in res["restart"]["rows"]]))
    sc = res.get("seccomp")
    if sc:
        panels.append(("seccomp: ioctl in the agent, ns per call (median)", "ns",
                       [(r["name"], r["ioctl_ns"]) for r in sc["rows"]]))
        panels.append(("seccomp: denied call in the agent, ns per call (median)", "ns",
                       [(r["name"], r["denied_ns"]) for r in sc["rows"]]))
        panels.append(("seccomp: loading the filter (median)", "µs",
                       [(r["name"], r["load_us"]) for r in sc["rows"] if "load_us" in r]))
    body, y = [], 40
    for title, unit, bars in panels:
        parts, h = _panel(y, title, unit, bars, width)
        body += parts
        y += h
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}" '
        f'viewBox="0 0 {width} {y + 10}" font-family="sans-serif">\n'
        "<style>.t{font-size:14px;font-weight:bold}.l{font-size:12px}"
        ".o{fill:#d9534f}.b{fill:#337ab7}.x{fill:#999}</style>\n"
        f'<rect width="{width}" height="{y + 10}" fill="#fff"/>\n'
        f'<text x="10" y="22" font-size="16" font-weight="bold">openshell-supervisor vs other inits '
        f'({html.escape(res["machine"]["date"])}) — shorter is better</text>\n')
    return head + "\n".join(body) + "\n</svg>\n"


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json")
    res = json.loads(src.read_text())
    (src.parent / "report.md").write_text(markdown(res))
    (src.parent / "chart.svg").write_text(svg(res))
    print(f"wrote {src.parent / 'report.md'} and {src.parent / 'chart.svg'}")
