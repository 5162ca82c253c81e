//! Enforcement: everything applied to the child between fork and exec.
//!
//! The split that keeps `pre_exec` async-signal-safe: [`Sandbox::prepare`] does every
//! allocation and file read (policy, passwd/group, Landlock path fds, compiled BPF) once,
//! in the supervisor, before the first fork; [`in_child`] then makes raw syscalls only, and
//! reports a failure as a fixed-size (stage, errno) record over a CLOEXEC pipe.
//!
//! Order in the child, and why:
//! 1. session, signal reset, every fd above 2 close-on-exec ([`in_child`]);
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

use std::io;
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

/// Everything the child gets before exec, in order. Async-signal-safe: no allocation, no
/// locks, no file reads beyond what `prepare` opened.
pub fn in_child(sandbox: Option<&Sandbox>) -> Result<(), Failure> {
    // A session of its own: the supervisor signals the whole group, and the child shares no
    // controlling terminal with us (no TIOCSTI into our tty).
    // SAFETY: plain syscalls on the current process.
    if unsafe { libc::setsid() } < 0 {
        return Err(Failure::last(Stage::Session));
    }
    reset_signals()?;
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
    match sandbox {
        Some(s) => s.apply(),
        None => Ok(()),
    }
}

/// The child starts with an empty signal mask (the supervisor blocks nearly everything for
/// its signalfd) and default dispositions (ignored ones would survive exec).
fn reset_signals() -> Result<(), Failure> {
    // SAFETY: sigset_t is plain data; sigemptyset, sigprocmask and signal are
    // async-signal-safe.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        if libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0 {
            return Err(Failure::last(Stage::Signals));
        }
        // 1..=64 covers every Linux signal; KILL/STOP and glibc's reserved ones just
        // return EINVAL, which is harmless here.
        for sig in 1..65 {
            libc::signal(sig, libc::SIG_DFL);
        }
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

/// Turns a child-side failure into the error `Command::spawn` returns; the precise record
/// travels over the report pipe.
pub fn failure_to_io(f: Failure) -> io::Error {
    io::Error::from_raw_os_error(f.errno)
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
                _ => PolicyError::invalid(
                    path,
                    "process",
                    format!(
                        "no process.run_as_user, so the child would run as {user}:{} ({}): {why}; \
                         create that user in the image or set process.run_as_user",
                        group.as_ref().map(ToString::to_string).unwrap_or_default(),
                        id_source.as_str()
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

    /// Environment the child gets on top of the supervisor's: a shell or tool that reads
    /// HOME must not find root's (`/root`) after the drop.
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

fn read_db(policy: &Path, db: &str) -> Result<String, PolicyError> {
    std::fs::read_to_string(db).map_err(|e| {
        PolicyError::invalid(
            policy,
            "process",
            format!("cannot read {db} to resolve the user: {e}"),
        )
    })
}
