//! Mounts of `type: cgroup`: a cgroup2 mount on a unified host, or on a
//! v1 or hybrid host a tmpfs with one mount per v1 hierarchy, as runc 1.1
//! lays them out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs as rfs;
use rustix::io::Errno;

use super::mount::{bind_mount, mount_filesystem, FsMount, MountContext};
use super::mountinfo;
use super::options::{parse_mount_options, MountOptions, MS_BIND, MS_RDONLY, MS_REC};
use super::resolve::{open_in_root, ResolveOptions};
use super::sys::{self, CGROUP2_SUPER_MAGIC};
use super::RootfsError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const WHAT: &str = "mount destination";

/// Returns true when the spec puts the container in a cgroup namespace
/// (new or joined).
pub fn has_cgroup_namespace(spec: &Spec) -> bool {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
    namespaces
        .unwrap_or_default()
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Cgroup)
}

fn host_is_unified() -> bool {
    sys::path_fs_type_is(Path::new(CGROUP_ROOT), CGROUP2_SUPER_MAGIC)
}

/// Parses `/proc/self/cgroup` into controller (or `name=...`) to path.
pub fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut paths = HashMap::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        for controller in controllers.split(',') {
            paths.insert(controller.to_string(), path.to_string());
        }
    }
    paths
}

/// Mounts a `type: cgroup` entry at `dest`.
pub fn mount_cgroup(
    context: &MountContext<'_>,
    dest: &Path,
    source: Option<&str>,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    if host_is_unified() {
        mount_cgroup2(context, dest, source, options)
    } else {
        mount_cgroup1(context, dest, options)
    }
}

fn mount_cgroup2(
    context: &MountContext<'_>,
    dest: &Path,
    source: Option<&str>,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    let fs = FsMount {
        dest,
        fs_type: "cgroup2",
        source,
        options,
    };
    match mount_filesystem(context.root, &fs) {
        Err(e) if matches!(e.raw_os_error(), Some(code) if code == libc::EPERM || code == libc::EBUSY) =>
            {}
        result => return result,
    }
    // A user namespace without a cgroup namespace may not mount cgroup2, so
    // bind the host's hierarchy (or the container's own cgroup within a
    // cgroup namespace) instead.
    let mut source = PathBuf::from(CGROUP_ROOT);
    // NOTE: inside a cgroup namespace that is already unshared,
    // /proc/self/cgroup shows "/", so the whole hierarchy is bound.
    if context.cgroup_namespace {
        if let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") {
            if let Some(path) = parse_proc_cgroup(&text).get("") {
                source.push(path.trim_start_matches('/'));
            }
        }
    }
    let mut bind = options.clone();
    bind.flags |= MS_BIND;
    bind_mount(context.root, dest, &source, &bind)
}

/// One v1 hierarchy of the host and the container's cgroup in it.
struct Hierarchy {
    /// Host mount point, such as `/sys/fs/cgroup/cpu,cpuacct`.
    mount_point: PathBuf,
    /// Host path of the container's cgroup in the hierarchy.
    own_cgroup: PathBuf,
}

fn host_hierarchies(cgroup_namespace: bool) -> Result<Vec<Hierarchy>, RootfsError> {
    let read_error = |path: &str, e| RootfsError::io("cgroup", Path::new(path), "read", e);
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| read_error("/proc/self/cgroup", e))?;
    let own = parse_proc_cgroup(&cgroups);
    let mounts = mountinfo::read_own().map_err(|e| read_error("/proc/self/mountinfo", e))?;

    let mut hierarchies = Vec::new();
    for info in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        let subsystem = info
            .super_options
            .split(',')
            .find(|option| own.contains_key(*option));
        let Some(subsystem) = subsystem else { continue };
        let own_cgroup = if cgroup_namespace {
            info.mount_point.clone()
        } else {
            let path = Path::new(&own[subsystem]);
            let relative =
                path.strip_prefix(&info.root)
                    .map_err(|_| RootfsError::InvalidMount {
                        path: info.mount_point.clone(),
                        reason: format!(
                            "cgroup {path:?} is outside the hierarchy's root {:?}",
                            info.root
                        ),
                    })?;
            info.mount_point.join(relative)
        };
        hierarchies.push(Hierarchy {
            mount_point: info.mount_point.clone(),
            own_cgroup,
        });
    }
    Ok(hierarchies)
}

fn mount_cgroup1(
    context: &MountContext<'_>,
    dest: &Path,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    let hierarchies = host_hierarchies(context.cgroup_namespace)?;

    let mut tmpfs_options = parse_mount_options(&["nosuid", "nodev", "noexec", "mode=755"]);
    tmpfs_options.propagation = options.propagation.clone();
    let tmpfs = FsMount {
        dest,
        fs_type: "tmpfs",
        source: Some("tmpfs"),
        options: &tmpfs_options,
    };
    mount_filesystem(context.root, &tmpfs)?;

    let mut merged = Vec::new();
    for hierarchy in &hierarchies {
        let Some(name) = hierarchy.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.contains(',') {
            merged.push(name.to_string());
        }
        let sub_dest = dest.join(name);
        if context.cgroup_namespace {
            let (source, data) = if name == "systemd" {
                ("systemd", "name=systemd".to_string())
            } else {
                ("cgroup", name.to_string())
            };
            let mut cgroup_options = parse_mount_options(&["nosuid", "nodev", "noexec"]);
            cgroup_options.flags |= options.flags & MS_RDONLY;
            cgroup_options.data = vec![data];
            let fs = FsMount {
                dest: &sub_dest,
                fs_type: "cgroup",
                source: Some(source),
                options: &cgroup_options,
            };
            mount_filesystem(context.root, &fs)?;
        } else {
            let mut bind = options.clone();
            bind.flags |= MS_BIND | MS_REC;
            bind_mount(context.root, &sub_dest, &hierarchy.own_cgroup, &bind)?;
        }
    }

    // Each controller of a merged hierarchy gets a symlink to it, as in
    // `cpu -> cpu,cpuacct`.
    if !merged.is_empty() {
        let dir = open_in_root(context.root, dest, ResolveOptions::existing())
            .map_err(|e| RootfsError::resolve(WHAT, dest, e))?;
        for name in &merged {
            for controller in name.split(',') {
                match rfs::symlinkat(name.as_str(), &dir, controller) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(RootfsError::io(WHAT, &dest.join(controller), "symlink", e))
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_splits_controllers() {
        let text = "12:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n";
        let paths = parse_proc_cgroup(text);
        assert_eq!(paths["cpu"], "/a");
        assert_eq!(paths["cpuacct"], "/a");
        assert_eq!(paths["name=systemd"], "/b");
        assert_eq!(paths[""], "/c");
    }
}
