//! Why a policy cannot be turned into a sandbox: always names the file, and the field when
//! one is at fault, so an operator can go straight to the line to fix.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy (or something it names, like a user) is wrong: fix the file.
    Invalid,
    /// The policy file could have been written by someone other than root (a root
    /// supervisor refuses it): fix its owner, mode or directory.
    Untrusted,
    /// The policy is fine but this kernel cannot enforce it as required
    /// (`hard_requirement`, no seccomp): fix the host or relax the policy.
    Unenforceable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub kind: ErrorKind,
    pub file: PathBuf,
    /// Dotted path of the offending field, e.g. `filesystem_policy.read_write[1]`.
    pub field: Option<String>,
    pub reason: String,
}

impl PolicyError {
    pub fn invalid(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        PolicyError {
            kind: ErrorKind::Invalid,
            file: file.to_path_buf(),
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// A problem with the file as a whole (unreadable, not YAML).
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        PolicyError {
            kind: ErrorKind::Invalid,
            file: file.to_path_buf(),
            field: None,
            reason: reason.into(),
        }
    }

    /// The policy file fails the trust check.
    pub fn untrusted(file: &Path, reason: impl Into<String>) -> Self {
        PolicyError {
            kind: ErrorKind::Untrusted,
            file: file.to_path_buf(),
            field: None,
            reason: reason.into(),
        }
    }

    pub fn unenforceable(file: &Path, field: Option<&str>, reason: impl Into<String>) -> Self {
        PolicyError {
            kind: ErrorKind::Unenforceable,
            file: file.to_path_buf(),
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}: {}", self.file.display(), field, self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

impl std::error::Error for PolicyError {}
