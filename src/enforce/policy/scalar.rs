//! Validated scalar values of the policy: each refuses a bad value while it is read, so the
//! error carries the field path and the value, never a generic "invalid type".

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A TCP port, 1..=65535 (0 means "any port" to the kernel and is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Port, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TCP port (1..65535)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(p) if p != 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!("{v} is not a port (1..65535)"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("{v} is not a port (1..65535)"))),
                }
            }
        }
        d.deserialize_u64(V)
    }
}

/// Declares a closed set of string values: `name => Variant` pairs, read from a string and
/// refused with the list of valid values otherwise.
macro_rules! str_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident ($what:literal) { $($(#[$vm:meta])* $s:literal => $v:ident,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vm])* $v,)+ }

        impl $name {
            /// The spelling in the policy file.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s,)+ }
            }

            const NAMES: &'static [&'static str] = &[$($s),+];

            fn from_name(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{} ({})", $what, $name::NAMES.iter()
                            .map(|n| if n.is_empty() { "\"\"" } else { n })
                            .collect::<Vec<_>>().join(" | "))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_name(v).ok_or_else(|| E::custom(format!(
                            "{v:?} is not a valid {}; expected one of: {}", $what,
                            $name::NAMES.iter().filter(|n| !n.is_empty()).copied()
                                .collect::<Vec<_>>().join(", "))))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use str_enum;

/// A value that must be a non-empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NonEmpty, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s))
    }
}
