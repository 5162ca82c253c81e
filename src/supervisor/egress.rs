//! The egress proxy's life under the supervisor: the loopback listener (bound once, before
//! the policy is prepared, so its port is in the child's Landlock rules and never free for
//! the agent to take), the sealed configuration, start before the first child, readiness,
//! restart with backoff when it dies, and its state for status.json.
//!
//! The proxy is the same binary in its hidden `egress-proxy` mode, a process of its own: a
//! bug in it costs the sandbox its egress for a restart, never PID 1.

use crate::contract::status::{EgressInfo, EgressState, ExitInfo};
use crate::contract::time::now_rfc3339;
use crate::egress::config::{self, Config};
use crate::egress::process::{CONFIG_FD, LISTENER_FD, MODE, READY_FD};
use crate::egress::resolve;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// A proxy that is not serving this long after its start is killed and counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Starts in a row that never became ready before the supervisor gives up (egress_failed).
const MAX_FAILED_STARTS: u32 = 5;
/// How long shutdown waits for the killed proxy and its helper to be reaped.
const REAP_WAIT: Duration = Duration::from_millis(500);

/// The loopback listener the child's HTTP(S)_PROXY points at; the kernel picks the port.
pub fn bind() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0))
}

enum Proc {
    None,
    Starting {
        pid: Pid,
        ready: Option<File>,
        deadline: Instant,
    },
    Running {
        pid: Pid,
    },
}

pub struct Egress {
    listener: TcpListener,
    config: OwnedFd,
    proc: Proc,
    pub info: EgressInfo,
    failed_starts: u32,
    delay: Duration,
    restart_at: Option<Instant>,
    stopped: bool,
    /// Set when the supervisor must give up: the reason.
    pub fatal: Option<String>,
}

impl Egress {
    /// Prepares the configuration (the rules, the identities, the resolver files as they are
    /// now) in a sealed memfd. Err: why egress cannot be provided.
    pub fn new(
        listener: TcpListener,
        plan: &crate::enforce::Egress,
        log: &super::cli::LogArgs,
    ) -> Result<Egress, String> {
        let port = listener
            .local_addr()
            .map_err(|e| format!("egress listener: {e}"))?
            .port();
        let (proxy_uid, proxy_gid) = crate::egress::proxy_id(plan.uid, plan.gid);
        let cfg = Config {
            rules: plan.rules.clone(),
            agent_uid: plan.uid,
            agent_gid: plan.gid,
            proxy_uid,
            proxy_gid,
            supervisor_pid: std::process::id(),
            hosts: resolve::read_trusted(resolve::HOSTS)?,
            resolv_conf: resolve::read_trusted(resolve::RESOLV_CONF)?,
            log_format: config::value_name(log.log_format),
            log_level: config::value_name(log.log_level),
        };
        let body = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
        let config = sealed_memfd(&body).map_err(|e| format!("egress configuration memfd: {e}"))?;
        Ok(Egress {
            listener,
            config,
            proc: Proc::None,
            info: EgressInfo {
                state: EgressState::Starting,
                pid: None,
                port,
                restarts: 0,
                since: now_rfc3339(),
                last_exit: None,
            },
            failed_starts: 0,
            delay: BACKOFF_INITIAL,
            restart_at: None,
            stopped: false,
            fatal: None,
        })
    }

    /// The proxy process, while there is one.
    pub fn pid(&self) -> Option<Pid> {
        match &self.proc {
            Proc::Starting { pid, .. } | Proc::Running { pid } => Some(*pid),
            Proc::None => None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.proc, Proc::Running { .. })
    }

    /// Starts a proxy process. Err: it could not even be forked/executed.
    pub fn start(&mut self) -> Result<(), String> {
        let (ready_r, ready_w) = pipe().map_err(|e| format!("egress ready pipe: {e}"))?;
        let fds = [
            self.config.as_raw_fd(),
            self.listener.as_raw_fd(),
            ready_w.as_raw_fd(),
        ];
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(MODE)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: only raw, async-signal-safe syscalls on integers between fork and exec.
        unsafe {
            cmd.pre_exec(move || child_setup(fds));
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the egress proxy: {e}"))?;
        drop(ready_w);
        let pid = Pid::from_raw(child.id() as i32);
        // SAFETY: fcntl on the read end we own.
        unsafe { libc::fcntl(ready_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        self.proc = Proc::Starting {
            pid,
            ready: Some(File::from(ready_r)),
            deadline: Instant::now() + START_TIMEOUT,
        };
        self.set(EgressState::Starting, Some(pid));
        info!(
            event = "egress.start",
            pid = pid.as_raw(),
            port = self.info.port,
            restarts = self.info.restarts,
            "starting the egress proxy"
        );
        Ok(())
    }

    /// The readiness pipe, while the proxy is starting: poll it with the other fds.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.proc {
            Proc::Starting { ready: Some(f), .. } => Some(f.as_fd()),
            _ => None,
        }
    }

    /// The readiness pipe is readable: the proxy is serving (or died before it was).
    pub fn on_readable(&mut self) -> bool {
        let Proc::Starting {
            pid,
            ready: Some(f),
            ..
        } = &mut self.proc
        else {
            return false;
        };
        let pid = *pid;
        let mut b = [0u8; 1];
        match f.read(&mut b) {
            Ok(1) if b[0] == b'R' => {
                self.proc = Proc::Running { pid };
                self.failed_starts = 0;
                self.set(EgressState::Running, Some(pid));
                info!(
                    event = "egress.ready",
                    pid = pid.as_raw(),
                    port = self.info.port,
                    "egress proxy is serving"
                );
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // EOF (or garbage): it is dying; its exit will be reaped.
            _ => {
                if let Proc::Starting { ready, .. } = &mut self.proc {
                    *ready = None;
                }
                false
            }
        }
    }

    /// An exit reaped by the event loop: true when it was the proxy's.
    pub fn on_exit(&mut self, pid: Pid, status: WaitStatus) -> bool {
        let (ours, was_ready) = match &self.proc {
            Proc::Starting { pid: p, .. } => (*p == pid, false),
            Proc::Running { pid: p } => (*p == pid, true),
            Proc::None => (false, false),
        };
        if !ours {
            return false;
        }
        let (code, signal) = match status {
            WaitStatus::Exited(_, c) => (Some(c), None),
            WaitStatus::Signaled(_, s, _) => (None, Some(s as i32)),
            _ => (None, None),
        };
        self.info.last_exit = Some(ExitInfo {
            code,
            signal,
            at: now_rfc3339(),
        });
        self.proc = Proc::None;
        if self.stopped {
            self.set(EgressState::Stopped, None);
            return true;
        }
        if !was_ready {
            self.failed_starts += 1;
        } else {
            self.delay = BACKOFF_INITIAL;
        }
        error!(
            event = "egress.exit",
            pid = pid.as_raw(),
            code,
            signal,
            ready = was_ready,
            failed_starts = self.failed_starts,
            "the egress proxy exited; egress is down until it is restarted"
        );
        if self.failed_starts >= MAX_FAILED_STARTS {
            return self.give_up(format!(
                "the egress proxy failed {} starts in a row (last: {}); see the egress.* events in the log",
                self.failed_starts,
                describe(code, signal)
            ));
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        self.restart_at = Some(Instant::now() + delay);
        self.set(EgressState::Restarting, None);
        info!(
            event = "egress.restart_scheduled",
            delay_ms = delay.as_millis() as u64,
            "restarting the egress proxy"
        );
        true
    }

    fn give_up(&mut self, msg: String) -> bool {
        error!(event = "egress.failed", error = %msg, "giving up on the egress proxy");
        self.set(EgressState::Failed, None);
        self.fatal = Some(msg);
        true
    }

    /// When [`Egress::tick`] next has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.proc {
            Proc::Starting { deadline, .. } => Some(*deadline),
            _ => self.restart_at,
        }
    }

    /// Acts on the deadline: kills a proxy that never became ready, starts a scheduled
    /// restart. Returns true when the state changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        if self.stopped || self.fatal.is_some() {
            return false;
        }
        if let Proc::Starting { pid, deadline, .. } = &self.proc {
            if now >= *deadline {
                warn!(
                    event = "egress.start_timeout",
                    pid = pid.as_raw(),
                    timeout_ms = START_TIMEOUT.as_millis() as u64,
                    "the egress proxy did not become ready: killing it"
                );
                let _ = nix::sys::signal::killpg(*pid, nix::sys::signal::Signal::SIGKILL);
                self.proc = match std::mem::replace(&mut self.proc, Proc::None) {
                    Proc::Starting { pid, .. } => Proc::Starting {
                        pid,
                        ready: None,
                        deadline: now + START_TIMEOUT,
                    },
                    p => p,
                };
            }
            return false;
        }
        match self.restart_at {
            Some(at) if now >= at => {
                self.restart_at = None;
                self.info.restarts += 1;
                if let Err(e) = self.start() {
                    return self.give_up(e);
                }
                true
            }
            _ => false,
        }
    }

    /// Kills the proxy (and its helper, in the same process group) and reaps both; no
    /// restart follows. Called when the supervisor ends.
    pub fn shutdown(&mut self) {
        self.stopped = true;
        self.restart_at = None;
        let pid = match &self.proc {
            Proc::Starting { pid, .. } | Proc::Running { pid } => *pid,
            Proc::None => return,
        };
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let deadline = Instant::now() + REAP_WAIT;
        // Only children in the proxy's group: every other exit stays the event loop's.
        while Instant::now() < deadline {
            // SAFETY: waitid writes into a zeroed siginfo we own.
            let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_PGID,
                    pid.as_raw() as libc::id_t,
                    &mut si,
                    libc::WEXITED | libc::WNOHANG,
                )
            };
            if r < 0 {
                break; // ECHILD: none left in the group
            }
            // SAFETY: si_pid is valid after a successful waitid.
            if unsafe { si.si_pid() } == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.proc = Proc::None;
        self.set(EgressState::Stopped, None);
    }

    fn set(&mut self, state: EgressState, pid: Option<Pid>) {
        self.info.state = state;
        self.info.pid = pid.map(|p| p.as_raw() as u32);
        self.info.since = now_rfc3339();
    }
}

fn describe(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// Between fork and exec of the proxy: its own session, default signals, nothing inherited
/// but stdio and the three fds at their fixed numbers, killed with the supervisor.
fn child_setup(fds: [RawFd; 3]) -> io::Result<()> {
    let err = || Err(io::Error::last_os_error());
    // SAFETY: async-signal-safe syscalls with integer arguments and a stack sigset.
    unsafe {
        if libc::setsid() < 0 {
            return err();
        }
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        if libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0 {
            return err();
        }
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
        // Out of the way first, so placing one cannot overwrite another.
        let mut high = [0; 3];
        for (i, fd) in fds.iter().enumerate() {
            high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
            if high[i] < 0 {
                return err();
            }
        }
        for (fd, target) in high.iter().zip([CONFIG_FD, LISTENER_FD, READY_FD]) {
            if libc::dup2(*fd, target) < 0 {
                return err();
            }
        }
        if libc::syscall(libc::SYS_close_range, 6u32, u32::MAX, 0u32) < 0 {
            return err();
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return err();
        }
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two fds into our array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// A memfd holding `body`, sealed against every change: each proxy generation reads the
/// same bytes, and nothing can rewrite them.
fn sealed_memfd(body: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a static name; the fd is ours.
    let fd = unsafe {
        libc::memfd_create(
            c"openshell-egress".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(body)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our fd.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(f))
}
