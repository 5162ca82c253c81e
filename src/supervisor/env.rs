//! Who gets which environment variables.
//!
//! The supervisor's environment holds what the operator gave the container (`-e
//! OPENAI_API_KEY=…`, a platform's tokens): the trusted boot hook gets all of it, the
//! sandboxed child only an allow-list. That is what OpenShell's own supervisor does for its
//! agent (it strips its credentials and hands the agent placeholders, never the real
//! secrets): the child sees ordinary configuration (`PATH`, locale, time zone, terminal), its
//! identity (`HOME`, `USER`, `LOGNAME` of the policy user), `OPENSHELL_SANDBOX=1`, and what
//! the operator names with `--child-env`. Secrets only the hook needs can also stay out of
//! the container's environment altogether: `--hook-env-file FILE`, root's, read with the
//! trusted walk, is added to the hook's environment only.

use crate::safe_fs::{self, Final, Trust};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What the child gets from the supervisor's environment without any `--child-env`.
pub const DEFAULT_CHILD_ENV: &[&str] = &[
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "HOSTNAME", "HOME", "USER", "LOGNAME",
];
/// Set in a sandboxed child, as OpenShell sets it, so tools can tell they are sandboxed.
pub const SANDBOX_VAR: (&str, &str) = ("OPENSHELL_SANDBOX", "1");
/// The identity variables, which a sandboxed child gets from the policy user only.
const IDENTITY: [&str; 3] = ["HOME", "USER", "LOGNAME"];
/// The largest hook environment file read.
const ENV_FILE_MAX: u64 = 64 * 1024;

/// Checks a `--child-env` value: a variable name, `PREFIX*`, or `*` (everything).
pub fn check_pattern(p: &str) -> Result<(), String> {
    let name = p.strip_suffix('*').unwrap_or(p);
    if p == "*" || valid_name(name.as_bytes()) {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a variable name (letters, digits, _), a PREFIX* or *"
        ))
    }
}

fn valid_name(n: &[u8]) -> bool {
    !n.is_empty()
        && !n[0].is_ascii_digit()
        && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn matches(pattern: &str, name: &[u8]) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix.as_bytes()),
        None => name == pattern.as_bytes(),
    }
}

/// The child's environment, chosen from `from` (the supervisor's): the default list plus
/// `extra` patterns, then `set` on top (the identity variables under a policy, whose
/// inherited values are dropped when `sandboxed`). Returns the environment and the names
/// that were withheld.
pub fn child_env(
    from: impl IntoIterator<Item = (OsString, OsString)>,
    extra: &[String],
    set: &[(&str, String)],
    sandboxed: bool,
) -> (Vec<(OsString, OsString)>, Vec<String>) {
    let mut env = Vec::new();
    let mut withheld = Vec::new();
    for (k, v) in from {
        let name = k.as_bytes();
        let identity = sandboxed && IDENTITY.iter().any(|i| i.as_bytes() == name);
        let set_here = set.iter().any(|(s, _)| s.as_bytes() == name)
            || (sandboxed && name == SANDBOX_VAR.0.as_bytes());
        let allowed = DEFAULT_CHILD_ENV
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .any(|p| matches(p, name));
        if set_here || identity {
            continue;
        }
        if allowed {
            env.push((k, v));
        } else {
            withheld.push(k.to_string_lossy().into_owned());
        }
    }
    env.extend(set.iter().map(|(k, v)| (k.into(), v.into())));
    if sandboxed {
        env.push((SANDBOX_VAR.0.into(), SANDBOX_VAR.1.into()));
    }
    withheld.sort();
    (env, withheld)
}

/// Why the hook's environment file was refused.
#[derive(Debug)]
pub enum EnvFileError {
    /// Someone other than root could have written (or can read) it.
    Untrusted(String),
    /// Missing, unreadable or malformed.
    Invalid(String),
}

/// Reads `NAME=VALUE` lines (`#` comments and blank lines allowed; the value is taken
/// literally, no quotes, no expansion) from `path`. As root (`strict`) the file must pass
/// the trusted walk and be readable by root only: it holds secrets, and whoever could
/// write it could set LD_PRELOAD for a process that runs as root.
pub fn read_hook_env_file(
    path: &Path,
    strict: bool,
) -> Result<Vec<(OsString, OsString)>, EnvFileError> {
    let shown = path.display();
    let invalid =
        |why: String| EnvFileError::Invalid(format!("hook environment file {shown}: {why}"));
    let fd = if strict {
        let trust = Trust::root_and_self();
        let r = match safe_fs::resolve(path, &trust, Final::Read) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Err(invalid("does not exist".into())),
            Err(e) => {
                return Err(EnvFileError::Untrusted(format!(
                    "hook environment file {shown}: {e}"
                )))
            }
        };
        r.require_trusted_file(&trust, "hook environment file")
            .map_err(EnvFileError::Untrusted)?;
        if r.stat.st_mode & 0o077 != 0 {
            return Err(EnvFileError::Untrusted(format!(
                "hook environment file {} is readable by group or others (mode {:o}); chmod 600 it: \
                 it holds what only the hook may see",
                r.real.display(),
                r.stat.st_mode & 0o7777
            )));
        }
        r.fd
    } else {
        std::fs::File::open(path)
            .map_err(|e| invalid(e.to_string()))?
            .into()
    };
    let body = safe_fs::read_regular_fd(fd, ENV_FILE_MAX).map_err(|e| invalid(e.to_string()))?;
    parse_env_file(&body).map_err(invalid)
}

fn parse_env_file(body: &[u8]) -> Result<Vec<(OsString, OsString)>, String> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = line.trim_ascii_start();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(format!("line {}: expected NAME=VALUE", i + 1));
        };
        let (name, value) = (&line[..eq], &line[eq + 1..]);
        if !valid_name(name) {
            return Err(format!(
                "line {}: {:?} is not a variable name (letters, digits, _)",
                i + 1,
                String::from_utf8_lossy(name)
            ));
        }
        out.push((
            OsString::from_vec(name.to_vec()),
            OsString::from_vec(value.to_vec()),
        ));
    }
    Ok(out)
}

/// `base` with `add` on top (a later value for the same name wins).
pub fn overlay(
    mut base: Vec<(OsString, OsString)>,
    add: Vec<(OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    for (k, v) in add {
        base.retain(|(b, _)| b != &k);
        base.push((k, v));
    }
    base
}

/// `NAME=VALUE` strings for an exec's envp.
pub fn entries(env: &[(OsString, OsString)]) -> impl Iterator<Item = Vec<u8>> + '_ {
    env.iter().map(|(k, v)| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(OsStr::as_bytes(v));
        kv
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn the_child_gets_the_allow_list_and_its_identity_only() {
        let from = vars(&[
            ("PATH", "/bin"),
            ("LC_ALL", "C"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("HOME", "/root"),
            ("NODE_ENV", "production"),
            ("NODE_OPTIONS", "--x"),
            ("OPENSHELL_SANDBOX", "0"),
        ]);
        let set = [("HOME", "/home/agent".to_string())];
        let (env, withheld) = child_env(from.clone(), &["NODE_*".into()], &set, true);
        assert_eq!(
            env,
            vars(&[
                ("PATH", "/bin"),
                ("LC_ALL", "C"),
                ("NODE_ENV", "production"),
                ("NODE_OPTIONS", "--x"),
                ("HOME", "/home/agent"),
                ("OPENSHELL_SANDBOX", "1"),
            ])
        );
        assert_eq!(withheld, ["OPENAI_API_KEY"]);
        // Unconfined: the identity passes through, no sandbox marker.
        let (env, _) = child_env(from.clone(), &[], &[], false);
        assert!(env.contains(&("HOME".into(), "/root".into())));
        assert!(!env
            .iter()
            .any(|(k, _)| k == "OPENAI_API_KEY" || k == "NODE_ENV"));
        // `*` is everything, explicitly.
        let (env, withheld) = child_env(from, &["*".into()], &[], false);
        assert_eq!(env.len(), 7);
        assert!(withheld.is_empty());
    }

    #[test]
    fn patterns_and_env_files_are_checked() {
        for ok in ["NAME", "_X1", "LC_*", "*"] {
            check_pattern(ok).unwrap();
        }
        for bad in ["", "1X", "A-B", "A*B", "A=B", "**"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        let parsed =
            parse_env_file(b"# secrets\n\nTOKEN=a=b c\r\n  # indented comment\nEMPTY=\n").unwrap();
        assert_eq!(parsed, vars(&[("TOKEN", "a=b c"), ("EMPTY", "")]));
        assert!(parse_env_file(b"export X=1\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse_env_file(b"A=1\nnot a pair\n")
            .unwrap_err()
            .contains("line 2"));
        let merged = overlay(vars(&[("A", "1"), ("B", "2")]), vars(&[("A", "3")]));
        assert_eq!(merged, vars(&[("B", "2"), ("A", "3")]));
    }
}
