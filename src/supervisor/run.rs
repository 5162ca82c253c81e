//! The supervisor's life, start to exit: boot hook, then child generations with restarts,
//! then a graceful stop. One thread; every wait goes through [`Supervisor::wait`], which
//! reaps, forwards signals and notes stop requests, so no step can miss an event.

use super::child;
use super::cli::RunArgs;
use super::egress::Egress;
use super::env;
use super::events::Events;
use super::hook::{self, Found, Lines};
use super::report::Reporter;
use super::restart::{Decision, RestartConfig, Restarts};
use super::spawn::{SpawnError, Spawner};
use super::tree;
use crate::contract::status::{ChildInfo, ExitInfo, HookResult};
use crate::contract::time::now_rfc3339;
use crate::contract::{ExitCode, Phase, Reason};
use crate::enforce::Sandbox;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// How often group membership is re-checked while waiting for a process group to empty:
/// grandchildren are not our children, so their exits do not always wake us.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// After SIGKILL, how long to wait for the kernel to finish the kills before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// After forwarding a stop signal, how long we stay off the CPU before our own bookkeeping
/// (status write, /proc scan), so that the signalled child runs its handler first.
const STOP_SETTLE: Duration = Duration::from_millis(1);

pub struct Supervisor {
    args: RunArgs,
    events: Events,
    report: Reporter,
    cwd: PathBuf,
    sandbox: Option<Arc<Sandbox>>,
    spawner: Spawner,
    /// What every generation execs, built at the first spawn.
    child_exec: Option<child::Prepared>,
    restarts: Restarts,
    /// The stop signal (SIGTERM/SIGINT) once a stop has been requested.
    stop: Option<Signal>,
    /// The stop signal has already been sent to the hook's or the child's group by `wait`.
    stop_forwarded: bool,
    /// The process whose exit the current step waits for (hook or child).
    watched: Option<Pid>,
    watched_exit: Option<WaitStatus>,
    /// Where forwarded signals go: the hook's or the child's process group.
    forward_to: Option<Pid>,
    /// The egress proxy's listener until the proxy is started, then the proxy.
    egress_listener: Option<std::net::TcpListener>,
    egress: Option<Egress>,
}

enum ChildEnd {
    Exited(WaitStatus, Duration),
    StopRequested,
    /// The egress proxy cannot be kept running.
    EgressFailed(String),
}

impl Supervisor {
    pub fn new(
        args: RunArgs,
        events: Events,
        spawner: Spawner,
        report: Reporter,
        cwd: PathBuf,
        sandbox: Option<Sandbox>,
        egress_listener: Option<std::net::TcpListener>,
    ) -> Supervisor {
        let restarts = Restarts::new(RestartConfig {
            policy: args.restart,
            initial: args.backoff_initial,
            max: args.backoff_max,
            reset_after: args.backoff_reset_after,
            max_restarts: args.max_restarts,
            window: args.restart_window,
        });
        Supervisor {
            args,
            events,
            report,
            cwd,
            sandbox: sandbox.map(Arc::new),
            spawner,
            child_exec: None,
            restarts,
            stop: None,
            stop_forwarded: false,
            watched: None,
            watched_exit: None,
            forward_to: None,
            egress_listener,
            egress: None,
        }
    }

    /// Runs to the end and returns the process exit code.
    pub fn run(mut self) -> i32 {
        if let Err(code) = self.boot() {
            return code;
        }
        if let Err(code) = self.rebuild_sandbox_after_hook() {
            return code;
        }
        if let Err(code) = self.start_egress() {
            return code;
        }
        loop {
            if self.stop.is_some() {
                return self.finish_stopped();
            }
            if let Some(msg) = self.egress.as_mut().and_then(|e| e.fatal.take()) {
                return self.fail(Reason::EgressFailed, msg, ExitCode::EgressFailed.code());
            }
            let (pid, started) = match self.spawn_child() {
                Ok(v) => v,
                Err(code) => return code,
            };
            match self.supervise(pid, started) {
                ChildEnd::StopRequested => return self.stop_child(pid),
                ChildEnd::EgressFailed(msg) => {
                    return self.fail(Reason::EgressFailed, msg, ExitCode::EgressFailed.code())
                }
                ChildEnd::Exited(status, uptime) => {
                    self.forward_to = None;
                    self.drain_leftovers(pid, "child");
                    if self.stop.is_some() {
                        return self.finish_stopped();
                    }
                    let success = matches!(status, WaitStatus::Exited(_, 0));
                    match self.restarts.on_exit(success, uptime, Instant::now()) {
                        Decision::Exit => return self.finish_child_exit(status),
                        Decision::CrashLoop => {
                            let max = self.args.max_restarts.unwrap_or(0);
                            let msg = format!(
                                "child {} after {} restarts within {:?}; fix the command or raise --max-restarts",
                                describe(status),
                                max,
                                self.args.restart_window
                            );
                            error!(
                                event = "crash_loop",
                                restarts = self.report.status.restarts,
                                max_restarts = max,
                                "{msg}"
                            );
                            return self.fail(Reason::CrashLoop, msg, ExitCode::CrashLoop.code());
                        }
                        Decision::Restart(delay) => {
                            if !self.back_off(delay) {
                                return self.finish_stopped();
                            }
                            self.report.status.restarts += 1;
                        }
                    }
                }
            }
        }
    }

    // ----- waiting -------------------------------------------------------------------

    /// Waits for one batch of events and dispatches it. Returns the readable fd indexes.
    fn wait(
        &mut self,
        deadline: Option<Instant>,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Vec<usize> {
        let egress_fd = self.egress.as_ref().and_then(|e| e.poll_fd());
        let mut all = fds.to_vec();
        all.extend(egress_fd);
        let egress_at = self.egress.as_ref().and_then(|e| e.deadline());
        let deadline = match (deadline, egress_at) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        };
        // A failed status write is retried on time even while nothing else happens.
        let batch = self.events.wait(self.report.deadline(deadline), &all);
        drop(all);
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                // poll/signalfd failing is not something we can wait out; avoid a hot loop.
                error!(event = "events.error", error = %e, "waiting for events failed");
                std::thread::sleep(Duration::from_millis(100));
                return Vec::new();
            }
        };
        let mut egress_changed = false;
        for (pid, status) in batch.exited {
            if Some(pid) == self.watched {
                self.watched_exit = Some(status);
            } else if self.egress.as_mut().is_some_and(|e| e.on_exit(pid, status)) {
                egress_changed = true;
            } else {
                debug!(event = "reap.orphan", pid = pid.as_raw(), status = %describe(status), "reaped");
            }
        }
        for sig in batch.signals {
            let stop = [Signal::SIGTERM, Signal::SIGINT]
                .into_iter()
                .find(|s| sig.is(*s));
            if let (Some(stop), None) = (stop, self.stop) {
                self.stop = Some(stop);
                // Forward before anything else, even the log line: after a long idle spell
                // the first log line costs more than the kill. The step in progress then
                // reacts to `stop` (phase, grace, SIGKILL) without signalling again.
                if let Some(pg) = self.forward_to {
                    self.stop_forwarded = child::signal_group(pg, stop);
                    // The woken process is often queued on our CPU and would wait for our
                    // bookkeeping (log, status write, /proc scan); let it run first.
                    let _ = nix::sched::sched_yield();
                }
                info!(
                    event = "stop.requested",
                    signal = stop.as_str(),
                    forwarded = self.stop_forwarded,
                    "stop requested"
                );
                continue;
            }
            match self.forward_to {
                Some(pg) => {
                    let ok = child::signal_group_raw(pg, sig.signo);
                    info!(
                        event = "signal.forward",
                        signal = %sig.name(),
                        pgid = pg.as_raw(),
                        delivered = ok,
                        "forwarded signal"
                    );
                }
                None => debug!(
                    event = "signal.dropped",
                    signal = %sig.name(),
                    "no process to forward to"
                ),
            }
        }
        let mut readable = batch.readable;
        if let Some(e) = &mut self.egress {
            if readable.contains(&fds.len()) {
                egress_changed |= e.on_readable();
            }
            egress_changed |= e.tick(Instant::now());
        }
        readable.retain(|i| *i < fds.len());
        self.report.retry_if_due();
        if egress_changed {
            self.report.status.egress = self.egress.as_ref().map(|e| e.info.clone());
            self.report.write();
        }
        readable
    }

    /// Waits until `pid` has exited and its process group is empty, or `deadline`.
    /// Returns true when both happened.
    fn wait_group_gone(&mut self, pgid: Pid, deadline: Instant) -> bool {
        loop {
            let exited = self.watched != Some(pgid) || self.watched_exit.is_some();
            if exited && !child::group_alive(pgid) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait(Some(deadline.min(now + GROUP_POLL)), &[]);
        }
    }

    /// After the hook or a generation ended: everything it left behind, its process group
    /// and every other descendant (a daemon that called setsid is in neither), gets
    /// SIGTERM, then SIGKILL after the grace, and is reaped before anything else starts: a
    /// leftover of the hook would run as root beside the child, and a generation's would
    /// pile up across restarts.
    fn drain_leftovers(&mut self, pgid: Pid, what: &str) {
        let left = tree::descendants_except(&self.helper_pids());
        if left.is_empty() && !child::group_alive(pgid) {
            return;
        }
        warn!(
            event = "group.cleanup",
            pgid = pgid.as_raw(),
            of = what,
            count = left.len(),
            "processes left behind: sending SIGTERM"
        );
        child::signal_group(pgid, Signal::SIGTERM);
        for p in left {
            let _ = nix::sys::signal::kill(p, Signal::SIGTERM);
        }
        if self.wait_leftovers_gone(pgid, after(self.args.grace), None) {
            return;
        }
        warn!(
            event = "group.kill",
            pgid = pgid.as_raw(),
            of = what,
            "leftovers outlived the grace: sending SIGKILL"
        );
        if !self.wait_leftovers_gone(pgid, after(KILL_WAIT), Some(Signal::SIGKILL)) {
            warn!(
                event = "stop.leftovers",
                count = tree::descendants_except(&self.helper_pids()).len(),
                "descendants survived SIGKILL (uninterruptible sleep?)"
            );
        }
    }

    /// The supervisor's own long-lived helpers (the egress proxy): the sweep for leftovers
    /// after the hook and after each generation spares them and what runs below them.
    fn helper_pids(&self) -> Vec<Pid> {
        self.egress.iter().filter_map(Egress::pid).collect()
    }

    /// Waits until the group is empty and no descendant is left (all reaped), or
    /// `deadline`; with `kill`, sends it again to the group and to every descendant found
    /// on each round, so processes forked meanwhile are caught too.
    fn wait_leftovers_gone(&mut self, pgid: Pid, deadline: Instant, kill: Option<Signal>) -> bool {
        loop {
            let left = tree::descendants_except(&self.helper_pids());
            if left.is_empty() && !child::group_alive(pgid) {
                return true;
            }
            if let Some(sig) = kill {
                child::signal_group(pgid, sig);
                for p in &left {
                    let _ = nix::sys::signal::kill(*p, sig);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait(Some(deadline.min(now + GROUP_POLL)), &[]);
        }
    }

    // ----- boot hook -----------------------------------------------------------------

    fn boot(&mut self) -> Result<(), i32> {
        if self.args.no_hook {
            info!(event = "hook.disabled", "boot hook disabled (--no-hook)");
            self.report.status.hook.result = HookResult::Disabled;
            return Ok(());
        }
        let path = self.args.hook.clone();
        let shown = path.display().to_string();
        let strict = nix::unistd::geteuid().is_root();
        let mut env = hook::environment(&path);
        if let Some(file) = self.args.hook_env_file.clone() {
            match env::read_hook_env_file(&file, strict) {
                Ok(vars) => {
                    let names: Vec<_> = vars.iter().map(|(k, _)| k.to_string_lossy()).collect();
                    info!(event = "hook.env_file", path = %file.display(), names = %names.join(","),
                        "variables for the hook only");
                    env = env::overlay(env, vars);
                }
                Err(env::EnvFileError::Untrusted(why)) => {
                    error!(event = "hook.untrusted", path = %file.display(), error = %why, "refusing the hook's environment file");
                    self.report.status.hook.result = HookResult::Untrusted;
                    return Err(self.fail(
                        Reason::HookUntrusted,
                        why,
                        ExitCode::HookUntrusted.code(),
                    ));
                }
                Err(env::EnvFileError::Invalid(why)) => {
                    error!(event = "hook.env_file_invalid", path = %file.display(), error = %why, "fix or remove --hook-env-file");
                    return Err(self.fail(Reason::ConfigInvalid, why, ExitCode::Config.code()));
                }
            }
        }
        let prepared = match hook::prepare(&path, strict, &env) {
            Ok(Found::Missing) => {
                info!(event = "hook.skipped", path = %shown, "no boot hook at this path; continuing");
                self.report.status.hook.result = HookResult::Skipped;
                return Ok(());
            }
            Ok(Found::Present(p)) => p,
            Err(why) => {
                error!(event = "hook.untrusted", path = %shown, error = %why, "refusing to run the boot hook");
                self.report.status.hook.result = HookResult::Untrusted;
                let msg = format!("boot hook {shown} refused: {why}");
                return Err(self.fail(Reason::HookUntrusted, msg, ExitCode::HookUntrusted.code()));
            }
        };
        let started = Instant::now();
        let mut running = match hook::spawn(&mut self.spawner, &prepared, &env, &self.cwd) {
            Ok(r) => r,
            Err(e) => {
                error!(event = "hook.exit", path = %shown, error = %e, "boot hook could not be started");
                self.report.status.hook.result = HookResult::Failed;
                let msg = format!("boot hook {shown} could not be started: {e}");
                return Err(self.fail(Reason::HookFailed, msg, ExitCode::HookFailed.code()));
            }
        };
        let pid = Pid::from_raw(running.pid);
        let interpreter = prepared.interpreter().map(|p| p.display().to_string());
        info!(event = "hook.start", path = %shown, pid = running.pid, direct = prepared.direct(),
            interpreter = interpreter.as_deref().unwrap_or(""), "running boot hook");
        drop(prepared); // the checked descriptors: the hook holds its own copies now
        self.report.status.hook.result = HookResult::Running;
        self.report.write();
        self.watched = Some(pid);
        self.watched_exit = None;
        self.forward_to = Some(pid);

        let timeout_at = at_or_far(started, self.args.hook_timeout);
        let mut kill_at: Option<Instant> = None; // set once a stop has sent SIGTERM
        let mut timed_out = false;
        let mut lines = [Lines::default(), Lines::default()];
        loop {
            if self.watched_exit.is_some() {
                break;
            }
            if self.stop.is_some() && kill_at.is_none() {
                let sig = self.stop.unwrap_or(Signal::SIGTERM);
                info!(
                    event = "stop.begin",
                    during = "hook",
                    signal = sig.as_str(),
                    grace_ms = self.args.grace.as_millis() as u64,
                    "stopping the boot hook"
                );
                self.report.phase(Phase::Stopping, None, None);
                if !self.stop_forwarded {
                    child::signal_group(pid, sig);
                }
                kill_at = Some(after(self.args.grace));
            }
            let now = Instant::now();
            if !timed_out && kill_at.is_none() && now >= timeout_at {
                error!(event = "hook.timeout", path = %shown, timeout_ms = self.args.hook_timeout.as_millis() as u64, "boot hook timed out: killing its process group");
                child::signal_group(pid, Signal::SIGKILL);
                timed_out = true;
            }
            if let Some(k) = kill_at {
                if now >= k {
                    warn!(
                        event = "stop.kill",
                        during = "hook",
                        pgid = pid.as_raw(),
                        "boot hook outlived the grace: sending SIGKILL"
                    );
                    child::signal_group(pid, Signal::SIGKILL);
                    kill_at = Some(now + KILL_WAIT);
                }
            }
            let deadline = match (timed_out, kill_at) {
                (true, _) => None,
                (false, Some(k)) => Some(k),
                (false, None) => Some(timeout_at),
            };
            let fds: Vec<_> = [&running.stdout, &running.stderr]
                .iter()
                .filter_map(|f| f.as_ref().map(|f| f.as_fd()))
                .collect();
            let readable = self.wait(deadline, &fds);
            if !readable.is_empty() {
                pump_output(&mut running, &mut lines, false);
            }
        }
        // The hook is gone; collect what it wrote last, then make sure nothing it started
        // lingers: leftovers would run unsandboxed beside the child.
        pump_output(&mut running, &mut lines, true);
        self.forward_to = None;
        let status = self.watched_exit.take().expect("loop ends on exit");
        self.watched = None;
        self.drain_leftovers(pid, "hook");

        let duration_ms = started.elapsed().as_millis() as u64;
        let h = &mut self.report.status.hook;
        h.duration_ms = Some(duration_ms);
        (h.exit_code, h.signal) = code_and_signal(status);
        info!(event = "hook.exit", path = %shown, status = %describe(status), duration_ms, "boot hook finished");
        if self.stop.is_some() {
            self.report.status.hook.result = HookResult::Stopped;
            return Err(self.finish_stopped());
        }
        if timed_out {
            self.report.status.hook.result = HookResult::TimedOut;
            let msg = format!(
                "boot hook {shown} ran longer than --hook-timeout {:?} and was killed",
                self.args.hook_timeout
            );
            return Err(self.fail(Reason::HookTimeout, msg, ExitCode::HookTimeout.code()));
        }
        if !matches!(status, WaitStatus::Exited(_, 0)) {
            self.report.status.hook.result = HookResult::Failed;
            let msg = format!(
                "boot hook {shown} {}; the child was not started",
                describe(status)
            );
            error!(event = "hook.failed", path = %shown, status = %describe(status), "boot hook failed: startup aborted");
            return Err(self.fail(Reason::HookFailed, msg, ExitCode::HookFailed.code()));
        }
        self.report.status.hook.result = HookResult::Succeeded;
        Ok(())
    }

    /// The hook may create what the policy names (the workspace, a cache directory):
    /// Landlock rules hold fds, so a path that did not exist when the sandbox was first
    /// prepared would grant nothing. Prepare it again against the filesystem as the hook
    /// left it; the first preparation already proved the policy valid before the hook ran.
    fn rebuild_sandbox_after_hook(&mut self) -> Result<(), i32> {
        if self.sandbox.is_none() || self.report.status.hook.result != HookResult::Succeeded {
            return Ok(());
        }
        let port = self
            .egress_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        let prepared = super::prepare_sandbox(&self.args, &self.cwd, port).and_then(|s| {
            s.check_missing_paths()
                .map_err(|e| super::refused(&self.args, e))?;
            Ok(s)
        });
        match prepared {
            Ok(s) => {
                self.sandbox = Some(Arc::new(s));
                Ok(())
            }
            Err(e) => Err(self.fail(e.reason, e.message, e.code)),
        }
    }

    // ----- egress proxy --------------------------------------------------------------

    /// Starts the egress proxy before the first child and waits (through the event loop)
    /// until it serves. A proxy that cannot be started fails the supervisor (exit 87).
    fn start_egress(&mut self) -> Result<(), i32> {
        let Some(listener) = self.egress_listener.take() else {
            return Ok(());
        };
        let Some(plan) = self.sandbox.as_ref().and_then(|s| s.egress().cloned()) else {
            return Ok(());
        };
        let started =
            Egress::new(listener, &plan, &self.args.log).and_then(|mut e| e.start().map(|()| e));
        let egress = match started {
            Ok(e) => e,
            Err(msg) => {
                error!(event = "egress.failed", error = %msg, "egress cannot be provided");
                return Err(self.fail(Reason::EgressFailed, msg, ExitCode::EgressFailed.code()));
            }
        };
        self.report.status.egress = Some(egress.info.clone());
        self.egress = Some(egress);
        loop {
            if self.stop.is_some() {
                return Err(self.finish_stopped());
            }
            let Some(e) = &self.egress else { return Ok(()) };
            if e.is_up() {
                return Ok(());
            }
            // The first start gets no second chance: a proxy that cannot start now will
            // not start later either, and the child must not run without its egress.
            if e.info.last_exit.is_some() {
                let msg = format!(
                    "the egress proxy exited before it was ready ({:?}); see its egress.* events in the log",
                    e.info.last_exit
                );
                error!(event = "egress.failed", error = %msg, "egress cannot be provided");
                return Err(self.fail(Reason::EgressFailed, msg, ExitCode::EgressFailed.code()));
            }
            self.wait(None, &[]);
        }
    }

    // ----- child ---------------------------------------------------------------------

    fn spawn_child(&mut self) -> Result<(Pid, Instant), i32> {
        let generation = self.report.status.restarts + 1;
        let program = self.args.command[0].to_string_lossy().into_owned();
        if self.child_exec.is_none() {
            let identity = self
                .sandbox
                .as_ref()
                .map(|s| s.child_env())
                .unwrap_or_default();
            let (env, withheld) = env::child_env(
                std::env::vars_os(),
                &self.args.child_env,
                &identity,
                self.sandbox.is_some(),
            );
            let names: Vec<_> = env.iter().map(|(k, _)| k.to_string_lossy()).collect();
            info!(event = "child.env", names = %names.join(","), withheld = %withheld.join(","),
                "the child's environment (add names with --child-env)");
            match child::Prepared::new(&self.args.command, &env, &self.cwd) {
                Ok(p) => self.child_exec = Some(p),
                Err(e) => {
                    let msg = format!("cannot prepare {program:?} for exec: {e}");
                    error!(event = "child.spawn_failed", command = %program, error = %e, exit_code = ExitCode::NotExecutable.code(), generation, "check the command line");
                    return Err(self.fail(
                        Reason::SpawnFailed,
                        msg,
                        ExitCode::NotExecutable.code(),
                    ));
                }
            }
        }
        let prepared = self.child_exec.as_ref().expect("prepared above");
        match child::spawn(&mut self.spawner, prepared, self.sandbox.as_deref()) {
            Ok(pid) => {
                let started = Instant::now();
                info!(event = "child.spawn", pid = pid.as_raw(), generation, command = %program, sandboxed = self.sandbox.is_some(), "child started");
                self.watched = Some(pid);
                self.watched_exit = None;
                self.forward_to = Some(pid);
                self.report.status.child = Some(ChildInfo {
                    pid: pid.as_raw() as u32,
                    generation,
                    started_at: now_rfc3339(),
                });
                self.report.phase(Phase::Starting, None, None);
                Ok((pid, started))
            }
            Err(SpawnError::Setup(f)) => {
                let msg = format!(
                    "sandbox set-up failed in the child at stage {} ({}); run `supervisor check --policy {}`",
                    f.stage,
                    std::io::Error::from_raw_os_error(f.errno),
                    self.args.policy.display()
                );
                error!(event = "enforce.failed", stage = f.stage.as_str(), errno = f.errno, error = %std::io::Error::from_raw_os_error(f.errno), generation, "child was not started");
                Err(self.fail(Reason::EnforcementFailed, msg, ExitCode::Enforcement.code()))
            }
            Err(SpawnError::Os(e)) => {
                let msg = format!("cannot start {program:?}: {e}");
                error!(event = "child.spawn_failed", command = %program, error = %e, exit_code = ExitCode::Internal.code(), generation, "the supervisor could not create a process");
                Err(self.fail(Reason::SpawnFailed, msg, ExitCode::Internal.code()))
            }
            Err(SpawnError::Exec(e)) => {
                let code = match e.raw_os_error() {
                    Some(libc::ENOENT) => ExitCode::NotFound,
                    _ => ExitCode::NotExecutable,
                };
                let msg = format!("cannot execute {program:?}: {e}");
                error!(event = "child.spawn_failed", command = %program, error = %e, exit_code = code.code(), generation, "check the command and PATH inside the sandbox");
                Err(self.fail(Reason::SpawnFailed, msg, code.code()))
            }
        }
    }

    /// Watches a running generation until it exits or a stop is requested.
    fn supervise(&mut self, pid: Pid, started: Instant) -> ChildEnd {
        let ready_at = at_or_far(started, self.args.ready_after);
        loop {
            if let Some(status) = self.watched_exit.take() {
                self.watched = None;
                let uptime = started.elapsed();
                let (code, signal) = code_and_signal(status);
                self.report.status.last_exit = Some(ExitInfo {
                    code,
                    signal,
                    at: now_rfc3339(),
                });
                info!(event = "child.exit", pid = pid.as_raw(), status = %describe(status), code, signal, uptime_ms = uptime.as_millis() as u64, "child exited");
                return ChildEnd::Exited(status, uptime);
            }
            if self.stop.is_some() {
                return ChildEnd::StopRequested;
            }
            if let Some(msg) = self.egress.as_mut().and_then(|e| e.fatal.take()) {
                return ChildEnd::EgressFailed(msg);
            }
            // Ready needs the egress proxy up: without it the child has no network.
            let egress_up = self.egress.as_ref().is_none_or(|e| e.is_up());
            if self.report.status.phase == Phase::Ready && !egress_up {
                let msg = "the egress proxy is down and being restarted".to_owned();
                self.report.phase(Phase::Starting, None, Some(msg));
            }
            let starting = self.report.status.phase == Phase::Starting;
            if starting && egress_up && Instant::now() >= ready_at {
                self.report.phase(Phase::Ready, None, None);
                continue;
            }
            self.wait((starting && egress_up).then_some(ready_at), &[]);
        }
    }

    /// Waits out the restart delay. Returns false when a stop arrived meanwhile.
    fn back_off(&mut self, delay: Duration) -> bool {
        let restarts = self.report.status.restarts + 1;
        info!(
            event = "child.restart_scheduled",
            delay_ms = delay.as_millis() as u64,
            restart = restarts,
            "restarting the child after a delay"
        );
        // A zero delay (--backoff-initial 0) is a phase nobody can observe: skip its fsync'd
        // write and go straight to Starting, which records the restart.
        if !delay.is_zero() {
            self.report.phase(Phase::BackOff, None, None);
        }
        let until = after(delay);
        while Instant::now() < until {
            if self.stop.is_some() {
                return false;
            }
            self.wait(Some(until), &[]);
        }
        self.stop.is_none()
    }

    // ----- ending --------------------------------------------------------------------

    /// Graceful stop of a running child: forward the stop signal to its group (and to any
    /// other descendant), SIGKILL after the grace, reap everything, exit 0.
    fn stop_child(&mut self, pid: Pid) -> i32 {
        let sig = self.stop.unwrap_or(Signal::SIGTERM);
        if self.stop_forwarded && self.watched_exit.is_none() {
            // sched_yield in wait() does not always hand the CPU to a child woken on it;
            // blocking does. A SIGCHLD (the child handled the signal and exited) ends it early.
            self.wait(Some(after(STOP_SETTLE)), &[]);
        }
        info!(
            event = "stop.begin",
            signal = sig.as_str(),
            pgid = pid.as_raw(),
            grace_ms = self.args.grace.as_millis() as u64,
            "stopping the child"
        );
        self.report.phase(Phase::Stopping, None, None);
        if !self.stop_forwarded {
            child::signal_group(pid, sig);
        }
        tree::signal_descendants(sig);
        if !self.wait_group_gone(pid, after(self.args.grace)) {
            warn!(
                event = "stop.kill",
                pgid = pid.as_raw(),
                grace_ms = self.args.grace.as_millis() as u64,
                "child outlived the grace: sending SIGKILL"
            );
            child::signal_group(pid, Signal::SIGKILL);
            self.wait_group_gone(pid, after(KILL_WAIT));
        }
        if let Some(status) = self.watched_exit.take() {
            let (code, signal) = code_and_signal(status);
            self.report.status.last_exit = Some(ExitInfo {
                code,
                signal,
                at: now_rfc3339(),
            });
            info!(event = "child.exit", pid = pid.as_raw(), status = %describe(status), code, signal, "child exited");
        }
        self.watched = None;
        self.forward_to = None;
        self.finish_stopped()
    }

    /// Kills and reaps every remaining descendant, then reports `Stopped`.
    fn finish_stopped(&mut self) -> i32 {
        if self.report.status.phase != Phase::Stopping {
            self.report.phase(Phase::Stopping, None, None);
        }
        self.reap_descendants();
        self.report.phase(Phase::Stopped, None, None);
        self.exit(ExitCode::Ok.code())
    }

    /// Descendants outside the child's group (daemons that called setsid) would otherwise
    /// outlive us, or as PID 1 be killed unreaped by the kernel.
    fn reap_descendants(&mut self) {
        if let Some(e) = &mut self.egress {
            e.shutdown();
            self.report.status.egress = Some(e.info.clone());
        }
        let deadline = after(KILL_WAIT);
        loop {
            let left = tree::descendants();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                warn!(
                    event = "stop.leftovers",
                    count = left.len(),
                    "descendants survived SIGKILL (uninterruptible sleep?)"
                );
                return;
            }
            warn!(
                event = "stop.kill_descendants",
                count = left.len(),
                "killing descendants outside the child's group"
            );
            for p in &left {
                let _ = nix::sys::signal::kill(*p, Signal::SIGKILL);
            }
            self.wait(Some(after(GROUP_POLL)), &[]);
        }
    }

    /// The child exited and the policy does not restart it.
    fn finish_child_exit(&mut self, status: WaitStatus) -> i32 {
        let code = match status {
            WaitStatus::Exited(_, c) => c,
            WaitStatus::Signaled(_, s, _) => 128 + s as i32,
            _ => ExitCode::Internal.code(),
        };
        self.reap_descendants();
        if code == 0 {
            self.report.phase(Phase::Completed, None, None);
        } else {
            let msg = format!(
                "child {} and --restart {} does not restart it",
                describe(status),
                self.args.restart.name()
            );
            self.report
                .phase(Phase::Failed, Some(Reason::ChildFailed), Some(msg));
        }
        self.exit(code)
    }

    fn fail(&mut self, reason: Reason, message: String, code: i32) -> i32 {
        self.reap_descendants();
        self.report
            .phase(Phase::Failed, Some(reason), Some(message));
        self.exit(code)
    }

    fn exit(&self, code: i32) -> i32 {
        info!(event = "supervisor.exit", code, phase = %self.report.status.phase, "supervisor exiting");
        code
    }
}

/// Reads whatever the hook wrote and logs it line by line with its stream name.
fn pump_output(running: &mut hook::Running, lines: &mut [Lines; 2], last: bool) {
    for (i, (name, file)) in [
        ("stdout", &mut running.stdout),
        ("stderr", &mut running.stderr),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(f) = file.as_mut() else { continue };
        let (out, eof) = lines[i].read_from(f);
        for line in out {
            info!(event = "hook.output", stream = name, line = %line, "hook output");
        }
        if eof || last {
            *file = None;
        }
    }
}

/// `d` from now. Durations are bounded when parsed, but a deadline must never be able to
/// panic PID 1: an overflow means "never", which is what such a duration asks for.
fn after(d: Duration) -> Instant {
    at_or_far(Instant::now(), d)
}

/// `t + d`, or roughly a century after `t` when that does not fit.
fn at_or_far(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

fn code_and_signal(status: WaitStatus) -> (Option<i32>, Option<i32>) {
    match status {
        WaitStatus::Exited(_, c) => (Some(c), None),
        WaitStatus::Signaled(_, s, _) => (None, Some(s as i32)),
        _ => (None, None),
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, c) => format!("exited with code {c}"),
        WaitStatus::Signaled(_, s, core) => {
            format!(
                "was killed by {}{}",
                s.as_str(),
                if core { " (core dumped)" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}
