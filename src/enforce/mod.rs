//! Enforcement: everything applied to the child between clone and exec.
//!
//! The split that keeps the child's side async-signal-safe (it runs in the supervisor's
//! memory, see `supervisor::spawn`): [`Sandbox::prepare`] and [`ProcessSetup::capture`] do
//! every allocation and file read (policy, passwd/group, Landlock path fds, compiled BPF,
//! signal dispositions, the bounding set) once, in the supervisor, before the first spawn;
//! [`in_child`] then makes raw syscalls only, and reports a failure as a fixed-size
//! (stage, errno) record over a CLOEXEC pipe.
//!
//! Order in the child, and why:
//! 1. session, signal reset, every fd above 2 close-on-exec ([`in_child`]); an unconfined
//!    process arms its parent-death signal here;
//! 2. privilege drop, see [`privdrop::Plan::apply`] (ends with no_new_privs, which the two
//!    next steps need since the child holds no CAP_SYS_ADMIN any more);
//! 3. Landlock: enters the ruleset prepared by the supervisor;
//! 4. seccomp last, so the filter never sees our own set-up calls (a policy may deny
//!    syscalls that steps 2-3 need) and applies from the very next call, execve.

mod bpf;
#[cfg(test)]
mod bpf_vm;
mod check;
mod error;
mod identity;
mod landlock;
mod paths;
pub mod policy;
mod policy_file;
mod privdrop;
mod report;
mod seccomp;
#[cfg(test)]
mod seccomp_equivalence;
mod stage;
mod syscalls;

pub use check::check_command;
pub use error::{ErrorKind, PolicyError};
pub use policy::Compatibility;
pub use report::{ReportPipe, Sender};
pub use stage::{Failure, Stage};

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The prepared sandbox for the child. Built once, reused for every generation.
#[derive(Debug)]
pub struct Sandbox {
    policy_file: PathBuf,
    identity: identity::Identity,
    id_source: identity::Source,
    notes: Vec<policy::Note>,
    privs: privdrop::Plan,
    landlock: landlock::Domain,
    seccomp: seccomp::Filter,
    /// The egress allow-list and the proxy's port; None when the policy allows no egress.
    egress: Option<Egress>,
    prepare_time: Duration,
}

/// What the egress proxy enforces for this sandbox.
#[derive(Debug, Clone)]
pub struct Egress {
    pub rules: crate::egress::rules::Rules,
    /// The proxy's loopback port (the only one the child may connect to besides
    /// `landlock.tcp_connect`).
    pub port: u16,
    pub uid: u32,
    pub gid: u32,
}

impl Sandbox {
    /// Runs in the forked child, after [`in_child`]'s process set-up. Raw syscalls only.
    fn apply(&self) -> Result<(), Failure> {
        self.privs.apply()?;
        self.landlock.restrict_self()?;
        self.seccomp.install()
    }
}

/// What every spawned process (hook or child) gets, captured once in the supervisor
/// before the first spawn.
#[derive(Debug)]
pub struct ProcessSetup {
    /// The signals whose disposition is not `SIG_DFL` in the supervisor (std ignores
    /// SIGPIPE and handles SIGSEGV/SIGBUS): only those need a reset in the child.
    reset: [u8; 64],
    resets: usize,
    /// The supervisor's pid, to detect that it died before PR_SET_PDEATHSIG was armed.
    supervisor: libc::pid_t,
}

/// The kernel's `struct sigaction` for `rt_sigaction` (x86-64 layout, no glibc wrapper:
/// glibc refuses its own reserved signals 32 and 33).
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

impl ProcessSetup {
    /// Reads the supervisor's dispositions. Call after they are final (std's start-up and
    /// the signalfd set-up change none later).
    pub fn capture() -> ProcessSetup {
        let mut setup = ProcessSetup {
            reset: [0; 64],
            resets: 0,
            // SAFETY: getpid has no failure mode.
            supervisor: unsafe { libc::getpid() },
        };
        for sig in 1..=64u8 {
            let mut old = KernelSigaction::default();
            // SAFETY: rt_sigaction only writes the old action into `old`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    libc::c_int::from(sig),
                    std::ptr::null::<KernelSigaction>(),
                    &mut old,
                    8usize,
                )
            };
            if r == 0 && old.handler != libc::SIG_DFL {
                setup.reset[setup.resets] = sig;
                setup.resets += 1;
            }
        }
        setup
    }

    /// The signals [`in_child`] resets.
    pub fn resets(&self) -> &[u8] {
        &self.reset[..self.resets]
    }
}

/// Everything the new process gets before exec, in order. Async-signal-safe: no
/// allocation, no locks, no file reads beyond what `prepare` opened. `keep_fd` stays open
/// across exec; every other descriptor above 2 is closed.
pub fn in_child(
    setup: &ProcessSetup,
    sandbox: Option<&Sandbox>,
    keep_fd: Option<RawFd>,
) -> Result<(), Failure> {
    // A session of its own: the supervisor signals the whole group, and the child shares no
    // controlling terminal with us (no TIOCSTI into our tty).
    // SAFETY: plain syscalls on the current process.
    if unsafe { libc::setsid() } < 0 {
        return Err(Failure::last(Stage::Session));
    }
    reset_signals(setup)?;
    // Every fd above stderr is closed on exec: nothing of the supervisor's leaks into the
    // sandbox, whatever its CLOEXEC discipline.
    // SAFETY: close_range only changes flags on our own fd table.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(Failure::last(Stage::Fds));
    }
    if let Some(fd) = keep_fd {
        // SAFETY: clears FD_CLOEXEC on one descriptor of our own table.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return Err(Failure::last(Stage::Fds));
        }
    }
    match sandbox {
        Some(s) => s.apply(),
        // Unconfined (the hook, or --no-policy) still dies with the supervisor: nothing we
        // start may outlive the process that would clean it up. (The sandbox arms this
        // after its uid change, which clears it.)
        None => die_with_supervisor(setup.supervisor),
    }
}

/// PR_SET_PDEATHSIG SIGKILL, then the check that the supervisor did not die before it was
/// armed (we would have been re-parented already).
pub(crate) fn die_with_supervisor(supervisor: libc::pid_t) -> Result<(), Failure> {
    // SAFETY: prctl and getppid with integer arguments.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(Failure::last(Stage::ParentDeath));
        }
        if libc::getppid() != supervisor {
            return Err(Failure {
                stage: Stage::ParentDeath,
                errno: libc::ESRCH,
            });
        }
    }
    Ok(())
}

/// The child starts with default dispositions (ignored ones would survive exec) and an
/// empty signal mask (the supervisor blocks nearly everything for its signalfd), in that
/// order: the child runs in the supervisor's memory until it execs, so a handler of the
/// supervisor's must never run in it. Only the signals captured as non-default are reset.
fn reset_signals(setup: &ProcessSetup) -> Result<(), Failure> {
    let dfl = KernelSigaction::default(); // SIG_DFL is 0
    for &sig in setup.resets() {
        // SAFETY: rt_sigaction with a valid action on our own process.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                libc::c_int::from(sig),
                &dfl,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
        if r != 0 {
            return Err(Failure::last(Stage::Signals));
        }
    }
    let empty: u64 = 0;
    // SAFETY: rt_sigprocmask with an 8-byte set, the kernel's sigset size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    if r != 0 {
        return Err(Failure::last(Stage::Signals));
    }
    Ok(())
}

/// The seccomp program the child would get with these `seccomp.allow`/`seccomp.deny`
/// names, as the kernel's `struct sock_filter` array: for the benchmarks, which load it
/// beside other programs (`sandbox-probe seccomp:ours`).
pub fn seccomp_program(allow: &[String], deny: &[String]) -> Result<Vec<u8>, String> {
    seccomp::check_names(allow, deny).map_err(|(field, why)| format!("{field}: {why}"))?;
    Ok(seccomp::compile(allow, deny)?.to_bytes())
}

impl Sandbox {
    /// Reads, validates and compiles the policy at `path`. `workdir` is where the child
    /// starts (granted read-write when the policy sets `include_workdir`).
    pub fn prepare(path: &Path, workdir: &Path) -> Result<Sandbox, PolicyError> {
        Sandbox::prepare_egress(path, workdir, 0)
    }

    /// [`Sandbox::prepare`] for a supervisor whose egress proxy listens on loopback
    /// `proxy_port` (0: no proxy; then the child can make no TCP connection at all, except
    /// to `landlock.tcp_connect`).
    pub fn prepare_egress(
        path: &Path,
        workdir: &Path,
        proxy_port: u16,
    ) -> Result<Sandbox, PolicyError> {
        let started = Instant::now();
        // SAFETY: geteuid has no failure mode.
        let text = policy_file::read(path, unsafe { libc::geteuid() } == 0)?;
        let policy = policy::parse(&text, path, workdir)?;
        let mut sandbox = Sandbox::prepare_policy(path, policy, proxy_port)?;
        sandbox.prepare_time = started.elapsed();
        Ok(sandbox)
    }

    /// Everything after parsing: identity, seccomp program, Landlock ruleset, drop plan.
    fn prepare_policy(
        path: &Path,
        policy: policy::Policy,
        proxy_port: u16,
    ) -> Result<Sandbox, PolicyError> {
        let started = Instant::now();
        // What the policy itself asks that we cannot do (L7 rules under hard_requirement)
        // is said before what this kernel cannot do.
        let rules =
            crate::egress::schema::compile(&policy.network_policies, policy.compatibility, path)?;
        let passwd = read_db(path, identity::PASSWD)?;
        let groups = read_db(path, identity::GROUP)?;
        // SAFETY: geteuid/getegid have no failure mode.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (user, group, id_source) =
            identity::choose(policy.user.as_ref(), policy.group.as_ref(), euid, egid);
        let identity = identity::resolve(&user, group.as_ref(), &passwd, &groups).map_err(
            |(field, why)| match id_source {
                identity::Source::Policy => PolicyError::invalid(path, field, why),
                // The identity was chosen for the policy: say so, and what to change.
                _ => PolicyError::invalid(
                    path,
                    field,
                    format!(
                        "not set, so the child would run as {} ({}), but {}; set \
                         process.run_as_user and run_as_group, or create that user and group \
                         in the image",
                        match (&user, &group) {
                            (u, Some(g)) => format!("{}:{}", plain(u), plain(g)),
                            (u, None) => plain(u),
                        },
                        match id_source {
                            identity::Source::OpenShellDefault => {
                                "OpenShell's default for a root supervisor, never root"
                            }
                            _ => "the supervisor's own ids",
                        },
                        why.split(';').next().unwrap_or(&why)
                    ),
                ),
            },
        )?;
        if !seccomp::available() {
            return Err(PolicyError::unenforceable(
                path,
                None,
                "this kernel has no seccomp filter mode (CONFIG_SECCOMP_FILTER); the child cannot be confined",
            ));
        }
        let seccomp = seccomp::compile(&policy.seccomp_allow, &policy.seccomp_deny)
            .map_err(|why| PolicyError::invalid(path, "seccomp", why))?;
        let landlock = landlock::prepare(&policy, path, proxy_port)?;
        let privs = privdrop::Plan::new(&identity);
        let egress = (!rules.is_empty()).then_some(Egress {
            rules,
            port: proxy_port,
            uid: identity.uid,
            gid: identity.gid,
        });
        Ok(Sandbox {
            policy_file: path.to_path_buf(),
            identity,
            id_source,
            notes: policy.notes.clone(),
            privs,
            landlock,
            seccomp,
            egress,
            prepare_time: started.elapsed(),
        })
    }

    /// The identity variables the child gets from the policy user (its inherited ones are
    /// dropped): a shell or tool that reads HOME must not find root's (`/root`) after the
    /// drop.
    pub fn child_env(&self) -> Vec<(&'static str, String)> {
        let id = &self.identity;
        let mut env = Vec::new();
        if let Some(home) = &id.home {
            env.push(("HOME", home.clone()));
        }
        if let Some(name) = &id.user_name {
            env.push(("USER", name.clone()));
            env.push(("LOGNAME", name.clone()));
        }
        if let Some(e) = self.egress.as_ref().filter(|e| e.port != 0) {
            let url = format!("http://127.0.0.1:{}", e.port);
            for k in [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
                "http_proxy",
                "https_proxy",
                "all_proxy",
            ] {
                env.push((k, url.clone()));
            }
            // Loopback never goes through the proxy (it refuses it): say so to clients.
            for k in ["NO_PROXY", "no_proxy"] {
                env.push((k, "localhost,127.0.0.1,::1".into()));
            }
        }
        env
    }

    /// What the egress allow-list will and will not do, loudly where it falls short.
    fn log_egress(&self) {
        let cov = &self.landlock.coverage;
        if !cov.net_handled.contains(::landlock::AccessNet::ConnectTcp) {
            warn!(event = "egress.unenforced", kernel_abi = cov.kernel_abi,
                "this kernel cannot restrict TCP connect (Landlock ABI < 4): the child can reach any host directly, \
                 the egress allow-list is NOT enforced (best_effort)");
        }
        let Some(e) = &self.egress else {
            info!(
                event = "egress.none",
                "the policy has no network_policies: the child has no network egress"
            );
            return;
        };
        for p in &e.rules.policies {
            for (i, ep) in p.endpoints.iter().enumerate() {
                if ep.unenforced.is_empty() {
                    continue;
                }
                let ports: Vec<String> = ep.ports.iter().map(|p| p.to_string()).collect();
                warn!(event = "egress.l7_unenforced", policy = %p.key, endpoint = i, host = ep.host.as_deref().unwrap_or(""),
                    ports = %ports.join(","), unenforced = %ep.unenforced.join("; "),
                    "best_effort: this endpoint's L7 rules are NOT enforced; only host, port and binary are");
            }
        }
    }

    /// The egress allow-list, when the policy allows any egress.
    pub fn egress(&self) -> Option<&Egress> {
        self.egress.as_ref()
    }

    /// Once the filesystem is as the child will find it (after the hook): logs each policy
    /// path that does not exist, or, under `hard_requirement`, refuses to start over it, as
    /// OpenShell does.
    pub fn check_missing_paths(&self) -> Result<(), PolicyError> {
        let cov = &self.landlock.coverage;
        if cov.compatibility == policy::Compatibility::HardRequirement {
            if let Some((field, p)) = cov.missing_paths.first() {
                return Err(PolicyError::unenforceable(
                    &self.policy_file,
                    Some(field),
                    format!(
                        "{} does not exist; hard_requirement refuses to start without every \
                         listed path (create it in the image or the hook, or use best_effort)",
                        p.display()
                    ),
                ));
            }
        }
        for (field, p) in &cov.missing_paths {
            warn!(event = "landlock.path_missing", path = %p.display(), field = %field, "policy path does not exist; it grants nothing");
        }
        Ok(())
    }

    /// Logs what the child will get, and every gap, once at start-up.
    pub fn log_summary(&self) {
        let cov = &self.landlock.coverage;
        let groups: Vec<String> = self.identity.groups.iter().map(|g| g.to_string()).collect();
        info!(
            event = "enforce.prepared",
            policy = %self.policy_file.display(),
            uid = self.identity.uid,
            gid = self.identity.gid,
            groups = %groups.join(","),
            user = self.identity.user_name.as_deref().unwrap_or(""),
            landlock_abi = cov.kernel_abi,
            landlock_rules = cov.rules,
            compatibility = cov.compatibility.as_str(),
            seccomp_instructions = self.seccomp.len(),
            prepare_us = self.prepare_time.as_micros() as u64,
            "sandbox prepared for the child"
        );
        info!(
            event = "enforce.identity",
            uid = self.identity.uid,
            gid = self.identity.gid,
            user = self.identity.user_name.as_deref().unwrap_or(""),
            group = self.identity.group_name.as_deref().unwrap_or(""),
            source = self.id_source.as_str(),
            reason = self.id_source.why(),
            "the child's identity"
        );
        for (field, p, why) in &cov.skipped_paths {
            warn!(event = "landlock.path_skipped", path = %p.display(), field = %field, error = %why,
                "policy path grants nothing");
        }
        for n in &self.notes {
            warn!(event = "policy.note", field = %n.field, note = %n.message, "policy remark");
        }
        if cov.kernel_abi == 0 {
            warn!(event = "landlock.unsupported", "this kernel has no Landlock: the child's filesystem access is NOT confined (best_effort)");
        } else if !cov.unenforced.is_empty() {
            warn!(event = "landlock.unenforced", rights = %cov.unenforced.join(","), kernel_abi = cov.kernel_abi,
                "best_effort: this kernel cannot enforce these Landlock rights; see `supervisor check`");
        }
        if !self.privs.change_ids {
            info!(
                event = "enforce.identity_kept",
                uid = self.identity.uid,
                "the supervisor already runs as the policy's user: no uid/gid change"
            );
        }
        self.log_egress();
        if !self.privs.drop_bounding {
            warn!(event = "enforce.bounding_kept", "no CAP_SETPCAP: the capability bounding set is not emptied (no_new_privs still blocks gaining capabilities)");
        }
    }
}

/// A seccomp program for the supervisor's own helper processes (the egress proxy).
#[derive(Debug)]
pub struct HelperFilter(seccomp::Filter);

impl HelperFilter {
    /// Installs it on the calling thread (needs no_new_privs).
    pub fn install(&self) -> Result<(), Failure> {
        self.0.install()
    }
}

/// The child's default deny list with `allow` lifted and `deny` denied outright.
pub fn helper_filter(allow: &[&str], deny: &[&str]) -> Result<HelperFilter, String> {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    seccomp::compile(&own(allow), &own(deny)).map(HelperFilter)
}

/// A user or group as an operator writes it (`sandbox`, `1000`).
fn plain(id: &policy::IdSpec) -> String {
    match id {
        policy::IdSpec::Name(n) => n.clone(),
        policy::IdSpec::Id(i) => i.to_string(),
    }
}

fn read_db(policy: &Path, db: &str) -> Result<String, PolicyError> {
    std::fs::read_to_string(db).map_err(|e| {
        PolicyError::invalid(
            policy,
            "process",
            format!("cannot read {db} to resolve the user: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_default_dispositions_are_reset_and_the_reset_works() {
        // In a fork, so the test process keeps its own dispositions and mask.
        // SAFETY: the child makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw signal calls in our own (child) process.
            let code = unsafe {
                libc::signal(libc::SIGUSR2, libc::SIG_IGN);
                let setup = ProcessSetup::capture();
                let listed = setup.resets().contains(&(libc::SIGUSR2 as u8))
                    && setup.resets().contains(&(libc::SIGPIPE as u8)) // std ignores it
                    && !setup.resets().contains(&(libc::SIGUSR1 as u8));
                let mut block: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut block);
                libc::sigprocmask(libc::SIG_BLOCK, &block, std::ptr::null_mut());
                let ok = reset_signals(&setup).is_ok();
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old);
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
                let unblocked = libc::sigismember(&mask, libc::SIGTERM) == 0;
                i32::from(!(listed && ok && old.sa_sigaction == libc::SIG_DFL && unblocked))
            };
            // SAFETY: leave the forked test process at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
