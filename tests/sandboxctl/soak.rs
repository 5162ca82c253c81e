//! The soak test (not timed): 200 stop/start cycles of one sandbox per engine while two
//! `status` readers poll it the whole time. Every stop must read Stopped, every start
//! Ready, every reader observation a phase the sandbox can legitimately be in; every byte
//! written into the workspace must still be there at the end.
//!
//! The agent appends one numbered 1 KiB line to /sandbox/soak.dat at every start and syncs,
//! so the whole file is known in advance: a lost or changed byte shows. The image is the
//! test image with the supervisor's `--ready-after` shortened to 100ms (a derived image
//! whose ENTRYPOINT says so), to keep the wall time down.

use crate::conformance::engine::Engine;
use crate::conformance::{Ctx, Run, WAIT};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const CYCLES: usize = 200;
const READERS: usize = 2;

/// Phases a reader may see while the sandbox is stopped and started over and over. Error,
/// Failed, Missing, Created, Completed, BackOff or Paused would each be wrong.
const ALLOWED: [&str; 6] = [
    "Ready", "Stopping", "Stopped", "Pending", "Booting", "Starting",
];

/// The test image with `--ready-after 100ms`.
fn fast_image(e: &Engine) -> String {
    let base = e.image().to_owned();
    let tag = format!("{base}-ready100ms");
    let dir = std::env::temp_dir().join(format!(
        "shim-fast-image-{}-{}",
        e.program,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {base}\nENTRYPOINT [\"/usr/bin/supervisor\", \"--hook\", \"/etc/openshell/boot.sh\", \"--policy\", \"/etc/openshell/policy.yaml\", \"--status-dir\", \"/run/openshell\", \"--grace\", \"10s\", \"--ready-after\", \"100ms\", \"--child-env\", \"PAD\", \"--\"]\n"
        ),
    )
    .unwrap();
    let file = dir.join("Containerfile");
    let file = file.to_str().unwrap();
    let dir_s = dir.to_str().unwrap();
    let mut args = vec!["build", "--quiet", "-f", file, "-t", &tag];
    if e.program == "podman" {
        // The OCI format drops HEALTHCHECK.
        args.extend(["--format", "docker"]);
    }
    args.push(dir_s);
    e.run(&args).ok();
    let _ = std::fs::remove_dir_all(&dir);
    tag
}

/// The agent: its line for this start (numbered by the lines already there), then the
/// sample agent.
const SOAK_AGENT: &str = "n=$(wc -l < /sandbox/soak.dat 2>/dev/null || echo 0); printf 'start %04d %s\\n' $((n)) \"$PAD\" >> /sandbox/soak.dat; sync; exec /bin/httpd -f -p 8080 -h /sandbox";

fn pad() -> String {
    (0..1012)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// What soak.dat must hold after `starts` starts.
fn expected(starts: usize) -> String {
    let pad = pad();
    (0..starts)
        .map(|n| format!("start {n:04} {pad}\n"))
        .collect()
}

pub fn soak_stop_start(e: &'static Engine) {
    let image = fast_image(e);
    let ctx = Ctx::new(e, "soak");
    let a = ctx.name("a");
    let pad_env = format!("PAD={}", pad());
    let r = ctx
        .ctl(&[
            "create",
            &a,
            "--backend",
            e.program,
            "--image",
            &image,
            "--timeout",
            WAIT,
            "-e",
            &pad_env,
            "--",
            "sh",
            "-c",
            SOAK_AGENT,
        ])
        .ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);

    let done = Arc::new(AtomicBool::new(false));
    let wrong: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen: Arc<Mutex<std::collections::BTreeMap<String, usize>>> = Arc::default();
    let ctx = Arc::new(ctx);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (ctx, a, done, wrong, seen) = (
                ctx.clone(),
                a.clone(),
                done.clone(),
                wrong.clone(),
                seen.clone(),
            );
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let r = ctx.ctl(&["status", &a, "-o", "json"]);
                    let v: Option<Value> = serde_json::from_str(&r.stdout).ok();
                    let phase = v
                        .as_ref()
                        .and_then(|v| v["phase"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    if r.code != 0 || !ALLOWED.contains(&phase.as_str()) {
                        wrong.lock().unwrap().push(format!(
                            "exit {}: {}{}",
                            r.code,
                            r.stdout.trim(),
                            r.stderr.trim()
                        ));
                    }
                    *seen.lock().unwrap().entry(phase).or_default() += 1;
                }
            })
        })
        .collect();

    let mut bad_cycles = Vec::new();
    for i in 0..CYCLES {
        let stop: Run = ctx.ctl(&["stop", &a]);
        if stop.code != 0 || !stop.stdout.contains(&format!("{a}: Stopped")) {
            bad_cycles.push(format!(
                "cycle {i} stop: exit {} {} {}",
                stop.code, stop.stdout, stop.stderr
            ));
        }
        let start = ctx.ctl(&["start", &a, "--timeout", WAIT]);
        if start.code != 0 || !start.stdout.contains(&format!("{a}: Ready")) {
            bad_cycles.push(format!(
                "cycle {i} start: exit {} {} {}",
                start.code, start.stdout, start.stderr
            ));
        }
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let wrong = wrong.lock().unwrap().clone();
    assert!(
        bad_cycles.is_empty(),
        "{} bad cycles: {bad_cycles:#?}",
        bad_cycles.len()
    );
    assert!(
        wrong.is_empty(),
        "{} wrong phases seen by the readers (of {seen:?}): {wrong:#?}",
        wrong.len()
    );
    // The readers really ran through the cycles.
    assert!(
        seen.contains_key("Stopped") && seen.contains_key("Ready"),
        "{seen:?}"
    );

    ctx.ctl(&["stop", &a]).ok();
    let data = e
        .read_workspace_bytes(&a, "soak.dat")
        .expect("soak.dat exists");
    let want = expected(CYCLES + 1);
    assert_eq!(data.len(), want.len(), "bytes lost in the workspace");
    assert!(data == want.as_bytes(), "the workspace data changed");
    // One boot per start: the create's and the CYCLES starts'.
    assert_eq!(ctx.workspace_lines(&a, ".boot.log").len(), CYCLES + 1);
    eprintln!(
        "soak {}: {CYCLES} cycles; reader observations: {seen:?}",
        e.program
    );
    let _ = e.run(&["image", "rm", &image]);
}
