//! A reader's observation is not atomic: status.json and the intent are read at one moment,
//! the engine is asked at another. The soak test found two ways this went wrong:
//! 1. `status` inspected the container while it was still exited from the last stop, then
//!    read the *next* run's status.json and took its `Starting` for the last words of the
//!    run that had ended: Error.
//! 2. `status` read a `Ready` status.json before a stop, the engine's exit after it, and the
//!    intent after the next `start` had recorded `running`: Error.
//!
//! Here each race is made certain: a wrapper around the engine's client holds one
//! `container inspect` (before or after running the real one) until the test has changed
//! the sandbox. The reader must notice that the host state changed while it asked the
//! engine, ask again, and report a phase the sandbox really was in.

use crate::conformance::engine::Engine;
use crate::conformance::{Ctx, Run, HANG, WAIT};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Where the wrapper holds the one `container inspect` it catches.
#[derive(Clone, Copy, PartialEq)]
enum Hold {
    /// Before running the real inspect: the engine is asked after the test's change.
    Before,
    /// After running it: its answer predates the test's change.
    After,
}

struct Gate {
    dir: PathBuf,
    path: String,
}

impl Gate {
    fn new(ctx: &Ctx, e: &Engine, hold: Hold) -> Gate {
        let dir = ctx.root.join("gate");
        let bin = ctx.root.join("gated-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let real = String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {}", e.program)])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let (real, g) = (real.trim(), dir.display());
        let wait = format!("touch {g}/held; while [ ! -e {g}/release ]; do sleep 0.02; done");
        let (pre, post) = match hold {
            Hold::Before => (wait.as_str(), ""),
            Hold::After => ("", wait.as_str()),
        };
        std::fs::write(
            bin.join(e.program),
            format!(
                "#!/bin/sh\n\
                 if [ \"$1 $2\" = 'container inspect' ] && rm {g}/armed 2>/dev/null; then\n\
                   {pre}\n\
                   out=$({real} \"$@\"); rc=$?\n\
                   {post}\n\
                   printf '%s\\n' \"$out\"; exit $rc\n\
                 fi\n\
                 exec {real} \"$@\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(bin.join(e.program), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.join("armed"), "").unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        Gate { dir, path }
    }

    /// `status NAME -o json --log-level debug` through the wrapper; returns once the wrapper
    /// holds its inspect.
    fn reader(&self, ctx: &Ctx, name: &str) -> Child {
        let child = ctx
            .command()
            .args(["status", name, "-o", "json", "--log-level", "debug"])
            .env("PATH", &self.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !self.dir.join("held").exists() {
            assert!(t0.elapsed() < HANG, "the reader never inspected");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    fn release(&self, reader: Child) -> (Value, String) {
        std::fs::write(self.dir.join("release"), "").unwrap();
        let r = Run::from(reader.wait_with_output().unwrap()).ok();
        (serde_json::from_str(&r.stdout).unwrap(), r.stderr)
    }
}

/// Race 1: the engine's answer (exited) predates a start the reader then sees the files of.
pub fn a_start_during_a_read_is_not_an_error(e: &'static Engine) {
    let ctx = Ctx::new(e, "order");
    let a = ctx.name("a");
    ctx.create(&a, &[]).ok();
    ctx.ctl(&["stop", &a]).ok();
    let gate = Gate::new(&ctx, e, Hold::After);
    let reader = gate.reader(&ctx, &a);
    ctx.ctl(&["start", &a, "--timeout", WAIT]).ok();
    let (s, log) = gate.release(reader);
    assert_ne!(s["phase"], "Error", "{s:#}");
    // It noticed, asked again, and saw the sandbox as it now is.
    assert!(log.contains("observe.retry"), "{log}");
    assert_eq!(s["phase"], "Ready", "{s:#}");
    assert_eq!(s["workload"]["state"], "running");
}

/// Race 2: the reader reads a Ready status, a stop happens and the next start records
/// intent running (as `start` does before it acts), then the engine is asked (exited).
pub fn a_stop_and_start_during_a_read_are_not_an_error(e: &'static Engine) {
    let ctx = Ctx::new(e, "order");
    let a = ctx.name("a");
    ctx.create(&a, &[]).ok();
    let gate = Gate::new(&ctx, e, Hold::Before);
    let reader = gate.reader(&ctx, &a);
    ctx.ctl(&["stop", &a]).ok();
    // What `start` writes first, before the engine starts anything.
    let intent = serde_json::json!({
        "intent": "running",
        "at": openshell_supervisor::contract::time::now_rfc3339(),
        "by": "start",
    });
    std::fs::write(
        ctx.root.join(&a).join("intent.json"),
        serde_json::to_vec(&intent).unwrap(),
    )
    .unwrap();
    let (s, log) = gate.release(reader);
    assert_ne!(s["phase"], "Error", "{s:#}");
    assert!(log.contains("observe.retry"), "{log}");
    // The sandbox between the start's intent and its run: Pending, not started yet.
    assert_eq!(s["phase"], "Pending", "{s:#}");
    assert_eq!(s["intent"], "running");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has not started yet"),
        "{s:#}"
    );
    ctx.ctl(&["start", &a, "--timeout", WAIT]).ok();
}
