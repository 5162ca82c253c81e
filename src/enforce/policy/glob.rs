//! Host and binary-path globs with OpenShell's matching semantics (OPA `glob.match` with
//! `.` or `/` as the separator).

/// Glob match with OpenShell's (OPA `glob.match`) semantics: `*` matches within one
/// `sep`-delimited part, `**` across parts, `?` one character other than `sep`. A dynamic
/// programme over (pattern, text): O(len(pattern) * len(text)) time, no recursion and no
/// backtracking blow-up whatever the pattern.
fn glob(pattern: &[u8], text: &[u8], sep: u8) -> bool {
    #[derive(Clone, Copy)]
    enum Tok {
        Lit(u8),
        One,
        Star,
        DoubleStar,
    }
    let mut toks = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        toks.push(match pattern[i] {
            b'*' if pattern.get(i + 1) == Some(&b'*') => {
                i += 1;
                Tok::DoubleStar
            }
            b'*' => Tok::Star,
            b'?' => Tok::One,
            c => Tok::Lit(c),
        });
        i += 1;
    }
    // row[j]: the tokens so far match text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for tok in toks {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match tok {
                Tok::Lit(c) => j > 0 && row[j - 1] && text[j - 1] == c,
                Tok::One => j > 0 && row[j - 1] && text[j - 1] != sep,
                Tok::Star => row[j] || (j > 0 && next[j - 1] && text[j - 1] != sep),
                Tok::DoubleStar => row[j] || (j > 0 && next[j - 1]),
            };
        }
        row = next;
    }
    row[text.len()]
}

/// Whether `host` matches an endpoint or selector host pattern (case-insensitive; `*`
/// within one label, `**` across labels, but `**.example.com` does not match
/// `example.com` itself).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    glob(p.as_bytes(), h.as_bytes(), b'.')
}

/// Whether the executable path `path` matches a `binaries[].path` glob.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    glob(pattern.as_bytes(), path.as_bytes(), b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_globs() {
        assert!(host_matches("api.github.com", "API.GitHub.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("**.example.com", "a.b.example.com"));
        assert!(!host_matches("**.example.com", "example.com"));
        assert!(host_matches("*-api.example.com", "eu-api.example.com"));
        assert!(!host_matches("*-api.example.com", "eu.x-api.example.com"));
        assert!(!host_matches("api.github.com", "api.github.com.evil.org"));
    }

    #[test]
    fn path_globs() {
        assert!(path_matches("/usr/bin/curl", "/usr/bin/curl"));
        assert!(!path_matches("/usr/bin/curl", "/usr/bin/curlx"));
        assert!(path_matches("/usr/bin/*", "/usr/bin/node"));
        assert!(!path_matches("/usr/bin/*", "/usr/bin/x/node"));
        assert!(path_matches(
            "/sandbox/.vscode-server/**",
            "/sandbox/.vscode-server/a/b/node"
        ));
        assert!(path_matches("/**", "/anything/at/all"));
        assert!(path_matches("/usr/bin/python3.1?", "/usr/bin/python3.13"));
        assert!(!path_matches("/usr/bin/python?", "/usr/bin/python/"));
    }
}
