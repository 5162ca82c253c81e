//! Opening what the boot hook runs: the hook itself, its `#!` interpreter, the ELF loader
//! of either, the shell for a non-executable hook.
//!
//! As root (strict) every one of them goes through the trusted walk
//! ([`crate::safe_fs::resolve`]): each component of the path as given is opened
//! `O_NOFOLLOW` and judged by `fstat`, a symlink is followed only where nobody but root
//! could have planted it, and the file must be a regular root-owned file that neither group
//! nor others can write, reached only through directories nobody else can modify. The
//! descriptor that was judged is what gets executed. Without root (lenient) the supervisor
//! can only run what its own user may run anyway: the file is opened normally and must be a
//! regular file, and is still executed by descriptor.

use crate::safe_fs::{self, Final, Trust, WalkError};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A file opened for reading (and so for `execveat`) after its checks.
#[derive(Debug)]
pub struct Opened {
    pub fd: OwnedFd,
    /// The path as resolved (symlinks replaced by their targets).
    pub real: PathBuf,
    pub mode: u32,
}

impl Opened {
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// What is at a path.
pub enum Lookup {
    /// Nothing: a component does not exist.
    Missing,
    /// A component before the last is not a directory (a `PATH` search moves on).
    NotADirectory,
    /// Something other than a regular file (a directory, FIFO, device): why, for an error.
    NotRegular(String),
    Found(Opened),
}

pub struct Opener {
    /// Root's rules apply (the supervisor runs as root).
    strict: bool,
    trust: Trust,
}

impl Opener {
    pub fn new(strict: bool) -> Opener {
        Opener {
            strict,
            trust: Trust::root_and_self(),
        }
    }

    /// Opens `path`; `what` names it in errors ("boot hook", "interpreter"). A file that
    /// exists but fails a check is an error, never [`Lookup::Missing`].
    pub fn open(&self, path: &Path, what: &str) -> Result<Lookup, String> {
        if self.strict {
            let r = match safe_fs::resolve(path, &self.trust, Final::Read) {
                Ok(r) => r,
                Err(e) if e.is_not_found() => return Ok(Lookup::Missing),
                Err(WalkError::NotADirectory { .. }) => return Ok(Lookup::NotADirectory),
                Err(e) => return Err(format!("{what} {}: {e}", path.display())),
            };
            if !r.is_regular() {
                // Judged by type before trust: a PATH search passes over a directory.
                return Ok(Lookup::NotRegular(
                    r.require_trusted_file(&self.trust, what).unwrap_err(),
                ));
            }
            r.require_trusted_file(&self.trust, what)?;
            return Ok(Lookup::Found(Opened {
                mode: r.stat.st_mode,
                real: r.real,
                fd: r.fd,
            }));
        }
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{what} {}: a NUL byte in the path", path.display()))?;
        // SAFETY: open with a NUL-terminated path; the result is a new fd we own.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(Lookup::Missing),
                Some(libc::ENOTDIR) => Ok(Lookup::NotADirectory),
                _ => Err(format!("cannot open {what} {}: {e}", path.display())),
            };
        }
        // SAFETY: open returned a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(&fd).map_err(|e| format!("cannot stat {what} {}: {e}", path.display()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(Lookup::NotRegular(format!(
                "{what} {} is not a regular file",
                path.display()
            )));
        }
        Ok(Lookup::Found(Opened {
            fd,
            real: path.to_path_buf(),
            mode: st.st_mode,
        }))
    }

    /// Like [`open`](Self::open), for a file that must exist.
    pub fn open_existing(&self, path: &Path, what: &str) -> Result<Opened, String> {
        match self.open(path, what)? {
            Lookup::Found(o) => Ok(o),
            Lookup::NotRegular(why) => Err(why),
            Lookup::Missing | Lookup::NotADirectory => {
                Err(format!("{what} {} does not exist", path.display()))
            }
        }
    }

    /// Checks the ELF loader (`PT_INTERP`) of `of`: as root it must pass the same walk.
    /// The kernel opens it by name at exec; a trusted chain means only root could change
    /// what that name points at.
    pub fn check_loader(&self, loader: &Path, of: &Path) -> Result<(), String> {
        if !self.strict {
            return Ok(());
        }
        let what = format!("ELF interpreter (PT_INTERP) of {}", of.display());
        if !loader.is_absolute() {
            return Err(format!(
                "{what} is the relative path {}, which depends on the working directory",
                loader.display()
            ));
        }
        let r = safe_fs::resolve(loader, &self.trust, Final::Path)
            .map_err(|e| format!("{what}: {e}"))?;
        r.require_trusted_file(&self.trust, &what)
    }
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: fstat fills the zeroed struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st)
    }
}
