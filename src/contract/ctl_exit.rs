//! Exit codes of `sandboxctl`. Scripts branch on these, so each failure class has its own
//! code. When one invocation acts on several sandboxes, it exits with the code of the first
//! sandbox that failed (every failure is still printed).

/// A documented `sandboxctl` exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlExit {
    /// Done; for `start --wait`, the sandbox reached Ready (or Completed).
    Ok,
    /// The command line is invalid.
    Usage,
    /// The sandbox NAME is not a valid name (RFC 1123 DNS label, at most 42 characters).
    BadName,
    /// No sandbox of that name under the state root.
    UnknownSandbox,
    /// The request conflicts with what exists: the name is taken, the workspace volume or
    /// container name is already used outside sandboxctl, or the container is gone.
    Conflict,
    /// The engine's command-line tool is not installed (not on PATH).
    EngineNotInstalled,
    /// The engine is installed but its daemon or socket does not answer.
    EngineNotRunning,
    /// The engine refused or failed the operation; its own message is printed.
    EngineError,
    /// A host-side error of sandboxctl itself (state directory I/O, corrupt state).
    Internal,
    /// Another sandboxctl holds the sandbox's lock (it is stopping, starting or deleting
    /// it) and did not let go within `--lock-timeout`; the message names the holder.
    Busy,
    /// The backend cannot be reached or used at all: no kubeconfig, an unknown context, the
    /// API server does not answer, its credentials are refused.
    BackendUnavailable,
    /// `--wait` gave up before the sandbox was Ready.
    Timeout,
    /// The sandbox ended up Failed, Error, Stopped or Missing instead of Ready.
    SandboxFailed,
}

impl CtlExit {
    pub const ALL: [CtlExit; 13] = [
        CtlExit::Ok,
        CtlExit::Usage,
        CtlExit::BadName,
        CtlExit::UnknownSandbox,
        CtlExit::Conflict,
        CtlExit::EngineNotInstalled,
        CtlExit::EngineNotRunning,
        CtlExit::EngineError,
        CtlExit::Internal,
        CtlExit::Busy,
        CtlExit::BackendUnavailable,
        CtlExit::Timeout,
        CtlExit::SandboxFailed,
    ];

    pub fn code(self) -> i32 {
        match self {
            CtlExit::Ok => 0,
            CtlExit::Usage => 64,
            CtlExit::BadName => 65,
            CtlExit::UnknownSandbox => 66,
            CtlExit::Conflict => 67,
            CtlExit::EngineNotInstalled => 68,
            CtlExit::EngineNotRunning => 69,
            CtlExit::EngineError => 70,
            CtlExit::Internal => 71,
            CtlExit::Busy => 72,
            CtlExit::BackendUnavailable => 73,
            CtlExit::Timeout => 75,
            CtlExit::SandboxFailed => 76,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CtlExit::Ok => "ok",
            CtlExit::Usage => "usage",
            CtlExit::BadName => "bad_name",
            CtlExit::UnknownSandbox => "unknown_sandbox",
            CtlExit::Conflict => "conflict",
            CtlExit::EngineNotInstalled => "engine_not_installed",
            CtlExit::EngineNotRunning => "engine_not_running",
            CtlExit::EngineError => "engine_error",
            CtlExit::Internal => "internal",
            CtlExit::Busy => "busy",
            CtlExit::BackendUnavailable => "backend_unavailable",
            CtlExit::Timeout => "timeout",
            CtlExit::SandboxFailed => "sandbox_failed",
        }
    }

    pub fn from_code(code: i32) -> Option<CtlExit> {
        CtlExit::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The `--help` text: one line per code, generated from this table.
    pub fn help_table() -> String {
        let mut s = String::from("Exit codes:\n");
        for c in CtlExit::ALL {
            s.push_str(&format!("  {:>3}  {}\n", c.code(), c.name()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in CtlExit::ALL {
            assert!(seen.insert(c.code()), "duplicate exit code {}", c.code());
            assert_eq!(CtlExit::from_code(c.code()), Some(c));
        }
        assert_eq!(CtlExit::from_code(1), None);
        assert!(CtlExit::help_table().contains("  66  unknown_sandbox\n"));
    }
}
