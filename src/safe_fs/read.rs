//! Bounded reads of files that someone else may control.
//!
//! `sandboxctl` reads `status.json` from a directory the sandbox writes into (as its root);
//! the supervisor reads its policy from a path an operator named. Either may meet a FIFO (a
//! blocking open or read), a symlink to `/etc/shadow`, a device, or a file of gigabytes. The
//! file is opened `O_NOFOLLOW|O_NONBLOCK` relative to its directory, must be a regular file,
//! and is read to at most `max` bytes.

use super::walk::{fstat, open_at};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    /// Nothing at that name (or the directory itself is missing).
    Missing,
    /// Something other than a regular file: a symlink, FIFO, socket, device, directory.
    NotRegular {
        kind: &'static str,
    },
    /// Larger than the cap.
    TooLarge {
        size: u64,
        max: u64,
    },
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing => f.write_str("does not exist"),
            ReadError::NotRegular { kind } => write!(f, "is {kind}, not a regular file"),
            ReadError::TooLarge { size, max } => {
                write!(f, "is {size} bytes, over the {max}-byte limit")
            }
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads `dir/name`: `dir` is opened without following a symlink at its last component, and
/// `name` must be a regular file of at most `max` bytes.
pub fn read_regular_at(dir: &Path, name: &str, max: u64) -> Result<Vec<u8>, ReadError> {
    let d = open_at(
        libc::AT_FDCWD,
        dir.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )
    .map_err(classify_open)?;
    // O_PATH opens nothing: a FIFO's writer is not woken, a device's open handler (a
    // watchdog, a tape) never runs. Only a regular file is then opened for reading, and
    // through the descriptor, so a name swapped after the check cannot be what is opened.
    let path_fd = open_at(
        d.as_raw_fd(),
        OsStr::new(name),
        libc::O_PATH | libc::O_NOFOLLOW,
    )
    .map_err(classify_open)?;
    let st = fstat(path_fd.as_raw_fd()).map_err(ReadError::Io)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        return Err(ReadError::NotRegular {
            kind: kind_name(kind),
        });
    }
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let proc_path = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
    let fd = match open_at(libc::AT_FDCWD, OsStr::new(&proc_path), flags) {
        Ok(fd) => fd,
        // No /proc (a VM's init before mounting it): by name, then the inode must match.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let fd = open_at(d.as_raw_fd(), OsStr::new(name), flags | libc::O_NOFOLLOW)
                .map_err(classify_open)?;
            let now = fstat(fd.as_raw_fd()).map_err(ReadError::Io)?;
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                return Err(ReadError::Io(io::Error::other(
                    "replaced while it was being opened",
                )));
            }
            fd
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    read_regular_fd(fd, max)
}

/// Reads an already opened descriptor under the same rules (regular, at most `max` bytes).
pub fn read_regular_fd(fd: OwnedFd, max: u64) -> Result<Vec<u8>, ReadError> {
    let st = fstat(fd.as_raw_fd()).map_err(ReadError::Io)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        return Err(ReadError::NotRegular {
            kind: kind_name(kind),
        });
    }
    if st.st_size as u64 > max {
        return Err(ReadError::TooLarge {
            size: st.st_size as u64,
            max,
        });
    }
    let mut body = Vec::with_capacity(st.st_size as usize);
    // The file may grow between fstat and read: never read past the cap.
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut body)
        .map_err(ReadError::Io)?;
    if body.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: body.len() as u64,
            max,
        });
    }
    Ok(body)
}

fn classify_open(e: io::Error) -> ReadError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ReadError::Missing,
        // O_NOFOLLOW on a symlink.
        Some(libc::ELOOP) => ReadError::NotRegular { kind: "a symlink" },
        Some(libc::ENOTDIR) => ReadError::NotRegular {
            kind: "not in a directory",
        },
        // O_NOFOLLOW|O_DIRECTORY on a symlinked directory, or a device that refuses.
        Some(libc::ENXIO) => ReadError::NotRegular {
            kind: "a device or socket",
        },
        _ => ReadError::Io(e),
    }
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "an unknown file type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn refuses_links_fifos_and_big_files_without_blocking() {
        let d = std::env::temp_dir().join(format!("safe-read-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("ok"), b"{}").unwrap();
        assert_eq!(read_regular_at(&d, "ok", 16).unwrap(), b"{}");
        assert!(matches!(
            read_regular_at(&d, "none", 16),
            Err(ReadError::Missing)
        ));
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        assert!(matches!(
            read_regular_at(&d, "link", 1 << 20),
            Err(ReadError::NotRegular { kind: "a symlink" })
        ));
        nix::unistd::mkfifo(
            &d.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(
            read_regular_at(&d, "fifo", 16),
            Err(ReadError::NotRegular { kind: "a FIFO" })
        ));
        fs::write(d.join("big"), vec![b'x'; 100]).unwrap();
        assert!(matches!(
            read_regular_at(&d, "big", 99),
            Err(ReadError::TooLarge { size: 100, max: 99 })
        ));
        // The FIFO was never opened: a writer blocked in open() is still blocked.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (p, woken) = (d.join("fifo"), woken.clone());
            std::thread::spawn(move || {
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                let f = fs::OpenOptions::new().write(true).open(p);
                woken.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(f);
            })
        };
        let tid = tid_rx.recv().unwrap();
        // Wait until the writer sits in openat (syscall 257).
        while !fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .unwrap()
            .starts_with("257 ")
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(read_regular_at(&d, "fifo", 16).is_err());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !woken.load(std::sync::atomic::Ordering::SeqCst),
            "reading the FIFO's name opened it (its writer woke up)"
        );
        // Release the writer.
        drop(
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(d.join("fifo"))
                .unwrap(),
        );
        writer.join().unwrap();
        // A symlinked directory is not entered either.
        std::os::unix::fs::symlink(&d, d.join("dirlink")).unwrap();
        assert!(read_regular_at(&d.join("dirlink"), "ok", 16).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
