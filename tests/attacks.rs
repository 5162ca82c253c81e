//! Attacks on the supervisor (issue 8), each performed for real against the real binary,
//! asserting the safe outcome. Grouped by what is attacked: `duration_` (command-line
//! bounds), `log_` (a log reader that stops reading), `status_` (the status directory),
//! `ready_` (the readiness probe).

mod common;

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

// ----- durations (issue 8 item 6) ----------------------------------------------------

/// A duration so large that `Instant + d` overflows used to panic PID 1 after the child had
/// started (exit 134, status left at Starting, the child orphaned). Every duration flag is
/// bounded when parsed: a usage error (64) naming the flag, and nothing runs.
fn assert_duration_refused(flag: &str, value: &str) {
    // Both spellings: `--flag value` and `--flag=value`.
    let joined = format!("{flag}={value}");
    for spelling in [vec![flag, value], vec![joined.as_str()]] {
        let s = Scratch::new("duration");
        let marker = s.join("child-ran");
        let mut args = vec!["--no-hook", "--restart", "never"];
        args.extend(&spelling);
        args.extend(["--", "touch", marker.to_str().unwrap()]);
        let out = command(&s, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{spelling:?}: {err}");
        assert!(
            err.contains(flag) && err.contains("maximum"),
            "{spelling:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!marker.exists(), "{spelling:?}: the child must not start");
        assert!(
            !s.status_dir().join("status.json").exists(),
            "{spelling:?}: nothing may run before the command line is valid"
        );
    }
}

#[test]
fn duration_ready_after_is_bounded() {
    assert_duration_refused("--ready-after", "10000000000000000000");
    assert_duration_refused("--ready-after", "721h");
}

#[test]
fn duration_grace_is_bounded() {
    assert_duration_refused("--grace", "10000000000000000000");
    assert_duration_refused("--grace", "9999999999999999999999h");
}

#[test]
fn duration_hook_timeout_is_bounded() {
    assert_duration_refused("--hook-timeout", "10000000000000000000");
    assert_duration_refused("--hook-timeout", "43201m");
}

#[test]
fn duration_backoff_flags_are_bounded() {
    for flag in [
        "--backoff-initial",
        "--backoff-max",
        "--backoff-reset-after",
        "--restart-window",
    ] {
        assert_duration_refused(flag, "10000000000000000000");
        assert_duration_refused(flag, &"9".repeat(400));
    }
}

#[test]
fn duration_at_the_bound_is_accepted_and_never_panics() {
    // 720h is accepted; with it as --ready-after the child runs and a stop still works.
    require_root();
    let s = Scratch::new("duration-max");
    let sup = spawn(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "720h",
            "--grace",
            "720h",
            "--backoff-max",
            "720h",
            "--",
            "sleep",
            "1000",
        ],
    );
    wait_phase(&s, "Starting", LONG);
    sup.signal(Signal::SIGTERM);
    let (st, _) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.status()["phase"], "Stopped");
}

// ----- a log reader that stops reading (issue 8 item 5) --------------------------------

/// A boot hook that prints `n` lines of ~120 bytes (far more than a pipe, a socket buffer
/// and the supervisor's 256 KiB queue together hold), then runs `then`.
fn chatty_hook(s: &Scratch, n: u32, then: &str) -> String {
    s.script(
        "chatty.sh",
        &format!(
            "i=0; while [ $i -lt {n} ]; do \
             echo \"hook line $i: the quick brown fox jumps over the lazy dog, again and again and again\"; \
             i=$((i+1)); done\n{then}"
        ),
    )
    .to_str()
    .unwrap()
    .to_owned()
}

/// Where the supervisor's stderr goes, and the test's end of it, which nobody reads until
/// the test says so.
enum Reader {
    Pipe(fs::File),
    Socket(std::os::unix::net::UnixStream),
}

impl Reader {
    /// A pipe whose read end the test holds and does not read.
    fn pipe() -> (Reader, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (Reader::Pipe(fs::File::from(r)), w)
    }

    /// A socket pair: the supervisor gets one end as stderr (a socket cannot be reopened
    /// through /proc, so this is the MSG_DONTWAIT path).
    fn socket() -> (Reader, OwnedFd) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        (Reader::Socket(a), OwnedFd::from(b))
    }

    /// A named FIFO the test opened for reading (the supervisor opens it for writing).
    fn fifo(s: &Scratch) -> (Reader, OwnedFd) {
        let path = s.join("log.fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let r = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let w = fs::OpenOptions::new().write(true).open(&path).unwrap();
        (Reader::Pipe(r), OwnedFd::from(w))
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Reader::Pipe(f) => f.as_fd(),
            Reader::Socket(s) => s.as_fd(),
        }
    }

    /// Reads whatever is there now, without blocking.
    fn read_available(&mut self, out: &mut Vec<u8>) -> bool {
        nix::fcntl::fcntl(
            self.fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut buf = [0u8; 65536];
        loop {
            let r = match self {
                Reader::Pipe(f) => f.read(&mut buf),
                Reader::Socket(s) => s.read(&mut buf),
            };
            match r {
                Ok(0) => return false,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) => panic!("reading the log: {e}"),
            }
        }
    }

    /// Reads until `cond` holds for what was read (or `limit`), then returns it.
    fn read_until(&mut self, limit: Duration, cond: impl Fn(&str) -> bool) -> String {
        let mut out = Vec::new();
        let deadline = Instant::now() + limit;
        loop {
            let open = self.read_available(&mut out);
            let text = String::from_utf8_lossy(&out).into_owned();
            if cond(&text) || !open || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Every line the supervisor wrote is a whole JSON event: none was torn by a partial
/// non-blocking write.
fn log_events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn log line ({e}): {l:?}")))
        .collect()
}

/// A supervisor started by a test; killed, with its process group, if the test fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Starts the supervisor with `stderr` as its stderr and closes the test's copy of it.
fn spawn_with_stderr(s: &Scratch, args: &[&str], stderr: OwnedFd) -> Running {
    Running(
        command(s, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap(),
    )
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the supervisor did not exit within {limit:?}: blocked on its log?");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn log_stuck_pipe_does_not_stop_the_hook_timeout() {
    require_root();
    let s = Scratch::new("log-timeout");
    let hook = chatty_hook(&s, 8000, "sleep 1000");
    let (mut reader, w) = Reader::pipe();
    let mut sup = spawn_with_stderr(
        &s,
        &["--hook", &hook, "--hook-timeout", "2s", "--", "true"],
        w,
    );
    // Nobody reads: the old supervisor hung in pipe_write and never timed the hook out.
    let st = wait_exit(&mut sup, LONG);
    assert_eq!(st.code(), Some(81), "hook timeout exit code");
    let status = s.status();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "hook_timeout");
    let events = log_events(&reader.read_until(LONG, |_| false));
    assert!(
        named(&events, "hook.output").len() > 100,
        "the first lines got out"
    );
}

#[test]
fn log_stuck_socket_does_not_stop_sigterm() {
    require_root();
    let s = Scratch::new("log-sigterm");
    let hook = chatty_hook(&s, 12000, "echo done > hook-printed; sleep 1000");
    let (mut reader, w) = Reader::socket();
    let mut sup = spawn_with_stderr(&s, &["--hook", &hook, "--", "true"], w);
    wait_for("the hook to print everything", LONG, || {
        s.read("hook-printed") == "done\n"
    });
    // Give the supervisor time to take the hook's output and run into the full socket.
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(Pid::from_raw(sup.id() as i32), Signal::SIGTERM).unwrap();
    let st = wait_exit(&mut sup, LONG);
    assert_eq!(st.code(), Some(0), "a stop is still honoured");
    let status = s.status();
    assert_eq!(status["phase"], "Stopped");
    assert_eq!(status["hook"]["result"], "stopped");
    log_events(&reader.read_until(LONG, |_| false));
}

/// The reader comes back: it gets the queued lines, then `log.dropped` with how many it
/// missed, and the supervisor kept supervising meanwhile (it reached Ready).
fn assert_reader_back_sees_drops(s: &Scratch, mut reader: Reader, w: OwnedFd) {
    let hook = chatty_hook(s, 8000, "");
    let mut sup = spawn_with_stderr(
        s,
        &["--hook", &hook, "--ready-after", "0", "--", "sleep", "1000"],
        w,
    );
    wait_phase(s, "Ready", LONG);
    let text = reader.read_until(LONG, |t| t.contains("\"log.dropped\""));
    let events = log_events(&text);
    let dropped = named(&events, "log.dropped");
    assert_eq!(dropped.len(), 1, "one log.dropped once the reader is back");
    let count = dropped[0]["count"].as_u64().unwrap();
    assert!(count > 0, "{:?}", dropped[0]);
    assert_eq!(dropped[0]["level"], "warn");
    // Lines written after the drain get through: the stop is logged to the end.
    nix::sys::signal::kill(Pid::from_raw(sup.id() as i32), Signal::SIGTERM).unwrap();
    let after = reader.read_until(LONG, |t| t.contains("\"supervisor.exit\""));
    assert_eq!(wait_exit(&mut sup, LONG).code(), Some(0));
    let events = log_events(&after);
    assert_eq!(named(&events, "supervisor.exit").len(), 1, "{after}");
}

#[test]
fn log_reader_back_on_a_pipe_sees_log_dropped() {
    require_root();
    let s = Scratch::new("log-back-pipe");
    let (reader, w) = Reader::pipe();
    assert_reader_back_sees_drops(&s, reader, w);
}

#[test]
fn log_reader_back_on_a_fifo_sees_log_dropped() {
    require_root();
    let s = Scratch::new("log-back-fifo");
    let (reader, w) = Reader::fifo(&s);
    assert_reader_back_sees_drops(&s, reader, w);
}

#[test]
fn log_reader_back_on_a_socket_sees_log_dropped() {
    require_root();
    let s = Scratch::new("log-back-socket");
    let (reader, w) = Reader::socket();
    assert_reader_back_sees_drops(&s, reader, w);
}

/// Without /proc the private non-blocking reopen is impossible: a helper thread does the
/// blocking writes (`log.fallback`), and the event loop still never waits for the reader.
#[test]
fn log_without_proc_falls_back_to_a_writer_thread() {
    require_root();
    let s = Scratch::new("log-noproc");
    let hook = chatty_hook(&s, 8000, "sleep 1000");
    let (mut reader, w) = Reader::pipe();
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "umount -l /proc && exec {SUPERVISOR} --no-policy --status-dir {} --hook {hook} --hook-timeout 2s -- true",
            s.status_dir().display()
        ))
        .current_dir(&s.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(w));
    let mut sup = Running(c.spawn().unwrap());
    drop(c); // our copy of the pipe's write end: the reader sees EOF once the supervisor exits
    let st = wait_exit(&mut sup, LONG);
    assert_eq!(st.code(), Some(81), "the hook timeout fired");
    assert_eq!(s.status()["reason"], "hook_timeout");
    let events = log_events(&reader.read_until(LONG, |_| false));
    let fallback = named(&events, "log.fallback");
    assert_eq!(fallback.len(), 1, "the fallback is announced");
    assert!(
        fallback[0]["error"]
            .as_str()
            .unwrap()
            .contains("/proc/self/fd/2"),
        "{:?}",
        fallback[0]
    );
}

// ----- the status directory (issue 8 item 3, 13; issue 12) -----------------------------

const NOBODY: u32 = 65534;

/// Runs `script` with sh as `nobody` (the sandboxed workload), in `dir`.
fn as_nobody(dir: &std::path::Path, script: &str) {
    let st = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .status()
        .expect("setpriv (util-linux) runs");
    assert!(st.success(), "as nobody: {script}");
}

/// A status directory owned by the workload (`nobody`, 0755), as when it is bind-mounted
/// from a volume the sandbox writes, and a root-owned file outside it.
fn workload_status_dir(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = s.status_dir();
    fs::create_dir_all(&dir).unwrap();
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(NOBODY)), None).unwrap();
    let outside = s.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    fs::write(&victim, "precious root data\n").unwrap();
    (dir, victim)
}

fn runs_as_pid1(s: &Scratch, args: &[&str]) -> std::process::Output {
    std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--",
            SUPERVISOR,
            "--no-policy",
            "--status-dir",
        ])
        .arg(s.status_dir())
        .args(args)
        .current_dir(&s.path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn status_planted_symlinks_never_redirect_a_root_write() {
    require_root();
    let s = Scratch::new("status-symlinks");
    let (dir, victim) = workload_status_dir(&s);
    let created = s.join("outside/created");
    // The workload plants symlinks at every temp name the supervisor could plausibly use
    // (the old one was `.status.json.<pid>.tmp`, and as PID 1 the pid is 1), to the root
    // file and to a path that does not exist yet, and one at status.json itself.
    as_nobody(
        &dir,
        &format!(
            "i=1; while [ $i -le 4096 ]; do \
               if [ $((i % 2)) = 0 ]; then ln -s {v} .status.json.$i.tmp; else ln -s {c}-$i .status.json.$i.tmp; fi; \
               i=$((i+1)); done; ln -s {v} status.json",
            v = victim.display(),
            c = created.display()
        ),
    );
    let out = runs_as_pid1(&s, &["--no-hook", "--restart", "never", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious root data\n");
    let made: Vec<_> = fs::read_dir(s.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        made,
        ["victim"],
        "nothing was created through a dangling link"
    );
    // status.json is our own regular file now; the planted link was swapped out, unopened.
    let meta = fs::symlink_metadata(dir.join("status.json")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(s.status()["phase"], "Completed");
    // The planted temp names are untouched (we never used them) and no temp file of ours
    // is left behind.
    let links = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_symlink())
        .count();
    assert_eq!(links, 4096);
    let regular: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        regular,
        ["status.json"],
        "no temp file of ours is left behind"
    );
}

#[test]
fn status_hard_link_or_directory_at_status_json_is_replaced_not_written() {
    require_root();
    let s = Scratch::new("status-hardlink");
    let (dir, victim) = workload_status_dir(&s);
    // A hard link to the root file (a workload cannot make one with protected_hardlinks,
    // but a second name of a file must never be written through either way).
    fs::hard_link(&victim, dir.join("status.json")).unwrap();
    let out = runs_as_pid1(&s, &["--no-hook", "--restart", "never", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious root data\n");
    assert_eq!(s.status()["phase"], "Completed");
    // A directory planted at status.json is swapped out as well.
    fs::remove_file(dir.join("status.json")).unwrap();
    as_nobody(&dir, "mkdir status.json");
    let out = runs_as_pid1(&s, &["--no-hook", "--restart", "never", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(s.status()["phase"], "Completed");
}

#[test]
fn status_fifo_at_status_json_blocks_neither_the_supervisor_nor_the_probe() {
    require_root();
    let s = Scratch::new("status-fifo");
    let (dir, _) = workload_status_dir(&s);
    as_nobody(&dir, "mkfifo status.json");
    // The probe: no status (3), at once, never a blocking open.
    let probe = std::process::Command::new(SUPERVISOR)
        .args(["status", "--ready", "--status-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&probe.stderr).contains("FIFO"));
    // The supervisor replaces it without opening it.
    let mut sup = Running(
        command(&s, &["--no-hook", "--restart", "never", "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(wait_exit(&mut sup, LONG).code(), Some(0));
    assert_eq!(s.status()["phase"], "Completed");
}

#[test]
fn status_probe_treats_links_torn_empty_and_garbage_files_as_no_status() {
    require_root();
    let s = Scratch::new("status-torn");
    let (dir, _) = workload_status_dir(&s);
    // A genuine document to copy from.
    let out = runs_as_pid1(&s, &["--no-hook", "--restart", "never", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let good = fs::read(dir.join("status.json")).unwrap();
    let elsewhere = s.join("outside/status.json");
    fs::write(&elsewhere, &good).unwrap();
    // (what, body); no body: a symlink to the genuine document outside the directory.
    let cases: [(&str, Option<Vec<u8>>); 5] = [
        ("empty", Some(Vec::new())),
        ("torn", Some(good[..good.len() / 2].to_vec())),
        ("garbage", Some(b"\0\x01\x02 not json".to_vec())),
        ("huge", Some(vec![b' '; 1 << 20])),
        ("symlink", None),
    ];
    for (what, body) in cases {
        let _ = fs::remove_file(dir.join("status.json"));
        match body {
            Some(b) => fs::write(dir.join("status.json"), b).unwrap(),
            None => std::os::unix::fs::symlink(&elsewhere, dir.join("status.json")).unwrap(),
        }
        for args in [
            &["status"][..],
            &["status", "--ready"],
            &["status", "--json"],
        ] {
            let out = std::process::Command::new(SUPERVISOR)
                .args(args)
                .arg("--status-dir")
                .arg(&dir)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{what} {args:?}: {err}");
            assert!(
                err.contains("no status") && !err.contains("panicked"),
                "{what}: {err}"
            );
        }
    }
}

#[test]
fn status_dangling_status_dir_symlink_names_the_link_and_its_target() {
    require_root();
    let s = Scratch::new("status-dangling");
    let link = s.join("status-link");
    let target = s.join("gone/status");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = std::process::Command::new(SUPERVISOR)
        .args([
            "--no-policy",
            "--no-hook",
            "--restart",
            "never",
            "--status-dir",
        ])
        .arg(&link)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(71), "{err}");
    assert!(!err.contains("File exists"), "{err}");
    assert!(
        err.contains(link.to_str().unwrap()),
        "names the link: {err}"
    );
    assert!(
        err.contains(target.to_str().unwrap()),
        "names the target: {err}"
    );
    assert!(!target.exists(), "nothing was created at the target");
    // A relative target is shown resolved against the link's directory.
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("gone/status", &link).unwrap();
    let out = std::process::Command::new(SUPERVISOR)
        .args([
            "--no-policy",
            "--no-hook",
            "--restart",
            "never",
            "--status-dir",
        ])
        .arg(&link)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(71));
    assert!(err.contains(target.to_str().unwrap()), "{err}");
}

#[test]
fn status_dir_behind_a_workload_symlink_is_refused() {
    require_root();
    let s = Scratch::new("status-walk");
    // The workload owns `ws` and points `ws/run` at a root directory of its choice; a root
    // supervisor told to use ws/run/status must not create or write anything there.
    let ws = s.join("ws");
    fs::create_dir_all(&ws).unwrap();
    nix::unistd::chown(&ws, Some(nix::unistd::Uid::from_raw(NOBODY)), None).unwrap();
    let etc = s.join("rootdir");
    fs::create_dir_all(&etc).unwrap();
    as_nobody(&ws, &format!("ln -s {} run", etc.display()));
    let out = std::process::Command::new(SUPERVISOR)
        .args([
            "--no-policy",
            "--no-hook",
            "--restart",
            "never",
            "--status-dir",
        ])
        .arg(ws.join("run/status"))
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(71), "{err}");
    assert!(
        err.contains(ws.join("run").to_str().unwrap()) && err.contains("symlink"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&etc).unwrap().count(),
        0,
        "nothing created behind the link"
    );
}

// ----- readiness must be proven by the running supervisor (issue 8 item 8) -------------

fn probe_ready(dir: &std::path::Path) -> Option<i32> {
    std::process::Command::new(SUPERVISOR)
        .args(["status", "--ready", "--status-dir"])
        .arg(dir)
        .output()
        .unwrap()
        .status
        .code()
}

/// A small tmpfs mounted on the status directory, unmounted on drop.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: std::path::PathBuf) -> SmallFs {
        fs::create_dir_all(&dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "openshell-test"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        SmallFs(dir)
    }

    /// Fills every free block (status.json stays as it is).
    fn fill(&self) {
        let mut f = fs::File::create(self.0.join("fill")).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        fs::remove_file(self.0.join("fill")).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A child that runs until `crash` exists, then exits 1 (every generation after that too).
fn crash_on_flag(s: &Scratch) -> String {
    s.child_script(
        "child.sh",
        "[ -e crash ] && exit 1\nwhile [ ! -e crash ]; do sleep 0.02; done\nexit 1",
    )
    .to_str()
    .unwrap()
    .to_owned()
}

#[test]
fn ready_never_reported_from_a_stale_file_when_the_disk_is_full() {
    require_root();
    let s = Scratch::new("ready-full");
    let disk = SmallFs::mount(s.status_dir());
    let child = crash_on_flag(&s);
    let mut sup = spawn(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "300ms",
            "--backoff-initial",
            "100ms",
            "--max-restarts",
            "3",
            "--",
            &child,
        ],
    );
    wait_phase(&s, "Ready", LONG);
    assert_eq!(probe_ready(&s.status_dir()), Some(0), "a real Ready passes");
    // The status filesystem fills up, then the child starts crash-looping.
    disk.fill();
    fs::write(s.join("crash"), "").unwrap();
    wait_for("the first failed status write", LONG, || {
        !named(&sup.events(), "status.write_failed").is_empty()
    });
    // From the first failed write on, until the crash loop ends the supervisor, the probe
    // must never say ready (it said so for the whole loop when only the pid was checked).
    let mut probes = 0;
    while sup.child.try_wait().unwrap().is_none() {
        assert_ne!(
            probe_ready(&s.status_dir()),
            Some(0),
            "ready from a stale file"
        );
        probes += 1;
    }
    assert!(probes > 0);
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(84), "the crash loop ended it");
    assert_ne!(probe_ready(&s.status_dir()), Some(0));
    let failed = named(&events, "status.write_failed");
    assert_eq!(failed[0]["removed"], true, "{:?}", failed[0]);
    assert!(
        !s.status_dir().join("status.json").exists(),
        "no stale document left"
    );
}

#[test]
fn ready_status_comes_back_once_the_disk_has_room_again() {
    require_root();
    let s = Scratch::new("ready-recover");
    let disk = SmallFs::mount(s.status_dir());
    // Crashes once when `crash` appears (and removes it), so the next generation runs.
    let child = s.child_script(
        "child.sh",
        "while :; do if [ -e crash ]; then rm crash; exit 1; fi; sleep 0.02; done",
    );
    let sup = spawn_ready(&s, &["--backoff-initial", "50ms"], &child);
    disk.fill();
    fs::write(s.join("crash"), "").unwrap();
    wait_for("the failed write to remove the stale status", LONG, || {
        !s.status_dir().join("status.json").exists()
    });
    assert_ne!(probe_ready(&s.status_dir()), Some(0));
    disk.free();
    // The retry writes the current document without waiting for another phase change.
    wait_phase(&s, "Ready", LONG);
    assert_eq!(probe_ready(&s.status_dir()), Some(0));
    assert_eq!(s.status()["child"]["generation"], 2);
    assert_eq!(named(&sup.events(), "status.recovered").len(), 1);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(LONG).0.code(), Some(0));
}

#[test]
fn ready_of_a_killed_pid1_supervisor_is_stale_though_pid_1_lives() {
    require_root();
    let s = Scratch::new("ready-pid1");
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--",
        SUPERVISOR,
        "--no-policy",
        "--status-dir",
    ])
    .arg(s.status_dir())
    .args(["--no-hook", "--ready-after", "0", "--", "sleep", "1000"])
    .current_dir(&s.path);
    let mut sup = spawn_cmd(&s, c);
    wait_phase(&s, "Ready", LONG);
    assert_eq!(s.status()["supervisor"]["pid"], 1);
    assert!(s.status()["supervisor"]["start_ticks"].as_u64().is_some());
    let host_pid = children_of(sup.pid())[0].0;
    // Inside its namespace the probe proves it is the running supervisor.
    let inside = std::process::Command::new("nsenter")
        .args([
            "-t",
            &host_pid.to_string(),
            "-p",
            "-m",
            "--",
            SUPERVISOR,
            "status",
            "--ready",
            "--status-dir",
        ])
        .arg(s.status_dir())
        .output()
        .unwrap();
    assert_eq!(
        inside.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    // A power cut: the supervisor dies with its namespace and writes nothing.
    nix::sys::signal::kill(Pid::from_raw(host_pid), Signal::SIGKILL).unwrap();
    sup.child.wait().unwrap();
    assert_eq!(s.status()["phase"], "Ready");
    // The next container's PID 1 is alive, as PID 1 always is: the old Ready must not pass.
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--", "sh", "-c"])
        .arg(format!(
            "{SUPERVISOR} status --ready --status-dir {}",
            s.status_dir().display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stale"));
    // And when the probe itself is PID 1 of the new namespace.
    let out = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--",
            SUPERVISOR,
            "status",
            "--ready",
            "--status-dir",
        ])
        .arg(s.status_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

// ----- start-up without std's runtime (issue 12): a genuine fault is still fatal -------

/// Makes `pid` execute address 0, a real fault raised by the kernel (SEGV_MAPERR), by
/// rewriting its instruction pointer under ptrace.
fn inject_fault(pid: i32) {
    // SAFETY: ptrace on a process we started; regs is plain data filled by the kernel.
    unsafe {
        assert_eq!(
            libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize),
            0,
            "attach: {}",
            std::io::Error::last_os_error()
        );
        let mut st = 0;
        assert_eq!(libc::waitpid(pid, &mut st, libc::__WALL), pid);
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        assert_eq!(
            libc::ptrace(libc::PTRACE_GETREGS, pid, 0usize, &mut regs as *mut _),
            0
        );
        regs.rip = 0;
        // Interrupted in poll(): no syscall restart, just the jump.
        regs.orig_rax = u64::MAX;
        assert_eq!(
            libc::ptrace(libc::PTRACE_SETREGS, pid, 0usize, &regs as *const _),
            0
        );
        assert_eq!(libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize), 0);
    }
}

/// The faulting supervisor runs in `/`: keep a core file out of it whatever the CI's limit.
fn no_core_dump(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
}

#[test]
fn startup_a_genuine_fault_still_ends_the_supervisor() {
    require_root();
    let s = Scratch::new("fault");
    let child = s.child_script("child.sh", "exec sleep 1000");
    let mut c = command(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "0",
            "--",
            child.to_str().unwrap(),
        ],
    );
    no_core_dump(&mut c);
    let sup = spawn_cmd(&s, c);
    wait_phase(&s, "Ready", LONG);
    inject_fault(sup.pid());
    let (st, _) = sup.wait(LONG);
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "{st:?}");
    // The orphaned child (re-parented away from the dead supervisor) is cleaned up here.
    if let Some(c) = s.status()["child"]["pid"].as_i64() {
        let _ = nix::sys::signal::kill(Pid::from_raw(c as i32), Signal::SIGKILL);
    }
}

#[test]
fn startup_a_genuine_fault_still_ends_pid_1() {
    require_root();
    let s = Scratch::new("fault-pid1");
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--",
        SUPERVISOR,
        "--no-policy",
        "--status-dir",
    ])
    .arg(s.status_dir())
    .args(["--no-hook", "--ready-after", "0", "--", "sleep", "1000"])
    .current_dir(&s.path);
    no_core_dump(&mut c);
    let sup = spawn_cmd(&s, c);
    wait_phase(&s, "Ready", LONG);
    let host_pid = children_of(sup.pid())[0].0;
    inject_fault(host_pid);
    // unshare reports how its child, the namespace's PID 1, ended: by SIGSEGV.
    let (st, _) = sup.wait(LONG);
    let segv = st.signal() == Some(libc::SIGSEGV) || st.code() == Some(128 + libc::SIGSEGV);
    assert!(segv, "PID 1 must die of its own fault: {st:?}");
    assert!(!alive(host_pid));
}
