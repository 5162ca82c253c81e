//! `supervisor check`: what this kernel will actually enforce with a policy. The operator's
//! first stop when something is denied, or when startup refused a policy.
//!
//! Exit codes (the supervisor's own table): 0 the child would start (with `best_effort`
//! gaps listed), 78 the policy is invalid, 83 it is valid but this kernel cannot enforce
//! it as required.

use super::error::{ErrorKind, PolicyError};
use super::landlock::{self, names};
use super::policy::{self, Compatibility};
use super::{seccomp, Sandbox};
use crate::contract::ExitCode;
use std::fmt::Write as _;
use std::path::Path;

/// Runs the check and prints the report on stdout; returns the exit code.
pub fn check_command(path: &Path) -> i32 {
    let workdir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    match report(path, &workdir) {
        Ok((text, code)) => {
            print!("{text}");
            code.code()
        }
        Err(e) => {
            println!("policy       {e}");
            let code = match e.kind {
                ErrorKind::Invalid | ErrorKind::Untrusted => ExitCode::Config,
                ErrorKind::Unenforceable => ExitCode::Enforcement,
            };
            println!("result       FAIL ({})", code.name());
            code.code()
        }
    }
}

/// The report text and the exit code. An invalid policy is an Err.
fn report(path: &Path, workdir: &Path) -> Result<(String, ExitCode), PolicyError> {
    // SAFETY: geteuid has no failure mode.
    let text = super::policy_file::read(path, unsafe { libc::geteuid() } == 0)?;
    let pol = policy::parse(&text, path, workdir)?;
    // L7 rules under hard_requirement are refused here as at start-up (exit 83).
    let rules = crate::egress::schema::compile(&pol.network_policies, pol.compatibility, path)?;
    // Build everything the supervisor would, but without failing on hard_requirement, so
    // the report can show what is missing.
    let mut lenient = pol.clone();
    lenient.compatibility = Compatibility::BestEffort;
    let sandbox = Sandbox::prepare_policy(path, lenient, 0)?;
    let cov = &sandbox.landlock.coverage;
    let id = &sandbox.identity;
    let mut out = String::new();
    let w = &mut out;

    let _ = writeln!(
        w,
        "policy       {}: valid (version {})",
        path.display(),
        policy::VERSION
    );
    let _ = writeln!(
        w,
        "identity     uid {}{}, gid {}{}, groups {}",
        id.uid,
        named(&id.user_name),
        id.gid,
        named(&id.group_name),
        list(id.groups.iter().map(|g| g.to_string()))
    );
    let _ = writeln!(
        w,
        "             {} ({})",
        sandbox.id_source.why(),
        sandbox.id_source.as_str()
    );
    let p = &sandbox.privs;
    let _ = writeln!(
        w,
        "             {}",
        if p.change_ids {
            "set with setgroups, setresgid, setresuid (needs CAP_SETUID and CAP_SETGID)"
        } else {
            "already the supervisor's own uid and gid: kept as is"
        }
    );
    let _ = writeln!(
        w,
        "capabilities effective, permitted, inheritable, ambient emptied; {}; no_new_privs set",
        if p.drop_bounding {
            "bounding set emptied"
        } else {
            "bounding set KEPT (the supervisor lacks CAP_SETPCAP)"
        }
    );
    let _ = writeln!(w, "core dumps   off (RLIMIT_CORE 0)");
    let _ = writeln!(
        w,
        "parent death SIGKILL to the child when the supervisor dies"
    );

    if cov.kernel_abi == 0 {
        let _ = writeln!(
            w,
            "landlock     NOT AVAILABLE in this kernel, compatibility {}",
            pol.compatibility.as_str()
        );
    } else {
        let _ = writeln!(
            w,
            "landlock     kernel ABI {} (this build knows up to {}), compatibility {}",
            cov.kernel_abi,
            landlock::KNOWN_ABI as i32,
            pol.compatibility.as_str()
        );
    }
    let _ = writeln!(
        w,
        "  filesystem handled: {}",
        list(names(cov.fs_handled.iter()))
    );
    let ports = |p: &Option<Vec<u16>>| match p {
        None => "not restricted".to_string(),
        Some(v) if v.is_empty() => "none allowed".to_string(),
        Some(v) => list(v.iter().map(|p| p.to_string())),
    };
    let _ = writeln!(
        w,
        "  network    tcp bind: {}; tcp connect: {}",
        ports(&pol.tcp_bind),
        ports(&pol.tcp_connect)
    );
    let _ = writeln!(w, "  scoping    {}", list(names(cov.scope_handled.iter())));
    let _ = writeln!(
        w,
        "  read_only  {}",
        list(pol.read_only.iter().map(|p| p.display().to_string()))
    );
    let _ = writeln!(
        w,
        "  read_write {}",
        list(pol.read_write.iter().map(|p| p.display().to_string()))
    );
    if !cov.missing_paths.is_empty() {
        let _ = writeln!(
            w,
            "  missing    {} (grant nothing{})",
            list(
                cov.missing_paths
                    .iter()
                    .map(|(_, p)| p.display().to_string())
            ),
            if pol.compatibility == Compatibility::HardRequirement {
                "; hard_requirement refuses to start unless they exist after the hook"
            } else {
                ""
            }
        );
    }
    for (field, p, why) in &cov.skipped_paths {
        let _ = writeln!(w, "  skipped    {} ({field}): {why}", p.display());
    }
    let _ = writeln!(w, "  rules      {}", cov.rules);
    if !cov.unenforced.is_empty() {
        let _ = writeln!(
            w,
            "  NOT ENFORCED on this kernel: {}",
            cov.unenforced.join(", ")
        );
    }

    egress_section(w, &pol, &rules, cov);

    let sc = &sandbox.seccomp;
    let _ = writeln!(
        w,
        "seccomp      available; filter of {} BPF instructions, default allow",
        sc.len()
    );
    let denied: Vec<&str> = seccomp::ALWAYS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !pol.seccomp_allow.iter().any(|a| a == n))
        .collect();
    let _ = writeln!(w, "  EPERM      {}", denied.join(", "));
    for (name, what) in seccomp::CONDITIONAL {
        if !pol.seccomp_allow.iter().any(|a| a == name) {
            let _ = writeln!(w, "  EPERM      {name}: {what}");
        }
    }
    if !pol.seccomp_allow.iter().any(|a| a == seccomp::CLONE3) {
        let _ = writeln!(
            w,
            "  ENOSYS     {} (libc falls back to clone)",
            seccomp::CLONE3
        );
    }
    let _ = writeln!(
        w,
        "  EPERM      every x32 syscall (nr >= 0x40000000); other architectures: killed"
    );
    if !sc.allowed.is_empty() {
        let _ = writeln!(w, "  policy allows {}", sc.allowed.join(", "));
    }
    if !sc.denied.is_empty() {
        let _ = writeln!(w, "  policy denies {}", sc.denied.join(", "));
    }

    // What keeps the policy from being enforced exactly as written.
    let mut gaps: Vec<String> = cov.unenforced.clone();
    gaps.extend(
        cov.skipped_paths
            .iter()
            .map(|(_, p, _)| p.display().to_string()),
    );
    if pol.compatibility == Compatibility::HardRequirement {
        gaps.extend(
            cov.missing_paths
                .iter()
                .map(|(_, p)| p.display().to_string()),
        );
    }
    let code = if gaps.is_empty() {
        let _ = writeln!(w, "result       OK: everything in the policy is enforced");
        ExitCode::Ok
    } else if pol.compatibility == Compatibility::BestEffort {
        let _ = writeln!(
            w,
            "result       OK (best_effort): not enforced as written on this host: {}",
            gaps.join(", ")
        );
        ExitCode::Ok
    } else {
        let _ = writeln!(
            w,
            "result       FAIL: hard_requirement cannot be met on this host (missing: {}); the supervisor would refuse to start",
            gaps.join(", ")
        );
        ExitCode::Enforcement
    };
    Ok((out, code))
}

/// The network section: per endpoint, what the egress proxy enforces and what it does not.
fn egress_section(
    w: &mut String,
    pol: &policy::Policy,
    rules: &crate::egress::rules::Rules,
    cov: &landlock::Coverage,
) {
    let connect_enforced = cov.net_handled.contains(::landlock::AccessNet::ConnectTcp);
    let direct = pol.tcp_connect.as_deref().unwrap_or(&[]);
    if !connect_enforced {
        let _ = writeln!(
            w,
            "egress       NOT ENFORCED on this kernel (Landlock ABI {} < 4 cannot restrict TCP connect): the child can connect to any host directly",
            cov.kernel_abi
        );
    }
    if rules.is_empty() {
        let _ = writeln!(
            w,
            "egress       none: the policy has no network_policies, so the child gets no proxy and every TCP connect is refused{}",
            if direct.is_empty() { String::new() } else { format!(" (except ports {} of our tcp_connect extension)", list(direct.iter().map(|p| p.to_string()))) }
        );
    } else {
        let _ = writeln!(
            w,
            "egress       through the supervisor's proxy on 127.0.0.1 (the proxy's port, chosen when the supervisor starts; HTTP_PROXY/HTTPS_PROXY/ALL_PROXY point at it); TCP connect to any other port is refused"
        );
        for p in &rules.policies {
            let name = if p.name != p.key {
                format!(" ({})", p.name)
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "  policy {}{name}: binaries {}",
                p.key,
                list(p.binaries.iter().cloned())
            );
            for ep in &p.endpoints {
                let ports = list(ep.ports.iter().map(|p| p.to_string()));
                let (host, addr) = match ep.host.as_deref() {
                    None => (
                        "any host".to_string(),
                        "addresses in allowed_ips only".to_string(),
                    ),
                    Some(h) if h.parse::<std::net::IpAddr>().is_ok() => {
                        (h.to_string(), format!("only {h}"))
                    }
                    Some(h) if h.contains('*') => {
                        (h.to_string(), "public addresses only".to_string())
                    }
                    Some(h) => (h.to_string(), "any but loopback/link-local".to_string()),
                };
                let addr = if ep.allowed_ips.is_empty() || ep.host.is_none() {
                    addr
                } else {
                    "addresses in allowed_ips only".to_string()
                };
                let ips = if ep.allowed_ips.is_empty() {
                    String::new()
                } else {
                    format!(
                        " allowed_ips {}",
                        list(ep.allowed_ips.iter().map(|c| c.to_string()))
                    )
                };
                let _ = writeln!(w, "    {host}:{ports}{ips}");
                let _ = writeln!(
                    w,
                    "      enforced: host, port, calling binary, resolved address ({addr})"
                );
                if !ep.unenforced.is_empty() {
                    let _ = writeln!(w, "      NOT ENFORCED (L7, best_effort): {} -- the whole host:port is allowed", ep.unenforced.join("; "));
                }
                if !ep.audit_only.is_empty() {
                    let _ = writeln!(w, "      audit only (L7): {} -- allowed, as OpenShell would, but requests are not inspected or logged", ep.audit_only.join("; "));
                }
            }
        }
    }
    let _ = writeln!(
        w,
        "  side doors UDP (DNS included), ICMP, raw, SCTP and MPTCP sockets and TCP Fast Open refused (seccomp); names resolve only in the proxy"
    );
    if !direct.is_empty() {
        let _ = writeln!(
            w,
            "  DIRECT     tcp_connect ports {} bypass the proxy: the child may connect to ANY address on them",
            list(direct.iter().map(|p| p.to_string()))
        );
    }
    if !rules.is_empty() {
        let _ = writeln!(
            w,
            "  LIMIT      Landlock restricts TCP connect by port, not by address: a remote host that listens on the proxy's port is reachable directly by IP address (no name: the child has no DNS); see README, Egress"
        );
    }
}

fn named(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
