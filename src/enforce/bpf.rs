//! Classic BPF for seccomp: the instruction format, and the generator that turns a table of
//! per-syscall decisions into a program.
//!
//! The program checks the architecture, loads the syscall number once, and finds its
//! decision with a binary search over number ranges (ranges of equal decisions merged), so
//! every call walks about log2(ranges) comparisons instead of a chain as long as the table.
//! Arguments are inspected only on the syscalls that have conditions. Unconditional decisions
//! use only the instructions the kernel's seccomp action cache can evaluate without
//! arguments, so an always-allowed syscall never runs the program at all after the first
//! evaluation (`seccomp_cache_prepare` in kernel/seccomp.c).
//!
//! Code is emitted backwards, from the last instruction to the first: every jump target is
//! then already placed and its distance known. A conditional jump reaches 255 instructions
//! at most (8-bit `jt`/`jf`); a farther target gets a trampoline next to the jump, a copy of
//! the `ret` when the target is one, else an unconditional `ja` with its 32-bit offset.

/// One instruction, with the kernel's `struct sock_filter` layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == std::mem::size_of::<libc::sock_filter>());
const _: () = assert!(std::mem::align_of::<Insn>() == std::mem::align_of::<libc::sock_filter>());

// Opcodes (linux/bpf_common.h), only those this generator emits.
pub const LD_W_ABS: u16 = 0x20;
pub const ALU_AND_K: u16 = 0x54;
pub const JA: u16 = 0x05;
pub const JEQ_K: u16 = 0x15;
pub const JGT_K: u16 = 0x25;
pub const JGE_K: u16 = 0x35;
pub const JSET_K: u16 = 0x45;
pub const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
pub const OFFSET_NR: u32 = 0;
pub const OFFSET_ARCH: u32 = 4;
/// The low 32 bits of argument `i` (little endian).
pub fn offset_arg_low(i: u8) -> u32 {
    16 + 8 * u32::from(i)
}
pub const SECCOMP_DATA_LEN: u32 = 64;
/// BPF_MAXINSNS: the kernel refuses longer classic-BPF programs.
pub const MAX_LEN: usize = 4096;

/// A comparison of the low 32 bits of an argument with a value; `MaskedEq(m)` compares
/// `arg & m` with `value & m`. The orderings are unused by today's tables but generated
/// and tested, so a rule that needs one can be added as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    #[allow(dead_code)]
    Lt,
    #[allow(dead_code)]
    Le,
    #[allow(dead_code)]
    Gt,
    #[allow(dead_code)]
    Ge,
    MaskedEq(u64),
}

/// One condition on an argument. Built by `seccomp::cond`, which checks the ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub arg: u8,
    pub op: Op,
    pub value: u32,
}

/// Holds when all its conditions hold (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule(pub Vec<Cond>);

/// What a syscall number (or a range of them) gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Always this `SECCOMP_RET_*` value.
    Ret(u32),
    /// `on_match` when any rule holds, else `otherwise`.
    Rules {
        rules: Vec<Rule>,
        on_match: u32,
        otherwise: u32,
    },
}

/// The whole filter: an architecture, what other architectures get, and the decisions by
/// syscall number (inclusive ranges that must not overlap); numbers in no range get
/// `default`.
#[derive(Clone, Debug)]
pub struct Spec {
    pub arch: u32,
    pub wrong_arch: u32,
    pub default: u32,
    pub entries: Vec<(u32, u32, Leaf)>,
}

/// Compiles `spec` into a program the kernel accepts (checked with [`verify`]).
pub fn generate(spec: &Spec) -> Result<Vec<Insn>, String> {
    let ranges = partition(spec)?;
    let mut asm = Asm::default();
    let body = asm.tree(&ranges);
    asm.fall_into(body);
    let load_nr = asm.emit(stmt(LD_W_ABS, OFFSET_NR));
    let kill = asm.ret(spec.wrong_arch);
    asm.jump(JEQ_K, spec.arch, load_nr, kill);
    asm.emit(stmt(LD_W_ABS, OFFSET_ARCH));
    let prog = asm.finish();
    verify(&prog)?;
    Ok(prog)
}

/// The kernel's checks of a seccomp program (bpf_check_classic, seccomp_check_filter) for
/// the instructions we emit, so a generator bug is a clear error at start-up rather than
/// EINVAL in the child.
pub fn verify(prog: &[Insn]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > MAX_LEN {
        return Err(format!(
            "the seccomp filter is {} instructions; the kernel takes 1 to {MAX_LEN}: deny fewer syscalls",
            prog.len()
        ));
    }
    let inside = |pc: usize, off: usize| pc + 1 + off < prog.len();
    for (pc, i) in prog.iter().enumerate() {
        let ok = match i.code {
            LD_W_ABS => i.k < SECCOMP_DATA_LEN && i.k.is_multiple_of(4),
            ALU_AND_K | RET_K => true,
            JA => inside(pc, i.k as usize),
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                inside(pc, i.jt as usize) && inside(pc, i.jf as usize)
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "internal error: seccomp instruction {pc} ({i:?}) is invalid"
            ));
        }
    }
    if prog[prog.len() - 1].code != RET_K {
        return Err("internal error: the seccomp program does not end with ret".into());
    }
    Ok(())
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `spec`'s entries as a partition of all u32 numbers into ranges: (first number, leaf),
/// sorted, the first starting at 0, each running to the next one's start; neighbours with
/// the same constant decision merged.
fn partition(spec: &Spec) -> Result<Vec<(u32, Leaf)>, String> {
    let mut entries: Vec<&(u32, u32, Leaf)> = spec.entries.iter().collect();
    entries.sort_by_key(|e| e.0);
    let mut out: Vec<(u32, Leaf)> = Vec::new();
    let mut push = |start: u32, leaf: Leaf| match (out.last(), &leaf) {
        (Some((_, Leaf::Ret(prev))), Leaf::Ret(k)) if prev == k => {}
        _ => out.push((start, leaf)),
    };
    // The next number not yet covered; None once u32::MAX is covered.
    let mut next = Some(0u32);
    for (first, last, leaf) in entries {
        if first > last {
            return Err(format!(
                "internal error: empty syscall range {first}..={last}"
            ));
        }
        let Some(n) = next.filter(|n| first >= n) else {
            return Err(format!("internal error: syscall {first} has two decisions"));
        };
        if *first > n {
            push(n, Leaf::Ret(spec.default));
        }
        push(*first, leaf.clone());
        next = last.checked_add(1);
    }
    if let Some(n) = next {
        push(n, Leaf::Ret(spec.default));
    }
    Ok(out)
}

/// What the accumulator holds at a point of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Acc {
    Nr,
    Arg(u8),
    Unknown,
}

/// A condition lowered to one jump: the condition holds when the jump is taken, or, with
/// `negate`, when it is not. `mask`: an `and` first (which changes the accumulator).
/// `load`: whether the argument must be loaded first (set by [`Expr::plan_loads`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Check {
    arg: u8,
    mask: Option<u32>,
    code: u16,
    k: u32,
    negate: bool,
    load: bool,
}

fn lower(c: &Cond) -> Check {
    let (mut mask, mut code, mut k, mut negate) = (None, JEQ_K, c.value, false);
    match c.op {
        Op::Eq => {}
        Op::Ne => negate = true,
        Op::Gt => code = JGT_K,
        Op::Ge => code = JGE_K,
        Op::Lt => (code, negate) = (JGE_K, true),
        Op::Le => (code, negate) = (JGT_K, true),
        Op::MaskedEq(m) => {
            // `seccomp::cond` keeps masks within 32 bits.
            let m = m as u32;
            let v = c.value & m;
            if v == 0 {
                // None of the mask's bits set (m == 0: always true, jset 0 never jumps).
                (code, k, negate) = (JSET_K, m, true);
            } else if v == m && m.is_power_of_two() {
                (code, k) = (JSET_K, m);
            } else {
                (mask, k) = (Some(m), v);
            }
        }
    }
    Check {
        arg: c.arg,
        mask,
        code,
        k,
        negate,
        load: true,
    }
}

/// The rules of a syscall as a tree of checks: `Any` holds when one of its parts does,
/// `All` when every part does. Parts are tried in order and a failing part falls through
/// to the next alternative, so the tree is also the program's shape.
#[derive(Clone, Debug)]
enum Expr {
    Check(Check),
    All(Vec<Expr>),
    Any(Vec<Expr>),
}

/// A single positive flag test: rules made of one such test on the same argument merge
/// into one `jset` of all their bits (any bit set ⇔ some rule holds).
fn flag_test(rule: &[Check]) -> Option<(u8, u32)> {
    match rule {
        [c] if c.code == JSET_K && !c.negate && c.mask.is_none() => Some((c.arg, c.k)),
        _ => None,
    }
}

/// Any of `rules` (each: all of its checks), factored: flag tests merged, and rules that
/// start with the same check share it (`c ∧ x ∨ c ∧ y` = `c ∧ (x ∨ y)`; the order of the
/// alternatives does not matter, they have no side effects).
fn factor(rules: Vec<Vec<Check>>) -> Expr {
    let mut merged: Vec<Vec<Check>> = Vec::new();
    for rule in rules {
        if let Some((arg, bits)) = flag_test(&rule) {
            if let Some(m) = merged
                .iter_mut()
                .find(|m| flag_test(m).is_some_and(|(a, _)| a == arg))
            {
                m[0].k |= bits;
                continue;
            }
        }
        merged.push(rule);
    }
    // Group by first check, in order of first appearance.
    let mut groups: Vec<(Check, Vec<Vec<Check>>)> = Vec::new();
    for rule in merged {
        let (first, rest) = (rule[0], rule[1..].to_vec());
        match groups.iter_mut().find(|(c, _)| *c == first) {
            Some((_, rests)) => rests.push(rest),
            None => groups.push((first, vec![rest])),
        }
    }
    let mut any: Vec<Expr> = groups
        .into_iter()
        .map(|(first, rests)| {
            if rests.iter().any(|r| r.is_empty()) {
                // One of the rules is this check alone: the others add nothing.
                Expr::Check(first)
            } else {
                Expr::All(vec![Expr::Check(first), factor(rests)])
            }
        })
        .collect();
    if any.len() == 1 {
        any.remove(0)
    } else {
        Expr::Any(any)
    }
}

/// What the accumulator holds after several paths meet.
fn meet(states: impl IntoIterator<Item = Acc>) -> Acc {
    let mut it = states.into_iter();
    let first = it.next().unwrap_or(Acc::Unknown);
    if it.all(|s| s == first) {
        first
    } else {
        Acc::Unknown
    }
}

impl Expr {
    /// Sets each check's `load`: not when every path into it leaves that argument in the
    /// accumulator. `entry`: what it holds on entry; returns what it holds on the true and
    /// the false exit.
    fn plan_loads(&mut self, entry: Acc) -> (Acc, Acc) {
        match self {
            Expr::Check(c) => {
                c.load = entry != Acc::Arg(c.arg);
                let after = if c.mask.is_some() {
                    Acc::Unknown
                } else {
                    Acc::Arg(c.arg)
                };
                (after, after)
            }
            // A part is entered from the previous part's true exit; any part's false exit
            // leaves the whole.
            Expr::All(parts) => {
                let mut acc = entry;
                let mut falses = Vec::new();
                for p in parts {
                    let (t, f) = p.plan_loads(acc);
                    falses.push(f);
                    acc = t;
                }
                (acc, meet(falses))
            }
            // An alternative is entered from the previous one's false exit.
            Expr::Any(parts) => {
                let mut acc = entry;
                let mut trues = Vec::new();
                for p in parts {
                    let (t, f) = p.plan_loads(acc);
                    trues.push(t);
                    acc = f;
                }
                (meet(trues), acc)
            }
        }
    }
}

/// How many plain ranges a range with conditions weighs in the search tree.
const INSPECTED: usize = 32;

/// The backwards assembler. A label is an index into `rev` (the program reversed).
#[derive(Default)]
struct Asm {
    rev: Vec<Insn>,
    /// The most recently placed `ret` of each value: jumps share it while it is in reach.
    rets: Vec<(u32, usize)>,
}

impl Asm {
    fn emit(&mut self, i: Insn) -> usize {
        self.rev.push(i);
        self.rev.len() - 1
    }

    /// The offset a jump placed next would need to reach `target`.
    fn distance(&self, target: usize) -> usize {
        self.rev.len() - target - 1
    }

    fn ret(&mut self, k: u32) -> usize {
        match self.rets.iter().find(|(v, _)| *v == k) {
            Some((_, l)) => *l,
            None => self.new_ret(k),
        }
    }

    fn new_ret(&mut self, k: u32) -> usize {
        let l = self.emit(stmt(RET_K, k));
        self.rets.retain(|(v, _)| *v != k);
        self.rets.push((k, l));
        l
    }

    /// A label within a conditional jump's reach of the next instruction that leads to
    /// `target`: itself, a copy of its `ret`, or a `ja` to it.
    fn reach(&mut self, target: usize) -> usize {
        let d = self.distance(target);
        if d <= u8::MAX as usize {
            return target;
        }
        let t = self.rev[target];
        if t.code == RET_K {
            self.new_ret(t.k)
        } else {
            self.emit(stmt(JA, d as u32))
        }
    }

    /// Makes the next instruction placed (the one before, in program order) continue at
    /// `target`.
    fn fall_into(&mut self, target: usize) {
        if target + 1 != self.rev.len() {
            let t = self.rev[target];
            if t.code == RET_K {
                self.new_ret(t.k);
            } else {
                self.emit(stmt(JA, self.distance(target) as u32));
            }
        }
    }

    /// `code k`: to `t` when the comparison holds, else to `f`.
    fn jump(&mut self, code: u16, k: u32, mut t: usize, mut f: usize) -> usize {
        loop {
            let (dt, df) = (self.distance(t), self.distance(f));
            if dt <= u8::MAX as usize && df <= u8::MAX as usize {
                return self.emit(Insn {
                    code,
                    jt: dt as u8,
                    jf: df as u8,
                    k,
                });
            }
            if dt > u8::MAX as usize {
                t = self.reach(t);
            } else {
                f = self.reach(f);
            }
        }
    }

    /// Binary search over `ranges` (the accumulator holds the syscall number), split at
    /// the weighted middle: a syscall with conditions weighs as much as [`INSPECTED`]
    /// others, so it sits near the root. Only those and denied calls run the program in
    /// practice; an always-allowed call is answered by the kernel's cache.
    fn tree(&mut self, ranges: &[(u32, Leaf)]) -> usize {
        if let [(_, leaf)] = ranges {
            return self.leaf(leaf);
        }
        let weight = |r: &(u32, Leaf)| match r.1 {
            Leaf::Rules { .. } => INSPECTED,
            Leaf::Ret(_) => 1,
        };
        let total: usize = ranges.iter().map(weight).sum();
        let mut below = 0;
        let mid = ranges
            .iter()
            .position(|r| {
                below += weight(r);
                2 * below >= total
            })
            .map_or(1, |i| i + 1)
            .clamp(1, ranges.len() - 1);
        let high = self.tree(&ranges[mid..]);
        let low = self.tree(&ranges[..mid]);
        self.jump(JGE_K, ranges[mid].0, high, low)
    }

    fn leaf(&mut self, leaf: &Leaf) -> usize {
        match leaf {
            Leaf::Ret(k) => self.ret(*k),
            Leaf::Rules {
                rules,
                on_match,
                otherwise,
            } if !rules.is_empty() => self.rules(rules, *on_match, *otherwise),
            Leaf::Rules { otherwise, .. } => self.ret(*otherwise),
        }
    }

    fn rules(&mut self, rules: &[Rule], on_match: u32, otherwise: u32) -> usize {
        let mut expr = factor(
            rules
                .iter()
                .map(|r| r.0.iter().map(lower).collect())
                .collect(),
        );
        // The leaf is entered from the search tree, with the syscall number loaded.
        expr.plan_loads(Acc::Nr);
        let otherwise = self.ret(otherwise);
        let on_match = self.ret(on_match);
        self.expr(&expr, on_match, otherwise)
    }

    /// `e`'s code: to `t` when it holds, else to `f`. Returns its start.
    fn expr(&mut self, e: &Expr, t: usize, f: usize) -> usize {
        match e {
            Expr::Check(c) => {
                let (jt, jf) = if c.negate { (f, t) } else { (t, f) };
                let mut l = self.jump(c.code, c.k, jt, jf);
                if let Some(m) = c.mask {
                    l = self.emit(stmt(ALU_AND_K, m));
                }
                if c.load {
                    l = self.emit(stmt(LD_W_ABS, offset_arg_low(c.arg)));
                }
                l
            }
            Expr::All(parts) => parts.iter().rev().fold(t, |next, p| self.expr(p, next, f)),
            Expr::Any(parts) => parts.iter().rev().fold(f, |next, p| self.expr(p, t, next)),
        }
    }

    fn finish(mut self) -> Vec<Insn> {
        self.rev.reverse();
        self.rev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::bpf_vm::{run, Data};

    const ALLOW: u32 = 0x7fff_0000;
    const KILL: u32 = 0x8000_0000;
    const ERR: u32 = 0x0005_0000;
    const ARCH: u32 = 0xc000_003e;

    /// The meaning of a spec, evaluated directly: the oracle for the generator.
    fn model(spec: &Spec, d: &Data) -> u32 {
        if d.arch != spec.arch {
            return spec.wrong_arch;
        }
        let low = |i: u8| d.args[i as usize] as u32;
        let holds = |c: &Cond| {
            let a = low(c.arg);
            match c.op {
                Op::Eq => a == c.value,
                Op::Ne => a != c.value,
                Op::Lt => a < c.value,
                Op::Le => a <= c.value,
                Op::Gt => a > c.value,
                Op::Ge => a >= c.value,
                Op::MaskedEq(m) => a & m as u32 == c.value & m as u32,
            }
        };
        for (first, last, leaf) in &spec.entries {
            if (*first..=*last).contains(&d.nr) {
                return match leaf {
                    Leaf::Ret(k) => *k,
                    Leaf::Rules {
                        rules,
                        on_match,
                        otherwise,
                    } => {
                        if rules.iter().any(|r| r.0.iter().all(holds)) {
                            *on_match
                        } else {
                            *otherwise
                        }
                    }
                };
            }
        }
        spec.default
    }

    fn c(arg: u8, op: Op, value: u32) -> Cond {
        Cond { arg, op, value }
    }

    /// Interesting values around every condition of `rules` on `arg`.
    fn values(rules: &[Rule], arg: u8) -> Vec<u64> {
        let mut lows = vec![0u32, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        for r in rules {
            for cd in r.0.iter().filter(|cd| cd.arg == arg) {
                let v = cd.value;
                lows.extend([v, v.wrapping_sub(1), v.wrapping_add(1), !v]);
                if let Op::MaskedEq(m) = cd.op {
                    let m = m as u32;
                    lows.extend([m, v & m, (v & m) ^ m, !m, v | !m]);
                    lows.extend((0..32).map(|b| 1u32 << b).filter(|b| m & b != 0));
                    lows.extend((0..32).map(|b| (v & m) ^ (1 << b)));
                }
            }
        }
        lows.sort_unstable();
        lows.dedup();
        lows.iter()
            .flat_map(|&l| [0u64, 0xffff_ffff, 0x8000_0000].map(|h| h << 32 | u64::from(l)))
            .collect()
    }

    fn check_spec(spec: &Spec) -> usize {
        let prog = generate(spec).unwrap();
        let mut n = 0;
        let mut nrs: Vec<u32> = vec![0, 1, u32::MAX, u32::MAX - 1, 0x4000_0000];
        for (first, last, _) in &spec.entries {
            nrs.extend([*first, *last, first.wrapping_sub(1), last.wrapping_add(1)]);
        }
        for &nr in &nrs {
            let rules: &[Rule] = match spec.entries.iter().find(|e| (e.0..=e.1).contains(&nr)) {
                Some((_, _, Leaf::Rules { rules, .. })) => rules,
                _ => &[],
            };
            // The product of the bases and each argument's values, or, when it is large,
            // a fixed pseudo-random 50,000 of it.
            let per_arg: Vec<(u8, Vec<u64>)> = (0..6u8)
                .filter(|a| rules.iter().any(|r| r.0.iter().any(|c| c.arg == *a)))
                .map(|a| (a, values(rules, a)))
                .collect();
            let bases = [[0u64; 6], [u64::MAX; 6]];
            let total: u64 = per_arg.iter().map(|(_, v)| v.len() as u64).product::<u64>() * 2;
            let picks: Vec<u64> = if total <= 50_000 {
                (0..total).collect()
            } else {
                (0..50_000u64)
                    .map(|j| (j.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % total)
                    .collect()
            };
            let argv = picks.into_iter().map(|idx| {
                let mut a = bases[(idx % 2) as usize];
                let mut x = idx / 2;
                for (arg, vs) in &per_arg {
                    a[*arg as usize] = vs[(x % vs.len() as u64) as usize];
                    x /= vs.len() as u64;
                }
                a
            });
            for args in argv {
                for arch in [ARCH, 0x4000_0003, 0] {
                    let d = Data { nr, arch, args };
                    assert_eq!(run(&prog, &d), model(spec, &d), "{d:?}\n{prog:#?}");
                    n += 1;
                }
            }
        }
        n
    }

    fn spec(entries: Vec<(u32, u32, Leaf)>) -> Spec {
        Spec {
            arch: ARCH,
            wrong_arch: KILL,
            default: ALLOW,
            entries,
        }
    }

    fn rules(rules: Vec<Vec<Cond>>) -> Leaf {
        Leaf::Rules {
            rules: rules.into_iter().map(Rule).collect(),
            on_match: ERR,
            otherwise: ALLOW,
        }
    }

    #[test]
    fn empty_spec_is_arch_check_and_default() {
        let p = generate(&spec(vec![])).unwrap();
        assert_eq!(p.len(), 5);
        check_spec(&spec(vec![]));
    }

    #[test]
    fn every_operator_matches_the_model() {
        let ops = [
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Le,
            Op::Gt,
            Op::Ge,
            Op::MaskedEq(0),
            Op::MaskedEq(0x10),
            Op::MaskedEq(0xf0f0),
            Op::MaskedEq(0xffff_ffff),
        ];
        let mut entries = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            for (j, v) in [0u32, 0x10, 0x3030, 0xffff_ffff].iter().enumerate() {
                let nr = (i * 8 + j) as u32 * 3;
                entries.push((nr, nr, rules(vec![vec![c(1, *op, *v)]])));
            }
        }
        // Several arguments, mixed operators, shared and reloaded accumulators.
        entries.push((
            500,
            500,
            rules(vec![
                vec![c(0, Op::Ne, 1), c(0, Op::Ne, 2), c(0, Op::Ne, 10)],
                vec![c(0, Op::Eq, 16), c(2, Op::Ne, 0)],
                vec![c(2, Op::MaskedEq(0xff), 0x12), c(0, Op::Eq, 2)],
                vec![c(0, Op::MaskedEq(0x1), 1)],
                vec![c(0, Op::MaskedEq(0x4), 4)],
                vec![c(2, Op::MaskedEq(0x8), 8)],
            ]),
        ));
        // Paths that meet holding different arguments: the next check must reload.
        entries.push((
            501,
            501,
            rules(vec![
                vec![c(0, Op::Eq, 16), c(2, Op::Ne, 7)],
                vec![c(0, Op::Eq, 7)],
            ]),
        ));
        let n = check_spec(&spec(entries));
        assert!(n > 10_000, "{n}");
    }

    #[test]
    fn shared_first_checks_are_factored() {
        let fam = |v| c(0, Op::Eq, v);
        let leaf = rules(vec![
            vec![fam(2), c(1, Op::MaskedEq(0xf), 0)],
            vec![fam(2), c(1, Op::MaskedEq(0x2), 2)],
            vec![fam(10), c(1, Op::MaskedEq(0x4), 4)],
            vec![fam(2), c(1, Op::MaskedEq(0x8), 8)],
            vec![fam(2), c(2, Op::Ne, 0), c(2, Op::Ne, 6)],
            vec![fam(10), c(2, Op::Gt, 6)],
            // A rule that is the shared check alone makes its group that check.
            vec![fam(16), c(2, Op::Eq, 9)],
            vec![fam(16)],
            vec![c(0, Op::MaskedEq(0x2000_0000), 0x2000_0000)],
        ]);
        let s = spec(vec![(41, 41, leaf.clone())]);
        let factored = generate(&s).unwrap().len();
        // Unfactored, each of those rules would reload argument 0 and test it again.
        assert!(factored < 32, "{factored} instructions");
        check_spec(&s);
    }

    #[test]
    fn far_targets_get_trampolines() {
        // Every even number denied: ~1000 ranges, a tree wider than 255 instructions.
        let mut entries: Vec<_> = (0..1000u32)
            .step_by(2)
            .map(|nr| (nr, nr, Leaf::Ret(ERR)))
            .collect();
        // A rule chain longer than a jump's reach, in the middle of the tree.
        let long: Vec<Vec<Cond>> = (0..300).map(|v| vec![c(0, Op::Eq, v * 7)]).collect();
        entries.push((501, 501, rules(long)));
        entries.push((0x4000_0000, u32::MAX, Leaf::Ret(ERR | 1)));
        let s = spec(entries);
        let p = generate(&s).unwrap();
        assert!(p.len() > 1000, "{}", p.len());
        assert!(p.iter().any(|i| i.code == JA), "no long jump was needed");
        check_spec(&s);
    }

    #[test]
    fn overlapping_entries_are_refused() {
        let s = spec(vec![(5, 9, Leaf::Ret(ERR)), (9, 9, Leaf::Ret(ERR))]);
        assert!(generate(&s).is_err());
    }

    #[test]
    fn verify_rejects_what_the_kernel_would() {
        let ret = stmt(RET_K, ALLOW);
        assert!(verify(&[ret]).is_ok());
        assert!(verify(&[]).is_err());
        assert!(verify(&[stmt(LD_W_ABS, 64), ret]).is_err());
        assert!(verify(&[stmt(LD_W_ABS, 2), ret]).is_err());
        assert!(verify(&[stmt(JA, 1), ret]).is_err());
        assert!(verify(&[stmt(LD_W_ABS, 0)]).is_err());
        assert!(verify(&vec![ret; MAX_LEN + 1]).is_err());
    }
}
