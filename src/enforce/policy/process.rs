//! `process`: who the child runs as. OpenShell takes `sandbox` or a numeric id; we also take
//! any user or group name from the image's `/etc/passwd` and `/etc/group`. Either field may
//! be omitted (see `identity::choose` for what is used instead).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcess {
    #[serde(default)]
    pub run_as_user: Option<IdSpec>,
    #[serde(default)]
    pub run_as_group: Option<IdSpec>,
}

/// A user or group as the policy names it: a name, or a numeric id 1..4294967294.
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
                match u32::try_from(v) {
                    Ok(0) => Err(E::custom(
                        "0 is root; the sandboxed child never runs with id 0",
                    )),
                    // (uid_t)-1 means "unchanged" to the kernel.
                    Ok(v) if v != u32::MAX => Ok(IdSpec::Id(v)),
                    _ => Err(E::custom(format!("id {v} is out of range (1..4294967294)"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdSpec, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("id {v} is negative"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdSpec, E> {
                // OpenShell writes numeric ids as strings (`run_as_user: "1500"`).
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    return match v.parse::<u64>() {
                        Ok(n) => self.visit_u64(n),
                        Err(_) => Err(E::custom(format!("id {v} is out of range (1..4294967294)"))),
                    };
                }
                if v.is_empty() || v.contains([':', '\n', '\0', ',']) || v.starts_with(['-', '+']) {
                    return Err(E::custom(format!("{v:?} is not a valid user/group name")));
                }
                Ok(IdSpec::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
