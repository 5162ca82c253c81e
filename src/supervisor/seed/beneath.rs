//! Operations on one entry of a directory we hold a descriptor of, in a tree that someone
//! else controls (the workload's workspace).
//!
//! Every name is a single component (never a path), and every open goes through `openat2`
//! with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`:
//! a symlink, a magic link or a mount point planted where we expect a file or a directory
//! makes the open fail (`ELOOP`, `EXDEV`) instead of taking us elsewhere. Creation uses the
//! calls that never follow the final component (`O_CREAT|O_EXCL`, `mkdirat`, `symlinkat`,
//! `renameat2(RENAME_NOREPLACE)`), so nothing existing is ever written through or replaced.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The resolution flags of every open here.
pub const RESOLVE: u64 = libc::RESOLVE_BENEATH
    | libc::RESOLVE_NO_SYMLINKS
    | libc::RESOLVE_NO_MAGICLINKS
    | libc::RESOLVE_NO_XDEV;

/// A single path component as a C string; `/`, `.`, `..` and NUL are refused, so no name
/// can reach outside the directory it is used with.
pub fn name(n: &OsStr) -> io::Result<CString> {
    let b = n.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `struct open_how` of `<linux/openat2.h>` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, name, flags|O_CLOEXEC, mode)` with [`RESOLVE`].
pub fn open(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            mode as u64
        } else {
            0
        },
        resolve: RESOLVE,
    };
    // SAFETY: a NUL-terminated name, a descriptor we hold, a valid open_how of its own size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A directory entry, for reading it (`ENOTDIR`, `ELOOP`, `EXDEV` when it is not a
/// directory of this filesystem). `O_NONBLOCK`: a FIFO is never waited on.
pub fn open_dir(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    open(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
}

/// A regular file for reading; anything else is refused after the (non-blocking) open.
pub fn open_file(dir: RawFd, name: &CStr) -> io::Result<(OwnedFd, libc::stat)> {
    let fd = open(
        dir,
        name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )?;
    let st = fstat(fd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok((fd, st))
}

/// The entry itself (a symlink stays a symlink): `O_PATH|O_NOFOLLOW`.
pub fn open_entry(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    open(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// A new file that did not exist, for writing.
pub fn create_new(dir: RawFd, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    open(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NOCTTY,
        mode,
    )
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)` of one entry; `None` when there is none.
pub fn lstat(dir: RawFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: fstatat fills the zeroed struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) == 0 {
            return Ok(Some(st));
        }
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(e)
    }
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    crate::safe_fs::walk::fstat(fd)
}

pub fn mkdir(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a name and a descriptor we hold.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
}

pub fn symlink(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall on NUL-terminated strings and a descriptor we hold.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
}

/// Moves `from` to `to` in the same directory only if `to` does not exist. Filesystems
/// without `RENAME_NOREPLACE` get `link` + `unlink`, which also fails on an existing `to`.
pub fn rename_noreplace(dir: RawFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall on names and a descriptor we hold.
    let r =
        unsafe { libc::renameat2(dir, from.as_ptr(), dir, to.as_ptr(), libc::RENAME_NOREPLACE) };
    match check(r) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above; flags 0 never follows `from` if it is a symlink.
            check(unsafe { libc::linkat(dir, from.as_ptr(), dir, to.as_ptr(), 0) })?;
            unlink(dir, from)
        }
        other => other,
    }
}

pub fn unlink(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall on a name and a descriptor we hold.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) })
}

/// The target of the symlink `dir/name`, or of the symlink `dir` itself when `name` is
/// empty (an `O_PATH|O_NOFOLLOW` descriptor of it).
pub fn readlink(dir: RawFd, name: &CStr) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
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

/// Owner of the object `fd` refers to, even an `O_PATH` descriptor of a symlink.
pub fn chown_fd(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: AT_EMPTY_PATH acts on the descriptor itself.
    check(unsafe {
        libc::fchownat(
            fd,
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn chmod_fd(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::fchmod(fd, mode) })
}

/// Access and modification times of an open file or directory, from `st`.
pub fn set_times(fd: RawFd, st: &libc::stat) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: two timespecs, a descriptor we hold.
    check(unsafe { libc::futimens(fd, times.as_ptr()) })
}

/// The names in a directory (without `.` and `..`), sorted so a copy is deterministic.
pub fn list(dir: RawFd) -> io::Result<Vec<OsString>> {
    // fdopendir takes the descriptor over; give it a duplicate so `dir` stays ours.
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor we hold.
    let dup = unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // The duplicate shares the file offset: start from the beginning.
    // SAFETY: lseek on our duplicate.
    unsafe { libc::lseek(dup, 0, libc::SEEK_SET) };
    // SAFETY: fdopendir owns `dup` from here on (closedir closes it).
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // readdir signals an error only through errno, so clear it first.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is a valid DIR* until closedir below.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            let errno = io::Error::last_os_error();
            break match errno.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(errno),
            };
        }
        // SAFETY: d_name is NUL-terminated within the dirent readdir returned.
        let n = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    };
    // SAFETY: `d` came from fdopendir and is closed once.
    unsafe { libc::closedir(d) };
    result?;
    names.sort();
    Ok(names)
}

/// Flushes the filesystem `fd` is on.
pub fn syncfs(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::syncfs(fd) })
}

pub fn fsync(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::fsync(fd) })
}

/// A name for a temporary file that nobody can predict (so nobody can plant it first).
pub fn temp_name() -> CString {
    let mut r = [0u8; 8];
    // SAFETY: getrandom writes at most r.len() bytes into r.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    if n != r.len() as isize {
        // No entropy yet (very early boot): the time still differs from boot to boot, and
        // an existing name only makes the exclusive create fail and retry.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        r = (t ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    CString::new(format!(".openshell-seed-{hex}.tmp")).expect("no NUL in hex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/etc", "a\0b"] {
            assert!(name(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(name(OsStr::new(".bashrc")).unwrap().as_bytes(), b".bashrc");
        assert_ne!(temp_name(), temp_name());
    }
}
