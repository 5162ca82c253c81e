//! The policy file: NVIDIA OpenShell's sandbox-policy YAML, read unchanged (every section
//! it defines, with its defaults and validation rules), plus our extensions, and every
//! check that must pass before anything runs.
//!
//! Parsing is strict on purpose: an unknown field is more likely a rule the operator thinks
//! is enforced than a harmless typo, so it stops startup instead of being ignored.
//!
//! Sections and where they are read: `version` (here), `filesystem_policy`
//! ([`filesystem`]), `landlock` (here), `process` ([`process`]), `network_policies`
//! ([`network`]), `network_middlewares` ([`middleware`]). Our extensions, which OpenShell
//! does not know: `seccomp` and `landlock.tcp_bind` / `landlock.tcp_connect`.

mod cidr;
mod filesystem;
mod glob;
pub mod middleware;
pub mod network;
mod process;
mod scalar;

pub use filesystem::{MAX_PATHS, MAX_PATH_LEN};
pub use middleware::{Middleware, OnError};
pub use network::NetworkPolicy;
pub use process::IdSpec;

use super::error::PolicyError;
use super::seccomp;
use scalar::Port;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The only policy format version this supervisor reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    #[serde(default)]
    filesystem_policy: Option<filesystem::RawFilesystem>,
    #[serde(default)]
    landlock: Option<RawLandlock>,
    #[serde(default)]
    process: Option<process::RawProcess>,
    #[serde(default)]
    network_policies: BTreeMap<String, network::RawNetworkPolicy>,
    #[serde(default)]
    network_middlewares: BTreeMap<String, middleware::RawMiddleware>,
    /// Ours.
    #[serde(default)]
    seccomp: Option<RawSeccomp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLandlock {
    #[serde(default)]
    compatibility: Option<Compatibility>,
    /// Ours: TCP ports the child may bind. Absent = not restricted.
    #[serde(default)]
    tcp_bind: Option<Vec<Port>>,
    /// Ours: TCP ports the child may connect to directly (any address), besides the egress
    /// proxy. Absent = none.
    #[serde(default)]
    tcp_connect: Option<Vec<Port>>,
}

/// Ours: adjust the default seccomp deny list.
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

scalar::str_enum! {
    /// What to do when the kernel cannot enforce every Landlock right we ask for.
    /// OpenShell reads an unknown value as best_effort; we refuse it.
    #[derive(Default)]
    pub enum Compatibility ("landlock compatibility") {
        /// Enforce what the kernel offers and log exactly what is missing.
        #[default]
        "best_effort" => BestEffort,
        /// Refuse to start unless everything is enforced.
        "hard_requirement" => HardRequirement,
    }
}

/// A remark about a valid policy, logged at start-up (a deprecated field, for instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub field: String,
    pub message: String,
}

/// A validated policy: every path absolute and clean, every value in range, every
/// cross-field rule of OpenShell's checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub read_only: Vec<PathBuf>,
    /// Includes the working directory when `include_workdir` is set.
    pub read_write: Vec<PathBuf>,
    pub include_workdir: bool,
    /// The working directory `include_workdir` appended to `read_write` (its last entry);
    /// None when not asked for or already listed.
    pub workdir: Option<PathBuf>,
    pub compatibility: Compatibility,
    /// Ours (`landlock.tcp_bind`): None = not restricted.
    pub tcp_bind: Option<Vec<u16>>,
    /// Ours (`landlock.tcp_connect`): direct TCP connect ports besides the egress proxy's;
    /// None = none.
    pub tcp_connect: Option<Vec<u16>>,
    /// `process.run_as_user`; None = the default identity (see `identity::choose`).
    pub user: Option<IdSpec>,
    /// `process.run_as_group`; None = the user's primary group.
    pub group: Option<IdSpec>,
    /// Ours (`seccomp.allow`).
    pub seccomp_allow: Vec<String>,
    /// Ours (`seccomp.deny`).
    pub seccomp_deny: Vec<String>,
    /// By map key. Empty means no egress at all (OpenShell's proxy denies what is not
    /// listed).
    pub network_policies: BTreeMap<String, NetworkPolicy>,
    /// By map key; run in ascending `order`.
    pub network_middlewares: BTreeMap<String, Middleware>,
    pub notes: Vec<Note>,
}

/// One filesystem path of the policy with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPath<'a> {
    pub path: &'a Path,
    /// `filesystem_policy.read_only[2]`, or `filesystem_policy.include_workdir`.
    pub field: String,
    pub writable: bool,
}

impl Policy {
    /// Every filesystem path, read-only ones first, each with its field.
    pub fn paths(&self) -> Vec<PolicyPath<'_>> {
        let ro = self.read_only.iter().enumerate().map(|(i, p)| PolicyPath {
            path: p,
            field: format!("filesystem_policy.read_only[{i}]"),
            writable: false,
        });
        let listed = self.read_write.len() - usize::from(self.workdir.is_some());
        let rw = self
            .read_write
            .iter()
            .enumerate()
            .map(move |(i, p)| PolicyPath {
                path: p,
                field: if i < listed {
                    format!("filesystem_policy.read_write[{i}]")
                } else {
                    "filesystem_policy.include_workdir".into()
                },
                writable: true,
            });
        ro.chain(rw).collect()
    }
}

/// A validation failure: the field path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses and validates the policy text read from `file`. `workdir` is the child's working
/// directory (used by `include_workdir`).
pub fn parse(text: &str, file: &Path, workdir: &Path) -> Result<Policy, PolicyError> {
    // Every message is one line: it goes into a JSON log field and into status.json.
    let located = |e: crate::yaml::Error| {
        let reason = match e.mark {
            Some(m) => format!("{} (line {}, column {})", e.message, m.line, m.column),
            None => e.message,
        };
        if e.path.is_empty() {
            PolicyError::file(file, reason)
        } else {
            PolicyError::invalid(file, e.path, reason)
        }
    };
    let root = crate::yaml::parse(text).map_err(located)?;
    let raw: RawPolicy = crate::yaml::from_node(&root).map_err(located)?;
    validate(raw, workdir).map_err(|i| {
        // Point at the line of the field when it is in the file (a missing one is not).
        let mark = root.find(&i.field).map(|n| n.mark);
        located(crate::yaml::Error {
            path: i.field,
            mark,
            message: i.reason,
        })
    })
}

fn validate(raw: RawPolicy, workdir: &Path) -> Result<Policy, Invalid> {
    if raw.version != VERSION {
        return Err(Invalid::new(
            "version",
            format!(
                "unsupported policy version {}; this supervisor reads version {VERSION}",
                raw.version
            ),
        ));
    }
    let fs = filesystem::validate(raw.filesystem_policy, workdir)?;
    let process = raw.process.unwrap_or_default();
    let landlock = raw.landlock.unwrap_or_default();
    let sc = raw.seccomp.unwrap_or_default();
    seccomp::check_names(&sc.allow, &sc.deny)
        .map_err(|(field, reason)| Invalid::new(field, reason))?;
    let mut notes = Vec::new();
    let network_policies = network::validate(raw.network_policies, &mut notes)?;
    let network_middlewares = middleware::validate(raw.network_middlewares, &network_policies)?;
    let ports = |v: Option<Vec<Port>>| v.map(|v| v.into_iter().map(|p| p.0).collect());
    Ok(Policy {
        read_only: fs.read_only,
        read_write: fs.read_write,
        include_workdir: fs.include_workdir,
        workdir: fs.workdir,
        compatibility: landlock.compatibility.unwrap_or_default(),
        tcp_bind: ports(landlock.tcp_bind),
        tcp_connect: ports(landlock.tcp_connect),
        user: process.run_as_user,
        group: process.run_as_group,
        seccomp_allow: sc.allow,
        seccomp_deny: sc.deny,
        network_policies,
        network_middlewares,
        notes: notes
            .into_iter()
            .map(|(field, message)| Note { field, message })
            .collect(),
    })
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
        assert_eq!(p.user, Some(IdSpec::Name("sandbox".into())));
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
        assert_eq!(p.user, Some(IdSpec::Id(1000)));
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
    fn rejects_unknown_fields_naming_them() {
        let e = err(
            &format!("{BASE}network_policy: {{}}\n"),
            Some("network_policy"),
        );
        assert!(e.reason.contains("unknown field"), "{e}");
        assert!(
            e.reason.contains("network_policies"),
            "names the right one: {e}"
        );
        assert!(e.reason.contains("line 11"), "{e}");
        let e = err(
            &BASE.replace("include_workdir", "include_workdirs"),
            Some("filesystem_policy.include_workdirs"),
        );
        assert!(e.reason.contains("line 3, column 3"), "{e}");
        err(
            &BASE.replace("run_as_group", "run_as_grp"),
            Some("process.run_as_grp"),
        );
    }

    #[test]
    fn rejects_unknown_compatibility() {
        let e = err(
            &BASE.replace("best_effort", "maybe"),
            Some("landlock.compatibility"),
        );
        assert!(e.reason.contains("\"maybe\""), "{e}");
        assert!(e.reason.contains("best_effort, hard_requirement"), "{e}");
        assert!(e.reason.contains("line 7"), "{e}");
    }

    #[test]
    fn rejects_syntax_errors_and_wrong_types() {
        let e = err("version: [1\n", Some("version[1]"));
        assert!(e.reason.starts_with("not valid YAML"), "{e}");
        assert!(e.reason.contains("line 2"), "{e}");
        let e = err(&BASE.replace("version: 1", "version: one"), Some("version"));
        assert!(e.reason.contains("expected an integer"), "{e}");
        assert!(e.reason.contains("got the string \"one\""), "{e}");
        let e = err(
            &BASE.replace("[/sandbox, /tmp, /dev/null]", "/sandbox"),
            Some("filesystem_policy.read_write"),
        );
        assert!(
            e.reason
                .contains("expected a list of paths, got the string \"/sandbox\""),
            "{e}"
        );
        let e = err(
            &BASE.replace("best_effort", "best_effort\n  tcp_bind: [70000]"),
            Some("landlock.tcp_bind[0]"),
        );
        assert!(e.reason.contains("70000 is not a port (1..65535)"), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }

    /// OpenShell's quickstart example, unchanged.
    const QUICKSTART: &str = "version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /proc, /dev/urandom, /app, /etc, /var/log]
  read_write: [/sandbox, /tmp, /dev/null]
landlock:
  compatibility: best_effort

network_policies:
  github_api:
    name: github-api-readonly
    endpoints:
      - host: api.github.com
        port: 443
        protocol: rest
        enforcement: enforce
        access: read-only
    binaries:
      - { path: /usr/bin/curl }
";

    #[test]
    fn network_policies_are_typed_data() {
        use network::{Access, Enforcement, Protocol};
        let p = ok(QUICKSTART);
        let g = &p.network_policies["github_api"];
        assert_eq!(g.name, "github-api-readonly");
        let e = &g.endpoints[0];
        assert_eq!(e.host.as_deref(), Some("api.github.com"));
        assert_eq!(e.ports, [443]);
        assert_eq!(e.protocol, Protocol::Rest);
        assert_eq!(e.enforcement, Enforcement::Enforce);
        assert_eq!(e.access, Some(Access::ReadOnly));
        assert_eq!(e.l7_settings(), ["protocol", "access"]);
        assert_eq!(g.binaries[0].path, "/usr/bin/curl");
        assert_eq!(p.user, None, "process omitted on purpose");
    }

    #[test]
    fn network_rules_are_validated() {
        let ep = |body: &str| {
            format!(
                "version: 1\nnetwork_policies:\n  k:\n    endpoints:\n      - {{{body}}}\n    binaries: [{{path: /usr/bin/curl}}]\n"
            )
        };
        let at = "network_policies.k.endpoints[0]";
        for (body, field) in [
            ("host: '*.com', port: 443", "host"),
            ("host: '*', port: 443", "host"),
            ("host: a.com", "port"),
            ("port: 443", "host"),
            ("host: a.com, port: 443, protocol: rest", "access"),
            ("host: a.com, port: 443, protocol: rest, access: full, rules: [{allow: {method: GET}}]", "access"),
            ("host: a.com, port: 443, rules: []", "rules"),
            ("host: 10.0.0.1, port: 443, protocol: tcp", "host"),
            ("host: a.com, port: 443, protocol: tcp, path: /x", "protocol"),
            ("host: a.com, port: 443, credential_signing: sigv4", "signing_service"),
            ("host: a.com, port: 443, path: x", "path"),
        ] {
            let e = parse_at(&ep(body), "/sandbox").expect_err(body);
            assert_eq!(e.field.as_deref(), Some(format!("{at}.{field}").as_str()), "{body}: {e}");
        }
        let p = ok(&ep(
            "allowed_ips: [10.0.0.0/8], ports: [443, 8443], port: 1",
        ));
        let e = &p.network_policies["k"].endpoints[0];
        assert_eq!(e.ports, [443, 8443], "ports wins");
        assert_eq!(e.host, None);
        assert!(parse_at(&ep("host: a.com, port: 0"), "/sandbox").is_err());
        assert!(parse_at(&ep("host: a.com, port: 65536"), "/sandbox").is_err());
        assert!(parse_at(
            &ep("host: a.com, port: 1, allowed_ips: [127.0.0.1]"),
            "/sandbox"
        )
        .is_err());
    }

    #[test]
    fn middlewares_are_validated() {
        let mw = |n: usize| {
            let mut s = String::from("version: 1\nnetwork_middlewares:\n");
            for i in 0..n {
                s.push_str(&format!(
                    "  m{i}: {{middleware: openshell/regex, order: {i}, endpoints: {{include: [a.example.com]}}}}\n"
                ));
            }
            s
        };
        let p = ok(&mw(10));
        let m = &p.network_middlewares["m3"];
        assert_eq!(
            (m.order, m.on_error, m.name.as_str()),
            (3, OnError::FailClosed, "m3")
        );
        assert!(m.selects("a.example.com") && !m.selects("b.example.com"));
        assert_eq!(
            parse_at(&mw(11), "/sandbox").unwrap_err().field.as_deref(),
            Some("network_middlewares")
        );
        let e = parse_at(&mw(2).replace("order: 1", "order: 0"), "/sandbox").unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("network_middlewares.m1.order"),
            "{e}"
        );
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
    fn missing_sections_take_openshells_defaults() {
        // No filesystem_policy: the working directory only, read-write.
        let p = ok("version: 1\n");
        assert!(p.read_only.is_empty());
        assert_eq!(p.read_write, [PathBuf::from("/sandbox")]);
        assert!(p.include_workdir);
        assert_eq!((p.user, p.group), (None, None));
        assert!(p.network_policies.is_empty());
        // Present but without include_workdir: false.
        let p = ok("version: 1\nfilesystem_policy: {read_only: [/usr]}\n");
        assert!(p.read_write.is_empty());
        err("filesystem_policy: {}\n", Some("version"));
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "-1",
            "0",
            "'0'",
            "4294967295",
            "4294967296",
            "'a:b'",
            "''",
            "[x]",
        ] {
            err(
                &BASE.replace("run_as_user: sandbox", &format!("run_as_user: {bad}")),
                Some("process.run_as_user"),
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
