//! Notifications of out-of-memory kills in a container's cgroup, through a
//! file descriptor that a caller polls.
//!
//! On cgroup v1 (and hybrid hosts) the kernel signals an eventfd registered
//! in `cgroup.event_control` for `memory.oom_control` on every OOM in the
//! cgroup, and once more when the cgroup is removed. On cgroup v2 an
//! inotify watch reports changes of `memory.events`, whose `oom_kill`
//! counter grows on every kill, and of `cgroup.events`, whose `populated`
//! value drops to 0 when the last process leaves.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::inotify;

use super::files::{read_file, write_file};
use super::stats::parse_key_values;
use super::{CgroupError, CgroupMode, Manager};

/// Notifications that arrived since the previous [`OomWatcher::read`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomNews {
    /// Number of new OOM notifications.
    pub ooms: u64,
    /// The cgroup was removed (v1) or has no processes left (v2).
    pub ended: bool,
}

/// A non-blocking source of OOM notifications for one cgroup.
#[derive(Debug)]
pub enum OomWatcher {
    V1 {
        eventfd: OwnedFd,
        /// Kept open while the registration lives.
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
        /// The `oom_kill` count of `memory.events` at the previous read.
        oom_kills: u64,
    },
}

impl Manager {
    /// Returns how many processes of the cgroup the kernel's OOM killer
    /// killed (`oom_kill` of `memory.oom_control` on v1 and of
    /// `memory.events` on v2), or `None` without a memory controller.
    pub fn oom_kill_count(&self) -> Option<u64> {
        let (dir, file) = if self.mode == CgroupMode::Unified {
            (self.unified_dir().ok()?, "memory.events")
        } else {
            (self.v1.get("memory")?.dir.as_path(), "memory.oom_control")
        };
        let text = read_file(dir, file).ok()?;
        let values = parse_key_values(&dir.join(file), &text).ok()?;
        values.get("oom_kill").copied()
    }

    /// Registers for OOM notifications of the cgroup. Needs the memory
    /// controller: on v1 its hierarchy, on v2 its files in the cgroup.
    pub fn watch_oom(&self) -> Result<OomWatcher, CgroupError> {
        if self.mode == CgroupMode::Unified {
            return watch_v2(self.unified_dir()?);
        }
        let dir = self
            .v1
            .get("memory")
            .map(|d| d.dir.as_path())
            .ok_or_else(|| CgroupError::ControllerMissing {
                path: self.path.clone(),
                resource: "OOM notifications",
                controller: "memory",
            })?;
        watch_v1(dir)
    }
}

fn os_error(path: &Path, err: rustix::io::Errno) -> CgroupError {
    CgroupError::Read {
        path: path.to_path_buf(),
        source: io::Error::from(err),
    }
}

fn watch_v1(dir: &Path) -> Result<OomWatcher, CgroupError> {
    let control_path = dir.join("memory.oom_control");
    let oom_control = File::open(&control_path).map_err(|source| CgroupError::Read {
        path: control_path.clone(),
        source,
    })?;
    let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(|err| os_error(&control_path, err))?;
    // The kernel parses "<event fd> <file fd>" and holds both references.
    let registration = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
    write_file(dir, "cgroup.event_control", registration)?;
    Ok(OomWatcher::V1 {
        eventfd,
        _oom_control: oom_control,
        dir: dir.to_path_buf(),
    })
}

pub(super) fn watch_v2(dir: &Path) -> Result<OomWatcher, CgroupError> {
    let events_path = dir.join("memory.events");
    let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(|err| os_error(&events_path, err))?;
    for file in ["memory.events", "cgroup.events"] {
        let path = dir.join(file);
        inotify::add_watch(&inotify, &path, inotify::WatchFlags::MODIFY)
            .map_err(|err| os_error(&path, err))?;
    }
    let oom_kills = read_oom_kills(dir)?;
    Ok(OomWatcher::V2 {
        inotify,
        dir: dir.to_path_buf(),
        oom_kills,
    })
}

fn read_oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let text = read_file(dir, "memory.events")?;
    let values = parse_key_values(&dir.join("memory.events"), &text)?;
    Ok(values.get("oom_kill").copied().unwrap_or(0))
}

/// Returns true when `cgroup.events` of a cgroup2 directory reports no
/// processes, or the cgroup is gone.
fn unpopulated(dir: &Path) -> bool {
    match read_file(dir, "cgroup.events") {
        Ok(text) => parse_key_values(&dir.join("cgroup.events"), &text)
            .map(|values| values.get("populated") == Some(&0))
            .unwrap_or(false),
        Err(_) => true,
    }
}

impl AsFd for OomWatcher {
    /// Returns the descriptor to poll for readability.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            OomWatcher::V1 { eventfd, .. } => eventfd.as_fd(),
            OomWatcher::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

impl OomWatcher {
    /// Collects the notifications that arrived since the previous call
    /// without blocking.
    pub fn read(&mut self) -> Result<OomNews, CgroupError> {
        match self {
            OomWatcher::V1 { eventfd, dir, .. } => {
                let mut counter = [0u8; 8];
                let count = match rustix::io::read(&*eventfd, &mut counter) {
                    Ok(8) => u64::from_ne_bytes(counter),
                    Ok(_) | Err(rustix::io::Errno::AGAIN) => 0,
                    Err(err) => return Err(os_error(dir, err)),
                };
                if count == 0 {
                    return Ok(OomNews::default());
                }
                // Removing the cgroup also signals the eventfd, so a
                // signal after the removal is not an OOM.
                if !dir.join("cgroup.event_control").exists() {
                    return Ok(OomNews {
                        ooms: 0,
                        ended: true,
                    });
                }
                Ok(OomNews {
                    ooms: count,
                    ended: false,
                })
            }
            OomWatcher::V2 {
                inotify,
                dir,
                oom_kills,
            } => {
                let mut buffer = [0u8; 4096];
                loop {
                    match rustix::io::read(&*inotify, &mut buffer) {
                        Ok(0) | Err(rustix::io::Errno::AGAIN) => break,
                        Ok(_) => continue,
                        Err(err) => return Err(os_error(dir, err)),
                    }
                }
                let ended = unpopulated(dir);
                let now = match read_oom_kills(dir) {
                    Ok(now) => now,
                    Err(_) if ended => *oom_kills,
                    Err(err) => return Err(err),
                };
                let ooms = now.saturating_sub(*oom_kills);
                *oom_kills = now;
                Ok(OomNews { ooms, ended })
            }
        }
    }
}
