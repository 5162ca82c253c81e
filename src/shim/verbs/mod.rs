//! The verbs. Each takes the state root and its parsed arguments and returns the process
//! exit code; failures are reported through `error::Outcome` as they happen.

pub mod create;
pub mod delete;
pub mod lifecycle;
pub mod read;

use super::cli::Targets;
use super::error::CtlError;
use super::observe::{load_all, load_arg, Sandbox};
use super::state::StateRoot;

/// The sandboxes a verb acts on: the named ones (each may fail on its own: bad name,
/// unknown) or, with `--all`, every sandbox under the state root.
fn targets(root: &StateRoot, t: &Targets) -> Result<Vec<Result<Sandbox, CtlError>>, CtlError> {
    if t.all {
        Ok(load_all(root)?.into_iter().map(Ok).collect())
    } else {
        Ok(t.names.iter().map(|n| load_arg(root, n)).collect())
    }
}
