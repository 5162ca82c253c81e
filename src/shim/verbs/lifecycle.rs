//! start, stop, resume: the non-destructive verbs. Each records the intent first, then acts.

use super::targets;
use crate::contract::{CtlExit, SandboxPhase};
use crate::shim::cli::{ResumeArgs, StartArgs, StopArgs, WaitArgs};
use crate::shim::engine::{Container, ContainerState};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::observe::{load_all, load_arg, observe_one, view, Sandbox, View};
use crate::shim::output::summary;
use crate::shim::state::{Intent, StateRoot};
use std::time::{Duration, Instant};
use tracing::info;

/// How often `--wait` re-reads status.json (a local file read).
const POLL: Duration = Duration::from_millis(100);
/// How often `--wait` asks the engine (a process spawn, tens of ms) whether the container
/// is still up; settled-looking phases are always confirmed with a fresh observation.
const ENGINE_RECHECK: Duration = Duration::from_secs(1);

pub fn start(root: &StateRoot, args: &StartArgs) -> i32 {
    let mut outcome = Outcome::default();
    for name in &args.names {
        if let Some(sb) = outcome.record(load_arg(root, name)) {
            outcome.record(start_one(&sb, &args.wait, "start"));
        }
    }
    outcome.code()
}

pub fn stop(root: &StateRoot, args: &StopArgs) -> i32 {
    let mut outcome = Outcome::default();
    if let Some(list) = outcome.record(targets(root, &args.targets)) {
        for sb in list {
            if let Some(sb) = outcome.record(sb) {
                outcome.record(stop_one(&sb, args.time, "stop"));
            }
        }
    }
    outcome.code()
}

pub fn resume(root: &StateRoot, args: &ResumeArgs) -> i32 {
    let mut outcome = Outcome::default();
    for sb in outcome.record(load_all(root)).unwrap_or_default() {
        let Some(v) = outcome.record(observe_one(&sb)) else {
            continue;
        };
        let name = &sb.name;
        if v.intent.intent == Intent::Stopped {
            println!("{name}: left {} (intent stopped)", v.derived.phase);
            continue;
        }
        match v.container.as_ref().map(|c| &c.state) {
            Some(ContainerState::Running | ContainerState::Paused) => {
                println!("{name}: already running ({})", v.derived.phase);
            }
            None => {
                outcome.record::<()>(Err(gone(&sb)));
            }
            Some(_) => {
                info!(event = "resume.start", sandbox = %name, phase = %v.derived.phase, "resuming");
                outcome.record(start_one(&sb, &args.wait, "resume"));
            }
        }
    }
    outcome.code()
}

fn gone(sb: &Sandbox) -> CtlError {
    CtlError::new(
        CtlExit::Conflict,
        format!(
            "container {} is gone (removed outside sandboxctl); `sandboxctl delete {}` and create it again (the workspace volume {} is kept until then)",
            sb.record.container, sb.name, sb.record.volume
        ),
    )
    .about(sb.name.as_str())
}

/// Records intent running, starts the container (a no-op when it runs), and with --wait
/// returns once the phase is Ready (or Completed), failing on any other settled phase.
pub fn start_one(sb: &Sandbox, wait: &WaitArgs, by: &str) -> Result<View, CtlError> {
    let name = sb.name.as_str();
    sb.dir.write_intent(Intent::Running, by).map_err(|e| {
        CtlError::new(CtlExit::Internal, format!("cannot record the intent: {e}")).about(name)
    })?;
    let t0 = Instant::now();
    info!(event = "start.begin", sandbox = name, container = %sb.record.container, "starting");
    match sb.engine().start(&sb.record.container) {
        Err(e) if e.is_no_such() => return Err(gone(sb)),
        r => r.map_err(|e| CtlError::from(e).about(name))?,
    }
    let v = if wait.no_wait {
        observe_one(sb)?
    } else {
        wait_ready(sb, wait.timeout)?
    };
    info!(event = "start.done", sandbox = name, phase = %v.derived.phase,
        elapsed_ms = t0.elapsed().as_millis() as u64, "started");
    println!("{}", summary(&v));
    Ok(v)
}

fn inspect(sb: &Sandbox) -> Result<Option<Container>, CtlError> {
    let mut found = sb
        .engine()
        .inspect(std::slice::from_ref(&sb.record.container))
        .map_err(|e| CtlError::from(e).about(sb.name.as_str()))?;
    Ok(found.remove(&sb.record.container))
}

/// Polls until Ready/Completed (Ok), another settled phase (SandboxFailed) or the timeout.
pub fn wait_ready(sb: &Sandbox, timeout: Duration) -> Result<View, CtlError> {
    let name = sb.name.as_str();
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let mut container = inspect(sb)?;
    let mut inspected = Instant::now();
    let mut last = None;
    loop {
        let mut v = view(sb, container.clone())?;
        let stale_engine = inspected.elapsed() >= ENGINE_RECHECK;
        if stale_engine || (v.derived.phase.is_settled() && inspected.elapsed() >= POLL) {
            container = inspect(sb)?;
            inspected = Instant::now();
            v = view(sb, container.clone())?;
        }
        let phase = v.derived.phase;
        if last != Some(phase) {
            info!(event = "start.phase", sandbox = name, phase = %phase,
                elapsed_ms = t0.elapsed().as_millis() as u64, "phase");
            last = Some(phase);
        }
        let running = matches!(
            v.container.as_ref().map(|c| &c.state),
            Some(ContainerState::Running)
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
        if now >= deadline {
            return Err(CtlError::new(
                CtlExit::Timeout,
                format!(
                    "not Ready after {timeout:?} (now {}); it keeps starting: follow it with `sandboxctl watch {name}`",
                    summary(&v)
                ),
            )
            .about(name));
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Records intent stopped, then asks the engine to stop with a timeout longer than the
/// supervisor's own grace, so the supervisor gets to stop the agent and write `Stopped`.
/// Container and volume stay.
pub fn stop_one(sb: &Sandbox, time: Option<u64>, by: &str) -> Result<View, CtlError> {
    let name = sb.name.as_str();
    sb.dir.write_intent(Intent::Stopped, by).map_err(|e| {
        CtlError::new(CtlExit::Internal, format!("cannot record the intent: {e}")).about(name)
    })?;
    let timeout = time.unwrap_or(sb.record.stop_timeout_secs);
    let t0 = Instant::now();
    info!(event = "stop.begin", sandbox = name, container = %sb.record.container,
        timeout_secs = timeout, "stopping");
    match sb.engine().stop(&sb.record.container, timeout) {
        // Nothing runs: the intent is recorded and the phase below says Missing.
        Err(e) if e.is_no_such() => {}
        r => r.map_err(|e| CtlError::from(e).about(name))?,
    }
    let v = observe_one(sb)?;
    info!(event = "stop.done", sandbox = name, phase = %v.derived.phase,
        elapsed_ms = t0.elapsed().as_millis() as u64, "stopped");
    println!("{}", summary(&v));
    match v.derived.phase {
        SandboxPhase::Stopped | SandboxPhase::Created | SandboxPhase::Missing => Ok(v),
        _ => Err(CtlError::new(
            CtlExit::EngineError,
            format!(
                "the engine's stop returned but the sandbox is not stopped: {}",
                summary(&v)
            ),
        )
        .about(name)),
    }
}
