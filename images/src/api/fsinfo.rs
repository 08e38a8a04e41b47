//! Disk usage of the image store for CRI ImageFsInfo.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hull_proto::runtime::v1 as cri;
use tonic::Status;

/// Store directories whose usage counts as image usage.
const IMAGE_DIRS: &[&str] = &["content", "snapshots", "meta.redb"];

/// Measures the bytes (allocated blocks) and inodes below the store's
/// image directories and names the mount point of their filesystem.
pub fn usage(root: &Path) -> Result<cri::FilesystemUsage, Status> {
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    for dir in IMAGE_DIRS {
        walk(&root.join(dir), &mut bytes, &mut inodes);
    }
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(cri::FilesystemUsage {
        timestamp,
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: mount_point(root).display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value { value: bytes }),
        inodes_used: Some(cri::UInt64Value { value: inodes }),
    })
}

/// Adds the usage of `path` and everything below it, without following
/// symlinks or crossing into other filesystems.
fn walk(path: &Path, bytes: &mut u64, inodes: &mut u64) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    *bytes += meta.blocks() * 512;
    *inodes += 1;
    if !meta.is_dir() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let child = entry.path();
        if std::fs::symlink_metadata(&child).is_ok_and(|child_meta| child_meta.dev() != meta.dev())
        {
            continue;
        }
        walk(&child, bytes, inodes);
    }
}

/// Returns the mount point of the filesystem that contains `path`: the
/// longest mount point in /proc/self/mountinfo that is a prefix of it.
fn mount_point(path: &Path) -> PathBuf {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return path;
    };
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(field.replace("\\040", " ")))
        .filter(|mount| path.starts_with(mount))
        .max_by_key(|mount| mount.as_os_str().len())
        .unwrap_or(path)
}
