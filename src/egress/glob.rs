//! Glob patterns for policy hosts (`.`-delimited) and binaries (`/`-delimited), with the
//! semantics OpenShell's policy engine gives them: `*` matches within one segment, `**`
//! across segments, `?` one character of a segment, `[a-z]` / `[!0]` a class.
//!
//! Matching is dynamic programming over (pattern token, text byte): linear in their
//! product, so no pattern in a policy can make a decision take exponential time.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any run of bytes other than the delimiter.
    Star,
    /// `**`: any run of bytes.
    GlobStar,
    /// `?`: one byte other than the delimiter.
    One,
    /// `[...]`: one byte in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    delimiter: u8,
    tokens: Vec<Token>,
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// True when `s` uses any glob syntax (otherwise it is compared literally).
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Glob {
    /// Compiles `pattern`; `delimiter` is the segment separator (`.` or `/`).
    pub fn new(pattern: &str, delimiter: u8) -> Result<Glob, String> {
        let b = pattern.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'*' => {
                    if b.get(i + 1) == Some(&b'*') {
                        tokens.push(Token::GlobStar);
                        i += 2;
                        while b.get(i) == Some(&b'*') {
                            i += 1;
                        }
                        continue;
                    }
                    tokens.push(Token::Star);
                }
                b'?' => tokens.push(Token::One),
                b'[' => {
                    let (tok, next) = class(b, i)
                        .ok_or_else(|| format!("{pattern:?}: unterminated '[' class"))?;
                    tokens.push(tok);
                    i = next;
                    continue;
                }
                b'\\' => {
                    let c = *b
                        .get(i + 1)
                        .ok_or_else(|| format!("{pattern:?}: trailing '\\'"))?;
                    tokens.push(Token::Byte(c));
                    i += 2;
                    continue;
                }
                c => tokens.push(Token::Byte(c)),
            }
            i += 1;
        }
        Ok(Glob {
            source: pattern.to_owned(),
            delimiter,
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, text: &[u8]) -> bool {
        let d = self.delimiter;
        // prev[j]: tokens[..i] match text[..j].
        let mut prev = vec![false; text.len() + 1];
        prev[0] = true;
        let mut cur = vec![false; text.len() + 1];
        for tok in &self.tokens {
            cur.fill(false);
            match tok {
                Token::Star | Token::GlobStar => {
                    let any = matches!(tok, Token::GlobStar);
                    cur[0] = prev[0];
                    for j in 1..=text.len() {
                        cur[j] = prev[j] || (cur[j - 1] && (any || text[j - 1] != d));
                    }
                }
                _ => {
                    for j in 1..=text.len() {
                        cur[j] = prev[j - 1] && one(tok, text[j - 1], d);
                    }
                }
            }
            std::mem::swap(&mut prev, &mut cur);
        }
        prev[text.len()]
    }
}

fn one(tok: &Token, c: u8, delimiter: u8) -> bool {
    match tok {
        Token::Byte(b) => *b == c,
        Token::One => c != delimiter,
        Token::Class { negated, ranges } => {
            c != delimiter && (ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated)
        }
        Token::Star | Token::GlobStar => unreachable!("handled by the caller"),
    }
}

/// Parses the class starting at `b[start] == '['`; returns it and the index after `]`.
fn class(b: &[u8], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = matches!(b.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *b.get(i)?;
        if c == b']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = b[i + 2];
            ranges.push((c.min(hi), c.max(hi)));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, d: u8, t: &str) -> bool {
        Glob::new(p, d).unwrap().matches(t.as_bytes())
    }

    #[test]
    fn binary_paths() {
        assert!(m("/usr/bin/*", b'/', "/usr/bin/curl"));
        assert!(!m("/usr/bin/*", b'/', "/usr/bin/x/curl"));
        assert!(m("/usr/**", b'/', "/usr/bin/x/curl"));
        assert!(m("/usr/bin/python3.*", b'/', "/usr/bin/python3.11"));
        assert!(m("/usr/bin/python3.1?", b'/', "/usr/bin/python3.11"));
        assert!(!m("/usr/bin/python3.1?", b'/', "/usr/bin/python3.1/"));
        assert!(m("/opt/[a-c]*/run", b'/', "/opt/bee/run"));
        assert!(!m("/opt/[!a-c]*/run", b'/', "/opt/bee/run"));
        assert!(m("/a\\*b", b'/', "/a*b"));
        assert!(!m("/a\\*b", b'/', "/axb"));
        // A deleted binary's link target does not look like the file that was listed.
        assert!(!m("/usr/bin/curl", b'/', "/usr/bin/curl (deleted)"));
    }

    #[test]
    fn hosts() {
        assert!(m("*.example.com", b'.', "api.example.com"));
        assert!(!m("*.example.com", b'.', "a.b.example.com"));
        assert!(!m("*.example.com", b'.', "example.com"));
        assert!(m("**.example.com", b'.', "a.b.example.com"));
        assert!(m(
            "*-aiplatform.googleapis.com",
            b'.',
            "us-aiplatform.googleapis.com"
        ));
        assert!(!m("*.example.com", b'.', "api.example.com.evil.net"));
    }

    #[test]
    fn bad_patterns_and_pathological_input() {
        assert!(Glob::new("/a[b", b'/').is_err());
        assert!(Glob::new("/a\\", b'/').is_err());
        // Would be exponential for a backtracking matcher.
        let p = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let t = "a".repeat(4000);
        assert!(!m(p, b'/', &t));
    }
}
