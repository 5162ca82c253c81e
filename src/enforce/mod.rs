//! Enforcement: everything applied to the child between fork and exec.
//!
//! The split that keeps `pre_exec` async-signal-safe: [`Sandbox::prepare`] does every
//! allocation and file read (policy, passwd/group, Landlock path fds, compiled BPF) once,
//! in the supervisor, before the first fork; [`in_child`] then makes raw syscalls only, and
//! reports a failure as a fixed-size (stage, errno) record over a CLOEXEC pipe.

mod report;
mod stage;

pub use report::{ReportPipe, Sender};
pub use stage::{Failure, Stage};

use std::io;

/// The prepared sandbox for the child. Built once, reused for every generation.
#[derive(Debug)]
pub struct Sandbox {}

impl Sandbox {
    /// Runs in the forked child, after [`in_child`]'s process set-up. Raw syscalls only.
    fn apply(&self) -> Result<(), Failure> {
        Ok(())
    }
}

/// Everything the child gets before exec, in order. Async-signal-safe: no allocation, no
/// locks, no file reads beyond what `prepare` opened.
pub fn in_child(sandbox: Option<&Sandbox>) -> Result<(), Failure> {
    // A session of its own: the supervisor signals the whole group, and the child shares no
    // controlling terminal with us (no TIOCSTI into our tty).
    // SAFETY: plain syscalls on the current process.
    if unsafe { libc::setsid() } < 0 {
        return Err(Failure::last(Stage::Session));
    }
    reset_signals()?;
    // Every fd above stderr is closed on exec: nothing of the supervisor's leaks into the
    // sandbox, whatever its CLOEXEC discipline.
    // SAFETY: close_range only changes flags on our own fd table.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(Failure::last(Stage::Fds));
    }
    match sandbox {
        Some(s) => s.apply(),
        None => Ok(()),
    }
}

/// The child starts with an empty signal mask (the supervisor blocks nearly everything for
/// its signalfd) and default dispositions (ignored ones would survive exec).
fn reset_signals() -> Result<(), Failure> {
    // SAFETY: sigset_t is plain data; sigemptyset, sigprocmask and signal are
    // async-signal-safe.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        if libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0 {
            return Err(Failure::last(Stage::Signals));
        }
        // 1..=64 covers every Linux signal; KILL/STOP and glibc's reserved ones just
        // return EINVAL, which is harmless here.
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// Turns a child-side failure into the error `Command::spawn` returns; the precise record
/// travels over the report pipe.
pub fn failure_to_io(f: Failure) -> io::Error {
    io::Error::from_raw_os_error(f.errno)
}

impl Sandbox {
    /// Reads, validates and compiles the policy at `path`.
    pub fn prepare(path: &std::path::Path) -> Result<Sandbox, String> {
        Err(format!(
            "{}: policy enforcement is not implemented yet; use --no-policy",
            path.display()
        ))
    }
}

/// `supervisor check`.
pub fn check_command(path: &std::path::Path) -> i32 {
    eprintln!("{}: check is not implemented yet", path.display());
    1
}
