//! create: workspace volume + host state + container (+ start, unless --no-start).

use super::lifecycle::start_one;
use crate::contract::time::now_rfc3339;
use crate::contract::CtlExit;
use crate::shim::cli::CreateArgs;
use crate::shim::engine::{Backend, CreateSpec, Engine, ImageConfig};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::names::{self, Name};
use crate::shim::observe::{observe_one, Sandbox};
use crate::shim::output::summary;
use crate::shim::state::{Intent, Record, StateRoot, RECORD_VERSION};
use clap::Parser;
use std::time::Duration;
use tracing::info;

/// Where the workspace volume is mounted: the image's /sandbox (owned by the sandbox user;
/// a new named volume is seeded from it).
pub const WORKSPACE_PATH: &str = "/sandbox";

/// Added to the supervisor's --grace for the engine's stop timeout: after its SIGKILL the
/// supervisor waits up to 5 s for the agent's process group to vanish, then writes
/// `Stopped` and exits. The engine must not cut that short.
pub const STOP_MARGIN_SECS: u64 = 10;

pub fn create(root: &StateRoot, backend: Backend, args: &CreateArgs) -> i32 {
    let mut outcome = Outcome::default();
    outcome.record(run(root, backend, args));
    outcome.code()
}

fn run(root: &StateRoot, backend: Backend, args: &CreateArgs) -> Result<(), CtlError> {
    let name = Name::parse(&args.name).map_err(|e| CtlError::new(CtlExit::BadName, e))?;
    let Some(image) = args.image.as_deref() else {
        return Err(CtlError::new(
            CtlExit::Usage,
            format!("create --backend {backend} needs --image IMAGE"),
        ));
    };
    if args.dry_run {
        return Err(CtlError::new(
            CtlExit::Usage,
            "--dry-run is for --backend kube (podman and docker have no objects to print)",
        ));
    }
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
    let engine = Engine::new(backend);
    let config = engine.image_config(image).map_err(|e| about(e.into()))?;
    let sup = SupervisorSettings::from_image(&config).map_err(|e| {
        about(CtlError::new(
            CtlExit::Usage,
            format!("image {image} cannot run as a sandbox: {e}"),
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
                format!("{} already has a {what} named {obj} that sandboxctl does not know under {}; remove it or pick another name", backend, root.path.display()),
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
        backend,
        image: image.to_owned(),
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
        image: image.to_owned(),
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
    info!(event = "create.begin", sandbox = %name, backend = %backend, image = %image,
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
        let argv = ep.iter().map(String::as_str).chain(["agent"]);
        let cli = crate::supervisor::cli::Cli::try_parse_from(argv).map_err(|e| {
            format!(
                "its ENTRYPOINT has invalid supervisor flags: {}",
                e.render()
            )
        })?;
        if cli.command.is_some() {
            return Err(format!(
                "its ENTRYPOINT {ep:?} runs a supervisor subcommand, not the supervisor"
            ));
        }
        let status_dir = cli.run.status_dir.display().to_string();
        if !status_dir.starts_with('/') {
            return Err(format!(
                "its supervisor --status-dir {status_dir:?} is not an absolute path"
            ));
        }
        Ok(SupervisorSettings {
            grace: cli.run.grace,
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
