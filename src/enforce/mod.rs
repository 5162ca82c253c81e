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

mod check;
mod error;
mod identity;
mod landlock;
mod policy;
mod privdrop;
mod report;
mod seccomp;
mod stage;
mod syscalls;

pub use check::check_command;
pub use error::{ErrorKind, PolicyError};
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
    privs: privdrop::Plan,
    landlock: landlock::Domain,
    seccomp: seccomp::Filter,
    prepare_time: Duration,
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

impl Sandbox {
    /// Reads, validates and compiles the policy at `path`. `workdir` is where the child
    /// starts (granted read-write when the policy sets `include_workdir`).
    pub fn prepare(path: &Path, workdir: &Path) -> Result<Sandbox, PolicyError> {
        let started = Instant::now();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyError::file(
                path,
                format!("cannot read the policy: {e}; pass --policy PATH, or --no-policy to run unconfined"),
            )
        })?;
        let policy = policy::parse(&text, path, workdir)?;
        let mut sandbox = Sandbox::prepare_policy(path, policy)?;
        sandbox.prepare_time = started.elapsed();
        Ok(sandbox)
    }

    /// Everything after parsing: identity, seccomp program, Landlock ruleset, drop plan.
    fn prepare_policy(path: &Path, policy: policy::Policy) -> Result<Sandbox, PolicyError> {
        let started = Instant::now();
        let passwd = read_db(path, identity::PASSWD)?;
        let groups = read_db(path, identity::GROUP)?;
        let identity = identity::resolve(&policy.user, policy.group.as_ref(), &passwd, &groups)
            .map_err(|(field, why)| PolicyError::invalid(path, field, why))?;
        if !seccomp::available() {
            return Err(PolicyError::unenforceable(
                path,
                None,
                "this kernel has no seccomp filter mode (CONFIG_SECCOMP_FILTER); the child cannot be confined",
            ));
        }
        let seccomp = seccomp::compile(&policy.seccomp_allow, &policy.seccomp_deny)
            .map_err(|why| PolicyError::invalid(path, "seccomp", why))?;
        let landlock = landlock::prepare(&policy, path)?;
        let privs = privdrop::Plan::new(&identity);
        Ok(Sandbox {
            policy_file: path.to_path_buf(),
            identity,
            privs,
            landlock,
            seccomp,
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
        env
    }

    /// Logs each policy path that did not exist when the ruleset was built.
    pub fn log_missing_paths(&self) {
        for p in &self.landlock.coverage.missing_paths {
            warn!(event = "landlock.path_missing", path = %p.display(), "policy path does not exist; it grants nothing");
        }
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
        if !self.privs.drop_bounding {
            warn!(event = "enforce.bounding_kept", "no CAP_SETPCAP: the capability bounding set is not emptied (no_new_privs still blocks gaining capabilities)");
        }
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
