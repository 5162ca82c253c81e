//! The supervisor's only source of events: signals arrive through a signalfd (every
//! signal that can be blocked is blocked, faults and real-time signals included, so
//! nothing runs in signal-handler context), pipes are polled beside it, and child exits are
//! collected by one `waitpid(-1)` loop that owns every exit status, including those of
//! orphans re-parented to us.
//!
//! Blocking the fault signals (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) is what lets a `kill
//! -SEGV` from another process be forwarded like any other signal (as PID 1 it would
//! otherwise be ignored, and outside PID 1 it would kill us). A genuine fault in our own
//! code still ends us: the kernel delivers it with `force_sig`, which unblocks it and
//! resets its action to the default (also for PID 1, and whatever handler std installed).

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

/// Signals the kernel raises synchronously for a fault of the receiving process, and
/// SIGABRT (abort()).
const FAULTS: [libc::c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGABRT,
];

/// A signal read from the signalfd, other than SIGCHLD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub signo: libc::c_int,
}

impl Incoming {
    /// `SIGHUP`, …, and `SIGRTMIN+N` for real-time signals.
    pub fn name(self) -> String {
        let rtmin = libc::SIGRTMIN();
        match Signal::try_from(self.signo) {
            Ok(s) => s.as_str().to_owned(),
            Err(_) if self.signo >= rtmin => format!("SIGRTMIN+{}", self.signo - rtmin),
            Err(_) => format!("signal {}", self.signo),
        }
    }

    pub fn is(self, sig: Signal) -> bool {
        self.signo == sig as libc::c_int
    }
}

/// What to do with one signalfd record.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Child,
    Forward,
    /// A fault signal that is not from another process: ours, so it must end us.
    Die,
}

/// `code` and `sender` are the record's `si_code` and `si_pid`; `me` is our pid.
fn route(signo: libc::c_int, code: libc::c_int, sender: u32, me: u32) -> Route {
    if signo == libc::SIGCHLD {
        return Route::Child;
    }
    if !FAULTS.contains(&signo) {
        return Route::Forward;
    }
    let by_a_process = matches!(code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL);
    if by_a_process && sender != me {
        Route::Forward
    } else {
        Route::Die
    }
}

/// Ends the process with `signo` as its default action would (core dump included): the
/// handler is reset and the signal unblocked and raised. PID 1 ignores even that, so the
/// exit status then says which signal it was.
fn die_by(signo: libc::c_int) -> ! {
    // SAFETY: resetting our own disposition and mask, then raising; nothing returns.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signo);
        libc::_exit(128 + signo)
    }
}

/// What one wait produced.
#[derive(Debug, Default)]
pub struct Batch {
    /// Signals received, in order, other than SIGCHLD.
    pub signals: Vec<Incoming>,
    /// Every child reaped during this wait.
    pub exited: Vec<(Pid, WaitStatus)>,
    /// Indexes (into the `fds` argument) that are readable or hung up.
    pub readable: Vec<usize>,
}

pub struct Events {
    sfd: SignalFd,
    me: u32,
}

/// The set of signals the supervisor blocks and receives through its signalfd: all that
/// can be blocked (sigfillset leaves out glibc's reserved 32 and 33), real-time ones
/// included. SIGPIPE stays out: it is about our own stderr, never meant for the child,
/// and stays ignored.
fn handled_set() -> SigSet {
    let mut set = SigSet::all();
    set.remove(Signal::SIGPIPE);
    set
}

impl Events {
    /// Blocks the handled signals and opens the signalfd. Must run before any child is
    /// spawned; children restore an empty mask in `pre_exec`.
    pub fn new() -> io::Result<Events> {
        let set = handled_set();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Events {
            sfd,
            me: std::process::id(),
        })
    }

    /// Waits until a signal, a readable fd, or `deadline`, then drains everything that is
    /// ready. Returns an empty batch on timeout.
    pub fn wait(&mut self, deadline: Option<Instant>, fds: &[BorrowedFd<'_>]) -> io::Result<Batch> {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                // Round up so we never wake a hair early and spin.
                let left = d.saturating_duration_since(Instant::now());
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut pfds = Vec::with_capacity(fds.len() + 2);
        pfds.push(PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN));
        pfds.extend(fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        // Log lines a slow reader has not taken yet: written as stderr accepts them, never
        // by blocking (see crate::log).
        let log_fd = crate::log::pending_fd();
        if let Some(fd) = log_fd {
            pfds.push(PollFd::new(fd, PollFlags::POLLOUT));
        }
        match poll(&mut pfds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut batch = Batch::default();
        let ready = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
        if log_fd.is_some() && pfds.pop().as_ref().is_some_and(ready) {
            crate::log::flush();
        }
        for (i, p) in pfds.iter().enumerate().skip(1) {
            if ready(p) {
                batch.readable.push(i - 1);
            }
        }
        if ready(&pfds[0]) {
            self.drain_signals(&mut batch)?;
        }
        Ok(batch)
    }

    fn drain_signals(&mut self, batch: &mut Batch) -> io::Result<()> {
        let mut child_exited = false;
        // One read takes up to a bufferful: a short read means the queue is empty, which
        // saves the read that would only answer EAGAIN (one syscall per wake-up, i.e. per
        // orphan in a zombie storm).
        const CAP: usize = 16;
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: signalfd_siginfo is plain data, valid when zeroed.
        let mut buf: [libc::signalfd_siginfo; CAP] = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: reading into our own buffer of CAP records from our own signalfd.
            let n = unsafe {
                libc::read(
                    self.sfd.as_fd().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    size * CAP,
                )
            };
            if n < 0 {
                match Errno::last() {
                    Errno::EAGAIN => break,
                    Errno::EINTR => continue,
                    e => return Err(e.into()),
                }
            }
            let got = n as usize / size;
            for info in &buf[..got] {
                let signo = info.ssi_signo as libc::c_int;
                match route(signo, info.ssi_code, info.ssi_pid, self.me) {
                    Route::Child => child_exited = true,
                    Route::Forward => batch.signals.push(Incoming { signo }),
                    Route::Die => {
                        tracing::error!(event = "supervisor.fault", signal = %Incoming { signo }.name(),
                            code = info.ssi_code, "fault signal of the supervisor's own: exiting");
                        die_by(signo)
                    }
                }
            }
            if got < CAP {
                break;
            }
        }
        if child_exited {
            reap_all(&mut batch.exited);
        }
        Ok(())
    }
}

/// Collects every exit status that is ready. SIGCHLD coalesces, so one notification may
/// stand for many exits: loop until nothing is left.
pub fn reap_all(out: &mut Vec<(Pid, WaitStatus)>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                        out.push((pid, st));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_from_other_processes_are_forwarded_ours_end_us() {
        let me = 100;
        for sig in FAULTS {
            for code in [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL] {
                assert_eq!(route(sig, code, 7, me), Route::Forward, "{sig} {code}");
                assert_eq!(route(sig, code, me, me), Route::Die, "{sig} from us");
            }
            // Kernel-generated (SEGV_MAPERR = 1, SI_KERNEL = 0x80): a fault of ours.
            assert_eq!(route(sig, 1, 0, me), Route::Die);
            assert_eq!(route(sig, 0x80, 0, me), Route::Die);
        }
        assert_eq!(route(libc::SIGCHLD, 1, 7, me), Route::Child);
        assert_eq!(route(libc::SIGHUP, 0x80, 0, me), Route::Forward);
        let rt = libc::SIGRTMIN() + 3;
        assert_eq!(route(rt, libc::SI_QUEUE, 7, me), Route::Forward);
        assert_eq!(Incoming { signo: rt }.name(), "SIGRTMIN+3");
        assert_eq!(
            Incoming {
                signo: libc::SIGSEGV
            }
            .name(),
            "SIGSEGV"
        );
    }

    /// Runs `f` in a fork after the supervisor's signal set-up; returns how the fork ended.
    fn in_fork_with_events(f: fn()) -> WaitStatus {
        // SAFETY: the child sets RLIMIT_CORE 0, sets up signals and runs `f`, which faults.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit on ourselves; then the fault under test.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
            let _events = Events::new().unwrap();
            f();
            // SAFETY: not reached when the fault kills us, as it must.
            unsafe { libc::_exit(0) };
        }
        waitpid(Pid::from_raw(pid), None).unwrap()
    }

    #[test]
    fn a_genuine_fault_still_kills_us_although_faults_are_blocked() {
        let segv = in_fork_with_events(|| {
            // SAFETY: none: a deliberate invalid read, the fault under test.
            unsafe { std::ptr::read_volatile(std::ptr::without_provenance::<u8>(8)) };
        });
        assert!(
            matches!(segv, WaitStatus::Signaled(_, Signal::SIGSEGV, _)),
            "{segv:?}"
        );
        let abort = in_fork_with_events(|| std::process::abort());
        assert!(
            matches!(abort, WaitStatus::Signaled(_, Signal::SIGABRT, _)),
            "{abort:?}"
        );
    }
}
