//! The in-sandbox supervisor: PID-1 duties, boot hook, child generations, phases.

pub mod child;
pub mod cli;
mod egress;
mod env;
mod events;
pub mod hook;
mod init;
mod last_word;
mod report;
pub mod restart;
mod run;
pub mod seed;
mod spawn;
pub mod status_cmd;
mod tree;

use crate::contract::{ExitCode, Phase, Reason};
use cli::Cli;
use tracing::{error, info, warn};

/// How long queued log lines may hold up the exit when stderr's reader is slow.
pub(crate) const EXIT_LOG_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// Entry point of the `supervisor` binary; returns the process exit code.
pub fn main() -> i32 {
    // The egress proxy: the same binary in a hidden mode, started by the supervisor itself.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == crate::egress::process::MODE)
    {
        return crate::egress::process::main();
    }
    let cli = match cli::parse_env() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cli {
        Cli::Status(args) => status_cmd::run(&args),
        Cli::Check(args) => {
            crate::log::init(args.log.log_format, args.log.log_level);
            crate::enforce::check_command(&args.policy)
        }
        Cli::Run(args) => {
            let code = if args.init {
                init::main(args, supervise)
            } else {
                supervise(args)
            };
            crate::log::shutdown(EXIT_LOG_FLUSH);
            code
        }
    }
}

fn supervise(mut args: cli::RunArgs) -> i32 {
    crate::log::init_nonblocking(args.log.log_format, args.log.log_level);
    let pid = std::process::id();
    info!(event = "supervisor.start", version = env!("CARGO_PKG_VERSION"), pid, command = ?args.command, "supervisor starting");

    // Checked before anything runs; written at every exit from here on.
    let last_word = match args
        .termination_message
        .as_deref()
        .map(last_word::TerminationLog::open)
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            error!(event = "supervisor.setup_failed", step = "termination_message", error = %e,
                "refusing the termination message path");
            return ExitCode::Config.code();
        }
    };
    let setup_failed = |msg: String| {
        if let Some(t) = &last_word {
            t.write(Phase::Failed, Some(Reason::Internal), Some(&msg));
        }
        ExitCode::Internal.code()
    };
    // Signals first: a SIGTERM that arrives during start-up must be queued, not lost.
    let events = match events::Events::new() {
        Ok(e) => e,
        Err(e) => {
            error!(event = "supervisor.setup_failed", step = "signalfd", error = %e, "cannot set up signal handling");
            return setup_failed(format!("cannot set up signal handling: {e}"));
        }
    };
    // After the signal set-up: the child-side reset is computed from our dispositions.
    let spawner = match spawn::Spawner::new() {
        Ok(s) => s,
        Err(e) => {
            error!(event = "supervisor.setup_failed", step = "spawn", error = %e, "cannot prepare process spawning");
            return setup_failed(format!("cannot prepare process spawning: {e}"));
        }
    };
    if pid != 1 {
        // Orphans of the child must come back to us, not to the host's init.
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            error!(event = "supervisor.setup_failed", step = "subreaper", error = %e, "cannot become a child subreaper");
            return setup_failed(format!("cannot become a child subreaper: {e}"));
        }
    }
    // The child starts where we were started; we move to / so we never keep a mount busy.
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            error!(event = "supervisor.setup_failed", step = "cwd", error = %e, "cannot read the working directory");
            return setup_failed(format!("cannot read the working directory: {e}"));
        }
    };
    // Relative paths on the command line mean the start directory, not `/`.
    for p in [
        &mut args.hook,
        &mut args.policy,
        &mut args.status_dir,
        &mut args.workspace,
        &mut args.seed,
    ]
    .into_iter()
    .chain(args.hook_env_file.as_mut())
    {
        if p.is_relative() {
            *p = cwd.join(&*p);
        }
    }
    if let Err(e) = std::env::set_current_dir("/") {
        warn!(event = "supervisor.chdir_failed", error = %e, "cannot move to /");
    }
    let hook_path = (!args.no_hook).then(|| args.hook.display().to_string());
    let mut report = match report::Reporter::start(args.status_dir.clone(), hook_path) {
        Ok(r) => r,
        Err(e) => {
            error!(event = "supervisor.setup_failed", step = "status", dir = %args.status_dir.display(), error = %e,
                "cannot write status.json; pass a writable --status-dir");
            return setup_failed(format!(
                "cannot write status.json in {}: {e}",
                args.status_dir.display()
            ));
        }
    };
    report.last_word = last_word;
    // A fresh workspace gets the image's seed tree before the policy's paths are opened and
    // before the hook runs.
    if let Err(code) = seed::at_boot(&args, &mut report) {
        return code;
    }
    // The egress proxy's listener is bound first: its port goes into the child's Landlock
    // rules, and it stays ours across proxy restarts.
    let egress_listener = if args.no_policy {
        None
    } else {
        match egress::bind() {
            Ok(l) => Some(l),
            Err(e) => {
                let msg = format!("cannot bind the egress proxy's loopback listener: {e}");
                error!(event = "egress.failed", error = %msg, "egress cannot be provided");
                report.phase(Phase::Failed, Some(Reason::EgressFailed), Some(msg));
                return ExitCode::EgressFailed.code();
            }
        }
    };
    let proxy_port = egress_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |a| a.port());
    // The policy is read and compiled before anything runs: a bad policy fails closed.
    let sandbox = if args.no_policy {
        warn!(
            event = "enforce.disabled",
            "--no-policy: the child runs UNCONFINED (no Landlock, no seccomp, no privilege drop)"
        );
        None
    } else {
        // Paths the hook is about to create are not "missing" yet: report them only once
        // the sandbox is rebuilt after the hook (see `run`).
        let hook_will_run = !args.no_hook && args.hook.exists();
        let prepared = prepare_sandbox(&args, &cwd, proxy_port).and_then(|s| {
            s.log_summary();
            if !hook_will_run {
                s.check_missing_paths().map_err(|e| refused(&args, e))?;
            }
            Ok(s)
        });
        match prepared {
            Ok(s) => Some(s),
            Err(e) => {
                report.phase(Phase::Failed, Some(e.reason), Some(e.message));
                info!(
                    event = "supervisor.exit",
                    code = e.code,
                    phase = "Failed",
                    "supervisor exiting"
                );
                return e.code;
            }
        }
    };
    // No egress allowed: no proxy; the child's TCP connects are all refused by Landlock.
    let egress_listener =
        egress_listener.filter(|_| sandbox.as_ref().is_some_and(|s| s.egress().is_some()));
    run::Supervisor::new(args, events, spawner, report, cwd, sandbox, egress_listener).run()
}

/// Why the sandbox could not be prepared, already logged.
pub(crate) struct PrepareError {
    pub reason: Reason,
    pub message: String,
    pub code: i32,
}

/// Reads, validates and compiles the policy; logs a refusal with its event.
pub(crate) fn prepare_sandbox(
    args: &cli::RunArgs,
    cwd: &std::path::Path,
    proxy_port: u16,
) -> Result<crate::enforce::Sandbox, PrepareError> {
    crate::enforce::Sandbox::prepare_egress(&args.policy, cwd, proxy_port)
        .map_err(|e| refused(args, e))
}

/// Logs a refused policy with its event and says how the supervisor exits.
pub(crate) fn refused(args: &cli::RunArgs, e: crate::enforce::PolicyError) -> PrepareError {
    {
        // A wrong policy is a config error; a kernel that cannot enforce a valid one
        // (hard_requirement) is an enforcement failure.
        let (event, reason, code) = match e.kind {
            crate::enforce::ErrorKind::Invalid => {
                ("policy.invalid", Reason::ConfigInvalid, ExitCode::Config)
            }
            crate::enforce::ErrorKind::Untrusted => {
                ("policy.untrusted", Reason::ConfigInvalid, ExitCode::Config)
            }
            crate::enforce::ErrorKind::Unenforceable => (
                "enforce.unsupported",
                Reason::EnforcementFailed,
                ExitCode::Enforcement,
            ),
        };
        error!(event, policy = %args.policy.display(), field = e.field.as_deref().unwrap_or(""), error = %e,
            "refusing to start; run `supervisor check --policy {}`", args.policy.display());
        PrepareError {
            reason,
            message: e.to_string(),
            code: code.code(),
        }
    }
}
