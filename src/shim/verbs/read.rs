//! status, list, watch: the read verbs. They never change anything.

use crate::contract::{CtlExit, SandboxPhase};
use crate::shim::backend::{self, Change, Sandbox};
use crate::shim::cli::{ListArgs, OutputFormat, StatusArgs, WatchArgs};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::names::Name;
use crate::shim::observe::{view, Backends, View};
use crate::shim::output::{
    describe, table, transition_json, transition_text, view_json, Transition,
};
use std::collections::BTreeMap;
use std::time::Instant;
use tracing::warn;

/// A status.json that was refused (FIFO, symlink, too large, torn) is "no status" for its
/// sandbox: said once, at warn level, and the sandbox is still reported.
fn warn_problem(v: &View) {
    if let Some(p) = &v.obs.status_problem {
        warn!(event = "status.refused", sandbox = %v.sandbox.name, problem = %p, "no status: {p}");
    }
}

pub fn status(bs: &Backends, args: &StatusArgs) -> i32 {
    let mut outcome = Outcome::default();
    let v = bs.find_arg(&args.name).and_then(|sb| bs.observe_one(&sb));
    if let Some(v) = outcome.record(v) {
        warn_problem(&v);
        match args.output {
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(&view_json(&v)).expect("views serialize")
            ),
            OutputFormat::Table => print!("{}", describe(&v)),
        }
    }
    outcome.code()
}

/// Every sandbox of every listed backend; a sandbox whose backend cannot be asked is
/// reported as an error and left out of the listing, the others are still listed.
pub fn list(bs: &Backends, args: &ListArgs) -> i32 {
    let mut outcome = Outcome::default();
    let (sandboxes, errors) = bs.all();
    for e in errors {
        outcome.record::<()>(Err(e));
    }
    let views: Vec<_> = bs
        .observe(&sandboxes)
        .into_iter()
        .filter_map(|v| outcome.record(v))
        .collect();
    views.iter().for_each(warn_problem);
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&views.iter().map(view_json).collect::<Vec<_>>())
                .expect("views serialize")
        ),
        OutputFormat::Table => print!("{}", table(&views)),
    }
    outcome.code()
}

/// What `watch` remembers per sandbox to tell a transition from a repeat.
type Seen = (SandboxPhase, Option<String>);

pub fn watch(bs: &Backends, args: &WatchArgs) -> i32 {
    let mut outcome = Outcome::default();
    outcome.record(run_watch(bs, args));
    outcome.code()
}

/// Turns observations into transitions: shared by the polling loop and a backend's feed,
/// so both print the same lines for the same changes.
struct Tracker {
    seen: BTreeMap<Name, Seen>,
    /// The status problem last warned about, per sandbox: said again only when it changes.
    problems: BTreeMap<Name, Option<String>>,
    out: Emitter,
    /// `watch NAME`: its deletion ends the watch.
    only: bool,
}

impl Tracker {
    /// Prints a transition if the phase (or its reason) changed; true once --count is met.
    fn observed(&mut self, v: &View) -> bool {
        let p = &v.obs.status_problem;
        if self.problems.get(&v.sandbox.name) != Some(p) {
            warn_problem(v);
            self.problems.insert(v.sandbox.name.clone(), p.clone());
        }
        let d = &v.derived;
        let now: Seen = (d.phase, d.reason.clone());
        let previous = self.seen.insert(v.sandbox.name.clone(), now.clone());
        if previous.as_ref() == Some(&now) {
            return false;
        }
        self.out.emit(Transition {
            sandbox: v.sandbox.name.as_str(),
            phase: d.phase,
            previous: previous.map(|p| p.0),
            reason: d.reason.as_deref(),
            message: d.message.as_deref(),
            exit_code: d.exit_code,
        })
    }

    /// A sandbox was deleted; true when the watch is over.
    fn gone(&mut self, name: &Name) -> bool {
        let previous = self.seen.remove(name).map(|p| p.0);
        self.problems.remove(name);
        let done = self.out.emit(Transition {
            sandbox: name.as_str(),
            phase: SandboxPhase::Missing,
            previous,
            reason: None,
            message: Some("the sandbox was deleted"),
            exit_code: None,
        });
        done || self.only
    }

    /// The deadline passed: fine, unless --count was not reached.
    fn timed_out(&self, count: Option<u64>) -> Result<(), CtlError> {
        match count {
            Some(n) => Err(CtlError::new(
                CtlExit::Timeout,
                format!(
                    "watch: {} of {n} transitions before the timeout",
                    self.out.printed
                ),
            )),
            None => Ok(()),
        }
    }
}

fn run_watch(bs: &Backends, args: &WatchArgs) -> Result<(), CtlError> {
    let only: Option<Sandbox> = match &args.name {
        Some(n) => Some(bs.find_arg(n)?),
        None => None,
    };
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    let mut t = Tracker {
        seen: BTreeMap::new(),
        problems: BTreeMap::new(),
        out: Emitter {
            output: args.output,
            count: args.count,
            printed: 0,
        },
        only: only.is_some(),
    };
    // A backend with its own change feed (the Kubernetes API's watch) is followed rather
    // than polled when it is the only one watched.
    let single = match &only {
        Some(sb) => Some(sb.kind()),
        None => match backend::listed(bs.ctx()).as_slice() {
            [k] => Some(*k),
            _ => None,
        },
    };
    if let Some(kind) = single {
        let b = bs.get(kind)?;
        let fed = b.watch(only.as_ref().map(|s| &s.name), deadline, &mut |c| match c {
            Change::Observed(sb, obs) => t.observed(&view(b, &sb, *obs)),
            Change::Gone(name) => t.gone(&name),
        });
        if let Some(r) = fed {
            return if r? { Ok(()) } else { t.timed_out(args.count) };
        }
    }
    let only = only.map(|s| s.name);
    loop {
        let sandboxes: Vec<Sandbox> = match &only {
            Some(n) => bs.find(n)?.into_iter().collect(),
            None => {
                let (all, mut errors) = bs.all();
                if !errors.is_empty() {
                    return Err(errors.remove(0));
                }
                all
            }
        };
        for v in bs.observe(&sandboxes) {
            if t.observed(&v?) {
                return Ok(());
            }
        }
        // Sandboxes deleted since the last round.
        let gone: Vec<Name> = t
            .seen
            .keys()
            .filter(|n| !sandboxes.iter().any(|s| &s.name == *n))
            .cloned()
            .collect();
        for n in gone {
            if t.gone(&n) {
                return Ok(());
            }
        }
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                return t.timed_out(args.count);
            }
            std::thread::sleep(args.interval.min(deadline - now));
        } else {
            std::thread::sleep(args.interval);
        }
    }
}

/// Prints transitions and counts them against `--count`.
struct Emitter {
    output: OutputFormat,
    count: Option<u64>,
    printed: u64,
}

impl Emitter {
    /// Returns true once `--count` transitions have been printed.
    fn emit(&mut self, t: Transition<'_>) -> bool {
        let line = match self.output {
            OutputFormat::Json => transition_json(&t),
            OutputFormat::Table => transition_text(&t),
        };
        println!("{line}");
        self.printed += 1;
        self.count.is_some_and(|n| self.printed >= n)
    }
}
