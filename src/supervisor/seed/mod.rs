//! Workspace seeding: the first boot of a fresh workspace (an empty volume, PVC or VM disk)
//! copies the image's seed tree into it, so every backend starts from the same `/sandbox`.
//!
//! The supervisor does this as root in a tree the workload owns and may have prepared (on a
//! later boot, after deleting the marker): symlinks to `/etc/shadow`, FIFOs, hardlinks,
//! directories swapped for symlinks while we copy. So:
//! - every open is relative to a directory descriptor we hold, through [`beneath`]
//!   (`openat2` with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
//!   RESOLVE_NO_XDEV`); nothing the workload planted is followed, opened or crossed;
//! - nothing existing is written: an entry already at a seed path is kept as it is (a
//!   directory is merged into), new files are written under an unpredictable temporary name
//!   and moved into place with `RENAME_NOREPLACE`;
//! - owners, modes and times are set on descriptors of objects we created ourselves, and a
//!   new directory is checked to still be ours (root-owned) before we write into it;
//! - the marker is written last, after `syncfs`: a copy interrupted by a full disk or a
//!   power cut is simply completed at the next boot.

pub mod beneath;

use crate::contract::time::now_rfc3339;
use crate::safe_fs::{self, Final, Trust};
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::{debug, info, warn};

/// Written into the workspace root once the seed tree has been copied completely.
pub const MARKER: &str = ".openshell-seeded";
pub const DEFAULT_SEED: &str = "/opt/openshell/seed";
pub const DEFAULT_WORKSPACE: &str = "/sandbox";
/// Deeper seed trees are refused rather than recursed into without bound.
const MAX_DEPTH: usize = 64;

/// What seeding did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No seed tree at the path: nothing to do (images without one, runs on a host).
    NoSeedTree,
    /// The workspace has the marker: seeded on an earlier boot.
    AlreadySeeded,
    Seeded(Stats),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Seed entries whose path already existed in the workspace and were left as they are.
    pub kept: u64,
    /// Seed entries not copied: an unsupported type, or a conflict the workload caused.
    pub skipped: u64,
}

/// Why seeding failed; nothing is half-done in a way the next boot cannot complete.
#[derive(Debug)]
pub struct SeedError {
    pub path: PathBuf,
    pub op: &'static str,
    pub err: io::Error,
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.err)?;
        match self.err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => f.write_str(
                "; the workspace filesystem is full: free space or give the sandbox a larger \
                 workspace (seeding resumes at the next start)",
            ),
            Some(libc::EROFS) => f.write_str("; the workspace is mounted read-only"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for SeedError {}

fn fail(path: &Path, op: &'static str, err: io::Error) -> SeedError {
    SeedError {
        path: path.to_path_buf(),
        op,
        err,
    }
}

/// Seeding at boot, before the hook: `--seed`/`--no-seed` into `--workspace`. A failure is
/// reported as `Failed`/`seed_failed` and returned as the exit code.
pub(crate) fn at_boot(
    args: &super::cli::RunArgs,
    report: &mut super::report::Reporter,
) -> Result<(), i32> {
    if args.no_seed {
        debug!(
            event = "seed.disabled",
            "workspace seeding disabled (--no-seed)"
        );
        return Ok(());
    }
    let booting = |r: &mut super::report::Reporter| {
        r.status.message = Some(format!(
            "seeding {} from {}",
            args.workspace.display(),
            args.seed.display()
        ));
        r.write();
    };
    let mut wrote = false;
    let result = seed(&args.seed, &args.workspace, || {
        booting(report);
        wrote = true;
    });
    if wrote {
        report.status.message = None;
    }
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(event = "seed.failed", seed = %args.seed.display(), workspace = %args.workspace.display(),
                error = %e, "seeding the workspace failed; the hook and the child were not started");
            let msg = format!(
                "seeding {} from {} failed: {e}",
                args.workspace.display(),
                args.seed.display()
            );
            report.phase(
                crate::contract::Phase::Failed,
                Some(crate::contract::Reason::SeedFailed),
                Some(msg),
            );
            let code = crate::contract::ExitCode::SeedFailed.code();
            info!(
                event = "supervisor.exit",
                code,
                phase = "Failed",
                "supervisor exiting"
            );
            Err(code)
        }
    }
}

/// Seeds `workspace` from `seed` unless it has the marker. Both must be absolute.
///
/// `booting` is called once, just before the first write, so the caller can report the
/// `Booting` phase only when there is real work (the common case, a seeded workspace, costs
/// a `stat` or two and writes nothing).
pub fn seed(seed: &Path, workspace: &Path, booting: impl FnOnce()) -> Result<Outcome, SeedError> {
    let trust = Trust::root_and_self();
    // The seed tree is image content copied as root with its owners and modes (setuid bits
    // included), so the directories above it must be ones only root can change.
    let src = match safe_fs::resolve(seed, &trust, Final::Read) {
        Ok(r) => r,
        Err(e) if e.is_not_found() => {
            debug!(event = "seed.none", seed = %seed.display(), "no seed tree; nothing to seed");
            return Ok(Outcome::NoSeedTree);
        }
        Err(e) => {
            return Err(fail(
                seed,
                "open seed tree",
                io::Error::other(e.to_string()),
            ))
        }
    };
    if !src.is_dir() {
        return Err(fail(
            seed,
            "open seed tree",
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    if let Some(u) = &src.untrusted {
        let why = format!(
            "it is reached through {u}, which a user other than root can modify; \
             make the directories above the seed tree root-owned and not group/world-writable"
        );
        return Err(fail(seed, "trust seed tree", io::Error::other(why)));
    }
    // The workspace itself is the workload's; the walk only refuses symlinks an untrusted
    // user could have planted on the way to it.
    let ws = safe_fs::resolve(workspace, &trust, Final::Read).map_err(|e| {
        let err = if e.is_not_found() {
            io::Error::other(format!(
                "{e}; mount the workspace there or pass --workspace (or --no-seed)"
            ))
        } else {
            io::Error::other(e.to_string())
        };
        fail(workspace, "open workspace", err)
    })?;
    if !ws.is_dir() {
        return Err(fail(
            workspace,
            "open workspace",
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let marker = c_name(MARKER);
    if beneath::lstat(ws.fd.as_raw_fd(), &marker)
        .map_err(|e| fail(&workspace.join(MARKER), "stat", e))?
        .is_some()
    {
        info!(event = "seed.skipped", workspace = %workspace.display(), marker = MARKER, "workspace already seeded");
        return Ok(Outcome::AlreadySeeded);
    }
    if (src.stat.st_dev, src.stat.st_ino) == (ws.stat.st_dev, ws.stat.st_ino) {
        return Err(fail(
            workspace,
            "seed workspace",
            io::Error::other("the workspace is the seed tree itself"),
        ));
    }

    booting();
    let started = Instant::now();
    info!(event = "seed.start", seed = %seed.display(), workspace = %workspace.display(), "seeding the workspace");
    let mut copy = Copy {
        stats: Stats::default(),
        workspace: ws.stat,
        euid: nix::unistd::geteuid().as_raw(),
    };
    copy.dir(&src.fd, &ws.fd, workspace, 0)?;
    // The root of a fresh volume is root:root 0755 (ext4, most PVCs): it takes the seed
    // root's owner and mode, as a container engine does for a new named volume.
    let root = ws.fd.as_raw_fd();
    beneath::chown_fd(root, src.stat.st_uid, src.stat.st_gid)
        .and_then(|()| beneath::chmod_fd(root, src.stat.st_mode & 0o7777))
        .map_err(|e| fail(workspace, "set owner and mode of", e))?;
    // Everything copied is on disk before the marker says so.
    beneath::syncfs(root).map_err(|e| fail(workspace, "sync", e))?;
    write_marker(root, seed, &copy.stats).map_err(|e| fail(&workspace.join(MARKER), "write", e))?;
    let s = &copy.stats;
    info!(
        event = "seed.done",
        workspace = %workspace.display(),
        files = s.files,
        dirs = s.dirs,
        symlinks = s.symlinks,
        bytes = s.bytes,
        kept = s.kept,
        skipped = s.skipped,
        duration_ms = started.elapsed().as_millis() as u64,
        "workspace seeded"
    );
    Ok(Outcome::Seeded(copy.stats))
}

fn c_name(n: &str) -> CString {
    CString::new(n).expect("constant name without NUL")
}

fn write_marker(ws: RawFd, seed: &Path, s: &Stats) -> io::Result<()> {
    let body = serde_json::json!({
        "seeded_at": now_rfc3339(),
        "seed": seed.display().to_string(),
        "supervisor": env!("CARGO_PKG_VERSION"),
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "kept": s.kept,
    });
    let fd = match beneath::create_new(ws, &c_name(MARKER), 0o644) {
        Ok(fd) => fd,
        // Someone wrote one while we copied: the workspace counts as seeded either way.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut f = File::from(fd);
    f.write_all(format!("{body}\n").as_bytes())?;
    f.sync_all()?;
    beneath::fsync(ws)
}

struct Copy {
    stats: Stats,
    /// The workspace root: a seed tree that contains it is not copied into itself.
    workspace: libc::stat,
    euid: u32,
}

impl Copy {
    /// Copies the entries of `src` into `dst`, where `at` names `dst` in messages.
    fn dir(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        at: &Path,
        depth: usize,
    ) -> Result<(), SeedError> {
        if depth >= MAX_DEPTH {
            return Err(fail(
                at,
                "seed",
                io::Error::other(format!("the seed tree is deeper than {MAX_DEPTH} levels")),
            ));
        }
        let names =
            beneath::list(src.as_raw_fd()).map_err(|e| fail(at, "list seed directory for", e))?;
        for n in names {
            let path = at.join(&n);
            if depth == 0 && n == MARKER {
                continue;
            }
            let cname = match beneath::name(&n) {
                Ok(c) => c,
                Err(e) => return Err(fail(&path, "name", e)),
            };
            self.entry(src, dst, &n, &cname, &path, depth)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        n: &OsStr,
        cname: &CStr,
        path: &Path,
        depth: usize,
    ) -> Result<(), SeedError> {
        let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
        let Some(st) =
            beneath::lstat(s, cname).map_err(|e| fail(path, "stat seed entry for", e))?
        else {
            return Ok(()); // vanished from the seed tree: nothing to copy
        };
        let kind = st.st_mode & libc::S_IFMT;
        let existing = beneath::lstat(d, cname).map_err(|e| fail(path, "stat", e))?;
        match (kind, existing) {
            (libc::S_IFDIR, Some(e)) if e.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                // A directory that is already there (the workload's, or ours from an
                // interrupted copy): merge into it, leave its owner and mode.
                let Some(sub_src) = self.open_seed_dir(s, cname, path)? else {
                    return Ok(());
                };
                match beneath::open_dir(d, cname) {
                    Ok(sub_dst) => self.dir(&sub_src, &sub_dst, path, depth + 1),
                    Err(e) => {
                        self.conflict(path, &e);
                        Ok(())
                    }
                }
            }
            (_, Some(e)) => {
                self.stats.kept += 1;
                debug!(event = "seed.kept", path = %path.display(), kind = kind_name(e.st_mode), "already in the workspace: kept");
                Ok(())
            }
            (libc::S_IFDIR, None) => self.new_dir(s, d, cname, &st, path, depth),
            (libc::S_IFREG, None) => self.new_file(s, d, cname, path),
            (libc::S_IFLNK, None) => self.new_symlink(s, d, cname, &st, path),
            _ => {
                self.stats.skipped += 1;
                warn!(event = "seed.unsupported", path = %path.display(), kind = kind_name(st.st_mode),
                    name = %n.to_string_lossy(), "seed entry of this type is not copied");
                Ok(())
            }
        }
    }

    /// Opens a directory of the seed tree, skipping one that is the workspace itself (a
    /// workspace inside the seed tree) or on another filesystem.
    fn open_seed_dir(
        &mut self,
        s: RawFd,
        cname: &CStr,
        path: &Path,
    ) -> Result<Option<OwnedFd>, SeedError> {
        let fd = match beneath::open_dir(s, cname) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::ELOOP)) => {
                self.stats.skipped += 1;
                warn!(event = "seed.unsupported", path = %path.display(), kind = "mount point", error = %e,
                    "seed directory on another filesystem is not copied");
                return Ok(None);
            }
            Err(e) => return Err(fail(path, "open seed directory for", e)),
        };
        let st =
            beneath::fstat(fd.as_raw_fd()).map_err(|e| fail(path, "stat seed directory for", e))?;
        if (st.st_dev, st.st_ino) == (self.workspace.st_dev, self.workspace.st_ino) {
            self.stats.skipped += 1;
            return Ok(None);
        }
        Ok(Some(fd))
    }

    fn new_dir(
        &mut self,
        s: RawFd,
        d: RawFd,
        cname: &CStr,
        st: &libc::stat,
        path: &Path,
        depth: usize,
    ) -> Result<(), SeedError> {
        let Some(sub_src) = self.open_seed_dir(s, cname, path)? else {
            return Ok(());
        };
        // 0700 root while we fill it: nobody else can enter it or rename its entries.
        match beneath::mkdir(d, cname, 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.conflict(path, &e);
                return Ok(());
            }
            Err(e) => return Err(fail(path, "create directory", e)),
        }
        let sub_dst = match beneath::open_dir(d, cname) {
            Ok(fd) => fd,
            Err(e) if is_planted(&e) => {
                self.conflict(path, &e);
                return Ok(());
            }
            Err(e) => return Err(fail(path, "open new directory", e)),
        };
        // Swapped for another directory between mkdirat and the open? Ours is root's.
        let now = beneath::fstat(sub_dst.as_raw_fd()).map_err(|e| fail(path, "stat", e))?;
        if now.st_uid != self.euid || now.st_mode & 0o7777 != 0o700 {
            self.conflict(
                path,
                &io::Error::other("replaced by another directory while seeding"),
            );
            return Ok(());
        }
        self.dir(&sub_src, &sub_dst, path, depth + 1)?;
        let fd = sub_dst.as_raw_fd();
        beneath::chown_fd(fd, st.st_uid, st.st_gid)
            .and_then(|()| beneath::chmod_fd(fd, st.st_mode & 0o7777))
            .and_then(|()| beneath::set_times(fd, st))
            .map_err(|e| fail(path, "set owner and mode of", e))?;
        self.stats.dirs += 1;
        Ok(())
    }

    fn new_file(&mut self, s: RawFd, d: RawFd, cname: &CStr, path: &Path) -> Result<(), SeedError> {
        let (from, from_st) = match beneath::open_file(s, cname) {
            Ok(v) => v,
            Err(e) => return Err(fail(path, "open seed file for", e)),
        };
        // Under a name nobody can predict; 0600 root until it is complete.
        let mut tmp = beneath::temp_name();
        let mut tries = 0;
        let to = loop {
            match beneath::create_new(d, &tmp, 0o600) {
                Ok(fd) => break fd,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < 8 => {
                    tries += 1;
                    tmp = beneath::temp_name();
                }
                Err(e) if is_planted(&e) => {
                    self.conflict(path, &e);
                    return Ok(());
                }
                Err(e) => return Err(fail(path, "create", e)),
            }
        };
        let written = (|| -> io::Result<u64> {
            let mut to = File::from(to);
            let n = io::copy(&mut File::from(from), &mut to)?;
            let fd = to.as_raw_fd();
            // chown before chmod: chown clears setuid/setgid bits.
            beneath::chown_fd(fd, from_st.st_uid, from_st.st_gid)?;
            beneath::chmod_fd(fd, from_st.st_mode & 0o7777)?;
            beneath::set_times(fd, &from_st)?;
            Ok(n)
        })();
        let n = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = beneath::unlink(d, &tmp);
                return Err(fail(path, "write", e));
            }
        };
        match beneath::rename_noreplace(d, &tmp, cname) {
            Ok(()) => {
                self.stats.files += 1;
                self.stats.bytes += n;
                Ok(())
            }
            Err(e) => {
                let _ = beneath::unlink(d, &tmp);
                if e.raw_os_error() == Some(libc::EEXIST) {
                    // Created by someone else while we copied: theirs stays.
                    self.stats.kept += 1;
                    Ok(())
                } else {
                    Err(fail(path, "move into place", e))
                }
            }
        }
    }

    fn new_symlink(
        &mut self,
        s: RawFd,
        d: RawFd,
        cname: &CStr,
        st: &libc::stat,
        path: &Path,
    ) -> Result<(), SeedError> {
        let target =
            beneath::readlink(s, cname).map_err(|e| fail(path, "read seed symlink for", e))?;
        let ctarget = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()))
            .map_err(|_| {
                fail(
                    path,
                    "read seed symlink for",
                    io::Error::from_raw_os_error(libc::EINVAL),
                )
            })?;
        match beneath::symlink(&ctarget, d, cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.stats.kept += 1;
                return Ok(());
            }
            Err(e) => return Err(fail(path, "create symlink", e)),
        }
        // The link is the workload's to read; its owner is set on a descriptor of the link
        // itself, checked to be the one we just made.
        let fd = match beneath::open_entry(d, cname) {
            Ok(fd) => fd,
            Err(e) => {
                self.conflict(path, &e);
                return Ok(());
            }
        };
        let now = beneath::fstat(fd.as_raw_fd()).map_err(|e| fail(path, "stat", e))?;
        let ours = now.st_mode & libc::S_IFMT == libc::S_IFLNK
            && now.st_uid == self.euid
            && beneath::readlink(fd.as_raw_fd(), c"").ok().as_deref() == Some(target.as_os_str());
        if !ours {
            self.conflict(path, &io::Error::other("replaced while seeding"));
            return Ok(());
        }
        beneath::chown_fd(fd.as_raw_fd(), st.st_uid, st.st_gid)
            .map_err(|e| fail(path, "set owner of", e))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// The workload put something in our way while we copied (a symlink or a mount where a
    /// directory goes, a swapped entry): that path is left alone.
    fn conflict(&mut self, path: &Path, e: &io::Error) {
        self.stats.skipped += 1;
        warn!(event = "seed.conflict", path = %path.display(), error = %e,
            "workspace entry changed under the seeding or crosses a mount: left alone");
    }
}

/// Errors that mean "someone planted or swapped something here", not an I/O failure.
fn is_planted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP)
            | Some(libc::EXDEV)
            | Some(libc::ENOTDIR)
            | Some(libc::EEXIST)
            | Some(libc::ENOENT)
    )
}

fn kind_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "unknown",
    }
}
