//! The QEMU backend: a sandbox is a VM whose init is the supervisor.
//!
//! Everything lives in the sandbox's host state directory, under fixed names:
//!
//! ```text
//! <state-root>/<NAME>/
//!   sandbox.json, intent.json, lock     as for podman/docker (state.rs, lock.rs)
//!   status/                             the guest's status share (9p): status.json, poweroff.json
//!   vm/vm.json                          the VM definition, recorded at create
//!   vm/vmlinux, vm/initramfs.cpio       the image's kernel and root filesystem (hardlinked or copied)
//!   vm/workspace.raw                    the workspace disk: sparse raw, ext4, seeded at first boot
//!   vm/config.json                      the guest's per-VM settings (fw_cfg): hostname, command, env
//!   vm/console.log (+ .1)               the serial console of this run (and the previous one)
//!   vm/qmp.sock                         QEMU's monitor
//!   vm/keeper.lock, run.json, exit.json the keeper's lock and its record of each run
//!   vm/qemu.log, vm/keeper.log          QEMU's and the keeper's own output
//! ```
//!
//! The phase comes from the keeper (is the lock held: the VM runs), QMP's run state
//! (paused, panicked), the recorded exit (QEMU's status; the supervisor's own code from
//! `status/poweroff.json` after a clean power-off), status.json and the intent, through the
//! shared `phase::derive`. A `kill -9` of QEMU is a power cut: exit 137, Error.

pub mod accel;
pub mod definition;
pub mod keeper;
pub mod qmp;

use super::{
    Backend, BackendKind, CreateRequest, Intent, Lock, Observation, Record, Sandbox,
    SupervisorSettings, Workload, WorkloadState, RECORD_VERSION,
};
use crate::contract::time::{now_rfc3339, parse_rfc3339};
use crate::contract::vm::{self as guest, PowerOff, VmConfig};
use crate::contract::{CtlExit, Phase};
use crate::shim::error::CtlError;
use crate::shim::names::Name;
use crate::shim::phase::{status_is_current, CLOCK_SKEW};
use crate::shim::state::{internal, SandboxDir, StateRoot, StatusRead};
use definition::{files, ImageManifest, Network, VmDefinition, QEMU};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

pub const DEFAULT_MEMORY: &str = "512M";
pub const DEFAULT_CPUS: u32 = 1;
pub const DEFAULT_WORKSPACE_SIZE: &str = "2G";
/// After the stop timeout and a QMP `quit`, how long QEMU gets before SIGKILL.
const QUIT_WAIT: Duration = Duration::from_secs(5);
const QMP_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest path a unix socket can have (sun_path, with its NUL).
const SUN_PATH_MAX: usize = 107;

/// The backend's fields of sandbox.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// The VM's directory, relative to the state directory.
    pub vm_dir: String,
    /// The supervisor's --status-dir in the guest (where the status share is mounted).
    pub status_path: String,
}

pub struct Qemu {
    root: StateRoot,
}

impl Qemu {
    pub fn new(root: StateRoot) -> Qemu {
        Qemu { root }
    }

    fn dir<'a>(&self, sb: &'a Sandbox) -> &'a SandboxDir {
        sb.dir
            .as_ref()
            .expect("VM sandboxes have a state directory")
    }

    fn vm(&self, sb: &Sandbox) -> PathBuf {
        definition::vm_dir(&self.dir(sb).path)
    }

    fn definition(&self, sb: &Sandbox) -> Result<VmDefinition, CtlError> {
        let vm = self.vm(sb);
        let body =
            crate::safe_fs::read_regular_at(&vm, files::DEFINITION, 1 << 20).map_err(|e| {
                CtlError::new(
                    CtlExit::Internal,
                    format!("{} {e}", vm.join(files::DEFINITION).display()),
                )
                .about(sb.name.as_str())
            })?;
        serde_json::from_slice(&body).map_err(|e| {
            CtlError::new(
                CtlExit::Internal,
                format!("{}: {e}", vm.join(files::DEFINITION).display()),
            )
            .about(sb.name.as_str())
        })
    }

    /// The VM as it is now.
    fn workload(&self, sb: &Sandbox) -> Result<Option<Workload>, CtlError> {
        let vm = self.vm(sb);
        if !vm.join(files::DEFINITION).is_file() {
            return Ok(None);
        }
        let running = keeper::running(&vm)
            .map_err(|e| internal("cannot read the VM's keeper lock", e).about(sb.name.as_str()))?;
        let run = keeper::read_run(&vm);
        let exit = keeper::read_exit(&vm);
        let time = |s: &str| parse_rfc3339(s);
        let mut w = Workload {
            name: format!("openshell-{}", sb.name),
            state: WorkloadState::Created,
            raw_state: "created".into(),
            exit_code: None,
            oom_killed: false,
            error: String::new(),
            started_at: None,
            finished_at: None,
            started_at_raw: String::new(),
            finished_at_raw: String::new(),
        };
        let Some(run) = run else {
            if running {
                // The keeper holds the lock but has not recorded QEMU yet: starting.
                w.state = WorkloadState::Running;
                w.raw_state = "starting".into();
            }
            return Ok(Some(w));
        };
        w.started_at = time(&run.started_at);
        w.started_at_raw = run.started_at.clone();
        let this_run_exit = exit.filter(|e| e.started_at == run.started_at);
        if running {
            // QEMU's own run state tells a paused or wedged VM from a running one.
            let (state, raw) = match qmp::Qmp::connect(&vm.join(files::QMP), QMP_TIMEOUT)
                .and_then(|mut q| q.status())
            {
                Ok(s) => {
                    let st = match s.as_str() {
                        "paused" | "suspended" => WorkloadState::Paused,
                        "running" | "prelaunch" | "inmigrate" | "postmigrate"
                        | "finish-migrate" | "save-vm" | "restore-vm" | "debug" | "shutdown" => {
                            WorkloadState::Running
                        }
                        other => WorkloadState::Other(other.to_owned()),
                    };
                    (st, s)
                }
                // QMP serves one client at a time (a stop may be talking to it): the keeper's
                // lock already says it runs.
                Err(e) => {
                    debug!(event = "vm.qmp", sandbox = %sb.name, error = %e, "QMP did not answer");
                    (WorkloadState::Running, "running".to_owned())
                }
            };
            w.state = state;
            w.raw_state = raw;
            // While running, the last recorded exit is the previous run's end.
            if let Some(prev) = keeper::read_exit(&vm).filter(|e| e.started_at != run.started_at) {
                w.finished_at = time(&prev.finished_at);
                w.finished_at_raw = prev.finished_at;
            }
            return Ok(Some(w));
        }
        w.state = WorkloadState::Exited;
        match this_run_exit {
            None => {
                w.raw_state = "exited (unrecorded)".into();
                w.error = "the VM's keeper ended without recording QEMU's exit (it was killed; QEMU was killed with it)".into();
            }
            Some(e) => {
                w.finished_at = time(&e.finished_at);
                w.finished_at_raw = e.finished_at.clone();
                match (e.code, e.signal) {
                    (_, Some(sig)) => {
                        w.raw_state = "killed".into();
                        w.exit_code = Some(128 + sig);
                        w.error = format!(
                            "QEMU was killed by {} (a power cut: the guest had no notice)",
                            signal_name(sig)
                        );
                    }
                    (Some(0), None) => {
                        w.raw_state = "powered off".into();
                        // The supervisor's own code, when the guest recorded it for this run.
                        w.exit_code = Some(
                            self.poweroff_code(sb, &run.started_at, &e.finished_at)
                                .unwrap_or(0),
                        );
                    }
                    (Some(c), None) => {
                        w.raw_state = "failed".into();
                        w.exit_code = Some(c);
                        w.error = if tail(&vm.join(files::CONSOLE), 8192).contains("Kernel panic") {
                            format!(
                                "the guest kernel panicked (QEMU exited {c} through pvpanic); see {}",
                                vm.join(files::CONSOLE).display()
                            )
                        } else {
                            format!(
                                "QEMU exited {c}: {}",
                                last_line(&tail(&vm.join(files::QEMU_LOG), 4096))
                            )
                        };
                    }
                    (None, None) => w.raw_state = "exited".into(),
                }
            }
        }
        Ok(Some(w))
    }

    /// `status/poweroff.json`, if it was written during the run that started at `started`
    /// and ended at `finished` (host clock; the guest's clock is the host's RTC).
    fn poweroff_code(&self, sb: &Sandbox, started: &str, finished: &str) -> Option<i32> {
        let status = self.dir(sb).status_dir();
        let body = crate::safe_fs::read_regular_at(&status, guest::POWEROFF_FILE, 1 << 16).ok()?;
        let p: PowerOff = serde_json::from_slice(&body).ok()?;
        let at = parse_rfc3339(&p.at)?;
        let (s, f) = (parse_rfc3339(started)?, parse_rfc3339(finished)?);
        (at + CLOCK_SKEW >= s && at <= f + CLOCK_SKEW).then_some(p.code)
    }

    fn host_view(&self, sb: &Sandbox, workload: Option<Workload>) -> Result<Observation, CtlError> {
        let dir = self.dir(sb);
        let intent = dir
            .read_intent()
            .map_err(|e| internal("cannot read the recorded intent", e).about(sb.name.as_str()))?;
        let (status, status_problem) = match dir.read_status() {
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
        let status_current =
            matches!((&status, &workload), (Some(s), Some(w)) if status_is_current(s, w));
        Ok(Observation {
            intent,
            workload,
            workload_conflict: None,
            status,
            status_current,
            status_problem,
            report: None,
            derived: None,
            details: serde_json::Map::new(),
        })
    }

    /// The supervisor's current phase in this VM, if its report belongs to the running run.
    fn current_phase(&self, sb: &Sandbox) -> Option<Phase> {
        let w = self.workload(sb).ok()??;
        match self.dir(sb).read_status() {
            StatusRead::Found(s) if status_is_current(&s, &w) => Some(s.phase),
            _ => None,
        }
    }

    /// QMP `quit`, then SIGKILL to QEMU; returns once the keeper has ended.
    fn kill_hard(&self, sb: &Sandbox) {
        let vm = self.vm(sb);
        if let Ok(mut q) = qmp::Qmp::connect(&vm.join(files::QMP), QMP_TIMEOUT) {
            let _ = q.quit();
        }
        if keeper::wait_ended(&vm, QUIT_WAIT) {
            return;
        }
        if let Some(run) = keeper::read_run(&vm) {
            // The keeper's QEMU, and only while the keeper still runs (no stale pid).
            if keeper::running(&vm).unwrap_or(false) {
                // SAFETY: kill(2) with a pid the running keeper recorded for its child.
                unsafe { libc::kill(run.qemu_pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        keeper::wait_ended(&vm, QUIT_WAIT);
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("signal {sig}"),
    }
}

/// The last `max` bytes of a file we own (the console or QEMU log), lossy.
fn tail(path: &Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing in qemu.log)")
        .trim()
        .to_owned()
}

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn require(program: &'static str, package: &str) -> Result<(), CtlError> {
    if on_path(program) {
        Ok(())
    } else {
        Err(CtlError::new(
            CtlExit::EngineNotInstalled,
            format!(
                "{program} is not installed: it was not found on PATH; apt-get install {package}"
            ),
        ))
    }
}

fn usage(msg: String) -> CtlError {
    CtlError::new(CtlExit::Usage, msg)
}

/// Hardlinks `from` to `to`, or copies it when they are on different filesystems.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => fs::copy(from, to).map(drop),
    }
}

/// A fresh sparse raw disk with an empty ext4 (the supervisor seeds it at first boot).
fn make_disk(path: &Path, bytes: u64) -> Result<(), CtlError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| internal(&format!("cannot create {}", path.display()), e))?;
    f.set_len(bytes)
        .map_err(|e| internal(&format!("cannot size {}", path.display()), e))?;
    drop(f);
    // Inode tables and journal initialised now (cheap on a sparse file), so the guest's
    // first boot is not slowed by ext4's lazy initialisation.
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-m", "0", "-L", "workspace"])
        .args([
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                CtlError::new(
                    CtlExit::EngineNotInstalled,
                    "mke2fs is not installed: apt-get install e2fsprogs",
                )
            } else {
                internal("cannot run mke2fs", e)
            }
        })?;
    if !out.status.success() {
        return Err(CtlError::new(
            CtlExit::EngineError,
            format!(
                "mke2fs {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

impl Backend for Qemu {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
    }

    fn scope(&self) -> String {
        format!("under {}", self.root.path.display())
    }

    fn list(&self) -> Result<Vec<Sandbox>, CtlError> {
        self.root.list(BackendKind::Vm)
    }

    fn find(&self, name: &Name) -> Result<Option<Sandbox>, CtlError> {
        self.root.find(name, BackendKind::Vm)
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
        require(QEMU, "qemu-system-x86").map_err(about)?;
        if args.storage_class.is_some() {
            return Err(about(usage(
                "--storage-class is for --backend kube only".into(),
            )));
        }
        let Some(image_arg) = args.image.as_deref() else {
            return Err(about(usage(
                "create --backend vm needs --image DIR (a directory made by `images/build.sh vm`)"
                    .into(),
            )));
        };
        let image = PathBuf::from(image_arg);
        let image = if image.is_relative() {
            std::env::current_dir()
                .map(|d| d.join(&image))
                .unwrap_or(image)
        } else {
            image
        };
        let m = ImageManifest::read(&image)
            .map_err(|e| about(usage(format!("--image {image_arg}: {e}"))))?;
        let sup = SupervisorSettings::from_entrypoint(&m.entrypoint()).map_err(|e| {
            about(usage(format!(
                "image {image_arg} cannot run as a sandbox: {e}"
            )))
        })?;
        let memory = definition::parse_size(args.memory.as_deref().unwrap_or(DEFAULT_MEMORY))
            .map_err(|e| about(usage(format!("--memory: {e}"))))?;
        if memory < 64 << 20 {
            return Err(about(usage("--memory: at least 64M".into())));
        }
        let disk = definition::parse_size(
            args.workspace_size
                .as_deref()
                .unwrap_or(DEFAULT_WORKSPACE_SIZE),
        )
        .map_err(|e| about(usage(format!("--workspace-size: {e}"))))?;
        if disk < 16 << 20 {
            return Err(about(usage("--workspace-size: at least 16M".into())));
        }
        let cpus = args.cpus.unwrap_or(DEFAULT_CPUS);
        if cpus == 0 || cpus > 64 {
            return Err(about(usage("--cpus: 1 to 64".into())));
        }
        let network = match args.network.as_deref().unwrap_or("none") {
            "none" => Network::None,
            "user" => Network::User,
            other => {
                return Err(about(usage(format!(
                    "--network {other:?}: use none or user"
                ))))
            }
        };
        let mut env = std::collections::BTreeMap::new();
        for e in &args.env {
            let (k, v) = e.split_once('=').expect("validated by the parser");
            env.insert(k.to_owned(), v.to_owned());
        }
        let config = VmConfig {
            schema_version: guest::CONFIG_VERSION,
            hostname: Some(name.to_string()),
            command: if args.command.is_empty() {
                m.command.clone()
            } else {
                args.command.clone()
            },
            env,
        };
        let sock = self.root.dir(name).path.join(files::DIR).join(files::QMP);
        if sock.as_os_str().len() > SUN_PATH_MAX {
            return Err(about(usage(format!(
                "the QMP socket {} would be longer than a unix socket path can be; use a shorter --state-root",
                sock.display()
            ))));
        }
        let (accel, accel_reason) =
            accel::choose(args.accel.as_deref(), &image, &m).map_err(|e| about(usage(e)))?;

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
            let _ = dir.remove();
            about(e)
        };
        let _lock = dir
            .lock(name.as_str(), "create", Duration::ZERO)
            .map_err(undo)?;
        let id = super::new_id().map_err(|e| {
            undo(CtlError::new(
                CtlExit::Internal,
                format!("no random id: {e}"),
            ))
        })?;
        let vm = definition::vm_dir(&dir.path);
        let def = VmDefinition {
            schema_version: definition::DEFINITION_VERSION,
            image: image.display().to_string(),
            kernel_release: m.kernel_release.clone(),
            kernel_package: m.kernel_package.clone(),
            kernel_sha256: m.kernel_sha256.clone(),
            initrd_sha256: m.initrd_sha256.clone(),
            cmdline: definition::cmdline(&m),
            memory_mib: memory >> 20,
            cpus,
            disk_bytes: disk,
            accel,
            accel_reason,
            network,
            qemu: QEMU.into(),
            process_name: format!("openshell-{name}"),
        };
        let details = VmRecord {
            vm_dir: files::DIR.into(),
            status_path: sup.status_dir.clone(),
        };
        let serde_json::Value::Object(details) =
            serde_json::to_value(&details).expect("serializes")
        else {
            unreachable!("a struct serializes to an object")
        };
        let record = Record {
            schema_version: RECORD_VERSION,
            name: name.to_string(),
            id,
            backend: BackendKind::Vm,
            image: image.display().to_string(),
            stop_timeout_secs: sup.stop_timeout_secs(),
            created_at: now_rfc3339(),
            details,
        };
        let write = |file: &str, v: &dyn erased::Json| -> Result<(), CtlError> {
            crate::contract::status::write_file_atomic(&vm, file, &v.bytes())
                .map_err(|e| internal(&format!("cannot write {}", vm.join(file).display()), e))
        };
        (|| -> Result<(), CtlError> {
            fs::create_dir(&vm)
                .map_err(|e| internal(&format!("cannot create {}", vm.display()), e))?;
            for (from, to) in [(&m.kernel, files::KERNEL), (&m.initrd, files::INITRD)] {
                link_or_copy(&image.join(from), &vm.join(to)).map_err(|e| {
                    internal(
                        &format!(
                            "cannot copy {} into {}",
                            image.join(from).display(),
                            vm.display()
                        ),
                        e,
                    )
                })?;
            }
            make_disk(&vm.join(files::DISK), disk)?;
            write(files::CONFIG, &config)?;
            write(files::DEFINITION, &def)?;
            dir.write_intent(req.intent, "create")
                .and_then(|()| dir.write_record(&record))
                .map_err(|e| internal("cannot write the host state", e))
        })()
        .map_err(undo)?;
        info!(event = "vm.created", sandbox = %name, accel = accel.as_str(), memory_mib = def.memory_mib,
            cpus, disk_bytes = disk, kernel = %def.kernel_release, "VM defined");
        Ok(Sandbox {
            name: name.clone(),
            record,
            dir: Some(dir),
        })
    }

    fn start(&self, sb: &Sandbox) -> Result<(), CtlError> {
        require(QEMU, "qemu-system-x86").map_err(|e| e.about(sb.name.as_str()))?;
        let vm = self.vm(sb);
        let def = self.definition(sb)?;
        if keeper::running(&vm)
            .map_err(|e| internal("cannot read the keeper lock", e).about(sb.name.as_str()))?
        {
            return Ok(());
        }
        let run = keeper::launch(&self.dir(sb).path).map_err(|e| {
            CtlError::new(CtlExit::EngineError, format!("QEMU did not start: {e}"))
                .about(sb.name.as_str())
        })?;
        info!(event = "vm.start", sandbox = %sb.name, qemu_pid = run.qemu_pid, keeper_pid = run.keeper_pid,
            accel = def.accel.as_str(), "QEMU started");
        Ok(())
    }

    fn stop(&self, sb: &Sandbox, timeout_secs: u64) -> Result<(), CtlError> {
        let vm = self.vm(sb);
        if !keeper::running(&vm).unwrap_or(false) {
            return Ok(());
        }
        let t0 = Instant::now();
        let limit = Duration::from_secs(timeout_secs);
        info!(event = "vm.stop", sandbox = %sb.name, timeout_secs, "sending Ctrl-Alt-Del");
        // Ctrl-Alt-Del reaches the supervisor as SIGINT. It is sent again each second until
        // the supervisor says it is stopping: pressed while the guest kernel is still
        // booting (no keyboard driver yet) it is lost.
        let mut sent = false;
        while t0.elapsed() < limit {
            let acknowledged = matches!(
                self.current_phase(sb),
                Some(Phase::Stopping | Phase::Stopped | Phase::Failed | Phase::Completed)
            );
            if !acknowledged {
                match qmp::Qmp::connect(&vm.join(files::QMP), QMP_TIMEOUT)
                    .and_then(|mut q| q.ctrl_alt_del())
                {
                    Ok(()) => sent = true,
                    Err(e) => {
                        debug!(event = "vm.qmp", sandbox = %sb.name, error = %e, "Ctrl-Alt-Del not sent")
                    }
                }
            }
            if keeper::wait_ended(
                &vm,
                Duration::from_secs(1).min(limit.saturating_sub(t0.elapsed())),
            ) {
                return Ok(());
            }
        }
        warn!(event = "vm.stop_forced", sandbox = %sb.name, timeout_secs, ctrl_alt_del_sent = sent,
            "the VM did not power off within the stop timeout: quitting QEMU hard (the workspace's journal is replayed at the next boot)");
        self.kill_hard(sb);
        if keeper::running(&vm).unwrap_or(false) {
            return Err(CtlError::new(
                CtlExit::EngineError,
                "QEMU survived QMP quit and SIGKILL".to_owned(),
            )
            .about(sb.name.as_str()));
        }
        Ok(())
    }

    fn delete(&self, sb: &Sandbox) -> Result<(), CtlError> {
        if keeper::running(&self.vm(sb)).unwrap_or(false) {
            self.kill_hard(sb);
        }
        let dir = self.dir(sb);
        dir.remove().map_err(|e| {
            CtlError::new(
                CtlExit::Internal,
                format!("cannot remove {}: {e}", dir.path.display()),
            )
            .about(sb.name.as_str())
        })
    }

    fn observe(&self, sandboxes: &[Sandbox]) -> Vec<Result<Observation, CtlError>> {
        sandboxes
            .iter()
            .map(|sb| {
                require(QEMU, "qemu-system-x86").map_err(|e| e.about(sb.name.as_str()))?;
                let w = self.workload(sb)?;
                self.host_view(sb, w)
            })
            .collect()
    }

    fn refresh(&self, sb: &Sandbox, last: &Observation) -> Result<Observation, CtlError> {
        self.host_view(sb, last.workload.clone())
    }

    fn objects(&self, sb: &Sandbox) -> Vec<(&'static str, String)> {
        let vm = self.vm(sb);
        vec![
            ("vm", vm.join(files::DEFINITION).display().to_string()),
            ("disk", vm.join(files::DISK).display().to_string()),
            ("console", vm.join(files::CONSOLE).display().to_string()),
        ]
    }
}

/// Serializing a few different record types through one closure.
mod erased {
    pub trait Json {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn bytes(&self) -> Vec<u8> {
            let mut b = serde_json::to_vec_pretty(self).expect("serializes");
            b.push(b'\n');
            b
        }
    }
}
