//! delete: the explicit destructive path — workload, workspace, record.

use super::lifecycle::stop_locked;
use super::targets;
use crate::contract::CtlExit;
use crate::shim::backend::Sandbox;
use crate::shim::cli::DeleteArgs;
use crate::shim::error::{CtlError, Outcome};
use crate::shim::observe::Backends;
use tracing::{info, warn};

pub fn delete(bs: &Backends, args: &DeleteArgs) -> i32 {
    let mut outcome = Outcome::default();
    for sb in targets(bs, &args.targets, &mut outcome) {
        outcome.record(delete_one(bs, &sb));
    }
    outcome.code()
}

fn delete_one(bs: &Backends, sb: &Sandbox) -> Result<(), CtlError> {
    let name = sb.name.as_str();
    let b = bs.get(sb.kind())?;
    let _lock = b.lock(sb, "delete", bs.lock_wait(sb))?;
    let Some(sb) = b.find(&sb.name)? else {
        // Deleted by someone else while we waited: what was asked is done.
        println!("{name}: deleted");
        return Ok(());
    };
    // A graceful stop first, so the agent gets its SIGTERM like on any stop; the record is
    // removed last, so a delete that fails half-way can simply be run again.
    match stop_locked(bs, b, &sb, None, "delete") {
        Ok(_) => {}
        // The name is another sandbox's object: nothing of ours runs; the backend's delete
        // leaves that object alone and removes what is ours.
        Err(e) if e.exit == CtlExit::Conflict => {
            warn!(
                event = "delete.skipped",
                sandbox = name,
                "not stopped: {}",
                e.message
            );
        }
        Err(e) => return Err(e),
    }
    b.delete(&sb)?;
    let objects = b.objects(&sb);
    info!(event = "delete.done", sandbox = name, backend = %sb.kind(),
        objects = ?objects, "deleted");
    println!("{name}: deleted");
    Ok(())
}
