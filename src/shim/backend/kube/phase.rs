//! A kube sandbox's phase, derived from what the API says: the StatefulSet (replicas,
//! generation, the intent annotations, the controller's observedGeneration) and its pod
//! (deletion, phase, PodScheduled, the container's state, readiness, exit code and the
//! supervisor's termination message). Pure functions over the API objects, so every row is
//! unit-tested; README "## Kubernetes" has the same table.
//!
//! | pod                                          | intent   | phase                              |
//! |----------------------------------------------|----------|------------------------------------|
//! | none, replicas 0                             | stopped  | Stopped (Created if `create --no-start` recorded it) |
//! | none, replicas 0, intent not yet acted on    | running  | Pending (start recorded, scale pending) |
//! | none, replicas 0, scaled after the intent    | running  | Error `scaled_down`                |
//! | none, replicas 1, controller not caught up   | any      | Pending                            |
//! | none, replicas 1, controller caught up       | running  | Error `pod_missing`                |
//! | terminating                                  | stopped  | Stopping                           |
//! | terminating                                  | running  | Pending (the StatefulSet makes it again) |
//! | phase Unknown                                | any      | Error `node_lost`                  |
//! | phase Failed/Succeeded (evicted…)            | any      | Error, the pod's reason            |
//! | not scheduled                                | any      | Pending, reason `unschedulable`    |
//! | waiting ContainerCreating/PodInitializing    | any      | Pending                            |
//! | waiting ErrImagePull/ImagePullBackOff/…      | any      | Error, the reason in snake_case    |
//! | running, Ready                               | any      | Ready                              |
//! | running, not Ready                           | any      | Starting                           |
//! | terminated or CrashLoopBackOff, message `Failed/R` | any | Failed, reason R                  |
//! | … message `Completed`                        | any      | Completed                          |
//! | … message `Stopped` or none                  | stopped  | Stopping (the pod is on its way out) |
//! | … message `Stopped` or none                  | running  | Error `unexpected_exit` / `oom_killed` / `crash_loop_backoff` |
//!
//! The supervisor's status.json is on an emptyDir inside the pod, out of reach: while the
//! container runs, readiness (`supervisor status --ready`) is its report; once it has
//! exited, the termination message is.

use super::{
    ANNOTATION_INTENT, ANNOTATION_INTENT_AT, ANNOTATION_INTENT_BY, ANNOTATION_INTENT_GENERATION,
    CONTAINER,
};
use crate::contract::termination;
use crate::contract::{Phase, SandboxPhase};
use crate::shim::phase::{Derived, REASON_OOM_KILLED, REASON_UNEXPECTED_EXIT};
use crate::shim::state::{Intent, IntentRecord};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

pub const REASON_SCALED_DOWN: &str = "scaled_down";
pub const REASON_POD_MISSING: &str = "pod_missing";
pub const REASON_NODE_LOST: &str = "node_lost";
pub const REASON_UNSCHEDULABLE: &str = "unschedulable";
pub const REASON_POD_FAILED: &str = "pod_failed";

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

fn derived(phase: SandboxPhase, reason: Option<&str>, message: Option<String>) -> Derived {
    Derived {
        phase,
        reason: reason.map(str::to_owned),
        message,
        exit_code: None,
        status_current: false,
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

pub fn derive(sts: &StatefulSet, intent: &StoredIntent, pod: Option<&Pod>) -> Derived {
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = sts.metadata.generation;
    let stopped = intent.record.intent == Intent::Stopped;
    // The intent was recorded and nothing has changed the spec since: not acted on yet.
    let not_acted = intent.generation.is_some() && intent.generation == generation;
    let Some(pod) = pod else {
        return no_pod(sts, intent, replicas, not_acted);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return if stopped {
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
        };
    }
    let status = pod.status.as_ref();
    let pod_phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let pod_reason = status.and_then(|s| s.reason.as_deref());
    let pod_message = status.and_then(|s| s.message.clone());
    match pod_phase {
        "Unknown" => {
            return derived(
                SandboxPhase::Error,
                Some(REASON_NODE_LOST),
                Some(format!(
                    "the pod's node stopped reporting{}",
                    pod_message.map(|m| format!(": {m}")).unwrap_or_default()
                )),
            )
        }
        "Failed" | "Succeeded" => {
            let reason = pod_reason.map_or(REASON_POD_FAILED.to_owned(), snake_case);
            let mut d = derived(SandboxPhase::Error, Some(&reason), pod_message);
            if let Some(t) = container(pod).and_then(|c| terminated(c)) {
                d.exit_code = Some(t.exit_code);
            }
            return d;
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
            return derived(
                SandboxPhase::Pending,
                Some(REASON_UNSCHEDULABLE),
                Some(format!(
                    "the pod cannot be scheduled: {}",
                    cond.message.as_deref().unwrap_or("no node fits")
                )),
            );
        }
        return derived(
            SandboxPhase::Pending,
            None,
            Some("the pod is being scheduled".into()),
        );
    };
    let state = c.state.as_ref();
    if state.and_then(|s| s.running.as_ref()).is_some() {
        let mut d = if c.ready {
            derived(SandboxPhase::Ready, None, None)
        } else {
            derived(
                SandboxPhase::Starting,
                None,
                Some("the supervisor runs; not Ready yet (boot hook, agent start or restart back-off)".into()),
            )
        };
        if c.restart_count > 0 {
            d.message = Some(format!(
                "{}restarted {} time(s) by the kubelet",
                d.message.map(|m| format!("{m}; ")).unwrap_or_default(),
                c.restart_count
            ));
        }
        return d;
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("");
        match reason {
            "" | "ContainerCreating" | "PodInitializing" => {
                return derived(
                    SandboxPhase::Pending,
                    None,
                    Some(format!(
                        "the container is being created{}",
                        w.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )),
                );
            }
            "CrashLoopBackOff" => {}
            other => {
                return derived(
                    SandboxPhase::Error,
                    Some(&snake_case(other)),
                    Some(
                        w.message
                            .clone()
                            .unwrap_or_else(|| format!("the kubelet reports {other}")),
                    ),
                );
            }
        }
    }
    // Terminated now, or waiting to be restarted after terminating (CrashLoopBackOff).
    let crash_loop = state
        .and_then(|s| s.waiting.as_ref())
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    match terminated(c) {
        Some(t) => ended(t, stopped, crash_loop),
        None => derived(
            SandboxPhase::Error,
            Some(&snake_case(if crash_loop {
                "CrashLoopBackOff"
            } else {
                "Unknown"
            })),
            Some("the container is not running and the kubelet reports no exit".into()),
        ),
    }
}

fn no_pod(sts: &StatefulSet, intent: &StoredIntent, replicas: i32, not_acted: bool) -> Derived {
    let stopped = intent.record.intent == Intent::Stopped;
    let observed = sts.status.as_ref().and_then(|s| s.observed_generation);
    let caught_up = observed.is_some() && observed == sts.metadata.generation;
    match (stopped, replicas) {
        (true, 0) if intent.record.by == "create" => derived(
            SandboxPhase::Created,
            None,
            Some("created with --no-start; `sandboxctl start` scales it to 1".into()),
        ),
        (true, 0) => derived(SandboxPhase::Stopped, None, None),
        (false, 0) if not_acted => derived(
            SandboxPhase::Pending,
            None,
            Some("start recorded; the StatefulSet is not scaled up yet".into()),
        ),
        (false, 0) => derived(
            SandboxPhase::Error,
            Some(REASON_SCALED_DOWN),
            Some("the StatefulSet was scaled to 0 outside sandboxctl while the recorded intent is running; `sandboxctl start` or `resume --all` scales it back".into()),
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
        (false, _) => derived(
            SandboxPhase::Error,
            Some(REASON_POD_MISSING),
            Some("the StatefulSet wants its pod but there is none (quota, admission, or a lost node); see `kubectl describe statefulset`".into()),
        ),
    }
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

fn ended(t: &ContainerStateTerminated, stopped: bool, crash_loop: bool) -> Derived {
    let last = t.message.as_deref().and_then(termination::parse);
    let mut d = match last {
        Some(f) if f.phase == Phase::Failed => {
            let reason = f.reason.map_or(REASON_UNEXPECTED_EXIT, |r| r.as_str());
            derived(SandboxPhase::Failed, Some(reason), f.message)
        }
        Some(f) if f.phase == Phase::Completed => derived(SandboxPhase::Completed, None, f.message),
        _ if stopped => derived(
            SandboxPhase::Stopping,
            None,
            Some("the supervisor has exited; the pod is on its way out".into()),
        ),
        last => {
            let reason = if t.reason.as_deref() == Some("OOMKilled") {
                REASON_OOM_KILLED.to_owned()
            } else if crash_loop {
                snake_case("CrashLoopBackOff")
            } else {
                REASON_UNEXPECTED_EXIT.to_owned()
            };
            let said = match last {
                Some(f) => format!("the supervisor's last word: {}", f.phase),
                None => "no termination message from the supervisor".to_owned(),
            };
            derived(
                SandboxPhase::Error,
                Some(&reason),
                Some(format!(
                    "the container ended without a stop request: exit {}{}; {said}",
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )),
            )
        }
    };
    d.exit_code = Some(t.exit_code);
    d
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
            (sts(0, 3, 3), intent(stop, "stop", 2), (Stopped, None)),
            (sts(0, 2, 2), intent(run, "start", 2), (Pending, None)),
            (
                sts(0, 4, 4),
                intent(run, "start", 2),
                (Error, Some(REASON_SCALED_DOWN)),
            ),
            (sts(1, 3, 2), intent(run, "start", 2), (Pending, None)),
            (
                sts(1, 3, 3),
                intent(run, "start", 2),
                (Error, Some(REASON_POD_MISSING)),
            ),
            (sts(1, 2, 2), intent(stop, "stop", 2), (Stopping, None)),
        ];
        for (s, i, want) in cases {
            let d = derive(&s, &i, None);
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
                (Error, Some("crash_loop_backoff")),
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
                (Error, Some(REASON_UNEXPECTED_EXIT)),
                Some(0),
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
            let d = derive(&s, i, Some(&p));
            assert_eq!(phase(&d), want, "{p:?}: {d:?}");
            assert_eq!(d.exit_code, code, "{p:?}: {d:?}");
        }
    }

    #[test]
    fn terminating_unschedulable_and_evicted() {
        let s = sts(1, 3, 3);
        let mut p = pod("Running", running(), None, true);
        p.metadata.deletion_timestamp = Some(Time(Default::default()));
        let d = derive(&s, &intent(Intent::Stopped, "stop", 3), Some(&p));
        assert_eq!(d.phase, SandboxPhase::Stopping);
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p));
        assert_eq!(d.phase, SandboxPhase::Pending);

        let mut p = pod("Pending", None, None, false);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            message: Some("0/3 nodes are available: 3 Insufficient memory.".into()),
            ..PodCondition::default()
        }]);
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p));
        assert_eq!(
            phase(&d),
            (SandboxPhase::Pending, Some(REASON_UNSCHEDULABLE))
        );
        assert!(d.message.unwrap().contains("Insufficient memory"));

        let mut p = pod("Failed", None, None, false);
        p.status.as_mut().unwrap().reason = Some("Evicted".into());
        let d = derive(&s, &intent(Intent::Running, "start", 2), Some(&p));
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
