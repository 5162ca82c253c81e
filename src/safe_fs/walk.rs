//! Trusted path resolution: `/`, then one component at a time.
//!
//! Each component is opened with `openat(dir, name, O_PATH|O_NOFOLLOW)` relative to the
//! directory descriptor the walk already holds, and judged by `fstat` of what was opened.
//! A directory *protects* an entry when no untrusted user can replace that entry: the
//! directory is owned by a trusted uid and not writable by group or others, or it is a
//! trusted sticky directory (like `/tmp`) and the entry itself is owned by a trusted uid.
//!
//! - A symlink is followed only when it is protected (so only a trusted user could have
//!   planted it or can change it) and it is not in procfs (`/proc/self/root`,
//!   `/proc/PID/fd/N` are magic links whose target depends on who asks). Anything else is an
//!   error naming the link: the walk never goes where an attacker points it.
//! - The first directory that does not protect the next entry is reported in
//!   [`Resolved::untrusted`]; callers that need the whole chain trusted (the boot hook, its
//!   interpreter, a root supervisor's policy file) refuse it, callers that only need "no
//!   attacker symlink" (policy paths inside the workspace) accept it.
//! - `..` goes back to the directory the walk came from, as the kernel does.
//!
//! The descriptor of the final object is returned, so the caller acts on the very inode that
//! was judged; renaming or swapping anything on the path afterwards changes nothing for it.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The kernel's own limit on symlinks followed in one lookup.
const MAX_LINKS: u32 = 40;
const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;

/// Whose files and directories are trusted: root, and the uid the supervisor runs as (an
/// unprivileged supervisor trusts what it owns, as it can change it itself anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    uids: Vec<u32>,
}

impl Trust {
    /// Root and this process's effective uid.
    pub fn root_and_self() -> Trust {
        // SAFETY: geteuid has no failure mode.
        let me = unsafe { libc::geteuid() };
        Trust::of(&[0, me])
    }

    pub fn of(uids: &[u32]) -> Trust {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        Trust { uids }
    }

    pub fn trusts(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }
}

/// How the final component is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// `O_PATH`: for Landlock rules, `fstat`, `execveat`. Opens nothing, triggers nothing.
    Path,
    /// `O_RDONLY|O_NONBLOCK|O_NOCTTY` for regular files and directories (re-opened by name
    /// and checked to be the same inode); anything else stays an `O_PATH` descriptor, so a
    /// FIFO never blocks and a device is never opened.
    Read,
}

/// A directory on the path that someone other than a trusted user could modify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub dir: PathBuf,
    pub uid: u32,
    pub mode: u32,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "directory {} (owner uid {}, mode {:o})",
            self.dir.display(),
            self.uid,
            self.mode & 0o7777
        )
    }
}

/// The object at the end of a walk.
#[derive(Debug)]
pub struct Resolved {
    pub fd: OwnedFd,
    pub stat: libc::stat,
    /// The path as resolved, every followed symlink replaced by its target.
    pub real: PathBuf,
    /// The first directory on the resolved chain that does not protect the next entry.
    pub untrusted: Option<Untrusted>,
    /// The symlinks that were followed (each one protected), in order.
    pub followed: Vec<PathBuf>,
    /// The object is the root directory (same device and inode as `/`): a bind mount of
    /// `/` or `/proc/self/root`-style aliases are caught by identity, not spelling.
    pub is_root: bool,
}

impl Resolved {
    pub fn file_type(&self) -> u32 {
        self.stat.st_mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    pub fn is_regular(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    /// The whole chain is trusted, and the object is a regular file owned by a trusted uid
    /// that neither group nor others can write. `what` names it in the error ("boot hook").
    pub fn require_trusted_file(&self, trust: &Trust, what: &str) -> Result<(), String> {
        if !self.is_regular() {
            return Err(format!(
                "{what} {} is {}, not a regular file",
                self.real.display(),
                kind_name(self.file_type())
            ));
        }
        if !trust.trusts(self.stat.st_uid) {
            return Err(format!(
                "{what} {} is owned by uid {}, not root; chown root it",
                self.real.display(),
                self.stat.st_uid
            ));
        }
        if let Some(u) = &self.untrusted {
            return Err(format!(
                "{what} {} is reached through {u}, which a user other than root can modify; \
                 make every directory on the path root-owned and not group/world-writable",
                self.real.display()
            ));
        }
        if self.stat.st_mode & 0o022 != 0 {
            return Err(format!(
                "{what} {} is writable by group or others (mode {:o}); chmod go-w it",
                self.real.display(),
                self.stat.st_mode & 0o7777
            ));
        }
        Ok(())
    }
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// A component does not exist.
    NotFound {
        path: PathBuf,
    },
    NotAbsolute {
        path: PathBuf,
    },
    /// A component before the last is not a directory.
    NotADirectory {
        path: PathBuf,
    },
    /// A symlink that an untrusted user could have planted or can change.
    UntrustedSymlink {
        link: PathBuf,
        dir: Untrusted,
    },
    /// A symlink in procfs: its target depends on the process that resolves it.
    ProcLink {
        link: PathBuf,
    },
    TooManyLinks {
        path: PathBuf,
    },
    /// The object was swapped between the `O_PATH` open and the re-open for reading.
    Raced {
        path: PathBuf,
    },
    Io {
        path: PathBuf,
        op: &'static str,
        err: io::Error,
    },
}

impl WalkError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, WalkError::NotFound { .. })
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::NotFound { path } => write!(f, "{} does not exist", path.display()),
            WalkError::NotAbsolute { path } => {
                write!(f, "{} is not an absolute path", path.display())
            }
            WalkError::NotADirectory { path } => {
                write!(f, "{} is not a directory", path.display())
            }
            WalkError::UntrustedSymlink { link, dir } => write!(
                f,
                "{} is a symlink in {dir}, which a user other than root can modify; \
                 symlinks are followed only where nobody else could have planted them",
                link.display()
            ),
            WalkError::ProcLink { link } => write!(
                f,
                "{} is a symlink in /proc, whose target depends on the process that reads it; \
                 name the real path instead",
                link.display()
            ),
            WalkError::TooManyLinks { path } => write!(
                f,
                "{}: more than {MAX_LINKS} symlinks on the way",
                path.display()
            ),
            WalkError::Raced { path } => write!(
                f,
                "{} was replaced while it was being opened",
                path.display()
            ),
            WalkError::Io { path, op, err } => write!(f, "{op} {}: {err}", path.display()),
        }
    }
}

impl std::error::Error for WalkError {}

/// How a directory protects its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Owned by a trusted uid, not writable by group or others.
    Closed,
    /// Owned by a trusted uid, writable by others, sticky: others cannot rename or remove
    /// entries they do not own.
    Sticky,
    /// Anyone else with write access may replace any entry.
    Open,
}

fn guard_of(st: &libc::stat, trust: &Trust) -> Guard {
    if !trust.trusts(st.st_uid) {
        return Guard::Open;
    }
    if st.st_mode & 0o022 == 0 {
        Guard::Closed
    } else if st.st_mode & libc::S_ISVTX != 0 {
        Guard::Sticky
    } else {
        Guard::Open
    }
}

struct Dir {
    fd: OwnedFd,
    stat: libc::stat,
    real: PathBuf,
    guard: Guard,
    /// This directory itself was reached through protected entries only.
    reached_safely: bool,
}

/// Resolves the absolute `path` as described in the module documentation.
pub fn resolve(path: &Path, trust: &Trust, fin: Final) -> Result<Resolved, WalkError> {
    if !path.is_absolute() {
        return Err(WalkError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    let root_path = PathBuf::from("/");
    let root_fd = open_at(
        libc::AT_FDCWD,
        OsStr::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|err| io_err(&root_path, "open", err))?;
    let root_stat = fstat(root_fd.as_raw_fd()).map_err(|err| io_err(&root_path, "stat", err))?;
    let same_as_root =
        |st: &libc::stat| st.st_dev == root_stat.st_dev && st.st_ino == root_stat.st_ino;
    let mut stack = vec![Dir {
        guard: guard_of(&root_stat, trust),
        fd: root_fd,
        stat: root_stat,
        real: root_path,
        reached_safely: true,
    }];
    let mut untrusted: Option<Untrusted> = None;
    let mut followed = Vec::new();
    let mut links = 0u32;
    let mut queue = components(path.as_os_str());

    while let Some(name) = queue.pop_front() {
        if name == "." {
            continue;
        }
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root stays on the stack");
        let here = cur.real.join(&name);
        let fd = match open_at(cur.fd.as_raw_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(WalkError::NotFound { path: here })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(WalkError::NotADirectory {
                    path: cur.real.clone(),
                })
            }
            Err(err) => return Err(io_err(&here, "open", err)),
        };
        let st = fstat(fd.as_raw_fd()).map_err(|err| io_err(&here, "stat", err))?;
        let protected = cur.reached_safely
            && match cur.guard {
                Guard::Closed => true,
                Guard::Sticky => trust.trusts(st.st_uid),
                Guard::Open => false,
            };
        let untrusted_here = || Untrusted {
            dir: cur.real.clone(),
            uid: cur.stat.st_uid,
            mode: cur.stat.st_mode,
        };

        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            if !protected {
                let dir = untrusted.clone().unwrap_or_else(untrusted_here);
                return Err(WalkError::UntrustedSymlink { link: here, dir });
            }
            if on_procfs(cur.fd.as_raw_fd()) {
                return Err(WalkError::ProcLink { link: here });
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(WalkError::TooManyLinks {
                    path: path.to_path_buf(),
                });
            }
            let target = read_link_at(cur.fd.as_raw_fd(), &name)
                .map_err(|err| io_err(&here, "readlink", err))?;
            followed.push(here);
            if Path::new(&target).is_absolute() {
                stack.truncate(1);
            }
            let mut next = components(&target);
            next.extend(queue);
            queue = next;
            continue;
        }

        if !protected && untrusted.is_none() {
            untrusted = Some(untrusted_here());
        }
        if queue.is_empty() {
            let fd = match fin {
                Final::Path => fd,
                Final::Read => {
                    reopen_for_read(cur.fd.as_raw_fd(), &name, &st, &here)?.unwrap_or(fd)
                }
            };
            return Ok(Resolved {
                fd,
                is_root: same_as_root(&st),
                stat: st,
                real: here,
                untrusted,
                followed,
            });
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(WalkError::NotADirectory { path: here });
        }
        stack.push(Dir {
            guard: guard_of(&st, trust),
            fd,
            stat: st,
            real: here,
            reached_safely: protected,
        });
    }

    // The path ended on a directory already on the stack (`/`, `/a/..`).
    let cur = stack.pop().expect("the root stays on the stack");
    let fd = match fin {
        Final::Path => cur.fd,
        Final::Read => reopen_for_read(cur.fd.as_raw_fd(), OsStr::new("."), &cur.stat, &cur.real)?
            .unwrap_or(cur.fd),
    };
    if !cur.reached_safely && untrusted.is_none() {
        untrusted = Some(Untrusted {
            dir: cur.real.clone(),
            uid: cur.stat.st_uid,
            mode: cur.stat.st_mode,
        });
    }
    Ok(Resolved {
        fd,
        is_root: same_as_root(&cur.stat),
        stat: cur.stat,
        real: cur.real,
        untrusted,
        followed,
    })
}

/// Path components as raw names, `.` and `..` kept (the walk handles them).
fn components(p: &OsStr) -> VecDeque<OsString> {
    p.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

/// Opens regular files and directories for reading, checked to be the inode the `O_PATH`
/// walk judged. Other types are not opened (`None`): the caller refuses them by type.
fn reopen_for_read(
    dir: RawFd,
    name: &OsStr,
    st: &libc::stat,
    here: &Path,
) -> Result<Option<OwnedFd>, WalkError> {
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFDIR {
        return Ok(None);
    }
    let fd = open_at(
        dir,
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .map_err(|err| io_err(here, "open", err))?;
    let now = fstat(fd.as_raw_fd()).map_err(|err| io_err(here, "stat", err))?;
    if now.st_dev != st.st_dev || now.st_ino != st.st_ino {
        return Err(WalkError::Raced {
            path: here.to_path_buf(),
        });
    }
    Ok(Some(fd))
}

fn io_err(path: &Path, op: &'static str, err: io::Error) -> WalkError {
    WalkError::Io {
        path: path.to_path_buf(),
        op,
        err,
    }
}

/// `openat` with `O_CLOEXEC` added.
pub(crate) fn open_at(dir: RawFd, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NUL-terminated name and a descriptor we hold; the result is a new fd we own.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat fills the zeroed struct we own; it works on O_PATH descriptors.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

fn on_procfs(fd: RawFd) -> bool {
    // SAFETY: fstatfs fills the zeroed struct we own.
    unsafe {
        let mut sfs: libc::statfs = std::mem::zeroed();
        libc::fstatfs(fd, &mut sfs) == 0 && sfs.f_type as libc::c_long == PROC_SUPER_MAGIC
    }
}

fn read_link_at(dir: RawFd, name: &OsStr) -> io::Result<OsString> {
    let c =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n == buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{chown, symlink, PermissionsExt};

    const NOBODY: u32 = 65534;

    /// A root-owned 0755 scratch tree under /tmp (the unit tests run as root, as CI does).
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let p = PathBuf::from(format!("/tmp/safe-fs-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            Tree(p)
        }
        fn dir(&self, rel: &str, mode: u32, uid: u32) -> PathBuf {
            let p = self.0.join(rel);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            chown(&p, Some(uid), Some(uid)).unwrap();
            p
        }
        fn file(&self, rel: &str, mode: u32, uid: u32) -> PathBuf {
            let p = self.0.join(rel);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            chown(&p, Some(uid), Some(uid)).unwrap();
            p
        }
        fn link(&self, rel: &str, target: &str, uid: u32) -> PathBuf {
            let p = self.0.join(rel);
            symlink(target, &p).unwrap();
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
            p
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn root_only() -> Trust {
        Trust::of(&[0])
    }

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the safe_fs tests chown files: run them as root (CI does)"
        );
    }

    #[test]
    fn trusted_chain_with_a_trusted_symlink_resolves_to_the_target() {
        require_root();
        let t = Tree::new("trusted");
        t.dir("etc", 0o755, 0);
        let hook = t.file("etc/boot.sh", 0o755, 0);
        t.link("link", "etc", 0);
        let r = resolve(&t.0.join("link/boot.sh"), &root_only(), Final::Read).unwrap();
        assert_eq!(r.real, hook);
        assert_eq!(r.followed, [t.0.join("link")]);
        assert!(r.untrusted.is_none());
        r.require_trusted_file(&root_only(), "hook").unwrap();
        // Read mode gave a readable descriptor of that very file.
        let mut s = String::new();
        std::io::Read::read_to_string(&mut fs::File::from(r.fd), &mut s).unwrap();
        assert_eq!(s, "#!/bin/sh\n");
    }

    #[test]
    fn symlink_in_a_directory_others_can_write_is_never_followed() {
        require_root();
        let t = Tree::new("userdir");
        t.dir("etc", 0o755, 0);
        t.file("etc/boot.sh", 0o755, 0);
        // The attack from the issue: nobody's directory, nobody's link to a trusted dir.
        t.dir("userdir", 0o755, NOBODY);
        t.link("userdir/link", "../etc", NOBODY);
        let e = resolve(&t.0.join("userdir/link/boot.sh"), &root_only(), Final::Read).unwrap_err();
        match &e {
            WalkError::UntrustedSymlink { link, dir } => {
                assert_eq!(link, &t.0.join("userdir/link"));
                assert_eq!(dir.uid, NOBODY);
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("userdir/link"), "{e}");
        // A root-owned link in nobody's directory is no better: nobody can swap it.
        fs::remove_file(t.0.join("userdir/link")).unwrap();
        t.link("userdir/link", "../etc", 0);
        assert!(matches!(
            resolve(&t.0.join("userdir/link/boot.sh"), &root_only(), Final::Read),
            Err(WalkError::UntrustedSymlink { .. })
        ));
    }

    #[test]
    fn untrusted_directories_are_reported_and_fail_the_trusted_file_check() {
        require_root();
        let t = Tree::new("untrusted");
        t.dir("ws", 0o755, NOBODY);
        t.dir("ws/sub", 0o755, 0);
        t.file("ws/sub/boot.sh", 0o755, 0);
        let r = resolve(&t.0.join("ws/sub/boot.sh"), &root_only(), Final::Path).unwrap();
        let u = r.untrusted.clone().expect("ws is nobody's");
        assert_eq!((u.dir, u.uid), (t.0.join("ws"), NOBODY));
        let e = r
            .require_trusted_file(&root_only(), "boot hook")
            .unwrap_err();
        assert!(e.contains("ws") && e.contains("65534"), "{e}");
        // World-writable, not sticky: also open.
        t.dir("open", 0o777, 0);
        t.file("open/x", 0o755, 0);
        let r = resolve(&t.0.join("open/x"), &root_only(), Final::Path).unwrap();
        assert_eq!(r.untrusted.unwrap().dir, t.0.join("open"));
    }

    #[test]
    fn sticky_directories_protect_only_trusted_entries() {
        require_root();
        let t = Tree::new("sticky");
        t.dir("tmp", 0o1777, 0);
        t.file("tmp/roots", 0o755, 0);
        t.file("tmp/nobodys", 0o755, NOBODY);
        let r = resolve(&t.0.join("tmp/roots"), &root_only(), Final::Path).unwrap();
        assert!(r.untrusted.is_none());
        let r = resolve(&t.0.join("tmp/nobodys"), &root_only(), Final::Path).unwrap();
        assert!(r.untrusted.is_some());
        assert!(r
            .require_trusted_file(&root_only(), "hook")
            .unwrap_err()
            .contains("not root"));
        t.link("tmp/nlink", "roots", NOBODY);
        assert!(matches!(
            resolve(&t.0.join("tmp/nlink"), &root_only(), Final::Path),
            Err(WalkError::UntrustedSymlink { .. })
        ));
    }

    #[test]
    fn proc_magic_links_are_refused_and_root_is_recognised_by_identity() {
        require_root();
        let e = resolve(Path::new("/proc/self/root"), &root_only(), Final::Path).unwrap_err();
        assert!(matches!(e, WalkError::ProcLink { .. }), "{e}");
        let e = resolve(Path::new("/proc/self/root/etc"), &root_only(), Final::Path).unwrap_err();
        assert!(matches!(e, WalkError::ProcLink { .. }), "{e}");
        let r = resolve(Path::new("/"), &root_only(), Final::Path).unwrap();
        assert!(r.is_root && r.is_dir());
        let r = resolve(Path::new("/etc/.."), &root_only(), Final::Read).unwrap();
        assert!(r.is_root);
        let t = Tree::new("rootlink");
        t.link("up", "/", 0);
        let r = resolve(&t.0.join("up"), &root_only(), Final::Path).unwrap();
        assert!(r.is_root, "a trusted link to / is still /");
    }

    #[test]
    fn fifos_are_not_opened_and_missing_paths_say_so() {
        require_root();
        let t = Tree::new("fifo");
        let fifo = t.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        // Would block forever if it were opened O_RDONLY without O_NONBLOCK.
        let r = resolve(&fifo, &root_only(), Final::Read).unwrap();
        assert_eq!(r.file_type(), libc::S_IFIFO);
        assert!(r
            .require_trusted_file(&root_only(), "policy")
            .unwrap_err()
            .contains("FIFO"));
        let e = resolve(&t.0.join("nope/x"), &root_only(), Final::Path).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("nope"), "{e}");
        t.file("f", 0o644, 0);
        assert!(matches!(
            resolve(&t.0.join("f/x"), &root_only(), Final::Path),
            Err(WalkError::NotADirectory { .. })
        ));
        assert!(matches!(
            resolve(Path::new("rel/x"), &root_only(), Final::Path),
            Err(WalkError::NotAbsolute { .. })
        ));
    }

    #[test]
    fn link_loops_end() {
        require_root();
        let t = Tree::new("loop");
        t.link("a", "b", 0);
        t.link("b", "a", 0);
        assert!(matches!(
            resolve(&t.0.join("a"), &root_only(), Final::Path),
            Err(WalkError::TooManyLinks { .. })
        ));
    }
}
