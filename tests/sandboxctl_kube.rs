//! sandboxctl on Kubernetes: the real binary against the fake API server of tests/kube_fake
//! (the project's one mock: no cluster can run here; see its doc comment), through a
//! kubeconfig, over HTTP, with a node that runs the pods for real (podman).
//!
//! First the conformance suite (tests/conformance/), the same scenarios with the same
//! assertions as podman and docker. Then what only a cluster has: the objects, their labels
//! and the scale subresource; a fresh pod per start on the same PVC; the intent and the
//! Lease on the cluster (another operator's Lease makes a verb wait and then say who holds
//! it; one whose holder died is taken over); resourceVersion conflicts (retried, or
//! reported when another writer's intent is newer); objects of a sandbox's names that
//! sandboxctl did not make; the supervisor's termination message (a failing hook); an image
//! the node cannot pull; the API watch; unknown contexts and unreachable clusters.

mod conformance;
mod kube_fake;
#[path = "conformance/kube.rs"]
mod kube_harness;

use kube_fake::{Fake, Kind};
use openshell_supervisor::contract::CtlExit;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

conformance::suite!(kube, &crate::kube_harness::KUBE);

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

/// One test's own cluster (API server, controllers, node), namespace `sandboxes`.
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
            .env_remove("OPENSHELL_KUBE_CONTEXT")
            .env_remove("OPENSHELL_KUBE_NAMESPACE")
            // Host state plays no part: point it somewhere that does not exist.
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

    /// `create NAME --image <the test image> ARGS…`.
    fn create(&self, name: &str, args: &[&str]) -> Run {
        let mut a = vec![
            "create",
            name,
            "--image",
            conformance::engine::PODMAN.image(),
        ];
        a.extend(["--timeout", conformance::WAIT]);
        a.extend(args);
        self.ctl(&a)
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

    fn boots(&self, name: &str) -> usize {
        std::fs::read_to_string(
            self.fake
                .pv_dir("sandboxes", &format!("workspace-openshell-{name}-0"))
                .join(".boot.log"),
        )
        .unwrap_or_default()
        .lines()
        .count()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = self.ctl(&["delete", "--all", "--lock-timeout", "5s"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn objects_labels_the_scale_subresource_and_a_fresh_pod_per_start() {
    let c = Ctx::new("life");
    let r = c.create("a", &[]).ok();
    assert!(r.stdout.contains("a: Ready"), "{}", r.stdout);
    let s = c.status("a");
    assert_eq!(
        (s["phase"].as_str(), s["intent"].as_str()),
        (Some("Ready"), Some("running"))
    );
    assert_eq!(
        s["details"]["namespace"], "sandboxes",
        "the context's namespace"
    );
    assert_eq!(s["objects"]["statefulset"], "openshell-a");
    assert_eq!(s["supervisor_report"]["source"], "readiness probe");
    // The objects, with their deterministic names and labels, the same id on each.
    let sts = c
        .fake
        .get(Kind::StatefulSet, "openshell-a")
        .expect("StatefulSet");
    let labels = &sts["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sandboxctl");
    assert_eq!(labels["io.openshell.sandbox"], "a");
    let id = labels["io.openshell.sandbox-id"].as_str().unwrap();
    assert_eq!((id.len(), s["id"].as_str()), (32, Some(id)));
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    let svc = c.fake.get(Kind::Service, "openshell-a").unwrap();
    assert_eq!(svc["metadata"]["labels"]["io.openshell.sandbox-id"], id);
    let pvc = c.fake.get(Kind::Pvc, "workspace-openshell-a-0").unwrap();
    assert_eq!(pvc["metadata"]["labels"]["io.openshell.sandbox-id"], id);
    let pvc = pvc["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod1 = c.uid(Kind::Pod, "openshell-a-0").expect("the pod");
    let table = c.ctl(&["list"]).ok().stdout;
    assert!(
        table.starts_with("NAME") && table.contains("kube"),
        "{table}"
    );

    // A stop with its own grace deletes the pod with it.
    let r = c.ctl(&["stop", "a", "-t", "15"]).ok();
    assert!(r.stdout.contains("a: Stopped"), "{}", r.stdout);
    assert!(c
        .fake
        .log()
        .iter()
        .any(|l| l == "DELETE /api/v1/namespaces/sandboxes/pods/openshell-a-0 -> 200"));
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
    let sts = c.fake.get(Kind::StatefulSet, "openshell-a").unwrap();
    assert_eq!(sts["spec"]["replicas"], 0);
    // What the kubelet said of the run, recorded on the StatefulSet: the pod took it along.
    let last: Value = serde_json::from_str(
        sts["metadata"]["annotations"]["io.openshell.last-run"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (last["exit_code"].as_i64(), last["message"].as_str()),
        (Some(0), Some("Stopped"))
    );
    assert_eq!(last["pod_uid"], pod1.as_str());
    let s = c.status("a");
    assert_eq!(s["intent_by"], "stop");
    assert_eq!(
        s["supervisor_report"]["source"],
        "termination message (recorded at stop)"
    );

    c.ctl(&["start", "a", "--timeout", conformance::WAIT]).ok();
    assert_eq!(c.phase("a").0, "Ready");
    let pod2 = c.uid(Kind::Pod, "openshell-a-0").unwrap();
    assert_ne!(
        pod1, pod2,
        "a fresh pod: the supervisor, and so the boot hook, runs again"
    );
    assert_eq!(c.boots("a"), 2);
    assert_eq!(
        c.uid(Kind::Pvc, "workspace-openshell-a-0").unwrap(),
        pvc,
        "on the same workspace"
    );
    // The start cleared the stopped run's record.
    let sts = c.fake.get(Kind::StatefulSet, "openshell-a").unwrap();
    assert!(sts["metadata"]["annotations"]["io.openshell.last-run"].is_null());
    // Idempotent start: same pod, no boot.
    c.ctl(&["start", "a", "--timeout", conformance::WAIT]).ok();
    assert_eq!(c.uid(Kind::Pod, "openshell-a-0").unwrap(), pod2);
    assert_eq!(c.boots("a"), 2);
    // The scale went through the scale subresource; the lock was a Lease, released.
    let log = c.fake.log();
    assert!(log
        .iter()
        .any(|l| l
            == "PATCH /apis/apps/v1/namespaces/sandboxes/statefulsets/openshell-a/scale -> 200"));
    assert!(log
        .iter()
        .any(|l| l == "POST /apis/coordination.k8s.io/v1/namespaces/sandboxes/leases -> 201"));
    assert!(c.fake.get(Kind::Lease, "openshell-a").is_none(), "{log:#?}");
}

#[test]
fn no_start_makes_the_workspace_and_reads_created_then_starts() {
    let c = Ctx::new("nostart");
    let r = c
        .create(
            "b",
            &[
                "--no-start",
                "--workspace-size",
                "1Gi",
                "--storage-class",
                "fast",
            ],
        )
        .ok();
    assert!(r.stdout.contains("b: Created"), "{}", r.stdout);
    let sts = c.fake.get(Kind::StatefulSet, "openshell-b").unwrap();
    assert_eq!(sts["spec"]["replicas"], 0);
    let tpl = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    // `create` made the claim itself (the StatefulSet adopts it): the workspace exists from
    // the start, as a podman volume does.
    let pvc = c
        .fake
        .get(Kind::Pvc, "workspace-openshell-b-0")
        .expect("the PVC");
    for spec in [tpl, &pvc["spec"]] {
        assert_eq!(
            (
                spec["resources"]["requests"]["storage"].as_str(),
                spec["storageClassName"].as_str()
            ),
            (Some("1Gi"), Some("fast"))
        );
    }
    assert!(c.fake.get(Kind::Pod, "openshell-b-0").is_none());
    c.ctl(&["start", "b", "--timeout", conformance::WAIT]).ok();
    assert_eq!(c.phase("b").0, "Ready");
    assert_eq!(
        c.uid(Kind::Pvc, "workspace-openshell-b-0"),
        pvc["metadata"]["uid"].as_str().map(str::to_owned)
    );
}

#[test]
fn a_failing_hook_reads_failed_from_the_termination_message() {
    let c = Ctx::new("hook");
    // The image's hook chowns the workspace to $OPENSHELL_AGENT_USER: a user that does not
    // exist makes it fail, and the supervisor says so in its termination message.
    let r = c
        .create("h", &["-e", "OPENSHELL_AGENT_USER=nosuchuser"])
        .fails_with(CtlExit::SandboxFailed);
    assert!(r.stderr.contains("hook_failed"), "{}", r.stderr);
    let s = c.status("h");
    assert_eq!(
        (s["phase"].as_str(), s["reason"].as_str()),
        (Some("Failed"), Some("hook_failed")),
        "{s:#}"
    );
    assert_eq!(
        s["supervisor_report"]["source"], "termination message",
        "{s:#}"
    );
    assert!(s["exit_code"].as_i64().is_some_and(|c| c != 0), "{s:#}");
    let pod = c.fake.get(Kind::Pod, "openshell-h-0").unwrap();
    let cs = &pod["status"]["containerStatuses"][0];
    let t = if cs["state"]["terminated"].is_null() {
        &cs["lastState"]["terminated"]
    } else {
        &cs["state"]["terminated"]
    };
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed/hook_failed: "),
        "the kubelet's copy of the supervisor's last word: {cs:#}"
    );
    // The kubelet keeps restarting it; it keeps reading Failed, and a stop makes it Stopped.
    c.ctl(&["stop", "h"]).ok();
    assert_eq!(c.phase("h").0, "Stopped");
}

#[test]
fn an_image_the_node_cannot_pull_is_error_with_the_kubelet_reason() {
    let c = Ctx::new("pull");
    let r = c
        .ctl(&[
            "create",
            "p",
            "--image",
            "localhost/no-such-image:1",
            "--timeout",
            "60s",
        ])
        .fails_with(CtlExit::SandboxFailed);
    assert!(r.stderr.contains("pull"), "{}", r.stderr);
    let (phase, reason) = c.phase("p");
    assert_eq!(phase, "Error");
    assert!(
        matches!(
            reason.as_deref(),
            Some("err_image_pull" | "image_pull_backoff")
        ),
        "{reason:?}"
    );
    c.ctl(&["delete", "p"]).ok();
    assert!(c.fake.get(Kind::StatefulSet, "openshell-p").is_none());
}

#[test]
fn another_operators_lease_makes_verbs_wait_and_an_expired_one_is_taken_over() {
    let c = Ctx::new("lease");
    c.create("l", &["--no-start"]).ok();
    let lease = |renew: &str, secs: i64| {
        json!({"metadata": {"name": "openshell-l"}, "spec": {
            "holderIdentity": "stop (pid 7 on ops-host-2)", "leaseDurationSeconds": secs,
            "acquireTime": renew, "renewTime": renew}})
    };
    // Held by someone else on another machine, and current.
    c.fake.create_in(
        "sandboxes",
        Kind::Lease,
        lease(&openshell_supervisor::contract::time::now_rfc3339(), 3600),
    );
    let r = c
        .ctl(&["start", "l", "--lock-timeout", "1s"])
        .fails_with(CtlExit::Busy);
    assert!(
        r.stderr
            .contains("`stop (pid 7 on ops-host-2)` holds its lock (Lease openshell-l"),
        "{}",
        r.stderr
    );
    assert_eq!(c.phase("l").0, "Created", "nothing was done");
    // Readers never wait for it.
    c.ctl(&["list"]).ok();
    // Its holder died an hour ago: the Lease expired, and the next verb takes it over.
    c.fake.clear_namespace_kind("sandboxes", Kind::Lease);
    c.fake.create_in(
        "sandboxes",
        Kind::Lease,
        lease("2020-01-01T00:00:00.000000Z", 60),
    );
    c.ctl(&[
        "start",
        "l",
        "--lock-timeout",
        "1s",
        "--timeout",
        conformance::WAIT,
    ])
    .ok();
    assert_eq!(c.phase("l").0, "Ready");
    assert!(
        c.fake.get(Kind::Lease, "openshell-l").is_none(),
        "released after the verb"
    );
}

#[test]
fn conflicts_are_retried_or_reported_never_lost() {
    let c = Ctx::new("conflict");
    c.create("k", &[]).ok();
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
    // A writer that does not take the Lease (kubectl annotate, an older tool) records
    // `stopped` between our intent and our scale: reported, and its intent stands.
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
fn objects_of_a_sandboxs_names_that_sandboxctl_did_not_make_are_left_alone() {
    let c = Ctx::new("foreign");
    // Someone's own StatefulSet named like a sandbox: not a sandbox.
    c.fake.create_in(
        "sandboxes",
        Kind::StatefulSet,
        json!({"metadata": {"name": "openshell-f", "labels": {"app": "theirs"}},
            "spec": {"replicas": 0, "template": {"spec": {"containers": []}}}}),
    );
    c.ctl(&["status", "f"]).fails_with(CtlExit::UnknownSandbox);
    c.ctl(&["delete", "f"]).fails_with(CtlExit::UnknownSandbox);
    let r = c.create("f", &["--no-start"]).fails_with(CtlExit::Conflict);
    assert!(
        r.stderr
            .contains("StatefulSet named openshell-f already exists"),
        "{}",
        r.stderr
    );
    assert_eq!(
        c.fake.get(Kind::StatefulSet, "openshell-f").unwrap()["metadata"]["labels"]["app"],
        "theirs"
    );
    assert!(c.fake.get(Kind::Service, "openshell-f").is_none());
    // A workspace claim left behind (its StatefulSet deleted by hand): never adopted.
    c.fake.create_in(
        "sandboxes",
        Kind::Pvc,
        json!({"metadata": {"name": "workspace-openshell-g-0"}, "spec": {}}),
    );
    std::fs::write(
        c.fake
            .pv_dir("sandboxes", "workspace-openshell-g-0")
            .join("old.txt"),
        "someone else's",
    )
    .unwrap();
    let r = c.create("g", &["--no-start"]).fails_with(CtlExit::Conflict);
    assert!(
        r.stderr
            .contains("PersistentVolumeClaim named workspace-openshell-g-0"),
        "{}",
        r.stderr
    );
    for (kind, name) in [
        (Kind::StatefulSet, "openshell-g"),
        (Kind::Service, "openshell-g"),
    ] {
        assert!(c.fake.get(kind, name).is_none(), "{kind:?} {name} made");
    }
    assert_eq!(c.ctl(&["list", "-o", "json"]).ok().stdout.trim(), "[]");
}

#[test]
fn watch_follows_the_api_watch() {
    let c = Ctx::new("watch");
    c.create("w", &[]).ok();
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
    let polls = |c: &Ctx| {
        c.fake
            .log()
            .iter()
            .filter(|l| l.starts_with("GET /api/v1/namespaces/sandboxes/pods"))
            .count()
    };
    let before = polls(&c);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(polls(&c), before, "watch does not poll the API");
    c.ctl(&["stop", "w"]).ok();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    let phases: Vec<&str> = rest.iter().map(|v| v["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.last(), Some(&"Stopped"), "{phases:?}");
    assert_eq!(rest[0]["previous"], "Ready");
    assert!(c
        .fake
        .log()
        .iter()
        .any(|l| l.starts_with("WATCH /api/v1/namespaces/sandboxes/pods")));
}

#[test]
fn bad_input_and_an_unreachable_cluster() {
    let c = Ctx::new("bad");
    c.ctl(&["create", "Bad_Name"]).fails_with(CtlExit::BadName);
    c.ctl(&["create", "ok", "--workspace-size", "lots"])
        .fails_with(CtlExit::Usage);
    c.ctl(&["create", "ok", "--storage-class", "Not Valid"])
        .fails_with(CtlExit::Usage);
    c.ctl(&["create", "ok", "-n", "Not_A_Namespace"])
        .fails_with(CtlExit::Usage);
    c.ctl(&["status", "nope"])
        .fails_with(CtlExit::UnknownSandbox);
    c.create("dup", &["--no-start"]).ok();
    c.create("dup", &["--no-start"])
        .fails_with(CtlExit::Conflict);
    // --dry-run prints, contacts nothing, makes nothing.
    let out = c
        .cmd(&["create", "dry", "--dry-run", "-o", "yaml"])
        .env("KUBECONFIG", c.dir.join("absent"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: StatefulSet"));
    assert!(c.fake.get(Kind::StatefulSet, "openshell-dry").is_none());
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
