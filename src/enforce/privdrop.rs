//! Dropping the child to the policy's identity with no capabilities, no way back, and no
//! life beyond the supervisor's. [`Plan::new`] runs in the supervisor; [`Plan::apply`]
//! runs in the forked child and makes raw syscalls only (no glibc set*id wrappers: they
//! broadcast to threads through signals and take locks).

use super::identity::Identity;
use super::stage::{Failure, Stage};

const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Everything the child needs to drop privileges, computed before fork.
#[derive(Debug)]
pub struct Plan {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    /// False when the supervisor already runs as exactly the target uid and gid (an
    /// unprivileged supervisor): the set*id calls would only fail with EPERM.
    pub change_ids: bool,
    /// Emptying the bounding set needs CAP_SETPCAP; without it (unprivileged supervisor)
    /// no_new_privs is what keeps exec from granting anything.
    pub drop_bounding: bool,
    /// The capabilities still in the supervisor's bounding set (bit N = capability N), read
    /// once: the child drops only these, not every number up to `cap_last_cap` (a
    /// container's root already lacks most).
    pub bounding: u64,
    /// The supervisor's pid, to detect that it died before PR_SET_PDEATHSIG was armed.
    pub supervisor: libc::pid_t,
}

impl Plan {
    pub fn new(id: &Identity) -> Plan {
        let (mut r, mut e, mut s) = (0, 0, 0);
        let (mut rg, mut eg, mut sg) = (0, 0, 0);
        // SAFETY: the get*id calls only write the three ints we pass.
        unsafe {
            libc::getresuid(&mut r, &mut e, &mut s);
            libc::getresgid(&mut rg, &mut eg, &mut sg);
        }
        let same_ids =
            [r, e, s].iter().all(|u| *u == id.uid) && [rg, eg, sg].iter().all(|g| *g == id.gid);
        Plan {
            uid: id.uid,
            gid: id.gid,
            groups: id.groups.clone(),
            change_ids: !same_ids,
            drop_bounding: effective_caps() & (1u64 << CAP_SETPCAP) != 0,
            bounding: bounding_set(cap_last()),
            // SAFETY: getpid has no failure mode.
            supervisor: unsafe { libc::getpid() },
        }
    }

    /// Child side, in this order:
    /// 1. core dumps off (a dump of a dropped process could leak what it read);
    /// 2. bounding set emptied while we still hold CAP_SETPCAP;
    /// 3. setgroups, setresgid, setresuid (groups first: they need CAP_SETGID, which the
    ///    uid change takes away);
    /// 4. effective, permitted, inheritable and ambient sets emptied (the uid change clears
    ///    most, not inheritable);
    /// 5. verify: regaining root must fail;
    /// 6. PR_SET_PDEATHSIG, after the uid change because commit_creds clears it, then the
    ///    check that the supervisor did not die before it was armed;
    /// 7. no_new_privs, so exec can never add privilege (setuid files, file capabilities)
    ///    and Landlock and seccomp may be entered without CAP_SYS_ADMIN.
    pub fn apply(&self) -> Result<(), Failure> {
        // SAFETY (whole block): raw syscalls with integer arguments or pointers to data
        // that lives in `self` or on this stack frame; nothing allocates or locks.
        unsafe {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::syscall(libc::SYS_setrlimit, libc::RLIMIT_CORE, &zero) != 0 {
                return Err(Failure::last(Stage::Rlimits));
            }
            if self.drop_bounding {
                for cap in (0..64).filter(|c| self.bounding & (1u64 << c) != 0) {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(Failure::last(Stage::Bounding));
                    }
                }
            }
            if self.change_ids {
                if libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr()) != 0
                {
                    return Err(Failure::last(Stage::Groups));
                }
                if libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) != 0 {
                    return Err(Failure::last(Stage::Setgid));
                }
                if libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) != 0 {
                    return Err(Failure::last(Stage::Setuid));
                }
            }
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let data = [CapData::default(); 2];
            if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
                return Err(Failure::last(Stage::Capabilities));
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(Failure::last(Stage::Capabilities));
            }
            self.verify()?;
            super::die_with_supervisor(self.supervisor)?;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(Failure::last(Stage::NoNewPrivs));
            }
        }
        Ok(())
    }

    /// The drop took, and cannot be undone.
    fn verify(&self) -> Result<(), Failure> {
        // SAFETY: raw syscalls with integer arguments.
        unsafe {
            let ok = libc::getuid() == self.uid
                && libc::geteuid() == self.uid
                && libc::getgid() == self.gid
                && libc::getegid() == self.gid;
            // Regaining root must be refused by the kernel; success means we still hold
            // CAP_SETUID or a saved root uid.
            let regained = libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0;
            if !ok || regained {
                return Err(Failure {
                    stage: Stage::VerifyDrop,
                    errno: libc::EPERM,
                });
            }
        }
        Ok(())
    }
}

/// The supervisor's effective capability set (64 bits).
fn effective_caps() -> u64 {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData records into `data`.
    let r = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    if r != 0 {
        return 0;
    }
    u64::from(data[0].effective) | (u64::from(data[1].effective) << 32)
}

/// The capabilities up to `last` that PR_CAPBSET_READ reports as still in the bounding set.
fn bounding_set(last: u32) -> u64 {
    (0..=last.min(63))
        // SAFETY: PR_CAPBSET_READ only reads.
        .filter(
            |&c| unsafe { libc::prctl(libc::PR_CAPBSET_READ, c as libc::c_ulong, 0, 0, 0) } == 1,
        )
        .fold(0, |set, c| set | (1u64 << c))
}

/// /proc/sys/kernel/cap_last_cap, or the highest cap PR_CAPBSET_READ accepts.
fn cap_last() -> u32 {
    if let Some(n) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return n;
    }
    let mut last = 0;
    // SAFETY: PR_CAPBSET_READ only reads.
    while last < 63 && unsafe { libc::prctl(libc::PR_CAPBSET_READ, last + 1, 0, 0, 0) } >= 0 {
        last += 1;
    }
    last as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_set_lists_only_what_is_left() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "run as root (CI does): the test drops a capability in a fork"
        );
        let last = cap_last();
        let before = bounding_set(last);
        assert_ne!(before & (1 << CAP_SETPCAP), 0, "root holds CAP_SETPCAP");
        // In a fork: drop CAP_KILL (5) from the bounding set and read it again.
        // SAFETY: the child makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: prctl with integer arguments, then _exit.
            unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, 5, 0, 0, 0);
                let after = bounding_set(last);
                libc::_exit(i32::from(after != before & !(1 << 5)));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
