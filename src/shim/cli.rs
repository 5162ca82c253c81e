//! Command line of `sandboxctl`.

use super::backend::kube::Target;
use super::backend::BackendKind;
use super::state::{DEFAULT_ROOT, ROOT_ENV};
use crate::log::{Format, LogLevel};
use crate::supervisor::cli::parse_duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Host-side control of openshell sandboxes on podman, docker, QEMU VMs or Kubernetes:
/// create, stop and start without losing the workspace, and report each sandbox's true phase.
#[derive(Debug, Parser)]
#[command(
    name = "sandboxctl",
    version,
    after_help = "Phases, state layout and exit codes: see --help."
)]
pub struct Cli {
    /// Where the per-sandbox host state lives; it also scopes `list` and `--all`
    /// [env: OPENSHELL_STATE_ROOT] [default: /var/lib/openshell/sandboxes]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_root: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Lowest level that is logged on stderr (debug shows every engine command).
    #[arg(long, global = true, value_enum, default_value = "info")]
    pub log_level: LogLevel,
    /// How long a verb that changes a sandbox waits for another one holding its lock
    /// (then exit 72 busy, naming the holder); 0 fails at once [default: the sandbox's stop
    /// timeout plus 30s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// For `create`, where the sandbox runs [default: podman]; recorded, later verbs find it
    /// there. For the other verbs, only this backend's sandboxes are addressed [default: the
    /// podman and docker sandboxes under the state root, and the cluster's when --context or
    /// --namespace names one].
    #[arg(long, global = true, value_enum, value_name = "BACKEND")]
    pub backend: Option<BackendKind>,
    /// kube: the kubeconfig context ($KUBECONFIG, else ~/.kube/config) [env:
    /// OPENSHELL_KUBE_CONTEXT] [default: its current context, else the in-cluster service
    /// account]. Naming one also addresses the cluster's sandboxes without --backend kube.
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// kube: the namespace of the sandboxes [env: OPENSHELL_KUBE_NAMESPACE] [default: the
    /// context's, else `default`]. Naming one also addresses the cluster's sandboxes without
    /// --backend kube.
    #[arg(long, short = 'n', global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create the workspace (volume or PVC), the record and the workload, then start it.
    Create(CreateArgs),
    /// Start (or resume) sandboxes; idempotent. The boot hook runs again on every start.
    Start(StartArgs),
    /// Stop sandboxes gracefully, keeping the workload and the workspace.
    Stop(StopArgs),
    /// Delete sandboxes: workload, workspace and record. Destructive.
    Delete(DeleteArgs),
    /// Show one sandbox's phase and why.
    Status(StatusArgs),
    /// Show every sandbox (under the state root; in the cluster's namespace when addressed).
    List(ListArgs),
    /// Print phase transitions as they happen, until --count or --timeout.
    Watch(WatchArgs),
    /// Start every sandbox whose recorded intent is running but whose workload is not
    /// (after a power cut, a kill, a stop behind sandboxctl's back; run it at host or
    /// gateway boot); intentionally stopped ones stay stopped.
    Resume(ResumeArgs),
    /// Internal: owns one run of a VM's QEMU (started by `start --backend vm`).
    #[command(hide = true)]
    VmKeeper(VmKeeperArgs),
}

#[derive(Debug, Args)]
pub struct VmKeeperArgs {
    /// The sandbox's state directory.
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CreateOutput {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Return right after the engine started the container instead of waiting for Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Wait for Ready or Failed (the default; conflicts with --no-wait).
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 90s, 5m); the sandbox keeps starting.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Sandbox name: a DNS label (lowercase letters, digits, '-'; at most 42 characters).
    pub name: String,
    /// Image whose ENTRYPOINT is the openshell supervisor (see README "## Images").
    /// Required for podman and docker; for --backend vm, a directory made by
    /// `images/build.sh vm`; kube defaults to localhost/openshell-sandbox:dev.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Environment for the sandbox (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<String>,
    /// Create only; the recorded intent is "stopped" until `start`.
    #[arg(long)]
    pub no_start: bool,
    /// vm: guest memory (e.g. 512M, 1G) [default: 512M]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// vm: virtual CPUs [default: 1]
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// vm: size of the workspace disk, a sparse raw file with ext4 [default: 2G];
    /// kube: size of the workspace PVC, a Kubernetes quantity [default: 2Gi]
    #[arg(long, value_name = "SIZE")]
    pub workspace_size: Option<String>,
    /// vm: auto (probe KVM once per host boot, else TCG), kvm or tcg [env: OPENSHELL_VM_ACCEL]
    #[arg(long, value_name = "ACCEL")]
    pub accel: Option<String>,
    /// vm: none (no network device) or user (QEMU user-mode NAT) [default: none]
    #[arg(long, value_name = "NET")]
    pub network: Option<String>,
    /// kube: storage class of the workspace PVC [default: the cluster's default class].
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// kube: print the objects instead of creating them (for kubectl apply or GitOps).
    #[arg(long, requires = "output")]
    pub dry_run: bool,
    /// kube, with --dry-run: the objects as a YAML stream or a JSON List.
    #[arg(long, short = 'o', value_enum, requires = "dry_run")]
    pub output: Option<CreateOutput>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The agent command, replacing the image's CMD (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Sandboxes to start.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The sandboxes a destructive-or-stopping verb acts on: NAME… or --all.
#[derive(Debug, Args)]
pub struct Targets {
    /// Sandboxes to act on (or --all).
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub names: Vec<String>,
    /// Every sandbox of every addressed backend (podman and docker: those under the state
    /// root; kube: those in the namespace).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub targets: Targets,
    /// Seconds the engine waits for the supervisor before SIGKILL (default: recorded at
    /// create, the image's supervisor --grace plus a margin).
    #[arg(long, short = 't', value_name = "SECONDS")]
    pub time: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub targets: Targets,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The sandbox.
    pub name: String,
    /// Fields for people, or the whole document as JSON.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// One row per sandbox, or a JSON array of the `status -o json` documents.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this sandbox (default: every sandbox of every addressed backend).
    pub name: Option<String>,
    /// JSON lines ({"ts","sandbox","phase","previous",…}) or one text line per transition.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Stop after printing this many transitions (the first observation of each sandbox
    /// counts as one).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long (exit 0, or the timeout code when --count was not reached).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Time between two observations.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Every sandbox of every addressed backend (required: resume is a sweep).
    #[arg(long, required = true)]
    pub all: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

impl Cli {
    /// `--state-root`, else $OPENSHELL_STATE_ROOT, else the default.
    pub fn state_root(&self) -> PathBuf {
        self.state_root
            .clone()
            .or_else(|| {
                std::env::var_os(ROOT_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }

    /// The cluster: `--context`/`--namespace`, else $OPENSHELL_KUBE_CONTEXT and
    /// $OPENSHELL_KUBE_NAMESPACE.
    pub fn kube_target(&self) -> Target {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Target {
            context: self
                .context
                .clone()
                .or_else(|| env("OPENSHELL_KUBE_CONTEXT")),
            namespace: self
                .namespace
                .clone()
                .or_else(|| env("OPENSHELL_KUBE_NAMESPACE")),
        }
    }

    /// The backends this invocation addresses: `--backend` alone for every verb but
    /// `create` (whose name must be free everywhere); otherwise podman and docker (their
    /// sandboxes are found under the state root without contacting anything), and kube when
    /// the command names a cluster (`--backend kube`, a context or a namespace).
    pub fn listed(&self, target: &Target) -> Vec<BackendKind> {
        let create = matches!(self.verb, Verb::Create(_));
        match self.backend {
            Some(only) if !create => vec![only],
            _ => {
                let mut v = BackendKind::HOST.to_vec();
                if self.backend == Some(BackendKind::Kube)
                    || target.context.is_some()
                    || target.namespace.is_some()
                {
                    v.push(BackendKind::Kube);
                }
                v
            }
        }
    }
}

/// The end of `--help`: phases, state layout, exit codes (from the contract's tables).
pub fn long_help_tail() -> String {
    let phases: Vec<&str> = crate::contract::SandboxPhase::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    format!(
        "Phases: {}.\n  While the workload runs, the supervisor's own phase (from status.json) passes \
through; README.md \"## sandboxctl\" has the derivation table.\n\
Reasons of the sandbox's own phases: {}.\n\n\
State (podman, docker): <state-root>/<NAME>/sandbox.json, intent.json, lock, status/status.json \
(bind-mounted as the supervisor's --status-dir); a VM adds vm/ (definition, disk, console.log, \
qmp.sock, the keeper's run.json and exit.json) and shares status/ over 9p.\n\n{}",
        phases.join(", "),
        crate::contract::sandbox::reason::ALL.join(", "),
        crate::contract::CtlExit::help_table()
    )
}

fn parse_env(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_owned()),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_verbs() {
        let cli = Cli::try_parse_from([
            "sandboxctl",
            "--state-root",
            "/tmp/x",
            "create",
            "a",
            "--image",
            "img",
            "--backend",
            "docker",
            "-e",
            "A=1",
            "--env",
            "B=",
            "--no-start",
            "--",
            "sh",
            "-c",
            "sleep 1",
        ])
        .unwrap();
        assert_eq!(cli.state_root(), PathBuf::from("/tmp/x"));
        assert_eq!(cli.backend, Some(BackendKind::Docker));
        let t = Target::default();
        assert_eq!(
            cli.listed(&t),
            BackendKind::HOST,
            "create checks every host backend"
        );
        let Verb::Create(c) = cli.verb else { panic!() };
        assert_eq!(c.env, ["A=1", "B="]);
        assert!(c.no_start);
        assert_eq!(c.command, ["sh", "-c", "sleep 1"]);

        let cli = Cli::try_parse_from(["sandboxctl", "stop", "--all", "-t", "3"]).unwrap();
        let Verb::Stop(s) = cli.verb else { panic!() };
        assert!(s.targets.all && s.targets.names.is_empty() && s.time == Some(3));
        let cli =
            Cli::try_parse_from(["sandboxctl", "start", "a", "b", "--timeout", "5s"]).unwrap();
        let Verb::Start(s) = cli.verb else { panic!() };
        assert_eq!(s.names, ["a", "b"]);
        assert_eq!(s.wait.timeout, Duration::from_secs(5));
        assert!(!s.wait.no_wait);
        let cli =
            Cli::try_parse_from(["sandboxctl", "watch", "-o", "json", "--count", "2"]).unwrap();
        let Verb::Watch(w) = cli.verb else { panic!() };
        assert_eq!(
            (w.name, w.output, w.count),
            (None, OutputFormat::Json, Some(2))
        );
    }

    #[test]
    fn refuses_ambiguous_or_incomplete_commands() {
        for argv in [
            &["sandboxctl", "stop"][..],
            &["sandboxctl", "stop", "a", "--all"],
            &["sandboxctl", "delete"],
            &["sandboxctl", "resume"],
            &["sandboxctl", "start"],
            &["sandboxctl", "start", "a", "--wait", "--no-wait"],
            &["sandboxctl", "create", "a", "--dry-run"],
            &["sandboxctl", "create", "a", "-o", "yaml"],
            &["sandboxctl", "create", "a", "--backend", "lxc"],
            &[
                "sandboxctl",
                "create",
                "a",
                "--image",
                "i",
                "-e",
                "NOEQUALS",
            ],
            &["sandboxctl", "list", "-o", "yaml"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn addresses_the_backends_asked_for() {
        use BackendKind::*;
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).unwrap();
        let none = Target::default();
        let ns = Target {
            context: None,
            namespace: Some("sandboxes".into()),
        };
        // --image is optional at parse time: kube has a default, podman/docker refuse later.
        let c = parse(&["sandboxctl", "create", "a", "--backend", "kube"]);
        assert_eq!(c.listed(&none), [Podman, Docker, Vm, Kube]);
        let c = parse(&["sandboxctl", "status", "a"]);
        assert_eq!(c.listed(&none), [Podman, Docker, Vm]);
        assert_eq!(c.listed(&ns), [Podman, Docker, Vm, Kube]);
        let c = parse(&["sandboxctl", "--backend", "kube", "list"]);
        assert_eq!(c.listed(&none), [Kube]);
        let c = parse(&["sandboxctl", "list", "--backend", "docker", "-n", "x"]);
        assert_eq!(c.listed(&c.kube_target()), [Docker]);
        assert_eq!(c.kube_target().namespace.as_deref(), Some("x"));
    }
}
