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
        let mut args = vec!["--no-hook"];
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
