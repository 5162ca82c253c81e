//! What the kube backend does with the API: create, find and list sandboxes, record the
//! intent, scale, wait, delete, observe, watch. Every change is a JSON merge patch carrying
//! the resourceVersion it was computed from (module docs of `kube/mod.rs` say why).

use super::client::{is_conflict, is_not_found, Conn, Target};
use super::phase::intent_of;
use super::render::{self, SandboxSpec};
use super::{
    pod_name, pvc_name, LastRun, ANNOTATION_INTENT, ANNOTATION_INTENT_AT, ANNOTATION_INTENT_BY,
    ANNOTATION_INTENT_GENERATION, ANNOTATION_LAST_RUN, CONTAINER, LABEL_MANAGED_BY,
};
use crate::contract::time::now_rfc3339;
use crate::contract::CtlExit;
use crate::shim::backend::Intent;
use crate::shim::error::CtlError;
use crate::shim::names::{self, Name};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often a 409 Conflict is re-read and retried before it is reported.
const CONFLICT_RETRIES: u32 = 5;
/// Polling interval while waiting for a pod to appear, become Ready or go away.
pub const POLL: Duration = Duration::from_millis(250);
/// Server-side timeout of one watch request; the watch is renewed from the last version.
const WATCH_SECS: u32 = 290;

/// One sandbox's objects as the cluster has them right now.
#[derive(Debug, Clone)]
pub struct Objects {
    pub name: Name,
    pub sts: StatefulSet,
    pub pod: Option<Pod>,
}

pub struct Kube {
    pub conn: Conn,
}

pub fn selector_all() -> String {
    format!(
        "{LABEL_MANAGED_BY}={},{}",
        names::MANAGED_BY,
        names::LABEL_SANDBOX
    )
}

impl Kube {
    pub fn open(target: &Target) -> Result<Kube, CtlError> {
        Ok(Kube {
            conn: Conn::open(target)?,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.conn.client.clone(), &self.conn.namespace)
    }

    /// Creates the Service, the workspace PVC, then the StatefulSet (which carries the first
    /// intent). A name already taken is a conflict; if a later object cannot be made, the
    /// ones made for it are removed again.
    pub fn create(&self, spec: &SandboxSpec) -> Result<(), CtlError> {
        let object = spec.object_name();
        let about = |e: CtlError| e.about(spec.name.as_str());
        let taken = |kind: &str| {
            CtlError::new(
                CtlExit::Conflict,
                format!(
                    "a {kind} named {object} already exists in namespace {}; delete the sandbox (or that object) first, or pick another name",
                    self.conn.namespace
                ),
            )
        };
        if self.get_sts(&object)?.is_some() {
            return Err(about(taken("StatefulSet")));
        }
        // The StatefulSet controller would adopt a claim of the PVC's name: a workspace left
        // by someone else (or by a StatefulSet deleted by hand) must not become this one's.
        let claim = pvc_name(&object);
        let pvcs: Api<PersistentVolumeClaim> = self.api();
        if self
            .conn
            .block_on(pvcs.get_opt(&claim))
            .map_err(|e| {
                about(
                    self.conn
                        .error(&format!("read PersistentVolumeClaim {claim}"), e),
                )
            })?
            .is_some()
        {
            return Err(about(CtlError::new(
                CtlExit::Conflict,
                format!(
                    "a PersistentVolumeClaim named {claim} already exists in namespace {} (a workspace sandboxctl does not know, e.g. left by a StatefulSet deleted by hand); delete it or pick another name",
                    self.conn.namespace
                ),
            )));
        }
        let svc: Api<Service> = self.api();
        let sts: Api<StatefulSet> = self.api();
        let pp = PostParams::default();
        self.conn
            .block_on(svc.create(&pp, &render::service(spec)))
            .map_err(|e| {
                if is_conflict(&e) {
                    about(taken("Service"))
                } else {
                    about(self.conn.error(&format!("create Service {object}"), e))
                }
            })?;
        // What was made is removed again if a later object cannot be: the name stays free.
        let undo = |pvc_made: bool| {
            let dp = DeleteParams::default();
            if pvc_made {
                let _ = self.conn.block_on(pvcs.delete(&claim, &dp));
            }
            let _ = self.conn.block_on(svc.delete(&object, &dp));
        };
        if let Err(e) = self
            .conn
            .block_on(pvcs.create(&pp, &render::workspace_pvc(spec)))
        {
            let err = if is_conflict(&e) {
                taken("PersistentVolumeClaim")
            } else {
                self.conn
                    .error(&format!("create PersistentVolumeClaim {claim}"), e)
            };
            undo(false);
            return Err(about(err));
        }
        if let Err(e) = self
            .conn
            .block_on(sts.create(&pp, &render::stateful_set(spec)))
        {
            let err = if is_conflict(&e) {
                taken("StatefulSet")
            } else {
                self.conn.error(&format!("create StatefulSet {object}"), e)
            };
            undo(true);
            return Err(about(err));
        }
        info!(event = "kube.created", sandbox = %spec.name, namespace = %self.conn.namespace,
            statefulset = %object, replicas = i32::from(spec.start), "created");
        Ok(())
    }

    fn get_sts(&self, object: &str) -> Result<Option<StatefulSet>, CtlError> {
        let sts: Api<StatefulSet> = self.api();
        self.conn
            .block_on(sts.get_opt(object))
            .map_err(|e| self.conn.error(&format!("read StatefulSet {object}"), e))
    }

    /// The sandbox's StatefulSet, if there is one and sandboxctl made it for NAME. One of
    /// that name with other labels is not a sandbox: sandboxctl leaves it alone (and
    /// `create` refuses the name).
    pub fn find(&self, name: &Name) -> Result<Option<StatefulSet>, CtlError> {
        let object = name.container();
        let Some(s) = self.get_sts(&object)? else {
            return Ok(None);
        };
        let labels = s.metadata.labels.clone().unwrap_or_default();
        if labels.get(names::LABEL_SANDBOX).map(String::as_str) != Some(name.as_str())
            || labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(names::MANAGED_BY)
        {
            debug!(event = "kube.foreign", sandbox = %name, statefulset = %object,
                "a StatefulSet of the sandbox's name that sandboxctl did not make: not a sandbox");
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Every sandbox in the namespace, by name.
    pub fn list(&self) -> Result<Vec<(Name, StatefulSet)>, CtlError> {
        let sts: Api<StatefulSet> = self.api();
        let lp = ListParams::default().labels(&selector_all());
        let list = self
            .conn
            .block_on(sts.list(&lp))
            .map_err(|e| self.conn.error("list StatefulSets", e))?;
        let mut out: Vec<(Name, StatefulSet)> = list
            .items
            .into_iter()
            .filter_map(|s| {
                let n = s.metadata.labels.as_ref()?.get(names::LABEL_SANDBOX)?;
                let name = Name::parse(n).ok()?;
                // Only the deterministic name counts: a copy under another name is not it.
                (s.metadata.name.as_deref() == Some(name.container().as_str())).then_some((name, s))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Records the intent on the StatefulSet, with the generation it was recorded at.
    /// Optimistic: computed from one read and sent with that read's resourceVersion; a
    /// conflict is re-read and retried.
    pub fn set_intent(&self, name: &Name, intent: Intent, by: &str) -> Result<(), CtlError> {
        let object = name.container();
        let sts: Api<StatefulSet> = self.api();
        for attempt in 1..=CONFLICT_RETRIES {
            let s = self.require(name)?;
            let mut annotations = json!({
                ANNOTATION_INTENT: intent.as_str(),
                ANNOTATION_INTENT_AT: now_rfc3339(),
                ANNOTATION_INTENT_BY: by,
                ANNOTATION_INTENT_GENERATION: s.metadata.generation.unwrap_or(0).to_string(),
            });
            if intent == Intent::Running {
                // A new run is on its way: the last stop's record no longer describes it.
                annotations[ANNOTATION_LAST_RUN] = serde_json::Value::Null;
            }
            let patch = json!({"metadata": {
                "resourceVersion": s.metadata.resource_version,
                "annotations": annotations,
            }});
            match self.conn.block_on(sts.patch(
                &object,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )) {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => {
                    debug!(event = "kube.conflict", sandbox = %name, action = "set_intent", attempt,
                        "StatefulSet changed since it was read; reading it again");
                }
                Err(e) => {
                    return Err(self
                        .conn
                        .error(&format!("record the intent on StatefulSet {object}"), e)
                        .about(name.as_str()))
                }
            }
        }
        Err(self.conflict_exhausted(name, "record the intent"))
    }

    fn conflict_exhausted(&self, name: &Name, what: &str) -> CtlError {
        CtlError::new(
            CtlExit::Conflict,
            format!(
                "could not {what}: StatefulSet {} kept changing under {CONFLICT_RETRIES} attempts (another operator or controller is writing it); run the verb again",
                name.container()
            ),
        )
        .about(name.as_str())
    }

    pub fn require(&self, name: &Name) -> Result<StatefulSet, CtlError> {
        self.find(name)?.ok_or_else(|| {
            CtlError::new(
                CtlExit::UnknownSandbox,
                format!(
                    "no sandbox named {:?} in namespace {} (see `sandboxctl list --backend kube`)",
                    name.as_str(),
                    self.conn.namespace
                ),
            )
        })
    }

    /// Scales to `replicas` through the scale subresource, as `kubectl scale` does, but only
    /// while the recorded intent is still `intent`: if another operator recorded a newer,
    /// different intent in between, that is reported (exit 67), never overridden.
    pub fn scale(&self, name: &Name, replicas: i32, intent: Intent) -> Result<(), CtlError> {
        let object = name.container();
        let sts: Api<StatefulSet> = self.api();
        for attempt in 1..=CONFLICT_RETRIES {
            let s = self.require(name)?;
            let now = intent_of(&s)
                .map_err(|e| CtlError::new(CtlExit::Conflict, e).about(name.as_str()))?;
            if now.record.intent != intent {
                return Err(CtlError::new(
                    CtlExit::Conflict,
                    format!(
                        "another sandboxctl recorded intent {} (by {} at {}) while this one acted on {}; not scaling. Check `sandboxctl status {name} --backend kube` and run the verb again if it still applies",
                        now.record.intent.as_str(), now.record.by, now.record.at, intent.as_str()
                    ),
                )
                .about(name.as_str()));
            }
            if s.spec.as_ref().and_then(|sp| sp.replicas) == Some(replicas) {
                return Ok(());
            }
            let patch = json!({
                "metadata": {"resourceVersion": s.metadata.resource_version},
                "spec": {"replicas": replicas},
            });
            match self.conn.block_on(sts.patch_scale(
                &object,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )) {
                Ok(_) => {
                    info!(event = "kube.scaled", sandbox = %name, replicas, "scaled");
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {
                    debug!(event = "kube.conflict", sandbox = %name, action = "scale", attempt,
                        "StatefulSet changed since it was read; reading it again");
                }
                Err(e) => {
                    return Err(self
                        .conn
                        .error(&format!("scale StatefulSet {object} to {replicas}"), e)
                        .about(name.as_str()))
                }
            }
        }
        Err(self.conflict_exhausted(name, &format!("scale to {replicas}")))
    }

    pub fn get_pod(&self, object: &str) -> Result<Option<Pod>, CtlError> {
        let pods: Api<Pod> = self.api();
        let p = pod_name(object);
        self.conn
            .block_on(pods.get_opt(&p))
            .map_err(|e| self.conn.error(&format!("read pod {p}"), e))
    }

    /// Deletes the pod so that the StatefulSet makes a fresh one (a sandbox in Error or
    /// Failed: after a lost node, or to reset the kubelet's crash back-off). `grace` overrides
    /// the pod's terminationGracePeriodSeconds.
    pub fn delete_pod(&self, name: &Name, grace: Option<u32>) -> Result<(), CtlError> {
        let pods: Api<Pod> = self.api();
        let p = pod_name(&name.container());
        let dp = DeleteParams {
            grace_period_seconds: grace,
            ..DeleteParams::default()
        };
        match self.conn.block_on(pods.delete(&p, &dp)) {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self
                .conn
                .error(&format!("delete pod {p}"), e)
                .about(name.as_str())),
        }
    }

    /// Waits until the pod is gone (after a scale to 0), up to `timeout`, following it with
    /// the API's watch, and returns how its container ended as the kubelet last reported it
    /// (None when the pod went without a terminated state, or there was none).
    pub fn wait_pod_gone(
        &self,
        name: &Name,
        timeout: Duration,
    ) -> Result<Option<LastRun>, CtlError> {
        let object = name.container();
        let pod = pod_name(&object);
        let pods: Api<Pod> = self.api();
        let lp = ListParams::default().labels(&format!("{}={}", names::LABEL_SANDBOX, name));
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            CtlError::new(
                CtlExit::Timeout,
                format!(
                    "pod {pod} is still there {timeout:?} after the scale to 0 (a stuck finalizer or an unreachable node?); see `kubectl describe pod {pod}`"
                ),
            )
            .about(name.as_str())
        };
        let mut seen: Option<LastRun> = None;
        self.conn.block_on(async {
            loop {
                let list = pods
                    .list(&lp)
                    .await
                    .map_err(|e| self.conn.error("list pods", e))?;
                let Some(p) = list
                    .items
                    .into_iter()
                    .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                else {
                    return Ok(seen);
                };
                capture(&p, &mut seen);
                // Every event after the listing; a watch that ends is followed by a new listing.
                let rv = list.metadata.resource_version.unwrap_or_default();
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                let wp = WatchParams::default()
                    .labels(&format!("{}={}", names::LABEL_SANDBOX, name))
                    .timeout(left.as_secs().clamp(1, u64::from(WATCH_SECS)) as u32);
                let mut events = pods
                    .watch(&wp, &rv)
                    .await
                    .map_err(|e| self.conn.error("watch pods", e))?
                    .boxed();
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let next = match tokio::time::timeout(left, events.next()).await {
                        Ok(n) => n,
                        Err(_) => return Err(timed_out()),
                    };
                    match next {
                        // The watch ended (its server-side timeout): look again.
                        None => break,
                        Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)))
                            if p.metadata.name.as_deref() == Some(pod.as_str()) =>
                        {
                            capture(&p, &mut seen);
                        }
                        Some(Ok(WatchEvent::Deleted(p)))
                            if p.metadata.name.as_deref() == Some(pod.as_str()) =>
                        {
                            capture(&p, &mut seen);
                            return Ok(seen);
                        }
                        Some(Ok(WatchEvent::Error(e))) if e.code == 410 => break,
                        Some(Ok(WatchEvent::Error(e))) => {
                            return Err(self.conn.error("watch pods", kube::Error::Api(e)))
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(self.conn.error("watch pods", e)),
                    }
                }
            }
        })
    }

    /// Records what `stop` saw of the run it ended (best effort: it is a report).
    pub fn record_last_run(&self, name: &Name, run: &LastRun) {
        let object = name.container();
        let sts: Api<StatefulSet> = self.api();
        let patch = json!({"metadata": {"annotations": {
            ANNOTATION_LAST_RUN: serde_json::to_string(run).expect("a record serializes"),
        }}});
        if let Err(e) =
            self.conn
                .block_on(sts.patch(&object, &PatchParams::default(), &Patch::Merge(&patch)))
        {
            warn!(event = "kube.last_run_unrecorded", sandbox = %name, error = %e,
                "cannot record the stopped run's exit on the StatefulSet; `status` will not show it");
        }
    }

    /// Removes the StatefulSet, the Service and the workspace PVC. Whatever is gone already
    /// is fine: a delete that failed half-way can be run again.
    pub fn delete(&self, name: &Name) -> Result<(), CtlError> {
        let object = name.container();
        let about = |e: CtlError| e.about(name.as_str());
        let dp = DeleteParams::default();
        let gone_ok = |r: Result<(), kube::Error>, what: String| match r {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(about(self.conn.error(&what, e))),
        };
        let sts: Api<StatefulSet> = self.api();
        let svc: Api<Service> = self.api();
        let pvc: Api<PersistentVolumeClaim> = self.api();
        gone_ok(
            self.conn.block_on(sts.delete(&object, &dp)).map(drop),
            format!("delete StatefulSet {object}"),
        )?;
        gone_ok(
            self.conn.block_on(svc.delete(&object, &dp)).map(drop),
            format!("delete Service {object}"),
        )?;
        let claim = pvc_name(&object);
        gone_ok(
            self.conn.block_on(pvc.delete(&claim, &dp)).map(drop),
            format!("delete PersistentVolumeClaim {claim}"),
        )?;
        info!(event = "kube.deleted", sandbox = %name, statefulset = %object, pvc = %claim, "deleted");
        Ok(())
    }

    /// The pods of every sandbox in the namespace, by pod name (one request).
    fn pods(&self) -> Result<BTreeMap<String, Pod>, CtlError> {
        let pods: Api<Pod> = self.api();
        let lp = ListParams::default().labels(&selector_all());
        let list = self
            .conn
            .block_on(pods.list(&lp))
            .map_err(|e| self.conn.error("list pods", e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, p)))
            .collect())
    }

    /// The StatefulSets and pods of every sandbox in the namespace (two requests).
    pub fn objects_all(&self) -> Result<BTreeMap<Name, Objects>, CtlError> {
        let mut pods = self.pods()?;
        Ok(self
            .list()?
            .into_iter()
            .map(|(name, sts)| {
                let pod = pods.remove(&pod_name(&name.container()));
                (name.clone(), Objects { name, sts, pod })
            })
            .collect())
    }

    /// One sandbox, read afresh: the StatefulSet first, then its pod (so a pod the controller
    /// made after our read of the StatefulSet is seen, never one it has not made yet).
    pub fn objects_one(&self, name: &Name) -> Result<Objects, CtlError> {
        let sts = self.require(name)?;
        let pod = self.get_pod(&name.container())?;
        Ok(Objects {
            name: name.clone(),
            sts,
            pod,
        })
    }

    /// Follows every sandbox (or `only`) with the API's watch on StatefulSets and pods, and
    /// calls `emit` with each sandbox's view whenever an event concerns it, and with `None`
    /// when its StatefulSet was deleted. Ends when `emit` returns true or at `deadline`
    /// (Ok(false)).
    pub fn watch(
        &self,
        only: Option<&Name>,
        deadline: Option<Instant>,
        mut emit: impl FnMut(&Name, Option<Objects>) -> bool,
    ) -> Result<bool, CtlError> {
        let sts_api: Api<StatefulSet> = self.api();
        let pod_api: Api<Pod> = self.api();
        let selector = match only {
            Some(n) => format!(
                "{LABEL_MANAGED_BY}={},{}={}",
                names::MANAGED_BY,
                names::LABEL_SANDBOX,
                n
            ),
            None => selector_all(),
        };
        let lp = ListParams::default().labels(&selector);
        self.conn.block_on(async {
            'relist: loop {
                let sts_list = sts_api
                    .list(&lp)
                    .await
                    .map_err(|e| self.conn.error("list StatefulSets", e))?;
                let pod_list = pod_api
                    .list(&lp)
                    .await
                    .map_err(|e| self.conn.error("list pods", e))?;
                let mut sts_rv = sts_list
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default();
                let mut pod_rv = pod_list
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default();
                let mut world: BTreeMap<Name, (Option<StatefulSet>, Option<Pod>)> = BTreeMap::new();
                for s in sts_list.items {
                    if let Some(n) = sandbox_of(&s.metadata) {
                        world.entry(n).or_default().0 = Some(s);
                    }
                }
                for p in pod_list.items {
                    if let Some(n) = sandbox_of(&p.metadata) {
                        world.entry(n).or_default().1 = Some(p);
                    }
                }
                for (n, (s, p)) in &world {
                    if let Some(s) = s {
                        if emit(n, Some(objects(n, s, p))) {
                            return Ok(true);
                        }
                    }
                }
                loop {
                    let wp = WatchParams::default().labels(&selector).timeout(WATCH_SECS);
                    let a = sts_api
                        .watch(&wp, &sts_rv)
                        .await
                        .map_err(|e| self.conn.error("watch StatefulSets", e))?
                        .map(Event::Sts);
                    let b = pod_api
                        .watch(&wp, &pod_rv)
                        .await
                        .map_err(|e| self.conn.error("watch pods", e))?
                        .map(Event::Pod);
                    let mut events = futures::stream::select(a.boxed(), b.boxed());
                    loop {
                        let next = match deadline {
                            Some(d) => {
                                let left = d.saturating_duration_since(Instant::now());
                                match tokio::time::timeout(left, events.next()).await {
                                    Ok(n) => n,
                                    Err(_) => return Ok(false),
                                }
                            }
                            None => events.next().await,
                        };
                        // One of the two watches ended (server timeout): renew both.
                        let Some(ev) = next else { break };
                        let (name, gone) = match ev {
                            Event::Sts(Ok(e)) => match e {
                                WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                                    sts_rv = s.metadata.resource_version.clone().unwrap_or(sts_rv);
                                    let Some(n) = sandbox_of(&s.metadata) else {
                                        continue;
                                    };
                                    world.entry(n.clone()).or_default().0 = Some(s);
                                    (n, false)
                                }
                                WatchEvent::Deleted(s) => {
                                    sts_rv = s.metadata.resource_version.clone().unwrap_or(sts_rv);
                                    let Some(n) = sandbox_of(&s.metadata) else {
                                        continue;
                                    };
                                    world.remove(&n);
                                    (n, true)
                                }
                                WatchEvent::Bookmark(b) => {
                                    sts_rv = b.metadata.resource_version;
                                    continue;
                                }
                                // 410 Gone: our version is too old; list again.
                                WatchEvent::Error(s) if s.code == 410 => continue 'relist,
                                WatchEvent::Error(s) => {
                                    return Err(self
                                        .conn
                                        .error("watch StatefulSets", kube::Error::Api(s)))
                                }
                            },
                            Event::Pod(Ok(e)) => match e {
                                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                                    pod_rv = p.metadata.resource_version.clone().unwrap_or(pod_rv);
                                    let Some(n) = sandbox_of(&p.metadata) else {
                                        continue;
                                    };
                                    world.entry(n.clone()).or_default().1 = Some(p);
                                    (n, false)
                                }
                                WatchEvent::Deleted(p) => {
                                    pod_rv = p.metadata.resource_version.clone().unwrap_or(pod_rv);
                                    let Some(n) = sandbox_of(&p.metadata) else {
                                        continue;
                                    };
                                    world.entry(n.clone()).or_default().1 = None;
                                    (n, false)
                                }
                                WatchEvent::Bookmark(b) => {
                                    pod_rv = b.metadata.resource_version;
                                    continue;
                                }
                                WatchEvent::Error(s) if s.code == 410 => continue 'relist,
                                WatchEvent::Error(s) => {
                                    return Err(self.conn.error("watch pods", kube::Error::Api(s)))
                                }
                            },
                            Event::Sts(Err(e)) => {
                                return Err(self.conn.error("watch StatefulSets", e))
                            }
                            Event::Pod(Err(e)) => return Err(self.conn.error("watch pods", e)),
                        };
                        if gone {
                            if emit(&name, None) {
                                return Ok(true);
                            }
                            continue;
                        }
                        if let Some((Some(s), p)) = world.get(&name) {
                            if emit(&name, Some(objects(&name, s, p))) {
                                return Ok(true);
                            }
                        }
                    }
                }
            }
        })
    }
}

// Short-lived, one per watch event: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Event {
    Sts(Result<WatchEvent<StatefulSet>, kube::Error>),
    Pod(Result<WatchEvent<Pod>, kube::Error>),
}

fn sandbox_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Name> {
    let n = meta.labels.as_ref()?.get(names::LABEL_SANDBOX)?;
    Name::parse(n).ok()
}

fn objects(name: &Name, sts: &StatefulSet, pod: &Option<Pod>) -> Objects {
    Objects {
        name: name.clone(),
        sts: sts.clone(),
        pod: pod.clone(),
    }
}

/// Keeps the container's latest termination as the kubelet reports it on `pod`.
fn capture(pod: &Pod, seen: &mut Option<LastRun>) {
    let Some(c) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
    else {
        return;
    };
    if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
        *seen = Some(LastRun {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            exit_code: Some(t.exit_code),
            reason: t.reason.clone(),
            message: t.message.clone(),
            finished_at: t.finished_at.as_ref().map(|f| f.0.to_string()),
        });
    }
}
