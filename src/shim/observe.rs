//! Loading sandboxes from the state root and observing them: host state + engine + status.json
//! → a [`View`] with the derived phase. One engine call per backend, however many sandboxes.

use super::engine::{Backend, Container, Engine};
use super::error::CtlError;
use super::names::Name;
use super::phase::{derive, Derived};
use super::state::{IntentRecord, Record, SandboxDir, StateRoot};
use crate::contract::{CtlExit, Status};
use std::io;

/// A sandbox known to the state root.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub name: Name,
    pub dir: SandboxDir,
    pub record: Record,
}

impl Sandbox {
    pub fn engine(&self) -> Engine {
        Engine::new(self.record.backend)
    }
}

/// Everything known about one sandbox right now.
#[derive(Debug, Clone)]
pub struct View {
    pub sandbox: Sandbox,
    pub intent: IntentRecord,
    pub container: Option<Container>,
    pub status: Option<Status>,
    pub derived: Derived,
}

fn internal(what: &str, e: io::Error) -> CtlError {
    CtlError::new(CtlExit::Internal, format!("{what}: {e}"))
}

/// Parses NAME and loads its record: bad names and unknown sandboxes get their own codes.
pub fn load_arg(root: &StateRoot, name: &str) -> Result<Sandbox, CtlError> {
    let name = Name::parse(name).map_err(|e| CtlError::new(CtlExit::BadName, e))?;
    load(root, &name)
}

pub fn load(root: &StateRoot, name: &Name) -> Result<Sandbox, CtlError> {
    let dir = root.dir(name);
    if !dir.exists() {
        return Err(CtlError::new(
            CtlExit::UnknownSandbox,
            format!(
                "no sandbox named {:?} under {} (see `sandboxctl list`, or pass --state-root)",
                name.as_str(),
                root.path.display()
            ),
        ));
    }
    let record = dir
        .read_record()
        .map_err(|e| internal("cannot read the sandbox record", e).about(name.as_str()))?;
    Ok(Sandbox {
        name: name.clone(),
        dir,
        record,
    })
}

pub fn load_all(root: &StateRoot) -> Result<Vec<Sandbox>, CtlError> {
    let names = root.names().map_err(|e| {
        internal(
            &format!("cannot list the state root {}", root.path.display()),
            e,
        )
    })?;
    names.iter().map(|n| load(root, n)).collect()
}

/// Observes each sandbox; the result keeps the input order. A backend that cannot be
/// reached fails every sandbox on it, not the others.
pub fn observe(sandboxes: &[Sandbox]) -> Vec<Result<View, CtlError>> {
    let mut out: Vec<Option<Result<View, CtlError>>> = sandboxes.iter().map(|_| None).collect();
    let mut backends: Vec<Backend> = Vec::new();
    for sb in sandboxes {
        if !backends.contains(&sb.record.backend) {
            backends.push(sb.record.backend);
        }
    }
    for backend in backends {
        let idx: Vec<usize> = (0..sandboxes.len())
            .filter(|&i| sandboxes[i].record.backend == backend)
            .collect();
        let names: Vec<String> = idx
            .iter()
            .map(|&i| sandboxes[i].record.container.clone())
            .collect();
        match Engine::new(backend).inspect(&names) {
            Ok(mut found) => {
                for &i in &idx {
                    let c = found.remove(&sandboxes[i].record.container);
                    out[i] = Some(view(&sandboxes[i], c));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for &i in &idx {
                    out[i] = Some(Err(
                        CtlError::new(e.exit(), msg.clone()).about(sandboxes[i].name.as_str())
                    ));
                }
            }
        }
    }
    out.into_iter()
        .map(|v| v.expect("every sandbox has one backend"))
        .collect()
}

pub fn observe_one(sb: &Sandbox) -> Result<View, CtlError> {
    observe(std::slice::from_ref(sb))
        .pop()
        .expect("one view per sandbox")
}

/// Combines an engine observation with the host state. Also used by `start --wait`, which
/// re-reads status.json more often than it asks the engine.
pub fn view(sb: &Sandbox, container: Option<Container>) -> Result<View, CtlError> {
    let about = |e: CtlError| e.about(sb.name.as_str());
    let intent = sb
        .dir
        .read_intent()
        .map_err(|e| about(internal("cannot read the recorded intent", e)))?;
    let status = sb
        .dir
        .read_status()
        .map_err(|e| about(internal("cannot read status.json", e)))?;
    let derived = derive(container.as_ref(), intent.intent, status.as_ref());
    Ok(View {
        sandbox: sb.clone(),
        intent,
        container,
        status,
        derived,
    })
}
