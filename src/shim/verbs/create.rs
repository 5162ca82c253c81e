//! create: the backend makes workspace, record and workload; then start, unless --no-start.

use super::lifecycle::start_one;
use crate::contract::CtlExit;
use crate::shim::backend::{BackendKind, CreateRequest, Intent};
use crate::shim::cli::CreateArgs;
use crate::shim::error::{CtlError, Outcome};
use crate::shim::names::Name;
use crate::shim::observe::Backends;
use crate::shim::output::summary;
use tracing::info;

pub fn create(bs: &Backends, kind: BackendKind, args: &CreateArgs) -> i32 {
    let mut outcome = Outcome::default();
    outcome.record(run(bs, kind, args));
    outcome.code()
}

fn run(bs: &Backends, kind: BackendKind, args: &CreateArgs) -> Result<(), CtlError> {
    let name = Name::parse(&args.name).map_err(|e| CtlError::new(CtlExit::BadName, e))?;
    let about = |e: CtlError| e.about(name.as_str());
    let intent = if args.no_start {
        Intent::Stopped
    } else {
        Intent::Running
    };
    let req = CreateRequest {
        name: name.clone(),
        intent,
        args,
    };
    let b = bs.get(kind)?;
    if args.dry_run {
        // Printed, not made: nothing is contacted.
        print!("{}", b.dry_run(&req).map_err(about)?);
        return Ok(());
    }
    // The name must be free on every backend, or later verbs could not tell which is meant.
    if let Some(sb) = bs.find(&name).map_err(about)? {
        let at = sb.dir.as_ref().map_or(String::new(), |d| {
            format!(" (state in {})", d.path.display())
        });
        return Err(about(CtlError::new(
            CtlExit::Conflict,
            format!(
                "already exists on {}{at}; delete it first or pick another name",
                sb.kind()
            ),
        )));
    }
    info!(event = "create.begin", sandbox = %name, backend = %kind,
        image = args.image.as_deref().unwrap_or("(the backend's default)"), "creating");
    let sb = b.create(&req)?;
    info!(event = "create.done", sandbox = %name, backend = %kind, image = %sb.record.image,
        stop_timeout_secs = sb.record.stop_timeout_secs, "created");
    if args.no_start {
        let v = bs.observe_one(&sb)?;
        println!("{}", summary(&v));
        return Ok(());
    }
    start_one(bs, &sb, &args.wait, "create").map(drop)
}
