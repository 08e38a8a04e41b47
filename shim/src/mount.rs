//! The container's root filesystem mounts that containerd passes to Create.

use std::path::Path;

use hull_proto::containerd::types::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A failed mount or unmount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("failed to mount {kind} {source_path} on {target}: {errno}")]
    Mount {
        kind: String,
        source_path: String,
        target: String,
        errno: nix::Error,
    },
    #[error("failed to unmount {target}: {errno}")]
    Unmount { target: String, errno: nix::Error },
    #[error("failed to create mount point {target}: {source}")]
    MountPoint {
        target: String,
        source: std::io::Error,
    },
}

/// Splits mount(8) options into flags and the filesystem's data string.
fn parse_options(options: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {
                let mut kind = match option.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_SHARED,
                };
                if option.starts_with('r') {
                    kind |= MsFlags::MS_REC;
                }
                propagation |= kind;
                continue;
            }
            other => {
                data.push(other.to_owned());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, propagation, data.join(","))
}

/// Mounts each of `mounts` on `rootfs`, in order.
pub fn mount_rootfs(mounts: &[Mount], rootfs: &Path) -> Result<(), MountError> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(rootfs).map_err(|source| MountError::MountPoint {
        target: rootfs.display().to_string(),
        source,
    })?;
    for (index, entry) in mounts.iter().enumerate() {
        if let Err(error) = mount_one(entry, rootfs) {
            // Leave nothing mounted when a later mount fails.
            for _ in 0..index {
                let _ = umount2(rootfs, MntFlags::MNT_DETACH);
            }
            return Err(error);
        }
    }
    Ok(())
}

fn mount_one(entry: &Mount, rootfs: &Path) -> Result<(), MountError> {
    let target = if entry.target.is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(entry.target.trim_start_matches('/'))
    };
    let (flags, propagation, data) = parse_options(&entry.options);
    let kind = if entry.r#type == "bind" || entry.r#type.is_empty() {
        None
    } else {
        Some(entry.r#type.as_str())
    };
    let error = |errno| MountError::Mount {
        kind: entry.r#type.clone(),
        source_path: entry.source.clone(),
        target: target.display().to_string(),
        errno,
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    // A bind mount ignores MS_RDONLY on the first call, so a read-only bind
    // takes a second, remounting call.
    let first = if flags.contains(MsFlags::MS_BIND) {
        flags & !MsFlags::MS_RDONLY
    } else {
        flags
    };
    mount(Some(entry.source.as_str()), &target, kind, first, data).map_err(error)?;
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(error)?;
    }
    if !propagation.is_empty() {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            propagation,
            None::<&str>,
        )
        .map_err(error)?;
    }
    Ok(())
}

/// Unmounts everything mounted on `rootfs`, including stacked mounts.
pub fn unmount_all(rootfs: &Path) -> Result<(), MountError> {
    loop {
        match umount2(rootfs, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: rootfs.display().to_string(),
                    errno,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let options: Vec<String> = ["ro", "rbind", "lowerdir=/a:/b", "index=off", "rprivate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, propagation, data) = parse_options(&options);
        assert!(flags.contains(MsFlags::MS_RDONLY));
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(data, "lowerdir=/a:/b,index=off");
    }

    #[test]
    fn rw_clears_an_earlier_ro() {
        let options = vec!["ro".to_string(), "rw".to_string()];
        let (flags, _, _) = parse_options(&options);
        assert!(!flags.contains(MsFlags::MS_RDONLY));
    }
}
