//! The boot hook: trusted code that runs once, unsandboxed, before the child.
//!
//! Because it runs with the supervisor's full privileges, a hook that anyone but root could
//! have written is a root escalation; [`inspect`] refuses it before it runs.

use super::spawn::{CVec, Program, Request, SpawnError, Spawner};
use nix::fcntl::OFlag;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What is at the hook path.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// An executable file runs directly; anything else runs as `/bin/sh PATH`.
    Present {
        executable: bool,
    },
}

/// Checks the hook at `path`. With `strict` (the supervisor runs as root) the file must be
/// a regular, root-owned, non-symlink file that is not group- or world-writable, and every
/// directory above it must be root-owned and not writable by others (a sticky directory
/// such as /tmp is allowed above the hook's own directory, since others cannot rename
/// root's entries in it).
pub fn inspect(path: &Path, strict: bool) -> Result<Found, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(format!("cannot stat {}: {e}", path.display())),
    };
    let ft = meta.file_type();
    if strict && ft.is_symlink() {
        return Err(format!(
            "{} is a symlink; point --hook at the real file",
            path.display()
        ));
    }
    let meta = if ft.is_symlink() {
        fs::metadata(path).map_err(|e| format!("cannot follow {}: {e}", path.display()))?
    } else {
        meta
    };
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if strict {
        check_owner_mode(path, &meta, "hook")?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = fs::canonicalize(dir)
            .map_err(|e| format!("cannot resolve directory of {}: {e}", path.display()))?;
        let mut own_dir = true;
        for d in dir.ancestors() {
            let m = fs::metadata(d).map_err(|e| format!("cannot stat {}: {e}", d.display()))?;
            let sticky = m.mode() & 0o1000 != 0;
            if own_dir || !sticky {
                check_owner_mode(d, &m, "directory")?;
            } else if m.uid() != 0 {
                return Err(format!("directory {} is not owned by root", d.display()));
            }
            own_dir = false;
        }
    }
    Ok(Found::Present {
        executable: meta.permissions().mode() & 0o111 != 0,
    })
}

fn check_owner_mode(path: &Path, meta: &fs::Metadata, what: &str) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!(
            "{what} {} is owned by uid {}, not root; chown root it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by group or others (mode {:o}); chmod go-w it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A running hook: its pid (also its process group) and the read ends of its output.
pub struct Running {
    pub pid: i32,
    pub stdout: Option<fs::File>,
    pub stderr: Option<fs::File>,
}

pub fn spawn(
    spawner: &mut Spawner,
    path: &Path,
    executable: bool,
    cwd: &Path,
) -> Result<Running, SpawnError> {
    let (program, argv) = if executable {
        (
            path.as_os_str().as_bytes().to_vec(),
            vec![path.as_os_str().as_bytes().to_vec()],
        )
    } else {
        (
            b"/bin/sh".to_vec(),
            vec![b"/bin/sh".to_vec(), path.as_os_str().as_bytes().to_vec()],
        )
    };
    let os = SpawnError::Os;
    let program = Program::Search(vec![CString::new(program).map_err(|_| os(nul()))?]);
    let argv = CVec::new(&argv).map_err(os)?;
    let envp = CVec::new(std::env::vars_os().map(|(k, v)| {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        kv
    }))
    .map_err(os)?;
    let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| os(nul()))?;
    let null = fs::File::open("/dev/null").map_err(os)?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| os(e.into()))?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| os(e.into()))?;
    // Unsandboxed, but in a session of its own so a timeout or stop can kill the whole tree
    // it started.
    let pid = spawner.spawn(&Request {
        program: &program,
        argv: &argv,
        envp: &envp,
        cwd: &cwd,
        stdio: [
            Some(null.as_raw_fd()),
            Some(out_w.as_raw_fd()),
            Some(err_w.as_raw_fd()),
        ],
        keep_fd: None,
        sandbox: None,
    })?;
    drop((out_w, err_w, null));
    let stdout = fs::File::from(out_r);
    let stderr = fs::File::from(err_r);
    for f in [&stdout, &stderr] {
        set_nonblocking(f).map_err(os)?;
    }
    Ok(Running {
        pid: pid.as_raw(),
        stdout: Some(stdout),
        stderr: Some(stderr),
    })
}

fn nul() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the hook path")
}

fn set_nonblocking(f: &fs::File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Splits a byte stream into lines; over-long lines are cut so memory stays bounded.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

const MAX_LINE: usize = 16 * 1024;

impl Lines {
    /// Reads what is available from `f`. Returns complete lines and whether EOF was seen.
    pub fn read_from(&mut self, f: &mut fs::File) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        let eof = loop {
            match f.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.push(&chunk[..n], &mut out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        if eof && !self.buf.is_empty() {
            out.push(String::from_utf8_lossy(&self.buf).into_owned());
            self.buf.clear();
        }
        (out, eof)
    }

    fn push(&mut self, mut data: &[u8], out: &mut Vec<String>) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&data[..i]);
            out.push(String::from_utf8_lossy(&self.buf).into_owned());
            self.buf.clear();
            data = &data[i + 1..];
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            out.push(String::from_utf8_lossy(&self.buf).into_owned());
            self.buf = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_bound() {
        let mut l = Lines::default();
        let mut out = Vec::new();
        l.push(b"a\nb", &mut out);
        l.push(b"c\n\n", &mut out);
        assert_eq!(out, ["a", "bc", ""]);
        out.clear();
        l.push(&vec![b'x'; MAX_LINE + 5], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(l.buf.len(), 5);
    }

    #[test]
    fn missing_hook_is_not_an_error() {
        assert_eq!(
            inspect(Path::new("/nonexistent/openshell/boot.sh"), true),
            Ok(Found::Missing)
        );
    }
}
