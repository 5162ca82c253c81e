//! Attacks on the supervisor by a hostile workload, performed for real against the real
//! binary. Shared by several branches: each group of tests has its own name prefix.
//!
//! `seed_*`: workspace seeding runs as root in a tree the workload controls. The workload
//! (or whoever prepared the volume) plants symlinks, FIFOs, hardlinks, mounts and racing
//! renames where seed files go, or fills the disk. Nothing outside the workspace may be
//! touched, nothing may block, and failures must say what happened.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SANDBOX_UID: u32 = 1000;

/// A seed tree and a workspace in one scratch directory (same filesystem, so hardlinks
/// between the workspace and the "outside" are possible), plus a victim tree outside.
struct Seeding {
    s: Scratch,
}

impl Seeding {
    fn new(name: &str) -> Seeding {
        require_root();
        let s = Scratch::new(name);
        for d in ["seed", "ws", "outside"] {
            fs::create_dir(s.join(d)).unwrap();
        }
        // The seed root decides the workspace root's owner, like an image's /sandbox.
        chown(&s.join("seed"), SANDBOX_UID);
        Seeding { s }
    }

    fn seed(&self) -> PathBuf {
        self.s.join("seed")
    }
    fn ws(&self) -> PathBuf {
        self.s.join("ws")
    }
    fn outside(&self) -> PathBuf {
        self.s.join("outside")
    }

    /// A file in the seed tree owned by the sandbox user.
    fn seed_file(&self, rel: &str, body: &str, mode: u32) {
        let p = self.seed().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        chown(&p, SANDBOX_UID);
    }

    fn seed_dir(&self, rel: &str) {
        let p = self.seed().join(rel);
        fs::create_dir_all(&p).unwrap();
        chown(&p, SANDBOX_UID);
    }

    /// A root-only secret outside the workspace, to aim attacks at.
    fn secret(&self) -> PathBuf {
        let p = self.outside().join("secret");
        fs::write(&p, "root only\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// Runs the supervisor once over this seed tree and workspace; returns its exit status
    /// and log. It must finish within `limit` (nothing may block).
    fn run(&self, limit: Duration) -> (ExitStatus, Vec<serde_json::Value>) {
        let sup = spawn(
            &self.s,
            &[
                "--no-hook",
                "--seed",
                self.seed().to_str().unwrap(),
                "--workspace",
                self.ws().to_str().unwrap(),
                "--restart",
                "never",
                "--",
                "/bin/true",
            ],
        );
        sup.wait(limit)
    }
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
}

/// Everything under `dir`, with type, owner and mode, for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let body = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.mode(), m.uid(), m.gid(), body));
        }
    }
    out
}

fn no_temp_files(dir: &Path) {
    for (p, ..) in snapshot(dir) {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !n.starts_with(".openshell-seed-"),
            "temporary file left behind: {}",
            p.display()
        );
    }
}

#[test]
fn seed_copies_owners_modes_and_symlinks_once() {
    let t = Seeding::new("seed-basic");
    t.seed_file(".bashrc", "export PS1=sandbox\n", 0o644);
    t.seed_file("bin/tool", "#!/bin/sh\necho tool\n", 0o750);
    t.seed_dir("empty");
    // A root-owned setuid file in the seed tree keeps owner and mode (chown after write
    // would otherwise clear the setuid bit).
    t.seed_file("bin/suid", "x", 0o4755);
    chown(&t.seed().join("bin/suid"), 0);
    fs::set_permissions(
        t.seed().join("bin/suid"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    symlink(".bashrc", t.seed().join("profile")).unwrap();
    chown(&t.seed().join("profile"), SANDBOX_UID);
    symlink("/etc/hostname", t.seed().join("abs")).unwrap();

    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert_eq!(named(&events, "seed.done").len(), 1, "{events:?}");

    let ws = t.ws();
    let m = fs::metadata(&ws).unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o7777),
        (SANDBOX_UID, 0o755),
        "workspace root takes the seed root's owner"
    );
    let m = fs::metadata(ws.join(".bashrc")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (SANDBOX_UID, SANDBOX_UID, 0o644)
    );
    assert_eq!(
        fs::read_to_string(ws.join(".bashrc")).unwrap(),
        "export PS1=sandbox\n"
    );
    let m = fs::metadata(ws.join("bin/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    let m = fs::metadata(ws.join("bin/suid")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o4755));
    assert!(ws.join("empty").is_dir());
    // Symlinks are copied as symlinks with their owner, not followed.
    assert_eq!(
        fs::read_link(ws.join("profile")).unwrap(),
        Path::new(".bashrc")
    );
    assert_eq!(
        fs::symlink_metadata(ws.join("profile")).unwrap().uid(),
        SANDBOX_UID
    );
    assert_eq!(
        fs::read_link(ws.join("abs")).unwrap(),
        Path::new("/etc/hostname")
    );
    assert_eq!(fs::symlink_metadata(ws.join("abs")).unwrap().uid(), 0);
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.join(".openshell-seeded")).unwrap()).unwrap();
    assert_eq!(marker["files"], 3, "{marker}");
    no_temp_files(&ws);

    // Second boot: the marker is there, nothing is copied again, not even what was deleted.
    fs::remove_file(ws.join(".bashrc")).unwrap();
    let (st, events) = t.run(LONG);
    assert!(st.success());
    assert_eq!(named(&events, "seed.skipped").len(), 1, "{events:?}");
    assert!(!ws.join(".bashrc").exists());
    // Without the marker the copy is resumed: the missing file comes back, the rest stays.
    fs::write(ws.join("bin/tool"), "changed by the agent").unwrap();
    fs::remove_file(ws.join(".openshell-seeded")).unwrap();
    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert_eq!(
        fs::read_to_string(ws.join(".bashrc")).unwrap(),
        "export PS1=sandbox\n"
    );
    assert_eq!(
        fs::read_to_string(ws.join("bin/tool")).unwrap(),
        "changed by the agent",
        "never overwrites"
    );
}

#[test]
fn seed_planted_symlinks_are_not_followed() {
    let t = Seeding::new("seed-symlinks");
    let secret = t.secret();
    let shadow_before = fs::read("/etc/shadow").unwrap();
    t.seed_file(".bashrc", "seeded\n", 0o644);
    t.seed_file("secret", "seeded\n", 0o644);
    t.seed_file(".config/app/settings", "seeded\n", 0o644);
    t.seed_file("cache/x", "seeded\n", 0o644);
    t.seed_file("deep/er/file", "seeded\n", 0o644);
    // The attacks: a file path that is a symlink to /etc/shadow, one to a file outside, a
    // directory path that is a symlink to a directory outside (absolute and relative), and
    // a symlink one level down inside a directory the workload made.
    let ws = t.ws();
    symlink("/etc/shadow", ws.join(".bashrc")).unwrap();
    symlink(&secret, ws.join("secret")).unwrap();
    symlink(t.outside(), ws.join(".config")).unwrap();
    symlink("../outside", ws.join("cache")).unwrap();
    fs::create_dir_all(ws.join("deep")).unwrap();
    symlink(t.outside(), ws.join("deep/er")).unwrap();
    let outside_before = snapshot(&t.outside());

    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert_eq!(fs::read("/etc/shadow").unwrap(), shadow_before);
    assert_eq!(
        snapshot(&t.outside()),
        outside_before,
        "nothing outside the workspace changed"
    );
    assert_eq!(
        fs::read_link(ws.join(".bashrc")).unwrap(),
        Path::new("/etc/shadow"),
        "the planted link is kept"
    );
    assert_eq!(
        fs::read_link(ws.join("cache")).unwrap(),
        Path::new("../outside")
    );
    let done = &named(&events, "seed.done")[0];
    assert_eq!(done["kept"], 5, "{done}");
    no_temp_files(&ws);
}

#[test]
fn seed_fifos_and_devices_where_seed_files_go_do_not_block() {
    let t = Seeding::new("seed-fifo");
    t.seed_file(".bashrc", "seeded\n", 0o644);
    t.seed_file("dir/inner", "seeded\n", 0o644);
    t.seed_file(".openshell-seeded-not", "seeded\n", 0o644);
    let ws = t.ws();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::unistd::mkfifo(&ws.join(".bashrc"), mode).unwrap();
    nix::unistd::mkfifo(&ws.join("dir"), mode).unwrap();
    // A device node named like a seed file (the workload cannot make one, but a volume
    // prepared elsewhere can hold one): it must not be opened either.
    nix::sys::stat::mknod(
        &ws.join(".openshell-seeded-not"),
        nix::sys::stat::SFlag::S_IFCHR,
        mode,
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    // Opening a FIFO for writing blocks until a reader comes: a run that opened one would
    // hang here, and `run` fails after SHORT.
    let (st, events) = t.run(Duration::from_secs(10));
    assert!(st.success(), "{events:?}");
    let ft = fs::symlink_metadata(ws.join(".bashrc"))
        .unwrap()
        .file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&ft));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::symlink_metadata(ws.join("dir")).unwrap().file_type()
    ));
    assert_eq!(named(&events, "seed.done")[0]["kept"], 3);

    // A FIFO in the seed tree itself is not copied (and not opened): logged and skipped.
    let t = Seeding::new("seed-fifo-src");
    nix::unistd::mkfifo(&t.seed().join("pipe"), mode).unwrap();
    let (st, events) = t.run(Duration::from_secs(10));
    assert!(st.success(), "{events:?}");
    assert_eq!(named(&events, "seed.unsupported").len(), 1, "{events:?}");
    assert!(!t.ws().join("pipe").exists());
}

#[test]
fn seed_hardlinks_to_outside_files_are_not_written() {
    let t = Seeding::new("seed-hardlink");
    let secret = t.secret();
    t.seed_file("notes.txt", "seeded\n", 0o644);
    t.seed_file("sub/notes.txt", "seeded\n", 0o644);
    // Same filesystem: the workspace entry *is* the outside file.
    fs::hard_link(&secret, t.ws().join("notes.txt")).unwrap();
    fs::create_dir(t.ws().join("sub")).unwrap();
    fs::hard_link(&secret, t.ws().join("sub/notes.txt")).unwrap();
    let before = fs::metadata(&secret).unwrap();

    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root only\n");
    let after = fs::metadata(&secret).unwrap();
    assert_eq!(
        (after.uid(), after.mode(), after.nlink()),
        (before.uid(), before.mode(), 3),
        "owner and mode of the linked file unchanged"
    );
}

#[test]
fn seed_mount_points_in_the_workspace_are_not_crossed() {
    let t = Seeding::new("seed-mount");
    t.seed_file("mnt/file", "seeded\n", 0o644);
    t.seed_file("other", "seeded\n", 0o644);
    let mnt = t.ws().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _m = Mount::tmpfs(&mnt, "size=1m");
    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert!(
        !mnt.join("file").exists(),
        "the seed crossed into a mount planted in the workspace"
    );
    assert!(t.ws().join("other").exists());
    assert_eq!(named(&events, "seed.conflict").len(), 1, "{events:?}");
}

#[test]
fn seed_directory_swapped_for_a_symlink_during_the_copy() {
    let t = Seeding::new("seed-race");
    // Many directories with files, so the copy takes long enough to be raced.
    for i in 0..60 {
        for j in 0..8 {
            t.seed_file(&format!("d{i:02}/f{j}"), "seeded\n", 0o644);
        }
    }
    let ws = t.ws();
    let outside = t.outside();
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (ws, outside, stop) = (ws.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..60 {
                    let d = ws.join(format!("d{i:02}"));
                    // Move whatever directory is there aside and put a symlink in its
                    // place: the next open by name would go outside.
                    if fs::rename(&d, ws.join(format!("moved{i:02}-{swaps}"))).is_ok() {
                        let _ = symlink(&outside, &d);
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let _ = fs::remove_file(ws.join(".openshell-seeded"));
        let (st, events) = t.run(LONG);
        outcomes.push((st.code(), named(&events, "seed.conflict").len()));
        assert!(
            st.code() == Some(0) || st.code() == Some(85),
            "unexpected exit {st:?}: {events:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("racer swaps {swaps}, outcomes (exit, conflicts) {outcomes:?}");
    assert!(swaps > 0, "the racer never swapped a directory");
    let leaked: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        leaked.is_empty(),
        "seeding wrote outside the workspace: {leaked:?} (outcomes {outcomes:?})"
    );
}

#[test]
fn seed_full_workspace_fails_clearly_and_resumes_later() {
    let t = Seeding::new("seed-full");
    t.seed_file("small", "seeded\n", 0o644);
    t.seed_file("zbig", &"x".repeat(2 << 20), 0o644);
    let m = Mount::tmpfs(&t.ws(), "size=512k");
    let (st, events) = t.run(LONG);
    assert_eq!(st.code(), Some(85), "{events:?}");
    let failed = &named(&events, "seed.failed")[0];
    let err = failed["error"].as_str().unwrap();
    assert!(err.contains("zbig") && err.contains("full"), "{err}");
    let status = t.s.status();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "seed_failed");
    assert!(
        status["message"].as_str().unwrap().contains("full"),
        "{status}"
    );
    assert!(
        named(&events, "child.spawn").is_empty(),
        "the child must not start"
    );
    assert!(
        !t.ws().join(".openshell-seeded").exists(),
        "no marker after a failed copy"
    );
    no_temp_files(&t.ws());

    // More space: the next start completes the copy.
    m.remount("size=8m");
    let (st, events) = t.run(LONG);
    assert!(st.success(), "{events:?}");
    assert_eq!(fs::metadata(t.ws().join("zbig")).unwrap().len(), 2 << 20);
    assert!(t.ws().join(".openshell-seeded").exists());
}

#[test]
fn seed_tree_that_others_can_modify_is_refused() {
    let t = Seeding::new("seed-untrusted");
    // The seed tree under a directory nobody owns: nobody could swap in a setuid root file.
    let open = t.s.join("open");
    fs::create_dir(&open).unwrap();
    chown(&open, 65534);
    fs::create_dir(open.join("seed")).unwrap();
    fs::write(open.join("seed/f"), "x").unwrap();
    let sup = spawn(
        &t.s,
        &[
            "--no-hook",
            "--seed",
            open.join("seed").to_str().unwrap(),
            "--workspace",
            t.ws().to_str().unwrap(),
            "--",
            "/bin/true",
        ],
    );
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(85), "{events:?}");
    let err = named(&events, "seed.failed")[0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("65534") && err.contains("root-owned"), "{err}");
    assert!(!t.ws().join("f").exists());

    // A missing workspace is an error that names the flag, not a silent skip.
    let t = Seeding::new("seed-nows");
    t.seed_file("f", "x", 0o644);
    fs::remove_dir(t.ws()).unwrap();
    let (st, events) = t.run(LONG);
    assert_eq!(st.code(), Some(85), "{events:?}");
    let err = named(&events, "seed.failed")[0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("--workspace"), "{err}");
}

/// A tmpfs mounted for one test, unmounted on drop (even when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, opts: &str) -> Mount {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Mount(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
