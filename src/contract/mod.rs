//! The contract between the in-sandbox supervisor and everything that watches it
//! (the `sandboxctl` shim, health checks, operators). One source of truth for phase
//! names, the status file schema and the supervisor's exit codes.

pub mod exit;
pub mod phase;
pub mod status;
pub mod time;

pub use exit::ExitCode;
pub use phase::{Phase, Reason};
pub use status::Status;
