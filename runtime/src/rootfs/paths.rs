//! Steps after the switch of root: delayed read-only remounts,
//! `root.readonly`, `linux.readonlyPaths` and `linux.maskedPaths`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use super::devices::verify_dev_null;
use super::mount::clean_destination;
use super::options::{parse_mount_options, MS_RDONLY};
use super::resolve::{open_in_root, resolve_in_root, ResolveError, ResolveOptions, Resolved};
use super::sys::{self, MountAttr, ATTR_RDONLY};
use super::RootfsError;

const READ_ONLY: MountAttr = MountAttr {
    attr_set: ATTR_RDONLY,
    attr_clr: 0,
    propagation: 0,
    userns_fd: 0,
};

/// Opens the current root as an `O_PATH` handle.
pub fn open_root() -> Result<OwnedFd, RootfsError> {
    let slash = Path::new("/");
    rfs::open(
        slash,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::io("rootfs", slash, "open", e))
}

/// Makes read-only the tmpfs mounts and the `/dev` mount whose options
/// include `ro`, which `prepare` mounted writable.
pub fn remount_delayed_readonly(root: BorrowedFd<'_>, mounts: &[Mount]) -> Result<(), RootfsError> {
    for entry in mounts {
        let options = parse_mount_options(entry.options().as_deref().unwrap_or_default());
        if options.flags & MS_RDONLY == 0 || options.is_bind() {
            continue;
        }
        let dest = entry.destination();
        let is_tmpfs = entry.typ().as_deref() == Some("tmpfs");
        if !is_tmpfs && clean_destination(dest) != Path::new("/dev") {
            continue;
        }
        let fd = open_in_root(root, dest, ResolveOptions::existing())
            .map_err(|e| RootfsError::resolve("mount destination", dest, e))?;
        sys::mount_setattr_fd(fd.as_fd(), false, &READ_ONLY)
            .map_err(|e| RootfsError::io("mount destination", dest, "read-only remount", e))?;
    }
    Ok(())
}

/// Makes the root mount read-only, keeping its other attributes.
pub fn set_root_readonly(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    sys::mount_setattr_fd(root, false, &READ_ONLY)
        .map_err(|e| RootfsError::io("rootfs", Path::new("/"), "read-only remount", e))
}

/// Resolves an entry of `readonlyPaths` or `maskedPaths`, or returns `None`
/// when the path does not exist, which is skipped as runc does.
fn resolve_existing(
    root: BorrowedFd<'_>,
    what: &'static str,
    path: &Path,
) -> Result<Option<Resolved>, RootfsError> {
    match resolve_in_root(root, path, ResolveOptions::existing()) {
        Ok(resolved) => Ok(Some(resolved)),
        Err(e) if e.is_not_found() || e.is_not_directory() => Ok(None),
        Err(e) => Err(RootfsError::resolve(what, path, e)),
    }
}

fn move_onto(
    mount: &OwnedFd,
    target: &Resolved,
    what: &'static str,
    path: &Path,
) -> Result<(), RootfsError> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(mount, "", &target.fd, "", flags)
        .map_err(|e| RootfsError::io(what, path, "move_mount", e))
}

/// Bind-mounts `path` onto itself, read-only with its submounts, keeping
/// the other attributes (nosuid, nodev...) it had.
pub fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    const WHAT: &str = "read-only path";
    let Some(target) = resolve_existing(root, WHAT, path)? else {
        return Ok(());
    };
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = open_tree(&target.fd, "", flags)
        .map_err(|e| RootfsError::io(WHAT, path, "open_tree", e))?;
    // NOTE: runc 1.1 makes only the top mount read-only, but submounts become
    // read-only here as well, so a path is never writable below it.
    sys::mount_setattr_fd(tree.as_fd(), true, &READ_ONLY)
        .map_err(|e| RootfsError::io(WHAT, path, "mount_setattr", e))?;
    move_onto(&tree, &target, WHAT, path)
}

/// Covers `path`: a directory with an empty read-only tmpfs, anything else
/// with a bind mount of the container's `/dev/null`.
pub fn mask_path(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    const WHAT: &str = "masked path";
    let Some(target) = resolve_existing(root, WHAT, path)? else {
        return Ok(());
    };
    let stat = rfs::fstat(&target.fd).map_err(|e| RootfsError::io(WHAT, path, "stat", e))?;
    let mount = if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| RootfsError::io(WHAT, path, "fsopen tmpfs", e))?;
        fsconfig_set_string(&fs, "source", "tmpfs")
            .and_then(|()| fsconfig_set_flag(&fs, "ro"))
            .and_then(|()| fsconfig_create(&fs))
            .map_err(|e| RootfsError::io(WHAT, path, "creating tmpfs", e))?;
        fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY,
        )
        .map_err(|e| RootfsError::io(WHAT, path, "fsmount", e))?
    } else {
        let null_path = Path::new("/dev/null");
        let null = open_in_root(root, null_path, ResolveOptions::existing())
            .map_err(|e: ResolveError| RootfsError::resolve("device", null_path, e))?;
        verify_dev_null(null.as_fd(), null_path)?;
        let flags = OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH;
        open_tree(&null, "", flags)
            .map_err(|e| RootfsError::io(WHAT, path, "open_tree of /dev/null", e))?
    };
    move_onto(&mount, &target, WHAT, path)
}
