//! Supervisor phases and the reasons attached to terminal ones.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the supervisor is in its life cycle. Serialized by its variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The boot hook is running (or being checked).
    Booting,
    /// The child has been spawned but has not yet stayed up for `--ready-after`.
    Starting,
    /// The child has stayed up for `--ready-after`.
    Ready,
    /// The child exited and the supervisor waits before restarting it.
    BackOff,
    /// A stop was requested: the child is being terminated.
    Stopping,
    /// Stopped on request; terminal, the supervisor exits 0.
    Stopped,
    /// Terminal failure, see the reason.
    Failed,
    /// The child exited 0 under a policy that does not restart it; terminal.
    Completed,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Booting,
        Phase::Starting,
        Phase::Ready,
        Phase::BackOff,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Failed,
        Phase::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Booting => "Booting",
            Phase::Starting => "Starting",
            Phase::Ready => "Ready",
            Phase::BackOff => "BackOff",
            Phase::Stopping => "Stopping",
            Phase::Stopped => "Stopped",
            Phase::Failed => "Failed",
            Phase::Completed => "Completed",
        }
    }

    /// Terminal phases are the last ones a supervisor writes before it exits.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Stopped | Phase::Failed | Phase::Completed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the supervisor is `Failed` (or why a child generation ended badly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The boot hook exited non-zero or was killed by a signal.
    HookFailed,
    /// The boot hook ran longer than `--hook-timeout`.
    HookTimeout,
    /// The boot hook failed the trust check (owner, mode, symlink, directory).
    HookUntrusted,
    /// The child command could not be executed (not found, not executable).
    SpawnFailed,
    /// Applying the sandbox (Landlock, seccomp, privilege drop) failed in the child.
    EnforcementFailed,
    /// More than `--max-restarts` restarts within `--restart-window`.
    CrashLoop,
    /// The child exited non-zero under a policy that does not restart it.
    ChildFailed,
    /// The policy or command line was rejected before anything ran.
    ConfigInvalid,
    /// The supervisor itself hit an operating-system error it cannot recover from.
    Internal,
    /// The seed tree could not be copied into the workspace.
    SeedFailed,
    /// `--init`: mounting, loading modules, finding the disks or reading the host's
    /// settings of the VM failed.
    InitFailed,
    /// The egress proxy could not be started, or failed every restart.
    EgressFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HookFailed => "hook_failed",
            Reason::HookTimeout => "hook_timeout",
            Reason::HookUntrusted => "hook_untrusted",
            Reason::SpawnFailed => "spawn_failed",
            Reason::EnforcementFailed => "enforcement_failed",
            Reason::CrashLoop => "crash_loop",
            Reason::ChildFailed => "child_failed",
            Reason::ConfigInvalid => "config_invalid",
            Reason::Internal => "internal",
            Reason::SeedFailed => "seed_failed",
            Reason::InitFailed => "init_failed",
            Reason::EgressFailed => "egress_failed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_as_str() {
        for p in Phase::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            let back: Phase = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p);
        }
        let r = serde_json::to_string(&Reason::CrashLoop).unwrap();
        assert_eq!(r, "\"crash_loop\"");
        assert_eq!(Reason::HookUntrusted.as_str(), "hook_untrusted");
    }

    #[test]
    fn terminal_phases() {
        let terminal: Vec<_> = Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect();
        assert_eq!(terminal, [Phase::Stopped, Phase::Failed, Phase::Completed]);
    }
}
