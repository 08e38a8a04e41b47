//! Out-of-memory notifications from a container's memory cgroup.
//!
//! cgroup v1 signals an eventfd that `cgroup.event_control` registers on
//! `memory.oom_control`. The kernel also signals it once when the cgroup
//! is removed. cgroup v2 counts kills in the `oom_kill` line of
//! `memory.events`, which inotify reports as modified.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The memory cgroup of a process and how to watch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCgroup {
    V1(PathBuf),
    V2(PathBuf),
}

/// A failure to set up the watch.
#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no memory cgroup found for process {pid}")]
    NoMemoryCgroup { pid: u32 },
    #[error("failed to register an OOM eventfd in {path}: {source}")]
    Register {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MemoryCgroup {
    /// Finds the memory cgroup of `pid` from `/proc/<pid>/cgroup`: the v1
    /// `memory` hierarchy, else the unified hierarchy if it has the memory
    /// controller (at `/sys/fs/cgroup` or, on hybrid hosts,
    /// `/sys/fs/cgroup/unified`).
    pub fn of_process(pid: u32) -> Result<MemoryCgroup, OomError> {
        let path = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = std::fs::read_to_string(&path).map_err(|source| OomError::Read {
            path: path.clone(),
            source,
        })?;
        let mut unified = None;
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(cgroup)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let relative = cgroup.trim_start_matches('/');
            if controllers.split(',').any(|name| name == "memory") {
                let dir = Path::new(CGROUP_ROOT).join("memory").join(relative);
                return Ok(MemoryCgroup::V1(dir));
            }
            if controllers.is_empty() {
                unified = Some(relative.to_owned());
            }
        }
        let relative = unified.ok_or(OomError::NoMemoryCgroup { pid })?;
        [CGROUP_ROOT, "/sys/fs/cgroup/unified"]
            .iter()
            .map(|root| Path::new(root).join(&relative))
            .find(|dir| dir.join("memory.events").is_file())
            .map(MemoryCgroup::V2)
            .ok_or(OomError::NoMemoryCgroup { pid })
    }

    /// Starts watching and returns the watch. Call
    /// [`OomWatch::next`] for each OOM kill.
    pub fn watch(&self) -> Result<OomWatch, OomError> {
        match self {
            MemoryCgroup::V1(dir) => watch_v1(dir),
            MemoryCgroup::V2(dir) => watch_v2(dir),
        }
    }
}

/// A registered watch on one memory cgroup.
pub enum OomWatch {
    V1 {
        dir: PathBuf,
        event: AsyncFd<EventFd>,
        /// Kept open: the registration lasts as long as this file.
        _control: File,
    },
    V2 {
        events_file: PathBuf,
        inotify: AsyncFd<InotifyFd>,
        kills: u64,
    },
}

/// An [`Inotify`] that [`AsyncFd`] can poll, which needs `AsRawFd`.
pub struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

fn watch_v1(dir: &Path) -> Result<OomWatch, OomError> {
    let register_error = |source: std::io::Error| OomError::Register {
        path: dir.to_path_buf(),
        source,
    };
    let control = File::open(dir.join("memory.oom_control")).map_err(register_error)?;
    let event = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|errno| register_error(errno.into()))?;
    let line = format!(
        "{} {}",
        event.as_fd().as_raw_fd(),
        control.as_fd().as_raw_fd()
    );
    std::fs::write(dir.join("cgroup.event_control"), line).map_err(register_error)?;
    let event = poll_readable(event).map_err(register_error)?;
    Ok(OomWatch::V1 {
        dir: dir.to_path_buf(),
        event,
        _control: control,
    })
}

// NOTE: the tests run on a hybrid host whose memory controller is on
// cgroup v1, so this v2 watch has no end-to-end test.
fn watch_v2(dir: &Path) -> Result<OomWatch, OomError> {
    let events_file = dir.join("memory.events");
    let register_error = |source: std::io::Error| OomError::Register {
        path: events_file.clone(),
        source,
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|errno| register_error(errno.into()))?;
    inotify
        .add_watch(&events_file, AddWatchFlags::IN_MODIFY)
        .map_err(|errno| register_error(errno.into()))?;
    let kills = read_oom_kills(&events_file).unwrap_or(0);
    let inotify = poll_readable(InotifyFd(inotify)).map_err(register_error)?;
    Ok(OomWatch::V2 {
        events_file,
        inotify,
        kills,
    })
}

/// Registers `fd` with the tokio reactor for reads.
fn poll_readable<T: AsRawFd>(fd: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `T` is an owning descriptor type (EventFd or InotifyFd) whose
    // `as_raw_fd` returns the same open descriptor for as long as the
    // `AsyncFd` owns it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|error| error.into())
}

/// Reads the `oom_kill` count of a v2 `memory.events` file.
fn read_oom_kills(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
}

impl OomWatch {
    /// Waits for the next OOM kill. Returns false once the cgroup is gone,
    /// which ends the watch.
    pub async fn next(&mut self) -> bool {
        match self {
            OomWatch::V1 { dir, event, .. } => loop {
                let Ok(mut guard) = event.readable().await else {
                    return false;
                };
                match guard.try_io(|fd| fd.get_ref().read().map_err(std::io::Error::from)) {
                    Ok(Ok(_)) => return dir.join("memory.oom_control").exists(),
                    Ok(Err(_)) => return false,
                    Err(_would_block) => continue,
                }
            },
            OomWatch::V2 {
                events_file,
                inotify,
                kills,
            } => loop {
                let Ok(mut guard) = inotify.readable().await else {
                    return false;
                };
                match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from))
                {
                    Ok(Ok(events)) => {
                        if events
                            .iter()
                            .any(|event| event.mask.contains(AddWatchFlags::IN_IGNORED))
                        {
                            return false;
                        }
                    }
                    Ok(Err(_)) => return false,
                    Err(_would_block) => continue,
                }
                let Some(count) = read_oom_kills(events_file) else {
                    return false;
                };
                if count > *kills {
                    *kills = count;
                    return true;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_count_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(read_oom_kills(&file), Some(1));
    }

    #[test]
    fn own_memory_cgroup_found() {
        let found = MemoryCgroup::of_process(std::process::id());
        if let Ok(MemoryCgroup::V1(dir) | MemoryCgroup::V2(dir)) = found {
            assert!(dir.starts_with(CGROUP_ROOT), "{}", dir.display());
        }
    }
}
