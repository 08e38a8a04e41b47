//! `hull spec`: writes a starting `config.json` into the bundle: a shell on
//! a terminal, a read-only rootfs, the usual mounts and namespaces.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::Global;
use crate::cgroups::CgroupMode;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for a rootless container, mapping the caller's ids
    #[arg(long)]
    pub rootless: bool,
}

const CAPABILITIES: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Returns the default configuration. With `rootless`, it maps the caller's
/// uid and gid to root in a user namespace and drops what an unprivileged
/// user cannot do.
pub fn default_spec(rootless: bool) -> Value {
    let mut spec = json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": CAPABILITIES,
                "permitted": CAPABILITIES,
                "ambient": CAPABILITIES
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "hull",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    // As in runc 1.2, the container gets its own cgroup namespace only on a
    // cgroup v2 host: on cgroup v1 and hybrid hosts, runc 1.1 and 1.2 write
    // no cgroup namespace, and tools written for them add one themselves.
    if crate::cgroups::detect_mode() == CgroupMode::Unified {
        push_namespace(&mut spec, "cgroup");
    }
    if rootless {
        make_rootless(&mut spec);
    }
    spec
}

fn push_namespace(spec: &mut Value, kind: &str) {
    if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
        list.push(json!({ "type": kind }));
    }
}

fn make_rootless(spec: &mut Value) {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let linux = &mut spec["linux"];
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    // No network namespace: an unprivileged user could not configure one.
    if let Some(list) = linux["namespaces"].as_array_mut() {
        list.retain(|n| n["type"] != "network");
    }
    push_namespace(spec, "user");
    let linux = &mut spec["linux"];
    if let Some(object) = linux.as_object_mut() {
        object.remove("resources");
    }
    for mount in spec["mounts"].as_array_mut().into_iter().flatten() {
        match mount["destination"].as_str() {
            // An unprivileged user may not mount sysfs, so bind the host's.
            Some("/sys") => {
                *mount = json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            // Group 5 (tty) is not mapped in the user namespace.
            Some("/dev/pts") => {
                if let Some(options) = mount["options"].as_array_mut() {
                    options.retain(|o| o != "gid=5");
                }
            }
            _ => {}
        }
    }
}

pub fn run(_global: &Global, args: &Args) -> Result<i32> {
    let path = args.bundle.join(crate::spec::CONFIG_FILE);
    if path.exists() {
        return Err(Error::Message(format!(
            "{} exists: remove it first",
            path.display()
        )));
    }
    let text = serde_json::to_string_pretty(&default_spec(args.rootless))
        .map_err(|e| Error::Message(format!("encode the default spec: {e}")))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_checks() {
        for rootless in [false, true] {
            let text = default_spec(rootless).to_string();
            let spec = crate::spec::parse(&text).unwrap();
            crate::spec::check(&spec).unwrap();
        }
    }
}
