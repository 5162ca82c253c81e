//! Exit codes of the `supervisor` binary itself.
//!
//! Under `--restart never` the supervisor exits with the child's own code (or 128+signal),
//! like tini and dumb-init. Every other exit uses this table. The values avoid 1-2 (shell
//! and clap conventions), 126-165 (exec failures and 128+signal) and stay below 126.

/// A documented supervisor exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Stopped on request, or the child completed.
    Ok,
    /// The command line is invalid.
    Usage,
    /// The policy file or another configuration input is invalid.
    Config,
    /// An operating-system error in the supervisor itself (status dir, signals, fork).
    Internal,
    /// The boot hook exited non-zero or was killed by a signal.
    HookFailed,
    /// The boot hook exceeded `--hook-timeout`.
    HookTimeout,
    /// The boot hook failed the trust check.
    HookUntrusted,
    /// The sandbox could not be applied to the child.
    Enforcement,
    /// The child crash-looped past `--max-restarts`.
    CrashLoop,
    /// The child command exists but cannot be executed.
    NotExecutable,
    /// The child command was not found.
    NotFound,
}

impl ExitCode {
    pub const ALL: [ExitCode; 11] = [
        ExitCode::Ok,
        ExitCode::Usage,
        ExitCode::Config,
        ExitCode::Internal,
        ExitCode::HookFailed,
        ExitCode::HookTimeout,
        ExitCode::HookUntrusted,
        ExitCode::Enforcement,
        ExitCode::CrashLoop,
        ExitCode::NotExecutable,
        ExitCode::NotFound,
    ];

    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Usage => 64,
            ExitCode::Config => 78,
            ExitCode::Internal => 71,
            ExitCode::HookFailed => 80,
            ExitCode::HookTimeout => 81,
            ExitCode::HookUntrusted => 82,
            ExitCode::Enforcement => 83,
            ExitCode::CrashLoop => 84,
            ExitCode::NotExecutable => 126,
            ExitCode::NotFound => 127,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Usage => "usage",
            ExitCode::Config => "config",
            ExitCode::Internal => "internal",
            ExitCode::HookFailed => "hook_failed",
            ExitCode::HookTimeout => "hook_timeout",
            ExitCode::HookUntrusted => "hook_untrusted",
            ExitCode::Enforcement => "enforcement",
            ExitCode::CrashLoop => "crash_loop",
            ExitCode::NotExecutable => "not_executable",
            ExitCode::NotFound => "not_found",
        }
    }

    pub fn from_code(code: i32) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ExitCode::ALL {
            assert!(seen.insert(c.code()), "duplicate exit code {}", c.code());
            assert_eq!(ExitCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ExitCode::from_code(1), None);
    }
}
