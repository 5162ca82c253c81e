//! The backend boundary: everything sandboxctl needs from whatever runs a sandbox.
//!
//! The verbs (`verbs/`) talk only to [`Backend`]; the phase derivation (`phase.rs`) and the
//! wait-for-Ready loop (`verbs/lifecycle.rs`) are shared and see a backend only through the
//! [`Observation`] it returns. A backend owns two things:
//!
//! - **where a sandbox's record and intent live.** podman and docker keep them in the host
//!   state directory (`state.rs`: sandbox.json, intent.json, status/, lock); a cluster
//!   backend keeps them on its own objects (an annotation), so that `list` and `resume --all`
//!   work from any machine. [`Backend::list`] and [`Backend::find`] are how sandboxes are
//!   found, [`Backend::set_intent`] records the operator's wish before acting, and
//!   [`Backend::lock`] serializes the verbs that change one sandbox.
//! - **the workload**: create, start, stop, delete, and [`Backend::observe`], which reports
//!   many sandboxes in one call where the backend can (one `inspect` for every container).
//!
//! A declarative, cluster-held backend (Kubernetes) fits the same verbs with three optional
//! parts, each with a default the host backends use:
//! - its own phase derivation: the shared table (`phase.rs`) reads a container's state, the
//!   intent and status.json; a StatefulSet's phase comes from replicas, generations, pod
//!   conditions, the kubelet's container states and the termination message, so its
//!   [`Observation`] carries a [`Observation::derived`] that the shared code uses as is;
//! - its own change feed ([`Backend::watch`], the API's watch) instead of polling;
//! - objects it can print instead of making ([`Backend::dry_run`], for GitOps).
//!
//! Adding a backend: a [`BackendKind`] variant, its arm in [`open`] (and in `shim::main`'s
//! choice of listed backends if its sandboxes are not found in the host state root), and a
//! module implementing [`Backend`].

pub mod container;
pub mod kube;
pub mod supervisor_args;
pub mod vm;

use super::error::CtlError;
use super::names::Name;
use super::phase::Derived;
use super::state::{SandboxDir, StateRoot};
use crate::contract::time::parse_rfc3339;
use crate::contract::{CtlExit, Phase, Reason, Status};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

pub use supervisor_args::SupervisorSettings;

/// Where the workspace is mounted in every sandbox (the image's /sandbox).
pub const WORKSPACE_PATH: &str = "/sandbox";

/// Added to the supervisor's --grace for a backend's stop timeout: after its SIGKILL the
/// supervisor waits up to 5 s for the agent's process group to vanish, then writes
/// `Stopped` and exits. The backend must not cut that short.
pub const STOP_MARGIN_SECS: u64 = 10;

/// Which backend runs a sandbox. Recorded at create time; later verbs use the recorded one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Podman,
    Docker,
    /// A QEMU VM whose init is the supervisor.
    Vm,
    /// A StatefulSet with a workspace PVC in a Kubernetes cluster.
    Kube,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Podman,
        BackendKind::Docker,
        BackendKind::Vm,
        BackendKind::Kube,
    ];
    /// The backends whose sandboxes live under the host state root: always listed, since
    /// listing them contacts nothing.
    pub const HOST: [BackendKind; 3] = [BackendKind::Podman, BackendKind::Docker, BackendKind::Vm];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Podman => "podman",
            BackendKind::Docker => "docker",
            BackendKind::Vm => "vm",
            BackendKind::Kube => "kube",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend may need from the command line. Host-state backends need the state root;
/// the cluster backend its kubeconfig context and namespace.
#[derive(Debug, Clone)]
pub struct Context {
    pub state_root: StateRoot,
    pub kube: kube::Target,
    /// The backends whose sandboxes this invocation finds, lists and sweeps (`--backend`, or
    /// the host backends plus kube when a cluster was named).
    pub listed: Vec<BackendKind>,
}

/// Opens the backend of `kind`. Cheap (nothing is contacted yet).
pub fn open(kind: BackendKind, ctx: &Context) -> Result<Box<dyn Backend>, CtlError> {
    Ok(match kind {
        BackendKind::Podman | BackendKind::Docker => {
            Box::new(container::ContainerCli::new(kind, ctx.state_root.clone()))
        }
        BackendKind::Vm => Box::new(vm::Qemu::new(ctx.state_root.clone())),
        BackendKind::Kube => Box::new(kube::KubeBackend::new(ctx.kube.clone())),
    })
}

/// The backends whose sandboxes `list`, `--all` and `resume --all` cover.
pub fn listed(ctx: &Context) -> Vec<BackendKind> {
    ctx.listed.clone()
}

/// The operator's last wish for a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    Running,
    Stopped,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Running => "running",
            Intent::Stopped => "stopped",
        }
    }
}

/// An intent as recorded: what, when (RFC 3339) and by which verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentRecord {
    pub intent: Intent,
    pub at: String,
    pub by: String,
}

impl IntentRecord {
    pub fn at_time(&self) -> Option<SystemTime> {
        parse_rfc3339(&self.at)
    }
}

pub const RECORD_VERSION: u32 = 1;

/// What `create` made, as the backend recorded it (host: sandbox.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub name: String,
    /// Random, made at create time and put on every object the backend makes (a label), so
    /// an object of the same name made for another sandbox is told apart. Empty in records
    /// written before it existed.
    #[serde(default)]
    pub id: String,
    pub backend: BackendKind,
    pub image: String,
    /// How long a stop waits for the supervisor before killing it: the supervisor's --grace
    /// plus [`STOP_MARGIN_SECS`].
    pub stop_timeout_secs: u64,
    pub created_at: String,
    /// The backend's own fields (podman/docker: container, volume, status_path).
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A sandbox a backend knows.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub name: Name,
    pub record: Record,
    /// Its host state directory, for backends that keep one (podman, docker); None where the
    /// record lives with the backend's objects.
    pub dir: Option<SandboxDir>,
}

impl Sandbox {
    pub fn kind(&self) -> BackendKind {
        self.record.backend
    }
}

/// The workload's state, normalized over the backends' vocabularies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadState {
    /// Made, never started.
    Created,
    /// Running (a workload that is being stopped still runs: its supervisor reports).
    Running,
    Paused,
    /// Ended (or scaled to nothing): not running.
    Exited,
    /// Anything else, kept verbatim (read as Error with reason `engine_state`).
    Other(String),
}

/// One sandbox's workload (a container, a pod, a VM) as observed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The backend's name for it (container name, pod name…).
    pub name: String,
    pub state: WorkloadState,
    /// The backend's own word for the state (`exited`, `stopped`, `running`…).
    pub raw_state: String,
    /// Exit code of the last run, when it has ended and the backend knows it.
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// The backend's error for the last run, if any.
    pub error: String,
    /// Start of the current (or last) run; None before the first start.
    pub started_at: Option<SystemTime>,
    /// End of the last run. While running, the end of the *previous* run (None if none).
    pub finished_at: Option<SystemTime>,
    pub started_at_raw: String,
    pub finished_at_raw: String,
}

/// Everything a backend observed about one sandbox. The phase is derived from it by the
/// shared `phase::derive`.
#[derive(Debug, Clone)]
pub struct Observation {
    pub intent: IntentRecord,
    /// None: the backend has no workload for this sandbox.
    pub workload: Option<Workload>,
    /// Why there is no workload although an object holds its name (e.g. a container of that
    /// name that belongs to another sandbox); read as `Missing` with reason `name_taken`.
    pub workload_conflict: Option<String>,
    /// The supervisor's last report that could be read, current or not.
    pub status: Option<Status>,
    /// Whether `status` was written by the workload's current (or last) run.
    pub status_current: bool,
    /// Why no status could be read although something is there (a FIFO, a symlink, a huge
    /// or torn file): the sandbox has "no status", and this says why.
    pub status_problem: Option<String>,
    /// The supervisor's own report of the current (or last) run, from whichever channel the
    /// backend has: None lets the shared code take it from a current `status`. A cluster
    /// backend, which cannot read status.json inside the pod, reports the readiness probe
    /// and the termination message here.
    pub report: Option<Report>,
    /// The phase, for a backend that derives it from its own objects; None: the shared
    /// `phase::derive` of the fields above.
    pub derived: Option<Derived>,
    /// The backend's own facts for `status -o json` (kube: namespace, replicas, the pod).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Observation {
    /// An observation with the shared derivation and no backend extras.
    pub fn new(intent: IntentRecord, workload: Option<Workload>) -> Observation {
        Observation {
            intent,
            workload,
            workload_conflict: None,
            status: None,
            status_current: false,
            status_problem: None,
            report: None,
            derived: None,
            details: serde_json::Map::new(),
        }
    }
}

/// What the supervisor itself last said about the current (or last) run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub phase: Phase,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    /// Where it was read: `status.json`, `readiness probe`, `termination message`, or
    /// `termination message (recorded at stop)`.
    pub source: &'static str,
}

impl Report {
    pub fn from_status(s: &Status) -> Report {
        Report {
            phase: s.phase,
            reason: s.reason,
            message: s.message.clone(),
            source: "status.json",
        }
    }
}

/// One change a backend's own feed reports to `watch`.
#[derive(Debug, Clone)]
pub enum Change {
    /// The sandbox as it is now (also its first observation).
    Observed(Box<Sandbox>, Box<Observation>),
    /// The sandbox is gone (deleted).
    Gone(Name),
}

/// Everything `create` needs, backend-independent; each backend reads its own flags from
/// `args`.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    pub name: Name,
    /// Running, unless `--no-start`.
    pub intent: Intent,
    pub args: &'a super::cli::CreateArgs,
}

/// A held per-sandbox lock; dropping it releases it.
pub struct Lock {
    _held: Option<Box<dyn std::any::Any>>,
}

impl Lock {
    /// For backends that serialize changes another way (e.g. an API's resourceVersion).
    pub fn none() -> Lock {
        Lock { _held: None }
    }

    pub fn holding(guard: impl std::any::Any) -> Lock {
        Lock {
            _held: Some(Box::new(guard)),
        }
    }
}

/// The operations every backend provides. Errors carry their exit code and say what failed
/// (with the backend's own message) and what to do.
pub trait Backend {
    fn kind(&self) -> BackendKind;

    // ----- where sandboxes, records and intents live ---------------------------------------

    /// Every sandbox this backend holds (for `list`, `--all`, `resume --all`), by name.
    fn list(&self) -> Result<Vec<Sandbox>, CtlError>;

    /// The sandbox NAME on this backend, if it has one.
    fn find(&self, name: &Name) -> Result<Option<Sandbox>, CtlError>;

    /// Records the operator's wish. Always called before acting on it, so a crash half-way
    /// leaves the wish behind for `resume --all`.
    fn set_intent(&self, sb: &Sandbox, intent: Intent, by: &str) -> Result<(), CtlError>;

    /// Takes the sandbox's lock for `verb`, waiting up to `wait` for another holder
    /// (exit `busy`, naming the holder, when it does not let go).
    fn lock(&self, sb: &Sandbox, verb: &str, wait: Duration) -> Result<Lock, CtlError>;

    // ----- the workload --------------------------------------------------------------------

    /// Makes the workspace, the record (with `req.intent` recorded first) and the workload,
    /// not started. On failure nothing of what it made is left and the name stays free.
    fn create(&self, req: &CreateRequest<'_>) -> Result<Sandbox, CtlError>;

    /// Starts the workload; a running one is left as it is. The workspace is kept.
    fn start(&self, sb: &Sandbox) -> Result<(), CtlError>;

    /// Stops the workload gracefully (the supervisor gets SIGTERM and `timeout_secs` before
    /// it is killed); returns once it has ended. Workload and workspace stay. A workload
    /// that is already gone is not an error.
    fn stop(&self, sb: &Sandbox, timeout_secs: u64) -> Result<(), CtlError>;

    /// Removes the workload, the workspace and the record (it has been stopped already).
    /// Anything already gone is fine: this also cleans up after partial failures.
    fn delete(&self, sb: &Sandbox) -> Result<(), CtlError>;

    /// Observes the sandboxes, in one backend call where it can; one result per sandbox, in
    /// order. A backend that cannot be reached fails every one of its sandboxes.
    fn observe(&self, sandboxes: &[Sandbox]) -> Vec<Result<Observation, CtlError>>;

    /// A cheaper re-observation for `start --wait`, which polls often: the intent and the
    /// supervisor's report again, the workload from `last`. The default observes afresh.
    fn refresh(&self, sb: &Sandbox, last: &Observation) -> Result<Observation, CtlError> {
        let _ = last;
        observe_one(self, sb)
    }

    /// The objects that make up the sandbox, for `status` (kind, name): e.g.
    /// `("container", "openshell-a"), ("volume", "openshell-a-workspace")`.
    fn objects(&self, sb: &Sandbox) -> Vec<(&'static str, String)>;

    /// Where this backend's sandboxes are looked for, for messages ("under
    /// /var/lib/openshell/sandboxes", "in namespace sandboxes of https://…").
    fn scope(&self) -> String;

    // ----- optional parts (see the module docs) --------------------------------------------

    /// The objects `create` would make, printed instead of made (`create --dry-run -o
    /// yaml|json`), for kubectl or GitOps. Backends without such objects refuse.
    fn dry_run(&self, req: &CreateRequest<'_>) -> Result<String, CtlError> {
        let _ = req;
        Err(CtlError::new(
            CtlExit::Usage,
            format!(
                "--dry-run is for --backend kube ({} has no objects to print)",
                self.kind()
            ),
        ))
    }

    /// Follows the backend's own change feed (an API watch) for `watch`: calls `emit` with
    /// each sandbox's first observation and again whenever it changes, and with
    /// [`Change::Gone`] when it is deleted, until `emit` returns true (Ok(true)) or
    /// `deadline` passes (Ok(false)). `only` limits it to one sandbox. None: the backend has
    /// no feed, and `watch` polls [`Backend::observe`].
    fn watch(
        &self,
        only: Option<&Name>,
        deadline: Option<Instant>,
        emit: &mut dyn FnMut(Change) -> bool,
    ) -> Option<Result<bool, CtlError>> {
        let _ = (only, deadline, emit);
        None
    }
}

/// [`Backend::observe`] of one sandbox.
pub fn observe_one<B: Backend + ?Sized>(b: &B, sb: &Sandbox) -> Result<Observation, CtlError> {
    b.observe(std::slice::from_ref(sb))
        .pop()
        .expect("one observation per sandbox")
}

/// A fresh random id (128 bits, hex) for [`Record::id`].
pub fn new_id() -> std::io::Result<String> {
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writes at most the remaining bytes of our own buffer.
        let n = unsafe {
            libc::getrandom(
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
                0 as libc::c_uint,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_backend_fields_and_read_old_files() {
        // A sandbox.json from before `id` existed.
        let old = r#"{"schema_version":1,"name":"a","backend":"docker","image":"img",
            "container":"openshell-a","volume":"openshell-a-workspace",
            "status_path":"/run/openshell","stop_timeout_secs":20,
            "created_at":"2026-11-22T14:18:17.000Z"}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert_eq!((r.backend, r.id.as_str()), (BackendKind::Docker, ""));
        assert_eq!(r.details["container"], "openshell-a");
        assert_eq!(r.details["status_path"], "/run/openshell");
        // Written back, the backend's fields stay top-level.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["volume"], "openshell-a-workspace");
        assert!(v.get("details").is_none());
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
