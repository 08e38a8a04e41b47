//! Control groups of a container: creation, resource limits, membership,
//! freezing and removal, on cgroup v1, v2 and hybrid hosts.
//!
//! On a hybrid host the v1 hierarchies carry every limit and the container
//! also gets a cgroup in the cgroup2 hierarchy, which contains its
//! processes and sets no limits, as runc 1.1 does.

mod devices;
mod files;
pub mod layout;
mod memory_v1;
mod oom;
pub mod stats;
mod stats_v1;
mod stats_v2;
mod sub;
pub mod systemd;
mod v1;
mod v2;

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use devices::default_device_rules;
pub use layout::{detect_mode, CgroupMode};
pub use oom::{OomNews, OomWatcher};
pub use stats::Stats;
pub use sub::parse_sub_cgroups;
pub use v2::{blkio_weight_to_io_weight, cpu_shares_to_weight, swap_to_v2};

/// Errors of cgroup management.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "cgroups path {0:?} has the systemd form slice:prefix:name, which is not supported: \
         use a path such as /hull/<id>"
    )]
    SystemdPathUnsupported(String),
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to parse {path}: unexpected content {text:?}")]
    Parse { path: PathBuf, text: String },
    #[error("failed to write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to remove cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid {resource} value {value} for cgroup {path}: {reason}")]
    InvalidValue {
        path: PathBuf,
        resource: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "cannot apply {resource} to cgroup {path}: the {controller} controller is not available"
    )]
    ControllerMissing {
        path: String,
        resource: &'static str,
        controller: &'static str,
    },
    #[error("timed out waiting for cgroup {path} to become {state}")]
    FreezeTimeout { path: PathBuf, state: &'static str },
    #[error("invalid sub-cgroup {value:?}: {reason}")]
    SubCgroup { value: String, reason: String },
    #[error("cgroup {path}: {message}")]
    Other { path: String, message: String },
}

/// Directory of the container's cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// Mount point of the hierarchy.
    pub mount_point: PathBuf,
    /// The cgroup directory, below `mount_point`.
    pub dir: PathBuf,
}

/// The cgroup of one container, in every hierarchy the host mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// Cgroup path as given in `linux.cgroupsPath`, or the container id.
    pub path: String,
    /// The host's cgroup mode when the manager was built.
    pub mode: CgroupMode,
    /// Per v1 controller (`name=systemd` for the named hierarchy).
    v1: BTreeMap<String, CgroupDir>,
    /// The cgroup in the cgroup2 hierarchy on hybrid and unified hosts.
    unified: Option<CgroupDir>,
}

impl Manager {
    /// Describes the cgroup at `cgroups_path` (from `linux.cgroupsPath`), or
    /// at the default path for container `id` when it is `None`. Creates nothing.
    ///
    /// An absolute path lies below the root of each hierarchy. A relative
    /// path, and the default path (the container id), lie below the calling
    /// process's own cgroup in each hierarchy.
    pub fn new(cgroups_path: Option<&str>, id: &str) -> Result<Self, CgroupError> {
        let path = layout::parse_cgroups_path(cgroups_path, id)?;
        let mode = detect_mode();
        let mountinfo = read_proc_file("/proc/self/mountinfo")?;
        let own = read_proc_file("/proc/self/cgroup")?;
        let dirs = layout::compute_dirs(
            mode,
            &layout::parse_mountinfo(&mountinfo),
            &layout::parse_proc_cgroup(&own),
            &path,
        )?;
        let name = match cgroups_path {
            Some(given) if !given.is_empty() => given.to_string(),
            _ => id.to_string(),
        };
        Ok(Self::from_dirs(name, mode, dirs))
    }

    /// Builds a manager for directories computed elsewhere, such as a cgroup2
    /// hierarchy mounted at a private mount point.
    pub fn from_dirs(path: String, mode: CgroupMode, dirs: layout::CgroupDirs) -> Self {
        let to_dir = |(mount_point, dir): (PathBuf, PathBuf)| CgroupDir { mount_point, dir };
        Self {
            path,
            mode,
            v1: dirs.v1.into_iter().map(|(k, v)| (k, to_dir(v))).collect(),
            unified: dirs.unified.map(to_dir),
        }
    }

    /// Creates the cgroup directories and applies `resources` to them.
    ///
    /// When applying fails, the directories this call created are removed.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let existed = self.all_dirs().iter().any(|d| d.exists());
        let result = self.create_and_apply(resources);
        if result.is_err() && !existed {
            if let Err(err) = self.destroy() {
                tracing::warn!(path = %self.path, error = %err, "failed to remove cgroup after a failed create");
            }
        }
        result
    }

    /// Applies `resources` to the existing cgroup, as `update` does: zero
    /// values keep the current setting and the device rules stay as they
    /// are.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.check_unified(resources)?;
        if self.mode == CgroupMode::Unified {
            return v2::apply(self.unified_dir()?, resources);
        }
        v1::apply_limits(&self.path, &self.v1, resources)
    }

    fn check_unified(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if self.mode != CgroupMode::Unified
            && resources.unified().as_ref().is_some_and(|u| !u.is_empty())
        {
            let keys: Vec<&str> = resources
                .unified()
                .iter()
                .flat_map(|u| u.keys())
                .map(String::as_str)
                .collect();
            return Err(CgroupError::Other {
                path: self.path.clone(),
                message: format!(
                    "invalid configuration: linux.resources.unified ({}) needs a cgroup v2 host, \
                     but this host uses cgroup v1 controllers",
                    keys.join(", ")
                ),
            });
        }
        Ok(())
    }

    fn create_and_apply(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        if let Some(r) = resources {
            self.check_unified(r)?;
        }
        v1::create(&self.v1)?;
        if let Some(unified) = &self.unified {
            v2::create(unified, self.mode == CgroupMode::Unified)?;
        }
        let Some(resources) = resources else {
            return Ok(());
        };
        if self.mode == CgroupMode::Unified {
            if let Some(unified) = &self.unified {
                v2::apply(&unified.dir, resources)?;
            }
        } else {
            v1::apply(&self.path, &self.v1, resources)?;
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            files::write_file(dir, "cgroup.procs", pid)?;
        }
        Ok(())
    }

    /// Moves the calling thread into the cgroup of every v1 hierarchy by
    /// writing 0 to each `tasks` file. For a single-threaded process that
    /// moves the process. Unlike a pid written to `cgroup.procs`, which
    /// write-locks every thread group of the host and so waits for an RCU
    /// grace period (about 10 ms on a 2-core VM), a thread moving itself
    /// takes no global lock.
    pub fn join_v1_self(&self) -> Result<(), CgroupError> {
        let mut dirs: Vec<&Path> = self.v1.values().map(|d| d.dir.as_path()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            files::write_file(dir, "tasks", 0)?;
        }
        Ok(())
    }

    /// Opens the cgroup2 directory, for a clone that starts the child in
    /// it (`CLONE_INTO_CGROUP`). `None` without a cgroup2 hierarchy.
    pub fn open_unified(&self) -> Result<Option<std::os::fd::OwnedFd>, CgroupError> {
        let Some(unified) = &self.unified else {
            return Ok(None);
        };
        fs::File::open(&unified.dir)
            .map(|dir| Some(dir.into()))
            .map_err(|source| CgroupError::Read {
                path: unified.dir.clone(),
                source,
            })
    }

    /// Moves process `pid` into the cgroup2 directory only.
    pub fn add_process_unified(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.unified {
            Some(unified) => files::write_file(&unified.dir, "cgroup.procs", pid),
            None => Ok(()),
        }
    }

    /// Returns the pids of every process in the cgroup and the cgroups below it.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self.membership_dir().ok_or_else(|| CgroupError::Other {
            path: self.path.clone(),
            message: "no cgroup hierarchy is mounted".to_string(),
        })?;
        let mut pids = Vec::new();
        files::read_pids_recursive(dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freezes or thaws every process of the cgroup, and waits until the
    /// kernel reports the new state.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        if self.mode == CgroupMode::Unified {
            let unified = self.unified_dir()?;
            return v2::set_frozen(unified, frozen);
        }
        v1::set_frozen(self.freezer_dir()?, frozen)
    }

    /// Returns true when the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        if self.mode == CgroupMode::Unified {
            return v2::is_frozen(self.unified_dir()?);
        }
        v1::is_frozen(self.freezer_dir()?)
    }

    /// Removes the cgroup directories, and the cgroups below them, in every
    /// hierarchy. Succeeds when they are already gone. Parent directories
    /// created for a nested path stay, as runc 1.1 leaves them.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.all_dirs() {
            if let Err(err) = files::remove_cgroup_tree(dir) {
                tracing::warn!(error = %err, "failed to remove cgroup");
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Returns the directory of the cgroup in each mounted hierarchy, keyed by
    /// controller name (`"unified"` for the cgroup2 hierarchy).
    pub fn paths(&self) -> BTreeMap<String, PathBuf> {
        let mut paths: BTreeMap<String, PathBuf> = self
            .v1
            .iter()
            .map(|(name, dir)| (name.clone(), dir.dir.clone()))
            .collect();
        if let Some(unified) = &self.unified {
            paths.insert("unified".to_string(), unified.dir.clone());
        }
        paths
    }

    /// Returns the container's cgroup in each v1 hierarchy, one entry per
    /// controller, so co-mounted controllers repeat a directory.
    pub fn v1_dirs(&self) -> impl Iterator<Item = &CgroupDir> {
        self.v1.values()
    }

    /// Returns true when the cgroup directory exists in every hierarchy.
    pub fn exists(&self) -> bool {
        let dirs = self.all_dirs();
        !dirs.is_empty() && dirs.iter().all(|d| d.is_dir())
    }

    /// Returns the distinct cgroup directories, since co-mounted v1 controllers such as
    /// `cpu,cpuacct` share one.
    fn all_dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = self.v1.values().map(|d| d.dir.as_path()).collect();
        if let Some(unified) = &self.unified {
            dirs.push(&unified.dir);
        }
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Returns the directory whose `cgroup.procs` lists the container's processes.
    fn membership_dir(&self) -> Option<&Path> {
        if self.mode == CgroupMode::Unified {
            return self.unified.as_ref().map(|u| u.dir.as_path());
        }
        ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|name| self.v1.get(*name))
            .or_else(|| self.v1.values().next())
            .map(|d| d.dir.as_path())
    }

    fn freezer_dir(&self) -> Result<&Path, CgroupError> {
        self.v1
            .get("freezer")
            .map(|d| d.dir.as_path())
            .ok_or_else(|| CgroupError::ControllerMissing {
                path: self.path.clone(),
                resource: "freeze",
                controller: "freezer",
            })
    }

    fn unified_dir(&self) -> Result<&Path, CgroupError> {
        self.unified
            .as_ref()
            .map(|u| u.dir.as_path())
            .ok_or_else(|| CgroupError::Other {
                path: self.path.clone(),
                message: "no cgroup2 hierarchy is mounted".to_string(),
            })
    }
}

fn read_proc_file(path: &str) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: PathBuf::from(path),
        source,
    })
}
