//! create: workspace volume + host state + container (+ start, unless --no-start).

use super::lifecycle::start_one;
use crate::contract::time::now_rfc3339;
use crate::contract::CtlExit;
use crate::shim::cli::CreateArgs;
use crate::shim::engine::{CreateSpec, Engine, ImageConfig};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::names::{self, Name};
use crate::shim::observe::{observe_one, Sandbox};
use crate::shim::output::summary;
use crate::shim::state::{Intent, Record, StateRoot, RECORD_VERSION};
use std::ffi::OsString;
use std::time::Duration;
use tracing::info;

/// Where the workspace volume is mounted: the image's /sandbox (owned by the sandbox user;
/// a new named volume is seeded from it).
pub const WORKSPACE_PATH: &str = "/sandbox";

/// Added to the supervisor's --grace for the engine's stop timeout: after its SIGKILL the
/// supervisor waits up to 5 s for the agent's process group to vanish, then writes
/// `Stopped` and exits. The engine must not cut that short.
pub const STOP_MARGIN_SECS: u64 = 10;

pub fn create(root: &StateRoot, args: &CreateArgs) -> i32 {
    let mut outcome = Outcome::default();
    outcome.record(run(root, args));
    outcome.code()
}

fn run(root: &StateRoot, args: &CreateArgs) -> Result<(), CtlError> {
    let name = Name::parse(&args.name).map_err(|e| CtlError::new(CtlExit::BadName, e))?;
    let about = |e: CtlError| e.about(name.as_str());
    if root.dir(&name).exists() {
        return Err(about(CtlError::new(
            CtlExit::Conflict,
            format!(
                "already exists (state in {}); delete it first or pick another name",
                root.dir(&name).path.display()
            ),
        )));
    }
    let engine = Engine::new(args.backend);
    let image = engine
        .image_config(&args.image)
        .map_err(|e| about(e.into()))?;
    let sup = SupervisorSettings::from_image(&image).map_err(|e| {
        about(CtlError::new(
            CtlExit::Usage,
            format!("image {} cannot run as a sandbox: {e}", args.image),
        ))
    })?;
    let (container, volume) = (name.container(), name.volume());
    // Engine objects of these names that we did not make are someone else's.
    for (what, taken) in [
        ("container", engine.container_exists(&container)),
        ("volume", engine.volume_exists(&volume)),
    ] {
        if taken.map_err(|e| about(e.into()))? {
            let obj = if what == "container" {
                &container
            } else {
                &volume
            };
            return Err(about(CtlError::new(
                CtlExit::Conflict,
                format!("{} already has a {what} named {obj} that sandboxctl does not know under {}; remove it or pick another name", args.backend, root.path.display()),
            )));
        }
    }

    let dir = root.claim(&name).map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::AlreadyExists {
            CtlExit::Conflict
        } else {
            CtlExit::Internal
        };
        about(CtlError::new(
            exit,
            format!(
                "cannot create the state directory under {}: {e}",
                root.path.display()
            ),
        ))
    })?;
    let stop_timeout_secs = sup.grace.as_secs_f64().ceil() as u64 + STOP_MARGIN_SECS;
    let record = Record {
        schema_version: RECORD_VERSION,
        name: name.to_string(),
        backend: args.backend,
        image: args.image.clone(),
        container: container.clone(),
        volume: volume.clone(),
        status_path: sup.status_dir.clone(),
        stop_timeout_secs,
        created_at: now_rfc3339(),
    };
    let intent = if args.no_start {
        Intent::Stopped
    } else {
        Intent::Running
    };
    let spec = CreateSpec {
        container,
        volume,
        hostname: name.to_string(),
        image: args.image.clone(),
        labels: vec![
            (names::LABEL_SANDBOX.into(), name.to_string()),
            (names::LABEL_MANAGED_BY.into(), names::MANAGED_BY.into()),
            (
                names::LABEL_STATE_DIR.into(),
                dir.path.display().to_string(),
            ),
        ],
        env: args.env.clone(),
        workspace_path: WORKSPACE_PATH.into(),
        status_host_dir: dir.status_dir(),
        status_path: sup.status_dir,
        stop_timeout_secs,
        command: args.command.clone(),
    };
    info!(event = "create.begin", sandbox = %name, backend = %args.backend, image = %args.image,
        stop_timeout_secs, "creating");
    let made = dir
        .write_intent(intent, "create")
        .and_then(|()| dir.write_record(&record))
        .map_err(|e| {
            CtlError::new(
                CtlExit::Internal,
                format!("cannot write the host state: {e}"),
            )
        })
        .and_then(|()| engine.create(&spec).map_err(CtlError::from));
    if let Err(e) = made {
        // Leave nothing half-made behind: the name stays free.
        let _ = dir.remove();
        return Err(about(e));
    }
    let sb = Sandbox {
        name: name.clone(),
        dir,
        record,
    };
    if args.no_start {
        let v = observe_one(&sb)?;
        println!("{}", summary(&v));
        return Ok(());
    }
    start_one(&sb, &args.wait, "create").map(drop)
}

/// What sandboxctl needs to know about the image's supervisor, read from its ENTRYPOINT
/// with the supervisor's own command-line parser (one source of truth for its flags).
#[derive(Debug, PartialEq)]
pub struct SupervisorSettings {
    pub grace: Duration,
    pub status_dir: String,
}

impl SupervisorSettings {
    pub fn from_image(image: &ImageConfig) -> Result<SupervisorSettings, String> {
        let ep = &image.entrypoint;
        let is_supervisor = ep
            .first()
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(|base| base == "supervisor");
        if !is_supervisor || ep.last().map(String::as_str) != Some("--") {
            return Err(format!(
                "its ENTRYPOINT {ep:?} is not the openshell supervisor ending in \"--\" (see README \"## Images\")"
            ));
        }
        // The agent command follows `--`; any word stands in for it here.
        let argv = ep[1..]
            .iter()
            .map(OsString::from)
            .chain([OsString::from("agent")]);
        let run = match crate::supervisor::cli::parse(argv.collect()) {
            Ok(crate::supervisor::cli::Cli::Run(run)) => run,
            Ok(_) => {
                return Err(format!(
                    "its ENTRYPOINT {ep:?} runs a supervisor subcommand, not the supervisor"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "its ENTRYPOINT has invalid supervisor flags: {}",
                    e.text()
                ))
            }
        };
        let status_dir = run.status_dir.display().to_string();
        if !status_dir.starts_with('/') {
            return Err(format!(
                "its supervisor --status-dir {status_dir:?} is not an absolute path"
            ));
        }
        Ok(SupervisorSettings {
            grace: run.grace,
            status_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(ep: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: ep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reads_grace_and_status_dir_from_the_entrypoint() {
        let s = SupervisorSettings::from_image(&image(&[
            "/usr/bin/supervisor",
            "--status-dir",
            "/run/x",
            "--grace",
            "2500ms",
            "--",
        ]))
        .unwrap();
        assert_eq!(s.grace, Duration::from_millis(2500));
        assert_eq!(s.status_dir, "/run/x");
        // The supervisor's defaults when the image does not spell them out.
        let s = SupervisorSettings::from_image(&image(&["/usr/bin/supervisor", "--"])).unwrap();
        assert_eq!(
            s,
            SupervisorSettings {
                grace: Duration::from_secs(10),
                status_dir: "/run/openshell".into()
            }
        );
    }

    #[test]
    fn refuses_images_without_the_supervisor() {
        for (ep, why) in [
            (&[][..], "not the openshell supervisor"),
            (&["/bin/sh", "-c"], "not the openshell supervisor"),
            (&["/usr/bin/supervisor"], "ending in"),
            (
                &["/usr/bin/supervisor", "--bogus", "--"],
                "invalid supervisor flags",
            ),
            (
                &["/usr/bin/supervisor", "--grace", "soon", "--"],
                "invalid supervisor flags",
            ),
            (
                &["/usr/bin/supervisor", "--status-dir", "rel", "--"],
                "not an absolute path",
            ),
        ] {
            let e = SupervisorSettings::from_image(&image(ep)).unwrap_err();
            assert!(e.contains(why), "{ep:?}: {e}");
        }
    }
}
