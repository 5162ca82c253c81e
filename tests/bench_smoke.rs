//! The benchmark harness works end to end: `benches/bench.py --profile smoke` builds the C
//! helpers, runs every measurement against every init once or a few times, and writes the
//! report. No timing is asserted (numbers on a CI machine mean nothing); what is asserted
//! is that each measurement actually happened and that its correctness checks held (no
//! zombie left by any init, every SIGTERM reached the child, every restart was seen, each
//! seccomp program was entered and denied what it must).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const INITS: [&str; 5] = [
    "supervisor",
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
];

fn rows<'a>(res: &'a Value, section: &str) -> &'a Vec<Value> {
    res[section]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("results.json has no {section} rows"))
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row named {name:?}"))
}

#[test]
fn smoke_run_measures_every_init_and_writes_the_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    let run = Command::new("python3")
        .arg(root.join("benches/bench.py"))
        .arg("--supervisor")
        .arg(env!("CARGO_BIN_EXE_supervisor"))
        .arg("--probe")
        .arg(env!("CARGO_BIN_EXE_sandbox-probe"))
        .arg("--out")
        .arg(&out)
        .args(["--profile", "smoke"])
        .output()
        .expect("python3 must be installed (tests/run.sh installs it)");
    assert!(
        run.status.success(),
        "bench.py --profile smoke failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );

    let res: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();

    let start = rows(&res, "start");
    row(start, "/bin/true (bare)");
    row(start, "supervisor (status on /dev/shm)");
    row(start, "supervisor (status on disk)");
    for name in &INITS[1..] {
        assert_eq!(row(start, name)["runs"], 10, "{name}");
    }
    // Enforcement: measured, or explicitly marked unavailable with the supervisor's reason.
    let with_policy = start
        .iter()
        .any(|r| r["name"] == "supervisor --policy (status on /dev/shm)");
    let policy_error = &res["start"]["policy_error"];
    assert_ne!(with_policy, policy_error.is_string(), "{policy_error}");

    for name in INITS {
        let m = row(rows(&res, "memory"), name);
        let kib = |k: &str| {
            m[k].as_f64()
                .unwrap_or_else(|| panic!("{name}: no {k} in {m}"))
        };
        assert!(kib("VmRSS") > 0.0, "{name}: {m}");
        // Private and proportional memory exist and cannot exceed what is resident.
        assert!(
            kib("RssAnon") > 0.0 && kib("RssAnon") <= kib("VmRSS"),
            "{name}: {m}"
        );
        assert!(
            kib("Pss") > 0.0 && kib("Pss") <= kib("VmRSS"),
            "{name}: {m}"
        );
        assert!(kib("Pss_Anon") <= kib("RssAnon"), "{name}: {m}");
        assert!(m["stripped_size"].as_u64().unwrap() > 0, "{name}: {m}");

        let s = row(rows(&res, "storm"), name);
        assert_eq!(s["left_max"], 0, "{name} left zombies: {s}");
        assert_eq!(s["bad_exit"], 0, "{name}: {s}");
        assert_eq!(s["orphans"], 300, "{name}: {s}");
    }

    let sig = rows(&res, "signal");
    assert_eq!(sig.len(), INITS.len() + 1);
    for r in sig {
        assert_eq!(r["failed"], 0, "SIGTERM did not reach the child: {r}");
        assert_eq!(r["runs"], 3, "{r}");
    }

    let restart = rows(&res, "restart");
    for name in [
        "supervisor (status on /dev/shm)",
        "supervisor (status on disk)",
        "supervisor --policy (status on /dev/shm)",
    ] {
        let r = row(restart, name);
        assert_eq!(r["restarts"], 3, "{r}");
        assert!(r["median_us"].as_f64().unwrap() > 0.0, "{r}");
    }

    // seccomp in the agent: no filter, ours, Docker's default, each measured.
    let sc = rows(&res, "seccomp");
    assert_eq!(sc.len(), 3);
    for r in sc {
        for k in ["getppid_ns", "ioctl_ns", "denied_ns"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
    }
    // Unfiltered, the kernel itself refuses the unknown bpf command (EINVAL as root);
    // both filters deny the call before it runs.
    assert_eq!(row(sc, "no filter")["denied_errno"], libc::EINVAL, "{sc:?}");
    for name in ["supervisor", "docker default"] {
        let r = row(sc, name);
        assert_eq!(r["denied_errno"], libc::EPERM, "{r}");
        assert!(r["instructions"].as_u64().unwrap() > 0, "{r}");
        assert!(r["load_us"].as_f64().unwrap() > 0.0, "{r}");
    }

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let chart = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    for name in INITS {
        assert!(report.contains(name) && chart.contains(name), "{name}");
    }
    if policy_error.is_string() {
        assert!(report.contains("not available on this build"));
    }
    assert!(report.contains("## 7. seccomp cost in the agent"));
    for panel in ["RssAnon", "PSS", "seccomp: ioctl", "Restart latency"] {
        assert!(chart.contains(panel), "chart has no {panel} panel");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
