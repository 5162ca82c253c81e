//! KVM or TCG: probed once per host boot, with the image's own kernel.
//!
//! `/dev/kvm` existing is not enough: on some nested hosts it opens, KVM_RUN works, and a
//! real guest still hangs at boot. So the probe boots the image's kernel under KVM with
//! busybox as init asked to power off at once; a guest that powers off in time means KVM
//! works. The verdict is cached in `/run/sandboxctl/kvm-probe.json` with the host's boot
//! id (so it is probed again after a reboot, and a machine that boots slowly under TCG pays
//! for the probe once, not per sandbox). `OPENSHELL_VM_ACCEL=kvm|tcg` or `create --accel`
//! skips the probe.

use super::definition::{Accel, ImageManifest, QEMU};
use crate::contract::status::write_file_atomic;
use crate::contract::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::info;

pub const ENV: &str = "OPENSHELL_VM_ACCEL";
const CACHE_DIR: &str = "/run/sandboxctl";
const CACHE_FILE: &str = "kvm-probe.json";
/// A working KVM boots the probe and powers off in well under a second.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verdict {
    boot_id: String,
    accel: Accel,
    reason: String,
    probed_at: String,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The accelerator for a new VM and why. `requested` is `--accel` (auto, kvm or tcg).
pub fn choose(
    requested: Option<&str>,
    image: &Path,
    m: &ImageManifest,
) -> Result<(Accel, String), String> {
    let env = std::env::var(ENV).ok().filter(|v| !v.is_empty());
    let (choice, source) = match (requested, env.as_deref()) {
        (Some(r), _) => (r.to_owned(), "--accel"),
        (None, Some(e)) => (e.to_owned(), ENV),
        (None, None) => ("auto".to_owned(), ""),
    };
    match choice.as_str() {
        "kvm" => return Ok((Accel::Kvm, format!("{source} kvm"))),
        "tcg" => return Ok((Accel::Tcg, format!("{source} tcg"))),
        "auto" => {}
        other => {
            return Err(format!(
                "accelerator {other:?} (from {source}): use auto, kvm or tcg"
            ))
        }
    }
    let id = boot_id();
    let cached = crate::safe_fs::read_regular_at(Path::new(CACHE_DIR), CACHE_FILE, 1 << 16)
        .ok()
        .and_then(|b| serde_json::from_slice::<Verdict>(&b).ok())
        .filter(|v| !id.is_empty() && v.boot_id == id);
    if let Some(v) = cached {
        info!(event = "vm.accel", accel = v.accel.as_str(), reason = %v.reason, cached = true,
            "accelerator (probed at {})", v.probed_at);
        return Ok((v.accel, v.reason));
    }
    let (accel, reason) = probe(image, m);
    info!(event = "vm.accel", accel = accel.as_str(), reason = %reason, cached = false, "accelerator probed");
    let v = Verdict {
        boot_id: id,
        accel,
        reason: reason.clone(),
        probed_at: now_rfc3339(),
    };
    if std::fs::create_dir_all(CACHE_DIR).is_ok() {
        let _ = write_file_atomic(
            Path::new(CACHE_DIR),
            CACHE_FILE,
            &serde_json::to_vec(&v).expect("serializes"),
        );
    }
    Ok((accel, reason))
}

/// How long a killed probe guest gets to be reaped before it is left behind.
const REAP_GRACE: Duration = Duration::from_secs(2);

fn probe(image: &Path, m: &ImageManifest) -> (Accel, String) {
    // Only stat and access(2) here, never open(2): on some hosts opening /dev/kvm, or the
    // first KVM ioctl, blocks, and sandboxctl must not block with it. QEMU opens it, in a
    // process of its own that can be abandoned.
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata("/dev/kvm") {
        Ok(md) if md.file_type().is_char_device() => {}
        Ok(_) => return (Accel::Tcg, "/dev/kvm is not a character device: TCG".into()),
        Err(e) => return (Accel::Tcg, format!("/dev/kvm: {e}: TCG")),
    }
    if let Err(e) = nix::unistd::access(
        "/dev/kvm",
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    ) {
        return (Accel::Tcg, format!("/dev/kvm is not usable ({e}): TCG"));
    }
    let mut cmd = Command::new(QEMU);
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-machine", "pc,accel=kvm", "-cpu", "host", "-m", "128M"])
        .arg("-kernel")
        .arg(image.join(&m.kernel))
        .arg("-initrd")
        .arg(image.join(&m.initrd))
        .args([
            "-append",
            "console=ttyS0 quiet panic=-1 rdinit=/bin/busybox -- poweroff -f",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                Accel::Tcg,
                format!("cannot run {QEMU} for the KVM probe ({e}): TCG"),
            )
        }
    };
    match wait_until(&mut child, t0 + PROBE_TIMEOUT) {
        Ok(Some(st)) if st.success() => (
            Accel::Kvm,
            format!(
                "a KVM guest booted and powered off in {} ms",
                t0.elapsed().as_millis()
            ),
        ),
        Ok(Some(st)) => (Accel::Tcg, format!("a KVM guest failed ({st}): TCG")),
        Ok(None) => {
            let _ = child.kill();
            // A process stuck in the kernel's KVM code may not die at once (or at all):
            // give it a moment, then leave it rather than wait on it forever.
            let reaped = matches!(
                wait_until(&mut child, Instant::now() + REAP_GRACE),
                Ok(Some(_))
            );
            (
                Accel::Tcg,
                format!(
                    "a KVM guest did not power off within {}s (nested virtualization?){}: TCG",
                    PROBE_TIMEOUT.as_secs(),
                    if reaped {
                        String::new()
                    } else {
                        format!(
                            "; the probe's QEMU (pid {}) did not die on SIGKILL",
                            child.id()
                        )
                    }
                ),
            )
        }
        Err(e) => (Accel::Tcg, format!("KVM probe: {e}: TCG")),
    }
}

/// `try_wait` until the child exits or `deadline` passes (`Ok(None)`); never blocks.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_on_a_probe_never_outlasts_its_deadline() {
        // A sleeping child stands in for a guest that hangs.
        let mut hung = Command::new("sleep").arg("30").spawn().unwrap();
        let t0 = Instant::now();
        let r = wait_until(&mut hung, t0 + Duration::from_millis(200)).unwrap();
        assert!(r.is_none(), "a running child reads as not exited");
        hung.kill().unwrap();
        let st = wait_until(&mut hung, Instant::now() + REAP_GRACE).unwrap();
        assert!(st.is_some_and(|s| !s.success()), "a killed child is reaped");

        let mut quick = Command::new("true").spawn().unwrap();
        let st = wait_until(&mut quick, Instant::now() + Duration::from_secs(10)).unwrap();
        assert!(st.is_some_and(|s| s.success()));
    }
}
