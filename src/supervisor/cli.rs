//! Command line of the `supervisor` binary.

use crate::contract::status::DEFAULT_DIR;
use crate::log::{Format, LogLevel};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_HOOK: &str = "/etc/openshell/boot.sh";
pub const DEFAULT_POLICY: &str = "/etc/openshell/policy.yaml";

/// PID-1 supervisor for agent sandboxes: runs the trusted boot hook, then the sandboxed
/// child, restarts it with backoff, reaps zombies, forwards signals and reports its phase.
#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the supervisor's phase from status.json (a HEALTHCHECK / readiness probe).
    Status(StatusArgs),
    /// Print what this kernel will enforce with a policy; non-zero when a hard requirement cannot be met.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Directory holding status.json.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub status_dir: PathBuf,
    /// Print the whole status document as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 only when the phase is Ready (1 otherwise, 3 when there is no status).
    #[arg(long)]
    pub ready: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file to check.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_POLICY)]
    pub policy: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartPolicy {
    /// Restart the child whenever it exits.
    Always,
    /// Restart only when it exits non-zero or is killed by a signal.
    OnFailure,
    /// Never restart: exit with the child's exit code (or 128+signal), like tini.
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "json", global = true)]
    pub log_format: Format,
    /// Lowest level that is logged.
    #[arg(long, value_enum, default_value = "info", global = true)]
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Boot hook run once, unsandboxed, before the child. A missing file is skipped.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_HOOK)]
    pub hook: PathBuf,
    /// Do not run any boot hook.
    #[arg(long, conflicts_with = "hook")]
    pub no_hook: bool,
    /// Kill the hook's process group and fail startup after this long (e.g. 300s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub hook_timeout: Duration,

    /// Sandbox policy applied to the child (YAML).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// Run the child without any sandbox (logged loudly).
    #[arg(long, conflicts_with = "policy")]
    pub no_policy: bool,

    /// When to restart the child after it exits.
    #[arg(long, value_enum, default_value = "always")]
    pub restart: RestartPolicy,
    /// First restart delay; doubles on every restart up to --backoff-max.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub backoff_initial: Duration,
    /// Upper bound of the restart delay.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// A child that stayed up this long resets the delay to --backoff-initial.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub backoff_reset_after: Duration,
    /// Fail (crash loop) after this many restarts within --restart-window. Unlimited when unset.
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// Window over which --max-restarts is counted.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub restart_window: Duration,

    /// Time between SIGTERM and SIGKILL when stopping the child or its leftovers.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// The child is Ready once it has stayed up this long.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub ready_after: Duration,
    /// Where status.json is written on every phase change.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub status_dir: PathBuf,
    /// At exit, write the final phase (`Stopped`, `Failed/hook_failed: …`) to this file: a
    /// Kubernetes container's terminationMessagePath, e.g. /dev/termination-log. Its
    /// directory must be root-owned and not writable by others.
    #[arg(long, value_name = "PATH")]
    pub termination_message: Option<PathBuf>,

    /// The workspace: seeded from --seed on its first boot (when it has no `.openshell-seeded`).
    #[arg(long, value_name = "DIR", default_value = crate::supervisor::seed::DEFAULT_WORKSPACE)]
    pub workspace: PathBuf,
    /// Seed tree copied into a fresh workspace before the hook runs; a missing tree is skipped.
    #[arg(long, value_name = "DIR", default_value = crate::supervisor::seed::DEFAULT_SEED)]
    pub seed: PathBuf,
    /// Do not seed the workspace.
    #[arg(long, conflicts_with = "seed")]
    pub no_seed: bool,

    #[command(flatten)]
    pub log: LogArgs,

    /// The child command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Parses `250ms`, `10s`, `5m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 5m, 1h"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn command_follows_double_dash() {
        let cli = Cli::try_parse_from([
            "supervisor",
            "--restart",
            "never",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.restart, RestartPolicy::Never);
        assert_eq!(cli.run.command, ["sh", "-c", "exit 3"]);
        let cli = Cli::try_parse_from(["supervisor", "status", "--ready"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Status(StatusArgs { ready: true, .. }))
        ));
        assert!(Cli::try_parse_from(["supervisor"]).is_err());
    }
}
