//! Mounts of the VM's init: the API filesystems, the status share, the workspace disk.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One mount of the fixed early set.
pub struct Early {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: libc::c_ulong,
    pub data: &'static str,
    /// Mode of the mount point if it has to be created.
    pub dir_mode: u32,
}

const NOSUID_NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// What a container runtime would have set up, in order (`/dev/pts` and `/dev/shm` live on
/// the devtmpfs mounted just before them).
pub const EARLY: [Early; 7] = [
    Early {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV | libc::MS_NOEXEC,
        data: "",
        dir_mode: 0o555,
    },
    Early {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV | libc::MS_NOEXEC,
        data: "",
        dir_mode: 0o555,
    },
    Early {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: "mode=0755",
        dir_mode: 0o755,
    },
    Early {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "mode=0620,ptmxmode=0666",
        dir_mode: 0o755,
    },
    Early {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        dir_mode: 0o1777,
    },
    Early {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=0755",
        dir_mode: 0o755,
    },
    Early {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        dir_mode: 0o1777,
    },
];

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `mount(2)`, creating the mount point (with `dir_mode`) when it is missing.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
    dir_mode: u32,
) -> io::Result<()> {
    if !target.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(target)?;
    }
    let (src, tgt, ty, d) = (
        cstr(source.as_bytes())?,
        cstr(target.as_os_str().as_bytes())?,
        cstr(fstype.as_bytes())?,
        cstr(data.as_bytes())?,
    );
    // SAFETY: NUL-terminated strings that live across the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ptr(),
            flags,
            d.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The symlinks a shell expects in `/dev` that devtmpfs does not make.
pub fn dev_links() {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
}

/// The block device whose virtio serial is `serial`, waiting up to `limit` for it to appear
/// (virtio-blk probes when its module loads, but the disk's partitions scan is async).
pub fn disk_by_serial(serial: &str, limit: Duration) -> io::Result<PathBuf> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(entries) = fs::read_dir("/sys/block") {
            for e in entries.flatten() {
                let s = fs::read_to_string(e.path().join("serial")).unwrap_or_default();
                if s.trim() == serial {
                    let dev = Path::new("/dev").join(e.file_name());
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no virtio disk with serial {serial:?} appeared within {limit:?}; attach it with -device virtio-blk-pci,serial={serial}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unmounts `target`; a busy one is remounted read-only and detached, so the filesystem is
/// at least consistent on disk. Returns whether the plain unmount worked.
pub fn unmount(target: &Path) -> io::Result<bool> {
    let t = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::umount2(t.as_ptr(), 0) } == 0 {
        return Ok(true);
    }
    let first = io::Error::last_os_error();
    // SAFETY: as above; remount read-only flushes the journal and dirty data.
    let ro = unsafe {
        libc::mount(
            std::ptr::null(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    // SAFETY: as above.
    unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    if ro != 0 {
        return Err(first);
    }
    Ok(false)
}
