//! The proof for the security boundary: for every policy shape, the program `bpf::generate`
//! makes decides every input exactly as the reference does. The reference is what the
//! supervisor loaded before the generator: our prefix (other arch → kill, x32 → EPERM,
//! clone3 → ENOSYS) followed by seccompiler's compilation of the same table.
//!
//! Both programs run through the test interpreter (`bpf_vm`) on every syscall number up to
//! 64 past the highest we know, x32 numbers, numbers with high bits set, other
//! architectures, and, for each syscall with conditions, the product of values around every
//! condition's boundaries with garbage in the high 32 bits. The interpreter itself is checked
//! against the kernel: both programs are installed in forked children that make a sample of
//! the same calls (on top of a filter that turns "allowed" into a marker errno, so nothing
//! actually runs), and that an i386 call kills them.

use super::bpf::{self, Insn, Op, Rule, JEQ_K, JGE_K, LD_W_ABS, OFFSET_ARCH, OFFSET_NR, RET_K};
use super::bpf_vm::{const_allow, run, Data};
use super::seccomp::{self, errno, Table, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::syscalls;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::{BTreeMap, BTreeSet};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// What the supervisor compiled before the generator: the old prefix, then seccompiler.
fn reference(t: &Table) -> Vec<Insn> {
    let mut p = vec![
        insn(LD_W_ABS, 0, 0, OFFSET_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, KILL),
        insn(LD_W_ABS, 0, 0, OFFSET_NR),
        insn(JGE_K, 0, 1, X32_SYSCALL_BIT),
        insn(RET_K, 0, 0, errno(libc::EPERM)),
    ];
    if t.clone3_enosys {
        p.push(insn(JEQ_K, 0, 1, libc::SYS_clone3 as u32));
        p.push(insn(RET_K, 0, 0, errno(libc::ENOSYS)));
    }
    let op = |op: Op| match op {
        Op::Eq => SeccompCmpOp::Eq,
        Op::Ne => SeccompCmpOp::Ne,
        Op::Lt => SeccompCmpOp::Lt,
        Op::Le => SeccompCmpOp::Le,
        Op::Gt => SeccompCmpOp::Gt,
        Op::Ge => SeccompCmpOp::Ge,
        Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
    };
    let rules: BTreeMap<i64, Vec<SeccompRule>> = t
        .deny
        .iter()
        .map(|(nr, rules)| {
            let rules = rules
                .iter()
                .map(|r| {
                    let conds =
                        r.0.iter()
                            .map(|c| {
                                SeccompCondition::new(
                                    c.arg,
                                    SeccompCmpArgLen::Dword,
                                    op(c.op),
                                    u64::from(c.value),
                                )
                                .unwrap()
                            })
                            .collect();
                    SeccompRule::new(conds).unwrap()
                })
                .collect();
            (i64::from(*nr), rules)
        })
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .unwrap();
    let body: BpfProgram = filter.try_into().unwrap();
    p.extend(body.iter().map(|i| insn(i.code, i.jt, i.jf, i.k)));
    p
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The policies checked: the default (with the egress allow-list's socket and send rules),
/// allow entries, extra denies (also turning conditional rules unconditional), a mix, one
/// that keeps some network rules and drops or hardens others, and one denying every
/// even-numbered syscall (a program wide enough to need long jumps).
fn policies() -> Vec<(&'static str, Table)> {
    let t = |allow: &[&str], deny: &[&str]| seccomp::table(&names(allow), &names(deny)).unwrap();
    let even: Vec<&str> = syscalls::all()
        .iter()
        .filter(|(n, nr)| nr % 2 == 0 && *n != "execve" && *n != seccomp::CLONE3)
        .map(|(n, _)| *n)
        .collect();
    vec![
        ("default", t(&[], &[])),
        (
            "allow",
            t(
                &[
                    "ptrace",
                    "clone3",
                    "socket",
                    "personality",
                    "mount",
                    "ioctl",
                ],
                &[],
            ),
        ),
        (
            "deny",
            t(
                &[],
                &[
                    "memfd_create",
                    "socket",
                    "ioctl",
                    "execveat",
                    "getppid",
                    "read",
                    "file_setattr",
                ],
            ),
        ),
        (
            "mixed",
            t(&["clone3", "unshare", "keyctl"], &["memfd_create", "clone"]),
        ),
        ("network", t(&["socketpair", "sendto"], &["sendmsg"])),
        ("even", t(&[], &even)),
    ]
}

/// Values around every condition on `arg` of any rule in `rules`, each with 0, all ones
/// and only the top bit in the high 32 bits.
fn arg_values(rules: &[&Rule], arg: u8) -> Vec<u64> {
    let mut lows: BTreeSet<u32> = [0, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX].into();
    for c in rules.iter().flat_map(|r| &r.0).filter(|c| c.arg == arg) {
        let v = c.value;
        lows.extend([v, v.wrapping_sub(1), v.wrapping_add(1), !v]);
        if let Op::MaskedEq(m) = c.op {
            let m = m as u32;
            lows.extend([m, !m, v & m, (v & m) | !m]);
            // Each bit of the mask alone, and the expected value with each of them flipped,
            // and with the bit above the mask's top and bit 31 flipped.
            let bits: Vec<u32> = (0..32).map(|b| 1u32 << b).filter(|b| m & b != 0).collect();
            let above = (m | m >> 1 | m >> 2 | m >> 4 | m >> 8 | m >> 16).wrapping_add(1);
            lows.extend(bits.iter().copied());
            lows.extend(bits.iter().chain(&[above, 1 << 31]).map(|b| (v & m) ^ b));
        }
    }
    lows.iter()
        .flat_map(|&l| [0u64, 0xffff_ffff, 0x8000_0000].map(|h| h << 32 | u64::from(l)))
        .collect()
}

const BASE_ARGS: [[u64; 6]; 3] = [
    [0; 6],
    [u64::MAX; 6],
    [
        0xdead_beef_0000_0001,
        0x0000_0001_0000_5412,
        0xffff_ffff_0000_0000,
        7,
        0x8000_0000,
        0x1234_5678_9abc_def0,
    ],
];

/// Every input, for all the policies at once: rules of any policy give their syscall the
/// argument values of all of them, so a policy that allows or fully denies a syscall is
/// checked with the same values as one that inspects it.
fn inputs(policies: &[(&str, Table)]) -> Vec<Data> {
    let mut rules: BTreeMap<u32, Vec<&Rule>> = BTreeMap::new();
    for (_, t) in policies {
        for (nr, rs) in &t.deny {
            rules.entry(*nr).or_default().extend(rs);
        }
    }
    let max = syscalls::all()
        .iter()
        .map(|(_, n)| *n as u32)
        .max()
        .unwrap();
    let mut nrs: Vec<u32> = (0..=max + 64).collect();
    nrs.extend((0..=max + 64).map(|n| n | X32_SYSCALL_BIT));
    nrs.extend(
        rules
            .keys()
            .flat_map(|n| [n | 0x8000_0000, n | 0xc000_0000, n | 1 << 31 | 1 << 16]),
    );
    nrs.extend([
        X32_SYSCALL_BIT - 1,
        0x7fff_ffff,
        0x8000_0000,
        0xbfff_ffff,
        0xc000_0000,
        u32::MAX - 1,
        u32::MAX,
    ]);
    let mut out = Vec::new();
    for &nr in &nrs {
        let mut argv: Vec<[u64; 6]> = BASE_ARGS.to_vec();
        if let Some(rs) = rules.get(&nr) {
            // The product over the arguments with conditions, the others all zeros or all
            // ones.
            argv.truncate(2);
            for arg in 0..6u8 {
                if rs.iter().any(|r| r.0.iter().any(|c| c.arg == arg)) {
                    let values = arg_values(rs, arg);
                    argv = argv
                        .iter()
                        .flat_map(|base| {
                            values.iter().map(move |v| {
                                let mut a = *base;
                                a[arg as usize] = *v;
                                a
                            })
                        })
                        .collect();
                }
            }
        }
        out.extend(argv.into_iter().map(|args| Data {
            nr,
            arch: AUDIT_ARCH_X86_64,
            args,
        }));
    }
    // Other architectures, and near misses of ours.
    let arches = [
        AUDIT_ARCH_I386,
        0xc000_00b7, // aarch64
        0,
        u32::MAX,
        AUDIT_ARCH_X86_64 & !0x4000_0000,
        AUDIT_ARCH_X86_64 & !0x8000_0000,
        AUDIT_ARCH_X86_64 ^ 1,
        AUDIT_ARCH_X86_64 + 0x100,
    ];
    for arch in arches {
        for nr in (0..=max + 64).chain([X32_SYSCALL_BIT | 16, u32::MAX]) {
            out.push(Data {
                nr,
                arch,
                args: BASE_ARGS[0],
            });
        }
    }
    out
}

#[test]
fn generated_programs_decide_every_input_as_the_reference() {
    let policies = policies();
    let inputs = inputs(&policies);
    let mut total = 0usize;
    for (name, t) in &policies {
        let ours = bpf::generate(&seccomp::spec(t)).unwrap();
        let reference = reference(t);
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        for d in &inputs {
            let (a, b) = (run(&ours, d), run(&reference, d));
            assert_eq!(a, b, "policy {name}: {d:x?}: ours {a:#x}, reference {b:#x}");
            *seen.entry(a).or_default() += 1;
            total += 1;
        }
        // Each kind of decision was actually reached.
        for k in [ALLOW, errno(libc::EPERM), KILL] {
            assert!(seen.contains_key(&k), "policy {name} never returned {k:#x}");
        }
        assert_eq!(
            seen.contains_key(&errno(libc::ENOSYS)),
            t.clone3_enosys,
            "policy {name}"
        );
        eprintln!(
            "policy {name}: {} instructions (reference {}), {} inputs, decisions {seen:x?}",
            ours.len(),
            reference.len(),
            inputs.len()
        );
    }
    assert!(total > 1_000_000, "only {total} inputs");
}

/// The kernel skips the program for a syscall it finds allowed whatever the arguments;
/// ours must leave that cache exactly the syscalls it has for the reference.
#[test]
fn the_kernel_caches_the_same_syscalls() {
    for (name, t) in policies() {
        let ours = bpf::generate(&seccomp::spec(&t)).unwrap();
        let reference = reference(&t);
        for nr in 0..600 {
            for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386] {
                assert_eq!(
                    const_allow(&ours, arch, nr),
                    const_allow(&reference, arch, nr),
                    "policy {name}: nr {nr} arch {arch:#x}"
                );
            }
            let free = !(t.deny.contains_key(&nr) || t.clone3_enosys && nr == 435);
            assert_eq!(
                const_allow(&ours, AUDIT_ARCH_X86_64, nr),
                free,
                "{name} {nr}"
            );
        }
    }
}

/// The default program's shape: what the README states.
#[test]
fn default_program_size() {
    let t = seccomp::table(&[], &[]).unwrap();
    let ours = bpf::generate(&seccomp::spec(&t)).unwrap();
    let reference = reference(&t);
    eprintln!(
        "default: ours {} instructions, reference {}",
        ours.len(),
        reference.len()
    );
    assert!(
        ours.len() * 3 < reference.len(),
        "{} vs {}",
        ours.len(),
        reference.len()
    );
}

// ----- the interpreter against the kernel ---------------------------------------------------

/// Installed first: returns `MARK` for everything but the two calls the test child needs
/// (seccomp, to install the program under test, and exit_group). The kernel runs the newest
/// filter first and keeps the first of equal precedence, so the program under test decides
/// EPERM/ENOSYS/kill itself, and its "allow" comes back as MARK instead of running the call.
const MARK: i64 = 4000;

fn catch_all() -> Vec<Insn> {
    vec![
        insn(LD_W_ABS, 0, 0, OFFSET_ARCH),
        insn(JEQ_K, 0, 4, AUDIT_ARCH_X86_64),
        insn(LD_W_ABS, 0, 0, OFFSET_NR),
        insn(JEQ_K, 2, 0, libc::SYS_seccomp as u32),
        insn(JEQ_K, 1, 0, libc::SYS_exit_group as u32),
        insn(RET_K, 0, 0, errno(MARK as i32)),
        insn(RET_K, 0, 0, ALLOW),
    ]
}

fn fprog(p: &[Insn]) -> libc::sock_fprog {
    libc::sock_fprog {
        len: p.len() as u16,
        filter: p.as_ptr() as *mut libc::sock_filter,
    }
}

/// # Safety
/// The caller makes sure the call has no effect that matters (here: it never runs).
unsafe fn raw_syscall(nr: u32, a: &[u64; 6]) -> i64 {
    let ret: i64;
    std::arch::asm!(
        "syscall",
        inlateout("rax") u64::from(nr) as i64 => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

/// Forks a child that enters `catch_all` and `prog`, makes every call of `calls` (x86-64)
/// and, with `i386`, an i386 getpid at the end. Returns the raw results (-errno) and how
/// the child ended (`waitpid` status). The child makes raw syscalls only.
fn in_kernel(prog: &[Insn], calls: &[(u32, [u64; 6])], i386: bool) -> (Vec<i64>, i32) {
    let catch = catch_all();
    let (first, second) = (fprog(&catch), fprog(prog));
    let bytes = calls.len().max(1) * 8;
    // SAFETY: anonymous shared mapping, unmapped below; the child writes only inside it.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(mem, libc::MAP_FAILED);
    let out = mem as *mut i64;
    // SAFETY: the child only makes raw syscalls on memory prepared before the fork, and
    // exits with exit_group; nothing it calls is allowed to run except seccomp itself.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            let install = |p: &libc::sock_fprog| {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    p as *const libc::sock_fprog,
                )
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(10);
            }
            if install(&first) != 0 {
                libc::_exit(11);
            }
            if install(&second) != 0 {
                libc::_exit(12);
            }
            for (i, (nr, args)) in calls.iter().enumerate() {
                *out.add(i) = raw_syscall(*nr, args);
            }
            if i386 {
                // getpid in the i386 table; the filter must kill us here.
                std::arch::asm!(
                    "int 0x80",
                    inlateout("rax") 20i64 => _,
                    lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                );
            }
            raw_syscall(libc::SYS_exit_group as u32, &[0; 6]);
            libc::_exit(13);
        }
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let results = (0..calls.len())
        // SAFETY: inside the mapping, written by the child that has exited.
        .map(|i| unsafe { *out.add(i) })
        .collect();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(mem, bytes) };
    (results, status)
}

/// What the kernel returns for a filter decision under `catch_all`.
fn expected_result(ret: u32) -> i64 {
    match ret {
        ALLOW => -MARK,
        r if r & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_ERRNO => {
            -i64::from(r & libc::SECCOMP_RET_DATA)
        }
        r => panic!("unexpected decision {r:#x} for an x86-64 call"),
    }
}

#[test]
fn the_interpreter_agrees_with_the_kernel() {
    let policies = policies();
    let all = inputs(&policies);
    // The sample: every x86-64 input of a number without conditions, and every 5th of the
    // argument combinations of the others; not the two calls the child needs, nor
    // uretprobe and uprobe, which the kernel passes through every filter (and answers with
    // SIGILL outside a probe trampoline).
    let conditional: BTreeSet<u32> = policies
        .iter()
        .flat_map(|(_, t)| {
            t.deny
                .iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(n, _)| *n)
        })
        .collect();
    let skip = [
        libc::SYS_seccomp as u32,
        libc::SYS_exit_group as u32,
        335,
        336,
    ];
    let sample: Vec<&Data> = all
        .iter()
        .enumerate()
        .filter(|(i, d)| {
            d.arch == AUDIT_ARCH_X86_64
                && !skip.contains(&(d.nr & !X32_SYSCALL_BIT))
                && (!conditional.contains(&d.nr) || i % 5 == 0)
        })
        .map(|(_, d)| d)
        .collect();
    let calls: Vec<(u32, [u64; 6])> = sample.iter().map(|d| (d.nr, d.args)).collect();
    let mut checked = 0;
    for (name, t) in &policies {
        for (which, prog) in [
            ("ours", bpf::generate(&seccomp::spec(t)).unwrap()),
            ("reference", reference(t)),
        ] {
            let (got, status) = in_kernel(&prog, &calls, false);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{name}/{which}: child ended with status {status:#x}"
            );
            for (d, r) in sample.iter().zip(&got) {
                assert_eq!(
                    *r,
                    expected_result(run(&prog, d)),
                    "{name}/{which}: the kernel and the interpreter differ on {d:x?}"
                );
            }
            checked += got.len();
            // An i386 call: the interpreter says kill, the kernel must kill.
            let d = Data {
                nr: 20,
                arch: AUDIT_ARCH_I386,
                args: [0; 6],
            };
            assert_eq!(run(&prog, &d), KILL);
            let (_, status) = in_kernel(&prog, &[], true);
            assert!(
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
                "{name}/{which}: an i386 call did not kill the child (status {status:#x})"
            );
        }
    }
    assert!(
        checked > 100_000,
        "only {checked} calls checked in the kernel"
    );
}
