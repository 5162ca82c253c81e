//! Deriving a sandbox's phase from what a backend observed (`backend::Observation`): the
//! workload's state and exit code, the recorded intent, and the supervisor's status.json.
//! Shared by every backend; pure functions, so every row of the table is unit-tested.
//!
//! | workload                  | intent  | status.json of this run    | phase                 |
//! |---------------------------|---------|----------------------------|-----------------------|
//! | gone                      | any     | any                        | Missing (`name_taken` when another sandbox's object holds the name) |
//! | created, never started    | any     | any                        | Created               |
//! | paused                    | any     | any                        | Paused                |
//! | running                   | any     | phase P                    | P (passthrough)       |
//! | running                   | any     | none, or an older run's    | Pending               |
//! | exited                    | stopped | any                        | Stopped               |
//! | exited                    | running | Failed / Completed         | the same (Failed with its reason) |
//! | exited before the intent  | running | anything but Failed/Completed | Pending (a start is on its way) |
//! | exited after the intent   | running | Stopped                    | Error, `stopped_externally` |
//! | exited                    | running | none, stale, or non-terminal | Error (with exit code) |
//! | other engine state        | any     | any                        | Error (engine state)  |
//!
//! A supervisor writes `Stopped` whenever it gets SIGTERM, so that alone does not make a stop
//! intentional: `docker stop`, an engine restart or a host shutdown behind sandboxctl's back
//! also end in `Stopped`. Only a recorded `stopped` intent does. A run that ended *after*
//! `running` was recorded was stopped by someone else and reads Error, so `resume --all`
//! brings it back. A run that ended *before* `running` was recorded belongs to an earlier
//! wish: the `start` that recorded it has not started the workload yet, so the sandbox is
//! Pending, whatever the old run's last report (a reader whose observation straddles a stop
//! and the next start's intent sees exactly this: the old run's Ready, its exit, the new
//! intent).
//!
//! A status file on the host outlives its writer: after `kill` it still says `Ready`. It is
//! trusted only when it was written by the supervisor of the engine's current (or last) run:
//! the supervisor is PID 1 in its namespace, so pids cannot be compared; start times can.
//! The supervisor's `started_at` must not be older than the engine's `StartedAt` (less a small
//! tolerance: the engine stamps StartedAt a few ms after the process starts), and must be
//! newer than the end of the previous run (while running, the engine's `FinishedAt` is the
//! previous run's end) and, once exited, not newer than the end of the last run (with the same
//! tolerance: podman's FinishedAt comes from a coarse clock).

use super::backend::{Intent, IntentRecord, Observation, Workload, WorkloadState};
use crate::contract::sandbox::reason;
use crate::contract::time::parse_rfc3339;
use crate::contract::{Phase, SandboxPhase, Status};
use std::time::Duration;

/// How far the engine's timestamps may be off from the supervisor's own. The engine stamps
/// StartedAt a few ms after the process starts (1-3 ms measured on an idle machine; a loaded
/// one can be far slower), and podman takes FinishedAt from a file's mtime, i.e. the kernel's
/// coarse clock, which was measured up to 1 ms *before* StartedAt for a supervisor that
/// failed at once. A previous run's file can only pass the StartedAt bound if that run
/// lasted less than this; while running, the previous FinishedAt still tells them apart.
pub const CLOCK_SKEW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub phase: SandboxPhase,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The workload's exit code, once it has ended (when the backend knows it).
    pub exit_code: Option<i32>,
    /// Whether status.json was written by the current (or last) run.
    pub status_current: bool,
}

impl Derived {
    fn new(phase: SandboxPhase) -> Derived {
        Derived {
            phase,
            reason: None,
            message: None,
            exit_code: None,
            status_current: false,
        }
    }

    fn because(phase: SandboxPhase, reason: &str, message: String) -> Derived {
        let mut d = Derived::new(phase);
        d.reason = Some(reason.to_owned());
        d.message = Some(message);
        d
    }
}

/// True when `status` was written by the supervisor of `w`'s current (or last) run.
pub fn status_is_current(status: &Status, w: &Workload) -> bool {
    let (Some(sup), Some(started)) = (parse_rfc3339(&status.supervisor.started_at), w.started_at)
    else {
        return false;
    };
    if sup + CLOCK_SKEW < started {
        return false;
    }
    match (&w.state, w.finished_at) {
        // The run is over: its supervisor started before it ended.
        (WorkloadState::Exited, Some(fin)) => sup <= fin + CLOCK_SKEW,
        // Still running: FinishedAt, when older than StartedAt, ended the previous run,
        // and this supervisor started after it.
        (_, Some(fin)) if fin < started => sup > fin,
        _ => true,
    }
}

pub fn derive(obs: &Observation) -> Derived {
    let Some(w) = obs.workload.as_ref() else {
        return match &obs.workload_conflict {
            Some(why) => Derived::because(SandboxPhase::Missing, reason::NAME_TAKEN, why.clone()),
            None => {
                let mut d = Derived::new(SandboxPhase::Missing);
                d.message = Some(
                    "the backend has no workload for this sandbox (removed outside sandboxctl); \
                     `sandboxctl delete` cleans up the rest"
                        .to_owned(),
                );
                d
            }
        };
    };
    let current = obs.status.as_ref().filter(|_| obs.status_current);
    let mut d = match &w.state {
        WorkloadState::Created => Derived::new(SandboxPhase::Created),
        WorkloadState::Paused => Derived::new(SandboxPhase::Paused),
        WorkloadState::Running => match current {
            Some(s) => passthrough(s),
            None => {
                let mut d = Derived::new(SandboxPhase::Pending);
                d.message = Some("running; the supervisor has not reported yet".to_owned());
                d
            }
        },
        WorkloadState::Exited => exited(w, &obs.intent, current),
        WorkloadState::Other(state) => Derived::because(
            SandboxPhase::Error,
            reason::ENGINE_STATE,
            format!("the engine reports the workload as {state:?}"),
        ),
    };
    d.status_current = current.is_some();
    d
}

fn passthrough(s: &Status) -> Derived {
    let mut d = Derived::new(SandboxPhase::from_supervisor(s.phase));
    d.reason = s.reason.map(|r| r.as_str().to_owned());
    d.message = s.message.clone();
    d
}

/// The run ended before `intent` was recorded (both times known).
fn ended_before(w: &Workload, intent: &IntentRecord) -> bool {
    matches!((w.finished_at, intent.at_time()), (Some(fin), Some(at)) if fin < at)
}

fn exited(w: &Workload, intent: &IntentRecord, current: Option<&Status>) -> Derived {
    let mut d = if intent.intent == Intent::Stopped {
        // An intentional stop is Stopped whatever the exit looked like: the engine may have
        // had to SIGKILL a supervisor that overran its stop timeout.
        let mut d = Derived::new(SandboxPhase::Stopped);
        if let Some(code) = w.exit_code.filter(|&c| c != 0) {
            d.message = Some(format!("stopped on request; {}", describe_exit(code)));
        }
        d
    } else {
        match current {
            Some(s) if s.phase == Phase::Completed => passthrough(s),
            Some(s) if s.phase == Phase::Failed => {
                let mut d = passthrough(s);
                if d.reason.is_none() {
                    d.reason = Some(reason::UNEXPECTED_EXIT.to_owned());
                }
                d
            }
            // `running` was recorded after this run ended: a start (create, resume) is on
            // its way and has not started the workload yet, or it stopped short. Whatever
            // the run's last word, the exit predates the wish, so it is not an error of it.
            last if ended_before(w, intent) => {
                let mut d = Derived::new(SandboxPhase::Pending);
                d.message = Some(format!(
                    "`{}` recorded intent running at {}, after the last run ended ({}; its last report: {}); the workload has not started yet",
                    intent.by,
                    intent.at,
                    w.exit_code
                        .map_or("exit status unknown".to_owned(), describe_exit),
                    last.map_or("nothing".to_owned(), |s| s.phase.to_string()),
                ));
                d
            }
            Some(s) if s.phase == Phase::Stopped => Derived::because(
                SandboxPhase::Error,
                reason::STOPPED_EXTERNALLY,
                "stopped by something other than sandboxctl (a plain engine stop, an engine or host restart) while the intent is running: the supervisor got SIGTERM and stopped cleanly; `sandboxctl start` or `resume --all` brings it back, `sandboxctl stop` makes it intentional".to_owned(),
            ),
            last => {
                let r = if w.oom_killed {
                    reason::OOM_KILLED
                } else {
                    reason::UNEXPECTED_EXIT
                };
                let last = last.map_or("nothing".to_owned(), |s| s.phase.to_string());
                let how = w
                    .exit_code
                    .map_or("exit status unknown".to_owned(), describe_exit);
                let mut m = format!(
                    "the workload ended without a stop request: {how}; the supervisor's last report for this run: {last}"
                );
                if !w.error.is_empty() {
                    m.push_str(&format!("; engine: {}", w.error));
                }
                Derived::because(SandboxPhase::Error, r, m)
            }
        }
    };
    d.exit_code = w.exit_code;
    d
}

pub fn describe_exit(code: i32) -> String {
    match code {
        137 => {
            "exit 137 (SIGKILL: killed, e.g. by `kill`, the OOM killer or a power cut)".to_owned()
        }
        143 => "exit 143 (SIGTERM)".to_owned(),
        c if c > 128 && c < 160 => format!("exit {c} (signal {})", c - 128),
        c => format!("exit {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::status::{HookInfo, HookResult, SupervisorInfo, SCHEMA_VERSION};
    use crate::contract::time::rfc3339;
    use crate::contract::Reason;
    use std::time::{SystemTime, UNIX_EPOCH};

    const REASON_UNEXPECTED_EXIT: &str = reason::UNEXPECTED_EXIT;
    const REASON_OOM_KILLED: &str = reason::OOM_KILLED;
    const REASON_ENGINE_STATE: &str = reason::ENGINE_STATE;

    const T0: u64 = 1_795_357_000_000; // ms since the epoch

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(T0 + ms)
    }

    fn container(
        state: WorkloadState,
        started: Option<u64>,
        finished: Option<u64>,
        code: i32,
    ) -> Workload {
        Workload {
            name: "openshell-a".into(),
            raw_state: format!("{state:?}"),
            exit_code: (state == WorkloadState::Exited).then_some(code),
            state,
            oom_killed: false,
            error: String::new(),
            started_at: started.map(at),
            finished_at: finished.map(at),
            started_at_raw: String::new(),
            finished_at_raw: String::new(),
        }
    }

    fn status(phase: Phase, sup_started: u64) -> Status {
        Status {
            schema_version: SCHEMA_VERSION,
            phase,
            reason: (phase == Phase::Failed).then_some(Reason::HookFailed),
            message: (phase == Phase::Failed).then(|| "hook exited 3".to_owned()),
            since: rfc3339(at(sup_started + 5)),
            supervisor: SupervisorInfo {
                pid: 1,
                started_at: rfc3339(at(sup_started)),
                version: "0.1.0".into(),
                boot_id: None,
                start_ticks: None,
            },
            child: None,
            restarts: 0,
            last_exit: None,
            hook: HookInfo {
                path: None,
                result: HookResult::Pending,
                exit_code: None,
                signal: None,
                duration_ms: None,
            },
            egress: None,
        }
    }

    /// What a host-state backend observes: the intent recorded at `at(intent_at)`.
    fn observe_at(
        w: Option<&Workload>,
        intent: Intent,
        intent_at: u64,
        s: Option<&Status>,
    ) -> Observation {
        Observation {
            intent: IntentRecord {
                intent,
                at: rfc3339(at(intent_at)),
                by: "test".into(),
            },
            workload: w.cloned(),
            workload_conflict: None,
            status: s.cloned(),
            status_current: matches!((s, w), (Some(s), Some(w)) if status_is_current(s, w)),
            status_problem: None,
            report: None,
            derived: None,
            details: serde_json::Map::new(),
        }
    }

    /// The common case: the intent was recorded before anything happened.
    fn derive3(w: Option<&Workload>, intent: Intent, s: Option<&Status>) -> Derived {
        derive(&observe_at(w, intent, 0, s))
    }

    use WorkloadState::*;

    #[test]
    fn missing_created_paused() {
        let d = derive3(None, Intent::Running, None);
        assert_eq!(d.phase, SandboxPhase::Missing);
        assert!(d.message.unwrap().contains("sandboxctl delete"));
        let c = container(Created, None, None, 0);
        assert_eq!(
            derive3(Some(&c), Intent::Stopped, None).phase,
            SandboxPhase::Created
        );
        let c = container(Paused, Some(0), None, 0);
        assert_eq!(
            derive3(Some(&c), Intent::Running, None).phase,
            SandboxPhase::Paused
        );
    }

    #[test]
    fn running_passes_the_current_supervisor_phase_through() {
        // First run: the supervisor stamps itself 2 ms before the engine does.
        let c = container(Running, Some(1000), None, 0);
        for p in [
            Phase::Booting,
            Phase::Starting,
            Phase::Ready,
            Phase::BackOff,
            Phase::Stopping,
        ] {
            let d = derive3(Some(&c), Intent::Running, Some(&status(p, 998)));
            assert_eq!(d.phase.as_str(), p.as_str());
            assert!(d.status_current);
            assert_eq!(d.exit_code, None);
        }
        let d = derive3(
            Some(&c),
            Intent::Running,
            Some(&status(Phase::Failed, 1000)),
        );
        assert_eq!(
            (d.phase, d.reason.as_deref()),
            (SandboxPhase::Failed, Some("hook_failed"))
        );
    }

    #[test]
    fn running_with_an_older_runs_status_is_pending() {
        // Previous run 0..10_000 ended Ready (killed); restarted at 10_500.
        let c = container(Running, Some(10_500), Some(10_000), 137);
        let d = derive3(Some(&c), Intent::Running, Some(&status(Phase::Ready, 0)));
        assert_eq!(d.phase, SandboxPhase::Pending);
        assert!(!d.status_current);
        // Even a short previous run (inside the skew window) is told apart by FinishedAt.
        let c = container(Running, Some(1_500), Some(1_200), 0);
        let d = derive3(
            Some(&c),
            Intent::Running,
            Some(&status(Phase::Ready, 1_000)),
        );
        assert_eq!(d.phase, SandboxPhase::Pending);
        // The new supervisor's own file is trusted.
        let d = derive3(
            Some(&c),
            Intent::Running,
            Some(&status(Phase::Booting, 1_498)),
        );
        assert_eq!(d.phase, SandboxPhase::Booting);
        // No file at all.
        assert_eq!(
            derive3(Some(&c), Intent::Running, None).phase,
            SandboxPhase::Pending
        );
    }

    #[test]
    fn intentional_stop_is_stopped_never_error() {
        let c = container(Exited, Some(0), Some(5_000), 0);
        let d = derive3(Some(&c), Intent::Stopped, Some(&status(Phase::Stopped, 0)));
        assert_eq!((d.phase, d.exit_code), (SandboxPhase::Stopped, Some(0)));
        // The engine had to SIGKILL it after the stop timeout: still Stopped, with a note.
        let c = container(Exited, Some(0), Some(5_000), 137);
        let d = derive3(Some(&c), Intent::Stopped, Some(&status(Phase::Stopping, 0)));
        assert_eq!((d.phase, d.exit_code), (SandboxPhase::Stopped, Some(137)));
        assert!(d.message.unwrap().contains("SIGKILL"));
    }

    #[test]
    fn a_stop_behind_sandboxctls_back_is_error_not_stopped() {
        // `docker stop`, or dockerd restarted, while the intent is running: the supervisor
        // got SIGTERM and wrote Stopped, but nobody asked sandboxctl.
        let c = container(Exited, Some(1_000), Some(5_000), 0);
        let d = derive(&observe_at(
            Some(&c),
            Intent::Running,
            900,
            Some(&status(Phase::Stopped, 1_000)),
        ));
        assert!(d.status_current);
        assert_eq!(d.phase, SandboxPhase::Error);
        assert_eq!(d.reason.as_deref(), Some(reason::STOPPED_EXTERNALLY));
        assert_eq!(d.exit_code, Some(0));
        assert!(d.message.unwrap().contains("resume --all"));
        // The same exit, but `running` was recorded after it (a `start` on its way, before
        // the engine started anything): the last stop was the intended one.
        let d = derive(&observe_at(
            Some(&c),
            Intent::Running,
            5_100,
            Some(&status(Phase::Stopped, 1_000)),
        ));
        assert_eq!(d.phase, SandboxPhase::Pending);
        let m = d.message.unwrap();
        assert!(
            m.contains("has not started yet") && m.contains("last report: Stopped"),
            "{m}"
        );
    }

    #[test]
    fn an_exit_before_the_running_intent_is_a_start_on_its_way() {
        // What a reader sees when its observation straddles a stop and the next start's
        // intent: the old run's Ready (read before the stop), its exit, the new intent.
        let c = container(Exited, Some(1_000), Some(5_000), 0);
        for last in [Some(Phase::Ready), Some(Phase::Stopping), None] {
            let st = last.map(|p| status(p, 1_000));
            let d = derive(&observe_at(Some(&c), Intent::Running, 5_100, st.as_ref()));
            assert_eq!(d.phase, SandboxPhase::Pending, "{last:?}");
            assert!(!d.phase.is_settled());
        }
        // A crash followed by a start that has not started it yet: still said, in the message.
        let c = container(Exited, Some(1_000), Some(5_000), 137);
        let d = derive(&observe_at(
            Some(&c),
            Intent::Running,
            5_100,
            Some(&status(Phase::Ready, 1_000)),
        ));
        assert_eq!(d.phase, SandboxPhase::Pending);
        assert!(d.message.unwrap().contains("exit 137"));
        // The same crash after the intent was recorded is an Error.
        let d = derive(&observe_at(
            Some(&c),
            Intent::Running,
            900,
            Some(&status(Phase::Ready, 1_000)),
        ));
        assert_eq!(d.phase, SandboxPhase::Error);
        assert_eq!(d.reason.as_deref(), Some(reason::UNEXPECTED_EXIT));
        // A failed run keeps its verdict while the next start is on its way.
        let c = container(Exited, Some(1_000), Some(1_200), 80);
        let d = derive(&observe_at(
            Some(&c),
            Intent::Running,
            5_100,
            Some(&status(Phase::Failed, 1_000)),
        ));
        assert_eq!(d.phase, SandboxPhase::Failed);
    }

    #[test]
    fn another_sandboxs_object_reads_missing_name_taken() {
        let mut o = observe_at(None, Intent::Running, 0, None);
        o.workload_conflict = Some("container openshell-a belongs to another sandbox".into());
        let d = derive(&o);
        assert_eq!(d.phase, SandboxPhase::Missing);
        assert_eq!(d.reason.as_deref(), Some(reason::NAME_TAKEN));
        assert!(d.message.unwrap().contains("another sandbox"));
    }

    #[test]
    fn power_cut_is_error_with_the_exit_code_despite_a_ready_file() {
        let c = container(Exited, Some(0), Some(5_000), 137);
        let d = derive3(Some(&c), Intent::Running, Some(&status(Phase::Ready, 0)));
        assert_eq!(d.phase, SandboxPhase::Error);
        assert_eq!(d.exit_code, Some(137));
        assert_eq!(d.reason.as_deref(), Some(REASON_UNEXPECTED_EXIT));
        let m = d.message.unwrap();
        assert!(
            m.contains("exit 137") && m.contains("last report for this run: Ready"),
            "{m}"
        );
        // No status at all (died before the supervisor wrote one).
        let d = derive3(Some(&c), Intent::Running, None);
        assert_eq!(d.phase, SandboxPhase::Error);
        // OOM is named.
        let mut c = c;
        c.oom_killed = true;
        let d = derive3(Some(&c), Intent::Running, None);
        assert_eq!(d.reason.as_deref(), Some(REASON_OOM_KILLED));
    }

    #[test]
    fn a_previous_runs_stopped_file_does_not_hide_a_crash() {
        // Run 1 (0..5_000) was stopped cleanly; run 2 started at 60_000 and was killed
        // before its supervisor wrote anything.
        let c = container(Exited, Some(60_000), Some(60_050), 137);
        let d = derive3(Some(&c), Intent::Running, Some(&status(Phase::Stopped, 0)));
        assert_eq!(d.phase, SandboxPhase::Error);
        assert!(!d.status_current);
    }

    #[test]
    fn supervisor_verdicts_on_exit() {
        let c = container(Exited, Some(0), Some(900), 80);
        let d = derive3(Some(&c), Intent::Running, Some(&status(Phase::Failed, 0)));
        assert_eq!(d.phase, SandboxPhase::Failed);
        assert_eq!(d.reason.as_deref(), Some("hook_failed"));
        assert_eq!(d.message.as_deref(), Some("hook exited 3"));
        assert_eq!(d.exit_code, Some(80));
        let c = container(Exited, Some(0), Some(900), 0);
        let d = derive3(
            Some(&c),
            Intent::Running,
            Some(&status(Phase::Completed, 0)),
        );
        assert_eq!(d.phase, SandboxPhase::Completed);
    }

    #[test]
    fn podman_coarse_finished_at_before_started_at() {
        // Measured with podman 4.3: a supervisor that failed at once (agent not found).
        // StartedAt .079544583, FinishedAt .078736534 (coarse mtime), supervisor .080.
        let mut c = container(Exited, None, None, 127);
        c.started_at = parse_rfc3339("2026-11-22T14:46:00.079544583Z");
        c.finished_at = parse_rfc3339("2026-11-22T14:46:00.078736534Z");
        let mut s = status(Phase::Failed, 0);
        s.supervisor.started_at = "2026-11-22T14:46:00.080Z".into();
        s.reason = Some(Reason::SpawnFailed);
        let d = derive3(Some(&c), Intent::Running, Some(&s));
        assert!(d.status_current);
        assert_eq!(d.phase, SandboxPhase::Failed);
        assert_eq!(d.reason.as_deref(), Some("spawn_failed"));
    }

    #[test]
    fn unknown_engine_states_are_errors_naming_the_state() {
        let c = container(Other("restarting".into()), Some(0), None, 0);
        let d = derive3(Some(&c), Intent::Running, None);
        assert_eq!(d.phase, SandboxPhase::Error);
        assert_eq!(d.reason.as_deref(), Some(REASON_ENGINE_STATE));
        assert!(d.message.unwrap().contains("restarting"));
    }

    #[test]
    fn currency_needs_both_times() {
        let never = container(Created, None, None, 0);
        assert!(!status_is_current(&status(Phase::Ready, 0), &never));
        let mut s = status(Phase::Ready, 0);
        s.supervisor.started_at = "garbage".into();
        assert!(!status_is_current(
            &s,
            &container(Running, Some(0), None, 0)
        ));
    }
}
