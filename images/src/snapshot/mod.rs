//! Overlay root filesystems made of unpacked layer directories.
//!
//! Mounts use the new mount API (`fsopen("overlay")`, `fsconfig`,
//! `fsmount`, `move_mount`). The new mount gets the propagation that the
//! kernel gives any mount at `target`; nothing here changes the
//! propagation of existing mounts.

mod options;
mod overlay;

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::UnmountFlags;

pub use options::overlay_mount_options;
pub use overlay::{mount_rootfs, mount_rootfs_readonly};

/// Failure to mount, unmount or sync a rootfs.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no lower directory given for the rootfs at {0}")]
    NoLowerDirs(PathBuf),

    #[error("failed to {action} for the rootfs at {target}: {source}{}", kernel_log(.log))]
    Mount {
        target: PathBuf,
        action: String,
        #[source]
        source: io::Error,
        /// Messages the kernel logged on the file system context.
        log: Vec<String>,
    },

    #[error("failed to unmount {path}: {source}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to sync the file system of {path}: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn kernel_log(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

/// Detaches the mount at `target` lazily (`MNT_DETACH`): it disappears
/// from the tree at once and is freed when no process uses it any more.
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(|e| SnapshotError::Unmount {
        path: target.to_owned(),
        source: e.into(),
    })
}

/// Writes back all dirty data and metadata of the file system that contains
/// `path` (`syncfs`). One call after unpacking a layer replaces an fsync
/// per file.
pub fn sync_dir(path: &Path) -> Result<(), SnapshotError> {
    let sync_error = |e: rustix::io::Errno| SnapshotError::Sync {
        path: path.to_owned(),
        source: e.into(),
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sync_error)?;
    rustix::fs::syncfs(fd.as_fd()).map_err(sync_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sync_dir() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        let missing = dir.path().join("missing");
        let err = sync_dir(&missing).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
