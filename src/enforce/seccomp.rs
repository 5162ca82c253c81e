//! The child's seccomp filter: default allow, with a deny list (EPERM) of the syscalls an
//! agent has no business making and that widen the kernel's attack surface.
//!
//! The program is compiled once in the supervisor (seccompiler builds the per-syscall
//! part) and installed in the child with a single raw `seccomp(2)` call. We prepend our own
//! instructions for what seccompiler cannot express: the x32 syscall range, and `clone3`
//! answered ENOSYS (its flags live in memory the filter cannot read; ENOSYS makes libc fall
//! back to `clone`, whose flags we do check).

use super::stage::{Failure, Stage};
use super::syscalls;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
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
/// The x32 ABI shares the x86-64 audit arch and marks its syscall numbers with this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

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
fn nr(name: &str) -> i64 {
    syscalls::number(name).unwrap_or_else(|| unreachable!("{name} missing from the table"))
}

fn cond(arg: u8, op: Op, value: u64) -> Result<SeccompCondition, String> {
    // Dword: compare the low 32 bits only. The kernel reads these arguments as 32-bit
    // ints, so garbage in the high half must not let a call slip past a 64-bit compare.
    SeccompCondition::new(arg, Len::Dword, op, value).map_err(|e| e.to_string())
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conds).map_err(|e| e.to_string())
}

/// The rules under which the conditional syscall `name` is denied (any rule matches).
fn conditional_rules(name: &str) -> Result<Vec<SeccompRule>, String> {
    let any_flag = |flags: &[u64]| -> Result<Vec<SeccompRule>, String> {
        flags
            .iter()
            .map(|f| rule(vec![cond(0, Op::MaskedEq(*f), *f)?]))
            .collect()
    };
    let not_in = |arg: u8, values: &[u64]| -> Result<SeccompRule, String> {
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
    prog: BpfProgram,
    /// Default-denied syscalls the policy allowed, and extra ones it denied.
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

impl Filter {
    /// Length in BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Child side: installs the filter. One raw syscall on memory prepared before fork.
    /// Requires no_new_privs (or CAP_SYS_ADMIN).
    pub fn install(&self) -> Result<(), Failure> {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            // seccompiler's sock_filter is repr(C) with the kernel's layout.
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

fn stmt(code: u16, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

// Classic BPF opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K,
// BPF_JMP|BPF_JGE|BPF_K, BPF_RET|BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

/// Our prefix: wrong arch → kill (an i386 `int 0x80` call would be decoded with other
/// numbers), x32 range → EPERM, clone3 → ENOSYS unless the policy allows it.
fn prefix(clone3_allowed: bool) -> Vec<seccompiler::sock_filter> {
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, errno(libc::EPERM)),
    ];
    if !clone3_allowed {
        p.push(jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        p.push(stmt(BPF_RET_K, errno(libc::ENOSYS)));
    }
    p
}

/// Compiles the default deny list adjusted by the policy's `allow` and `deny` names
/// (already checked by [`check_names`]).
pub fn compile(allow: &[String], deny: &[String]) -> Result<Filter, String> {
    let allowed = |name: &str| allow.iter().any(|a| a == name);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
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
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| format!("cannot build the seccomp filter: {e}"))?;
    let body: BpfProgram = filter
        .try_into()
        .map_err(|e| format!("cannot compile the seccomp filter: {e}"))?;
    let mut prog = prefix(allowed(CLONE3));
    prog.extend(body);
    // BPF_MAXINSNS: the kernel refuses longer classic-BPF programs.
    if prog.len() > 4096 {
        return Err(format!(
            "the seccomp filter is {} instructions, over the kernel's 4096 limit; deny fewer syscalls",
            prog.len()
        ));
    }
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
    fn compiles_with_prefix() {
        let f = compile(&[], &[]).unwrap();
        // Arch check, x32, clone3 come first.
        assert_eq!(f.prog[0].k, OFFSET_ARCH);
        assert_eq!(f.prog[4].k, X32_SYSCALL_BIT);
        assert_eq!(f.prog[6].k, libc::SYS_clone3 as u32);
        let with = compile(&["clone3".into(), "ptrace".into()], &[]).unwrap();
        assert!(with.len() < f.len());
        assert!(!with
            .prog
            .iter()
            .any(|i| i.code == BPF_JEQ_K && i.k == libc::SYS_clone3 as u32));
        let more = compile(&[], &["memfd_create".into()]).unwrap();
        assert!(more.len() > f.len());
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
