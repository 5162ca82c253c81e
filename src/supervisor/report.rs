//! Owns the status document: every phase change is logged as a `phase` event and written
//! atomically to status.json.

use crate::contract::status::{HookInfo, HookResult, SupervisorInfo, SCHEMA_VERSION};
use crate::contract::time::now_rfc3339;
use crate::contract::{Phase, Reason, Status};
use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::unistd::{faccessat, AccessFlags};
use std::io;
use std::path::PathBuf;
use tracing::{error, info};

pub struct Reporter {
    dir: PathBuf,
    pub status: Status,
    /// `--termination-message`: written with every terminal phase (the last thing before exit).
    pub last_word: Option<super::last_word::TerminationLog>,
}

impl Reporter {
    /// Creates the status directory and checks that we may write there. Failing here fails
    /// startup: a supervisor nobody can observe is not one operators can trust.
    ///
    /// `Booting` is logged but not written yet: the first write is the first thing worth
    /// reporting (the hook starting, the child starting, or a failure), which follows within
    /// microseconds when there is no hook. Writing `Booting` first cost one more fsync'd
    /// write on every start; readers tell a previous run's file apart by `started_at`.
    pub fn start(dir: PathBuf, hook_path: Option<String>) -> io::Result<Reporter> {
        std::fs::create_dir_all(&dir)?;
        faccessat(AT_FDCWD, &dir, AccessFlags::W_OK, AtFlags::AT_EACCESS)?;
        let now = now_rfc3339();
        let status = Status {
            schema_version: SCHEMA_VERSION,
            phase: Phase::Booting,
            reason: None,
            message: None,
            since: now.clone(),
            supervisor: SupervisorInfo {
                pid: std::process::id(),
                started_at: now,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            child: None,
            restarts: 0,
            last_exit: None,
            hook: HookInfo {
                path: hook_path,
                result: HookResult::Pending,
                exit_code: None,
                signal: None,
                duration_ms: None,
            },
        };
        info!(event = "phase", phase = "Booting", "phase changed");
        Ok(Reporter {
            dir,
            status,
            last_word: None,
        })
    }

    /// Enters `phase`. `reason` and `message` describe a failure (or a notable transition).
    pub fn phase(&mut self, phase: Phase, reason: Option<Reason>, message: Option<String>) {
        let previous = self.status.phase;
        self.status.phase = phase;
        self.status.reason = reason;
        self.status.message = message;
        self.status.since = now_rfc3339();
        match (reason, &self.status.message) {
            (Some(r), Some(m)) => {
                info!(event = "phase", phase = %phase, previous = %previous, reason = %r, detail = %m, "phase changed")
            }
            (Some(r), None) => {
                info!(event = "phase", phase = %phase, previous = %previous, reason = %r, "phase changed")
            }
            _ => info!(event = "phase", phase = %phase, previous = %previous, "phase changed"),
        }
        self.write();
        if phase.is_terminal() {
            if let Some(t) = &self.last_word {
                t.write(phase, reason, self.status.message.as_deref());
            }
        }
    }

    /// Persists the current document (also for changes that are not phase changes, such as
    /// the hook result or a new child pid).
    pub fn write(&mut self) {
        if let Err(e) = self.status.write_atomic(&self.dir) {
            // The workload matters more than the report: log loudly and carry on.
            error!(event = "status.write_failed", dir = %self.dir.display(), error = %e,
                "cannot write status.json; phase readers will see stale data");
        }
    }
}
