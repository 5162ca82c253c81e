//! The keeper: a small process that owns one run of a sandbox's QEMU.
//!
//! A VM must outlive the `sandboxctl start` that launched it and the terminal it ran in, and
//! its exit status must be known after sandboxctl has gone. So `start` runs
//! `sandboxctl vm-keeper <state-dir>` in a session of its own with its own stdio; the
//! keeper takes `vm/keeper.lock` (an flock held for its whole life: "the VM runs" is "the
//! lock is held", which the kernel releases whatever kills the keeper), starts QEMU as its
//! child, records the run in `vm/run.json`, tells `start` it is up, waits for QEMU, and
//! records the exit status in `vm/exit.json`. QEMU gets `PR_SET_PDEATHSIG(SIGKILL)`: if the
//! keeper is killed, the VM dies with it (a power cut, read as such) instead of running on
//! unobserved.

use super::definition::{files, VmDefinition};
use crate::contract::status::write_file_atomic;
use crate::contract::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One start of QEMU, written by the keeper once QEMU runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub keeper_pid: u32,
    pub qemu_pid: u32,
    /// Taken just before QEMU was spawned (host clock).
    pub started_at: String,
}

/// How that run ended, written by the keeper when QEMU exited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub qemu_pid: u32,
    pub started_at: String,
    pub finished_at: String,
    /// QEMU's exit code (0: the guest powered off; 1: a guest panic or a QEMU error).
    pub code: Option<i32>,
    /// The signal that killed QEMU.
    pub signal: Option<i32>,
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Option<T> {
    let body = crate::safe_fs::read_regular_at(dir, name, 1 << 20).ok()?;
    serde_json::from_slice(&body).ok()
}

pub fn read_run(vm: &Path) -> Option<RunRecord> {
    read_json(vm, files::RUN)
}

pub fn read_exit(vm: &Path) -> Option<ExitRecord> {
    read_json(vm, files::EXIT)
}

fn write_json<T: Serialize>(vm: &Path, name: &str, v: &T) -> io::Result<()> {
    let mut body = serde_json::to_vec_pretty(v).map_err(io::Error::other)?;
    body.push(b'\n');
    write_file_atomic(vm, name, &body)
}

fn open_lock(vm: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(vm.join(files::KEEPER_LOCK))
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor we hold.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a keeper (and so its QEMU) runs for this VM. A shared lock is taken and dropped
/// at once: it fails only while the keeper holds its exclusive one.
pub fn running(vm: &Path) -> io::Result<bool> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(vm.join(files::KEEPER_LOCK))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match flock(&f, libc::LOCK_SH) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Waits until no keeper runs, up to `limit`. True when it ended.
pub fn wait_ended(vm: &Path, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if !running(vm).unwrap_or(true) {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Launches the keeper of the VM in `state_dir` and returns once QEMU runs (the keeper's
/// first line on its stdout), or with the keeper's error.
pub fn launch(state_dir: &Path) -> Result<RunRecord, String> {
    let vm = state_dir.join(files::DIR);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find sandboxctl itself: {e}"))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(vm.join(files::KEEPER_LOG))
        .map_err(|e| format!("cannot open {}: {e}", vm.join(files::KEEPER_LOG).display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("vm-keeper")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe. A session of its own: no controlling terminal,
    // so closing the terminal (SIGHUP) or ^C in it never reaches the VM.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the VM keeper: {e}"))?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    let _ = BufReader::new(out).read_line(&mut line);
    // The keeper lives on; we do not wait for it (when we exit it is re-parented).
    drop(child);
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("ready ") {
        return serde_json::from_str(rest).map_err(|e| format!("keeper said {rest:?}: {e}"));
    }
    let why = line.strip_prefix("error: ").unwrap_or(line);
    if why.is_empty() {
        Err(format!(
            "the VM keeper ended without starting QEMU; see {}",
            vm.join(files::KEEPER_LOG).display()
        ))
    } else {
        Err(why.to_owned())
    }
}

/// `sandboxctl vm-keeper STATE_DIR`: the keeper's main. Its stdout is the pipe `launch`
/// reads; everything else goes to stderr (keeper.log).
pub fn main(state_dir: &Path) -> i32 {
    let say = |line: &str| {
        let mut out = io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    match keep(state_dir, &say) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{} vm-keeper: {e}", now_rfc3339());
            say(&format!("error: {e}"));
            1
        }
    }
}

fn keep(state_dir: &Path, say: &dyn Fn(&str)) -> Result<(), String> {
    let vm = state_dir.join(files::DIR);
    let lock = open_lock(&vm).map_err(|e| format!("cannot open the keeper lock: {e}"))?;
    // A reader's shared lock lasts microseconds; another keeper's lasts the VM's life.
    let t0 = Instant::now();
    loop {
        match flock(&lock, libc::LOCK_EX) {
            Ok(()) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EWOULDBLOCK)
                    && t0.elapsed() < Duration::from_secs(1) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                return Err("the VM is already running (its keeper holds the lock)".into())
            }
            Err(e) => {
                return Err(format!(
                    "cannot lock {}: {e}",
                    vm.join(files::KEEPER_LOCK).display()
                ))
            }
        }
    }
    let def: VmDefinition = read_json(&vm, files::DEFINITION)
        .ok_or_else(|| format!("cannot read {}", vm.join(files::DEFINITION).display()))?;
    // The previous run's console stays readable beside this one's.
    let console = vm.join(files::CONSOLE);
    if console.exists() {
        let _ = fs::rename(&console, vm.join(files::CONSOLE_PREVIOUS));
    }
    let qemu_log = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(vm.join(files::QEMU_LOG))
        .map_err(|e| format!("cannot open {}: {e}", vm.join(files::QEMU_LOG).display()))?;
    let qemu_err = qemu_log.try_clone().map_err(|e| format!("qemu.log: {e}"))?;
    let _ = fs::remove_file(vm.join(files::QMP));
    let argv: Vec<OsString> = def.argv(&vm, &state_dir.join(crate::shim::state::STATUS_DIR));
    let mut cmd = Command::new(&def.qemu);
    cmd.args(&argv)
        .stdin(Stdio::null())
        .stdout(qemu_log)
        .stderr(qemu_err)
        .current_dir(&vm);
    // SAFETY: prctl and getppid are async-signal-safe.
    let keeper = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The keeper died before the prctl: do not run unobserved.
            if libc::getppid() != keeper {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let started_at = now_rfc3339();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", def.qemu))?;
    let run = RunRecord {
        keeper_pid: std::process::id(),
        qemu_pid: child.id(),
        started_at: started_at.clone(),
    };
    if let Err(e) = write_json(&vm, files::RUN, &run) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("cannot record the run in {}: {e}", files::RUN));
    }
    eprintln!(
        "{} vm-keeper: qemu pid {} started ({})",
        now_rfc3339(),
        run.qemu_pid,
        def.accel.as_str()
    );
    say(&format!(
        "ready {}",
        serde_json::to_string(&run).expect("serializes")
    ));
    // Nothing more for `launch`: end its read, and never write into a closed pipe later.
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2 onto our own stdout.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    let status = child.wait().map_err(|e| format!("wait for qemu: {e}"))?;
    let end = ExitRecord {
        qemu_pid: run.qemu_pid,
        started_at,
        finished_at: now_rfc3339(),
        code: status.code(),
        signal: status.signal(),
    };
    eprintln!(
        "{} vm-keeper: qemu pid {} ended: {status}",
        now_rfc3339(),
        run.qemu_pid
    );
    write_json(&vm, files::EXIT, &end).map_err(|e| format!("cannot record the exit: {e}"))?;
    drop(lock);
    Ok(())
}
