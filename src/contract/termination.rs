//! The supervisor's last word, for Kubernetes' `terminationMessagePath`.
//!
//! When the supervisor exits it writes one line to the file given by
//! `--termination-message PATH`: `PHASE`, `PHASE/REASON`, or either followed by `: MESSAGE`,
//! e.g. `Stopped` or `Failed/hook_failed: boot hook /etc/openshell/boot.sh exited with code 3`.
//! The kubelet copies it into the container's `state.terminated.message` (and later
//! `lastState.terminated.message`), so a stopped or failed pod still says why after the
//! status directory (an emptyDir) is gone. `sandboxctl`'s kube backend parses it back with
//! [`parse`]. The kubelet keeps at most 4096 bytes: [`format`] stays below [`MAX_BYTES`].

use super::phase::{Phase, Reason};

/// The kubelet truncates a termination message to 4096 bytes; we stay below it.
pub const MAX_BYTES: usize = 4000;

/// A parsed termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub phase: Phase,
    pub reason: Option<Reason>,
    pub message: Option<String>,
}

/// The line written at exit (no trailing newline), cut to [`MAX_BYTES`] on a char boundary.
pub fn format(phase: Phase, reason: Option<Reason>, message: Option<&str>) -> String {
    let mut s = phase.as_str().to_owned();
    if let Some(r) = reason {
        s.push('/');
        s.push_str(r.as_str());
    }
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        s.push_str(": ");
        // One line: a newline in the message would read as a second field to some tools.
        s.extend(m.chars().map(|c| if c == '\n' { ' ' } else { c }));
    }
    if s.len() > MAX_BYTES {
        let mut end = MAX_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Reads a termination message back. Anything that is not ours (empty, another program's
/// words, an unknown phase or reason) is `None`: it is never guessed at.
pub fn parse(text: &str) -> Option<Final> {
    let text = text.trim();
    let (head, message) = match text.split_once(": ") {
        Some((h, m)) => (h, Some(m.trim().to_owned()).filter(|m| !m.is_empty())),
        None => (text, None),
    };
    let (phase, reason) = match head.split_once('/') {
        Some((p, r)) => (p, Some(r)),
        None => (head, None),
    };
    let phase = Phase::ALL.into_iter().find(|p| p.as_str() == phase)?;
    let reason = match reason {
        None => None,
        // Through serde, so reasons added to the contract are known here without a list.
        Some(r) => Some(serde_json::from_value(serde_json::Value::String(r.to_owned())).ok()?),
    };
    Some(Final {
        phase,
        reason,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (phase, reason, message, line) in [
            (Phase::Stopped, None, None, "Stopped"),
            (
                Phase::Failed,
                Some(Reason::HookFailed),
                Some("boot hook exited with code 3"),
                "Failed/hook_failed: boot hook exited with code 3",
            ),
            (Phase::Completed, None, Some("done"), "Completed: done"),
        ] {
            let s = format(phase, reason, message);
            assert_eq!(s, line);
            let f = parse(&s).unwrap();
            assert_eq!(
                (f.phase, f.reason, f.message.as_deref()),
                (phase, reason, message)
            );
        }
    }

    #[test]
    fn refuses_what_is_not_ours() {
        for bad in [
            "",
            "panic: runtime error",
            "Ready/whatever",
            "Failed/not_a_reason: x",
            "stopped",
            "{\"phase\":\"Stopped\"}",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stays_one_line_and_under_the_kubelet_limit() {
        let long = "é".repeat(5000);
        let s = format(Phase::Failed, Some(Reason::Internal), Some(&long));
        assert!(s.len() <= MAX_BYTES);
        let s = format(Phase::Failed, None, Some("a\nb"));
        assert_eq!(s, "Failed: a b");
    }
}
