//! Translation of an OCI profile into per-ABI rule lists (the input of
//! [`super::bpf`]), with every check of the profile's values.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::syscalls::{is_linux_syscall, Abi, AUDIT_ARCH_ARM};
use super::SeccompError;

/// Number of syscall arguments in `struct seccomp_data`.
const SYSCALL_ARGS: usize = 6;

/// A seccomp return action with its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    /// SECCOMP_RET_USER_NOTIF: the syscall waits for the seccomp agent that
    /// has the filter's listener fd.
    Notify,
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// Returns the action's `SECCOMP_RET_*` value with its data, as the BPF
    /// program returns it.
    pub fn ret_value(self) -> u32 {
        match self {
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Errno(errno) => libc::SECCOMP_RET_ERRNO | u32::from(errno),
            Action::Notify => libc::SECCOMP_RET_USER_NOTIF,
            Action::Trace(message) => libc::SECCOMP_RET_TRACE | u32::from(message),
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Allow => libc::SECCOMP_RET_ALLOW,
        }
    }

    /// Returns the rank in the kernel's precedence order, where lower wins.
    /// The kernel compares `SECCOMP_RET_ACTION_FULL` bits as signed, so
    /// KILL_PROCESS < KILL_THREAD < TRAP < ERRNO < USER_NOTIF < TRACE < LOG
    /// < ALLOW.
    fn precedence(self) -> i32 {
        (self.ret_value() & libc::SECCOMP_RET_ACTION_FULL) as i32
    }

    /// Returns whether the kernel runs the syscall, for TRACE unless a tracer
    /// skips it. NOTIFY counts as not running it, although the agent may let
    /// it run.
    pub fn runs_syscall(self) -> bool {
        matches!(self, Action::Allow | Action::Log | Action::Trace(_))
    }
}

/// A comparison of one syscall argument, `arg <op> value`. For `MaskedEq`
/// it is `arg & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Condition {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
}

/// Comparison operators, which all compare unsigned, as libseccomp does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq { mask: u64 },
}

/// A rule for one syscall: the action applies when all conditions hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub conditions: Vec<Condition>,
}

/// The rules of one ABI, keyed by syscall number.
#[derive(Clone, Debug)]
pub struct Section {
    pub abi: Abi,
    pub syscalls: BTreeMap<u32, Vec<Rule>>,
}

/// A checked profile, ready for code generation.
#[derive(Clone, Debug)]
pub struct Plan {
    pub default: Action,
    /// Returned for a syscall of an ABI that the profile does not list.
    pub bad_arch: Action,
    /// The native section first, then the listed compat ABIs with a table.
    pub sections: Vec<Section>,
    /// Listed compat `AUDIT_ARCH_*` values without a syscall table here, with
    /// the action returned for all their syscalls.
    pub unmapped: Vec<(u32, Action)>,
    /// Whether syscalls numbered above the largest one with a rule return
    /// ENOSYS instead of the default action.
    pub enosys_above_max: bool,
    /// `SECCOMP_FILTER_FLAG_*` bits, with NEW_LISTENER when a rule notifies.
    pub flags: u32,
}

/// Syscalls that may not notify, because the init and the exec process make
/// them to hand the listener fd to the runtime, before any agent has it:
/// hull sends it with sendmsg, and runc 1.1 writes its number with write.
const NOTIFY_FORBIDDEN: [&str; 2] = ["sendmsg", "write"];

/// Checks `profile` and sorts its rules by ABI and syscall number.
pub fn plan(profile: &LinuxSeccomp) -> Result<Plan, SeccompError> {
    let native = Abi::native().ok_or(SeccompError::UnsupportedHost {
        arch: std::env::consts::ARCH,
    })?;
    let default = convert_action(
        profile.default_action(),
        profile.default_errno_ret(),
        "the default action",
    )?;
    if default == Action::Notify {
        return Err(SeccompError::NotifyDefaultAction);
    }

    let (abis, unmapped_arches) = listed_abis(native, profile.architectures().as_deref());
    // NOTE: the syscalls of a listed compat ABI without a table here (32-bit
    // arm on aarch64 hosts) cannot be distinguished, so all of them get the
    // default action, or ENOSYS where the default action would run them.
    let unmapped_action = if default.runs_syscall() {
        Action::Errno(libc::ENOSYS as u16)
    } else {
        default
    };
    let unmapped = unmapped_arches
        .into_iter()
        .map(|arch| (arch, unmapped_action))
        .collect();

    let mut sections: Vec<Section> = abis
        .iter()
        .map(|&abi| Section {
            abi,
            syscalls: BTreeMap::new(),
        })
        .collect();

    let mut notify = false;
    for syscall in profile.syscalls().as_deref().unwrap_or_default() {
        let names = syscall.names();
        let context = names.join(",");
        let action = convert_action(syscall.action(), syscall.errno_ret(), &context)?;
        if action == Action::Notify {
            notify = true;
            if let Some(name) = names
                .iter()
                .find(|n| NOTIFY_FORBIDDEN.contains(&n.as_str()))
            {
                return Err(SeccompError::NotifyForbiddenSyscall { name: name.clone() });
            }
        }
        let rules = split_conditions(
            action,
            syscall.args().as_deref().unwrap_or_default(),
            &context,
        )?;
        for name in names {
            if name.is_empty() {
                return Err(SeccompError::EmptySyscallName);
            }
            if !is_linux_syscall(name) {
                return Err(SeccompError::UnknownSyscall { name: name.clone() });
            }
            // runc skips rules with the default action, because libseccomp
            // rejects them.
            if action == default {
                continue;
            }
            for section in &mut sections {
                // A name of another architecture is skipped, as libseccomp does.
                let Some(number) = section.abi.syscall_number(name) else {
                    continue;
                };
                let number = u32::try_from(number).expect("syscall tables hold u32 numbers");
                let entry = section.syscalls.entry(number).or_default();
                entry.extend(rules.iter().cloned());
            }
        }
    }

    for section in &mut sections {
        for rules in section.syscalls.values_mut() {
            order_rules(rules);
        }
    }

    if notify && profile.listener_path().is_none() {
        return Err(SeccompError::MissingListenerPath);
    }
    Ok(Plan {
        default,
        bad_arch: Action::KillThread,
        sections,
        unmapped,
        enosys_above_max: !default.runs_syscall(),
        flags: convert_flags(profile.flags().as_deref(), notify)?,
    })
}

/// Returns the ABIs to build sections for (the native one first) and the
/// listed compat arches without a table. Arches that the host kernel never
/// reports are accepted and need no code.
fn listed_abis(native: Abi, arches: Option<&[Arch]>) -> (Vec<Abi>, Vec<u32>) {
    let mut abis = vec![native];
    let mut unmapped = Vec::new();
    for arch in arches.unwrap_or_default() {
        let compat = match (native, arch) {
            (Abi::X86_64, Arch::ScmpArchX86) => Some(Abi::X86),
            (Abi::X86_64, Arch::ScmpArchX32) => Some(Abi::X32),
            (Abi::Aarch64, Arch::ScmpArchArm) => {
                if !unmapped.contains(&AUDIT_ARCH_ARM) {
                    unmapped.push(AUDIT_ARCH_ARM);
                }
                None
            }
            _ => None,
        };
        if let Some(abi) = compat.filter(|abi| !abis.contains(abi)) {
            abis.push(abi);
        }
    }
    (abis, unmapped)
}

/// Converts an OCI action. ERRNO and TRACE take `errno_ret` as their data,
/// EPERM when absent (runc's choice). Other actions ignore it.
fn convert_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    context: &str,
) -> Result<Action, SeccompError> {
    let data = || -> Result<u16, SeccompError> {
        let Some(value) = errno_ret else {
            return Ok(libc::EPERM as u16);
        };
        u16::try_from(value).map_err(|_| SeccompError::InvalidErrnoRet {
            value,
            context: context.to_owned(),
        })
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(data()?),
        LinuxSeccompAction::ScmpActTrace => Action::Trace(data()?),
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    })
}

/// Converts the conditions of one OCI rule into rules. All conditions of a
/// rule must hold, unless one argument index is compared more than once:
/// then each condition becomes a rule of its own, so that any one of them
/// suffices. runc does this split because libseccomp allows one comparison
/// per argument in a rule.
fn split_conditions(
    action: Action,
    args: &[LinuxSeccompArg],
    context: &str,
) -> Result<Vec<Rule>, SeccompError> {
    let mut conditions = Vec::with_capacity(args.len());
    let mut counts = [0usize; SYSCALL_ARGS];
    for arg in args {
        let index = arg.index();
        if index >= SYSCALL_ARGS {
            return Err(SeccompError::InvalidArgIndex {
                index,
                context: context.to_owned(),
            });
        }
        counts[index] += 1;
        conditions.push(convert_condition(arg));
    }

    if counts.iter().any(|&count| count > 1) {
        let rules = conditions
            .into_iter()
            .map(|condition| Rule {
                action,
                conditions: vec![condition],
            })
            .collect();
        return Ok(rules);
    }
    Ok(vec![Rule { action, conditions }])
}

/// Converts one comparison. For SCMP_CMP_MASKED_EQ, `value` is the mask and
/// `valueTwo` the expected value, as in libseccomp.
fn convert_condition(arg: &LinuxSeccompArg) -> Condition {
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (CmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (CmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (CmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (CmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (CmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (CmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            CmpOp::MaskedEq { mask: arg.value() },
            arg.value_two().unwrap_or(0),
        ),
    };
    Condition {
        index: arg.index() as u8,
        op,
        value,
    }
}

/// Orders the rules of one syscall, in profile order on input, into the
/// order the filter checks them. The first rule that matches decides.
///
/// - An unconditional rule decides alone, and the first one in the profile
///   wins. libseccomp behaves so: it drops rules added after an unconditional
///   one, and an unconditional rule replaces the conditional ones before it.
/// - Otherwise the rules are checked by the kernel's action precedence
///   (KILL_PROCESS first, ALLOW last), in profile order for equal actions, so
///   when several rules match, the highest-precedence action wins.
///   libseccomp's result depends on the order of arguments in its decision
///   tree instead, and it rejects identical conditions with different actions.
fn order_rules(rules: &mut Vec<Rule>) {
    if let Some(first) = rules.iter().position(|rule| rule.conditions.is_empty()) {
        let rule = rules.swap_remove(first);
        *rules = vec![rule];
        return;
    }
    rules.sort_by_key(|rule| rule.action.precedence());
    let mut unique: Vec<Rule> = Vec::with_capacity(rules.len());
    for rule in rules.drain(..) {
        if !unique.contains(&rule) {
            unique.push(rule);
        }
    }
    *rules = unique;
}

/// Converts the profile's flags to `SECCOMP_FILTER_FLAG_*` bits. Without a
/// `flags` field, SPEC_ALLOW is set, as runc does, and an empty list sets none.
/// With `notify` (a rule uses SCMP_ACT_NOTIFY), NEW_LISTENER is added, and
/// TSYNC_ESRCH too when TSYNC is set, because the kernel rejects TSYNC with
/// NEW_LISTENER alone: both would return a number on success.
fn convert_flags(
    flags: Option<&[LinuxSeccompFilterFlag]>,
    notify: bool,
) -> Result<u32, SeccompError> {
    let mut bits = match flags {
        None => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        Some(_) => 0,
    };
    for flag in flags.unwrap_or_default() {
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The kernel accepts this flag only with a notify listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::FlagNeedsNotify {
                    flag: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                })
            }
        };
    }
    if notify {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if bits & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    Ok(bits as u32)
}
