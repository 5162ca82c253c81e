//! The per-sandbox lock of the host-state backends: `flock` on `<state-dir>/<NAME>/lock`.
//!
//! `start`, `stop`, `delete`, `create` and `resume` hold it across the intent write, the
//! engine call and the check that follows, so two of them never interleave on one sandbox
//! (a `stop` racing a `start` used to leave the intent `running` with the container exited).
//! The holder writes who it is (pid, verb, since) into the file; a second caller waits up to
//! its timeout, says whom it waits for, and gives up with exit `busy`. The kernel drops an
//! flock when its holder dies, so a crashed sandboxctl never leaves a sandbox locked.
//! Readers (`status`, `list`, `watch`) never take it.

use super::error::CtlError;
use crate::contract::time::now_rfc3339;
use crate::contract::CtlExit;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::info;

pub const LOCK_FILE: &str = "lock";
/// How often a waiter tries again.
const RETRY: Duration = Duration::from_millis(25);

/// Who holds a lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub verb: String,
    pub since: String,
}

impl Holder {
    fn describe(h: &Option<Holder>) -> String {
        match h {
            Some(h) => format!("`{}` (pid {}) since {}", h.verb, h.pid, h.since),
            None => "another sandboxctl (it has not said who yet)".to_owned(),
        }
    }
}

/// A held lock: released when dropped (or when the process dies).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

/// Takes the lock in `dir` for `verb`, waiting up to `wait`.
pub fn acquire(
    dir: &Path,
    sandbox: &str,
    verb: &str,
    wait: Duration,
) -> Result<HostLock, CtlError> {
    let path = dir.join(LOCK_FILE);
    let t0 = Instant::now();
    let mut told = false;
    loop {
        let file = open(&path, sandbox)?;
        loop {
            match try_flock(&file) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    return Err(CtlError::new(
                        CtlExit::Internal,
                        format!("cannot lock {}: {e}", path.display()),
                    )
                    .about(sandbox))
                }
            }
            let holder = read_holder(&path);
            if !told {
                told = true;
                info!(
                    event = "lock.wait",
                    sandbox,
                    verb,
                    holder_pid = holder.as_ref().map(|h| h.pid),
                    holder_verb = holder.as_ref().map(|h| h.verb.as_str()),
                    holder_since = holder.as_ref().map(|h| h.since.as_str()),
                    wait_ms = wait.as_millis() as u64,
                    "waiting for {}",
                    Holder::describe(&holder)
                );
            }
            let waited = t0.elapsed();
            if waited >= wait {
                return Err(CtlError::new(
                    CtlExit::Busy,
                    format!(
                        "busy: {} holds its lock; waited {:.1}s for it (--lock-timeout); try again once it is done",
                        Holder::describe(&holder),
                        waited.as_secs_f64()
                    ),
                )
                .about(sandbox));
            }
            std::thread::sleep(RETRY.min(wait - waited));
        }
        // While we waited, `delete` may have removed the file (and `create` made a new one):
        // a lock on an unlinked file protects nothing.
        match same_file(&file, &path) {
            Ok(true) => {
                write_holder(&file, verb);
                return Ok(HostLock { _file: file });
            }
            Ok(false) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(deleted(sandbox)),
            Err(e) => {
                return Err(CtlError::new(
                    CtlExit::Internal,
                    format!("cannot stat {}: {e}", path.display()),
                )
                .about(sandbox))
            }
        }
    }
}

fn deleted(sandbox: &str) -> CtlError {
    CtlError::new(
        CtlExit::UnknownSandbox,
        "was deleted while this command waited for its lock",
    )
    .about(sandbox)
}

fn open(path: &PathBuf, sandbox: &str) -> Result<File, CtlError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                deleted(sandbox)
            } else {
                CtlError::new(
                    CtlExit::Internal,
                    format!("cannot open the lock file {}: {e}", path.display()),
                )
                .about(sandbox)
            }
        })
}

/// `flock(LOCK_EX|LOCK_NB)`: Ok(false) when someone else holds it.
fn try_flock(f: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

fn same_file(f: &File, path: &Path) -> io::Result<bool> {
    let held = f.metadata()?;
    let now = fs::symlink_metadata(path)?;
    Ok(held.dev() == now.dev() && held.ino() == now.ino())
}

fn write_holder(f: &File, verb: &str) {
    let h = Holder {
        pid: std::process::id(),
        verb: verb.to_owned(),
        since: now_rfc3339(),
    };
    let body = serde_json::to_vec(&h).expect("a holder serializes");
    // Best effort: the lock is what matters, the note only tells waiters whom they wait for.
    let _ = f.set_len(0);
    let _ = std::os::unix::fs::FileExt::write_all_at(f, &body, 0);
}

/// Who holds the lock, if the holder has said so (the file is ours: root's state dir).
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut body = Vec::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut body)
        .ok()?;
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shim-lock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn second_caller_times_out_naming_the_holder() {
        let d = dir("busy");
        let held = acquire(&d, "a", "stop", Duration::ZERO).unwrap();
        let h = read_holder(&d.join(LOCK_FILE)).unwrap();
        assert_eq!((h.pid, h.verb.as_str()), (std::process::id(), "stop"));
        // flock locks belong to the open file description: a second open in this process
        // contends like another process would.
        let e = acquire(&d, "a", "start", Duration::from_millis(60)).unwrap_err();
        assert_eq!(e.exit, CtlExit::Busy);
        assert!(
            e.message.contains("`stop` (pid") && e.message.contains("--lock-timeout"),
            "{e}"
        );
        drop(held);
        let again = acquire(&d, "a", "start", Duration::ZERO).unwrap();
        assert_eq!(read_holder(&d.join(LOCK_FILE)).unwrap().verb, "start");
        drop(again);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_waiter_notices_the_sandbox_was_deleted_or_replaced() {
        let d = dir("gone");
        let held = acquire(&d, "a", "delete", Duration::ZERO).unwrap();
        let waiter = {
            let d = d.clone();
            std::thread::spawn(move || acquire(&d, "a", "stop", Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(100));
        fs::remove_dir_all(&d).unwrap();
        drop(held);
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e.exit, CtlExit::UnknownSandbox, "{e}");

        // Deleted and created again: the waiter ends up holding the new sandbox's lock.
        fs::create_dir_all(&d).unwrap();
        let held = acquire(&d, "a", "delete", Duration::ZERO).unwrap();
        let waiter = {
            let d = d.clone();
            std::thread::spawn(move || acquire(&d, "a", "stop", Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(100));
        fs::remove_file(d.join(LOCK_FILE)).unwrap();
        let new = acquire(&d, "a", "create", Duration::ZERO).unwrap();
        drop(held);
        std::thread::sleep(Duration::from_millis(100));
        drop(new);
        let got = waiter.join().unwrap().unwrap();
        assert!(same_file(&got._file, &d.join(LOCK_FILE)).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }
}
