//! `status.json`: what the supervisor reports about itself, written atomically on every
//! phase transition into `--status-dir`, read by `supervisor status` and `sandboxctl`.
//!
//! Compatibility rule: fields are only ever added within a `schema_version`; readers ignore
//! fields they do not know. Removing or changing the meaning of a field bumps the version.

use super::phase::{Phase, Reason};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const SCHEMA_VERSION: u32 = 1;
pub const FILE_NAME: &str = "status.json";
pub const DEFAULT_DIR: &str = "/run/openshell";
/// A status document is a few hundred bytes; anything over this is not one of ours.
pub const MAX_BYTES: u64 = 64 * 1024;

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
    /// The egress proxy; absent when the policy allows no egress (or there is no policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressInfo>,
}

/// The egress proxy's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressInfo {
    pub state: EgressState,
    /// The proxy process, while there is one.
    pub pid: Option<u32>,
    /// The loopback port the child's HTTP(S)_PROXY points at.
    pub port: u16,
    /// Restarts since the supervisor started.
    pub restarts: u32,
    /// When `state` was entered (RFC 3339, UTC).
    pub since: String,
    /// How the last proxy process ended.
    pub last_exit: Option<ExitInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressState {
    /// Started, not yet serving.
    Starting,
    /// Serving.
    Running,
    /// Exited; a restart is scheduled.
    Restarting,
    /// Given up on (the supervisor is Failed with egress_failed).
    Failed,
    /// Stopped with the supervisor.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    pub started_at: String,
    pub version: String,
    /// `/proc/sys/kernel/random/boot_id` of the boot the supervisor runs in.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The supervisor's start time in clock ticks after boot (`/proc/PID/stat` field 22).
    /// With `boot_id` and `pid` it names one process for the life of the machine: a pid
    /// reused after a kill (always 1 in a container) has another start time.
    #[serde(default)]
    pub start_ticks: Option<u64>,
}

impl SupervisorInfo {
    /// True when the process `pid` of this boot is the very supervisor that wrote the
    /// document. Without the identity fields nothing is proven.
    pub fn is_running(&self) -> bool {
        let (Some(boot), Some(ticks)) = (&self.boot_id, self.start_ticks) else {
            return false;
        };
        boot_id().as_ref() == Some(boot) && start_ticks(self.pid) == Some(ticks)
    }
}

/// This boot's id, from `/proc/sys/kernel/random/boot_id`.
pub fn boot_id() -> Option<String> {
    let b = std::fs::read("/proc/sys/kernel/random/boot_id").ok()?;
    let id = std::str::from_utf8(&b).ok()?.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// When `pid` started, in clock ticks after boot: field 22 of `/proc/PID/stat`, counted
/// after the command name (which may hold spaces and parentheses, so from the last `)`).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let field = std::str::from_utf8(after)
        .ok()?
        .split_ascii_whitespace()
        .nth(19)?;
    field.parse().ok()
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

/// Why there is no usable status: every reader treats all of these as "no status" (a
/// phase it cannot know), never as an error that stops a command.
#[derive(Debug)]
pub enum NoStatus {
    /// No status.json (or no directory).
    Missing,
    /// Something is there but it is not a status document we can use: a symlink, a FIFO,
    /// an oversized file, an empty or torn write (a transient phase is not fsync'd, so a
    /// power cut can leave one), garbage, or another schema version.
    Unusable(String),
}

impl fmt::Display for NoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoStatus::Missing => f.write_str("does not exist"),
            NoStatus::Unusable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for NoStatus {}

impl Status {
    /// Serializes the document (pretty, with a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec_pretty(self).expect("a status serializes");
        body.push(b'\n');
        body
    }

    /// The one parser of status.json bodies, for every reader.
    pub fn parse(body: &[u8]) -> Result<Status, NoStatus> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(NoStatus::Unusable("is empty".into()));
        }
        let s: Status = serde_json::from_slice(body)
            .map_err(|e| NoStatus::Unusable(format!("is not a status document ({e})")))?;
        if s.schema_version != SCHEMA_VERSION {
            return Err(NoStatus::Unusable(format!(
                "has schema_version {}, this reader knows {SCHEMA_VERSION}",
                s.schema_version
            )));
        }
        Ok(s)
    }

    /// Reads `dir/status.json` without following a symlink, opening a FIFO for a blocking
    /// read, or reading more than [`MAX_BYTES`] (the directory may belong to the sandbox).
    pub fn read(dir: &Path) -> Result<Status, NoStatus> {
        match crate::safe_fs::read_regular_at(dir, FILE_NAME, MAX_BYTES) {
            Ok(body) => Status::parse(&body),
            Err(crate::safe_fs::ReadError::Missing) => Err(NoStatus::Missing),
            Err(e) => Err(NoStatus::Unusable(e.to_string())),
        }
    }
}

/// Replaces files in one directory atomically, through a descriptor held for the
/// directory's life, without ever following a link in it. The status directory may belong
/// to the sandboxed workload, which can plant symlinks, FIFOs or directories at any name:
///
/// - the new content goes into a fresh file created `O_CREAT|O_EXCL|O_NOFOLLOW` under an
///   unpredictable name (`getrandom`): it never opens what someone else put there;
/// - it is swapped in with `renameat2(RENAME_EXCHANGE)` and the old entry, whatever it is,
///   is unlinked (never opened). An exchange is also cheaper than a rename over an existing
///   file, which makes ext4 flush the new data first (auto_da_alloc): 111 vs 359 µs in
///   issue 12's measurement. Where the filesystem cannot exchange, a plain `renameat`;
/// - `fsync` of the file and the directory only when asked (`durable`).
pub struct DirWriter {
    dir: OwnedFd,
}

/// Set once a filesystem refused RENAME_EXCHANGE, so later writes go straight to renameat.
static NO_EXCHANGE: AtomicBool = AtomicBool::new(false);

impl DirWriter {
    /// Wraps an open directory descriptor (`O_RDONLY|O_DIRECTORY`: it is fsync'd).
    pub fn new(dir: OwnedFd) -> DirWriter {
        DirWriter { dir }
    }

    /// Opens `dir` by path (following symlinks: for directories only trusted users can
    /// change, such as sandboxctl's state root).
    pub fn open(dir: &Path) -> io::Result<DirWriter> {
        let c = cstr(dir.as_os_str().as_bytes())?;
        // SAFETY: open of a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just opened and own.
        Ok(DirWriter::new(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Replaces `name` with `body`: a reader sees the old file or the new one, never a mix.
    /// With `durable`, the new file survives a power cut once this returns.
    pub fn replace(&self, name: &str, body: &[u8], durable: bool) -> io::Result<()> {
        let (tmp, file) = self.create_temp(name)?;
        let written = (|| {
            use std::io::Write as _;
            let mut file = file;
            file.write_all(body)?;
            if durable {
                file.sync_all()?;
            }
            drop(file);
            self.swap_in(&tmp, name)
        })();
        if written.is_err() {
            self.unlink(&tmp);
            return written;
        }
        if durable {
            // The new name is durable only once the directory is.
            // SAFETY: fsync of our own descriptor.
            if unsafe { libc::fsync(self.dir.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Removes `name` (whatever it is; a directory only when empty). Missing is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = cstr(name.as_bytes())?;
        // SAFETY: unlinkat relative to our directory descriptor.
        let rc = unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
        if rc == 0 {
            return Ok(());
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT) => Ok(()),
            Some(libc::EISDIR) => {
                // SAFETY: as above.
                let rc =
                    unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn unlink(&self, name: &CString) {
        // SAFETY: unlinkat relative to our directory descriptor.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
    }

    /// A new, empty, private file under an unpredictable name. O_EXCL refuses any existing
    /// entry, a symlink included (dangling or not), so this never opens a planted object.
    fn create_temp(&self, name: &str) -> io::Result<(CString, std::fs::File)> {
        let mut last = io::Error::from_raw_os_error(libc::EEXIST);
        for _ in 0..16 {
            let tmp = cstr(format!(".{name}.{:016x}.tmp", unpredictable()).as_bytes())?;
            // SAFETY: openat relative to our directory descriptor with a NUL-terminated name.
            let fd = unsafe {
                libc::openat(
                    self.dir.as_raw_fd(),
                    tmp.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC
                        | libc::O_NOCTTY,
                    0o644 as libc::c_uint,
                )
            };
            if fd >= 0 {
                // SAFETY: a descriptor we just opened and own.
                return Ok((tmp, unsafe { std::fs::File::from_raw_fd(fd) }));
            }
            last = io::Error::last_os_error();
            if last.raw_os_error() != Some(libc::EEXIST) {
                break;
            }
        }
        Err(last)
    }

    fn swap_in(&self, tmp: &CString, name: &str) -> io::Result<()> {
        let dir = self.dir.as_raw_fd();
        let target = cstr(name.as_bytes())?;
        if !NO_EXCHANGE.load(Ordering::Relaxed) {
            // SAFETY: renameat2 of two names relative to our directory descriptor.
            let rc = unsafe {
                libc::renameat2(
                    dir,
                    tmp.as_ptr(),
                    dir,
                    target.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if rc == 0 {
                // `tmp` now names the previous entry, whatever it was: remove it unopened.
                let _ = self.remove(tmp.to_str().unwrap_or_default());
                return Ok(());
            }
            match io::Error::last_os_error().raw_os_error() {
                // Nothing to exchange with yet: the first write.
                Some(libc::ENOENT) => {}
                // This filesystem cannot exchange.
                Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                    NO_EXCHANGE.store(true, Ordering::Relaxed)
                }
                _ => return Err(io::Error::last_os_error()),
            }
        }
        // SAFETY: renameat of two names relative to our directory descriptor.
        if unsafe { libc::renameat(dir, tmp.as_ptr(), dir, target.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Replaces `dir/name` with `body` atomically and durably (see [`DirWriter`]). Used by
/// `sandboxctl` for its intent file, in a directory only root can change.
pub fn write_file_atomic(dir: &Path, name: &str, body: &[u8]) -> io::Result<()> {
    DirWriter::open(dir)?.replace(name, body, true)
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// 64 unpredictable bits for a temp name. GRND_INSECURE never blocks (PID 1 of a VM may
/// start before the entropy pool is ready); unpredictability only spares us retries when
/// names are squatted, since O_EXCL already refuses them.
fn unpredictable() -> u64 {
    let mut v = 0u64;
    // SAFETY: getrandom into a local of the size given.
    let n = unsafe {
        libc::getrandom(
            (&mut v as *mut u64).cast(),
            std::mem::size_of::<u64>(),
            libc::GRND_INSECURE,
        )
    };
    if n != std::mem::size_of::<u64>() as isize {
        // Kernels before 5.6 lack GRND_INSECURE: fall back to time, pid and a counter.
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        v = t ^ (u64::from(std::process::id()) << 32) ^ N.fetch_add(1, Ordering::Relaxed);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
                boot_id: Some("8f0c2a0e-0000-4000-8000-000000000000".into()),
                start_ticks: Some(12345),
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
            egress: None,
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("status-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let s = sample();
        let w = DirWriter::open(&dir).unwrap();
        w.replace(FILE_NAME, &s.to_bytes(), false).unwrap();
        assert_eq!(Status::read(&dir).unwrap(), s);
        // Replacing an existing file (the exchange path) leaves only the new one.
        let mut s2 = s.clone();
        s2.phase = Phase::Ready;
        w.replace(FILE_NAME, &s2.to_bytes(), true).unwrap();
        assert_eq!(Status::read(&dir).unwrap(), s2);
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

    #[test]
    fn older_documents_without_the_identity_still_read() {
        let mut v = serde_json::to_value(sample()).unwrap();
        let sup = v["supervisor"].as_object_mut().unwrap();
        sup.remove("boot_id");
        sup.remove("start_ticks");
        let s = Status::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(s.supervisor.boot_id, None);
        assert!(!s.supervisor.is_running(), "no identity, nothing proven");
    }

    #[test]
    fn torn_empty_and_foreign_bodies_are_no_status() {
        let good = sample().to_bytes();
        for body in [
            &b""[..],
            b"\n  \n",
            &good[..good.len() / 2],
            b"\0\0\0\0",
            b"[1,2,3]",
            b"{\"schema_version\": 1}",
        ] {
            assert!(
                matches!(Status::parse(body), Err(NoStatus::Unusable(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut v = serde_json::to_value(sample()).unwrap();
        v["schema_version"] = 2.into();
        let e = Status::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("schema_version 2"), "{e}");
    }

    #[test]
    fn this_process_is_proven_running_and_a_reused_pid_is_not() {
        let me = std::process::id();
        let info = SupervisorInfo {
            pid: me,
            started_at: String::new(),
            version: String::new(),
            boot_id: boot_id(),
            start_ticks: start_ticks(me),
        };
        assert!(info.boot_id.is_some() && info.start_ticks.is_some());
        assert!(info.is_running());
        let reused = SupervisorInfo {
            start_ticks: info.start_ticks.map(|t| t + 1),
            ..info.clone()
        };
        assert!(!reused.is_running(), "same pid, another start time");
        let other_boot = SupervisorInfo {
            boot_id: Some("another-boot".into()),
            ..info
        };
        assert!(!other_boot.is_running());
    }
}
