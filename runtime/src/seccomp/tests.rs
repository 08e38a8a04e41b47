//! Compile tests: profile checks, and the generated program run through a
//! BPF interpreter for several `seccomp_data` inputs.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};
use serde_json::{json, Value};

use super::syscalls::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::{compile, sock_filter, SeccompError};

pub(super) const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
const RET_LOG: u32 = libc::SECCOMP_RET_LOG;

pub(super) fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | errno as u32
}

/// Parses an OCI `linux.seccomp` object.
pub(super) fn profile(value: Value) -> LinuxSeccomp {
    serde_json::from_value(value).expect("valid seccomp profile")
}

/// Runs a classic BPF seccomp program on (arch, nr, args) and returns its
/// result. Panics on an opcode the generator never emits or a jump out of
/// the program.
fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let load = |offset: u32| -> u32 {
        match offset {
            0 => nr,
            4 => arch,
            8 | 12 => 0,
            16..=63 => {
                let arg = args[((offset - 16) / 8) as usize];
                if offset % 8 == 0 {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            _ => panic!("load from invalid offset {offset}"),
        }
    };
    let mut accumulator = 0u32;
    let mut pc = 0usize;
    loop {
        let insn = &program[pc];
        pc += 1;
        let branch = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
        match insn.code {
            0x20 => accumulator = load(insn.k),
            0x54 => accumulator &= insn.k,
            0x05 => pc += insn.k as usize,
            0x15 => pc += branch(accumulator == insn.k),
            0x25 => pc += branch(accumulator > insn.k),
            0x35 => pc += branch(accumulator >= insn.k),
            0x45 => pc += branch(accumulator & insn.k != 0),
            0x06 => return insn.k,
            code => panic!("unexpected BPF opcode {code:#x}"),
        }
    }
}

fn native_nr(name: &str) -> u32 {
    super::syscall_number(name).expect("native syscall") as u32
}

fn native_arch() -> u32 {
    Abi::native().unwrap().audit_arch()
}

pub(super) fn run_native(program: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
    run(program, native_arch(), native_nr(name), args)
}

#[test]
fn unknown_syscall_rejected() {
    let error = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "foo"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap_err();
    assert!(matches!(error, SeccompError::UnknownSyscall { ref name } if name == "foo"));
    assert_eq!(
        error.to_string(),
        r#"unknown seccomp syscall "foo": not a Linux system call name"#
    );
}

#[test]
fn empty_syscall_name_rejected() {
    let error = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": [""], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap_err();
    assert!(matches!(error, SeccompError::EmptySyscallName));
}

#[test]
fn invalid_values_rejected() {
    let index = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap_err();
    assert!(matches!(
        index,
        SeccompError::InvalidArgIndex { index: 6, .. }
    ));
    let errno = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 70000
    })))
    .unwrap_err();
    assert!(matches!(
        errno,
        SeccompError::InvalidErrnoRet { value: 70000, .. }
    ));
}

#[test]
fn unknown_names_rejected_by_parser() {
    let action = r#"{"defaultAction": "SCMP_ACT_FOO"}"#;
    assert!(serde_json::from_str::<LinuxSeccomp>(action).is_err());
    let arch = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]}"#;
    assert!(serde_json::from_str::<LinuxSeccomp>(arch).is_err());
    let flag = r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]}"#;
    assert!(serde_json::from_str::<LinuxSeccomp>(flag).is_err());
}

#[test]
fn flags_converted() {
    let absent = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).unwrap();
    assert_eq!(absent.flags(), libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32);
    let empty = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []}),
    ))
    .unwrap();
    assert_eq!(empty.flags(), 0);
    let mut oci = LinuxSeccomp::default();
    oci.set_default_action(LinuxSeccompAction::ScmpActAllow);
    oci.set_flags(Some(vec![
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    ]));
    oci.set_listener_path(Some("/run/agent.sock".into()));
    oci.set_listener_metadata(Some("meta".into()));
    let filter = compile(&oci).unwrap();
    let expected = libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_LOG;
    assert_eq!(filter.flags(), expected as u32);
    assert_eq!(
        filter.listener_path(),
        Some(std::path::Path::new("/run/agent.sock"))
    );
    assert_eq!(filter.listener_metadata(), Some("meta"));
    assert!(!filter.needs_listener());
}

#[test]
fn default_and_rule_errno() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["gettid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getuid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getgid"], "action": "SCMP_ACT_LOG"}
        ]
    })))
    .unwrap();
    let program = filter.program();
    assert_eq!(run_native(program, "read", [0; 6]), RET_ALLOW);
    assert_eq!(run_native(program, "getcwd", [0; 6]), ret_errno(38));
    assert_eq!(run_native(program, "write", [0; 6]), ret_errno(libc::EPERM));
    let trace = libc::SECCOMP_RET_TRACE | libc::EPERM as u32;
    assert_eq!(run_native(program, "getpid", [0; 6]), trace);
    assert_eq!(run_native(program, "gettid", [0; 6]), RET_KILL_THREAD);
    let kill_process = libc::SECCOMP_RET_KILL_PROCESS;
    assert_eq!(run_native(program, "getppid", [0; 6]), kill_process);
    assert_eq!(
        run_native(program, "getuid", [0; 6]),
        libc::SECCOMP_RET_TRAP
    );
    assert_eq!(run_native(program, "getgid", [0; 6]), RET_LOG);
}

#[test]
fn default_errno_ret_used() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(
        run_native(filter.program(), "getcwd", [0; 6]),
        ret_errno(38)
    );
}

#[test]
fn enosys_above_largest_syscall() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "getcwd"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    let program = filter.program();
    let above = native_nr("getcwd").max(native_nr("read")) + 1;
    let result = run(program, native_arch(), above, [0; 6]);
    assert_eq!(result, ret_errno(libc::ENOSYS));
    let allow_default = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    let result = run(allow_default.program(), native_arch(), 1000, [0; 6]);
    assert_eq!(result, RET_ALLOW);
}

/// Compiles one ERRNO rule for `mkdirat` comparing argument 2 (the mode)
/// and returns 1 for each probe mode that the rule blocks, else 0.
fn mode_rule(op: &str, value: u64, value_two: Option<u64>) -> Vec<u8> {
    let mut arg = json!({"index": 2, "value": value, "op": op});
    if let Some(two) = value_two {
        arg["valueTwo"] = json!(two);
    }
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]
    })))
    .unwrap();
    let modes = [
        0,
        1,
        0x1ff,
        0x200,
        0x201,
        1 << 32,
        (1 << 32) | 0x200,
        u64::MAX,
    ];
    modes
        .iter()
        .map(|&mode| run_native(filter.program(), "mkdirat", [0, 0, mode, 0, 0, 0]))
        .map(|result| u8::from(result == ret_errno(libc::EPERM)))
        .collect()
}

#[test]
fn operators_compare_64_bits() {
    // Modes: 0, 1, 0x1ff, 0x200, 0x201, 1<<32, (1<<32)|0x200, u64::MAX.
    assert_eq!(
        mode_rule("SCMP_CMP_EQ", 0x200, None),
        [0, 0, 0, 1, 0, 0, 0, 0]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_NE", 0x200, None),
        [1, 1, 1, 0, 1, 1, 1, 1]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_LT", 0x200, None),
        [1, 1, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_LE", 0x200, None),
        [1, 1, 1, 1, 0, 0, 0, 0]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_GT", 0x200, None),
        [0, 0, 0, 0, 1, 1, 1, 1]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_GE", 0x200, None),
        [0, 0, 0, 1, 1, 1, 1, 1]
    );
    let large = (1 << 32) | 0x200;
    assert_eq!(
        mode_rule("SCMP_CMP_GE", large, None),
        [0, 0, 0, 0, 0, 0, 1, 1]
    );
    assert_eq!(
        mode_rule("SCMP_CMP_LT", large, None),
        [1, 1, 1, 1, 1, 1, 0, 0]
    );
    let masked = mode_rule("SCMP_CMP_MASKED_EQ", 0x200, Some(0x200));
    assert_eq!(masked, [0, 0, 0, 1, 1, 0, 1, 1]);
    let masked_high = mode_rule("SCMP_CMP_MASKED_EQ", 1 << 32, Some(0));
    assert_eq!(masked_high, [1, 1, 1, 1, 1, 0, 0, 0]);
}

#[test]
fn conditions_on_distinct_args_and() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 0x1ff, "op": "SCMP_CMP_EQ"}
        ]}]
    })))
    .unwrap();
    let program = filter.program();
    let both = run_native(program, "mkdirat", [5, 0, 0x1ff, 0, 0, 0]);
    assert_eq!(both, ret_errno(libc::EPERM));
    assert_eq!(
        run_native(program, "mkdirat", [5, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        run_native(program, "mkdirat", [4, 0, 0x1ff, 0, 0, 0]),
        RET_ALLOW
    );
}

#[test]
fn conditions_on_same_arg_or() {
    // As in runc: comparing argument 2 twice splits the rule in two.
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 2, "op": "SCMP_CMP_EQ"}
        ]}]
    })))
    .unwrap();
    let program = filter.program();
    let blocked = ret_errno(libc::EPERM);
    assert_eq!(run_native(program, "mkdirat", [5, 0, 9, 0, 0, 0]), blocked);
    assert_eq!(run_native(program, "mkdirat", [0, 0, 1, 0, 0, 0]), blocked);
    assert_eq!(run_native(program, "mkdirat", [0, 0, 2, 0, 0, 0]), blocked);
    assert_eq!(
        run_native(program, "mkdirat", [0, 0, 3, 0, 0, 0]),
        RET_ALLOW
    );
}

#[test]
fn precedence_of_conditional_rules() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["mkdirat"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let program = filter.program();
    let kill_process = libc::SECCOMP_RET_KILL_PROCESS;
    assert_eq!(
        run_native(program, "mkdirat", [5, 7, 9, 0, 0, 0]),
        kill_process
    );
    assert_eq!(run_native(program, "mkdirat", [5, 7, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(
        run_native(program, "mkdirat", [5, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    let neither = run_native(program, "mkdirat", [0, 0, 0, 0, 0, 0]);
    assert_eq!(neither, ret_errno(libc::EPERM));
}

#[test]
fn unconditional_rule_decides() {
    // As libseccomp: the first unconditional rule wins over later ones and
    // over conditional rules; rules with the default action are skipped.
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["mkdirat"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat", "getcwd"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let program = filter.program();
    assert_eq!(
        run_native(program, "mkdirat", [5, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        run_native(program, "mkdirat", [0, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(run_native(program, "getcwd", [0, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn other_arch_names_skipped() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["chown32", "_llseek", "arm_fadvise64_64", "getcwd"],
                      "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(run_native(filter.program(), "getcwd", [0; 6]), RET_ALLOW);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_abis_dispatched() {
    let profile_with = |arches: Vec<Arch>| {
        let mut oci = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "chown32"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0x1_0000_0001_u64, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        oci.set_architectures(Some(arches));
        compile(&oci).unwrap()
    };
    let all = profile_with(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]);
    let program = all.program();
    let read_x86 = Abi::X86.syscall_number("read").unwrap() as u32;
    let chown32 = Abi::X86.syscall_number("chown32").unwrap() as u32;
    let getcwd_x86 = Abi::X86.syscall_number("getcwd").unwrap() as u32;
    let read_x32 = Abi::X32.syscall_number("read").unwrap() as u32;
    let write_x86 = Abi::X86.syscall_number("write").unwrap() as u32;
    assert_eq!(run(program, AUDIT_ARCH_I386, read_x86, [0; 6]), RET_ALLOW);
    assert_eq!(run(program, AUDIT_ARCH_I386, chown32, [0; 6]), RET_ALLOW);
    let blocked = ret_errno(libc::EPERM);
    assert_eq!(run(program, AUDIT_ARCH_I386, getcwd_x86, [0; 6]), blocked);
    assert_eq!(run(program, AUDIT_ARCH_X86_64, read_x32, [0; 6]), RET_ALLOW);
    // x32 getcwd is numbered above the largest x32 syscall with a rule.
    let getcwd_x32 = run(program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 79, [0; 6]);
    assert_eq!(getcwd_x32, ret_errno(libc::ENOSYS));
    // 32-bit ABIs compare the low 32 bits only, as libseccomp does.
    assert_eq!(
        run(program, AUDIT_ARCH_I386, write_x86, [1, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    let x64_write = run(program, AUDIT_ARCH_X86_64, 1, [1, 0, 0, 0, 0, 0]);
    assert_eq!(x64_write, blocked);
    let aarch64 = run(program, Abi::Aarch64.audit_arch(), 0, [0; 6]);
    assert_eq!(aarch64, RET_KILL_THREAD);

    let native_only = profile_with(vec![Arch::ScmpArchX86_64]);
    let program = native_only.program();
    assert_eq!(
        run(program, AUDIT_ARCH_I386, read_x86, [0; 6]),
        RET_KILL_THREAD
    );
    assert_eq!(
        run(program, AUDIT_ARCH_X86_64, read_x32, [0; 6]),
        RET_KILL_THREAD
    );
    assert_eq!(run(program, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
}

#[test]
fn large_block_uses_long_jump() {
    // 60 rules of 9 instructions make a block longer than 255 instructions.
    let mut syscalls = vec![json!({"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"})];
    syscalls.extend((0..60).map(|value| {
        json!({"names": ["mkdirat"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 2, "value": value, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": value, "op": "SCMP_CMP_EQ"}]})
    }));
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": syscalls
    })))
    .unwrap();
    let program = filter.program();
    assert!(program.len() > 540);
    assert_eq!(run_native(program, "getcwd", [0; 6]), RET_ALLOW);
    let last = run_native(program, "mkdirat", [0, 59, 59, 0, 0, 0]);
    assert_eq!(last, RET_ALLOW);
    let none = run_native(program, "mkdirat", [0, 60, 60, 0, 0, 0]);
    assert_eq!(none, ret_errno(libc::EPERM));
}

#[test]
fn oversized_filter_rejected() {
    let rule = |first: u64| {
        let args: Vec<Value> = (0..6)
            .map(|index| json!({"index": index, "value": first + index, "op": "SCMP_CMP_GE"}))
            .collect();
        json!({"names": ["mkdirat"], "action": "SCMP_ACT_ALLOW", "args": args})
    };
    // Identical rules are merged, so 200 copies stay small.
    let copies: Vec<Value> = (0..200).map(|_| rule(1)).collect();
    let small = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": copies});
    assert!(compile(&profile(small)).unwrap().program().len() < 100);
    let varied: Vec<Value> = (0..200).map(rule).collect();
    let large = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": varied});
    let error = compile(&profile(large)).unwrap_err();
    assert!(matches!(error, SeccompError::FilterTooLarge { .. }));
}

/// Converts podman's source-format profile into the OCI profile podman
/// generates for an x86_64 container with podman's default capabilities.
pub(super) fn podman_profile(source: &Value) -> LinuxSeccomp {
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    let strings = |value: &Value| -> Vec<String> {
        let items = value.as_array().cloned().unwrap_or_default();
        items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let mut architectures = Vec::new();
    for entry in source["archMap"].as_array().unwrap() {
        if entry["architecture"] == "SCMP_ARCH_X86_64" {
            architectures.push(json!("SCMP_ARCH_X86_64"));
            architectures.extend(
                strings(&entry["subArchitectures"])
                    .into_iter()
                    .map(Value::from),
            );
        }
    }
    let mut syscalls = Vec::new();
    for rule in source["syscalls"].as_array().unwrap() {
        let needed = strings(&rule["includes"]["caps"]);
        if !needed.iter().all(|cap| caps.contains(&cap.as_str())) {
            continue;
        }
        let excluded = strings(&rule["excludes"]["caps"]);
        if excluded.iter().any(|cap| caps.contains(&cap.as_str())) {
            continue;
        }
        let arches = strings(&rule["includes"]["arches"]);
        if !arches.is_empty() && !arches.iter().any(|arch| arch == "amd64") {
            continue;
        }
        let mut oci_rule = json!({"names": rule["names"], "action": rule["action"]});
        for key in ["errnoRet", "args"] {
            if !rule[key].is_null() {
                oci_rule[key] = rule[key].clone();
            }
        }
        syscalls.push(oci_rule);
    }
    profile(json!({
        "defaultAction": source["defaultAction"],
        "defaultErrnoRet": source["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls
    }))
}

#[test]
fn podman_default_profile_compiles() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/podman-seccomp.json"
    );
    let text = std::fs::read_to_string(path).expect("read podman-seccomp.json");
    let source: Value = serde_json::from_str(&text).unwrap();
    let oci = podman_profile(&source);
    assert_eq!(oci.architectures().as_ref().unwrap().len(), 3);
    let filter = compile(&oci).unwrap();
    let program = filter.program();
    assert!(program.len() <= super::BPF_MAXINSNS);
    assert_eq!(run_native(program, "read", [0; 6]), RET_ALLOW);
    assert_eq!(run_native(program, "clone3", [0; 6]), RET_ALLOW);
    let kexec = run_native(program, "kexec_load", [0; 6]);
    assert_eq!(kexec, ret_errno(libc::EPERM));
    let unlisted = run_native(program, "vserver", [0; 6]);
    assert_eq!(unlisted, ret_errno(libc::ENOSYS));
    // setns is allowed unconditionally before its EPERM rule for containers
    // without CAP_SYS_ADMIN, and the first unconditional rule wins.
    assert_eq!(run_native(program, "setns", [0; 6]), RET_ALLOW);
    // socket(AF_NETLINK, *, NETLINK_AUDIT) is rejected with EINVAL.
    let audit = run_native(program, "socket", [16, 3, 9, 0, 0, 0]);
    assert_eq!(audit, ret_errno(libc::EINVAL));
    assert_eq!(run_native(program, "socket", [2, 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run_native(program, "socket", [16, 3, 0, 0, 0, 0]),
        RET_ALLOW
    );
    #[cfg(target_arch = "x86_64")]
    {
        let chown32 = Abi::X86.syscall_number("chown32").unwrap() as u32;
        assert_eq!(run(program, AUDIT_ARCH_I386, chown32, [0; 6]), RET_ALLOW);
    }
}
