//! Shared harness and scenarios for the sandboxctl tests. `sandboxctl_podman.rs` and
//! `sandboxctl_docker.rs` each expand [`engine_matrix!`], so both engines run exactly the
//! same scenarios against the real engine, the real image and the real supervisor.
//!
//! The image is built once per engine per test binary with images/build.sh from the release
//! supervisor (`cargo build --release` first; tests/run.sh does), unless
//! OPENSHELL_TEST_IMAGE_PODMAN / OPENSHELL_TEST_IMAGE_DOCKER name one. SUPERVISOR_BIN is
//! passed through to build.sh. Every test has its own state root and sandbox names, and
//! removes what it made, so tests run in any order and in parallel.

#![allow(dead_code)]

use openshell_supervisor::contract::CtlExit;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Generous: a loaded CI machine; a healthy start takes about 1.5 s.
const WAIT: &str = "90s";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, exit: CtlExit) -> Run {
        assert_eq!(
            self.code,
            exit.code(),
            "expected {} ({})\nstdout: {}\nstderr: {}",
            exit.name(),
            exit.code(),
            self.stdout,
            self.stderr
        );
        self
    }
}

fn engine_run(engine: &str, args: &[&str]) -> Run {
    Run::from(
        Command::new(engine)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {engine}: {e} (tests/run.sh installs it)")),
    )
}

/// The test image for `engine`, built at most once per test binary. A missing engine or a
/// failed build fails the tests: it is never a skip.
pub fn image(engine: &'static str) -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let info = engine_run(engine, &["info", "--format", "{{json .}}"]);
        assert_eq!(
            info.code, 0,
            "{engine} is not usable (tests/run.sh installs and starts it): {}",
            info.stderr
        );
        let var = format!("OPENSHELL_TEST_IMAGE_{}", engine.to_uppercase());
        if let Ok(tag) = std::env::var(&var) {
            if !tag.is_empty() {
                return tag;
            }
        }
        // One tag per checkout: an unchanged rootfs hits the engine's build cache and yields
        // the same image, so repeated runs do not pile up images, and two checkouts testing
        // different supervisors on one machine never run each other's image.
        let tag = format!("localhost/openshell-sandbox:cargo-test-{:08x}", checkout_id());
        let supervisor = std::env::var("SUPERVISOR_BIN").unwrap_or_else(|_| {
            format!("{REPO}/target/x86_64-unknown-linux-gnu/release/supervisor")
        });
        assert!(
            Path::new(&supervisor).is_file(),
            "{supervisor} is missing: run `cargo build --release` first (tests/run.sh does), or set {var}"
        );
        let out = Command::new("bash")
            .arg(format!("{REPO}/images/build.sh"))
            .args([engine, &tag])
            .env("SUPERVISOR_BIN", &supervisor)
            .stdin(Stdio::null())
            .output()
            .expect("run images/build.sh");
        let r = Run::from(out);
        assert_eq!(r.code, 0, "images/build.sh {engine} failed: {}", r.stderr);
        tag
    })
}

/// A short stable number for this checkout (FNV-1a of its path).
fn checkout_id() -> u32 {
    REPO.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One test's world: its own state root, its own sandbox names, cleaned up on drop.
pub struct Ctx {
    pub engine: &'static str,
    pub image: &'static str,
    pub root: PathBuf,
    tag: String,
}

impl Ctx {
    pub fn new(engine: &'static str, tag: &str) -> Ctx {
        static N: AtomicU32 = AtomicU32::new(0);
        let image = image(engine);
        let tag = format!(
            "{tag}{}-{}",
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let root = std::env::temp_dir().join(format!("sandboxctl-test-{engine}-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        Ctx {
            engine,
            image,
            root,
            tag,
        }
    }

    /// A sandbox name unique to this test (a valid DNS label).
    pub fn name(&self, n: &str) -> String {
        format!("{}-{n}", self.tag)
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_env(args, &[])
    }

    pub fn ctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(SANDBOXCTL);
        cmd.args(args)
            .env("OPENSHELL_STATE_ROOT", &self.root)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run sandboxctl"))
    }

    pub fn create(&self, name: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "create",
            name,
            "--image",
            self.image,
            "--backend",
            self.engine,
            "--timeout",
            WAIT,
        ];
        args.extend_from_slice(extra);
        self.ctl(&args)
    }

    pub fn status(&self, name: &str) -> Value {
        let r = self.ctl(&["status", name, "-o", "json"]).ok();
        serde_json::from_str(&r.stdout).expect("status -o json is JSON")
    }

    pub fn phase(&self, name: &str) -> String {
        self.status(name)["phase"].as_str().unwrap().to_owned()
    }

    pub fn engine(&self, args: &[&str]) -> Run {
        engine_run(self.engine, args)
    }

    /// Runs a shell command inside the sandbox (as root, beside the agent).
    pub fn exec(&self, name: &str, script: &str) -> String {
        let c = format!("openshell-{name}");
        self.engine(&["exec", &c, "sh", "-c", script]).ok().stdout
    }

    pub fn container_state(&self, name: &str) -> Option<String> {
        let r = self.engine(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            &format!("openshell-{name}"),
        ]);
        (r.code == 0).then(|| r.stdout.trim().to_owned())
    }

    pub fn volume_exists(&self, name: &str) -> bool {
        self.engine(&["volume", "inspect", &format!("openshell-{name}-workspace")])
            .code
            == 0
    }

    /// status.json as the supervisor left it in the host state directory.
    pub fn supervisor_status(&self, name: &str) -> Value {
        let p = self.root.join(name).join("status").join("status.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// Starts `sandboxctl watch` and returns it with a line reader on its stdout.
    pub fn spawn_watch(&self, args: &[&str]) -> Watch {
        let mut child = Command::new(SANDBOXCTL)
            .arg("watch")
            .args(args)
            .env("OPENSHELL_STATE_ROOT", &self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sandboxctl watch");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Watch { child, lines }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Through sandboxctl first (that path is under test too), then by hand for
        // anything a failed test left behind.
        let _ = self.ctl(&["delete", "--all"]);
        let ours = format!("openshell-{}-", self.tag);
        for (kind, args) in [
            ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
            ("volume", &["volume", "ls", "--format", "{{.Name}}"]),
        ] {
            for obj in engine_run(self.engine, args)
                .stdout
                .lines()
                .filter(|l| l.starts_with(&ours))
            {
                let _ = match kind {
                    "container" => engine_run(self.engine, &["rm", "-f", obj]),
                    _ => engine_run(self.engine, &["volume", "rm", "-f", obj]),
                };
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub struct Watch {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Watch {
    pub fn next_json(&mut self) -> Value {
        let line = self
            .lines
            .next()
            .expect("watch printed a line before ending")
            .expect("read watch output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("watch line {line:?}: {e}"))
    }

    pub fn wait(mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

// ----- scenarios ---------------------------------------------------------------------------

/// create → Ready; a file in /sandbox survives stop → start; stop reads Stopped with the
/// container and volume kept; every start runs the boot hook again; start is idempotent.
pub fn workspace_survives_stop_start(engine: &'static str) {
    let ctx = Ctx::new(engine, "life");
    let a = ctx.name("a");
    let r = ctx.create(&a, &[]).ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Ready");
    assert_eq!(s["status_current"], true);
    assert_eq!(ctx.exec(&a, "wc -l < /sandbox/.boot.log").trim(), "1");
    // The image's policy is really applied to the agent (PID 1's only child), as the
    // kernel reports it: the sandbox user, no capabilities, no_new_privs, a seccomp filter.
    let agent = ctx.exec(
        &a,
        "set -- $(cat /proc/1/task/1/children); grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/$1/status",
    );
    for want in [
        "Uid:\t1000\t1000\t1000\t1000",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(
            agent.contains(want),
            "agent not confined ({want}):\n{agent}"
        );
    }

    ctx.exec(&a, "echo precious > /sandbox/work.txt");
    // Idempotent: starting a Ready sandbox changes nothing (no second boot).
    ctx.ctl(&["start", &a]).ok();
    assert_eq!(ctx.phase(&a), "Ready");
    assert_eq!(ctx.exec(&a, "wc -l < /sandbox/.boot.log").trim(), "1");

    let r = ctx.ctl(&["stop", &a]).ok();
    assert!(r.stdout.contains(&format!("{a}: Stopped")), "{}", r.stdout);
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Stopped", "{s:#}");
    assert_eq!(s["intent"], "stopped");
    assert_eq!(s["exit_code"], 0, "the supervisor exits 0 on SIGTERM");
    // The supervisor itself recorded the graceful stop, readable from the host.
    assert_eq!(ctx.supervisor_status(&a)["phase"], "Stopped");
    assert!(ctx.volume_exists(&a), "stop must keep the workspace volume");
    assert_eq!(ctx.container_state(&a).as_deref(), Some("exited"));

    ctx.ctl(&["start", &a]).ok();
    assert_eq!(ctx.phase(&a), "Ready");
    assert_eq!(ctx.exec(&a, "cat /sandbox/work.txt").trim(), "precious");
    let boots = ctx.exec(&a, "cat /sandbox/.boot.log");
    assert_eq!(
        boots.lines().count(),
        2,
        "the boot hook runs on every start:\n{boots}"
    );
    assert!(boots.lines().all(|l| l.starts_with("boot ")), "{boots}");
}

/// A power cut (engine kill) reads Error with exit 137 although status.json still says
/// Ready; watch reports the transition; `resume --all` restarts it and leaves an
/// intentionally stopped sandbox stopped.
pub fn power_cut_reads_error_and_resume_restores_only_running(engine: &'static str) {
    let ctx = Ctx::new(engine, "cut");
    let (a, b) = (ctx.name("a"), ctx.name("b"));
    ctx.create(&a, &[]).ok();
    ctx.create(&b, &[]).ok();
    ctx.ctl(&["stop", &b]).ok();

    let mut watch = ctx.spawn_watch(&[&a, "-o", "json", "--count", "2", "--timeout", "60s"]);
    let first = watch.next_json();
    assert_eq!(
        (first["sandbox"].as_str(), first["phase"].as_str()),
        (Some(a.as_str()), Some("Ready"))
    );
    assert!(first["previous"].is_null());

    ctx.engine(&["kill", &format!("openshell-{a}")]).ok();
    let second = watch.next_json();
    assert_eq!(second["phase"], "Error", "{second}");
    assert_eq!(second["previous"], "Ready");
    assert_eq!(second["exit_code"], 137);
    assert_eq!(watch.wait(), 0, "watch stops by itself after --count");

    // The file on the host is stale: it still says Ready.
    assert_eq!(ctx.supervisor_status(&a)["phase"], "Ready");
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Error", "{s:#}");
    assert_eq!(s["exit_code"], 137);
    assert_eq!(s["reason"], "unexpected_exit");
    assert_eq!(ctx.phase(&b), "Stopped");

    let r = ctx.ctl(&["resume", "--all", "--timeout", WAIT]).ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("{b}: left Stopped")),
        "{}",
        r.stdout
    );
    assert_eq!(ctx.phase(&a), "Ready");
    assert_eq!(ctx.phase(&b), "Stopped");
    assert_eq!(ctx.container_state(&b).as_deref(), Some("exited"));
    assert_eq!(ctx.exec(&a, "wc -l < /sandbox/.boot.log").trim(), "2");
    // Nothing left to resume: a second sweep is a no-op.
    let r = ctx.ctl(&["resume", "--all"]).ok();
    assert!(
        r.stdout.contains(&format!("{a}: already running (Ready)")),
        "{}",
        r.stdout
    );
}

/// `stop --all` and `delete --all` act on every sandbox of the state root; delete removes
/// container, volume and state.
pub fn stop_all_and_delete_all(engine: &'static str) {
    let ctx = Ctx::new(engine, "all");
    let (a, b, c) = (ctx.name("a"), ctx.name("b"), ctx.name("c"));
    ctx.create(&a, &[]).ok();
    ctx.create(&b, &[]).ok();
    let r = ctx.create(&c, &["--no-start"]).ok();
    assert!(r.stdout.contains(&format!("{c}: Created")), "{}", r.stdout);

    ctx.ctl(&["stop", "--all"]).ok();
    let list: Value = serde_json::from_str(&ctx.ctl(&["list", "-o", "json"]).ok().stdout).unwrap();
    let phases: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases,
        [
            (a.as_str(), "Stopped"),
            (b.as_str(), "Stopped"),
            (c.as_str(), "Created")
        ]
    );
    for n in [&a, &b, &c] {
        assert!(ctx.volume_exists(n));
    }

    let r = ctx.ctl(&["delete", &a]).ok();
    assert!(r.stdout.contains(&format!("{a}: deleted")), "{}", r.stdout);
    assert!(
        !ctx.volume_exists(&a),
        "delete removes the workspace volume"
    );
    assert_eq!(ctx.container_state(&a), None);
    assert!(!ctx.root.join(&a).exists());
    ctx.ctl(&["status", &a]).fails_with(CtlExit::UnknownSandbox);

    ctx.ctl(&["delete", "--all"]).ok();
    for n in [&b, &c] {
        assert!(!ctx.volume_exists(n));
        assert_eq!(ctx.container_state(n), None);
    }
    let list: Value = serde_json::from_str(&ctx.ctl(&["list", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
}

/// An agent that cannot start: the supervisor reports Failed with its reason, start --wait
/// says so with its own exit code.
pub fn failing_agent_reads_failed(engine: &'static str) {
    let ctx = Ctx::new(engine, "fail");
    let a = ctx.name("a");
    let r = ctx
        .create(&a, &["--", "/nonexistent/agent"])
        .fails_with(CtlExit::SandboxFailed);
    assert!(r.stderr.contains("spawn_failed"), "{}", r.stderr);
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Failed", "{s:#}");
    assert_eq!(s["reason"], "spawn_failed");
    assert_eq!(s["exit_code"], 127);
    // A failed sandbox is not an intentional stop, and stopping it makes it one.
    assert_eq!(s["intent"], "running");
    ctx.ctl(&["stop", &a]).ok();
    assert_eq!(ctx.phase(&a), "Stopped");
}

/// Unknown sandbox, bad name, taken name, engine not running, engine not installed: each
/// a clear message and its own exit code.
pub fn errors_are_clear_and_distinct(engine: &'static str) {
    let ctx = Ctx::new(engine, "err");
    let a = ctx.name("a");
    let mut codes = std::collections::BTreeSet::new();

    for verb in [
        &["status", "nosuch"][..],
        &["start", "nosuch"],
        &["stop", "nosuch"],
        &["delete", "nosuch"],
    ] {
        let r = ctx.ctl(verb).fails_with(CtlExit::UnknownSandbox);
        assert!(
            r.stderr.contains("no sandbox named \"nosuch\""),
            "{}",
            r.stderr
        );
        codes.insert(r.code);
    }
    for bad in ["Bad_Name", "x-", "a.b", &"n".repeat(43)] {
        let r = ctx.create(bad, &[]).fails_with(CtlExit::BadName);
        assert!(r.stderr.contains("invalid sandbox name"), "{}", r.stderr);
        codes.insert(r.code);
    }
    ctx.ctl(&["status", "UPPER"]).fails_with(CtlExit::BadName);

    ctx.create(&a, &["--no-start"]).ok();
    let r = ctx.create(&a, &[]).fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    codes.insert(r.code);

    let (x, y) = (ctx.name("x"), ctx.name("y"));
    let r = ctx
        .ctl(&[
            "create",
            &x,
            "--image",
            "localhost/no-such-image:1",
            "--backend",
            engine,
        ])
        .fails_with(CtlExit::EngineError);
    assert!(
        r.stderr.contains(&format!("{engine} image inspect failed")),
        "{}",
        r.stderr
    );
    codes.insert(r.code);

    // Not running: the engine's client pointed at a socket nobody listens on.
    let dead = ctx.root.join("dead.sock");
    let dead_url = format!("unix://{}", dead.display());
    let var = if engine == "docker" {
        "DOCKER_HOST"
    } else {
        "CONTAINER_HOST"
    };
    for args in [
        &["status", a.as_str()][..],
        &["create", &y, "--image", ctx.image, "--backend", engine],
    ] {
        let r = ctx
            .ctl_env(args, &[(var, &dead_url)])
            .fails_with(CtlExit::EngineNotRunning);
        assert!(
            r.stderr.contains(&format!("{engine} is not running")),
            "{}",
            r.stderr
        );
        codes.insert(r.code);
    }

    // Not installed: a PATH without the engine's client.
    let empty = ctx.root.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    for args in [
        &["status", a.as_str()][..],
        &["create", &y, "--image", ctx.image, "--backend", engine],
    ] {
        let r = ctx
            .ctl_env(args, &[("PATH", empty.to_str().unwrap())])
            .fails_with(CtlExit::EngineNotInstalled);
        assert!(
            r.stderr.contains(&format!("{engine} is not installed")),
            "{}",
            r.stderr
        );
        codes.insert(r.code);
    }
    assert_eq!(codes.len(), 6, "six distinct failure codes: {codes:?}");
    // None of the failed creates left anything behind.
    for n in [&x, &y] {
        assert!(!ctx.root.join(n).exists());
        assert_eq!(ctx.container_state(n), None);
    }
    assert_eq!(ctx.phase(&a), "Created");
}

/// Expands to one `#[test]` per scenario for `$engine`.
#[macro_export]
macro_rules! engine_matrix {
    ($engine:literal) => {
        #[test]
        fn workspace_survives_stop_start() {
            sandboxctl_common::workspace_survives_stop_start($engine);
        }
        #[test]
        fn power_cut_reads_error_and_resume_restores_only_running() {
            sandboxctl_common::power_cut_reads_error_and_resume_restores_only_running($engine);
        }
        #[test]
        fn stop_all_and_delete_all() {
            sandboxctl_common::stop_all_and_delete_all($engine);
        }
        #[test]
        fn failing_agent_reads_failed() {
            sandboxctl_common::failing_agent_reads_failed($engine);
        }
        #[test]
        fn errors_are_clear_and_distinct() {
            sandboxctl_common::errors_are_clear_and_distinct($engine);
        }
    };
}
