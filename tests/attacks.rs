//! Attacks on the sandbox boundary (issue 8), each performed for real against the real
//! supervisor, asserting the safe outcome. Tests are prefixed by the area they defend.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

const NOBODY: u32 = 65534;

// ---- policy: the policy file a root supervisor reads, and the paths it names ----------

/// A minimal valid policy: /bin/true (busybox or coreutils) can run as nobody.
const POLICY: &str = "version: 1
filesystem_policy:
  read_only: [/usr, /lib, /lib64, /bin, /etc]
  read_write: [/dev/null]
process:
  run_as_user: nobody
  run_as_group: nogroup
";

/// Runs the supervisor with `--policy policy` on /bin/true; returns the exit code, the log
/// events and whether a child was spawned.
fn policy_start(s: &Scratch, policy: &Path) -> (i32, Vec<Value>, bool) {
    let mut c = Command::new(SUPERVISOR);
    c.arg("--policy")
        .arg(policy)
        .args(["--no-hook", "--restart", "never", "--status-dir"])
        .arg(s.status_dir())
        .args(["--", "/bin/true"])
        .current_dir(&s.path);
    let sup = spawn_cmd(s, c);
    let (st, events) = sup.wait(LONG);
    let ran = !named(&events, "child.spawn").is_empty();
    (st.code().unwrap_or(-1), events, ran)
}

fn policy_check(policy: &Path) -> (i32, String) {
    let out = Command::new(SUPERVISOR)
        .args(["check", "--policy"])
        .arg(policy)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn error_of(events: &[Value], event: &str) -> String {
    let e = named(events, event);
    assert!(!e.is_empty(), "no {event} event in {events:?}");
    e[0]["error"].as_str().unwrap().to_string()
}

/// Asserts that a root supervisor refuses `policy` before anything runs, with exit 78, the
/// `policy.untrusted` event and `check` agreeing; returns the error text.
fn policy_refused_as_untrusted(s: &Scratch, policy: &Path) -> String {
    let (code, events, ran) = policy_start(s, policy);
    assert_eq!(code, 78, "{events:?}");
    assert!(!ran, "the child ran under an untrusted policy");
    let e = error_of(&events, "policy.untrusted");
    assert_eq!(s.status()["reason"], "config_invalid");
    let (ccode, out) = policy_check(policy);
    assert_eq!(ccode, 78, "{out}");
    assert!(out.contains("FAIL"), "{out}");
    e
}

#[test]
fn policy_file_writable_by_another_user_is_refused() {
    require_root();
    let s = Scratch::new("policy-0666");
    // The reported attack: a nobody-owned 0666 policy in a 0777 directory.
    let open = s.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let p = open.join("policy.yaml");
    fs::write(&p, POLICY).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &p);
    assert!(e.contains("uid 65534"), "{e}");

    // Each property on its own: root-owned but in the 0777 directory...
    chown(&p, Some(0), Some(0)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let e = policy_refused_as_untrusted(&s, &p);
    assert!(
        e.contains(&open.display().to_string()) && e.contains("777"),
        "{e}"
    );
    // ...in a trusted directory but owned by nobody...
    let q = s.join("nobodys.yaml");
    fs::write(&q, POLICY).unwrap();
    chown(&q, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &q);
    assert!(e.contains("owned by uid 65534"), "{e}");
    // ...root-owned but group-writable...
    let g = s.join("group.yaml");
    fs::write(&g, POLICY).unwrap();
    fs::set_permissions(&g, fs::Permissions::from_mode(0o664)).unwrap();
    let e = policy_refused_as_untrusted(&s, &g);
    assert!(e.contains("writable by group or others"), "{e}");
    // ...or in a directory nobody owns (it could swap the file at any time).
    let nd = s.join("nobodydir");
    fs::create_dir(&nd).unwrap();
    chown(&nd, Some(NOBODY), Some(NOBODY)).unwrap();
    let n = nd.join("policy.yaml");
    fs::write(&n, POLICY).unwrap();
    let e = policy_refused_as_untrusted(&s, &n);
    assert!(e.contains("uid 65534"), "{e}");

    // Control: the same text, root-owned 0644 in a trusted directory, starts the child.
    let ok = s.join("ok.yaml");
    fs::write(&ok, POLICY).unwrap();
    let (code, events, ran) = policy_start(&s, &ok);
    assert_eq!(code, 0, "{events:?}");
    assert!(ran);
}

#[test]
fn policy_file_reached_through_a_planted_symlink_is_refused() {
    require_root();
    let s = Scratch::new("policy-link");
    let good = s.join("trusted.yaml");
    fs::write(&good, POLICY).unwrap();
    // nobody's directory holds a (nobody-owned) link to a perfectly trusted policy: the
    // link could point anywhere tomorrow, so it is not followed.
    let nd = s.join("userdir");
    fs::create_dir(&nd).unwrap();
    chown(&nd, Some(NOBODY), Some(NOBODY)).unwrap();
    let link = nd.join("policy.yaml");
    symlink(&good, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = policy_refused_as_untrusted(&s, &link);
    assert!(e.contains("symlink"), "{e}");
    // A directory on the way that is nobody's link.
    let dirlink = nd.join("etc");
    symlink(s.path.clone(), &dirlink).unwrap();
    std::os::unix::fs::lchown(&dirlink, Some(NOBODY), Some(NOBODY)).unwrap();
    policy_refused_as_untrusted(&s, &dirlink.join("trusted.yaml"));
    // /proc magic links name whatever the opener has open.
    let (code, events, ran) = policy_start(&s, Path::new("/dev/stdin"));
    assert_eq!(code, 78);
    assert!(!ran);
    assert!(error_of(&events, "policy.untrusted").contains("/proc"));
}

#[test]
fn policy_file_that_is_a_fifo_or_huge_is_refused_without_blocking() {
    require_root();
    let s = Scratch::new("policy-fifo");
    let fifo = s.join("policy.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // A FIFO nobody writes to would block an open or a read forever.
    let (code, events, ran) = policy_start(&s, &fifo);
    assert_eq!(code, 78);
    assert!(!ran);
    let e = error_of(&events, "policy.untrusted");
    assert!(e.contains("FIFO"), "{e}");
    // 2 MiB of valid YAML comments: refused by size, not parsed.
    let big = s.join("big.yaml");
    let mut text = String::from(POLICY);
    while text.len() < 2 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    fs::write(&big, text).unwrap();
    let (code, events, ran) = policy_start(&s, &big);
    assert_eq!(code, 78);
    assert!(!ran);
    let e = error_of(&events, "policy.invalid");
    assert!(e.contains("over the 1048576-byte limit"), "{e}");
}

/// The reported escalation: `read_write: [/proc/self/root]` passed `check` and a real
/// start, and the child could then write anywhere.
#[test]
fn policy_read_write_proc_self_root_is_refused() {
    require_root();
    let s = Scratch::new("policy-procroot");
    let p = s.join("policy.yaml");
    fs::write(
        &p,
        POLICY.replace(
            "read_write: [/dev/null]",
            "read_write: [/dev/null, /proc/self/root]",
        ),
    )
    .unwrap();
    let (code, events, ran) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(!ran);
    let ev = named(&events, "policy.invalid");
    assert_eq!(ev[0]["field"], "filesystem_policy.read_write[1]");
    let (ccode, out) = policy_check(&p);
    assert_eq!(ccode, 78, "{out}");
    assert!(out.contains("filesystem_policy.read_write[1]"), "{out}");
    // A second spelling of the same directory: a root-owned link to /.
    let link = s.join("everything");
    symlink("/", &link).unwrap();
    fs::write(
        &p,
        POLICY.replace(
            "read_write: [/dev/null]",
            &format!("read_write: [/dev/null, {}]", link.display()),
        ),
    )
    .unwrap();
    let (code, events, _) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(error_of(&events, "policy.invalid").contains("same device and inode as /"));
}

/// The reported escalation: a read_only tree under a read_write one, replaced by the
/// workload with a symlink to / between runs, granted read on everything at the next run.
#[test]
fn policy_read_only_tree_swapped_for_a_link_to_root_is_refused_next_start() {
    require_root();
    let s = Scratch::new("policy-swap");
    let ws = s.join("ws");
    let docs = ws.join("docs");
    fs::create_dir_all(&docs).unwrap();
    for d in [&ws, &docs] {
        chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let p = s.join("policy.yaml");
    fs::write(
        &p,
        POLICY
            .replace(
                "read_only: [/usr, /lib, /lib64, /bin, /etc]",
                &format!(
                    "read_only: [/usr, /lib, /lib64, /bin, /etc, {}]",
                    docs.display()
                ),
            )
            .replace(
                "read_write: [/dev/null]",
                &format!("read_write: [/dev/null, {}]", ws.display()),
            ),
    )
    .unwrap();
    let (code, events, _) = policy_start(&s, &p);
    assert_eq!(code, 0, "{events:?}");
    // Between runs, the workload (nobody, owner of its workspace) swaps the tree.
    let st = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("rmdir {d} && ln -s / {d}", d = docs.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let (code, events, ran) = policy_start(&s, &p);
    assert_eq!(code, 78);
    assert!(!ran);
    let ev = named(&events, "policy.invalid");
    assert_eq!(ev[0]["field"], "filesystem_policy.read_only[5]");
    let e = ev[0]["error"].as_str().unwrap();
    assert!(
        e.contains(&format!("{} is a symlink", docs.display())) && e.contains("uid 65534"),
        "names the path and who could have planted it: {e}"
    );
}
