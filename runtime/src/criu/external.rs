//! External resources, which criu leaves to the runtime: mounts whose source lies outside
//! the container (bind mounts, `/dev/null` over masked files, v1 cgroup
//! binds) and joined network and pid namespaces. Dump names each one in
//! `criu_opts.external`, and restore maps the names back to host paths and
//! descriptors.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::rpc::JoinNamespace;
use super::CriuError;
use crate::cgroups::Manager;
use crate::rootfs::clean_destination as destination;
use crate::rootfs::options::parse_mount_options;

/// Name under which masked files (bind mounts of `/dev/null`) are dumped.
const DEV_NULL: &str = "/dev/null";
/// Names of joined namespaces in the images, the keys runc uses.
const NET_KEY: &str = "extRootNetNS";
const PID_KEY: &str = "extRootPidNS";

/// Formats criu's `mnt[KEY]:VALUE` external mount option.
fn mount_option(key: &Path, value: &Path) -> String {
    format!("mnt[{}]:{}", key.display(), value.display())
}

/// Returns the bind mounts of the spec as (destination, source).
fn bind_mounts(spec: &Spec) -> Vec<(PathBuf, PathBuf)> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    mounts
        .iter()
        .filter(|m| {
            let options = m.options().as_deref().unwrap_or_default();
            m.typ().as_deref() == Some("bind") || parse_mount_options(options).is_bind()
        })
        .map(|m| {
            let source = m.source().clone().unwrap_or_default();
            (destination(m.destination()), source)
        })
        .collect()
}

fn has_namespace(spec: &Spec, kind: LinuxNamespaceType) -> bool {
    namespace_entries(spec).iter().any(|(k, _)| *k == kind)
}

fn namespace_entries(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    list.iter().map(|n| (n.typ(), n.path().clone())).collect()
}

/// Returns the v1 hierarchies bind-mounted below a `type: cgroup` mount, as
/// (destination in the container, container's cgroup on the host). Only a
/// container without a cgroup namespace on a v1 or hybrid host gets them.
fn cgroup_binds(spec: &Spec, cgroup: &Manager) -> Vec<(PathBuf, PathBuf)> {
    if has_namespace(spec, LinuxNamespaceType::Cgroup) {
        return vec![];
    }
    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut binds = BTreeSet::new();
    for mount in mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("cgroup"))
    {
        let base = destination(mount.destination());
        for dir in cgroup.v1_dirs() {
            if let Some(name) = dir.mount_point.file_name() {
                binds.insert((base.join(name), dir.dir.clone()));
            }
        }
    }
    binds.into_iter().collect()
}

/// Returns the masked paths that are files, so hull bind-mounted `/dev/null`
/// on them. `is_file` returns whether a path is a file in the container.
fn masked_files(spec: &Spec, is_file: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    masked
        .iter()
        .map(|p| destination(Path::new(p)))
        .filter(|p| is_file(p))
        .collect()
}

/// Returns the external mount options of a dump. Each mount is named by its
/// destination, except masked files, which are all named `/dev/null`.
pub fn dump_mounts(spec: &Spec, cgroup: &Manager, is_file: &dyn Fn(&Path) -> bool) -> Vec<String> {
    let mut options: Vec<String> = bind_mounts(spec)
        .iter()
        .map(|(dest, _)| mount_option(dest, dest))
        .collect();
    for (dest, _) in cgroup_binds(spec, cgroup) {
        options.push(mount_option(&dest, &dest));
    }
    for path in masked_files(spec, is_file) {
        options.push(mount_option(&path, Path::new(DEV_NULL)));
    }
    options
}

/// Returns the external mount options of a restore, which map each name
/// that [`dump_mounts`] gave to its host path.
pub fn restore_mounts(spec: &Spec, cgroup: &Manager) -> Vec<String> {
    let mut options: Vec<String> = bind_mounts(spec)
        .iter()
        .map(|(dest, source)| mount_option(dest, source))
        .collect();
    for (dest, host_dir) in cgroup_binds(spec, cgroup) {
        options.push(mount_option(&dest, &host_dir));
    }
    let any_masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|paths| !paths.is_empty());
    if any_masked {
        options.push(mount_option(Path::new(DEV_NULL), Path::new(DEV_NULL)));
    }
    options
}

/// Returns the joined network and pid namespaces of a dump, named by inode:
/// `net[INODE]:extRootNetNS`. criu then leaves them out of the images.
pub fn dump_namespaces(spec: &Spec) -> Result<Vec<String>, CriuError> {
    let mut options = Vec::new();
    for (kind, path) in namespace_entries(spec) {
        let (prefix, key) = match kind {
            LinuxNamespaceType::Network => ("net", NET_KEY),
            LinuxNamespaceType::Pid => ("pid", PID_KEY),
            _ => continue,
        };
        let Some(path) = path else { continue };
        let meta = std::fs::metadata(&path).map_err(|e| {
            CriuError::io(format!("stat the {prefix} namespace {}", path.display()), e)
        })?;
        options.push(format!("{prefix}[{}]:{key}", meta.ino()));
    }
    Ok(options)
}

/// Joined namespaces of a restore.
#[derive(Debug, Default)]
pub struct RestoreNamespaces {
    /// Opened network and pid namespaces, with the name criu uses for each.
    /// criu inherits the descriptors.
    pub inherited: Vec<(String, File)>,
    /// Other joined namespaces, which criu enters itself.
    pub join: Vec<JoinNamespace>,
}

/// Opens the joined network and pid namespaces of `spec` and lists the
/// other joined ones for criu to enter. A joined cgroup namespace is an
/// error: criu cannot enter one on restore.
pub fn restore_namespaces(spec: &Spec) -> Result<RestoreNamespaces, CriuError> {
    let mut namespaces = RestoreNamespaces::default();
    for (kind, path) in namespace_entries(spec) {
        let Some(path) = path else { continue };
        let open = |what: &str| {
            File::open(&path).map_err(|e| {
                CriuError::io(format!("open the {what} namespace {}", path.display()), e)
            })
        };
        match kind {
            LinuxNamespaceType::Network => {
                namespaces.inherited.push((NET_KEY.into(), open("net")?))
            }
            LinuxNamespaceType::Pid => namespaces.inherited.push((PID_KEY.into(), open("pid")?)),
            LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts | LinuxNamespaceType::Mount => {
                let ns = match kind {
                    LinuxNamespaceType::Ipc => "ipc",
                    LinuxNamespaceType::Uts => "uts",
                    _ => "mnt",
                };
                namespaces.join.push(JoinNamespace {
                    ns: ns.into(),
                    ns_file: path.display().to_string(),
                    extra_opt: None,
                });
            }
            other => {
                return Err(CriuError::InvalidFlag {
                    flag: "linux.namespaces",
                    value: format!("{other:?}"),
                    reason: format!(
                        "a joined namespace of this type ({}) cannot be restored",
                        path.display()
                    ),
                })
            }
        }
    }
    Ok(namespaces)
}
