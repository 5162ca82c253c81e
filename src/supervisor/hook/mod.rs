//! The boot hook: trusted code that runs once, unsandboxed, before the child.
//!
//! Because it runs with the supervisor's full privileges, a hook that anyone but root could
//! have written (or redirected, or whose interpreter or loader anyone else could have
//! written) is a root escalation. [`prepare`] opens and judges every file that will run
//! ([`trust`]), and [`spawn`] executes exactly those descriptors: nothing is looked up by
//! name again after the check.
//!
//! How it runs:
//! - an executable ELF file: `execveat` of its descriptor, after its `PT_INTERP` loader
//!   passed the check;
//! - an executable `#!` script: its interpreter (checked, required to be ELF, loader
//!   checked) is executed by descriptor with `[interpreter, optional arg,
//!   /proc/self/fd/N]`, N being the hook's descriptor, the only one the hook inherits.
//!   `#!/usr/bin/env NAME` is resolved here, along the hook's `PATH`, under the same rules;
//! - anything else (not executable, or neither ELF nor `#!`): `/bin/sh /proc/self/fd/N`,
//!   with `/bin/sh` checked the same way.

mod format;
mod trust;

use super::spawn::{CVec, Program, Request, SpawnError, Spawner};
use format::Kind;
use nix::fcntl::OFlag;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use trust::{Lookup, Opened, Opener};

/// The interpreter spellings that mean "look the next word up in PATH".
const ENV: [&str; 2] = ["/usr/bin/env", "/bin/env"];
/// The shell for hooks that are not executable (or not a program of their own).
const SHELL: &str = "/bin/sh";
/// The search path for `#!/usr/bin/env NAME` when the hook's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What is at the hook path.
#[derive(Debug)]
pub enum Found {
    Missing,
    Present(Prepared),
}

/// A hook that passed its checks, ready to execute.
#[derive(Debug)]
pub struct Prepared {
    /// The hook file, as checked.
    hook: OwnedFd,
    /// Its interpreter, as checked, when the hook does not run directly.
    interpreter: Option<Opened>,
    argv: Vec<Vec<u8>>,
}

impl Prepared {
    /// True when the hook itself is the program (an ELF executable).
    pub fn direct(&self) -> bool {
        self.interpreter.is_none()
    }

    /// The interpreter that runs the hook, as resolved.
    pub fn interpreter(&self) -> Option<&Path> {
        self.interpreter.as_ref().map(|i| i.real.as_path())
    }
}

/// Opens and checks the hook at `path` (absolute), and whatever runs it. `strict` when the
/// supervisor runs as root. `env` is the hook's environment (its `PATH` resolves
/// `#!/usr/bin/env NAME`).
pub fn prepare(path: &Path, strict: bool, env: &[(OsString, OsString)]) -> Result<Found, String> {
    let opener = Opener::new(strict);
    let hook = match opener.open(path, "boot hook")? {
        Lookup::Missing => return Ok(Found::Missing),
        Lookup::NotADirectory => {
            return Err(format!(
                "boot hook {}: a component of the path is not a directory",
                path.display()
            ))
        }
        Lookup::NotRegular(why) => return Err(why),
        Lookup::Found(h) => h,
    };
    let as_script = format!("/proc/self/fd/{}", hook.fd.as_raw_fd()).into_bytes();
    let kind = if hook.executable() {
        format::classify(hook.fd.as_raw_fd())
            .map_err(|e| format!("boot hook {}: {e}", hook.real.display()))?
    } else {
        Kind::Other
    };
    let (interpreter, argv) = match kind {
        Kind::Elf { interp } => {
            if let Some(loader) = interp {
                opener.check_loader(&loader, &hook.real)?;
            }
            (None, vec![path.as_os_str().as_bytes().to_vec()])
        }
        Kind::Script(sb) => {
            let env_name = ENV
                .iter()
                .any(|e| sb.interpreter == Path::new(e))
                .then_some(sb.arg.as_deref());
            match env_name {
                Some(name) => {
                    let name = env_command(name, &hook.real)?;
                    let path_var = env
                        .iter()
                        .find(|(k, _)| k == "PATH")
                        .map(|(_, v)| v.as_os_str())
                        .unwrap_or(OsStr::new(DEFAULT_PATH));
                    let interp = find_in_path(&opener, name, path_var, &hook.real)?;
                    (Some(interp), vec![name.as_bytes().to_vec(), as_script])
                }
                None => {
                    let interp = open_program(&opener, &sb.interpreter, "interpreter")?;
                    let mut argv = vec![sb.interpreter.as_os_str().as_bytes().to_vec()];
                    argv.extend(sb.arg.map(String::into_bytes));
                    argv.push(as_script);
                    (Some(interp), argv)
                }
            }
        }
        Kind::Other => {
            let sh = open_program(&opener, Path::new(SHELL), "shell")?;
            (Some(sh), vec![SHELL.as_bytes().to_vec(), as_script])
        }
    };
    Ok(Found::Present(Prepared {
        hook: hook.fd,
        interpreter,
        argv,
    }))
}

/// The command of `#!/usr/bin/env NAME`, which env would look up in PATH. Only the plain
/// form: env's options and variable assignments are not reproduced.
fn env_command<'a>(arg: Option<&'a str>, hook: &Path) -> Result<&'a str, String> {
    let bad = |why: &str| {
        Err(format!(
            "boot hook {}: #!/usr/bin/env {why}; name the interpreter's absolute path instead",
            hook.display()
        ))
    };
    match arg {
        None => bad("without a command"),
        Some(a) if a.starts_with('-') => bad("with options is not supported"),
        Some(a) if a.contains([' ', '\t', '=']) || a.contains('/') => {
            bad(&format!("{a:?} is not a plain command name"))
        }
        Some(a) => Ok(a),
    }
}

/// Looks `name` up along `path` as env (execvp) would, every candidate through the opener:
/// entries that do not exist or are not executable files are skipped, the first match must
/// pass the checks. Relative and empty entries (the working directory) are skipped.
fn find_in_path(opener: &Opener, name: &str, path: &OsStr, hook: &Path) -> Result<Opened, String> {
    for dir in path.as_bytes().split(|&b| b == b':') {
        if !dir.starts_with(b"/") {
            continue;
        }
        let candidate = Path::new(OsStr::from_bytes(dir)).join(name);
        match opener.open(&candidate, "interpreter")? {
            Lookup::Missing | Lookup::NotADirectory | Lookup::NotRegular(_) => continue,
            Lookup::Found(o) if !o.executable() => continue,
            Lookup::Found(o) => {
                must_be_elf(opener, &o)?;
                return Ok(o);
            }
        }
    }
    Err(format!(
        "boot hook {}: #!/usr/bin/env {name}: {name} is not in PATH ({})",
        hook.display(),
        path.to_string_lossy()
    ))
}

/// Opens a program the hook is run by; it must be an ELF executable whose loader passes.
fn open_program(opener: &Opener, path: &Path, what: &str) -> Result<Opened, String> {
    let o = opener.open_existing(path, what)?;
    if !o.executable() {
        return Err(format!("{what} {} is not executable", o.real.display()));
    }
    must_be_elf(opener, &o)?;
    Ok(o)
}

fn must_be_elf(opener: &Opener, o: &Opened) -> Result<(), String> {
    match format::classify(o.fd.as_raw_fd()) {
        Ok(Kind::Elf { interp }) => match interp {
            Some(loader) => opener.check_loader(&loader, &o.real),
            None => Ok(()),
        },
        Ok(_) => Err(format!(
            "interpreter {} is not an ELF executable (a script cannot interpret the hook); \
             name a binary",
            o.real.display()
        )),
        Err(e) => Err(format!("interpreter {}: {e}", o.real.display())),
    }
}

/// A running hook: its pid (also its process group) and the read ends of its output.
pub struct Running {
    pub pid: i32,
    pub stdout: Option<fs::File>,
    pub stderr: Option<fs::File>,
}

/// Starts the prepared hook in `cwd` with `env`, stdin from /dev/null and its output on
/// pipes.
pub fn spawn(
    spawner: &mut Spawner,
    hook: &Prepared,
    env: &[(OsString, OsString)],
    cwd: &Path,
) -> Result<Running, SpawnError> {
    let os = SpawnError::Os;
    let (program, keep_fd) = match &hook.interpreter {
        None => (Program::Fd(hook.hook.as_raw_fd()), None),
        Some(i) => (Program::Fd(i.fd.as_raw_fd()), Some(hook.hook.as_raw_fd())),
    };
    let argv = CVec::new(&hook.argv).map_err(os)?;
    let envp = CVec::new(super::env::entries(env)).map_err(os)?;
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
        keep_fd,
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
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a NUL byte in the start directory",
    )
}

/// The hook's environment: the supervisor's, plus `OPENSHELL_HOOK` with the hook's path as
/// given (its `$0` is `/proc/self/fd/N` when an interpreter runs it).
pub fn environment(path: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<_> = std::env::vars_os().filter(|(k, _)| k != HOOK_VAR).collect();
    env.push((HOOK_VAR.into(), path.as_os_str().to_owned()));
    env
}

const HOOK_VAR: &str = "OPENSHELL_HOOK";

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
        for strict in [true, false] {
            assert!(matches!(
                prepare(Path::new("/nonexistent/openshell/boot.sh"), strict, &[]),
                Ok(Found::Missing)
            ));
        }
    }
}
