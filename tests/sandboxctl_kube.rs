//! sandboxctl `--backend kube` end to end: the real binary against the fake API server of
//! tests/kube_fake (the project's one mock: no cluster can run here; see its doc comment),
//! through a kubeconfig, over HTTP. The same scenarios as on podman and docker: create →
//! Ready, stop keeps the workspace and reads Stopped, start makes a new pod (the supervisor
//! and its hook run again) on the same PVC, a power cut reads Error and `resume --all`
//! restores only what was meant to run, `--all`, bad input; plus what only a cluster has:
//! resourceVersion conflicts (retried, or reported when another operator's intent is newer),
//! a scale outside sandboxctl, CrashLoopBackOff with the supervisor's termination message,
//! ImagePullBackOff, the API watch, and an unreachable cluster.

mod kube_fake;

use kube_fake::{Fake, Kind};
use openshell_supervisor::contract::CtlExit;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    fn fails_with(self, e: CtlExit) -> Run {
        assert_eq!(
            self.code,
            e.code(),
            "expected {}\nstdout: {}\nstderr: {}",
            e.name(),
            self.stdout,
            self.stderr
        );
        self
    }
}

struct Ctx {
    fake: Fake,
    dir: PathBuf,
}

impl Ctx {
    fn new(tag: &str) -> Ctx {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sandboxctl-kube-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let fake = Fake::start(&dir);
        Ctx { fake, dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(SANDBOXCTL);
        c.args(["--backend", "kube"])
            .args(args)
            .env("KUBECONFIG", &self.fake.kubeconfig)
            .env("HOME", &self.dir)
            .env_remove("KUBERNETES_SERVICE_HOST")
            // Host state must play no part: point it somewhere that does not exist.
            .env("OPENSHELL_STATE_ROOT", self.dir.join("no-host-state"))
            .stdin(Stdio::null());
        c
    }

    fn ctl(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().expect("run sandboxctl");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn status(&self, name: &str) -> Value {
        serde_json::from_str(&self.ctl(&["status", name, "-o", "json"]).ok().stdout).unwrap()
    }

    fn phase(&self, name: &str) -> (String, Option<String>) {
        let s = self.status(name);
        (
            s["phase"].as_str().unwrap().to_owned(),
            s["reason"].as_str().map(str::to_owned),
        )
    }

    fn uid(&self, kind: Kind, name: &str) -> Option<String> {
        self.fake
            .get(kind, name)
            .map(|o| o["metadata"]["uid"].as_str().unwrap().to_owned())
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn create_stop_start_keeps_the_workspace_and_starts_a_new_pod() {
    let c = Ctx::new("life");
    let r = c.ctl(&["create", "a", "--timeout", "30s"]).ok();
    assert!(r.stdout.contains("a: Ready"), "{}", r.stdout);
    let s = c.status("a");
    assert_eq!(
        (s["phase"].as_str(), s["intent"].as_str()),
        (Some("Ready"), Some("running"))
    );
    assert_eq!(s["namespace"], "sandboxes", "the context's namespace");
    // The objects, with their deterministic names and labels.
    let sts = c
        .fake
        .get(Kind::StatefulSet, "openshell-a")
        .expect("StatefulSet");
    assert_eq!(
        sts["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sandboxctl"
    );
    assert_eq!(sts["metadata"]["labels"]["io.openshell.sandbox"], "a");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert!(c.fake.get(Kind::Service, "openshell-a").is_some());
    let pvc = c
        .uid(Kind::Pvc, "workspace-openshell-a-0")
        .expect("the workspace PVC");
    let pod1 = c.uid(Kind::Pod, "openshell-a-0").expect("the pod");

    let r = c.ctl(&["stop", "a"]).ok();
    assert!(r.stdout.contains("a: Stopped"), "{}", r.stdout);
    assert_eq!(c.phase("a"), ("Stopped".into(), None));
    assert!(
        c.fake.get(Kind::Pod, "openshell-a-0").is_none(),
        "the pod is gone"
    );
    assert_eq!(
        c.uid(Kind::Pvc, "workspace-openshell-a-0").as_deref(),
        Some(pvc.as_str()),
        "the PVC stays"
    );
    assert_eq!(
        c.fake.get(Kind::StatefulSet, "openshell-a").unwrap()["spec"]["replicas"],
        0
    );
    assert_eq!(c.status("a")["intent_by"], "stop");

    c.ctl(&["start", "a", "--timeout", "30s"]).ok();
    assert_eq!(c.phase("a").0, "Ready");
    let pod2 = c.uid(Kind::Pod, "openshell-a-0").unwrap();
    assert_ne!(
        pod1, pod2,
        "a fresh pod: the supervisor, and so the boot hook, runs again"
    );
    assert_eq!(
        c.uid(Kind::Pvc, "workspace-openshell-a-0").unwrap(),
        pvc,
        "on the same workspace"
    );
    // Idempotent start.
    c.ctl(&["start", "a", "--timeout", "30s"]).ok();
    assert_eq!(c.uid(Kind::Pod, "openshell-a-0").unwrap(), pod2);
    // The scale went through the scale subresource.
    assert!(c.fake.log().iter().any(|l| l.starts_with(
        "PATCH /apis/apps/v1/namespaces/sandboxes/statefulsets/openshell-a/scale -> 200"
    )));
}

#[test]
fn no_start_reads_created_then_starts() {
    let c = Ctx::new("nostart");
    let r = c
        .ctl(&[
            "create",
            "b",
            "--no-start",
            "--workspace-size",
            "1Gi",
            "--storage-class",
            "fast",
        ])
        .ok();
    assert!(r.stdout.contains("b: Created"), "{}", r.stdout);
    let sts = c.fake.get(Kind::StatefulSet, "openshell-b").unwrap();
    assert_eq!(sts["spec"]["replicas"], 0);
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(
        (
            claim["resources"]["requests"]["storage"].as_str(),
            claim["storageClassName"].as_str()
        ),
        (Some("1Gi"), Some("fast"))
    );
    c.ctl(&["start", "b", "--timeout", "30s"]).ok();
    assert_eq!(c.phase("b").0, "Ready");
}

#[test]
fn a_failing_hook_reads_failed_from_the_termination_message() {
    let c = Ctx::new("hook");
    let r = c
        .ctl(&["create", "h", "--timeout", "30s", "--", "fail-hook"])
        .fails_with(CtlExit::SandboxFailed);
    assert!(r.stderr.contains("hook_failed"), "{}", r.stderr);
    let s = c.status("h");
    assert_eq!(
        (
            s["phase"].as_str(),
            s["reason"].as_str(),
            s["exit_code"].as_i64()
        ),
        (Some("Failed"), Some("hook_failed"), Some(80))
    );
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{s}"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_is_error_with_the_kubelet_reason() {
    let c = Ctx::new("pull");
    c.ctl(&[
        "create",
        "p",
        "--image",
        "registry.invalid/missing:1",
        "--timeout",
        "30s",
    ])
    .fails_with(CtlExit::SandboxFailed);
    let (phase, reason) = c.phase("p");
    assert_eq!(phase, "Error");
    assert!(
        matches!(
            reason.as_deref(),
            Some("err_image_pull" | "image_pull_backoff")
        ),
        "{reason:?}"
    );
}

#[test]
fn power_cut_reads_error_and_resume_restores_only_what_was_meant_to_run() {
    let c = Ctx::new("power");
    c.ctl(&["create", "up", "--timeout", "30s"]).ok();
    c.ctl(&["create", "down", "--timeout", "30s"]).ok();
    c.ctl(&["stop", "down"]).ok();
    c.fake.power_cut();
    let s = c.status("up");
    assert_eq!(
        (
            s["phase"].as_str(),
            s["reason"].as_str(),
            s["exit_code"].as_i64()
        ),
        (Some("Error"), Some("unexpected_exit"), Some(137)),
        "{s}"
    );
    assert_eq!(
        c.phase("down").0,
        "Stopped",
        "an intentional stop never reads Error"
    );
    c.fake.power_on();
    let r = c.ctl(&["resume", "--all", "--timeout", "30s"]).ok();
    assert!(
        r.stdout.contains("down: left Stopped (intent stopped)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("up: Ready"), "{}", r.stdout);
    assert_eq!(c.phase("down").0, "Stopped");
    assert!(c.fake.get(Kind::Pod, "openshell-down-0").is_none());
}

#[test]
fn a_scale_outside_sandboxctl_is_error_until_resumed() {
    let c = Ctx::new("scaled");
    c.ctl(&["create", "s", "--timeout", "30s"]).ok();
    c.fake.scale_outside("openshell-s", 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.fake.get(Kind::Pod, "openshell-s-0").is_some() {
        assert!(std::time::Instant::now() < deadline, "the pod never went");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(c.phase("s"), ("Error".into(), Some("scaled_down".into())));
    c.ctl(&["resume", "--all", "--timeout", "30s"]).ok();
    assert_eq!(c.phase("s").0, "Ready");
}

#[test]
fn conflicts_are_retried_or_reported_never_lost() {
    let c = Ctx::new("conflict");
    c.ctl(&["create", "k", "--timeout", "30s"]).ok();
    // Another writer changes the StatefulSet twice under our feet: re-read and retried.
    c.fake.interfere("openshell-k", 2);
    c.ctl(&["stop", "k"]).ok();
    assert_eq!(c.phase("k").0, "Stopped");
    let log = c.fake.log();
    assert!(
        log.iter()
            .filter(|l| l.contains("statefulsets/openshell-k -> 409"))
            .count()
            >= 2,
        "{log:#?}"
    );
    // Another operator records `stopped` between our intent and our scale: reported, and
    // their intent stands.
    c.fake.rival_intent("openshell-k", "stopped");
    let r = c
        .ctl(&["start", "k", "--timeout", "30s"])
        .fails_with(CtlExit::Conflict);
    assert!(
        r.stderr
            .contains("another sandboxctl recorded intent stopped"),
        "{}",
        r.stderr
    );
    let sts = c.fake.get(Kind::StatefulSet, "openshell-k").unwrap();
    assert_eq!(
        sts["spec"]["replicas"], 0,
        "not scaled against the newer intent"
    );
    assert_eq!(
        sts["metadata"]["annotations"]["io.openshell.intent"],
        "stopped"
    );
    assert_eq!(c.phase("k").0, "Stopped");
}

#[test]
fn watch_follows_the_api_watch() {
    let c = Ctx::new("watch");
    c.ctl(&["create", "w", "--timeout", "30s"]).ok();
    let mut child = c
        .cmd(&[
            "watch",
            "w",
            "-o",
            "json",
            "--count",
            "3",
            "--timeout",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["phase"], "Ready");
    c.ctl(&["stop", "w"]).ok();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    let phases: Vec<&str> = rest.iter().map(|v| v["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.last(), Some(&"Stopped"), "{phases:?}");
    assert_eq!(rest[0]["previous"], "Ready");
    // It watched; it did not poll.
    assert!(c
        .fake
        .log()
        .iter()
        .any(|l| l.starts_with("WATCH /api/v1/namespaces/sandboxes/pods")));
}

#[test]
fn all_list_and_delete() {
    let c = Ctx::new("all");
    c.ctl(&["create", "x", "--timeout", "30s"]).ok();
    c.ctl(&["create", "y", "--no-start"]).ok();
    let list: Value = serde_json::from_str(&c.ctl(&["list", "-o", "json"]).ok().stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["x", "y"]);
    let table = c.ctl(&["list"]).ok().stdout;
    assert!(
        table.starts_with("NAME") && table.contains("kube"),
        "{table}"
    );
    c.ctl(&["stop", "--all"]).ok();
    assert_eq!(c.phase("x").0, "Stopped");
    assert_eq!(c.phase("y").0, "Created");
    let r = c.ctl(&["delete", "--all"]).ok();
    assert!(
        r.stdout.contains("x: deleted") && r.stdout.contains("y: deleted"),
        "{}",
        r.stdout
    );
    for (kind, name) in [
        (Kind::StatefulSet, "openshell-x"),
        (Kind::Service, "openshell-x"),
        (Kind::Pvc, "workspace-openshell-x-0"),
        (Kind::StatefulSet, "openshell-y"),
    ] {
        assert!(
            c.fake.get(kind, name).is_none(),
            "{kind:?} {name} left behind"
        );
    }
    c.ctl(&["status", "x"]).fails_with(CtlExit::UnknownSandbox);
    assert_eq!(
        c.ctl(&["list"]).ok().stdout.trim(),
        "NAME  BACKEND  PHASE  INTENT  EXIT  DETAIL"
    );
}

#[test]
fn bad_input_and_an_unreachable_cluster() {
    let c = Ctx::new("bad");
    c.ctl(&["create", "Bad_Name"]).fails_with(CtlExit::BadName);
    c.ctl(&["create", "ok", "--workspace-size", "lots"])
        .fails_with(CtlExit::Usage);
    c.ctl(&["create", "ok", "--storage-class", "Not Valid"])
        .fails_with(CtlExit::Usage);
    c.ctl(&["status", "nope"])
        .fails_with(CtlExit::UnknownSandbox);
    c.ctl(&["create", "dup", "--no-start"]).ok();
    c.ctl(&["create", "dup", "--no-start"])
        .fails_with(CtlExit::Conflict);
    // A StatefulSet of that name that sandboxctl did not make is left alone.
    assert!(c.fake.get(Kind::StatefulSet, "openshell-dup").is_some());
    // Unknown context, and a server that does not answer: backend_unavailable (73).
    let r = c
        .ctl(&["--context", "nowhere", "list"])
        .fails_with(CtlExit::BackendUnavailable);
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
    let dead = c.dir.join("dead-kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &dead,
        std::fs::read_to_string(&c.fake.kubeconfig)
            .unwrap()
            .replace(&c.fake.addr, &format!("localhost:{port}")),
    )
    .unwrap();
    let out = c.cmd(&["list"]).env("KUBECONFIG", &dead).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(CtlExit::BackendUnavailable.code()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the Kubernetes API"));
    // No configuration at all.
    let out = c
        .cmd(&["list"])
        .env("KUBECONFIG", c.dir.join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(CtlExit::BackendUnavailable.code()));
}
