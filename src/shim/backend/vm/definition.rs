//! The VM image as built by `images/build.sh vm` (image.json) and the VM definition a
//! sandbox records at create time (vm.json), from which every start builds the same QEMU
//! command line.

use crate::contract::vm as guest;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const IMAGE_FILE: &str = "image.json";
pub const IMAGE_VERSION: u32 = 1;
pub const DEFINITION_VERSION: u32 = 1;

/// Files of a sandbox's VM, all in `<state-dir>/vm/`: fixed names, so every sandbox's
/// layout is the same and nothing outside its directory is used.
pub mod files {
    pub const DIR: &str = "vm";
    pub const DEFINITION: &str = "vm.json";
    pub const KERNEL: &str = "vmlinux";
    pub const INITRD: &str = "initramfs.cpio";
    pub const DISK: &str = "workspace.raw";
    /// The per-VM settings handed to the guest as fw_cfg (`contract::vm::VmConfig`).
    pub const CONFIG: &str = "config.json";
    /// The serial console: the supervisor's log lines and the agent's output.
    pub const CONSOLE: &str = "console.log";
    pub const CONSOLE_PREVIOUS: &str = "console.log.1";
    pub const QMP: &str = "qmp.sock";
    /// QEMU's own stdout and stderr.
    pub const QEMU_LOG: &str = "qemu.log";
    /// The keeper's log and lock, and what it records about each run.
    pub const KEEPER_LOG: &str = "keeper.log";
    pub const KEEPER_LOCK: &str = "keeper.lock";
    pub const RUN: &str = "run.json";
    pub const EXIT: &str = "exit.json";
}

/// `image.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageManifest {
    pub schema_version: u32,
    pub kernel: String,
    pub initrd: String,
    pub kernel_release: String,
    pub kernel_package: String,
    pub kernel_sha256: String,
    pub initrd_sha256: String,
    /// The kernel command line, before `--`.
    pub cmdline: String,
    /// The supervisor's flags, passed to it after `--` (the image's ENTRYPOINT).
    pub init_args: Vec<String>,
    /// The default agent command (the image's CMD).
    pub command: Vec<String>,
}

impl ImageManifest {
    /// Reads `dir/image.json` and checks that it names files in `dir`.
    pub fn read(dir: &Path) -> Result<ImageManifest, String> {
        let body = crate::safe_fs::read_regular_at(dir, IMAGE_FILE, 1 << 20).map_err(|e| {
            format!(
                "{} {e}: not a VM image directory (build one with `images/build.sh vm`)",
                dir.join(IMAGE_FILE).display()
            )
        })?;
        let m: ImageManifest = serde_json::from_slice(&body)
            .map_err(|e| format!("{}: {e}", dir.join(IMAGE_FILE).display()))?;
        if m.schema_version != IMAGE_VERSION {
            return Err(format!(
                "{}: schema_version {} (this sandboxctl reads {IMAGE_VERSION})",
                dir.join(IMAGE_FILE).display(),
                m.schema_version
            ));
        }
        for f in [&m.kernel, &m.initrd] {
            if f.is_empty() || f.contains('/') || f == "." || f == ".." {
                return Err(format!(
                    "{}: {f:?} is not a file name",
                    dir.join(IMAGE_FILE).display()
                ));
            }
            if !dir.join(f).is_file() {
                return Err(format!("{} is missing", dir.join(f).display()));
            }
        }
        // The kernel hands at most 32 arguments to init, splits them at spaces and stops at a
        // second `--`: refuse what it would mangle.
        if m.init_args.len() > 30
            || m.init_args.iter().any(|a| {
                a.is_empty() || a == "--" || a.contains(char::is_whitespace) || a.contains('"')
            })
        {
            return Err(format!(
                "{}: init_args must be at most 30 words without spaces, quotes or `--`",
                dir.join(IMAGE_FILE).display()
            ));
        }
        Ok(m)
    }

    /// The supervisor's command line as the kernel will start it (argv[0] and flags, then
    /// `--`), for the shared reader of --grace and --status-dir.
    pub fn entrypoint(&self) -> Vec<String> {
        let mut ep = vec!["/usr/bin/supervisor".to_owned()];
        ep.extend(self.init_args.iter().cloned());
        ep.push("--".to_owned());
        ep
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network device at all.
    None,
    /// QEMU's user-mode network (NAT through the host, no privileges); the image must bring
    /// the interface up.
    User,
}

/// `vm.json`: everything a start needs, recorded once at create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmDefinition {
    pub schema_version: u32,
    /// The image directory it was created from, and what it held then (the kernel and
    /// initramfs themselves were copied into the sandbox's directory).
    pub image: String,
    pub kernel_release: String,
    pub kernel_package: String,
    pub kernel_sha256: String,
    pub initrd_sha256: String,
    /// The whole kernel command line, the supervisor's flags after `--`.
    pub cmdline: String,
    pub memory_mib: u64,
    pub cpus: u32,
    pub disk_bytes: u64,
    pub accel: Accel,
    /// Why this accelerator (the KVM probe's verdict, or the operator's choice).
    pub accel_reason: String,
    pub network: Network,
    /// The QEMU binary (found on PATH).
    pub qemu: String,
    /// The process name QEMU runs as (`ps` shows it), from the sandbox name.
    pub process_name: String,
}

/// QEMU's program name.
pub const QEMU: &str = "qemu-system-x86_64";

impl VmDefinition {
    /// The QEMU command line: `vm` is the sandbox's `vm/` directory, `status` its status/.
    pub fn argv(&self, vm: &Path, status: &Path) -> Vec<OsString> {
        let f = |name: &str| vm.join(name);
        let os = |s: &str| OsString::from(s);
        let joined = |pre: &str, p: &Path, post: &str| {
            let mut s = OsString::from(pre);
            s.push(p.as_os_str());
            s.push(post);
            s
        };
        let mut a: Vec<OsString> = vec![
            os("-name"),
            os(&format!(
                "{},process={}",
                self.process_name, self.process_name
            )),
            // Nothing QEMU would add by itself: no default NIC, VGA, floppy, CD, monitor.
            os("-nodefaults"),
            os("-no-user-config"),
            os("-display"),
            os("none"),
            os("-machine"),
            os(&format!("pc,accel={}", self.accel.as_str())),
            os("-cpu"),
            os(match self.accel {
                Accel::Kvm => "host",
                Accel::Tcg => "max",
            }),
            os("-m"),
            os(&format!("{}M", self.memory_mib)),
            os("-smp"),
            os(&self.cpus.to_string()),
            os("-kernel"),
            f(files::KERNEL).into(),
            os("-initrd"),
            f(files::INITRD).into(),
            os("-append"),
            os(&self.cmdline),
            // The serial console, appended to across the run.
            os("-chardev"),
            joined("file,id=console,append=on,path=", &f(files::CONSOLE), ""),
            os("-serial"),
            os("chardev:console"),
            os("-qmp"),
            joined("unix:", &f(files::QMP), ",server=on,wait=off"),
            os("-drive"),
            joined(
                "if=none,id=workspace,format=raw,cache=writeback,discard=unmap,file=",
                &f(files::DISK),
                "",
            ),
            os("-device"),
            os(&format!(
                "virtio-blk-pci,drive=workspace,serial={}",
                guest::WORKSPACE_SERIAL
            )),
            os("-fsdev"),
            joined("local,id=status,security_model=none,path=", status, ""),
            os("-device"),
            os(&format!(
                "virtio-9p-pci,fsdev=status,mount_tag={}",
                guest::STATUS_TAG
            )),
            os("-fw_cfg"),
            joined(
                &format!("name={},file=", guest::FW_CFG_NAME),
                &f(files::CONFIG),
                "",
            ),
            // A guest kernel panic ends QEMU with status 1 instead of a silent reset; a
            // reboot request ends it too (exit 0): the guest never restarts by itself.
            os("-device"),
            os("pvpanic-pci"),
            os("-action"),
            os("panic=exit-failure"),
            os("-no-reboot"),
            // QEMU's own seccomp filter: no spawning, no privilege changes, no obsolete calls.
            os("-sandbox"),
            os("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
        ];
        match self.network {
            Network::None => a.extend([os("-nic"), os("none")]),
            Network::User => a.extend([os("-nic"), os("user,model=virtio-net-pci")]),
        }
        a
    }
}

/// The kernel command line: the image's, then the supervisor's flags after `--`.
pub fn cmdline(m: &ImageManifest) -> String {
    format!("{} -- {}", m.cmdline, m.init_args.join(" "))
}

/// `512M`, `2G`, `1.5G`, `1024K`, or a number of bytes; binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 512M, 2G"))?;
    let scale: f64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("invalid size unit in {s:?}: use K, M, G or T")),
    };
    let v = n * scale;
    if !v.is_finite() || v < 1.0 || v > (1u64 << 50) as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as u64)
}

/// The sandbox's `vm/` directory.
pub fn vm_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(files::DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn image_manifests_are_checked() {
        let dir = std::env::temp_dir().join(format!("vm-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let e = ImageManifest::read(&dir).unwrap_err();
        assert!(e.contains("not a VM image directory"), "{e}");
        let good = serde_json::json!({
            "schema_version": 1, "kernel": "vmlinux", "initrd": "initramfs.cpio",
            "kernel_release": "6.1", "kernel_package": "k.deb", "kernel_sha256": "",
            "initrd_sha256": "", "cmdline": "console=ttyS0",
            "init_args": ["--init", "--grace=3s"], "command": ["/bin/true"]
        });
        let write =
            |v: &serde_json::Value| std::fs::write(dir.join(IMAGE_FILE), v.to_string()).unwrap();
        write(&good);
        assert!(ImageManifest::read(&dir)
            .unwrap_err()
            .contains("vmlinux is missing"));
        std::fs::write(dir.join("vmlinux"), "").unwrap();
        std::fs::write(dir.join("initramfs.cpio"), "").unwrap();
        let m = ImageManifest::read(&dir).unwrap();
        assert_eq!(cmdline(&m), "console=ttyS0 -- --init --grace=3s");
        assert_eq!(
            m.entrypoint(),
            ["/usr/bin/supervisor", "--init", "--grace=3s", "--"]
        );
        for (field, bad) in [
            ("kernel", serde_json::json!("../../etc/passwd")),
            ("init_args", serde_json::json!(["--hook", "/a b"])),
            ("init_args", serde_json::json!(["--", "x"])),
            ("schema_version", serde_json::json!(2)),
        ] {
            let mut v = good.clone();
            v[field] = bad;
            write(&v);
            assert!(ImageManifest::read(&dir).is_err(), "{field}: {v}");
        }
        let mut v = good.clone();
        v["extra"] = serde_json::json!(1);
        write(&v);
        assert!(
            ImageManifest::read(&dir).is_err(),
            "unknown fields are refused"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn argv_has_the_devices_the_guest_expects() {
        let d = VmDefinition {
            schema_version: DEFINITION_VERSION,
            image: "/img".into(),
            kernel_release: "6.1".into(),
            kernel_package: "k.deb".into(),
            kernel_sha256: String::new(),
            initrd_sha256: String::new(),
            cmdline: "console=ttyS0 -- --init".into(),
            memory_mib: 512,
            cpus: 1,
            disk_bytes: 2 << 30,
            accel: Accel::Tcg,
            accel_reason: "test".into(),
            network: Network::None,
            qemu: QEMU.into(),
            process_name: "openshell-a".into(),
        };
        let a: Vec<String> = d
            .argv(Path::new("/s/a/vm"), Path::new("/s/a/status"))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let has = |w: &str| a.iter().any(|x| x == w);
        assert!(has("pc,accel=tcg") && has("512M") && has("/s/a/vm/vmlinux"));
        assert!(has(
            "virtio-blk-pci,drive=workspace,serial=openshell-workspace"
        ));
        assert!(has("local,id=status,security_model=none,path=/s/a/status"));
        assert!(has("virtio-9p-pci,fsdev=status,mount_tag=status"));
        assert!(has("name=opt/io.openshell/config,file=/s/a/vm/config.json"));
        assert!(has("panic=exit-failure") && has("-no-reboot"));
        let nic = a.iter().position(|x| x == "-nic").unwrap();
        assert_eq!(a[nic + 1], "none", "no network unless asked");
    }
}
