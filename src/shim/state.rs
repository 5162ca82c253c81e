//! The host state of the host-state backends (podman, docker): one directory per sandbox
//! under the state root.
//!
//! ```text
//! <state-root>/<NAME>/
//!   sandbox.json   what `create` made: backend, id, image, stop timeout, the backend's objects
//!   intent.json    the operator's last wish, "running" or "stopped", written atomically
//!                  BEFORE sandboxctl acts on it, so a crash mid-way leaves the wish behind
//!   lock           flock'ed by the verb changing the sandbox; says who holds it (lock.rs)
//!   status/        bind-mounted as the supervisor's --status-dir: status.json stays
//!                  readable here while the container is stopped (or gone)
//! ```
//! The state root decides which of these sandboxes exist for `list`, `--all` and
//! `resume --all`; engine objects without a state directory here are not ours to touch.
//!
//! `status/` is written from inside the sandbox, so everything in it is hostile: status.json
//! is read without following links, without opening anything but a regular file, and to at
//! most `status::MAX_BYTES` ([`SandboxDir::read_status`]).

use super::backend::{BackendKind, Intent, IntentRecord, Record, Sandbox};
use super::error::CtlError;
use super::lock::{self, HostLock};
use super::names::Name;
#[cfg(test)]
use crate::contract::status::FILE_NAME;
use crate::contract::status::{write_file_atomic, NoStatus};
use crate::contract::time::now_rfc3339;
use crate::contract::{CtlExit, Status};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_ROOT: &str = "/var/lib/openshell/sandboxes";
pub const ROOT_ENV: &str = "OPENSHELL_STATE_ROOT";
pub const SANDBOX_FILE: &str = "sandbox.json";
pub const INTENT_FILE: &str = "intent.json";
pub const STATUS_DIR: &str = "status";

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

    /// The sandboxes of backend `kind` under the root.
    pub fn list(&self, kind: BackendKind) -> Result<Vec<Sandbox>, CtlError> {
        let names = self.names().map_err(|e| {
            internal(
                &format!("cannot list the state root {}", self.path.display()),
                e,
            )
        })?;
        let mut out = Vec::new();
        for n in names {
            if let Some(sb) = self.find(&n, kind)? {
                out.push(sb);
            }
        }
        Ok(out)
    }

    /// NAME, if it is a sandbox of backend `kind` under the root.
    pub fn find(&self, name: &Name, kind: BackendKind) -> Result<Option<Sandbox>, CtlError> {
        let dir = self.dir(name);
        if !dir.exists() {
            return Ok(None);
        }
        let record = dir
            .read_record()
            .map_err(|e| internal("cannot read the sandbox record", e).about(name.as_str()))?;
        if record.backend != kind {
            return Ok(None);
        }
        Ok(Some(Sandbox {
            name: name.clone(),
            record,
            dir: Some(dir),
        }))
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

/// What status/ held, judged without trusting it.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusRead {
    /// No status.json (the supervisor has not written one yet).
    Absent,
    Found(Box<Status>),
    /// Something is there but it is not a status document we read: why.
    Refused(String),
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

    /// The supervisor's last status.json. The sandbox controls status/, so this never
    /// follows a symlink, never opens a FIFO or device (no hang, no side effect), never
    /// reads more than the cap, and a malformed file is refused, not an error: it is "no
    /// status" for this sandbox only. Whether a status describes the current run is for
    /// `phase::status_is_current` to decide.
    pub fn read_status(&self) -> StatusRead {
        match Status::read(&self.status_dir()) {
            Ok(s) => StatusRead::Found(Box::new(s)),
            Err(NoStatus::Missing) => StatusRead::Absent,
            Err(NoStatus::Unusable(why)) => StatusRead::Refused(format!("it {why}")),
        }
    }

    pub fn lock(&self, sandbox: &str, verb: &str, wait: Duration) -> Result<HostLock, CtlError> {
        lock::acquire(&self.path, sandbox, verb, wait)
    }

    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

pub fn internal(what: &str, e: io::Error) -> CtlError {
    CtlError::new(CtlExit::Internal, format!("{what}: {e}"))
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
    use crate::shim::backend::RECORD_VERSION;

    fn temp_root(tag: &str) -> StateRoot {
        let p = std::env::temp_dir().join(format!("shim-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        StateRoot::new(p)
    }

    fn record(name: &str, backend: BackendKind) -> Record {
        let mut details = serde_json::Map::new();
        details.insert("container".into(), format!("openshell-{name}").into());
        Record {
            schema_version: RECORD_VERSION,
            name: name.into(),
            id: "00".into(),
            backend,
            image: "img".into(),
            stop_timeout_secs: 20,
            created_at: now_rfc3339(),
            details,
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
        let r = record("a", BackendKind::Podman);
        dir.write_record(&r).unwrap();
        assert_eq!(dir.read_record().unwrap(), r);
        dir.write_intent(Intent::Stopped, "stop").unwrap();
        assert_eq!(dir.read_intent().unwrap().intent, Intent::Stopped);
        dir.write_intent(Intent::Running, "start").unwrap();
        let i = dir.read_intent().unwrap();
        assert_eq!((i.intent, i.by.as_str()), (Intent::Running, "start"));
        assert_eq!(dir.read_status(), StatusRead::Absent);
        // Foreign entries are ignored.
        fs::create_dir_all(root.path.join("Not_A_Name")).unwrap();
        fs::write(root.path.join("Not_A_Name").join(SANDBOX_FILE), "{}").unwrap();
        assert_eq!(root.names().unwrap(), std::slice::from_ref(&a));
        // Each backend lists only its own.
        let b = Name::parse("b").unwrap();
        root.claim(&b)
            .unwrap()
            .write_record(&record("b", BackendKind::Docker))
            .unwrap();
        let names = |k| -> Vec<String> {
            root.list(k)
                .unwrap()
                .into_iter()
                .map(|s| s.name.to_string())
                .collect()
        };
        assert_eq!(names(BackendKind::Podman), ["a"]);
        assert_eq!(names(BackendKind::Docker), ["b"]);
        assert!(root.find(&a, BackendKind::Docker).unwrap().is_none());
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

    #[test]
    fn hostile_status_files_are_refused_not_errors() {
        let root = temp_root("hostile");
        let dir = root.claim(&Name::parse("c").unwrap()).unwrap();
        let f = dir.status_dir().join(FILE_NAME);
        let refused = |why: &str| match dir.read_status() {
            StatusRead::Refused(m) => assert!(m.contains(why), "{m}"),
            other => panic!("{why}: {other:?}"),
        };
        fs::write(&f, "").unwrap();
        refused("empty");
        fs::write(&f, "{\"schema_version\": 1, \"phase\": \"Rea").unwrap();
        refused("not a status document");
        fs::write(&f, "garbage\0\u{1}").unwrap();
        refused("not a status document");
        fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", &f).unwrap();
        refused("symlink");
        fs::remove_file(&f).unwrap();
        fs::create_dir(&f).unwrap();
        refused("directory");
        fs::remove_dir(&f).unwrap();
        let big = fs::File::create(&f).unwrap();
        big.set_len(200 << 20).unwrap();
        refused("over the 65536-byte limit");
        fs::remove_dir_all(&root.path).unwrap();
    }
}
