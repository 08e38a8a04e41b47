//! Mount points of the cgroup hierarchies, and the directory of a
//! container's cgroup in each of them.
//!
//! The mountinfo parser is local because `cgroups_rs::fs::hierarchies`
//! keeps only `cgroup` (v1) mounts and fixes the cgroup2 root at
//! `/sys/fs/cgroup`, while hybrid hosts mount cgroup2 elsewhere.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// Mount point of the cgroup file systems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Mount point of the cgroup2 hierarchy on a hybrid host.
pub const HYBRID_UNIFIED_ROOT: &str = "/sys/fs/cgroup/unified";

/// The way a host mounts its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    Legacy,
    /// cgroup v1 hierarchies carry the controllers and a cgroup2 hierarchy
    /// without them is mounted at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// One cgroup2 hierarchy at `/sys/fs/cgroup`.
    Unified,
}

/// Returns the cgroup mode of this host, read from the file system types at
/// `/sys/fs/cgroup` and `/sys/fs/cgroup/unified`.
pub fn detect_mode() -> CgroupMode {
    if is_cgroup2(Path::new(CGROUP_ROOT)) {
        CgroupMode::Unified
    } else if is_cgroup2(Path::new(HYBRID_UNIFIED_ROOT)) {
        CgroupMode::Hybrid
    } else {
        CgroupMode::Legacy
    }
}

/// Returns true when `path` is the root of a cgroup2 file system.
pub fn is_cgroup2(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(stat) => stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC,
        Err(_) => false,
    }
}

/// One cgroup file system mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Cgroup of the hierarchy that appears at the mount point.
    pub root: PathBuf,
    /// Directory the hierarchy is mounted on.
    pub mount_point: PathBuf,
    /// Controllers of a v1 hierarchy (`name=systemd` for named ones), empty
    /// for cgroup2.
    pub controllers: Vec<String>,
    /// True for a cgroup2 mount.
    pub v2: bool,
}

/// v1 mount options that are not controllers.
const V1_NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Parses the cgroup and cgroup2 mounts out of a mountinfo text (proc(5)).
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let v2 = match right[0] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            right[2]
                .split(',')
                .filter(|opt| !V1_NON_CONTROLLER_OPTIONS.contains(opt))
                .filter(|opt| !opt.starts_with("release_agent="))
                .filter(|opt| !opt.starts_with("name=") || *opt == "name=systemd")
                .map(str::to_string)
                .collect()
        };
        mounts.push(CgroupMount {
            root: PathBuf::from(unescape_octal(left[3])),
            mount_point: PathBuf::from(unescape_octal(left[4])),
            controllers,
            v2,
        });
    }
    mounts
}

/// Decodes the `\NNN` octal escapes mountinfo uses for spaces and the like.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' && digits.is_some_and(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
        {
            let value = digits
                .unwrap_or_default()
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup of a process in each hierarchy, from `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCgroups {
    /// Cgroup per v1 controller (`name=systemd` for the named hierarchy).
    pub v1: BTreeMap<String, PathBuf>,
    /// Cgroup in the cgroup2 hierarchy (the `0::` line).
    pub unified: Option<PathBuf>,
}

/// Parses the text of `/proc/<pid>/cgroup`.
pub fn parse_proc_cgroup(text: &str) -> ProcessCgroups {
    let mut cgroups = ProcessCgroups::default();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            cgroups.unified = Some(PathBuf::from(path));
            continue;
        }
        for controller in controllers.split(',').filter(|c| !c.is_empty()) {
            cgroups
                .v1
                .insert(controller.to_string(), PathBuf::from(path));
        }
    }
    cgroups
}

/// A container's cgroup path, checked and in one of two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    /// Below the root of each hierarchy.
    Absolute(PathBuf),
    /// Below the cgroup of the calling process in each hierarchy.
    Relative(PathBuf),
}

/// Checks `linux.cgroupsPath` and turns it into a [`CgroupPath`]. Without
/// a path, the container id names a cgroup below the caller's own.
///
/// `.` and `..` components are resolved lexically. A path whose `..`
/// components climb above its start is rejected, and so is the systemd
/// `slice:prefix:name` form, which needs a systemd cgroup driver.
pub fn parse_cgroups_path(cgroups_path: Option<&str>, id: &str) -> Result<CgroupPath, CgroupError> {
    let raw = match cgroups_path {
        Some(path) if !path.is_empty() => path,
        _ => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(CgroupError::InvalidPath {
                    path: id.to_string(),
                    reason: "a container id used as cgroup name must be one path component"
                        .to_string(),
                });
            }
            return Ok(CgroupPath::Relative(PathBuf::from(id)));
        }
    };
    if !raw.starts_with('/') && raw.split(':').count() == 3 {
        return Err(CgroupError::SystemdPathUnsupported(raw.to_string()));
    }

    let mut clean = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                if !clean.pop() {
                    return Err(CgroupError::InvalidPath {
                        path: raw.to_string(),
                        reason: "'..' climbs above the start of the path".to_string(),
                    });
                }
            }
            Component::Prefix(_) => unreachable!("no path prefixes on Linux"),
        }
    }
    if raw.starts_with('/') {
        Ok(CgroupPath::Absolute(clean))
    } else if clean.as_os_str().is_empty() {
        Err(CgroupError::InvalidPath {
            path: raw.to_string(),
            reason: "a relative path must name a cgroup below the caller's own".to_string(),
        })
    } else {
        Ok(CgroupPath::Relative(clean))
    }
}

/// Returns the directory of `path` in the hierarchy mounted as `mount`,
/// where the calling process is in cgroup `own` of that hierarchy.
///
/// Returns `None` when a relative path is requested but the calling process
/// is in a cgroup outside the part of the hierarchy the mount shows.
pub fn cgroup_dir(mount: &CgroupMount, own: Option<&Path>, path: &CgroupPath) -> Option<PathBuf> {
    match path {
        CgroupPath::Absolute(inner) => Some(mount.mount_point.join(inner)),
        CgroupPath::Relative(inner) => {
            let own = own.unwrap_or(Path::new("/"));
            let below_root = own.strip_prefix(&mount.root).ok()?;
            Some(mount.mount_point.join(below_root).join(inner))
        }
    }
}

/// Directories of one container's cgroup, per hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupDirs {
    /// Per v1 controller: the hierarchy's mount point and the cgroup directory.
    pub v1: BTreeMap<String, (PathBuf, PathBuf)>,
    /// The cgroup2 mount point and cgroup directory.
    pub unified: Option<(PathBuf, PathBuf)>,
}

/// Computes the cgroup directories of `path` for a host in `mode` with
/// `mounts`, for a caller in the cgroups `own`.
pub fn compute_dirs(
    mode: CgroupMode,
    mounts: &[CgroupMount],
    own: &ProcessCgroups,
    path: &CgroupPath,
) -> Result<CgroupDirs, CgroupError> {
    let mut dirs = CgroupDirs::default();
    if mode != CgroupMode::Unified {
        for mount in mounts.iter().filter(|m| !m.v2) {
            for controller in &mount.controllers {
                if dirs.v1.contains_key(controller) {
                    continue;
                }
                let own_path = own.v1.get(controller).map(PathBuf::as_path);
                let dir = cgroup_dir(mount, own_path, path)
                    .ok_or_else(|| outside_mount(mount, own_path))?;
                dirs.v1
                    .insert(controller.clone(), (mount.mount_point.clone(), dir));
            }
        }
    }
    if mode != CgroupMode::Legacy {
        let unified_root = if mode == CgroupMode::Unified {
            CGROUP_ROOT
        } else {
            HYBRID_UNIFIED_ROOT
        };
        let mount = mounts
            .iter()
            .find(|m| m.v2 && m.mount_point == Path::new(unified_root))
            .cloned()
            .unwrap_or_else(|| CgroupMount {
                root: PathBuf::from("/"),
                mount_point: PathBuf::from(unified_root),
                controllers: Vec::new(),
                v2: true,
            });
        let own_path = own.unified.as_deref();
        let dir =
            cgroup_dir(&mount, own_path, path).ok_or_else(|| outside_mount(&mount, own_path))?;
        dirs.unified = Some((mount.mount_point, dir));
    }
    Ok(dirs)
}

fn outside_mount(mount: &CgroupMount, own: Option<&Path>) -> CgroupError {
    CgroupError::InvalidPath {
        path: own.unwrap_or(Path::new("/")).display().to_string(),
        reason: format!(
            "the caller's own cgroup is outside the mount at {} (mount root {})",
            mount.mount_point.display(),
            mount.root.display()
        ),
    }
}
