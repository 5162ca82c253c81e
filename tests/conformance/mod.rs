//! The sandboxctl conformance suite: one set of scenarios, with the same assertions, that
//! every backend runs against the real `sandboxctl` binary.
//!
//! A backend plugs in with a small [`Harness`] (how to create a sandbox on it, how to cut
//! its power, how to stop it behind sandboxctl's back, how to read a workspace file and the
//! agent's confinement, how to tell whether its objects exist) and one line:
//!
//! (podman and docker: `engine.rs`; Kubernetes: `kube.rs`, which tests/sandboxctl_kube.rs
//! includes next to the fake API server, whose node runs the pods for real.)
//!
//! ```ignore
//! conformance::suite!(podman, &conformance::engine::PODMAN);
//! ```
//!
//! which expands to one `#[test]` per scenario, named `podman_<scenario>`. Backends whose
//! state lives in the host state directory (podman, docker, a VM) also expand
//! [`host_state_suite!`]: the attacks on the bind-mounted status directory.
//!
//! Every test has its own state root and sandbox names and removes what it made, so the
//! tests run in any order and in parallel. A backend that is missing or unusable fails the
//! tests; it is never a skip.

#![allow(dead_code)] // each test binary uses a different subset

pub mod engine;
pub mod host_state;
pub mod vm;

use openshell_supervisor::contract::CtlExit;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Generous: a loaded CI machine; a healthy start takes about 1.5 s.
pub const WAIT: &str = "90s";

/// The agent every scenario runs (`create … -- sh -c AGENT`): it writes what the kernel says
/// about its own confinement and one line per start into the workspace, syncs (so a backend
/// can read the workspace from outside, e.g. a VM's disk), and becomes the image's sample
/// agent, busybox httpd. `exec` keeps the same process, credentials and seccomp filter.
pub const AGENT: &str = "grep -E '^(Uid|Gid|CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status > /sandbox/.agent-status; echo \"start $$\" >> /sandbox/agent.log; sync; exec /bin/httpd -f -p 8080 -h /sandbox";

/// What a backend must provide to run the suite.
pub trait Harness: Sync {
    /// The `--backend` value.
    fn backend(&self) -> &'static str;
    /// Arguments `create NAME --backend B` needs besides these (the image, a namespace…).
    fn create_args(&self) -> Vec<String>;
    /// Environment for every sandboxctl call of one test (e.g. DOCKER_HOST, KUBECONFIG and
    /// the test's own namespace).
    fn env(&self, ctx: &Ctx) -> Vec<(String, String)> {
        let _ = ctx;
        Vec::new()
    }
    /// Cuts the power: the workload dies at once and its supervisor gets no notice (exit
    /// 137 where the backend reports exit codes).
    fn power_cut(&self, ctx: &Ctx, name: &str);
    /// Stops the workload gracefully behind sandboxctl's back (the supervisor gets SIGTERM
    /// and writes Stopped), e.g. a plain `docker stop`, `kubectl scale --replicas=0`; returns
    /// once it has stopped.
    fn external_stop(&self, ctx: &Ctx, name: &str);
    /// Whether the supervisor's own report of a run stopped by [`Harness::external_stop`]
    /// can still be read afterwards. podman and docker: yes, status.json is on the host.
    /// Kubernetes: no — the scale to 0 deletes the pod and its termination message with it
    /// (no sandboxctl watched it go), so the suite asserts that no report is made up and
    /// that the phase says why instead.
    fn report_survives_external_stop(&self) -> bool {
        true
    }
    /// A file of the sandbox's workspace (`path` relative to /sandbox), read from outside,
    /// whether the sandbox runs or not; None when it does not exist.
    fn read_workspace(&self, ctx: &Ctx, name: &str, path: &str) -> Option<String>;
    /// The running agent's /proc/PID/status (at least Uid, CapEff, NoNewPrivs, Seccomp), as
    /// the sandbox's kernel reports it.
    fn agent_status(&self, ctx: &Ctx, name: &str) -> String;
    /// Whether the workload object exists (container, StatefulSet, VM definition).
    fn workload_exists(&self, ctx: &Ctx, name: &str) -> bool;
    /// Whether the workload runs now.
    fn workload_running(&self, ctx: &Ctx, name: &str) -> bool;
    /// Whether the workspace (volume, PVC, disk) exists.
    fn workspace_exists(&self, ctx: &Ctx, name: &str) -> bool;
    /// A create that the backend must refuse (e.g. an image that does not exist): the
    /// arguments replacing [`Harness::create_args`], the exit code and what stderr says.
    fn bad_create(&self) -> Refusal;
    /// Ways the backend is unavailable (daemon down, tool missing, API unreachable): each an
    /// environment for sandboxctl, the exit code and what stderr says.
    fn unavailable(&self, ctx: &Ctx) -> Vec<(Vec<(String, String)>, Refusal)>;
    /// Removes every object whose name starts with `prefix` that a failed test left.
    fn cleanup(&self, prefix: &str);
}

pub struct Refusal {
    pub args: Vec<String>,
    pub exit: CtlExit,
    pub says: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
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

/// One test's world: its own state root, its own sandbox names, cleaned up on drop.
pub struct Ctx {
    pub h: &'static dyn Harness,
    pub root: PathBuf,
    pub tag: String,
}

impl Ctx {
    pub fn new(h: &'static dyn Harness, tag: &str) -> Ctx {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{tag}{}-{}",
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let root = std::env::temp_dir().join(format!("sandboxctl-test-{}-{tag}", h.backend()));
        let _ = std::fs::remove_dir_all(&root);
        Ctx { h, root, tag }
    }

    /// A sandbox name unique to this test (a valid DNS label).
    pub fn name(&self, n: &str) -> String {
        format!("{}-{n}", self.tag)
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(SANDBOXCTL);
        cmd.env("OPENSHELL_STATE_ROOT", &self.root)
            .stdin(Stdio::null());
        // A cluster of the developer's is no part of a test: only the harness names one.
        for k in [
            "KUBECONFIG",
            "OPENSHELL_KUBE_CONTEXT",
            "OPENSHELL_KUBE_NAMESPACE",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in self.h.env(self) {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_env(args, &[])
    }

    pub fn ctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run sandboxctl"))
    }

    /// `create NAME --backend B <harness args> --timeout WAIT <extra>`; the agent is the
    /// image's own unless `extra` ends with `-- COMMAND`.
    pub fn create(&self, name: &str, extra: &[&str]) -> Run {
        let mut args: Vec<String> = vec![
            "create".into(),
            name.into(),
            "--backend".into(),
            self.h.backend().into(),
        ];
        args.extend(self.h.create_args());
        args.extend(["--timeout".into(), WAIT.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.ctl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `create` with the suite's [`AGENT`].
    pub fn create_agent(&self, name: &str, extra: &[&str]) -> Run {
        let mut args = extra.to_vec();
        args.extend(["--", "sh", "-c", AGENT]);
        self.create(name, &args)
    }

    pub fn status(&self, name: &str) -> Value {
        let r = self.ctl(&["status", name, "-o", "json"]).ok();
        serde_json::from_str(&r.stdout).expect("status -o json is JSON")
    }

    pub fn phase(&self, name: &str) -> String {
        self.status(name)["phase"].as_str().unwrap().to_owned()
    }

    pub fn list(&self) -> Vec<Value> {
        let r = self.ctl(&["list", "-o", "json"]).ok();
        serde_json::from_str::<Value>(&r.stdout)
            .expect("list -o json is JSON")
            .as_array()
            .unwrap()
            .clone()
    }

    /// Lines of a workspace file (empty when it does not exist).
    pub fn workspace_lines(&self, name: &str, path: &str) -> Vec<String> {
        self.h
            .read_workspace(self, name, path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Starts `sandboxctl watch` and returns it with a line reader on its stdout.
    pub fn spawn_watch(&self, args: &[&str]) -> Watch {
        let mut child = self
            .command()
            .arg("watch")
            .args(args)
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
        let _ = self.ctl(&["delete", "--all", "--lock-timeout", "5s"]);
        self.h.cleanup(&format!("openshell-{}-", self.tag));
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

/// The agent's confinement as its kernel reports it: the sandbox user, no capabilities,
/// no_new_privs, a seccomp filter.
#[track_caller]
pub fn assert_confined(status: &str) {
    for want in [
        "Uid:\t1000\t1000\t1000\t1000",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(
            status.contains(want),
            "agent not confined ({want}):\n{status}"
        );
    }
}

// ----- scenarios ---------------------------------------------------------------------------

/// create → Ready with the agent confined; start is idempotent; stop reads Stopped with the
/// workload and workspace kept and the supervisor's own `Stopped`; a workspace file written
/// in the first run survives stop → start, and the boot hook runs on every start.
pub fn workspace_survives_stop_start(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "life");
    let a = ctx.name("a");
    let r = ctx.create_agent(&a, &[]).ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Ready");
    assert_eq!(s["status_current"], true);
    assert_eq!(ctx.workspace_lines(&a, ".boot.log").len(), 1);
    assert_eq!(ctx.workspace_lines(&a, "agent.log").len(), 1);
    // Enforcement as the kernel reports it, seen from outside the agent and by the agent.
    assert_confined(&h.agent_status(&ctx, &a));
    assert_confined(
        &h.read_workspace(&ctx, &a, ".agent-status")
            .unwrap_or_default(),
    );

    // Idempotent: starting a Ready sandbox changes nothing (no second boot).
    ctx.ctl(&["start", &a]).ok();
    assert_eq!(ctx.phase(&a), "Ready");
    assert_eq!(ctx.workspace_lines(&a, ".boot.log").len(), 1);

    let r = ctx.ctl(&["stop", &a]).ok();
    assert!(r.stdout.contains(&format!("{a}: Stopped")), "{}", r.stdout);
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Stopped", "{s:#}");
    assert_eq!(s["intent"], "stopped");
    assert_eq!(s["exit_code"], 0, "the supervisor exits 0 on SIGTERM");
    // The supervisor itself recorded the graceful stop (and sandboxctl read what it said).
    assert_eq!(s["supervisor_report"]["phase"], "Stopped", "{s:#}");
    assert!(h.workspace_exists(&ctx, &a), "stop must keep the workspace");
    assert!(h.workload_exists(&ctx, &a), "stop must keep the workload");
    assert!(!h.workload_running(&ctx, &a));
    let first_run = ctx.workspace_lines(&a, "agent.log");
    assert_eq!(first_run.len(), 1, "{first_run:?}");

    ctx.ctl(&["start", &a]).ok();
    assert_eq!(ctx.phase(&a), "Ready");
    let runs = ctx.workspace_lines(&a, "agent.log");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0], first_run[0], "the first run's line survived");
    let boots = ctx.workspace_lines(&a, ".boot.log");
    assert_eq!(
        boots.len(),
        2,
        "the boot hook runs on every start: {boots:?}"
    );
    assert!(boots.iter().all(|l| l.starts_with("boot ")), "{boots:?}");
    assert_confined(&h.agent_status(&ctx, &a));
}

/// A power cut reads Error (exit 137, `unexpected_exit`); watch reports the transition;
/// `resume --all` restarts it and leaves an intentionally stopped sandbox stopped; a
/// second sweep is a no-op.
pub fn power_cut_reads_error_and_resume_restores_only_running(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "cut");
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

    h.power_cut(&ctx, &a);
    let second = watch.next_json();
    assert_eq!(second["phase"], "Error", "{second}");
    assert_eq!(second["previous"], "Ready");
    assert_eq!(second["exit_code"], 137);
    assert_eq!(watch.wait(), 0, "watch stops by itself after --count");

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
    assert!(!h.workload_running(&ctx, &b));
    assert_eq!(ctx.workspace_lines(&a, ".boot.log").len(), 2);
    // Nothing left to resume: a second sweep is a no-op.
    let r = ctx.ctl(&["resume", "--all"]).ok();
    assert!(
        r.stdout.contains(&format!("{a}: already running (Ready)")),
        "{}",
        r.stdout
    );
}

/// Stopped behind sandboxctl's back while the intent is running (a plain engine stop, an
/// engine restart): the supervisor wrote Stopped, but nobody asked sandboxctl, so it reads
/// Error `stopped_externally` and `resume --all` brings it back. An intentional stop
/// afterwards is Stopped again.
pub fn external_stop_reads_error_and_resume_restores_it(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "ext");
    let a = ctx.name("a");
    ctx.create_agent(&a, &[]).ok();
    h.external_stop(&ctx, &a);
    assert!(!h.workload_running(&ctx, &a));
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Error", "{s:#}");
    assert_eq!(s["reason"], "stopped_externally", "{s:#}");
    assert_eq!(s["intent"], "running");
    if h.report_survives_external_stop() {
        assert_eq!(s["supervisor_report"]["phase"], "Stopped", "{s:#}");
    } else {
        // Nothing is made up, and the phase says where the report went.
        assert!(s["supervisor_report"].is_null(), "{s:#}");
        let m = s["message"].as_str().unwrap_or_default();
        assert!(m.contains("termination message"), "{s:#}");
    }
    let r = ctx.ctl(&["resume", "--all", "--timeout", WAIT]).ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
    assert_eq!(ctx.phase(&a), "Ready");
    assert_eq!(ctx.workspace_lines(&a, "agent.log").len(), 2);
    ctx.ctl(&["stop", &a]).ok();
    assert_eq!(ctx.phase(&a), "Stopped");
}

/// `stop --all` and `delete --all` act on every sandbox; delete removes workload,
/// workspace and state.
pub fn stop_all_and_delete_all(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "all");
    let (a, b, c) = (ctx.name("a"), ctx.name("b"), ctx.name("c"));
    ctx.create(&a, &[]).ok();
    ctx.create(&b, &[]).ok();
    let r = ctx.create(&c, &["--no-start"]).ok();
    assert!(r.stdout.contains(&format!("{c}: Created")), "{}", r.stdout);

    ctx.ctl(&["stop", "--all"]).ok();
    let phases: Vec<(String, String)> = ctx
        .list()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = |n: &str, p: &str| (n.to_owned(), p.to_owned());
    assert_eq!(
        phases,
        [
            want(&a, "Stopped"),
            want(&b, "Stopped"),
            want(&c, "Created")
        ]
    );
    for n in [&a, &b, &c] {
        assert!(h.workspace_exists(&ctx, n));
    }

    let r = ctx.ctl(&["delete", &a]).ok();
    assert!(r.stdout.contains(&format!("{a}: deleted")), "{}", r.stdout);
    assert!(
        !h.workspace_exists(&ctx, &a),
        "delete removes the workspace"
    );
    assert!(!h.workload_exists(&ctx, &a));
    ctx.ctl(&["status", &a]).fails_with(CtlExit::UnknownSandbox);

    ctx.ctl(&["delete", "--all"]).ok();
    for n in [&b, &c] {
        assert!(!h.workspace_exists(&ctx, n));
        assert!(!h.workload_exists(&ctx, n));
    }
    assert_eq!(ctx.list(), Vec::<Value>::new());
}

/// An agent that cannot start: the supervisor reports Failed with its reason, start --wait
/// says so with its own exit code; stopping it makes it an intentional stop.
pub fn failing_agent_reads_failed(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "fail");
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

/// Unknown sandbox, bad name, taken name, a create the backend refuses, the backend
/// unavailable: each a clear message and its own exit code; nothing is left behind.
pub fn errors_are_clear_and_distinct(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "err");
    let a = ctx.name("a");
    let mut codes = BTreeSet::new();

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
    let bad = h.bad_create();
    let mut args = vec!["create", &x, "--backend", h.backend()];
    args.extend(bad.args.iter().map(String::as_str));
    let r = ctx.ctl(&args).fails_with(bad.exit);
    assert!(r.stderr.contains(&bad.says), "{}", r.stderr);
    let mut expected = codes.len();
    expected += usize::from(codes.insert(r.code));

    let create_y: Vec<String> = ["create", &y, "--backend", h.backend()]
        .iter()
        .map(|s| s.to_string())
        .chain(h.create_args())
        .collect();
    for (env, refusal) in h.unavailable(&ctx) {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for args in [
            vec!["status", a.as_str()],
            create_y.iter().map(String::as_str).collect(),
        ] {
            let r = ctx.ctl_env(&args, &env).fails_with(refusal.exit);
            assert!(r.stderr.contains(&refusal.says), "{}", r.stderr);
            codes.insert(r.code);
        }
        expected += 1;
    }
    assert_eq!(codes.len(), expected, "distinct failure codes: {codes:?}");
    // None of the failed creates left anything behind.
    for n in [&x, &y] {
        assert!(!ctx.root.join(n).exists());
        assert!(!h.workload_exists(&ctx, n));
        assert!(!h.workspace_exists(&ctx, n));
    }
    assert_eq!(ctx.phase(&a), "Created");
}

/// Ten rounds of `stop` and `start` of one sandbox at the same time: every round ends
/// consistent (the recorded intent matches whether the workload runs, the phase matches the
/// intent), no backend error surfaces, and `resume --all` afterwards restarts nothing that
/// was meant to be stopped.
pub fn concurrent_stop_start_stays_consistent(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "race");
    let a = ctx.name("a");
    ctx.create(&a, &[]).ok();
    for round in 0..10 {
        // Alternate which one is launched first; both are in flight together.
        let order: [&str; 2] = if round % 2 == 0 {
            ["stop", "start"]
        } else {
            ["start", "stop"]
        };
        let children: Vec<(&str, std::process::Child)> = order
            .iter()
            .map(|&verb| {
                let mut cmd = ctx.command();
                cmd.args([verb, &a]);
                if verb == "start" {
                    cmd.args(["--timeout", WAIT]);
                }
                let child = cmd
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn sandboxctl");
                (verb, child)
            })
            .collect();
        for (verb, child) in children {
            let r = Run::from(child.wait_with_output().unwrap());
            match verb {
                "stop" => {
                    r.ok();
                }
                // A start whose wait for Ready was overtaken by the stop says so.
                _ if r.code == CtlExit::SandboxFailed.code() => assert!(
                    r.stderr.contains("recorded intent stopped"),
                    "round {round}: {}",
                    r.stderr
                ),
                _ => {
                    r.ok();
                }
            }
        }
        let s = ctx.status(&a);
        let running = h.workload_running(&ctx, &a);
        match s["intent"].as_str() {
            Some("stopped") => {
                assert!(!running, "round {round}: intent stopped but it runs: {s:#}");
                assert_eq!(s["phase"], "Stopped", "round {round}: {s:#}");
            }
            Some("running") => {
                assert!(
                    running,
                    "round {round}: intent running but it does not run: {s:#}"
                );
                // It may still be booting; it must get to Ready.
                ctx.ctl(&["start", &a, "--timeout", WAIT]).ok();
            }
            other => panic!("round {round}: intent {other:?}"),
        }
    }
    // End stopped, then check that resume leaves it so.
    ctx.ctl(&["stop", &a]).ok();
    let r = ctx.ctl(&["resume", "--all"]).ok();
    assert!(
        r.stdout.contains(&format!("{a}: left Stopped")),
        "{}",
        r.stdout
    );
    assert!(!h.workload_running(&ctx, &a));
    assert_eq!(ctx.phase(&a), "Stopped");
}

/// Expands to one `#[test]` per conformance scenario for a backend.
#[macro_export]
macro_rules! suite {
    ($prefix:ident, $harness:expr) => {
        mod $prefix {
            use super::conformance;
            #[test]
            fn workspace_survives_stop_start() {
                conformance::workspace_survives_stop_start($harness);
            }
            #[test]
            fn power_cut_reads_error_and_resume_restores_only_running() {
                conformance::power_cut_reads_error_and_resume_restores_only_running($harness);
            }
            #[test]
            fn external_stop_reads_error_and_resume_restores_it() {
                conformance::external_stop_reads_error_and_resume_restores_it($harness);
            }
            #[test]
            fn stop_all_and_delete_all() {
                conformance::stop_all_and_delete_all($harness);
            }
            #[test]
            fn failing_agent_reads_failed() {
                conformance::failing_agent_reads_failed($harness);
            }
            #[test]
            fn errors_are_clear_and_distinct() {
                conformance::errors_are_clear_and_distinct($harness);
            }
            #[test]
            fn concurrent_stop_start_stays_consistent() {
                conformance::concurrent_stop_start_stays_consistent($harness);
            }
        }
    };
}
#[allow(unused_imports)] // not every backend has host state
pub use crate::host_state_suite;
#[allow(unused_imports)] // a test binary may use only the harnesses
pub use suite;

/// How long a read verb may take before the test calls it a hang. Not a timing threshold
/// on the verb: a healthy `status` answers in well under a second; this only turns a hang
/// into a failure instead of a stuck test run.
pub const HANG: Duration = Duration::from_secs(60);
