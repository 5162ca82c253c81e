//! delete: the explicit destructive path — container, workspace volume, host state.

use super::lifecycle::stop_one;
use super::targets;
use crate::contract::CtlExit;
use crate::shim::cli::DeleteArgs;
use crate::shim::error::{CtlError, Outcome};
use crate::shim::observe::Sandbox;
use crate::shim::state::StateRoot;
use tracing::info;

pub fn delete(root: &StateRoot, args: &DeleteArgs) -> i32 {
    let mut outcome = Outcome::default();
    if let Some(list) = outcome.record(targets(root, &args.targets)) {
        for sb in list {
            if let Some(sb) = outcome.record(sb) {
                outcome.record(delete_one(&sb));
            }
        }
    }
    outcome.code()
}

fn delete_one(sb: &Sandbox) -> Result<(), CtlError> {
    let name = sb.name.as_str();
    // A graceful stop first, so the agent gets its SIGTERM like on any stop; the state is
    // removed last, so a delete that fails half-way can simply be run again.
    stop_one(sb, None, "delete")?;
    sb.engine()
        .remove(&sb.record.container, &sb.record.volume)
        .map_err(|e| CtlError::from(e).about(name))?;
    sb.dir.remove().map_err(|e| {
        CtlError::new(
            CtlExit::Internal,
            format!("cannot remove {}: {e}", sb.dir.path.display()),
        )
        .about(name)
    })?;
    info!(event = "delete.done", sandbox = name, container = %sb.record.container,
        volume = %sb.record.volume, "deleted");
    println!("{name}: deleted");
    Ok(())
}
