//! `--init`: the supervisor as the init of a VM (PID 1 of the guest kernel).
//!
//! Nothing prepared the machine the way a container runtime does, so before anything else
//! it mounts the API filesystems, lets Ctrl-Alt-Del arrive as SIGINT (a graceful stop),
//! loads the kernel modules the image lists, reads the per-VM settings the host passed in
//! (`fw_cfg`), sets the hostname, and mounts the status share and the workspace disk. Then
//! it supervises exactly as in a container. When that ends — stopped, completed or failed —
//! it syncs, unmounts the workspace, and powers the machine off: an init that exits panics
//! the kernel (which, with pvpanic, the host reads as a crash).

mod modules;
mod mounts;

use super::cli::RunArgs;
use super::report::Reporter;
use crate::contract::vm::{self, VmConfig};
use crate::contract::{ExitCode, Phase, Reason};
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long the workspace disk may take to show up once virtio-blk is loaded.
const DISK_WAIT: Duration = Duration::from_secs(10);

/// A step of the bring-up that failed.
#[derive(Debug)]
pub struct InitError {
    pub step: &'static str,
    pub detail: String,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

fn step(step: &'static str, detail: impl fmt::Display) -> InitError {
    InitError {
        step,
        detail: detail.to_string(),
    }
}

/// What has been brought up, so shutdown undoes exactly that.
#[derive(Default)]
struct Machine {
    status_mounted: bool,
    workspace_mounted: bool,
}

/// Runs the VM: bring-up, the supervisor, power-off. Returns only if powering off failed
/// (the caller then exits, and the kernel panics).
pub fn main(mut args: RunArgs, supervise: fn(RunArgs) -> i32) -> i32 {
    crate::log::init(args.log.log_format, args.log.log_level);
    if std::process::id() != 1 {
        // Mounting over /proc, /dev and /tmp of a running system would wreck it.
        error!(
            event = "init.failed",
            step = "pid1",
            error = "--init must be PID 1 of a VM",
            "refusing --init: this process is not PID 1 (boot the VM image with rdinit=/sbin/init)"
        );
        return ExitCode::InitFailed.code();
    }
    // Signals are blocked from the very start so a Ctrl-Alt-Del during bring-up stays
    // pending (PID 1 drops signals it neither handles nor blocks) and becomes the stop the
    // supervisor reads from its signalfd.
    super::events::block_handled();
    let started = Instant::now();
    let mut m = Machine::default();
    let code = match m.bring_up(&mut args) {
        Ok(()) => {
            info!(
                event = "init.ready",
                duration_ms = started.elapsed().as_millis() as u64,
                kernel_uptime_ms = uptime_ms(),
                "VM set up; starting the supervisor"
            );
            supervise(args.clone())
        }
        Err(e) => {
            error!(event = "init.failed", step = e.step, error = %e.detail, "VM set-up failed; powering off");
            m.report_failure(&args, &e);
            let code = ExitCode::InitFailed.code();
            info!(
                event = "supervisor.exit",
                code,
                phase = "Failed",
                "supervisor exiting"
            );
            code
        }
    };
    m.power_off(&args, code)
}

impl Machine {
    fn bring_up(&mut self, args: &mut RunArgs) -> Result<(), InitError> {
        for e in &mounts::EARLY {
            mounts::mount(
                e.source,
                Path::new(e.target),
                e.fstype,
                e.flags,
                e.data,
                e.dir_mode,
            )
            .map_err(|err| step("mount", format!("{} on {}: {err}", e.fstype, e.target)))?;
        }
        mounts::dev_links();
        // SAFETY: reboot(2) with the CAD_OFF command only changes what Ctrl-Alt-Del does.
        if unsafe { libc::reboot(libc::RB_DISABLE_CAD) } != 0 {
            return Err(step("ctrl_alt_del", io::Error::last_os_error()));
        }
        // The kernel starts init with almost no environment.
        if std::env::var_os("PATH").is_none() {
            std::env::set_var("PATH", "/bin:/usr/bin:/sbin:/usr/sbin");
        }
        std::env::set_var("OPENSHELL_WORKSPACE", &args.workspace);

        self.load_modules(&args.init_modules)?;
        let config = read_config()?;
        if let Some(h) = &config.hostname {
            set_hostname(h)?;
            // What a container engine sets in a container's environment, too.
            std::env::set_var("HOSTNAME", h);
        }
        for (k, v) in &config.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(step(
                    "config",
                    format!("invalid environment variable {k:?}"),
                ));
            }
            std::env::set_var(k, v);
        }
        if !config.command.is_empty() {
            args.command = config.command.iter().map(OsString::from).collect();
        }
        if args.command.is_empty() {
            return Err(step(
                "config",
                format!(
                    "no command: pass one after `--` or in the fw_cfg file {}",
                    vm::FW_CFG_NAME
                ),
            ));
        }

        mounts::mount(
            vm::STATUS_TAG,
            &args.status_dir,
            "9p",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "trans=virtio,version=9p2000.L,cache=none,msize=262144",
            0o755,
        )
        .map_err(|e| {
            step(
                "status_share",
                format!(
                    "mount 9p tag {:?} on {}: {e}; attach the host's status directory with -device virtio-9p-pci,mount_tag={}",
                    vm::STATUS_TAG,
                    args.status_dir.display(),
                    vm::STATUS_TAG
                ),
            )
        })?;
        self.status_mounted = true;
        info!(event = "init.mount", what = "status", tag = vm::STATUS_TAG, target = %args.status_dir.display(), "status share mounted");

        let disk = mounts::disk_by_serial(vm::WORKSPACE_SERIAL, DISK_WAIT)
            .map_err(|e| step("workspace_disk", e))?;
        // The workload owns the workspace: no setuid files or device nodes from it count.
        mounts::mount(
            &disk.to_string_lossy(),
            &args.workspace,
            "ext4",
            libc::MS_NOSUID | libc::MS_NODEV,
            "",
            0o755,
        )
        .map_err(|e| {
            step(
                "workspace_mount",
                format!(
                    "mount ext4 {} on {}: {e}",
                    disk.display(),
                    args.workspace.display()
                ),
            )
        })?;
        self.workspace_mounted = true;
        info!(event = "init.mount", what = "workspace", device = %disk.display(), target = %args.workspace.display(), "workspace disk mounted");
        // The kernel starts init in `/`; the agent starts in the workspace, as a container
        // image's WORKDIR has it.
        std::env::set_current_dir(&args.workspace).map_err(|e| {
            step(
                "workspace_mount",
                format!("chdir {}: {e}", args.workspace.display()),
            )
        })?;
        Ok(())
    }

    fn load_modules(&self, list: &Path) -> Result<(), InitError> {
        let wanted = match modules::read_list(list) {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warn!(event = "init.no_modules", list = %list.display(), "no module list; loading none");
                return Ok(());
            }
            Err(e) => return Err(step("modules", format!("read {}: {e}", list.display()))),
        };
        let dir = PathBuf::from("/lib/modules").join(kernel_release());
        let table = modules::DepTable::read(&dir).map_err(|e| {
            step(
                "modules",
                format!("read {}/modules.dep: {e}", dir.display()),
            )
        })?;
        let plan = table.plan(&wanted).map_err(|e| step("modules", e))?;
        let started = Instant::now();
        modules::load(&plan)
            .map_err(|(f, e)| step("modules", format!("load {}: {e}", f.display())))?;
        info!(
            event = "init.modules",
            count = plan.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "kernel modules loaded"
        );
        Ok(())
    }

    /// The bring-up failed: say so in status.json if the share can be mounted at all.
    fn report_failure(&mut self, args: &RunArgs, e: &InitError) {
        if !self.status_mounted {
            self.status_mounted = mounts::mount(
                vm::STATUS_TAG,
                &args.status_dir,
                "9p",
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                "trans=virtio,version=9p2000.L,cache=none",
                0o755,
            )
            .is_ok();
        }
        if !self.status_mounted {
            return; // only the console log can tell
        }
        let hook = (!args.no_hook).then(|| args.hook.display().to_string());
        if let Ok(mut r) = Reporter::start(args.status_dir.clone(), hook) {
            let msg = format!("VM set-up failed at {e}");
            r.phase(Phase::Failed, Some(Reason::InitFailed), Some(msg));
        }
    }

    /// Sync, unmount the workspace, power off. Only returns when the kernel refused.
    fn power_off(&mut self, args: &RunArgs, code: i32) -> i32 {
        // SAFETY: sync has no failure mode.
        unsafe { libc::sync() };
        let mut clean = !self.workspace_mounted;
        if self.workspace_mounted {
            // The supervisor reaped every descendant; anything left (a process stuck in
            // the kernel) must not keep the filesystem busy.
            // SAFETY: kill(-1) signals every process but ourselves.
            unsafe { libc::kill(-1, libc::SIGKILL) };
            reap_all(Duration::from_secs(2));
            clean = match mounts::unmount(&args.workspace) {
                Ok(c) => c,
                Err(e) => {
                    error!(event = "init.umount_failed", target = %args.workspace.display(), error = %e,
                        "cannot unmount or remount read-only the workspace; the journal will be replayed at the next boot");
                    false
                }
            };
        }
        if self.status_mounted {
            // The final word for the host: QEMU exits 0 on any power-off, this says how the
            // supervisor ended and whether the workspace is clean.
            let p = vm::PowerOff {
                schema_version: vm::CONFIG_VERSION,
                code,
                workspace_unmounted: clean,
                at: crate::contract::time::now_rfc3339(),
            };
            let body = serde_json::to_vec(&p).expect("serializes");
            if let Err(e) = crate::contract::status::write_file_atomic(
                &args.status_dir,
                vm::POWEROFF_FILE,
                &body,
            ) {
                error!(event = "init.report_failed", file = vm::POWEROFF_FILE, error = %e, "cannot write the power-off record");
            }
            let _ = mounts::unmount(&args.status_dir);
        }
        info!(
            event = "init.poweroff",
            code,
            workspace_unmounted = clean,
            "powering off"
        );
        // The console is the host's only view of these last lines: get them out first.
        crate::log::shutdown(super::EXIT_LOG_FLUSH);
        // SAFETY: sync, then the power-off command; on success this does not return.
        unsafe {
            libc::sync();
            libc::reboot(libc::RB_POWER_OFF);
        }
        let e = io::Error::last_os_error();
        error!(event = "init.poweroff_failed", error = %e, "power-off refused; exiting (the kernel will panic)");
        code
    }
}

/// In a VM the workspace disk is the only state that survives: what the boot hook set up
/// is flushed to it before the agent starts (otherwise a power cut in the next seconds, or
/// a look at the disk from the host, would miss it).
pub fn sync_workspace(workspace: &Path) {
    match std::fs::File::open(workspace) {
        // SAFETY: syncfs on a descriptor we hold.
        Ok(f) => {
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } != 0 {
                warn!(event = "init.sync_failed", workspace = %workspace.display(), error = %io::Error::last_os_error(), "cannot sync the workspace");
            }
        }
        Err(e) => {
            warn!(event = "init.sync_failed", workspace = %workspace.display(), error = %e, "cannot sync the workspace")
        }
    }
}

/// The per-VM settings from fw_cfg; none when the host passed none (a VM booted by hand).
fn read_config() -> Result<VmConfig, InitError> {
    let f = match std::fs::File::open(vm::FW_CFG_PATH) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn!(
                event = "init.no_config",
                path = vm::FW_CFG_PATH,
                "no VM configuration from the host; using the command line"
            );
            return Ok(VmConfig::default());
        }
        Err(e) => return Err(step("config", format!("open {}: {e}", vm::FW_CFG_PATH))),
    };
    let mut body = Vec::new();
    f.take(vm::CONFIG_MAX + 1)
        .read_to_end(&mut body)
        .map_err(|e| step("config", format!("read {}: {e}", vm::FW_CFG_PATH)))?;
    if body.len() as u64 > vm::CONFIG_MAX {
        return Err(step(
            "config",
            format!("{} is over {} bytes", vm::FW_CFG_PATH, vm::CONFIG_MAX),
        ));
    }
    let c: VmConfig = serde_json::from_slice(&body)
        .map_err(|e| step("config", format!("{}: {e}", vm::FW_CFG_NAME)))?;
    if c.schema_version != vm::CONFIG_VERSION {
        return Err(step(
            "config",
            format!(
                "{}: schema_version {} (this supervisor reads {})",
                vm::FW_CFG_NAME,
                c.schema_version,
                vm::CONFIG_VERSION
            ),
        ));
    }
    Ok(c)
}

fn set_hostname(h: &str) -> Result<(), InitError> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !ok {
        return Err(step("hostname", format!("invalid hostname {h:?}")));
    }
    // SAFETY: a buffer of h.len() bytes.
    if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
        return Err(step("hostname", io::Error::last_os_error()));
    }
    Ok(())
}

/// Reaps every child until there is none left (ECHILD) or `limit` passes, so nothing that
/// was just killed still holds the workspace open when it is unmounted.
fn reap_all(limit: Duration) {
    let t0 = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: waitpid on any child, not blocking.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if r < 0 || t0.elapsed() >= limit {
            return; // ECHILD: nobody left
        }
        if r == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Milliseconds since the guest kernel started (CLOCK_BOOTTIME): how long boot took.
fn uptime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn kernel_release() -> String {
    // SAFETY: uname fills the zeroed struct we own.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}
