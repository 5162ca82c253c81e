//! `status.json`: what the supervisor reports about itself, written atomically on every
//! phase transition into `--status-dir`, read by `supervisor status` and `sandboxctl`.
//!
//! Compatibility rule: fields are only ever added within a `schema_version`; readers ignore
//! fields they do not know. Removing or changing the meaning of a field bumps the version.

use super::phase::{Phase, Reason};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;
pub const FILE_NAME: &str = "status.json";
pub const DEFAULT_DIR: &str = "/run/openshell";
/// Readers refuse a status file larger than this (a real one is about 1 KiB): whoever
/// controls the status directory must not make a reader allocate or read without bound.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub schema_version: u32,
    pub phase: Phase,
    /// Set when `phase` is `Failed`; otherwise null.
    pub reason: Option<Reason>,
    /// Human-readable detail for operators (what failed and what to do).
    pub message: Option<String>,
    /// When the current phase was entered (RFC 3339, UTC).
    pub since: String,
    pub supervisor: SupervisorInfo,
    /// The current (or last) child generation; null before the first spawn.
    pub child: Option<ChildInfo>,
    /// How many times the child has been restarted since the supervisor started.
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    pub hook: HookInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    pub started_at: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildInfo {
    pub pid: u32,
    /// 1 for the first spawn, incremented on every restart.
    pub generation: u32,
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when the child exited normally.
    pub code: Option<i32>,
    /// Signal number when the child was killed by a signal.
    pub signal: Option<i32>,
    pub at: String,
}

/// Outcome of the boot hook for this supervisor start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookResult {
    /// Not run yet.
    Pending,
    Running,
    Succeeded,
    /// No hook file at the path.
    Skipped,
    /// `--no-hook`.
    Disabled,
    Failed,
    TimedOut,
    Untrusted,
    /// Interrupted by a stop request.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookInfo {
    pub path: Option<String>,
    pub result: HookResult,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: Option<u64>,
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Replaces `dir/name` with `body` atomically (temp file, fsync, rename, directory fsync):
/// a reader sees the old file or the new one, and the new one survives a power cut once this
/// returns. Also used by `sandboxctl` for its intent file.
pub fn write_file_atomic(dir: &Path, name: &str, body: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    // The rename itself is durable only once the directory is synced.
    fs::File::open(dir)?.sync_all()
}

impl Status {
    /// Writes the status atomically (see [`write_file_atomic`]).
    pub fn write_atomic(&self, dir: &Path) -> io::Result<()> {
        let mut body = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        body.push(b'\n');
        write_file_atomic(dir, FILE_NAME, &body)
    }

    pub fn read(dir: &Path) -> io::Result<Status> {
        let body = fs::read(path_in(dir))?;
        Status::parse(&body).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path_in(dir).display()),
            )
        })
    }

    /// The one parser of status documents: what every reader of the file uses on its bytes.
    /// An empty or torn file is an error like any other malformed document.
    pub fn parse(body: &[u8]) -> Result<Status, String> {
        if body.is_empty() {
            return Err("the file is empty".to_owned());
        }
        serde_json::from_slice(body).map_err(|e| format!("not a status document: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            schema_version: SCHEMA_VERSION,
            phase: Phase::Failed,
            reason: Some(Reason::HookFailed),
            message: Some("hook exited 3".into()),
            since: "2026-11-22T14:18:17.123Z".into(),
            supervisor: SupervisorInfo {
                pid: 1,
                started_at: "2026-11-22T14:18:17.000Z".into(),
                version: "0.1.0".into(),
            },
            child: None,
            restarts: 0,
            last_exit: None,
            hook: HookInfo {
                path: Some("/etc/openshell/boot.sh".into()),
                result: HookResult::Failed,
                exit_code: Some(3),
                signal: None,
                duration_ms: Some(12),
            },
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("status-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let s = sample();
        s.write_atomic(&dir).unwrap();
        assert_eq!(Status::read(&dir).unwrap(), s);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(FILE_NAME)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readers_ignore_unknown_fields() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["added_later"] = serde_json::json!(42);
        let s: Status = serde_json::from_value(v).unwrap();
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(s.reason, Some(Reason::HookFailed));
    }
}
