//! Owns the status document: every phase change is logged as a `phase` event and written
//! atomically to status.json.
//!
//! The status directory is opened once, by a trusted walk (no symlink someone else could
//! have planted on the way), and held as a descriptor for the supervisor's life; every
//! write goes through [`DirWriter`], which never follows a link inside it. A transient
//! phase is not fsync'd (after a power cut it means nothing, and readers treat a torn file
//! as no status); a terminal phase is.
//!
//! A write that fails (a full disk) must not leave an older document behind: a readiness
//! probe would read a stale `Ready`. The old file is removed, and the write is retried
//! every [`RETRY`] until it succeeds.

use crate::contract::status::{
    boot_id, start_ticks, DirWriter, HookInfo, HookResult, SupervisorInfo, FILE_NAME,
    SCHEMA_VERSION,
};
use crate::contract::time::now_rfc3339;
use crate::contract::{Phase, Reason, Status};
use crate::safe_fs::{resolve, Final, Trust, WalkError};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{debug, error, info};

/// How often a failed status write is tried again.
pub const RETRY: Duration = Duration::from_secs(1);

pub struct Reporter {
    dir: PathBuf,
    writer: DirWriter,
    pub status: Status,
    /// While writes fail: when to try again.
    retry_at: Option<Instant>,
    /// `--termination-message`: written with every terminal phase (the last thing before exit).
    pub last_word: Option<super::last_word::TerminationLog>,
}

impl Reporter {
    /// Opens (creating what is missing) the status directory and checks that we may write
    /// there. Failing here fails startup: a supervisor nobody can observe is not one
    /// operators can trust.
    ///
    /// `Booting` is logged but not written yet: the first write is the first thing worth
    /// reporting (the hook starting, the child starting, or a failure), which follows within
    /// microseconds when there is no hook. Writing `Booting` first cost one more write on
    /// every start; readers tell a previous run's file apart by `started_at`.
    pub fn start(dir: PathBuf, hook_path: Option<String>) -> Result<Reporter, String> {
        let fd = open_status_dir(&dir)?;
        // SAFETY: faccessat relative to our directory descriptor.
        let writable =
            unsafe { libc::faccessat(fd.as_raw_fd(), c".".as_ptr(), libc::W_OK, libc::AT_EACCESS) }
                == 0;
        if !writable {
            return Err(format!(
                "{} is not writable: {}",
                dir.display(),
                std::io::Error::last_os_error()
            ));
        }
        let now = now_rfc3339();
        let pid = std::process::id();
        let status = Status {
            schema_version: SCHEMA_VERSION,
            phase: Phase::Booting,
            reason: None,
            message: None,
            since: now.clone(),
            supervisor: SupervisorInfo {
                pid,
                started_at: now,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                // Who wrote the document, provably: `status --ready` compares them with
                // the running process of that pid.
                boot_id: boot_id(),
                start_ticks: start_ticks(pid),
            },
            child: None,
            restarts: 0,
            last_exit: None,
            hook: HookInfo {
                path: hook_path,
                result: HookResult::Pending,
                exit_code: None,
                signal: None,
                duration_ms: None,
            },
            egress: None,
        };
        info!(event = "phase", phase = "Booting", "phase changed");
        Ok(Reporter {
            dir,
            writer: DirWriter::new(fd),
            status,
            retry_at: None,
            last_word: None,
        })
    }

    /// Enters `phase`. `reason` and `message` describe a failure (or a notable transition).
    pub fn phase(&mut self, phase: Phase, reason: Option<Reason>, message: Option<String>) {
        let previous = self.status.phase;
        self.status.phase = phase;
        self.status.reason = reason;
        self.status.message = message;
        self.status.since = now_rfc3339();
        match (reason, &self.status.message) {
            (Some(r), Some(m)) => {
                info!(event = "phase", phase = %phase, previous = %previous, reason = %r, detail = %m, "phase changed")
            }
            (Some(r), None) => {
                info!(event = "phase", phase = %phase, previous = %previous, reason = %r, "phase changed")
            }
            _ => info!(event = "phase", phase = %phase, previous = %previous, "phase changed"),
        }
        self.write();
        if phase.is_terminal() {
            if let Some(t) = &self.last_word {
                t.write(phase, reason, self.status.message.as_deref());
            }
        }
    }

    /// Persists the current document (also for changes that are not phase changes, such as
    /// the hook result or a new child pid).
    pub fn write(&mut self) {
        let durable = self.status.phase.is_terminal();
        match self
            .writer
            .replace(FILE_NAME, &self.status.to_bytes(), durable)
        {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    info!(event = "status.recovered", dir = %self.dir.display(), phase = %self.status.phase,
                        "status.json is written again");
                }
            }
            Err(e) => {
                // The workload matters more than the report: carry on, but never leave an
                // older document (an old Ready) for a probe to believe.
                let removed = self.writer.remove(FILE_NAME);
                if self.retry_at.is_none() {
                    match &removed {
                        Ok(()) => {
                            error!(event = "status.write_failed", dir = %self.dir.display(), error = %e,
                            removed = true, "cannot write status.json; removed the old one, so readers see no status until a write succeeds")
                        }
                        Err(r) => {
                            error!(event = "status.write_failed", dir = %self.dir.display(), error = %e,
                            removed = false, remove_error = %r, "cannot write status.json, nor remove the old one: readers may see stale data")
                        }
                    }
                } else {
                    debug!(event = "status.write_failed", dir = %self.dir.display(), error = %e, removed = removed.is_ok(),
                        "status.json still cannot be written");
                }
                self.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    /// The earlier of `deadline` and the next retry of a failed write, so that waiting
    /// never postpones the retry.
    pub fn deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        match (deadline, self.retry_at) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    /// Retries a failed write once its time has come.
    pub fn retry_if_due(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.write();
        }
    }
}

/// Opens `dir` for the supervisor's life, creating missing directories (0755). Every
/// component is judged by the trusted walk: a symlink is followed only where nobody but
/// root (or our own uid) could have planted it, so a workload owning a directory on the
/// way cannot point the supervisor's writes elsewhere.
fn open_status_dir(dir: &Path) -> Result<OwnedFd, String> {
    let trust = Trust::root_and_self();
    // Each round creates one missing component; a path has at most a few dozen.
    for _ in 0..256 {
        match resolve(dir, &trust, Final::Read) {
            Ok(r) if r.is_dir() => return Ok(r.fd),
            Ok(r) => {
                return Err(format!(
                    "{} is not a directory (mode {:o})",
                    r.real.display(),
                    r.stat.st_mode
                ))
            }
            Err(WalkError::NotFound { path: missing }) => {
                if let Some((link, target)) = dangling_link(dir) {
                    return Err(format!(
                        "{} is a symlink to {}, which does not exist; create {} or point \
                         --status-dir at a directory",
                        link.display(),
                        target.display(),
                        target.display()
                    ));
                }
                make_dir(&missing, &trust)?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("{}: too many directories to create", dir.display()))
}

/// Creates `path` in its parent, which is found by the same trusted walk.
fn make_dir(path: &Path, trust: &Trust) -> Result<(), String> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("cannot create {}", path.display()));
    };
    let p = resolve(parent, trust, Final::Path).map_err(|e| e.to_string())?;
    let name = CString::new(name.as_bytes()).map_err(|_| format!("bad name {path:?}"))?;
    // SAFETY: mkdirat relative to a directory descriptor we hold.
    if unsafe { libc::mkdirat(p.fd.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("cannot create {}: {e}", path.display()));
        }
    }
    Ok(())
}

/// The first symlink on `dir` as spelled whose target does not exist, with that target.
fn dangling_link(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut prefix = PathBuf::new();
    for c in dir.components() {
        prefix.push(c);
        let meta = std::fs::symlink_metadata(&prefix).ok()?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&prefix).ok()?;
            if std::fs::metadata(&prefix).is_err() {
                let shown = match prefix.parent() {
                    Some(p) if target.is_relative() => p.join(&target),
                    _ => target,
                };
                return Some((prefix, shown));
            }
        }
    }
    None
}
