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
    /// The seed tree could not be copied into the workspace.
    SeedFailed,
    /// `--init`: the VM could not be set up (mounts, modules, disks, host settings).
    InitFailed,
    /// The egress proxy could not be started (or kept failing to start).
    EgressFailed,
    /// The child command exists but cannot be executed.
    NotExecutable,
    /// The child command was not found.
    NotFound,
}

impl ExitCode {
    pub const ALL: [ExitCode; 14] = [
        ExitCode::Ok,
        ExitCode::Usage,
        ExitCode::Internal,
        ExitCode::Config,
        ExitCode::HookFailed,
        ExitCode::HookTimeout,
        ExitCode::HookUntrusted,
        ExitCode::Enforcement,
        ExitCode::CrashLoop,
        ExitCode::SeedFailed,
        ExitCode::InitFailed,
        ExitCode::EgressFailed,
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
            ExitCode::SeedFailed => 85,
            ExitCode::InitFailed => 86,
            ExitCode::EgressFailed => 87,
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
            ExitCode::SeedFailed => "seed_failed",
            ExitCode::InitFailed => "init_failed",
            ExitCode::EgressFailed => "egress_failed",
            ExitCode::NotExecutable => "not_executable",
            ExitCode::NotFound => "not_found",
        }
    }

    /// What the code means, for `--help` and the README table.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Ok => "stopped on request (SIGTERM/SIGINT), or the child completed",
            ExitCode::Usage => "invalid command line",
            ExitCode::Config => "invalid policy or configuration",
            ExitCode::Internal => "the supervisor could not set itself up (signals, status dir)",
            ExitCode::HookFailed => "boot hook exited non-zero or was killed",
            ExitCode::HookTimeout => "boot hook exceeded --hook-timeout",
            ExitCode::HookUntrusted => "boot hook failed the trust check",
            ExitCode::Enforcement => "the sandbox could not be applied to the child",
            ExitCode::CrashLoop => "more than --max-restarts restarts within --restart-window",
            ExitCode::SeedFailed => "the seed tree could not be copied into the workspace",
            ExitCode::InitFailed => "--init: the VM could not be set up (mounts, modules, disks)",
            ExitCode::EgressFailed => "the egress proxy could not be started",
            ExitCode::NotExecutable => "the command cannot be executed",
            ExitCode::NotFound => "the command was not found",
        }
    }

    /// The table shown at the end of `supervisor --help`.
    pub fn help_table() -> String {
        let mut s = String::from("Exit codes:\n");
        for c in ExitCode::ALL {
            s.push_str(&format!("  {:>3}  {}\n", c.code(), c.meaning()));
        }
        s.push_str(
            "  With --restart never the child's own exit code (or 128+signal) is passed through.\n  \
             See README.md for the phase model, status.json and the log schema.",
        );
        s
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
