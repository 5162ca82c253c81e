//! The conformance harness of the kube backend: the real `sandboxctl` against the fake API
//! server of tests/kube_fake (the project's one mock), whose node runs every pod for real as
//! a podman container of the same image the podman backend runs. Each test gets its own
//! namespace (its tag), so its `list` and `--all` see only its own sandboxes; sandboxctl
//! addresses the cluster because the harness names a namespace ($OPENSHELL_KUBE_NAMESPACE),
//! next to podman and docker (whose state root is the test's own, empty one).
//!
//! What the harness does with the cluster, as an operator would:
//! - cut the power: the fake node loses power under the pod (its container is SIGKILLed;
//!   see kube_fake/kubelet.rs for what the node does then);
//! - stop behind sandboxctl's back: `kubectl scale statefulset --replicas=0`;
//! - read a workspace file: from the host directory the PVC is bound to (what a
//!   local-path provisioner gives a node), whether a pod runs or not;
//! - the agent's confinement: /proc/PID/status of PID 1's child, read in the pod's
//!   container (`podman exec`, as `kubectl exec` would).

use crate::conformance::engine::PODMAN;
use crate::conformance::{Ctx, Harness, Refusal};
use crate::kube_fake::{kubelet, Fake, Kind};
use openshell_supervisor::contract::CtlExit;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct KubeHarness {
    fake: OnceLock<Fake>,
}

pub static KUBE: KubeHarness = KubeHarness {
    fake: OnceLock::new(),
};

/// The test's namespace: its tag (`life0-4242`), a DNS label.
fn ns(ctx: &Ctx) -> String {
    ctx.tag.clone()
}

fn sts(name: &str) -> String {
    format!("openshell-{name}")
}

fn pod(name: &str) -> String {
    format!("openshell-{name}-0")
}

fn claim(name: &str) -> String {
    format!("workspace-openshell-{name}-0")
}

impl KubeHarness {
    /// One fake cluster per test binary (the tests keep apart by namespace).
    pub fn fake(&self) -> &Fake {
        self.fake.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("kube-fake-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            // A static is never dropped: the node's leftovers go when the test binary exits.
            // SAFETY: registers a plain function with no arguments.
            unsafe { libc::atexit(remove_the_node) };
            Fake::start(&dir)
        })
    }

    fn container(&self, ctx: &Ctx, name: &str) -> Option<String> {
        self.fake().container_of(&ns(ctx), &pod(name))
    }
}

extern "C" fn remove_the_node() {
    if let Some(f) = KUBE.fake.get() {
        f.remove_node();
    }
}

impl Harness for KubeHarness {
    fn backend(&self) -> &'static str {
        "kube"
    }

    fn create_args(&self) -> Vec<String> {
        vec!["--image".into(), PODMAN.image().to_owned()]
    }

    fn env(&self, ctx: &Ctx) -> Vec<(String, String)> {
        vec![
            (
                "KUBECONFIG".into(),
                self.fake().kubeconfig.display().to_string(),
            ),
            ("OPENSHELL_KUBE_NAMESPACE".into(), ns(ctx)),
        ]
    }

    fn power_cut(&self, ctx: &Ctx, name: &str) {
        self.fake().power_cut(&ns(ctx), &pod(name));
    }

    fn external_stop(&self, ctx: &Ctx, name: &str) {
        let f = self.fake();
        f.scale_outside_in(&ns(ctx), &sts(name), 0);
        // Like `kubectl scale` followed by `kubectl wait --for=delete pod/…`.
        let deadline = Instant::now() + Duration::from_secs(90);
        while f.get_in(&ns(ctx), Kind::Pod, &pod(name)).is_some() {
            assert!(Instant::now() < deadline, "pod {} never went", pod(name));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn report_survives_external_stop(&self) -> bool {
        false
    }

    fn read_workspace(&self, ctx: &Ctx, name: &str, path: &str) -> Option<String> {
        std::fs::read_to_string(self.fake().pv_dir(&ns(ctx), &claim(name)).join(path)).ok()
    }

    fn agent_status(&self, ctx: &Ctx, name: &str) -> String {
        let c = self
            .container(ctx, name)
            .unwrap_or_else(|| panic!("pod {} runs no container", pod(name)));
        // The agent is the supervisor's (PID 1's) only child.
        let (code, out, err) = kubelet::podman(&[
            "exec",
            &c,
            "sh",
            "-c",
            "set -- $(cat /proc/1/task/1/children); cat /proc/$1/status",
        ]);
        assert_eq!(code, 0, "exec in {c}: {err}");
        out
    }

    fn workload_exists(&self, ctx: &Ctx, name: &str) -> bool {
        self.fake()
            .get_in(&ns(ctx), Kind::StatefulSet, &sts(name))
            .is_some()
    }

    fn workload_running(&self, ctx: &Ctx, name: &str) -> bool {
        let Some(c) = self.container(ctx, name) else {
            return false;
        };
        let (code, out, _) =
            kubelet::podman(&["container", "inspect", "--format", "{{.State.Status}}", &c]);
        code == 0 && matches!(out.trim(), "running" | "stopping")
    }

    fn workspace_exists(&self, ctx: &Ctx, name: &str) -> bool {
        let f = self.fake();
        f.get_in(&ns(ctx), Kind::Pvc, &claim(name)).is_some()
            && f.pv_dir(&ns(ctx), &claim(name)).is_dir()
    }

    fn bad_create(&self) -> Refusal {
        // The image is the cluster's to pull (tests/sandboxctl_kube.rs has that case): what
        // sandboxctl itself must refuse before making anything is a flag the API would.
        let mut args = self.create_args();
        args.extend(["--workspace-size".into(), "2GB".into()]);
        Refusal {
            args,
            exit: CtlExit::Usage,
            says: "invalid --workspace-size \"2GB\"".into(),
        }
    }

    fn unavailable(&self, ctx: &Ctx) -> Vec<(Vec<(String, String)>, Refusal)> {
        // A kubeconfig whose API server does not answer (port 1: nothing listens).
        std::fs::create_dir_all(&ctx.root).unwrap();
        let dead: PathBuf = ctx.root.join("dead-kubeconfig");
        std::fs::write(
            &dead,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:1\n\
             users:\n- name: u\n  user:\n    token: t\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: u\n\
             current-context: dead\n",
        )
        .unwrap();
        vec![(
            vec![("KUBECONFIG".to_owned(), dead.display().to_string())],
            Refusal {
                args: Vec::new(),
                exit: CtlExit::BackendUnavailable,
                says: "cannot reach the Kubernetes API at http://127.0.0.1:1".into(),
            },
        )]
    }

    fn cleanup(&self, prefix: &str) {
        // `openshell-<tag>-`: the test's namespace is its tag. Whatever a failed test left
        // goes; the node removes the containers of the pods that went.
        let tag = prefix
            .strip_prefix("openshell-")
            .and_then(|t| t.strip_suffix('-'))
            .unwrap_or(prefix);
        self.fake().clear_namespace(tag);
    }
}
