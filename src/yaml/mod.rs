//! A strict YAML reader for the policy file: saphyr-parser's events become a small node
//! tree with marks ([`tree`]), and a serde Deserializer over that tree ([`de`]) is strict
//! by construction and knows the field path of every value.
//!
//! Strict means: a quoted scalar is a string (`version: "1"` is not the integer 1), a
//! boolean is `true`/`false`, integers are YAML 1.2 integers, duplicate keys, tags (`!evil
//! 1`, `!!str`), complex keys and multiple documents are refused, and every error names the
//! field path (`landlock.tcp_bind[0]`), the line and column, and says what was expected and
//! what was found, in our words, never the parser's advice.
//!
//! Bounded: at most [`MAX_DEPTH`] levels of nesting and [`MAX_NODES`] nodes in all, aliases
//! counted as the copies they stand for (an alias bomb fails fast with bounded memory). The
//! caller caps the input size. Nothing here recurses deeper than [`MAX_DEPTH`].

mod de;
mod scalar;
mod tree;

use serde::de::DeserializeOwned;
use std::fmt;

pub use tree::{Mark, Node, Value};

/// Deepest nesting accepted (a policy needs about 8).
pub const MAX_DEPTH: usize = 64;
/// Most nodes in a document, alias copies included.
pub const MAX_NODES: usize = 100_000;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The field path, e.g. `filesystem_policy.read_only[2]`; empty for the document.
    pub path: String,
    /// Where (1-based line and column); None when the position is not known.
    pub mark: Option<Mark>,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(m) = self.mark {
            write!(f, " (line {}, column {})", m.line, m.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Parses `text` (one YAML document) into the node tree.
pub fn parse(text: &str) -> Result<Node, Error> {
    tree::build(text)
}

/// Parses `text` and deserializes it into `T` with the strict rules above.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let root = parse(text)?;
    from_node(&root)
}

/// Deserializes an already parsed tree.
pub fn from_node<T: DeserializeOwned>(root: &Node) -> Result<T, Error> {
    de::from_node(root)
}

/// A path segment for a map key: `.key`, or `."odd key"` when it is not a plain word. A
/// leading segment drops its dot (see [`join_key`]).
pub fn key_seg(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!(".{k}")
    } else {
        format!(".{k:?}")
    }
}

/// `parent` + `.key` (no leading dot at the top).
pub fn join_key(parent: &str, k: &str) -> String {
    let seg = key_seg(k);
    if parent.is_empty() {
        seg[1..].to_string()
    } else {
        format!("{parent}{seg}")
    }
}

#[cfg(test)]
mod tests;
