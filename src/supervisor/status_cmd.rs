//! `supervisor status`: reads status.json for health checks and operators.

use super::cli::StatusArgs;
use crate::contract::{Phase, Status};

/// Exit codes of `supervisor status`.
pub const NOT_READY: i32 = 1;
pub const NO_STATUS: i32 = 3;

pub fn run(args: &StatusArgs) -> i32 {
    // Read without following a link, blocking on a FIFO or reading a huge file; a torn,
    // empty or garbage document is "no status", like a missing one.
    let status = match Status::read(&args.status_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "supervisor status: no status: {} {e}",
                crate::contract::status::path_in(&args.status_dir).display()
            );
            return NO_STATUS;
        }
    };
    // Only the supervisor that wrote the document can vouch for it: the pid alone proves
    // nothing (in a container it is always 1, whoever runs now), so its start time and the
    // boot id must match too. A killed supervisor's Ready never passes the probe.
    let current = status.supervisor.is_running();
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
        if !current && !status.phase.is_terminal() {
            line.push_str(&format!(
                " [stale: the supervisor that wrote it (pid {}) is not running]",
                status.supervisor.pid
            ));
        }
        println!("{line}");
    }
    if args.ready && !(status.phase == Phase::Ready && current) {
        return NOT_READY;
    }
    0
}
