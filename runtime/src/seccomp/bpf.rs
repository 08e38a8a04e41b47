//! Code generation: a [`Plan`] to a classic BPF program over `struct
//! seccomp_data`.
//!
//! Layout of the program:
//!
//! ```text
//! ld arch; for each section: jeq AUDIT_ARCH, next / ja section
//! ret bad_arch
//! section: ld nr
//!          (x86_64 only) jset X32_BIT -> x32 section, or ret bad_arch
//!          jgt max_nr -> ret ERRNO(ENOSYS)          (if enosys_above_max)
//!          per syscall: jeq nr, else skip the block; rules; ret default
//!          ret default
//! ```
//!
//! Conditional jumps carry 8-bit offsets, so they only skip within a rule or
//! over a syscall block of up to 255 instructions. Longer distances use
//! `ja`, whose offset has 32 bits.

use seccompiler::{sock_filter, BpfProgram};

use super::compile::{Action, CmpOp, Condition, Plan, Rule, Section};
use super::syscalls::{Abi, X32_SYSCALL_BIT};
use super::SeccompError;

/// BPF_MAXINSNS of linux/filter.h: the kernel's limit on program length.
pub const BPF_MAXINSNS: usize = 4096;

// Opcodes of linux/bpf_common.h, combined.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JMP_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JMP_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Offsets in struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

/// Builds the program of `plan`.
pub fn generate(plan: &Plan) -> Result<BpfProgram, SeccompError> {
    let x32 = plan.sections.iter().position(|s| s.abi == Abi::X32);
    let dispatched: Vec<&Section> = plan
        .sections
        .iter()
        .filter(|section| section.abi != Abi::X32)
        .collect();

    let mut bodies: Vec<Vec<sock_filter>> = Vec::new();
    let mut x32_jump = None;
    for section in &dispatched {
        let mut body = vec![stmt(LD_W_ABS, NR_OFFSET)];
        if section.abi == Abi::X86_64 {
            body.push(jump(JMP_JSET_K, X32_SYSCALL_BIT, 0, 1));
            if x32.is_some() {
                x32_jump = Some((bodies.len(), body.len()));
                body.push(stmt(JMP_JA, 0));
            } else {
                body.push(ret(plan.bad_arch));
            }
        }
        section_code(plan, section, &mut body)?;
        bodies.push(body);
    }
    if let Some(index) = x32 {
        let mut body = vec![stmt(LD_W_ABS, NR_OFFSET)];
        section_code(plan, &plan.sections[index], &mut body)?;
        bodies.push(body);
    }
    for &(_, action) in &plan.unmapped {
        bodies.push(vec![ret(action)]);
    }

    // Dispatch on the arch: each entry is a jeq and a ja.
    let arches: Vec<u32> = dispatched
        .iter()
        .map(|section| section.abi.audit_arch())
        .chain(plan.unmapped.iter().map(|&(arch, _)| arch))
        .collect();
    let dispatch_len = 1 + 2 * arches.len() + 1;
    let mut starts = Vec::with_capacity(bodies.len());
    let mut position = dispatch_len;
    for body in &bodies {
        starts.push(position);
        position += body.len();
    }
    if position > BPF_MAXINSNS {
        return Err(SeccompError::FilterTooLarge { length: position });
    }

    // Bodies are: the dispatched sections, then x32 if listed (reached from
    // the x86_64 section, not by arch), then the unmapped arches.
    let unmapped_first = dispatched.len() + usize::from(x32.is_some());
    let targets = starts[..dispatched.len()]
        .iter()
        .chain(&starts[unmapped_first..]);

    let mut program = Vec::with_capacity(position);
    program.push(stmt(LD_W_ABS, ARCH_OFFSET));
    for (&arch, &start) in arches.iter().zip(targets) {
        program.push(jump(JMP_JEQ_K, arch, 0, 1));
        let from = program.len() + 1;
        program.push(stmt(JMP_JA, offset(from, start)));
    }
    program.push(ret(plan.bad_arch));

    if let Some((body, at)) = x32_jump {
        let from = starts[body] + at + 1;
        bodies[body][at].k = offset(from, starts[dispatched.len()]);
    }
    for body in bodies {
        program.extend(body);
    }
    Ok(program)
}

/// Appends the syscall blocks of `section` and its final default return.
fn section_code(
    plan: &Plan,
    section: &Section,
    out: &mut Vec<sock_filter>,
) -> Result<(), SeccompError> {
    if plan.enosys_above_max {
        if let Some((&max, _)) = section.syscalls.last_key_value() {
            out.push(jump(JMP_JGT_K, max, 0, 1));
            out.push(ret(Action::Errno(libc::ENOSYS as u16)));
        }
    }
    let wide = section.abi.has_64bit_args();
    for (&number, rules) in &section.syscalls {
        let block = syscall_block(rules, plan.default, wide)?;
        match u8::try_from(block.len()) {
            Ok(skip) => out.push(jump(JMP_JEQ_K, number, 0, skip)),
            Err(_) => {
                out.push(jump(JMP_JEQ_K, number, 1, 0));
                out.push(stmt(JMP_JA, block.len() as u32));
            }
        }
        out.extend(block);
        if out.len() > BPF_MAXINSNS {
            return Err(SeccompError::FilterTooLarge { length: out.len() });
        }
    }
    out.push(ret(plan.default));
    Ok(())
}

/// Returns the code for one syscall: its rules in order, then the default
/// return unless the last rule is unconditional.
fn syscall_block(
    rules: &[Rule],
    default: Action,
    wide: bool,
) -> Result<Vec<sock_filter>, SeccompError> {
    let mut block = Vec::new();
    for rule in rules {
        block.extend(rule_code(rule, wide)?);
    }
    if rules.last().is_none_or(|rule| !rule.conditions.is_empty()) {
        block.push(ret(default));
    }
    Ok(block)
}

/// A jump destination inside a rule: skip n instructions, or go to the
/// first instruction after the rule (the rule does not match).
#[derive(Clone, Copy)]
enum Target {
    Skip(u8),
    Fail,
}

struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

fn rule_code(rule: &Rule, wide: bool) -> Result<Vec<sock_filter>, SeccompError> {
    let mut insns = Vec::new();
    for condition in &rule.conditions {
        condition_code(condition, wide, &mut insns);
    }
    let length = insns.len() + 1;
    let mut code = Vec::with_capacity(length);
    for (index, insn) in insns.iter().enumerate() {
        let resolve = |target| match target {
            Target::Skip(n) => Ok(n),
            // The rule ends with its ret, so failing jumps past it.
            Target::Fail => u8::try_from(length - index - 1)
                .map_err(|_| SeccompError::FilterTooLarge { length }),
        };
        code.push(jump(
            insn.code,
            insn.k,
            resolve(insn.jt)?,
            resolve(insn.jf)?,
        ));
    }
    code.push(ret(rule.action));
    Ok(code)
}

/// Appends code that falls through when `condition` holds and jumps to
/// `Target::Fail` otherwise. 64-bit values are compared as (high, low) word
/// pairs, the high word first. seccomp_data is in host byte order and both
/// supported hosts are little-endian, so the low word is at the lower offset.
fn condition_code(condition: &Condition, wide: bool, out: &mut Vec<Insn>) {
    use Target::{Fail, Skip};
    let low_offset = ARGS_OFFSET + 8 * u32::from(condition.index);
    let high_offset = low_offset + 4;
    let high = (condition.value >> 32) as u32;
    let low = condition.value as u32;
    let load = |offset| Insn {
        code: LD_W_ABS,
        k: offset,
        jt: Skip(0),
        jf: Skip(0),
    };
    let test = |code, k, jt, jf| Insn { code, k, jt, jf };

    if !wide {
        out.push(load(low_offset));
        if let CmpOp::MaskedEq { mask } = condition.op {
            out.push(test(ALU_AND_K, mask as u32, Skip(0), Skip(0)));
        }
        out.push(match condition.op {
            CmpOp::Eq | CmpOp::MaskedEq { .. } => test(JMP_JEQ_K, low, Skip(0), Fail),
            CmpOp::Ne => test(JMP_JEQ_K, low, Fail, Skip(0)),
            CmpOp::Gt => test(JMP_JGT_K, low, Skip(0), Fail),
            CmpOp::Ge => test(JMP_JGE_K, low, Skip(0), Fail),
            CmpOp::Lt => test(JMP_JGE_K, low, Fail, Skip(0)),
            CmpOp::Le => test(JMP_JGT_K, low, Fail, Skip(0)),
        });
        return;
    }

    out.push(load(high_offset));
    match condition.op {
        CmpOp::Eq => {
            out.push(test(JMP_JEQ_K, high, Skip(0), Fail));
            out.push(load(low_offset));
            out.push(test(JMP_JEQ_K, low, Skip(0), Fail));
        }
        CmpOp::Ne => {
            out.push(test(JMP_JEQ_K, high, Skip(0), Skip(2)));
            out.push(load(low_offset));
            out.push(test(JMP_JEQ_K, low, Fail, Skip(0)));
        }
        CmpOp::Gt | CmpOp::Ge => {
            // high > value's high: holds; equal: decided by the low word.
            out.push(test(JMP_JGT_K, high, Skip(3), Skip(0)));
            out.push(test(JMP_JEQ_K, high, Skip(0), Fail));
            out.push(load(low_offset));
            let code = if condition.op == CmpOp::Gt {
                JMP_JGT_K
            } else {
                JMP_JGE_K
            };
            out.push(test(code, low, Skip(0), Fail));
        }
        CmpOp::Lt | CmpOp::Le => {
            // high < value's high: holds; equal: decided by the low word.
            out.push(test(JMP_JGT_K, high, Fail, Skip(0)));
            out.push(test(JMP_JEQ_K, high, Skip(0), Skip(2)));
            out.push(load(low_offset));
            let code = if condition.op == CmpOp::Lt {
                JMP_JGE_K
            } else {
                JMP_JGT_K
            };
            out.push(test(code, low, Fail, Skip(0)));
        }
        CmpOp::MaskedEq { mask } => {
            out.push(test(ALU_AND_K, (mask >> 32) as u32, Skip(0), Skip(0)));
            out.push(test(JMP_JEQ_K, high, Skip(0), Fail));
            out.push(load(low_offset));
            out.push(test(ALU_AND_K, mask as u32, Skip(0), Skip(0)));
            out.push(test(JMP_JEQ_K, low, Skip(0), Fail));
        }
    }
}

/// Returns the `ja` offset from the instruction after the jump to `to`.
fn offset(from: usize, to: usize) -> u32 {
    (to - from) as u32
}

fn stmt(code: u16, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: Action) -> sock_filter {
    stmt(RET_K, action.ret_value())
}
