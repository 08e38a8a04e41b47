//! The cgroup v1 device allowlist.
//!
//! TODO: cgroup v2 has no device files and needs an eBPF program attached to
//! the cgroup, which is not implemented, so device rules are not enforced on
//! cgroup v2 hosts.

use cgroups_rs::fs::devices::{DevicePermissions, DeviceType, DevicesController};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use super::files::setter_error;
use super::{CgroupDir, CgroupError};

/// Returns the device rules that runc 1.1 appends to every container's
/// rules: mknod of any device, and access to /dev/null, /dev/zero,
/// /dev/full, /dev/random, /dev/urandom, /dev/tty, /dev/ptmx, the
/// /dev/pts/* terminals and /dev/net/tun.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut builder = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            builder = builder.major(major);
        }
        if let Some(minor) = minor {
            builder = builder.minor(minor);
        }
        builder
            .build()
            .expect("every field of the device rule is set")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// Sets the device allowlist of the v1 cgroup: every device is denied, then
/// `rules` apply in order, then [`default_device_rules`], which is the list
/// runc 1.1 builds.
pub fn apply_v1(cgroup: &CgroupDir, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let ctl = DevicesController::new(cgroup.dir.clone(), cgroup.mount_point.clone());
    let deny_all = ("devices.deny", "a *:* rwm".to_string());
    ctl.deny_device(DeviceType::All, -1, -1, &DevicePermissions::all())
        .map_err(|e| setter_error(&cgroup.dir, deny_all.0, deny_all.1, e))?;
    for rule in rules.iter().chain(default_device_rules().iter()) {
        apply_rule(&ctl, cgroup, rule)?;
    }
    Ok(())
}

/// A device rule in the form of the cgroups_rs device calls, where -1
/// matches any major or minor number.
#[derive(Debug, PartialEq, Eq)]
pub struct V1DeviceRule {
    pub typ: DeviceType,
    pub major: i64,
    pub minor: i64,
    pub perms: Vec<DevicePermissions>,
}

/// Converts an OCI rule to a [`V1DeviceRule`]. Returns `None` for FIFO
/// rules, which the device cgroup cannot express (runc skips them too), and
/// for rules whose access string has none of the letters r, w and m.
pub fn rule_parts(rule: &LinuxDeviceCgroup) -> Result<Option<V1DeviceRule>, String> {
    let typ = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => DeviceType::All,
        LinuxDeviceType::B => DeviceType::Block,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
        LinuxDeviceType::P => return Ok(None),
    };
    let access = rule.access().as_deref().unwrap_or("rwm");
    let perms = if access.is_empty() {
        DevicePermissions::all()
    } else {
        // runc 1.1 keeps the letters r, w and m and ignores any other, so
        // "rwa" means "rw". A rule left with no letter changes nothing.
        let known: String = access.chars().filter(|c| "rwm".contains(*c)).collect();
        if known.is_empty() {
            return Ok(None);
        }
        DevicePermissions::from_str(&known).map_err(|_| format!("invalid access {access:?}"))?
    };
    let major = rule.major().unwrap_or(-1);
    let minor = rule.minor().unwrap_or(-1);
    if major < -1 || minor < -1 {
        return Err(format!(
            "device numbers {major}:{minor} must not be negative"
        ));
    }
    Ok(Some(V1DeviceRule {
        typ,
        major,
        minor,
        perms,
    }))
}

fn apply_rule(
    ctl: &DevicesController,
    cgroup: &CgroupDir,
    rule: &LinuxDeviceCgroup,
) -> Result<(), CgroupError> {
    let describe = || {
        format!(
            "{} {}:{} {}",
            rule.typ().unwrap_or_default().as_str(),
            rule.major().map_or("*".to_string(), |m| m.to_string()),
            rule.minor().map_or("*".to_string(), |m| m.to_string()),
            rule.access().as_deref().unwrap_or("rwm"),
        )
    };
    let parts = rule_parts(rule).map_err(|reason| CgroupError::InvalidValue {
        path: cgroup.dir.clone(),
        resource: "device rule",
        value: describe(),
        reason,
    })?;
    let Some(parts) = parts else {
        return Ok(());
    };
    let (file, result) = if rule.allow() {
        let r = ctl.allow_device(parts.typ, parts.major, parts.minor, &parts.perms);
        ("devices.allow", r)
    } else {
        let r = ctl.deny_device(parts.typ, parts.major, parts.minor, &parts.perms);
        ("devices.deny", r)
    };
    result.map_err(|e| setter_error(&cgroup.dir, file, describe(), e))
}
