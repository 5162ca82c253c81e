//! The supervisor's only source of events: signals arrive through a signalfd (every
//! catchable asynchronous signal is blocked, so nothing runs in signal-handler context),
//! pipes are polled beside it, and child exits are collected by one `waitpid(-1)` loop that
//! owns every exit status, including those of orphans re-parented to us.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

/// Signals that are raised synchronously by a fault in this process: blocking them would
/// turn a crash into a hang, so they keep their default action.
const SYNCHRONOUS: [Signal; 6] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// What one wait produced.
#[derive(Debug, Default)]
pub struct Batch {
    /// Signals received, in order, other than SIGCHLD.
    pub signals: Vec<Signal>,
    /// Every child reaped during this wait.
    pub exited: Vec<(Pid, WaitStatus)>,
    /// Indexes (into the `fds` argument) that are readable or hung up.
    pub readable: Vec<usize>,
}

pub struct Events {
    sfd: SignalFd,
}

/// The set of signals the supervisor blocks and receives through its signalfd. SIGPIPE
/// stays out: it is about our own stderr, never meant for the child, and stays ignored.
fn handled_set() -> SigSet {
    let mut set = SigSet::all();
    for s in SYNCHRONOUS {
        set.remove(s);
    }
    set.remove(Signal::SIGPIPE);
    set
}

/// Blocks the handled signals without reading them yet (`--init` does this first of all,
/// so nothing sent during the VM's bring-up is lost; [`Events::new`] then reads them).
pub fn block_handled() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_set()), None);
}

impl Events {
    /// Blocks the handled signals and opens the signalfd. Must run before any child is
    /// spawned; children restore an empty mask in `pre_exec`.
    pub fn new() -> io::Result<Events> {
        let set = handled_set();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Events { sfd })
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
        let mut pfds = Vec::with_capacity(fds.len() + 1);
        pfds.push(PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN));
        pfds.extend(fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        match poll(&mut pfds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut batch = Batch::default();
        let ready = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
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
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => child_exited = true,
                    Ok(sig) => batch.signals.push(sig),
                    Err(_) => {} // real-time signals: nothing to forward them as
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
