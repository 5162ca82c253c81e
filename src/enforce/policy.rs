//! The policy file: its YAML shape (the NVIDIA OpenShell sandbox-policy shape plus our
//! extensions) and every check that must pass before anything runs.
//!
//! Parsing is strict on purpose: an unknown field is more likely a rule the operator thinks
//! is enforced than a harmless typo, so it stops startup instead of being ignored.

use super::error::PolicyError;
use super::seccomp;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The only policy format version this supervisor reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    filesystem_policy: Option<RawFilesystem>,
    #[serde(default)]
    landlock: RawLandlock,
    process: Option<RawProcess>,
    #[serde(default)]
    seccomp: RawSeccomp,
    /// OpenShell's egress allow-list (INTERIM reader, see `egress::schema`).
    network_policies:
        Option<std::collections::BTreeMap<String, crate::egress::schema::RawNetworkPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    #[serde(default)]
    include_workdir: bool,
    #[serde(default)]
    read_only: Vec<String>,
    #[serde(default)]
    read_write: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLandlock {
    #[serde(default)]
    compatibility: Compatibility,
    /// Our extension: TCP ports the child may bind. Absent = not restricted.
    tcp_bind: Option<Vec<u16>>,
    /// Our extension: TCP ports the child may connect to. Absent = not restricted.
    tcp_connect: Option<Vec<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    run_as_user: Option<IdSpec>,
    run_as_group: Option<IdSpec>,
}

/// Our extension: adjust the default seccomp deny list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeccomp {
    /// Default-denied syscalls to allow after all.
    #[serde(default)]
    allow: Vec<String>,
    /// Extra syscalls to deny (EPERM).
    #[serde(default)]
    deny: Vec<String>,
}

/// What to do when the kernel cannot enforce every Landlock right we ask for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// Enforce what the kernel offers and log exactly what is missing.
    #[default]
    BestEffort,
    /// Refuse to start unless everything is enforced.
    HardRequirement,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::BestEffort => "best_effort",
            Compatibility::HardRequirement => "hard_requirement",
        }
    }
}

/// A user or group as the policy names it: a name, or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    Name(String),
    Id(u32),
}

impl fmt::Display for IdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdSpec::Name(n) => write!(f, "{n:?}"),
            IdSpec::Id(i) => write!(f, "{i}"),
        }
    }
}

impl<'de> Deserialize<'de> for IdSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdSpec, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user/group name or a numeric id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdSpec, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v != u32::MAX) // (uid_t)-1 means "unchanged" to the kernel
                    .map(IdSpec::Id)
                    .ok_or_else(|| E::custom(format!("id {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdSpec, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("id {v} is negative"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdSpec, E> {
                if let Ok(n) = v.parse::<u64>() {
                    return self.visit_u64(n);
                }
                if v.is_empty() || v.contains([':', '\n', '\0']) {
                    return Err(E::custom(format!("{v:?} is not a valid user/group name")));
                }
                Ok(IdSpec::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A validated policy: every path absolute and clean, every name resolvable later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub read_only: Vec<PathBuf>,
    /// Includes the working directory when `include_workdir` is set.
    pub read_write: Vec<PathBuf>,
    pub compatibility: Compatibility,
    pub tcp_bind: Option<Vec<u16>>,
    pub tcp_connect: Option<Vec<u16>>,
    pub user: IdSpec,
    pub group: Option<IdSpec>,
    pub seccomp_allow: Vec<String>,
    pub seccomp_deny: Vec<String>,
    /// The compiled egress allow-list; empty means no egress at all (OpenShell semantics).
    pub network: crate::egress::rules::Rules,
}

/// Parses and validates the policy text read from `file`. `workdir` is the child's working
/// directory (used by `include_workdir`).
pub fn parse(text: &str, file: &Path, workdir: &Path) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = serde_saphyr::from_str(text).map_err(|e| {
        // One line ("... at line L, column C"): it goes into a JSON log field and into
        // status.json.
        let msg = e.without_snippet().to_string().replace('\n', " ");
        PolicyError::file(file, msg)
    })?;
    validate(raw, file, workdir)
}

fn validate(raw: RawPolicy, file: &Path, workdir: &Path) -> Result<Policy, PolicyError> {
    let bad = |field: &str, reason: String| PolicyError::invalid(file, field, reason);
    if raw.version != VERSION {
        return Err(bad(
            "version",
            format!(
                "unsupported policy version {}; this supervisor reads version {VERSION}",
                raw.version
            ),
        ));
    }
    let Some(fs) = raw.filesystem_policy else {
        return Err(bad(
            "filesystem_policy",
            "missing: without it the child could not read or execute anything; list the \
             trees it needs under read_only and read_write"
                .into(),
        ));
    };
    let mut read_only = Vec::new();
    for (i, p) in fs.read_only.iter().enumerate() {
        let field = format!("filesystem_policy.read_only[{i}]");
        read_only.push(clean_path(p).map_err(|r| bad(&field, r))?);
    }
    let mut read_write = Vec::new();
    for (i, p) in fs.read_write.iter().enumerate() {
        let field = format!("filesystem_policy.read_write[{i}]");
        let path = clean_path(p).map_err(|r| bad(&field, r))?;
        if path == Path::new("/") {
            return Err(bad(
                &field,
                "/ as read_write would let the child write the whole filesystem; list the \
                 writable trees instead"
                    .into(),
            ));
        }
        read_write.push(path);
    }
    let ro: HashSet<&PathBuf> = read_only.iter().collect();
    if let Some(i) = read_write.iter().position(|p| ro.contains(p)) {
        return Err(bad(
            &format!("filesystem_policy.read_write[{i}]"),
            format!(
                "{} is also listed under read_only; keep it in one list",
                read_write[i].display()
            ),
        ));
    }
    if fs.include_workdir {
        let wd = clean_path(&workdir.to_string_lossy()).map_err(|r| {
            bad(
                "filesystem_policy.include_workdir",
                format!("working directory: {r}"),
            )
        })?;
        if wd == Path::new("/") {
            return Err(bad(
                "filesystem_policy.include_workdir",
                "the working directory is /, which cannot be read_write; start the \
                 supervisor in the workspace directory or set include_workdir: false"
                    .into(),
            ));
        }
        if !read_write.contains(&wd) {
            read_write.push(wd);
        }
    }

    let Some(process) = raw.process else {
        return Err(bad(
            "process",
            "missing: name the user the child runs as (process.run_as_user)".into(),
        ));
    };
    let Some(user) = process.run_as_user else {
        return Err(bad(
            "process.run_as_user",
            "missing: the child must not run as the supervisor's user by default; name a \
             user or numeric id"
                .into(),
        ));
    };

    let sc = raw.seccomp;
    seccomp::check_names(&sc.allow, &sc.deny).map_err(|(field, reason)| bad(&field, reason))?;
    let network = match &raw.network_policies {
        Some(n) => crate::egress::schema::compile(
            &crate::egress::schema::specs(n),
            raw.landlock.compatibility,
            file,
        )?,
        None => Default::default(),
    };

    Ok(Policy {
        read_only,
        read_write,
        compatibility: raw.landlock.compatibility,
        tcp_bind: raw.landlock.tcp_bind,
        tcp_connect: raw.landlock.tcp_connect,
        user,
        group: process.run_as_group,
        seccomp_allow: sc.allow,
        seccomp_deny: sc.deny,
        network,
    })
}

/// An absolute path without `..`, with `.` and repeated slashes dropped.
fn clean_path(p: &str) -> Result<PathBuf, String> {
    if p.is_empty() {
        return Err("empty path".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/openshell/policy.yaml";

    fn parse_at(text: &str, workdir: &str) -> Result<Policy, PolicyError> {
        parse(text, Path::new(FILE), Path::new(workdir))
    }

    fn ok(text: &str) -> Policy {
        parse_at(text, "/sandbox").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error for `text`, checked to name the file and `field`.
    fn err(text: &str, field: Option<&str>) -> PolicyError {
        let e = parse_at(text, "/sandbox").expect_err("policy should be rejected");
        assert_eq!(e.file, Path::new(FILE));
        assert_eq!(e.field.as_deref(), field, "{e}");
        assert!(e.to_string().starts_with(FILE), "{e}");
        e
    }

    const BASE: &str = "version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /etc, /proc, /dev/urandom]
  read_write: [/sandbox, /tmp, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: sandbox
  run_as_group: sandbox
";

    #[test]
    fn openshell_example_parses() {
        let p = ok(BASE);
        assert_eq!(p.read_only.len(), 5);
        // The workdir is already listed: not duplicated.
        assert_eq!(
            p.read_write,
            [
                PathBuf::from("/sandbox"),
                PathBuf::from("/tmp"),
                PathBuf::from("/dev/null")
            ]
        );
        assert_eq!(p.compatibility, Compatibility::BestEffort);
        assert_eq!(p.user, IdSpec::Name("sandbox".into()));
        assert_eq!(p.group, Some(IdSpec::Name("sandbox".into())));
        assert_eq!(p.tcp_bind, None);
    }

    #[test]
    fn extensions_parse() {
        let p = ok("version: 1
filesystem_policy: {read_only: [/usr/./lib//x/]}
landlock: {compatibility: hard_requirement, tcp_bind: [8080], tcp_connect: []}
process: {run_as_user: 1000, run_as_group: '1000'}
seccomp: {allow: [ptrace], deny: [memfd_create]}
");
        assert_eq!(p.read_only, [PathBuf::from("/usr/lib/x")]);
        assert_eq!(p.compatibility, Compatibility::HardRequirement);
        assert_eq!(p.tcp_bind, Some(vec![8080]));
        assert_eq!(p.tcp_connect, Some(vec![]));
        assert_eq!(p.user, IdSpec::Id(1000));
        assert_eq!(p.group, Some(IdSpec::Id(1000)));
        assert_eq!(p.seccomp_allow, ["ptrace"]);
        assert_eq!(p.seccomp_deny, ["memfd_create"]);
    }

    #[test]
    fn workdir_is_added_when_asked() {
        let p = parse_at(
            "version: 1\nfilesystem_policy: {include_workdir: true}\nprocess: {run_as_user: x}\n",
            "/work/space",
        )
        .unwrap();
        assert_eq!(p.read_write, [PathBuf::from("/work/space")]);
    }

    #[test]
    fn rejects_unknown_top_level_field() {
        let e = err(&format!("{BASE}network_policy: {{}}\n"), None);
        assert!(e.reason.contains("network_policy"), "{e}");
        assert!(e.reason.contains("line 11"), "{e}");
    }

    #[test]
    fn network_policies_compile() {
        let p = ok(&format!(
            "{BASE}network_policies:\n  api:\n    endpoints: [{{host: api.example.com, port: 443}}]\n    binaries: [{{path: /usr/bin/curl}}]\n"
        ));
        assert_eq!(p.network.policies.len(), 1);
        assert!(ok(BASE).network.is_empty(), "no section: no egress");
        err(
            &format!("{BASE}network_policies:\n  api:\n    endpoints: [{{host: api.example.com, port: 443, bogus: 1}}]\n    binaries: []\n"),
            None,
        );
    }

    #[test]
    fn rejects_unknown_nested_field() {
        let e = err(&BASE.replace("include_workdir", "include_workdirs"), None);
        assert!(e.reason.contains("include_workdirs"), "{e}");
        let e = err(&BASE.replace("run_as_group", "run_as_grp"), None);
        assert!(e.reason.contains("run_as_grp"), "{e}");
    }

    #[test]
    fn rejects_unknown_compatibility() {
        let e = err(&BASE.replace("best_effort", "maybe"), None);
        assert!(e.reason.contains("maybe"), "{e}");
        assert!(e.reason.contains("line 7"), "{e}");
    }

    #[test]
    fn rejects_syntax_errors_and_wrong_types() {
        let e = err("version: [1\n", None);
        assert!(e.reason.contains("line"), "{e}");
        let e = err(&BASE.replace("version: 1", "version: one"), None);
        assert!(e.reason.contains("line 1"), "{e}");
        err(
            &BASE.replace("[/sandbox, /tmp, /dev/null]", "/sandbox"),
            None,
        );
        let e = err(
            &BASE.replace("best_effort", "best_effort\n  tcp_bind: [70000]"),
            None,
        );
        assert!(e.reason.contains("u16"), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }

    #[test]
    fn rejects_unsupported_version() {
        let e = err(&BASE.replace("version: 1", "version: 2"), Some("version"));
        assert!(e.reason.contains("version 2"), "{e}");
    }

    #[test]
    fn rejects_relative_path() {
        let e = err(
            &BASE.replace("/lib,", "lib,"),
            Some("filesystem_policy.read_only[1]"),
        );
        assert!(e.reason.contains("relative"), "{e}");
    }

    #[test]
    fn rejects_parent_dir() {
        let e = err(
            &BASE.replace("/tmp,", "/sandbox/../etc,"),
            Some("filesystem_policy.read_write[1]"),
        );
        assert!(e.reason.contains(".."), "{e}");
    }

    #[test]
    fn rejects_empty_path() {
        err(
            &BASE.replace("/tmp,", "'',"),
            Some("filesystem_policy.read_write[1]"),
        );
    }

    #[test]
    fn rejects_root_as_read_write() {
        for root in ["/", "//", "/./"] {
            let e = err(
                &BASE.replace("/tmp,", &format!("'{root}',")),
                Some("filesystem_policy.read_write[1]"),
            );
            assert!(e.reason.contains("whole filesystem"), "{e}");
        }
        // Readable / is allowed (if unwise): it grants no write.
        ok(&BASE.replace("/lib,", "/,"));
    }

    #[test]
    fn rejects_workdir_root() {
        let e = parse_at(BASE, "/").unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("filesystem_policy.include_workdir")
        );
    }

    #[test]
    fn rejects_path_in_both_lists() {
        let e = err(
            &BASE.replace("/etc,", "/tmp,"),
            Some("filesystem_policy.read_write[1]"),
        );
        assert!(e.reason.contains("read_only"), "{e}");
    }

    #[test]
    fn rejects_missing_sections() {
        err(
            "version: 1\nprocess: {run_as_user: x}\n",
            Some("filesystem_policy"),
        );
        err("version: 1\nfilesystem_policy: {}\n", Some("process"));
        err(
            "version: 1\nfilesystem_policy: {}\nprocess: {run_as_group: x}\n",
            Some("process.run_as_user"),
        );
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["-1", "4294967295", "4294967296", "'a:b'", "''"] {
            err(
                &BASE.replace("run_as_user: sandbox", &format!("run_as_user: {bad}")),
                None,
            );
        }
    }

    #[test]
    fn rejects_bad_seccomp_names() {
        let e = err(
            &format!("{BASE}seccomp: {{deny: [no_such_call]}}\n"),
            Some("seccomp.deny[0]"),
        );
        assert!(e.reason.contains("no_such_call"), "{e}");
        let e = err(
            &format!("{BASE}seccomp: {{allow: [read]}}\n"),
            Some("seccomp.allow[0]"),
        );
        assert!(e.reason.contains("not denied by default"), "{e}");
        err(
            &format!("{BASE}seccomp: {{allow: [bogus]}}\n"),
            Some("seccomp.allow[0]"),
        );
        err(
            &format!("{BASE}seccomp: {{allow: [ptrace], deny: [ptrace]}}\n"),
            Some("seccomp.deny[0]"),
        );
        err(
            &format!("{BASE}seccomp: {{deny: [execve]}}\n"),
            Some("seccomp.deny[0]"),
        );
        err(
            &format!("{BASE}seccomp: {{deny: [clone3]}}\n"),
            Some("seccomp.deny[0]"),
        );
    }
}
