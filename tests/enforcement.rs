//! Enforcement, proven by attempt: the real `supervisor` binary runs `sandbox-probe` as its
//! child under a policy written here, and the probe *tries* each forbidden thing and
//! reports the errno it got. Runs as root (CI does), because the supervisor drops the
//! child from root to `nobody` exactly as in a sandbox image.

use openshell_supervisor::contract::status::Status;
use openshell_supervisor::contract::{Phase, Reason};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");
const NOBODY: u32 = 65534;
const EPERM: i64 = 1;
const EACCES: i64 = 13;
const ENOSYS: i64 = 38;

fn require_root() {
    // SAFETY: no arguments.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the enforcement tests run as root (the supervisor drops the child from root); run them with sudo"
    );
    let pw = fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        pw.lines().any(|l| l.starts_with("nobody:x:65534:")),
        "the tests need the standard nobody user (uid 65534)"
    );
}

/// A scratch tree under /tmp, readable by `nobody`, removed on drop.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        require_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/openshell-enforce-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let env = Env { dir };
        // rw: the child's workspace. ro: world-writable by mode, so only Landlock can stop
        // a write. secret: world-readable by mode, so only Landlock can stop a read.
        for (sub, mode) in [
            ("bin", 0o755),
            ("rw", 0o777),
            ("ro", 0o777),
            ("secret", 0o755),
        ] {
            let p = env.path(sub);
            fs::create_dir(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::create_dir(env.path("status")).unwrap();
        fs::write(env.path("secret/data"), "secret\n").unwrap();
        fs::write(env.path("ro/data"), "public\n").unwrap();
        for f in ["secret/data", "ro/data"] {
            fs::set_permissions(env.path(f), fs::Permissions::from_mode(0o666)).unwrap();
        }
        // The probe is copied in so the policy needs no access to the build tree.
        fs::copy(PROBE, env.probe()).unwrap();
        env
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn probe(&self) -> PathBuf {
        self.path("bin/sandbox-probe")
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Writes a policy granting the probe's directory (read-only) and rw/ (read-write),
    /// with `extra` YAML appended, and returns its path.
    fn policy(&self, process: &str, extra: &str) -> PathBuf {
        let text = format!(
            "version: 1
filesystem_policy:
  include_workdir: false
  read_only: [{bin}, /proc, {ro}, /dev/urandom]
  read_write: [{rw}, /dev/null]
process:
{process}
{extra}",
            bin = self.p("bin"),
            ro = self.p("ro"),
            rw = self.p("rw"),
        );
        let path = self.path("policy.yaml");
        fs::write(&path, text).unwrap();
        path
    }

    fn default_policy(&self) -> PathBuf {
        self.policy("  run_as_user: nobody\n  run_as_group: nogroup", "")
    }

    fn status(&self) -> Status {
        Status::read(&self.path("status")).expect("status.json")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    code: i32,
    /// The probe's JSON lines.
    out: Vec<Value>,
    /// The supervisor's JSON log lines.
    log: Vec<Value>,
}

impl Run {
    /// errno of the first `op` line, for operations that print one line.
    fn errno(&self, op: &str) -> i64 {
        self.op(op)["errno"]
            .as_i64()
            .unwrap_or_else(|| panic!("no errno for {op}"))
    }

    fn op(&self, op: &str) -> &Value {
        self.out
            .iter()
            .find(|v| v["op"] == op)
            .unwrap_or_else(|| panic!("probe printed no {op:?} line; got {:?}", self.out))
    }

    fn all(&self, op: &str) -> Vec<&Value> {
        self.out.iter().filter(|v| v["op"] == op).collect()
    }

    /// The syscall battery as op → errno.
    fn battery(&self) -> BTreeMap<String, i64> {
        battery(&self.out)
    }

    fn event(&self, name: &str) -> Option<&Value> {
        self.log.iter().find(|v| v["event"] == name)
    }
}

fn battery(lines: &[Value]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut on = false;
    for v in lines {
        if v["op"] == "mount" {
            on = true;
        }
        if on {
            m.insert(
                v["op"].as_str().unwrap().to_string(),
                v["errno"].as_i64().unwrap(),
            );
        }
        if v["op"] == "getpid" {
            on = false;
        }
    }
    m
}

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Runs `cmd` to completion (60 s at most), with stdin from /dev/null.
fn finish(mut cmd: Command) -> (i32, Vec<u8>, Vec<u8>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        out.read_to_end(&mut b).unwrap();
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        err.read_to_end(&mut b).unwrap();
        b
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let code = status.code().unwrap_or(-1);
    (code, t_out.join().unwrap(), t_err.join().unwrap())
}

/// The supervisor with `args` before `--`, the probe with `ops` after it, started in rw/.
fn supervise(env: &Env, args: &[&str], ops: &[String]) -> Run {
    supervise_with(env, args, ops, |_| {})
}

fn supervise_with(
    env: &Env,
    args: &[&str],
    ops: &[String],
    tweak: impl FnOnce(&mut Command),
) -> Run {
    let mut cmd = Command::new(SUPERVISOR);
    cmd.args(args)
        .arg("--status-dir")
        .arg(env.path("status"))
        .arg("--")
        .arg(env.probe())
        .args(ops)
        .current_dir(env.path("rw"));
    tweak(&mut cmd);
    let (code, out, err) = finish(cmd);
    let run = Run {
        code,
        out: parse_lines(&out),
        log: parse_lines(&err),
    };
    eprintln!(
        "supervisor exit {code}; log:\n{}",
        String::from_utf8_lossy(&err)
    );
    run
}

/// The common case: the default policy, no hook, one generation.
fn run_confined(env: &Env, ops: &[String]) -> Run {
    let policy = env.default_policy();
    supervise(
        env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        ops,
    )
}

fn ops(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Every operation of the battery that must fail with EPERM (ENOSYS for clone3).
const DENIED: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "setns",
    "unshare_user",
    "unshare_net",
    "unshare_ns",
    "unshare_time",
    "clone_newuser",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "finit_module",
    "init_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "adjtimex",
    "clock_adjtime",
    "clock_settime",
    "settimeofday",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "acct",
    "ioctl_tiocsti",
    "ioctl_tiocsti_highbits",
    "ioctl_tioclinux",
    "ioctl_tioclinux_highbits",
    "socket_packet",
    "socket_vsock",
    "socket_alg",
    "socket_bluetooth",
    "socket_netlink_uevent",
    "socket_netlink_audit",
    // UDP: egress goes through the egress proxy only (tests/egress.rs has the rest).
    "socket_inet",
    "socketpair_packet",
    "personality_addr_no_randomize",
    "x32_getpid",
    "x32_mount",
    "x32_unshare",
];

/// Allowed neighbours: (op, expected errno). 0 = worked.
const ALLOWED: &[(&str, i64)] = &[
    ("memfd_create", 0),
    ("socket_unix", 0),
    ("socket_inet6", 0),
    ("socket_netlink_route", 0),
    ("socketpair_unix", 0),
    ("ioctl_tiocgwinsz", 25), // ENOTTY: stdin is /dev/null, and the call was not filtered
    ("ioctl_fionread", 0),
    ("fork", 0),
    ("thread", 0),
    ("unshare_files", 0),
    ("personality_query", 0),
    ("personality_linux", 0),
    ("getpid", 0),
];

/// Battery operations an unprivileged user *can* do outside the sandbox on this kind of
/// machine: their EPERM inside proves the seccomp filter, not the uid change, denied them.
/// (The rest — mount, modules, kexec… — need capabilities the child also lacks.)
const SECCOMP_ONLY: &[&str] = &[
    "open_tree",
    "setns",
    "unshare_user",
    "clone_newuser",
    "ptrace",
    "process_vm_readv",
    "pidfd_getfd",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "keyctl",
    "add_key",
    "adjtimex",
    "clock_adjtime",
    "iopl",
    "ioperm",
    "ioctl_tiocsti",
    "ioctl_tiocsti_highbits",
    "ioctl_tioclinux",
    "ioctl_tioclinux_highbits",
    "socket_netlink_uevent",
    "socket_netlink_audit",
    "socket_inet",
    "personality_addr_no_randomize",
    "x32_getpid",
    "x32_mount",
];

fn assert_battery(b: &BTreeMap<String, i64>) {
    for op in DENIED {
        assert_eq!(
            b.get(*op),
            Some(&EPERM),
            "{op} must be denied with EPERM; battery {b:?}"
        );
    }
    assert_eq!(b.get("clone3"), Some(&ENOSYS), "clone3 must answer ENOSYS");
    for (op, want) in ALLOWED {
        assert_eq!(
            b.get(*op),
            Some(want),
            "{op} must still work; battery {b:?}"
        );
    }
    assert_eq!(
        b.len(),
        DENIED.len() + 1 + ALLOWED.len(),
        "battery changed: {b:?}"
    );
}

fn status_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))
}

fn assert_confined_status(s: &Value) {
    assert_eq!(status_field(s, "Uid"), "65534 65534 65534 65534");
    assert_eq!(status_field(s, "Gid"), "65534 65534 65534 65534");
    assert_eq!(status_field(s, "Groups"), "65534");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(s, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(status_field(s, "NoNewPrivs"), "1");
    assert_eq!(status_field(s, "Seccomp"), "2");
    assert_eq!(status_field(s, "Seccomp_filters"), "1");
}

#[test]
fn filesystem_is_confined_by_landlock() {
    let env = Env::new("fs");
    let policy = env.default_policy();
    // /tmp itself is writable by anyone (mode 1777): only Landlock stands in the way.
    let outside = format!("{}-outside", env.dir.display());
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &[
            format!("read:{}", env.p("secret/data")),
            format!("write:{}", env.p("secret/new")),
            format!("write:{}", env.p("ro/new")),
            format!("write:{}", env.p("ro/data")),
            format!("read:{}", env.p("ro/data")),
            format!("write:{}", env.p("rw/new")),
            format!("read:{}", env.p("rw/new")),
            "read:/etc/hostname".into(),
            format!("write:{outside}"),
            "write:/dev/null".into(),
            "read:/dev/urandom".into(),
        ],
    );
    assert_eq!(run.code, 0);
    let reads: Vec<i64> = run
        .all("read")
        .iter()
        .map(|v| v["errno"].as_i64().unwrap())
        .collect();
    let writes: Vec<i64> = run
        .all("write")
        .iter()
        .map(|v| v["errno"].as_i64().unwrap())
        .collect();
    // secret/ is world-readable, ro/ world-writable: only Landlock can say no.
    assert_eq!(reads, [EACCES, 0, 0, EACCES, 0], "reads");
    assert_eq!(writes, [EACCES, EACCES, EACCES, 0, EACCES, 0], "writes");
    assert!(
        env.path("rw/new").exists(),
        "the write inside the read-write tree landed"
    );
    assert!(!env.path("ro/new").exists() && !env.path("secret/new").exists());
    let leaked = Path::new(&outside).exists();
    let _ = fs::remove_file(&outside);
    assert!(!leaked, "the child wrote {outside}");
    assert_eq!(
        fs::metadata(env.path("rw/new")).unwrap().uid(),
        NOBODY,
        "files the child creates belong to the policy's user"
    );
}

#[test]
fn denied_syscalls_fail_and_neighbours_work() {
    let env = Env::new("seccomp");
    let run = run_confined(&env, &ops(&["syscalls"]));
    assert_eq!(run.code, 0);
    assert_battery(&run.battery());

    // Control: the same battery as the same user, outside the sandbox. Everything in
    // SECCOMP_ONLY must get through there (or fail for another reason than EPERM).
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env.probe())
        .arg("syscalls")
        .current_dir(env.path("rw"));
    let (code, out, _) = finish(cmd);
    assert_eq!(code, 0);
    let control = battery(&parse_lines(&out));
    for op in SECCOMP_ONLY {
        let got = control.get(*op).copied();
        assert!(
            got.is_some() && got != Some(EPERM),
            "{op}: an unconfined nobody got {got:?}; the test would not prove seccomp"
        );
    }
    assert_ne!(control.get("clone3"), Some(&ENOSYS));
}

#[test]
fn child_runs_as_the_policy_user_with_nothing_left() {
    let env = Env::new("status");
    let policy = env.default_policy();
    // A setuid-root copy of the probe: with no_new_privs it must not raise anything.
    let suid = env.path("bin/suid-probe");
    fs::copy(PROBE, &suid).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &[
            "status".into(),
            format!("exec:{}", suid.display()),
            "env:HOME".into(),
            "env:USER".into(),
        ],
    );
    assert_eq!(run.code, 0);
    // The environment names the user the child runs as, not root.
    let env_of = |name: &str| {
        run.out
            .iter()
            .find(|l| l["op"] == "env" && l["name"] == name)
            .map(|l| l["value"].clone())
    };
    assert_eq!(env_of("HOME").unwrap(), "/nonexistent");
    assert_eq!(env_of("USER").unwrap(), "nobody");
    let s = run.op("status");
    assert_confined_status(s);
    let ids = run.op("ids");
    assert_eq!(
        ids["euid"], NOBODY,
        "setuid root binary raised privileges: {ids}"
    );
    assert_eq!(ids["suid"], NOBODY);
    assert_eq!(ids["CapEff"], "0000000000000000");
    assert_eq!(run.errno("exec"), 0);

    // Control: the same setuid copy run by nobody without no_new_privs does become root,
    // so the check above can fail.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&suid)
        .arg("ids");
    let (_, out, _) = finish(cmd);
    let control = parse_lines(&out);
    assert_eq!(
        control[0]["euid"], 0,
        "setuid bit not honoured here: {control:?}"
    );
}

#[test]
fn no_supervisor_fd_is_inherited() {
    let env = Env::new("fds");
    let policy = env.default_policy();
    let (r, w) = nix::unistd::pipe().unwrap();
    let (rfd, wfd) = (
        std::os::fd::AsRawFd::as_raw_fd(&r),
        std::os::fd::AsRawFd::as_raw_fd(&w),
    );
    let run = supervise_with(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &ops(&["fds"]),
        |cmd| {
            // SAFETY: dup2 in the forked test child, before exec: the supervisor starts
            // with a non-CLOEXEC fd 50, as if its own parent leaked one.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(rfd, 50) < 0 || libc::dup2(wfd, 51) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    drop((r, w));
    assert_eq!(run.code, 0);
    assert_eq!(
        run.op("fds")["open"],
        serde_json::json!([]),
        "fds above 2 reached the child"
    );
}

#[test]
fn supervisor_stays_unconfined_and_out_of_reach() {
    let env = Env::new("signal");
    let run = run_confined(&env, &ops(&["kill-parent", "status", "parent-status"]));
    assert_eq!(run.errno("kill-parent"), EPERM);
    assert_eq!(
        run.code, 0,
        "the supervisor carried on to the child's own exit"
    );
    let st = env.status();
    assert_eq!(
        st.phase,
        Phase::Completed,
        "a SIGTERM would have made it Stopped"
    );
    assert_eq!(
        run.op("status")["ppid"].as_u64().unwrap(),
        u64::from(st.supervisor.pid),
        "the probe's parent is the supervisor"
    );
    // The supervisor itself keeps root, its capabilities, and no filter.
    let sup = run.op("parent-status");
    assert_eq!(status_field(sup, "Uid"), "0 0 0 0");
    assert_eq!(status_field(sup, "Seccomp"), "0");
    assert_eq!(status_field(sup, "NoNewPrivs"), "0");
    assert_ne!(status_field(sup, "CapEff"), "0000000000000000");
}

#[test]
fn child_dies_with_the_supervisor() {
    let env = Env::new("pdeath");
    let policy = env.default_policy();
    let mut cmd = Command::new(SUPERVISOR);
    cmd.args([
        "--policy",
        policy.to_str().unwrap(),
        "--no-hook",
        "--restart",
        "never",
    ])
    .arg("--status-dir")
    .arg(env.path("status"))
    .arg("--")
    .arg(env.probe())
    .arg("sleep:60000")
    .current_dir(env.path("rw"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut sup = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let child = loop {
        if let Some(c) = Status::read(&env.path("status")).ok().and_then(|s| s.child) {
            break c.pid;
        }
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Give the child time to get past pre_exec into the probe.
    let exe = format!("/proc/{child}/exe");
    while fs::read_link(&exe)
        .map(|p| p != env.probe())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the child never exec'd the probe"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sup.kill().unwrap(); // SIGKILL: no chance to stop the child itself
    sup.wait().unwrap();
    // The orphan is reparented to init, which reaps it once PR_SET_PDEATHSIG killed it.
    let gone = |pid: u32| match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    };
    while !gone(child) {
        if Instant::now() > deadline {
            // SAFETY: killing the probe we started, by pid.
            unsafe { libc::kill(child as i32, libc::SIGKILL) };
            panic!("the child outlived the supervisor");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn second_generation_is_confined_like_the_first() {
    let env = Env::new("restart");
    let policy = env.default_policy();
    let marker = env.p("rw/crashed-once");
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "on-failure",
            "--backoff-initial",
            "50ms",
        ],
        &[
            "status".into(),
            "syscalls".into(),
            format!("read:{}", env.p("secret/data")),
            format!("write:{}", env.p("ro/new")),
            format!("crash-once:{marker}"),
        ],
    );
    assert_eq!(run.code, 0, "the second generation exits 0");
    let st = env.status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.restarts, 1);
    assert_eq!(st.child.as_ref().unwrap().generation, 2);
    let crash = run.all("crash-once");
    assert_eq!(crash.len(), 2);
    assert_eq!(crash[0]["first"], true);
    assert_eq!(crash[1]["first"], false);
    // Split the output at the first generation's crash line.
    let cut = run
        .out
        .iter()
        .position(|v| v["op"] == "crash-once")
        .unwrap()
        + 1;
    let (first, second) = run.out.split_at(cut);
    let strip = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .filter(|v| v["op"] != "crash-once")
            .cloned()
            .collect()
    };
    let (first, second) = (strip(first), strip(second));
    assert_eq!(
        first
            .iter()
            .filter(|v| v["op"] != "status")
            .collect::<Vec<_>>(),
        second
            .iter()
            .filter(|v| v["op"] != "status")
            .collect::<Vec<_>>(),
        "both generations must see exactly the same denials"
    );
    for gen in [&first, &second] {
        assert_confined_status(gen.iter().find(|v| v["op"] == "status").unwrap());
        assert_battery(&battery(gen));
        let rw: Vec<_> = gen
            .iter()
            .filter(|v| v["op"] == "read" || v["op"] == "write")
            .collect();
        assert_eq!(rw.len(), 2);
        assert!(rw.iter().all(|v| v["errno"] == EACCES), "{rw:?}");
    }
    // One prepared sandbox, logged once, reused for the restart.
    assert_eq!(
        run.log
            .iter()
            .filter(|v| v["event"] == "enforce.prepared")
            .count(),
        1
    );
}

/// Writes a trusted hook (root-owned, 0755, in a root-owned 0755 directory).
fn hook(env: &Env, body: &str) -> PathBuf {
    let dir = env.path("hooks");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let h = dir.join("boot.sh");
    fs::write(&h, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    fs::set_permissions(&h, fs::Permissions::from_mode(0o755)).unwrap();
    h
}

#[test]
fn hook_is_not_confined() {
    let env = Env::new("hook");
    let policy = env.default_policy();
    let h = hook(
        &env,
        &format!(
            "echo from-hook > {s}/by-hook\nid -u > {s}/hook-uid\n",
            s = env.p("secret")
        ),
    );
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--hook",
            h.to_str().unwrap(),
            "--restart",
            "never",
        ],
        &[
            format!("write:{}", env.p("secret/by-child")),
            format!("read:{}", env.p("secret/by-hook")),
            "status".into(),
        ],
    );
    assert_eq!(run.code, 0);
    // The hook wrote, as root, where the child can neither write nor read.
    assert_eq!(
        fs::read_to_string(env.path("secret/by-hook")).unwrap(),
        "from-hook\n"
    );
    assert_eq!(
        fs::read_to_string(env.path("secret/hook-uid")).unwrap(),
        "0\n"
    );
    let errnos: Vec<_> = [run.all("write")[0], run.all("read")[0]]
        .iter()
        .map(|v| v["errno"].as_i64().unwrap())
        .collect();
    assert_eq!(errnos, [EACCES, EACCES]);
    assert!(!env.path("secret/by-child").exists());
    assert_confined_status(run.op("status"));
}

#[test]
fn missing_user_fails_before_anything_runs() {
    let env = Env::new("nouser");
    let policy = env.policy("  run_as_user: openshell-no-such-user", "");
    let h = hook(&env, &format!("touch {}", env.p("rw/hook-ran")));
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--hook",
            h.to_str().unwrap(),
            "--restart",
            "never",
        ],
        &ops(&["status"]),
    );
    assert_eq!(run.code, 78, "config error exit code");
    assert!(run.out.is_empty(), "the child ran: {:?}", run.out);
    assert!(
        !env.path("rw/hook-ran").exists(),
        "the hook ran before the policy was checked"
    );
    let ev = run.event("policy.invalid").expect("policy.invalid event");
    assert_eq!(ev["field"], "process.run_as_user");
    let msg = ev["error"].as_str().unwrap();
    assert!(msg.contains(policy.to_str().unwrap()), "{msg}");
    assert!(
        msg.contains("openshell-no-such-user") && msg.contains("/etc/passwd"),
        "{msg}"
    );
    let st = env.status();
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(st.reason, Some(Reason::ConfigInvalid));
}

#[test]
fn failed_setuid_names_the_stage() {
    let env = Env::new("setuid");
    let policy = env.default_policy();
    // Root without CAP_SETUID in its bounding set (so none after exec): the child's real
    // setresuid call is refused by the kernel.
    let run = supervise_with(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &ops(&["status"]),
        |cmd| {
            let prog = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            let mut wrapped = Command::new("setpriv");
            wrapped.arg("--bounding-set=-setuid").arg(prog).args(args);
            wrapped.current_dir(env.path("rw"));
            *cmd = wrapped;
        },
    );
    assert_eq!(run.code, 83, "enforcement exit code");
    assert!(run.out.is_empty(), "the child ran: {:?}", run.out);
    let ev = run.event("enforce.failed").expect("enforce.failed event");
    assert_eq!(ev["stage"], "setuid");
    assert_eq!(ev["errno"], EPERM);
    let st = env.status();
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(st.reason, Some(Reason::EnforcementFailed));
    assert!(st.message.unwrap().contains("stage setuid"));
}

/// A free loopback TCP port with a listener on it (kept open by the returned socket).
fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn free_port() -> u16 {
    listener().1
}

#[test]
fn tcp_ports_are_confined_when_listed() {
    let env = Env::new("tcp");
    let (bind_ok, bind_no) = (free_port(), free_port());
    let (_l1, conn_ok) = listener();
    let (_l2, conn_no) = listener();
    let policy = env.policy(
        "  run_as_user: nobody\n  run_as_group: nogroup",
        &format!("landlock:\n  tcp_bind: [{bind_ok}]\n  tcp_connect: [{conn_ok}]\n"),
    );
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &[
            format!("tcp-bind:{bind_ok}"),
            format!("tcp-bind:{bind_no}"),
            format!("tcp-connect:{conn_ok}"),
            format!("tcp-connect:{conn_no}"),
        ],
    );
    assert_eq!(run.code, 0);
    let b: Vec<_> = run
        .all("tcp-bind")
        .iter()
        .map(|v| v["errno"].as_i64().unwrap())
        .collect();
    let c: Vec<_> = run
        .all("tcp-connect")
        .iter()
        .map(|v| v["errno"].as_i64().unwrap())
        .collect();
    assert_eq!(b, [0, EACCES]);
    assert_eq!(c, [0, EACCES]);

    // Without the lists, bind is not restricted; connect is (no network_policies means no
    // egress, as in OpenShell; tests/egress.rs covers the proxy).
    let run = run_confined(
        &env,
        &[
            format!("tcp-bind:{bind_no}"),
            format!("tcp-connect:{conn_no}"),
        ],
    );
    assert_eq!(run.errno("tcp-bind"), 0);
    assert_eq!(run.errno("tcp-connect"), EACCES);
}

#[test]
fn abstract_unix_sockets_outside_are_unreachable() {
    let env = Env::new("abstract");
    let name = format!("openshell-test-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    // Control: reachable from outside the sandbox.
    std::os::unix::net::UnixStream::connect_addr(&addr).expect("control connect");
    let run = run_confined(&env, &[format!("abstract-connect:{name}")]);
    drop(listener);
    assert_eq!(run.errno("abstract-connect"), EPERM);
}

#[test]
fn seccomp_list_follows_the_policy() {
    let env = Env::new("seccomp-policy");
    let policy = env.policy(
        "  run_as_user: nobody\n  run_as_group: nogroup",
        "seccomp:\n  allow: [keyctl, clone3]\n  deny: [memfd_create, getpid]\n",
    );
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &ops(&["syscalls"]),
    );
    assert_eq!(run.code, 0);
    let b = run.battery();
    assert_eq!(b["keyctl"], 0, "allowed by the policy");
    assert_eq!(b["clone3"], 0, "allowed by the policy");
    assert_eq!(b["memfd_create"], EPERM, "denied by the policy");
    assert_eq!(b["getpid"], EPERM, "denied by the policy");
    assert_eq!(b["add_key"], EPERM, "the rest of the list stays");
    assert_eq!(b["socket_unix"], 0);
}

#[test]
fn unprivileged_supervisor_running_as_the_policy_user() {
    let env = Env::new("unpriv");
    fs::set_permissions(env.path("status"), fs::Permissions::from_mode(0o777)).unwrap();
    let policy = env.default_policy();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
    let run = supervise_with(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        &ops(&["status", "syscalls"]),
        |cmd| {
            let prog = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            let mut wrapped = Command::new("setpriv");
            wrapped
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(prog)
                .args(args);
            wrapped.current_dir(env.path("rw"));
            *cmd = wrapped;
        },
    );
    assert_eq!(run.code, 0);
    assert!(run.event("enforce.identity_kept").is_some());
    assert!(run.event("enforce.bounding_kept").is_some());
    let s = run.op("status");
    assert_eq!(status_field(s, "Uid"), "65534 65534 65534 65534");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(s, cap), "0000000000000000", "{cap}");
    }
    // Without CAP_SETPCAP the bounding set stays; no_new_privs keeps it from mattering.
    assert_ne!(status_field(s, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(s, "NoNewPrivs"), "1");
    assert_eq!(status_field(s, "Seccomp"), "2");
    assert_battery(&run.battery());
}

#[test]
fn no_policy_runs_unconfined_and_says_so() {
    let env = Env::new("nopolicy");
    let run = supervise(
        &env,
        &["--no-policy", "--no-hook", "--restart", "never"],
        &ops(&["status"]),
    );
    assert_eq!(run.code, 0);
    assert!(run.event("enforce.disabled").is_some());
    let s = run.op("status");
    assert_eq!(status_field(s, "Seccomp"), "0");
    assert_eq!(status_field(s, "Uid"), "0 0 0 0");
}

fn kernel_landlock_abi() -> i64 {
    // SAFETY: the version query takes no pointer.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) }
}

fn check(policy: &Path) -> (i32, String) {
    let mut cmd = Command::new(SUPERVISOR);
    cmd.args(["check", "--policy"]).arg(policy);
    let (code, out, _) = finish(cmd);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn check_reports_what_the_kernel_enforces() {
    let env = Env::new("check");
    let abi = kernel_landlock_abi();
    assert!(
        abi >= 6,
        "this machine's kernel must offer Landlock ABI >= 6, got {abi}"
    );
    let policy = env.policy(
        "  run_as_user: nobody",
        "landlock:\n  compatibility: best_effort\n  tcp_connect: [443]\nseccomp:\n  deny: [memfd_create]\n",
    );
    let (code, out) = check(&policy);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("kernel ABI {abi}")), "{out}");
    assert!(
        out.contains("uid 65534 (nobody), gid 65534 (nogroup)"),
        "{out}"
    );
    assert!(
        out.contains("scoping    abstract_unix_socket, signal"),
        "{out}"
    );
    assert!(out.contains("tcp connect: 443"), "{out}");
    assert!(out.contains("policy denies memfd_create"), "{out}");
    assert!(out.contains("ENOSYS     clone3"), "{out}");
    assert!(out.contains("result       OK"), "{out}");

    // Invalid: exit 78, with the file and the field.
    let bad = env.policy(
        "  run_as_user: nobody",
        "landlock:\n  compatibility: sometimes\n",
    );
    let (code, out) = check(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains(bad.to_str().unwrap()) && out.contains("sometimes"),
        "{out}"
    );
    let bad = env.policy("  run_as_user: nobody", "seccomp:\n  allow: [read]\n");
    let (code, out) = check(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("seccomp.allow[0]"), "{out}");

    // hard_requirement: refused exactly when this kernel lacks a right we ask for
    // (resolve_unix needs ABI 9).
    let hard = env.policy(
        "  run_as_user: nobody",
        "landlock:\n  compatibility: hard_requirement\n",
    );
    let (code, out) = check(&hard);
    if abi < 9 {
        assert_eq!(code, 83, "{out}");
        assert!(
            out.contains("NOT ENFORCED on this kernel: resolve_unix"),
            "{out}"
        );
        assert!(out.contains("FAIL: hard_requirement"), "{out}");
    } else {
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn hard_requirement_refuses_to_start_when_unmet() {
    let env = Env::new("hard");
    let abi = kernel_landlock_abi();
    let policy = env.policy(
        "  run_as_user: nobody\n  run_as_group: nogroup",
        "landlock:\n  compatibility: hard_requirement\n",
    );
    let h = hook(&env, &format!("touch {}", env.p("rw/hook-ran")));
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--hook",
            h.to_str().unwrap(),
            "--restart",
            "never",
        ],
        &ops(&["status"]),
    );
    if abi >= 9 {
        assert_eq!(run.code, 0);
        return;
    }
    assert_eq!(run.code, 83);
    assert!(run.out.is_empty());
    assert!(!env.path("rw/hook-ran").exists(), "nothing may run");
    let ev = run
        .event("enforce.unsupported")
        .expect("enforce.unsupported event");
    assert_eq!(ev["field"], "landlock.compatibility");
    assert!(ev["error"].as_str().unwrap().contains("resolve_unix"));
    let st = env.status();
    assert_eq!(st.reason, Some(Reason::EnforcementFailed));
}

#[test]
fn paths_the_hook_creates_are_granted_to_the_child() {
    let env = Env::new("hook-creates");
    // The policy names a workspace that only the hook creates.
    let ws = env.p("workspace");
    let text = format!(
        "version: 1
filesystem_policy:
  read_only: [{bin}, /proc]
  read_write: [{ws}, /dev/null]
process:
  run_as_user: nobody
  run_as_group: nogroup
",
        bin = env.p("bin"),
    );
    let policy = env.path("policy.yaml");
    fs::write(&policy, text).unwrap();
    let h = hook(&env, &format!("mkdir {ws}\nchown nobody:nogroup {ws}\n"));
    let run = supervise(
        &env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--hook",
            h.to_str().unwrap(),
            "--restart",
            "never",
        ],
        &[
            format!("write:{ws}/by-child"),
            format!("write:{}", env.p("rw/outside")),
        ],
    );
    assert_eq!(run.code, 0);
    let writes: Vec<i64> = run
        .out
        .iter()
        .filter(|l| l["op"] == "write")
        .map(|l| l["errno"].as_i64().unwrap())
        .collect();
    assert_eq!(writes, [0, EACCES], "workspace writable, rest still denied");
    assert!(env.path("workspace/by-child").exists());
    assert!(
        run.log
            .iter()
            .all(|l| l["event"] != "landlock.path_missing"),
        "the workspace existed when the sandbox was built"
    );
}

// ---- policy paths are objects -------------------------------------------------------
//
// Each variant of "a path the policy could not have meant" is proven by a real start:
// either the start is refused naming the field (exit 78, nothing runs), or the child's
// attempt fails with EACCES.

/// A policy granting `ro` read-only and `rw` read-write (plus the probe), run as nobody.
fn paths_policy(env: &Env, ro: &[String], rw: &[String], extra: &str) -> PathBuf {
    let q = |v: &[String]| {
        v.iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "version: 1
filesystem_policy:
  read_only: [{bin}, {ro}]
  read_write: [{rw}]
process:
  run_as_user: nobody
  run_as_group: nogroup
{extra}",
        bin = env.p("bin"),
        ro = q(ro),
        rw = q(rw),
    );
    let path = env.path("policy.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn start(env: &Env, policy: &Path, ops: &[String]) -> Run {
    supervise(
        env,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--no-hook",
            "--restart",
            "never",
        ],
        ops,
    )
}

/// Asserts a refused start (exit 78, the child never ran) naming `field`; returns the error.
fn refused(run: &Run, field: &str) -> String {
    assert_eq!(run.code, 78, "the start must be refused");
    assert!(run.out.is_empty(), "the child ran: {:?}", run.out);
    let ev = run.event("policy.invalid").expect("policy.invalid event");
    assert_eq!(ev["field"], field, "{ev}");
    ev["error"].as_str().unwrap().to_string()
}

/// A directory owned by nobody (the workload's), mode 0755.
fn nobody_dir(env: &Env, rel: &str) -> PathBuf {
    let p = env.path(rel);
    fs::create_dir_all(&p).unwrap();
    std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    p
}

#[test]
fn policy_path_root_is_recognised_by_identity_not_spelling() {
    let env = Env::new("rootid");
    std::os::unix::fs::symlink("/", env.path("rootlink")).unwrap();
    let bind = env.path("bindroot");
    fs::create_dir(&bind).unwrap();
    let st = Command::new("mount")
        .args(["--bind", "/"])
        .arg(&bind)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind / failed");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _umount = Umount(bind.clone());

    // read_write on /, spelled three other ways: refused, naming the field.
    for (spelling, why) in [
        ("/proc/self/root".to_string(), "magic link"),
        (env.p("rootlink"), "root directory"),
        (env.p("bindroot"), "root directory"),
    ] {
        let policy = paths_policy(&env, &[], &[env.p("rw"), spelling.clone()], "");
        let run = start(&env, &policy, &ops(&["status"]));
        let e = refused(&run, "filesystem_policy.read_write[1]");
        assert!(e.contains(why) && e.contains(&spelling), "{spelling}: {e}");
    }
    // read_only of / is allowed only as /.
    let policy = paths_policy(&env, &[env.p("rootlink")], &[env.p("rw")], "");
    let e = refused(
        &start(&env, &policy, &ops(&["status"])),
        "filesystem_policy.read_only[1]",
    );
    assert!(e.contains("write / if"), "{e}");
    let policy = paths_policy(&env, &["/".into()], &[env.p("rw")], "");
    let run = start(
        &env,
        &policy,
        &[
            format!("read:{}", env.p("secret/data")),
            format!("write:{}", env.p("secret/new")),
            format!("write:{}", env.p("rw/new")),
        ],
    );
    assert_eq!(run.code, 0);
    let r: Vec<i64> = run
        .out
        .iter()
        .map(|l| l["errno"].as_i64().unwrap())
        .collect();
    assert_eq!(r, [0, EACCES, 0], "/ readable, still not writable");
}

#[test]
fn policy_path_symlink_planted_between_runs_is_refused() {
    let env = Env::new("planted");
    let ws = nobody_dir(&env, "ws");
    let ro = nobody_dir(&env, "ws/ro");
    fs::write(ro.join("data"), "ro\n").unwrap();
    nobody_dir(&env, "ws/a");
    nobody_dir(&env, "ws/a/b");
    let policy = paths_policy(
        &env,
        &[ro.display().to_string()],
        &[ws.display().to_string()],
        "",
    );
    // Run 1: the workload replaces the read_only tree inside its workspace by a link to /.
    let run = start(&env, &policy, &[format!("plant:{}=/", ro.display())]);
    assert_eq!(run.code, 0);
    assert_eq!(run.errno("plant"), 0, "the workload can do this");
    assert!(fs::symlink_metadata(&ro).unwrap().file_type().is_symlink());
    // Run 2: refused, naming the path, the link and who could have planted it.
    let run = start(&env, &policy, &ops(&["status"]));
    let e = refused(&run, "filesystem_policy.read_only[1]");
    assert!(e.contains(&format!("{} is a symlink", ro.display())), "{e}");
    assert!(e.contains("uid 65534"), "{e}");

    // Second spelling: a directory on the way is swapped, not the listed path itself.
    let deep = format!("{}/a/b", ws.display());
    let policy = paths_policy(
        &env,
        std::slice::from_ref(&deep),
        &[ws.display().to_string()],
        "",
    );
    let run = start(
        &env,
        &policy,
        &[format!("plant:{}/a={}", ws.display(), env.p("secret"))],
    );
    assert_eq!(run.errno("plant"), 0);
    let e = refused(
        &start(&env, &policy, &ops(&["status"])),
        "filesystem_policy.read_only[1]",
    );
    assert!(
        e.contains(&format!("{}/a is a symlink", ws.display())),
        "{e}"
    );

    // Third: the workspace itself, in a directory the workload owns, swapped for a link to
    // a tree it must not write (by the workload, from outside this sandbox).
    let home = nobody_dir(&env, "home");
    let space = nobody_dir(&env, "home/space");
    let policy = paths_policy(&env, &[], &[space.display().to_string()], "");
    assert_eq!(start(&env, &policy, &ops(&["status"])).code, 0);
    let st = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!(
            "rmdir {s} && ln -s {t} {s}",
            s = space.display(),
            t = env.p("secret")
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let e = refused(
        &start(&env, &policy, &ops(&["status"])),
        "filesystem_policy.read_write[0]",
    );
    assert!(
        e.contains(&home.display().to_string()) && e.contains("uid 65534"),
        "{e}"
    );
}

#[test]
fn policy_path_proc_magic_links_are_refused() {
    let env = Env::new("magic");
    for (i, p) in [
        "/dev/stdin",
        "/dev/fd/1",
        "/proc/self/cwd",
        "/proc/1/root",
        "/proc/thread-self/root",
    ]
    .into_iter()
    .enumerate()
    {
        let policy = if i % 2 == 0 {
            paths_policy(&env, &[p.to_string()], &[env.p("rw")], "")
        } else {
            paths_policy(&env, &[], &[env.p("rw"), p.to_string()], "")
        };
        let field = if i % 2 == 0 {
            "filesystem_policy.read_only[1]"
        } else {
            "filesystem_policy.read_write[1]"
        };
        let e = refused(&start(&env, &policy, &ops(&["status"])), field);
        assert!(e.contains("magic link"), "{p}: {e}");
    }
}

#[test]
fn policy_path_proc_self_grants_nothing_and_says_so() {
    let env = Env::new("procself");
    let policy = paths_policy(&env, &["/proc/self".into()], &[env.p("rw")], "");
    let run = start(&env, &policy, &ops(&["read:/proc/self/status"]));
    assert_eq!(run.code, 0);
    let ev = run
        .event("landlock.path_skipped")
        .expect("landlock.path_skipped");
    assert_eq!(ev["field"], "filesystem_policy.read_only[1]");
    assert_eq!(
        run.errno("read"),
        EACCES,
        "the supervisor's /proc/self is not the child's, and nothing else grants it"
    );
    // hard_requirement cannot honour it: refused.
    let policy = paths_policy(
        &env,
        &["/proc/self".into()],
        &[env.p("rw")],
        "landlock:\n  compatibility: hard_requirement\n",
    );
    let run = start(&env, &policy, &ops(&["status"]));
    if kernel_landlock_abi() >= 9 {
        assert_eq!(run.code, 83);
        let ev = run
            .event("enforce.unsupported")
            .expect("enforce.unsupported");
        assert_eq!(ev["field"], "filesystem_policy.read_only[1]");
    } else {
        assert_eq!(
            run.code, 83,
            "refused either way (resolve_unix or /proc/self)"
        );
    }
    assert!(run.out.is_empty());
}

#[test]
fn policy_path_devices_fifos_and_missing_paths() {
    let env = Env::new("devfifo");
    let ws = nobody_dir(&env, "ws");
    // A device node inside the workload's directory (a planted or bind-mounted one).
    let dev = ws.join("null");
    nix::sys::stat::mknod(
        &dev,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let policy = paths_policy(&env, &[], &[env.p("rw"), dev.display().to_string()], "");
    let e = refused(
        &start(&env, &policy, &ops(&["status"])),
        "filesystem_policy.read_write[1]",
    );
    assert!(e.contains("device") && e.contains("uid 65534"), "{e}");
    // The image's own /dev/null is fine (the default policy lists it).
    // A FIFO as a policy path neither blocks the start nor grants more than itself.
    let fifo = ws.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    fs::write(ws.join("other"), "x\n").unwrap();
    let policy = paths_policy(&env, &[fifo.display().to_string()], &[env.p("rw")], "");
    let run = start(
        &env,
        &policy,
        &[format!("read:{}", ws.join("other").display())],
    );
    assert_eq!(run.code, 0, "a FIFO path does not block the start");
    assert_eq!(run.errno("read"), EACCES, "its directory is not granted");
    // hard_requirement refuses a missing path; best_effort logs it and starts.
    let gone = env.p("no-such-dir");
    let policy = paths_policy(&env, std::slice::from_ref(&gone), &[env.p("rw")], "");
    let run = start(&env, &policy, &ops(&["status"]));
    assert_eq!(run.code, 0);
    let ev = run
        .event("landlock.path_missing")
        .expect("landlock.path_missing");
    assert_eq!(ev["field"], "filesystem_policy.read_only[1]");
    let policy = paths_policy(
        &env,
        &[gone],
        &[env.p("rw")],
        "landlock:\n  compatibility: hard_requirement\n",
    );
    let run = start(&env, &policy, &ops(&["status"]));
    assert_eq!(run.code, 83);
    assert!(run.out.is_empty());
}

#[test]
fn policy_path_trusted_symlinks_are_still_followed() {
    let env = Env::new("trustedlink");
    // A root-owned link in a root-owned directory (like /lib -> usr/lib): followed, and the
    // rule is on its target.
    std::os::unix::fs::symlink(env.path("ro"), env.path("ro-link")).unwrap();
    let policy = paths_policy(&env, &[env.p("ro-link")], &[env.p("rw")], "");
    let run = start(
        &env,
        &policy,
        &[
            format!("read:{}", env.p("ro/data")),
            format!("read:{}", env.p("ro-link/data")),
            format!("write:{}", env.p("ro/new")),
            format!("read:{}", env.p("secret/data")),
        ],
    );
    assert_eq!(run.code, 0);
    let r: Vec<i64> = run
        .out
        .iter()
        .map(|l| l["errno"].as_i64().unwrap())
        .collect();
    assert_eq!(r, [0, 0, EACCES, EACCES]);
}

/// OpenShell's examples omit `process:` so the platform picks the identity: a root
/// supervisor runs the child as sandbox:sandbox, never as root, and says why.
#[test]
fn default_identity_is_sandbox_never_root() {
    let env = Env::new("defid");
    let text = format!(
        "version: 1\nfilesystem_policy:\n  read_only: [{}, /proc]\n  read_write: [{}]\n",
        env.p("bin"),
        env.p("rw")
    );
    let policy = env.path("policy.yaml");
    fs::write(&policy, text).unwrap();
    // An image with a sandbox user: this host's passwd and group plus one, bind-mounted
    // over /etc in a mount namespace of the supervisor's own.
    let passwd = env.path("passwd");
    let group = env.path("group");
    fs::write(
        &passwd,
        fs::read_to_string("/etc/passwd").unwrap() + "sandbox:x:4321:4322::/sandbox:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        &group,
        fs::read_to_string("/etc/group").unwrap() + "sandbox:x:4322:\n",
    )
    .unwrap();
    let in_image = |cmd: &mut Command| {
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut w = Command::new("unshare");
        w.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/passwd && mount --bind {} /etc/group && exec \"$0\" \"$@\"",
                passwd.display(),
                group.display()
            ))
            .arg(prog)
            .args(args)
            .current_dir(env.path("rw"));
        *cmd = w;
    };
    let args = [
        "--policy",
        policy.to_str().unwrap(),
        "--no-hook",
        "--restart",
        "never",
    ];
    let run = supervise_with(&env, &args, &ops(&["status", "env:USER"]), in_image);
    assert_eq!(run.code, 0);
    let s = run.op("status");
    assert_eq!(status_field(s, "Uid"), "4321 4321 4321 4321");
    assert_eq!(status_field(s, "Gid"), "4322 4322 4322 4322");
    let ev = run.event("enforce.identity").expect("enforce.identity");
    assert_eq!(ev["source"], "openshell_default");
    assert_eq!(ev["uid"], 4321);
    assert!(ev["reason"].as_str().unwrap().contains("never root"));

    // Without such a user the start is refused, naming the field: never a root child.
    let run = supervise(&env, &args, &ops(&["status"]));
    if fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .all(|l| !l.starts_with("sandbox:"))
    {
        assert_eq!(run.code, 78);
        assert!(run.out.is_empty());
        let ev = run.event("policy.invalid").expect("policy.invalid");
        assert_eq!(ev["field"], "process.run_as_user");
        assert!(ev["error"].as_str().unwrap().contains("sandbox"), "{ev}");
    }

    // An unprivileged supervisor cannot change ids: the child keeps the supervisor's.
    fs::set_permissions(env.path("status"), fs::Permissions::from_mode(0o777)).unwrap();
    let run = supervise_with(&env, &args, &ops(&["status"]), |cmd| {
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut w = Command::new("setpriv");
        w.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(prog)
            .args(args)
            .current_dir(env.path("rw"));
        *cmd = w;
    });
    assert_eq!(run.code, 0);
    assert_eq!(
        status_field(run.op("status"), "Uid"),
        "65534 65534 65534 65534"
    );
    assert_eq!(
        run.event("enforce.identity").unwrap()["source"],
        "supervisor"
    );
}
