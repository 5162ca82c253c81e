//! The named steps of child set-up, so a failure says where it happened.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    Session = 1,
    Signals = 2,
    Fds = 3,
    Rlimits = 4,
    ParentDeath = 5,
    Groups = 6,
    Setgid = 7,
    Setuid = 8,
    Capabilities = 9,
    NoNewPrivs = 10,
    Landlock = 11,
    Seccomp = 12,
    VerifyDrop = 13,
    Bounding = 14,
    /// Standard input, output and error of the new process (the hook's pipes).
    Stdio = 15,
    /// The start directory.
    Cwd = 16,
    /// `execve`/`execveat` itself: the program could not be executed.
    Exec = 17,
}

impl Stage {
    pub const ALL: [Stage; 17] = [
        Stage::Session,
        Stage::Signals,
        Stage::Fds,
        Stage::Rlimits,
        Stage::ParentDeath,
        Stage::Groups,
        Stage::Setgid,
        Stage::Setuid,
        Stage::Capabilities,
        Stage::NoNewPrivs,
        Stage::Landlock,
        Stage::Seccomp,
        Stage::VerifyDrop,
        Stage::Bounding,
        Stage::Stdio,
        Stage::Cwd,
        Stage::Exec,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Session => "session",
            Stage::Signals => "signals",
            Stage::Fds => "fds",
            Stage::Rlimits => "rlimits",
            Stage::ParentDeath => "parent_death",
            Stage::Groups => "groups",
            Stage::Setgid => "setgid",
            Stage::Setuid => "setuid",
            Stage::Capabilities => "capabilities",
            Stage::NoNewPrivs => "no_new_privs",
            Stage::Landlock => "landlock",
            Stage::Seccomp => "seccomp",
            Stage::VerifyDrop => "verify_drop",
            Stage::Bounding => "bounding_set",
            Stage::Stdio => "stdio",
            Stage::Cwd => "cwd",
            Stage::Exec => "exec",
        }
    }

    pub fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A child-side failure: which stage, and the errno it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub errno: i32,
}

impl Failure {
    /// The failure of `stage` with the current `errno`. Async-signal-safe.
    pub fn last(stage: Stage) -> Failure {
        Failure {
            stage,
            errno: nix::errno::Errno::last_raw(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage {}: {}",
            self.stage,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_u32(s as u32), Some(s));
        }
        assert_eq!(Stage::from_u32(0), None);
    }
}
