//! Test-only classic-BPF interpreter for seccomp programs: runs ours and the reference
//! (seccompiler's) on the same `seccomp_data`. It implements exactly the instructions both
//! generators emit and panics on anything else, on a jump out of the program and on running
//! off its end, so a program it accepts is one the kernel runs the same way (the kernel
//! cross-check in `seccomp_equivalence` confirms that on a sample).

use super::bpf::*;

/// `struct seccomp_data` without the instruction pointer (no filter of ours reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> u32 {
        match off {
            OFFSET_NR => self.nr,
            OFFSET_ARCH => self.arch,
            // instruction_pointer: never read by our filters.
            8 | 12 => panic!("the program reads the instruction pointer"),
            16..=63 => {
                let a = self.args[(off as usize - 16) / 8];
                if off.is_multiple_of(8) {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => panic!("load outside seccomp_data at {off}"),
        }
    }
}

/// The `SECCOMP_RET_*` value `prog` returns for `d`.
pub fn run(prog: &[Insn], d: &Data) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = *prog
            .get(pc)
            .unwrap_or_else(|| panic!("ran off the program at {pc}"));
        pc += 1;
        let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
        match i.code {
            LD_W_ABS => {
                assert!(i.k.is_multiple_of(4), "unaligned load at {}", pc - 1);
                acc = d.word(i.k);
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ_K => pc += jump(acc == i.k),
            JGT_K => pc += jump(acc > i.k),
            JGE_K => pc += jump(acc >= i.k),
            JSET_K => pc += jump(acc & i.k != 0),
            RET_K => return i.k,
            other => panic!("opcode {other:#x} at {} is not interpreted", pc - 1),
        }
    }
}

/// The kernel's `seccomp_is_const_allow` (kernel/seccomp.c): whether `nr` on `arch` is
/// allowed whatever the arguments, judged without running the program, so the action
/// cache lets the call through without it.
pub fn const_allow(prog: &[Insn], arch: u32, nr: u32) -> bool {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
        match i.code {
            LD_W_ABS => match i.k {
                OFFSET_NR => acc = nr,
                OFFSET_ARCH => acc = arch,
                _ => return false,
            },
            RET_K => return i.k == libc::SECCOMP_RET_ALLOW,
            JA => pc += i.k as usize,
            JEQ_K => pc += jump(acc == i.k),
            JGE_K => pc += jump(acc >= i.k),
            JGT_K => pc += jump(acc > i.k),
            JSET_K => pc += jump(acc & i.k != 0),
            ALU_AND_K => acc &= i.k,
            _ => return false,
        }
    }
    false
}
