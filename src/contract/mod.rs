//! The contract between the in-sandbox supervisor and everything that watches it
//! (the `sandboxctl` shim, health checks, operators). One source of truth for phase
//! names, the status file schema, the supervisor's exit codes, and the sandbox-level phases
//! and exit codes of `sandboxctl`.

pub mod ctl_exit;
pub mod exit;
pub mod phase;
pub mod sandbox;
pub mod status;
pub mod termination;
pub mod time;
pub mod vm;

pub use ctl_exit::CtlExit;
pub use exit::ExitCode;
pub use phase::{Phase, Reason};
pub use sandbox::SandboxPhase;
pub use status::Status;
