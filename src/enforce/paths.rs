//! Policy paths are objects, not text. Each one is opened with the trusted walk
//! (`safe_fs::resolve`: `O_NOFOLLOW` per component, a symlink followed only where no
//! untrusted user could have planted it, never a `/proc` magic link) and what the descriptor
//! *is* decides, not how the path is spelled:
//!
//! - read_write on the root directory (same device and inode as `/`: `/proc/self/root`, a
//!   trusted link to `/`, a bind mount of `/`) is refused; read_only of it only when the
//!   policy writes `/`;
//! - a symlink an untrusted user could have planted is never followed: a workload that
//!   replaced a tree of its workspace with a link to `/` between two runs is refused at the
//!   next start, with the link and who could have planted it;
//! - a `/proc` magic link (`/dev/stdin`, `/dev/fd/N`, `/proc/PID/root`) points wherever the
//!   process that opens it points; the supervisor opens the paths, so it is refused.
//!   `/proc/self` itself would name the supervisor's entry, not the child's: it grants
//!   nothing and says so (OpenShell's examples list it);
//! - a device reached through a directory an untrusted user can modify was not put there by
//!   the image: refused.
//!
//! The descriptor judged is the one the Landlock rule is built from.

use crate::safe_fs::{self, walk::Untrusted, Final, Resolved, Trust, WalkError};
use std::os::fd::OwnedFd;
use std::path::Path;

/// What became of one policy path.
#[derive(Debug)]
pub enum Opened {
    /// Grant the rule on this descriptor (`O_PATH`).
    Rule { fd: OwnedFd, dir: bool },
    /// Does not exist: grants nothing.
    Missing,
    /// Cannot mean for the child what it says; grants nothing. The reason is logged.
    Skipped(String),
}

/// The paths that name "the process that opens this": the supervisor here, not the child.
const SELF_LINKS: &[&str] = &["/proc/self", "/proc/thread-self"];

/// Opens `path` (already clean and absolute) for a rule; `writable` for read_write. An Err
/// is the reason the policy is refused for this path.
pub fn open(path: &Path, writable: bool, trust: &Trust) -> Result<Opened, String> {
    if SELF_LINKS.iter().any(|l| path == Path::new(l)) {
        return Ok(Opened::Skipped(format!(
            "{} names the process that opens it, which is the supervisor, not the child; it \
             grants nothing here (list /proc to let the child read its own /proc entries)",
            path.display()
        )));
    }
    let r = match safe_fs::resolve(path, trust, Final::Path) {
        Ok(r) => r,
        Err(WalkError::NotFound { .. }) => return Ok(Opened::Missing),
        Err(e) => return Err(walk_refusal(path, &e)),
    };
    judge(path, writable, &r)?;
    Ok(Opened::Rule {
        dir: r.is_dir(),
        fd: r.fd,
    })
}

fn judge(path: &Path, writable: bool, r: &Resolved) -> Result<(), String> {
    let via = match r.followed.first() {
        Some(l) => format!(" (reached through the symlink {})", l.display()),
        None => String::new(),
    };
    if r.is_root {
        if writable {
            return Err(format!(
                "{} is the root directory (same device and inode as /){via}; read_write on it \
                 would let the child write the whole filesystem: list the writable trees",
                path.display()
            ));
        }
        if path != Path::new("/") {
            return Err(format!(
                "{} is the root directory (same device and inode as /){via}; write / if the \
                 whole filesystem is meant to be readable",
                path.display()
            ));
        }
    }
    let kind = r.file_type();
    if let Some(u) = &r.untrusted {
        if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
            return Err(format!(
                "{} is a device inside {}, which {}; a device there was not put there by the \
                 image, so it is not granted",
                path.display(),
                u.dir.display(),
                who(u)
            ));
        }
    }
    Ok(())
}

fn who(u: &Untrusted) -> String {
    if u.mode & 0o002 != 0 {
        format!("any user can modify (mode {:o})", u.mode & 0o7777)
    } else if u.mode & 0o020 != 0 {
        format!(
            "uid {} and its group can modify (mode {:o})",
            u.uid,
            u.mode & 0o7777
        )
    } else {
        format!("uid {} can modify", u.uid)
    }
}

fn walk_refusal(path: &Path, e: &WalkError) -> String {
    match e {
        WalkError::UntrustedSymlink { link, dir } => format!(
            "{}: {} is a symlink in {}, which {}: it may have been planted (a workload can \
             replace what it owns between runs), so it is not followed; remove it or name \
             the real path",
            path.display(),
            link.display(),
            dir.dir.display(),
            who(dir)
        ),
        WalkError::ProcLink { link } => format!(
            "{}: {} is a /proc magic link, whose target depends on the process that opens it \
             (the supervisor, not the child); name the real path",
            path.display(),
            link.display()
        ),
        other => format!(
            "cannot open {} for a Landlock rule: {other}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Trust {
        Trust::of(&[0])
    }

    #[test]
    fn root_by_identity() {
        assert!(open(Path::new("/"), false, &root()).is_ok());
        let e = open(Path::new("/"), true, &root()).unwrap_err();
        assert!(e.contains("root directory"), "{e}");
        let e = open(Path::new("/proc/self/root"), true, &root()).unwrap_err();
        assert!(e.contains("magic link"), "{e}");
        for p in ["/dev/stdin", "/dev/fd/0", "/proc/1/root", "/proc/self/cwd"] {
            let e = open(Path::new(p), false, &root()).unwrap_err();
            assert!(e.contains("magic link"), "{p}: {e}");
        }
        assert!(matches!(
            open(Path::new("/proc/self"), false, &root()).unwrap(),
            Opened::Skipped(_)
        ));
        assert!(matches!(
            open(Path::new("/no/such/dir"), false, &root()).unwrap(),
            Opened::Missing
        ));
        assert!(matches!(
            open(Path::new("/dev/null"), true, &root()).unwrap(),
            Opened::Rule { dir: false, .. }
        ));
    }
}
