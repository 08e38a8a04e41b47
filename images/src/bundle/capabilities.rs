//! The capability set of a non-privileged container and the `cap_add` and
//! `cap_drop` options.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

use super::BundleError;

/// The capabilities docker grants a container that is not `--privileged`.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability that oci-spec 0.10 names, which `ALL` expands to.
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// A parsed `cap_add` or `cap_drop` entry.
enum CapabilityName {
    All,
    One(Capability),
}

/// Parses `name` in any case, with or without the `CAP_` prefix.
fn parse_name(name: &str) -> Result<CapabilityName, BundleError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(CapabilityName::All);
    }
    Capability::from_str(bare)
        .map(CapabilityName::One)
        .map_err(|_| BundleError::UnknownCapability {
            name: name.to_owned(),
        })
}

/// Returns the default set with `add` added and then `drop` removed. `ALL`
/// in `add` adds every capability. `ALL` in `drop` removes every capability
/// except those `add` names one by one, as docker does for
/// `--cap-drop=ALL --cap-add=X`.
pub fn effective_set(add: &[String], drop: &[String]) -> Result<HashSet<Capability>, BundleError> {
    let mut set: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    let mut added = HashSet::new();
    let mut add_all = false;
    for name in add {
        match parse_name(name)? {
            CapabilityName::All => add_all = true,
            CapabilityName::One(cap) => {
                added.insert(cap);
            }
        }
    }
    let mut dropped = HashSet::new();
    let mut drop_all = false;
    for name in drop {
        match parse_name(name)? {
            CapabilityName::All => drop_all = true,
            CapabilityName::One(cap) => {
                dropped.insert(cap);
            }
        }
    }

    if add_all {
        set.extend(ALL_CAPABILITIES);
    }
    set.extend(added.iter().copied());
    if drop_all {
        set.retain(|cap| added.contains(cap));
    }
    set.retain(|cap| !dropped.contains(cap));
    Ok(set)
}

/// Returns `process.capabilities` with `set` in the bounding, effective and
/// permitted sets. The inheritable and ambient sets stay empty, so a
/// non-root user and `execve` of a program without file capabilities get
/// none of them.
pub fn linux_capabilities(set: &HashSet<Capability>) -> Result<LinuxCapabilities, BundleError> {
    let caps: Capabilities = set.iter().copied().collect();
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_list_has_distinct_entries() {
        let set: HashSet<Capability> = ALL_CAPABILITIES.into_iter().collect();
        assert_eq!(set.len(), ALL_CAPABILITIES.len());
    }

    #[test]
    fn defaults_without_options() {
        let set = effective_set(&[], &[]).unwrap();
        assert_eq!(set.len(), 14);
        assert!(set.contains(&Capability::NetBindService));
        assert!(!set.contains(&Capability::SysAdmin));
    }

    #[test]
    fn add_accepts_prefix_and_case() {
        let set = effective_set(&names(&["CAP_SYS_ADMIN", "net_admin", "Sys_Time"]), &[]).unwrap();
        assert!(set.contains(&Capability::SysAdmin));
        assert!(set.contains(&Capability::NetAdmin));
        assert!(set.contains(&Capability::SysTime));
        assert_eq!(set.len(), 17);
    }

    #[test]
    fn drop_removes_after_add() {
        let set =
            effective_set(&names(&["SYS_ADMIN"]), &names(&["SYS_ADMIN", "CAP_CHOWN"])).unwrap();
        assert!(!set.contains(&Capability::SysAdmin));
        assert!(!set.contains(&Capability::Chown));
        assert_eq!(set.len(), 13);
    }

    #[test]
    fn add_all_then_drop_one() {
        let set = effective_set(&names(&["ALL"]), &names(&["sys_module"])).unwrap();
        assert_eq!(set.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!set.contains(&Capability::SysModule));
    }

    #[test]
    fn drop_all_keeps_named_adds() {
        let set = effective_set(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"])).unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![Capability::NetBindService]
        );
        let none = effective_set(&[], &names(&["cap_all"])).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn unknown_name_is_error() {
        for (add, drop) in [
            (names(&["CAP_FLY"]), vec![]),
            (vec![], names(&["SYS_NOTHING"])),
        ] {
            let err = effective_set(&add, &drop).unwrap_err().to_string();
            let name = add.first().or(drop.first()).unwrap();
            assert!(err.contains(name.as_str()), "{err}");
        }
    }

    #[test]
    fn sets_exclude_inheritable_and_ambient() {
        let set = effective_set(&[], &[]).unwrap();
        let caps = linux_capabilities(&set).unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(caps.effective().as_ref().unwrap().len(), 14);
        assert_eq!(caps.permitted().as_ref().unwrap().len(), 14);
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert!(caps.ambient().as_ref().unwrap().is_empty());
    }
}
