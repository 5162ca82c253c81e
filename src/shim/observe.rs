//! Finding sandboxes across the backends and observing them: a backend's [`Observation`]
//! plus the shared phase derivation → a [`View`]. One backend call per backend, however
//! many sandboxes.

use super::backend::{self, Backend, BackendKind, Context, Observation, Report, Sandbox};
use super::error::CtlError;
use super::names::Name;
use super::phase::{derive, Derived};
use super::state::StateRoot;
use crate::contract::CtlExit;
use std::cell::OnceCell;
use std::time::Duration;

/// Added to a sandbox's stop timeout for the default `--lock-timeout`: a waiter out-waits a
/// stop in progress (which may take the whole stop timeout) plus the engine's own overhead.
pub const LOCK_MARGIN: Duration = Duration::from_secs(30);

/// The backends of one invocation, opened when first needed.
pub struct Backends {
    ctx: Context,
    lock_timeout: Option<Duration>,
    opened: Vec<(BackendKind, OnceCell<Box<dyn Backend>>)>,
}

/// Everything known about one sandbox right now.
#[derive(Debug, Clone)]
pub struct View {
    pub sandbox: Sandbox,
    pub obs: Observation,
    pub derived: Derived,
    /// The objects that make it up, from its backend (`("container", "openshell-a")`…).
    pub objects: Vec<(&'static str, String)>,
}

impl Backends {
    pub fn new(ctx: Context, lock_timeout: Option<Duration>) -> Backends {
        Backends {
            ctx,
            lock_timeout,
            opened: BackendKind::ALL
                .iter()
                .map(|&k| (k, OnceCell::new()))
                .collect(),
        }
    }

    pub fn root(&self) -> &StateRoot {
        &self.ctx.state_root
    }

    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    pub fn get(&self, kind: BackendKind) -> Result<&dyn Backend, CtlError> {
        let cell = &self
            .opened
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every kind has a cell")
            .1;
        if let Some(b) = cell.get() {
            return Ok(b.as_ref());
        }
        let b = backend::open(kind, &self.ctx)?;
        Ok(cell.get_or_init(|| b).as_ref())
    }

    /// How long a verb waits for another holder of `sb`'s lock.
    pub fn lock_wait(&self, sb: &Sandbox) -> Duration {
        self.lock_timeout
            .unwrap_or(Duration::from_secs(sb.record.stop_timeout_secs) + LOCK_MARGIN)
    }

    /// NAME on whichever backend has it. A bad name, an unknown one and a name that two
    /// backends hold each get their own exit code.
    pub fn find_arg(&self, name: &str) -> Result<Sandbox, CtlError> {
        let name = Name::parse(name).map_err(|e| CtlError::new(CtlExit::BadName, e))?;
        match self.find(&name)? {
            Some(sb) => Ok(sb),
            None => {
                // podman and docker share the state root: each place is said once.
                let mut scopes: Vec<String> = Vec::new();
                for kind in backend::listed(&self.ctx) {
                    if let Ok(scope) = self.get(kind).map(|b| b.scope()) {
                        if !scopes.contains(&scope) {
                            scopes.push(scope);
                        }
                    }
                }
                Err(CtlError::new(
                    CtlExit::UnknownSandbox,
                    format!(
                        "no sandbox named {:?} {} (see `sandboxctl list`, or pass --state-root, --backend, --namespace)",
                        name.as_str(),
                        scopes.join(", nor ")
                    ),
                ))
            }
        }
    }

    /// NAME, if a listed backend has it. A backend that cannot be asked is an error only
    /// when no other backend has the name.
    pub fn find(&self, name: &Name) -> Result<Option<Sandbox>, CtlError> {
        let mut found: Vec<Sandbox> = Vec::new();
        let mut first_err = None;
        for kind in backend::listed(&self.ctx) {
            match self.get(kind).and_then(|b| b.find(name)) {
                Ok(Some(sb)) => found.push(sb),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match found.len() {
            0 => first_err.map_or(Ok(None), Err),
            1 => Ok(found.pop()),
            _ => Err(CtlError::new(
                CtlExit::Conflict,
                format!(
                    "the name is held by more than one backend ({}); sandboxctl cannot tell which is meant",
                    found.iter().map(|s| s.kind().as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .about(name.as_str())),
        }
    }

    /// Every sandbox of every listed backend, by name, and the backends that could not be
    /// listed (their sandboxes are missing from the list, the others are there).
    pub fn all(&self) -> (Vec<Sandbox>, Vec<CtlError>) {
        let mut all = Vec::new();
        let mut errors = Vec::new();
        for kind in backend::listed(&self.ctx) {
            match self.get(kind).and_then(|b| b.list()) {
                Ok(list) => all.extend(list),
                Err(e) => errors.push(e),
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        (all, errors)
    }

    /// Observes each sandbox; the result keeps the input order. A backend that cannot be
    /// reached fails every sandbox on it, not the others.
    pub fn observe(&self, sandboxes: &[Sandbox]) -> Vec<Result<View, CtlError>> {
        let mut out: Vec<Option<Result<View, CtlError>>> = sandboxes.iter().map(|_| None).collect();
        let mut kinds: Vec<BackendKind> = sandboxes.iter().map(Sandbox::kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let idx: Vec<usize> = (0..sandboxes.len())
                .filter(|&i| sandboxes[i].kind() == kind)
                .collect();
            let group: Vec<Sandbox> = idx.iter().map(|&i| sandboxes[i].clone()).collect();
            match self.get(kind) {
                Ok(b) => {
                    for (&i, obs) in idx.iter().zip(b.observe(&group)) {
                        out[i] = Some(obs.map(|o| view(b, &sandboxes[i], o)));
                    }
                }
                Err(e) => {
                    for &i in &idx {
                        out[i] = Some(Err(CtlError::new(e.exit, e.message.clone())
                            .about(sandboxes[i].name.as_str())));
                    }
                }
            }
        }
        out.into_iter()
            .map(|v| v.expect("every sandbox has one backend"))
            .collect()
    }

    pub fn observe_one(&self, sb: &Sandbox) -> Result<View, CtlError> {
        self.observe(std::slice::from_ref(sb))
            .pop()
            .expect("one view per sandbox")
    }
}

/// A backend's observation with the derived phase: the backend's own derivation where it
/// has one, else the shared table; and the supervisor's report, from a current status.json
/// where the backend reported none of its own.
pub fn view(b: &dyn Backend, sb: &Sandbox, mut obs: Observation) -> View {
    let derived = obs.derived.clone().unwrap_or_else(|| derive(&obs));
    if obs.report.is_none() {
        obs.report = obs
            .status
            .as_ref()
            .filter(|_| derived.status_current)
            .map(Report::from_status);
    }
    View {
        derived,
        objects: b.objects(sb),
        sandbox: sb.clone(),
        obs,
    }
}
