//! The podman and docker backend: containers driven through the engines' command-line
//! tools, with the host state directory (`state.rs`) holding record, intent, lock and the
//! supervisor's status.json.
//!
//! A sandbox is a container `openshell-NAME` and a named volume `openshell-NAME-workspace`
//! mounted at /sandbox, both labelled with the sandbox's name and id. The container runs
//! with engine restart policy `no` (a crash must read Error until someone acts on the
//! intent) and the state directory's `status/` bind-mounted as the supervisor's
//! --status-dir. Before acting on a container, its labels are checked: an object of that
//! name made for another sandbox (another state root, a hand-made container) is never
//! started, stopped or removed.
//!
//! podman and docker agree on nearly everything used here (verbs, `--format '{{json .}}'`,
//! the inspect document's `State`), so one implementation serves both; where they differ
//! (the wording of "no such object", the shape of podman's `{{json .}}` output) the
//! difference is handled in one place below.

use super::{
    Backend, BackendKind, CreateRequest, Intent, IntentRecord, Lock, Observation, Record, Sandbox,
    SupervisorSettings, Workload, WorkloadState, RECORD_VERSION, WORKSPACE_PATH,
};
use crate::contract::time::{now_rfc3339, parse_rfc3339};
use crate::contract::{CtlExit, Status};
use crate::shim::error::CtlError;
use crate::shim::names::{self, Name};
use crate::shim::phase::status_is_current;
use crate::shim::state::{internal, SandboxDir, StateRoot, StatusRead};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, warn};

/// The backend's fields of sandbox.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub container: String,
    pub volume: String,
    /// Where status/ is mounted in the sandbox (the supervisor's --status-dir).
    pub status_path: String,
}

impl ContainerRecord {
    fn of(sb: &Sandbox) -> Result<ContainerRecord, CtlError> {
        serde_json::from_value(serde_json::Value::Object(sb.record.details.clone())).map_err(|e| {
            CtlError::new(
                CtlExit::Internal,
                format!("its sandbox.json lacks the container fields: {e}"),
            )
            .about(sb.name.as_str())
        })
    }
}

/// How many times `observe` asks the engine before it settles for an ordered read.
const SNAPSHOTS: usize = 4;

/// The host state one observation reads around the engine call.
#[derive(Debug, Clone, PartialEq)]
struct Files {
    status: (Option<Status>, Option<String>),
    intent: IntentRecord,
}

pub struct ContainerCli {
    engine: Engine,
    root: StateRoot,
}

impl ContainerCli {
    pub fn new(kind: BackendKind, root: StateRoot) -> ContainerCli {
        ContainerCli {
            engine: Engine { kind },
            root,
        }
    }

    fn dir<'a>(&self, sb: &'a Sandbox) -> &'a SandboxDir {
        sb.dir
            .as_ref()
            .expect("podman/docker sandboxes have a state directory")
    }

    /// The container if it exists and is this sandbox's; Conflict if it is another's.
    fn own_container(
        &self,
        sb: &Sandbox,
        c: &ContainerRecord,
    ) -> Result<Option<Workload>, CtlError> {
        let mut found = self
            .engine
            .inspect(std::slice::from_ref(&c.container))
            .map_err(|e| CtlError::from(e).about(sb.name.as_str()))?;
        match found.remove(&c.container) {
            None => Ok(None),
            Some(i) => match foreign(sb, self.dir(sb), &i.labels) {
                None => Ok(Some(i.workload)),
                Some(why) => Err(CtlError::new(
                    CtlExit::Conflict,
                    format!(
                        "container {} is not this sandbox's ({why}); sandboxctl will not touch it. Remove or rename it with {}, or `sandboxctl delete {}` to drop this sandbox's state",
                        c.container, self.engine.kind, sb.name
                    ),
                )
                .about(sb.name.as_str())),
            },
        }
    }

    fn gone(&self, sb: &Sandbox, c: &ContainerRecord) -> CtlError {
        CtlError::new(
            CtlExit::Conflict,
            format!(
                "container {} is gone (removed outside sandboxctl); `sandboxctl delete {}` and create it again (the workspace volume {} is kept until then)",
                c.container, sb.name, c.volume
            ),
        )
        .about(sb.name.as_str())
    }

    /// The host state the observation of `sb` needs besides the engine: status.json (or
    /// why it was refused) and the recorded intent.
    fn read_files(&self, sb: &Sandbox) -> Result<Files, CtlError> {
        let dir = self.dir(sb);
        let status = match dir.read_status() {
            StatusRead::Absent => (None, None),
            StatusRead::Found(s) => (Some(*s), None),
            StatusRead::Refused(why) => (
                None,
                Some(format!(
                    "{}/{} is not read: {why}",
                    dir.status_dir().display(),
                    crate::contract::status::FILE_NAME
                )),
            ),
        };
        let intent = dir
            .read_intent()
            .map_err(|e| internal("cannot read the recorded intent", e).about(sb.name.as_str()))?;
        Ok(Files { status, intent })
    }

    fn assemble(
        (status, status_problem): (Option<Status>, Option<String>),
        intent: IntentRecord,
        workload: Option<Workload>,
        workload_conflict: Option<String>,
    ) -> Observation {
        let status_current =
            matches!((&status, &workload), (Some(s), Some(w)) if status_is_current(s, w));
        Observation {
            intent,
            workload,
            workload_conflict,
            status,
            status_current,
            status_problem,
            report: None,
            derived: None,
            details: serde_json::Map::new(),
        }
    }

    fn labels(&self, name: &Name, id: &str, dir: &SandboxDir) -> Vec<(String, String)> {
        vec![
            (names::LABEL_SANDBOX.into(), name.to_string()),
            (names::LABEL_ID.into(), id.to_owned()),
            (names::LABEL_MANAGED_BY.into(), names::MANAGED_BY.into()),
            (
                names::LABEL_STATE_DIR.into(),
                dir.path.display().to_string(),
            ),
        ]
    }
}

/// Why an engine object with these labels is not `sb`'s, or None when it is.
fn foreign(sb: &Sandbox, dir: &SandboxDir, labels: &BTreeMap<String, String>) -> Option<String> {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    if get(names::LABEL_MANAGED_BY) != names::MANAGED_BY {
        return Some(format!(
            "it has no {}={} label",
            names::LABEL_MANAGED_BY,
            names::MANAGED_BY
        ));
    }
    if get(names::LABEL_SANDBOX) != sb.name.as_str() {
        return Some(format!(
            "its {} label is {:?}",
            names::LABEL_SANDBOX,
            get(names::LABEL_SANDBOX)
        ));
    }
    if !sb.record.id.is_empty() {
        if get(names::LABEL_ID) != sb.record.id {
            return Some(format!(
                "its {} label is {:?}, this sandbox's id is {:?}",
                names::LABEL_ID,
                get(names::LABEL_ID),
                sb.record.id
            ));
        }
        return None;
    }
    // Records from before ids: the state directory it was made for must be this one.
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let labelled = get(names::LABEL_STATE_DIR);
    if labelled.is_empty() || canon(Path::new(labelled)) != canon(&dir.path) {
        return Some(format!(
            "its {} label is {labelled:?}, not {}",
            names::LABEL_STATE_DIR,
            dir.path.display()
        ));
    }
    None
}

impl Backend for ContainerCli {
    fn kind(&self) -> BackendKind {
        self.engine.kind
    }

    fn list(&self) -> Result<Vec<Sandbox>, CtlError> {
        self.root.list(self.engine.kind)
    }

    fn find(&self, name: &Name) -> Result<Option<Sandbox>, CtlError> {
        self.root.find(name, self.engine.kind)
    }

    fn set_intent(&self, sb: &Sandbox, intent: Intent, by: &str) -> Result<(), CtlError> {
        self.dir(sb).write_intent(intent, by).map_err(|e| {
            CtlError::new(CtlExit::Internal, format!("cannot record the intent: {e}"))
                .about(sb.name.as_str())
        })
    }

    fn lock(&self, sb: &Sandbox, verb: &str, wait: Duration) -> Result<Lock, CtlError> {
        self.dir(sb)
            .lock(sb.name.as_str(), verb, wait)
            .map(Lock::holding)
    }

    fn create(&self, req: &CreateRequest<'_>) -> Result<Sandbox, CtlError> {
        let args = req.args;
        let name = &req.name;
        let about = |e: CtlError| e.about(name.as_str());
        let kind = self.engine.kind;
        let not_here = [
            ("--memory", "vm", args.memory.is_some()),
            ("--cpus", "vm", args.cpus.is_some()),
            (
                "--workspace-size",
                "vm or kube",
                args.workspace_size.is_some(),
            ),
            ("--storage-class", "kube", args.storage_class.is_some()),
            ("--accel", "vm", args.accel.is_some()),
            ("--network", "vm", args.network.is_some()),
        ];
        if let Some((flag, for_whom, _)) = not_here.iter().find(|(_, _, given)| *given) {
            return Err(about(CtlError::new(
                CtlExit::Usage,
                format!("{flag} is for --backend {for_whom} only"),
            )));
        }
        // Its supervisor's flags are read from the image: there is no default to assume.
        let Some(image_ref) = args.image.clone() else {
            return Err(about(CtlError::new(
                CtlExit::Usage,
                format!("create --backend {kind} needs --image IMAGE (an image whose ENTRYPOINT is the supervisor)"),
            )));
        };
        let image = self
            .engine
            .image_config(&image_ref)
            .map_err(|e| about(e.into()))?;
        let sup = SupervisorSettings::from_entrypoint(&image.entrypoint).map_err(|e| {
            about(CtlError::new(
                CtlExit::Usage,
                format!("image {image_ref} cannot run as a sandbox: {e}"),
            ))
        })?;
        let (container, volume) = (name.container(), name.volume());
        // Engine objects of these names that we did not make are someone else's.
        for (what, obj, taken) in [
            (
                "container",
                &container,
                self.engine.container_exists(&container),
            ),
            ("volume", &volume, self.engine.volume_exists(&volume)),
        ] {
            if taken.map_err(|e| about(e.into()))? {
                return Err(about(CtlError::new(
                    CtlExit::Conflict,
                    format!("{kind} already has a {what} named {obj} that sandboxctl does not know under {}; remove it or pick another name", self.root.path.display()),
                )));
            }
        }

        let dir = self.root.claim(name).map_err(|e| {
            let exit = if e.kind() == io::ErrorKind::AlreadyExists {
                CtlExit::Conflict
            } else {
                CtlExit::Internal
            };
            about(CtlError::new(
                exit,
                format!(
                    "cannot create the state directory under {}: {e}",
                    self.root.path.display()
                ),
            ))
        })?;
        let undo = |e: CtlError| {
            // Leave nothing half-made behind: the name stays free.
            let _ = dir.remove();
            about(e)
        };
        // Held until the container exists, so a `start` of the half-made sandbox waits.
        let _lock = dir
            .lock(name.as_str(), "create", Duration::ZERO)
            .map_err(undo)?;
        let id = super::new_id().map_err(|e| {
            undo(CtlError::new(
                CtlExit::Internal,
                format!("no random id: {e}"),
            ))
        })?;
        let details = ContainerRecord {
            container: container.clone(),
            volume: volume.clone(),
            status_path: sup.status_dir.clone(),
        };
        let serde_json::Value::Object(details) =
            serde_json::to_value(&details).expect("a record serializes")
        else {
            unreachable!("a struct serializes to an object")
        };
        let record = Record {
            schema_version: RECORD_VERSION,
            name: name.to_string(),
            id: id.clone(),
            backend: kind,
            image: image_ref.clone(),
            stop_timeout_secs: sup.stop_timeout_secs(),
            created_at: now_rfc3339(),
            details,
        };
        let spec = CreateSpec {
            container,
            volume,
            hostname: name.to_string(),
            image: image_ref.clone(),
            labels: self.labels(name, &id, &dir),
            env: args.env.clone(),
            workspace_path: WORKSPACE_PATH.into(),
            status_host_dir: dir.status_dir(),
            status_path: sup.status_dir,
            stop_timeout_secs: record.stop_timeout_secs,
            command: args.command.clone(),
        };
        dir.write_intent(req.intent, "create")
            .and_then(|()| dir.write_record(&record))
            .map_err(|e| {
                CtlError::new(
                    CtlExit::Internal,
                    format!("cannot write the host state: {e}"),
                )
            })
            .and_then(|()| self.engine.create(&spec).map_err(CtlError::from))
            .map_err(undo)?;
        Ok(Sandbox {
            name: name.clone(),
            record,
            dir: Some(dir),
        })
    }

    fn start(&self, sb: &Sandbox) -> Result<(), CtlError> {
        let c = ContainerRecord::of(sb)?;
        if self.own_container(sb, &c)?.is_none() {
            return Err(self.gone(sb, &c));
        }
        match self.engine.start(&c.container) {
            Err(e) if e.is_no_such() => Err(self.gone(sb, &c)),
            r => r.map_err(|e| CtlError::from(e).about(sb.name.as_str())),
        }
    }

    fn stop(&self, sb: &Sandbox, timeout_secs: u64) -> Result<(), CtlError> {
        let c = ContainerRecord::of(sb)?;
        // Nothing of ours runs: the intent is recorded and the phase says Missing.
        if self.own_container(sb, &c)?.is_none() {
            return Ok(());
        }
        match self.engine.stop(&c.container, timeout_secs) {
            Err(e) if e.is_no_such() => Ok(()),
            r => r.map_err(|e| CtlError::from(e).about(sb.name.as_str())),
        }
    }

    fn delete(&self, sb: &Sandbox) -> Result<(), CtlError> {
        let c = ContainerRecord::of(sb)?;
        let name = sb.name.as_str();
        let dir = self.dir(sb);
        match self.own_container(sb, &c) {
            Ok(Some(_)) => self
                .engine
                .remove_container(&c.container)
                .map_err(|e| CtlError::from(e).about(name))?,
            Ok(None) => {}
            // Another sandbox's container of that name: leave it, remove what is ours.
            Err(e) if e.exit == CtlExit::Conflict => {
                warn!(event = "delete.skipped", sandbox = name, object = %c.container,
                    "left alone: {}", e.message);
            }
            Err(e) => return Err(e),
        }
        match self
            .engine
            .volume_labels(&c.volume)
            .map_err(|e| CtlError::from(e).about(name))?
        {
            None => {}
            Some(labels) => match foreign(sb, dir, &labels) {
                None => self
                    .engine
                    .remove_volume(&c.volume)
                    .map_err(|e| CtlError::from(e).about(name))?,
                Some(why) => {
                    warn!(event = "delete.skipped", sandbox = name, object = %c.volume,
                        "left alone: volume {} is not this sandbox's ({why})", c.volume);
                }
            },
        }
        dir.remove().map_err(|e| {
            CtlError::new(
                CtlExit::Internal,
                format!("cannot remove {}: {e}", dir.path.display()),
            )
            .about(name)
        })
    }

    /// An observation reads the host state and asks the engine at different moments, and a
    /// verb or the supervisor may change things in between: a reader once read a Ready
    /// status.json before a stop, the engine's exit after it, and the intent after the next
    /// start had recorded `running`, and said Error. So the host state is read before and
    /// after the engine is asked; if it changed meanwhile, the snapshot straddled a change
    /// and the engine is asked again. Each verb writes the intent before it acts and each
    /// run reports after it starts, so unchanged files mean the engine's answer belongs
    /// with them (a crash changes no file, and is what it looks like). When the files keep
    /// changing, the last try keeps the status read *before* the engine was asked (never
    /// newer than the run it reported) and the intent read *after* (never older than the
    /// state it caused).
    fn observe(&self, sandboxes: &[Sandbox]) -> Vec<Result<Observation, CtlError>> {
        let n = sandboxes.len();
        let mut out: Vec<Option<Result<Observation, CtlError>>> = (0..n).map(|_| None).collect();
        let mut containers: Vec<String> = vec![String::new(); n];
        let mut before: Vec<Option<Files>> = (0..n).map(|_| None).collect();
        for (i, sb) in sandboxes.iter().enumerate() {
            match ContainerRecord::of(sb).and_then(|c| Ok((c, self.read_files(sb)?))) {
                Ok((c, files)) => {
                    containers[i] = c.container;
                    before[i] = Some(files);
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        for attempt in 1..=SNAPSHOTS {
            let pending: Vec<usize> = (0..n).filter(|&i| out[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                debug!(
                    event = "observe.retry",
                    attempt,
                    sandboxes = pending.len(),
                    "host state changed while the engine was asked; asking again"
                );
            }
            let names: Vec<String> = pending.iter().map(|&i| containers[i].clone()).collect();
            let mut found = match self.engine.inspect(&names) {
                Ok(f) => f,
                Err(e) => {
                    let msg = e.to_string();
                    for &i in &pending {
                        out[i] =
                            Some(Err(CtlError::new(e.exit(), msg.clone())
                                .about(sandboxes[i].name.as_str())));
                    }
                    break;
                }
            };
            for &i in &pending {
                let sb = &sandboxes[i];
                let (workload, conflict) = match found.remove(&containers[i]) {
                    None => (None, None),
                    Some(c) => match foreign(sb, self.dir(sb), &c.labels) {
                        None => (Some(c.workload), None),
                        Some(why) => (
                            None,
                            Some(format!(
                                "container {} belongs to another sandbox ({why}); sandboxctl will not touch it",
                                containers[i]
                            )),
                        ),
                    },
                };
                let after = match self.read_files(sb) {
                    Ok(f) => f,
                    Err(e) => {
                        out[i] = Some(Err(e));
                        continue;
                    }
                };
                if before[i].as_ref() == Some(&after) || attempt == SNAPSHOTS {
                    let first = before[i].take().expect("read before the engine was asked");
                    out[i] = Some(Ok(ContainerCli::assemble(
                        first.status,
                        after.intent,
                        workload,
                        conflict,
                    )));
                } else {
                    before[i] = Some(after);
                }
            }
        }
        out.into_iter()
            .map(|o| o.expect("every sandbox was observed"))
            .collect()
    }

    /// For `start --wait` after its own start: the workload it last saw is the run whose
    /// reports it waits for (nothing else starts a new run meanwhile), and a phase that
    /// looks settled is confirmed by a fresh `observe` before it is acted on.
    fn refresh(&self, sb: &Sandbox, last: &Observation) -> Result<Observation, CtlError> {
        let files = self.read_files(sb)?;
        Ok(ContainerCli::assemble(
            files.status,
            files.intent,
            last.workload.clone(),
            last.workload_conflict.clone(),
        ))
    }

    fn objects(&self, sb: &Sandbox) -> Vec<(&'static str, String)> {
        match ContainerRecord::of(sb) {
            Ok(c) => vec![("container", c.container), ("volume", c.volume)],
            Err(_) => Vec::new(),
        }
    }

    fn scope(&self) -> String {
        format!("under {}", self.root.path.display())
    }
}

// ----- the engines' command-line tools -----------------------------------------------------

#[derive(Debug)]
pub enum EngineError {
    /// The tool is not on PATH.
    NotInstalled { program: &'static str },
    /// The tool runs but cannot reach its daemon/socket.
    NotRunning {
        program: &'static str,
        message: String,
    },
    /// The engine refused or failed the operation.
    Failed {
        program: &'static str,
        action: String,
        /// Its exit code, or None when it was killed by `signal`.
        code: Option<i32>,
        signal: Option<i32>,
        message: String,
    },
    /// The tool could not be run, or printed something we cannot read.
    Io {
        program: &'static str,
        action: String,
        message: String,
    },
}

impl EngineError {
    /// "No such container/volume/object/image" in either engine's wording.
    pub fn is_no_such(&self) -> bool {
        match self {
            EngineError::Failed { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("no such") || m.contains("no container with name")
            }
            _ => false,
        }
    }

    pub fn exit(&self) -> CtlExit {
        match self {
            EngineError::NotInstalled { .. } => CtlExit::EngineNotInstalled,
            EngineError::NotRunning { .. } => CtlExit::EngineNotRunning,
            EngineError::Failed { .. } | EngineError::Io { .. } => CtlExit::EngineError,
        }
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => format!("signal {sig} ({})", s.as_str()),
        Err(_) => format!("signal {sig}"),
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::NotInstalled { program } => write!(
                f,
                "{program} is not installed: `{program}` was not found on PATH; install it or pick another --backend"
            ),
            EngineError::NotRunning { program, message } => write!(
                f,
                "{program} is not running or not reachable: {message}; start the {program} service (or fix DOCKER_HOST/CONTAINER_HOST)"
            ),
            EngineError::Failed {
                program,
                action,
                code,
                signal,
                message,
            } => {
                match (code, signal) {
                    (Some(c), _) => write!(f, "{program} {action} failed (exit {c})")?,
                    (None, Some(s)) => {
                        write!(f, "{program} {action} was killed by {}", signal_name(*s))?
                    }
                    (None, None) => write!(f, "{program} {action} failed (no exit status)")?,
                }
                if message.is_empty() {
                    f.write_str(" and printed nothing on stderr or stdout; run it by hand with --log-level debug to see the command")
                } else {
                    write!(f, ": {message}")
                }
            }
            EngineError::Io {
                program,
                action,
                message,
            } => write!(f, "{program} {action}: {message}"),
        }
    }
}

type EResult<T> = std::result::Result<T, EngineError>;

impl WorkloadState {
    fn from_engine(s: &str) -> WorkloadState {
        match s {
            // podman also says configured/initialized.
            "created" | "configured" | "initialized" => WorkloadState::Created,
            // podman's `stopping`: the supervisor is still there to report.
            "running" | "stopping" => WorkloadState::Running,
            "paused" => WorkloadState::Paused,
            // podman says stopped; docker's dead counts too.
            "exited" | "stopped" | "dead" => WorkloadState::Exited,
            other => WorkloadState::Other(other.to_owned()),
        }
    }
}

/// A container as inspected: the workload and its labels.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub workload: Workload,
    pub labels: BTreeMap<String, String>,
}

/// What the image says it runs (the supervisor's flags are read from it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
}

/// Everything the engine's `create` needs; names are already derived (see `names.rs`).
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub container: String,
    pub volume: String,
    pub hostname: String,
    pub image: String,
    pub labels: Vec<(String, String)>,
    pub env: Vec<String>,
    /// Where the workspace volume is mounted in the sandbox.
    pub workspace_path: String,
    /// Host directory bind-mounted as the supervisor's status directory.
    pub status_host_dir: PathBuf,
    pub status_path: String,
    /// Seconds the engine waits after SIGTERM before SIGKILL on a plain engine stop.
    pub stop_timeout_secs: u64,
    /// Replaces the image's CMD (the agent) when not empty.
    pub command: Vec<String>,
}

/// One engine's command-line tool.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    pub kind: BackendKind,
}

impl Engine {
    fn program(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The image's ENTRYPOINT.
    pub fn image_config(&self, image: &str) -> EResult<ImageConfig> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Config {
            entrypoint: Option<StringOrList>,
        }
        let out = self.run(
            "image inspect",
            &["image", "inspect", "--format", "{{json .Config}}", image],
        )?;
        let docs = self.json_docs("image inspect", &out.stdout)?;
        let doc = docs.into_iter().next().ok_or_else(|| {
            self.io_error("image inspect", format!("no output for image {image}"))
        })?;
        let c: Config = serde_json::from_value(doc)
            .map_err(|e| self.io_error("image inspect", format!("unreadable image config: {e}")))?;
        Ok(ImageConfig {
            entrypoint: c.entrypoint.map(StringOrList::into_vec).unwrap_or_default(),
        })
    }

    pub fn volume_exists(&self, volume: &str) -> EResult<bool> {
        self.exists(
            "volume inspect",
            &["volume", "inspect", "--format", "{{.Name}}", volume],
        )
    }

    /// The volume's labels, or None when there is no such volume.
    pub fn volume_labels(&self, volume: &str) -> EResult<Option<BTreeMap<String, String>>> {
        match self.run(
            "volume inspect",
            &["volume", "inspect", "--format", "{{json .Labels}}", volume],
        ) {
            Ok(out) => {
                let docs = self.json_docs("volume inspect", &out.stdout)?;
                let labels = match docs.into_iter().next() {
                    Some(v @ serde_json::Value::Object(_)) => serde_json::from_value(v)
                        .map_err(|e| self.io_error("volume inspect", format!("labels: {e}")))?,
                    _ => BTreeMap::new(),
                };
                Ok(Some(labels))
            }
            Err(e) if e.is_no_such() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn container_exists(&self, container: &str) -> EResult<bool> {
        self.exists(
            "container inspect",
            &["container", "inspect", "--format", "{{.Name}}", container],
        )
    }

    /// Creates the workspace volume and the container (not started). On failure nothing
    /// of what this call created is left behind.
    pub fn create(&self, spec: &CreateSpec) -> EResult<()> {
        let mut vol: Vec<OsString> = vec!["volume".into(), "create".into()];
        for (k, v) in &spec.labels {
            vol.push("--label".into());
            vol.push(format!("{k}={v}").into());
        }
        vol.push(spec.volume.clone().into());
        self.run_os("volume create", &vol)?;

        let mut args: Vec<OsString> = vec![
            "create".into(),
            "--name".into(),
            spec.container.clone().into(),
            "--hostname".into(),
            spec.hostname.clone().into(),
            "--stop-timeout".into(),
            spec.stop_timeout_secs.to_string().into(),
            // The engine must not restart it behind our back: after a crash the phase is
            // Error until an operator or `resume --all` acts on the recorded intent.
            "--restart".into(),
            "no".into(),
            "--volume".into(),
            format!("{}:{}", spec.volume, spec.workspace_path).into(),
        ];
        let mut bind = OsString::from(&spec.status_host_dir);
        bind.push(format!(":{}", spec.status_path));
        args.extend(["--volume".into(), bind]);
        for (k, v) in &spec.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}").into());
        }
        for e in &spec.env {
            args.push("--env".into());
            args.push(e.into());
        }
        args.push(spec.image.clone().into());
        args.extend(spec.command.iter().map(OsString::from));
        if let Err(e) = self.run_os("create", &args) {
            let _ = self.remove_volume(&spec.volume);
            return Err(e);
        }
        Ok(())
    }

    /// Starts the container; a running one is left alone (the engines treat this as a no-op).
    pub fn start(&self, container: &str) -> EResult<()> {
        self.run("start", &["start", container]).map(drop)
    }

    /// SIGTERM (the image's STOPSIGNAL), then SIGKILL after `timeout_secs`; returns once the
    /// container has ended.
    pub fn stop(&self, container: &str, timeout_secs: u64) -> EResult<()> {
        let t = timeout_secs.to_string();
        self.run("stop", &["stop", "-t", &t, container]).map(drop)
    }

    /// Removes the container; one that is gone already is fine.
    pub fn remove_container(&self, container: &str) -> EResult<()> {
        match self.run("rm", &["rm", "--force", container]) {
            Err(e) if e.is_no_such() => Ok(()),
            r => r.map(drop),
        }
    }

    pub fn remove_volume(&self, volume: &str) -> EResult<()> {
        match self.run("volume rm", &["volume", "rm", volume]) {
            Err(e) if e.is_no_such() => Ok(()),
            r => r.map(drop),
        }
    }

    /// Inspects the given containers in one engine call. Containers that do not exist are
    /// absent from the map; any other failure is an error.
    pub fn inspect(&self, containers: &[String]) -> EResult<BTreeMap<String, Inspected>> {
        if containers.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut args: Vec<OsString> = vec![
            "container".into(),
            "inspect".into(),
            "--format".into(),
            "{{json .}}".into(),
        ];
        args.extend(containers.iter().map(OsString::from));
        let out = self.exec("container inspect", &args)?;
        if !out.status.success() {
            // Both engines print what they found and fail for the rest: only "no such
            // container" lines are expected; anything else is a real error.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let unexpected: Vec<&str> = meaningful_lines(&stderr)
                .filter(|l| !l.to_ascii_lowercase().contains("no such"))
                .collect();
            if !unexpected.is_empty() || out.status.code().is_none() {
                return Err(self.classify("container inspect", &out));
            }
        }
        let mut found = BTreeMap::new();
        for doc in self.json_docs("container inspect", &out.stdout)? {
            let c = parse_container(doc).map_err(|e| self.io_error("container inspect", e))?;
            found.insert(c.workload.name.clone(), c);
        }
        Ok(found)
    }

    // ----- running the tool --------------------------------------------------------------

    fn exists(&self, action: &str, args: &[&str]) -> EResult<bool> {
        match self.run(action, args) {
            Ok(_) => Ok(true),
            Err(e) if e.is_no_such() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn run(&self, action: &str, args: &[&str]) -> EResult<Output> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.run_os(action, &args)
    }

    /// Runs the tool and fails on a non-zero exit. Success is judged by the exit status
    /// alone: podman prints errors on stderr for things that do not fail (no systemd for
    /// health-check timers) and docker prints deprecation notices.
    fn run_os(&self, action: &str, args: &[OsString]) -> EResult<Output> {
        let out = self.exec(action, args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.classify(action, &out))
        }
    }

    fn exec(&self, action: &str, args: &[OsString]) -> EResult<Output> {
        let program = self.program();
        let t0 = Instant::now();
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => EngineError::NotInstalled { program },
                _ => self.io_error(action, format!("cannot run {program}: {e}")),
            })?;
        debug!(event = "engine.exec", program, action, args = ?args, code = out.status.code(),
            signal = out.status.signal(), elapsed_ms = t0.elapsed().as_millis() as u64,
            "engine command finished");
        Ok(out)
    }

    fn classify(&self, action: &str, out: &Output) -> EngineError {
        let program = self.program();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = meaningful_lines(&stderr).collect::<Vec<_>>().join("; ");
        let message = if message.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            message
        };
        let lower = message.to_ascii_lowercase();
        // The daemon-down wordings of docker (client 20.10 and 28.x) and podman (remote).
        const NOT_RUNNING: [&str; 4] = [
            "cannot connect to the docker daemon",
            "is the docker daemon running",
            "cannot connect to podman",
            "unable to connect to podman",
        ];
        if NOT_RUNNING.iter().any(|m| lower.contains(m)) {
            return EngineError::NotRunning { program, message };
        }
        EngineError::Failed {
            program,
            action: action.to_owned(),
            code: out.status.code(),
            signal: out.status.signal(),
            message,
        }
    }

    fn io_error(&self, action: &str, message: String) -> EngineError {
        EngineError::Io {
            program: self.program(),
            action: action.to_owned(),
            message,
        }
    }

    /// The JSON documents in `stdout`: one per line (docker, and podman for most templates)
    /// or a single pretty-printed array (podman treats `{{json .}}` as "print the array").
    fn json_docs(&self, action: &str, stdout: &[u8]) -> EResult<Vec<serde_json::Value>> {
        let mut docs = Vec::new();
        for v in serde_json::Deserializer::from_slice(stdout).into_iter::<serde_json::Value>() {
            match v.map_err(|e| self.io_error(action, format!("unreadable JSON output: {e}")))? {
                serde_json::Value::Array(items) => docs.extend(items),
                serde_json::Value::Null => {}
                other => docs.push(other),
            }
        }
        Ok(docs)
    }
}

/// stderr without the lines both engines print on success too.
fn meaningful_lines(stderr: &str) -> impl Iterator<Item = &str> {
    stderr.lines().map(str::trim).filter(|l| {
        !l.is_empty()
            && !l.contains("unable to get systemd connection")
            && !l.contains("DEPRECATED: The legacy builder")
    })
}

/// Docker and podman both report ENTRYPOINT as a list; very old images may have a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

fn parse_container(doc: serde_json::Value) -> std::result::Result<Inspected, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        name: String,
        state: State,
        #[serde(default)]
        config: Config,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Config {
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct State {
        status: String,
        #[serde(default)]
        exit_code: i32,
        #[serde(default, rename = "OOMKilled")]
        oom_killed: bool,
        #[serde(default)]
        error: String,
        #[serde(default)]
        started_at: String,
        #[serde(default)]
        finished_at: String,
    }
    let d: Doc =
        serde_json::from_value(doc).map_err(|e| format!("unreadable inspect document: {e}"))?;
    let time = |s: &str| parse_rfc3339(s).filter(|t| *t > SystemTime::UNIX_EPOCH);
    let state = WorkloadState::from_engine(&d.state.status);
    let ended = matches!(state, WorkloadState::Exited);
    Ok(Inspected {
        workload: Workload {
            // docker reports "/name".
            name: d.name.trim_start_matches('/').to_owned(),
            state,
            raw_state: d.state.status,
            exit_code: ended.then_some(d.state.exit_code),
            oom_killed: d.state.oom_killed,
            error: d.state.error,
            started_at: time(&d.state.started_at),
            finished_at: time(&d.state.finished_at),
            started_at_raw: d.state.started_at,
            finished_at_raw: d.state.finished_at,
        },
        labels: d.config.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    // Trimmed from real `container inspect --format '{{json .}}'` output on this machine.
    const DOCKER: &str = r#"{"Id":"3eb2","Name":"/openshell-a","State":{"Status":"exited","Running":false,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":137,"Error":"","StartedAt":"2026-11-22T14:23:49.647144333Z","FinishedAt":"2026-11-22T14:23:51.751247037Z"},"Config":{"Labels":{"io.openshell.sandbox":"a","io.openshell.managed-by":"sandboxctl"}}}
{"Id":"4fa1","Name":"/openshell-b","State":{"Status":"created","Running":false,"Pid":0,"ExitCode":0,"Error":"","StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"},"Config":{"Labels":null}}
"#;
    const PODMAN: &str = r#"[
     {
          "Id": "6678",
          "Name": "openshell-a",
          "State": {
               "OciVersion": "1.0.2-dev",
               "Status": "running",
               "Running": true,
               "Pid": 11428,
               "ConmonPid": 11417,
               "ExitCode": 0,
               "Error": "",
               "StartedAt": "2026-11-22T14:23:46.232800567Z",
               "FinishedAt": "2026-11-22T14:23:45.350774383Z"
          },
          "Config": {
               "Labels": {
                    "io.openshell.sandbox": "a"
               }
          }
     }
]
"#;

    fn engine() -> Engine {
        Engine {
            kind: BackendKind::Docker,
        }
    }

    #[test]
    fn parses_docker_lines() {
        let docs = engine().json_docs("t", DOCKER.as_bytes()).unwrap();
        let cs: Vec<Inspected> = docs
            .into_iter()
            .map(|d| parse_container(d).unwrap())
            .collect();
        let w = &cs[0].workload;
        assert_eq!(w.name, "openshell-a");
        assert_eq!(w.state, WorkloadState::Exited);
        assert_eq!(w.exit_code, Some(137));
        assert!(w.started_at.unwrap() < w.finished_at.unwrap());
        assert_eq!(cs[0].labels["io.openshell.sandbox"], "a");
        let w = &cs[1].workload;
        assert_eq!(w.state, WorkloadState::Created);
        // Go's zero time means "never"; no exit code before an end.
        assert_eq!(
            (w.started_at, w.finished_at, w.exit_code),
            (None, None, None)
        );
        assert!(cs[1].labels.is_empty());
    }

    #[test]
    fn parses_podman_pretty_array() {
        let docs = engine().json_docs("t", PODMAN.as_bytes()).unwrap();
        assert_eq!(docs.len(), 1);
        let c = parse_container(docs.into_iter().next().unwrap()).unwrap();
        assert_eq!(c.workload.name, "openshell-a");
        assert_eq!(c.workload.state, WorkloadState::Running);
        assert_eq!(c.workload.exit_code, None);
        // While running, FinishedAt is the previous run's end.
        assert!(c.workload.finished_at.unwrap() < c.workload.started_at.unwrap());
        assert_eq!(c.labels.len(), 1);
    }

    #[test]
    fn normalizes_engine_states() {
        for (s, want) in [
            ("configured", WorkloadState::Created),
            ("created", WorkloadState::Created),
            ("running", WorkloadState::Running),
            ("stopping", WorkloadState::Running),
            ("paused", WorkloadState::Paused),
            ("stopped", WorkloadState::Exited),
            ("exited", WorkloadState::Exited),
            ("dead", WorkloadState::Exited),
            ("restarting", WorkloadState::Other("restarting".into())),
        ] {
            assert_eq!(WorkloadState::from_engine(s), want, "{s}");
        }
    }

    fn output(status: ExitStatus, stderr: &str) -> Output {
        Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn classifies_engine_failures() {
        let e = engine().classify(
            "start",
            &output(
                exited(1),
                "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n",
            ),
        );
        assert_eq!(e.exit(), CtlExit::EngineNotRunning);
        assert!(e.to_string().contains("docker is not running"), "{e}");
        let podman = Engine {
            kind: BackendKind::Podman,
        };
        let e = podman.classify(
            "inspect",
            &output(exited(125), "Cannot connect to Podman. Please verify your connection\nError: unable to connect to Podman socket: dial unix /x: connect: no such file or directory\n"),
        );
        assert_eq!(e.exit(), CtlExit::EngineNotRunning);
        let e = podman.classify(
            "rm",
            &output(
                exited(125),
                "time=\"x\" level=error msg=\"unable to get systemd connection to add healthchecks\"\nError: no container with name or ID \"x\" found: no such container\n",
            ),
        );
        assert_eq!(e.exit(), CtlExit::EngineError);
        assert!(e.is_no_such());
        // The engine's own words, without the harmless systemd noise.
        assert_eq!(
            e.to_string(),
            "podman rm failed (exit 125): Error: no container with name or ID \"x\" found: no such container"
        );
    }

    #[test]
    fn an_engine_killed_by_a_signal_says_so() {
        let podman = Engine {
            kind: BackendKind::Podman,
        };
        // Killed by SIGKILL, nothing printed: this used to read "(exit a signal): ".
        let e = podman.classify("stop", &output(ExitStatus::from_raw(9), ""));
        let m = e.to_string();
        assert!(
            m.starts_with("podman stop was killed by signal 9 (SIGKILL) and printed nothing"),
            "{m}"
        );
        assert_eq!(e.exit(), CtlExit::EngineError);
        let e = podman.classify("stop", &output(ExitStatus::from_raw(15), "Error: bye\n"));
        assert_eq!(
            e.to_string(),
            "podman stop was killed by signal 15 (SIGTERM): Error: bye"
        );
        let e = podman.classify("stop", &output(exited(2), ""));
        assert!(
            e.to_string()
                .starts_with("podman stop failed (exit 2) and printed nothing"),
            "{e}"
        );
    }
}
