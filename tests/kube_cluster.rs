//! sandboxctl against a real Kubernetes cluster (kind, k3s…), run only when `KUBECONFIG` is
//! set: no cluster can run on our machines, so this is the project's one allowed conditional.
//! With `KUBECONFIG` set, an unusable cluster is a **failure**, never a skip. The image must
//! be loadable by the cluster's nodes (README "## Kubernetes": `kind load image-archive`,
//! `k3s ctr images import`); `OPENSHELL_TEST_KUBE_IMAGE` names it (default
//! localhost/openshell-sandbox:dev), `OPENSHELL_TEST_KUBE_NAMESPACE` the namespace (default:
//! the context's). The scenarios are the conformance suite's that need no access to the
//! nodes: create → Ready, stop keeps the PVC and reads Stopped, start brings it back, a scale
//! outside sandboxctl reads Error `stopped_externally` and `resume --all` restores only what
//! was meant to run, list, delete. A power cut and reading a stopped sandbox's workspace
//! need the node (its container runtime, its disk), which a kubeconfig does not give: those
//! run against the fake cluster's node in tests/sandboxctl_kube.rs.

use serde_json::Value;
use std::process::{Command, Stdio};

const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");

fn ctl(args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(SANDBOXCTL);
    c.args(["--backend", "kube"]);
    if let Ok(ns) = std::env::var("OPENSHELL_TEST_KUBE_NAMESPACE") {
        c.args(["--namespace", &ns]);
    }
    let out = c.args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let (code, out, err) = ctl(args);
    assert_eq!(code, 0, "sandboxctl {args:?}:\n{out}\n{err}");
    out
}

fn status(name: &str) -> Value {
    serde_json::from_str(&ok(&["status", name, "-o", "json"])).unwrap()
}

#[test]
fn against_the_cluster_in_kubeconfig() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("KUBECONFIG is not set: no cluster to test against (README \"## Kubernetes\")");
        return;
    }
    // The cluster must answer: a failure here fails the test.
    ok(&["list"]);
    let image = std::env::var("OPENSHELL_TEST_KUBE_IMAGE")
        .unwrap_or_else(|_| "localhost/openshell-sandbox:dev".into());
    let (a, b) = (
        format!("e2e-a-{}", std::process::id()),
        format!("e2e-b-{}", std::process::id()),
    );
    ok(&["create", &a, "--image", &image, "--timeout", "300s"]);
    ok(&["create", &b, "--image", &image, "--timeout", "300s"]);
    let s = status(&a);
    assert_eq!(s["phase"], "Ready", "{s}");
    let pod1 = s["details"]["pod"]["name"].clone();
    assert!(!pod1.is_null());
    ok(&["stop", &b]);
    assert_eq!(status(&b)["phase"], "Stopped");
    ok(&["start", &b, "--timeout", "300s"]);
    assert_eq!(status(&b)["phase"], "Ready");
    ok(&["stop", &b]);
    // A scale outside sandboxctl (as after a restore or a stray `kubectl scale`) reads Error
    // while the intent is running; resume --all scales it back and leaves the stopped one.
    let mut k = Command::new("kubectl");
    if let Ok(ns) = std::env::var("OPENSHELL_TEST_KUBE_NAMESPACE") {
        k.args(["--namespace", &ns]);
    }
    let st = k
        .args([
            "scale",
            "statefulset",
            &format!("openshell-{a}"),
            "--replicas=0",
        ])
        .status()
        .expect("kubectl is needed for this step");
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while status(&a)["phase"] != "Error" {
        assert!(std::time::Instant::now() < deadline, "{}", status(&a));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(status(&a)["reason"], "stopped_externally");
    let r = ok(&["resume", "--all", "--timeout", "300s"]);
    assert_eq!(status(&a)["phase"], "Ready");
    assert!(r.contains(&format!("{b}: left Stopped")), "{r}");
    assert_eq!(status(&b)["phase"], "Stopped");
    let list: Value = serde_json::from_str(&ok(&["list", "-o", "json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&a.as_str()) && names.contains(&b.as_str()),
        "{names:?}"
    );
    ok(&["delete", &a, &b]);
    let (code, _, _) = ctl(&["status", &a]);
    assert_eq!(code, 66, "deleted");
}
