//! The conformance harness of the VM backend: real QEMU (TCG here; KVM where it works), the
//! VM image built by `images/build.sh vm` from the release supervisor, and the VM's own
//! files to look at it from outside: `kill -9` of QEMU cuts the power, Ctrl-Alt-Del over
//! QMP stops it behind sandboxctl's back, and the workspace disk is read with e2fsprogs
//! (from a copy whose journal is replayed, so a running VM's recent writes are seen).
//!
//! The image is built once per test binary (`cargo build --release` first; tests/run.sh
//! does), unless OPENSHELL_TEST_VM_IMAGE names a built image directory.

use super::{Ctx, Harness, Refusal, Run, REPO};
use openshell_supervisor::contract::CtlExit;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Vm {
    image: OnceLock<String>,
}

pub static VM: Vm = Vm {
    image: OnceLock::new(),
};

/// Runs a host tool (e2fsprogs, the image build) and returns its result.
pub fn tool(program: &str, args: &[&str]) -> Run {
    Run::from(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e} (tests/run.sh installs it)")),
    )
}

impl Vm {
    /// The VM image, built at most once per test binary. A failed build fails the tests.
    pub fn image(&self) -> &str {
        self.image.get_or_init(|| {
            if let Ok(dir) = std::env::var("OPENSHELL_TEST_VM_IMAGE") {
                if !dir.is_empty() {
                    return dir;
                }
            }
            let supervisor = std::env::var("SUPERVISOR_BIN").unwrap_or_else(|_| {
                format!("{REPO}/target/x86_64-unknown-linux-gnu/release/supervisor")
            });
            assert!(
                Path::new(&supervisor).is_file(),
                "{supervisor} is missing: run `cargo build --release` first (tests/run.sh does), or set OPENSHELL_TEST_VM_IMAGE"
            );
            let out = format!("{REPO}/target/openshell-vm-test");
            let r = Run::from(
                Command::new("bash")
                    .arg(format!("{REPO}/images/build.sh"))
                    .args(["vm", &out])
                    .env("SUPERVISOR_BIN", &supervisor)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run images/build.sh"),
            );
            assert_eq!(r.code, 0, "images/build.sh vm failed: {}", r.stderr);
            out
        })
    }

    pub fn vm_dir(ctx: &Ctx, name: &str) -> PathBuf {
        ctx.root.join(name).join("vm")
    }

    /// The end of the VM's serial console (the guest's log lines), for failure messages.
    pub fn console(ctx: &Ctx, name: &str) -> String {
        let c =
            std::fs::read_to_string(Vm::vm_dir(ctx, name).join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn run_record(ctx: &Ctx, name: &str) -> Option<Value> {
        let body = std::fs::read(Vm::vm_dir(ctx, name).join("run.json")).ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Whether the VM's keeper holds its lock (the backend's own test of "running").
    pub fn keeper_running(ctx: &Ctx, name: &str) -> bool {
        let Ok(f) = std::fs::File::open(Vm::vm_dir(ctx, name).join("keeper.lock")) else {
            return false;
        };
        // SAFETY: flock on a descriptor we hold; a shared lock we drop at once.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        r != 0
    }

    pub fn wait_keeper_ended(ctx: &Ctx, name: &str) {
        let t0 = Instant::now();
        while Vm::keeper_running(ctx, name) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the VM of {name} did not end"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A QMP command on the VM's monitor, as an operator would send it by hand.
    pub fn qmp(ctx: &Ctx, name: &str, cmd: &str, args: Option<Value>) -> Value {
        let s = UnixStream::connect(Vm::vm_dir(ctx, name).join("qmp.sock")).expect("QMP socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut send = |c: Value| -> Value {
            writeln!(w, "{c}").unwrap();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                let v: Value = serde_json::from_str(&l).unwrap();
                if v.get("return").is_some() || v.get("error").is_some() {
                    return v;
                }
            }
        };
        send(serde_json::json!({"execute": "qmp_capabilities"}));
        let mut c = serde_json::json!({ "execute": cmd });
        if let Some(a) = args {
            c["arguments"] = a;
        }
        send(c)
    }

    /// The workspace disk as e2fsprogs sees it after replaying its journal, on a copy (the
    /// VM may be running: its latest writes may still be only in the journal).
    pub fn snapshot(ctx: &Ctx, name: &str) -> Option<PathBuf> {
        let disk = Vm::vm_dir(ctx, name).join("workspace.raw");
        if !disk.is_file() {
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let copy = ctx.root.join(format!(
            "snapshot-{name}-{}.raw",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        tool("cp", &["--sparse=always", disk.to_str()?, copy.to_str()?]).ok();
        // Exit 0 or 1: nothing to do, or the journal was replayed.
        let r = tool("e2fsck", &["-fy", "-E", "journal_only", copy.to_str()?]);
        assert!(
            r.code <= 1,
            "e2fsck journal replay of {name}'s disk: {}",
            r.stderr
        );
        Some(copy)
    }

    /// `path` (relative to /sandbox) of a disk image, or None when it does not exist.
    pub fn read_disk(disk: &Path, path: &str) -> Option<String> {
        let out = disk.with_extension("out");
        let _ = std::fs::remove_file(&out);
        let req = format!("dump /{path} {}", out.display());
        tool("debugfs", &["-R", &req, disk.to_str()?]);
        let body = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        body
    }
}

impl Harness for Vm {
    fn backend(&self) -> &'static str {
        "vm"
    }

    fn create_args(&self) -> Vec<String> {
        vec!["--image".into(), self.image().to_owned()]
    }

    fn power_cut(&self, ctx: &Ctx, name: &str) {
        let run = Vm::run_record(ctx, name).expect("the VM has run");
        let pid = run["qemu_pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 QEMU");
        Vm::wait_keeper_ended(ctx, name);
    }

    fn external_stop(&self, ctx: &Ctx, name: &str) {
        let keys: Vec<Value> = ["ctrl", "alt", "delete"]
            .iter()
            .map(|k| serde_json::json!({"type": "qcode", "data": k}))
            .collect();
        let r = Vm::qmp(
            ctx,
            name,
            "send-key",
            Some(serde_json::json!({ "keys": keys })),
        );
        assert!(r.get("return").is_some(), "{r}");
        Vm::wait_keeper_ended(ctx, name);
    }

    fn read_workspace(&self, ctx: &Ctx, name: &str, path: &str) -> Option<String> {
        let snap = Vm::snapshot(ctx, name)?;
        let body = Vm::read_disk(&snap, path);
        let _ = std::fs::remove_file(&snap);
        body
    }

    fn agent_status(&self, ctx: &Ctx, name: &str) -> String {
        // No exec into a VM: the agent wrote its /proc/self/status, as the guest kernel
        // reports it, into the workspace (the suite's AGENT does).
        self.read_workspace(ctx, name, ".agent-status")
            .unwrap_or_default()
    }

    fn workload_exists(&self, ctx: &Ctx, name: &str) -> bool {
        Vm::vm_dir(ctx, name).join("vm.json").is_file()
    }

    fn workload_running(&self, ctx: &Ctx, name: &str) -> bool {
        Vm::keeper_running(ctx, name)
    }

    fn workspace_exists(&self, ctx: &Ctx, name: &str) -> bool {
        Vm::vm_dir(ctx, name).join("workspace.raw").is_file()
    }

    fn bad_create(&self) -> Refusal {
        Refusal {
            args: vec!["--image".into(), "/nonexistent/vm-image".into()],
            exit: CtlExit::Usage,
            says: "not a VM image directory".into(),
        }
    }

    fn unavailable(&self, ctx: &Ctx) -> Vec<(Vec<(String, String)>, Refusal)> {
        // QEMU not installed: a PATH without it.
        let empty = ctx.root.join("empty-path");
        std::fs::create_dir_all(&empty).unwrap();
        vec![(
            vec![("PATH".to_owned(), empty.display().to_string())],
            Refusal {
                args: Vec::new(),
                exit: CtlExit::EngineNotInstalled,
                says: "qemu-system-x86_64 is not installed".into(),
            },
        )]
    }

    fn cleanup(&self, prefix: &str) {
        // QEMU runs as `-name openshell-NAME,process=openshell-NAME`: kill what a failed
        // test left running.
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let ours = args
                .windows(2)
                .any(|w| w[0] == b"-name" && w[1].starts_with(prefix.as_bytes()));
            if ours {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
