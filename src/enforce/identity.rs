//! Who the child runs as, resolved from /etc/passwd and /etc/group read directly: the
//! supervisor is a static glibc binary, where getpwnam/getgrnam (NSS) cannot work.

use super::policy::IdSpec;
use std::collections::BTreeSet;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// OpenShell's default identity when a policy has no `process:` (its examples omit it on
/// purpose, so the platform chooses).
pub const DEFAULT_USER: &str = "sandbox";

/// Why the child gets the identity it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `process.run_as_user` names it.
    Policy,
    /// No `run_as_user`, supervisor is root: OpenShell's default `sandbox:sandbox`.
    OpenShellDefault,
    /// No `run_as_user`, supervisor is not root: it cannot change ids, so the child keeps
    /// the supervisor's.
    Supervisor,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Policy => "policy",
            Source::OpenShellDefault => "openshell_default",
            Source::Supervisor => "supervisor",
        }
    }

    /// A sentence for the log and `supervisor check`.
    pub fn why(self) -> &'static str {
        match self {
            Source::Policy => "named by process.run_as_user",
            Source::OpenShellDefault => {
                "the policy names no process.run_as_user and the supervisor runs as root: \
                 OpenShell's default user sandbox (never root)"
            }
            Source::Supervisor => {
                "the policy names no process.run_as_user and the supervisor is not root: the \
                 child keeps the supervisor's uid and gid"
            }
        }
    }
}

/// The user and group to resolve for a policy's `process` section, and why. `euid`/`egid`
/// are the supervisor's own.
pub fn choose(
    user: Option<&IdSpec>,
    group: Option<&IdSpec>,
    euid: u32,
    egid: u32,
) -> (IdSpec, Option<IdSpec>, Source) {
    match user {
        Some(u) => (u.clone(), group.cloned(), Source::Policy),
        None if euid == 0 => (
            IdSpec::Name(DEFAULT_USER.into()),
            Some(
                group
                    .cloned()
                    .unwrap_or_else(|| IdSpec::Name(DEFAULT_USER.into())),
            ),
            Source::OpenShellDefault,
        ),
        None => (
            IdSpec::Id(euid),
            Some(group.cloned().unwrap_or(IdSpec::Id(egid))),
            Source::Supervisor,
        ),
    }
}

/// The resolved target identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, sorted, always including `gid` (as initgroups does).
    pub groups: Vec<u32>,
    /// The passwd name, when the uid has an entry.
    pub user_name: Option<String>,
    pub group_name: Option<String>,
    /// The passwd home directory, when the uid has an entry.
    pub home: Option<String>,
}

struct Entry<'a> {
    name: &'a str,
    id: u32,
    /// passwd: the primary gid; group: unused.
    gid: u32,
    /// group: the member list; passwd: empty.
    members: &'a str,
    /// passwd: the home directory; group: empty.
    home: &'a str,
}

/// `name:x:id:gid:...` (passwd) or `name:x:gid:members` (group). Blank, comment and NIS
/// (`+`/`-`) lines, and malformed ones, are skipped like libc's files backend does.
fn entries(db: &str, passwd: bool) -> impl Iterator<Item = Entry<'_>> {
    db.lines().filter_map(move |line| {
        if line.is_empty() || line.starts_with(['#', '+', '-']) {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        let id = f.get(2)?.parse().ok()?;
        if passwd {
            Some(Entry {
                name: f[0],
                id,
                gid: f.get(3)?.parse().ok()?,
                members: "",
                home: f.get(5).copied().unwrap_or(""),
            })
        } else {
            Some(Entry {
                name: f[0],
                id,
                gid: id,
                members: f.get(3).copied().unwrap_or(""),
                home: "",
            })
        }
    })
}

/// Resolves the policy's user and group against the passwd and group file contents.
/// Errors are (field, reason).
pub fn resolve(
    user: &IdSpec,
    group: Option<&IdSpec>,
    passwd: &str,
    group_db: &str,
) -> Result<Identity, (&'static str, String)> {
    let home = |e: &Entry| (!e.home.is_empty()).then(|| e.home.to_owned());
    let (uid, user_name, passwd_gid, home) = match user {
        IdSpec::Name(n) => match entries(passwd, true).find(|e| e.name == n) {
            Some(e) => (e.id, Some(e.name.to_owned()), Some(e.gid), home(&e)),
            None => {
                return Err((
                    "process.run_as_user",
                    format!(
                    "no user named {n:?} in {PASSWD}; create it in the image or use a numeric id"
                ),
                ))
            }
        },
        // A bare id needs no entry: images often run as an arbitrary uid.
        IdSpec::Id(id) => match entries(passwd, true).find(|e| e.id == *id) {
            Some(e) => (*id, Some(e.name.to_owned()), Some(e.gid), home(&e)),
            None => (*id, None, None, None),
        },
    };
    let (gid, group_name) = match group {
        Some(IdSpec::Name(n)) => match entries(group_db, false).find(|e| e.name == n) {
            Some(e) => (e.id, Some(e.name.to_owned())),
            None => {
                return Err((
                    "process.run_as_group",
                    format!("no group named {n:?} in {GROUP}; create it in the image or use a numeric id"),
                ))
            }
        },
        Some(IdSpec::Id(id)) => (*id, group_name_of(group_db, *id)),
        None => match passwd_gid {
            Some(g) => (g, group_name_of(group_db, g)),
            None => {
                return Err((
                    "process.run_as_group",
                    format!("missing: uid {uid} has no entry in {PASSWD} to take a primary group from; name one"),
                ))
            }
        },
    };
    // Root in the sandbox would own every root-owned file regardless of capabilities.
    if uid == 0 {
        return Err((
            "process.run_as_user",
            format!("{user} is uid 0; the sandboxed child must not run as root"),
        ));
    }
    if gid == 0 {
        return Err((
            "process.run_as_group",
            "resolves to gid 0; the sandboxed child must not run with the root group".into(),
        ));
    }
    let mut groups = BTreeSet::from([gid]);
    if let Some(name) = &user_name {
        for e in entries(group_db, false) {
            if e.members.split(',').any(|m| m == name) {
                groups.insert(e.id);
            }
        }
    }
    if groups.contains(&0) {
        return Err((
            "process.run_as_user",
            format!("{user} is a member of group 0 in {GROUP}; the sandboxed child must not keep the root group"),
        ));
    }
    Ok(Identity {
        uid,
        gid,
        groups: groups.into_iter().collect(),
        user_name,
        group_name,
        home,
    })
}

fn group_name_of(group_db: &str, gid: u32) -> Option<String> {
    entries(group_db, false)
        .find(|e| e.id == gid)
        .map(|e| e.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/bash
# comment
+nis
sandbox:x:1000:1000::/sandbox:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
wheelie:x:1002:1002::/:/bin/sh
";
    const GR: &str = "root:x:0:
wheel:x:10:wheelie
sandbox:x:1000:
docker:x:998:sandbox,other
nogroup:x:65534:
tools:x:2000:other,sandbox
";

    fn name(s: &str) -> IdSpec {
        IdSpec::Name(s.into())
    }

    #[test]
    fn name_with_supplementary_groups() {
        let id = resolve(&name("sandbox"), None, PW, GR).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1000));
        assert_eq!(id.groups, [998, 1000, 2000]);
        assert_eq!(id.user_name.as_deref(), Some("sandbox"));
        assert_eq!(id.group_name.as_deref(), Some("sandbox"));
    }

    #[test]
    fn explicit_group_replaces_primary() {
        let id = resolve(&name("sandbox"), Some(&name("nogroup")), PW, GR).unwrap();
        assert_eq!(id.gid, 65534);
        assert_eq!(id.groups, [998, 2000, 65534]);
    }

    #[test]
    fn numeric_ids_need_no_entry() {
        let id = resolve(&IdSpec::Id(4242), Some(&IdSpec::Id(4243)), PW, GR).unwrap();
        assert_eq!((id.uid, id.gid), (4242, 4243));
        assert_eq!(id.groups, [4243]);
        assert_eq!(id.user_name, None);
        // A numeric id with an entry still gets its name and groups.
        let id = resolve(&IdSpec::Id(1000), None, PW, GR).unwrap();
        assert_eq!(id.groups, [998, 1000, 2000]);
    }

    #[test]
    fn missing_user_is_an_error() {
        let (field, why) = resolve(&name("ghost"), None, PW, GR).unwrap_err();
        assert_eq!(field, "process.run_as_user");
        assert!(why.contains("ghost") && why.contains(PASSWD), "{why}");
        // Comment and NIS lines are not users.
        assert!(resolve(&name("+nis"), None, PW, GR).is_err());
    }

    #[test]
    fn missing_group_is_an_error() {
        let (field, why) = resolve(&name("sandbox"), Some(&name("ghosts")), PW, GR).unwrap_err();
        assert_eq!(field, "process.run_as_group");
        assert!(why.contains("ghosts") && why.contains(GROUP), "{why}");
    }

    #[test]
    fn bare_uid_without_group_is_an_error() {
        let (field, _) = resolve(&IdSpec::Id(4242), None, PW, GR).unwrap_err();
        assert_eq!(field, "process.run_as_group");
    }

    #[test]
    fn default_identity_follows_openshell_and_never_root() {
        let (u, g, src) = choose(None, None, 0, 0);
        assert_eq!(
            (u, g, src),
            (
                name("sandbox"),
                Some(name("sandbox")),
                Source::OpenShellDefault
            )
        );
        let id = resolve(&name("sandbox"), Some(&name("sandbox")), PW, GR).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1000));
        // Only the group given: the user still defaults.
        let (u, g, _) = choose(None, Some(&IdSpec::Id(5)), 0, 0);
        assert_eq!((u, g), (name("sandbox"), Some(IdSpec::Id(5))));
        // Not root: the supervisor's own ids.
        let (u, g, src) = choose(None, None, 4242, 4343);
        assert_eq!(
            (u, g, src),
            (IdSpec::Id(4242), Some(IdSpec::Id(4343)), Source::Supervisor)
        );
        // Named: as named.
        let (u, g, src) = choose(Some(&IdSpec::Id(7)), None, 0, 0);
        assert_eq!((u, g, src), (IdSpec::Id(7), None, Source::Policy));
    }

    #[test]
    fn root_is_refused() {
        assert_eq!(
            resolve(&name("root"), None, PW, GR).unwrap_err().0,
            "process.run_as_user"
        );
        assert_eq!(
            resolve(&name("sandbox"), Some(&IdSpec::Id(0)), PW, GR)
                .unwrap_err()
                .0,
            "process.run_as_group"
        );
        let gr = format!("{GR}root2:x:0:sandbox\n");
        assert_eq!(
            resolve(&name("sandbox"), None, PW, &gr).unwrap_err().0,
            "process.run_as_user"
        );
    }
}
