//! Sandbox-level phases: what `sandboxctl` reports for a whole sandbox (container, volume,
//! host state), as opposed to [`Phase`], which the supervisor reports about itself.
//!
//! While the container runs and its status.json belongs to the running supervisor, the
//! supervisor's phase passes through under the same name. Everything else (the container is
//! stopped, gone, never started, or died without a last word) gets a phase of its own. The
//! derivation table lives in `shim::phase` and README.md "## sandboxctl".

use super::phase::Phase;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SandboxPhase {
    /// The container exists but has never been started (`create --no-start`).
    Created,
    /// Asked to run, not yet reported: the workload runs but its supervisor has not
    /// reported yet (no current status.json), or a start was recorded after the last run
    /// ended and has not started the workload yet.
    Pending,
    /// Passthrough: the boot hook is running.
    Booting,
    /// Passthrough: the agent was spawned and is not yet Ready.
    Starting,
    /// Passthrough: the agent has stayed up for the supervisor's `--ready-after`.
    Ready,
    /// Passthrough: the agent exited and the supervisor waits to restart it.
    BackOff,
    /// Passthrough: a stop is in progress.
    Stopping,
    /// Stopped on purpose: a recorded stop intent, or the supervisor's own `Stopped`.
    Stopped,
    /// The agent finished with exit 0 under a policy that does not restart it.
    Completed,
    /// The supervisor reported `Failed` (the reason says why: hook, policy, crash loop…).
    Failed,
    /// The container ended without being asked to and without a final word from the
    /// supervisor (a power cut, `kill -9`, OOM): the exit code says how.
    Error,
    /// The container is paused by the engine.
    Paused,
    /// The host state exists but the engine has no container for it (removed outside
    /// sandboxctl).
    Missing,
}

impl SandboxPhase {
    pub const ALL: [SandboxPhase; 13] = [
        SandboxPhase::Created,
        SandboxPhase::Pending,
        SandboxPhase::Booting,
        SandboxPhase::Starting,
        SandboxPhase::Ready,
        SandboxPhase::BackOff,
        SandboxPhase::Stopping,
        SandboxPhase::Stopped,
        SandboxPhase::Completed,
        SandboxPhase::Failed,
        SandboxPhase::Error,
        SandboxPhase::Paused,
        SandboxPhase::Missing,
    ];

    /// The supervisor's phase as the sandbox's phase (same name, same meaning).
    pub fn from_supervisor(p: Phase) -> SandboxPhase {
        match p {
            Phase::Booting => SandboxPhase::Booting,
            Phase::Starting => SandboxPhase::Starting,
            Phase::Ready => SandboxPhase::Ready,
            Phase::BackOff => SandboxPhase::BackOff,
            Phase::Stopping => SandboxPhase::Stopping,
            Phase::Stopped => SandboxPhase::Stopped,
            Phase::Failed => SandboxPhase::Failed,
            Phase::Completed => SandboxPhase::Completed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxPhase::Created => "Created",
            SandboxPhase::Pending => "Pending",
            SandboxPhase::Booting => "Booting",
            SandboxPhase::Starting => "Starting",
            SandboxPhase::Ready => "Ready",
            SandboxPhase::BackOff => "BackOff",
            SandboxPhase::Stopping => "Stopping",
            SandboxPhase::Stopped => "Stopped",
            SandboxPhase::Completed => "Completed",
            SandboxPhase::Failed => "Failed",
            SandboxPhase::Error => "Error",
            SandboxPhase::Paused => "Paused",
            SandboxPhase::Missing => "Missing",
        }
    }

    /// Nothing will change without an operator (or `resume --all`) acting.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            SandboxPhase::Created
                | SandboxPhase::Stopped
                | SandboxPhase::Completed
                | SandboxPhase::Failed
                | SandboxPhase::Error
                | SandboxPhase::Paused
                | SandboxPhase::Missing
        )
    }
}

/// Reasons of the sandbox-level phases (a `Failed` sandbox carries the supervisor's own
/// reason, `contract::Reason`). Scripts branch on these names.
pub mod reason {
    /// `Error`: the workload ended without a stop request and without the supervisor's
    /// final word (a power cut, `kill -9`); the exit code says how.
    pub const UNEXPECTED_EXIT: &str = "unexpected_exit";
    /// `Error`: the kernel's OOM killer ended it.
    pub const OOM_KILLED: &str = "oom_killed";
    /// `Error`: the backend reports a state sandboxctl does not know (restarting, removing…).
    pub const ENGINE_STATE: &str = "engine_state";
    /// `Error`: stopped cleanly, but by something other than sandboxctl while the intent is
    /// running (`docker stop`, an engine restart, a `kubectl scale --replicas=0`): `resume
    /// --all` brings it back.
    pub const STOPPED_EXTERNALLY: &str = "stopped_externally";
    /// `Missing`: an object of the sandbox's name exists but belongs to another sandbox.
    pub const NAME_TAKEN: &str = "name_taken";
    /// kube `Error`: the StatefulSet wants its pod but there is none (quota, admission).
    pub const POD_MISSING: &str = "pod_missing";
    /// kube `Error`: the pod's node stopped reporting (pod phase Unknown).
    pub const NODE_LOST: &str = "node_lost";
    /// kube `Pending`: no node fits the pod (PodScheduled False).
    pub const UNSCHEDULABLE: &str = "unschedulable";
    /// kube `Error`: the pod itself failed without a reason of its own (an eviction says
    /// `evicted`: the kubelet's reasons, like its container waiting reasons such as
    /// `image_pull_backoff`, pass through in snake_case).
    pub const POD_FAILED: &str = "pod_failed";

    pub const ALL: [&str; 9] = [
        UNEXPECTED_EXIT,
        OOM_KILLED,
        ENGINE_STATE,
        STOPPED_EXTERNALLY,
        NAME_TAKEN,
        POD_MISSING,
        NODE_LOST,
        UNSCHEDULABLE,
        POD_FAILED,
    ];
}

impl fmt::Display for SandboxPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_phases_pass_through_under_their_own_name() {
        for p in Phase::ALL {
            assert_eq!(SandboxPhase::from_supervisor(p).as_str(), p.as_str());
        }
    }

    #[test]
    fn serde_names_match_as_str_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for p in SandboxPhase::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<SandboxPhase>(&json).unwrap(), p);
            assert!(seen.insert(p.as_str()));
        }
    }
}
