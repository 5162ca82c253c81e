//! openshell-supervisor: the in-sandbox PID-1 supervisor, the enforcement it applies to its
//! child, the host-side control shim, and the phase/status contract they share.

mod cli_support;
pub mod contract;
pub mod egress;
pub mod enforce;
pub mod log;
pub mod safe_fs;
pub mod shim;
pub mod supervisor;
pub mod yaml;
