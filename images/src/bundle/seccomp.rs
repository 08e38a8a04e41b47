//! hull's default seccomp profile.
//!
//! The profile allows every syscall by default and returns `EPERM` for the
//! groups below, because an allow-list breaks programs on every new kernel
//! while the dangerous syscalls are few and well known. Most groups are
//! lifted when the container holds the capability that the kernel checks for
//! the same syscalls, so `cap_add` keeps working as users expect. Names that
//! an architecture lacks (`stime` on x86_64) are skipped for it by both hull
//! and libseccomp.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::capabilities::DEFAULT_CAPABILITIES;

/// A set of syscalls that return `EPERM` unless the container holds one of
/// `lifted_by`.
struct DenyGroup {
    syscalls: &'static [&'static str],
    /// Capabilities of which any one lifts the group; empty means never.
    lifted_by: &'static [Capability],
}

const DENY_GROUPS: &[DenyGroup] = &[
    // Loading code into the kernel. The obsolete create_module,
    // query_module and get_kernel_syms only exist on older ABIs.
    DenyGroup {
        syscalls: &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
        lifted_by: &[Capability::SysModule],
    },
    // Replacing or stopping the running kernel. reboot in a PID namespace
    // only ends that namespace, but it is refused like the rest without
    // CAP_SYS_BOOT.
    DenyGroup {
        syscalls: &["kexec_load", "kexec_file_load", "reboot"],
        lifted_by: &[Capability::SysBoot],
    },
    // Host-wide swap, quota, process accounting and kernel log settings.
    DenyGroup {
        syscalls: &["swapon", "swapoff", "quotactl", "quotactl_fd"],
        lifted_by: &[Capability::SysAdmin],
    },
    DenyGroup {
        syscalls: &["acct"],
        lifted_by: &[Capability::SysPacct],
    },
    DenyGroup {
        syscalls: &["syslog"],
        lifted_by: &[Capability::Syslog],
    },
    // Mounting and namespace changes. The runtime has mounted everything
    // before the filter applies, and new mount or user namespaces are the
    // usual first step of container escapes. unshare and clone are filtered
    // by flag further down, so unsharing files or the filesystem context
    // still works.
    DenyGroup {
        syscalls: &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "setns",
        ],
        lifted_by: &[Capability::SysAdmin],
    },
    // Kernel keyrings are not namespaced, so keys of the host or of other
    // containers of the same uid would be reachable.
    DenyGroup {
        syscalls: &["keyctl", "add_key", "request_key"],
        lifted_by: &[],
    },
    // eBPF programs and perf events read kernel memory layouts and have
    // been a steady source of kernel exploits.
    DenyGroup {
        syscalls: &["bpf"],
        lifted_by: &[Capability::SysAdmin, Capability::Bpf],
    },
    DenyGroup {
        syscalls: &["perf_event_open"],
        lifted_by: &[Capability::SysAdmin, Capability::Perfmon],
    },
    // Reading or comparing another process's memory and files. ptrace itself
    // stays allowed, as docker allows it on kernels from 4.8, so debuggers
    // and strace work on the container's own processes. userfaultfd is the
    // usual tool to widen kernel race windows.
    DenyGroup {
        syscalls: &[
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "userfaultfd",
        ],
        lifted_by: &[Capability::SysPtrace],
    },
    // File handles bypass the mount namespace: open_by_handle_at opens any
    // inode on a filesystem that is bind-mounted in (the "shocker" escape).
    DenyGroup {
        syscalls: &["open_by_handle_at"],
        lifted_by: &[Capability::DacReadSearch],
    },
    DenyGroup {
        syscalls: &["name_to_handle_at", "lookup_dcookie", "fanotify_init"],
        lifted_by: &[Capability::SysAdmin],
    },
    // The clock is host-wide. adjtimex and clock_adjtime stay allowed,
    // because their read-only use is common (ntp status queries) and the
    // kernel requires CAP_SYS_TIME for their writes.
    DenyGroup {
        syscalls: &["clock_settime", "clock_settime64", "settimeofday", "stime"],
        lifted_by: &[Capability::SysTime],
    },
    // Direct port I/O and the 32-bit vm86 mode.
    DenyGroup {
        syscalls: &["iopl", "ioperm", "vm86", "vm86old"],
        lifted_by: &[Capability::SysRawio],
    },
    // uselib loads a.out libraries, which no current userland has.
    DenyGroup {
        syscalls: &["uselib"],
        lifted_by: &[],
    },
    // io_uring runs syscall-like work outside the filter and has had many
    // kernel exploits. Programs that probe for it fall back to plain
    // syscalls on EPERM, as they do when the io_uring_disabled sysctl is set.
    DenyGroup {
        syscalls: &["io_uring_setup", "io_uring_enter", "io_uring_register"],
        lifted_by: &[],
    },
];

/// `CLONE_NEW*` flags that clone and unshare may not carry without
/// CAP_SYS_ADMIN: mount, cgroup, UTS, IPC, user, PID and network.
const NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];
/// `CLONE_NEWTIME`, accepted by unshare only: in clone's flags the same bit
/// is part of the exit signal number.
const CLONE_NEWTIME: u64 = 0x80;

/// personality(2) flags that weaken memory protections: ADDR_NO_RANDOMIZE,
/// MMAP_PAGE_ZERO and READ_IMPLIES_EXEC.
const UNSAFE_PERSONALITY_FLAGS: [u64; 3] = [0x0004_0000, 0x0010_0000, 0x0040_0000];
/// Bit 31, set only in the query value `0xffffffff`, which changes nothing.
const PERSONALITY_QUERY_BIT: u64 = 0x8000_0000;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// Returns the profile for a container with docker's default capabilities.
pub fn default_seccomp() -> LinuxSeccomp {
    profile_for(&DEFAULT_CAPABILITIES.into_iter().collect())
}

/// Returns the profile for a container holding `caps`: groups lifted by one
/// of them are left out.
pub fn profile_for(caps: &HashSet<Capability>) -> LinuxSeccomp {
    let mut syscalls = Vec::new();
    for group in DENY_GROUPS {
        if group.lifted_by.iter().any(|cap| caps.contains(cap)) {
            continue;
        }
        syscalls.push(errno_rule(group.syscalls, EPERM, None));
    }

    if !caps.contains(&Capability::SysAdmin) {
        // One rule per flag, because conditions on the same argument within
        // one rule are ORed by runc and hull, not ANDed.
        for flag in NAMESPACE_FLAGS {
            syscalls.push(errno_rule(
                &["clone", "unshare"],
                EPERM,
                Some((0, flag, flag)),
            ));
        }
        syscalls.push(errno_rule(
            &["unshare"],
            EPERM,
            Some((0, CLONE_NEWTIME, CLONE_NEWTIME)),
        ));
        // clone3 passes its flags in memory, which seccomp cannot read. ENOSYS
        // makes glibc (2.34 and later) fall back to clone, whose flags the
        // rules above check.
        syscalls.push(errno_rule(&["clone3"], ENOSYS, None));
    }

    // A persona with an unsafe flag is refused unless bit 31 is set, which
    // only the query value 0xffffffff has. Other execution domains stay
    // allowed: Linux implements none of them beyond PER_LINUX.
    for flag in UNSAFE_PERSONALITY_FLAGS {
        let mask = flag | PERSONALITY_QUERY_BIT;
        syscalls.push(errno_rule(&["personality"], EPERM, Some((0, mask, flag))));
    }

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(syscalls)
        .build()
        .expect("every field of the profile is set")
}

/// Builds an `SCMP_ACT_ERRNO` rule; `masked` is `(index, mask, value)` for
/// a condition `arg[index] & mask == value`.
fn errno_rule(names: &[&str], errno: u32, masked: Option<(usize, u64, u64)>) -> LinuxSyscall {
    let mut builder = LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno);
    if let Some((index, mask, value)) = masked {
        let arg = LinuxSeccompArgBuilder::default()
            .index(index)
            .value(mask)
            .value_two(value)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("every field of the argument is set");
        builder = builder.args(vec![arg]);
    }
    builder.build().expect("every field of the rule is set")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(profile: &LinuxSeccomp) -> Value {
        serde_json::to_value(profile).unwrap()
    }

    /// Returns the names in unconditional rules.
    fn denied(profile: &Value) -> Vec<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule.get("args").is_none())
            .flat_map(|rule| rule["names"].as_array().unwrap().clone())
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn json_shape() {
        let profile = json(&default_seccomp());
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(
            profile["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        for rule in profile["syscalls"].as_array().unwrap() {
            assert_eq!(rule["action"], "SCMP_ACT_ERRNO", "{rule}");
            let errno = rule["errnoRet"].as_u64().unwrap();
            assert!(errno == 1 || errno == 38, "{rule}");
            assert!(!rule["names"].as_array().unwrap().is_empty(), "{rule}");
            if let Some(args) = rule.get("args") {
                assert_eq!(args.as_array().unwrap().len(), 1, "{rule}");
                assert_eq!(args[0]["op"], "SCMP_CMP_MASKED_EQ", "{rule}");
            }
        }
    }

    #[test]
    fn default_denies_dangerous_syscalls() {
        let names = denied(&json(&default_seccomp()));
        for name in [
            "init_module",
            "kexec_load",
            "reboot",
            "swapon",
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "setns",
            "keyctl",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "process_vm_readv",
            "open_by_handle_at",
            "clock_settime",
            "settimeofday",
            "acct",
            "quotactl",
            "iopl",
            "lookup_dcookie",
            "clone3",
        ] {
            assert!(names.contains(&name.to_owned()), "{name} is allowed");
        }
        for name in ["ptrace", "adjtimex", "chroot", "read", "clone", "unshare"] {
            assert!(
                !names.contains(&name.to_owned()),
                "{name} is denied outright"
            );
        }
    }

    #[test]
    fn clone3_returns_enosys() {
        let profile = json(&default_seccomp());
        let rule = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["names"] == serde_json::json!(["clone3"]))
            .unwrap()
            .clone();
        assert_eq!(rule["errnoRet"], 38);
    }

    #[test]
    fn namespace_flags_filtered_per_flag() {
        let profile = json(&default_seccomp());
        let rules: Vec<&Value> = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| {
                rule["names"]
                    .as_array()
                    .unwrap()
                    .contains(&"unshare".into())
            })
            .collect();
        assert_eq!(rules.len(), NAMESPACE_FLAGS.len() + 1);
        let newns = rules
            .iter()
            .find(|rule| rule["args"][0]["value"] == 0x20000)
            .expect("no rule for CLONE_NEWNS");
        assert_eq!(newns["args"][0]["valueTwo"], 0x20000);
        assert_eq!(newns["args"][0]["index"], 0);
    }

    #[test]
    fn personality_query_not_matched() {
        let profile = json(&default_seccomp());
        let masks: Vec<(u64, u64)> = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["names"] == serde_json::json!(["personality"]))
            .map(|rule| {
                let arg = &rule["args"][0];
                (
                    arg["value"].as_u64().unwrap(),
                    arg["valueTwo"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(masks.len(), 3);
        let matches = |persona: u64| masks.iter().any(|(mask, value)| persona & mask == *value);
        assert!(!matches(0xffff_ffff), "the query is denied");
        assert!(!matches(0), "PER_LINUX is denied");
        assert!(!matches(0x0008), "PER_LINUX32 is denied");
        assert!(matches(0x0004_0000), "ADDR_NO_RANDOMIZE is allowed");
        assert!(matches(0x0040_0008), "READ_IMPLIES_EXEC is allowed");
    }

    #[test]
    fn capabilities_lift_groups() {
        let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        caps.insert(Capability::SysAdmin);
        caps.insert(Capability::SysTime);
        let profile = json(&profile_for(&caps));
        let names = denied(&profile);
        for name in ["mount", "setns", "bpf", "clock_settime", "clone3"] {
            assert!(!names.contains(&name.to_owned()), "{name} still denied");
        }
        for name in ["keyctl", "init_module", "io_uring_setup"] {
            assert!(names.contains(&name.to_owned()), "{name} lifted");
        }
        let conditional = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| rule["names"].as_array().unwrap().contains(&"clone".into()))
            .count();
        assert_eq!(conditional, 0);
    }
}
