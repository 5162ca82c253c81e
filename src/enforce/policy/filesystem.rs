//! `filesystem_policy`: the trees the child may read and write, with OpenShell's defaults
//! and limits.

use super::Invalid;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// OpenShell's limits: paths in both lists together, and bytes per path.
pub const MAX_PATHS: usize = 256;
pub const MAX_PATH_LEN: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilesystem {
    /// False when the section is present and the key absent (OpenShell).
    #[serde(default)]
    include_workdir: bool,
    #[serde(default)]
    read_only: PathList,
    #[serde(default)]
    read_write: PathList,
}

/// A list of path strings; named so a type error says "expected a list of paths".
#[derive(Debug, Default)]
struct PathList(Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PathList, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PathList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of paths")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<PathList, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = s.next_element::<String>()? {
                    v.push(p);
                }
                Ok(PathList(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The validated section. `read_write` includes the working directory when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filesystem {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    pub include_workdir: bool,
    /// The working directory when `include_workdir` appended it to `read_write`.
    pub workdir: Option<PathBuf>,
}

pub(super) fn validate(raw: Option<RawFilesystem>, workdir: &Path) -> Result<Filesystem, Invalid> {
    // The whole section absent: OpenShell's default, the working directory only.
    let raw = raw.unwrap_or(RawFilesystem {
        include_workdir: true,
        read_only: PathList::default(),
        read_write: PathList::default(),
    });
    let total = raw.read_only.0.len() + raw.read_write.0.len();
    if total > MAX_PATHS {
        return Err(Invalid::new(
            "filesystem_policy",
            format!("{total} paths in read_only and read_write; at most {MAX_PATHS} are allowed"),
        ));
    }
    let mut read_only = Vec::new();
    for (i, p) in raw.read_only.0.iter().enumerate() {
        let field = format!("filesystem_policy.read_only[{i}]");
        read_only.push(clean_path(p).map_err(|r| Invalid::new(&field, r))?);
    }
    let mut read_write = Vec::new();
    for (i, p) in raw.read_write.0.iter().enumerate() {
        let field = format!("filesystem_policy.read_write[{i}]");
        let path = clean_path(p).map_err(|r| Invalid::new(&field, r))?;
        if path == Path::new("/") {
            return Err(Invalid::new(
                &field,
                "/ as read_write would let the child write the whole filesystem; list the \
                 writable trees instead",
            ));
        }
        read_write.push(path);
    }
    let ro: HashSet<&PathBuf> = read_only.iter().collect();
    if let Some(i) = read_write.iter().position(|p| ro.contains(p)) {
        return Err(Invalid::new(
            format!("filesystem_policy.read_write[{i}]"),
            format!(
                "{} is also listed under read_only; keep it in one list",
                read_write[i].display()
            ),
        ));
    }
    let mut added = None;
    if raw.include_workdir {
        let wd = clean_path(&workdir.to_string_lossy()).map_err(|r| {
            Invalid::new(
                "filesystem_policy.include_workdir",
                format!("working directory: {r}"),
            )
        })?;
        if wd == Path::new("/") {
            return Err(Invalid::new(
                "filesystem_policy.include_workdir",
                "the working directory is /, which cannot be read_write; start the \
                 supervisor in the workspace directory or set include_workdir: false",
            ));
        }
        if ro.contains(&wd) {
            return Err(Invalid::new(
                "filesystem_policy.include_workdir",
                format!(
                    "the working directory {} is listed under read_only; include_workdir \
                     would make it writable: keep it in one place",
                    wd.display()
                ),
            ));
        }
        if !read_write.contains(&wd) {
            read_write.push(wd.clone());
            added = Some(wd);
        }
    }
    Ok(Filesystem {
        read_only,
        read_write,
        include_workdir: raw.include_workdir,
        workdir: added,
    })
}

/// An absolute path without `..`, with `.` and repeated slashes dropped.
fn clean_path(p: &str) -> Result<PathBuf, String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p.len() > MAX_PATH_LEN {
        return Err(format!(
            "a path of {} bytes; at most {MAX_PATH_LEN} are allowed",
            p.len()
        ));
    }
    if p.contains('\0') {
        return Err(format!("{p:?} contains a NUL byte"));
    }
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(format!(
            "{p:?} is a relative path; policy paths must be absolute"
        ));
    }
    let mut clean = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => clean.push(n),
            // `..` would make the granted tree depend on symlinks and be hard to review.
            Component::ParentDir => {
                return Err(format!(
                    "{p:?} contains '..'; write the path it means directly"
                ))
            }
            Component::Prefix(_) => return Err(format!("{p:?} is not a Unix path")),
        }
    }
    Ok(clean)
}
