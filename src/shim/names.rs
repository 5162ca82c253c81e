//! Sandbox names and everything derived from them. Derived names are deterministic so that
//! any sandboxctl (or an operator with the engine's CLI) finds the same objects again.

use std::fmt;

/// Longest accepted NAME. A DNS label allows 63, but a future Kubernetes backend names its
/// StatefulSet `openshell-NAME`, and Kubernetes puts `<statefulset>-<10-char hash>` into a
/// label value (max 63): 63 - 11 - len("openshell-") = 42.
pub const MAX_NAME_LEN: usize = 42;

/// Prefix of every engine object sandboxctl creates.
pub const PREFIX: &str = "openshell-";

/// Label keys put on containers and volumes. `LABEL_SANDBOX` carries NAME, `LABEL_ID` the
/// sandbox's random id (sandbox.json's `id`): an object is this sandbox's only if both match.
pub const LABEL_SANDBOX: &str = "io.openshell.sandbox";
pub const LABEL_ID: &str = "io.openshell.sandbox-id";
pub const LABEL_MANAGED_BY: &str = "io.openshell.managed-by";
pub const LABEL_STATE_DIR: &str = "io.openshell.state-dir";
pub const MANAGED_BY: &str = "sandboxctl";

/// A validated sandbox name: an RFC 1123 DNS label of at most [`MAX_NAME_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, String> {
        let why = if s.is_empty() {
            Some("it is empty".to_owned())
        } else if s.len() > MAX_NAME_LEN {
            Some(format!(
                "it has {} characters, at most {MAX_NAME_LEN} are allowed",
                s.len()
            ))
        } else if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            Some(format!(
                "{c:?} is not allowed (use lowercase letters, digits and '-')"
            ))
        } else if s.starts_with('-') || s.ends_with('-') {
            Some("it must start and end with a letter or digit".to_owned())
        } else {
            None
        };
        match why {
            None => Ok(Name(s.to_owned())),
            Some(why) => Err(format!(
                "invalid sandbox name {s:?}: {why}; a name is a DNS label (RFC 1123) such as \"agent-1\""
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `openshell-NAME`.
    pub fn container(&self) -> String {
        format!("{PREFIX}{}", self.0)
    }

    /// `openshell-NAME-workspace`.
    pub fn volume(&self) -> String {
        format!("{PREFIX}{}-workspace", self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "agent-1", "0day", "a-b-c", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("Agent", "'A' is not allowed"),
            ("a_b", "'_' is not allowed"),
            ("a.b", "'.' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("../x", "'.' is not allowed"),
            ("a b", "' ' is not allowed"),
            ("é", "'é' is not allowed"),
            ("-a", "start and end"),
            ("a-", "start and end"),
            (&"x".repeat(MAX_NAME_LEN + 1), "at most 42"),
        ];
        for (bad, why) in cases {
            let e = Name::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("invalid sandbox name"), "{e}");
        }
    }

    #[test]
    fn derived_names_are_deterministic() {
        let n = Name::parse("agent-1").unwrap();
        assert_eq!(n.container(), "openshell-agent-1");
        assert_eq!(n.volume(), "openshell-agent-1-workspace");
        assert_eq!(n.to_string(), "agent-1");
    }
}
