//! Our descendants, found through /proc: the only way to see processes that left the
//! child's process group (a daemon that called setsid) but are still ours to clean up.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

/// Every live descendant of this process, children first.
pub fn descendants() -> Vec<Pid> {
    descendants_except(&[])
}

/// Every descendant except the processes in `spare` and everything below them: the
/// supervisor's own long-lived helpers are not leftovers of the hook or of a generation.
pub fn descendants_except(spare: &[Pid]) -> Vec<Pid> {
    // We are PID 1 or a child subreaper, so an orphaned descendant is re-parented to us:
    // with no child at all there is no descendant, and the /proc scan (hundreds of files on
    // a busy host) is skipped. This is the common case when a run ends.
    if !has_children() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (ppid, pid), sorted so each parent's children are one contiguous run.
    let mut links: Vec<(i32, i32)> = dir
        .flatten()
        .filter_map(|entry| {
            let pid = std::str::from_utf8(entry.file_name().as_bytes())
                .ok()?
                .parse::<i32>()
                .ok()?;
            Some((read_ppid(pid)?, pid))
        })
        .collect();
    links.sort_unstable();
    let mut out = Vec::new();
    let mut queue = vec![std::process::id() as i32];
    while let Some(p) = queue.pop() {
        let start = links.partition_point(|&(pp, _)| pp < p);
        for &(_, c) in links[start..].iter().take_while(|&&(pp, _)| pp == p) {
            if spare.contains(&Pid::from_raw(c)) {
                continue;
            }
            out.push(Pid::from_raw(c));
            queue.push(c);
        }
    }
    out
}

/// True while we have any child, running or a zombie not yet reaped. WNOWAIT leaves every
/// exit status to the event loop, which owns reaping.
fn has_children() -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::All, flags), Err(Errno::ECHILD))
}

/// The parent pid from /proc/PID/stat. The command name may contain spaces and
/// parentheses, so parse from the last ')'. One open and one read into a stack buffer: the
/// pid, the name (at most 64 bytes) and the fields up to the ppid fit in 256 bytes, and
/// nothing after the name contains ')'.
fn read_ppid(pid: i32) -> Option<i32> {
    let mut buf = [0u8; 256];
    let n = std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read(&mut buf)
        .ok()?;
    let stat = &buf[..n];
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let _state = fields.next()?;
    std::str::from_utf8(fields.next()?).ok()?.parse().ok()
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
        let pid = Pid::from_raw(c.id() as i32);
        let found = descendants().contains(&pid);
        let spared = !descendants_except(&[pid]).contains(&pid);
        let had_children = has_children();
        c.kill().unwrap();
        c.wait().unwrap();
        assert!(found);
        assert!(spared);
        assert!(had_children, "a running child must count as a child");
        assert_eq!(
            read_ppid(std::process::id() as i32),
            Some(nix::unistd::getppid().as_raw())
        );
    }
}
