//! Spawning the long-lived child and cleaning up its process group.

use crate::enforce::{self, Failure, ReportPipe, Sandbox};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Why a spawn did not produce a running child.
#[derive(Debug)]
pub enum SpawnError {
    /// A child-side set-up stage failed (enforcement, session, signals).
    Setup(Failure),
    /// `execvp` (or `fork`) failed.
    Exec(io::Error),
}

/// Forks and execs `argv` in `cwd`, in a new session, with `sandbox` applied between fork
/// and exec. Returns the child's pid, which is also its process-group id.
pub fn spawn(
    argv: &[OsString],
    cwd: &Path,
    sandbox: Option<Arc<Sandbox>>,
) -> Result<Pid, SpawnError> {
    let report = ReportPipe::new().map_err(SpawnError::Exec)?;
    let sender = report.sender();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(cwd);
    if let Some(s) = &sandbox {
        cmd.envs(s.child_env());
    }
    // SAFETY: `in_child` is async-signal-safe by construction (raw syscalls on data
    // prepared before fork), and so is `Sender::send`.
    unsafe {
        cmd.pre_exec(move || {
            enforce::in_child(sandbox.as_deref()).map_err(|f| {
                sender.send(f);
                enforce::failure_to_io(f)
            })
        });
    }
    let result = cmd.spawn();
    // Drop the closure (and its Arc) before reading: nothing else holds the write end.
    drop(cmd);
    match result {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) => match report.receive() {
            Some(f) => Err(SpawnError::Setup(f)),
            None => Err(SpawnError::Exec(e)),
        },
    }
}

/// True while any process is left in the group (zombies included until reaped).
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Signals the group; a group that is already gone is not an error.
pub fn signal_group(pgid: Pid, sig: Signal) -> bool {
    killpg(pgid, sig).is_ok()
}
