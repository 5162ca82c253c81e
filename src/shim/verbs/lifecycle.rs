//! start, stop, resume: the non-destructive verbs. Each takes the sandbox's lock, records
//! the intent, acts, and checks the result before letting go; `start --wait` then waits for
//! Ready without the lock, so a `stop` is never held up by a slow boot.

use super::targets;
use crate::contract::{CtlExit, SandboxPhase};
use crate::shim::backend::{Backend, Intent, Sandbox, WorkloadState};
use crate::shim::cli::{ResumeArgs, StartArgs, StopArgs, WaitArgs};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::observe::{view, Backends, View};
use crate::shim::output::summary;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often `--wait` re-reads the supervisor's report (a local file read).
const POLL: Duration = Duration::from_millis(100);
/// How often `--wait` asks the backend (a process spawn, tens of ms) whether the workload
/// is still up; settled-looking phases are always confirmed with a fresh observation.
const ENGINE_RECHECK: Duration = Duration::from_secs(1);

pub fn start(bs: &Backends, args: &StartArgs) -> i32 {
    let mut outcome = Outcome::default();
    for name in &args.names {
        if let Some(sb) = outcome.record(bs.find_arg(name)) {
            outcome.record(start_one(bs, &sb, &args.wait, "start"));
        }
    }
    outcome.code()
}

pub fn stop(bs: &Backends, args: &StopArgs) -> i32 {
    let mut outcome = Outcome::default();
    for sb in targets(bs, &args.targets, &mut outcome) {
        outcome.record(stop_one(bs, &sb, args.time, "stop"));
    }
    outcome.code()
}

pub fn resume(bs: &Backends, args: &ResumeArgs) -> i32 {
    let mut outcome = Outcome::default();
    let (all, errors) = bs.all();
    for e in errors {
        outcome.record::<()>(Err(e));
    }
    for sb in all {
        outcome.record(resume_one(bs, &sb, &args.wait));
    }
    outcome.code()
}

/// The sandbox as it is now that we hold its lock: another verb may have changed or
/// deleted it while we waited.
fn reload(b: &dyn Backend, sb: &Sandbox) -> Result<Sandbox, CtlError> {
    b.find(&sb.name)?.ok_or_else(|| {
        CtlError::new(
            CtlExit::UnknownSandbox,
            "was deleted while this command waited for its lock",
        )
        .about(sb.name.as_str())
    })
}

/// Records intent running and starts the workload; the caller holds the lock.
fn start_locked(bs: &Backends, b: &dyn Backend, sb: &Sandbox, by: &str) -> Result<View, CtlError> {
    b.set_intent(sb, Intent::Running, by)?;
    info!(event = "start.begin", sandbox = %sb.name, backend = %sb.kind(), "starting");
    b.start(sb)?;
    bs.observe_one(sb)
}

fn finish_start(
    bs: &Backends,
    b: &dyn Backend,
    v: View,
    wait: &WaitArgs,
    t0: Instant,
) -> Result<View, CtlError> {
    let v = if wait.no_wait {
        v
    } else {
        wait_ready(bs, b, v, wait.timeout)?
    };
    info!(event = "start.done", sandbox = %v.sandbox.name, phase = %v.derived.phase,
        elapsed_ms = t0.elapsed().as_millis() as u64, "started");
    println!("{}", summary(&v));
    Ok(v)
}

/// Records intent running, starts the workload (a no-op when it runs), and with --wait
/// returns once the phase is Ready (or Completed), failing on any other settled phase.
pub fn start_one(bs: &Backends, sb: &Sandbox, wait: &WaitArgs, by: &str) -> Result<View, CtlError> {
    let b = bs.get(sb.kind())?;
    let t0 = Instant::now();
    let v = {
        let _lock = b.lock(sb, by, bs.lock_wait(sb))?;
        let sb = reload(b, sb)?;
        start_locked(bs, b, &sb, by)?
    };
    finish_start(bs, b, v, wait, t0)
}

/// Starts the sandbox if its intent is running and its workload is not (after a power
/// cut, a kill, a stop behind sandboxctl's back); decided under the lock.
fn resume_one(bs: &Backends, sb: &Sandbox, wait: &WaitArgs) -> Result<(), CtlError> {
    let b = bs.get(sb.kind())?;
    let t0 = Instant::now();
    let v = {
        let _lock = b.lock(sb, "resume", bs.lock_wait(sb))?;
        let sb = reload(b, sb)?;
        let v = bs.observe_one(&sb)?;
        let name = &sb.name;
        if v.obs.intent.intent == Intent::Stopped {
            println!("{name}: left {} (intent stopped)", v.derived.phase);
            return Ok(());
        }
        match v.obs.workload.as_ref().map(|w| &w.state) {
            Some(WorkloadState::Running | WorkloadState::Paused) => {
                println!("{name}: already running ({})", v.derived.phase);
                return Ok(());
            }
            // Missing: gone, or the name is another sandbox's; the phase says which.
            None => {
                return Err(CtlError::new(
                    CtlExit::Conflict,
                    format!("cannot be resumed: {}", summary(&v)),
                )
                .about(name.as_str()))
            }
            Some(_) => {}
        }
        info!(event = "resume.start", sandbox = %name, phase = %v.derived.phase, "resuming");
        start_locked(bs, b, &sb, "resume")?
    };
    finish_start(bs, b, v, wait, t0).map(drop)
}

/// Polls until Ready/Completed (Ok), another settled phase (SandboxFailed), a stop
/// recorded meanwhile (SandboxFailed), or the timeout.
pub fn wait_ready(
    bs: &Backends,
    b: &dyn Backend,
    first: View,
    timeout: Duration,
) -> Result<View, CtlError> {
    let sb = first.sandbox.clone();
    let name = sb.name.as_str();
    let t0 = Instant::now();
    let deadline = t0.checked_add(timeout);
    let mut v = first;
    let mut inspected = Instant::now();
    let mut last = None;
    let mut told_problem = false;
    loop {
        if inspected.elapsed() >= ENGINE_RECHECK
            || (v.derived.phase.is_settled() && inspected.elapsed() >= POLL)
        {
            v = bs.observe_one(&sb)?;
            inspected = Instant::now();
        }
        let phase = v.derived.phase;
        if last != Some(phase) {
            info!(event = "start.phase", sandbox = name, phase = %phase,
                elapsed_ms = t0.elapsed().as_millis() as u64, "phase");
            last = Some(phase);
        }
        if let (Some(p), false) = (&v.obs.status_problem, told_problem) {
            warn!(event = "status.refused", sandbox = name, problem = %p, "no status: {p}");
            told_problem = true;
        }
        let i = &v.obs.intent;
        if i.intent == Intent::Stopped {
            return Err(CtlError::new(
                CtlExit::SandboxFailed,
                format!(
                    "`{}` recorded intent stopped at {} while this start waited for Ready (now {})",
                    i.by,
                    i.at,
                    summary(&v)
                ),
            )
            .about(name));
        }
        let running = matches!(
            v.obs.workload.as_ref().map(|w| &w.state),
            Some(WorkloadState::Running)
        );
        match phase {
            SandboxPhase::Ready | SandboxPhase::Completed => return Ok(v),
            // A supervisor that wrote Failed is about to exit: wait for the engine to agree.
            p if p.is_settled() && !running => {
                return Err(CtlError::new(
                    CtlExit::SandboxFailed,
                    format!("did not become Ready: {}", summary(&v)),
                )
                .about(name));
            }
            _ => {}
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(CtlError::new(
                CtlExit::Timeout,
                format!(
                    "not Ready after {timeout:?} (now {}); it keeps starting: follow it with `sandboxctl watch {name}`",
                    summary(&v)
                ),
            )
            .about(name));
        }
        let nap = deadline.map_or(POLL, |d| POLL.min(d - now));
        std::thread::sleep(nap);
        v = view(b, &sb, b.refresh(&sb, &v.obs)?);
    }
}

/// Records intent stopped, then asks the backend to stop with a timeout longer than the
/// supervisor's own grace, so the supervisor gets to stop the agent and write `Stopped`.
/// Workload and workspace stay.
pub fn stop_one(
    bs: &Backends,
    sb: &Sandbox,
    time: Option<u64>,
    by: &str,
) -> Result<View, CtlError> {
    let b = bs.get(sb.kind())?;
    let _lock = b.lock(sb, by, bs.lock_wait(sb))?;
    let sb = reload(b, sb)?;
    stop_locked(bs, b, &sb, time, by)
}

/// The stop itself; the caller holds the lock.
pub fn stop_locked(
    bs: &Backends,
    b: &dyn Backend,
    sb: &Sandbox,
    time: Option<u64>,
    by: &str,
) -> Result<View, CtlError> {
    let name = sb.name.as_str();
    b.set_intent(sb, Intent::Stopped, by)?;
    let timeout = time.unwrap_or(sb.record.stop_timeout_secs);
    let t0 = Instant::now();
    info!(event = "stop.begin", sandbox = name, backend = %sb.kind(), timeout_secs = timeout,
        "stopping");
    b.stop(sb, timeout)?;
    let v = bs.observe_one(sb)?;
    info!(event = "stop.done", sandbox = name, phase = %v.derived.phase,
        elapsed_ms = t0.elapsed().as_millis() as u64, "stopped");
    println!("{}", summary(&v));
    match v.derived.phase {
        SandboxPhase::Stopped | SandboxPhase::Created | SandboxPhase::Missing => Ok(v),
        _ => Err(CtlError::new(
            CtlExit::EngineError,
            format!(
                "the backend's stop returned but the sandbox is not stopped: {}",
                summary(&v)
            ),
        )
        .about(name)),
    }
}
