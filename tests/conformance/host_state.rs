//! Scenarios for backends that keep their state in the host state directory (podman,
//! docker, a VM): `<state-root>/NAME/status/` is written from inside the sandbox, and
//! sandboxctl reads it as root on the host. Each test performs the attack — what a root
//! process inside the sandbox can put at `status/status.json` — and asserts the safe
//! outcome: no hang, no link followed, no FIFO or device opened, nothing read past the cap,
//! "no status" for that sandbox only.

use super::{Ctx, Harness, Run, HANG};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

impl Ctx {
    /// `<state-root>/NAME/status/status.json` on the host.
    pub fn status_file(&self, name: &str) -> PathBuf {
        self.root.join(name).join("status").join("status.json")
    }

    /// Runs sandboxctl and fails the test if it has not finished within [`HANG`] (a hang
    /// detector, not a timing threshold: a healthy read verb answers in well under 1 s).
    pub fn ctl_no_hang(&self, args: &[&str]) -> Run {
        let mut child = self
            .command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sandboxctl");
        let t0 = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return Run::from(child.wait_with_output().unwrap());
            }
            if t0.elapsed() > HANG {
                let _ = child.kill();
                let r = Run::from(child.wait_with_output().unwrap());
                panic!(
                    "sandboxctl {args:?} hung (killed after {HANG:?})\nstderr: {}",
                    r.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A writer blocked in `open(O_WRONLY)` of a FIFO: it wakes only if someone opens the FIFO
/// for reading.
struct BlockedWriter {
    woken: Arc<AtomicBool>,
    path: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlockedWriter {
    fn new(path: &Path) -> BlockedWriter {
        let woken = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (path, woken) = (path.to_path_buf(), woken.clone());
            std::thread::spawn(move || {
                tx.send(nix::unistd::gettid().as_raw()).unwrap();
                let f = fs::OpenOptions::new().write(true).open(&path);
                woken.store(true, Ordering::SeqCst);
                drop(f);
            })
        };
        let tid = rx.recv().unwrap();
        // Until the thread sits in openat (syscall 257).
        while !fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .map(|s| s.starts_with("257 "))
            .unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        BlockedWriter {
            woken,
            path: path.to_path_buf(),
            thread: Some(thread),
        }
    }

    fn woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }
}

impl Drop for BlockedWriter {
    fn drop(&mut self) {
        // Release the writer by opening the read side ourselves.
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A forged status document claiming Ready, written outside the status directory.
fn forged_ready(ctx: &Ctx, name: &str) -> PathBuf {
    let mut doc: Value = serde_json::from_slice(&fs::read(ctx.status_file(name)).unwrap()).unwrap();
    doc["phase"] = "Ready".into();
    doc["message"] = "forged".into();
    let p = ctx.root.join("forged.json");
    fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
    p
}

/// Every read verb on a sandbox whose status.json is hostile: `status`, `list` and
/// `watch --timeout` return (no hang), the victim has no status and says why, the other
/// sandbox is reported as usual.
fn assert_no_status(ctx: &Ctx, victim: &str, other: &str, why: &str) {
    let r = ctx.ctl_no_hang(&["status", victim, "-o", "json"]).ok();
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["phase"], "Pending", "{why}: {s:#}");
    assert!(s["supervisor_status"].is_null(), "{why}: {s:#}");
    let problem = s["status_problem"].as_str().unwrap_or_default();
    assert!(problem.contains(why), "{why}: {problem:?}");
    assert!(r.stderr.contains("status.refused"), "{why}: {}", r.stderr);
    assert!(!r.stdout.contains("forged"), "{why}: {}", r.stdout);

    let r = ctx.ctl_no_hang(&["list", "-o", "json"]).ok();
    let list: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    let phase = |n: &str| {
        list.iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("{why}: {n} missing from {list:?}"))["phase"]
            .clone()
    };
    assert_eq!(phase(victim), "Pending", "{why}");
    assert_eq!(phase(other), "Ready", "{why}");

    let r = ctx
        .ctl_no_hang(&[
            "watch",
            "-o",
            "json",
            "--timeout",
            "1500ms",
            "--interval",
            "200ms",
        ])
        .ok();
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (n, p) in [(victim, "Pending"), (other, "Ready")] {
        assert!(
            lines.iter().any(|l| l["sandbox"] == n && l["phase"] == p),
            "{why}: watch printed {lines:?}"
        );
    }
}

/// The attacks on status/status.json, each with a second spelling.
pub fn hostile_status_files_are_no_status(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "hostile");
    let (a, b) = (ctx.name("a"), ctx.name("b"));
    ctx.create(&a, &[]).ok();
    ctx.create(&b, &[]).ok();
    let f = ctx.status_file(&a);
    let forged = forged_ready(&ctx, &a);
    let replace = |make: &dyn Fn(&Path)| {
        let _ = fs::remove_file(&f);
        let _ = fs::remove_dir(&f);
        make(&f);
    };

    // A FIFO: opening it for reading would block (or wake a writer waiting on it).
    replace(&|p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap());
    {
        let writer = BlockedWriter::new(&f);
        assert_no_status(&ctx, &a, &b, "a FIFO");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !writer.woken(),
            "sandboxctl opened the FIFO (its writer woke up)"
        );
    }
    // A symlink to a root-only file, and one to a forged Ready document: never followed.
    replace(&|p| std::os::unix::fs::symlink("/etc/shadow", p).unwrap());
    assert_no_status(&ctx, &a, &b, "a symlink");
    replace(&|p| std::os::unix::fs::symlink(&forged, p).unwrap());
    assert_no_status(&ctx, &a, &b, "a symlink");
    // Relative, through the state directory.
    replace(&|p| std::os::unix::fs::symlink("../../forged.json", p).unwrap());
    assert_no_status(&ctx, &a, &b, "a symlink");
    // 200 MB (sparse): refused by its size, never read.
    replace(&|p| fs::File::create(p).unwrap().set_len(200 << 20).unwrap());
    assert_no_status(&ctx, &a, &b, "over the 65536-byte limit");
    // A valid document padded past the cap.
    replace(&|p| {
        let mut body = fs::read(&forged).unwrap();
        body.extend(std::iter::repeat_n(b' ', 70 * 1024));
        fs::write(p, body).unwrap()
    });
    assert_no_status(&ctx, &a, &b, "over the 65536-byte limit");
    // Garbage, torn, empty.
    replace(&|p| fs::write(p, b"\x00\xffnot json at all").unwrap());
    assert_no_status(&ctx, &a, &b, "not a status document");
    replace(&|p| {
        let body = fs::read(&forged).unwrap();
        fs::write(p, &body[..body.len() / 2]).unwrap()
    });
    assert_no_status(&ctx, &a, &b, "not a status document");
    replace(&|p| fs::write(p, b"").unwrap());
    assert_no_status(&ctx, &a, &b, "empty");
    // Not a file at all: a directory, a device node, a socket.
    replace(&|p| fs::create_dir(p).unwrap());
    assert_no_status(&ctx, &a, &b, "a directory");
    replace(&|p| {
        nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(1, 5), // /dev/zero: endless if read
        )
        .unwrap()
    });
    assert_no_status(&ctx, &a, &b, "a character device");
    replace(&|p| drop(std::os::unix::net::UnixListener::bind(p).unwrap()));
    assert_no_status(&ctx, &a, &b, "a socket");

    // Once the planted file is gone, the supervisor's next report is read again.
    let _ = fs::remove_dir(&f);
    let _ = fs::remove_file(&f);
    ctx.ctl(&["stop", &a]).ok();
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Stopped");
    assert_eq!(s["supervisor_status"]["phase"], "Stopped", "{s:#}");
    assert!(s["status_problem"].is_null());
}

/// The host copy of status.json outlives its writer: after a power cut it still says
/// Ready, and the phase is Error all the same.
pub fn stale_status_file_does_not_hide_a_power_cut(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "stale");
    let a = ctx.name("a");
    ctx.create(&a, &[]).ok();
    h.power_cut(&ctx, &a);
    let on_host: Value = serde_json::from_slice(&fs::read(ctx.status_file(&a)).unwrap()).unwrap();
    assert_eq!(on_host["phase"], "Ready");
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Error", "{s:#}");
    assert_eq!(s["exit_code"], 137);
    assert_eq!(s["supervisor_status"]["phase"], "Ready");
}

/// A verb that changes a sandbox waits for the one holding its lock and is told who holds
/// it; with a short `--lock-timeout` it gives up with exit 72 `busy` naming the holder. The
/// read verbs never wait. (The agent ignores SIGTERM, so the supervisor's stop takes its
/// whole --grace, 10 s in the test image.)
pub fn a_busy_sandbox_names_its_lock_holder(h: &'static dyn Harness) {
    let ctx = Ctx::new(h, "busy");
    let a = ctx.name("a");
    ctx.create(
        &a,
        &["--", "sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    )
    .ok();
    let stop = ctx
        .command()
        .args(["stop", &a])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let holder = stop.id();
    let lock = ctx.root.join(&a).join("lock");
    let t0 = Instant::now();
    loop {
        let h: Value = fs::read(&lock)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if h["pid"] == holder && h["verb"] == "stop" {
            break;
        }
        assert!(t0.elapsed() < HANG, "stop never took the lock: {h}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = ctx
        .ctl(&["start", &a, "--lock-timeout", "300ms"])
        .fails_with(openshell_supervisor::contract::CtlExit::Busy);
    assert!(
        r.stderr
            .contains(&format!("busy: `stop` (pid {holder}) since "))
            && r.stderr.contains("holds its lock"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("lock.wait"), "{}", r.stderr);
    // Readers do not wait: the stop is still in progress.
    let s = ctx.status(&a);
    assert_eq!(s["intent"], "stopped");
    assert!(h.workload_running(&ctx, &a), "{s:#}");
    // A start with the default timeout waits for the stop, then starts.
    let start = ctx
        .command()
        .args(["start", &a, "--timeout", super::WAIT])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = Run::from(stop.wait_with_output().unwrap()).ok();
    assert!(
        stopped.stdout.contains(&format!("{a}: Stopped")),
        "{}",
        stopped.stdout
    );
    let started = Run::from(start.wait_with_output().unwrap()).ok();
    assert!(started.stderr.contains("lock.wait"), "{}", started.stderr);
    assert!(
        started.stdout.contains(&format!("{a}: Ready")),
        "{}",
        started.stdout
    );
    assert_eq!(ctx.status(&a)["intent"], "running");
}

/// Expands to one `#[test]` per host-state scenario for a backend.
#[macro_export]
macro_rules! host_state_suite {
    ($prefix:ident, $harness:expr) => {
        mod $prefix {
            use super::conformance::{self, host_state};
            #[test]
            fn hostile_status_files_are_no_status() {
                host_state::hostile_status_files_are_no_status($harness);
            }
            #[test]
            fn a_busy_sandbox_names_its_lock_holder() {
                host_state::a_busy_sandbox_names_its_lock_holder($harness);
            }
            #[test]
            fn stale_status_file_does_not_hide_a_power_cut() {
                host_state::stale_status_file_does_not_hide_a_power_cut($harness);
            }
        }
    };
}
