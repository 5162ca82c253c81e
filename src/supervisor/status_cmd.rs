//! `supervisor status`: reads status.json for health checks and operators.

use super::cli::StatusArgs;
use crate::contract::{Phase, Status};

/// Exit codes of `supervisor status`.
pub const NOT_READY: i32 = 1;
pub const NO_STATUS: i32 = 3;

pub fn run(args: &StatusArgs) -> i32 {
    let status = match Status::read(&args.status_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "supervisor status: cannot read {}: {e}",
                crate::contract::status::path_in(&args.status_dir).display()
            );
            return NO_STATUS;
        }
    };
    // A status left behind by a dead supervisor (a killed container with a persistent
    // status dir) must not pass a readiness probe.
    let alive = supervisor_alive(status.supervisor.pid);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        );
    } else {
        let mut line = status.phase.to_string();
        if let Some(r) = status.reason {
            line.push_str(&format!(" ({r})"));
        }
        if let Some(m) = &status.message {
            line.push_str(&format!(": {m}"));
        }
        if !alive && !status.phase.is_terminal() {
            line.push_str(&format!(
                " [stale: supervisor pid {} is not running]",
                status.supervisor.pid
            ));
        }
        println!("{line}");
    }
    if args.ready && !(status.phase == Phase::Ready && alive) {
        return NOT_READY;
    }
    0
}

fn supervisor_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
