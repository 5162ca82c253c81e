//! Command line of the `supervisor` binary.
//!
//! Each flag is one entry of a table below ([`RUN_FLAGS`], [`STATUS_FLAGS`],
//! [`CHECK_FLAGS`]): its name, value, default, help and setter. `--help`, the usage errors
//! naming the flag, the did-you-mean suggestions and the defaults all come from the entry
//! (see `crate::cli_support`). To add a flag: add a field to the arguments struct and one
//! entry to its table.

use crate::cli_support::{
    choice_value, count_value, duration_value, parse_flags, path_value, Flag, Spec, Stop,
};
use crate::contract::status::DEFAULT_DIR;
use crate::contract::ExitCode;
use crate::log::{Format, LogLevel};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::cli_support::{parse_duration, MAX_DURATION};

pub const DEFAULT_HOOK: &str = "/etc/openshell/boot.sh";
pub const DEFAULT_POLICY: &str = "/etc/openshell/policy.yaml";

/// What the command line asks for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per process, moved once
pub enum Cli {
    /// `supervisor [OPTIONS] -- COMMAND…`
    Run(RunArgs),
    /// `supervisor status`: print the phase from status.json (a HEALTHCHECK / readiness probe).
    Status(StatusArgs),
    /// `supervisor check`: print what this kernel will enforce with a policy.
    Check(CheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart the child whenever it exits.
    #[default]
    Always,
    /// Restart only when it exits non-zero or is killed by a signal.
    OnFailure,
    /// Never restart: exit with the child's exit code (or 128+signal), like tini.
    Never,
}

impl RestartPolicy {
    pub const NAMES: [(&'static str, RestartPolicy); 3] = [
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("always", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogArgs {
    pub log_format: Format,
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub hook: PathBuf,
    pub no_hook: bool,
    pub hook_timeout: Duration,
    pub policy: PathBuf,
    pub no_policy: bool,
    pub restart: RestartPolicy,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub backoff_reset_after: Duration,
    /// Unlimited when `None`.
    pub max_restarts: Option<u32>,
    pub restart_window: Duration,
    pub grace: Duration,
    pub ready_after: Duration,
    pub status_dir: PathBuf,
    /// Where the final phase is written at exit (a Kubernetes terminationMessagePath).
    pub termination_message: Option<PathBuf>,
    /// Variables (or `PREFIX*`, `*`) of the supervisor's environment the child also gets.
    pub child_env: Vec<String>,
    /// `NAME=VALUE` lines added to the hook's environment only.
    pub hook_env_file: Option<PathBuf>,
    /// Seeded from `seed` on its first boot (see `supervisor::seed`).
    pub workspace: PathBuf,
    pub seed: PathBuf,
    pub no_seed: bool,
    /// Be the init of a VM (see `supervisor::init`).
    pub init: bool,
    pub init_modules: PathBuf,
    pub log: LogArgs,
    /// The child command and its arguments (after `--`); never empty once parsed, except
    /// with `--init`, where it may come from the host's VM configuration.
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    pub status_dir: PathBuf,
    pub json: bool,
    pub ready: bool,
    /// Accepted as on every supervisor command line; `status` itself does not log.
    pub log: LogArgs,
}

#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    pub policy: PathBuf,
    pub log: LogArgs,
}

const LOG_FORMAT_HELP: &str = "Log line format on stderr: json or text.";
const LOG_LEVEL_HELP: &str = "Lowest level that is logged: error, warn, info, debug or trace.";

fn log_format(log: &mut LogArgs, v: &OsStr) -> Result<(), String> {
    log.log_format = choice_value(v, &Format::NAMES)?;
    Ok(())
}

fn log_level(log: &mut LogArgs, v: &OsStr) -> Result<(), String> {
    log.log_level = choice_value(v, &LogLevel::NAMES)?;
    Ok(())
}

/// The flags of `supervisor [OPTIONS] -- COMMAND…`, in help order.
pub const RUN_FLAGS: &[Flag<RunArgs>] = &[
    Flag::value(
        "hook",
        "PATH",
        Some(DEFAULT_HOOK),
        "Boot hook run once, unsandboxed, before the child. A missing file is skipped.",
        |a, v| {
            a.hook = path_value(v)?;
            Ok(())
        },
    ),
    Flag::switch("no-hook", "Do not run any boot hook.", |a: &mut RunArgs| {
        a.no_hook = true
    })
    .conflicts_with("hook"),
    Flag::value(
        "hook-timeout",
        "DURATION",
        Some("300s"),
        "Kill the hook's process group and fail startup after this long (e.g. 300s, 5m).",
        |a, v| {
            a.hook_timeout = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "hook-env-file",
        "FILE",
        None,
        "NAME=VALUE lines added to the hook's environment only, never the child's. As root it \
         must be root's, mode 600, on a path only root can change.",
        |a: &mut RunArgs, v| {
            a.hook_env_file = Some(path_value(v)?);
            Ok(())
        },
    )
    .conflicts_with("no-hook"),
    Flag::value(
        "policy",
        "PATH",
        Some(DEFAULT_POLICY),
        "Sandbox policy applied to the child (YAML).",
        |a, v| {
            a.policy = path_value(v)?;
            Ok(())
        },
    ),
    Flag::switch(
        "no-policy",
        "Run the child without any sandbox (logged loudly).",
        |a: &mut RunArgs| a.no_policy = true,
    )
    .conflicts_with("policy"),
    Flag::value(
        "restart",
        "POLICY",
        Some("always"),
        "When to restart the child after it exits: always, on-failure (non-zero exit or a \
         signal) or never (exit with the child's code, or 128+signal, like tini).",
        |a, v| {
            a.restart = choice_value(v, &RestartPolicy::NAMES)?;
            Ok(())
        },
    ),
    Flag::value(
        "backoff-initial",
        "DURATION",
        Some("1s"),
        "First restart delay; doubles on every restart up to --backoff-max.",
        |a, v| {
            a.backoff_initial = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "backoff-max",
        "DURATION",
        Some("60s"),
        "Upper bound of the restart delay.",
        |a, v| {
            a.backoff_max = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "backoff-reset-after",
        "DURATION",
        Some("60s"),
        "A child that stayed up this long resets the delay to --backoff-initial.",
        |a, v| {
            a.backoff_reset_after = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "max-restarts",
        "N",
        None,
        "Fail (crash loop) after this many restarts within --restart-window. Unlimited when unset.",
        |a, v| {
            a.max_restarts = Some(count_value(v)?);
            Ok(())
        },
    ),
    Flag::value(
        "restart-window",
        "DURATION",
        Some("5m"),
        "Window over which --max-restarts is counted.",
        |a, v| {
            a.restart_window = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "grace",
        "DURATION",
        Some("10s"),
        "Time between SIGTERM and SIGKILL when stopping the child or its leftovers.",
        |a, v| {
            a.grace = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "ready-after",
        "DURATION",
        Some("1s"),
        "The child is Ready once it has stayed up this long.",
        |a, v| {
            a.ready_after = duration_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "child-env",
        "NAME",
        None,
        "Also pass this variable of the supervisor's environment to the child (repeatable; \
         PREFIX* for a prefix, * for all). By default the child gets only PATH, LANG, LANGUAGE, \
         LC_*, TZ, TERM, HOSTNAME, HOME, USER, LOGNAME (the policy user's own under a policy) and \
         OPENSHELL_SANDBOX=1.",
        |a: &mut RunArgs, v| {
            let p = v
                .to_str()
                .ok_or_else(|| "not UTF-8".to_string())?
                .to_owned();
            super::env::check_pattern(&p)?;
            a.child_env.push(p);
            Ok(())
        },
    )
    .repeatable(),
    Flag::value(
        "status-dir",
        "DIR",
        Some(DEFAULT_DIR),
        "Where status.json is written on every phase change.",
        |a, v| {
            a.status_dir = path_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "termination-message",
        "PATH",
        None,
        "At exit, write the final phase (`Stopped`, `Failed/hook_failed: …`) to this file: a \
         Kubernetes container's terminationMessagePath, e.g. /dev/termination-log. Its \
         directory must be root-owned and not writable by others.",
        |a, v| {
            a.termination_message = Some(path_value(v)?);
            Ok(())
        },
    ),
    Flag::value(
        "workspace",
        "DIR",
        Some(crate::supervisor::seed::DEFAULT_WORKSPACE),
        "The workspace: seeded from --seed on its first boot (when it has no \
         `.openshell-seeded`).",
        |a, v| {
            a.workspace = path_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "seed",
        "DIR",
        Some(crate::supervisor::seed::DEFAULT_SEED),
        "Seed tree copied into a fresh workspace before the hook runs; a missing tree is \
         skipped.",
        |a, v| {
            a.seed = path_value(v)?;
            Ok(())
        },
    ),
    Flag::switch(
        "no-seed",
        "Do not seed the workspace.",
        |a: &mut RunArgs| a.no_seed = true,
    )
    .conflicts_with("seed"),
    Flag::switch(
        "init",
        "Be the init of a VM (PID 1 of its kernel): mount /proc, /sys, /dev, /run, /tmp, load \
         --init-modules, mount the status share and the workspace disk, power off at the end. \
         The command may then come from the host's VM configuration (fw_cfg).",
        |a: &mut RunArgs| a.init = true,
    ),
    Flag::value(
        "init-modules",
        "FILE",
        Some("/etc/openshell/modules"),
        "With --init: the kernel modules to load (one name per line), dependencies from modules.dep.",
        |a, v| {
            a.init_modules = path_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "log-format",
        "FORMAT",
        Some("json"),
        LOG_FORMAT_HELP,
        |a, v| log_format(&mut a.log, v),
    ),
    Flag::value(
        "log-level",
        "LEVEL",
        Some("info"),
        LOG_LEVEL_HELP,
        |a, v| log_level(&mut a.log, v),
    ),
];

/// The flags of `supervisor status`.
pub const STATUS_FLAGS: &[Flag<StatusArgs>] = &[
    Flag::value(
        "status-dir",
        "DIR",
        Some(DEFAULT_DIR),
        "Directory holding status.json.",
        |a, v| {
            a.status_dir = path_value(v)?;
            Ok(())
        },
    ),
    Flag::switch("json", "Print the whole status document as JSON.", |a| {
        a.json = true
    }),
    Flag::switch(
        "ready",
        "Exit 0 only when the phase is Ready and the supervisor that wrote it is the one running \
         (1 otherwise, 3 when there is no status).",
        |a| a.ready = true,
    ),
    Flag::value(
        "log-format",
        "FORMAT",
        Some("json"),
        LOG_FORMAT_HELP,
        |a, v| log_format(&mut a.log, v),
    ),
    Flag::value(
        "log-level",
        "LEVEL",
        Some("info"),
        LOG_LEVEL_HELP,
        |a, v| log_level(&mut a.log, v),
    ),
];

/// The flags of `supervisor check`.
pub const CHECK_FLAGS: &[Flag<CheckArgs>] = &[
    Flag::value(
        "policy",
        "PATH",
        Some(DEFAULT_POLICY),
        "Policy file to check.",
        |a, v| {
            a.policy = path_value(v)?;
            Ok(())
        },
    ),
    Flag::value(
        "log-format",
        "FORMAT",
        Some("json"),
        LOG_FORMAT_HELP,
        |a, v| log_format(&mut a.log, v),
    ),
    Flag::value(
        "log-level",
        "LEVEL",
        Some("info"),
        LOG_LEVEL_HELP,
        |a, v| log_level(&mut a.log, v),
    ),
];

const ABOUT: &str = "PID-1 supervisor for agent sandboxes: runs the trusted boot hook, then the \
sandboxed child, restarts it with backoff, reaps zombies, forwards signals and reports its phase.";
const STATUS_ABOUT: &str =
    "Print the supervisor's phase from status.json (a HEALTHCHECK / readiness probe).";
const CHECK_ABOUT: &str =
    "Print what this kernel will enforce with a policy; non-zero when a hard \
requirement cannot be met.";
const COMMANDS: &[(&str, &str)] = &[
    ("status", STATUS_ABOUT),
    ("check", CHECK_ABOUT),
    (
        "help",
        "Print this message or the help of the given command",
    ),
];
const USAGE: &[&str] = &[
    "supervisor [OPTIONS] -- <COMMAND>...",
    "supervisor status [OPTIONS]",
    "supervisor check [OPTIONS]",
];
const STATUS_EPILOGUE: &str =
    "Exit codes:\n    0  ready (with --ready), or the status was printed\n    \
1  not ready: another phase, or written by a supervisor that is no longer running\n    \
3  no readable status.json (missing, empty, torn or not a status document)";

fn version() -> String {
    format!("supervisor {}", env!("CARGO_PKG_VERSION"))
}

fn run_spec(epilogue: &str) -> Spec<'_, RunArgs> {
    Spec {
        name: "supervisor",
        about: ABOUT,
        usage: USAGE,
        commands: COMMANDS,
        arguments: &[(
            "<COMMAND>...",
            "The child command and its arguments (after `--`)",
        )],
        flags: RUN_FLAGS,
        epilogue,
    }
}

fn status_spec() -> Spec<'static, StatusArgs> {
    Spec {
        name: "supervisor status",
        about: STATUS_ABOUT,
        usage: &["supervisor status [OPTIONS]"],
        commands: &[],
        arguments: &[],
        flags: STATUS_FLAGS,
        epilogue: STATUS_EPILOGUE,
    }
}

fn check_spec() -> Spec<'static, CheckArgs> {
    Spec {
        name: "supervisor check",
        about: CHECK_ABOUT,
        usage: &["supervisor check [OPTIONS]"],
        commands: &[],
        arguments: &[],
        flags: CHECK_FLAGS,
        epilogue: "",
    }
}

/// Parses the process arguments; on `--help`, `--version` or a usage error prints it and
/// returns the exit code.
pub fn parse_env() -> Result<Cli, i32> {
    parse(std::env::args_os().skip(1).collect()).map_err(|s| s.report(ExitCode::Usage.code()))
}

/// Parses `args` (without the program name).
pub fn parse(mut args: Vec<OsString>) -> Result<Cli, Stop> {
    let no_positional = |what: &'static str| {
        move |v: &OsStr| format!("unexpected argument {:?}: {what} takes none", v)
    };
    match args.first().and_then(|a| a.to_str()) {
        Some("status") => {
            args.remove(0);
            let spec = status_spec();
            parse_flags(&spec, args, &no_positional("supervisor status"), &version())
                .map(Cli::Status)
        }
        Some("check") => {
            args.remove(0);
            let spec = check_spec();
            parse_flags(&spec, args, &no_positional("supervisor check"), &version()).map(Cli::Check)
        }
        Some("help") => {
            let epilogue = ExitCode::help_table();
            Err(match args.get(1).and_then(|a| a.to_str()) {
                None => Stop::Help(run_spec(&epilogue).help()),
                Some("status") => Stop::Help(status_spec().help()),
                Some("check") => Stop::Help(check_spec().help()),
                Some(other) => run_spec(&epilogue).usage_error(&format!(
                    "no command {other:?}: the commands are status and check"
                )),
            })
        }
        _ => parse_run(args),
    }
}

fn parse_run(mut args: Vec<OsString>) -> Result<Cli, Stop> {
    let epilogue = ExitCode::help_table();
    let spec = run_spec(&epilogue);
    // Everything after the first `--` is the child's command line, untouched. A `--` can
    // never be a flag's value (values that start with `-` are refused), so splitting here
    // is what the parser would do.
    let command = match args.iter().position(|a| a == "--") {
        Some(i) => {
            let rest = args.split_off(i + 1);
            args.pop();
            rest
        }
        None => Vec::new(),
    };
    let positional = |v: &OsStr| match v.to_str() {
        Some(name @ ("status" | "check" | "help")) => {
            format!("{name:?} is a command: it goes first, before any flag (supervisor {name} …)")
        }
        _ => format!(
            "unexpected argument {v:?}: the command to supervise goes after `--` \
             (supervisor [OPTIONS] -- {})",
            v.to_string_lossy()
        ),
    };
    let mut run = parse_flags(&spec, args, &positional, &version())?;
    if command.is_empty() && !run.init {
        return Err(spec.usage_error(
            "no command to supervise: give it after `--` (supervisor [OPTIONS] -- COMMAND [ARGS...])",
        ));
    }
    run.command = command;
    Ok(Cli::Run(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Cli, Stop> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn usage_error(args: &[&str]) -> String {
        match parse_strs(args) {
            Err(Stop::Usage(s)) => s,
            other => panic!("{args:?} is not a usage error: {other:?}"),
        }
    }

    #[test]
    fn child_env_adds_up_and_hook_env_file_needs_a_hook() {
        let Cli::Run(a) = parse_strs(&[
            "--child-env",
            "NODE_ENV",
            "--child-env=LC_*",
            "--hook-env-file",
            "/etc/openshell/hook.env",
            "--",
            "true",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.child_env, ["NODE_ENV", "LC_*"]);
        assert_eq!(
            a.hook_env_file,
            Some(PathBuf::from("/etc/openshell/hook.env"))
        );
        assert!(usage_error(&["--child-env", "A-B", "--", "true"]).contains("--child-env"));
        assert!(
            usage_error(&["--no-hook", "--hook-env-file", "/x", "--", "true"])
                .contains("cannot be used with")
        );
    }

    #[test]
    fn defaults_match_the_help() {
        let Cli::Run(a) = parse_strs(&["--", "true"]).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.hook, PathBuf::from(DEFAULT_HOOK));
        assert_eq!(a.policy, PathBuf::from(DEFAULT_POLICY));
        assert_eq!(a.status_dir, PathBuf::from(DEFAULT_DIR));
        assert_eq!(a.hook_timeout, Duration::from_secs(300));
        assert_eq!(a.backoff_initial, Duration::from_secs(1));
        assert_eq!(a.backoff_max, Duration::from_secs(60));
        assert_eq!(a.backoff_reset_after, Duration::from_secs(60));
        assert_eq!(a.restart_window, Duration::from_secs(300));
        assert_eq!(a.grace, Duration::from_secs(10));
        assert_eq!(a.ready_after, Duration::from_secs(1));
        assert_eq!(a.restart, RestartPolicy::Always);
        assert_eq!(a.max_restarts, None);
        assert_eq!(a.log.log_format, Format::Json);
        assert_eq!(a.log.log_level, LogLevel::Info);
        assert!(!a.no_hook && !a.no_policy);
        assert_eq!(a.workspace, PathBuf::from("/sandbox"));
        assert_eq!(a.seed, PathBuf::from("/opt/openshell/seed"));
        assert_eq!(a.init_modules, PathBuf::from("/etc/openshell/modules"));
        assert!(!a.no_seed && !a.init);
        // --init takes its command from the host when none follows `--`.
        let Cli::Run(a) = parse_strs(&["--init", "--grace=2s"]).unwrap() else {
            panic!("not a run")
        };
        assert!(a.init && a.command.is_empty());
        assert!(usage_error(&["--no-seed", "--seed", "/s", "--", "true"])
            .contains("cannot be used with"));
        assert_eq!(a.termination_message, None);
    }

    #[test]
    fn termination_message_and_seeding() {
        let Cli::Run(a) = parse_strs(&[
            "--termination-message",
            "/dev/termination-log",
            "--workspace=/w",
            "--seed",
            "/s",
            "--",
            "true",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(
            a.termination_message,
            Some(PathBuf::from("/dev/termination-log"))
        );
        assert_eq!(
            (a.workspace, a.seed),
            (PathBuf::from("/w"), PathBuf::from("/s"))
        );
        let Cli::Run(a) = parse_strs(&["--no-seed", "--", "true"]).unwrap() else {
            panic!("not a run")
        };
        assert!(a.no_seed);
        let e = usage_error(&["--no-seed", "--seed", "/s", "--", "true"]);
        assert!(e.contains("cannot be used with"), "{e}");
        let e = usage_error(&["--termination-message", "--", "true"]);
        assert!(e.contains("--termination-message needs a value"), "{e}");
        let e = usage_error(&["--termination-mesage", "/x", "--", "true"]);
        assert!(e.contains("did you mean --termination-message?"), "{e}");
    }

    #[test]
    fn command_follows_double_dash() {
        let Cli::Run(a) = parse_strs(&[
            "--restart",
            "never",
            "--grace=2s",
            "--",
            "sh",
            "-c",
            "exit 3",
            "--",
            "--help",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.restart, RestartPolicy::Never);
        assert_eq!(a.grace, Duration::from_secs(2));
        assert_eq!(a.command, ["sh", "-c", "exit 3", "--", "--help"]);
        assert!(matches!(
            parse_strs(&["status", "--ready"]).unwrap(),
            Cli::Status(StatusArgs { ready: true, .. })
        ));
        assert!(matches!(
            parse_strs(&["check", "--policy", "/p"]).unwrap(),
            Cli::Check(CheckArgs { .. })
        ));
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert!(usage_error(&[]).contains("no command to supervise"));
        assert!(usage_error(&["--"]).contains("no command to supervise"));
        assert!(usage_error(&["true"]).contains("after `--`"));
        let e = usage_error(&["--grac", "1s", "--", "true"]);
        assert!(
            e.contains("unknown flag --grac (did you mean --grace?)"),
            "{e}"
        );
        let e = usage_error(&["--hook-timout", "1s", "--", "true"]);
        assert!(e.contains("did you mean --hook-timeout?"), "{e}");
        let e = usage_error(&["--restart", "sometimes", "--", "true"]);
        assert!(
            e.contains("--restart") && e.contains("always, on-failure, never"),
            "{e}"
        );
        let e = usage_error(&["--hook", "--no-policy", "--", "true"]);
        assert!(e.contains("--hook needs a value"), "{e}");
        let e = usage_error(&["--grace"]);
        assert!(e.contains("--grace needs a value"), "{e}");
        let e = usage_error(&["--grace", "1s", "--grace", "2s", "--", "true"]);
        assert!(e.contains("more than once"), "{e}");
        let e = usage_error(&["--no-hook", "--hook", "/x", "--", "true"]);
        assert!(e.contains("cannot be used with"), "{e}");
        let e = usage_error(&["--no-hook=yes", "--", "true"]);
        assert!(e.contains("--no-hook"), "{e}");
        let e = usage_error(&["--grace", "1s", "status"]);
        assert!(e.contains("goes first"), "{e}");
        let e = usage_error(&["status", "--jsn"]);
        assert!(e.contains("did you mean --json?"), "{e}");
        let e = usage_error(&["--max-restarts", "-1", "--", "true"]);
        assert!(e.contains("--max-restarts"), "{e}");
        assert!(e.contains("Usage: supervisor"), "{e}");
    }

    #[test]
    fn every_duration_flag_is_bounded() {
        for f in RUN_FLAGS {
            if let crate::cli_support::Takes::Value {
                name: "DURATION", ..
            } = f.takes
            {
                let flag = format!("--{}", f.long);
                let e = usage_error(&[&flag, "10000000000000000000", "--", "true"]);
                assert!(e.contains(&flag) && e.contains("maximum"), "{e}");
            }
        }
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let Err(Stop::Help(h)) = parse_strs(&["--help"]) else {
            panic!("no help")
        };
        for f in RUN_FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{h}");
        }
        assert!(
            h.contains("[default: 300s]") && h.contains("Exit codes:"),
            "{h}"
        );
        let Err(Stop::Help(h)) = parse_strs(&["status", "-h"]) else {
            panic!("no help")
        };
        assert!(h.contains("--ready") && h.contains("Exit codes:"), "{h}");
        let Err(Stop::Help(h)) = parse_strs(&["help", "check"]) else {
            panic!("no help")
        };
        assert!(h.contains("--policy"), "{h}");
        let Err(Stop::Version(v)) = parse_strs(&["--version"]) else {
            panic!("no version")
        };
        assert_eq!(v, format!("supervisor {}\n", env!("CARGO_PKG_VERSION")));
    }
}
