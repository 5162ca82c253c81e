//! `supervisor egress-proxy`: the proxy process the supervisor starts (hidden mode of the
//! same static binary). It inherits, at fixed numbers, its sealed configuration (fd 3), the
//! listening socket the supervisor bound (fd 4: the port survives proxy restarts, and the
//! agent can never bind it), and a pipe to report readiness on (fd 5).
//!
//! Started as root, it forks the attribution helper (see `ident`), then confines itself:
//! its own uid and gid, no groups, no capabilities, not dumpable, no_new_privs, a Landlock
//! domain with no filesystem access and no TCP bind, and the child's seccomp deny list plus
//! `execve`. Only then does it parse the first byte a client sends.

use super::config::Config;
use super::proxy::{self, State};
use super::resolve::Resolver;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use tracing::{error, info, warn};

pub const CONFIG_FD: i32 = 3;
pub const LISTENER_FD: i32 = 4;
pub const READY_FD: i32 = 5;
/// The argument that selects this mode.
pub const MODE: &str = "egress-proxy";

/// Syscalls the proxy never makes, denied on top of the child's list.
const PROXY_DENY: &[&str] = &["execve", "execveat"];
/// The helper reads /proc and talks over its inherited socket: no new sockets at all.
const HELPER_DENY: &[&str] = &[
    "execve",
    "execveat",
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
];

/// Entry point; returns the exit code.
pub fn main() -> i32 {
    let cfg = match read_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supervisor egress-proxy: cannot read the configuration on fd {CONFIG_FD}: {e} (this mode is started by the supervisor)");
            return 71;
        }
    };
    crate::log::init(cfg.log_format(), cfg.log_level());
    match run(cfg) {
        Ok(()) => 0,
        Err(e) => {
            error!(event = "egress.proxy_failed", error = %e, "egress proxy could not start");
            1
        }
    }
}

fn read_config() -> Result<Config, String> {
    // SAFETY: the supervisor passes the sealed memfd at CONFIG_FD; we own it from here.
    let mut f = unsafe { File::from_raw_fd(CONFIG_FD) };
    let mut body = Vec::new();
    f.rewind().map_err(|e| e.to_string())?;
    f.take(16 << 20)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn run(cfg: Config) -> Result<(), String> {
    // SAFETY: inherited from the supervisor at these numbers, owned by us from here.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(LISTENER_FD) };
    let mut ready = unsafe { File::from_raw_fd(READY_FD) };
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let resolver = Resolver::parse(&cfg.hosts, &cfg.resolv_conf);
    raise_nofile();
    // The proxy resolves names over UDP: the child's socket rule does not apply to it (it
    // holds no capability, so raw and packet sockets stay out of reach anyway).
    let proxy_filter = crate::enforce::helper_filter(&["socket"], PROXY_DENY)?;
    let helper_filter = crate::enforce::helper_filter(&[], HELPER_DENY)?;
    let (proxy_end, helper_end) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let parent = std::process::id() as i32;
    // SAFETY: single-threaded here (no runtime yet); the child only makes syscalls and
    // reads /proc with std, which is fine after fork in a single-threaded process.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(proxy_end);
            drop(listener);
            drop(ready);
            if let Err(e) = drop_to(cfg.agent_uid, cfg.agent_gid, parent) {
                error!(event = "egress.proxy_failed", error = %e, "attribution helper could not drop privileges");
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) };
            }
            // Opened before the filter, which forbids new sockets; without inet_diag the
            // helper falls back to /proc/net/tcp.
            let diag = super::ident::Diag::open().ok();
            if let Err(e) = helper_filter.install() {
                error!(event = "egress.proxy_failed", error = %std::io::Error::from_raw_os_error(e.errno), "attribution helper could not install seccomp");
                unsafe { libc::_exit(1) };
            }
            super::ident::serve(helper_end, diag, cfg.supervisor_pid);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        _helper => {}
    }
    drop(helper_end);
    drop_to(cfg.proxy_uid, cfg.proxy_gid, cfg.supervisor_pid as i32)?;
    let landlock = landlock_self()?;
    proxy_filter
        .install()
        .map_err(|e| format!("seccomp: {}", std::io::Error::from_raw_os_error(e.errno)))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let rules = cfg.rules;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
        proxy_end.set_nonblocking(true).map_err(|e| e.to_string())?;
        let helper = tokio::net::UnixStream::from_std(proxy_end).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        // SAFETY: getuid has no failure mode.
        let uid = unsafe { libc::getuid() };
        info!(event = "egress.proxy_confined", port, uid, helper_uid = cfg.agent_uid, landlock = %landlock,
            nameservers = %resolver.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","), "egress proxy confined and listening");
        let _ = ready.write_all(b"R");
        drop(ready);
        proxy::serve(listener, Arc::new(State::new(rules, resolver, helper))).await;
        Ok::<(), String>(())
    })
}

/// Each relayed connection holds two sockets: take the whole hard limit of open files,
/// which needs no privilege.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Drops to `uid`/`gid` with no groups and no capabilities, not dumpable, dying with
/// `parent` (checked after arming: it may already be gone), no_new_privs.
fn drop_to(uid: u32, gid: u32, parent: i32) -> Result<(), String> {
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain syscalls on the current process with integer or null arguments.
    unsafe {
        // Stop and interrupt are the supervisor's to act on; it kills this group last.
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // An unprivileged supervisor (already the policy's user) cannot switch: the proxy
        // then keeps that uid; no_new_privs, Landlock's scoping and not being dumpable
        // still keep the agent off it. egress.proxy_confined logs the uid it runs as.
        if libc::geteuid() == 0 {
            if libc::setgroups(0, std::ptr::null()) != 0 {
                return Err(os("setgroups"));
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                return Err(os("setresgid"));
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                return Err(os("setresuid"));
            }
        }
        // The uid change cleared permitted and effective; clear inheritable too.
        // _LINUX_CAPABILITY_VERSION_3: a header (version, pid) and two all-zero data
        // words of (effective, permitted, inheritable).
        let hdr: [u32; 2] = [0x2008_0522, 0];
        let data = [0u32; 6];
        if libc::syscall(libc::SYS_capset, hdr.as_ptr(), data.as_ptr()) != 0 {
            return Err(os("capset"));
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(os("ambient capabilities"));
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(os("pdeathsig"));
        }
        if libc::getppid() != parent {
            return Err(format!("the parent (pid {parent}) is gone"));
        }
        // Not dumpable: /proc/PID of this process is root's, and a same-uid process (the
        // agent, for the helper) cannot ptrace it or read its memory or fds.
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(os("dumpable"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os("no_new_privs"));
        }
    }
    Ok(())
}

/// The proxy needs no file at all once running, and binds nothing (its socket is
/// inherited). Whatever this kernel offers is applied; what it lacks is reported.
fn landlock_self() -> Result<String, String> {
    use landlock::{
        Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus,
        Scope, ABI,
    };
    let abi = ABI::V6;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::BindTcp))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced".into(),
        RulesetStatus::PartiallyEnforced => {
            warn!(
                event = "egress.proxy_landlock_partial",
                "this kernel enforces only part of the proxy's own Landlock domain"
            );
            "partially enforced".into()
        }
        RulesetStatus::NotEnforced => {
            warn!(
                event = "egress.proxy_landlock_partial",
                "this kernel has no Landlock: the proxy's filesystem access is not confined"
            );
            "not enforced".into()
        }
    })
}
