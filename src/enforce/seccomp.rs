//! The child's seccomp filter: default allow, with a deny list (EPERM) of the syscalls an
//! agent has no business making and that widen the kernel's attack surface.
//!
//! The decisions are data: [`ALWAYS`], [`CONDITIONAL`] with [`conditional_rules`], the
//! policy's `allow`/`deny`, and three of our own: another architecture is killed (an i386
//! `int 0x80` call would be decoded with other numbers), the x32 range is refused, and
//! `clone3` answers ENOSYS (its flags live in memory the filter cannot read; ENOSYS makes
//! libc fall back to `clone`, whose flags we do check). [`bpf::generate`] compiles them once
//! in the supervisor into a binary search over syscall numbers; the child installs it with
//! a single raw `seccomp(2)` call. The tests prove the program makes the same decisions as
//! seccompiler's compilation of the same table (`seccomp_equivalence`).

use super::bpf::{self, Cond, Insn, Leaf, Op, Rule, Spec};
use super::stage::{Failure, Stage};
use super::syscalls;
use std::collections::BTreeMap;

/// Unconditionally denied: (syscall, family). The family names what an operator reads in
/// `supervisor check` and in the README.
pub const ALWAYS: &[(&str, &str)] = &[
    ("mount", "mount"),
    ("umount2", "mount"),
    ("pivot_root", "mount"),
    ("chroot", "mount"),
    ("fsopen", "mount"),
    ("fsconfig", "mount"),
    ("fsmount", "mount"),
    ("fspick", "mount"),
    ("move_mount", "mount"),
    ("open_tree", "mount"),
    ("open_tree_attr", "mount"),
    ("mount_setattr", "mount"),
    ("setns", "namespaces"),
    ("ptrace", "cross-process access"),
    ("process_vm_readv", "cross-process access"),
    ("process_vm_writev", "cross-process access"),
    ("process_madvise", "cross-process access"),
    ("pidfd_getfd", "cross-process access"),
    ("bpf", "bpf"),
    ("perf_event_open", "perf"),
    ("userfaultfd", "userfaultfd"),
    ("io_uring_setup", "io_uring"),
    ("io_uring_enter", "io_uring"),
    ("io_uring_register", "io_uring"),
    ("add_key", "keyrings"),
    ("request_key", "keyrings"),
    ("keyctl", "keyrings"),
    ("init_module", "kernel modules"),
    ("finit_module", "kernel modules"),
    ("delete_module", "kernel modules"),
    ("kexec_load", "kexec"),
    ("kexec_file_load", "kexec"),
    ("reboot", "reboot"),
    ("swapon", "swap"),
    ("swapoff", "swap"),
    ("settimeofday", "clock"),
    ("clock_settime", "clock"),
    ("clock_adjtime", "clock"),
    ("adjtimex", "clock"),
    ("open_by_handle_at", "file handles"),
    ("iopl", "raw I/O ports"),
    ("ioperm", "raw I/O ports"),
    ("acct", "accounting"),
    ("quotactl", "quota"),
    ("quotactl_fd", "quota"),
];

/// Denied only for some arguments: (syscall, what is denied).
pub const CONDITIONAL: &[(&str, &str)] = &[
    ("clone", "namespace flags (CLONE_NEW*)"),
    ("unshare", "namespace flags (CLONE_NEW*)"),
    ("ioctl", "TIOCSTI, TIOCLINUX (low 32 bits of the request)"),
    (
        "socket",
        "families other than AF_UNIX/AF_INET/AF_INET6; AF_NETLINK other than NETLINK_ROUTE; \
         AF_INET/AF_INET6 other than plain TCP (UDP, ICMP, raw, SCTP, MPTCP: egress goes through the proxy)",
    ),
    ("sendto", "MSG_FASTOPEN (a TCP Fast Open connect is not seen by Landlock)"),
    ("sendmsg", "MSG_FASTOPEN (a TCP Fast Open connect is not seen by Landlock)"),
    ("sendmmsg", "MSG_FASTOPEN (a TCP Fast Open connect is not seen by Landlock)"),
    ("socketpair", "families other than AF_UNIX/AF_INET/AF_INET6"),
    (
        "personality",
        "anything but 0, PER_LINUX32, UNAME26 and the 0xffffffff query",
    ),
];

/// Answered ENOSYS rather than EPERM, so libc falls back to `clone`.
pub const CLONE3: &str = "clone3";

const NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];
/// unshare(2) also takes CLONE_NEWTIME (0x80), which clone(2) cannot (it is CSIGNAL there).
const CLONE_NEWTIME: u64 = 0x80;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
/// `sendto`/`sendmsg` flag that connects an unconnected TCP socket with data (TCP Fast
/// Open): the connect happens inside the send, where Landlock's connect hook never runs.
const MSG_FASTOPEN: u64 = 0x2000_0000;
const ALLOWED_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
];
/// personality(2) values that change nothing that matters for security: the plain Linux
/// persona, 32-bit uname, the 2.6-style uname, both, and the query.
const HARMLESS_PERSONAS: &[u64] = &[0, 0x0008, 0x0020000, 0x0020008, 0xffff_ffff];

/// Checks a policy's `seccomp.allow` / `seccomp.deny` names. Errors are (field, reason).
pub fn check_names(allow: &[String], deny: &[String]) -> Result<(), (String, String)> {
    for (i, name) in allow.iter().enumerate() {
        let field = format!("seccomp.allow[{i}]");
        if syscalls::number(name).is_none() {
            return Err((field, format!("{name:?} is not an x86-64 syscall name")));
        }
        if !is_default_denied(name) {
            return Err((
                field,
                format!("{name:?} is not denied by default; there is nothing to allow"),
            ));
        }
    }
    for (i, name) in deny.iter().enumerate() {
        let field = format!("seccomp.deny[{i}]");
        if syscalls::number(name).is_none() {
            return Err((field, format!("{name:?} is not an x86-64 syscall name")));
        }
        if allow.contains(name) {
            return Err((field, format!("{name:?} is also listed under allow")));
        }
        if name == CLONE3 {
            return Err((
                field,
                "clone3 is already refused (ENOSYS, so libc falls back to clone)".into(),
            ));
        }
        if name == "execve" {
            return Err((
                field,
                "denying execve would stop the child from starting at all".into(),
            ));
        }
    }
    Ok(())
}

fn is_default_denied(name: &str) -> bool {
    name == CLONE3
        || ALWAYS.iter().any(|(n, _)| *n == name)
        || CONDITIONAL.iter().any(|(n, _)| *n == name)
}

/// Number of the syscall `name`; every name in our tables is in the syscall table.
fn nr(name: &str) -> u32 {
    let n = syscalls::number(name).unwrap_or_else(|| unreachable!("{name} missing from the table"));
    n as u32
}

/// A condition on the low 32 bits of argument `arg`. The kernel reads these arguments as
/// 32-bit ints, so garbage in the high half must not let a call slip past a 64-bit compare;
/// a value or mask wider than 32 bits could not mean what it says and is refused.
fn cond(arg: u8, op: Op, value: u64) -> Result<Cond, String> {
    let wide = |v: u64| u32::try_from(v).is_err();
    if arg > 5 {
        return Err(format!(
            "syscalls have 6 arguments; there is no argument {arg}"
        ));
    }
    if wide(value) || matches!(op, Op::MaskedEq(m) if wide(m)) {
        return Err(format!(
            "{op:?} {value:#x} on argument {arg} is wider than the 32 bits compared"
        ));
    }
    Ok(Cond {
        arg,
        op,
        value: value as u32,
    })
}

/// Holds when all `conds` hold.
fn rule(conds: Vec<Cond>) -> Result<Rule, String> {
    if conds.is_empty() {
        return Err("a rule needs at least one condition".into());
    }
    Ok(Rule(conds))
}

/// The rules under which the conditional syscall `name` is denied (any rule matches).
fn conditional_rules(name: &str) -> Result<Vec<Rule>, String> {
    let any_flag = |flags: &[u64]| -> Result<Vec<Rule>, String> {
        flags
            .iter()
            .map(|f| rule(vec![cond(0, Op::MaskedEq(*f), *f)?]))
            .collect()
    };
    let not_in = |arg: u8, values: &[u64]| -> Result<Rule, String> {
        rule(
            values
                .iter()
                .map(|v| cond(arg, Op::Ne, *v))
                .collect::<Result<_, _>>()?,
        )
    };
    match name {
        "clone" => any_flag(NS_FLAGS),
        "unshare" => {
            let mut flags = NS_FLAGS.to_vec();
            flags.push(CLONE_NEWTIME);
            any_flag(&flags)
        }
        "ioctl" => Ok(vec![
            rule(vec![cond(1, Op::Eq, TIOCSTI)?])?,
            rule(vec![cond(1, Op::Eq, TIOCLINUX)?])?,
        ]),
        "socket" => {
            let mut families = ALLOWED_FAMILIES.to_vec();
            families.push(libc::AF_NETLINK as u64);
            let mut rules = vec![
                not_in(0, &families)?,
                // getifaddrs needs NETLINK_ROUTE; the other netlink protocols reach audit,
                // uevents, netfilter and more.
                rule(vec![
                    cond(0, Op::Eq, libc::AF_NETLINK as u64)?,
                    cond(2, Op::Ne, libc::NETLINK_ROUTE as u64)?,
                ])?,
            ];
            // IP sockets: only what Landlock's TCP rules and the egress proxy can see.
            for family in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
                // Any type but SOCK_STREAM (1), whatever SOCK_NONBLOCK/SOCK_CLOEXEC add:
                // 0, or a type with bit 1, 2 or 3 set (DGRAM, RAW, RDM, SEQPACKET, DCCP,
                // PACKET all have one).
                rules.push(rule(vec![
                    cond(0, Op::Eq, family)?,
                    cond(1, Op::MaskedEq(0xf), 0)?,
                ])?);
                for bit in [0x2u64, 0x4, 0x8] {
                    rules.push(rule(vec![
                        cond(0, Op::Eq, family)?,
                        cond(1, Op::MaskedEq(bit), bit)?,
                    ])?);
                }
                // A stream of another protocol (SCTP, MPTCP) is not TCP to Landlock.
                rules.push(rule(vec![
                    cond(0, Op::Eq, family)?,
                    cond(2, Op::Ne, 0)?,
                    cond(2, Op::Ne, libc::IPPROTO_TCP as u64)?,
                ])?);
            }
            Ok(rules)
        }
        "socketpair" => Ok(vec![not_in(0, ALLOWED_FAMILIES)?]),
        // Flags are arg 3 of sendto and sendmmsg, arg 2 of sendmsg.
        "sendto" | "sendmmsg" => Ok(vec![rule(vec![cond(
            3,
            Op::MaskedEq(MSG_FASTOPEN),
            MSG_FASTOPEN,
        )?])?]),
        "sendmsg" => Ok(vec![rule(vec![cond(
            2,
            Op::MaskedEq(MSG_FASTOPEN),
            MSG_FASTOPEN,
        )?])?]),
        "personality" => Ok(vec![not_in(0, HARMLESS_PERSONAS)?]),
        _ => unreachable!("{name} is not a conditional syscall"),
    }
}

/// A compiled, ready-to-install filter.
#[derive(Debug)]
pub struct Filter {
    prog: Vec<Insn>,
    /// Default-denied syscalls the policy allowed, and extra ones it denied.
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

impl Filter {
    /// Length in BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// The program as the kernel's `struct sock_filter` array, in native byte order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.prog
            .iter()
            .flat_map(|i| {
                let mut b = [0u8; 8];
                b[0..2].copy_from_slice(&i.code.to_ne_bytes());
                b[2] = i.jt;
                b[3] = i.jf;
                b[4..8].copy_from_slice(&i.k.to_ne_bytes());
                b
            })
            .collect()
    }

    /// Child side: installs the filter. One raw syscall on memory prepared before fork.
    /// Requires no_new_privs (or CAP_SYS_ADMIN).
    pub fn install(&self) -> Result<(), Failure> {
        let fprog = libc::sock_fprog {
            // `bpf::verify` bounds the length by 4096.
            len: self.prog.len() as u16,
            // Insn has the kernel's sock_filter layout (asserted in bpf.rs).
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: fprog points at a live, immutable program for the duration of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            return Err(Failure::last(Stage::Seccomp));
        }
        Ok(())
    }
}

/// The x32 ABI shares the x86-64 audit arch and marks its syscall numbers with this bit.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;
pub(super) const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

pub(super) fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What the policy makes of the default lists: each denied syscall with the rules under
/// which it is denied (empty: always), and whether clone3 answers ENOSYS.
#[derive(Debug)]
pub(super) struct Table {
    pub deny: BTreeMap<u32, Vec<Rule>>,
    pub clone3_enosys: bool,
}

/// The default deny list adjusted by the policy's `allow` and `deny` names (already
/// checked by [`check_names`]).
pub(super) fn table(allow: &[String], deny: &[String]) -> Result<Table, String> {
    let allowed = |name: &str| allow.iter().any(|a| a == name);
    let mut rules: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for (name, _) in ALWAYS {
        if !allowed(name) {
            rules.insert(nr(name), Vec::new());
        }
    }
    for (name, _) in CONDITIONAL {
        if !allowed(name) {
            rules.insert(nr(name), conditional_rules(name)?);
        }
    }
    // An explicit deny is unconditional, also for a syscall denied by default only for
    // some arguments.
    for name in deny {
        rules.insert(nr(name), Vec::new());
    }
    Ok(Table {
        deny: rules,
        clone3_enosys: !allowed(CLONE3),
    })
}

/// The table as the generator's input, with our own decisions for other architectures,
/// x32 and clone3.
pub(super) fn spec(t: &Table) -> Spec {
    let eperm = errno(libc::EPERM);
    let mut entries: Vec<(u32, u32, Leaf)> = t
        .deny
        .iter()
        .map(|(nr, rules)| {
            let leaf = if rules.is_empty() {
                Leaf::Ret(eperm)
            } else {
                Leaf::Rules {
                    rules: rules.clone(),
                    on_match: eperm,
                    otherwise: libc::SECCOMP_RET_ALLOW,
                }
            };
            (*nr, *nr, leaf)
        })
        .collect();
    if t.clone3_enosys {
        let n = libc::SYS_clone3 as u32;
        entries.push((n, n, Leaf::Ret(errno(libc::ENOSYS))));
    }
    entries.push((X32_SYSCALL_BIT, u32::MAX, Leaf::Ret(eperm)));
    Spec {
        arch: AUDIT_ARCH_X86_64,
        wrong_arch: libc::SECCOMP_RET_KILL_PROCESS,
        default: libc::SECCOMP_RET_ALLOW,
        entries,
    }
}

/// Compiles the default deny list adjusted by the policy's `allow` and `deny` names
/// (already checked by [`check_names`]).
pub fn compile(allow: &[String], deny: &[String]) -> Result<Filter, String> {
    let prog = bpf::generate(&spec(&table(allow, deny)?))
        .map_err(|e| format!("cannot compile the seccomp filter: {e}"))?;
    Ok(Filter {
        prog,
        allowed: allow.to_vec(),
        denied: deny.to_vec(),
    })
}

/// Whether this kernel has seccomp filter mode with the ERRNO action.
pub fn available() -> bool {
    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_a_syscall() {
        for (name, _) in ALWAYS.iter().chain(CONDITIONAL) {
            assert!(syscalls::number(name).is_some(), "{name}");
        }
        for (name, _) in CONDITIONAL {
            assert!(!conditional_rules(name).unwrap().is_empty());
        }
    }

    #[test]
    fn starts_with_the_arch_check_then_searches_the_number() {
        use bpf::{JEQ_K, LD_W_ABS, OFFSET_ARCH, OFFSET_NR, RET_K};
        let f = compile(&[], &[]).unwrap();
        let head: Vec<(u16, u32)> = f.prog[..4].iter().map(|i| (i.code, i.k)).collect();
        assert_eq!(
            head,
            [
                (LD_W_ABS, OFFSET_ARCH),
                (JEQ_K, AUDIT_ARCH_X86_64),
                (RET_K, libc::SECCOMP_RET_KILL_PROCESS),
                (LD_W_ABS, OFFSET_NR),
            ]
        );
        let enosys = |f: &Filter| {
            f.prog
                .iter()
                .any(|i| i.code == RET_K && i.k == errno(libc::ENOSYS))
        };
        assert!(enosys(&f));
        let with = compile(&["clone3".into(), "ptrace".into()], &[]).unwrap();
        assert!(!enosys(&with));
        assert_eq!(f.to_bytes().len(), 8 * f.len());
    }

    #[test]
    fn wide_or_impossible_conditions_are_refused() {
        assert!(cond(6, Op::Eq, 0).is_err());
        assert!(cond(0, Op::Eq, 1 << 32).is_err());
        assert!(cond(0, Op::MaskedEq(1 << 40), 0).is_err());
        assert!(cond(5, Op::MaskedEq(0xffff_ffff), 0xffff_ffff).is_ok());
        assert!(rule(vec![]).is_err());
    }

    #[test]
    fn name_checks() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_names(&s(&["ptrace", "clone3", "socket"]), &s(&["memfd_create"])).is_ok());
        assert_eq!(
            check_names(&s(&["read"]), &[]).unwrap_err().0,
            "seccomp.allow[0]"
        );
        assert_eq!(
            check_names(&[], &s(&["nope"])).unwrap_err().0,
            "seccomp.deny[0]"
        );
    }
}
