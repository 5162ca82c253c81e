//! The container engines, driven through their command-line tools.
//!
//! # The backend boundary
//! The verbs never build an engine command themselves. They call the operations below, and
//! only these: [`Engine::image_config`], [`Engine::volume_exists`],
//! [`Engine::container_exists`], [`Engine::create`], [`Engine::start`], [`Engine::stop`],
//! [`Engine::remove`] and [`Engine::inspect`], which reports each sandbox's workload as a
//! [`Container`] (state, exit code, start and finish times). The host state directory (intent,
//! status.json) is the backend-independent half and lives in `state.rs`.
//!
//! Adding a backend means adding a [`Backend`] variant and its arm in each operation, nothing
//! in the verbs:
//! - kubernetes: `create` = a StatefulSet (replicas 0) with a PVC template for the workspace
//!   and a hostPath or projected volume for the status directory; `start`/`stop` = scale to 1/0
//!   (the stop timeout becomes terminationGracePeriodSeconds); `remove` = StatefulSet + PVC;
//!   `inspect` = the pod's phase, container state, exit code and start/finish times.
//! - QEMU VM: `create` = a disk image for the workspace plus a virtiofs/9p share for the status
//!   directory; `start` = boot the VM (supervisor as init); `stop` = ACPI shutdown with the stop
//!   timeout, then quit; `inspect` = the QMP status of the VM process.
//!
//! podman and docker agree on nearly everything used here (verbs, `--format '{{json .}}'`,
//! the inspect document's `State`), so one implementation serves both; where they differ
//! (the wording of "no such object", the shape of podman's `{{json .}}` output) the
//! difference is handled in one place below, not per verb.

use crate::contract::time::parse_rfc3339;
use crate::contract::CtlExit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Instant, SystemTime};
use tracing::debug;

/// Which engine runs a sandbox. Recorded in the sandbox's host state at create time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Podman,
    Docker,
}

impl Backend {
    /// The command-line tool, looked up on PATH.
    pub fn program(self) -> &'static str {
        match self {
            Backend::Podman => "podman",
            Backend::Docker => "docker",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

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
        code: Option<i32>,
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
                message,
            } => {
                let code = code.map_or("a signal".to_owned(), |c| c.to_string());
                write!(f, "{program} {action} failed (exit {code}): {message}")
            }
            EngineError::Io {
                program,
                action,
                message,
            } => write!(f, "{program} {action}: {message}"),
        }
    }
}

type Result<T> = std::result::Result<T, EngineError>;

/// The workload's state as the engine reports it, normalized over the engines' vocabularies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started (podman also says configured/initialized).
    Created,
    /// Running (podman's `stopping` too: the supervisor is still there to report).
    Running,
    Paused,
    /// Ended: exited (podman also says stopped; docker's dead counts too).
    Exited,
    /// Anything else (restarting, removing…), kept verbatim.
    Other(String),
}

impl ContainerState {
    fn from_engine(s: &str) -> ContainerState {
        match s {
            "created" | "configured" | "initialized" => ContainerState::Created,
            "running" | "stopping" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "exited" | "stopped" | "dead" => ContainerState::Exited,
            other => ContainerState::Other(other.to_owned()),
        }
    }
}

/// One sandbox's workload as observed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub state: ContainerState,
    /// The engine's own word for the state (`exited`, `stopped`, `running`…).
    pub raw_state: String,
    /// Exit code of the last run (meaningful once it has ended).
    pub exit_code: i32,
    pub oom_killed: bool,
    /// The engine's error for the last run, if any.
    pub error: String,
    /// Start of the current (or last) run; None before the first start.
    pub started_at: Option<SystemTime>,
    /// End of the last run. While running, this is the end of the *previous* run (None if
    /// there was none).
    pub finished_at: Option<SystemTime>,
    pub started_at_raw: String,
    pub finished_at_raw: String,
}

/// What the image says it runs (the verbs need only the supervisor's flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
}

/// Everything `create` needs; names are already derived (see `names.rs`).
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

#[derive(Debug, Clone, Copy)]
pub struct Engine {
    pub backend: Backend,
}

impl Engine {
    pub fn new(backend: Backend) -> Engine {
        Engine { backend }
    }

    /// The image's ENTRYPOINT.
    pub fn image_config(&self, image: &str) -> Result<ImageConfig> {
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

    pub fn volume_exists(&self, volume: &str) -> Result<bool> {
        self.exists(
            "volume inspect",
            &["volume", "inspect", "--format", "{{.Name}}", volume],
        )
    }

    pub fn container_exists(&self, container: &str) -> Result<bool> {
        self.exists(
            "container inspect",
            &["container", "inspect", "--format", "{{.Name}}", container],
        )
    }

    /// Creates the workspace volume and the container (not started). On failure nothing
    /// of what this call created is left behind.
    pub fn create(&self, spec: &CreateSpec) -> Result<()> {
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
    pub fn start(&self, container: &str) -> Result<()> {
        self.run("start", &["start", container]).map(drop)
    }

    /// SIGTERM (the image's STOPSIGNAL), then SIGKILL after `timeout_secs`; returns once the
    /// container has ended.
    pub fn stop(&self, container: &str, timeout_secs: u64) -> Result<()> {
        let t = timeout_secs.to_string();
        self.run("stop", &["stop", "-t", &t, container]).map(drop)
    }

    /// Removes the container and the workspace volume. Either being gone already is fine:
    /// this is the path that cleans up after partial failures too.
    pub fn remove(&self, container: &str, volume: &str) -> Result<()> {
        match self.run("rm", &["rm", "--force", container]) {
            Err(e) if e.is_no_such() => {}
            r => r.map(drop)?,
        }
        self.remove_volume(volume)
    }

    fn remove_volume(&self, volume: &str) -> Result<()> {
        match self.run("volume rm", &["volume", "rm", volume]) {
            Err(e) if e.is_no_such() => Ok(()),
            r => r.map(drop),
        }
    }

    /// Inspects the given containers in one engine call. Containers that do not exist are
    /// absent from the map; any other failure is an error.
    pub fn inspect(&self, containers: &[String]) -> Result<BTreeMap<String, Container>> {
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
            if !unexpected.is_empty() {
                return Err(self.classify("container inspect", &out));
            }
        }
        let mut found = BTreeMap::new();
        for doc in self.json_docs("container inspect", &out.stdout)? {
            let c = parse_container(doc).map_err(|e| self.io_error("container inspect", e))?;
            found.insert(c.name.clone(), c);
        }
        Ok(found)
    }

    // ----- running the tool --------------------------------------------------------------

    fn exists(&self, action: &str, args: &[&str]) -> Result<bool> {
        match self.run(action, args) {
            Ok(_) => Ok(true),
            Err(e) if e.is_no_such() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<Output> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.run_os(action, &args)
    }

    /// Runs the tool and fails on a non-zero exit. Success is judged by the exit status
    /// alone: podman prints errors on stderr for things that do not fail (no systemd for
    /// health-check timers) and docker prints deprecation notices.
    fn run_os(&self, action: &str, args: &[OsString]) -> Result<Output> {
        let out = self.exec(action, args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.classify(action, &out))
        }
    }

    fn exec(&self, action: &str, args: &[OsString]) -> Result<Output> {
        let program = self.backend.program();
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
            elapsed_ms = t0.elapsed().as_millis() as u64, "engine command finished");
        Ok(out)
    }

    fn classify(&self, action: &str, out: &Output) -> EngineError {
        let program = self.backend.program();
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
            message,
        }
    }

    fn io_error(&self, action: &str, message: String) -> EngineError {
        EngineError::Io {
            program: self.backend.program(),
            action: action.to_owned(),
            message,
        }
    }

    /// The JSON documents in `stdout`: one per line (docker, and podman for most templates)
    /// or a single pretty-printed array (podman treats `{{json .}}` as "print the array").
    fn json_docs(&self, action: &str, stdout: &[u8]) -> Result<Vec<serde_json::Value>> {
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

fn parse_container(doc: serde_json::Value) -> std::result::Result<Container, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        name: String,
        state: State,
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
    Ok(Container {
        // docker reports "/name".
        name: d.name.trim_start_matches('/').to_owned(),
        state: ContainerState::from_engine(&d.state.status),
        raw_state: d.state.status,
        exit_code: d.state.exit_code,
        oom_killed: d.state.oom_killed,
        error: d.state.error,
        started_at: time(&d.state.started_at),
        finished_at: time(&d.state.finished_at),
        started_at_raw: d.state.started_at,
        finished_at_raw: d.state.finished_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    // Trimmed from real `container inspect --format '{{json .}}'` output on this machine.
    const DOCKER: &str = r#"{"Id":"3eb2","Name":"/openshell-a","State":{"Status":"exited","Running":false,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":137,"Error":"","StartedAt":"2026-11-22T14:23:49.647144333Z","FinishedAt":"2026-11-22T14:23:51.751247037Z"}}
{"Id":"4fa1","Name":"/openshell-b","State":{"Status":"created","Running":false,"Pid":0,"ExitCode":0,"Error":"","StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}}
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
          }
     }
]
"#;

    fn engine() -> Engine {
        Engine::new(Backend::Docker)
    }

    #[test]
    fn parses_docker_lines() {
        let docs = engine().json_docs("t", DOCKER.as_bytes()).unwrap();
        let cs: Vec<Container> = docs
            .into_iter()
            .map(|d| parse_container(d).unwrap())
            .collect();
        assert_eq!(cs[0].name, "openshell-a");
        assert_eq!(cs[0].state, ContainerState::Exited);
        assert_eq!(cs[0].exit_code, 137);
        assert!(cs[0].started_at.unwrap() < cs[0].finished_at.unwrap());
        assert_eq!(cs[1].state, ContainerState::Created);
        // Go's zero time means "never".
        assert_eq!(cs[1].started_at, None);
        assert_eq!(cs[1].finished_at, None);
    }

    #[test]
    fn parses_podman_pretty_array() {
        let docs = engine().json_docs("t", PODMAN.as_bytes()).unwrap();
        assert_eq!(docs.len(), 1);
        let c = parse_container(docs.into_iter().next().unwrap()).unwrap();
        assert_eq!(c.name, "openshell-a");
        assert_eq!(c.state, ContainerState::Running);
        // While running, FinishedAt is the previous run's end.
        assert!(c.finished_at.unwrap() < c.started_at.unwrap());
    }

    #[test]
    fn normalizes_engine_states() {
        for (s, want) in [
            ("configured", ContainerState::Created),
            ("created", ContainerState::Created),
            ("running", ContainerState::Running),
            ("stopping", ContainerState::Running),
            ("paused", ContainerState::Paused),
            ("stopped", ContainerState::Exited),
            ("exited", ContainerState::Exited),
            ("dead", ContainerState::Exited),
            ("restarting", ContainerState::Other("restarting".into())),
        ] {
            assert_eq!(ContainerState::from_engine(s), want, "{s}");
        }
    }

    fn output(code: i32, stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn classifies_engine_failures() {
        let e = engine().classify(
            "start",
            &output(
                1,
                "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n",
            ),
        );
        assert_eq!(e.exit(), CtlExit::EngineNotRunning);
        assert!(e.to_string().contains("docker is not running"), "{e}");
        let e = Engine::new(Backend::Podman).classify(
            "inspect",
            &output(125, "Cannot connect to Podman. Please verify your connection\nError: unable to connect to Podman socket: dial unix /x: connect: no such file or directory\n"),
        );
        assert_eq!(e.exit(), CtlExit::EngineNotRunning);
        let e = Engine::new(Backend::Podman).classify(
            "rm",
            &output(
                125,
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
}
