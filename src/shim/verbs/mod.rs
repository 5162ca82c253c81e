//! The verbs. Each takes the backends and its parsed arguments and returns the process
//! exit code; failures are reported through `error::Outcome` as they happen.

pub mod create;
pub mod delete;
pub mod lifecycle;
pub mod read;

use super::backend::Sandbox;
use super::cli::Targets;
use super::error::Outcome;
use super::observe::Backends;

/// The sandboxes a verb acts on: the named ones (each may fail on its own: bad name,
/// unknown) or, with `--all`, every sandbox of every listed backend. Failures are recorded
/// in `outcome`; the sandboxes that could be found are returned.
fn targets(bs: &Backends, t: &Targets, outcome: &mut Outcome) -> Vec<Sandbox> {
    if t.all {
        let (all, errors) = bs.all();
        for e in errors {
            outcome.record::<()>(Err(e));
        }
        all
    } else {
        t.names
            .iter()
            .filter_map(|n| outcome.record(bs.find_arg(n)))
            .collect()
    }
}
