//! Attacks on the supervisor (issue 8), each performed for real against the real binary,
//! asserting the safe outcome. Each test plays the sandbox's user (`nobody`, who owns
//! directories on paths root reads, plants symlinks and races checks) or a hostile log
//! reader. Grouped by what is attacked: `duration_` (command-line bounds), `log_` (a log
//! reader that stops reading), `status_` (the status directory), `ready_` (the readiness
//! probe), `hook_` (the boot hook's trust check and exec), `leftover_` (processes the hook
//! or a generation leaves behind), `env_` (secrets in the supervisor's environment), `policy_` (the policy file a root
//! supervisor reads, and the paths it names).
//!
//! `seed::seed_*`: workspace seeding runs as root in a tree the workload controls. The
//! workload (or whoever prepared the volume) plants symlinks, FIFOs, hardlinks, mounts and
//! racing renames where seed files go, or fills the disk. Nothing outside the workspace may
//! be touched, nothing may block, and failures must say what happened.
mod common;

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// The same hook as an ELF program (the hook then needs no /proc: a script hook runs as
/// `/proc/self/fd/N`), which prints `n` lines and then sleeps for good.
fn chatty_elf_hook(s: &Scratch, n: u32) -> String {
    let src = s.join("chatty.c");
    let out = s.join("chatty");
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <unistd.h>\nint main(void) {{ for (int i = 0; i < {n}; i++) printf(\"hook line %d: the quick brown fox jumps over the lazy dog, again and again and again\\n\", i); fflush(stdout); sleep(1000); return 0; }}\n"
        ),
    )
    .unwrap();
    let st = Command::new("gcc")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is installed (tests/run.sh installs it)");
    assert!(st.success());
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
    out.to_str().unwrap().to_owned()
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
    let hook = chatty_elf_hook(&s, 8000);
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

// ----- boot hook, leftovers, environment (hardening) ---------------------------------

/// A directory with `mode`, owned by `uid`.
fn dir(p: &Path, mode: u32, uid: u32) -> PathBuf {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    chown(p, Some(uid), Some(uid)).unwrap();
    p.to_path_buf()
}

/// A file with `body`, `mode`, owned by `uid`.
fn file(p: &Path, body: &str, mode: u32, uid: u32) -> PathBuf {
    fs::write(p, body).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    chown(p, Some(uid), Some(uid)).unwrap();
    p.to_path_buf()
}

/// A copy of a real program (following links), with `mode` and owner `uid`.
fn program(src: &str, p: &Path, mode: u32, uid: u32) -> PathBuf {
    fs::copy(src, p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    chown(p, Some(uid), Some(uid)).unwrap();
    p.to_path_buf()
}

fn link(target: &str, p: &Path, uid: u32) -> PathBuf {
    symlink(target, p).unwrap();
    lchown(p, Some(uid), Some(uid)).unwrap();
    p.to_path_buf()
}

/// Hook scripts record that they ran, and as whom, in `marks/` (writable by anyone, so a
/// hook that runs as nobody can record it too).
struct Marks(PathBuf);

impl Marks {
    fn new(s: &Scratch) -> Marks {
        Marks(dir(&s.join("marks"), 0o1777, 0))
    }
    fn hook(&self, tag: &str) -> String {
        format!(
            "#!/bin/sh\necho \"$(id -u)\" >> {}/{tag}\n",
            self.0.display()
        )
    }
    fn read(&self, tag: &str) -> String {
        fs::read_to_string(self.0.join(tag)).unwrap_or_default()
    }
    fn any(&self) -> Vec<String> {
        fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// Runs the supervisor with `hook` (as root, --no-policy, the child `true` once) and
/// returns its exit code and events.
fn run_hook(
    s: &Scratch,
    hook: &Path,
    env: &[(&str, &str)],
) -> (Option<i32>, Vec<serde_json::Value>) {
    let mut c = command(
        s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--restart",
            "never",
            "--",
            "true",
        ],
    );
    for (k, v) in env {
        c.env(k, v);
    }
    let (st, events) = spawn_cmd(s, c).wait(LONG);
    (st.code(), events)
}

/// The hook was refused (exit 82, `hook.untrusted`) with an error containing `expect`.
fn assert_refused(s: &Scratch, hook: &Path, env: &[(&str, &str)], expect: &str) {
    let (code, events) = run_hook(s, hook, env);
    let refused = named(&events, "hook.untrusted");
    assert_eq!(
        code,
        Some(82),
        "{} was not refused: {events:?}",
        hook.display()
    );
    let err = refused[0]["error"].as_str().unwrap();
    assert!(err.contains(expect), "{}: {err}", hook.display());
    assert!(named(&events, "hook.start").is_empty());
    assert_eq!(s.status()["reason"], "hook_untrusted");
}

/// The layout of the attacks: `trusted/` is root's, `evil/` and `userdir/` are nobody's.
struct Layout {
    s: Scratch,
    marks: Marks,
    trusted: PathBuf,
    evil: PathBuf,
    userdir: PathBuf,
}

impl Layout {
    fn new(tag: &str) -> Layout {
        require_root();
        let s = Scratch::new(tag);
        let marks = Marks::new(&s);
        let trusted = dir(&s.join("trusted"), 0o755, 0);
        file(&trusted.join("boot.sh"), &marks.hook("trusted"), 0o755, 0);
        let evil = dir(&s.join("evil"), 0o755, NOBODY);
        file(&evil.join("boot.sh"), &marks.hook("evil"), 0o755, NOBODY);
        let userdir = dir(&s.join("userdir"), 0o755, NOBODY);
        Layout {
            s,
            marks,
            trusted,
            evil,
            userdir,
        }
    }
}

#[test]
fn hook_symlink_planted_by_nobody_is_never_followed() {
    let l = Layout::new("atk-link");
    // The reproduction from the issue: nobody's link, in nobody's directory, to a trusted
    // directory. It passed the old check; nobody could point it anywhere afterwards.
    link("../trusted", &l.userdir.join("link"), NOBODY);
    dir(&l.userdir.join("sub"), 0o755, NOBODY);
    let sticky = dir(&l.s.join("sticky"), 0o1777, 0);
    link("../trusted", &sticky.join("nlink"), NOBODY);
    file(
        &sticky.join("nobodys.sh"),
        &l.marks.hook("sticky"),
        0o755,
        NOBODY,
    );
    let given = |rel: &str| l.s.join(rel);
    for (hook, expect) in [
        (given("userdir/link/boot.sh"), "userdir/link is a symlink"),
        // Second spellings: the same link reached through `..`, or followed by `..`.
        (
            given("userdir/sub/../link/boot.sh"),
            "userdir/link is a symlink",
        ),
        (
            given("userdir/link/../trusted/boot.sh"),
            "userdir/link is a symlink",
        ),
        // A sticky directory protects only root's own entries.
        (given("sticky/nlink/boot.sh"), "sticky/nlink is a symlink"),
        (given("sticky/nobodys.sh"), "owned by uid 65534"),
        // procfs magic links point wherever the reader's process says.
        (
            PathBuf::from(format!(
                "/proc/self/root{}",
                given("trusted/boot.sh").display()
            )),
            "/proc",
        ),
    ] {
        assert_refused(&l.s, &hook, &[], expect);
    }
    assert!(
        l.marks.any().is_empty(),
        "a refused hook ran: {:?}",
        l.marks.any()
    );
    // Control: the trusted hook itself runs, as root.
    let (code, _) = run_hook(&l.s, &l.trusted.join("boot.sh"), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(l.marks.read("trusted"), "0\n");
    let _ = &l.evil;
}

#[test]
fn hook_flip_race_never_runs_nobodys_hook_as_root() {
    let l = Layout::new("atk-race");
    // Two moving parts nobody controls: a symlink flipped between root's directory and
    // nobody's own, and a directory swapped with nobody's (renameat2 RENAME_EXCHANGE).
    link("../trusted", &l.userdir.join("link"), NOBODY);
    let d = dir(&l.userdir.join("d"), 0o755, 0);
    file(&d.join("boot.sh"), &l.marks.hook("trusted-copy"), 0o755, 0);
    let e = dir(&l.userdir.join("e"), 0o755, NOBODY);
    file(&e.join("boot.sh"), &l.marks.hook("evil"), 0o755, NOBODY);

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let userdir = l.userdir.clone();
        std::thread::spawn(move || {
            let mut flips = 0u64;
            let (a, b) = (userdir.join("d"), userdir.join("e"));
            let (ca, cb) = (
                std::ffi::CString::new(a.to_str().unwrap()).unwrap(),
                std::ffi::CString::new(b.to_str().unwrap()).unwrap(),
            );
            while !stop.load(Ordering::Relaxed) {
                let target = if flips.is_multiple_of(2) {
                    "../evil"
                } else {
                    "../trusted"
                };
                let tmp = userdir.join("link.new");
                let _ = fs::remove_file(&tmp);
                link(target, &tmp, NOBODY);
                fs::rename(&tmp, userdir.join("link")).unwrap();
                // SAFETY: renameat2 with two NUL-terminated paths.
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        ca.as_ptr(),
                        libc::AT_FDCWD,
                        cb.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    );
                }
                flips += 1;
            }
            flips
        })
    };
    let hooks = [l.userdir.join("link/boot.sh"), l.userdir.join("d/boot.sh")];
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..200 {
        let (code, _) = run_hook(&l.s, &hooks[i % 2], &[]);
        *codes.entry(code).or_insert(0) += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 200, "the flipper barely ran ({flips} flips)");
    assert!(
        !l.marks.read("evil").contains('0'),
        "nobody's hook ran as uid 0: {:?}",
        l.marks.read("evil")
    );
    assert!(
        l.marks.any().is_empty(),
        "a hook on a path nobody controls ran: {:?}",
        l.marks.any()
    );
    assert_eq!(
        codes,
        [(Some(82), 200)].into(),
        "every start must be refused"
    );
}

#[test]
fn hook_interpreter_nobody_could_write_is_refused() {
    let l = Layout::new("atk-interp");
    let bin = dir(&l.s.join("bin"), 0o755, 0);
    let nobody_sh = program("/bin/dash", &bin.join("nobody-sh"), 0o755, NOBODY);
    let writable_sh = program("/bin/dash", &bin.join("writable-sh"), 0o775, 0);
    let in_evil = program("/bin/dash", &l.evil.join("root-sh"), 0o755, 0);
    link("../trusted", &l.userdir.join("link"), NOBODY);
    let script_interp = file(
        &bin.join("script-interp"),
        "#!/bin/sh\nexec /bin/sh \"$@\"\n",
        0o755,
        0,
    );
    let good_sh = program("/bin/dash", &bin.join("good-sh"), 0o755, 0);
    let body = l.marks.hook("ran");
    let hook = |name: &str, interp: &str| {
        let body = body.replacen("#!/bin/sh", &format!("#!{interp}"), 1);
        file(&l.trusted.join(name), &body, 0o755, 0)
    };
    for (h, expect) in [
        (
            hook("a.sh", nobody_sh.to_str().unwrap()),
            "owned by uid 65534",
        ),
        (
            hook("b.sh", writable_sh.to_str().unwrap()),
            "writable by group or others",
        ),
        (
            hook("c.sh", in_evil.to_str().unwrap()),
            "a user other than root can modify",
        ),
        (
            hook(
                "d.sh",
                &format!("{}/link/../bin/good-sh", l.userdir.display()),
            ),
            "userdir/link is a symlink",
        ),
        (
            hook("e.sh", script_interp.to_str().unwrap()),
            "not an ELF executable",
        ),
        (hook("f.sh", "bin/good-sh"), "not an absolute path"),
    ] {
        assert_refused(&l.s, &h, &[], expect);
    }
    assert!(l.marks.any().is_empty(), "{:?}", l.marks.any());
    // Control: a root-owned interpreter in root's directories runs the same hook, as root.
    let (code, events) = run_hook(&l.s, &hook("g.sh", good_sh.to_str().unwrap()), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(l.marks.read("ran"), "0\n");
    assert_eq!(
        named(&events, "hook.start")[0]["interpreter"],
        good_sh.to_str().unwrap()
    );
}

#[test]
fn hook_env_interpreter_from_an_untrusted_path_dir_is_refused() {
    let l = Layout::new("atk-env");
    let name = "osup-test-sh";
    // nobody's directory first in PATH, with a root-owned copy of the shell in it.
    program("/bin/dash", &l.evil.join(name), 0o755, 0);
    // A root-owned directory whose match is nobody's file.
    let rootbin = dir(&l.s.join("rootbin"), 0o755, 0);
    program("/bin/dash", &rootbin.join(name), 0o755, NOBODY);
    // A trusted directory with a trusted match, and one with a non-executable decoy.
    let goodbin = dir(&l.s.join("goodbin"), 0o755, 0);
    let good = program("/bin/dash", &goodbin.join(name), 0o755, 0);
    let decoybin = dir(&l.s.join("decoybin"), 0o755, 0);
    file(&decoybin.join(name), "not a program", 0o644, 0);
    let dirbin = dir(&l.s.join("dirbin"), 0o755, 0);
    dir(&dirbin.join(name), 0o755, 0);
    let body = format!(
        "#!/usr/bin/env {name}\necho \"$(id -u) $0 $OPENSHELL_HOOK\" >> {}/ran\n",
        l.marks.0.display()
    );
    let hook = file(&l.trusted.join("env.sh"), &body, 0o755, 0);
    let path = |dirs: &[&Path]| {
        dirs.iter()
            .map(|d| d.to_str().unwrap().to_owned())
            .chain(["/usr/bin".into(), "/bin".into()])
            .collect::<Vec<_>>()
            .join(":")
    };
    let p1 = path(&[&l.evil, &goodbin]);
    assert_refused(
        &l.s,
        &hook,
        &[("PATH", &p1)],
        "a user other than root can modify",
    );
    let p2 = path(&[&rootbin, &goodbin]);
    assert_refused(&l.s, &hook, &[("PATH", &p2)], "owned by uid 65534");
    let options = file(
        &l.trusted.join("opts.sh"),
        &body.replacen(name, &format!("-S {name}"), 1),
        0o755,
        0,
    );
    assert_refused(&l.s, &options, &[("PATH", &path(&[&goodbin]))], "options");
    assert!(l.marks.any().is_empty(), "{:?}", l.marks.any());

    // Control: the non-executable decoy and the directory are skipped (as env would), the
    // trusted match runs the hook by descriptor: $0 is /proc/self/fd/N, OPENSHELL_HOOK the
    // path as given.
    let p3 = path(&[&decoybin, &dirbin, &goodbin]);
    let (code, events) = run_hook(&l.s, &hook, &[("PATH", &p3)]);
    assert_eq!(code, Some(0), "{events:?}");
    let ran = l.marks.read("ran");
    let fields: Vec<&str> = ran.split_whitespace().collect();
    assert_eq!(fields[0], "0");
    assert!(fields[1].starts_with("/proc/self/fd/"), "{ran}");
    assert_eq!(fields[2], hook.to_str().unwrap());
    assert_eq!(
        named(&events, "hook.start")[0]["interpreter"],
        good.to_str().unwrap()
    );
}

/// Compiles `main` (which records that it ran) with `loader` as its PT_INTERP.
fn elf_with_loader(out: &Path, loader: &Path, marks: &Marks, tag: &str) -> PathBuf {
    let src = out.with_extension("c");
    fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\nint main(void) {{ int fd = open(\"{}/{tag}\", O_WRONLY|O_CREAT|O_APPEND, 0644); (void)!write(fd, \"ran\\n\", 4); return 0; }}\n",
            marks.0.display()
        ),
    )
    .unwrap();
    let st = Command::new("gcc")
        .arg("-o")
        .arg(out)
        .arg(&src)
        .arg(format!("-Wl,--dynamic-linker={}", loader.display()))
        .status()
        .expect("gcc is installed (tests/run.sh installs it)");
    assert!(st.success());
    fs::set_permissions(out, fs::Permissions::from_mode(0o755)).unwrap();
    out.to_path_buf()
}

#[test]
fn hook_elf_loader_nobody_could_write_is_refused() {
    let l = Layout::new("atk-interp-elf");
    let real_loader = "/lib64/ld-linux-x86-64.so.2";
    // A working copy of the loader in nobody's directory: whoever owns it runs first.
    let evil_loader = program(real_loader, &l.evil.join("ld.so"), 0o755, NOBODY);
    let loose_loader = program(real_loader, &l.trusted.join("ld-loose.so"), 0o775, 0);
    let hook = elf_with_loader(
        &l.trusted.join("hook-evil-ld"),
        &evil_loader,
        &l.marks,
        "elf",
    );
    assert_refused(&l.s, &hook, &[], "PT_INTERP");
    let hook = elf_with_loader(
        &l.trusted.join("hook-loose-ld"),
        &loose_loader,
        &l.marks,
        "elf",
    );
    assert_refused(&l.s, &hook, &[], "writable by group or others");
    // The same ELF as a script's interpreter.
    let interp = elf_with_loader(
        &l.trusted.join("interp-evil-ld"),
        &evil_loader,
        &l.marks,
        "elf",
    );
    let script = file(
        &l.trusted.join("script.sh"),
        &format!("#!{}\n", interp.display()),
        0o755,
        0,
    );
    assert_refused(&l.s, &script, &[], "PT_INTERP");
    assert!(l.marks.any().is_empty(), "{:?}", l.marks.any());
    // Control: the real loader passes; the program runs as the hook.
    let ok = elf_with_loader(
        &l.trusted.join("hook-ok"),
        Path::new(real_loader),
        &l.marks,
        "ok",
    );
    let (code, events) = run_hook(&l.s, &ok, &[]);
    assert_eq!(code, Some(0), "{events:?}");
    assert_eq!(l.marks.read("ok"), "ran\n");
    assert_eq!(named(&events, "hook.start")[0]["direct"], true);
}

#[test]
fn hook_that_is_not_a_regular_file_is_refused_without_blocking() {
    let l = Layout::new("atk-fifo");
    let fifo = l.trusted.join("boot.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
    assert_refused(&l.s, &fifo, &[], "FIFO");
    assert_refused(&l.s, &l.trusted, &[], "directory");
}

/// Polls until `pid_file` names a process, then returns its pid.
fn pid_in(s: &Scratch, name: &str) -> i32 {
    s.read(name).trim().parse().unwrap_or(0)
}

#[test]
fn leftover_setsid_daemon_of_the_hook_is_gone_before_the_child_starts() {
    require_root();
    let s = Scratch::new("atk-hook-daemon");
    // Two daemons that left the hook's process group: one ignores SIGTERM, the other answers
    // it by starting a fresh daemon (which ignores SIGTERM) and exiting.
    let hook = s.script(
        "boot.sh",
        "setsid sh -c 'trap \"\" TERM; echo $$ > daemon.pid; while :; do date +%s%N >> daemon.beat; sleep 0.01; done' </dev/null >/dev/null 2>&1 &\n\
         setsid sh -c 'trap \"setsid sh -c \\\"trap \\\\\\\"\\\\\\\" TERM; echo \\\\$\\\\$ > respawned.pid; while :; do date +%s%N >> daemon.beat; sleep 0.01; done\\\" </dev/null >/dev/null 2>&1 & exit 0\" TERM; echo $$ > phoenix.pid; while :; do sleep 0.01; done' </dev/null >/dev/null 2>&1 &\n\
         while [ ! -s daemon.pid ] || [ ! -s phoenix.pid ]; do sleep 0.01; done",
    );
    let child = s.child_script(
        "child.sh",
        "date +%s%N > child.start\n\
         for f in daemon.pid phoenix.pid respawned.pid; do if [ -s $f ] && kill -0 $(cat $f) 2>/dev/null; then echo \"$f alive\" >> seen; fi; done\n\
         echo checked >> seen",
    );
    let (st, events) = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--grace",
            "300ms",
            "--restart",
            "never",
            "--",
            child.to_str().unwrap(),
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(0), "{events:?}");
    assert_eq!(
        s.read("seen"),
        "checked\n",
        "a daemon of the hook ran beside the child"
    );
    let child_start: u128 = s.read("child.start").trim().parse().unwrap();
    let last_beat: u128 = s
        .read("daemon.beat")
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap();
    assert!(
        last_beat < child_start,
        "a daemon of the hook was still running when the child started"
    );
    assert!(
        pid_in(&s, "respawned.pid") > 0,
        "the respawning daemon's SIGTERM trap ran"
    );
    for f in ["daemon.pid", "phoenix.pid", "respawned.pid"] {
        assert!(!alive(pid_in(&s, f)), "{f} survived");
    }
    let cleanup = named(&events, "group.cleanup");
    assert_eq!(cleanup.len(), 1);
    assert_eq!(cleanup[0]["of"], "hook");
    assert!(cleanup[0]["count"].as_u64().unwrap() >= 2);
    assert_eq!(named(&events, "group.kill").len(), 1);
}

#[test]
fn leftover_setsid_descendants_of_generations_do_not_accumulate() {
    require_root();
    let s = Scratch::new("atk-gen-daemons");
    // Every generation leaves a setsid daemon ignoring SIGTERM and a double-forked one,
    // then counts how many earlier ones are still alive.
    let child = s.child_script(
        "child.sh",
        "n=$(( $(cat gen 2>/dev/null || echo 0) + 1 )); echo $n > gen\n\
         alive=0; for f in d.*.pid; do [ -s \"$f\" ] && kill -0 $(cat $f) 2>/dev/null && alive=$((alive+1)); done; echo $alive >> alive.log\n\
         setsid sh -c \"trap '' TERM; echo \\$\\$ > d.$n.a.pid; while :; do sleep 0.05; done\" </dev/null >/dev/null 2>&1 &\n\
         (setsid sh -c \"echo \\$\\$ > d.$n.b.pid; while :; do sleep 0.05; done\" </dev/null >/dev/null 2>&1 &)\n\
         while [ ! -s d.$n.a.pid ] || [ ! -s d.$n.b.pid ]; do sleep 0.01; done; exit 1",
    );
    let (st, events) = spawn(
        &s,
        &[
            "--no-hook",
            "--backoff-initial",
            "0",
            "--max-restarts",
            "7",
            "--grace",
            "100ms",
            "--",
            child.to_str().unwrap(),
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(84), "{events:?}");
    assert_eq!(
        s.read("alive.log"),
        "0\n".repeat(8),
        "leftovers accumulated"
    );
    for e in fs::read_dir(&s.path).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("d.") {
            assert!(!alive(pid_in(&s, &name)), "{name} survived");
        }
    }
}

/// A policy confining the probe (a static binary: it needs only itself and /proc) as
/// nobody, and a copy of the probe it may run.
fn confined_probe(s: &Scratch) -> (PathBuf, PathBuf) {
    let probe = program(PROBE, &s.join("probe"), 0o755, 0);
    let policy = file(
        &s.join("policy.yaml"),
        &format!(
            "version: 1\nfilesystem_policy:\n  read_only: [/proc, {}]\n  read_write: [/dev/null]\nprocess:\n  run_as_user: nobody\n  run_as_group: nogroup\n",
            probe.display()
        ),
        0o644,
        0,
    );
    (policy, probe)
}

/// Runs a confined probe printing its /proc/self/environ, after `hook`, with `env` in the
/// supervisor's environment and `extra` flags. Returns the exit code, the child's
/// variables and the events.
fn run_env(
    s: &Scratch,
    hook: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (Option<i32>, Vec<String>, Vec<serde_json::Value>) {
    let (policy, probe) = confined_probe(s);
    let mut c = Command::new(SUPERVISOR);
    c.arg("--policy")
        .arg(&policy)
        .arg("--hook")
        .arg(hook)
        .arg("--status-dir")
        .arg(s.status_dir())
        .args(["--restart", "never"])
        .args(extra)
        .arg("--")
        .arg(&probe)
        .arg("environ")
        .current_dir(&s.path);
    for (k, v) in env {
        c.env(k, v);
    }
    let sup = spawn_cmd(s, c);
    let out = sup.out.clone();
    let (st, events) = sup.wait(LONG);
    let stdout = fs::read_to_string(out).unwrap_or_default();
    let vars = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["op"] == "environ")
        .map(|v| {
            v["vars"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (st.code(), vars, events)
}

const SECRET: (&str, &str) = ("OPENAI_API_KEY", "sk-test-not-for-the-agent");

#[test]
fn env_secrets_reach_the_hook_but_not_the_confined_child() {
    require_root();
    let s = Scratch::new("atk-env-secret");
    let env_file = file(
        &s.join("hook.env"),
        "# for the hook only\nHOOK_ONLY_TOKEN=from-the-file\n",
        0o600,
        0,
    );
    let saw = s.join("hook-saw");
    let hook = s.script(
        "boot.sh",
        &format!(
            "echo \"$OPENAI_API_KEY $HOOK_ONLY_TOKEN $OPENSHELL_HOOK\" > {}",
            saw.display()
        ),
    );
    let env = [SECRET, ("NODE_ENV", "production"), ("LC_ALL", "C.UTF-8")];
    let flags = [
        "--hook-env-file",
        env_file.to_str().unwrap(),
        "--child-env",
        "NODE_*",
    ];
    let (code, vars, events) = run_env(&s, &hook, &env, &flags);
    assert_eq!(code, Some(0), "{events:?}");
    // The hook used both secrets.
    assert_eq!(
        s.read("hook-saw"),
        format!("{} from-the-file {}\n", SECRET.1, hook.display())
    );
    // The confined child saw neither, nor the hook's path; it got the allow-list, the
    // policy user's identity and what --child-env named.
    let has = |kv: &str| vars.iter().any(|v| v == kv);
    let names: Vec<&str> = vars.iter().map(|v| v.split('=').next().unwrap()).collect();
    for leaked in [SECRET.0, "HOOK_ONLY_TOKEN", "OPENSHELL_HOOK"] {
        assert!(
            !names.contains(&leaked),
            "{leaked} reached the child: {vars:?}"
        );
    }
    assert!(!vars.iter().any(|v| v.contains(SECRET.1)), "{vars:?}");
    for want in [
        "NODE_ENV=production",
        "LC_ALL=C.UTF-8",
        "USER=nobody",
        "OPENSHELL_SANDBOX=1",
    ] {
        assert!(has(want), "{want} missing: {vars:?}");
    }
    assert!(names.contains(&"PATH"), "{vars:?}");
    assert!(!has("HOME=/root"), "{vars:?}");
    let child_env = named(&events, "child.env");
    assert!(child_env[0]["withheld"]
        .as_str()
        .unwrap()
        .contains(SECRET.0));
    assert_eq!(
        named(&events, "hook.env_file")[0]["names"],
        "HOOK_ONLY_TOKEN"
    );

    // The explicit way to hand one over works, so the probe really reads what it gets.
    let (code, vars, _) = run_env(&s, &hook, &env, &["--child-env", SECRET.0]);
    assert_eq!(code, Some(0));
    assert!(
        vars.contains(&format!("{}={}", SECRET.0, SECRET.1)),
        "{vars:?}"
    );
}

#[test]
fn env_hook_env_file_nobody_could_write_or_read_is_refused() {
    let l = Layout::new("atk-env-file");
    let body = "LD_PRELOAD=/tmp/evil.so\n";
    let nobodys = file(&l.s.join("nobodys.env"), body, 0o600, NOBODY);
    let readable = file(&l.s.join("readable.env"), body, 0o644, 0);
    let in_evil = file(&l.evil.join("root.env"), body, 0o600, 0);
    let root_ok = file(&l.trusted.join("ok.env"), "TOKEN=1\n", 0o600, 0);
    link("../trusted/ok.env", &l.userdir.join("planted.env"), NOBODY);
    let hook = l.trusted.join("boot.sh");
    for (f, expect) in [
        (nobodys, "owned by uid 65534"),
        (readable, "readable by group or others"),
        (in_evil, "a user other than root can modify"),
        (l.userdir.join("planted.env"), "is a symlink"),
    ] {
        let (code, events) = run_hook_with(&l.s, &hook, &["--hook-env-file", f.to_str().unwrap()]);
        assert_eq!(code, Some(82), "{}: {events:?}", f.display());
        let err = named(&events, "hook.untrusted")[0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(err.contains(expect), "{}: {err}", f.display());
    }
    let malformed = file(&l.trusted.join("bad.env"), "A=1\nnot a pair\n", 0o600, 0);
    for (f, expect) in [
        (malformed, "line 2"),
        (l.trusted.join("none.env"), "does not exist"),
    ] {
        let (code, events) = run_hook_with(&l.s, &hook, &["--hook-env-file", f.to_str().unwrap()]);
        assert_eq!(code, Some(78), "{}: {events:?}", f.display());
        let err = named(&events, "hook.env_file_invalid")[0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(err.contains(expect), "{err}");
    }
    assert!(
        l.marks.any().is_empty(),
        "the hook ran with a refused env file"
    );
    let (code, _) = run_hook_with(&l.s, &hook, &["--hook-env-file", root_ok.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(l.marks.read("trusted"), "0\n");
}

/// `run_hook` with extra flags.
fn run_hook_with(
    s: &Scratch,
    hook: &Path,
    extra: &[&str],
) -> (Option<i32>, Vec<serde_json::Value>) {
    let mut args = vec!["--hook", hook.to_str().unwrap(), "--restart", "never"];
    args.extend_from_slice(extra);
    args.extend(["--", "true"]);
    let (st, events) = spawn(s, &args).wait(LONG);
    (st.code(), events)
}

// ----- workspace seeding (vm branch) -------------------------------------------------

mod seed {
    use super::common::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::ExitStatus;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const SANDBOX_UID: u32 = 1000;

    /// A seed tree and a workspace in one scratch directory (same filesystem, so hardlinks
    /// between the workspace and the "outside" are possible), plus a victim tree outside.
    struct Seeding {
        s: Scratch,
    }

    impl Seeding {
        fn new(name: &str) -> Seeding {
            require_root();
            let s = Scratch::new(name);
            for d in ["seed", "ws", "outside"] {
                fs::create_dir(s.join(d)).unwrap();
            }
            // The seed root decides the workspace root's owner, like an image's /sandbox.
            chown(&s.join("seed"), SANDBOX_UID);
            Seeding { s }
        }

        fn seed(&self) -> PathBuf {
            self.s.join("seed")
        }
        fn ws(&self) -> PathBuf {
            self.s.join("ws")
        }
        fn outside(&self) -> PathBuf {
            self.s.join("outside")
        }

        /// A file in the seed tree owned by the sandbox user.
        fn seed_file(&self, rel: &str, body: &str, mode: u32) {
            let p = self.seed().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            chown(&p, SANDBOX_UID);
        }

        fn seed_dir(&self, rel: &str) {
            let p = self.seed().join(rel);
            fs::create_dir_all(&p).unwrap();
            chown(&p, SANDBOX_UID);
        }

        /// A root-only secret outside the workspace, to aim attacks at.
        fn secret(&self) -> PathBuf {
            let p = self.outside().join("secret");
            fs::write(&p, "root only\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            p
        }

        /// Runs the supervisor once over this seed tree and workspace; returns its exit status
        /// and log. It must finish within `limit` (nothing may block).
        fn run(&self, limit: Duration) -> (ExitStatus, Vec<serde_json::Value>) {
            let sup = spawn(
                &self.s,
                &[
                    "--no-hook",
                    "--seed",
                    self.seed().to_str().unwrap(),
                    "--workspace",
                    self.ws().to_str().unwrap(),
                    "--restart",
                    "never",
                    "--",
                    "/bin/true",
                ],
            );
            sup.wait(limit)
        }
    }

    fn chown(p: &Path, uid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    }

    /// Everything under `dir`, with type, owner and mode, for before/after comparisons.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&d)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            names.sort();
            for p in names {
                let m = fs::symlink_metadata(&p).unwrap();
                let body = if m.is_file() {
                    fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                if m.is_dir() {
                    stack.push(p.clone());
                }
                out.push((p, m.mode(), m.uid(), m.gid(), body));
            }
        }
        out
    }

    fn no_temp_files(dir: &Path) {
        for (p, ..) in snapshot(dir) {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !n.starts_with(".openshell-seed-"),
                "temporary file left behind: {}",
                p.display()
            );
        }
    }

    #[test]
    fn seed_copies_owners_modes_and_symlinks_once() {
        let t = Seeding::new("seed-basic");
        t.seed_file(".bashrc", "export PS1=sandbox\n", 0o644);
        t.seed_file("bin/tool", "#!/bin/sh\necho tool\n", 0o750);
        t.seed_dir("empty");
        // A root-owned setuid file in the seed tree keeps owner and mode (chown after write
        // would otherwise clear the setuid bit).
        t.seed_file("bin/suid", "x", 0o4755);
        chown(&t.seed().join("bin/suid"), 0);
        fs::set_permissions(
            t.seed().join("bin/suid"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        symlink(".bashrc", t.seed().join("profile")).unwrap();
        chown(&t.seed().join("profile"), SANDBOX_UID);
        symlink("/etc/hostname", t.seed().join("abs")).unwrap();

        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert_eq!(named(&events, "seed.done").len(), 1, "{events:?}");

        let ws = t.ws();
        let m = fs::metadata(&ws).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o7777),
            (SANDBOX_UID, 0o755),
            "workspace root takes the seed root's owner"
        );
        let m = fs::metadata(ws.join(".bashrc")).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (SANDBOX_UID, SANDBOX_UID, 0o644)
        );
        assert_eq!(
            fs::read_to_string(ws.join(".bashrc")).unwrap(),
            "export PS1=sandbox\n"
        );
        let m = fs::metadata(ws.join("bin/tool")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750);
        let m = fs::metadata(ws.join("bin/suid")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o4755));
        assert!(ws.join("empty").is_dir());
        // Symlinks are copied as symlinks with their owner, not followed.
        assert_eq!(
            fs::read_link(ws.join("profile")).unwrap(),
            Path::new(".bashrc")
        );
        assert_eq!(
            fs::symlink_metadata(ws.join("profile")).unwrap().uid(),
            SANDBOX_UID
        );
        assert_eq!(
            fs::read_link(ws.join("abs")).unwrap(),
            Path::new("/etc/hostname")
        );
        assert_eq!(fs::symlink_metadata(ws.join("abs")).unwrap().uid(), 0);
        let marker: serde_json::Value =
            serde_json::from_slice(&fs::read(ws.join(".openshell-seeded")).unwrap()).unwrap();
        assert_eq!(marker["files"], 3, "{marker}");
        no_temp_files(&ws);

        // Second boot: the marker is there, nothing is copied again, not even what was deleted.
        fs::remove_file(ws.join(".bashrc")).unwrap();
        let (st, events) = t.run(LONG);
        assert!(st.success());
        assert_eq!(named(&events, "seed.skipped").len(), 1, "{events:?}");
        assert!(!ws.join(".bashrc").exists());
        // Without the marker the copy is resumed: the missing file comes back, the rest stays.
        fs::write(ws.join("bin/tool"), "changed by the agent").unwrap();
        fs::remove_file(ws.join(".openshell-seeded")).unwrap();
        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert_eq!(
            fs::read_to_string(ws.join(".bashrc")).unwrap(),
            "export PS1=sandbox\n"
        );
        assert_eq!(
            fs::read_to_string(ws.join("bin/tool")).unwrap(),
            "changed by the agent",
            "never overwrites"
        );
    }

    #[test]
    fn seed_planted_symlinks_are_not_followed() {
        let t = Seeding::new("seed-symlinks");
        let secret = t.secret();
        let shadow_before = fs::read("/etc/shadow").unwrap();
        t.seed_file(".bashrc", "seeded\n", 0o644);
        t.seed_file("secret", "seeded\n", 0o644);
        t.seed_file(".config/app/settings", "seeded\n", 0o644);
        t.seed_file("cache/x", "seeded\n", 0o644);
        t.seed_file("deep/er/file", "seeded\n", 0o644);
        // The attacks: a file path that is a symlink to /etc/shadow, one to a file outside, a
        // directory path that is a symlink to a directory outside (absolute and relative), and
        // a symlink one level down inside a directory the workload made.
        let ws = t.ws();
        symlink("/etc/shadow", ws.join(".bashrc")).unwrap();
        symlink(&secret, ws.join("secret")).unwrap();
        symlink(t.outside(), ws.join(".config")).unwrap();
        symlink("../outside", ws.join("cache")).unwrap();
        fs::create_dir_all(ws.join("deep")).unwrap();
        symlink(t.outside(), ws.join("deep/er")).unwrap();
        let outside_before = snapshot(&t.outside());

        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert_eq!(fs::read("/etc/shadow").unwrap(), shadow_before);
        assert_eq!(
            snapshot(&t.outside()),
            outside_before,
            "nothing outside the workspace changed"
        );
        assert_eq!(
            fs::read_link(ws.join(".bashrc")).unwrap(),
            Path::new("/etc/shadow"),
            "the planted link is kept"
        );
        assert_eq!(
            fs::read_link(ws.join("cache")).unwrap(),
            Path::new("../outside")
        );
        let done = &named(&events, "seed.done")[0];
        assert_eq!(done["kept"], 5, "{done}");
        no_temp_files(&ws);
    }

    #[test]
    fn seed_fifos_and_devices_where_seed_files_go_do_not_block() {
        let t = Seeding::new("seed-fifo");
        t.seed_file(".bashrc", "seeded\n", 0o644);
        t.seed_file("dir/inner", "seeded\n", 0o644);
        t.seed_file(".openshell-seeded-not", "seeded\n", 0o644);
        let ws = t.ws();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
        nix::unistd::mkfifo(&ws.join(".bashrc"), mode).unwrap();
        nix::unistd::mkfifo(&ws.join("dir"), mode).unwrap();
        // A device node named like a seed file (the workload cannot make one, but a volume
        // prepared elsewhere can hold one): it must not be opened either.
        nix::sys::stat::mknod(
            &ws.join(".openshell-seeded-not"),
            nix::sys::stat::SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        // Opening a FIFO for writing blocks until a reader comes: a run that opened one would
        // hang here, and `run` fails after SHORT.
        let (st, events) = t.run(Duration::from_secs(10));
        assert!(st.success(), "{events:?}");
        let ft = fs::symlink_metadata(ws.join(".bashrc"))
            .unwrap()
            .file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ft));
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &fs::symlink_metadata(ws.join("dir")).unwrap().file_type()
        ));
        assert_eq!(named(&events, "seed.done")[0]["kept"], 3);

        // A FIFO in the seed tree itself is not copied (and not opened): logged and skipped.
        let t = Seeding::new("seed-fifo-src");
        nix::unistd::mkfifo(&t.seed().join("pipe"), mode).unwrap();
        let (st, events) = t.run(Duration::from_secs(10));
        assert!(st.success(), "{events:?}");
        assert_eq!(named(&events, "seed.unsupported").len(), 1, "{events:?}");
        assert!(!t.ws().join("pipe").exists());
    }

    #[test]
    fn seed_hardlinks_to_outside_files_are_not_written() {
        let t = Seeding::new("seed-hardlink");
        let secret = t.secret();
        t.seed_file("notes.txt", "seeded\n", 0o644);
        t.seed_file("sub/notes.txt", "seeded\n", 0o644);
        // Same filesystem: the workspace entry *is* the outside file.
        fs::hard_link(&secret, t.ws().join("notes.txt")).unwrap();
        fs::create_dir(t.ws().join("sub")).unwrap();
        fs::hard_link(&secret, t.ws().join("sub/notes.txt")).unwrap();
        let before = fs::metadata(&secret).unwrap();

        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert_eq!(fs::read_to_string(&secret).unwrap(), "root only\n");
        let after = fs::metadata(&secret).unwrap();
        assert_eq!(
            (after.uid(), after.mode(), after.nlink()),
            (before.uid(), before.mode(), 3),
            "owner and mode of the linked file unchanged"
        );
    }

    #[test]
    fn seed_mount_points_in_the_workspace_are_not_crossed() {
        let t = Seeding::new("seed-mount");
        t.seed_file("mnt/file", "seeded\n", 0o644);
        t.seed_file("other", "seeded\n", 0o644);
        let mnt = t.ws().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _m = Mount::tmpfs(&mnt, "size=1m");
        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert!(
            !mnt.join("file").exists(),
            "the seed crossed into a mount planted in the workspace"
        );
        assert!(t.ws().join("other").exists());
        assert_eq!(named(&events, "seed.conflict").len(), 1, "{events:?}");
    }

    #[test]
    fn seed_directory_swapped_for_a_symlink_during_the_copy() {
        let t = Seeding::new("seed-race");
        // Many directories with files, so the copy takes long enough to be raced.
        for i in 0..60 {
            for j in 0..8 {
                t.seed_file(&format!("d{i:02}/f{j}"), "seeded\n", 0o644);
            }
        }
        let ws = t.ws();
        let outside = t.outside();
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (ws, outside, stop) = (ws.clone(), outside.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..60 {
                        let d = ws.join(format!("d{i:02}"));
                        // Move whatever directory is there aside and put a symlink in its
                        // place: the next open by name would go outside.
                        if fs::rename(&d, ws.join(format!("moved{i:02}-{swaps}"))).is_ok() {
                            let _ = symlink(&outside, &d);
                            swaps += 1;
                        }
                    }
                }
                swaps
            })
        };
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            let _ = fs::remove_file(ws.join(".openshell-seeded"));
            let (st, events) = t.run(LONG);
            outcomes.push((st.code(), named(&events, "seed.conflict").len()));
            assert!(
                st.code() == Some(0) || st.code() == Some(85),
                "unexpected exit {st:?}: {events:?}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = racer.join().unwrap();
        eprintln!("racer swaps {swaps}, outcomes (exit, conflicts) {outcomes:?}");
        assert!(swaps > 0, "the racer never swapped a directory");
        let leaked: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            leaked.is_empty(),
            "seeding wrote outside the workspace: {leaked:?} (outcomes {outcomes:?})"
        );
    }

    #[test]
    fn seed_full_workspace_fails_clearly_and_resumes_later() {
        let t = Seeding::new("seed-full");
        t.seed_file("small", "seeded\n", 0o644);
        t.seed_file("zbig", &"x".repeat(2 << 20), 0o644);
        let m = Mount::tmpfs(&t.ws(), "size=512k");
        let (st, events) = t.run(LONG);
        assert_eq!(st.code(), Some(85), "{events:?}");
        let failed = &named(&events, "seed.failed")[0];
        let err = failed["error"].as_str().unwrap();
        assert!(err.contains("zbig") && err.contains("full"), "{err}");
        let status = t.s.status();
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "seed_failed");
        assert!(
            status["message"].as_str().unwrap().contains("full"),
            "{status}"
        );
        assert!(
            named(&events, "child.spawn").is_empty(),
            "the child must not start"
        );
        assert!(
            !t.ws().join(".openshell-seeded").exists(),
            "no marker after a failed copy"
        );
        no_temp_files(&t.ws());

        // More space: the next start completes the copy.
        m.remount("size=8m");
        let (st, events) = t.run(LONG);
        assert!(st.success(), "{events:?}");
        assert_eq!(fs::metadata(t.ws().join("zbig")).unwrap().len(), 2 << 20);
        assert!(t.ws().join(".openshell-seeded").exists());
    }

    #[test]
    fn seed_tree_that_others_can_modify_is_refused() {
        let t = Seeding::new("seed-untrusted");
        // The seed tree under a directory nobody owns: nobody could swap in a setuid root file.
        let open = t.s.join("open");
        fs::create_dir(&open).unwrap();
        chown(&open, 65534);
        fs::create_dir(open.join("seed")).unwrap();
        fs::write(open.join("seed/f"), "x").unwrap();
        let sup = spawn(
            &t.s,
            &[
                "--no-hook",
                "--seed",
                open.join("seed").to_str().unwrap(),
                "--workspace",
                t.ws().to_str().unwrap(),
                "--",
                "/bin/true",
            ],
        );
        let (st, events) = sup.wait(LONG);
        assert_eq!(st.code(), Some(85), "{events:?}");
        let err = named(&events, "seed.failed")[0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(err.contains("65534") && err.contains("root-owned"), "{err}");
        assert!(!t.ws().join("f").exists());

        // A missing workspace is an error that names the flag, not a silent skip.
        let t = Seeding::new("seed-nows");
        t.seed_file("f", "x", 0o644);
        fs::remove_dir(t.ws()).unwrap();
        let (st, events) = t.run(LONG);
        assert_eq!(st.code(), Some(85), "{events:?}");
        let err = named(&events, "seed.failed")[0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(err.contains("--workspace"), "{err}");
    }

    /// A tmpfs mounted for one test, unmounted on drop (even when the test fails).
    struct Mount(PathBuf);

    impl Mount {
        fn tmpfs(at: &Path, opts: &str) -> Mount {
            let st = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
                .arg(at)
                .status()
                .unwrap();
            assert!(st.success(), "mount tmpfs on {}", at.display());
            Mount(at.to_path_buf())
        }

        fn remount(&self, opts: &str) {
            let st = std::process::Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.0)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

// ---- policy: the policy file a root supervisor reads, and the paths it names ----------

/// A minimal valid policy: /bin/true (busybox or coreutils) can run as nobody.
const POLICY: &str = "version: 1
filesystem_policy:
  read_only: [/usr, /lib, /lib64, /bin, /etc]
  read_write: [/dev/null]
process:
  run_as_user: nobody
  run_as_group: nogroup
";

/// Runs the supervisor with `--policy policy` on /bin/true; returns the exit code, the log
/// events and whether a child was spawned.
fn policy_start(s: &Scratch, policy: &Path) -> (i32, Vec<Value>, bool) {
    let mut c = Command::new(SUPERVISOR);
    c.arg("--policy")
        .arg(policy)
        .args(["--no-hook", "--restart", "never", "--status-dir"])
        .arg(s.status_dir())
        .args(["--", "/bin/true"])
        .current_dir(&s.path);
    let sup = spawn_cmd(s, c);
    let (st, events) = sup.wait(LONG);
    let ran = !named(&events, "child.spawn").is_empty();
    (st.code().unwrap_or(-1), events, ran)
}

fn policy_check(policy: &Path) -> (i32, String) {
    let out = Command::new(SUPERVISOR)
        .args(["check", "--policy"])
        .arg(policy)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn error_of(events: &[Value], event: &str) -> String {
    let e = named(events, event);
    assert!(!e.is_empty(), "no {event} event in {events:?}");
    e[0]["error"].as_str().unwrap().to_string()
}

/// Asserts that a root supervisor refuses `policy` before anything runs, with exit 78, the
/// `policy.untrusted` event and `check` agreeing; returns the error text.
fn policy_refused_as_untrusted(s: &Scratch, policy: &Path) -> String {
    let (code, events, ran) = policy_start(s, policy);
    assert_eq!(code, 78, "{events:?}");
    assert!(!ran, "the child ran under an untrusted policy");
    let e = error_of(&events, "policy.untrusted");
    assert_eq!(s.status()["reason"], "config_invalid");
    let (ccode, out) = policy_check(policy);
    assert_eq!(ccode, 78, "{out}");
    assert!(out.contains("FAIL"), "{out}");
    e
}

#[test]
fn policy_file_writable_by_another_user_is_refused() {
    require_root();
    let s = Scratch::new("policy-0666");
    // The reported attack: a nobody-owned 0666 policy in a 0777 directory.
    let open = s.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let p = open.join("policy.yaml");
    fs::write(&p, POLICY).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &p);
    assert!(e.contains("uid 65534"), "{e}");

    // Each property on its own: root-owned but in the 0777 directory...
    chown(&p, Some(0), Some(0)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let e = policy_refused_as_untrusted(&s, &p);
    assert!(
        e.contains(&open.display().to_string()) && e.contains("777"),
        "{e}"
    );
    // ...in a trusted directory but owned by nobody...
    let q = s.join("nobodys.yaml");
    fs::write(&q, POLICY).unwrap();
    chown(&q, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &q);
    assert!(e.contains("owned by uid 65534"), "{e}");
    // ...root-owned but group-writable...
    let g = s.join("group.yaml");
    fs::write(&g, POLICY).unwrap();
    fs::set_permissions(&g, fs::Permissions::from_mode(0o664)).unwrap();
    let e = policy_refused_as_untrusted(&s, &g);
    assert!(e.contains("writable by group or others"), "{e}");
    // ...or in a directory nobody owns (it could swap the file at any time).
    let nd = s.join("nobodydir");
    fs::create_dir(&nd).unwrap();
    chown(&nd, Some(NOBODY), Some(NOBODY)).unwrap();
    let n = nd.join("policy.yaml");
    fs::write(&n, POLICY).unwrap();
    let e = policy_refused_as_untrusted(&s, &n);
    assert!(e.contains("uid 65534"), "{e}");

    // Control: the same text, root-owned 0644 in a trusted directory, starts the child.
    let ok = s.join("ok.yaml");
    fs::write(&ok, POLICY).unwrap();
    let (code, events, ran) = policy_start(&s, &ok);
    assert_eq!(code, 0, "{events:?}");
    assert!(ran);
}

#[test]
fn policy_file_reached_through_a_planted_symlink_is_refused() {
    require_root();
    let s = Scratch::new("policy-link");
    let good = s.join("trusted.yaml");
    fs::write(&good, POLICY).unwrap();
    // nobody's directory holds a (nobody-owned) link to a perfectly trusted policy: the
    // link could point anywhere tomorrow, so it is not followed.
    let nd = s.join("userdir");
    fs::create_dir(&nd).unwrap();
    chown(&nd, Some(NOBODY), Some(NOBODY)).unwrap();
    let link = nd.join("policy.yaml");
    symlink(&good, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &link);
    assert!(e.contains("symlink"), "{e}");
    // A directory on the way that is nobody's link.
    let dirlink = nd.join("etc");
    symlink(s.path.clone(), &dirlink).unwrap();
    std::os::unix::fs::lchown(&dirlink, Some(NOBODY), Some(NOBODY)).unwrap();
    policy_refused_as_untrusted(&s, &dirlink.join("trusted.yaml"));
    // /proc magic links name whatever the opener has open.
    let (code, events, ran) = policy_start(&s, Path::new("/dev/stdin"));
    assert_eq!(code, 78);
    assert!(!ran);
    assert!(error_of(&events, "policy.untrusted").contains("/proc"));
}

#[test]
fn policy_file_that_is_a_fifo_or_huge_is_refused_without_blocking() {
    require_root();
    let s = Scratch::new("policy-fifo");
    let fifo = s.join("policy.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // A FIFO nobody writes to would block an open or a read forever.
    let (code, events, ran) = policy_start(&s, &fifo);
    assert_eq!(code, 78);
    assert!(!ran);
    let e = error_of(&events, "policy.untrusted");
    assert!(e.contains("FIFO"), "{e}");
    // 2 MiB of valid YAML comments: refused by size, not parsed.
    let big = s.join("big.yaml");
    let mut text = String::from(POLICY);
    while text.len() < 2 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    fs::write(&big, text).unwrap();
    let (code, events, ran) = policy_start(&s, &big);
    assert_eq!(code, 78);
    assert!(!ran);
    let e = error_of(&events, "policy.invalid");
    assert!(e.contains("over the 1048576-byte limit"), "{e}");
}

/// The reported escalation: `read_write: [/proc/self/root]` passed `check` and a real
/// start, and the child could then write anywhere.
#[test]
fn policy_read_write_proc_self_root_is_refused() {
    require_root();
    let s = Scratch::new("policy-procroot");
    let p = s.join("policy.yaml");
    fs::write(
        &p,
        POLICY.replace(
            "read_write: [/dev/null]",
            "read_write: [/dev/null, /proc/self/root]",
        ),
    )
    .unwrap();
    let (code, events, ran) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(!ran);
    let ev = named(&events, "policy.invalid");
    assert_eq!(ev[0]["field"], "filesystem_policy.read_write[1]");
    let (ccode, out) = policy_check(&p);
    assert_eq!(ccode, 78, "{out}");
    assert!(out.contains("filesystem_policy.read_write[1]"), "{out}");
    // A second spelling of the same directory: a root-owned link to /.
    let link = s.join("everything");
    symlink("/", &link).unwrap();
    fs::write(
        &p,
        POLICY.replace(
            "read_write: [/dev/null]",
            &format!("read_write: [/dev/null, {}]", link.display()),
        ),
    )
    .unwrap();
    let (code, events, _) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(error_of(&events, "policy.invalid").contains("same device and inode as /"));
}

/// The reported escalation: a read_only tree under a read_write one, replaced by the
/// workload with a symlink to / between runs, granted read on everything at the next run.
#[test]
fn policy_read_only_tree_swapped_for_a_link_to_root_is_refused_next_start() {
    require_root();
    let s = Scratch::new("policy-swap");
    let ws = s.join("ws");
    let docs = ws.join("docs");
    fs::create_dir_all(&docs).unwrap();
    for d in [&ws, &docs] {
        chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let p = s.join("policy.yaml");
    fs::write(
        &p,
        POLICY
            .replace(
                "read_only: [/usr, /lib, /lib64, /bin, /etc]",
                &format!(
                    "read_only: [/usr, /lib, /lib64, /bin, /etc, {}]",
                    docs.display()
                ),
            )
            .replace(
                "read_write: [/dev/null]",
                &format!("read_write: [/dev/null, {}]", ws.display()),
            ),
    )
    .unwrap();
    let (code, events, _) = policy_start(&s, &p);
    assert_eq!(code, 0, "{events:?}");
    // Between runs, the workload (nobody, owner of its workspace) swaps the tree.
    let st = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("rmdir {d} && ln -s / {d}", d = docs.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let (code, events, ran) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(!ran);
    let ev = named(&events, "policy.invalid");
    assert_eq!(ev[0]["field"], "filesystem_policy.read_only[5]");
    let e = ev[0]["error"].as_str().unwrap();
    assert!(
        e.contains(&format!("{} is a symlink", docs.display())) && e.contains("uid 65534"),
        "names the path and who could have planted it: {e}"
    );
}
