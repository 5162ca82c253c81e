//! The conformance harness of the podman and docker backends: the real engine, the image
//! built by images/build.sh from the release supervisor, and the engine's own CLI to cut
//! the power (`kill`), stop behind sandboxctl's back (`stop`) and look inside (`exec`).
//!
//! The image is built once per engine per test binary (`cargo build --release` first;
//! tests/run.sh does), unless OPENSHELL_TEST_IMAGE_PODMAN / OPENSHELL_TEST_IMAGE_DOCKER name
//! one. SUPERVISOR_BIN is passed through to build.sh.

use super::{Ctx, Harness, Refusal, Run, REPO};
use openshell_supervisor::contract::CtlExit;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct Engine {
    pub program: &'static str,
    /// Environment pointing the engine's client (and sandboxctl's) somewhere else, e.g. a
    /// private dockerd's DOCKER_HOST.
    pub client_env: &'static [(&'static str, &'static str)],
    image: OnceLock<String>,
}

impl Engine {
    pub const fn new(
        program: &'static str,
        client_env: &'static [(&'static str, &'static str)],
    ) -> Engine {
        Engine {
            program,
            client_env,
            image: OnceLock::new(),
        }
    }

    /// Runs the engine's CLI.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(self.program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in self.client_env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (tests/run.sh installs it)",
                self.program
            )
        }))
    }

    /// The test image, built at most once per test binary. A missing engine or a failed
    /// build fails the tests: it is never a skip.
    pub fn image(&self) -> &str {
        self.image.get_or_init(|| {
            let engine = self.program;
            let info = self.run(&["info", "--format", "{{json .}}"]);
            assert_eq!(
                info.code, 0,
                "{engine} is not usable (tests/run.sh installs and starts it): {}",
                info.stderr
            );
            let var = format!("OPENSHELL_TEST_IMAGE_{}", engine.to_uppercase());
            if let Ok(tag) = std::env::var(&var) {
                if !tag.is_empty() {
                    return tag;
                }
            }
            // One tag per checkout: an unchanged rootfs hits the engine's build cache and
            // yields the same image, so repeated runs do not pile up images, and two
            // checkouts testing different supervisors on one machine never run each
            // other's image.
            let tag = format!("localhost/openshell-sandbox:cargo-test-{:08x}", checkout_id());
            let supervisor = std::env::var("SUPERVISOR_BIN").unwrap_or_else(|_| {
                format!("{REPO}/target/x86_64-unknown-linux-gnu/release/supervisor")
            });
            assert!(
                Path::new(&supervisor).is_file(),
                "{supervisor} is missing: run `cargo build --release` first (tests/run.sh does), or set {var}"
            );
            let mut cmd = Command::new("bash");
            cmd.arg(format!("{REPO}/images/build.sh"))
                .args([engine, &tag])
                .env("SUPERVISOR_BIN", &supervisor)
                .stdin(Stdio::null());
            for (k, v) in self.client_env {
                cmd.env(k, v);
            }
            let r = Run::from(cmd.output().expect("run images/build.sh"));
            assert_eq!(r.code, 0, "images/build.sh {engine} failed: {}", r.stderr);
            tag
        })
    }

    pub fn container(name: &str) -> String {
        format!("openshell-{name}")
    }

    pub fn volume(name: &str) -> String {
        format!("openshell-{name}-workspace")
    }

    /// The engine's word for the container's state, or None when it does not exist.
    pub fn container_state(&self, name: &str) -> Option<String> {
        let r = self.run(&[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            &Engine::container(name),
        ]);
        (r.code == 0).then(|| r.stdout.trim().to_owned())
    }

    /// Runs a shell command inside the sandbox (as root, beside the agent).
    pub fn exec(&self, name: &str, script: &str) -> String {
        self.run(&["exec", &Engine::container(name), "sh", "-c", script])
            .ok()
            .stdout
    }

    /// A workspace file as the host sees it in the volume (running or not).
    pub fn read_workspace_bytes(&self, name: &str, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.volume_dir(name)?.join(path)).ok()
    }

    /// Where the workspace volume lives on the host.
    pub fn volume_dir(&self, name: &str) -> Option<PathBuf> {
        let r = self.run(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            &Engine::volume(name),
        ]);
        (r.code == 0).then(|| PathBuf::from(r.stdout.trim()))
    }
}

/// A short stable number for this checkout (FNV-1a of its path).
fn checkout_id() -> u32 {
    REPO.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

pub static PODMAN: Engine = Engine::new("podman", &[]);
pub static DOCKER: Engine = Engine::new("docker", &[]);

impl Harness for Engine {
    fn backend(&self) -> &'static str {
        self.program
    }

    fn create_args(&self) -> Vec<String> {
        vec!["--image".into(), self.image().to_owned()]
    }

    fn env(&self, _ctx: &Ctx) -> Vec<(String, String)> {
        self.client_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn power_cut(&self, _ctx: &Ctx, name: &str) {
        // SIGKILL to the container's PID 1: exit 137, the supervisor writes nothing.
        self.run(&["kill", &Engine::container(name)]).ok();
    }

    fn external_stop(&self, _ctx: &Ctx, name: &str) {
        self.run(&["stop", "-t", "30", &Engine::container(name)])
            .ok();
    }

    fn read_workspace(&self, _ctx: &Ctx, name: &str, path: &str) -> Option<String> {
        String::from_utf8(self.read_workspace_bytes(name, path)?).ok()
    }

    fn agent_status(&self, _ctx: &Ctx, name: &str) -> String {
        // The agent is the supervisor's (PID 1's) only child.
        self.exec(
            name,
            "set -- $(cat /proc/1/task/1/children); cat /proc/$1/status",
        )
    }

    fn workload_exists(&self, _ctx: &Ctx, name: &str) -> bool {
        self.container_state(name).is_some()
    }

    fn workload_running(&self, _ctx: &Ctx, name: &str) -> bool {
        // podman says `stopping` while a stop is underway: still up.
        matches!(
            self.container_state(name).as_deref(),
            Some("running" | "stopping")
        )
    }

    fn workspace_exists(&self, _ctx: &Ctx, name: &str) -> bool {
        self.run(&["volume", "inspect", &Engine::volume(name)]).code == 0
    }

    fn bad_create(&self) -> Refusal {
        Refusal {
            args: vec!["--image".into(), "localhost/no-such-image:1".into()],
            exit: CtlExit::EngineError,
            says: format!("{} image inspect failed", self.program),
        }
    }

    fn unavailable(&self, ctx: &Ctx) -> Vec<(Vec<(String, String)>, Refusal)> {
        // Not running: the engine's client pointed at a socket nobody listens on.
        let dead = format!("unix://{}", ctx.root.join("dead.sock").display());
        let var = if self.program == "docker" {
            "DOCKER_HOST"
        } else {
            "CONTAINER_HOST"
        };
        // Not installed: a PATH without the engine's client.
        let empty = ctx.root.join("empty-path");
        std::fs::create_dir_all(&empty).unwrap();
        vec![
            (
                vec![(var.to_owned(), dead)],
                Refusal {
                    args: Vec::new(),
                    exit: CtlExit::EngineNotRunning,
                    says: format!("{} is not running", self.program),
                },
            ),
            (
                vec![("PATH".to_owned(), empty.display().to_string())],
                Refusal {
                    args: Vec::new(),
                    exit: CtlExit::EngineNotInstalled,
                    says: format!("{} is not installed", self.program),
                },
            ),
        ]
    }

    fn cleanup(&self, prefix: &str) {
        for (kind, args) in [
            ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
            ("volume", &["volume", "ls", "--format", "{{.Name}}"]),
        ] {
            for obj in self
                .run(args)
                .stdout
                .lines()
                .filter(|l| l.starts_with(prefix))
            {
                let _ = match kind {
                    "container" => self.run(&["rm", "-f", obj]),
                    _ => self.run(&["volume", "rm", "-f", obj]),
                };
            }
        }
    }
}
