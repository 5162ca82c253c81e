//! Shared helpers for the integration tests: they run the real `supervisor` binary.
#![allow(dead_code)] // each test crate uses a different subset

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

/// Every test here needs root (hook trust checks, PID namespaces, signalling).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests must run as root (CI does); run `sudo cargo test`"
    );
}

/// A scratch directory under /tmp, removed on drop. Root-owned, mode 0755, so hooks in it
/// pass the trust check.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from("/tmp").join(format!("osup-{name}-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Writes an executable root-owned script (mode 0755).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A child script whose own stderr goes to `child.err`: the child shares the
    /// supervisor's stderr, and shell job messages ("Terminated") are not log lines.
    pub fn child_script(&self, name: &str, body: &str) -> PathBuf {
        self.script(name, &format!("exec 2>>child.err\n{body}"))
    }

    pub fn status_dir(&self) -> PathBuf {
        self.join("status")
    }

    pub fn status(&self) -> Value {
        let body = fs::read(self.status_dir().join("status.json")).expect("status.json exists");
        serde_json::from_slice(&body).expect("status.json is JSON")
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.join(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A running supervisor whose stdout/stderr go to files in the scratch dir.
pub struct Sup {
    pub child: Child,
    pub log: PathBuf,
    pub out: PathBuf,
}

/// The base command: our binary, no policy, status in the scratch dir, JSON logs.
pub fn command(s: &Scratch, args: &[&str]) -> Command {
    let mut c = Command::new(SUPERVISOR);
    c.arg("--no-policy")
        .arg("--status-dir")
        .arg(s.status_dir())
        .args(args)
        .current_dir(&s.path);
    c
}

pub fn spawn(s: &Scratch, args: &[&str]) -> Sup {
    spawn_cmd(s, command(s, args))
}

/// Starts the supervisor on `child` with no hook and `extra` flags, Ready at once, and
/// waits until status.json says so.
pub fn spawn_ready(s: &Scratch, extra: &[&str], child: &Path) -> Sup {
    let mut args = vec!["--no-hook", "--ready-after", "0"];
    args.extend_from_slice(extra);
    args.extend(["--", child.to_str().unwrap()]);
    let sup = spawn(s, &args);
    wait_phase(s, "Ready", LONG);
    sup
}

pub fn spawn_cmd(s: &Scratch, mut c: Command) -> Sup {
    let log = s.join("supervisor.log");
    let out = s.join("stdout.txt");
    c.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&log).unwrap());
    Sup {
        child: c.spawn().expect("supervisor binary runs"),
        log,
        out,
    }
}

impl Sup {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the supervisor to exit (at most `limit`), then checks that every line it
    /// logged is a well-formed JSON event. Returns the status and the parsed events.
    pub fn wait(mut self, limit: Duration) -> (ExitStatus, Vec<Value>) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, parse_log(&self.log));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "supervisor did not exit within {limit:?}; log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn events(&self) -> Vec<Value> {
        parse_log(&self.log)
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses the supervisor's stderr: every line must be a JSON object with the fixed keys.
pub fn parse_log(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
            for k in ["ts", "level", "event", "msg"] {
                assert!(
                    v.get(k).is_some_and(Value::is_string),
                    "log line lacks {k}: {l}"
                );
            }
            v
        })
        .collect()
}

/// The events named `name`.
pub fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The sequence of phases the supervisor logged.
pub fn phases(events: &[Value]) -> Vec<String> {
    named(events, "phase")
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `cond` every 10 ms until it holds, panicking with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until status.json reports `phase`.
pub fn wait_phase(s: &Scratch, phase: &str, limit: Duration) {
    wait_for(&format!("phase {phase}"), limit, || {
        fs::read(s.status_dir().join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["phase"] == phase)
    });
}

/// True while /proc shows `pid` as a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

/// (pid, state) of every process whose parent is `ppid`, from /proc.
pub fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if rest[1].parse::<i32>() == Ok(ppid) {
            out.push((pid, rest[0].chars().next().unwrap()));
        }
    }
    out
}

/// Zombies whose parent is `ppid`.
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    children_of(ppid)
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

pub const LONG: Duration = Duration::from_secs(20);

pub const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");

/// The fault signals and a real-time one, sent by another process (`kill`), which the
/// supervisor must forward to the child like any other signal.
pub fn outside_signals() -> Vec<i32> {
    vec![
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGSYS,
        libc::SIGRTMIN() + 3,
    ]
}

/// Sends each of `signals` to `pid` and waits for the probe's `catch` file (in `s`) to
/// record it; the last one is sent with sigqueue (SI_QUEUE) rather than kill (SI_USER).
pub fn deliver_and_wait(s: &Scratch, pid: i32, signals: &[i32]) {
    let mut want = String::new();
    for (i, &sig) in signals.iter().enumerate() {
        // SAFETY: signalling a process of ours.
        let r = unsafe {
            if i + 1 == signals.len() {
                libc::sigqueue(
                    pid,
                    sig,
                    libc::sigval {
                        sival_ptr: std::ptr::null_mut(),
                    },
                )
            } else {
                libc::kill(pid, sig)
            }
        };
        assert_eq!(r, 0, "cannot send signal {sig}");
        want.push_str(&format!("{sig}\n"));
        wait_for(&format!("signal {sig} to reach the child"), LONG, || {
            s.read("caught") == want
        });
    }
}
