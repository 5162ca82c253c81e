//! An engine restart behind sandboxctl's back. The session's shared dockerd is never
//! restarted: this test runs its own dockerd (own --data-root, --exec-root, --pidfile and
//! unix socket; its own containerd) and points sandboxctl at it with DOCKER_HOST.

use crate::conformance::engine::Engine;
use crate::conformance::{Ctx, Run, HANG, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dockerd of our own, stopped (and its directory removed) on drop.
pub struct PrivateDockerd {
    pub dir: PathBuf,
    pub host: String,
    child: Option<Child>,
}

impl PrivateDockerd {
    pub fn start() -> PrivateDockerd {
        let dir = PathBuf::from(format!("/tmp/shim-dockerd-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let host = format!("unix://{}", dir.join("docker.sock").display());
        let mut d = PrivateDockerd {
            dir,
            host,
            child: None,
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["-H", &self.host])
            // As the session's dockerd runs (tests/run.sh): no bridge, no iptables.
            .args(["--iptables=false", "--ip-forward=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd is installed (tests/run.sh installs docker.io)");
        self.child = Some(child);
        let t0 = Instant::now();
        while !self.answers() {
            assert!(
                t0.elapsed() < HANG,
                "the private dockerd did not come up; its log: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["-H", &self.host, "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, as a service manager stops it: dockerd stops its containers (SIGTERM to
    /// each, as with `docker stop`), then exits.
    fn shut_down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t0 = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if t0.elapsed() > HANG {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "the private dockerd did not stop; its log: {}",
                        self.log_tail()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn restart(&mut self) {
        self.shut_down();
        self.launch();
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.shut_down();
        // A clean shutdown unmounts its overlays; never delete through a mount.
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split(' ')
                    .nth(1)
                    .is_some_and(|m| Path::new(m).starts_with(&self.dir))
            });
        if !mounted {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// dockerd restarted while a sandbox runs: its supervisor got SIGTERM and wrote Stopped,
/// but the intent is running, so it reads Error `stopped_externally` and `resume --all`
/// brings it back with its workspace.
pub fn a_dockerd_restart_reads_error_and_resume_restores() {
    let mut d = PrivateDockerd::start();
    let env: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(
        "DOCKER_HOST",
        &*Box::leak(d.host.clone().into_boxed_str()),
    )]));
    let engine: &'static Engine = Box::leak(Box::new(Engine::new("docker", env)));
    {
        let ctx = Ctx::new(engine, "dockerd");
        let a = ctx.name("a");
        ctx.create_agent(&a, &[]).ok();
        assert_eq!(ctx.phase(&a), "Ready");
        d.restart();
        assert_eq!(engine.container_state(&a).as_deref(), Some("exited"));
        let s = ctx.status(&a);
        assert_eq!(s["phase"], "Error", "{s:#}");
        assert_eq!(s["reason"], "stopped_externally", "{s:#}");
        assert_eq!(s["supervisor_status"]["phase"], "Stopped");
        let r: Run = ctx.ctl(&["resume", "--all", "--timeout", WAIT]).ok();
        assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
        assert_eq!(ctx.workspace_lines(&a, "agent.log").len(), 2);
    }
    // Nothing of ours is left on the private daemon before it goes.
    let left = engine.run(&["ps", "-aq"]).stdout;
    assert!(left.trim().is_empty(), "left behind: {left}");
    engine.run(&["image", "rm", "-f", engine.image()]);
}
