//! Our descendants, found through /proc: the only way to see processes that left the
//! child's process group (a daemon that called setsid) but are still ours to clean up.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;

/// Every live descendant of this process, children first.
pub fn descendants() -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = read_ppid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![std::process::id() as i32];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(Pid::from_raw(c));
            queue.push(c);
        }
    }
    out
}

/// The parent pid from /proc/PID/stat. The command name may contain spaces and
/// parentheses, so parse from the last ')'.
fn read_ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Sends `sig` to every descendant.
pub fn signal_descendants(sig: Signal) {
    for p in descendants() {
        let _ = kill(p, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_spawned_child() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants().contains(&Pid::from_raw(c.id() as i32));
        c.kill().unwrap();
        c.wait().unwrap();
        assert!(found);
        assert_eq!(
            read_ppid(std::process::id() as i32),
            Some(nix::unistd::getppid().as_raw())
        );
    }
}
