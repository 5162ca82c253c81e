//! A kube sandbox's phase, derived from what the API says: the StatefulSet (replicas,
//! generation, the intent annotations, the controller's observedGeneration, the last run
//! sandboxctl saw end) and its pod (deletion, phase, PodScheduled, the container's state,
//! readiness, restarts, exit code and the supervisor's termination message). Pure functions
//! over the API objects, so every row is unit-tested; README "## Kubernetes" has the same
//! table.
//!
//! | pod                                          | intent   | phase                              |
//! |----------------------------------------------|----------|------------------------------------|
//! | none, replicas 0, never scaled (generation 1) | any     | Created (`create --no-start`)      |
//! | none, replicas 0                             | stopped  | Stopped (exit code and last word recorded by the stop) |
//! | none, replicas 0, intent not yet acted on    | running  | Pending (start recorded, scale pending) |
//! | none, replicas 0, scaled after the intent    | running  | Error `stopped_externally`         |
//! | none, replicas 1, controller not caught up (or still counting the pod) | any | Pending |
//! | none, replicas 1, controller caught up, no pod counted | running | Error `pod_missing` |
//! | terminating                                  | stopped  | Stopping                           |
//! | terminating                                  | running  | Pending (the StatefulSet makes it again) |
//! | phase Unknown                                | any      | Error `node_lost`                  |
//! | phase Failed/Succeeded (evicted…)            | any      | Error, the pod's reason            |
//! | not scheduled                                | any      | Pending, reason `unschedulable`    |
//! | waiting ContainerCreating/PodInitializing    | any      | Pending                            |
//! | waiting ErrImagePull/ImagePullBackOff/…      | any      | Error, the reason in snake_case    |
//! | running, Ready                               | any      | Ready                              |
//! | running, not Ready, after a failed run       | any      | that run's Failed / Error (the kubelet retries) |
//! | running, not Ready                           | any      | Starting                           |
//! | ended (or CrashLoopBackOff), message `Failed/R` | any   | Failed, reason R                   |
//! | … message `Completed`                        | any      | Completed                          |
//! | … any message, or none                       | stopped  | Stopping (the pod is on its way out) |
//! | … message `Stopped`                          | running  | Error `stopped_externally`         |
//! | … no message                                 | running  | Error `unexpected_exit` / `oom_killed` |
//!
//! The supervisor's status.json is on an emptyDir inside the pod, out of reach: while the
//! container runs, readiness (`supervisor status --ready`) is its report; once it has
//! exited, the termination message is; once the pod is gone, what `stop` recorded of it.

use super::{
    LastRun, ANNOTATION_INTENT, ANNOTATION_INTENT_AT, ANNOTATION_INTENT_BY,
    ANNOTATION_INTENT_GENERATION, ANNOTATION_LAST_RUN, CONTAINER,
};
use crate::contract::sandbox::reason;
use crate::contract::termination;
use crate::contract::time::parse_rfc3339;
use crate::contract::{Phase, SandboxPhase};
use crate::shim::backend::{Intent, IntentRecord, Report, Workload, WorkloadState};
use crate::shim::phase::{describe_exit, Derived};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The intent recorded on the StatefulSet, and the generation it was recorded at.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIntent {
    pub record: IntentRecord,
    pub generation: Option<i64>,
}

/// Reads the intent annotations. A StatefulSet without them (made by an older tool, or
/// edited by hand) has no readable intent: that is an error naming the annotation.
pub fn intent_of(sts: &StatefulSet) -> Result<StoredIntent, String> {
    let ann = sts.metadata.annotations.as_ref();
    let get = |k: &str| ann.and_then(|a| a.get(k)).map(String::as_str);
    let intent = match get(ANNOTATION_INTENT) {
        Some("running") => Intent::Running,
        Some("stopped") => Intent::Stopped,
        Some(other) => {
            return Err(format!(
                "annotation {ANNOTATION_INTENT}={other:?} is neither \"running\" nor \"stopped\"; `sandboxctl start` or `stop` records it anew"
            ))
        }
        None => {
            return Err(format!(
                "annotation {ANNOTATION_INTENT} is missing; `sandboxctl start` or `stop` records it"
            ))
        }
    };
    Ok(StoredIntent {
        record: IntentRecord {
            intent,
            at: get(ANNOTATION_INTENT_AT).unwrap_or("").to_owned(),
            by: get(ANNOTATION_INTENT_BY).unwrap_or("").to_owned(),
        },
        generation: get(ANNOTATION_INTENT_GENERATION).and_then(|g| g.parse().ok()),
    })
}

/// The last run `stop` saw end, if it recorded one (unreadable is the same as none: it is
/// only ever a report, never a decision).
pub fn last_run_of(sts: &StatefulSet) -> Option<LastRun> {
    let a = sts
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LAST_RUN)?;
    serde_json::from_str(a).ok()
}

/// Everything derived from one sandbox's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeDerived {
    pub derived: Derived,
    pub report: Option<Report>,
}

fn derived(phase: SandboxPhase, reason: Option<&str>, message: Option<String>) -> Derived {
    Derived {
        phase,
        reason: reason.map(str::to_owned),
        message,
        exit_code: None,
        status_current: false,
    }
}

fn plain(d: Derived) -> KubeDerived {
    KubeDerived {
        derived: d,
        report: None,
    }
}

/// `CrashLoopBackOff` → `crash_loop_backoff`, `ErrImagePull` → `err_image_pull`.
pub fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    // The kubelet's "BackOff" is one word.
    out.replace("back_off", "backoff")
}

fn report(f: &termination::Final, source: &'static str) -> Report {
    Report {
        phase: f.phase,
        reason: f.reason,
        message: f.message.clone(),
        source,
    }
}

pub fn derive(
    sts: &StatefulSet,
    intent: &StoredIntent,
    pod: Option<&Pod>,
    last_run: Option<&LastRun>,
) -> KubeDerived {
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = sts.metadata.generation;
    let stopped = intent.record.intent == Intent::Stopped;
    // The intent was recorded and nothing has changed the spec since: not acted on yet.
    let not_acted = intent.generation.is_some() && intent.generation == generation;
    let Some(pod) = pod else {
        return no_pod(sts, intent, replicas, not_acted, last_run);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return plain(if stopped {
            derived(
                SandboxPhase::Stopping,
                None,
                Some("the pod is terminating; the supervisor is stopping the agent".into()),
            )
        } else {
            derived(
                SandboxPhase::Pending,
                None,
                Some("the previous pod is terminating; the StatefulSet makes it again".into()),
            )
        });
    }
    let status = pod.status.as_ref();
    let pod_phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let pod_reason = status.and_then(|s| s.reason.as_deref());
    let pod_message = status.and_then(|s| s.message.clone());
    match pod_phase {
        "Unknown" => {
            return plain(derived(
                SandboxPhase::Error,
                Some(reason::NODE_LOST),
                Some(format!(
                    "the pod's node stopped reporting{}",
                    pod_message.map(|m| format!(": {m}")).unwrap_or_default()
                )),
            ))
        }
        "Failed" | "Succeeded" => {
            let reason = pod_reason.map_or(reason::POD_FAILED.to_owned(), snake_case);
            let mut d = derived(SandboxPhase::Error, Some(&reason), pod_message);
            let t = container(pod).and_then(terminated);
            d.exit_code = t.map(|t| t.exit_code);
            return KubeDerived {
                derived: d,
                report: t
                    .and_then(|t| t.message.as_deref())
                    .and_then(termination::parse)
                    .map(|f| report(&f, "termination message")),
            };
        }
        _ => {}
    }
    let Some(c) = container(pod) else {
        // Not scheduled yet, or scheduled and not started: no container status.
        if let Some(cond) = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .filter(|c| c.status == "False")
        {
            return plain(derived(
                SandboxPhase::Pending,
                Some(reason::UNSCHEDULABLE),
                Some(format!(
                    "the pod cannot be scheduled: {}",
                    cond.message.as_deref().unwrap_or("no node fits")
                )),
            ));
        }
        return plain(derived(
            SandboxPhase::Pending,
            None,
            Some("the pod is being scheduled".into()),
        ));
    };
    let state = c.state.as_ref();
    if state.and_then(|s| s.running.as_ref()).is_some() {
        return running(c, stopped);
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("");
        match reason {
            "" | "ContainerCreating" | "PodInitializing" => {
                return plain(derived(
                    SandboxPhase::Pending,
                    None,
                    Some(format!(
                        "the container is being created{}",
                        w.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )),
                ));
            }
            "CrashLoopBackOff" => {}
            other => {
                return plain(derived(
                    SandboxPhase::Error,
                    Some(&snake_case(other)),
                    Some(
                        w.message
                            .clone()
                            .unwrap_or_else(|| format!("the kubelet reports {other}")),
                    ),
                ));
            }
        }
    }
    // Terminated now, or waiting to be restarted after terminating (CrashLoopBackOff).
    let crash_loop = state
        .and_then(|s| s.waiting.as_ref())
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    match terminated(c) {
        Some(t) => {
            let mut k = ended(t, stopped);
            if crash_loop {
                let d = &mut k.derived;
                d.message = Some(format!(
                    "{}; the kubelet restarts it after a back-off (CrashLoopBackOff, {} restart(s))",
                    d.message.clone().unwrap_or_default(),
                    c.restart_count
                ));
            }
            k
        }
        None => plain(derived(
            SandboxPhase::Error,
            Some(&snake_case(if crash_loop {
                "CrashLoopBackOff"
            } else {
                "Unknown"
            })),
            Some("the container is not running and the kubelet reports no exit".into()),
        )),
    }
}

/// A running container: Ready is the supervisor's own report (the readiness probe runs
/// `supervisor status --ready`). Not Ready after the kubelet restarted it following a failed
/// or unexpected end, it reads as that end until it is Ready again: the kubelet retries a
/// failing sandbox forever, and "Starting" between two failures would hide it.
fn running(c: &ContainerStatus, stopped: bool) -> KubeDerived {
    if c.ready {
        let mut d = derived(SandboxPhase::Ready, None, None);
        d.status_current = true;
        if c.restart_count > 0 {
            d.message = Some(format!(
                "restarted {} time(s) by the kubelet",
                c.restart_count
            ));
        }
        return KubeDerived {
            derived: d,
            report: Some(Report {
                phase: Phase::Ready,
                reason: None,
                message: None,
                source: "readiness probe",
            }),
        };
    }
    let previous = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .filter(|_| c.restart_count > 0 && !stopped);
    if let Some(t) = previous {
        let k = ended(t, stopped);
        let failure = k.derived.phase == SandboxPhase::Failed
            || (k.derived.phase == SandboxPhase::Error
                && k.derived.reason.as_deref() != Some(reason::STOPPED_EXTERNALLY));
        if failure {
            let mut k = k;
            let d = &mut k.derived;
            d.message = Some(format!(
                "{}; the kubelet restarted it ({} restart(s)) and it is not Ready yet",
                d.message.clone().unwrap_or_default(),
                c.restart_count
            ));
            return k;
        }
    }
    let mut d = derived(
        SandboxPhase::Starting,
        None,
        Some(
            "the supervisor runs; not Ready yet (boot hook, agent start or restart back-off)"
                .into(),
        ),
    );
    if c.restart_count > 0 {
        d.message = Some(format!(
            "{}; restarted {} time(s) by the kubelet",
            d.message.unwrap_or_default(),
            c.restart_count
        ));
    }
    plain(d)
}

fn no_pod(
    sts: &StatefulSet,
    intent: &StoredIntent,
    replicas: i32,
    not_acted: bool,
    last_run: Option<&LastRun>,
) -> KubeDerived {
    let stopped = intent.record.intent == Intent::Stopped;
    let observed = sts.status.as_ref().and_then(|s| s.observed_generation);
    let caught_up = observed.is_some() && observed == sts.metadata.generation;
    // The controller counts the pods it made: one it still counts but that is gone was just
    // deleted (by `start`, say), and the controller has not replaced it yet.
    let counted = sts.status.as_ref().map_or(0, |s| s.replicas);
    // Generation 1 with no replicas: made with 0 and never scaled, i.e. never started.
    let never_started = replicas == 0 && sts.metadata.generation == Some(1);
    let d = match (stopped, replicas) {
        _ if never_started => derived(
            SandboxPhase::Created,
            None,
            Some("created with --no-start; `sandboxctl start` scales it to 1".into()),
        ),
        (true, 0) => {
            // What the stop saw of the run it ended.
            let mut d = derived(SandboxPhase::Stopped, None, None);
            let mut report = None;
            if let Some(r) = last_run {
                d.exit_code = r.exit_code;
                d.status_current = true;
                if let Some(code) = r.exit_code.filter(|&c| c != 0) {
                    d.message = Some(format!("stopped on request; {}", describe_exit(code)));
                }
                report = r
                    .message
                    .as_deref()
                    .and_then(termination::parse)
                    .map(|f| self::report(&f, "termination message (recorded at stop)"));
            }
            return KubeDerived { derived: d, report };
        }
        (false, 0) if not_acted => derived(
            SandboxPhase::Pending,
            None,
            Some("start recorded; the StatefulSet is not scaled up yet".into()),
        ),
        (false, 0) => derived(
            SandboxPhase::Error,
            Some(reason::STOPPED_EXTERNALLY),
            Some("the StatefulSet was scaled to 0 outside sandboxctl while the recorded intent is running (its pod, and the supervisor's termination message with it, are gone); `sandboxctl start` or `resume --all` scales it back, `sandboxctl stop` makes it intentional".into()),
        ),
        (_, _) if !caught_up => derived(
            SandboxPhase::Pending,
            None,
            Some("waiting for the StatefulSet controller to make the pod".into()),
        ),
        (true, _) => derived(
            SandboxPhase::Stopping,
            None,
            Some("stop recorded; the StatefulSet is not scaled down yet".into()),
        ),
        (false, _) if counted > 0 => derived(
            SandboxPhase::Pending,
            None,
            Some("the StatefulSet controller is replacing the pod".into()),
        ),
        (false, _) => derived(
            SandboxPhase::Error,
            Some(reason::POD_MISSING),
            Some("the StatefulSet wants its pod but there is none (quota, admission, or a lost node); see `kubectl describe statefulset`".into()),
        ),
    };
    plain(d)
}

fn container(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// The current termination, else the last one (a container waiting in CrashLoopBackOff).
fn terminated(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    c.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
}

fn ended(t: &ContainerStateTerminated, stopped: bool) -> KubeDerived {
    let last = t.message.as_deref().and_then(termination::parse);
    let mut d = match &last {
        Some(f) if f.phase == Phase::Failed => {
            let reason = f.reason.map_or(reason::UNEXPECTED_EXIT, |r| r.as_str());
            derived(SandboxPhase::Failed, Some(reason), f.message.clone())
        }
        Some(f) if f.phase == Phase::Completed => {
            derived(SandboxPhase::Completed, None, f.message.clone())
        }
        _ if stopped => derived(
            SandboxPhase::Stopping,
            None,
            Some("the supervisor has exited; the pod is on its way out".into()),
        ),
        Some(f) if f.phase == Phase::Stopped => derived(
            SandboxPhase::Error,
            Some(reason::STOPPED_EXTERNALLY),
            "stopped by something other than sandboxctl (a signal to the supervisor, a node shutdown) while the intent is running: the supervisor got SIGTERM and stopped cleanly; `sandboxctl start` or `resume --all` brings it back, `sandboxctl stop` makes it intentional".to_owned().into(),
        ),
        last => {
            let reason = if t.reason.as_deref() == Some("OOMKilled") {
                reason::OOM_KILLED
            } else {
                reason::UNEXPECTED_EXIT
            };
            let said = match last {
                Some(f) => format!("the supervisor's last word: {}", f.phase),
                None => "no termination message from the supervisor".to_owned(),
            };
            derived(
                SandboxPhase::Error,
                Some(reason),
                Some(format!(
                    "the container ended without a stop request: {}{}; {said}",
                    describe_exit(t.exit_code),
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )),
            )
        }
    };
    d.exit_code = Some(t.exit_code);
    d.status_current = last.is_some();
    KubeDerived {
        report: last.map(|f| report(&f, "termination message")),
        derived: d,
    }
}

fn time(t: Option<&Time>) -> (Option<std::time::SystemTime>, String) {
    match t {
        Some(t) => {
            let raw = t.0.to_string();
            (parse_rfc3339(&raw), raw)
        }
        None => (None, String::new()),
    }
}

/// The pod as a [`Workload`] for the shared verbs (`resume` starts what is not running,
/// `start --wait` gives up on a settled phase once nothing runs).
pub fn workload_of(object: &str, sts: &StatefulSet, pod: Option<&Pod>) -> Workload {
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let never_started = replicas == 0 && sts.metadata.generation == Some(1);
    let mut w = Workload {
        name: super::pod_name(object),
        state: if never_started {
            WorkloadState::Created
        } else {
            WorkloadState::Exited
        },
        raw_state: format!("no pod (replicas {replicas})"),
        exit_code: None,
        oom_killed: false,
        error: String::new(),
        started_at: None,
        finished_at: None,
        started_at_raw: String::new(),
        finished_at_raw: String::new(),
    };
    let Some(pod) = pod else { return w };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if pod.metadata.deletion_timestamp.is_some() {
        // Being stopped: it still runs until the kubelet is done with it.
        w.state = WorkloadState::Running;
        w.raw_state = format!("{phase}, terminating");
        return w;
    }
    w.raw_state = phase.clone();
    w.state = match phase.as_str() {
        "Failed" | "Succeeded" => WorkloadState::Exited,
        "Unknown" => WorkloadState::Other("Unknown".into()),
        // Pending or Running: being made, or up.
        _ => WorkloadState::Running,
    };
    let Some(c) = container(pod) else {
        return w;
    };
    let st = c.state.as_ref();
    if let Some(r) = st.and_then(|s| s.running.as_ref()) {
        w.raw_state = if c.ready { "running, ready" } else { "running" }.into();
        (w.started_at, w.started_at_raw) = time(r.started_at.as_ref());
        return w;
    }
    if let Some(wt) = st.and_then(|s| s.waiting.as_ref()) {
        let reason = wt.reason.clone().unwrap_or_default();
        w.raw_state = format!("waiting ({reason})");
        w.error = wt.message.clone().unwrap_or_default();
        w.state = match reason.as_str() {
            "" | "ContainerCreating" | "PodInitializing" => WorkloadState::Running,
            "CrashLoopBackOff" => WorkloadState::Exited,
            other => WorkloadState::Other(other.to_owned()),
        };
    }
    if st.and_then(|s| s.terminated.as_ref()).is_some() {
        w.state = WorkloadState::Exited;
        w.raw_state = "terminated".into();
    }
    if let Some(t) = terminated(c) {
        w.exit_code = Some(t.exit_code);
        w.oom_killed = t.reason.as_deref() == Some("OOMKilled");
        (w.started_at, w.started_at_raw) = time(t.started_at.as_ref());
        (w.finished_at, w.finished_at_raw) = time(t.finished_at.as_ref());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    const REASON_STOPPED_EXTERNALLY: &str = reason::STOPPED_EXTERNALLY;
    const REASON_POD_MISSING: &str = reason::POD_MISSING;
    const REASON_OOM_KILLED: &str = reason::OOM_KILLED;
    const REASON_UNEXPECTED_EXIT: &str = reason::UNEXPECTED_EXIT;
    const REASON_NODE_LOST: &str = reason::NODE_LOST;
    const REASON_POD_FAILED: &str = reason::POD_FAILED;
    const REASON_UNSCHEDULABLE: &str = reason::UNSCHEDULABLE;

    fn sts(replicas: i32, generation: i64, observed: i64) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ..StatefulSetSpec::default()
            }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                ..StatefulSetStatus::default()
            }),
        }
    }

    fn intent(i: Intent, by: &str, generation: i64) -> StoredIntent {
        StoredIntent {
            record: IntentRecord {
                intent: i,
                at: "2026-11-22T14:18:17.123Z".into(),
                by: by.into(),
            },
            generation: Some(generation),
        }
    }

    fn pod(
        phase: &str,
        state: Option<ContainerState>,
        last: Option<ContainerState>,
        ready: bool,
    ) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: state.map(|s| {
                    vec![ContainerStatus {
                        name: CONTAINER.into(),
                        state: Some(s),
                        last_state: last,
                        ready,
                        restart_count: 0,
                        ..ContainerStatus::default()
                    }]
                }),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn running() -> Option<ContainerState> {
        Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        })
    }

    fn waiting(reason: &str) -> Option<ContainerState> {
        Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some(format!("{reason} message")),
            }),
            ..ContainerState::default()
        })
    }

    fn terminated_with(
        code: i32,
        message: Option<&str>,
        reason: Option<&str>,
    ) -> Option<ContainerState> {
        Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                message: message.map(str::to_owned),
                reason: reason.map(str::to_owned),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        })
    }

    fn phase(d: &Derived) -> (SandboxPhase, Option<&str>) {
        (d.phase, d.reason.as_deref())
    }

    #[test]
    fn without_a_pod() {
        use SandboxPhase::*;
        let run = Intent::Running;
        let stop = Intent::Stopped;
        let cases = [
            (sts(0, 1, 1), intent(stop, "create", 1), (Created, None)),
            // `start` recorded its intent on a never-started sandbox, not scaled yet.
            (sts(0, 1, 1), intent(run, "start", 1), (Created, None)),
            (sts(0, 3, 3), intent(stop, "stop", 2), (Stopped, None)),
            (sts(0, 2, 2), intent(run, "start", 2), (Pending, None)),
            (
                sts(0, 4, 4),
                intent(run, "start", 2),
                (Error, Some(REASON_STOPPED_EXTERNALLY)),
            ),
            (sts(1, 3, 2), intent(run, "start", 2), (Pending, None)),
            (
                sts(1, 3, 3),
                intent(run, "start", 2),
                (Error, Some(REASON_POD_MISSING)),
            ),
            (sts(1, 2, 2), intent(stop, "stop", 2), (Stopping, None)),
            // The pod was just deleted (by `start`): the controller still counts it.
            (
                {
                    let mut s = sts(1, 3, 3);
                    s.status.as_mut().unwrap().replicas = 1;
                    s
                },
                intent(run, "start", 2),
                (Pending, None),
            ),
        ];
        for (s, i, want) in cases {
            let d = derive(&s, &i, None, None).derived;
            assert_eq!(phase(&d), want, "{s:?} {i:?}: {d:?}");
        }
    }

    #[test]
    fn from_the_pod() {
        use SandboxPhase::*;
        let s = sts(1, 3, 3);
        let run = intent(Intent::Running, "start", 2);
        let stop = intent(Intent::Stopped, "stop", 3);
        let hook = "Failed/hook_failed: boot hook exited with code 3";
        type Case<'a> = (
            Pod,
            &'a StoredIntent,
            (SandboxPhase, Option<&'a str>),
            Option<i32>,
        );
        let cases: Vec<Case> = vec![
            (
                pod("Running", running(), None, true),
                &run,
                (Ready, None),
                None,
            ),
            (
                pod("Running", running(), None, false),
                &run,
                (Starting, None),
                None,
            ),
            (
                pod("Pending", None, None, false),
                &run,
                (Pending, None),
                None,
            ),
            (
                pod("Pending", waiting("ContainerCreating"), None, false),
                &run,
                (Pending, None),
                None,
            ),
            (
                pod("Pending", waiting("ImagePullBackOff"), None, false),
                &run,
                (Error, Some("image_pull_backoff")),
                None,
            ),
            (
                pod("Pending", waiting("ErrImagePull"), None, false),
                &run,
                (Error, Some("err_image_pull")),
                None,
            ),
            (
                pod(
                    "Pending",
                    waiting("CreateContainerConfigError"),
                    None,
                    false,
                ),
                &run,
                (Error, Some("create_container_config_error")),
                None,
            ),
            // The supervisor's last word decides, whether the container is still terminated
            // or already waiting to be restarted.
            (
                pod(
                    "Running",
                    terminated_with(80, Some(hook), None),
                    None,
                    false,
                ),
                &run,
                (Failed, Some("hook_failed")),
                Some(80),
            ),
            (
                pod(
                    "Running",
                    waiting("CrashLoopBackOff"),
                    terminated_with(80, Some(hook), None),
                    false,
                ),
                &run,
                (Failed, Some("hook_failed")),
                Some(80),
            ),
            (
                pod(
                    "Running",
                    waiting("CrashLoopBackOff"),
                    terminated_with(0, Some("Completed"), None),
                    false,
                ),
                &run,
                (Completed, None),
                Some(0),
            ),
            (
                pod(
                    "Running",
                    waiting("CrashLoopBackOff"),
                    terminated_with(137, None, Some("Error")),
                    false,
                ),
                &run,
                (Error, Some(REASON_UNEXPECTED_EXIT)),
                Some(137),
            ),
            (
                pod(
                    "Running",
                    terminated_with(137, None, Some("OOMKilled")),
                    None,
                    false,
                ),
                &run,
                (Error, Some(REASON_OOM_KILLED)),
                Some(137),
            ),
            (
                pod("Running", terminated_with(137, None, None), None, false),
                &run,
                (Error, Some(REASON_UNEXPECTED_EXIT)),
                Some(137),
            ),
            // A supervisor that stopped without anyone asking (the node shut down) is Error…
            (
                pod(
                    "Running",
                    terminated_with(0, Some("Stopped"), None),
                    None,
                    false,
                ),
                &run,
                (Error, Some(REASON_STOPPED_EXTERNALLY)),
                Some(0),
            ),
            // Restarted by the kubelet after a failed run and not Ready since: still that
            // failure, not a fresh Starting (the kubelet retries a failing sandbox forever).
            (
                {
                    let mut p = pod(
                        "Running",
                        running(),
                        terminated_with(127, Some("Failed/spawn_failed: no agent"), None),
                        false,
                    );
                    p.status
                        .as_mut()
                        .unwrap()
                        .container_statuses
                        .as_mut()
                        .unwrap()[0]
                        .restart_count = 1;
                    p
                },
                &run,
                (Failed, Some("spawn_failed")),
                Some(127),
            ),
            // …but a restart after a clean Stopped is just a new boot.
            (
                {
                    let mut p = pod(
                        "Running",
                        running(),
                        terminated_with(0, Some("Stopped"), None),
                        false,
                    );
                    p.status
                        .as_mut()
                        .unwrap()
                        .container_statuses
                        .as_mut()
                        .unwrap()[0]
                        .restart_count = 1;
                    p
                },
                &run,
                (Starting, None),
                None,
            ),
            // …and with the stop intent it is the stop underway.
            (
                pod(
                    "Running",
                    terminated_with(0, Some("Stopped"), None),
                    None,
                    false,
                ),
                &stop,
                (Stopping, None),
                Some(0),
            ),
            (
                pod("Running", terminated_with(137, None, None), None, false),
                &stop,
                (Stopping, None),
                Some(137),
            ),
            (
                pod("Unknown", running(), None, true),
                &run,
                (Error, Some(REASON_NODE_LOST)),
                None,
            ),
            (
                pod("Failed", terminated_with(137, None, None), None, false),
                &run,
                (Error, Some(REASON_POD_FAILED)),
                Some(137),
            ),
        ];
        for (p, i, want, code) in cases {
            let d = derive(&s, i, Some(&p), None).derived;
            assert_eq!(phase(&d), want, "{p:?}: {d:?}");
            assert_eq!(d.exit_code, code, "{p:?}: {d:?}");
        }
    }

    #[test]
    fn terminating_unschedulable_and_evicted() {
        let s = sts(1, 3, 3);
        let mut p = pod("Running", running(), None, true);
        p.metadata.deletion_timestamp = Some(Time(Default::default()));
        let d = derive(&s, &intent(Intent::Stopped, "stop", 3), Some(&p), None).derived;
        assert_eq!(d.phase, SandboxPhase::Stopping);
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p), None).derived;
        assert_eq!(d.phase, SandboxPhase::Pending);

        let mut p = pod("Pending", None, None, false);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            message: Some("0/3 nodes are available: 3 Insufficient memory.".into()),
            ..PodCondition::default()
        }]);
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p), None).derived;
        assert_eq!(
            phase(&d),
            (SandboxPhase::Pending, Some(REASON_UNSCHEDULABLE))
        );
        assert!(d.message.unwrap().contains("Insufficient memory"));

        let mut p = pod("Failed", None, None, false);
        p.status.as_mut().unwrap().reason = Some("Evicted".into());
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p), None).derived;
        assert_eq!(phase(&d), (SandboxPhase::Error, Some("evicted")));
    }

    #[test]
    fn intent_annotations() {
        let mut s = sts(1, 1, 1);
        assert!(intent_of(&s).unwrap_err().contains("missing"));
        s.metadata.annotations = Some(BTreeMap::from([
            (ANNOTATION_INTENT.to_owned(), "running".to_owned()),
            (
                ANNOTATION_INTENT_AT.to_owned(),
                "2026-11-22T14:18:17.123Z".to_owned(),
            ),
            (ANNOTATION_INTENT_BY.to_owned(), "start".to_owned()),
            (ANNOTATION_INTENT_GENERATION.to_owned(), "7".to_owned()),
        ]));
        let i = intent_of(&s).unwrap();
        assert_eq!(
            (i.record.intent, i.record.by.as_str(), i.generation),
            (Intent::Running, "start", Some(7))
        );
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION_INTENT.into(), "paused".into());
        assert!(intent_of(&s).unwrap_err().contains("neither"));
    }

    #[test]
    fn a_stop_keeps_what_the_kubelet_said_of_the_run() {
        let s = sts(0, 3, 3);
        let stop = intent(Intent::Stopped, "stop", 2);
        let run = LastRun {
            pod_uid: "u".into(),
            exit_code: Some(0),
            reason: Some("Completed".into()),
            message: Some("Stopped".into()),
            finished_at: None,
        };
        let k = derive(&s, &stop, None, Some(&run));
        assert_eq!(phase(&k.derived), (SandboxPhase::Stopped, None));
        assert_eq!(k.derived.exit_code, Some(0));
        let r = k.report.unwrap();
        assert_eq!(
            (r.phase, r.source),
            (Phase::Stopped, "termination message (recorded at stop)")
        );
        // Killed after overrunning its grace: still an intentional stop, and it says how.
        let killed = LastRun {
            exit_code: Some(137),
            message: None,
            ..run
        };
        let k = derive(&s, &stop, None, Some(&killed));
        assert_eq!(phase(&k.derived), (SandboxPhase::Stopped, None));
        assert!(k.derived.message.unwrap().contains("SIGKILL"));
        assert_eq!(k.report, None);
        // Without a record (a stop by an older sandboxctl): Stopped, no exit code.
        let k = derive(&s, &stop, None, None);
        assert_eq!(
            (k.derived.phase, k.derived.exit_code),
            (SandboxPhase::Stopped, None)
        );
    }

    #[test]
    fn reports_come_from_readiness_and_the_termination_message() {
        let s = sts(1, 3, 3);
        let run = intent(Intent::Running, "start", 2);
        let k = derive(&s, &run, Some(&pod("Running", running(), None, true)), None);
        assert!(k.derived.status_current);
        assert_eq!(k.report.unwrap().source, "readiness probe");
        let p = pod(
            "Running",
            terminated_with(
                80,
                Some("Failed/hook_failed: boot hook exited with code 3"),
                None,
            ),
            None,
            false,
        );
        let k = derive(&s, &run, Some(&p), None);
        let r = k.report.unwrap();
        assert_eq!(
            (r.phase, r.reason),
            (Phase::Failed, Some(crate::contract::Reason::HookFailed))
        );
        // Another program's words are not the supervisor's report.
        let p = pod(
            "Running",
            terminated_with(1, Some("panic: x"), None),
            None,
            false,
        );
        let k = derive(&s, &run, Some(&p), None);
        assert_eq!((k.report, k.derived.status_current), (None, false));
    }

    #[test]
    fn the_pod_as_a_workload() {
        let w = |s: &StatefulSet, p: Option<&Pod>| workload_of("openshell-a", s, p).state;
        assert_eq!(w(&sts(0, 1, 1), None), WorkloadState::Created);
        assert_eq!(w(&sts(0, 2, 2), None), WorkloadState::Exited);
        let s = sts(1, 2, 2);
        assert_eq!(
            w(&s, Some(&pod("Running", running(), None, true))),
            WorkloadState::Running
        );
        assert_eq!(
            w(
                &s,
                Some(&pod("Pending", waiting("ContainerCreating"), None, false))
            ),
            WorkloadState::Running
        );
        assert_eq!(
            w(
                &s,
                Some(&pod("Pending", waiting("ImagePullBackOff"), None, false))
            ),
            WorkloadState::Other("ImagePullBackOff".into())
        );
        let dead = pod("Running", terminated_with(137, None, None), None, false);
        let wl = workload_of("openshell-a", &s, Some(&dead));
        assert_eq!((wl.state, wl.exit_code), (WorkloadState::Exited, Some(137)));
        assert_eq!(
            w(
                &s,
                Some(&pod("Running", waiting("CrashLoopBackOff"), None, false))
            ),
            WorkloadState::Exited
        );
        let mut going = pod("Running", running(), None, true);
        going.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(w(&s, Some(&going)), WorkloadState::Running);
    }

    #[test]
    fn snake_cases_kubelet_reasons() {
        for (k, s) in [
            ("CrashLoopBackOff", "crash_loop_backoff"),
            ("ImagePullBackOff", "image_pull_backoff"),
            ("ErrImagePull", "err_image_pull"),
            ("OOMKilled", "oom_killed"),
            ("Evicted", "evicted"),
            ("InvalidImageName", "invalid_image_name"),
        ] {
            assert_eq!(snake_case(k), s);
        }
    }
}
