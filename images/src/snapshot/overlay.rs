//! Overlay and bind mounts through the new mount API.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, OpenTreeFlags,
};

use super::options::escape;
use super::SnapshotError;

/// Mounts at `target` a writable overlay of `lower_dirs_top_first` (the
/// image's top layer first) with `upper` and `work` on the same file
/// system.
pub fn mount_rootfs(
    lower_dirs_top_first: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), SnapshotError> {
    if lower_dirs_top_first.is_empty() {
        return Err(SnapshotError::NoLowerDirs(target.to_owned()));
    }
    let context = overlay_context(lower_dirs_top_first, target)?;
    set_string(&context, "upperdir", &upper.to_string_lossy(), target)?;
    set_string(&context, "workdir", &work.to_string_lossy(), target)?;
    attach(&context, MountAttrFlags::empty(), target)
}

/// Mounts at `target` a read-only view of `lower_dirs_top_first`. Overlayfs
/// needs two lower directories when there is no upper one, so a single
/// layer is bind-mounted read-only instead.
pub fn mount_rootfs_readonly(
    lower_dirs_top_first: &[PathBuf],
    target: &Path,
) -> Result<(), SnapshotError> {
    match lower_dirs_top_first {
        [] => Err(SnapshotError::NoLowerDirs(target.to_owned())),
        [only] => bind_readonly(only, target),
        lowers => {
            let context = overlay_context(lowers, target)?;
            attach(&context, MountAttrFlags::MOUNT_ATTR_RDONLY, target)
        }
    }
}

/// Opens an overlay context with the lower directories set: one
/// `lowerdir+` per layer (Linux 6.8 and later), else one joined `lowerdir`.
fn overlay_context(lowers: &[PathBuf], target: &Path) -> Result<OwnedFd, SnapshotError> {
    let context = open_overlay(target)?;
    match rustix::mount::fsconfig_set_string(&context, "lowerdir+", lowers[0].as_path()) {
        Ok(()) => {
            for lower in &lowers[1..] {
                set_string(&context, "lowerdir+", &lower.to_string_lossy(), target)?;
            }
            Ok(context)
        }
        Err(Errno::INVAL) => {
            // The failed key left an error in that context: start afresh.
            let context = open_overlay(target)?;
            let joined = lowers
                .iter()
                .map(|dir| escape(dir))
                .collect::<Vec<_>>()
                .join(":");
            set_string(&context, "lowerdir", &joined, target)?;
            Ok(context)
        }
        Err(e) => Err(mount_error(&context, target, "set lowerdir+", e)),
    }
}

fn open_overlay(target: &Path) -> Result<OwnedFd, SnapshotError> {
    rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| {
        SnapshotError::Mount {
            target: target.to_owned(),
            action: "open an overlay file system context".into(),
            source: e.into(),
            log: Vec::new(),
        }
    })
}

fn set_string(
    context: &OwnedFd,
    key: &str,
    value: &str,
    target: &Path,
) -> Result<(), SnapshotError> {
    rustix::mount::fsconfig_set_string(context, key, value)
        .map_err(|e| mount_error(context, target, &format!("set {key}={value}"), e))
}

/// Creates the super block of `context` and moves its mount onto `target`.
fn attach(
    context: &OwnedFd,
    attributes: MountAttrFlags,
    target: &Path,
) -> Result<(), SnapshotError> {
    rustix::mount::fsconfig_create(context)
        .map_err(|e| mount_error(context, target, "create the overlay", e))?;
    let mount = rustix::mount::fsmount(context, FsMountFlags::FSMOUNT_CLOEXEC, attributes)
        .map_err(|e| mount_error(context, target, "create the mount", e))?;
    move_to(mount.as_fd(), target)
}

fn bind_readonly(source: &Path, target: &Path) -> Result<(), SnapshotError> {
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| plain_error(target, format!("clone {}", source.display()), e))?;
    move_to(tree.as_fd(), target)?;
    // mount_setattr is missing from rustix, and a bind remount changes the
    // same per-mount flag.
    rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "").map_err(|e| {
        let _ = super::unmount(target);
        plain_error(target, "make the bind mount read-only".into(), e)
    })
}

fn move_to(mount: BorrowedFd<'_>, target: &Path) -> Result<(), SnapshotError> {
    rustix::mount::move_mount(
        mount,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| {
        plain_error(
            target,
            format!("attach the mount at {}", target.display()),
            e,
        )
    })
}

fn plain_error(target: &Path, action: String, errno: Errno) -> SnapshotError {
    SnapshotError::Mount {
        target: target.to_owned(),
        action,
        source: errno.into(),
        log: Vec::new(),
    }
}

fn mount_error(context: &OwnedFd, target: &Path, action: &str, errno: Errno) -> SnapshotError {
    SnapshotError::Mount {
        target: target.to_owned(),
        action: action.to_owned(),
        source: errno.into(),
        log: read_log(context),
    }
}

/// Reads the messages ("e overlayfs: ...") queued on a file system context.
fn read_log(context: &OwnedFd) -> Vec<String> {
    let mut log = Vec::new();
    let mut buffer = [0u8; 1024];
    // Each read returns one message, and the kernel queues only a few.
    for _ in 0..8 {
        match rustix::io::read(context, &mut buffer) {
            Ok(n) if n > 0 => log.push(String::from_utf8_lossy(&buffer[..n]).trim_end().to_owned()),
            _ => break,
        }
    }
    log
}
