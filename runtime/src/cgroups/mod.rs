//! Control groups of a container: creation, resource limits, membership,
//! freezing and removal, on cgroup v1, v2 and hybrid hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

/// Errors of cgroup management.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {message}")]
    Other { path: String, message: String },
}

/// The cgroup of one container, in every hierarchy the host mounts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manager {
    /// Cgroup path as given in `linux.cgroupsPath`, or the default.
    pub path: String,
}

impl Manager {
    /// Describes the cgroup at `cgroups_path` (from `linux.cgroupsPath`), or
    /// at the default path for container `id` when it is `None`. Creates nothing.
    pub fn new(cgroups_path: Option<&str>, id: &str) -> Result<Self, CgroupError> {
        let _ = id;
        Ok(Self {
            path: cgroups_path.unwrap_or_default().to_string(),
        })
    }

    /// Creates the cgroup directories and applies `resources` to them.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let _ = resources;
        todo!()
    }

    /// Moves process `pid` into the cgroup.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let _ = pid;
        todo!()
    }

    /// Returns the pids of every process in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        todo!()
    }

    /// Freezes or thaws every process of the cgroup.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let _ = frozen;
        todo!()
    }

    /// Returns true when the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        todo!()
    }

    /// Removes the cgroup directories. Succeeds when they are already gone.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        todo!()
    }

    /// Returns the directory of the cgroup in each mounted hierarchy, keyed by
    /// controller name (`"unified"` for the cgroup2 hierarchy).
    pub fn paths(&self) -> BTreeMap<String, PathBuf> {
        todo!()
    }
}
