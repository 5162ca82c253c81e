//! `--termination-message PATH`: the supervisor's final phase, written where Kubernetes
//! looks for it (the container's `terminationMessagePath`, `/dev/termination-log`), so a pod
//! that stopped or failed still says why once its status directory (an emptyDir) is gone.
//! The line's format is the contract's (`contract::termination`).
//!
//! The supervisor writes it as root, at exit. The directory is resolved once at start-up
//! with the trusted walk and must be one nobody but root can change (the kubelet's
//! bind-mount target in `/dev` is): a path in a directory the workload controls is refused
//! before anything runs (exit 78), because the workload could otherwise point the write at
//! any file with a symlink, or block PID 1 with a FIFO. The file itself is opened relative to
//! the checked directory descriptor with `O_NOFOLLOW|O_NONBLOCK` and written only when the
//! descriptor is a regular file.

use crate::contract::termination;
use crate::contract::{Phase, Reason};
use crate::safe_fs::{resolve, Final, Trust};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tracing::{error, info};

pub struct TerminationLog {
    dir: OwnedFd,
    name: CString,
    path: PathBuf,
}

impl TerminationLog {
    /// Checks `path`'s directory; the file need not exist yet.
    pub fn open(path: &Path) -> Result<TerminationLog, String> {
        let what = format!("--termination-message {}", path.display());
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(format!("{what}: not a file path"));
        };
        if !path.is_absolute() {
            return Err(format!("{what}: not an absolute path"));
        }
        let dir = resolve(parent, &Trust::root_and_self(), Final::Path)
            .map_err(|e| format!("{what}: {e}"))?;
        if !dir.is_dir() {
            return Err(format!("{what}: {} is not a directory", parent.display()));
        }
        if let Some(u) = &dir.untrusted {
            return Err(format!(
                "{what}: it is reached through {u}, which a user other than root can modify \
                 (the sandboxed agent could redirect the write); use a root-owned directory \
                 such as /dev (Kubernetes' default /dev/termination-log)"
            ));
        }
        Ok(TerminationLog {
            dir: dir.fd,
            name: CString::new(name.as_bytes()).map_err(|_| format!("{what}: contains NUL"))?,
            path: path.to_path_buf(),
        })
    }

    /// Writes the final line. Never blocks on a FIFO, never follows a symlink, never writes
    /// to anything but a regular file; a failure is logged, the exit code stays the same.
    pub fn write(&self, phase: Phase, reason: Option<Reason>, message: Option<&str>) {
        let line = termination::format(phase, reason, message);
        match self.write_line(&line) {
            Ok(()) => {
                info!(event = "termination.written", path = %self.path.display(), line = %line,
                "final phase written as the termination message")
            }
            Err(e) => {
                error!(event = "termination.write_failed", path = %self.path.display(), error = %e,
                "cannot write the termination message")
            }
        }
    }

    fn write_line(&self, line: &str) -> Result<(), String> {
        let flags = libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_NOFOLLOW
            | libc::O_NONBLOCK
            | libc::O_NOCTTY
            | libc::O_CLOEXEC;
        // SAFETY: a valid directory fd and NUL-terminated name; the result is checked.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), self.name.as_ptr(), flags, 0o644) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: fd was just returned by openat and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fstat into a zeroed struct on our own fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err("not a regular file; nothing written".into());
        }
        // Truncate only what was checked to be a regular file.
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), 0) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let mut f = std::fs::File::from(fd);
        f.write_all(line.as_bytes()).map_err(|e| e.to_string())
    }
}
