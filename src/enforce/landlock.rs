//! The child's Landlock domain, built in the supervisor before fork.
//!
//! We ask for every right this build knows (the `landlock` crate's newest ABI) and let
//! the kernel's own ABI decide what is handled: on a newer kernel nothing is lost, on an
//! older one the gap is computed right-by-right so `best_effort` can log it and
//! `hard_requirement` can refuse to start. Path fds are opened here, as the supervisor
//! (root), by the trusted walk and judged by what they are (`paths`), and closed once their
//! rule is added; the child only calls `landlock_restrict_self` on the finished ruleset fd.

use super::error::PolicyError;
use super::paths::{self, Opened};
use super::policy::{Compatibility, Policy};
use super::stage::{Failure, Stage};
use crate::safe_fs::Trust;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The newest ABI whose rights this build can name. Pinned, not "whatever the crate
/// knows": a crate update must not silently change what `hard_requirement` demands.
pub const KNOWN_ABI: ABI = ABI::V10;
const KNOWN_ABI_NUM: i32 = 10;

/// The kernel's Landlock ABI: >0 the version, 0 not built in / not enabled.
pub fn kernel_abi() -> i32 {
    // SAFETY: the version query takes no pointer and returns an int.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    v.max(0) as i32
}

fn abi_of(v: i32) -> ABI {
    ABI::from(v.min(KNOWN_ABI_NUM))
}

/// What the ruleset will and will not enforce on this kernel.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub kernel_abi: i32,
    pub compatibility: Compatibility,
    pub fs_handled: BitFlags<AccessFs>,
    pub net_handled: BitFlags<AccessNet>,
    pub scope_handled: BitFlags<Scope>,
    /// Rights we asked for that this kernel cannot enforce, by kernel name.
    pub unenforced: Vec<String>,
    /// Paths from the policy that do not exist (and so grant nothing), with their field.
    pub missing_paths: Vec<(String, PathBuf)>,
    /// Paths that cannot mean for the child what they say (`/proc/self`): field, path, why.
    pub skipped_paths: Vec<(String, PathBuf, String)>,
    pub rules: usize,
}

impl Coverage {
    pub fn fully_enforced(&self) -> bool {
        self.unenforced.is_empty()
    }
}

/// The prepared domain: the ruleset fd (None when the kernel has no Landlock and the
/// policy allows that) and what it covers.
#[derive(Debug)]
pub struct Domain {
    pub fd: Option<OwnedFd>,
    pub coverage: Coverage,
}

impl Domain {
    /// Child side: enters the domain. Requires no_new_privs (we hold no CAP_SYS_ADMIN).
    pub fn restrict_self(&self) -> Result<(), Failure> {
        let Some(fd) = &self.fd else { return Ok(()) };
        // SAFETY: plain syscall on an fd we own; flags 0 keeps the kernel's default audit
        // logging of denials.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) };
        if r != 0 {
            return Err(Failure::last(Stage::Landlock));
        }
        Ok(())
    }
}

/// Kernel names of rights, e.g. `write_file`, `bind_tcp`, `signal`.
pub fn names<R: std::fmt::Debug>(rights: impl IntoIterator<Item = R>) -> Vec<String> {
    rights
        .into_iter()
        .map(|r| snake(&format!("{r:?}")))
        .collect()
}

/// `WriteFile` → `write_file`.
fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// What we ask for, independent of the kernel. TCP connect is always handled: egress is
/// closed unless the policy lists it, and then it goes through the egress proxy's port.
fn wanted(policy: &Policy) -> (BitFlags<AccessFs>, BitFlags<AccessNet>, BitFlags<Scope>) {
    let mut net: BitFlags<AccessNet> = AccessNet::ConnectTcp.into();
    if policy.tcp_bind.is_some() {
        net |= AccessNet::BindTcp;
    }
    (
        AccessFs::from_all(KNOWN_ABI),
        net,
        Scope::from_all(KNOWN_ABI),
    )
}

/// Computes the coverage of `policy` on a kernel with Landlock ABI `kernel`.
pub fn coverage(policy: &Policy, kernel: i32) -> Coverage {
    let (fs, net, scope) = wanted(policy);
    let abi = abi_of(kernel);
    let fs_handled = fs & AccessFs::from_all(abi);
    let net_handled = net & AccessNet::from_all(abi);
    let scope_handled = scope & Scope::from_all(abi);
    let mut unenforced = names((fs & !fs_handled).iter());
    unenforced.extend(names((net & !net_handled).iter()));
    unenforced.extend(names((scope & !scope_handled).iter()));
    Coverage {
        kernel_abi: kernel,
        compatibility: policy.compatibility,
        fs_handled,
        net_handled,
        scope_handled,
        unenforced,
        missing_paths: Vec::new(),
        skipped_paths: Vec::new(),
        rules: 0,
    }
}

/// The TCP ports the child may connect to: the egress proxy's (when the policy allows any
/// egress and the proxy has a port) and our `tcp_connect` extension's.
pub fn connect_ports(policy: &Policy, proxy_port: u16) -> Vec<u16> {
    let mut ports: Vec<u16> = policy.tcp_connect.iter().flatten().copied().collect();
    if proxy_port != 0 && !policy.network_policies.is_empty() {
        ports.push(proxy_port);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Builds the ruleset for `policy`. Fails (Unenforceable) under `hard_requirement` when the
/// kernel cannot enforce every right we ask for.
pub fn prepare(policy: &Policy, file: &Path, proxy_port: u16) -> Result<Domain, PolicyError> {
    let mut cov = coverage(policy, kernel_abi());
    if policy.compatibility == Compatibility::HardRequirement && !cov.fully_enforced() {
        return Err(PolicyError::unenforceable(
            file,
            Some("landlock.compatibility"),
            format!(
                "hard_requirement, but this kernel (Landlock ABI {}) cannot enforce: {}; \
                 use a newer kernel or set compatibility: best_effort",
                cov.kernel_abi,
                cov.unenforced.join(", ")
            ),
        ));
    }
    if cov.kernel_abi == 0 {
        return Ok(Domain {
            fd: None,
            coverage: cov,
        });
    }
    let err = |what: &str, e: &dyn std::fmt::Display| {
        PolicyError::unenforceable(file, None, format!("landlock: {what}: {e}"))
    };
    // We already narrowed every set to what the kernel supports, so the crate must not
    // degrade anything further: HardRequirement turns any disagreement into an error
    // instead of a silent gap.
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    ruleset = ruleset
        .handle_access(cov.fs_handled)
        .map_err(|e| err("handling filesystem rights", &e))?;
    if !cov.net_handled.is_empty() {
        ruleset = ruleset
            .handle_access(cov.net_handled)
            .map_err(|e| err("handling network rights", &e))?;
    }
    if !cov.scope_handled.is_empty() {
        ruleset = ruleset
            .scope(cov.scope_handled)
            .map_err(|e| err("scoping", &e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| err("creating the ruleset", &e))?;

    let read = AccessFs::from_read(KNOWN_ABI) & cov.fs_handled;
    let all = cov.fs_handled;
    let file_rights = AccessFs::from_file(KNOWN_ABI);
    let trust = Trust::root_and_self();
    for pp in policy.paths() {
        let rights = if pp.writable { all } else { read };
        let (fd, dir) = match paths::open(pp.path, pp.writable, &trust) {
            Ok(Opened::Rule { fd, dir }) => (fd, dir),
            // A path that does not exist grants nothing; that is never less safe, and
            // images differ (/lib64, /dev/nvidia0). Reported, not fatal (but see
            // `Sandbox::check_missing_paths` for hard_requirement).
            Ok(Opened::Missing) => {
                cov.missing_paths.push((pp.field, pp.path.to_path_buf()));
                continue;
            }
            Ok(Opened::Skipped(why)) => {
                if policy.compatibility == Compatibility::HardRequirement {
                    return Err(PolicyError::unenforceable(file, Some(&pp.field), why));
                }
                cov.skipped_paths
                    .push((pp.field, pp.path.to_path_buf(), why));
                continue;
            }
            Err(why) => return Err(PolicyError::invalid(file, pp.field, why)),
        };
        // Directory-only rights on a file are an error to the kernel. Asked of the fd we
        // hold, not the path, so a rename in between cannot make them disagree.
        let rights = if dir { rights } else { rights & file_rights };
        created = created
            .add_rule(PathBeneath::new(fd, rights))
            .map_err(|e| err(&format!("adding a rule for {}", pp.path.display()), &e))?;
        cov.rules += 1;
    }
    let connect = connect_ports(policy, proxy_port);
    let bind: Vec<u16> = policy.tcp_bind.iter().flatten().copied().collect();
    for (ports, right) in [
        (&bind, AccessNet::BindTcp),
        (&connect, AccessNet::ConnectTcp),
    ] {
        if !cov.net_handled.contains(right) {
            continue;
        }
        for port in ports {
            created = created
                .add_rule(NetPort::new(*port, right))
                .map_err(|e| err(&format!("adding a rule for TCP port {port}"), &e))?;
            cov.rules += 1;
        }
    }
    let fd: Option<OwnedFd> = created.into();
    Ok(Domain { fd, coverage: cov })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::policy::IdSpec;

    fn policy(tcp: bool) -> Policy {
        Policy {
            read_only: vec![PathBuf::from("/usr")],
            read_write: vec![PathBuf::from("/tmp")],
            include_workdir: false,
            workdir: None,
            compatibility: Compatibility::BestEffort,
            tcp_bind: tcp.then(Vec::new),
            tcp_connect: None,
            user: Some(IdSpec::Id(1)),
            group: None,
            seccomp_allow: vec![],
            seccomp_deny: vec![],
            network_policies: Default::default(),
            network_middlewares: Default::default(),
            notes: vec![],
        }
    }

    #[test]
    fn coverage_by_abi() {
        let c = coverage(&policy(false), 7);
        // ABI 7 lacks resolve_unix (ABI 9); nothing else we ask for is missing.
        assert_eq!(c.unenforced, ["resolve_unix"]);
        assert!(c.fs_handled.contains(AccessFs::IoctlDev));
        assert_eq!(
            names(c.scope_handled.iter()),
            ["abstract_unix_socket", "signal"]
        );
        let c = coverage(&policy(true), 3);
        assert!(c.unenforced.iter().any(|n| n == "bind_tcp"));
        assert!(c.unenforced.iter().any(|n| n == "signal"));
        assert!(c.unenforced.iter().any(|n| n == "ioctl_dev"));
        assert!(
            c.unenforced.iter().any(|n| n == "connect_tcp"),
            "always asked for: egress is closed by default"
        );
        let c = coverage(&policy(true), 12);
        assert!(c.fully_enforced(), "{:?}", c.unenforced);
        let c = coverage(&policy(false), 0);
        assert!(c.fs_handled.is_empty());
        assert!(c.unenforced.iter().any(|n| n == "read_file"));
    }
}
