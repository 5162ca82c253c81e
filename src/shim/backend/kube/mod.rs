//! The Kubernetes backend: a sandbox is a StatefulSet `openshell-NAME` (replicas 1 or 0)
//! with a `workspace` PVC from its volumeClaimTemplates and a headless Service. It
//! implements `backend::Backend` (`backend.rs`); the verbs are the shared ones.
//!
//! Everything sandboxctl knows about a kube sandbox lives in the cluster, on the StatefulSet:
//! the labels say it is a sandbox and which (name and random id), the annotations hold the
//! operator's intent (`io.openshell.intent`, `-at`, `-by`, `-generation`) and what `stop`
//! saw of the run it ended (`io.openshell.last-run`). There is no host state, so `list`,
//! `status`, `watch` and `resume --all` give every machine with the kubeconfig the same
//! answer. The verbs that change a sandbox hold a Lease `openshell-NAME` (coordination.k8s.io)
//! as its lock, so two operators on two machines serialize like two on one host. Every write
//! still carries the resourceVersion it was computed from; a 409 Conflict is re-read and
//! retried, or reported (exit 67) when another writer's newer intent stands in the way — it
//! is never silently overwritten.
//!
//! The client is kube-rs on a current-thread tokio runtime (`client.rs`), configured by
//! kube's own `Config`: `--context` picks a kubeconfig context, otherwise `$KUBECONFIG` /
//! `~/.kube/config` and then the in-cluster service account, so exec auth plugins, OIDC
//! tokens and client certificates work as with kubectl. Types are k8s-openapi's with the
//! `v1_33` feature: the oldest API its 0.29 release offers. Only core/v1 and apps/v1 objects
//! are used (stable since 1.9), and a round trip through structs of an older API could drop
//! fields a newer server has, so every change is a JSON merge patch of just the fields
//! sandboxctl owns, never a read-modify-replace of the whole object.

pub mod backend;
pub mod client;
pub mod lease;
pub mod ops;
pub mod phase;
pub mod render;

pub use backend::KubeBackend;
pub use client::Target;

use serde::{Deserialize, Serialize};

/// The pod's only container.
pub const CONTAINER: &str = "sandbox";
/// The volumeClaimTemplates entry, and the volume the container mounts at /sandbox.
pub const WORKSPACE_VOLUME: &str = "workspace";

/// Well-known labels (kubernetes.io "Recommended Labels").
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_APP_NAME_VALUE: &str = "openshell-sandbox";

/// The intent, as annotations on the StatefulSet.
pub const ANNOTATION_INTENT: &str = "io.openshell.intent";
pub const ANNOTATION_INTENT_AT: &str = "io.openshell.intent-at";
pub const ANNOTATION_INTENT_BY: &str = "io.openshell.intent-by";
/// The StatefulSet's `metadata.generation` when the intent was written. The scale that acts
/// on the intent bumps the generation, so "generation still equal" means "recorded, not yet
/// acted on" (Pending/Stopping), and a larger one with replicas that disagree means someone
/// scaled it outside sandboxctl.
pub const ANNOTATION_INTENT_GENERATION: &str = "io.openshell.intent-generation";
/// What `stop` saw of the run it ended ([`LastRun`] as JSON): the pod, and its termination
/// message with it, is gone once the StatefulSet is scaled to 0. Cleared by `start`.
pub const ANNOTATION_LAST_RUN: &str = "io.openshell.last-run";

/// The container's end as the kubelet reported it just before the pod went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub pod_uid: String,
    pub exit_code: Option<i32>,
    /// The kubelet's reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: Option<String>,
    /// The termination message: the supervisor's last word.
    pub message: Option<String>,
    pub finished_at: Option<String>,
}

/// The pod a StatefulSet `openshell-NAME` makes (ordinal 0; there is only one).
pub fn pod_name(object: &str) -> String {
    format!("{object}-0")
}

/// The PVC the volumeClaimTemplates entry makes for pod 0.
pub fn pvc_name(object: &str) -> String {
    format!("{WORKSPACE_VOLUME}-{}", pod_name(object))
}
