//! The host state of each sandbox: one directory per sandbox under the state root.
//!
//! ```text
//! <state-root>/<NAME>/
//!   sandbox.json   what `create` made: backend, image, container, volume, stop timeout
//!   intent.json    the operator's last wish, "running" or "stopped", written atomically
//!                  BEFORE sandboxctl acts on it, so a crash mid-way leaves the wish behind
//!   status/        bind-mounted as the supervisor's --status-dir: status.json stays
//!                  readable here while the container is stopped (or gone)
//! ```
//! The state root decides which sandboxes exist for `list`, `--all` and `resume --all`;
//! engine objects without a state directory here are not ours to touch.

use super::engine::Backend;
use super::names::Name;
use crate::contract::status::write_file_atomic;
use crate::contract::time::now_rfc3339;
use crate::contract::Status;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/var/lib/openshell/sandboxes";
pub const ROOT_ENV: &str = "OPENSHELL_STATE_ROOT";
pub const SANDBOX_FILE: &str = "sandbox.json";
pub const INTENT_FILE: &str = "intent.json";
pub const STATUS_DIR: &str = "status";
pub const RECORD_VERSION: u32 = 1;

/// What `create` made. Written once; the verbs read it to find the engine objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub name: String,
    pub backend: Backend,
    pub image: String,
    pub container: String,
    pub volume: String,
    /// Where status/ is mounted in the sandbox (the supervisor's --status-dir).
    pub status_path: String,
    /// `stop -t` for this sandbox: the supervisor's --grace plus a margin.
    pub stop_timeout_secs: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    Running,
    Stopped,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Running => "running",
            Intent::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentRecord {
    pub intent: Intent,
    /// When it was recorded, and by which verb.
    pub at: String,
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct StateRoot {
    pub path: PathBuf,
}

impl StateRoot {
    pub fn new(path: PathBuf) -> StateRoot {
        StateRoot { path }
    }

    pub fn dir(&self, name: &Name) -> SandboxDir {
        SandboxDir {
            path: self.path.join(name.as_str()),
        }
    }

    /// Every sandbox under the root, sorted by name. A missing root has none.
    pub fn names(&self) -> io::Result<Vec<Name>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(s) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Only directories that hold a record (a create that crashed before writing it
            // left nothing usable) and whose name is valid.
            if let Ok(name) = Name::parse(&s) {
                if entry.path().join(SANDBOX_FILE).is_file() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Creates the sandbox's directory and status/ (mode 0700: the state is root's).
    /// Fails with `AlreadyExists` when the name is taken: the directory is the claim.
    pub fn claim(&self, name: &Name) -> io::Result<SandboxDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)?;
        let dir = self.dir(name);
        fs::DirBuilder::new().mode(0o700).create(&dir.path)?;
        // The supervisor writes here as root from inside the sandbox.
        fs::DirBuilder::new().mode(0o755).create(dir.status_dir())?;
        Ok(dir)
    }
}

#[derive(Debug, Clone)]
pub struct SandboxDir {
    pub path: PathBuf,
}

impl SandboxDir {
    pub fn exists(&self) -> bool {
        self.path.join(SANDBOX_FILE).is_file()
    }

    pub fn status_dir(&self) -> PathBuf {
        self.path.join(STATUS_DIR)
    }

    pub fn write_record(&self, r: &Record) -> io::Result<()> {
        write_json(&self.path, SANDBOX_FILE, r)
    }

    pub fn read_record(&self) -> io::Result<Record> {
        read_json(&self.path.join(SANDBOX_FILE))
    }

    /// Records the operator's wish. Called before acting on it.
    pub fn write_intent(&self, intent: Intent, by: &str) -> io::Result<()> {
        let r = IntentRecord {
            intent,
            at: now_rfc3339(),
            by: by.to_owned(),
        };
        write_json(&self.path, INTENT_FILE, &r)
    }

    pub fn read_intent(&self) -> io::Result<IntentRecord> {
        read_json(&self.path.join(INTENT_FILE))
    }

    /// The supervisor's last status.json, if there is one. Whether it describes the current
    /// run is for `phase::status_is_current` to decide.
    pub fn read_status(&self) -> io::Result<Option<Status>> {
        // Missing, empty, torn, planted (symlink, FIFO, huge) or garbage: "no status" for
        // this sandbox, never an error that stops the verb (contract::status::NoStatus).
        Ok(Status::read(&self.status_dir()).ok())
    }

    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

fn write_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> io::Result<()> {
    let mut body = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    body.push(b'\n');
    write_file_atomic(dir, file, &body)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let body = fs::read(path)?;
    serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str) -> StateRoot {
        let p = std::env::temp_dir().join(format!("shim-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        StateRoot::new(p)
    }

    fn record(name: &str) -> Record {
        Record {
            schema_version: RECORD_VERSION,
            name: name.into(),
            backend: Backend::Podman,
            image: "img".into(),
            container: format!("openshell-{name}"),
            volume: format!("openshell-{name}-workspace"),
            status_path: "/run/openshell".into(),
            stop_timeout_secs: 20,
            created_at: now_rfc3339(),
        }
    }

    #[test]
    fn claim_record_intent_and_listing() {
        let root = temp_root("claim");
        assert!(
            root.names().unwrap().is_empty(),
            "a missing root has no sandboxes"
        );
        let a = Name::parse("a").unwrap();
        let dir = root.claim(&a).unwrap();
        assert_eq!(
            root.claim(&a).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        // Claimed but without a record: not listed.
        assert!(root.names().unwrap().is_empty());
        let r = record("a");
        dir.write_record(&r).unwrap();
        assert_eq!(dir.read_record().unwrap(), r);
        dir.write_intent(Intent::Stopped, "stop").unwrap();
        assert_eq!(dir.read_intent().unwrap().intent, Intent::Stopped);
        dir.write_intent(Intent::Running, "start").unwrap();
        let i = dir.read_intent().unwrap();
        assert_eq!((i.intent, i.by.as_str()), (Intent::Running, "start"));
        assert!(dir.read_status().unwrap().is_none());
        // Foreign entries are ignored.
        fs::create_dir_all(root.path.join("Not_A_Name")).unwrap();
        fs::write(root.path.join("Not_A_Name").join(SANDBOX_FILE), "{}").unwrap();
        assert_eq!(root.names().unwrap(), [a]);
        dir.remove().unwrap();
        dir.remove().unwrap();
        assert!(!dir.exists());
        fs::remove_dir_all(&root.path).unwrap();
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let root = temp_root("corrupt");
        let dir = root.claim(&Name::parse("b").unwrap()).unwrap();
        fs::write(dir.path.join(INTENT_FILE), "{\"intent\":\"maybe\"}").unwrap();
        let e = dir.read_intent().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(INTENT_FILE), "{e}");
        fs::remove_dir_all(&root.path).unwrap();
    }
}
