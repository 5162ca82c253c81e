//! The long-lived child: what it execs (prepared once, reused by every generation) and its
//! process group.

use super::spawn::{CVec, Program, Request, SpawnError, Spawner};
use crate::enforce::Sandbox;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// argv, environment, start directory and the paths to try, built once: the same for every
/// generation, and nothing of it may be allocated in the child.
#[derive(Debug)]
pub struct Prepared {
    program: Program,
    argv: CVec,
    envp: CVec,
    cwd: CString,
}

impl Prepared {
    /// `env` is the child's whole environment.
    pub fn new(argv: &[OsString], env: &[(OsString, OsString)], cwd: &Path) -> io::Result<Self> {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let program = Program::search(&argv[0], path)?;
        let argv = CVec::new(argv.iter().map(|a| a.as_bytes()))?;
        let envp = CVec::new(super::env::entries(env))?;
        let cwd = CString::new(cwd.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Prepared {
            program,
            argv,
            envp,
            cwd,
        })
    }
}

/// Starts one generation in a new session, with `sandbox` applied between clone and exec.
/// Returns the child's pid, which is also its process-group id.
pub fn spawn(
    spawner: &mut Spawner,
    prepared: &Prepared,
    sandbox: Option<&Sandbox>,
) -> Result<Pid, SpawnError> {
    spawner.spawn(&Request {
        program: &prepared.program,
        argv: &prepared.argv,
        envp: &prepared.envp,
        cwd: &prepared.cwd,
        stdio: [None; 3],
        keep_fd: None,
        sandbox,
    })
}

/// True while any process is left in the group (zombies included until reaped).
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Signals the group; a group that is already gone is not an error.
pub fn signal_group(pgid: Pid, sig: Signal) -> bool {
    killpg(pgid, sig).is_ok()
}

/// Sends signal number `signo` (real-time ones included, which `Signal` cannot name) to
/// the group.
pub fn signal_group_raw(pgid: Pid, signo: libc::c_int) -> bool {
    // SAFETY: kill with a negative pid signals the process group.
    unsafe { libc::kill(-pgid.as_raw(), signo) == 0 }
}
