//! The supervisor's settings a backend needs (its --grace and --status-dir), read from the
//! command line the sandbox will run it with, by the supervisor's own parser: one source of
//! truth for its flags.

use std::time::Duration;

/// What sandboxctl needs to know about the image's supervisor, read from its ENTRYPOINT
/// with the supervisor's own command-line parser (one source of truth for its flags).
#[derive(Debug, PartialEq)]
pub struct SupervisorSettings {
    pub grace: Duration,
    pub status_dir: String,
}

impl SupervisorSettings {
    /// `ep` is the image's ENTRYPOINT (or the init command line): the supervisor, its flags,
    /// and a final `--` before the agent command.
    pub fn from_entrypoint(ep: &[String]) -> Result<SupervisorSettings, String> {
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
            .map(std::ffi::OsString::from)
            .chain([std::ffi::OsString::from("agent")]);
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

    /// The backend's stop timeout: the grace, rounded up to seconds, plus the margin.
    pub fn stop_timeout_secs(&self) -> u64 {
        self.grace.as_secs_f64().ceil() as u64 + super::STOP_MARGIN_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(ep: &[&str]) -> Vec<String> {
        ep.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_grace_and_status_dir_from_the_entrypoint() {
        let s = SupervisorSettings::from_entrypoint(&image(&[
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
        let s =
            SupervisorSettings::from_entrypoint(&image(&["/usr/bin/supervisor", "--"])).unwrap();
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
            let e = SupervisorSettings::from_entrypoint(&image(ep)).unwrap_err();
            assert!(e.contains(why), "{ep:?}: {e}");
        }
    }
}
