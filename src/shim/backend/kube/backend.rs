//! The kube backend behind `backend::Backend`: the shared verbs drive a StatefulSet through
//! it. What differs from a container engine is said where it happens:
//! - the record is the StatefulSet itself (labels, annotations, its pod template): `list`
//!   and `find` read the cluster, never the host;
//! - the intent is an annotation, written with the resourceVersion it was read at;
//! - the lock is a Lease (`lease.rs`);
//! - start and stop scale the StatefulSet, and stop records what the kubelet said of the run
//!   it ended, since the pod (and its termination message) goes with the scale to 0;
//! - the phase is derived from the API objects (`phase.rs`), and `watch` follows the API's
//!   watch instead of polling.

use super::client::Target;
use super::lease;
use super::ops::{Kube, Objects};
use super::phase::{derive, intent_of, last_run_of, workload_of};
use super::render::{self, IntentAnnotations, SandboxSpec};
use super::{pod_name, pvc_name, CONTAINER};
use crate::contract::time::now_rfc3339;
use crate::contract::{CtlExit, SandboxPhase};
use crate::shim::backend::{
    self, Backend, BackendKind, Change, CreateRequest, Intent, Lock, Observation, Record, Sandbox,
    RECORD_VERSION,
};
use crate::shim::cli::CreateOutput;
use crate::shim::error::CtlError;
use crate::shim::names::{self, Name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::cell::OnceCell;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Added to the stop timeout for how long a Lease may be held: a stop waits that long for
/// the kubelet, then up to a minute more for the API to see the pod gone.
const LEASE_MARGIN: Duration = Duration::from_secs(90);
/// How long `stop` waits for the pod to go beyond the grace the kubelet gives it.
const POD_GONE_MARGIN: Duration = Duration::from_secs(60);

pub struct KubeBackend {
    target: Target,
    /// Opened at the first call that needs the cluster (`--dry-run` never does).
    kube: OnceCell<Kube>,
}

impl KubeBackend {
    pub fn new(target: Target) -> KubeBackend {
        KubeBackend {
            target,
            kube: OnceCell::new(),
        }
    }

    fn kube(&self) -> Result<&Kube, CtlError> {
        if let Some(k) = self.kube.get() {
            return Ok(k);
        }
        let k = Kube::open(&self.target)?;
        Ok(self.kube.get_or_init(|| k))
    }

    /// The create request as objects; checks every flag first (nothing is contacted).
    fn spec(&self, req: &CreateRequest<'_>, namespace: String) -> Result<SandboxSpec, CtlError> {
        let args = req.args;
        let usage = |e: String| CtlError::new(CtlExit::Usage, e);
        let workspace_size = args
            .workspace_size
            .clone()
            .unwrap_or_else(|| render::DEFAULT_WORKSPACE_SIZE.to_owned());
        render::check_quantity(&workspace_size).map_err(usage)?;
        render::check_dns("--namespace", &namespace, false).map_err(usage)?;
        if let Some(sc) = &args.storage_class {
            render::check_dns("--storage-class", sc, true).map_err(usage)?;
        }
        let id = backend::new_id()
            .map_err(|e| CtlError::new(CtlExit::Internal, format!("no random id: {e}")))?;
        Ok(SandboxSpec {
            name: req.name.clone(),
            id,
            namespace,
            image: args
                .image
                .clone()
                .unwrap_or_else(|| render::DEFAULT_IMAGE.to_owned()),
            env: args.env.clone(),
            command: args.command.clone(),
            start: req.intent == Intent::Running,
            workspace_size,
            storage_class: args.storage_class.clone(),
            grace: render::DEFAULT_GRACE,
            intent: IntentAnnotations {
                intent: req.intent.as_str().into(),
                at: now_rfc3339(),
                by: "create".into(),
            },
        })
    }

    fn sandbox(&self, namespace: &str, name: &Name, sts: &StatefulSet) -> Sandbox {
        Sandbox {
            name: name.clone(),
            record: record_of(namespace, name, sts),
            dir: None,
        }
    }

    fn observation(&self, o: &Objects) -> Result<Observation, CtlError> {
        let intent = intent_of(&o.sts)
            .map_err(|e| CtlError::new(CtlExit::Internal, e).about(o.name.as_str()))?;
        let last = last_run_of(&o.sts);
        let k = derive(&o.sts, &intent, o.pod.as_ref(), last.as_ref());
        let spec = o.sts.spec.as_ref();
        let mut obs = Observation::new(
            intent.record,
            Some(workload_of(&o.name.container(), &o.sts, o.pod.as_ref())),
        );
        obs.status_current = k.derived.status_current;
        obs.report = k.report;
        obs.derived = Some(k.derived);
        let mut details = serde_json::Map::new();
        if let Some(ns) = &o.sts.metadata.namespace {
            details.insert("namespace".into(), Value::from(ns.as_str()));
        }
        details.insert(
            "replicas".into(),
            json!(spec.and_then(|s| s.replicas).unwrap_or(0)),
        );
        details.insert("generation".into(), json!(o.sts.metadata.generation));
        details.insert("pod".into(), pod_json(o.pod.as_ref()));
        obs.details = details;
        Ok(obs)
    }
}

/// The StatefulSet, read as a sandbox record.
fn record_of(namespace: &str, name: &Name, sts: &StatefulSet) -> Record {
    let object = name.container();
    let pod = sts.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let image = pod
        .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let grace = pod
        .and_then(|p| p.termination_grace_period_seconds)
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(30);
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("namespace", namespace.to_owned()),
        ("statefulset", object.clone()),
        ("service", object.clone()),
        ("pvc", pvc_name(&object)),
    ] {
        details.insert(k.into(), Value::from(v));
    }
    Record {
        schema_version: RECORD_VERSION,
        name: name.to_string(),
        id: sts
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(names::LABEL_ID).cloned())
            .unwrap_or_default(),
        backend: BackendKind::Kube,
        image,
        stop_timeout_secs: grace,
        created_at: sts
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        details,
    }
}

fn pod_json(pod: Option<&Pod>) -> Value {
    let Some(p) = pod else { return Value::Null };
    let st = p.status.as_ref();
    let c = st
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER));
    json!({
        "name": p.metadata.name,
        "uid": p.metadata.uid,
        "phase": st.and_then(|s| s.phase.clone()),
        "node": p.spec.as_ref().and_then(|s| s.node_name.clone()),
        "terminating": p.metadata.deletion_timestamp.is_some(),
        "ready": c.map(|c| c.ready),
        "restarts": c.map(|c| c.restart_count),
        "state": c.and_then(|c| c.state.clone()),
        "last_state": c.and_then(|c| c.last_state.clone()),
    })
}

impl Backend for KubeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kube
    }

    fn list(&self) -> Result<Vec<Sandbox>, CtlError> {
        let kube = self.kube()?;
        Ok(kube
            .list()?
            .iter()
            .map(|(n, s)| self.sandbox(kube.namespace(), n, s))
            .collect())
    }

    fn find(&self, name: &Name) -> Result<Option<Sandbox>, CtlError> {
        let kube = self.kube()?;
        Ok(kube
            .find(name)?
            .map(|s| self.sandbox(kube.namespace(), name, &s)))
    }

    fn set_intent(&self, sb: &Sandbox, intent: Intent, by: &str) -> Result<(), CtlError> {
        self.kube()?.set_intent(&sb.name, intent, by)
    }

    fn lock(&self, sb: &Sandbox, verb: &str, wait: Duration) -> Result<Lock, CtlError> {
        let hold = Duration::from_secs(sb.record.stop_timeout_secs) + LEASE_MARGIN;
        lease::acquire(&self.kube()?.conn, &sb.name, verb, wait, hold).map(Lock::holding)
    }

    /// Service, workspace PVC and StatefulSet, the StatefulSet already scaled to the intent
    /// (exactly what `--dry-run` prints): `start` then finds it scaled and waits.
    fn create(&self, req: &CreateRequest<'_>) -> Result<Sandbox, CtlError> {
        let about = |e: CtlError| e.about(req.name.as_str());
        // Flags are checked before the cluster is contacted.
        self.spec(req, "default".into()).map_err(about)?;
        let kube = self.kube()?;
        let spec = self.spec(req, kube.namespace().to_owned()).map_err(about)?;
        kube.create(&spec)?;
        let sts = kube.require(&req.name)?;
        Ok(self.sandbox(kube.namespace(), &req.name, &sts))
    }

    /// Scales to 1; a pod that is failing is deleted so that the StatefulSet makes a fresh
    /// one (the boot hook runs again, the kubelet's back-off starts over). A pod that runs
    /// is left alone.
    fn start(&self, sb: &Sandbox) -> Result<(), CtlError> {
        let kube = self.kube()?;
        kube.scale(&sb.name, 1, Intent::Running)?;
        let o = kube.objects_one(&sb.name)?;
        let failing = o
            .pod
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
            && self.observation(&o).is_ok_and(|obs| {
                matches!(
                    obs.derived.map(|d| d.phase),
                    Some(SandboxPhase::Error | SandboxPhase::Failed)
                )
            });
        if failing {
            info!(event = "kube.restart_pod", sandbox = %sb.name, pod = %pod_name(&sb.name.container()),
                "deleting the failing pod so that the StatefulSet makes a fresh one");
            kube.delete_pod(&sb.name, None)?;
        }
        Ok(())
    }

    /// Scales to 0 and waits for the pod to go: the kubelet sends the supervisor SIGTERM
    /// and waits terminationGracePeriodSeconds (its --grace plus a margin); a `timeout` other
    /// than that deletes the pod with that grace instead. The PVC stays. What the kubelet
    /// last said of the container (exit code, termination message) is recorded on the
    /// StatefulSet, since the pod takes it along.
    fn stop(&self, sb: &Sandbox, timeout_secs: u64) -> Result<(), CtlError> {
        let kube = self.kube()?;
        kube.scale(&sb.name, 0, Intent::Stopped)?;
        if timeout_secs != sb.record.stop_timeout_secs {
            kube.delete_pod(
                &sb.name,
                Some(u32::try_from(timeout_secs).unwrap_or(u32::MAX)),
            )?;
        }
        let wait = Duration::from_secs(timeout_secs) + POD_GONE_MARGIN;
        if let Some(run) = kube.wait_pod_gone(&sb.name, wait)? {
            kube.record_last_run(&sb.name, &run);
        }
        Ok(())
    }

    fn delete(&self, sb: &Sandbox) -> Result<(), CtlError> {
        self.kube()?.delete(&sb.name)
    }

    /// One sandbox: its StatefulSet and pod read afresh (two requests); several: every
    /// sandbox's objects in two requests.
    fn observe(&self, sandboxes: &[Sandbox]) -> Vec<Result<Observation, CtlError>> {
        let kube = match self.kube() {
            Ok(k) => k,
            Err(e) => {
                return sandboxes
                    .iter()
                    .map(|sb| Err(CtlError::new(e.exit, e.message.clone()).about(sb.name.as_str())))
                    .collect()
            }
        };
        if let [sb] = sandboxes {
            return vec![kube
                .objects_one(&sb.name)
                .and_then(|o| self.observation(&o))];
        }
        let mut all = match kube.objects_all() {
            Ok(a) => a,
            Err(e) => {
                return sandboxes
                    .iter()
                    .map(|sb| Err(CtlError::new(e.exit, e.message.clone()).about(sb.name.as_str())))
                    .collect()
            }
        };
        sandboxes
            .iter()
            .map(|sb| match all.remove(&sb.name) {
                Some(o) => self.observation(&o),
                None => Err(CtlError::new(
                    CtlExit::UnknownSandbox,
                    format!(
                        "its StatefulSet {} is gone from namespace {}",
                        sb.name.container(),
                        kube.namespace()
                    ),
                )
                .about(sb.name.as_str())),
            })
            .collect()
    }

    fn objects(&self, sb: &Sandbox) -> Vec<(&'static str, String)> {
        let object = sb.name.container();
        vec![
            ("statefulset", object.clone()),
            ("service", object.clone()),
            ("pvc", pvc_name(&object)),
        ]
    }

    fn scope(&self) -> String {
        match self.kube() {
            Ok(k) => format!("in namespace {} of {}", k.namespace(), k.conn.server),
            Err(_) => "in the cluster (its configuration cannot be read)".to_owned(),
        }
    }

    fn dry_run(&self, req: &CreateRequest<'_>) -> Result<String, CtlError> {
        // Printing needs no cluster: the namespace is --namespace, else `default`.
        let ns = self
            .target
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let spec = self.spec(req, ns)?;
        Ok(match req.args.output {
            Some(CreateOutput::Json) => {
                let list = json!({"apiVersion": "v1", "kind": "List", "items": [
                    render::service(&spec), render::workspace_pvc(&spec),
                    render::stateful_set(&spec)]});
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&list).expect("objects serialize")
                )
            }
            _ => render::to_yaml(&spec),
        })
    }

    fn watch(
        &self,
        only: Option<&Name>,
        deadline: Option<Instant>,
        emit: &mut dyn FnMut(Change) -> bool,
    ) -> Option<Result<bool, CtlError>> {
        let kube = match self.kube() {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        Some(kube.watch(only, deadline, |name, objects| match objects {
            Some(o) => match self.observation(&o) {
                Ok(obs) => emit(Change::Observed(
                    Box::new(self.sandbox(kube.namespace(), name, &o.sts)),
                    Box::new(obs),
                )),
                Err(e) => {
                    warn!(event = "watch.unreadable", sandbox = %name, "{}", e.message);
                    false
                }
            },
            None => emit(Change::Gone(name.clone())),
        }))
    }
}
